//! Dockerfiles: `dockerfile::parse` then `dockerfile::lower`.

use std::path::PathBuf;

use proptest::prelude::*;
use strata_frontend::dockerfile::{self, DockerfileOptions};
use strata_plan::SourceMap;

use crate::{bounded, config};

const INSTRUCTIONS: &[&str] = &[
    "FROM",
    "RUN",
    "COPY",
    "ADD",
    "ENV",
    "ARG",
    "WORKDIR",
    "USER",
    "LABEL",
    "EXPOSE",
    "VOLUME",
    "ENTRYPOINT",
    "CMD",
    "SHELL",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "ONBUILD",
    "MAINTAINER",
    "from",
    "run",
    "NOPE",
];

const FLAGS: &[&str] = &[
    "--from=base",
    "--from=0",
    "--from=${X}",
    "--chown=1:1",
    "--chmod=755",
    "--link",
    "--mount=type=cache,target=/c",
    "--mount=type=bind,source=.,target=/s",
    "--mount=type=secret,id=s",
    "--network=none",
    "--security=insecure",
    "--platform=linux/amd64",
    "--platform=$BUILDPLATFORM",
    "--parents",
    "--exclude=*.md",
    "--keep-git-dir",
    "--checksum=sha256:00",
    "--interval=1s",
    "--retries=3",
    "--start-period",
    "--",
    "-x",
    "--=",
    "--mount=",
    "--mount=type=,,,,",
];

const WORDS: &[&str] = &[
    "alpine:3.19",
    "busybox",
    "scratch",
    "base",
    "AS",
    "as",
    "base",
    "/app",
    ".",
    "*",
    "**/*.go",
    "src/",
    "a b",
    "echo hi",
    "$X",
    "${X}",
    "${X:-d}",
    "${X:+a}",
    "${X?err}",
    "${X#*}",
    "${X%%.*}",
    "${X/a/b}",
    "${",
    "${X",
    "$",
    "\\$X",
    "'single'",
    "\"double\"",
    "\"open",
    "'open",
    "[\"sh\", \"-c\", \"x\"]",
    "[\"unclosed\"",
    "[]",
    "[",
    "]",
    "X=1",
    "X=\"a b\"",
    "X",
    "=",
    "a=b=c",
    "80/tcp",
    "1-100",
    "&&",
    "|",
    ";",
    "#",
    "<<EOF",
    "<<-EOF",
    "<<'EOF'",
    "<<\"EOF\"",
    "<<EOF <<END",
    "<<",
    "é",
    "\u{0}",
    "\t",
];

fn line() -> impl Strategy<Value = String> {
    (
        proptest::sample::select(INSTRUCTIONS),
        proptest::collection::vec(proptest::sample::select(FLAGS), 0..3),
        proptest::collection::vec(proptest::sample::select(WORDS), 0..5),
        proptest::sample::select(&["", " \\", "\\", " `", " \\ "][..]),
        proptest::option::of(proptest::sample::select(
            &[
                "EOF\n",
                "echo a\nEOF\n",
                "x\n  EOF\n",
                "\tEOF\n",
                "END\nEOF\n",
                "",
            ][..],
        )),
    )
        .prop_map(|(ins, flags, words, cont, heredoc)| {
            let mut s = ins.to_string();
            for w in flags.iter().chain(&words) {
                s.push(' ');
                s.push_str(w);
            }
            s.push_str(cont);
            s.push('\n');
            if let Some(h) = heredoc {
                s.push_str(h);
            }
            s
        })
}

fn text() -> impl Strategy<Value = String> {
    let directives = proptest::sample::select(
        &[
            "",
            "# syntax=docker/dockerfile:1\n",
            "# escape=`\n",
            "# escape=\\\n",
            "# escape=x\n",
            "# check=skip=all\n",
        ][..],
    );
    prop_oneof![
        6 => (directives, proptest::collection::vec(line(), 0..16))
            .prop_map(|(d, lines)| format!("{d}{}", lines.concat())),
        // A plausible start so lowering is reached.
        4 => proptest::collection::vec(line(), 0..12)
            .prop_map(|lines| format!("ARG X=1\nFROM busybox AS base\n{}FROM base\n", lines.concat())),
        // Long continuations and many heredocs.
        1 => (0usize..3000).prop_map(|n| format!("FROM busybox\nRUN echo {}\n", "a \\\n".repeat(n))),
        1 => (0usize..300).prop_map(|n| format!("FROM busybox\nRUN {} cat\n{}", "<<E ".repeat(n), "E\n".repeat(n))),
        1 => (0usize..300).prop_map(|n| format!("FROM busybox\nENV X={}\n", "${X:-".repeat(n))),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parse_and_lower_end(text in text()) {
        let input = text.clone();
        bounded(&input, move || {
            let mut sources = SourceMap::default();
            let file = sources.add(PathBuf::from("Dockerfile"), "Dockerfile".into(), text.clone());
            if let Ok(parsed) = dockerfile::parse(file, &text) {
                let dir = tempfile::tempdir().expect("tempdir");
                let pinned = tempfile::tempdir().expect("tempdir");
                let options = DockerfileOptions {
                    context: dir.path().to_path_buf(),
                    snapshot: Some(dockerfile::context_files::SnapshotDirs {
                build: pinned.path().to_path_buf(),
                pins: None,
            }),
                    target: None,
                    build_args: vec![("X".into(), "v".into())],
                    tag: "t".into(),
                    ..DockerfileOptions::default()
                };
                let _ = dockerfile::lower(&parsed, sources, &options);
            }
        });
    }
}
