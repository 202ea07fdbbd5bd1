//! Files of the build context put into the image (a Dockerfile's `COPY`/`ADD`), run like git
//! work: a tarball of exactly the entries the frontend resolved, unpacked over the stage's root
//! (see [`crate::files`]). The entries are the frontend's pinned copies (its
//! [`Snapshot`](strata_frontend::dockerfile::context_files::Snapshot), a scratch dir of this
//! build), never the context itself, so a file edited after planning cannot reach the layer.
//! They are read the way the frontend hashed them (beneath the snapshot, no link followed,
//! symlinks copied as links) and hashed again while copied: a snapshot changed behind the
//! build's back fails the step.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use strata_frontend::dockerfile::context_files::{ContextEntry, ContextRoot, CopyChecksum};
use strata_plan::CopyFiles;

use crate::files::FileWork;
use crate::owner;

/// Writes what `copy` needs into `dir` and returns the work that puts it in place; `lowers`
/// are the image's layers (for owner names).
pub fn write(
    copy: &CopyFiles,
    lowers: &[PathBuf],
    dir: &Path,
    name: &str,
) -> anyhow::Result<Vec<FileWork>> {
    let owner = owner::resolve_spec(lowers, copy.chown.as_deref(), "COPY --chown")?;
    let context = ContextRoot::open(&copy.root)
        .with_context(|| format!("open the build context {}", copy.root.display()))?;
    let mut sum = CopyChecksum::default();
    let work = if copy.unpack {
        stage_archives(copy, &context, &mut sum, lowers, dir, name, owner)?
    } else {
        write_tar(copy, &context, &mut sum, lowers, dir, name, owner)?;
        vec![FileWork::Unpack(name.to_string())]
    };
    // The digest was computed from these very copies when the build was planned; only
    // something outside strata writing into the store could make them differ.
    if sum.finish() != copy.checksum {
        anyhow::bail!(
            "the pinned copies of the build context's files in {} no longer hash to what the plan recorded; something changed the store during the build",
            copy.root.display()
        );
    }
    Ok(work)
}

/// The debugger's `rerun` of a COPY/ADD whose sources (`paths`, relative to the context,
/// wildcards kept) the context lacked: it looks for them again in the context as it is now,
/// mounted read-only at [`strata_debug::SOURCE`], says which are there and succeeds when all
/// are (then `reload` plans and builds again). It runs with the toolbox's bash, so a state
/// without a shell (`FROM scratch`) can check too.
pub(crate) fn recheck_args(paths: &[String]) -> Vec<String> {
    let script = format!(
        r#"cd {source} 2>/dev/null || {{ echo "the build context is not here (only the build's own debugger mounts it at {source})"; exit 1; }}
missing=0
for p in "$@"; do
  if [ -e "$p" ] || [ -L "$p" ] || compgen -G "$p" >/dev/null; then
    echo "\`$p\` is in the build context now"
  else
    echo "\`$p\` is still not in the build context"; missing=1
  fi
done
[ "$missing" = 0 ] && echo "\`reload\` plans the build again with the context as it is now (.dockerignore applies)"
exit "$missing""#,
        source = strata_debug::SOURCE
    );
    let mut args = vec![
        crate::toolbox::BASH.to_string(),
        "-c".to_string(),
        script,
        "recheck".to_string(),
    ];
    args.extend(paths.iter().cloned());
    args
}

