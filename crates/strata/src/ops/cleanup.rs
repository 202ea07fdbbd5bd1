//! `strata cleanup --repo REPO`: removes the stages of the project's images from a stage
//! repository by werf's keep policies (`cleanup.keepPolicies` of werf.yaml, werf's default
//! policies when none are written).
//!
//! An image version is the last stage of an image (a stage of that image that no other stage
//! of it has as parent), and it belongs to the git commits recorded in its stage record (the
//! commits its git mappings were taken from). For each policy, the matching branches or tags
//! are narrowed by `references.limit` (by the time of their tip, or of the tag), each one's
//! history is walked from its tip, newest commit first, and per image the first versions met
//! are kept as `imagesPerReference` says (`in` is the age of the version's commit). Kept as
//! well: versions with no recorded commit (nothing to judge them by), stages built within
//! the last `keepImagesBuiltWithinLastNHours` (2 by default, as werf), and every parent of a
//! kept stage. Everything else of the config's images goes; stages of other images (other
//! projects sharing the repository) are not touched. werf also keeps what Kubernetes runs:
//! strata looks at no cluster.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use strata_digest::Digest;
use strata_frontend::stapel::{self, Cleanup, KeepPolicy, RefKind};
use strata_registry::stages::{RemoteStage, StageRepo};

/// What to clean.
#[derive(Clone, Debug)]
pub struct Options {
    /// The project directory (its werf.yaml and git repository).
    pub dir: PathBuf,
    /// The stage repository (`--repo`).
    pub repo: String,
    /// List what would go without deleting it.
    pub dry_run: bool,
}

/// One stage removed (or that would be, in a dry run).
#[derive(Clone, Debug)]
pub struct Removed {
    /// Its tag in the repository.
    pub tag: String,
    /// The image and stage that built it.
    pub image: String,
    /// The stage's name.
    pub stage: String,
    /// Whether the registry deleted it (false in a dry run, or when it refused).
    pub deleted: bool,
}

/// What a cleanup did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The stages removed, oldest first.
    pub removed: Vec<Removed>,
    /// How many stages of the config's images were kept.
    pub kept: usize,
}

/// Applies the keep policies of the config in `options.dir` to `options.repo`.
///
/// # Errors
/// A config that does not render or parse, a repository that cannot be listed, a git history
/// that cannot be read, a delete the registry fails.
pub fn cleanup(ctx: &crate::Context, options: &Options) -> anyhow::Result<Outcome> {
    let text = strata_frontend::render_config(&options.dir, &Default::default())
        .map_err(|e| anyhow::anyhow!(crate::error_line(&e.into())))?;
    let config = stapel::parse(strata_plan::FileId(0), &text)
        .map_err(|d| anyhow::anyhow!("the config in {}: {}", options.dir.display(), d.message))?;
    let images: BTreeSet<String> = config.images.iter().map(|i| i.name.to_string()).collect();
    let policy = config.cleanup.clone().unwrap_or_default();
    let reference = options
        .repo
        .parse()
        .with_context(|| format!("`{}` is not a repository reference", options.repo))?;
    let repo = StageRepo::new(ctx.registry_client()?, &reference);
    let stages: Vec<RemoteStage> = repo
        .list()?
        .into_iter()
        .filter(|s| images.contains(&s.record.image))
        .collect();
    let keep = kept(&options.dir, &policy, &stages, crate::unix_now())?;
    let mut outcome = Outcome::default();
    for stage in &stages {
        if keep.contains(&stage.record.digest) {
            outcome.kept += 1;
            continue;
        }
        let deleted = !options.dry_run
            && repo
                .delete(stage)
                .with_context(|| format!("delete stage {}", stage.tag))?;
        outcome.removed.push(Removed {
            tag: stage.tag.clone(),
            image: stage.record.image.clone(),
            stage: stage.record.stage.clone(),
            deleted,
        });
    }
    Ok(outcome)
}

/// The stage digests to keep.
fn kept(
    dir: &std::path::Path,
    policy: &Cleanup,
    stages: &[RemoteStage],
    now: u64,
) -> anyhow::Result<BTreeSet<Digest>> {
    let parents: BTreeSet<(&str, Digest)> = stages
        .iter()
        .filter_map(|s| Some((s.record.image.as_str(), s.record.parent?)))
        .collect();
    let versions: Vec<&RemoteStage> = stages
        .iter()
        .filter(|s| !parents.contains(&(s.record.image.as_str(), s.record.digest)))
        .collect();
    let mut keep = BTreeSet::new();
    if !policy.disable_built_within {
        let hours = policy.keep_built_within_hours.unwrap_or(2);
        keep.extend(
            stages
                .iter()
                .filter(|s| now.saturating_sub(s.record.created_unix) <= hours * 3600)
                .map(|s| s.record.digest),
        );
    }
    // commit → versions recorded for it.
    let mut by_commit: HashMap<String, Vec<&RemoteStage>> = HashMap::new();
    for v in &versions {
        let commits = crate::git::recorded_commits(&v.record.meta);
        if commits.is_empty() || policy.disable_git_history {
            keep.insert(v.record.digest);
        }
        for commit in commits.into_values() {
            by_commit.entry(commit).or_default().push(v);
        }
    }
    if !policy.disable_git_history && !by_commit.is_empty() {
        let git = strata_git::Repository::discover(dir)?;
        let references = git.cleanup_references()?;
        let policies = policy
            .keep_policies
            .clone()
            .unwrap_or_else(stapel::default_policies);
        for p in &policies {
            for tip in selected(p, &references, now) {
                // image → versions met so far along this reference's history.
                let mut met: BTreeMap<&str, usize> = BTreeMap::new();
                for (commit, time) in git.history(&tip)? {
                    let Some(found) = by_commit.get(&commit.to_string()) else {
                        continue;
                    };
                    let age = age(now, time);
                    for v in found {
                        let rank = met.entry(v.record.image.as_str()).or_default();
                        if p.images_per_reference.keeps(*rank, age) {
                            keep.insert(v.record.digest);
                        }
                        *rank += 1;
                    }
                }
            }
        }
    }
    // Every parent of a kept stage is needed to rebuild on top of it.
    let by_digest: HashMap<Digest, &RemoteStage> =
        stages.iter().map(|s| (s.record.digest, s)).collect();
    let mut todo: Vec<Digest> = keep.iter().copied().collect();
    while let Some(d) = todo.pop() {
        if let Some(parent) = by_digest.get(&d).and_then(|s| s.record.parent)
            && keep.insert(parent)
        {
            todo.push(parent);
        }
    }
    Ok(keep)
}

/// The tips of the references a policy selects.
fn selected(
    policy: &KeepPolicy,
    references: &[strata_git::GitReference],
    now: u64,
) -> Vec<strata_git::ObjectId> {
    let refs = &policy.references;
    let mut matching: Vec<&strata_git::GitReference> = references
        .iter()
        .filter(|r| r.tag == (refs.kind == RefKind::Tag) && refs.names.matches(&r.name))
        .collect();
    matching.sort_by_key(|r| std::cmp::Reverse(r.time_unix));
    matching
        .iter()
        .enumerate()
        .filter(|(rank, r)| refs.limit.keeps(*rank, age(now, r.time_unix)))
        .map(|(_, r)| r.commit)
        .collect()
}

fn age(now: u64, then: i64) -> Duration {
    Duration::from_secs(now.saturating_sub(u64::try_from(then).unwrap_or(0)))
}
