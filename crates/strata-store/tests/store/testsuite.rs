use strata_store::{LocalStore, testsuite};

use crate::support::store;

#[test]
fn local_store_passes_the_conformance_suite() {
    let (_d, store) = store();
    testsuite::run(&store);
    // Again on a store that now holds data, from two threads at once.
    std::thread::scope(|s| {
        s.spawn(|| testsuite::run(&store));
        s.spawn(|| testsuite::run(&LocalStore::open(store.root()).unwrap()));
    });
}
