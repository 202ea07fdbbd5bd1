//! Which `ADD` sources are git repositories, read as BuildKit's `gitutil.ParseGitRef` reads
//! them (dockerfile frontend 1.6 and later):
//!
//! | source | git? |
//! |---|---|
//! | `git://…`, `ssh://…` | yes |
//! | `http(s)://…` whose path ends in `.git` | yes (else a download) |
//! | `user@host:path` (scp-like, as `git@github.com:org/repo.git`) | yes |
//! | anything else (`github.com/org/repo`, local paths) | no |
//!
//! The fragment names what to check out: `#REF` (a branch, tag or commit; none: the remote's
//! default branch) and `#REF:SUBDIR` (only that directory's content is copied). The query form
//! of newer frontends (`?ref=…&subdir=…`) is refused with a message, not misread.

/// A git repository named as an `ADD` source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitRef {
    /// The remote, as git is given it (the fragment removed).
    pub remote: String,
    /// The branch, tag or commit (empty: the remote's default branch).
    pub reference: String,
    /// The directory of the repository whose content is copied (empty: all of it), without
    /// leading or trailing `/`.
    pub subdir: String,
}

impl GitRef {
    /// `Ok(None)` when `source` is no git repository; an error when it is one strata cannot
    /// read (a query string, a subdirectory leaving the repository).
    pub fn parse(source: &str) -> Result<Option<GitRef>, String> {
        let (remote, fragment) = source.split_once('#').unwrap_or((source, ""));
        let is_git = match remote.split_once("://") {
            Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
                "git" | "ssh" => true,
                "http" | "https" => rest.split_once('/').is_some_and(|(_, path)| {
                    path.split('?').next().unwrap_or("").ends_with(".git")
                }),
                _ => false,
            },
            None => scp_like(remote),
        };
        if !is_git {
            return Ok(None);
        }
        if remote.contains('?') {
            return Err(format!(
                "`{source}`: strata reads the git source form `URL#REF:SUBDIR`, not the query form (`?ref=`, `?subdir=`)"
            ));
        }
        let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
        let subdir = subdir.trim_matches('/');
        if subdir.split('/').any(|part| part == "..") {
            return Err(format!(
                "`{source}`: the subdirectory `{subdir}` leaves the repository"
            ));
        }
        Ok(Some(GitRef {
            remote: remote.to_string(),
            reference: reference.to_string(),
            subdir: subdir
                .split('/')
                .filter(|p| !p.is_empty() && *p != ".")
                .collect::<Vec<_>>()
                .join("/"),
        }))
    }
}

/// `user@host:path`: a user and a host of name characters, then a path (BuildKit's
/// `sshutil.IsImplicitSSHTransport`); a `/` before the `:` makes it a local path.
fn scp_like(text: &str) -> bool {
    let Some((user_host, path)) = text.split_once(':') else {
        return false;
    };
    let Some((user, host)) = user_host.split_once('@') else {
        return false;
    };
    let name = |s: &str, extra: &[char]| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || extra.contains(&c))
    };
    name(user, &['.']) && name(host, &['.']) && !path.is_empty() && !path.starts_with("//")
}

#[cfg(test)]
mod tests {
    use super::GitRef;

    fn git(remote: &str, reference: &str, subdir: &str) -> Option<GitRef> {
        Some(GitRef {
            remote: remote.into(),
            reference: reference.into(),
            subdir: subdir.into(),
        })
    }

    #[test]
    fn sources_read_as_buildkit_reads_them() {
        for (source, expected) in [
            (
                "https://github.com/moby/buildkit.git#v0.10.1",
                git("https://github.com/moby/buildkit.git", "v0.10.1", ""),
            ),
            (
                "git@github.com:moby/buildkit.git#main:frontend/",
                git("git@github.com:moby/buildkit.git", "main", "frontend"),
            ),
            (
                "ssh://git@host:2222/r.git",
                git("ssh://git@host:2222/r.git", "", ""),
            ),
            ("git://host/r#:a/./b", git("git://host/r", "", "a/b")),
            ("http://host/file.tar.gz", None),
            ("https://host/", None),
            ("https://host", None),
            ("github.com/moby/buildkit", None),
            ("src/app.git", None),
            ("./user@host:x", None),
            ("C:/x", None),
        ] {
            assert_eq!(GitRef::parse(source), Ok(expected), "{source}");
        }
    }

    #[test]
    fn forms_strata_cannot_read_are_errors() {
        let err = GitRef::parse("https://h/r.git?ref=main").unwrap_err();
        assert!(err.contains("not the query form"), "{err}");
        let err = GitRef::parse("https://h/r.git#main:../etc").unwrap_err();
        assert!(err.contains("leaves the repository"), "{err}");
    }
}
