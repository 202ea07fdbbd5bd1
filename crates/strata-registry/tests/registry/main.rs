//! strata-registry against a real `docker-registry` on 127.0.0.1 (never the network beyond).
//! Modules mirror `src/`; `faults` drives the client through a fault-injecting proxy.

mod auth;
mod client;
mod faults;
mod stages;
mod streamed;
mod support;
