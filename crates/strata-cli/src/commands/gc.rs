//! `strata gc` (alias `prune`).

use std::io::Write;
use std::time::Duration;

use strata::ops::gc::{GcOptions, gc, parse_duration, parse_size};

use crate::render::size;

/// Arguments of `strata gc`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep the cached stages built within this long (e.g. 24h, 7d); older untagged ones go.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub keep_within: Option<Duration>,
    /// Keep the newest cached stages while the store's blobs stay within SIZE (e.g. 10GB).
    #[arg(long, value_name = "SIZE", value_parser = bytes)]
    pub keep_bytes: Option<u64>,
    /// Keep no stage but those of tagged images, and no failure record; also empty kept debug
    /// dirs and quarantine.
    #[arg(long)]
    pub all: bool,
    /// Keep the newest N failure records (`strata failures`) [default: 10].
    #[arg(long, value_name = "N")]
    pub keep_failures: Option<usize>,
    /// Keep failure records made within this long (e.g. 24h, 7d) [default: 7d].
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub keep_failures_within: Option<Duration>,
    /// List what would go and how much space it would free, removing nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

/// Parses a size argument (also used by the global `--gc-max-bytes`).
pub fn bytes(text: &str) -> Result<u64, String> {
    parse_size(text).map_err(|e| e.to_string())
}

/// Prints each entry removed (or that would be) and the space freed.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    let options = GcOptions {
        keep_within: args.keep_within,
        keep_bytes: args.keep_bytes,
        all: args.all,
        dry_run: args.dry_run,
        keep_failures: args.keep_failures,
        keep_failures_within: args.keep_failures_within,
    };
    let report = gc(ctx, &options)?;
    let mut out = std::io::stdout().lock();
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for r in &report.removed {
        writeln!(
            out,
            "{verb} {:<11} {:>10}  {}",
            r.kind,
            size(r.bytes),
            r.path.display()
        )?;
    }
    let freed = if args.dry_run { "would free" } else { "freed" };
    writeln!(
        out,
        "{} entries, {freed} {}",
        report.removed.len(),
        size(report.bytes)
    )?;
    Ok(0)
}
