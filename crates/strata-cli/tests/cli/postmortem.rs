//! Failure records: a build that fails without a terminal keeps the failed step, `strata
//! failures` lists it, `strata debug` opens the monitor on it (here, or pushed with `--repo`
//! from a store on another machine: a second, empty store), gc removes records by count and
//! age, and no secret reaches a record.

use std::process::Stdio;
use std::time::Duration;

use crate::debug::{FAILING, exit_monitor, with_input};
use crate::registry::Registry;
use crate::support::Env;

/// The failure records `strata failures --json` lists.
fn failures(env: &Env) -> Vec<serde_json::Value> {
    let out = env.strata(&["failures", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
}

/// A failing build without a terminal; returns its stderr.
fn failing_build(env: &Env, dir: &std::path::Path, args: &[&str]) -> String {
    let out = env
        .cmd()
        .args(["build", "--progress", "plain"])
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

/// `strata debug FAILURE` with the monitor's commands piped in; returns its stdout.
fn debug_piped(env: &Env, failure: &str, script: &str) -> String {
    let mut cmd = env.cmd();
    cmd.args(["debug", failure]);
    let out = with_input(cmd, script);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The line of `text` after the monitor's prompt echo of `command`.
fn after<'a>(text: &'a str, command: &str) -> Option<&'a str> {
    text.split(&format!("(strata) {command}\n"))
        .nth(1)
        .and_then(|s| s.lines().next())
}

#[test]
fn a_ci_failure_pushed_with_repo_is_debugged_from_an_empty_store_through_a_pty() {
    let registry = Registry::start();
    let repo = format!("{}/stages", registry.host());
    let ci = Env::new();
    let dir = ci.project("pm", FAILING);
    let stderr = failing_build(&ci, &dir, &["--repo", &repo]);
    // The build's last line says how to open the failure anywhere.
    let last = stderr.lines().last().unwrap();
    let reference = last
        .strip_prefix("failure pushed to ")
        .and_then(|rest| rest.split_once(": open it anywhere with `strata debug "))
        .map(|(reference, _)| reference.to_string())
        .unwrap_or_else(|| panic!("last line: {last}\n{stderr}"));
    assert!(
        last.ends_with(&format!("`strata debug {reference}`")),
        "{last}"
    );
    let id = reference.rsplit_once(":failure-").unwrap().1.to_string();
    assert!(registry.tags("stages").contains(&format!("failure-{id}")));
    // What the failed command printed of its identity, to compare with the rerun's.
    // (The script's echo of the command has `user=$(id -u)`: the printed line has a digit.)
    let original = stderr
        .lines()
        .find_map(|l| {
            l.split_once("user=")
                .filter(|(_, r)| r.starts_with(|c: char| c.is_ascii_digit()))
                .map(|(_, r)| format!("user={r}"))
        })
        .unwrap_or_else(|| panic!("{stderr}"));

    // Another machine: a store without even the base image.
    let laptop = Env::empty();
    let mut cmd = laptop.cmd();
    cmd.args(["debug", &reference]);
    let mut session = rexpect::session::spawn_command(cmd, Some(60_000)).unwrap();
    session.exp_string("image `app`, stage `install`").unwrap();
    session.exp_string("--> strata.yaml:8:5").unwrap();
    session.exp_string("(strata) ").unwrap();
    // The broken state's files, over the base state. (The terminal echoes what is typed, so
    // each probe prints something it does not contain.)
    session
        .send_line("exec sh -c 'tr a-z A-Z < /app/partial'")
        .unwrap();
    session.exp_string("PARTIAL").unwrap();
    session.exp_string("(strata) ").unwrap();
    session
        .send_line("exec sh -c 'ls /app/base 2>/dev/null || echo gone-$((6*7))'")
        .unwrap();
    session.exp_string("gone-42").unwrap();
    session.exp_string("(strata) ").unwrap();
    session
        .send_line("exec --base sh -c 'tr a-z A-Z < /app/base'")
        .unwrap();
    session.exp_string("BASE").unwrap();
    session.exp_string("(strata) ").unwrap();
    session.send_line("diff").unwrap();
    // By path: /app/base, /app/env.txt, /app/partial.
    session.exp_string("D /app/base").unwrap();
    session.exp_string("A /app/partial").unwrap();
    session.exp_string("(strata) ").unwrap();
    // The environment is the failed command's: what it wrote of it to /app/env.txt (plus,
    // on a terminal, the user's TERM).
    let strip = "grep -v -e ^SHLVL= -e ^_= -e ^PWD= -e ^TERM=";
    session
        .send_line(&format!(
            "exec sh -c 'env | {strip} | sort > /tmp/live; {strip} /app/env.txt | sort > /tmp/then; \
             grep -q ^PATH= /tmp/then && cmp /tmp/live /tmp/then && echo same-$((20+3))'"
        ))
        .unwrap();
    session.exp_string("same-23").unwrap();
    session.exp_string("(strata) ").unwrap();
    // rerun runs the failed command alone, as it ran in the build.
    session.send_line("rerun").unwrap();
    session.exp_string(&original).unwrap();
    session.exp_string("exit code 1").unwrap();
    session.exp_string("(strata) ").unwrap();
    session.send_line("reload").unwrap();
    session
        .exp_string("reload is not possible here: this is failure record")
        .unwrap();
    session.exp_string("(strata) ").unwrap();
    // A shell on the terminal, in the failed state.
    session.send_line("shell").unwrap();
    // busybox's prompt: the shell reads the terminal from now on (typed ahead, the line would
    // go with the flush of its terminal setup).
    session.exp_string("/ # ").unwrap();
    session
        .send_line("tr a-z A-Z < /app/partial; [ -t 0 ] && echo tty-$((1+1))")
        .unwrap();
    session.exp_string("PARTIAL").unwrap();
    session.exp_string("tty-2").unwrap();
    session.send_line("exit").unwrap();
    exit_monitor(&mut session, 0);
    // The laptop's store now lists the record it pulled.
    let listed = failures(&laptop);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["remote"], reference.as_str());
}

#[test]
fn failures_are_listed_debugged_by_id_and_removed_by_gc_by_count_and_age() {
    let env = Env::new();
    let dir = env.project("pm", FAILING);
    assert!(failures(&env).is_empty());
    let first = failing_build(&env, &dir, &[]);
    let second = failing_build(&env, &dir, &[]);
    let listed = failures(&env);
    assert_eq!(listed.len(), 2, "{listed:?}");
    // Newest first, each named by the build's last line.
    for (record, stderr) in listed.iter().zip([&second, &first]) {
        let id = record["id"].as_str().unwrap();
        assert_eq!(
            stderr.lines().last().unwrap(),
            format!("failure kept as {id}: open it with `strata debug {id}`")
        );
        assert_eq!(record["image"], "app");
        assert_eq!(record["stage"], "install");
        assert_eq!(record["exit_code"], 1);
        assert!(record["remote"].is_null());
    }
    let table = String::from_utf8_lossy(&env.strata(&["failures"]).stdout).into_owned();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("ID ") && lines[0].contains("IMAGE/STAGE"));
    let newest = listed[0]["id"].as_str().unwrap().to_string();
    assert!(
        lines[1].starts_with(&newest) && lines[1].contains("app/install"),
        "{table}"
    );

    // By id, with the monitor's commands piped in.
    let out = debug_piped(&env, &newest, "exec cat /app/partial\nlist\nreload\nexit\n");
    assert_eq!(after(&out, "exec cat /app/partial"), Some("partial"));
    assert!(out.contains("reload is not possible here"), "{out}");
    assert!(out.contains("> 8 |"), "list shows the failed line:\n{out}");

    // A debugger image's shell sees the failed state at /debugroot.
    let mut cmd = env.cmd();
    cmd.args(["debug", &newest, "--debugger-image", "busybox:latest"]);
    let mut session = rexpect::session::spawn_command(cmd, Some(60_000)).unwrap();
    session.exp_string("(strata) ").unwrap();
    session.send_line("shell").unwrap();
    session.exp_string("/debugroot # ").unwrap();
    session
        .send_line("tr a-z A-Z < /debugroot/app/partial")
        .unwrap();
    session.exp_string("PARTIAL").unwrap();
    session.send_line("exit").unwrap();
    exit_monitor(&mut session, 0);

    // By count: the newest stays.
    let gc = env.strata(&["gc", "--keep-failures", "1"]);
    let gc = String::from_utf8_lossy(&gc.stdout);
    assert_eq!(
        gc.lines()
            .filter(|l| l.starts_with("removed failure"))
            .count(),
        1,
        "{gc}"
    );
    let kept = failures(&env);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["id"], newest.as_str());
    // By age: a record older than the default 7 days goes, with the layer only it named.
    let manifest = kept[0]["manifest"].as_str().unwrap().to_string();
    let record = env
        .store
        .path()
        .join("failures")
        .join(format!("{newest}.json"));
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    let eight_days = Duration::from_secs(8 * 86400).as_millis() as u64;
    value["created_millis"] = (value["created_millis"].as_u64().unwrap() - eight_days).into();
    std::fs::write(&record, serde_json::to_vec(&value).unwrap()).unwrap();
    let blob = |digest: &str| {
        env.store
            .path()
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap())
    };
    let image: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&manifest)).unwrap()).unwrap();
    let broken = image["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    // The broken layer is plain: its snapshot is its only copy.
    assert!(snapshot(&env, &broken).is_dir() && !blob(&broken).exists());
    let gc = env.strata(&["gc"]);
    assert!(String::from_utf8_lossy(&gc.stdout).contains("removed failure"));
    assert!(failures(&env).is_empty());
    assert!(!blob(&manifest).exists() && !snapshot(&env, &broken).exists());
    // The base image the record shared with the store stays.
    assert_eq!(env.run_sh("busybox:latest", "echo still"), "still\n");
}

