//! `strata version`.

/// Arguments of `strata version`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Prints the version (the line `strata --version` prints) and the platform it runs on.
pub fn exec(_: Args) -> anyhow::Result<i32> {
    println!("strata {}", env!("CARGO_PKG_VERSION"));
    println!("os/arch: {}", strata_registry::Platform::host());
    Ok(0)
}
