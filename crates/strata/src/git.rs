//! Git content in build containers.
//!
//! Git work runs inside the stage's own container, before the step's commands and with the
//! toolbox's tools, so it lands in the same layer as werf's git stages and patches do:
//! - an archive (`gitArchive`) is a tarball of the mapping at its commit, unpacked at `to`;
//! - a patch (start of a rebuilt user stage, `gitCache`, `gitLatestPatch`) removes the files
//!   the change deleted and unpacks a tarball of those it added or changed. Before that, every
//!   file the change touches must still be as the recorded commit had it: a user command that
//!   changed one is an error naming the file.
//!
//! Each stage records, per mapping, the commit its files are at (`git[N].commit` in the stage
//! record's metadata), inherited from its parent unless it applied an archive or a patch.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use strata_git::{ChangeKind, ChangeSet, ObjectId, Owner, PathFilter, Repository, Source};
use strata_plan::GitMapping;

use crate::files::FileWork;

/// Patches of this size or more go into `gitCache` (werf's threshold).
pub const GIT_CACHE_THRESHOLD: u64 = 1 << 20;

/// The metadata key of the commit mapping `index` is at.
pub fn commit_key(index: usize) -> String {
    format!("git[{index}].commit")
}

/// The git commits recorded in a stage's metadata.
pub fn recorded_commits(meta: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    meta.iter()
        .filter(|(k, _)| k.starts_with("git["))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn open(mapping: &GitMapping) -> anyhow::Result<Repository> {
    Repository::discover(&mapping.repo)
        .with_context(|| format!("open git repository {}", mapping.repo.display()))
}

fn commit(repo: &Repository, hex: &str) -> anyhow::Result<ObjectId> {
    let id = ObjectId::from_hex(hex.as_bytes())
        .with_context(|| format!("`{hex}` is not a commit id"))?;
    repo.resolve(&strata_git::Rev::Commit(id.to_string()))
        .with_context(|| format!("commit {hex} is not in {}", repo.name()))
}

fn filter(mapping: &GitMapping) -> anyhow::Result<PathFilter> {
    Ok(PathFilter::new(
        &mapping.add,
        &mapping.include,
        &mapping.exclude,
    )?)
}

/// The change of a mapping from the commit `from` to the mapping's commit.
pub fn change_set(mapping: &GitMapping, from: &str) -> anyhow::Result<ChangeSet> {
    let repo = open(mapping)?;
    let old = repo.snapshot(Source::Commit(commit(&repo, from)?))?;
    let new = repo.snapshot(Source::Commit(commit(&repo, &mapping.commit)?))?;
    Ok(strata_git::changes(&old, &new, &filter(mapping)?)?)
}

/// The size of the patch werf writes for `changes` of `mapping` since commit `from`, its
/// gitCache measure (`GitMapping.PatchSize`, `true_git.writePatch`): the `git diff` of the
/// mapping's directory with the whole file as context, full index and binary deltas, of the
/// files the mapping takes, as werf's diff parser rewrites it (paths relative to `add`, index
/// hashes cut to 8 characters, submodule lines left out).
pub fn werf_patch_size(
    mapping: &GitMapping,
    from: &str,
    changes: &ChangeSet,
) -> anyhow::Result<u64> {
    if changes.is_empty() {
        return Ok(0);
    }
    let scope = mapping.add.trim_matches('/');
    let mut command = std::process::Command::new("git");
    command.args([
        "-c",
        "diff.renames=false",
        "-c",
        "core.quotePath=false",
        "-c",
        "diff.context=999999999",
        "-C",
    ]);
    command.arg(&mapping.repo).args([
        "diff",
        "--full-index",
        "--submodule=log",
        "--binary",
        from,
        &mapping.commit,
    ]);
    if !scope.is_empty() {
        command.args(["--", &format!(":(literal){scope}")]);
    }
    // Streamed, line by line: a patch of a large change is never held in memory.
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("run git diff to measure the patch")?;
    let stdout = child.stdout.take().expect("stdout is piped");
    // Each changed file by its repository path, with its path in the patch.
    let single = changes.changes.iter().all(|c| c.path.is_empty());
    let renamed = mapping.to.rsplit('/').next().unwrap_or_default();
    let wanted: BTreeMap<&str, &str> = changes
        .changes
        .iter()
        .map(|c| {
            let path = if single { renamed } else { c.path.as_str() };
            (c.repo_path.as_str(), path)
        })
        .collect();
    let mut size = 0u64;
    // The path of the file whose diff is being read, when the mapping takes it, and whether
    // its header (before the content) is still being read.
    let mut current: Option<&str> = None;
    let mut header = false;
    let mut reader = std::io::BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_until(&mut reader, b'\n', &mut line)
            .context("read git diff's output")?;
        if n == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let text = String::from_utf8_lossy(&line);
        if let Some(rest) = text.strip_prefix("diff --git ") {
            current = diff_path(rest).and_then(|p| wanted.get(p.as_str()).copied());
            header = true;
            if let Some(path) = current {
                size += format!("diff --git a/{path} b/{path}\n").len() as u64;
            }
            continue;
        }
        let Some(path) = current else { continue };
        if text.starts_with("Submodule ") {
            current = None;
            continue;
        }
        let written = match &*text {
            t if header && t.starts_with("index ") => index_line(t),
            t if header && t.starts_with("--- a/") => format!("--- a/{path}"),
            t if header && t.starts_with("+++ b/") => format!("+++ b/{path}"),
            t => {
                if t.starts_with("@@")
                    || t.starts_with("GIT binary patch")
                    || t.starts_with("Binary files")
                {
                    header = false;
                }
                t.to_string()
            }
        };
        size += written.len() as u64 + 1;
    }
    let out = child
        .wait_with_output()
        .context("wait for git diff measuring the patch")?;
    if !out.status.success() {
        bail!(
            "git diff {from}..{} in {}: {}",
            mapping.commit,
            mapping.repo.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(size)
}

/// The repository path of a `diff --git a/P b/P` header's rest (git quotes paths with
/// special characters: `"a/P" "b/P"`, C escapes).
fn diff_path(rest: &str) -> Option<String> {
    let quoted = rest.starts_with('"');
    let half = (rest.len() - 1) / 2;
    let a = &rest[..half];
    let path = match quoted {
        true => a.strip_prefix("\"a/")?.strip_suffix('"')?,
        false => a.strip_prefix("a/")?,
    };
    if !quoted {
        return Some(path.to_string());
    }
    let mut out = String::new();
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => break,
        }
    }
    Some(out)
}

