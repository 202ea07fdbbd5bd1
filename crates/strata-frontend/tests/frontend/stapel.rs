//! Golden cases of the stapel frontend, in the BuildKit parser style:
//! `testdata/stapel/<case>/` holds a config and `plan.snap` (the lowered plan),
//! `testdata/stapel/negative/<case>/` a config and `error.snap` (the rendered error).
//! Run with `UPDATE_SNAPSHOTS=1` to rewrite the snapshots.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use strata_frontend::{LoadOptions, load};
use strata_plan::{Base, Op, Plan, Span};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/stapel")
}

fn cases(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n != "negative"))
        .collect();
    out.sort();
    out
}

/// Compares `actual` with the snapshot file, or rewrites it under `UPDATE_SNAPSHOTS=1`.
fn check(snap: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(snap, actual).expect("writing a snapshot");
        return;
    }
    let expected = std::fs::read_to_string(snap).unwrap_or_default();
    if expected != actual {
        failures.push(format!(
            "{} differs\n--- expected\n{expected}\n--- actual\n{actual}",
            snap.display()
        ));
    }
}

fn redact(text: &str, dir: &Path) -> String {
    text.replace(&format!("{}/", dir.display()), "[ROOT]/")
}

#[test]
fn golden_plans() {
    let mut failures = Vec::new();
    let all = cases(&testdata());
    assert!(
        all.len() >= 10,
        "expected the golden cases in {}",
        testdata().display()
    );
    for dir in all {
        match load(&dir, &LoadOptions::default()) {
            Ok(plan) => check(&dir.join("plan.snap"), &dump(&plan), &mut failures),
            Err(e) => failures.push(format!(
                "{}: {}",
                dir.display(),
                redact(&e.to_string(), &dir)
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn golden_errors() {
    let mut failures = Vec::new();
    let all = cases(&testdata().join("negative"));
    assert!(all.len() >= 10, "expected the negative cases");
    for dir in all {
        match load(&dir, &LoadOptions::default()) {
            Ok(plan) => failures.push(format!("{}: loaded\n{}", dir.display(), dump(&plan))),
            Err(e) => check(
                &dir.join("error.snap"),
                &redact(&e.to_string(), &dir),
                &mut failures,
            ),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A stable, readable text form of a plan; positions as `line:col`.
fn dump(plan: &Plan) -> String {
    let at = |span: Option<Span>| match span {
        Some(s) => {
            let lc = plan.sources.line_col(s.file, s.start);
            format!("{}:{}", lc.line, lc.column)
        }
        None => "-".into(),
    };
    let mut out = String::new();
    let source = plan.sources.file(strata_plan::FileId(0));
    let file = source
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let _ = writeln!(out, "source: {}", file.unwrap_or_default());
    let _ = writeln!(out, "project: {}", plan.project.as_deref().unwrap_or("-"));
    for image in &plan.images {
        let final_ = if image.is_final { "final" } else { "not final" };
        let _ = writeln!(out, "image {} ({final_}) @ {}", image.name, at(image.span));
        let base = match &image.base {
            Base::Scratch => "scratch".to_string(),
            Base::Reference { reference, span } => format!("reference {reference} @ {}", at(*span)),
            Base::Image { index, span } => {
                format!("image {} @ {}", plan.images[*index].name, at(*span))
            }
        };
        let _ = writeln!(out, "  base: {base}");
        for stage in &image.stages {
            // The one table of what feeds each kind of stage holds for every golden case.
            if let Some(bad) = stage.kind.first_unfed(&stage.inputs) {
                panic!(
                    "{} ({:?}) is fed a {:?}",
                    stage.name,
                    stage.kind,
                    bad.kind()
                );
            }
            let _ = writeln!(out, "  stage {} @ {}", stage.name, at(stage.span));
            for input in &stage.inputs {
                let _ = writeln!(out, "    input {} = {}", input.name(), input.value());
            }
            for step in &stage.steps {
                match &step.op {
                    Op::GitArchive { mapping } => {
                        let _ = writeln!(out, "    git archive {mapping} @ {}", at(step.span));
                    }
                    Op::GitPatch { mapping } => {
                        let _ = writeln!(out, "    git patch {mapping} @ {}", at(step.span));
                    }
                    Op::CopyFiles(c) => {
                        let _ = writeln!(
                            out,
                            "    copy {} entries @ {}",
                            c.entries.len(),
                            at(step.span)
                        );
                    }
                    Op::MakeDir { path, .. } => {
                        let _ = writeln!(out, "    mkdir {path} @ {}", at(step.span));
                    }
                    Op::MissingSources(m) => {
                        let _ = writeln!(out, "    missing {:?} @ {}", m.paths, at(step.span));
                    }
                    Op::Import(i) => {
                        let _ = writeln!(
                            out,
                            "    import from {} {} -> {} include={:?} exclude={:?} owner={:?} group={:?} @ {}",
                            plan.images[i.image].name,
                            i.add,
                            i.to,
                            i.include,
                            i.exclude,
                            i.owner,
                            i.group,
                            at(step.span)
                        );
                    }
                    Op::Run(run) => {
                        let _ = writeln!(
                            out,
                            "    run {:?} user={} workdir={} @ {}",
                            run.shell,
                            run.user.as_deref().unwrap_or("-"),
                            run.workdir.as_deref().unwrap_or("-"),
                            at(step.span)
                        );
                        for c in &run.commands {
                            let text = c.span.map(|s| plan.sources.text(s)).unwrap_or("");
                            let _ = writeln!(out, "      {} {:?}", at(c.span), c.text);
                            let _ = writeln!(out, "        source {text:?}");
                        }
                    }
                    Op::Config(c) => {
                        let _ = writeln!(out, "    config @ {}", at(step.span));
                        let mut field = |name: &str, value: String| {
                            let _ = writeln!(out, "      {name}: {value}");
                        };
                        if !c.volumes.is_empty() {
                            field("volumes", format!("{:?}", c.volumes));
                        }
                        if !c.expose.is_empty() {
                            field("expose", format!("{:?}", c.expose));
                        }
                        if !c.env.is_empty() {
                            field("env", format!("{:?}", c.env));
                        }
                        if !c.labels.is_empty() {
                            field("labels", format!("{:?}", c.labels));
                        }
                        if let Some(v) = &c.entrypoint {
                            field("entrypoint", format!("{v:?}"));
                        }
                        if let Some(v) = &c.cmd {
                            field("cmd", format!("{v:?}"));
                        }
                        if let Some(v) = &c.workdir {
                            field("workdir", format!("{v:?}"));
                        }
                        if let Some(v) = &c.user {
                            field("user", format!("{v:?}"));
                        }
                        if let Some(h) = &c.healthcheck {
                            field(
                                "healthcheck",
                                format!(
                                    "test={:?} interval={} timeout={} start_period={} retries={}",
                                    h.test, h.interval, h.timeout, h.start_period, h.retries
                                ),
                            );
                        }
                        if let Some(v) = &c.stop_signal {
                            field("stop_signal", format!("{v:?}"));
                        }
                    }
                }
            }
        }
    }
    out
}
