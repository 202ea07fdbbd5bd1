//! `strata cleanup`.

use strata::ops::cleanup::{Options, cleanup};

/// Arguments of `strata cleanup`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stage repository (`registry.example.com/team/stages`).
    #[arg(long)]
    pub repo: String,
    /// The project directory (its werf.yaml and git repository).
    #[arg(long, default_value = ".")]
    pub dir: std::path::PathBuf,
    /// List what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Cleans and prints one line per stage removed (or that would be).
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    let outcome = cleanup(
        ctx,
        &Options {
            dir: args.dir,
            repo: args.repo,
            dry_run: args.dry_run,
        },
    )?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for r in &outcome.removed {
        let note = if args.dry_run || r.deleted {
            ""
        } else {
            " (the registry refused or it was gone)"
        };
        println!("{verb} {} ({}/{}){note}", r.tag, r.image, r.stage);
    }
    eprintln!(
        "{} stage(s) {verb}, {} kept",
        outcome.removed.len(),
        outcome.kept
    );
    Ok(0)
}