/// werf's `index` line: each hash cut to 8 characters.
fn index_line(line: &str) -> String {
    let mut parts = line.splitn(3, ' ');
    let (prefix, hashes, suffix) = (parts.next(), parts.next(), parts.next());
    let (Some(prefix), Some(hashes)) = (prefix, hashes) else {
        return line.to_string();
    };
    let Some((left, right)) = hashes.split_once("..") else {
        return line.to_string();
    };
    let cut = |side: &str| {
        side.split(',')
            .map(|h| &h[..h.len().min(8)])
            .collect::<Vec<_>>()
            .join(",")
    };
    match suffix {
        Some(suffix) => format!("{prefix} {}..{} {suffix}", cut(left), cut(right)),
        None => format!("{prefix} {}..{}", cut(left), cut(right)),
    }
}

/// Writes the archive of `mapping` into `dir` as `name` and returns the work that unpacks it.
pub fn archive(
    mapping: &GitMapping,
    lowers: &[PathBuf],
    dir: &Path,
    name: &str,
) -> anyhow::Result<FileWork> {
    let repo = open(mapping)?;
    let snapshot = repo.snapshot(Source::Commit(commit(&repo, &mapping.commit)?))?;
    let path = dir.join(name);
    let mut out =
        BufWriter::new(File::create(&path).with_context(|| format!("create {}", path.display()))?);
    snapshot.write_archive(
        &filter(mapping)?,
        &mapping.to,
        owner(mapping, lowers)?,
        &mut out,
    )?;
    out.into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("write {}", path.display()))?;
    Ok(FileWork::Unpack(name.to_string()))
}

/// A copy of `mapping`'s files at its commit, laid out as the image would get them (under its
/// `to`, owned by root), made in `dir` (which must not exist) for the debugger to show
/// beside a failed git step. The tar is unpacked like a layer, into an empty dir.
pub fn source_view(mapping: &GitMapping, dir: &Path) -> anyhow::Result<PathBuf> {
    let repo = open(mapping)?;
    let snapshot = repo.snapshot(Source::Commit(commit(&repo, &mapping.commit)?))?;
    let tar = dir.with_extension("tar");
    let mut out =
        BufWriter::new(File::create(&tar).with_context(|| format!("create {}", tar.display()))?);
    snapshot.write_archive(&filter(mapping)?, &mapping.to, Owner::default(), &mut out)?;
    out.into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("write {}", tar.display()))?;
    std::fs::create_dir(dir).with_context(|| format!("create {}", dir.display()))?;
    let file = File::open(&tar).with_context(|| format!("open {}", tar.display()))?;
    strata_layer::apply::apply_tar(file, dir, strata_layer::apply::Mode::Layer)
        .with_context(|| format!("unpack the mapping's files into {}", dir.display()))?;
    std::fs::remove_file(&tar).with_context(|| format!("remove {}", tar.display()))?;
    Ok(dir.to_path_buf())
}

