//! Files of the build context put into the image (a Dockerfile's `COPY`/`ADD`), run like git
//! work: a tarball of exactly the entries the frontend resolved, unpacked over the stage's root
//! (see [`crate::files`]). Symlinks are copied as links, never followed out of the context.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use strata_plan::CopyFiles;

use crate::files::FileWork;
use crate::owner;
use crate::toolbox::{MOUNT_POINT, shell_quote};

/// Writes what `copy` needs into `dir` (seen as `dir_inside` in the container) and returns the
/// work that puts it in place; `lowers` are the image's layers (for owner names).
pub fn write(
    copy: &CopyFiles,
    lowers: &[PathBuf],
    dir: &Path,
    dir_inside: &str,
    name: &str,
) -> anyhow::Result<FileWork> {
    let (user, group) = match copy.chown.as_deref() {
        Some(c) => match c.split_once(':') {
            Some((u, g)) => (Some(u), Some(g)),
            // Docker: a numeric user without a group gets the group of the same number.
            None if c.parse::<u64>().is_ok() => (Some(c), Some(c)),
            None => (Some(c), None),
        },
        None => (None, None),
    };
    let owner = owner::resolve(lowers, user, group, "COPY --chown")?;
    if copy.unpack {
        let mut script = String::new();
        for (i, entry) in copy.entries.iter().enumerate() {
            let file = format!("{name}.{i}.archive");
            std::fs::copy(&entry.source, dir.join(&file))
                .with_context(|| format!("read {}", entry.source.display()))?;
            let flag = match entry.source.to_string_lossy() {
                s if s.ends_with(".gz") || s.ends_with(".tgz") => "z",
                s if s.ends_with(".bz2") || s.ends_with(".tbz2") => "j",
                s if s.ends_with(".xz") || s.ends_with(".txz") => "J",
                _ => "",
            };
            script.push_str(&format!(
                "{MOUNT_POINT}/bin/mkdir -p {to} && {MOUNT_POINT}/bin/tar -x{flag}f {dir_inside}/{file} -C {to}\n",
                to = shell_quote(&entry.target)
            ));
        }
        return Ok(FileWork::Script(script));
    }
    let path = dir.join(name);
    let file = File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let mut tar = tar::Builder::new(BufWriter::new(file));
    tar.follow_symlinks(false);
    for entry in &copy.entries {
        let target = entry.target.trim_start_matches('/').trim_end_matches('/');
        if target.is_empty() {
            continue;
        }
        let mut header = tar::Header::new_gnu();
        if let Some(inline) = &entry.inline {
            header.set_size(inline.len() as u64);
            header.set_mode(copy.chmod.unwrap_or(0o644));
            header.set_entry_type(tar::EntryType::Regular);
            header.set_uid(owner.uid);
            header.set_gid(owner.gid);
            tar.append_data(&mut header, target, inline.as_bytes())?;
            continue;
        }
        let meta = std::fs::symlink_metadata(&entry.source)
            .with_context(|| format!("read {}", entry.source.display()))?;
        // Docker copies a file *into* a destination that is a directory of the image, slash or
        // not (`COPY app.sh /usr/local/bin`).
        let into_dir;
        let target = match entry.source.file_name() {
            Some(file) if !meta.is_dir() && is_image_dir(lowers, target)? => {
                into_dir = format!("{target}/{}", file.to_string_lossy());
                into_dir.as_str()
            }
            _ => target,
        };
        header.set_metadata(&meta);
        header.set_uid(owner.uid);
        header.set_gid(owner.gid);
        if !meta.file_type().is_symlink() {
            header.set_mode(copy.chmod.unwrap_or(meta.permissions().mode() & 0o7777));
        }
        if meta.file_type().is_symlink() {
            let link = std::fs::read_link(&entry.source)?;
            tar.append_link(&mut header, target, link)?;
        } else if meta.is_dir() {
            header.set_size(0);
            tar.append_data(&mut header, format!("{target}/"), std::io::empty())?;
        } else {
            let f = File::open(&entry.source)
                .with_context(|| format!("read {}", entry.source.display()))?;
            tar.append_data(&mut header, target, f)?;
        }
    }
    tar.into_inner()?
        .flush()
        .with_context(|| format!("write {}", path.display()))?;
    Ok(FileWork::Unpack(name.to_string()))
}

/// Whether `path` is a directory (not a link to one) in the image made of `lowers`.
fn is_image_dir(lowers: &[PathBuf], path: &str) -> anyhow::Result<bool> {
    Ok(strata_layer::merged::lookup(lowers, path)
        .with_context(|| format!("look up {path} in the image"))?
        .is_some_and(|found| found.symlink_metadata().is_ok_and(|m| m.is_dir())))
}
