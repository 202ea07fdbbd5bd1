//! Owners of files strata puts into images (git mappings, imports): numeric ids as written,
//! names looked up in the image's `/etc/passwd` and `/etc/group`.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use strata_git::Owner;

/// The numeric owner for `user`/`group` in the image whose layers are `lowers`. The group
/// defaults to the user's primary group, as `chown USER` does. `what` names the directive for
/// messages (`git mapping`, `import`).
pub fn resolve(
    lowers: &[PathBuf],
    user: Option<&str>,
    group: Option<&str>,
    what: &str,
) -> anyhow::Result<Owner> {
    let mut owner = Owner { uid: 0, gid: 0 };
    if let Some(user) = user {
        let (uid, gid) = lookup_id(lowers, "etc/passwd", user, what, "owner")?;
        owner.uid = uid;
        owner.gid = gid.unwrap_or(0);
    }
    if let Some(group) = group {
        owner.gid = lookup_id(lowers, "etc/group", group, what, "group")?.0;
    }
    Ok(owner)
}

/// The numeric owner for Docker's `USER[:GROUP]` form (`COPY --chown`, the user `WORKDIR`
/// creates directories as); none is root.
pub fn resolve_spec(lowers: &[PathBuf], spec: Option<&str>, what: &str) -> anyhow::Result<Owner> {
    let (user, group) = match spec {
        Some(c) => match c.split_once(':') {
            Some((u, g)) => (Some(u), Some(g)),
            // Docker: a numeric user without a group gets the group of the same number.
            None if c.parse::<u64>().is_ok() => (Some(c), Some(c)),
            None => (Some(c), None),
        },
        None => (None, None),
    };
    resolve(lowers, user, group, what)
}

/// The id of `name` in a passwd- or group-style file of the image (and, for passwd, the
/// primary group).
fn lookup_id(
    lowers: &[PathBuf],
    file: &str,
    name: &str,
    what: &str,
    field: &str,
) -> anyhow::Result<(u64, Option<u64>)> {
    if let Ok(id) = name.parse::<u64>() {
        return Ok((id, None));
    }
    let text = strata_layer::merged::read(lowers, file)?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.first() == Some(&name) && fields.len() >= 3 {
            let id = fields[2]
                .parse()
                .with_context(|| format!("bad id for `{name}` in /{file}"))?;
            let group = fields.get(3).and_then(|g| g.parse().ok());
            return Ok((id, group));
        }
    }
    bail!(
        "the {what}'s {field} `{name}` is not in the image's /{file}; use a numeric id or create it in beforeInstall"
    )
}
