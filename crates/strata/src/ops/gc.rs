//! `strata gc` (alias `prune`): removes what no tag and no kept stage needs, and the leftovers
//! of killed builds; run automatically when the store passes a size (BuildKit's gc policy).
//!
//! What stays, always: every tag with its image (manifest, config, layer blobs and their
//! snapshots) and the chain of stage records that built it, and whatever a live strata process
//! holds (the stages a running build reuses, the blobs and snapshots it has just written: see
//! [`strata_store::LocalStore::protect`]). The other stage records — the cache — are kept by
//! policy:
//!
//! | policy | stage records kept (besides tagged chains) |
//! |---|---|
//! | default | all of them: only unreferenced blobs, snapshots and partial writes go |
//! | `--keep-within D` | those built in the last `D` |
//! | `--keep-bytes SIZE` | the newest, while the store's images stay within `SIZE` (see below) |
//! | `--all` | none; kept scratch dirs and `quarantine/` go too |
//!
//! The remembered responses of `ADD <url>` downloads (`downloads/`, one directory per URL,
//! whose time is the last build's use) are cache too, kept by the same policy: all by default
//! and by the automatic run, those used within `D` with `--keep-within D`, none with `--all`.
//!
//! Failure records ([`super::failures`]) are kept by age and count: the newest
//! `--keep-failures N` (default [`DEFAULT_KEEP`](super::failures::DEFAULT_KEEP)) made within
//! `--keep-failures-within D` (default [`DEFAULT_WITHIN`](super::failures::DEFAULT_WITHIN):
//! 7 days); `--all` keeps none. A kept record keeps its image as a tag does.
//!
//! Blobs, snapshots and conversion records go once no kept record or tag names them; a kept
//! layer keeps its conversions (the same layer compressed for a push, an export or `--repo`).
//! Sizes are what the store holds of images: blob bytes, conversions included, and for a plain
//! layer (committed without a blob: its snapshot is its only copy) the size of its tar; a
//! removed stage's snapshots go with it and the report counts them.
//!
//! The automatic run ([`auto`]) happens at the start of every build when those bytes pass
//! [`GcPolicy::max_bytes`] (`--gc-max-bytes`, `STRATA_GC_MAX_BYTES`; default 10% of the store's
//! file system, as BuildKit's default `keepBytes`), and keeps the newest stages within it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use strata_digest::Digest;
use strata_store::{GarbageReport, GcView, Keep, LocalStore, StageRecord};

use crate::Context;
use crate::image::StoredImage;

/// The keep policies of one gc run (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct GcOptions {
    /// Keep the stage records built within this long.
    pub keep_within: Option<Duration>,
    /// Keep the newest stage records while the store's images (blobs and plain layers) stay
    /// within this many bytes.
    pub keep_bytes: Option<u64>,
    /// Keep no stage record but those of tagged images, and no failure record; empty kept
    /// scratch dirs and quarantine.
    pub all: bool,
    /// Keep this many failure records at most (default [`super::failures::DEFAULT_KEEP`]).
    pub keep_failures: Option<usize>,
    /// Keep failure records made within this long (default
    /// [`super::failures::DEFAULT_WITHIN`]).
    pub keep_failures_within: Option<Duration>,
    /// Only report what would go.
    pub dry_run: bool,
}

/// When builds collect garbage by themselves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GcPolicy {
    /// When the store's images (see the module docs) pass 10% of its file system's size.
    #[default]
    Default,
    /// When they pass this many bytes; `0` never.
    MaxBytes(u64),
}

impl GcPolicy {
    /// The limit for a store at `root`; `None` if automatic gc is off.
    pub fn max_bytes(self, store: &LocalStore) -> anyhow::Result<Option<u64>> {
        Ok(match self {
            GcPolicy::MaxBytes(0) => None,
            GcPolicy::MaxBytes(n) => Some(n),
            GcPolicy::Default => {
                let fs = rustix::fs::statvfs(store.root())
                    .map_err(std::io::Error::from)
                    .map_err(|e| {
                        anyhow::anyhow!("statvfs of {} failed: {e}", store.root().display())
                    })?;
                Some(fs.f_blocks.saturating_mul(fs.f_frsize) / 10)
            }
        })
    }
}

/// Runs gc with `options` and returns what went (or would go).
pub fn gc(ctx: &Context, options: &GcOptions) -> anyhow::Result<GarbageReport> {
    let store_options = strata_store::GcOptions {
        kept_scratch: options.all,
        quarantine: options.all,
        dry_run: options.dry_run,
    };
    let now = crate::unix_now();
    Ok(ctx.store.gc(&store_options, &mut |view| {
        keep(&ctx.store, view, options, now)
    })?)
}

/// The automatic run: if the store's images pass the policy's limit, gc keeping the newest stages
/// within it. Returns the limit and what went, if it ran.
pub fn auto(ctx: &Context, policy: GcPolicy) -> anyhow::Result<Option<(u64, GarbageReport)>> {
    let Some(limit) = policy.max_bytes(&ctx.store)? else {
        return Ok(None);
    };
    if ctx.store.stored_bytes()? <= limit {
        return Ok(None);
    }
    let options = GcOptions {
        keep_bytes: Some(limit),
        ..GcOptions::default()
    };
    Ok(Some((limit, gc(ctx, &options)?)))
}

