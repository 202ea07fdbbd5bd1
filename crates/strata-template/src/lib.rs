//! Go templates in stapel configs: werf renders `werf.yaml` as a Go `text/template` with Sprig
//! and its own functions before reading the YAML, and so does [`render`].
//!
//! ```
//! use strata_template::{render, Context};
//!
//! let ctx = Context {
//!     dir: "/src/app".into(),
//!     env: [("TAG".to_string(), "3.20".to_string())].into(),
//!     commit: None,
//!     env_name: "production".into(),
//! };
//! let text = "\
//! {{- $images := list \"api\" \"worker\" }}
//! {{- range $images }}
//! ---
//! image: {{ . }}
//! from: alpine:{{ env \"TAG\" \"latest\" }}
//! {{- end }}
//! ";
//! let rendered = render("strata.yaml", text, &ctx)?;
//! assert_eq!(rendered.text, "\n---\nimage: api\nfrom: alpine:3.20\n---\nimage: worker\nfrom: alpine:3.20\n");
//! // Output line 4 (`from: alpine:3.20`) came from line 5 of strata.yaml.
//! let origin = rendered.line_origin(4).expect("known");
//! assert_eq!((rendered.sources[origin.source].name.as_str(), origin.line), ("strata.yaml", 5));
//!
//! let err = render("strata.yaml", "image: {{ nope }}\n", &ctx).unwrap_err();
//! assert_eq!(err.to_string(), "strata.yaml:1:11: function \"nope\" not defined");
//! # Ok::<(), strata_template::Error>(())
//! ```
//!
//! # What templates see
//!
//! The function set is werf's (Sprig v3 without `expandenv`, plus werf's own), with Helm's
//! `toYaml` added:
//!
//! - `.Files.Get "path"`, `.Files.Glob "pattern"` (path → content, `**` crosses directories,
//!   no match is an error as in werf), `.Files.Exists`, `.Files.IsDir`: relative to
//!   [`Context::dir`], which they cannot leave (`../`, absolute paths and outward symlinks are
//!   errors).
//! - `env "NAME"` and `env "NAME" "default"`: from [`Context::env`], never the real process
//!   environment. As in werf, the default replaces an unset or empty variable, and an unset
//!   variable without a default is an error.
//! - `.Env`: as in werf, the deployment environment's name (`--env`), a string; see
//!   [`Context::env_name`].
//! - `.Commit.Hash`, `.Commit.Date.Human`, `.Commit.Date.Unix` (a string, as in werf) when
//!   [`Context::commit`] is set.
//! - `include "name" data`, `tpl "text" data`, `required "message" value` (nil or "" fails),
//!   `fail "message"`.
//! - Go's builtins (`and or not len index print printf println eq ne lt le gt ge html js
//!   urlquery`; `slice` is Sprig's, which replaces Go's in werf's map and takes lists only)
//!   and Sprig's strings, defaults, encodings, regexps, lists, dicts, math, conversions,
//!   paths, type tests, the `must*` twins and random values (`rand*`, `shuffle`, `uuidv4`:
//!   like werf, they change the config on every render); the lists are `sprig::NAMES` and
//!   `extra::NAMES`; `semver`/`semverCompare` as Masterminds/semver v3 (a version is a dict
//!   of `Major Minor Patch Prerelease Metadata Original`, not an object with methods).
//!   Dates and durations as Sprig's, in UTC (see `dates`). `fromYaml` is werf's (a dict or an error), `fromJson` Sprig's (any
//!   value, nil on bad JSON) and `toYaml` Helm's.
//! - Partials: every `.werf/**/*.tmpl` and `.strata/**/*.tmpl` under the directory is parsed
//!   first, so its `define`s work with `include` and `template`; each file is also a template
//!   named by its path under `.werf/` (or `.strata/`), as in werf (`images/base.tmpl`).
//!
//! - Sprig's keys and certificates (`genPrivateKey` rsa/dsa/ecdsa/ed25519, `genCA*`,
//!   `genSelfSignedCert*`, `genSignedCert*`, `buildCustomCert`) in Go's PEM formats; a
//!   certificate is Sprig's struct (`.Cert`, `.Key`; `typeOf` is `sprig.certificate`). See
//!   `certs`.
//! - werf's debug twins: `include_debug` and `tpl_debug` are `include` and `tpl`;
//!   `printf_debug` and `dump_debug` render nothing (werf logs them under
//!   `--debug-templates`, a mode strata does not have).
//!
//! Left out: `expandenv`, as werf leaves it out. An unknown function is a parse error naming it.
//!
//! `tests/template` renders a corpus through this engine and through Go's text/template with
//! Sprig (Debian's packages) and compares the bytes; `addf`/`subf`/`mulf`/`divf` use f64
//! where Sprig uses decimals, so they can differ in the last digit (`addf 0.1 0.2`). Random
//! keys and certificates are checked by shape there, and in `tests/template/certs.rs` by the
//! real `openssl` (parsed, verified against their CA, subject, SANs and validity read back)
//! and by Go's Sprig reading strata's keys and CAs and strata reading Go's.
//!
//! # Semantics
//!
//! Go's, including where they surprise: a missing map key prints `<no value>` (and is nil to
//! functions, so `default` replaces it), a field of a missing key is missing too
//! (`<no value>`), a field of a present nil is an error (`nil pointer evaluating interface
//! {}.b`), `eq 1 1.0` is an error, numbers from `fromJson` are float64 and
//! print `1e+06` from a million on, `{{- ` and ` -}}` trim all whitespace including newlines,
//! variables are scoped to their control structure, `and`/`or` short circuit and return an
//! operand, `set` and `merge` change the dict every holder sees. Known differences: Go tells
//! `int` from `int64` and refuses one for the other in some Sprig parameters, here all integers
//! are `i64`; `keys`/`values` come sorted (Go's order is random); `fromYaml` is YAML 1.2 (`yes`
//! stays a string); `.Files` reads the working tree, not only committed files (no
//! giterminism).
//!
//! # Design
//!
//! This is a small engine of its own, not gtmpl-ng: the line map needs to know which template
//! text produced each output byte, which gtmpl-ng's executor does not expose, and `include`,
//! `tpl`, `env` and `.Files` need the template set and the context inside functions, which
//! gtmpl-ng's plain `fn` pointers can only get through thread-local globals. Here the
//! executor owns both. Stages: `lex` (trim markers applied there), `parse` (unknown functions
//! and variables are parse errors, as in Go), `exec` (writes output and the line map), with
//! functions in `funcs` (builtins), `sprig`, `yaml` and `files`.
//!
//! A text without `{{` is returned as it is without touching the engine or the disk.