/// The work of an `ADD` of archives, as BuildKit's: the destination made as a copy's is
/// (`MkdirAll` with the copy's owner: the staged tar `name`), then each archive, decompressed
/// into a staged tar here, extracted into it with the owners, modes and times it records.
fn stage_archives(
    copy: &CopyFiles,
    context: &ContextRoot,
    sum: &mut CopyChecksum,
    lowers: &[PathBuf],
    dir: &Path,
    name: &str,
    owner: strata_git::Owner,
) -> anyhow::Result<Vec<FileWork>> {
    let path = dir.join(name);
    let file = File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let mut tar = tar::Builder::new(BufWriter::new(file));
    let mut dirs = Dirs::new(lowers, owner);
    let mut work = vec![FileWork::Unpack(name.to_string())];
    for (i, entry) in copy.entries.iter().enumerate() {
        let into = entry.target.trim_end_matches('/');
        let target = into.trim_start_matches('/');
        if !target.is_empty() {
            dirs.parents(&mut tar, target)?;
            dirs.make(&mut tar, target)?;
        }
        let opened = context
            .entry(&entry.source)
            .with_context(|| format!("read {}", entry.source.display()))?;
        sum.start(&entry.target, &opened);
        let ContextEntry::File(mut source, _) = opened else {
            anyhow::bail!("{} is no longer a file", entry.source.display());
        };
        let staged = format!("{name}.{i}.tar");
        let staged_path = dir.join(&staged);
        let mut out = BufWriter::new(
            File::create(&staged_path)
                .with_context(|| format!("create {}", staged_path.display()))?,
        );
        strata_layer::compression::decompress_archive(
            &mut Tee(&mut source, sum.content()),
            &mut out,
        )
        .with_context(|| format!("read the archive {}", entry.source.display()))?;
        out.flush()
            .with_context(|| format!("write {}", staged_path.display()))?;
        sum.end();
        work.push(FileWork::Extract {
            archive: staged,
            into: if into.is_empty() {
                "/".into()
            } else {
                into.into()
            },
        });
    }
    tar.into_inner()?
        .flush()
        .with_context(|| format!("write {}", path.display()))?;
    Ok(work)
}

/// The tarball of a plain `COPY`, read beneath the context and hashed while written.
fn write_tar(
    copy: &CopyFiles,
    context: &ContextRoot,
    sum: &mut CopyChecksum,
    lowers: &[PathBuf],
    dir: &Path,
    name: &str,
    owner: strata_git::Owner,
) -> anyhow::Result<()> {
    let path = dir.join(name);
    let file = File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let mut tar = tar::Builder::new(BufWriter::new(file));
    tar.follow_symlinks(false);
    let mut dirs = Dirs::new(lowers, owner);
    // The tar path of each file written, by its index, for the hardlinks of it.
    let mut written: Vec<Option<String>> = vec![None; copy.entries.len()];
    for (index, entry) in copy.entries.iter().enumerate() {
        let target = entry.target.trim_start_matches('/').trim_end_matches('/');
        let mut header = tar::Header::new_gnu();
        if let Some(inline) = &entry.inline {
            sum.inline(&entry.target, inline);
            if target.is_empty() {
                continue;
            }
            dirs.parents(&mut tar, target)?;
            header.set_size(inline.len() as u64);
            header.set_mode(entry.mode.or(copy.chmod).unwrap_or(0o644));
            header.set_entry_type(tar::EntryType::Regular);
            header.set_uid(owner.uid);
            header.set_gid(owner.gid);
            tar.append_data(&mut header, target, inline.as_bytes())?;
            continue;
        }
        if let Some(file) = entry.hardlink {
            sum.hardlink(&entry.target, file);
            let Some(first) = &written[file] else {
                anyhow::bail!("{target} is a hardlink of an entry that is no file of the copy");
            };
            dirs.parents(&mut tar, target)?;
            // The link shares the file's inode: its own fields are only well-formed.
            header.set_entry_type(tar::EntryType::Link);
            header.set_mode(0o644);
            header.set_uid(owner.uid);
            header.set_gid(owner.gid);
            header.set_mtime(0);
            header.set_size(0);
            tar.append_link(&mut header, target, first)?;
            continue;
        }
        let opened = context
            .entry(&entry.source)
            .with_context(|| format!("read {}", entry.source.display()))?;
        sum.start(&entry.target, &opened);
        // The image's root itself (`COPY . /`): hashed like every entry, not put in the tar.
        if target.is_empty() {
            if let ContextEntry::File(mut f, _) = opened {
                std::io::copy(&mut f, sum.content())?;
            }
            sum.end();
            continue;
        }
        dirs.parents(&mut tar, target)?;
        // The directory a directory's content fills: made as a parent is, when missing.
        if entry.contents_only && matches!(opened, ContextEntry::Dir(_)) {
            dirs.make(&mut tar, target)?;
            sum.end();
            continue;
        }
        let meta = opened.metadata().clone();
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
            header.set_mode(
                entry
                    .mode
                    .or(copy.chmod)
                    .unwrap_or(meta.permissions().mode() & 0o7777),
            );
        }
        if matches!(opened, ContextEntry::File(..)) {
            written[index] = Some(target.to_string());
        }
        match opened {
            ContextEntry::Link(link, _) => tar.append_link(&mut header, target, link)?,
            ContextEntry::Dir(_) => {
                header.set_size(0);
                tar.append_data(&mut header, format!("{target}/"), std::io::empty())?;
                dirs.known.insert(target.to_string());
            }
            ContextEntry::File(mut f, _) => tar
                .append_data(&mut header, target, Tee(&mut f, sum.content()))
                .with_context(|| format!("read {}", entry.source.display()))?,
        }
        sum.end();
    }
    tar.into_inner()?
        .flush()
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

