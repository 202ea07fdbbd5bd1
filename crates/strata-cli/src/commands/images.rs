//! `strata images`.

use std::io::Write;

use strata::ops::images::images;

use crate::render::{age, size};

/// Arguments of `strata images`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Prints images and their stages: name, stage, digest, size, age.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    let rows = images(ctx)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let json: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.name, "manifest": r.manifest.to_string(), "size": r.size, "broken": r.broken,
                    "stages": r.stages.iter().map(|s| serde_json::json!({
                        "stage": s.stage, "digest": s.digest.hex(), "layerBytes": s.layer_bytes, "created": s.created_unix,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(0);
    }
    writeln!(
        out,
        "{:<32} {:<20} {:<14} {:>10} {:>8}",
        "IMAGE", "STAGE", "DIGEST", "SIZE", "AGE"
    )?;
    for row in rows {
        if let Some(reason) = &row.broken {
            writeln!(
                out,
                "{:<32} {:<20} {:<14} {:>10} {:>8}  broken: {reason} (remove it with `strata rmi {}`)",
                row.name,
                "",
                row.manifest.short(12),
                "-",
                age(row.updated_unix),
                row.name
            )?;
            continue;
        }
        writeln!(
            out,
            "{:<32} {:<20} {:<14} {:>10} {:>8}",
            row.name,
            "",
            row.manifest.short(12),
            size(row.size),
            age(row.updated_unix)
        )?;
        for s in row.stages {
            writeln!(
                out,
                "{:<32} {:<20} {:<14} {:>10} {:>8}",
                "",
                s.stage,
                s.digest.short(12),
                size(s.layer_bytes),
                age(s.created_unix)
            )?;
        }
    }
    Ok(0)
}
