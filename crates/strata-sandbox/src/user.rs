//! Resolving `ProcessSpec::user` against the container's `/etc/passwd` and `/etc/group`.
//!
//! Follows Docker's rules: a numeric uid needs no files (its gid comes from passwd when the
//! uid is listed there, else 0); a name must be listed; supplementary groups are the groups of
//! `/etc/group` that list the user's name as a member. The files are read after `pivot_root`,
//! so they are the image's, never the host's.

use std::fs;
use std::io;
use std::path::Path;

/// What can go wrong while resolving the user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user name is not in `/etc/passwd`.
    #[error("unable to find user {0}: no matching entries in /etc/passwd")]
    UnknownUser(String),
    /// The group name is not in `/etc/group`.
    #[error("unable to find group {0}: no matching entries in /etc/group")]
    UnknownGroup(String),
    /// A file could not be read.
    #[error("read {path}: {source}")]
    Read {
        /// The container path.
        path: String,
        /// The OS error.
        source: io::Error,
    },
}

/// A resolved identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// Supplementary groups (may be empty).
    pub groups: Vec<u32>,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        let uid = f.next()?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        Some(PasswdEntry { name, uid, gid })
    })
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        let gid = f.next()?.parse().ok()?;
        let members = f
            .next()
            .unwrap_or("")
            .split(',')
            .filter(|m| !m.is_empty())
            .collect();
        Some(GroupEntry { name, gid, members })
    })
}

/// Resolves `user` with the given file contents (`None`: the file does not exist).
pub fn resolve_with(
    user: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<Identity, Error> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = passwd.unwrap_or("");
    let group_text = group.unwrap_or("");

    let (uid, mut gid, name) = if user_part.is_empty() {
        (0, 0, Some("root"))
    } else if let Ok(uid) = user_part.parse::<u32>() {
        match passwd_entries(passwd).find(|e| e.uid == uid) {
            Some(e) => (uid, e.gid, Some(e.name)),
            None => (uid, 0, None),
        }
    } else {
        match passwd_entries(passwd).find(|e| e.name == user_part) {
            Some(e) => (e.uid, e.gid, Some(e.name)),
            None if user_part == "root" => (0, 0, Some("root")),
            None => return Err(Error::UnknownUser(user_part.to_owned())),
        }
    };
    match group_part {
        None | Some("") => {}
        Some(g) => {
            gid = match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => group_entries(group_text)
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| Error::UnknownGroup(g.to_owned()))?,
            }
        }
    }
    let mut groups: Vec<u32> = match name {
        Some(name) => group_entries(group_text)
            .filter(|e| e.members.contains(&name))
            .map(|e| e.gid)
            .collect(),
        None => Vec::new(),
    };
    groups.sort_unstable();
    groups.dedup();
    Ok(Identity { uid, gid, groups })
}

fn read_optional(path: &str) -> Result<Option<String>, Error> {
    match fs::read_to_string(Path::new(path)) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Resolves `user` against the current root's `/etc/passwd` and `/etc/group`.
///
/// Purely numeric specs read no files, so a root without `/etc` works.
pub fn resolve(user: &str) -> Result<Identity, Error> {
    let numeric = |s: &str| s.is_empty() || s.bytes().all(|b| b.is_ascii_digit());
    let (u, g) = user.split_once(':').unwrap_or((user, ""));
    if numeric(u) && numeric(g) && user.contains(':') {
        return resolve_with(user, None, None);
    }
    let passwd = read_optional("/etc/passwd")?;
    let group = read_optional("/etc/group")?;
    resolve_with(user, passwd.as_deref(), group.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1001::/home/alice:/bin/sh\nbroken\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:alice,bob\nalice:x:1001:\nwheel:x:10:alice\n";

    fn id(uid: u32, gid: u32, groups: &[u32]) -> Identity {
        Identity {
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn table() {
        let cases: &[(&str, Identity)] = &[
            ("", id(0, 0, &[])),
            ("root", id(0, 0, &[])),
            ("0:0", id(0, 0, &[])),
            ("1000", id(1000, 1001, &[10, 50])),
            ("2000", id(2000, 0, &[])),
            ("2000:3000", id(2000, 3000, &[])),
            ("alice", id(1000, 1001, &[10, 50])),
            ("alice:staff", id(1000, 50, &[10, 50])),
            ("alice:7", id(1000, 7, &[10, 50])),
        ];
        for (user, expected) in cases {
            let got = resolve_with(user, Some(PASSWD), Some(GROUP)).expect(user);
            assert_eq!(&got, expected, "{user}");
        }
    }

    #[test]
    fn unknown_names_are_errors() {
        let err = resolve_with("mallory", Some(PASSWD), Some(GROUP)).expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unable to find user mallory: no matching entries in /etc/passwd"
        );
        assert!(matches!(
            resolve_with("alice:nogroup", Some(PASSWD), Some(GROUP)),
            Err(Error::UnknownGroup(_))
        ));
        assert_eq!(
            resolve_with("root", None, None).expect("root"),
            id(0, 0, &[])
        );
        assert!(resolve_with("alice", None, None).is_err());
    }
}
