//! Differential tests against BuildKit itself: every Dockerfile of the conformance suite
//! (`tests/dockerfile/`) and of the real-world corpus (`tests/buildkit/`) is built by docker's
//! BuildKit and by strata on the identical base (one `busybox:latest`, `docker save`d once and
//! `strata load`ed from that archive), both images are read from their docker-archive tarballs
//! by the same code, and their configs, histories and flattened file trees (path, type, mode,
//! owner, size, content hash, link target, hardlink groups; mtimes wherever either side kept a
//! time from before the build) must be equal, apart from the differences `KNOWN` lists with the
//! reason docs/dockerfile.md gives. Cases that must fail must fail in both.
//!
//! Each case is its own test (they run in parallel); the dockerd is the interop world's one.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use super::world::{run, world};
use crate::support::{Env, busybox_tar};

/// The mtime every context file gets before both builds: a time no build step makes, so a
/// file that kept it was copied with its context mtime.
const CONTEXT_MTIME: &str = "@1000000000";

/// Differences BuildKit and strata are known to have, as (case, prefix of the difference
/// line, reason); docs/dockerfile.md's table "Differences from BuildKit" lists the same, in the
/// same order ([`known_differences_are_the_documented_ones`]). `*` is any case.
const KNOWN: &[(&str, &str, &str)] = &[
    (
        "*",
        "dir-mtime ",
        "BuildKit gives directories it writes into the time of the build; strata keeps the \
         source's (context, archive, base image) time, so that a COPY built again gives the \
         same layer (its digest is its content's, and a shared cache hits across machines)",
    ),
    (
        "*",
        "mountpoint ",
        "BuildKit leaves the mountpoints runc made (/dev, /proc, /sys, RUN --mount targets) \
         in the layer as empty directories; strata's sandbox leaves no trace of its mounts",
    ),
    (
        "copy-chmod-symbolic",
        "tree /",
        "Debian's BuildKit (dockerfile frontend 1.2) ignores a --chmod it cannot read as octal; symbolic modes are dockerfile 1.14's (moby/buildkit#5734), which strata follows (the conformance case checks the modes)",
    ),
    (
        "dockerignore-syntax",
        "tree /ctx/notes.md: only buildkit",
        "Debian's docker (20.10) matches the .dockerignore line `**.md` as its old fileutils did (a file named `.md` in any directory); moby/patternmatcher, which BuildKit and docker have used since (its suffix match), and strata take every path ending in .md",
    ),
    (
        "dockerignore-syntax",
        "tree /ctx/x/deep.md: only buildkit",
        "Debian's docker (20.10) matches the .dockerignore line `**.md` as its old fileutils did (a file named `.md` in any directory); moby/patternmatcher, which BuildKit and docker have used since (its suffix match), and strata take every path ending in .md",
    ),
    (
        "from-scratch",
        "tree /etc: only buildkit",
        "BuildKit's runc leaves /etc, the directory of the /etc/hosts and /etc/resolv.conf it mounts, in the layer of a RUN in a scratch image; strata's sandbox leaves no trace of its mounts",
    ),
];

/// Cases the BuildKit of Debian's docker.io (20.10, dockerfile frontend 1.2, no network to
/// fetch a newer one) cannot build, with the error it gives: only strata's side is checked.
const OLD_BUILDKIT: &[(&str, &str)] = &[
    ("copy-exclude", "Unknown flag: exclude"),
    ("copy-from-exclude", "Unknown flag: exclude"),
    ("error-exclude-pattern", "Unknown flag: exclude"),
    ("copy-link", "Unknown flag: link"),
    ("copy-parents", "Unknown flag: parents"),
    ("copy-parents-exclude", "Unknown flag: parents"),
    ("heredoc-copy", "unknown instruction"),
    ("heredoc-dash-tabs", "unknown instruction"),
    ("heredoc-run", "unknown instruction"),
    ("heredoc-two", "unknown instruction"),
    ("heredoc-script", "unknown instruction"),
    ("network-none", "Unknown flag: network"),
    ("run-security-insecure", "unknown flag: --allow"),
    ("mount-secret", "unexpected key 'env'"),
    ("huge-run-line-exec", "max allowed size of 65535"),
];

