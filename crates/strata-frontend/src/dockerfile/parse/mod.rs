//! Logical lines to typed instructions and build stages, following BuildKit's line parsers
//! (`parser/line_parsers.go`) and instruction parsers (`instructions/parse.go`).

use std::ops::Range;

use strata_plan::{Diagnostic, FileId, Span};

use super::instructions::*;
use super::lines::{self, Logical, Reader};
use super::words::{self, Json, Piece};

mod copy;
mod health;
mod run;

/// Every instruction name, for "did you mean".
const INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

type Result<T> = std::result::Result<T, Box<Diagnostic>>;

fn error(message: impl Into<String>, span: Span) -> Box<Diagnostic> {
    Box::new(Diagnostic::new(message, Some(span)))
}

fn join(a: Span, b: Span) -> Span {
    Span {
        file: a.file,
        start: a.start.min(b.start),
        end: a.end.max(b.end),
    }
}

/// Parses a Dockerfile; see the [module docs](super).
pub(crate) fn parse(file: FileId, text: &str) -> Result<Dockerfile> {
    let (directives, start) = lines::directives(file, text)?;
    let mut reader = Reader::new(file, text, start, directives.escape);
    let mut parser = Parser {
        escape: directives.escape,
        warnings: Vec::new(),
    };
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut seen_any = false;
    while let Some(line) = reader.next_line() {
        seen_any = true;
        let (kw, after) = words::keyword(&line.text, 0);
        match parser.instruction(&line, kw, after, &mut reader, false)? {
            Parsed::From(from, name) => {
                if let Some(name) = &name
                    && let Some(previous) = stages
                        .iter()
                        .find_map(|s| s.name.as_ref().filter(|n| n.value == name.value))
                {
                    return Err(Box::new(
                        Diagnostic::new(
                            format!("duplicate stage name `{}`", name.value),
                            Some(name.span),
                        )
                        .label("used again here")
                        .note(previous.span, "first used here")
                        .help("give each stage a unique name (names are case-insensitive)"),
                    ));
                }
                stages.push(Stage {
                    name,
                    span: from.span,
                    from,
                    instructions: Vec::new(),
                });
            }
            Parsed::Instruction(instruction) => match stages.last_mut() {
                Some(stage) => {
                    stage.span = join(stage.span, instruction.span());
                    stage.instructions.push(instruction);
                }
                None => match instruction {
                    Instruction::Arg(arg) => global_args.push(arg),
                    other => {
                        return Err(Box::new(
                            Diagnostic::new(
                                format!("`{}` before the first `FROM`", other.keyword()),
                                Some(line.span(0, other.keyword().len())),
                            )
                            .label("no build stage has started yet")
                            .help("a Dockerfile starts with `FROM <image>`; only `ARG` may come before it"),
                        ));
                    }
                },
            },
        }
    }
    let end = Span::new(file, text.len(), text.len());
    if !seen_any {
        return Err(Box::new(
            Diagnostic::new("the Dockerfile has no instructions", Some(end))
                .help("start it with `FROM <image>`"),
        ));
    }
    if stages.is_empty() {
        let span = global_args.last().map_or(end, |a: &Arg| a.span);
        return Err(Box::new(
            Diagnostic::new("the Dockerfile has no `FROM`", Some(span))
                .label("only ARGs so far")
                .help("add `FROM <image>` to start a build stage"),
        ));
    }
    let mut warnings = reader.warnings;
    warnings.append(&mut parser.warnings);
    Ok(Dockerfile {
        directives,
        global_args,
        stages,
        warnings,
    })
}

enum Parsed {
    From(From, Option<Spanned<String>>),
    Instruction(Instruction),
}

struct Parser {
    escape: char,
    warnings: Vec<Diagnostic>,
}

/// The instruction being parsed.
struct Cx<'l> {
    line: &'l Logical,
    kw: String,
    kw_span: Span,
    /// The `--flags` after the keyword.
    flags: Vec<Piece>,
    /// The arguments after the flags, trimmed.
    args: Range<usize>,
    /// Where the keyword starts in the line.
    start: usize,
    /// The instruction so far (grows with heredoc bodies).
    span: Span,
}

