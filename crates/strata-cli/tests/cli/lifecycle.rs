//! An image's life in the store: tagged, listed, its history read, removed as docker removes
//! images; pulled from and logged out of a real registry; the commands that need no store
//! (version, completions, the manual page) run by the real shells and `man`.

use std::path::Path;
use std::process::{Command, Output};

use crate::registry::Registry;
use crate::support::{Env, store_listing};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs strata and asserts success; returns stdout.
fn ok(env: &Env, args: &[&str]) -> String {
    let out = env.strata(args);
    assert!(
        out.status.success(),
        "strata {args:?} failed:\n{}",
        stderr(&out)
    );
    stdout(&out)
}

/// The image id (config digest) of `image`, from `strata images --json`.
fn image_id(env: &Env, image: &str) -> String {
    let json: serde_json::Value =
        serde_json::from_str(&ok(env, &["images", "--json", image])).expect("images JSON");
    json[0]["id"].as_str().expect("an id").to_string()
}

fn tag_names(env: &Env) -> Vec<String> {
    let json: serde_json::Value =
        serde_json::from_str(&ok(env, &["images", "--json"])).expect("images JSON");
    json.as_array()
        .expect("array")
        .iter()
        .map(|i| i["name"].as_str().expect("name").to_string())
        .collect()
}

