//! The Dockerfile conformance suite (`tests/dockerfile/`): every case is a build context with a
//! `Dockerfile` and a `checks` file, built with `strata build -f Dockerfile . -t <case>` and
//! verified like the corpus (see `tests/dockerfile/README.md`); plus BuildKit's caching rules
//! on rebuilds and context edits.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{Env, run_checks, words};

fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/dockerfile")
}

/// Every case directory (one with a `checks` file), sorted.
fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(suite())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("checks").is_file())
        .collect();
    cases.sort();
    cases
}

/// Copies a tree keeping symlinks as symlinks (never following them: some cases hold links
/// that point outside the context on purpose). `skip` names top-level entries left out.
fn copy_tree(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if skip.iter().any(|s| entry.file_name() == *s) {
            continue;
        }
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            let link = std::fs::read_link(entry.path()).unwrap();
            std::os::unix::fs::symlink(link, &target).unwrap();
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target, &[]);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The header lines of a `checks` file.
#[derive(Default)]
struct Header {
    /// `# build: ARGS...`: extra `strata build` arguments (split on blanks; may repeat).
    build_args: Vec<String>,
    /// `# expect-failure: TEXT`: the build must fail with TEXT in its stderr (alternatives
    /// separated by ` || `: any one is enough).
    expect_failure: Option<String>,
}

fn header(checks: &str) -> Header {
    let mut header = Header::default();
    for line in checks.lines() {
        if let Some(args) = line.strip_prefix("# build:") {
            header
                .build_args
                .extend(args.split_whitespace().map(str::to_string));
        } else if let Some(text) = line.strip_prefix("# expect-failure:") {
            header.expect_failure = Some(text.trim().to_string());
        }
    }
    header
}

/// Copies case `case` into the work dir (its `checks` left out: the context is exactly the
/// case's other files) and returns the copy.
fn stage_case(env: &Env, case: &Path) -> PathBuf {
    let dir = env.work.path().join(case.file_name().unwrap());
    copy_tree(case, &dir, &["checks"]);
    dir
}

/// `strata build -f Dockerfile . -t <name> --progress plain <args>`, run in `dir`.
fn build(env: &Env, dir: &Path, name: &str, args: &[String]) -> Output {
    env.cmd()
        .current_dir(dir)
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
        .args(args)
        .output()
        .unwrap()
}

/// The lines of a plain-progress build that report a step as built (not reused).
fn built_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(" built in "))
        .map(str::to_string)
        .collect()
}

