//! Files copied from other images (werf's `import:`), run like git work: a tarball of the
//! selected files of the source image's merged layers, unpacked by the toolbox in the stage's
//! container.
//!
//! A `dependencies*` stage's digest has a checksum of exactly the imported files' content and
//! metadata, so a change elsewhere in the source image does not rebuild the importer.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use strata_digest::{Digest, Hasher};
use strata_frontend::dockerfile::chmod::Chmod;
use strata_frontend::dockerfile::ignore::DockerIgnore;
use strata_git::PathFilter;
use strata_layer::merged::{self, MergedEntry};
use strata_plan::Import;
use strata_solver::StageState;
use strata_store::{LocalStore, Store};

use crate::image::StoredImage;
use crate::owner;

/// The image an import copies from: its layers, topmost first, and its name for messages.
struct Source {
    lowers: Vec<PathBuf>,
    /// "image `builder`" (with the stage when one is asked for), or its digest when the store
    /// has no stage record of it (a base image).
    name: String,
}

fn source_lowers(
    store: &LocalStore,
    import: &Import,
    deps: &[(usize, StageState)],
) -> anyhow::Result<Source> {
    let state = deps
        .iter()
        .find(|(i, _)| *i == import.image)
        .map(|(_, s)| s)
        .context("the image imported from was not built before this one")?;
    let image = match store.stage(&state.digest)? {
        Some(record) => format!("image `{}`", record.image),
        None => format!("image {}", state.manifest),
    };
    let name = match &import.stage {
        Some(stage) => format!("{image}, stage `{stage}`"),
        None => image,
    };
    let manifest = match &import.stage {
        None => state.manifest,
        // Walk the image's stage records back from its last stage to the one asked for.
        Some(stage) => {
            let mut next = Some(state.digest);
            let mut found = None;
            let mut seen = Vec::new();
            while let Some(digest) = next {
                let Some(record) = store.stage(&digest)? else {
                    break;
                };
                if &record.stage == stage {
                    found = Some(record.manifest);
                    break;
                }
                seen.push(record.stage.clone());
                next = record.parent;
            }
            found.with_context(|| {
                format!(
                    "the image imported from has no stage `{stage}`; its stages are {}",
                    seen.join(", ")
                )
            })?
        }
    };
    Ok(Source {
        lowers: StoredImage::load(store, &manifest)?.lowers(store)?,
        name,
    })
}

/// The layers of the image `import` copies from, topmost first.
pub(crate) fn source_layers(
    store: &LocalStore,
    import: &Import,
    deps: &[(usize, StageState)],
) -> anyhow::Result<Vec<PathBuf>> {
    Ok(source_lowers(store, import, deps)?.lowers)
}

/// Directories at the root of an image an import of `/` leaves out, as werf's does.
const SYSTEM_DIRS: [&str; 5] = ["proc", "sys", "dev", "run", ".werf"];

/// The entries an import takes: relative to its `add`, or for a `COPY --from` wildcard that
/// matches several paths and for `--parents`, relative to the destination directory (a
/// matched file under its name, a matched directory's content, as BuildKit's copy with
/// `CopyDirContentsOnly`).
fn selected(
    source: &Source,
    import: &Import,
    matches: &[(String, String)],
) -> anyhow::Result<Vec<MergedEntry>> {
    if let [(_, one)] = matches
        && import.parents_pattern.is_none()
    {
        return selected_at(source, import, one);
    }
    // `--parents`: a source without wildcards must exist (BuildKit's `RequiredPaths`).
    if let Some(pattern) = &import.parents_pattern
        && !has_wildcard(&import.add)
        && !has_wildcard(pattern)
    {
        let required = format!("{}/{pattern}", import.add.trim_end_matches('/'));
        if merged::lookup(&source.lowers, &required)?.is_none() {
            bail!(
                "`{required}` does not exist in {}, the image copied from",
                source.name
            );
        }
    }
    let mut entries = Vec::new();
    for (name, add) in matches {
        for mut e in selected_at(source, import, add)? {
            if e.meta.is_dir() && e.path.is_empty() {
                continue;
            }
            if e.path.is_empty() {
                e.path = name.to_string();
            }
            entries.push(e);
        }
    }
    Ok(entries)
}

