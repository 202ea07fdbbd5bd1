//! Image references: `[registry/]repository[:tag][@digest]`, normalized the way Docker does.
//!
//! | input                                   | registry     | repository      | tag        |
//! |-----------------------------------------|--------------|-----------------|------------|
//! | `debian`                                | `docker.io`  | `library/debian`| `latest`   |
//! | `team/app:v1`                           | `docker.io`  | `team/app`      | `v1`       |
//! | `127.0.0.1:5000/library/debian:bookworm`| `127.0.0.1:5000` | `library/debian` | `bookworm` |
//! | `localhost/app@sha256:…`                | `localhost`  | `app`           | none       |
//!
//! The first path component is a registry when it contains a `.` or a `:`, or is `localhost`.
//! A reference with neither tag nor digest gets the tag `latest`.

use std::fmt;
use std::str::FromStr;

use strata_digest::Digest;

/// Why a reference could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid image reference `{input}`: {reason}")]
pub struct Error {
    /// The reference as given.
    pub input: String,
    /// What is wrong with it, and how to fix it.
    pub reason: String,
}

/// The registry that unqualified names resolve to.
pub const DOCKER_HUB: &str = "docker.io";

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host with an optional port (`127.0.0.1:5000`, `docker.io`).
    pub registry: String,
    /// Repository path (`library/debian`).
    pub repository: String,
    /// The tag, if any.
    pub tag: Option<String>,
    /// The manifest digest, if pinned.
    pub digest: Option<Digest>,
}

impl Reference {
    /// A reference to a repository, without tag or digest.
    pub fn repository(registry: &str, repository: &str) -> Reference {
        Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: None,
            digest: None,
        }
    }

    /// The same repository with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository pinned to a digest (and no tag).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// What to ask the registry's manifest endpoint for: the digest if pinned, else the tag,
    /// else `latest`.
    pub fn manifest_key(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The registry host name without port or brackets (`127.0.0.1`, `::1`, `docker.io`).
    pub fn host(&self) -> &str {
        host_of(&self.registry)
    }
}

/// The host name of `registry` without port or brackets.
pub(crate) fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.split(':').next().unwrap_or(registry)
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(input: &str) -> Result<Reference, Error> {
        let fail = |reason: &str| Error {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(fail("it is empty"));
        }
        let (name, digest) = match input.rsplit_once('@') {
            Some((name, digest)) => {
                let digest = digest.parse::<Digest>().map_err(|_| {
                    fail("the part after `@` must be `sha256:` and 64 lowercase hex digits")
                })?;
                (name, Some(digest))
            }
            None => (input, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (
                &name[..last_slash + i],
                Some(name[last_slash + i + 1..].to_string()),
            ),
            None => (name, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if registry.is_empty() || registry.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(fail("the registry host is empty or has spaces"));
        }
        check_repository(&repository).map_err(|reason| fail(&reason))?;
        if let Some(tag) = &tag {
            check_tag(tag).map_err(|reason| fail(&reason))?;
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

/// Checks a repository path against the distribution spec's grammar:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
pub(crate) fn check_repository(repository: &str) -> Result<(), String> {
    if repository.is_empty() {
        return Err("the repository name is empty".into());
    }
    if repository.len() > 255 {
        return Err("the repository name is longer than 255 characters".into());
    }
    for component in repository.split('/') {
        let bytes = component.as_bytes();
        let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let ok = !bytes.is_empty()
            && bytes.first().is_some_and(alnum)
            && bytes.last().is_some_and(alnum)
            && bytes
                .iter()
                .all(|b| alnum(b) || matches!(b, b'.' | b'_' | b'-'))
            && !component.contains("..")
            && !component.contains("___")
            && !component.contains("._")
            && !component.contains("_.");
        if !ok {
            return Err(format!(
                "repository component `{component}` must be lowercase letters and digits, \
                 separated by `.`, `_`, `__` or dashes"
            ));
        }
    }
    Ok(())
}

/// Checks a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub(crate) fn check_tag(tag: &str) -> Result<(), String> {
    let bytes = tag.as_bytes();
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    if bytes.is_empty()
        || bytes.len() > 128
        || !bytes.first().is_some_and(word)
        || !bytes.iter().all(|b| word(b) || matches!(b, b'.' | b'-'))
    {
        return Err(format!(
            "tag `{tag}` must be 1 to 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> (String, String, Option<String>, Option<Digest>) {
        let r: Reference = s.parse().unwrap();
        (r.registry, r.repository, r.tag, r.digest)
    }

    #[test]
    fn normalizes_like_docker() {
        let d = Digest::of(b"x");
        type Expected<'a> = (&'a str, &'a str, Option<&'a str>, Option<Digest>);
        let cases: Vec<(String, Expected)> = vec![
            (
                "debian".into(),
                ("docker.io", "library/debian", Some("latest"), None),
            ),
            (
                "team/app:v1".into(),
                ("docker.io", "team/app", Some("v1"), None),
            ),
            (
                "127.0.0.1:5000/library/debian:bookworm".into(),
                ("127.0.0.1:5000", "library/debian", Some("bookworm"), None),
            ),
            (
                format!("localhost/app@{d}"),
                ("localhost", "app", None, Some(d)),
            ),
            (
                format!("ghcr.io/a/b/c:t@{d}"),
                ("ghcr.io", "a/b/c", Some("t"), Some(d)),
            ),
            (
                "localhost:5000/app".into(),
                ("localhost:5000", "app", Some("latest"), None),
            ),
            (
                "index.docker.io/x".into(),
                ("docker.io", "library/x", Some("latest"), None),
            ),
            (
                "[::1]:5000/app:1".into(),
                ("[::1]:5000", "app", Some("1"), None),
            ),
        ];
        for (input, (reg, repo, tag, digest)) in cases {
            assert_eq!(
                parse(&input),
                (reg.into(), repo.into(), tag.map(String::from), digest),
                "{input}"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "127.0.0.1:5000/library/debian:bookworm",
            "docker.io/library/debian:latest",
        ] {
            assert_eq!(s.parse::<Reference>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn rejects_bad_references() {
        for (input, needle) in [
            ("", "empty"),
            ("Debian", "lowercase"),
            ("host.io/a//b", "component"),
            ("app:-x", "tag"),
            ("app@sha256:zz", "after `@`"),
            ("host.io/app:", "tag"),
        ] {
            let err = input.parse::<Reference>().unwrap_err().to_string();
            assert!(err.contains(needle), "{input}: {err}");
        }
    }

    #[test]
    fn host_strips_port_and_brackets() {
        assert_eq!(host_of("127.0.0.1:5000"), "127.0.0.1");
        assert_eq!(host_of("[::1]:5000"), "::1");
        assert_eq!(host_of("docker.io"), "docker.io");
    }
}
