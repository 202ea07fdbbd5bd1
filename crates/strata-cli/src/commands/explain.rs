//! `strata explain`.

use crate::render::explain;

/// Arguments of `strata explain`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image (a tag the build set).
    pub image: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Prints, for each stage of the image, why it was built: the first input that differs from
/// the stage the image had before.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    let stages = strata::ops::explain::image(ctx, &args.image)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&explain::json(&stages))?);
    } else {
        print!("{}", explain::text(&stages));
    }
    Ok(0)
}