/// The snapshot dir of the layer `digest` in `env`'s store.
fn snapshot(env: &Env, digest: &str) -> std::path::PathBuf {
    env.store
        .path()
        .join("snapshots")
        .join(digest.strip_prefix("sha256:").unwrap())
}

/// Reads every blob of the store's only failure record (layers decompressed) and its index
/// file, asserts that `secret` is in none of them, and returns the listing and the record.
fn assert_not_in_record(env: &Env, secret: &str) -> (Vec<serde_json::Value>, serde_json::Value) {
    let listed = failures(env);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let manifest = listed[0]["manifest"].as_str().unwrap();
    // Every blob of the record, layers decompressed, and its index file.
    let blob = |digest: &str| {
        env.store
            .path()
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap())
    };
    let manifest_bytes = std::fs::read(blob(manifest)).unwrap();
    let image: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
    let mut texts = vec![
        manifest_bytes,
        std::fs::read(blob(image["config"]["digest"].as_str().unwrap())).unwrap(),
        std::fs::read(
            env.store
                .path()
                .join("failures")
                .join(format!("{}.json", listed[0]["id"].as_str().unwrap())),
        )
        .unwrap(),
    ];
    for layer in image["layers"].as_array().unwrap() {
        let digest = layer["digest"].as_str().unwrap();
        // The base's layers are stored zstd; the broken layer is plain, its snapshot alone.
        let out = if blob(digest).exists() {
            std::process::Command::new("zstd")
                .args(["-dc", "-q"])
                .arg(blob(digest))
                .output()
                .expect("zstd is installed by scripts/install-deps.sh")
        } else {
            std::process::Command::new("tar")
                .arg("-C")
                .arg(snapshot(env, digest))
                .args(["-cf", "-", "."])
                .output()
                .unwrap()
        };
        assert!(out.status.success(), "layer {digest} reads");
        texts.push(out.stdout);
    }
    for text in &texts {
        assert!(
            !String::from_utf8_lossy(text).contains(secret),
            "the secret is in the record"
        );
    }
    let record: serde_json::Value = serde_json::from_str(
        image["annotations"]["dev.strata.failure.v1"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    (listed, record)
}

#[test]
fn no_secret_reaches_a_failure_record() {
    const SECRET: &str = "hunter2-correct-horse-battery";
    let env = Env::new();
    let dir = env.work.path().join("sec");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox:latest\n\
         RUN --mount=type=secret,id=tok --mount=type=secret,id=tok,env=TOKEN \
         --mount=type=cache,id=gocache,target=/cache \
         test \"$(cat /run/secrets/tok)\" = \"$TOKEN\" && echo \"token is $TOKEN\" && touch /cache/used && false\n",
    )
    .unwrap();
    let out = env
        .cmd()
        .env("MY_TOKEN", SECRET)
        .args(["build", "--progress", "plain", "-t", "sec"])
        .args(["--secret", "id=tok,env=MY_TOKEN"])
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("failure kept as "), "{stderr}");
    let (listed, record) = assert_not_in_record(&env, SECRET);
    // The step did see the secret (its output names it, masked), the cache by id only.
    let tail = record["output_tail"].to_string();
    assert!(tail.contains("token is ****"), "{tail}");
    let step = &record["step"];
    assert_eq!(
        step["left_out"],
        serde_json::json!([
            "a secret at /run/secrets/tok",
            "a secret read into a variable"
        ])
    );
    assert_eq!(step["mounts"].as_array().unwrap().len(), 1, "{step}");
    assert_eq!(step["mounts"][0]["source"]["Cache"]["id"], "gocache");
    // Debugged later: the secret is not mounted, the cache is this store's of that id.
    let out = debug_piped(
        &env,
        listed[0]["id"].as_str().unwrap(),
        "exec sh -c 'ls /run/secrets/tok 2>/dev/null || echo no-secret; ls /cache'\nexit\n",
    );
    assert!(out.contains("no-secret\nused\n"), "{out}");
}

