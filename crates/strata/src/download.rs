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
/// `checksum` (`sha256:HEX`) must match the content when given. With `remembered` (the
/// store's [`strata_store::LocalStore::downloads_dir`]) the request is conditional, as
/// BuildKit's http source makes it: `If-None-Match` with every ETag remembered for the URL
/// (else `If-Modified-Since` with a remembered `Last-Modified`), a `304` reusing the
/// remembered file (checked against its digest: a missing or changed one is downloaded
/// again), and a `200` with validators remembered for the next build.
pub fn fetch(
    dir: &Path,
    url: &str,
    checksum: Option<&str>,
    remembered: Option<&Path>,
) -> anyhow::Result<(PathBuf, String)> {
    if let Some(c) = checksum
        && !c.starts_with("sha256:")
    {
        bail!("--checksum={c}: strata checks sha256:HEX checksums only");
    }
    let into = next_dir(dir);
    std::fs::create_dir_all(&into).with_context(|| format!("create {}", into.display()))?;
    let cache = remembered.map(|root| UrlCache::new(root, url));
    let known = cache.as_ref().map(UrlCache::read).unwrap_or_default();
    let (name, digest, modified) = match get(url, &known)? {
        Got::NotModified(response, name) => match cache
            .as_ref()
            .map(|c| c.copy_out(&response, &into.join(&name)))
        {
            Some(Ok(true)) => {
                if let Some(cache) = &cache {
                    cache.used();
                }
                (name, response.digest, response.last_modified)
            }
            // Gone or changed: never trusted, downloaded again.
            _ => download(url, unconditional(url)?, &into, cache.as_ref())?,
        },
        Got::Full(response) => download(url, response, &into, cache.as_ref())?,
    };
    if let Some(expected) = checksum
        && expected != digest
    {
        bail!("the checksum is {digest}, not {expected} as --checksum says");
    }
    if let Some(time) = modified.as_deref().and_then(http_date) {
        let path = into.join(&name);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(time))
            .with_context(|| format!("set the mtime of {}", path.display()))?;
    }
    Ok((into, name))
}

/// The answer to a download's request.
enum Got {
    /// `304 Not Modified`: the remembered response it confirms, and the file's name.
    NotModified(Response, String),
    /// A response with the content.
    Full(ureq::http::Response<ureq::Body>),
}

/// Asks for `url`, conditionally when `known` remembers validators for it.
fn get(url: &str, known: &Remembered) -> anyhow::Result<Got> {
    let etags: Vec<&str> = known
        .responses
        .iter()
        .filter_map(|r| r.etag.as_deref())
        .collect();
    let mut request = ureq::get(url);
    // An ETag is the stronger validator; a date only for a response that had none.
    let by_date = match known.responses.first() {
        Some(r) if etags.is_empty() => r.last_modified.as_ref().map(|d| (d, r)),
        _ => None,
    };
    if !etags.is_empty() {
        request = request.header("If-None-Match", etags.join(", "));
    } else if let Some((date, _)) = by_date {
        request = request.header("If-Modified-Since", date.as_str());
    }
    let response = request.call().with_context(|| format!("download {url}"))?;
    if response.status() != 304 {
        return Ok(Got::Full(response));
    }
    // Which remembered response the server confirms: its ETag (a weak one compared as
    // strong, as BuildKit does), the one ETag asked about when it names none, or the date.
    let confirmed = match header(&response, "etag").map(etag_value) {
        Some(etag) => known
            .responses
            .iter()
            .find(|r| r.etag.as_deref() == Some(etag.as_str())),
        None if etags.len() == 1 => known
            .responses
            .iter()
            .find(|r| r.etag.as_deref() == Some(etags[0])),
        None => by_date.map(|(_, r)| r),
    };
    let Some(confirmed) = confirmed else {
        // Not one strata has: asked again for the content.
        return Ok(Got::Full(unconditional(url)?));
    };
    // A name the 304 gives wins, as in BuildKit; else the one the content came with.
    let name = header(&response, "content-disposition")
        .and_then(|v| disposition_name(&v))
        .unwrap_or_else(|| confirmed.name.clone());
    Ok(Got::NotModified(confirmed.clone(), name))
}

/// Asks for `url` with no validators: the content, whatever was remembered.
fn unconditional(url: &str) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
    let response = ureq::get(url)
        .call()
        .with_context(|| format!("download {url}"))?;
    if response.status() == 304 {
        bail!(
            "download {url}: the server answered 304 Not Modified to a request without validators"
        );
    }
    Ok(response)
}

/// A response header's value, if it is text.
fn header(response: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// An ETag as BuildKit compares them: without the weak marker `W/`.
fn etag_value(etag: String) -> String {
    etag.strip_prefix("W/").map(str::to_string).unwrap_or(etag)
}

/// Reads the content of a full `response` into a file in `into`, named after the
/// `Content-Disposition` or the URL; with `cache`, a copy is written there too and remembered
/// with the response's validators. Returns the name, the content's digest and the
/// `Last-Modified`.
fn download(
    url: &str,
    response: ureq::http::Response<ureq::Body>,
    into: &Path,
    cache: Option<&UrlCache>,
) -> anyhow::Result<(String, String, Option<String>)> {
    let modified = header(&response, "last-modified");
    let etag = header(&response, "etag").map(etag_value);
    let name = header(&response, "content-disposition")
        .and_then(|v| disposition_name(&v))
        .unwrap_or_else(|| file_name(url));
    let path = into.join(&name);
    let mut file =
        std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
    // Only a response with a validator can be asked about again.
    let mut copy = match cache {
        Some(c) if etag.is_some() || modified.is_some() => Some(c.start()?),
        _ => None,
    };
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
        if let Some((_, f)) = &mut copy {
            f.write_all(&buf[..n])
                .with_context(|| format!("write the download's copy in the store for {url}"))?;
        }
    }
    let digest = hasher.finish().to_string();
    if let (Some(cache), Some((tmp, _))) = (cache, copy) {
        cache.remember(
            &tmp,
            Response {
                etag,
                last_modified: modified.clone(),
                digest: digest.clone(),
                name: name.clone(),
            },
        )?;
    }
    Ok((name, digest, modified))
}

