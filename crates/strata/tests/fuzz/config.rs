//! YAML configs (werf's stapel format), rendered then parsed and lowered: `load_str`.

use proptest::prelude::*;
use strata_frontend::{LoadOptions, load_str};

use crate::{bounded, config};

/// Keys of stapel configs (no `url:`: a remote git mapping would clone over the network).
const KEYS: &[&str] = &[
    "project",
    "configVersion",
    "image",
    "artifact",
    "from",
    "fromLatest",
    "fromImage",
    "fromArtifact",
    "fromCacheVersion",
    "docker",
    "ENV",
    "LABEL",
    "EXPOSE",
    "VOLUME",
    "WORKDIR",
    "USER",
    "ENTRYPOINT",
    "CMD",
    "HEALTHCHECK",
    "shell",
    "beforeInstall",
    "install",
    "beforeSetup",
    "setup",
    "cacheVersion",
    "git",
    "add",
    "to",
    "owner",
    "group",
    "includePaths",
    "excludePaths",
    "stageDependencies",
    "import",
    "before",
    "after",
    "stage",
    "dockerfile",
    "context",
    "target",
    "args",
    "dependencies",
    "imports",
    "targetEnv",
    "targetBuildArg",
    "mount",
    "platform",
    "final",
    "disableGitAfterPatch",
    "<<",
    "",
    "x",
];

/// Scalars of every YAML style and type.
const SCALARS: &[&str] = &[
    "1",
    "alpine:3.19",
    "busybox:latest",
    "/app",
    "''",
    "\"\"",
    "~",
    "null",
    "true",
    "no",
    "0x1F",
    "1e400",
    "-.inf",
    ".nan",
    "'quoted'",
    "\"esc\\u00e9\\x00\"",
    "|\n  block\n",
    ">-\n  folded\n",
    "!!str 1",
    "!!binary aGk=",
    "!custom x",
    "&a 1",
    "*a",
    "*undefined",
    "[]",
    "{}",
    "[a, b, [c, {d: e}]]",
    "{a: 1, b: [2, 3]}",
    "[[[[[[[[[[",
    "{{{{",
    "- - - -",
    "? complex\n: key",
    "%YAML 1.2",
    "---",
    "...",
    "\t",
    "@reserved",
    "`tick",
    "key: value",
    "\u{feff}",
    "{{ .Env }}",
    "{{ if 1 }}x{{ end }}",
    "{{ 1 ",
];

fn scalar() -> impl Strategy<Value = String> {
    proptest::sample::select(SCALARS).prop_map(str::to_string)
}

/// A YAML value: scalars, block sequences and maps (nested), anchored or aliased.
fn value() -> BoxedStrategy<String> {
    scalar()
        .prop_recursive(5, 48, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(|items| {
                    items
                        .iter()
                        .map(|i| format!("\n- {}", i.replace('\n', "\n  ")))
                        .collect()
                }),
                proptest::collection::vec((proptest::sample::select(KEYS), inner.clone()), 0..5)
                    .prop_map(|pairs| {
                        pairs
                            .iter()
                            .map(|(k, v)| format!("\n{k}: {}", v.replace('\n', "\n  ")))
                            .collect::<String>()
                            .replace('\n', "\n  ")
                    }),
                inner.clone().prop_map(|v| format!("&anc {v}")),
                inner.prop_map(|v| format!("[{}]", v.replace('\n', " "))),
            ]
        })
        .boxed()
}

/// Documents of top-level keys, with separators and template pieces mixed in.
fn text() -> impl Strategy<Value = String> {
    let doc = proptest::collection::vec((proptest::sample::select(KEYS), value()), 0..8)
        .prop_map(|pairs| {
            pairs
                .iter()
                .map(|(k, v)| format!("{k}: {v}\n"))
                .collect::<String>()
        })
        .boxed();
    prop_oneof![
        4 => proptest::collection::vec(doc.clone(), 1..4).prop_map(|d| d.join("---\n")),
        // A plausible head so lowering is reached.
        4 => proptest::collection::vec(doc.clone(), 0..3).prop_map(|d| {
            format!("project: p\nconfigVersion: 1\n---\nimage: a\nfrom: alpine\n{}", d.join("---\n"))
        }),
        2 => (doc, crate::template::text()).prop_map(|(d, t)| format!("{t}\n{d}")),
        // Alias expansion bombs and deep flow nesting.
        1 => (1usize..12, 1usize..9).prop_map(|(levels, width)| {
            let mut s = String::from("a0: &a0 [x]\n");
            for l in 1..levels {
                let refs = vec![format!("*a{}", l - 1); width].join(", ");
                s.push_str(&format!("a{l}: &a{l} [{refs}]\n"));
            }
            s
        }),
        1 => (0usize..5000).prop_map(|n| format!("x: {}{}\n", "[".repeat(n), "]".repeat(n))),
        1 => (0usize..3000).prop_map(|n| {
            (0..n).map(|i| format!("{}- a\n", " ".repeat(i))).collect()
        }),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn load_ends(text in text()) {
        let input = text.clone();
        bounded(&input, move || {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("werf.yaml");
            let _ = load_str(dir.path(), path, "werf.yaml", &text, &LoadOptions::default());
        });
    }
}