/// The directories of the image a copy writes into, as BuildKit's copy makes them
/// (`CreateDestPath`): one that is missing is made with mode 0755, the copy's owner and the
/// time of the build; one the image has is left as it is.
pub(crate) struct Dirs<'a> {
    lowers: &'a [PathBuf],
    /// The directories known to be there (in the image, or made by this copy).
    known: std::collections::HashSet<String>,
    owner: strata_git::Owner,
    now: u64,
}

impl<'a> Dirs<'a> {
    /// Missing directories of the image made of `lowers` get `owner` and the time of now.
    pub(crate) fn new(lowers: &'a [PathBuf], owner: strata_git::Owner) -> Self {
        Dirs {
            lowers,
            known: std::collections::HashSet::new(),
            owner,
            now: crate::unix_now(),
        }
    }

    /// Makes the missing parents of `target` (relative to the image's root), top down.
    pub(crate) fn parents<W: Write>(
        &mut self,
        tar: &mut tar::Builder<W>,
        target: &str,
    ) -> anyhow::Result<()> {
        let mut at = 0;
        while let Some(slash) = target[at..].find('/') {
            self.make(tar, &target[..at + slash])?;
            at += slash + 1;
        }
        Ok(())
    }

    /// Makes the directory `dir` when the image lacks it and this copy has not made it.
    fn make<W: Write>(&mut self, tar: &mut tar::Builder<W>, dir: &str) -> anyhow::Result<()> {
        if self.known.contains(dir) {
            return Ok(());
        }
        let found = strata_layer::merged::lookup(self.lowers, dir)
            .with_context(|| format!("look up {dir} in the image"))?;
        let kind = found.map(|f| f.symlink_metadata().map(|m| m.file_type()));
        match kind {
            // A link is resolved inside the image when the tar is applied.
            Some(Ok(t)) if t.is_dir() || t.is_symlink() => {}
            // Something else is there: writing below it fails, naming it.
            Some(_) => anyhow::bail!("/{dir} is not a directory of the image"),
            None => {
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_uid(self.owner.uid);
                header.set_gid(self.owner.gid);
                header.set_mtime(self.now);
                header.set_size(0);
                tar.append_data(&mut header, format!("{dir}/"), std::io::empty())?;
            }
        }
        self.known.insert(dir.to_string());
        Ok(())
    }
}

/// A reader that also writes what it reads to a hasher.
struct Tee<'a, R, W>(&'a mut R, &'a mut W);

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Whether `path` is a directory (not a link to one) in the image made of `lowers`.
fn is_image_dir(lowers: &[PathBuf], path: &str) -> anyhow::Result<bool> {
    Ok(strata_layer::merged::lookup(lowers, path)
        .with_context(|| format!("look up {path} in the image"))?
        .is_some_and(|found| found.symlink_metadata().is_ok_and(|m| m.is_dir())))
}