/// Builds one case and returns the failed checks.
fn check_case(env: &Env, case: &Path) -> Vec<String> {
    let name = case.file_name().unwrap().to_string_lossy().to_string();
    let checks = std::fs::read_to_string(case.join("checks")).unwrap();
    let header = header(&checks);
    let dir = stage_case(env, case);
    let out = build(env, &dir, &name, &header.build_args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Some(expected) = &header.expect_failure {
        return if out.status.success() {
            vec![format!(
                "{name}: the build succeeded but should fail with `{expected}`:\n{stderr}"
            )]
        } else if !expected.split(" || ").any(|text| stderr.contains(text)) {
            vec![format!(
                "{name}: the build failed as it should, but its stderr lacks `{expected}`:\n{stderr}"
            )]
        } else {
            Vec::new()
        };
    }
    if !out.status.success() {
        return vec![format!("{name}: build failed:\n{stderr}")];
    }
    run_checks(env, &name, &checks)
}

/// Builds the case `name` in a store of its own and asserts its checks.
fn case_builds_and_checks_out(name: &str) {
    let env = Env::new();
    // A real file right outside the case's context, for the cases that try to reach it
    // (`COPY ../outside`): it must never end up in an image.
    std::fs::write(
        env.work.path().join("outside"),
        "a host file outside the build context\n",
    )
    .unwrap();
    let failures = check_case(&env, &suite().join(name));
    assert!(
        failures.is_empty(),
        "{} failure(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// One test per case, so the harness builds them in parallel; [`CASES`] must name every case
/// directory (`every_case_has_a_test` checks it).
macro_rules! case_tests {
    ($($test:ident: $name:literal,)*) => {
        /// The case directories with a test below.
        const CASES: &[&str] = &[$($name),*];
        mod case {
            $(#[test] fn $test() { super::case_builds_and_checks_out($name) })*
        }
    };
}

case_tests! {
    add_local: "add-local",
    arg_build_arg_override: "arg-build-arg-override",
    arg_env_precedence: "arg-env-precedence",
    arg_global_from: "arg-global-from",
    arg_platform: "arg-platform",
    arg_stage_defaults: "arg-stage-defaults",
    cli_flags: "cli-flags",
    cmd_entrypoint_exec: "cmd-entrypoint-exec",
    cmd_shell_form: "cmd-shell-form",
    copy_basic: "copy-basic",
    copy_chmod: "copy-chmod",
    copy_chmod_symbolic: "copy-chmod-symbolic",
    copy_chown: "copy-chown",
    copy_exclude: "copy-exclude",
    copy_from_exclude: "copy-from-exclude",
    copy_from_stage: "copy-from-stage",
    copy_glob: "copy-glob",
    copy_into_image_dir: "copy-into-image-dir",
    copy_link: "copy-link",
    copy_multi_src: "copy-multi-src",
    copy_parents: "copy-parents",
    copy_parents_exclude: "copy-parents-exclude",
    copy_through_image_symlinks: "copy-through-image-symlinks",
    dockerignore: "dockerignore",
    entrypoint_resets_cmd: "entrypoint-resets-cmd",
    env_expansion: "env-expansion",
    env_forms: "env-forms",
    env_from_base: "env-from-base",
    env_from_image: "env-from-image",
    error_add_git: "error-add-git",
    error_copy_missing_file: "error-copy-missing-file",
    error_copy_under_a_file: "error-copy-under-a-file",
    error_dockerignored_source: "error-dockerignored-source",
    error_exclude_pattern: "error-exclude-pattern",
    error_run_fails: "error-run-fails",
    error_run_missing_command: "error-run-missing-command",
    error_run_security_not_allowed: "error-run-security-not-allowed",
    error_run_security_unknown: "error-run-security-unknown",
    error_unknown_instruction: "error-unknown-instruction",
    error_unknown_target: "error-unknown-target",
    escape_backtick: "escape-backtick",
    expose: "expose",
    from_scratch: "from-scratch",
    healthcheck_exec: "healthcheck-exec",
    healthcheck_none: "healthcheck-none",
    healthcheck_options: "healthcheck-options",
    heredoc_copy: "heredoc-copy",
    heredoc_dash_tabs: "heredoc-dash-tabs",
    heredoc_run: "heredoc-run",
    heredoc_two: "heredoc-two",
    hostile_copy_deep_parent: "hostile-copy-deep-parent",
    hostile_copy_parent: "hostile-copy-parent",
    hostile_symlink_file: "hostile-symlink-file",
    hostile_symlink_in_dir: "hostile-symlink-in-dir",
    hostile_symlink_parent_dir: "hostile-symlink-parent-dir",
    huge_run_line_exec: "huge-run-line-exec",
    huge_run_line_shell: "huge-run-line-shell",
    label: "label",
    line_continuation: "line-continuation",
    mount_bind: "mount-bind",
    mount_cache: "mount-cache",
    mount_secret: "mount-secret",
    mount_tmpfs: "mount-tmpfs",
    multistage_target: "multistage-target",
    network_none: "network-none",
    onbuild: "onbuild",
    run_forms: "run-forms",
    run_security_insecure: "run-security-insecure",
    shell_change: "shell-change",
    shell_maintainer: "shell-maintainer",
    stage_inherit_config: "stage-inherit-config",
    stopsignal: "stopsignal",
    target_skips_later_stages: "target-skips-later-stages",
    unneeded_stage_skipped: "unneeded-stage-skipped",
    user_by_name: "user-by-name",
    user_numeric: "user-numeric",
    volume: "volume",
    workdir: "workdir",
    workdir_user: "workdir-user",
}

#[test]
fn every_case_has_a_test() {
    let cases: Vec<String> = cases()
        .iter()
        .map(|c| c.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        cases.len() >= 40,
        "the suite has at least 40 cases, found {}",
        cases.len()
    );
    assert_eq!(
        cases, CASES,
        "tests/dockerfile and the case_tests! list in tests/cli/dockerfile.rs differ: add a line per new case"
    );
}

/// A second build of an unchanged context reuses every step: COPY/ADD of files, .dockerignore,
/// heredocs, multi-stage with `--target`, cache and secret mounts (neither is part of a key).
fn rebuilding_reuses_every_step(name: &str) {
    let env = Env::new();
    let case = suite().join(name);
    let header = header(&std::fs::read_to_string(case.join("checks")).unwrap());
    let dir = stage_case(&env, &case);
    let first = build(&env, &dir, name, &header.build_args);
    assert!(
        first.status.success(),
        "{name}: first build failed:\n{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = build(&env, &dir, name, &header.build_args);
    assert!(
        second.status.success(),
        "{name}: second build failed:\n{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(
        built_lines(&second).is_empty(),
        "{name}: the second build ran steps again:\n{}",
        built_lines(&second).join("\n")
    );
}

/// One test per case, so the harness runs them in parallel.
mod rebuild {
    macro_rules! rebuild_tests {
        ($($test:ident: $name:literal,)*) => {
            $(#[test] fn $test() { super::rebuilding_reuses_every_step($name) })*
        };
    }
    rebuild_tests! {
        add_local: "add-local",
        copy_chown: "copy-chown",
        copy_from_stage: "copy-from-stage",
        dockerignore: "dockerignore",
        from_scratch: "from-scratch",
        heredoc_copy: "heredoc-copy",
        mount_cache: "mount-cache",
        mount_secret: "mount-secret",
        multistage_target: "multistage-target",
    }
}

const EDITS: &str = "\
FROM busybox:latest
RUN cat /proc/sys/kernel/random/uuid > /before
COPY app.txt /app.txt
RUN cat /proc/sys/kernel/random/uuid > /after && cat /app.txt > /seen
";

/// BuildKit's cache keys: a COPY depends on the content of what it copies, not on the rest of
/// the context; when it changes, that COPY and every later step run again, earlier ones don't.
#[test]
fn context_edits_rebuild_from_the_copy_that_reads_them() {
    let env = Env::new();
    let dir = env.work.path().join("edits");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), EDITS).unwrap();
    std::fs::write(dir.join("app.txt"), "version one\n").unwrap();
    std::fs::write(dir.join("unrelated.txt"), "not copied\n").unwrap();
    let build_ok = |what: &str| {
        let out = build(&env, &dir, "edits", &[]);
        assert!(
            out.status.success(),
            "{what}: build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let state = || words(&env.run_sh("edits", "cat /before /after /seen")) + " ";
    let field = |state: &str, n: usize| state.split(' ').nth(n).unwrap().to_string();

    let first = build_ok("first build");
    assert!(
        !built_lines(&first).is_empty(),
        "the first build runs steps"
    );
    let one = state();
    assert!(one.ends_with("version one "), "{one}");

    std::fs::write(dir.join("unrelated.txt"), "edited, still not copied\n").unwrap();
    let second = build_ok("after editing an unrelated file");
    assert_eq!(
        built_lines(&second),
        Vec::<String>::new(),
        "editing a file no step reads reuses every step"
    );
    assert_eq!(state(), one, "the image is the same");

    std::fs::write(dir.join("app.txt"), "version two\n").unwrap();
    let third = build_ok("after editing the copied file");
    assert!(
        !built_lines(&third).is_empty(),
        "editing a copied file runs steps again"
    );
    let three = state();
    assert_eq!(
        field(&three, 0),
        field(&one, 0),
        "the RUN before the COPY is reused"
    );
    assert_ne!(
        field(&three, 1),
        field(&one, 1),
        "the RUN after the COPY runs again"
    );
    assert!(three.ends_with("version two "), "{three}");
}

/// docker's command line: `strata build -q --iidfile F -t a -t b .` next to a Dockerfile and no
/// strata.yaml; `strata build` with no arguments there; `-f -`; `--platform`.
#[test]
fn docker_build_command_line() {
    let env = Env::new();
    let dir = env.work.path().join("plain");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox:latest\nRUN echo built > /built\n",
    )
    .unwrap();
    let host = if cfg!(target_arch = "x86_64") {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    let out = env
        .cmd()
        .current_dir(&dir)
        .args(["build", "-q", "--iidfile", "id.txt", "--platform", host])
        .args(["-t", "one", "-t", "two", "."])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "build failed:\n{stderr}");
    assert_eq!(stderr, "", "-q prints no progress");
    // docker's image id: the digest of the image config, alone on stdout and in --iidfile.
    let stdout = String::from_utf8(out.stdout).unwrap();
    let id = stdout.strip_suffix('\n').unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("id.txt")).unwrap(), id);
    let hex = id.strip_prefix("sha256:").unwrap();
    let blob = std::fs::read(env.store.path().join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(strata_digest::Digest::of(&blob).to_string(), id);
    let inspected: serde_json::Value =
        serde_json::from_slice(&env.strata(&["inspect", "two"]).stdout).unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&blob).unwrap(),
        inspected["config"]
    );
    for tag in ["one", "two"] {
        assert_eq!(env.run_sh(tag, "cat /built"), "built\n", "{tag}");
    }

    // No arguments at all: the current directory's Dockerfile, tagged with its name.
    let out = env
        .cmd()
        .current_dir(&dir)
        .args(["build", "--progress", "plain"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.run_sh("plain", "cat /built"), "built\n");

    // `-f -`: the Dockerfile from stdin, the context named.
    let mut child = env
        .cmd()
        .current_dir(&dir)
        .args([
            "build",
            "-f",
            "-",
            "-t",
            "stdin",
            "--progress",
            "plain",
            ".",
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        b"FROM busybox:latest\nCOPY Dockerfile /copied\nRUN echo from stdin > /from\n",
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        env.run_sh("stdin", "cat /from /copied"),
        "from stdin\nFROM busybox:latest\nRUN echo built > /built\n",
        "the context is the directory, its Dockerfile an ordinary file of it"
    );

    // Another platform is refused, naming it.
    let out = env
        .cmd()
        .current_dir(&dir)
        .args(["build", "--platform", "linux/s390x", "-t", "other", "."])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--platform linux/s390x") && stderr.contains("this machine's platform"),
        "{stderr}"
    );
}

/// A tiny HTTP server on 127.0.0.1 for `ADD <url>`: `/files/NAME` answers `body` with a
/// `Last-Modified`, anything else 404. Returns its address.
fn serve(body: &'static str) -> String {
    http_server(move |path, _| {
        if path.starts_with("/files/") {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        } else {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
        }
    })
}

/// An HTTP/1.1 server on 127.0.0.1, one request per connection, whose response to each is
/// `answer(path, headers)` (header names in lower case). Returns its address.
fn http_server(
    answer: impl Fn(&str, &std::collections::BTreeMap<String, String>) -> String + Send + 'static,
) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let mut headers = std::collections::BTreeMap::new();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                if let Some((name, value)) = line.trim_end().split_once(':') {
                    headers.insert(name.to_ascii_lowercase(), value.trim().to_string());
                }
                line.clear();
            }
            let path = request.split(' ').nth(1).unwrap_or_default();
            let _ = stream.write_all(answer(path, &headers).as_bytes());
        }
    });
    addr
}