/// Writes what it takes to bring `mapping` from commit `from` to its commit into `dir` and
/// returns the work that applies it; empty when nothing changed.
pub fn patch(
    mapping: &GitMapping,
    from: &str,
    lowers: &[PathBuf],
    dir: &Path,
    name: &str,
) -> anyhow::Result<Vec<FileWork>> {
    let repo = open(mapping)?;
    let old = repo.snapshot(Source::Commit(commit(&repo, from)?))?;
    let new = repo.snapshot(Source::Commit(commit(&repo, &mapping.commit)?))?;
    let filter = filter(mapping)?;
    let changes = strata_git::changes(&old, &new, &filter)?;
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let new_files = new.files(&filter)?;
    let image_path = |rel: &str| {
        let to = mapping.to.trim_end_matches('/');
        if rel.is_empty() {
            to.to_string()
        } else {
            format!("{to}/{rel}")
        }
    };
    // Every file the change touches must still be as the recorded commit left it.
    for change in &changes.changes {
        let Some(old) = &change.old else { continue };
        let at = image_path(&old.path);
        let found = strata_layer::merged::lookup(lowers, &at)?;
        let same = match &found {
            Some(p) => repo.hash_path(p)? == old.oid,
            None => false,
        };
        if !same {
            bail!(
                "cannot apply the git change of {} to {} (commit {} → {}): `{at}` was {} by a user stage since \
                 commit {}; change the stage so it leaves git files alone, or bump its cacheVersion",
                mapping.url.as_deref().unwrap_or("the local repository"),
                mapping.to,
                &from[..from.len().min(12)],
                &mapping.commit[..mapping.commit.len().min(12)],
                if found.is_some() {
                    "modified"
                } else {
                    "deleted"
                },
                &from[..from.len().min(12)],
            );
        }
    }
    let mut work = Vec::new();
    let deleted: Vec<String> = changes
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Deleted)
        .filter_map(|c| c.old.as_ref().map(|o| image_path(&o.path)))
        .collect();
    if !deleted.is_empty() {
        work.push(FileWork::Remove(deleted));
        // A directory whose last file the change deleted goes too, as with werf's patches
        // (git has no empty directories); one that still holds a file of the commit stays.
        let kept: std::collections::HashSet<&str> =
            new_files.iter().flat_map(|f| parents(&f.path)).collect();
        let emptied: std::collections::BTreeSet<String> = changes
            .changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Deleted)
            .filter_map(|c| c.old.as_ref())
            .flat_map(|o| parents(&o.path))
            .filter(|dir| !kept.contains(dir))
            .map(image_path)
            .collect();
        if !emptied.is_empty() {
            work.push(FileWork::RemoveEmptyDirs(emptied.into_iter().collect()));
        }
    }
    let added: Vec<_> = changes
        .changes
        .iter()
        .filter_map(|c| c.new.clone())
        .collect();
    if !added.is_empty() {
        let path = dir.join(name);
        let mut out = BufWriter::new(
            File::create(&path).with_context(|| format!("create {}", path.display()))?,
        );
        new.write_entries(&added, &mapping.to, owner(mapping, lowers)?, &mut out)?;
        out.into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("write {}", path.display()))?;
        work.push(FileWork::Unpack(name.to_string()));
    }
    Ok(work)
}

/// The directories above a `/`-separated relative path, nearest first (`a/b/c` → `a/b`, `a`).
fn parents(path: &str) -> impl Iterator<Item = &str> {
    let mut rest = path;
    std::iter::from_fn(move || {
        let (parent, _) = rest.rsplit_once('/')?;
        rest = parent;
        Some(parent)
    })
}

fn owner(mapping: &GitMapping, lowers: &[PathBuf]) -> anyhow::Result<Owner> {
    crate::owner::resolve(
        lowers,
        mapping.owner.as_deref(),
        mapping.group.as_deref(),
        "git mapping",
    )
}