/// Where the two corpora are.
fn corpora() -> [PathBuf; 2] {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    [root.join("tests/dockerfile"), root.join("tests/buildkit")]
}

/// The case directory named `name` (in either corpus).
fn case_dir(name: &str) -> PathBuf {
    corpora()
        .into_iter()
        .map(|c| c.join(name))
        .find(|d| d.join("Dockerfile").is_file())
        .unwrap_or_else(|| panic!("no corpus case {name}"))
}

/// The header lines of a case's `checks` file, if any.
#[derive(Default)]
struct Header {
    /// `# build: ARGS...`: extra build arguments for both builders.
    args: Vec<String>,
    /// `# expect-failure: TEXT`: both builds must fail.
    failure: Option<String>,
    /// `# hardlink: FILE LINK`: the staged context's `LINK` is made a hardlink of its `FILE`
    /// (git keeps no hardlinks).
    hardlinks: Vec<(String, String)>,
    /// `# base: DIR NAME`: the case's `DIR` is built first, by each builder, as the image
    /// `NAME` the case's Dockerfile builds `FROM` (an image of one's own, not a stage).
    bases: Vec<(String, String)>,
}

fn header(dir: &Path) -> Header {
    let text = fs::read_to_string(dir.join("checks")).unwrap_or_default();
    let mut header = Header::default();
    for line in text.lines() {
        if let Some(a) = line.strip_prefix("# build:") {
            header.args.extend(a.split_whitespace().map(str::to_string));
        } else if let Some(t) = line.strip_prefix("# expect-failure:") {
            header.failure = Some(t.trim().to_string());
        } else if let Some(pair) = line.strip_prefix("# hardlink:") {
            header.hardlinks.push(two_words(pair, line));
        } else if let Some(pair) = line.strip_prefix("# base:") {
            header.bases.push(two_words(pair, line));
        }
    }
    header
}

/// The two words of a header line's value (`FILE LINK`, `DIR NAME`).
fn two_words(value: &str, line: &str) -> (String, String) {
    let (a, b) = value
        .trim()
        .split_once(' ')
        .unwrap_or_else(|| panic!("two words after the colon, not `{line}`"));
    (a.to_string(), b.trim().to_string())
}

/// `busybox:latest` in docker (imported from the busybox rootfs) and its `docker save`
/// archive, which every strata store of this module loads: both sides build on one base.
fn base_archive() -> &'static Path {
    static ARCHIVE: OnceLock<PathBuf> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let w = world();
        run(w
            .docker()
            .arg("import")
            .arg(busybox_tar())
            .arg("busybox:latest"));
        let archive = w.root.join("busybox-base.tar");
        run(w
            .docker()
            .args(["save", "-o"])
            .arg(&archive)
            .arg("busybox:latest"));
        archive
    })
}

/// One file of a flattened image.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    kind: char,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    sha256: String,
    link: String,
    mtime: u64,
}

impl Entry {
    fn describe(&self) -> String {
        format!(
            "{} {:o} {}:{} size={} sha={} link={:?} mtime={}",
            self.kind,
            self.mode,
            self.uid,
            self.gid,
            self.size,
            &self.sha256[..self.sha256.len().min(12)],
            self.link,
            self.mtime
        )
    }
}

/// An image read from a docker-archive: its config JSON and its layers applied in order.
struct Image {
    config: serde_json::Value,
    tree: BTreeMap<String, Entry>,
    /// Hardlink groups (sorted paths), each of two or more.
    hardlinks: BTreeSet<Vec<String>>,
}

