//! `strata rmi`.

use strata::ops::images::remove;

/// Arguments of `strata rmi`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The images (tags) to remove.
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// Removes image tags (their blobs go at the next prune), printing each one removed.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    for tag in remove(ctx, &args.images)? {
        println!("removed {tag}");
    }
    Ok(0)
}