#![deny(missing_docs)]

mod certs;
mod collections;
mod dates;
mod exec;
mod extra;
mod files;
mod funcs;
mod lex;
mod parse;
mod printf;
mod semver;
mod sprig;
mod urls;
mod value;
mod yaml;

pub use urls::unescape;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use value::Value;

/// What templates can see.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The project directory: `.Files` paths are relative to it and may not leave it, and
    /// partials are found under its `.werf/` and `.strata/`.
    pub dir: PathBuf,
    /// The process environment for `env` (a snapshot; see [`Context::with_process_env`]).
    pub env: BTreeMap<String, String>,
    /// `.Env`: as in werf, the deployment environment's name given with `--env` (empty when
    /// none), as in `{{ if eq .Env "production" }}`.
    pub env_name: String,
    /// The commit for `.Commit`; `None` leaves `.Commit` undefined.
    pub commit: Option<Commit>,
}

impl Context {
    /// A context for `dir` with a snapshot of this process's environment.
    pub fn with_process_env(dir: impl Into<PathBuf>, commit: Option<Commit>) -> Context {
        Context {
            dir: dir.into(),
            env: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            commit,
            env_name: String::new(),
        }
    }
}

/// The commit templates see as `.Commit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// `.Commit.Hash`: the full hex id.
    pub hash: String,
    /// `.Commit.Date.Human`: the commit date as Go's `time.Time.String()` writes it, which is
    /// what werf shows (`2024-05-06 07:08:09 +0000 UTC`).
    pub date_human: String,
    /// `.Commit.Date.Unix`: seconds since the epoch (templates see it as a string, as in werf).
    pub date_unix: i64,
}

/// A file templates were read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// How messages name it: the config's name as given, a partial's path relative to the
    /// project directory (`.werf/images.tmpl`).
    pub name: String,
    /// Where it is.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

