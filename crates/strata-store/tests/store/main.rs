//! Integration tests of strata-store: the conformance suite, and real processes that race,
//! hold locks and die. Modules mirror `src/`; `support` holds the child-process helper.

mod blobs;
mod gc;
mod lock;
mod refs;
mod support;
mod testsuite;
