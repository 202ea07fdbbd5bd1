//! The sandbox's init helper as a stand-alone binary (used by this crate's tests; the strata
//! binary instead dispatches `__sandbox-init` to [`strata_sandbox::init_main`] itself).

fn main() {
    strata_sandbox::init_main()
}
