//! End-to-end tests of the `strata` binary: real namespaces, overlayfs and stores (run as root).

mod build;
mod cancel;
mod container;
mod corpus;
mod debug;
mod deps;
mod dockerfile;
mod errors;
mod export;
mod feeds;
mod gc;
mod git;
mod hostile;
mod interop;
mod kill9;
mod registry;
mod registry_race;
mod security_container;
mod security_paths;
mod source_race;
mod store_check;
mod store_safety;
mod support;
mod werf_corpus;
mod werf_history;
