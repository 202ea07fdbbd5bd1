//! Pass 2b: the git mappings of a config, resolved against real repositories.
//!
//! Every mapping is pinned to one commit here, so the plan says exactly what to build: HEAD of
//! the repository holding the config, a remote's branch, tag or commit, or with `--dev` a
//! commit strata makes of the work tree (uncommitted and untracked, not ignored, files
//! included; kept reachable by `refs/strata/dev`). Each mapping's tree is read once and its
//! listing kept, so the stage checksums cost no further reads.

use std::path::{Path, PathBuf};
use std::process::Command;

use strata_git::{FileEntry, MaskList, MaskSet, ObjectId, PathFilter, Repository, Rev, Source};
use strata_plan::{Diagnostic, DigestInput, GitMapping, MASK_FILES_RECORDED, MaskFiles, Span};

use super::config::{BasicAuthConfig, Config, GitConfig, GitRef, Spanned};

type Result<T> = std::result::Result<T, Box<Diagnostic>>;

/// How git content is chosen.
#[derive(Clone, Debug, Default)]
pub struct GitOptions {
    /// Build the work tree as it is (`--dev`) instead of HEAD.
    pub dev: bool,
    /// Where clones of remote repositories are kept.
    pub cache: Option<PathBuf>,
    /// Skip looking for uncommitted changes to report (a clean CI checkout has none; the scan
    /// stats every file of the mapping).
    pub no_dirty_check: bool,
    /// The images the build asks for (`strata build IMAGE...`; empty: all). Mappings of
    /// images neither they nor their bases and imports need are not resolved: a build of one
    /// image clones no remote repository another image maps.
    pub images: Vec<String>,
}

/// Which images of `config` a build of `wanted` (empty: all) needs: them, and transitively
/// the images they are based on, import from or depend on.
fn needed(config: &Config, wanted: &[String]) -> Vec<bool> {
    use super::config::From;
    let index = |name: &str| config.images.iter().position(|i| i.name.matches(name));
    let mut needed = vec![wanted.is_empty(); config.images.len()];
    let mut todo: Vec<usize> = wanted.iter().filter_map(|w| index(w)).collect();
    while let Some(i) = todo.pop() {
        if std::mem::replace(&mut needed[i], true) {
            continue;
        }
        let image = &config.images[i];
        let base = match &image.from.value {
            From::Image(n) | From::Reference(n) => Some(n.as_str()),
            From::Scratch => None,
        };
        let names = base
            .into_iter()
            .chain(image.imports.iter().map(|m| m.image.value.as_str()))
            .chain(image.dependencies.iter().map(|d| d.image.value.as_str()));
        todo.extend(names.filter_map(index).filter(|&j| j != i));
    }
    // An unknown name is the caller's error to report; resolve everything meanwhile.
    if needed.iter().all(|n| !n) {
        needed.fill(true);
    }
    needed
}

/// One mapping, pinned, with its file listing.
pub(crate) struct Resolved {
    pub mapping: GitMapping,
    pub files: Vec<FileEntry>,
}

/// What resolution found out about the whole config.
#[derive(Default)]
pub(crate) struct GitState {
    /// Per image, per mapping.
    pub images: Vec<Vec<Resolved>>,
    /// `WERF_COMMIT_*` and `STRATA_COMMIT_*` for every build container, when the config is in
    /// a repository.
    pub service_env: Vec<(String, String)>,
    /// Things the user should know (uncommitted changes left out of the build).
    pub notes: Vec<String>,
}

