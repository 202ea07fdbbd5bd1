//! `strata images`.

use std::io::Write;

use strata::ops::images::{ImageRow, images, split_tag};

use crate::render::{age, ago, docker_size, size, table};

/// Arguments of `strata images`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only the images of this repository (`busybox`), or this one tag (`busybox:1.36`).
    pub name: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Print only the image ids, as `docker images -q`.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Show full image ids.
    #[arg(long)]
    pub no_trunc: bool,
    /// List each image's stages under it: name, digest, layer size, age.
    #[arg(long)]
    pub stages: bool,
}

/// Prints the images as `docker images` does — REPOSITORY, TAG, IMAGE ID (the config
/// digest), CREATED, SIZE (unpacked) — plus COMPRESSED, what its layers weigh in the store
/// and in a registry.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    let rows = images(ctx, args.name.as_deref())?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let json: Vec<_> = rows.iter().map(json).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(0);
    }
    let id = |row: &ImageRow| match (&row.id, args.no_trunc) {
        (Some(id), true) => id.to_string(),
        (Some(id), false) => id.short(12),
        (None, _) => "<broken>".to_string(),
    };
    if args.quiet {
        for row in &rows {
            writeln!(out, "{}", id(row))?;
        }
        return Ok(0);
    }
    let mut lines = Vec::new();
    for row in &rows {
        let (repository, tag) = split_tag(&row.name);
        let mut line = vec![
            repository.to_string(),
            tag.unwrap_or("<none>").to_string(),
            id(row),
        ];
        match &row.broken {
            Some(reason) => line.extend([
                "-".into(),
                "-".into(),
                format!(
                    "-   broken: {reason} (remove it with `strata rmi {}`)",
                    row.name
                ),
            ]),
            None => line.extend([
                row.created_unix.map_or("N/A".into(), ago),
                docker_size(row.unpacked_size),
                docker_size(row.size),
            ]),
        }
        lines.push(line);
        if !args.stages {
            continue;
        }
        for s in &row.stages {
            lines.push(vec![
                format!("  {}", s.stage),
                String::new(),
                s.digest.short(12),
                format!("{} ago", age(s.created_unix)),
                String::new(),
                size(s.layer_bytes),
            ]);
        }
        if let Some(reason) = &row.stages_broken {
            lines.push(vec![format!("  (stages after this unreadable: {reason})")]);
        }
    }
    let header = [
        "REPOSITORY",
        "TAG",
        "IMAGE ID",
        "CREATED",
        "SIZE",
        "COMPRESSED",
    ];
    write!(out, "{}", table::render(&header, &lines))?;
    Ok(0)
}

fn json(r: &ImageRow) -> serde_json::Value {
    serde_json::json!({
        "name": r.name,
        "id": r.id.map(|d| d.to_string()),
        "manifest": r.manifest.to_string(),
        "size": r.size,
        "unpackedSize": r.unpacked_size,
        "created": r.created_unix,
        "broken": r.broken,
        "stagesBroken": r.stages_broken,
        "stages": r.stages.iter().map(|s| serde_json::json!({
            "stage": s.stage, "digest": s.digest.hex(), "layerBytes": s.layer_bytes, "created": s.created_unix,
        })).collect::<Vec<_>>(),
    })
}
