//! `strata load`.

use std::path::PathBuf;

use strata::ops::load::load;

/// Arguments of `strata load`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A `docker save` tarball or an OCI image layout (tarball, possibly compressed, or
    /// directory), e.g. from `strata export`, `podman save` or `skopeo copy`.
    pub archive: PathBuf,
    /// The name to give the image [default: the names the archive records].
    pub name: Option<String>,
}

/// Loads the archive's images and prints each tag and manifest digest.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    for loaded in load(ctx, &args.archive, args.name.as_deref())? {
        println!("{} {}", loaded.reference, loaded.manifest);
    }
    Ok(0)
}