#[test]
fn rmi_removes_by_name_and_by_id_as_docker_does() {
    let env = Env::new();
    ok(&env, &["tag", "busybox", "mine:1"]);
    ok(&env, &["tag", "busybox:latest", "127.0.0.1:5000/team/box"]);
    assert_eq!(
        tag_names(&env),
        ["127.0.0.1:5000/team/box:latest", "busybox:latest", "mine:1"]
    );
    let id = image_id(&env, "busybox");
    assert_eq!(image_id(&env, "mine:1"), id, "one image, three tags");
    let blobs_before: Vec<_> = store_listing(env.store.path())
        .into_iter()
        .filter(|(p, _)| p.starts_with("blobs/"))
        .collect();

    // An id names the image; with several tags it is refused without -f, as docker's
    // "referenced in multiple repositories", and nothing is removed.
    let prefix = &id[7..15];
    let out = env.strata(&["rmi", prefix]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("several tags") && stderr(&out).contains("-f"),
        "{}",
        stderr(&out)
    );
    assert_eq!(tag_names(&env).len(), 3);

    // By name: that tag only.
    assert_eq!(ok(&env, &["rmi", "mine:1"]), "Untagged: mine:1\n");
    // Names that exist and names that do not: the first removed, the second reported, exit 1.
    let out = env.strata(&["rmi", "127.0.0.1:5000/team/box", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "Untagged: 127.0.0.1:5000/team/box:latest\n");
    assert!(
        stderr(&out).contains("no image `nope:latest`"),
        "{}",
        stderr(&out)
    );
    // The id of an image with one tag left removes it, `sha256:` or not; -f then is harmless.
    ok(&env, &["tag", "busybox", "again"]);
    let out = ok(&env, &["rmi", "-f", &id]);
    assert_eq!(out, "Untagged: again:latest\nUntagged: busybox:latest\n");
    assert!(tag_names(&env).is_empty());
    let out = env.strata(&["rmi", &id[7..19]]);
    assert!(
        !out.status.success() && stderr(&out).contains("no image"),
        "{}",
        stderr(&out)
    );
    let out = env.strata(&["run", "busybox", "true"]);
    assert!(!out.status.success());
    // Only tags went: the blobs stay for `strata gc`.
    let blobs_after: Vec<_> = store_listing(env.store.path())
        .into_iter()
        .filter(|(p, _)| p.starts_with("blobs/"))
        .collect();
    assert_eq!(blobs_before, blobs_after);
}

#[test]
fn tag_names_an_image_again_and_refuses_bad_names() {
    let env = Env::new();
    let dir = env.project(
        "app",
        "image: app\nfrom: busybox:latest\nshell:\n  install:\n  - echo app > /which\n",
    );
    env.build_ok(&dir);
    let id = image_id(&env, "app");
    // By id (a prefix), to a registry-style name; then over an existing tag.
    ok(&env, &["tag", &id[7..17], "127.0.0.1:5000/team/app:v1"]);
    assert_eq!(
        env.run_sh("127.0.0.1:5000/team/app:v1", "cat /which"),
        "app\n"
    );
    ok(&env, &["tag", "busybox", "app"]);
    let out = env.strata(&["run", "app", "cat", "/which"]);
    assert!(!out.status.success(), "app now names busybox");
    // The tag made from a built image keeps its stages.
    let json: serde_json::Value = serde_json::from_str(&ok(
        &env,
        &["images", "--json", "127.0.0.1:5000/team/app:v1"],
    ))
    .expect("JSON");
    assert!(
        json[0]["stages"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["stage"] == "install")),
        "{json}"
    );

    for (source, target, says) in [
        ("nope", "x", "no image `nope:latest`"),
        ("busybox", "Bad/Name", "not a valid image name"),
        (
            "busybox",
            "h/a@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "digest",
        ),
    ] {
        let out = env.strata(&["tag", source, target]);
        assert!(
            !out.status.success() && stderr(&out).contains(says),
            "tag {source} {target}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn history_lists_each_layer_newest_first_as_docker_history() {
    let env = Env::new();
    let long = "echo this command line is much longer than forty-five characters > /long";
    let dir = env.project(
        "app",
        &format!(
            "image: app\nfrom: busybox:latest\nshell:\n  install:\n  - head -c 250000 /dev/zero > /big\n  setup:\n  - {long}\ndocker:\n  ENV:\n    A: b\n"
        ),
    );
    env.build_ok(&dir);
    let table = ok(&env, &["history", "app"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("IMAGE")
            && lines[0].contains("CREATED BY")
            && lines[0].ends_with("COMMENT"),
        "{table}"
    );
    let id = image_id(&env, "app");
    assert!(lines[1].starts_with(&id[7..19]), "{table}");
    assert!(
        lines[2..].iter().all(|l| l.starts_with("<missing>")),
        "{table}"
    );
    // Columns line up under the header.
    let at = lines[0].find("SIZE").expect("SIZE column");
    let install = lines
        .iter()
        .find(|l| l.contains("app/install"))
        .unwrap_or_else(|| panic!("no install entry:\n{table}"));
    let size: String = install.chars().skip(at).take(6).collect();
    assert_eq!(size, "250kB ", "{table}");
    let setup = lines
        .iter()
        .find(|l| l.contains("app/setup"))
        .unwrap_or_else(|| panic!("no setup entry:\n{table}"));
    assert!(
        setup.contains('…') && !setup.contains("characters"),
        "{table}"
    );

    let full = ok(&env, &["history", "--no-trunc", "app"]);
    assert!(full.contains(long), "{full}");
    assert!(full.lines().nth(1).unwrap().starts_with(&id), "{full}");

    // JSON: one object per entry with docker's keys, as many as the config's history.
    let json = ok(&env, &["history", "--format", "json", "app"]);
    let entries: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(&env, &["inspect", "app"])).expect("inspect JSON");
    let recorded = inspect["config"]["history"].as_array().expect("history");
    assert_eq!(entries.len(), recorded.len());
    for key in [
        "ID",
        "CreatedAt",
        "CreatedSince",
        "CreatedBy",
        "Size",
        "Comment",
    ] {
        assert!(entries[0].get(key).is_some(), "{key}: {}", entries[0]);
    }
    assert_eq!(
        entries.last().unwrap()["CreatedBy"],
        recorded[0]["created_by"]
    );
    assert_eq!(
        ok(&env, &["history", "-q", "app"]),
        format!("{}\n", &id[7..19])
    );
    let out = env.strata(&["history", "nope"]);
    assert!(!out.status.success() && stderr(&out).contains("no image `nope`"));
}

/// A `strata` command on `env`'s store with its own docker config dir.
fn with_config(env: &Env, config: &Path, args: &[&str]) -> Output {
    env.cmd()
        .env("DOCKER_CONFIG", config)
        .env("REGISTRY_AUTH_FILE", config.join("none.json"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn pull_brings_an_image_with_the_login_and_logout_takes_the_login_away() {
    let registry = Registry::with_htpasswd("builder", "s3cret");
    let host = registry.host();
    let config = tempfile::tempdir().unwrap();
    let a = Env::new();
    let dir = a.project(
        "app",
        "image: app\nfrom: busybox:latest\nshell:\n  install:\n  - echo pulled > /which\n",
    );
    a.build_ok(&dir);
    let login = with_config(
        &a,
        config.path(),
        &["login", "-u", "builder", "-p", "s3cret", &host],
    );
    assert!(login.status.success(), "{}", stderr(&login));
    let reference = format!("{host}/team/app:1");
    let push = with_config(&a, config.path(), &["push", "app", &reference]);
    assert!(push.status.success(), "{}", stderr(&push));

    let b = Env::empty();
    let pull = with_config(&b, config.path(), &["pull", &reference]);
    assert!(pull.status.success(), "{}", stderr(&pull));
    let text = stdout(&pull);
    assert!(
        text.starts_with("Digest: sha256:")
            && text.contains(&format!("Status: Downloaded newer image for {reference}")),
        "{text}"
    );
    assert_eq!(b.run_sh(&reference, "cat /which"), "pulled\n");
    assert_eq!(image_id(&b, &reference), image_id(&a, "app"));
    // Unpacked as docker leaves a pull: a snapshot per layer.
    let snapshots = std::fs::read_dir(b.store.path().join("snapshots"))
        .unwrap()
        .count();
    assert!(snapshots >= 2, "{snapshots} snapshots");
    let again = with_config(&b, config.path(), &["pull", &reference]);
    assert!(
        stdout(&again).contains(&format!("Status: Image is up to date for {reference}")),
        "{}",
        stdout(&again)
    );

    let logout = with_config(&b, config.path(), &["logout", &host]);
    assert!(logout.status.success(), "{}", stderr(&logout));
    assert_eq!(
        stdout(&logout),
        format!("Removing login credentials for {host}\n")
    );
    let saved = std::fs::read_to_string(config.path().join("config.json")).unwrap();
    assert!(!saved.contains(&host), "{saved}");
    let denied = with_config(&b, config.path(), &["pull", &reference]);
    assert!(!denied.status.success());
    assert!(
        stderr(&denied).contains(&reference) && stderr(&denied).contains("strata login"),
        "{}",
        stderr(&denied)
    );
    let twice = with_config(&b, config.path(), &["logout", &host]);
    assert_eq!(stdout(&twice), format!("Not logged in to {host}\n"));

    // A reference the registry lacks is named, and nothing is tagged.
    let login = with_config(
        &b,
        config.path(),
        &["login", "-u", "builder", "-p", "s3cret", &host],
    );
    assert!(login.status.success());
    let missing = format!("{host}/team/nope:1");
    let out = with_config(&b, config.path(), &["pull", &missing]);
    assert!(
        !out.status.success() && stderr(&out).contains("team/nope"),
        "{}",
        stderr(&out)
    );
    assert_eq!(tag_names(&b), [reference]);
}

#[test]
fn version_completions_and_man_page_need_no_store() {
    let bin = assert_cmd::cargo::cargo_bin("strata");
    // A store that cannot be opened: these commands never open it.
    let strata = |args: &[&str]| {
        let out = Command::new(&bin)
            .env("STRATA_STORE", "/proc/strata-no-store")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let version = strata(&["--version"]);
    assert_eq!(version, format!("strata {}\n", env!("CARGO_PKG_VERSION")));
    let long = strata(&["version"]);
    assert!(long.starts_with(&version), "{long}");
    assert!(long.contains("os/arch: linux/"), "{long}");

    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        std::fs::write(dir.path().join(shell), strata(&["completion", shell])).unwrap();
    }
    // bash: the completion function offers the commands and a command's options.
    let complete = |words: &str| {
        let script = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); _strata strata \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            dir.path().join("bash").display()
        );
        let out = Command::new("bash").arg("-c").arg(script).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let commands = complete("strata rm");
    assert_eq!(commands.trim(), "rmi", "{commands}");
    let options = complete("strata rmi --f");
    assert!(options.lines().any(|l| l == "--force"), "{options}");
    // fish: its own completer lists the subcommands.
    let out = Command::new("fish")
        .arg("-c")
        .arg(format!(
            "source {}; complete -C 'strata hist'",
            dir.path().join("fish").display()
        ))
        .output()
        .expect("fish is installed by scripts/install-deps.sh");
    assert!(
        stdout(&out).lines().any(|l| l.starts_with("history")),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    // zsh: the script loads in a real zsh with compinit and defines the completer.
    let out = Command::new("zsh")
        .arg("-fc")
        .arg(format!(
            "autoload -U compinit && compinit -u -d {0}/zcompdump && source {0}/zsh && whence -w _strata",
            dir.path().display()
        ))
        .output()
        .expect("zsh is installed by scripts/install-deps.sh");
    assert!(
        stdout(&out).contains("_strata: function"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // The manual pages render with man(1).
    for (page, needles) in [
        (None, vec!["strata", "rmi", "completion"]),
        (Some("rmi"), vec!["strata-rmi", "--force"]),
    ] {
        let mut args = vec!["man"];
        args.extend(page);
        let file = dir.path().join(format!("{}.1", page.unwrap_or("strata")));
        std::fs::write(&file, strata(&args)).unwrap();
        let out = Command::new("man")
            .env("MANWIDTH", "100")
            .env("LC_ALL", "C")
            .env("MANPAGER", "cat")
            .arg("-l")
            .arg(&file)
            .output()
            .expect("man is installed by scripts/install-deps.sh");
        let text = stdout(&out);
        for needle in needles {
            assert!(text.contains(needle), "{needle} missing:\n{text}");
        }
    }
    let out = Command::new(&bin).args(["man", "nope"]).output().unwrap();
    assert!(!out.status.success() && stderr(&out).contains("no command `nope`"));
}

/// Bytes of regular file content in a tar (hard links once), docker's SIZE of a layer.
fn tar_content_bytes(tar: &Path) -> u64 {
    let mut archive = tar::Archive::new(std::fs::File::open(tar).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.header().entry_type().is_file())
        .map(|e| e.size())
        .sum()
}

#[test]
fn images_lists_docker_columns_sizes_and_ids_and_filters_by_name() {
    let env = Env::new();
    let dir = env.project(
        "app",
        "image: app\nfrom: busybox:latest\nshell:\n  install:\n  - head -c 3000000 /dev/zero > /zeros\n",
    );
    env.build_ok(&dir);
    ok(&env, &["tag", "app", "127.0.0.1:5000/team/app:v2"]);
    let table = ok(&env, &["images"]);
    let lines: Vec<&str> = table.lines().collect();
    let header = lines[0];
    let columns: Vec<usize> = [
        "REPOSITORY",
        "TAG",
        "IMAGE ID",
        "CREATED",
        "SIZE",
        "COMPRESSED",
    ]
    .iter()
    .map(|c| {
        header
            .find(c)
            .unwrap_or_else(|| panic!("{c} missing: {header}"))
    })
    .collect();
    assert_eq!(lines.len(), 4, "{table}");
    let cell = |line: &str, column: usize| -> String {
        let end = columns.get(column + 1).copied().unwrap_or(line.len());
        line.get(columns[column]..end.min(line.len()))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let row = |repository: &str| {
        *lines
            .iter()
            .find(|l| cell(l, 0) == repository)
            .unwrap_or_else(|| panic!("no {repository} row:\n{table}"))
    };
    for (repository, tag, image) in [
        ("busybox", "latest", "busybox"),
        ("app", "latest", "app"),
        ("127.0.0.1:5000/team/app", "v2", "app"),
    ] {
        let line = row(repository);
        assert_eq!(cell(line, 1), tag, "{table}");
        // docker's image id: 12 hex of the config digest.
        assert_eq!(cell(line, 2), &image_id(&env, image)[7..19], "{table}");
        // From the config's `created`; the imported root file system has none.
        let created = cell(line, 3);
        match image {
            "busybox" => assert_eq!(created, "N/A", "{table}"),
            _ => assert!(created.ends_with(" ago"), "{table}"),
        }
    }
    assert_eq!(cell(row("app"), 4), cell(row("127.0.0.1:5000/team/app"), 4));

    // Sizes: the unpacked content (docker's SIZE) and what the compressed layers weigh.
    let json: serde_json::Value =
        serde_json::from_str(&ok(&env, &["images", "--json"])).expect("JSON");
    let size = |name: &str, key: &str| {
        json.as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {json}"))[key]
            .as_u64()
            .unwrap()
    };
    let busybox = tar_content_bytes(crate::support::busybox_tar());
    assert_eq!(size("busybox:latest", "unpackedSize"), busybox);
    let app = size("app:latest", "unpackedSize");
    assert!(
        (busybox + 3_000_000..busybox + 3_010_000).contains(&app),
        "{app} vs busybox {busybox}"
    );
    // A built layer is not compressed before it leaves the machine: it counts its tar (what
    // `docker images` shows), three million zeros and their headers.
    let added = size("app:latest", "size") - size("busybox:latest", "size");
    assert!((3_000_000..3_010_000).contains(&added), "{json}");

    // A name keeps one repository, or one tag.
    for (filter, rows) in [
        ("busybox", vec!["busybox"]),
        ("app:latest", vec!["app"]),
        ("127.0.0.1:5000/team/app", vec!["127.0.0.1:5000/team/app"]),
        ("nope", vec![]),
    ] {
        let listing = ok(&env, &["images", filter]);
        let shown: Vec<String> = listing
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect();
        assert_eq!(shown, rows, "images {filter}:\n{listing}");
    }
    let ids = ok(&env, &["images", "-q"]);
    assert_eq!(ids.lines().count(), 3, "{ids}");
    assert!(ids.lines().all(|l| l.len() == 12), "{ids}");

    // A rotten stage record hides nothing: the image is listed, the stage rows say why they
    // stop.
    let install = env
        .stage_records()
        .into_iter()
        .find(|r| r["stage"] == "install")
        .expect("install stage record");
    let record = env.store.path().join(format!(
        "stages/{}.json",
        install["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
    ));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&record, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&record, b"{rotten").unwrap();
    let listing = ok(&env, &["images", "--stages"]);
    assert!(listing.lines().any(|l| l.starts_with("app ")), "{listing}");
    assert!(listing.contains("unreadable"), "{listing}");
}
