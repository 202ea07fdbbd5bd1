//! `strata logout`.

use strata::ops::push::logout;

/// Arguments of `strata logout`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The registry (`host[:port]`) [default: docker.io].
    pub registry: Option<String>,
}

/// Removes the registry's credentials from the Docker config, as `docker logout` does.
pub fn exec(args: Args) -> anyhow::Result<i32> {
    let registry = args.registry.as_deref().unwrap_or("docker.io");
    if logout(registry)? {
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(0)
}