fn read_archive(path: &Path) -> Image {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut archive = tar::Archive::new(fs::File::open(path).expect("open the archive"));
    for entry in archive.entries().expect("read the archive") {
        let mut entry = entry.expect("an archive entry");
        let name = entry.path().expect("a path").to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .expect("read an archive entry");
        files.insert(name.trim_start_matches("./").to_string(), bytes);
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&files["manifest.json"]).expect("manifest.json");
    let config_name = manifest[0]["Config"].as_str().expect("Config");
    let config: serde_json::Value =
        serde_json::from_slice(&files[config_name]).expect("the config");
    let mut tree = BTreeMap::new();
    let mut edges = Vec::new();
    for layer in manifest[0]["Layers"].as_array().expect("Layers") {
        let bytes = &files[layer.as_str().expect("a layer name")];
        apply_layer(bytes, &mut tree, &mut edges);
    }
    Image {
        config,
        hardlinks: groups(&tree, edges),
        tree,
    }
}

fn normal(path: &str) -> String {
    let p = path.trim_start_matches("./").trim_matches('/');
    format!("/{p}")
}

/// Applies one layer tar: whiteouts and opaque dirs remove from the lower layers.
fn apply_layer(
    bytes: &[u8],
    tree: &mut BTreeMap<String, Entry>,
    edges: &mut Vec<(String, String)>,
) {
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().expect("read a layer") {
        let mut entry = entry.expect("a layer entry");
        let path = normal(&entry.path().expect("a path").to_string_lossy());
        let (dir, base) = path.rsplit_once('/').expect("an absolute path");
        if base == ".wh..wh..opq" {
            let prefix = format!("{dir}/");
            tree.retain(|p, _| !p.starts_with(&prefix));
            continue;
        }
        if let Some(gone) = base.strip_prefix(".wh.") {
            let gone = format!("{dir}/{gone}");
            let prefix = format!("{gone}/");
            tree.retain(|p, _| *p != gone && !p.starts_with(&prefix));
            continue;
        }
        let header = entry.header().clone();
        let kind = header.entry_type();
        let link = entry
            .link_name()
            .expect("a link name")
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        if kind.is_hard_link() {
            let target = normal(&link);
            let copy = tree
                .get(&target)
                .cloned()
                .unwrap_or_else(|| panic!("hardlink {path} to {target}, which is not there"));
            edges.push((path.clone(), target));
            tree.insert(path, copy);
            continue;
        }
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("read a layer file");
        let kind_char = if kind.is_dir() {
            'd'
        } else if kind.is_symlink() {
            'l'
        } else if kind.is_file() {
            'f'
        } else if kind.is_character_special() {
            'c'
        } else if kind.is_block_special() {
            'b'
        } else if kind.is_fifo() {
            'p'
        } else {
            '?'
        };
        let new = Entry {
            kind: kind_char,
            mode: header.mode().expect("a mode") & 0o7777,
            uid: header.uid().expect("a uid"),
            gid: header.gid().expect("a gid"),
            size: content.len() as u64,
            sha256: if kind_char == 'f' {
                strata_digest::Digest::of(&content).hex().to_string()
            } else {
                String::new()
            },
            link: if kind_char == 'l' {
                link
            } else {
                String::new()
            },
            mtime: header.mtime().expect("an mtime"),
        };
        if kind_char != 'd' {
            // A non-directory replaces what was there, a directory's contents included.
            let prefix = format!("{path}/");
            tree.retain(|p, _| !p.starts_with(&prefix));
        }
        tree.insert(path, new);
    }
}

/// The hardlink groups of the final tree: paths joined by a link entry, both still there.
fn groups(tree: &BTreeMap<String, Entry>, edges: Vec<(String, String)>) -> BTreeSet<Vec<String>> {
    let mut sets: Vec<BTreeSet<String>> = Vec::new();
    for (a, b) in edges {
        if !tree.contains_key(&a) || !tree.contains_key(&b) {
            continue;
        }
        let mut merged: BTreeSet<String> = [a, b].into();
        sets.retain(|s| {
            if s.iter().any(|p| merged.contains(p)) {
                merged.extend(s.iter().cloned());
                false
            } else {
                true
            }
        });
        sets.push(merged);
    }
    sets.into_iter().map(|s| s.into_iter().collect()).collect()
}

