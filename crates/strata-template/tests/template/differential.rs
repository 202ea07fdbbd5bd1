//! Differential tests: every case of `corpus.tmpl` renders through strata's engine and
//! through Go's text/template with Sprig (Debian's golang-go and
//! golang-github-masterminds-sprig-dev, the renderer werf uses), and both must give the same
//! bytes, or both fail.
//!
//! The corpus is a list of cases, each `### name` on its own line followed by the template
//! (its last newline is not part of it). `### name ~ REGEX` compares shapes instead of bytes,
//! for functions whose output changes from run to run (`now`, `uuidv4`, `randAlphaNum`): both
//! outputs must match the whole regex. `### name !` marks a case that must fail in both. The
//! dot is `{"Env": "production"}` on both sides.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use strata_template::{Context, render};

struct Case {
    name: String,
    template: String,
    check: Check,
}

enum Check {
    Bytes,
    Shape(regex::Regex),
    Fails,
}

fn corpus() -> Vec<Case> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/template/corpus.tmpl");
    let text = std::fs::read_to_string(&path).expect("the corpus is readable");
    let mut cases: Vec<Case> = Vec::new();
    for line in text.split_inclusive('\n') {
        if let Some(header) = line.strip_prefix("### ") {
            let header = header.trim_end_matches('\n');
            let (name, check) = match header.split_once(" ~ ") {
                Some((name, re)) => (
                    name,
                    Check::Shape(
                        regex::Regex::new(&format!("^(?s:{re})$"))
                            .unwrap_or_else(|e| panic!("case {name}: bad regex: {e}")),
                    ),
                ),
                None => match header.strip_suffix(" !") {
                    Some(name) => (name, Check::Fails),
                    None => (header, Check::Bytes),
                },
            };
            cases.push(Case {
                name: name.trim().to_string(),
                template: String::new(),
                check,
            });
        } else if let Some(case) = cases.last_mut() {
            case.template.push_str(line);
        }
    }
    for case in &mut cases {
        if case.template.ends_with('\n') {
            case.template.pop();
        }
    }
    cases
}

/// Builds the Go harness once per test process (in this test binary's temp dir, with a Go
/// build cache there so later runs reuse it) from Debian's GOPATH tree, offline.
fn go_harness() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(build_go_harness).clone()
}

