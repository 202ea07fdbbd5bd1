//! `strata dap` driven by a real DAP client: VS Code's `@vscode/debugadapter-testsupport`
//! (node; installed by scripts/install-deps.sh into crates/strata-cli/tests/dap, pinned by
//! its package-lock). The node script sets the breakpoints, steps, reads variables,
//! evaluates and continues; this test makes the projects and checks the images after.

use std::path::Path;
use std::process::Command;

use crate::stepdebug::{build_in, committed, dockerfile_dir};
use crate::support::Env;

/// How the Dockerfile is built, by the editor and without it.
const DOCKERFILE_ARGS: [&str; 5] = ["--build-arg", "GREETING=hi", "-t", "df", "."];

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

fn projects(env: &Env) -> (std::path::PathBuf, std::path::PathBuf) {
    let werf = env.work.path().join("werf");
    std::fs::create_dir(&werf).unwrap();
    std::fs::write(werf.join("werf.yaml"), WERF).unwrap();
    (werf, dockerfile_dir(env, "df", DOCKERFILE))
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
    build_in(&env, &df, &DOCKERFILE_ARGS);
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
    build_in(&plain, &plain_df, &DOCKERFILE_ARGS);
    let debugged = (committed(&env, "app", "/app"), committed(&env, "df", "/w"));
    let built = (
        committed(&plain, "app", "/app"),
        committed(&plain, "df", "/w"),
    );
    assert_eq!(debugged, built);
}