#[test]
fn a_debugger_without_a_terminal_keeps_the_failure_after_its_monitor() {
    let env = Env::new();
    let dir = env.project("pm", FAILING);
    let mut cmd = env.cmd();
    cmd.args(["build", "--progress", "plain", "--debugger"])
        .current_dir(&dir);
    let out = with_input(cmd, "exec cat /app/partial\nexit\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(after(&stdout, "exec cat /app/partial"), Some("partial"));
    let listed = failures(&env);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let id = listed[0]["id"].as_str().unwrap();
    assert!(
        stderr.ends_with(&format!(
            "failure kept as {id}: open it with `strata debug {id}`\n"
        )),
        "{stderr}"
    );
    // The record holds the state the monitor looked at, untouched by it.
    let out = debug_piped(&env, id, "exec cat /app/partial\nexit\n");
    assert_eq!(after(&out, "exec cat /app/partial"), Some("partial"));
}

#[test]
fn the_configs_secrets_are_masked_in_a_record_too() {
    const TOKEN: &str = "config-secret-0xC0FFEE";
    let env = Env::new();
    let dir = env.project(
        "pm",
        r#"project: pm
configVersion: 1
---
image: app
from: busybox:latest
secrets:
- env: STRATA_PM_TOKEN
- id: plain
  value: plain-value-42
shell:
  install:
  - echo "got $(cat /run/secrets/STRATA_PM_TOKEN) $(cat /run/secrets/plain)"; false
"#,
    );
    std::fs::write(
        dir.join("werf-giterminism.yaml"),
        "giterminismConfigVersion: 1\nconfig:\n  secrets:\n    allowEnvVariables: [STRATA_PM_TOKEN]\n    \
         allowValueIds: [plain]\n",
    )
    .unwrap();
    let out = env
        .cmd()
        .env("STRATA_PM_TOKEN", TOKEN)
        .args(["build", "--progress", "plain"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("got {TOKEN} plain-value-42")),
        "{stderr}"
    );
    let (_, record) = assert_not_in_record(&env, TOKEN);
    assert!(
        !record.to_string().contains("plain-value-42"),
        "the config's value is masked too"
    );
    assert!(
        record["output_tail"].to_string().contains("got **** ****"),
        "{}",
        record["output_tail"]
    );
}

/// `strata store check` looks at failure records too: one whose state's manifest is corrupt,
/// or whose file does not parse, is named, and `--repair` moves it aside so that `strata
/// failures` and `strata debug` no longer offer it.
#[test]
fn store_check_names_and_quarantines_a_broken_failure_record() {
    let env = Env::new();
    let dir = env.project("pm", FAILING);
    failing_build(&env, &dir, &[]);
    failing_build(&env, &dir, &[]);
    let listed = failures(&env);
    assert_eq!(listed.len(), 2, "{listed:?}");
    let check = |args: &[&str]| {
        let out = env.strata(&[&["store", "check"][..], args].concat());
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, clean) = check(&[]);
    assert_eq!(code, Some(0), "{clean}");
    assert!(clean.contains("2 failure records"), "{clean}");

    let records = env.store.path().join("failures");
    let [newest, oldest] = [&listed[0], &listed[1]]
        .map(|r| records.join(format!("{}.json", r["id"].as_str().unwrap())));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&newest).unwrap()).unwrap();
    let manifest = env.store.path().join("blobs/sha256").join(
        record["manifest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap(),
    );
    let mut bytes = std::fs::read(&manifest).unwrap();
    bytes[1] ^= 0x01;
    std::fs::write(&manifest, bytes).unwrap();
    std::fs::write(&oldest, b"{ not json").unwrap();

    let (code, found) = check(&[]);
    assert_eq!(code, Some(1), "{found}");
    for path in [&newest, &oldest] {
        assert!(
            found.contains(&format!("bad failure record {}", path.display())),
            "{found}"
        );
    }
    assert!(found.contains("it names the corrupt blob"), "{found}");
    let (code, repaired) = check(&["--repair"]);
    assert_eq!(code, Some(0), "{repaired}");
    assert!(!newest.exists() && !oldest.exists(), "{repaired}");
    assert!(failures(&env).is_empty());
    let (code, after) = check(&[]);
    assert_eq!(code, Some(0), "{after}");
}

/// The `/etc/hosts` entries a failed step had beyond the host's (`--add-host`, werf's
/// `addHost`) are in its record: `strata debug` resolves those names as the step did.
#[test]
fn a_record_keeps_the_steps_added_host_entries() {
    let env = Env::new();
    let dir = env.project(
        "hosts",
        "image: app\nfrom: busybox:latest\naddHost:\n- stage.strata.test:10.9.8.7\nshell:\n  \
         install:\n  - test -e /nothing\n",
    );
    failing_build(&env, &dir, &["--add-host", "cli.strata.test:10.1.2.3"]);
    let listed = failures(&env);
    let id = listed[0]["id"].as_str().unwrap();
    let command = "exec sh -c 'grep strata.test /etc/hosts | tr \"\\n\\t\" \" _\"; echo'";
    let out = debug_piped(&env, id, &format!("{command}\nexit\n"));
    assert_eq!(
        after(&out, command),
        Some("10.1.2.3_cli.strata.test 10.9.8.7_stage.strata.test ")
    );
}