/// A config value with "nothing" spelled one way: null, [], {} and absent are the same.
fn field(value: &serde_json::Value, pointer: &str) -> serde_json::Value {
    match value.pointer(pointer) {
        None | Some(serde_json::Value::Null) => serde_json::Value::Null,
        Some(serde_json::Value::Array(a)) if a.is_empty() => serde_json::Value::Null,
        Some(serde_json::Value::Object(o)) if o.is_empty() => serde_json::Value::Null,
        Some(v) => v.clone(),
    }
}

/// The mount targets a Dockerfile's `RUN --mount`s name (and their parents), the secrets'
/// default directory, and the mountpoints of every container: BuildKit leaves these as empty
/// directories in the layer when the image lacks them, strata does not.
fn mountpoints(dockerfile: &str) -> BTreeSet<String> {
    let mut targets: BTreeSet<String> = ["/dev", "/proc", "/sys"].map(String::from).into();
    for flag in dockerfile.split_whitespace() {
        let Some(spec) = flag.strip_prefix("--mount=") else {
            continue;
        };
        for kv in spec.split(',') {
            if let Some((k, v)) = kv.split_once('=')
                && matches!(k, "target" | "dst" | "destination")
            {
                targets.insert(normal(v));
            }
        }
        if spec.contains("type=secret") {
            targets.insert("/run/secrets".into());
        }
    }
    let mut all = BTreeSet::new();
    for t in targets {
        let mut p = t.as_str();
        while !p.is_empty() {
            all.insert(p.to_string());
            p = p.rsplit_once('/').map_or("", |(parent, _)| parent);
        }
    }
    all
}