/// What a tag needs and which records the policy keeps.
fn keep(store: &LocalStore, view: &GcView, options: &GcOptions, now: u64) -> Keep {
    let records: BTreeMap<Digest, &StageRecord> = view
        .stages
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .map(|r| (r.digest, r))
        .collect();
    let mut keep = Keep::default();
    let failures_cutoff = now.saturating_sub(
        options
            .keep_failures_within
            .unwrap_or(super::failures::DEFAULT_WITHIN)
            .as_secs(),
    );
    let failures = view
        .failures
        .iter()
        .filter_map(|(_, f)| f.as_ref().ok())
        .filter(|f| !options.all && f.created_millis / 1000 >= failures_cutoff)
        // Listed newest first.
        .take(
            options
                .keep_failures
                .unwrap_or(super::failures::DEFAULT_KEEP),
        );
    for failure in failures {
        keep.failures.insert(failure.id.clone());
        keep_image(store, &failure.manifest, &mut keep);
    }
    for (_, tag) in &view.tags {
        let Ok((_, target)) = tag else { continue };
        keep_image(store, &target.manifest, &mut keep);
        let mut next = target.stage;
        // Bounded, so that a corrupt cycle of parents stays finite.
        for _ in 0..records.len() {
            let Some(record) = next.and_then(|d| records.get(&d)) else {
                break;
            };
            keep.stages.insert(record.digest);
            next = record.parent;
        }
    }
    let cutoff = options.keep_within.map(|d| now.saturating_sub(d.as_secs()));
    let mut cached: Vec<&StageRecord> = records
        .values()
        .filter(|r| !keep.stages.contains(&r.digest))
        .filter(|r| !options.all && cutoff.is_none_or(|c| r.created_unix >= c))
        .copied()
        .collect();
    // Newest first, so that trimming to a size drops the oldest.
    cached.sort_by_key(|r| std::cmp::Reverse(r.created_unix));
    if let Some(limit) = options.keep_bytes {
        while !cached.is_empty() && kept_bytes(view, &keep, &cached) > limit {
            cached.pop();
        }
    }
    keep.stages.extend(cached.iter().map(|r| r.digest));
    // Remembered downloads are cache as stage records are: kept by the same age policy.
    keep.downloads = view
        .downloads
        .iter()
        .filter(|(_, used)| {
            let used = used
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            !options.all && cutoff.is_none_or(|c| used >= c)
        })
        .map(|(name, _)| name.clone())
        .collect();
    keep
}

/// Keeps an image: its manifest, and if it can be read (nothing can use the rest of one that
/// cannot), its config, layer blobs and snapshots.
fn keep_image(store: &LocalStore, manifest: &Digest, keep: &mut Keep) {
    keep.blobs.insert(*manifest);
    if let Ok(image) = StoredImage::load(store, manifest) {
        keep.blobs.insert(image.manifest.config.digest);
        for layer in image.layer_records() {
            keep.blobs.insert(layer.digest);
            keep.snapshots.insert(layer.diff_id);
        }
    }
}

/// Bytes of what `keep` and the records `cached` name: blobs, plain layers (their snapshot is
/// their only copy) and the layers' conversions ([`GcView::bytes`]).
fn kept_bytes(view: &GcView, keep: &Keep, cached: &[&StageRecord]) -> u64 {
    let mut blobs: BTreeSet<&Digest> = keep.blobs.iter().collect();
    let records = view
        .stages
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .filter(|r| keep.stages.contains(&r.digest))
        .chain(cached.iter().copied());
    for r in records {
        blobs.extend([&r.manifest, &r.config]);
        blobs.extend(r.layers.iter().map(|l| &l.digest));
    }
    view.bytes(blobs)
}

/// A size or duration given on the command line that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not a size.
    #[error(
        "invalid size `{0}`: use a number of bytes with an optional unit, e.g. 512MB, 10GiB, 1.5G"
    )]
    Size(String),
    /// Not a duration.
    #[error("invalid duration `{0}`: use a number with a unit (s, m, h, d, w), e.g. 90m, 24h, 7d")]
    Duration(String),
}

/// Parses `512MB`, `10GiB`, `1.5G`, `1000` (bytes). Decimal units (`kB`, `MB`, `GB`, `TB`)
/// are powers of 1000, binary ones (`KiB`, `MiB`, ...) and bare letters (`K`, `M`, `G`, `T`)
/// powers of 1024, as docker's `--memory`.
pub fn parse_size(text: &str) -> Result<u64, Error> {
    let bad = || Error::Size(text.to_string());
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = number * factor;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// Parses `90s`, `30m`, `24h`, `7d`, `2w`, or several together (`1h30m`).
pub fn parse_duration(text: &str) -> Result<Duration, Error> {
    let bad = || Error::Duration(text.to_string());
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut secs: u64 = 0;
    while !rest.is_empty() {
        let split = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (number, tail) = rest.split_at(split);
        let number: u64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let factor = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86400,
            "w" => 7 * 86400,
            _ => return Err(bad()),
        };
        secs = number
            .checked_mul(factor)
            .and_then(|s| secs.checked_add(s))
            .ok_or_else(bad)?;
        rest = tail;
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("512MB").unwrap(), 512_000_000);
        assert_eq!(parse_size("10GiB").unwrap(), 10 << 30);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        for bad in ["", "MB", "1.2.3G", "10 parsecs", "-1"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("7d").unwrap().as_secs(), 604_800);
        for bad in ["", "7", "d", "3y", "1h30"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