/// `ADD <url>` as BuildKit: the file named after the URL, mode 0600 (or `--chmod`), owned by
/// root, its mtime the server's `Last-Modified`; `--checksum` verified; a failed download or a
/// wrong checksum fails the build, naming the URL.
#[test]
fn add_url_downloads_with_buildkits_attributes() {
    let env = Env::new();
    let body = "downloaded over http\n";
    let addr = serve(body);
    let sum = strata_digest::Digest::of(body.as_bytes()).to_string();
    let dir = env.work.path().join("addurl");
    std::fs::create_dir_all(&dir).unwrap();
    let dockerfile = |lines: &str| {
        std::fs::write(
            dir.join("Dockerfile"),
            format!("FROM busybox:latest\n{lines}"),
        )
        .unwrap();
    };
    dockerfile(&format!(
        "ADD http://{addr}/files/tool.txt /opt/\n\
         ADD --checksum={sum} http://{addr}/files/tool.txt?v=1 /opt/renamed.txt\n\
         ADD --chmod=755 http://{addr}/files/run.sh /opt/bin/\n\
         ADD http://{addr}/files/tool.txt Dockerfile /mixed/\n"
    ));
    let out = build(&env, &dir, "addurl", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        words(&env.run_sh(
            "addurl",
            "stat -c '%n %a %U %Y' /opt/tool.txt /opt/renamed.txt /opt/bin/run.sh; cat /opt/renamed.txt; ls /mixed"
        )),
        words(&format!(
            "/opt/tool.txt 600 root 1445412480 /opt/renamed.txt 600 root 1445412480 \
             /opt/bin/run.sh 755 root 1445412480 {body} Dockerfile tool.txt"
        ))
    );

    let wrong = format!("sha256:{}", "0".repeat(64));
    dockerfile(&format!(
        "ADD --checksum={wrong} http://{addr}/files/tool.txt /opt/\n"
    ));
    let out = build(&env, &dir, "addurl-bad", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("the checksum is {sum}, not {wrong}")),
        "{stderr}"
    );

    dockerfile(&format!("ADD http://{addr}/missing /opt/\n"));
    let out = build(&env, &dir, "addurl-missing", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("ADD http://{addr}/missing")) && stderr.contains("404"),
        "{stderr}"
    );
}

