//! strata-template's integration tests.

mod certs;
mod differential;