/// Resolves every mapping of `config`, whose directory is `dir`.
pub(crate) fn resolve(config: &Config, dir: &Path, options: &GitOptions) -> Result<GitState> {
    let local = Repository::discover(dir).ok();
    let mut state = GitState::default();
    let head = match &local {
        Some(repo) => repo.resolve(&Rev::Head).ok(),
        None => None,
    };
    if let (Some(repo), Some(head)) = (&local, &head)
        && let Ok(info) = repo.commit_info(head)
    {
        for prefix in ["WERF", "STRATA"] {
            state
                .service_env
                .push((format!("{prefix}_COMMIT_HASH"), info.hash.clone()));
            state.service_env.push((
                format!("{prefix}_COMMIT_TIME_HUMAN"),
                info.time_human.clone(),
            ));
            state.service_env.push((
                format!("{prefix}_COMMIT_TIME_UNIX"),
                info.time_unix.to_string(),
            ));
        }
    }
    let mut dev_commit: Option<ObjectId> = None;
    // Dirty checks run on their own threads while this one reads the trees.
    let mut dirty_checks = Vec::new();
    let needed = needed(config, &options.images);
    for (image, needed) in config.images.iter().zip(needed) {
        check_overlaps(&image.git)?;
        let mut resolved = Vec::new();
        for git in image.git.iter().filter(|_| needed) {
            let filter = filter(git)?;
            for (_, masks) in &git.stage_dependencies {
                mask_set(masks, MaskList::Masks)?;
            }
            let (repo, commit) = match &git.url {
                None => {
                    let repo = local.as_ref().ok_or_else(|| {
                        Box::new(
                            Diagnostic::new(
                                format!("this git mapping uses the repository holding the config, but {} is not in a git repository", dir.display()),
                                Some(git.span),
                            )
                            .help("run `git init` and commit, or give the mapping a `url:`"),
                        )
                    })?;
                    let commit = if options.dev {
                        match dev_commit {
                            Some(c) => c,
                            None => {
                                let c = worktree_commit(repo, git.span)?;
                                dev_commit = Some(c);
                                c
                            }
                        }
                    } else {
                        let head = head.ok_or_else(|| {
                            Box::new(
                                Diagnostic::new(
                                    "the repository holding the config has no commits yet",
                                    Some(git.span),
                                )
                                .help("commit your files, or build with `--dev`"),
                            )
                        })?;
                        if !options.no_dirty_check {
                            let check = repo.dirty_check(&filter).map_err(|e| at(git.span, e))?;
                            let to = git.to.value.clone();
                            dirty_checks.push((
                                git.span,
                                to,
                                std::thread::spawn(move || check.run()),
                            ));
                        }
                        head
                    };
                    (repo_path(repo), commit)
                }
                Some(url) => {
                    let cache = options
                        .cache
                        .clone()
                        .unwrap_or_else(|| std::env::temp_dir().join("strata-git"));
                    let auth = match &git.basic_auth {
                        Some(auth) => Some(credentials(auth, dir)?),
                        None => None,
                    };
                    let repo = Repository::open_remote(&url.value, &cache, auth.as_ref())
                        .map_err(|e| at(url.span, e))?;
                    let rev = match &git.git_ref {
                        Some((GitRef::Branch, b)) => Rev::Branch(b.value.clone()),
                        Some((GitRef::Tag, t)) => Rev::Tag(t.value.clone()),
                        Some((GitRef::Commit, c)) => Rev::Commit(c.value.clone()),
                        None => Rev::Head,
                    };
                    let span = git.git_ref.as_ref().map_or(url.span, |(_, r)| r.span);
                    let commit = repo.resolve(&rev).map_err(|e| at(span, e))?;
                    (strata_git::remote::cache_path(&url.value, &cache), commit)
                }
            };
            let opened = Repository::discover(&repo).map_err(|e| at(git.span, e))?;
            let snapshot = opened
                .snapshot(Source::Commit(commit))
                .map_err(|e| at(git.span, e))?;
            let files = snapshot.files(&filter).map_err(|e| at(git.span, e))?;
            resolved.push(Resolved {
                mapping: GitMapping {
                    repo,
                    url: git.url.as_ref().map(|u| u.value.clone()),
                    commit: commit.to_string(),
                    add: add(git).to_string(),
                    to: git.to.value.clone(),
                    include: values(&git.include_paths),
                    exclude: values(&git.exclude_paths),
                    owner: git.owner.as_ref().map(|o| o.value.clone()),
                    group: git.group.as_ref().map(|g| g.value.clone()),
                    span: Some(git.span),
                },
                files,
            });
        }
        state.images.push(resolved);
    }
    for (span, to, check) in dirty_checks {
        let dirty = check
            .join()
            .map_err(|_| {
                Box::new(Diagnostic::new(
                    "the check for uncommitted changes crashed",
                    Some(span),
                ))
            })?
            .map_err(|e| at(span, e))?;
        if !dirty.is_empty() {
            state.notes.push(format!(
                "git mapping at {to}: building committed content only; uncommitted changes ignored in: {} (use --dev to build them)",
                dirty.join(", ")
            ));
        }
    }
    Ok(state)
}

