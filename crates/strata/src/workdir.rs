//! A Dockerfile's `WORKDIR` as a non-root `USER`: the directories it creates belong to that
//! user, as BuildKit's (its `llb.Mkdir(..., WithParents, WithUser(user))` chowns the
//! directories it creates, never ones that exist).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::files::FileWork;

/// Stages in `dir` as `name` a tar of the directories of `path` missing from the image of
/// `lowers`, owned by `user` (Docker's `USER[:GROUP]`), mode 0755, made now.
pub fn write(
    path: &str,
    user: &str,
    lowers: &[PathBuf],
    dir: &Path,
    name: &str,
) -> anyhow::Result<FileWork> {
    let owner = crate::owner::resolve_spec(lowers, Some(user), "WORKDIR")?;
    let staged = dir.join(name);
    let file = File::create(&staged).with_context(|| format!("create {}", staged.display()))?;
    let mut tar = tar::Builder::new(BufWriter::new(file));
    let now = crate::unix_now();
    let mut prefix = String::new();
    let mut missing = false;
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        prefix.push('/');
        prefix.push_str(part);
        missing = missing
            || strata_debug::lookup::find(lowers, &prefix)
                .with_context(|| format!("look up {prefix} in the image"))?
                .is_none();
        if missing {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_uid(owner.uid);
            header.set_gid(owner.gid);
            header.set_mtime(now);
            header.set_size(0);
            tar.append_data(&mut header, &prefix[1..], std::io::empty())
                .with_context(|| format!("stage {prefix}"))?;
        }
    }
    tar.into_inner()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .with_context(|| format!("write {}", staged.display()))?;
    Ok(FileWork::Unpack(name.to_string()))
}