fn build_go_harness() -> PathBuf {
    let go = which("go").unwrap_or_else(|| {
        panic!(
            "`go` is not installed: the differential template tests need Debian's golang-go and \
             golang-github-masterminds-sprig-dev (scripts/install-deps.sh installs them)"
        )
    });
    let gopath = Path::new("/usr/share/gocode");
    assert!(
        gopath
            .join("src/github.com/Masterminds/sprig/functions.go")
            .is_file(),
        "Sprig is not installed under /usr/share/gocode: install Debian's \
         golang-github-masterminds-sprig-dev (scripts/install-deps.sh does)"
    );
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-template-harness");
    std::fs::create_dir_all(&tmp).expect("the target temp dir is writable");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/template/go");
    let bin = tmp.join("harness");
    let out = Command::new(go)
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", gopath)
        .env("GOCACHE", tmp.join("cache"))
        .env("GOFLAGS", "")
        .env("GOPROXY", "off")
        .output()
        .expect("go runs");
    assert!(
        out.status.success(),
        "go build of the harness failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Sprig functions that read the builder's process (werf gives `env` the render context and
/// drops `expandenv`), so no corpus case compares them with Go.
const NOT_COMPARED: [&str; 2] = ["env", "expandenv"];

/// Every function of Sprig's `functions.go` (Debian's copy) is called by some case.
fn every_sprig_function_has_a_case(cases: &[Case]) {
    let path = "/usr/share/gocode/src/github.com/Masterminds/sprig/functions.go";
    let source = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("cannot read {path} ({e}): install golang-github-masterminds-sprig-dev")
    });
    let entry = regex::Regex::new(r#"(?m)^\s+"(\w+)":"#).expect("valid regex");
    let word = regex::Regex::new(r"\w+").expect("valid regex");
    let called: std::collections::BTreeSet<&str> = cases
        .iter()
        .flat_map(|c| word.find_iter(&c.template).map(|m| m.as_str()))
        .collect();
    let uncovered: Vec<&str> = entry
        .captures_iter(&source)
        .map(|c| c.get(1).expect("group").as_str())
        .filter(|n| !called.contains(n) && !NOT_COMPARED.contains(n))
        .collect();
    assert!(
        uncovered.is_empty(),
        "Sprig functions without a corpus case: {uncovered:?}"
    );
}

/// What Go rendered for one template.
#[derive(serde::Deserialize)]
pub(crate) struct GoOutput {
    pub(crate) ok: bool,
    pub(crate) out: String,
    pub(crate) err: String,
}

fn go_render(cases: &[Case]) -> Vec<GoOutput> {
    go_render_texts(cases.iter().map(|c| c.template.as_str()))
}

/// Renders each template with Go's text/template and Sprig, the dot `{"Env": "production"}`.
pub(crate) fn go_render_texts<'a>(templates: impl IntoIterator<Item = &'a str>) -> Vec<GoOutput> {
    let bin = go_harness();
    let input: Vec<_> = templates
        .into_iter()
        .map(|t| serde_json::json!({"template": t, "data": {"Env": "production"}}))
        .collect();
    let mut child = Command::new(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the harness runs");
    let stdin = child.stdin.take().expect("piped");
    let writer = std::thread::spawn(move || {
        let mut stdin = stdin;
        serde_json::to_writer(&mut stdin, &input).expect("the harness reads its input");
        stdin.flush().expect("flush");
    });
    let out = child.wait_with_output().expect("the harness ends");
    writer.join().expect("writer thread");
    assert!(out.status.success(), "the Go harness failed");
    serde_json::from_slice(&out.stdout).expect("the harness writes JSON")
}

#[test]
fn corpus_renders_as_go_with_sprig() {
    let cases = corpus();
    assert!(cases.len() >= 150, "the corpus is missing cases");
    every_sprig_function_has_a_case(&cases);
    let go = go_render(&cases);
    assert_eq!(go.len(), cases.len());
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = Context {
        dir: dir.path().to_path_buf(),
        env_name: "production".into(),
        ..Context::default()
    };
    let mut failures = Vec::new();
    for (case, go) in cases.iter().zip(&go) {
        let ours = render("t", &case.template, &ctx).map(|r| r.text);
        let fail =
            |why: String| format!("case {}: {why}\n  template: {:?}", case.name, case.template);
        match (&case.check, &ours) {
            (Check::Fails, _) => {
                if go.ok {
                    failures.push(fail(format!(
                        "Go renders {:?}; the case says it fails",
                        go.out
                    )));
                }
                if let Ok(text) = &ours {
                    failures.push(fail(format!(
                        "strata renders {text:?}, Go fails: {}",
                        go.err
                    )));
                }
            }
            (_, Err(e)) if go.ok => {
                failures.push(fail(format!("strata fails ({e}), Go renders {:?}", go.out)))
            }
            (_, Ok(text)) if !go.ok => failures.push(fail(format!(
                "strata renders {text:?}, Go fails: {}",
                go.err
            ))),
            (_, Err(_)) => failures.push(fail(format!(
                "both fail, but the case is not marked `!` (Go: {})",
                go.err
            ))),
            (Check::Bytes, Ok(text)) => {
                if *text != go.out {
                    failures.push(fail(format!("strata {text:?}\n  go     {:?}", go.out)));
                }
            }
            (Check::Shape(re), Ok(text)) => {
                for (who, out) in [("strata", text), ("go", &go.out)] {
                    if !re.is_match(out) {
                        failures.push(fail(format!("{who}'s {out:?} does not match {re}")));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from Go:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