/// The input of mapping `mapping`'s files matching `masks` of a user stage (validated by
/// [`resolve`] already): their checksum and, up to [`MASK_FILES_RECORDED`], the files.
pub(crate) fn mask_input(
    mapping: usize,
    stage: &str,
    files: &[FileEntry],
    masks: &[Spanned<String>],
) -> DigestInput {
    let masks = values(masks);
    let set = MaskSet::new(&masks).expect("resolve validated every stageDependencies mask");
    let matched = set.matched(files);
    let recorded = if matched.len() <= MASK_FILES_RECORDED {
        matched
            .iter()
            .map(|(path, f)| (path.to_string(), format!("{}:{}", f.mode.as_octal(), f.oid)))
            .collect()
    } else {
        Vec::new()
    };
    DigestInput::GitMask {
        mapping,
        stage: stage.to_string(),
        masks,
        checksum: MaskSet::checksum_of(&matched).hex(),
        files: MaskFiles {
            total: matched.len(),
            files: recorded,
        },
    }
}

/// The parameters of a mapping that go into the gitArchive digest (not its commit: a new
/// commit is applied as a patch on top, as werf does).
pub(crate) fn params(mapping: &GitMapping, git: &GitConfig) -> String {
    serde_json::json!({
        "url": mapping.url,
        "ref": git.git_ref.as_ref().map(|(k, v)| format!("{k:?}:{}", v.value)),
        "add": mapping.add,
        "to": mapping.to,
        "include": mapping.include,
        "exclude": mapping.exclude,
        "owner": mapping.owner,
        "group": mapping.group,
    })
    .to_string()
}

fn add(git: &GitConfig) -> &str {
    git.add.as_ref().map_or("/", |a| a.value.as_str())
}

fn values(list: &[Spanned<String>]) -> Vec<String> {
    list.iter().map(|s| s.value.clone()).collect()
}

fn repo_path(repo: &Repository) -> PathBuf {
    repo.workdir()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(repo.name()))
}

fn filter(git: &GitConfig) -> Result<PathFilter> {
    mask_set(&git.include_paths, MaskList::Include)?;
    mask_set(&git.exclude_paths, MaskList::Exclude)?;
    PathFilter::new(
        add(git),
        &values(&git.include_paths),
        &values(&git.exclude_paths),
    )
    .map_err(|e| Box::new(Diagnostic::new(e.to_string(), Some(git.span))))
}

/// Compiles a mask list; a bad glob is an error at its line and column.
fn mask_set(masks: &[Spanned<String>], list: MaskList) -> Result<MaskSet> {
    MaskSet::new(&values(masks)).map_err(|e| {
        let item = &masks[e.index.min(masks.len().saturating_sub(1))];
        let span = match e.column {
            // Point into the mask, past an opening quote (a quoted scalar's span is longer
            // than its value).
            Some(col) => {
                let quoted = (item.span.end - item.span.start) as usize > item.value.len();
                let offset: usize = item
                    .value
                    .chars()
                    .take(col.saturating_sub(1))
                    .map(char::len_utf8)
                    .sum();
                let at = item.span.start as usize + usize::from(quoted) + offset;
                Span::new(item.span.file, at, at + 1)
            }
            None => item.span,
        };
        Box::new(
            Diagnostic::new(
                format!("invalid mask `{}`: {}", e.mask, e.message),
                Some(span),
            )
            .label(format!("in {list}")),
        )
    })
}

/// Two mappings whose `to` paths are the same or nested would write over each other.
fn check_overlaps(mappings: &[GitConfig]) -> Result<()> {
    let norm = |p: &str| p.trim_end_matches('/').to_string();
    for (i, b) in mappings.iter().enumerate() {
        for a in &mappings[..i] {
            let (pa, pb) = (norm(&a.to.value), norm(&b.to.value));
            let nested = pa == pb
                || pb.starts_with(&format!("{pa}/"))
                || pa.starts_with(&format!("{pb}/"))
                || pa.is_empty()
                || pb.is_empty();
            if nested {
                return Err(Box::new(
                    Diagnostic::new(
                        format!(
                            "git mappings overlap: `to: {}` and `to: {}`",
                            a.to.value, b.to.value
                        ),
                        Some(b.to.span),
                    )
                    .note(a.to.span, "the other mapping writes here")
                    .help("give each mapping its own `to` directory"),
                ));
            }
        }
    }
    Ok(())
}