/// Whether a `COPY --from` source has wildcards (BuildKit's `AllowWildcard`: `*`, `?`, `[`).
fn has_wildcard(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// The paths of the source image `import.add` names: itself, or — a Dockerfile's `COPY
/// --from` — what its wildcards match there (each `*` within one path component), in path order;
/// each with the name it is copied under.
fn sources(source: &Source, import: &Import) -> anyhow::Result<Vec<(String, String)>> {
    let name = |path: &str| {
        path.trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string()
    };
    if !import.dest_parents || !has_wildcard(&import.add) {
        return Ok(vec![(name(&import.add), import.add.clone())]);
    }
    let pattern = import.add.trim_matches('/');
    // The directory above the first component with a wildcard: what is walked.
    let fixed: Vec<&str> = pattern
        .split('/')
        .take_while(|part| !has_wildcard(part))
        .collect();
    let base = format!("/{}", fixed.join("/"));
    let glob = globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .with_context(|| format!("bad wildcard `{}`", import.add))?
        .compile_matcher();
    let depth = pattern.split('/').count();
    // In path order: the walk's.
    let matches: Vec<String> = merged::walk(&source.lowers, &base)
        .with_context(|| format!("read {base} of the source image"))?
        .into_iter()
        .filter(|e| !e.path.is_empty())
        .map(|e| match fixed.is_empty() {
            true => e.path,
            false => format!("{}/{}", fixed.join("/"), e.path),
        })
        .filter(|path| path.split('/').count() == depth && glob.is_match(path))
        .map(|path| format!("/{path}"))
        .collect();
    // BuildKit follows a matched symlink (`FollowSymlinks`): its target is copied, under the
    // link's name.
    let matches = matches
        .into_iter()
        .map(|path| Ok((name(&path), follow_links(&source.lowers, &path)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // `--parents` copies nothing for wildcards that match nothing (`AllowEmptyWildcard`).
    if matches.is_empty() && import.parents_pattern.is_none() {
        bail!(
            "`{}` matches nothing in {}, the image copied from",
            import.add,
            source.name
        );
    }
    Ok(matches)
}

/// The path `path` of the merged `lowers` names once a symlink there (and any it points to)
/// is followed inside the image; links above it are not.
fn follow_links(lowers: &[PathBuf], path: &str) -> anyhow::Result<String> {
    let mut path = path.to_string();
    for _ in 0..40 {
        let Some(host) = merged::lookup(lowers, &path)? else {
            return Ok(path);
        };
        if !std::fs::symlink_metadata(&host)?.file_type().is_symlink() {
            return Ok(path);
        }
        let target = std::fs::read_link(&host)?;
        let parent = path.rsplit_once('/').map_or("/", |(p, _)| p);
        path = strata_frontend::dockerfile::absolute(parent, &target.to_string_lossy())
            .trim_end_matches('/')
            .to_string();
        if path.is_empty() {
            path = "/".into();
        }
    }
    bail!("{path}: too many levels of symbolic links in the image copied from")
}

/// The entries an import takes from the source path `add`, relative to it.
fn selected_at(source: &Source, import: &Import, add: &str) -> anyhow::Result<Vec<MergedEntry>> {
    let lowers = &source.lowers;
    // The layers are looked up by joining the path to each layer's dir: a `..` would leave it
    // (the frontends refuse it at its line; this keeps any plan from reaching the host).
    if let Some(bad) = std::iter::once(&add.to_string())
        .chain(&import.include)
        .chain(&import.exclude)
        .find(|p| p.split('/').any(|part| part == ".."))
    {
        bail!("the import path `{bad}` contains `..`");
    }
    let start = import.parents_pattern.as_deref().map(literal_start);
    let mut entries = match start.filter(|s| !s.is_empty()) {
        Some(start) => walk_from(lowers, add, &start),
        _ => merged::walk(lowers, add),
    }
    .with_context(|| format!("read {add} of the source image"))?;
    // werf's import copies a directory with rsync as `add/`: the destination takes the
    // source directory's owner (or the import's), mode and times, whether it existed or
    // not. A Dockerfile's `COPY --from` copies the content only (`dest_parents`).
    if !import.dest_parents {
        let root = merged::lookup(lowers, add)
            .with_context(|| format!("read {add} of the source image"))?;
        if let Some(root) = root {
            let meta = std::fs::symlink_metadata(&root)?;
            if meta.is_dir() {
                entries.insert(
                    0,
                    MergedEntry {
                        path: String::new(),
                        source: root,
                        meta,
                    },
                );
            }
        }
    }
    // `--parents` walks only below its pattern's start, which may be missing.
    let missing = match import.parents_pattern {
        Some(_) => merged::lookup(lowers, add)?.is_none(),
        None => entries.is_empty(),
    };
    if missing {
        bail!(
            "`{add}` does not exist in {}, the image imported from",
            source.name
        );
    }
    let filter = PathFilter::new("/", &import.include, &import.exclude)?;
    // A Dockerfile's `--exclude`: what BuildKit's copy leaves out (an excluded directory
    // with what is below it, unless an exception takes some of it back).
    let excluded = DockerIgnore::exclude_patterns(&import.exclude_patterns)
        .map_err(|e| anyhow::anyhow!("--exclude: {e}"))?;
    // `--parents`: what its pattern takes, matched as the `--exclude` patterns are.
    let included = import
        .parents_pattern
        .as_ref()
        .map(|p| DockerIgnore::exclude_patterns(std::slice::from_ref(p)))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--parents: {e}"))?;
    // werf's import server never serves the source's system directories (rsync's `exclude =
    // /proc /sys /dev /run /.werf`, pkg/build/import_server/rsync_server.go).
    let whole_image = add.trim_matches('/').is_empty() && included.is_none();
    let system = |path: &str| {
        whole_image
            && SYSTEM_DIRS
                .iter()
                .any(|d| path == *d || path.strip_prefix(d).is_some_and(|r| r.starts_with('/')))
    };
    // Entries the masks take, and the directories above them (with their own metadata).
    let mut needed = std::collections::HashSet::new();
    for e in &entries {
        if !e.path.is_empty()
            && !system(&e.path)
            && filter.matches(&e.path)
            && !excluded.is_excluded(&e.path)
            && included.as_ref().is_none_or(|i| i.is_excluded(&e.path))
        {
            let mut p = e.path.as_str();
            needed.insert(p.to_string());
            while let Some((parent, _)) = p.rsplit_once('/') {
                if !needed.insert(parent.to_string()) {
                    break;
                }
                p = parent;
            }
        }
    }
    Ok(entries
        .into_iter()
        .filter(|e| e.path.is_empty() || needed.contains(&e.path))
        .collect())
}

/// The components of a `--parents` pattern before its first with a wildcard (all of them
/// when it has none): nothing the pattern takes lies elsewhere.
fn literal_start(pattern: &str) -> String {
    pattern
        .split('/')
        .take_while(|part| !part.contains(['*', '?', '[', '\\']))
        .collect::<Vec<_>>()
        .join("/")
}

/// [`merged::walk`] of `add` narrowed to its path `start` (relative to it) and what is below:
/// the directories on the way to `start`, `start` itself and, a directory, all below it,
/// each relative to `add`. Nothing when a component on the way is not a directory (a copy
/// never descends into one).
fn walk_from(lowers: &[PathBuf], add: &str, start: &str) -> std::io::Result<Vec<MergedEntry>> {
    let base = add.trim_end_matches('/');
    let mut entries = Vec::new();
    let mut path = String::new();
    for part in start.split('/') {
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(part);
        let Some(source) = merged::lookup(lowers, &format!("{base}/{path}"))? else {
            return Ok(Vec::new());
        };
        let meta = std::fs::symlink_metadata(&source)?;
        let is_dir = meta.is_dir();
        entries.push(MergedEntry {
            path: path.clone(),
            source,
            meta,
        });
        if !is_dir && path != start {
            return Ok(Vec::new());
        }
    }
    if entries.last().is_some_and(|e| e.meta.is_dir()) {
        for mut e in merged::walk(lowers, &format!("{base}/{start}"))? {
            e.path = format!("{start}/{}", e.path);
            entries.push(e);
        }
    }
    Ok(entries)
}

/// The checksum of the files an import copies: paths, types, modes, owners and contents.
pub fn checksum(
    store: &LocalStore,
    import: &Import,
    deps: &[(usize, StageState)],
) -> anyhow::Result<Digest> {
    let source = source_lowers(store, import, deps)?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    for e in selected(&source, import, &sources(&source, import)?)? {
        h.update(
            format!(
                "{}\0{:o}\0{}\0{}\0",
                e.path,
                e.meta.mode(),
                e.meta.uid(),
                e.meta.gid()
            )
            .as_bytes(),
        );
        if e.meta.file_type().is_symlink() {
            h.update(
                std::fs::read_link(&e.source)?
                    .as_os_str()
                    .as_encoded_bytes(),
            );
        } else if e.meta.is_file() {
            let mut f =
                File::open(&e.source).with_context(|| format!("read {}", e.source.display()))?;
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        }
        h.update(b"\n");
    }
    Ok(h.finish())
}

/// Writes the import's files into `dir` as the tarball `name` and returns the work that
/// unpacks it; `lowers` are this image's layers (for owner names).
pub fn write(
    store: &LocalStore,
    import: &Import,
    deps: &[(usize, StageState)],
    lowers: &[PathBuf],
    dir: &Path,
    name: &str,
) -> anyhow::Result<crate::files::FileWork> {
    let source = source_lowers(store, import, deps)?;
    let owner = owner::resolve(
        lowers,
        import.owner.as_deref(),
        import.group.as_deref(),
        "import",
    )?;
    let path = dir.join(name);
    let file = File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let mut tar = tar::Builder::new(BufWriter::new(file));
    tar.follow_symlinks(false);
    // `to/`, or a directory the image has at `to`: a single file source lands inside it
    // under its own name (werf copies with rsync, which does the same). Several wildcard
    // matches always land inside `to`, as in BuildKit.
    let matched = sources(&source, import)?;
    let entries = selected(&source, import, &matched)?;
    let single_file = entries.len() == 1 && entries[0].path.is_empty() && !entries[0].meta.is_dir();
    let onto_dir = || {
        merged::lookup(lowers, &import.to)
            .ok()
            .flatten()
            .and_then(|p| std::fs::symlink_metadata(p).ok())
            .is_some_and(|m| m.is_dir())
    };
    let to_dir = if single_file && (import.to.ends_with('/') || onto_dir()) {
        let base = &matched[0].0;
        format!("{}/{base}", import.to.trim_end_matches('/'))
    } else {
        import.to.clone()
    };
    let symbolic = import
        .symbolic_mode
        .as_deref()
        .map(str::parse::<Chmod>)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--chmod: {e}"))?;
    let to = to_dir.trim_matches('/');
    if import.dest_parents && !to.is_empty() {
        // `--parents` copies below the destination, which is made as a missing parent is.
        let made = match import.parents_pattern {
            Some(_) => format!("{to}/"),
            None => to.to_string(),
        };
        crate::copy::Dirs::new(lowers, owner).parents(&mut tar, &made)?;
    }
    for e in entries {
        let target = match (to.is_empty(), e.path.is_empty()) {
            (_, true) => to.to_string(),
            (true, false) => e.path.clone(),
            (false, false) => format!("{to}/{}", e.path),
        };
        if target.is_empty() {
            continue;
        }
        let mut header = tar::Header::new_gnu();
        header.set_metadata(&e.meta);
        let own = e.meta.permissions().mode() & 0o7777;
        header.set_mode(match &symbolic {
            Some(chmod) if !e.meta.file_type().is_symlink() => chmod.apply(own, e.meta.is_dir()),
            _ => import.mode.unwrap_or(own),
        });
        if import.owner.is_some() || import.group.is_some() {
            header.set_uid(owner.uid);
            header.set_gid(owner.gid);
        }
        if e.meta.file_type().is_symlink() {
            let link = std::fs::read_link(&e.source)?;
            tar.append_link(&mut header, &target, link)?;
        } else if e.meta.is_file() {
            let f =
                File::open(&e.source).with_context(|| format!("read {}", e.source.display()))?;
            tar.append_data(&mut header, &target, f)?;
        } else if e.meta.is_dir() {
            header.set_size(0);
            tar.append_data(&mut header, format!("{target}/"), std::io::empty())?;
        }
    }
    tar.into_inner()?
        .flush()
        .with_context(|| format!("write {}", path.display()))?;
    Ok(crate::files::FileWork::Unpack(name.to_string()))
}
