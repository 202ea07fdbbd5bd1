//! Config templates (werf's Go templates + Sprig): `template::render`.

use proptest::prelude::*;
use strata_frontend::template;

use crate::{bounded, config};

/// Actions, pipelines and the pieces of them, well-formed and not.
const PIECES: &[&str] = &[
    "{{ . }}",
    "{{- . -}}",
    "{{ $x := 1 }}",
    "{{ $x = 2 }}",
    "{{ $x }}",
    "{{ if . }}",
    "{{ if eq 1 1 }}",
    "{{ else }}",
    "{{ else if 1 }}",
    "{{ else with 2 }}",
    "{{ end }}",
    "{{- end -}}",
    "{{ range $i, $v := list 1 2 3 }}",
    "{{ range 3 }}",
    "{{ range 100000000000 }}",
    "{{ range $k, $v := dict \"a\" 1 }}",
    "{{ with .x }}",
    "{{ define \"t\" }}",
    "{{ define \"u\" }}x{{ end }}",
    "{{ template \"t\" . }}",
    "{{ template \"u\" }}",
    "{{ include \"t\" . }}",
    "{{ include \"u\" . | nindent 4 }}",
    "{{ tpl \"{{ . }}\" . }}",
    "{{ tpl \"{{ tpl . . }}\" \"{{ tpl . . }}\" }}",
    "{{ block \"b\" . }}",
    "{{ break }}",
    "{{ continue }}",
    "{{ printf \"%d %s %v %q\" 1 \"a\" . 'c' }}",
    "{{ printf \"%999999999d\" 1 }}",
    "{{ printf \"%*d\" 99999999999 1 }}",
    "{{ printf \"%.*f\" 3 1.5 }}",
    "{{ (((1))) }}",
    "{{ 1 | add 2 | mul 3 }}",
    "{{ repeat 1000000000000 \"x\" }}",
    "{{ repeat 3 \"ab\" }}",
    "{{ until 1000000000 }}",
    "{{ untilStep 0 9223372036854775807 1 }}",
    "{{ untilStep -9223372036854775808 9223372036854775807 4611686018427387904 }}",
    "{{ indent 999999999999 \"x\" }}",
    "{{ div 1 0 }}",
    "{{ mod -9223372036854775808 -1 }}",
    "{{ sub -9223372036854775808 1 }}",
    "{{ index (list 1 2) 5 }}",
    "{{ slice \"abc\" 2 1 }}",
    "{{ substr 5 1 \"abc\" }}",
    "{{ trunc -5 \"abcdef\" }}",
    "{{ abbrev 2 \"abcdef\" }}",
    "{{ wrap 0 \"a b c\" }}",
    "{{ toYaml (dict \"a\" (list 1 2)) }}",
    "{{ fromYaml \"a: [1, {b: *x}]\" }}",
    "{{ fromYaml \"a: &x [*x]\" }}",
    "{{ fromJson \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\" }}",
    "{{ toJson . }}",
    "{{ env \"HOME\" }}",
    "{{ .Files.Get \"../etc/passwd\" }}",
    "{{ .Files.Glob \"**/*\" }}",
    "{{ fail \"boom\" }}",
    "{{ required \"need\" .missing }}",
    "{{ /* comment */ }}",
    "{{- /* trimmed */ -}}",
    "{{/* unclosed comment",
    "{{ 1",
    "{{",
    "}}",
    "{{ \"unterminated",
    "{{ `raw",
    "{{ 'c' }}",
    "{{ ( }}",
    "{{ ) }}",
    "{{ $ }}",
    "{{ $undefined }}",
    "{{ .a.b.c }}",
    "{{ nil }}",
    "{{ 0x1p3 }}",
    "{{ -1e400 }}",
    "{{ 0b102 }}",
    "{{ 1_000 }}",
    "{{ := }}",
    "{{ | }}",
    "{{ nosuchfunc }}",
    "{{ and }}",
    "{{ or 0 \"\" nil }}",
    "{{ not }}",
    "{{ len 3 }}",
    "{{ regexMatch \"(a+)+$\" \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\" }}",
    "{{ semverCompare \">1.0\" \"x\" }}",
    "{{ b64dec \"%%%\" }}",
    "{{ sha256sum \"a\" }}",
    "{{ uuidv4 | len }}",
    "{{ list 1 2 | append 3 | concat (list 4) | uniq | sortAlpha }}",
    "{{ dict \"a\" 1 | merge (dict \"b\" 2) | keys }}",
    "{{ splitList \",\" \"a,b\" | join \"-\" }}",
    "x: ",
    "\n",
    "  ",
    " ",
    "- ",
    "a",
    "{",
    "}",
    "-}}",
    "{{-",
];

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::sample::select(PIECES).prop_map(str::to_string),
        1 => proptest::collection::vec(any::<char>(), 0..6).prop_map(|c| c.into_iter().collect()),
    ]
}

/// Deep nesting: controls, parentheses and recursive templates.
fn deep() -> impl Strategy<Value = String> {
    (0usize..400, 0usize..4).prop_map(|(n, shape)| match shape {
        0 => format!("{}x{}", "{{ if 1 }}".repeat(n), "{{ end }}".repeat(n)),
        1 => format!("{{{{ {}1{} }}}}", "(".repeat(n), ")".repeat(n)),
        2 => format!(
            "{{{{ if 0 }}}}{}{{{{ end }}}}",
            "{{ else if 0 }}".repeat(n)
        ),
        _ => format!(
            "{{{{ define \"r\" }}}}{}{{{{ template \"r\" . }}}}{}{{{{ end }}}}{{{{ template \"r\" . }}}}",
            "{{ with 1 }}".repeat(n % 100),
            "{{ end }}".repeat(n % 100)
        ),
    })
}

