//! `strata store check [--repair]`.

use std::io::Write;

use strata::ops::check::check;

use crate::render::size;

/// Arguments of `strata store`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do with the store.
    #[command(subcommand)]
    pub action: Action,
}

/// `strata store` actions.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Verify every blob (its sha256), stage record, tag, failure record and snapshot; exit 1 if
    /// any is bad.
    Check {
        /// Move each bad entry into the store's `quarantine/`, where nothing uses it; a build
        /// then rebuilds the stages it held.
        #[arg(long)]
        repair: bool,
    },
}

/// Prints one line per bad entry and a summary; exit 1 when something bad stays in place.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    let Action::Check { repair } = args.action;
    let checked = check(ctx, repair)?;
    let report = &checked.report;
    let mut out = std::io::stdout().lock();
    for p in &report.problems {
        write!(out, "bad {} {}: {}", p.kind, p.path.display(), p.detail)?;
        match &p.quarantined {
            Some(to) => writeln!(out, "; quarantined to {}", to.display())?,
            None => writeln!(out)?,
        }
    }
    writeln!(
        out,
        "checked {} blobs ({}), {} stage records, {} tags, {} conversions, {} failure records, \
         {} snapshots: {}",
        report.blobs,
        size(report.blob_bytes),
        report.stages,
        report.tags,
        report.conversions,
        report.failures,
        checked.snapshots,
        match report.problems.len() {
            0 => "all good".to_string(),
            n if repair => format!("{n} bad, quarantined"),
            n => format!("{n} bad (`strata store check --repair` moves them aside)"),
        }
    )?;
    Ok(i32::from(!repair && !report.problems.is_empty()))
}