/// A run of output that came from one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Segment {
    /// Where it starts in the output.
    out: usize,
    /// Which source.
    source: usize,
    /// Byte offset in the source: where the copied text starts, or the action's `{{`.
    at: usize,
    /// Copied text (byte for byte) rather than an action's value.
    verbatim: bool,
}

/// Where a byte of output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// Index into [`Rendered::sources`].
    pub source: usize,
    /// Byte offset in that source's text: the very byte when `exact`, otherwise the start
    /// (`{{`) of the action whose value it is part of.
    pub offset: usize,
    /// Whether the byte was copied from template text.
    pub exact: bool,
}

/// Where a line of output came from: the template line that produced its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineOrigin {
    /// Index into [`Rendered::sources`].
    pub source: usize,
    /// 1-based line in that source.
    pub line: usize,
}

/// The rendered config and its map back to the templates.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// The YAML text to parse.
    pub text: String,
    /// The files the text came from: `[0]` is the config, then the partials that were read.
    pub sources: Vec<Source>,
    segments: Vec<Segment>,
}

impl Rendered {
    /// Whether the text is the config itself, unchanged (it had no `{{`): locations map 1:1.
    pub fn is_verbatim(&self) -> bool {
        self.segments.len() == 1 && self.segments[0].verbatim && self.text == self.sources[0].text
    }

    /// Where the output byte at `offset` (also the end of the text) came from.
    pub fn locate(&self, offset: usize) -> Option<Location> {
        if offset > self.text.len() {
            return None;
        }
        let i = self.segments.partition_point(|s| s.out <= offset);
        let seg = self.segments.get(i.checked_sub(1)?)?;
        Some(if seg.verbatim {
            Location {
                source: seg.source,
                offset: seg.at + (offset - seg.out),
                exact: true,
            }
        } else {
            Location {
                source: seg.source,
                offset: seg.at,
                exact: false,
            }
        })
    }

    /// Maps a byte range of the output to a range of one source: the same range when both
    /// ends were copied from the same run of template text, otherwise the start's location as
    /// an empty range. For turning a YAML error's span into a span of the user's file.
    pub fn map_span(&self, start: usize, end: usize) -> Option<(usize, usize, usize)> {
        let a = self.locate(start)?;
        if end <= start {
            return Some((a.source, a.offset, a.offset));
        }
        // The last byte of the range, so a range that ends where a run ends stays in the run.
        let last = self.locate(end - 1)?;
        let exact = a.exact
            && last.exact
            && a.source == last.source
            && last.offset >= a.offset
            && last.offset - a.offset == end - 1 - start;
        Some(if exact {
            (a.source, a.offset, last.offset + 1)
        } else {
            (a.source, a.offset, a.offset)
        })
    }

    /// Where 1-based output line `line` came from; `None` past the end or when unknown.
    pub fn line_origin(&self, line: usize) -> Option<LineOrigin> {
        let start = if line <= 1 {
            0
        } else {
            self.text
                .match_indices('\n')
                .nth(line - 2)
                .map(|(i, _)| i + 1)?
        };
        if start >= self.text.len() {
            return None;
        }
        self.line_origin_at(start)
    }

    fn line_origin_at(&self, offset: usize) -> Option<LineOrigin> {
        let loc = self.locate(offset)?;
        let text = &self.sources.get(loc.source)?.text;
        Some(LineOrigin {
            source: loc.source,
            line: line_col(text, loc.offset).0,
        })
    }

    /// The origin of every output line, in order (the line map).
    pub fn line_map(&self) -> Vec<Option<LineOrigin>> {
        let mut starts = vec![0];
        starts.extend(self.text.match_indices('\n').map(|(i, _)| i + 1));
        starts
            .into_iter()
            .filter(|&s| s < self.text.len())
            .map(|s| self.line_origin_at(s))
            .collect()
    }
}

