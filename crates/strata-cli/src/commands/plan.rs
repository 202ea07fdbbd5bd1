//! `strata plan`.

use std::io::Write;

use strata::ops::plan::{Location, PlannedImage};

use crate::render::table;

/// Arguments of `strata plan`: those of `strata build` (the ones that change digests, such as
/// `--network`, `--build-arg` or `--dev`, change them here too; the others do nothing).
#[derive(Debug, clap::Args)]
// Its own argument group would take the name of the flattened build arguments' group.
#[group(skip)]
pub struct Args {
    /// The build to plan.
    #[command(flatten)]
    pub build: super::build::Args,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Prints each stage's digest and where the cache has it: IMAGE, STAGE, DIGEST, CACHED
/// (`local`, `repo`, `-` when a build would run it, `skipped` for an empty stage).
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    let prepared = super::build::prepare(&args.build)?;
    let cancel = crate::cancel::on_signals()?;
    let images = strata::ops::plan::plan(ctx, &prepared.options, &cancel)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let json: Vec<_> = images.iter().map(json).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(0);
    }
    let mut rows = Vec::new();
    for image in &images {
        for stage in &image.stages {
            rows.push(vec![
                image.name.clone(),
                stage.name.clone(),
                stage
                    .digest
                    .map_or("(known once its parent is built)".into(), |d| d.short(12)),
                cached(stage.location, stage.skipped).to_string(),
            ]);
        }
    }
    write!(
        out,
        "{}",
        table::render(&["IMAGE", "STAGE", "DIGEST", "CACHED"], &rows)
    )?;
    Ok(0)
}

fn cached(location: Option<Location>, skipped: bool) -> &'static str {
    match (location, skipped) {
        (_, true) => "skipped",
        (Some(Location::Local), _) => "local",
        (Some(Location::Remote), _) => "repo",
        (None, _) => "-",
    }
}

fn json(image: &PlannedImage) -> serde_json::Value {
    serde_json::json!({
        "image": image.name,
        "stages": image.stages.iter().map(|s| serde_json::json!({
            "stage": s.name,
            "digest": s.digest.map(|d| d.hex()),
            "cached": cached(s.location, s.skipped),
            "inputs": s.inputs,
        })).collect::<Vec<_>>(),
    })
}