/// What a URL's responses with validators said (BuildKit's http source keeps the same of
/// each: ETag, Last-Modified, the content's digest), newest first.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Remembered {
    url: String,
    responses: Vec<Response>,
}

/// One remembered response.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Response {
    /// The `ETag`, without `W/`.
    etag: Option<String>,
    /// The `Last-Modified`, as sent.
    last_modified: Option<String>,
    /// `sha256:HEX` of the content, which is the file `HEX` beside the record.
    digest: String,
    /// The file's name (`Content-Disposition`, else the URL's).
    name: String,
}

/// A name for a file being written in a URL's directory, unique to this process and call
/// (files starting with `.` are never contents).
fn temporary_name(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(".{what}-{}-{n}", std::process::id())
}

/// How many responses of one URL are remembered (one per ETag, the newest).
const REMEMBERED: usize = 8;

/// A URL's directory in the store's `downloads/`: `record.json` (a [`Remembered`]) and the
/// contents it names, each a file named by the hex of its digest. Records and contents are
/// written under temporary names and renamed into place, a content before the record naming
/// it; a content is trusted only when it hashes to the digest the record names.
struct UrlCache {
    dir: PathBuf,
    url: String,
}

impl UrlCache {
    fn new(root: &Path, url: &str) -> UrlCache {
        UrlCache {
            dir: root.join(strata_digest::Digest::of(url.as_bytes()).short(32)),
            url: url.to_string(),
        }
    }

    /// The record, or none when it is missing, unreadable or another URL's.
    fn read(&self) -> Remembered {
        std::fs::read(self.dir.join("record.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Remembered>(&bytes).ok())
            .filter(|r| r.url == self.url)
            .unwrap_or_default()
    }

    /// Marks the URL's remembered downloads as used now (their directory's time, which gc's
    /// age policy reads); a failure only makes them look older.
    fn used(&self) {
        let _ = std::fs::File::open(&self.dir)
            .and_then(|dir| dir.set_modified(std::time::SystemTime::now()));
    }

    /// Copies the content `response` names to `to`; false when it is missing or does not
    /// hash to its digest (`to` then holds nothing to use).
    fn copy_out(&self, response: &Response, to: &Path) -> anyhow::Result<bool> {
        let Some(hex) = response.digest.strip_prefix("sha256:") else {
            return Ok(false);
        };
        let Ok(mut from) = std::fs::File::open(self.dir.join(hex)) else {
            return Ok(false);
        };
        let mut file =
            std::fs::File::create(to).with_context(|| format!("create {}", to.display()))?;
        let mut hasher = strata_digest::Hasher::new();
        let mut buf = vec![0; 1 << 16];
        loop {
            let Ok(n) = std::io::Read::read(&mut from, &mut buf) else {
                return Ok(false);
            };
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])
                .with_context(|| format!("write {}", to.display()))?;
        }
        Ok(hasher.finish().to_string() == response.digest)
    }

    /// A new temporary file for a content.
    fn start(&self) -> anyhow::Result<(PathBuf, std::fs::File)> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("create {}", self.dir.display()))?;
        let tmp = self.dir.join(temporary_name("content"));
        let file =
            std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        Ok((tmp, file))
    }

    /// Puts the content written to `tmp` in place and `response` at the front of the record
    /// (replacing a response with its ETag, keeping [`REMEMBERED`]); removes the contents the
    /// record no longer names.
    fn remember(&self, tmp: &Path, response: Response) -> anyhow::Result<()> {
        let hex = response.digest.trim_start_matches("sha256:").to_string();
        std::fs::rename(tmp, self.dir.join(&hex))
            .with_context(|| format!("rename {}", tmp.display()))?;
        let mut record = self.read();
        record.url = self.url.clone();
        // Responses with ETags are kept together (each asked about); one with only a date
        // replaces them all, as only the newest date is sent.
        match &response.etag {
            Some(etag) => record
                .responses
                .retain(|r| r.etag.as_ref().is_some_and(|e| e != etag)),
            None => record.responses.clear(),
        }
        record.responses.insert(0, response);
        record.responses.truncate(REMEMBERED);
        let new = self.dir.join(temporary_name("record"));
        std::fs::write(&new, serde_json::to_vec(&record)?)
            .with_context(|| format!("write {}", new.display()))?;
        std::fs::rename(&new, self.dir.join("record.json"))
            .with_context(|| format!("rename {}", new.display()))?;
        let named: std::collections::HashSet<&str> = record
            .responses
            .iter()
            .map(|r| r.digest.trim_start_matches("sha256:"))
            .collect();
        for entry in std::fs::read_dir(&self.dir)
            .with_context(|| format!("read {}", self.dir.display()))?
            .flatten()
        {
            let file = entry.file_name().to_string_lossy().into_owned();
            if file != "record.json" && !file.starts_with('.') && !named.contains(file.as_str()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
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
