//! `strata rmi`.

use strata::ops::images::remove;

/// Arguments of `strata rmi`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The images: tags (`app`, `app:1`) or image ids (`strata images` shows them; a unique
    /// prefix will do).
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Remove every tag of an image named by id (without it, an image with several tags is
    /// refused, as docker refuses it).
    #[arg(long, short = 'f')]
    pub force: bool,
}

/// Removes the tags and prints `Untagged: NAME` for each, as docker does; the images' blobs,
/// snapshots and stages go at the next `strata gc`. Every name is tried; each one that removes
/// nothing is reported, and the exit status is then 1.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    let removed = remove(ctx, &args.images, args.force)?;
    for tag in &removed.untagged {
        println!("Untagged: {tag}");
    }
    for failure in &removed.failed {
        eprintln!("error: {failure}");
    }
    Ok(if removed.failed.is_empty() { 0 } else { 1 })
}