/// One request the revalidating server answered: the path, its `If-None-Match` and
/// `If-Modified-Since`, and the status sent.
#[derive(Clone, Debug)]
struct Asked {
    path: String,
    if_none_match: Option<String>,
    if_modified_since: Option<String>,
    status: u16,
}

/// What the revalidating server serves: the body and the ETag of `/etag/...` (with a
/// `Last-Modified` too), `/dated/...` with a `Last-Modified` only, `/plain/...` with no
/// validator; and every request it answered.
#[derive(Default)]
struct Served {
    body: String,
    etag: String,
    asked: Vec<Asked>,
}

/// An HTTP server on 127.0.0.1 that answers conditional requests as a real one does: `304`
/// when `If-None-Match` names the current ETag of `/etag/...` or `If-Modified-Since` is the
/// `Last-Modified` of `/dated/...`. Returns its address.
fn serve_validators(served: std::sync::Arc<std::sync::Mutex<Served>>) -> String {
    const DATE: &str = "Wed, 21 Oct 2015 07:28:00 GMT";
    http_server(move |path, headers| {
        let if_none_match = headers.get("if-none-match").cloned();
        let if_modified_since = headers.get("if-modified-since").cloned();
        let mut served = served.lock().unwrap();
        let etag = format!("\"{}\"", served.etag);
        let (status, headers) = if path.starts_with("/etag/") {
            let known = if_none_match
                .as_deref()
                .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
            let status = if known { 304 } else { 200 };
            (status, format!("ETag: {etag}\r\nLast-Modified: {DATE}\r\n"))
        } else if path.starts_with("/dated/") {
            let status = match if_modified_since.as_deref() {
                Some(DATE) => 304,
                _ => 200,
            };
            (status, format!("Last-Modified: {DATE}\r\n"))
        } else {
            (200, String::new())
        };
        let response = match status {
            304 => format!("HTTP/1.1 304 Not Modified\r\n{headers}Connection: close\r\n\r\n"),
            _ => format!(
                "HTTP/1.1 200 OK\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{}",
                served.body.len(),
                served.body
            ),
        };
        served.asked.push(Asked {
            path: path.to_string(),
            if_none_match,
            if_modified_since,
            status,
        });
        response
    })
}

