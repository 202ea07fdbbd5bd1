//! `strata pull`.

use strata::ops::pull::pull;

/// Arguments of `strata pull`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image, `[REGISTRY/]REPOSITORY[:TAG|@DIGEST]`. Credentials are those of
    /// `strata login` (or podman's auth files).
    pub reference: String,
}

/// Pulls the image into the store and tags it as named; prints its digest and status as
/// `docker pull` does.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    let pulled = pull(ctx, &args.reference)?;
    println!("Digest: {}", pulled.manifest);
    if pulled.changed {
        println!("Status: Downloaded newer image for {}", pulled.tag);
    } else {
        println!("Status: Image is up to date for {}", pulled.tag);
    }
    Ok(0)
}
