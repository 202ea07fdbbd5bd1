//! strata-template's integration tests.

mod differential;
