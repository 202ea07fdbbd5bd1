//! `strata dap` driven by a real DAP client: VS Code's `@vscode/debugadapter-testsupport`
//! (node; installed by scripts/install-deps.sh into crates/strata-cli/tests/dap, pinned by
//! its package-lock). The node script sets the breakpoints, steps, reads variables,
//! evaluates and continues; this test makes the projects and checks the images after.

use std::path::Path;
use std::process::Command;

use crate::support::Env;

const WERF: &str = r#"project: dap
configVersion: 1
---
image: app
from: busybox:latest
shell:
  install:
  - X=unexported; mkdir -p /app; echo base > /app/base; cd /app; export Y=exp
  - echo "$X $Y $(pwd)" > /app/one
  - f() { echo fn-$1; }; f a > /app/two
  - f b > /app/three; echo "$X" > /app/four
"#;

const DOCKERFILE: &str = "FROM busybox:latest\n\
ARG GREETING\n\
RUN mkdir /w && echo one > /w/one\n\
ENV COLOR=blue\n\
RUN echo \"$GREETING $COLOR\" > /w/two\n";

/// The stage digests by `image/stage` and the files of `/app` in `image`.
fn committed(env: &Env, image: &str, dir: &str) -> (Vec<(String, String)>, String) {
    let mut stages: Vec<(String, String)> = env
        .stage_records()
        .iter()
        .map(|r| {
            let name = format!(
                "{}/{}",
                r["image"].as_str().unwrap(),
                r["stage"].as_str().unwrap()
            );
            (name, r["digest"].as_str().unwrap().to_string())
        })
        .collect();
    stages.sort();
    let files = env.run_sh(
        image,
        &format!(
            "find {dir} | sort | while read -r f; do stat -c '%n %a %u:%g %s' \"$f\"; \
             [ -f \"$f\" ] && md5sum \"$f\"; done"
        ),
    );
    (stages, files)
}

fn projects(env: &Env) -> (std::path::PathBuf, std::path::PathBuf) {
    let werf = env.work.path().join("werf");
    std::fs::create_dir(&werf).unwrap();
    std::fs::write(werf.join("werf.yaml"), WERF).unwrap();
    let df = env.work.path().join("df");
    std::fs::create_dir(&df).unwrap();
    std::fs::write(df.join("Dockerfile"), DOCKERFILE).unwrap();
    (werf, df)
}

fn build_dockerfile(env: &Env, dir: &Path) {
    let out = env
        .cmd()
        .args(["build", "--build-arg", "GREETING=hi", "-t", "df", "."])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_editor_debugs_a_werf_stage_line_by_line_and_a_cached_dockerfile_instruction() {
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dap");
    assert!(
        client
            .join("node_modules/@vscode/debugadapter-testsupport")
            .is_dir(),
        "the DAP test client is not installed: run scripts/install-deps.sh (npm ci in {})",
        client.display()
    );
    let env = Env::new();
    let (werf, df) = projects(&env);
    // The Dockerfile's instructions are cached before the editor debugs it.
    build_dockerfile(&env, &df);
    let out = Command::new("node")
        .arg(client.join("dap.test.js"))
        .current_dir(&client)
        .env("STRATA_BIN", assert_cmd::cargo::cargo_bin("strata"))
        .env("STRATA_STORE", env.store.path())
        .env("CI", "1")
        .env("WERF_DIR", &werf)
        .env("DF_DIR", &df)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("dap: ok"), "{stdout}\n{stderr}");
    // What the debugged builds committed is a plain build's.
    let plain = Env::new();
    let (plain_werf, plain_df) = projects(&plain);
    let out = plain.build(&plain_werf);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    build_dockerfile(&plain, &plain_df);
    let debugged = (committed(&env, "app", "/app"), committed(&env, "df", "/w"));
    let built = (
        committed(&plain, "app", "/app"),
        committed(&plain, "df", "/w"),
    );
    assert_eq!(debugged, built);
}
