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
//! of newer frontends (`dfgitutil.ParseGitRef`) says the same and more: `?ref=`, `?tag=`
//! (`refs/tags/…`), `?branch=` (`refs/heads/…`), `?subdir=`, `?checksum=` or `?commit=` (the
//! commit the ref must name; the ref when none is given), `?keep-git-dir[=BOOL]`; a key given
//! twice, without a value, unknown, or contradicting the fragment is an error, as there.
//! `?submodules=false` is refused: strata's checkouts always have their submodules.

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
    /// `?checksum=`/`?commit=`: the commit's hash (or its start) the ref must name.
    pub checksum: Option<String>,
    /// `?keep-git-dir=`: whether the checkout keeps its `.git` (none: as `--keep-git-dir` says).
    pub keep_git_dir: Option<bool>,
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
        let (remote, query) = remote.split_once('?').unwrap_or((remote, ""));
        let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
        let mut git = GitRef {
            remote: remote.to_string(),
            reference: reference.to_string(),
            subdir: subdir.to_string(),
            checksum: None,
            keep_git_dir: None,
        };
        git.read_query(query)
            .map_err(|e| format!("`{source}`: {e}"))?;
        let subdir = git.subdir.trim_matches('/');
        if subdir.split('/').any(|part| part == "..") {
            return Err(format!(
                "`{source}`: the subdirectory `{subdir}` leaves the repository"
            ));
        }
        git.subdir = subdir
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect::<Vec<_>>()
            .join("/");
        Ok(Some(git))
    }

    /// The query form's keys, over what the fragment said (`dfgitutil`'s `loadQuery`).
    fn read_query(&mut self, query: &str) -> Result<(), String> {
        let mut seen = std::collections::BTreeMap::new();
        // Go's `url.ParseQuery`: `&`-separated, `+` a space, `%XX` escapes.
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| strata_template::unescape(&s.replace('+', " "));
            let (key, value) = (decode(key)?, decode(value)?);
            if seen.insert(key.clone(), value).is_some() {
                return Err(format!("the query `{key}` has more than one value"));
            }
        }
        let flag = |key: &str, value: &str| match value {
            "" | "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
            _ => Err(format!("invalid {key} value `{value}`")),
        };
        let (mut tag, mut branch) = (None, None);
        for (key, value) in &seen {
            if value.is_empty() && key != "keep-git-dir" && key != "submodules" {
                return Err(format!("the query `{key}` has no value"));
            }
            match key.as_str() {
                "ref" => self.set_ref(value)?,
                "tag" => tag = Some(value),
                "branch" => branch = Some(value),
                "subdir" => {
                    if !self.subdir.is_empty() && self.subdir != *value {
                        return Err(format!(
                            "the subdirectories conflict: `{}` and `{value}`",
                            self.subdir
                        ));
                    }
                    self.subdir = value.clone();
                }
                "checksum" | "commit" => self.checksum = Some(value.clone()),
                "keep-git-dir" => self.keep_git_dir = Some(flag(key, value)?),
                "submodules" => {
                    if !flag(key, value)? {
                        return Err(
                            "strata always checks out a repository's submodules (`submodules=false`)"
                                .into(),
                        );
                    }
                }
                _ => return Err(format!("unexpected query `{key}`")),
            }
        }
        if let Some(tag) = tag {
            if branch.is_some() {
                return Err("the branch conflicts with the tag".into());
            }
            self.set_ref(&prefixed("refs/tags/", tag))?;
        }
        if let Some(branch) = branch {
            self.set_ref(&prefixed("refs/heads/", branch))?;
        }
        if self.reference.is_empty()
            && let Some(commit) = &self.checksum
        {
            self.reference = commit.clone();
        }
        Ok(())
    }

    fn set_ref(&mut self, reference: &str) -> Result<(), String> {
        if !self.reference.is_empty() && self.reference != reference {
            return Err(format!(
                "the refs conflict: `{}` and `{reference}`",
                self.reference
            ));
        }
        self.reference = reference.to_string();
        Ok(())
    }
}

fn prefixed(prefix: &str, name: &str) -> String {
    if name.starts_with(prefix) {
        name.to_string()
    } else {
        format!("{prefix}{name}")
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
            checksum: None,
            keep_git_dir: None,
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
    fn the_query_form_reads_as_dfgitutil_reads_it() {
        for (source, expected) in [
            (
                "https://h/r.git?ref=v1&subdir=dir/",
                git("https://h/r.git", "v1", "dir"),
            ),
            (
                "https://h/r.git?tag=v1#refs/tags/v1",
                git("https://h/r.git", "refs/tags/v1", ""),
            ),
            (
                "git@h:r.git?branch=a%2Fb&subdir=x+y",
                git("git@h:r.git", "refs/heads/a/b", "x y"),
            ),
            (
                "https://h/r.git?subdir=d#main:d",
                git("https://h/r.git", "main", "d"),
            ),
            (
                "https://h/r.git?submodules=true",
                git("https://h/r.git", "", ""),
            ),
        ] {
            assert_eq!(GitRef::parse(source), Ok(expected), "{source}");
        }
        let commit = GitRef::parse("https://h/r.git?commit=abcd&keep-git-dir")
            .unwrap()
            .unwrap();
        assert_eq!(
            (commit.reference.as_str(), commit.checksum.as_deref()),
            ("abcd", Some("abcd"))
        );
        assert_eq!(commit.keep_git_dir, Some(true));
        let kept = GitRef::parse("https://h/r.git?ref=main&checksum=ab&keep-git-dir=false");
        let kept = kept.unwrap().unwrap();
        assert_eq!(kept.reference, "main");
        assert_eq!(kept.keep_git_dir, Some(false));
    }

    #[test]
    fn forms_strata_cannot_read_are_errors() {
        for (source, message) in [
            ("https://h/r.git?ref=a#b", "the refs conflict: `b` and `a`"),
            ("https://h/r.git?ref=a&ref=a", "more than one value"),
            ("https://h/r.git?ref=", "the query `ref` has no value"),
            ("https://h/r.git?depth=1", "unexpected query `depth`"),
            ("https://h/r.git?tag=a&branch=a", "the branch conflicts"),
            ("https://h/r.git?subdir=a#:b", "the subdirectories conflict"),
            ("https://h/r.git?keep-git-dir=maybe", "invalid keep-git-dir"),
            ("https://h/r.git?submodules=0", "always checks out"),
            ("https://h/r.git?ref=%zz", "invalid URL escape"),
            ("https://h/r.git?subdir=../etc", "leaves the repository"),
            ("https://h/r.git#main:../etc", "leaves the repository"),
        ] {
            let err = GitRef::parse(source).unwrap_err();
            assert!(err.contains(message), "{source}: {err}");
        }
    }
}