/// A [`serve_validators`] server serving "one" with the ETag `v1`, and an empty context
/// directory `name` for a Dockerfile that downloads from it.
fn validating_server(
    env: &Env,
    name: &str,
) -> (std::sync::Arc<std::sync::Mutex<Served>>, String, PathBuf) {
    let served = std::sync::Arc::new(std::sync::Mutex::new(Served {
        body: "one\n".into(),
        etag: "v1".into(),
        asked: Vec::new(),
    }));
    let addr = serve_validators(served.clone());
    let dir = env.work.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    (served, addr, dir)
}

/// The remembered downloads are cache, kept by the stage cache's policy: `strata gc` keeps
/// them, `--keep-within D` those a build used within `D` (a `304` counts as a use), `--all`
/// none; a build after they went downloads in full again.
#[test]
fn gc_keeps_remembered_downloads_by_the_cache_policy() {
    let env = Env::new();
    let (served, addr, dir) = validating_server(&env, "gcdownloads");
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM busybox:latest\nADD http://{addr}/etag/e.txt /e.txt\n"),
    )
    .unwrap();
    // Builds and returns the statuses the server answered.
    let build_once = || {
        let out = build(&env, &dir, "gcdl", &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let asked = std::mem::take(&mut served.lock().unwrap().asked);
        asked.iter().map(|a| a.status).collect::<Vec<_>>()
    };
    let downloads = env.store.path().join("downloads");
    let remembered = || {
        std::fs::read_dir(&downloads)
            .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let two_days_ago = || {
        for url in remembered() {
            let old = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86_400);
            std::fs::File::open(&url)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
    };
    let gc = |args: &[&str]| {
        let out = env.strata(&[&["gc"][..], args].concat());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(build_once(), [200]);
    assert_eq!(remembered().len(), 1);
    gc(&[]);
    assert_eq!(remembered().len(), 1, "the default policy keeps the cache");
    // A build whose download the server confirms (304) uses the remembered one: it is new.
    two_days_ago();
    assert_eq!(build_once(), [304]);
    gc(&["--keep-within", "1d"]);
    assert_eq!(remembered().len(), 1, "used by the last build");
    two_days_ago();
    let said = gc(&["--keep-within", "1d"]);
    assert!(said.contains("removed download"), "{said}");
    assert!(remembered().is_empty());
    // Nothing remembered: asked in full, remembered again; --all lets it go.
    assert_eq!(build_once(), [200]);
    assert_eq!(remembered().len(), 1);
    gc(&["--all"]);
    assert!(remembered().is_empty());
}

/// `ADD <url>` revalidates as BuildKit's http source: the next build asks with the ETags it
/// remembers (`If-None-Match`) or the date (`If-Modified-Since`), a `304` reuses the
/// remembered file and so the cached step, a changed file is downloaded, a server without
/// validators is asked in full each time, and a remembered file that went bad is downloaded
/// again, never used.
#[test]
fn add_url_revalidates_with_etags() {
    let env = Env::new();
    let (served, addr, dir) = validating_server(&env, "revalidate");
    let sum = |body: &str| strata_digest::Digest::of(body.as_bytes()).to_string();
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM busybox:latest\n\
             ADD --checksum={} http://{addr}/etag/e.txt /e.txt\n\
             ADD http://{addr}/dated/d.txt /d.txt\n\
             ADD http://{addr}/plain/p.txt /p.txt\n",
            sum("one\n")
        ),
    )
    .unwrap();
    // Runs a build and returns what the server was asked during it, and the built lines.
    let build_once = |tag: &str| {
        let out = build(&env, &dir, tag, &[]);
        let asked = std::mem::take(&mut served.lock().unwrap().asked);
        (out, asked)
    };
    let summary = |asked: &[Asked]| -> Vec<(String, u16)> {
        asked.iter().map(|a| (a.path.clone(), a.status)).collect()
    };
    let paths = |statuses: [u16; 3]| -> Vec<(String, u16)> {
        ["/etag/e.txt", "/dated/d.txt", "/plain/p.txt"]
            .iter()
            .zip(statuses)
            .map(|(p, s)| (p.to_string(), s))
            .collect()
    };

    let (out, asked) = build_once("reval");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(summary(&asked), paths([200, 200, 200]));
    assert!(
        asked
            .iter()
            .all(|a| a.if_none_match.is_none() && a.if_modified_since.is_none())
    );

    // Unchanged: asked conditionally, 304s, every step reused.
    let (out, asked) = build_once("reval");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(summary(&asked), paths([304, 304, 200]));
    assert_eq!(asked[0].if_none_match.as_deref(), Some("\"v1\""));
    assert_eq!(
        asked[1].if_modified_since.as_deref(),
        Some("Wed, 21 Oct 2015 07:28:00 GMT")
    );
    assert!(asked[2].if_none_match.is_none() && asked[2].if_modified_since.is_none());
    assert_eq!(built_lines(&out), Vec::<String>::new());
    assert_eq!(
        words(&env.run_sh("reval", "cat /e.txt /d.txt /p.txt; stat -c %Y /e.txt")),
        words("one one one 1445412480")
    );

    // Changed on the server: downloaded (200), the new content copied; both ETags asked
    // about on the next build, which reuses the new file. --checksum is verified on both
    // paths: the old checksum fails the changed download.
    {
        let mut s = served.lock().unwrap();
        s.body = "two\n".into();
        s.etag = "v2".into();
    }
    let (out, asked) = build_once("reval");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("the checksum is {}", sum("two\n"))),
        "{stderr}"
    );
    assert_eq!(asked[0].status, 200);
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM busybox:latest\n\
             ADD --checksum={} http://{addr}/etag/e.txt /e.txt\n\
             ADD http://{addr}/plain/p.txt /p.txt\n",
            sum("two\n")
        ),
    )
    .unwrap();
    let (out, asked) = build_once("reval2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let etags = asked[0].if_none_match.clone().unwrap_or_default();
    assert!(
        etags.contains("\"v1\"") && etags.contains("\"v2\""),
        "{etags}"
    );
    assert_eq!(asked[0].status, 304);
    assert_eq!(
        words(&env.run_sh("reval2", "cat /e.txt /p.txt")),
        words("two two")
    );

    // A remembered file that no longer hashes to its digest is never used: after the 304 it
    // is downloaded again in full, and the step is still reused (same content).
    let downloads = env.store.path().join("downloads");
    for url_dir in std::fs::read_dir(&downloads).unwrap() {
        for file in std::fs::read_dir(url_dir.unwrap().path()).unwrap() {
            let file = file.unwrap().path();
            if file.file_name().unwrap() != "record.json" {
                std::fs::write(&file, "tampered\n").unwrap();
            }
        }
    }
    let (out, asked) = build_once("reval2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        summary(&asked)[..2],
        [
            ("/etag/e.txt".to_string(), 304),
            ("/etag/e.txt".to_string(), 200)
        ]
    );
    assert!(asked[1].if_none_match.is_none());
    assert_eq!(built_lines(&out), Vec::<String>::new());
    assert_eq!(words(&env.run_sh("reval2", "cat /e.txt")), words("two"));
}

