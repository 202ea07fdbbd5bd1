//! Remote repositories: a bare clone per URL in a cache directory, kept fresh with `git fetch`.
//!
//! Transport is the system `git` (credentials helpers, ssh config and proxies work as they do
//! for the user); reading is gix. The clone lives at `<cache>/<sha256 of url>.git`. A first
//! open clones into a temporary sibling and renames it into place, so concurrent builds never
//! see a half-made clone; the loser of a race discards its copy and uses the winner's. Later
//! opens fetch `refs/heads/*` and `refs/tags/*` (forced, pruned) into the same refs.
//!
//! `git` runs with `GIT_TERMINAL_PROMPT=0` (a missing credential fails instead of hanging)
//! and without inherited `GIT_DIR`/`GIT_WORK_TREE`/`GIT_INDEX_FILE`.
//!
//! [`Credentials`] (werf's `basicAuth`) reach `git` through a credential helper given on its
//! command line that prints two variables set for that `git` only: they are in no URL, so in
//! no clone path, digest, log or error message.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Repository;

/// Errors from cloning or fetching a remote repository.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cache directory could not be made or cleaned.
    #[error("cannot {op} {path} for remote {url}")]
    Cache {
        /// The remote URL.
        url: String,
        /// What was attempted.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `git` could not be started.
    #[error("cannot run `git` for remote {url}; is git installed and on PATH?")]
    Spawn {
        /// The remote URL.
        url: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `git clone`/`git fetch` failed.
    #[error("`git {command}` of {url} failed ({status}): {stderr}")]
    Git {
        /// The remote URL.
        url: String,
        /// `clone`, `fetch`, `checkout`, `remote` or `submodule`.
        command: &'static str,
        /// Exit status.
        status: String,
        /// What git said, trimmed.
        stderr: String,
    },
    /// The cached clone is not a readable repository.
    #[error("cannot open cached clone {path} of {url} (delete it to re-clone)")]
    Open {
        /// The remote URL.
        url: String,
        /// The clone.
        path: PathBuf,
        /// Why.
        #[source]
        source: gix::Error,
    },
}

/// A user name and password for a remote's HTTP basic authentication.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The helper `git` asks for credentials: it answers `get` with the two variables (and
/// ignores `store` and `erase`); the empty helper before it drops the user's own helpers.
const HELPER: &str = "!f() { test \"$1\" = get || return 0; \
                      printf 'username=%s\\npassword=%s\\n' \"$STRATA_GIT_USERNAME\" \"$STRATA_GIT_PASSWORD\"; }; f";

/// Where the clone of `url` lives inside `cache_dir`.
pub fn cache_path(url: &str, cache_dir: &Path) -> PathBuf {
    cache_dir.join(format!(
        "{}.git",
        strata_digest::Digest::of(url.as_bytes()).hex()
    ))
}

impl Repository {
    /// Clones `url` into `cache_dir` (first time) or fetches it (later), then opens the bare
    /// clone, authenticating with `auth` when given. Local paths and `file://` URLs work like
    /// network URLs.
    pub fn open_remote(
        url: &str,
        cache_dir: &Path,
        auth: Option<&Credentials>,
    ) -> Result<Repository, crate::Error> {
        let path = cache_path(url, cache_dir);
        if path.exists() {
            git(
                url,
                "fetch",
                auth,
                git_command(auth).arg("-C").arg(&path).args([
                    "fetch",
                    "--quiet",
                    "--prune",
                    "--force",
                    "origin",
                    "+refs/heads/*:refs/heads/*",
                    "+refs/tags/*:refs/tags/*",
                ]),
            )?;
        } else {
            clone(url, cache_dir, &path, auth)?;
        }
        let inner = gix::open(&path).map_err(|source| Error::Open {
            url: url.to_string(),
            path: path.clone(),
            source,
        })?;
        Ok(Repository::wrap(inner, url.to_string()))
    }
}

impl Repository {
    /// Writes a checkout of `commit` of this remote cache into `dest` (a directory that must
    /// not exist yet): a local clone of the cache at that commit, detached, its submodules
    /// checked out too, its `origin` the remote's URL. Without `keep_git_dir` the `.git` is
    /// removed afterwards, so only the files are left (BuildKit's git source).
    pub fn checkout_into(
        &self,
        commit: &crate::ObjectId,
        dest: &Path,
        keep_git_dir: bool,
    ) -> Result<(), crate::Error> {
        let url = self.name.as_str();
        let hex = commit.to_string();
        // --shared: the objects stay the cache's when the .git is dropped anyway.
        let mut clone = git_command(None);
        clone.args(["clone", "--quiet", "--no-checkout"]);
        if !keep_git_dir {
            clone.arg("--shared");
        }
        git(
            url,
            "clone",
            None,
            clone.arg("--").arg(self.inner.git_dir()).arg(dest),
        )?;
        let in_dest = |args: &[&str]| {
            let mut cmd = git_command(None);
            cmd.arg("-C").arg(dest).args(args);
            cmd
        };
        let detach = [
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "--quiet",
            "--detach",
        ];
        git(url, "checkout", None, in_dest(&detach).arg(&hex))?;
        // Relative submodule URLs are relative to the remote, not to the cache.
        git(
            url,
            "remote",
            None,
            &mut in_dest(&["remote", "set-url", "origin", url]),
        )?;
        git(
            url,
            "submodule",
            None,
            &mut in_dest(&["submodule", "update", "--init", "--recursive", "--quiet"]),
        )?;
        if !keep_git_dir {
            // The checkout's `.git` and its submodules' (files naming the first); git itself
            // refuses a tracked entry named `.git`, so these are all git's own.
            remove_git_dirs(dest).map_err(|(path, source)| Error::Cache {
                url: url.to_string(),
                op: "remove",
                path,
                source,
            })?;
        }
        Ok(())
    }
}

/// Removes every `.git` (directory or file) at or below `dir`, links never followed.
fn remove_git_dirs(dir: &Path) -> Result<(), (PathBuf, std::io::Error)> {
    let entries = std::fs::read_dir(dir).map_err(|e| (dir.to_path_buf(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| (dir.to_path_buf(), e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| (path.clone(), e))?;
        if entry.file_name() == ".git" {
            let removed = if kind.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|e| (path, e))?;
        } else if kind.is_dir() {
            remove_git_dirs(&path)?;
        }
    }
    Ok(())
}

fn clone(
    url: &str,
    cache_dir: &Path,
    path: &Path,
    auth: Option<&Credentials>,
) -> Result<(), Error> {
    let cache = |op, path: &Path, source| Error::Cache {
        url: url.to_string(),
        op,
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(cache_dir).map_err(|e| cache("create", cache_dir, e))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = cache_dir.join(format!(".{file_name}.tmp-{}-{nanos}", std::process::id()));
    let result = git(
        url,
        "clone",
        auth,
        git_command(auth)
            .args(["clone", "--bare", "--quiet", "--"])
            .arg(url)
            .arg(&tmp),
    );
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match std::fs::rename(&tmp, path) {
        Ok(()) => Ok(()),
        // Another process won the race; its clone is as good as ours.
        Err(_) if path.join("HEAD").exists() => {
            std::fs::remove_dir_all(&tmp).map_err(|e| cache("remove temporary clone", &tmp, e))
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(cache("rename clone into", path, e))
        }
    }
}

/// `git`, with the credential helper when there are credentials.
fn git_command(auth: Option<&Credentials>) -> Command {
    let mut cmd = Command::new("git");
    if let Some(auth) = auth {
        cmd.args(["-c", "credential.helper=", "-c"])
            .arg(format!("credential.helper={HELPER}"))
            .env("STRATA_GIT_USERNAME", &auth.username)
            .env("STRATA_GIT_PASSWORD", &auth.password);
    }
    cmd
}

fn git(
    url: &str,
    command: &'static str,
    auth: Option<&Credentials>,
    cmd: &mut Command,
) -> Result<(), Error> {
    let output = cmd
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .map_err(|source| Error::Spawn {
            url: url.to_string(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    let mut stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
    // git never prints a password it was given; made sure of, as the message is shown.
    if let Some(auth) = auth.filter(|a| !a.password.is_empty()) {
        stderr = stderr.replace(&auth.password, "<redacted>");
    }
    Err(Error::Git {
        url: url.to_string(),
        command,
        status: output.status.to_string(),
        stderr,
    })
}
