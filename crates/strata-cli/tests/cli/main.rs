//! End-to-end tests of the `strata` binary: real namespaces, overlayfs and stores (run as root).

mod build;
mod cancel;
mod container;
mod corpus;
mod debug;
mod deps;
mod docker_flags;
mod dockerfile;
mod errors;
mod export;
mod feeds;
mod git;
mod hostile;
mod interop;
mod registry;
mod security_container;
mod security_paths;
mod store_safety;
mod support;
mod werf_corpus;
mod werf_history;