impl Cx<'_> {
    fn text(&self) -> &str {
        &self.line.text[self.args.clone()]
    }

    fn word(&self, piece: &Piece) -> Word {
        Word {
            text: piece.text.clone(),
            span: self.line.span(piece.range.start, piece.range.end),
        }
    }

    fn args_word(&self) -> Word {
        Word {
            text: self.text().to_string(),
            span: self.args_span(),
        }
    }

    fn args_span(&self) -> Span {
        if self.args.is_empty() {
            // Point just after the keyword.
            Span::new(
                self.kw_span.file,
                self.kw_span.end as usize,
                self.kw_span.end as usize,
            )
        } else {
            self.line.span(self.args.start, self.args.end)
        }
    }

    fn missing(&self, what: &str, help: &str) -> Box<Diagnostic> {
        Box::new(
            Diagnostic::new(format!("{} needs {what}", self.kw), Some(self.kw_span))
                .label(format!("{what} missing"))
                .help(help.to_string()),
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FlagKind {
    Bool,
    String,
    /// A string flag that may be repeated (`--mount`).
    Many,
}

struct FlagValue {
    name: String,
    value: Option<Word>,
    /// The value's range in the logical line when it is written there verbatim.
    value_range: Option<Range<usize>>,
    span: Span,
}

struct Flags(Vec<FlagValue>);

impl Flags {
    fn get(&self, name: &str) -> Option<&FlagValue> {
        self.0.iter().find(|f| f.name == name)
    }

    fn string(&self, name: &str) -> Option<Word> {
        self.get(name).and_then(|f| f.value.clone())
    }

    fn bool(&self, name: &str) -> bool {
        self.get(name).is_some_and(|f| {
            f.value
                .as_ref()
                .is_none_or(|v| v.text.eq_ignore_ascii_case("true"))
        })
    }
}

impl Parser {
    fn instruction(
        &mut self,
        line: &Logical,
        kw: Range<usize>,
        after_kw: usize,
        reader: &mut Reader<'_>,
        nested: bool,
    ) -> Result<Parsed> {
        let text = &line.text;
        let (flags, args_start) = words::flags(text, after_kw);
        let args_end = words::trim_end(text, args_start, text.len()).max(args_start);
        let end = words::trim_end(text, kw.start, text.len());
        let mut cx = Cx {
            line,
            kw: text[kw.clone()].to_ascii_uppercase(),
            kw_span: line.span(kw.start, kw.end),
            flags,
            args: args_start..args_end,
            start: kw.start,
            span: line.span(kw.start, end),
        };
        let instruction = match cx.kw.as_str() {
            "FROM" => return self.from(&cx).map(|(f, n)| Parsed::From(f, n)),
            "RUN" => self.run(&mut cx, reader)?,
            "CMD" => {
                self.flags(&cx, &[], &[])?;
                let command = self.command(&cx)?;
                Instruction::Cmd(Cmd {
                    command,
                    span: cx.span,
                })
            }
            "ENTRYPOINT" => {
                self.flags(&cx, &[], &[])?;
                let command = self.command(&cx)?;
                Instruction::Entrypoint(Entrypoint {
                    command,
                    span: cx.span,
                })
            }
            "SHELL" => self.shell(&cx)?,
            "COPY" | "ADD" => self.copy(&mut cx, reader)?,
            "ENV" => {
                self.flags(&cx, &[], &[])?;
                let vars = self.key_values(&cx)?;
                Instruction::Env(Env {
                    vars,
                    span: cx.span,
                })
            }
            "LABEL" => {
                self.flags(&cx, &[], &[])?;
                let labels = self.key_values(&cx)?;
                Instruction::Label(Label {
                    labels,
                    span: cx.span,
                })
            }
            "ARG" => self.arg(&cx)?,
            "WORKDIR" | "USER" | "STOPSIGNAL" | "MAINTAINER" => self.single(&cx)?,
            "EXPOSE" => {
                self.flags(&cx, &[], &[])?;
                let ports = words::blank_words(&line.text, cx.args.clone());
                if ports.is_empty() {
                    return Err(cx.missing(
                        "at least one port",
                        "write `EXPOSE 80` or `EXPOSE 8080/tcp 53/udp`",
                    ));
                }
                Instruction::Expose(Expose {
                    ports: ports.iter().map(|p| cx.word(p)).collect(),
                    span: cx.span,
                })
            }
            "VOLUME" => self.volume(&cx)?,
            "HEALTHCHECK" => self.healthcheck(&cx)?,
            "ONBUILD" if !nested => self.onbuild(&mut cx, reader)?,
            _ => {
                let mut d = Diagnostic::new(
                    format!("unknown instruction `{}`", &text[kw.clone()]),
                    Some(cx.kw_span),
                )
                .label("not a Dockerfile instruction");
                if let Some(s) = words::suggest(&cx.kw, &INSTRUCTIONS) {
                    d = d.help(format!("did you mean `{s}`?"));
                }
                return Err(Box::new(d));
            }
        };
        Ok(Parsed::Instruction(instruction))
    }

    /// Checks the flags against `allowed` (name, kind); names in `unsupported` are Docker
    /// flags strata does not implement.
    fn flags(
        &self,
        cx: &Cx<'_>,
        allowed: &[(&str, FlagKind)],
        unsupported: &[&str],
    ) -> Result<Flags> {
        let mut out: Vec<FlagValue> = Vec::new();
        for piece in &cx.flags {
            let span = cx.line.span(piece.range.start, piece.range.end);
            let body = piece.text.trim_start_matches('-');
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(&(_, kind)) = allowed.iter().find(|(n, _)| *n == name) else {
                if unsupported.contains(&name) {
                    return Err(Box::new(
                        Diagnostic::new(
                            format!("`--{name}` of {} is not supported by strata yet", cx.kw),
                            Some(span),
                        )
                        .label("Docker flag strata does not implement"),
                    ));
                }
                let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
                let mut d =
                    Diagnostic::new(format!("unknown flag `--{name}` for {}", cx.kw), Some(span))
                        .label(format!("{} does not take this flag", cx.kw));
                d = match words::suggest(name, &names) {
                    Some(s) => d.help(format!("did you mean `--{s}`?")),
                    None if names.is_empty() => d.help(format!("{} takes no flags", cx.kw)),
                    None => d.help(format!(
                        "{} takes {}",
                        cx.kw,
                        names
                            .iter()
                            .map(|n| format!("`--{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                };
                return Err(Box::new(d));
            };
            if kind != FlagKind::Many
                && let Some(first) = out.iter().find(|f| f.name == name)
            {
                return Err(Box::new(
                    Diagnostic::new(format!("duplicate flag `--{name}`"), Some(span))
                        .label("given again here")
                        .note(first.span, "first given here"),
                ));
            }
            let value = match (kind, value) {
                (FlagKind::Bool, Some(v))
                    if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") =>
                {
                    return Err(Box::new(
                        Diagnostic::new(
                            format!("expected `true` or `false` for `--{name}`, found `{v}`"),
                            Some(span),
                        )
                        .help(format!("write `--{name}` or `--{name}=false`")),
                    ));
                }
                (FlagKind::String | FlagKind::Many, None) => {
                    return Err(Box::new(
                        Diagnostic::new(format!("flag `--{name}` needs a value"), Some(span))
                            .help(format!("write `--{name}=<value>`")),
                    ));
                }
                (_, v) => v,
            };
            // The value's place: exact when the flag is written without quotes or escapes.
            let raw = &cx.line.text[piece.range.clone()];
            let value_range = (raw == piece.text).then(|| {
                let at = piece.range.start + raw.len() - value.map_or(0, str::len);
                at..piece.range.end
            });
            let value = value.map(|v| Word {
                text: v.to_string(),
                span: value_range
                    .as_ref()
                    .map_or(span, |r| cx.line.span(r.start, r.end)),
            });
            out.push(FlagValue {
                name: name.to_string(),
                value,
                value_range,
                span,
            });
        }
        Ok(Flags(out))
    }

    fn from(&mut self, cx: &Cx<'_>) -> Result<(From, Option<Spanned<String>>)> {
        let flags = self.flags(cx, &[("platform", FlagKind::String)], &[])?;
        let args = words::blank_words(&cx.line.text, cx.args.clone());
        let usage = "write `FROM <image> [AS <name>]`";
        let (image, alias) = match args.as_slice() {
            [] => return Err(cx.missing("an image", usage)),
            [image] => (image, None),
            [image, as_, name] if as_.text.eq_ignore_ascii_case("as") => (image, Some(name)),
            [_, as_] if as_.text.eq_ignore_ascii_case("as") => {
                return Err(Box::new(
                    Diagnostic::new("`AS` needs a stage name", Some(cx.word(as_).span))
                        .label("no name after `AS`")
                        .help(usage),
                ));
            }
            [_, extra, ..] => {
                return Err(Box::new(
                    Diagnostic::new(
                        "FROM takes an image and an optional `AS <name>`",
                        Some(cx.line.span(extra.range.start, cx.args.end)),
                    )
                    .label("unexpected")
                    .help(usage),
                ));
            }
        };
        let name = match alias {
            None => None,
            Some(alias) => {
                let lower = alias.text.to_ascii_lowercase();
                let valid = lower.starts_with(|c: char| c.is_ascii_lowercase())
                    && lower.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
                    });
                let span = cx.word(alias).span;
                if !valid {
                    return Err(Box::new(
                        Diagnostic::new(format!("invalid stage name `{}`", alias.text), Some(span))
                            .label("not a valid name")
                            .help("a stage name starts with a letter and has only letters, digits, `-`, `_` and `.`"),
                    ));
                }
                Some(Spanned { value: lower, span })
            }
        };
        Ok((
            From {
                image: cx.word(image),
                alias: alias.map(|a| cx.word(a)),
                platform: flags.string("platform"),
                span: cx.span,
            },
            name,
        ))
    }

    /// Exec form (JSON) or shell form.
    fn command(&self, cx: &Cx<'_>) -> Result<CommandLine> {
        if cx.args.is_empty() {
            return Err(cx.missing(
                "a command",
                &format!(
                    "write `{} [\"executable\", \"arg\"]` or `{} command arg`",
                    cx.kw, cx.kw
                ),
            ));
        }
        match words::json_array(&cx.line.text, cx.args.clone()) {
            Json::Strings(p) => Ok(CommandLine::Exec(p.iter().map(|p| cx.word(p)).collect())),
            Json::NotString(r) => Err(not_string(cx, r)),
            Json::Shell => Ok(CommandLine::Shell(cx.args_word())),
        }
    }

    fn shell(&self, cx: &Cx<'_>) -> Result<Instruction> {
        self.flags(cx, &[], &[])?;
        let help = "write it as a JSON array: `SHELL [\"/bin/bash\", \"-c\"]`";
        match words::json_array(&cx.line.text, cx.args.clone()) {
            _ if cx.args.is_empty() => Err(cx.missing("a shell", help)),
            Json::Strings(p) if p.is_empty() => Err(Box::new(
                Diagnostic::new("SHELL needs at least one argument", Some(cx.args_span()))
                    .help(help),
            )),
            Json::Strings(p) => Ok(Instruction::Shell(Shell {
                argv: p.iter().map(|p| cx.word(p)).collect(),
                span: cx.span,
            })),
            Json::NotString(r) => Err(not_string(cx, r)),
            Json::Shell => Err(Box::new(
                Diagnostic::new("SHELL requires the JSON form", Some(cx.args_span()))
                    .label("not a JSON array of strings")
                    .help(help),
            )),
        }
    }

    /// `ENV`/`LABEL`: `k=v ...` or the legacy `k v`.
    fn key_values(&mut self, cx: &Cx<'_>) -> Result<Vec<KeyValue>> {
        let text = &cx.line.text;
        let pieces = words::quoted_words(text, cx.args.clone(), self.escape);
        let usage = format!("write `{} name=value ...`", cx.kw);
        let Some(first) = pieces.first() else {
            return Err(cx.missing("at least one `name=value`", &usage));
        };
        if !first.text.contains('=') {
            // Legacy form: the first blank-separated word is the key, the rest the value.
            let split = words::blank_words(text, cx.args.clone());
            let Some(key) = split.first() else {
                return Err(cx.missing("at least one `name=value`", &usage));
            };
            let value_start = words::skip_space(text, key.range.end).min(cx.args.end);
            if value_start >= cx.args.end {
                return Err(Box::new(
                    Diagnostic::new(
                        format!("{} `{}` has no value", cx.kw, key.text),
                        Some(cx.word(key).span),
                    )
                    .label("no `=` and nothing after the name")
                    .help(format!("write `{} {}=<value>`", cx.kw, key.text)),
                ));
            }
            let value = Piece {
                text: text[value_start..cx.args.end].to_string(),
                range: value_start..cx.args.end,
            };
            return Ok(vec![KeyValue {
                key: cx.word(key),
                value: cx.word(&value),
            }]);
        }
        let mut out = Vec::new();
        for p in &pieces {
            let Some(eq) = p.text.find('=') else {
                return Err(Box::new(
                    Diagnostic::new(format!("`{}` is not of the form name=value", p.text), Some(cx.word(p).span))
                        .label("missing `=`")
                        .help(format!(
                            "{} takes either `name=value ...` or a single legacy `name value`, not both",
                            cx.kw
                        )),
                ));
            };
            if eq == 0 {
                return Err(Box::new(
                    Diagnostic::new(
                        format!("{} names can not be blank", cx.kw),
                        Some(cx.word(p).span),
                    )
                    .label("nothing before `=`"),
                ));
            }
            let s = p.range.start;
            out.push(KeyValue {
                key: Word {
                    text: p.text[..eq].to_string(),
                    span: cx.line.span(s, s + eq),
                },
                value: Word {
                    text: p.text[eq + 1..].to_string(),
                    span: cx.line.span(s + eq + 1, p.range.end.max(s + eq + 1)),
                },
            });
        }
        Ok(out)
    }

    fn arg(&mut self, cx: &Cx<'_>) -> Result<Instruction> {
        self.flags(cx, &[], &[])?;
        let pieces = words::quoted_words(&cx.line.text, cx.args.clone(), self.escape);
        if pieces.is_empty() {
            return Err(cx.missing("a name", "write `ARG name` or `ARG name=default`"));
        }
        let mut args = Vec::new();
        for p in &pieces {
            let s = p.range.start;
            let decl = match p.text.find('=') {
                Some(0) => {
                    return Err(Box::new(
                        Diagnostic::new("ARG names can not be blank", Some(cx.word(p).span))
                            .label("nothing before `=`"),
                    ));
                }
                Some(eq) => ArgDecl {
                    name: Word {
                        text: p.text[..eq].to_string(),
                        span: cx.line.span(s, s + eq),
                    },
                    default: Some(Word {
                        text: p.text[eq + 1..].to_string(),
                        span: cx.line.span(s + eq + 1, p.range.end.max(s + eq + 1)),
                    }),
                },
                None => ArgDecl {
                    name: cx.word(p),
                    default: None,
                },
            };
            args.push(decl);
        }
        Ok(Instruction::Arg(Arg {
            args,
            span: cx.span,
        }))
    }

    /// `WORKDIR`, `USER`, `STOPSIGNAL`, `MAINTAINER`: the rest of the line is one value.
    fn single(&mut self, cx: &Cx<'_>) -> Result<Instruction> {
        self.flags(cx, &[], &[])?;
        let (what, example) = match cx.kw.as_str() {
            "WORKDIR" => ("a path", "WORKDIR /app"),
            "USER" => ("a user", "USER app:app"),
            "STOPSIGNAL" => ("a signal", "STOPSIGNAL SIGTERM"),
            _ => ("a name", "MAINTAINER Jane <jane@example.com>"),
        };
        if cx.args.is_empty() {
            return Err(cx.missing(what, &format!("write `{example}`")));
        }
        let word = cx.args_word();
        let span = cx.span;
        Ok(match cx.kw.as_str() {
            "WORKDIR" => Instruction::Workdir(Workdir { path: word, span }),
            "USER" => Instruction::User(User { user: word, span }),
            "STOPSIGNAL" => Instruction::StopSignal(StopSignal { signal: word, span }),
            _ => {
                self.warnings.push(
                    Diagnostic::new("MAINTAINER is deprecated", Some(cx.kw_span)).help(format!(
                        "use `LABEL {}=\"...\"` instead",
                        super::MAINTAINER_LABEL
                    )),
                );
                Instruction::Maintainer(Maintainer { name: word, span })
            }
        })
    }

    fn volume(&self, cx: &Cx<'_>) -> Result<Instruction> {
        self.flags(cx, &[], &[])?;
        let paths = match words::json_array(&cx.line.text, cx.args.clone()) {
            Json::Strings(p) => p,
            Json::NotString(r) => return Err(not_string(cx, r)),
            Json::Shell => words::blank_words(&cx.line.text, cx.args.clone()),
        };
        if paths.is_empty() {
            return Err(cx.missing(
                "at least one path",
                "write `VOLUME /data` or `VOLUME [\"/data\"]`",
            ));
        }
        if let Some(empty) = paths.iter().find(|p| p.text.is_empty()) {
            return Err(Box::new(
                Diagnostic::new(
                    "VOLUME can not be an empty string",
                    Some(cx.word(empty).span),
                )
                .label("empty path"),
            ));
        }
        Ok(Instruction::Volume(Volume {
            paths: paths.iter().map(|p| cx.word(p)).collect(),
            span: cx.span,
        }))
    }

    fn onbuild(&mut self, cx: &mut Cx<'_>, reader: &mut Reader<'_>) -> Result<Instruction> {
        self.flags(cx, &[], &[])?;
        if cx.args.is_empty() {
            return Err(cx.missing(
                "an instruction",
                "write `ONBUILD RUN ...` (any instruction but FROM, ONBUILD and MAINTAINER)",
            ));
        }
        let (kw, after) = words::keyword(&cx.line.text, cx.args.start);
        let inner = cx.line.text[kw.clone()].to_ascii_uppercase();
        let kw_span = cx.line.span(kw.start, kw.end);
        match inner.as_str() {
            "ONBUILD" => {
                return Err(Box::new(
                    Diagnostic::new(
                        "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                        Some(kw_span),
                    )
                    .label("a trigger can not add triggers"),
                ));
            }
            "FROM" | "MAINTAINER" => {
                return Err(Box::new(
                    Diagnostic::new(
                        format!("{inner} isn't allowed as an ONBUILD trigger"),
                        Some(kw_span),
                    )
                    .label("not allowed after ONBUILD"),
                ));
            }
            _ => {}
        }
        let Parsed::Instruction(trigger) = self.instruction(cx.line, kw, after, reader, true)?
        else {
            return Err(error("FROM isn't allowed as an ONBUILD trigger", kw_span));
        };
        let mut expression = cx.line.text[cx.args.start..cx.args.end].to_string();
        let heredocs: Vec<&Heredoc> = match &trigger {
            Instruction::Run(r) => r.heredocs.iter().collect(),
            Instruction::Copy(Copy { sources, .. }) | Instruction::Add(Add { sources, .. }) => {
                sources
                    .iter()
                    .filter_map(|s| match s {
                        Source::Heredoc(h) => Some(h),
                        Source::Path(_) => None,
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        for h in heredocs {
            expression.push('\n');
            expression.push_str(&h.raw);
            expression.push_str(&h.name);
        }
        Ok(Instruction::Onbuild(Onbuild {
            span: join(cx.span, trigger.span()),
            trigger: Box::new(trigger),
            expression,
        }))
    }
}

fn not_string(cx: &Cx<'_>, r: Range<usize>) -> Box<Diagnostic> {
    Box::new(
        Diagnostic::new(
            format!("the JSON array of {} must contain only strings", cx.kw),
            Some(cx.line.span(r.start, r.end)),
        )
        .label("not a string")
        .help("quote every element, as in `[\"sh\", \"-c\", \"echo 1\"]`"),
    )
}