/// Operands: literals of every kind, fields, variables, parenthesized pipelines.
fn operand() -> impl Strategy<Value = String> {
    proptest::sample::select(
        &[
            ".",
            ".a",
            ".a.b",
            "$",
            "$x",
            "1",
            "-3",
            "100000000000",
            "9223372036854775807",
            "1.5",
            "1e400",
            "0x10",
            "'c'",
            "\"s\"",
            "`raw`",
            "true",
            "nil",
            "(list 1 2)",
            "(dict \"k\" 1)",
            "(list)",
            "\"{{ . }}\"",
            "\"%d%s\"",
        ][..],
    )
    .prop_map(str::to_string)
}

/// A pipeline: commands of functions (Sprig and builtins) with operand arguments.
fn pipeline() -> impl Strategy<Value = String> {
    let func = proptest::sample::select(
        &[
            "",
            "print",
            "printf",
            "len",
            "index",
            "slice",
            "eq",
            "ne",
            "lt",
            "and",
            "or",
            "not",
            "add",
            "sub",
            "mul",
            "div",
            "mod",
            "max",
            "repeat",
            "indent",
            "nindent",
            "until",
            "untilStep",
            "list",
            "dict",
            "append",
            "concat",
            "keys",
            "join",
            "splitList",
            "toYaml",
            "toJson",
            "fromYaml",
            "fromJson",
            "default",
            "empty",
            "upper",
            "trim",
            "replace",
            "quote",
            "b64enc",
            "b64dec",
            "sha256sum",
            "trunc",
            "substr",
            "abbrev",
            "wrap",
            "include",
            "tpl",
            "env",
            "required",
            "fail",
            "ternary",
            "coalesce",
            "first",
            "last",
            "rest",
            "uniq",
            "sortAlpha",
            "merge",
            "set",
            "unset",
            "hasKey",
            "pluck",
            "toString",
            "int",
            "float64",
            "semver",
            "semverCompare",
            "regexMatch",
            "regexReplaceAll",
        ][..],
    );
    let cmd = (func, proptest::collection::vec(operand(), 0..4)).prop_map(|(f, args)| {
        let mut words = vec![f.to_string()];
        words.extend(args);
        words.retain(|w| !w.is_empty());
        if words.is_empty() {
            ".".to_string()
        } else {
            words.join(" ")
        }
    });
    (
        proptest::sample::select(&["", "$x := ", "$x = ", "$i, $v := "][..]),
        proptest::collection::vec(cmd, 1..4),
    )
        .prop_map(|(decl, cmds)| format!("{decl}{}", cmds.join(" | ")))
}

/// A well-formed template tree: text, actions, if/else/range/with bodies, defines and calls.
fn tree() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        proptest::sample::select(&["x: ", "\n", "  - ", "a", " "][..]).prop_map(str::to_string),
        pipeline().prop_map(|p| format!("{{{{ {p} }}}}")),
        pipeline().prop_map(|p| format!("{{{{- {p} -}}}}")),
        proptest::sample::select(
            &[
                "{{ template \"t\" . }}",
                "{{ break }}",
                "{{ continue }}",
                "{{/* c */}}",
            ][..]
        )
        .prop_map(str::to_string),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        let body = proptest::collection::vec(inner, 0..6).prop_map(|v| v.concat());
        prop_oneof![
            (pipeline(), body.clone(), proptest::option::of(body.clone())).prop_map(|(p, b, e)| {
                match e {
                    Some(e) => format!("{{{{ if {p} }}}}{b}{{{{ else }}}}{e}{{{{ end }}}}"),
                    None => format!("{{{{ if {p} }}}}{b}{{{{ end }}}}"),
                }
            }),
            (pipeline(), body.clone())
                .prop_map(|(p, b)| format!("{{{{ range {p} }}}}{b}{{{{ end }}}}")),
            (pipeline(), body.clone())
                .prop_map(|(p, b)| format!("{{{{ with {p} }}}}{b}{{{{ else }}}}{{{{ end }}}}")),
            body.clone().prop_map(|b| format!(
                "{{{{ define \"t\" }}}}{b}{{{{ end }}}}{{{{ template \"t\" . }}}}"
            )),
            (pipeline(), body)
                .prop_map(|(p, b)| format!("{{{{ block \"b\" {p} }}}}{b}{{{{ end }}}}")),
        ]
    })
}

/// `text` with a piece inserted at a byte offset and maybe cut short: unclosed actions,
/// stray delimiters, a piece where it does not belong.
fn mutated(text: String, piece: String, at: usize, cut: Option<usize>) -> String {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let mut out = format!("{}{piece}{}", &text[..at], &text[at..]);
    if let Some(cut) = cut {
        let mut cut = cut % (out.len() + 1);
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// A template text: real pieces in random order, trees (mutated or not), deep nesting.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::collection::vec(piece(), 0..24).prop_map(|p| p.concat()),
        4 => tree(),
        3 => (tree(), piece(), any::<usize>(), proptest::option::of(any::<usize>()))
            .prop_map(|(t, p, at, cut)| mutated(t, p, at, cut)),
        1 => deep(),
        1 => (deep(), proptest::collection::vec(piece(), 0..8))
            .prop_map(|(d, p)| format!("{}{d}", p.concat())),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn render_ends(text in text()) {
        let input = text.clone();
        bounded(&input, move || {
            let dir = tempfile::tempdir().expect("tempdir");
            let ctx = template::Context { dir: dir.path().to_path_buf(), ..Default::default() };
            let _ = template::render("strata.yaml", &text, &ctx);
        });
    }
}