/// A commit of the work tree as it is (tracked changes and untracked, not ignored files),
/// made with a throwaway index so the user's index and HEAD stay untouched.
fn worktree_commit(repo: &Repository, span: Span) -> Result<ObjectId> {
    let workdir = repo.workdir().ok_or_else(|| {
        Box::new(Diagnostic::new(
            "`--dev` needs a repository with a work tree",
            Some(span),
        ))
    })?;
    let git = |args: &[&str], index: &Path| -> Result<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(workdir)
            .args(args)
            .env("GIT_INDEX_FILE", index)
            // commit-tree needs an identity; the user's may not be configured.
            .env("GIT_AUTHOR_NAME", "strata")
            .env("GIT_AUTHOR_EMAIL", "strata@localhost")
            .env("GIT_COMMITTER_NAME", "strata")
            .env("GIT_COMMITTER_EMAIL", "strata@localhost")
            .output()
            .map_err(|e| Box::new(Diagnostic::new(format!("cannot run git: {e}"), Some(span))))?;
        if !out.status.success() {
            return Err(Box::new(Diagnostic::new(
                format!(
                    "git {} failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                Some(span),
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let tmp = tempfile::tempdir().map_err(|e| {
        Box::new(Diagnostic::new(
            format!("cannot create a temporary index: {e}"),
            Some(span),
        ))
    })?;
    let index = tmp.path().join("index");
    let git_dir = Command::new("git")
        .arg("-C")
        .arg(workdir)
        .args(["rev-parse", "--absolute-git-dir"])
        .env_remove("GIT_INDEX_FILE")
        .output()
        .map_err(|e| Box::new(Diagnostic::new(format!("cannot run git: {e}"), Some(span))))?;
    let real_index = PathBuf::from(String::from_utf8_lossy(&git_dir.stdout).trim()).join("index");
    // Starting from the real index keeps git's stat cache: only changed files are hashed.
    if real_index.exists() {
        std::fs::copy(&real_index, &index).map_err(|e| {
            Box::new(Diagnostic::new(
                format!("cannot copy the git index: {e}"),
                Some(span),
            ))
        })?;
    }
    let index = index.as_path();
    git(&["add", "-A", "."], index)?;
    let tree = git(&["write-tree"], index)?;
    let mut args = vec!["commit-tree", tree.as_str(), "-m", "strata --dev"];
    let head = git(&["rev-parse", "--verify", "-q", "HEAD"], index).ok();
    if let Some(head) = &head {
        args.extend(["-p", head.as_str()]);
    }
    let commit = git(&args, index)?;
    git(&["update-ref", "refs/strata/dev", &commit], index)?;
    ObjectId::from_hex(commit.as_bytes()).map_err(|e| {
        Box::new(Diagnostic::new(
            format!("git made an invalid commit id: {e}"),
            Some(span),
        ))
    })
}

/// The credentials of a mapping's `basicAuth`, the password read as werf reads it: a
/// variable's value, a file's whole content, or the value written.
fn credentials(auth: &BasicAuthConfig, dir: &Path) -> Result<strata_git::remote::Credentials> {
    use strata_plan::SecretSource;
    let span = auth.password.span;
    let password = match &auth.password.value {
        SecretSource::Env(var) => std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                Box::new(
                    Diagnostic::new(format!("the variable `{var}` is not set"), Some(span))
                        .help(format!("set `{var}` to the password of the remote")),
                )
            })?,
        SecretSource::File(path) => {
            let path = super::host_path(path, dir);
            std::fs::read_to_string(&path).map_err(|e| {
                Box::new(Diagnostic::new(
                    format!("cannot read the password from {}: {e}", path.display()),
                    Some(span),
                ))
            })?
        }
        SecretSource::Value(value) => value.clone(),
    };
    Ok(strata_git::remote::Credentials {
        username: auth.username.value.clone(),
        password,
    })
}

fn at(span: Span, e: impl std::fmt::Display) -> Box<Diagnostic> {
    Box::new(Diagnostic::new(e.to_string(), Some(span)))
}