/// A template error: where (file, 1-based line and column in characters) and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.display())]
pub struct Error {
    /// The file as messages name it (see [`Source::name`]).
    pub file: String,
    /// Where the file is.
    pub path: PathBuf,
    /// 1-based line; 0 when the error is about the whole file (it could not be read).
    pub line: usize,
    /// 1-based column in characters; 0 with `line`.
    pub column: usize,
    /// Byte offset in the file's text, when the error has a position.
    pub offset: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl Error {
    fn display(&self) -> String {
        if self.line == 0 {
            format!("{}: {}", self.file, self.message)
        } else {
            format!(
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }

    fn at(source: &Source, offset: usize, message: String) -> Error {
        let (line, column) = line_col(&source.text, offset);
        Error {
            file: source.name.clone(),
            path: source.path.clone(),
            line,
            column,
            offset: Some(offset),
            message,
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// Go's `time.ParseDuration` (`"168h"`, `"1h30m"`, `"90s"`): nanoseconds, or Go's message.
/// werf writes durations this way outside templates too (`cleanup` keep policies).
///
/// # Errors
/// Text that is not a Go duration.
pub fn parse_go_duration(text: &str) -> Result<i128, String> {
    dates::parse_duration(text)
}

/// Renders the config `text` (named `file_name` in messages) as werf does.
///
/// # Errors
/// A partial that cannot be read, a syntax error, an unknown function or an execution error
/// (`fail`, `required`, a bad argument, a `.Files` path outside the project); all carry the
/// file, line and column.
pub fn render(file_name: &str, text: &str, ctx: &Context) -> Result<Rendered, Error> {
    let main = Source {
        name: file_name.to_string(),
        path: ctx.dir.join(file_name),
        text: text.to_string(),
    };
    if !text.contains("{{") {
        return Ok(Rendered {
            text: main.text.clone(),
            segments: vec![Segment {
                out: 0,
                source: 0,
                at: 0,
                verbatim: true,
            }],
            sources: vec![main],
        });
    }
    let mut sources = vec![main];
    let mut names = vec![file_name.to_string()];
    for (name, source) in partials(&ctx.dir)? {
        names.push(name);
        sources.push(source);
    }
    let mut exec = exec::Exec::new(ctx, sources);
    exec.file_templates = names.clone();
    // Partials first, the config last: later definitions replace earlier ones.
    let order = (1..exec.sources.len()).chain([0]);
    for index in order {
        let source = &exec.sources[index];
        let parsed = parse::parse(&source.text, &funcs::exists)
            .map_err(|e| Error::at(source, e.pos, e.message))?;
        exec.templates.insert(
            names[index].clone(),
            Rc::new(parse::Tree {
                src: index,
                root: parsed.body,
            }),
        );
        for (name, body) in parsed.defines {
            exec.templates.insert(
                name,
                Rc::new(parse::Tree {
                    src: index,
                    root: body,
                }),
            );
        }
    }
    let data = root_data(ctx);
    exec.run(0, 0, file_name, data).map_err(|e| {
        let source = &exec.sources[e.src.min(exec.sources.len() - 1)];
        Error::at(source, e.pos, e.message)
    })?;
    exec.sources.truncate(exec.real_sources);
    Ok(Rendered {
        text: exec.out.text,
        sources: exec.sources,
        segments: exec.out.segments,
    })
}

/// `.Files`, `.Env` and `.Commit`.
fn root_data(ctx: &Context) -> Value {
    let mut root = BTreeMap::new();
    root.insert("Files".to_string(), Value::Files);
    root.insert("Env".to_string(), Value::from(ctx.env_name.as_str()));
    if let Some(commit) = &ctx.commit {
        let date = BTreeMap::from([
            ("Human".to_string(), Value::from(commit.date_human.as_str())),
            // A string, as werf has it (arithmetic still works: `div .Commit.Date.Unix 86400`).
            ("Unix".to_string(), Value::Str(commit.date_unix.to_string())),
        ]);
        let commit = BTreeMap::from([
            ("Hash".to_string(), Value::from(commit.hash.as_str())),
            ("Date".to_string(), Value::map(date)),
        ]);
        root.insert("Commit".to_string(), Value::map(commit));
    }
    Value::map(root)
}

/// The `*.tmpl` files under `dir/.werf` and `dir/.strata`, sorted, each with its template name
/// (path under that directory).
fn partials(dir: &Path) -> Result<Vec<(String, Source)>, Error> {
    let mut found = Vec::new();
    for base in [".werf", ".strata"] {
        let root = dir.join(base);
        if !root.is_dir() {
            continue;
        }
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let path = root.join(&rel);
            let io_error = |e: std::io::Error| Error {
                file: path.display().to_string(),
                path: path.clone(),
                line: 0,
                column: 0,
                offset: None,
                message: format!("cannot list the partials directory: {e}"),
            };
            for entry in std::fs::read_dir(&path).map_err(io_error)? {
                let entry = entry.map_err(io_error)?;
                let child = rel.join(entry.file_name());
                let full = root.join(&child);
                if full.is_dir() {
                    stack.push(child);
                } else if child.extension().is_some_and(|e| e == "tmpl") {
                    let name = child.to_string_lossy().replace('\\', "/");
                    let display = format!("{base}/{name}");
                    let text = std::fs::read_to_string(&full).map_err(|e| Error {
                        file: display.clone(),
                        path: full.clone(),
                        line: 0,
                        column: 0,
                        offset: None,
                        message: format!("cannot read the partial template: {e}"),
                    })?;
                    found.push((
                        name,
                        Source {
                            name: display,
                            path: full,
                            text,
                        },
                    ));
                }
            }
        }
    }
    found.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use saphyr::LoadableYamlNode;

    fn ctx() -> Context {
        Context {
            env_name: "production".into(),
            dir: PathBuf::from("/nonexistent/project"),
            env: BTreeMap::from([
                ("TAG".to_string(), "v1".to_string()),
                ("EMPTY".to_string(), String::new()),
            ]),
            commit: Some(Commit {
                hash: "abc123".into(),
                date_human: "2024-05-06 07:08:09 +0000 UTC".into(),
                date_unix: 1714979289,
            }),
        }
    }

    /// `(template, expected output or "error: <message>")` against a small context.
    #[test]
    fn go_semantics() {
        let cases = [
            ("{{ .nope }}", "<no value>"),
            ("{{ .nope | default \"x\" }}", "x"),
            (
                "{{ $x := .nope }}{{ $x }}|{{ printf \"%v\" .nope }}",
                "<no value>|<nil>",
            ),
            ("{{ .nope.deeper }}", "<no value>"),
            (
                "{{ (dict \"a\" nil).a.b }}",
                "error: 1:4: nil pointer evaluating interface {}.b (.a is missing or nil)",
            ),
            ("a  {{- \"b\" -}}  \n c", "abc"),
            ("{{/* note */}}x{{- /* trim */ -}} y", "xy"),
            (
                "{{ if 0 }}a{{ else if \"\" }}b{{ else if list 1 }}c{{ else }}d{{ end }}",
                "c",
            ),
            (
                "{{ with .nope }}a{{ else with .Env }}{{ . }}{{ end }}",
                "production",
            ),
            (
                "{{ range $i, $v := list \"a\" \"b\" }}{{ $i }}={{ $v }};{{ end }}",
                "0=a;1=b;",
            ),
            (
                "{{ range $k, $v := dict \"b\" 2 \"a\" 1 }}{{ $k }}{{ $v }}{{ end }}",
                "a1b2",
            ),
            ("{{ range 3 }}{{ . }}{{ end }}", "012"),
            ("{{ range list }}x{{ else }}empty{{ end }}", "empty"),
            ("{{ range .nope }}x{{ else }}nil{{ end }}", "nil"),
            (
                "{{ range list 1 2 3 4 }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ if eq . 4 }}{{ break }}{{ end }}{{ . }}{{ end }}",
                "13",
            ),
            ("{{ range list 1 }}{{ $.Env }}{{ end }}", "production"),
            (
                "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ $y := 3 }}{{ end }}{{ $x }}",
                "2",
            ),
            (
                "{{ if true }}{{ $y := 3 }}{{ end }}{{ $y }}",
                "error: 1:39: undefined variable \"$y\"",
            ),
            (
                "{{ define \"t\" }}[{{ . }}]{{ end }}{{ template \"t\" 5 }}{{ template \"t\" }}",
                "[5][<no value>]",
            ),
            ("{{ block \"b\" \"x\" }}<{{ . }}>{{ end }}", "<x>"),
            (
                "{{ or \"\" 0 \"c\" }}|{{ and 1 0 2 }}|{{ not 0 }}|{{ and 1 2 }}",
                "c|0|true|2",
            ),
            ("{{ \"a\" | printf \"%s-%s\" \"b\" }}", "b-a"),
            ("{{ print 1 2 \"a\" \"b\" 3 }}", "1 2ab3"),
            (
                "{{ len \"héllo\" }} {{ index (list 1 2) 1 }} {{ index (dict \"k\" \"v\") \"k\" }}",
                "6 2 v",
            ),
            ("{{ (dict \"a\" (dict \"b\" 7)).a.b }}", "7"),
            ("{{ $d := dict }}{{ $_ := set $d \"a\" 1 }}{{ $d.a }}", "1"),
            (
                "{{ lt 1 2 }} {{ ge \"b\" \"a\" }} {{ ne 1 2 }} {{ eq 1 2 3 1 }}",
                "true true true true",
            ),
            (
                "{{ eq 1 1.0 }}",
                "error: 1:4: error calling eq: incompatible types for comparison",
            ),
            (
                "{{ .Commit.Hash }} {{ .Commit.Date.Unix }} {{ .Commit.Date.Human }}",
                "abc123 1714979289 2024-05-06 07:08:09 +0000 UTC",
            ),
            (
                "{{ env \"TAG\" }} {{ env \"NOPE\" \"d1\" }} {{ env \"EMPTY\" \"d2\" }} [{{ env \"EMPTY\" }}] {{ .Env }}",
                "v1 d1 d2 [] production",
            ),
            (
                "{{ env \"NOPE\" }}",
                "error: 1:4: error calling env: the environment variable \"NOPE\" must be set or a default must be provided ({{ env \"NOPE\" \"default\" }})",
            ),
            ("{{ div .Commit.Date.Unix 86400 }}", "19849"),
            (
                "{{ define \"r\" }}{{ include \"r\" . }}{{ end }}{{ include \"r\" . }}",
                "error: 1:20: exceeded maximum template depth (100)",
            ),
            (
                "{{ define \"r\" }}{{ tpl \"{{ include \\\"r\\\" . }}\" . }}{{ end }}{{ include \"r\" . }}",
                "error: 1:20: exceeded maximum template depth (100)",
            ),
            ("{{ `{{ raw }}` }}", "{{ raw }}"),
            (
                "{{ define \"h\" }}{{ .n | add 1 }}{{ end }}{{ include \"h\" (dict \"n\" 1) | quote }}",
                "\"2\"",
            ),
            (
                "{{ tpl \"{{ .a }}-{{ include \\\"h\\\" . }}\" (dict \"a\" 1) }}{{ define \"h\" }}H{{ end }}",
                "1-H",
            ),
            (
                "{{ tpl \"{{ nope }}\" . }}",
                "error: 1:4: error calling tpl: tpl text 1:4: function \"nope\" not defined",
            ),
            (
                "{{ include \"missing\" . }}",
                "error: 1:4: error calling include: no template \"missing\"; no templates are defined (put `define`s in .werf/*.tmpl)",
            ),
            (
                "{{ define \"h\" }}<{{ . }}>{{ end }}{{ include_debug \"h\" 1 }}{{ tpl_debug \"{{ . }}\" 2 }}[{{ printf_debug \"%d\" 3 }}{{ dump_debug . }}]",
                "<1>2[]",
            ),
            ("{{ required \"set it\" .nope }}", "error: 1:4: set it"),
            ("{{ required \"set it\" \"ok\" }}", "ok"),
            ("{{ fail \"stop here\" }}", "error: 1:4: stop here"),
            (
                "{{ .Commit.Hash 1 }}",
                "error: 1:4: Hash is not a method but has arguments",
            ),
            (
                "{{ \"x\" 1 }}",
                "error: 1:4: can't give argument to non-function \"x\"",
            ),
            (
                "{{ range \"abc\" }}{{ end }}",
                "error: 1:4: range can't iterate over abc",
            ),
            (
                "{{ define \"r\" }}{{ template \"r\" }}{{ end }}{{ template \"r\" }}",
                "error: 1:20: exceeded maximum template depth (100)",
            ),
            (
                "{{ 3 }} {{ 1.5 }} {{ 1e6 }} {{ 0x10 }} {{ 'a' }} {{ true }} {{ print nil }}",
                "3 1.5 1e+06 16 97 true <nil>",
            ),
            ("{{ nil | print }}", "error: 1:4: nil is not a command"),
        ];
        for (template, want) in cases {
            let got = match render("strata.yaml", template, &ctx()) {
                Ok(r) => r.text,
                Err(e) => format!("error: {}:{}: {}", e.line, e.column, e.message),
            };
            assert_eq!(got, want, "{template}");
        }
    }

    #[test]
    fn text_without_actions_is_returned_as_is() {
        let text = "image: app\nfrom: alpine # {not a template}\n";
        let r = render("werf.yaml", text, &Context::default()).expect("renders");
        assert_eq!(r.text, text);
        assert!(r.is_verbatim());
        assert_eq!(
            r.line_map(),
            [
                Some(LineOrigin { source: 0, line: 1 }),
                Some(LineOrigin { source: 0, line: 2 })
            ]
        );
        assert_eq!(r.map_span(7, 10), Some((0, 7, 10)));
    }

    #[test]
    fn line_map_follows_the_template() {
        let text = "\
{{- range list \"a\" \"b\" }}
---
image: {{ . }}
shell:
  install: {{ list \"x\" \"z\" | toYaml | nindent 2 }}
{{- end }}
";
        let r = render("strata.yaml", text, &ctx()).expect("renders");
        assert_eq!(
            r.text,
            "\n---\nimage: a\nshell:\n  install: \n  - x\n  - z\n---\nimage: b\nshell:\n  install: \n  - x\n  - z\n"
        );
        let lines: Vec<usize> = r
            .line_map()
            .iter()
            .map(|o| o.map_or(0, |o| o.line))
            .collect();
        assert_eq!(lines, [1, 2, 3, 4, 5, 5, 5, 2, 3, 4, 5, 5, 5]);
        // `image: b`: the `b` is an action's value, `image: ` is copied text.
        let at = r.text.find("image: b").expect("present");
        let loc = r.locate(at + 2).expect("known");
        assert!(loc.exact && loc.offset == text.find("image:").expect("present") + 2);
        let value = r.locate(at + 7).expect("known");
        assert!(!value.exact && value.offset == text.find("{{ . }}").expect("present"));
        assert_eq!(
            r.map_span(at, at + 5),
            Some((0, loc.offset - 2, loc.offset + 3))
        );
        assert_eq!(r.map_span(at, at + 8).map(|s| s.1 == s.2), Some(true));
        // A range that ends where a run of copied text ends (`image: `) is still exact.
        assert_eq!(
            r.map_span(at, at + 7),
            Some((0, loc.offset - 2, loc.offset + 5))
        );
    }

    /// The context golden cases render with: the case directory is the project.
    fn golden_context(dir: &Path) -> Context {
        Context {
            env_name: "production".into(),
            dir: dir.to_path_buf(),
            env: BTreeMap::from([
                ("CI_COMMIT_TAG".to_string(), "v1.4.2".to_string()),
                (
                    "REGISTRY".to_string(),
                    "registry.example.com/team".to_string(),
                ),
                ("EMPTY".to_string(), String::new()),
            ]),
            commit: Some(Commit {
                hash: "4b825dc642cb6eb9a060e54bf8d69288fbee4904".into(),
                date_human: "2024-05-06 07:08:09 +0000 UTC".into(),
                date_unix: 1714979289,
            }),
        }
    }

    /// Compares with the snapshot, or rewrites it under `UPDATE_SNAPSHOTS=1`.
    fn check(snap: &Path, actual: &str, failures: &mut Vec<String>) {
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(snap, actual).expect("snapshot is writable");
            return;
        }
        let expected = std::fs::read_to_string(snap).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{}:\n--- expected\n{expected}\n--- actual\n{actual}",
                snap.display()
            ));
        }
    }

    fn cases(dir: &Path) -> Vec<PathBuf> {
        let mut cases: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("testdata directory exists")
            .map(|e| e.expect("readable entry").path())
            .filter(|p| p.join("strata.yaml").is_file())
            .collect();
        cases.sort();
        cases
    }

    /// `testdata/template/<case>/strata.yaml` renders to `rendered.snap` (the text, then the
    /// line map), and the text is valid YAML; `negative/<case>` fails with `error.snap`.
    #[test]
    fn golden() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/template");
        let mut failures = Vec::new();
        let positive = cases(&root);
        assert!(positive.len() >= 8, "golden cases are missing");
        for case in positive {
            let text = std::fs::read_to_string(case.join("strata.yaml")).expect("readable");
            let rendered = match render("strata.yaml", &text, &golden_context(&case)) {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("{}: {e}", case.display()));
                    continue;
                }
            };
            if let Err(e) = saphyr::YamlOwned::load_from_str(&rendered.text) {
                failures.push(format!(
                    "{}: rendered text is not YAML: {e}",
                    case.display()
                ));
            }
            let mut snap = rendered.text.clone();
            snap.push_str("# ---- line map: output line <- template file:line ----\n");
            for (i, origin) in rendered.line_map().iter().enumerate() {
                let origin = origin.map_or("?".to_string(), |o| {
                    format!("{}:{}", rendered.sources[o.source].name, o.line)
                });
                snap.push_str(&format!("# {:>3} <- {origin}\n", i + 1));
            }
            check(&case.join("rendered.snap"), &snap, &mut failures);
        }
        let negative = cases(&root.join("negative"));
        assert!(negative.len() >= 6, "negative golden cases are missing");
        for case in negative {
            let text = std::fs::read_to_string(case.join("strata.yaml")).expect("readable");
            let actual = match render("strata.yaml", &text, &golden_context(&case)) {
                Ok(r) => format!("unexpectedly rendered:\n{}", r.text),
                Err(e) => format!("{e}\n"),
            };
            check(&case.join("error.snap"), &actual, &mut failures);
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }

    #[test]
    fn errors_display_file_line_column() {
        let err = render("werf.yaml", "a: 1\nb: {{ .x | nope }}\n", &ctx()).expect_err("fails");
        assert_eq!(
            err.to_string(),
            "werf.yaml:2:12: function \"nope\" not defined"
        );
        assert_eq!((err.line, err.column, err.offset), (2, 12, Some(16)));
        let err = render("werf.yaml", "a: é{{ if }}", &ctx()).expect_err("fails");
        assert_eq!(err.to_string(), "werf.yaml:1:11: missing value for if");
    }
    /// Hostile templates end, each with its own error (issue #12); each case was a hang, a
    /// stack overflow or an allocation of gigabytes.
    #[test]
    fn hostile_templates_end_with_an_error() {
        let deep_if = format!("{}x{}", "{{ if 1 }}".repeat(101), "{{ end }}".repeat(101));
        let deep_paren = format!("{{{{ {}1{} }}}}", "(".repeat(101), ")".repeat(101));
        let deep_calls = format!(
            "{{{{ define \"r\" }}}}{}{{{{ template \"r\" . }}}}{}{{{{ end }}}}{{{{ template \"r\" . }}}}",
            "{{ with 1 }}".repeat(99),
            "{{ end }}".repeat(99)
        );
        let cases = [
            // Every unclosed action followed by whitespace at the end spun forever.
            ("x: {{ 1\n", "1:4: unclosed action"),
            ("x: {{ 1 ", "1:4: unclosed action"),
            ("{{ .a  \t\n", "1:1: unclosed action"),
            ("{{ (1 ", "1:1: unclosed action"),
            (
                "{{ range 100000000000 }}{{ end }}",
                "1:4: the template takes more than 10000000 steps",
            ),
            (
                "{{ repeat 1000000000000 \"x\" }}",
                "error calling repeat: the repeated text would have 1000000000000 bytes",
            ),
            (
                "{{ until 1000000000 }}",
                "error calling until: the list would have",
            ),
            (
                "{{ untilStep 0 9223372036854775807 1 }}",
                "error calling untilStep: the list would have",
            ),
            (
                "{{ indent 999999999999 \"x\" }}",
                "error calling indent: the indented text would have",
            ),
            (&deep_if, "nested too deeply: more than 100 levels"),
            (&deep_paren, "nested too deeply: more than 100 levels"),
            (&deep_calls, "nested too deeply: more than 500 levels"),
        ];
        for (text, want) in cases {
            let got = match render("t", text, &ctx()) {
                Ok(r) => format!("ok: {}", r.text),
                Err(e) => e.to_string(),
            };
            assert!(got.contains(want), "{text:?}: got {got:?}, want {want:?}");
        }
        // Go's fmt refuses widths over 1e6 instead of padding.
        let r = render("t", "{{ printf \"%999999999d\" 1 }}", &ctx()).expect("renders");
        assert_eq!(r.text, "%!(NOVERB)%!(EXTRA int=1)");
    }
}
