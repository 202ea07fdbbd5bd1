//! `ADD <url>`: the file downloaded into a scratch dir of the build, with BuildKit's
//! attributes (its http source: the name from the URL, `Last-Modified` as the mtime; the
//! frontend copies it with mode 0600). `ADD <git repository>`: a checkout into a scratch dir
//! of the build, made from the store's cached clone of the remote (fetched first), as
//! BuildKit's git source makes it: detached at the commit, submodules in, files 0644 or 0755.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, bail};

/// A new directory's name under the build's downloads dir.
fn next_dir(dir: &Path) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    dir.join(NEXT.fetch_add(1, Ordering::Relaxed).to_string())
}

/// Downloads `url` into a new directory under `dir` and returns it with the file's name.
/// `checksum` (`sha256:HEX`) must match the content when given.
pub fn fetch(dir: &Path, url: &str, checksum: Option<&str>) -> anyhow::Result<(PathBuf, String)> {
    if let Some(c) = checksum
        && !c.starts_with("sha256:")
    {
        bail!("--checksum={c}: strata checks sha256:HEX checksums only");
    }
    let response = ureq::get(url)
        .call()
        .with_context(|| format!("download {url}"))?;
    let modified = response
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .and_then(http_date);
    let name = response
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .and_then(disposition_name)
        .unwrap_or_else(|| file_name(url));
    let into = next_dir(dir);
    std::fs::create_dir_all(&into).with_context(|| format!("create {}", into.display()))?;
    let path = into.join(&name);
    let mut file =
        std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let mut hasher = strata_digest::Hasher::new();
    let mut reader = response.into_body().into_reader();
    let mut buf = vec![0; 1 << 16];
    loop {
        let n = std::io::Read::read(&mut reader, &mut buf)
            .with_context(|| format!("download {url}"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .with_context(|| format!("write {}", path.display()))?;
    }
    let digest = hasher.finish().to_string();
    if let Some(expected) = checksum
        && expected != digest
    {
        bail!("the checksum is {digest}, not {expected} as --checksum says");
    }
    if let Some(time) = modified {
        file.set_modified(time)
            .with_context(|| format!("set the mtime of {}", path.display()))?;
    }
    Ok((into, name))
}

/// Checks out `reference` (a branch, tag or commit, looked up in that order; `refs/heads/NAME`
/// only a branch, `refs/tags/NAME` only a tag; empty: the remote's default branch) of `remote` into a new directory under `dir`, from the clone
/// cached in `cache`; returns the directory and the commit's full hash.
pub fn checkout(
    dir: &Path,
    cache: &Path,
    remote: &str,
    reference: &str,
    keep_git_dir: bool,
) -> anyhow::Result<(PathBuf, String)> {
    use strata_git::{Repository, Rev};
    let repo = Repository::open_remote(remote, cache, None)?;
    let commit = if reference.is_empty() {
        repo.resolve(&Rev::Head)?
    } else if let Some(branch) = reference.strip_prefix("refs/heads/") {
        repo.resolve(&Rev::Branch(branch.to_string()))
            .with_context(|| format!("the repository has no branch `{branch}`"))?
    } else if let Some(tag) = reference.strip_prefix("refs/tags/") {
        repo.resolve(&Rev::Tag(tag.to_string()))
            .with_context(|| format!("the repository has no tag `{tag}`"))?
    } else {
        let hex = reference.len() >= 4 && reference.bytes().all(|b| b.is_ascii_hexdigit());
        [
            Rev::Branch(reference.to_string()),
            Rev::Tag(reference.to_string()),
        ]
        .into_iter()
        .chain(hex.then(|| Rev::Commit(reference.to_string())))
        .find_map(|rev| repo.resolve(&rev).ok())
        .with_context(|| format!("the repository has no branch, tag or commit `{reference}`"))?
    };
    let into = next_dir(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    repo.checkout_into(&commit, &into, keep_git_dir)?;
    normalize_modes(&into)?;
    Ok((into, commit.to_string()))
}

/// Gives the checkout's files and directories BuildKit's modes, whatever strata's umask is:
/// directories and executables 0755, other files 0644 (a kept `.git` is left as git made it).
fn normalize_modes(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let entry = entry.with_context(|| format!("read {}", dir.display()))?;
        let path = entry.path();
        let meta = entry
            .metadata()
            .with_context(|| format!("stat {}", path.display()))?;
        if meta.file_type().is_symlink() || entry.file_name() == ".git" {
            continue;
        }
        let mode = if meta.is_dir() || meta.permissions().mode() & 0o100 != 0 {
            0o755
        } else {
            0o644
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {}", path.display()))?;
        if meta.is_dir() {
            normalize_modes(&path)?;
        }
    }
    Ok(())
}

/// The last segment of the URL's path, without its query, else `download`: BuildKit's name
/// for a download without a `Content-Disposition` name (source/http `getFileName`).
fn file_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.split(['?', '#']).next().unwrap_or_default();
    match path
        .split_once('/')
        .map(|(_, p)| p.rsplit('/').next().unwrap_or_default())
    {
        Some(base) if !base.is_empty() && base != "." && base != ".." => base.to_string(),
        _ => "download".to_string(),
    }
}

/// The base name of `filename=` in a `Content-Disposition` header (BuildKit's first choice).
fn disposition_name(header: &str) -> Option<String> {
    let value = header
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("filename"))?
        .1
        .trim()
        .trim_matches('"');
    let base = value.rsplit('/').next().unwrap_or_default();
    (!value.ends_with('/') && !base.is_empty() && base != "." && base != "..")
        .then(|| base.to_string())
}

/// An HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`, RFC 9110's preferred form).
fn http_date(text: &str) -> Option<std::time::SystemTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let parsed = time::PrimitiveDateTime::parse(text.trim(), format).ok()?;
    Some(parsed.assume_utc().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dates() {
        assert_eq!(file_name("http://h:1/a/b/tool.tar.gz?x=1"), "tool.tar.gz");
        assert_eq!(file_name("http://h/"), "download");
        assert_eq!(file_name("http://h"), "download");
        assert_eq!(
            disposition_name("attachment; filename=\"../x/app.tgz\"").as_deref(),
            Some("app.tgz")
        );
        assert_eq!(disposition_name("attachment"), None);
        let t = http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
            1_445_412_480
        );
    }
}
