//! Golden cases of the Dockerfile parser, in the BuildKit `parser/testfiles` style:
//! `testdata/dockerfile/<case>/Dockerfile` with `instructions.snap` (a readable dump of the
//! parse), `testdata/dockerfile/negative/<case>/Dockerfile` with `error.snap` (the rendered
//! error). Run with `UPDATE_SNAPSHOTS=1` to rewrite the snapshots.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use strata_plan::{SourceMap, Span};

use super::*;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/dockerfile")
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

fn load(dir: &Path) -> (SourceMap, Result<Dockerfile, Box<Diagnostic>>) {
    let path = dir.join("Dockerfile");
    let text = std::fs::read_to_string(&path).expect("reading the Dockerfile");
    let mut sources = SourceMap::default();
    let file = sources.add(path, "Dockerfile".into(), text.clone());
    let result = parse(file, &text);
    (sources, result)
}

#[test]
fn golden_instructions() {
    let mut failures = Vec::new();
    let all = cases(&testdata());
    assert!(
        all.len() >= 30,
        "expected the golden cases in {}",
        testdata().display()
    );
    for dir in all {
        match load(&dir) {
            (sources, Ok(file)) => check(
                &dir.join("instructions.snap"),
                &dump(&sources, &file),
                &mut failures,
            ),
            (sources, Err(e)) => {
                failures.push(format!("{}: {}", dir.display(), e.render(&sources)))
            }
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
        match load(&dir) {
            (sources, Ok(file)) => failures.push(format!(
                "{}: parsed\n{}",
                dir.display(),
                dump(&sources, &file)
            )),
            (sources, Err(e)) => check(&dir.join("error.snap"), &e.render(&sources), &mut failures),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn ten_megabyte_line_parses_in_linear_time() {
    let payload = "x".repeat(10 << 20);
    let text = format!(
        "FROM alpine\nRUN echo {payload} \\\n  && true\nLABEL big=\"{payload}\"\nCOPY [\"{payload}\", \"/d\"]\n"
    );
    let started = std::time::Instant::now();
    let file = parse(FileId(0), &text).expect("parses");
    let elapsed = started.elapsed();
    assert_eq!(file.stages[0].instructions.len(), 3);
    let Instruction::Run(run) = &file.stages[0].instructions[0] else {
        panic!("expected RUN")
    };
    let CommandLine::Shell(w) = &run.command else {
        panic!("expected the shell form")
    };
    assert_eq!(
        w.text.len(),
        "echo ".len() + payload.len() + "   && true".len()
    );
    assert!(elapsed.as_secs() < 20, "took {elapsed:?}");
}

#[test]
fn onbuild_expression_is_what_docker_stores() {
    let text = "FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\nONBUILD  copy --chown=1 a b\n";
    let file = parse(FileId(0), text).expect("parses");
    let exprs: Vec<&str> = file.stages[0]
        .instructions
        .iter()
        .map(|i| match i {
            Instruction::Onbuild(o) => o.expression.as_str(),
            _ => "",
        })
        .collect();
    assert_eq!(exprs, ["RUN <<EOF\necho hi\nEOF", "copy --chown=1 a b"]);
}

#[test]
fn words_expand_with_their_span_in_errors() {
    let mut sources = SourceMap::default();
    let text = "FROM a\nENV A=${B#x}\n";
    let f = sources.add("Dockerfile".into(), "Dockerfile".into(), text.into());
    let file = parse(f, text).expect("parses");
    let Instruction::Env(env) = &file.stages[0].instructions[0] else {
        panic!("expected ENV")
    };
    let err = env.vars[0]
        .value
        .expand('\\', &|_| None)
        .expect_err("pattern substitutions are not supported");
    assert_eq!(
        err.render(&sources),
        "error: cannot expand `${B#x}`: the pattern substitution `${VAR#...}` is not supported by strata\n \
         --> Dockerfile:2:7\n  |\n2 | ENV A=${B#x}\n  |       ^^^^^^\n  |\n  \
         = help: expand the value in a RUN step instead, where the shell supports it"
    );
}

#[test]
fn platform_args_name_the_host() {
    let host = Platform::host();
    let args = platform_args(&host, &host);
    assert_eq!(args[0].0, "BUILDPLATFORM");
    assert!(args[0].1.starts_with(&format!("{}/", std::env::consts::OS)));
    assert_eq!(args.len(), 8);
}

/// A stable, readable text form of a parse; positions as `line:col`.
fn dump(sources: &SourceMap, file: &Dockerfile) -> String {
    let mut d = Dump {
        sources,
        out: String::new(),
    };
    d.file(file);
    d.out
}

struct Dump<'a> {
    sources: &'a SourceMap,
    out: String,
}

impl Dump<'_> {
    fn at(&self, span: Span) -> String {
        let a = self.sources.line_col(span.file, span.start);
        let b = self.sources.line_col(span.file, span.end);
        if a.line == b.line {
            format!("{}:{}-{}", a.line, a.column, b.column)
        } else {
            format!("{}:{}-{}:{}", a.line, a.column, b.line, b.column)
        }
    }

    fn word(&self, w: &Word) -> String {
        format!("{:?}@{}", w.text, self.at(w.span))
    }

    fn opt(&self, name: &str, w: &Option<Word>) -> String {
        match w {
            Some(w) => format!(" {name}={}", self.word(w)),
            None => String::new(),
        }
    }

    fn line(&mut self, depth: usize, text: impl AsRef<str>) {
        let _ = writeln!(
            self.out,
            "{:width$}{}",
            "",
            text.as_ref(),
            width = depth * 2
        );
    }

    fn file(&mut self, f: &Dockerfile) {
        let d = &f.directives;
        let mut head = format!("escape {:?}", d.escape);
        if let Some(s) = d.escape_span {
            head += &format!("@{}", self.at(s));
        }
        if let Some(s) = &d.syntax {
            head += &format!(" syntax {:?}@{}", s.value, self.at(s.span));
        }
        if let Some(s) = &d.check {
            head += &format!(" check {:?}@{}", s.value, self.at(s.span));
        }
        self.line(0, head);
        for w in &f.warnings {
            let at = w.span.map(|s| self.at(s)).unwrap_or_default();
            self.line(0, format!("warning: {} @{at}", w.message));
        }
        for a in &f.global_args {
            self.line(0, "global:");
            self.instruction(1, &Instruction::Arg(a.clone()));
        }
        for (i, s) in f.stages.iter().enumerate() {
            let name = s
                .name
                .as_ref()
                .map(|n| format!(" {:?}@{}", n.value, self.at(n.span)))
                .unwrap_or_default();
            self.line(0, format!("stage {i}{name} @{}", self.at(s.span)));
            let from = &s.from;
            self.line(
                1,
                format!(
                    "FROM @{} image={}{}{}",
                    self.at(from.span),
                    self.word(&from.image),
                    self.opt("platform", &from.platform),
                    self.opt("as", &from.alias)
                ),
            );
            for inst in &s.instructions {
                self.instruction(1, inst);
            }
        }
    }

    fn command(&mut self, depth: usize, c: &CommandLine) {
        match c {
            CommandLine::Exec(args) => {
                let args: Vec<String> = args.iter().map(|w| self.word(w)).collect();
                self.line(depth, format!("exec [{}]", args.join(", ")));
            }
            CommandLine::Shell(w) => {
                let w = self.word(w);
                self.line(depth, format!("shell {w}"));
            }
        }
    }

    fn heredoc(&mut self, depth: usize, h: &Heredoc) {
        let fd = h.fd.map(|f| format!(" fd={f}")).unwrap_or_default();
        let line = format!(
            "heredoc {:?}@{} chomp={} expand={}{fd} body={:?} @{}",
            h.name,
            self.at(h.word_span),
            h.chomp,
            h.expand,
            h.body(),
            self.at(h.span)
        );
        self.line(depth, line);
    }

    fn sources(&mut self, depth: usize, sources: &[Source], dest: &Word) {
        for s in sources {
            match s {
                Source::Path(w) => {
                    let w = self.word(w);
                    self.line(depth, format!("source {w}"));
                }
                Source::Heredoc(h) => self.heredoc(depth, h),
            }
        }
        let dest = self.word(dest);
        self.line(depth, format!("dest {dest}"));
    }

    fn key_values(&mut self, depth: usize, kvs: &[KeyValue]) {
        for kv in kvs {
            let line = format!("{} = {}", self.word(&kv.key), self.word(&kv.value));
            self.line(depth, line);
        }
    }

    fn instruction(&mut self, depth: usize, inst: &Instruction) {
        let head = format!("{} @{}", inst.keyword(), self.at(inst.span()));
        let n = depth + 1;
        match inst {
            Instruction::Run(r) => {
                let network = r
                    .network
                    .as_ref()
                    .map(|n| format!(" network={:?}@{}", n.value, self.at(n.span)))
                    .unwrap_or_default();
                self.line(depth, format!("{head}{network}"));
                for m in &r.mounts {
                    let mut line = format!(
                        "mount {:?} @{} readonly={}",
                        m.kind,
                        self.at(m.span),
                        m.readonly
                    );
                    line += &self.opt("target", &m.target);
                    line += &self.opt("source", &m.source);
                    line += &self.opt("from", &m.from);
                    line += &self.opt("id", &m.id);
                    line += &self.opt("env", &m.env);
                    if let Some(s) = m.sharing {
                        line += &format!(" sharing={s:?}");
                    }
                    if m.required {
                        line += " required";
                    }
                    for (k, v) in [
                        ("mode", m.mode.map(|v| format!("{v:o}"))),
                        ("uid", m.uid.map(|v| v.to_string())),
                        ("gid", m.gid.map(|v| v.to_string())),
                        ("size", m.size.map(|v| v.to_string())),
                    ] {
                        if let Some(v) = v {
                            line += &format!(" {k}={v}");
                        }
                    }
                    self.line(n, line);
                }
                self.command(n, &r.command);
                for h in &r.heredocs {
                    self.heredoc(n, h);
                }
            }
            Instruction::Cmd(Cmd { command, .. })
            | Instruction::Entrypoint(Entrypoint { command, .. }) => {
                self.line(depth, head);
                self.command(n, command);
            }
            Instruction::Shell(s) => {
                let argv: Vec<String> = s.argv.iter().map(|w| self.word(w)).collect();
                self.line(depth, format!("{head} [{}]", argv.join(", ")));
            }
            Instruction::Copy(c) => {
                let flags = format!(
                    "{}{}{}{}",
                    self.opt("from", &c.from),
                    self.opt("chown", &c.chown),
                    self.opt("chmod", &c.chmod),
                    if c.link { " link" } else { "" }
                );
                self.line(depth, format!("{head}{flags}"));
                self.sources(n, &c.sources, &c.dest);
            }
            Instruction::Add(a) => {
                let flags = format!(
                    "{}{}{}{}{}",
                    self.opt("chown", &a.chown),
                    self.opt("chmod", &a.chmod),
                    self.opt("checksum", &a.checksum),
                    if a.link { " link" } else { "" },
                    if a.keep_git_dir { " keep-git-dir" } else { "" }
                );
                self.line(depth, format!("{head}{flags}"));
                self.sources(n, &a.sources, &a.dest);
            }
            Instruction::Env(e) => {
                self.line(depth, head);
                self.key_values(n, &e.vars);
            }
            Instruction::Label(l) => {
                self.line(depth, head);
                self.key_values(n, &l.labels);
            }
            Instruction::Arg(a) => {
                self.line(depth, head);
                for decl in &a.args {
                    let line = format!(
                        "{}{}",
                        self.word(&decl.name),
                        self.opt("default", &decl.default)
                    );
                    self.line(n, line);
                }
            }
            Instruction::Workdir(Workdir { path: w, .. })
            | Instruction::User(User { user: w, .. })
            | Instruction::StopSignal(StopSignal { signal: w, .. })
            | Instruction::Maintainer(Maintainer { name: w, .. }) => {
                let w = self.word(w);
                self.line(depth, format!("{head} {w}"));
            }
            Instruction::Expose(Expose { ports: ws, .. })
            | Instruction::Volume(Volume { paths: ws, .. }) => {
                let ws: Vec<String> = ws.iter().map(|w| self.word(w)).collect();
                self.line(depth, format!("{head} [{}]", ws.join(", ")));
            }
            Instruction::Healthcheck(h) => {
                let mut line = head;
                for (name, d) in [
                    ("interval", &h.interval),
                    ("timeout", &h.timeout),
                    ("start-period", &h.start_period),
                    ("start-interval", &h.start_interval),
                ] {
                    if let Some(d) = d {
                        line += &format!(" {name}={:?}@{}", d.value, self.at(d.span));
                    }
                }
                if let Some(r) = &h.retries {
                    line += &format!(" retries={}@{}", r.value, self.at(r.span));
                }
                match &h.test {
                    None => self.line(depth, format!("{line} NONE")),
                    Some(c) => {
                        self.line(depth, line);
                        self.command(n, c);
                    }
                }
            }
            Instruction::Onbuild(o) => {
                self.line(depth, format!("{head} expression={:?}", o.expression));
                self.instruction(n, &o.trigger);
            }
        }
    }
}