/// docker's `--label K=V` lands on the target's config (after the Dockerfile's own labels),
/// `--add-host NAME:IP` (and `NAME:host-gateway`, this machine) in the `/etc/hosts` of its
/// RUN steps (never in a layer).
#[test]
fn docker_build_label_and_add_host() {
    let env = Env::new();
    let dir = env.work.path().join("labels");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox:latest AS base\nRUN true\nFROM base\nLABEL own=1 over=dockerfile\n\
         RUN grep -e registry.test -e v6.test -e gw.test /etc/hosts > /hosts.txt\n",
    )
    .unwrap();
    let out = env
        .cmd()
        .current_dir(&dir)
        .args(["build", "-t", "labels", "--progress", "plain", "."])
        .args([
            "--label",
            "over=cli",
            "--label",
            "org.example.team=builders",
        ])
        .args(["--add-host", "registry.test:10.1.2.3"])
        .args(["--add-host", "v6.test=::1"])
        .args(["--add-host", "gw.test:host-gateway"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inspected: serde_json::Value =
        serde_json::from_slice(&env.strata(&["inspect", "labels"]).stdout).unwrap();
    assert_eq!(
        inspected["config"]["config"]["Labels"],
        serde_json::json!({"own": "1", "over": "cli", "org.example.team": "builders"})
    );
    assert_eq!(
        env.run_sh(
            "labels",
            "cat /hosts.txt; grep -c registry.test /etc/hosts || true"
        ),
        "10.1.2.3\tregistry.test\n::1\tv6.test\n127.0.0.1\tgw.test\n0\n"
    );

    let out = env
        .cmd()
        .current_dir(&dir)
        .args(["build", "-t", "bad", "--add-host", "x:gateway", "."])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--add-host x:gateway: `gateway` is not an IP address or host-gateway"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