/// Every difference of `ours` from `theirs`, one line each. Two kinds of line have their own
/// prefix so `KNOWN` can name them for every case: `dir-mtime` (a directory whose only
/// difference is that BuildKit gave it the time of the build) and `mountpoint` (an empty
/// directory only BuildKit has, at a mount target; see [`mountpoints`]).
fn differences(
    theirs: &Image,
    ours: &Image,
    started: u64,
    mounts: &BTreeSet<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for pointer in [
        "/architecture",
        "/os",
        "/author",
        "/config/Env",
        "/config/Cmd",
        "/config/Entrypoint",
        "/config/User",
        "/config/WorkingDir",
        "/config/Labels",
        "/config/ExposedPorts",
        "/config/Volumes",
        "/config/StopSignal",
        "/config/Healthcheck",
        "/config/Shell",
        "/config/OnBuild",
        "/config/ArgsEscaped",
    ] {
        let (t, o) = (field(&theirs.config, pointer), field(&ours.config, pointer));
        if t != o {
            out.push(format!("config {pointer}: buildkit {t} strata {o}"));
        }
    }
    let history = |i: &Image| -> Vec<String> {
        i.config["history"]
            .as_array()
            .map(|h| {
                h.iter()
                    .map(|e| {
                        format!(
                            "{}{}",
                            e["created_by"].as_str().unwrap_or(""),
                            if e["empty_layer"].as_bool() == Some(true) {
                                " (empty)"
                            } else {
                                ""
                            }
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (th, oh) = (history(theirs), history(ours));
    // The texts and the layer marks apart: `history-layers` when only which entries are
    // empty layers differs.
    let text = |h: &[String]| -> Vec<String> {
        h.iter()
            .map(|e| e.trim_end_matches(" (empty)").to_string())
            .collect()
    };
    if text(&th) != text(&oh) {
        out.push(format!("history: buildkit {th:#?}\nstrata {oh:#?}"));
    } else if th != oh {
        out.push(format!("history-layers: buildkit {th:#?}\nstrata {oh:#?}"));
    }
    let paths: BTreeSet<&String> = theirs.tree.keys().chain(ours.tree.keys()).collect();
    for path in paths {
        match (theirs.tree.get(path), ours.tree.get(path)) {
            (Some(t), None)
                if t.kind == 'd'
                    && mounts.contains(path)
                    && theirs
                        .tree
                        .keys()
                        .filter(|p| p.starts_with(&format!("{path}/")))
                        .all(|p| mounts.contains(p)) =>
            {
                out.push(format!("mountpoint {path}: only buildkit has it"))
            }
            (Some(t), None) => out.push(format!(
                "tree {path}: only buildkit has it: {}",
                t.describe()
            )),
            (None, Some(o)) => {
                out.push(format!("tree {path}: only strata has it: {}", o.describe()))
            }
            (Some(t), Some(o)) => {
                // A time from before the build was kept from the context or the base: the
                // other side must keep it too. Times made during the builds differ.
                let compare_mtime = t.mtime < started || o.mtime < started;
                let same = Entry {
                    mtime: if compare_mtime { t.mtime } else { o.mtime },
                    // A directory's size in a tar is 0 on both sides; no need to special-case.
                    ..t.clone()
                } == *o;
                let mtime_only = Entry {
                    mtime: o.mtime,
                    ..t.clone()
                } == *o;
                if !same && t.kind == 'd' && mtime_only && t.mtime >= started {
                    out.push(format!(
                        "dir-mtime {path}: buildkit {} strata {}",
                        t.mtime, o.mtime
                    ));
                } else if !same {
                    out.push(format!(
                        "tree {path}: buildkit {} strata {}",
                        t.describe(),
                        o.describe()
                    ));
                }
            }
            (None, None) => unreachable!("the path came from one of the trees"),
        }
    }
    if theirs.hardlinks != ours.hardlinks {
        out.push(format!(
            "hardlinks: buildkit {:?} strata {:?}",
            theirs.hardlinks, ours.hardlinks
        ));
    }
    out
}

/// Copies a case's context (its `checks` left out), keeping symlinks, makes the `hardlinks`
/// of its header, and gives every entry the [`CONTEXT_MTIME`].
fn stage(case: &Path, to: &Path, hardlinks: &[(String, String)]) {
    run(Command::new("cp").arg("-a").arg(case).arg(to));
    let _ = fs::remove_file(to.join("checks"));
    for (file, link) in hardlinks {
        fs::remove_file(to.join(link)).expect("remove the file a hardlink replaces");
        fs::hard_link(to.join(file), to.join(link)).expect("make a hardlink in the context");
    }
    run(Command::new("find").arg(to).args([
        "-exec",
        "touch",
        "-h",
        "-d",
        CONTEXT_MTIME,
        "{}",
        "+",
    ]));
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// When the first case began (less a second): every time a build of any case made is
/// later, the context's and the base image's are earlier. Per case would not do: BuildKit
/// may give a step two cases have in common the result of the other's build, `--no-cache` or
/// not (a `WORKDIR /srv` on busybox in two cases kept the time of the first one's build,
/// minutes before the second case began).
fn suite_started() -> u64 {
    static STARTED: OnceLock<u64> = OnceLock::new();
    *STARTED.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
            - 1
    })
}

/// Builds case `name` with BuildKit and with strata and compares the results.
fn differential(name: &str) {
    let started = suite_started();
    let case = case_dir(name);
    let Header {
        args,
        failure: expect_failure,
        hardlinks,
        bases,
    } = header(&case);
    let w = world();
    let base = base_archive();
    let work = tempfile::Builder::new()
        .prefix("strata-diff-")
        .tempdir_in(&w.root)
        .expect("tempdir");
    // A real file right outside the context, for the cases that try to reach it.
    fs::write(work.path().join("outside"), "outside the context\n").expect("write outside");
    let ctx = work.path().join("ctx");
    stage(&case, &ctx, &hardlinks);

    for (dir, base) in &bases {
        run(w
            .docker()
            .env("DOCKER_BUILDKIT", "1")
            .args(["build", "--no-cache", "--network", "host", "-t", base])
            .arg(ctx.join(dir)));
    }
    let tag = format!("strata-diff/{name}:1");
    let theirs = w
        .docker()
        .env("DOCKER_BUILDKIT", "1")
        .current_dir(&ctx)
        // No case reads the cache of a build before it (whose times it would keep).
        .args([
            "build",
            "--no-cache",
            "--network",
            "host",
            "--progress",
            "plain",
            "-t",
            &tag,
        ])
        .args(&args)
        // Absolute: docker keys the context it syncs to BuildKit by the path as given, so
        // concurrent builds of "." would share one (and read each other's Dockerfiles).
        .arg(&ctx)
        .output()
        .expect("run docker build");

    let env = Env::empty();
    let load = env.strata(&["load", base.to_str().expect("a UTF-8 path")]);
    assert!(load.status.success(), "strata load: {}", stderr(&load));
    for (dir, base) in &bases {
        let built = env
            .cmd()
            .current_dir(ctx.join(dir))
            .args(["build", "-f", "Dockerfile", ".", "-t", base])
            .output()
            .expect("run strata build");
        assert!(
            built.status.success(),
            "strata build of {dir}: {}",
            stderr(&built)
        );
    }
    let ours = env
        .cmd()
        .current_dir(&ctx)
        .args([
            "build",
            "-f",
            "Dockerfile",
            ".",
            "-t",
            name,
            "--progress",
            "plain",
        ])
        .args(&args)
        .output()
        .expect("run strata build");

    if let Some((_, error)) = OLD_BUILDKIT.iter().find(|(c, _)| *c == name) {
        assert!(
            !theirs.status.success() && stderr(&theirs).contains(error),
            "{name}: this BuildKit was expected to fail with `{error}`:\n{}",
            stderr(&theirs)
        );
        assert_eq!(
            ours.status.success(),
            expect_failure.is_none(),
            "{name}: strata:\n{}",
            stderr(&ours)
        );
        return;
    }
    if let Some(expected) = expect_failure {
        assert!(
            !theirs.status.success(),
            "{name}: BuildKit built what strata must refuse ({expected}):\n{}",
            stderr(&theirs)
        );
        assert!(
            !ours.status.success(),
            "{name}: strata built what must fail ({expected})"
        );
        return;
    }
    assert!(
        theirs.status.success(),
        "{name}: BuildKit failed:\n{}",
        stderr(&theirs)
    );
    assert!(
        ours.status.success(),
        "{name}: strata failed:\n{}",
        stderr(&ours)
    );
    let their_tar = work.path().join("buildkit.tar");
    run(w.docker().args(["save", "-o"]).arg(&their_tar).arg(&tag));
    let our_tar = work.path().join("strata.tar");
    let export = env.strata(&[
        "export",
        name,
        "--format",
        "docker-archive",
        "-o",
        our_tar.to_str().expect("a UTF-8 path"),
    ]);
    assert!(
        export.status.success(),
        "strata export: {}",
        stderr(&export)
    );
    let _ = w.docker().args(["rmi", &tag]).output();
    for (_, base) in &bases {
        let _ = w.docker().args(["rmi", base]).output();
    }

    let dockerfile = fs::read_to_string(ctx.join("Dockerfile")).expect("read the Dockerfile");
    let diffs: Vec<String> = differences(
        &read_archive(&their_tar),
        &read_archive(&our_tar),
        started,
        &mountpoints(&dockerfile),
    )
    .into_iter()
    .filter(|d| {
        !KNOWN
            .iter()
            .any(|(c, prefix, _)| (*c == "*" || *c == name) && d.starts_with(prefix))
    })
    .collect();
    assert!(
        diffs.is_empty(),
        "{name}: {} difference(s) from BuildKit:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// The rows of the markdown table between `<!-- NAME:start -->` and `<!-- NAME:end -->` in
/// docs/dockerfile.md, each cell without its code quotes.
fn documented(name: &str) -> Vec<Vec<String>> {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/dockerfile.md");
    let text = fs::read_to_string(&docs).expect("read docs/dockerfile.md");
    let start = format!("<!-- {name}:start -->");
    let end = format!("<!-- {name}:end -->");
    let (_, rest) = text
        .split_once(&start)
        .unwrap_or_else(|| panic!("docs/dockerfile.md has no {start}"));
    let (table, _) = rest
        .split_once(&end)
        .unwrap_or_else(|| panic!("docs/dockerfile.md has no {end}"));
    table
        .lines()
        .filter_map(|l| l.strip_prefix("| ")?.strip_suffix(" |"))
        .skip(1) // the header row
        .map(|row| {
            row.split(" | ")
                .map(|cell| {
                    let cell = cell.strip_prefix('`').unwrap_or(cell);
                    cell.strip_suffix('`').unwrap_or(cell).to_string()
                })
                .collect()
        })
        .collect()
}

/// docs/dockerfile.md lists exactly the waived differences and the cases this BuildKit
/// cannot build, with the same reasons and errors, so the two cannot drift apart.
#[test]
fn known_differences_are_the_documented_ones() {
    let known: Vec<Vec<String>> = KNOWN
        .iter()
        .map(|(c, p, r)| vec![c.to_string(), p.to_string(), r.to_string()])
        .collect();
    assert_eq!(documented("known-differences"), known);
    let old: Vec<Vec<String>> = OLD_BUILDKIT
        .iter()
        .map(|(c, e)| vec![c.to_string(), e.to_string()])
        .collect();
    assert_eq!(documented("old-buildkit"), old);
}

macro_rules! cases {
    ($($test:ident => $name:literal,)*) => {
        $(#[test] fn $test() { differential($name) })*

        /// Every case directory of both corpora has its test above.
        #[test]
        fn every_corpus_case_has_a_differential_test() {
            let listed: BTreeSet<&str> = [$($name),*].into();
            let mut missing = Vec::new();
            let mut count = 0;
            for corpus in corpora() {
                for entry in fs::read_dir(&corpus).expect("read a corpus") {
                    let dir = entry.expect("a corpus entry").path();
                    if dir.join("Dockerfile").is_file() {
                        count += 1;
                        let name = dir.file_name().expect("a name").to_string_lossy().into_owned();
                        if !listed.contains(name.as_str()) {
                            missing.push(name);
                        }
                    }
                }
            }
            assert!(missing.is_empty(), "corpus cases without a differential test: {missing:?}");
            assert!(count >= 80, "the corpus has at least 80 cases, found {count}");
        }
    };
}

cases! {
    add_archive_content => "add-archive-content",
    add_archives => "add-archives",
    add_local => "add-local",
    arg_build_arg_override => "arg-build-arg-override",
    arg_build_args_cli => "arg-build-args-cli",
    arg_env_precedence => "arg-env-precedence",
    arg_env_scoping => "arg-env-scoping",
    arg_global_from => "arg-global-from",
    arg_platform => "arg-platform",
    arg_stage_defaults => "arg-stage-defaults",
    chown_chmod_forms => "chown-chmod-forms",
    cli_flags => "cli-flags",
    cmd_entrypoint_exec => "cmd-entrypoint-exec",
    cmd_shell_form => "cmd-shell-form",
    copy_basic => "copy-basic",
    copy_from_wildcards => "copy-from-wildcards",
    copy_chmod => "copy-chmod",
    copy_chmod_symbolic => "copy-chmod-symbolic",
    copy_chown => "copy-chown",
    copy_exclude => "copy-exclude",
    copy_parents => "copy-parents",
    copy_parents_exclude => "copy-parents-exclude",
    copy_from_exclude => "copy-from-exclude",
    copy_from_image_stage_chain => "copy-from-image-stage-chain",
    copy_from_stage => "copy-from-stage",
    copy_glob => "copy-glob",
    copy_into_image_dir => "copy-into-image-dir",
    copy_link => "copy-link",
    copy_multi_src => "copy-multi-src",
    copy_through_image_symlinks => "copy-through-image-symlinks",
    copy_wildcards => "copy-wildcards",
    dockerignore => "dockerignore",
    dockerignore_patterns => "dockerignore-patterns",
    dockerignore_syntax => "dockerignore-syntax",
    empty_layers => "empty-layers",
    entrypoint_cmd_forms => "entrypoint-cmd-forms",
    entrypoint_resets_cmd => "entrypoint-resets-cmd",
    env_expansion => "env-expansion",
    env_forms => "env-forms",
    env_from_base => "env-from-base",
    env_from_image => "env-from-image",
    env_path_extend => "env-path-extend",
    error_add_git => "error-add-git",
    error_copy_missing_file => "error-copy-missing-file",
    error_copy_under_a_file => "error-copy-under-a-file",
    error_dockerignore_pattern => "error-dockerignore-pattern",
    error_dockerignored_source => "error-dockerignored-source",
    error_exclude_pattern => "error-exclude-pattern",
    error_run_fails => "error-run-fails",
    error_run_missing_command => "error-run-missing-command",
    error_run_security_not_allowed => "error-run-security-not-allowed",
    error_run_security_unknown => "error-run-security-unknown",
    error_unknown_instruction => "error-unknown-instruction",
    error_unknown_target => "error-unknown-target",
    escape_backtick => "escape-backtick",
    expose => "expose",
    expose_volume_stopsignal => "expose-volume-stopsignal",
    from_scratch => "from-scratch",
    go_like_static => "go-like-static",
    hardlinks_in_context => "hardlinks-in-context",
    healthcheck_exec => "healthcheck-exec",
    healthcheck_forms => "healthcheck-forms",
    healthcheck_none => "healthcheck-none",
    healthcheck_options => "healthcheck-options",
    heredoc_copy => "heredoc-copy",
    heredoc_dash_tabs => "heredoc-dash-tabs",
    heredoc_run => "heredoc-run",
    heredoc_script => "heredoc-script",
    heredoc_two => "heredoc-two",
    hostile_copy_deep_parent => "hostile-copy-deep-parent",
    hostile_copy_parent => "hostile-copy-parent",
    hostile_symlink_file => "hostile-symlink-file",
    hostile_symlink_in_dir => "hostile-symlink-in-dir",
    hostile_symlink_parent_dir => "hostile-symlink-parent-dir",
    huge_run_line_exec => "huge-run-line-exec",
    huge_run_line_shell => "huge-run-line-shell",
    label => "label",
    line_continuation => "line-continuation",
    mount_bind => "mount-bind",
    mount_cache => "mount-cache",
    mount_secret => "mount-secret",
    mount_tmpfs => "mount-tmpfs",
    multistage_app => "multistage-app",
    multistage_target => "multistage-target",
    network_none => "network-none",
    node_like_app => "node-like-app",
    onbuild => "onbuild",
    onbuild_from_image => "onbuild-from-image",
    onbuild_triggers => "onbuild-triggers",
    python_like_app => "python-like-app",
    run_forms => "run-forms",
    run_mount_kinds => "run-mount-kinds",
    run_security_insecure => "run-security-insecure",
    shell_change => "shell-change",
    shell_forms_json => "shell-forms-json",
    shell_maintainer => "shell-maintainer",
    special_files => "special-files",
    stage_inherit_config => "stage-inherit-config",
    stopsignal => "stopsignal",
    symlinks_in_context => "symlinks-in-context",
    target_middle => "target-middle",
    target_skips_later_stages => "target-skips-later-stages",
    unneeded_stage_skipped => "unneeded-stage-skipped",
    user_by_name => "user-by-name",
    user_ids => "user-ids",
    user_numeric => "user-numeric",
    volume => "volume",
    whiteouts => "whiteouts",
    workdir => "workdir",
    workdir_chain => "workdir-chain",
    workdir_user => "workdir-user",
}
