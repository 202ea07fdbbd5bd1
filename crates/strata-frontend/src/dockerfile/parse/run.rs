//! `RUN`: its command, heredocs, `--mount`s, `--network` and `--security`.

use std::ops::Range;

use strata_plan::{Diagnostic, Span};

use super::super::instructions::*;
use super::super::lines::Reader;
use super::super::words;
use super::{Cx, FlagKind, FlagValue, Parser, Result, error, join};

impl Parser {
    pub(super) fn run(&mut self, cx: &mut Cx<'_>, reader: &mut Reader<'_>) -> Result<Instruction> {
        let flags = self.flags(
            cx,
            &[
                ("mount", FlagKind::Many),
                ("network", FlagKind::String),
                ("security", FlagKind::String),
            ],
            &["device"],
        )?;
        let command = self.command(cx)?;
        let heredocs = match command {
            CommandLine::Shell(_) => self.heredocs(cx, reader)?,
            CommandLine::Exec(_) => Vec::new(),
        };
        let mut mounts = Vec::new();
        for f in flags.0.iter().filter(|f| f.name == "mount") {
            mounts.push(self.mount(cx, f)?);
        }
        let network = flags
            .get("network")
            .map(|f| {
                keyword(
                    f,
                    &[
                        ("default", Network::Default),
                        ("none", Network::None),
                        ("host", Network::Host),
                    ],
                    "network mode",
                    "use `--network=none`, `--network=host` or `--network=default`",
                )
            })
            .transpose()?;
        let security = flags
            .get("security")
            .map(|f| {
                keyword(
                    f,
                    &[
                        ("sandbox", Security::Sandbox),
                        ("insecure", Security::Insecure),
                    ],
                    "security mode",
                    "use `--security=insecure` or `--security=sandbox`",
                )
            })
            .transpose()?;
        Ok(Instruction::Run(Run {
            command,
            heredocs,
            mounts,
            network,
            security,
            span: cx.span,
        }))
    }

    /// Reads the bodies of the heredocs named on the line.
    pub(super) fn heredocs(
        &self,
        cx: &mut Cx<'_>,
        reader: &mut Reader<'_>,
    ) -> Result<Vec<Heredoc>> {
        let mut out = Vec::new();
        for m in words::heredoc_markers(&cx.line.text, cx.start..cx.line.text.len()) {
            let word_span = cx.line.span(m.range.start, m.range.end);
            let Some((raw, span)) = reader.heredoc(&m.name, m.chomp) else {
                let tabs = if m.chomp {
                    " (after optional tabs)"
                } else {
                    ""
                };
                return Err(Box::new(
                    Diagnostic::new(
                        format!("unterminated heredoc `{}`", m.name),
                        Some(word_span),
                    )
                    .label(format!("no line `{}` closes this heredoc", m.name))
                    .help(format!(
                        "end the heredoc with a line that is exactly `{}`{tabs}",
                        m.name
                    )),
                ));
            };
            cx.span = join(cx.span, span);
            out.push(Heredoc {
                name: m.name,
                word_span,
                chomp: m.chomp,
                expand: m.expand,
                fd: m.fd,
                raw,
                span,
            });
        }
        Ok(out)
    }

    fn mount(&self, cx: &Cx<'_>, flag: &FlagValue) -> Result<Mount> {
        let Some(value) = &flag.value else {
            return Err(error("`--mount` needs a value", flag.span));
        };
        let field_span = |r: &Range<usize>| match &flag.value_range {
            Some(v) => cx.line.span(v.start + r.start, v.start + r.end),
            None => value.span,
        };
        let fields = words::csv_fields(&value.text, 0..value.text.len()).map_err(|at| {
            Box::new(
                Diagnostic::new("bad quote in `--mount`", Some(field_span(&(at..at + 1))))
                    .help("quote a whole field, as in `--mount=type=bind,\"source=a,b\"`"),
            )
        })?;
        let mut m = Mount {
            kind: MountType::Bind,
            target: None,
            source: None,
            from: None,
            id: None,
            sharing: None,
            readonly: true,
            required: false,
            mode: None,
            uid: None,
            gid: None,
            size: None,
            env: None,
            span: flag.span,
        };
        let mut readonly = None;
        let mut required_span = None;
        let mut set: Vec<(&'static str, Span)> = Vec::new();
        const KEYS: [&str; 19] = [
            "type",
            "from",
            "source",
            "target",
            "readonly",
            "id",
            "sharing",
            "required",
            "size",
            "mode",
            "uid",
            "gid",
            "src",
            "dst",
            "destination",
            "ro",
            "rw",
            "readwrite",
            "env",
        ];
        for f in &fields {
            let span = field_span(&f.range);
            let (key, val) = match f.text.split_once('=') {
                Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
                None => (f.text.to_ascii_lowercase(), None),
            };
            let val_span = match &flag.value_range {
                Some(_) => field_span(&(f.range.end - val.map_or(0, str::len)..f.range.end)),
                None => value.span,
            };
            let word = |v: &str| Word {
                text: v.to_string(),
                span: val_span,
            };
            let literal = |what: &str, v: &str| -> Result<()> {
                if v.contains('$') {
                    Err(Box::new(
                        Diagnostic::new(
                            format!("`{what}` of `--mount` must be written literally"),
                            Some(val_span),
                        )
                        .label("variables are not supported here"),
                    ))
                } else {
                    Ok(())
                }
            };
            let bad = |what: &str, v: &str, help: &str| -> Box<Diagnostic> {
                Box::new(
                    Diagnostic::new(
                        format!("invalid `{what}` in `--mount`: `{v}`"),
                        Some(val_span),
                    )
                    .help(help.to_string()),
                )
            };
            let boolean = |v: &str| -> Result<bool> {
                match v.to_ascii_lowercase().as_str() {
                    "1" | "t" | "true" => Ok(true),
                    "0" | "f" | "false" => Ok(false),
                    _ => Err(bad(&key, v, "use `true` or `false`")),
                }
            };
            let Some(v) = val else {
                match key.as_str() {
                    "readonly" | "ro" => readonly = Some(true),
                    "readwrite" | "rw" => readonly = Some(false),
                    "required" => {
                        m.required = true;
                        required_span = Some(span);
                    }
                    k if KEYS.contains(&k) => {
                        return Err(Box::new(
                            Diagnostic::new(
                                format!("`{k}` in `--mount` needs a value"),
                                Some(span),
                            )
                            .help(format!("write `{k}=<value>`")),
                        ));
                    }
                    k => return Err(unknown_mount_key(k, span, &KEYS)),
                }
                continue;
            };
            match key.as_str() {
                "type" => {
                    literal("type", v)?;
                    m.kind = match v.to_ascii_lowercase().as_str() {
                        "bind" => MountType::Bind,
                        "cache" => MountType::Cache,
                        "tmpfs" => MountType::Tmpfs,
                        "secret" => MountType::Secret,
                        "ssh" => MountType::Ssh,
                        other => {
                            let mut d = Diagnostic::new(
                                format!("unknown mount type `{other}`"),
                                Some(val_span),
                            )
                            .label("not a mount type");
                            d = match words::suggest(
                                other,
                                &["bind", "cache", "tmpfs", "secret", "ssh"],
                            ) {
                                Some(s) => d.help(format!(
                                    "did you mean `{s}`? (types: bind, cache, tmpfs, secret, ssh)"
                                )),
                                None => {
                                    d.help("mount types are bind, cache, tmpfs, secret and ssh")
                                }
                            };
                            return Err(Box::new(d));
                        }
                    };
                }
                "source" | "src" => m.source = Some(word(v)),
                "target" | "dst" | "destination" => m.target = Some(word(v)),
                "readonly" | "ro" => readonly = Some(boolean(v)?),
                "readwrite" | "rw" => readonly = Some(!boolean(v)?),
                "required" => {
                    m.required = boolean(v)?;
                    required_span = Some(span);
                }
                "id" => m.id = Some(word(v)),
                "from" => {
                    m.from = Some(word(v));
                    set.push(("from", span));
                }
                "env" => {
                    m.env = Some(word(v));
                    set.push(("env", span));
                }
                "sharing" => {
                    literal("sharing", v)?;
                    m.sharing = Some(match v.to_ascii_lowercase().as_str() {
                        "shared" => Sharing::Shared,
                        "private" => Sharing::Private,
                        "locked" => Sharing::Locked,
                        _ => return Err(bad("sharing", v, "use `shared`, `private` or `locked`")),
                    });
                    set.push(("sharing", span));
                }
                "mode" => {
                    literal("mode", v)?;
                    m.mode = Some(
                        u32::from_str_radix(v, 8)
                            .map_err(|_| bad("mode", v, "write an octal mode such as `0755`"))?,
                    );
                    set.push(("mode", span));
                }
                "uid" | "gid" => {
                    literal(&key, v)?;
                    let n = v
                        .parse::<u32>()
                        .map_err(|_| bad(&key, v, "write a number"))?;
                    if key == "uid" {
                        m.uid = Some(n);
                    } else {
                        m.gid = Some(n);
                    }
                    set.push((if key == "uid" { "uid" } else { "gid" }, span));
                }
                "size" => {
                    literal("size", v)?;
                    m.size = Some(
                        ram_bytes(v)
                            .ok_or_else(|| bad("size", v, "write a size such as `64m` or `1g`"))?,
                    );
                    set.push(("size", span));
                }
                k => return Err(unknown_mount_key(k, span, &KEYS)),
            }
        }
        let kind_name = match m.kind {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        };
        for (key, span) in set {
            let allowed = match key {
                "from" => matches!(m.kind, MountType::Bind | MountType::Cache),
                "env" => m.kind == MountType::Secret,
                "sharing" => m.kind == MountType::Cache,
                "size" => m.kind == MountType::Tmpfs,
                _ => matches!(
                    m.kind,
                    MountType::Cache | MountType::Secret | MountType::Ssh
                ),
            };
            if !allowed {
                return Err(Box::new(
                    Diagnostic::new(
                        format!("`{key}` is not allowed for a {kind_name} mount"),
                        Some(span),
                    )
                    .label(format!("not valid with type={kind_name}")),
                ));
            }
        }
        if let Some(span) = required_span
            && !matches!(m.kind, MountType::Secret | MountType::Ssh)
        {
            return Err(Box::new(
                Diagnostic::new(
                    format!("`required` is not allowed for a {kind_name} mount"),
                    Some(span),
                )
                .label("only for type=secret and type=ssh"),
            ));
        }
        if m.target.is_none()
            && matches!(
                m.kind,
                MountType::Bind | MountType::Cache | MountType::Tmpfs
            )
        {
            return Err(Box::new(
                Diagnostic::new(format!("a {kind_name} mount needs a `target`"), Some(flag.span))
                    .label("no target= given")
                    .help(format!("add `target=<path in the container>`, as in `--mount=type={kind_name},target=/cache`")),
            ));
        }
        if m.kind == MountType::Secret
            && m.target.is_none()
            && m.id.is_none()
            && m.source.is_none()
            && m.env.is_none()
        {
            return Err(Box::new(
                Diagnostic::new(
                    "a secret mount needs an `id` or a `target`",
                    Some(flag.span),
                )
                .help("write `--mount=type=secret,id=<secret id>`"),
            ));
        }
        m.readonly = readonly.unwrap_or(!matches!(m.kind, MountType::Cache | MountType::Tmpfs));
        if m.kind == MountType::Cache && m.sharing.is_none() {
            m.sharing = Some(Sharing::Shared);
        }
        Ok(m)
    }
}

/// The value of a flag that takes one of `choices` (`--network=none`), or an error at the
/// value naming `what` with `help`.
fn keyword<T: std::marker::Copy>(
    flag: &FlagValue,
    choices: &[(&str, T)],
    what: &str,
    help: &str,
) -> Result<Spanned<T>> {
    let word = flag.value.clone().unwrap_or_else(|| Word {
        text: String::new(),
        span: flag.span,
    });
    match choices.iter().find(|(name, _)| *name == word.text) {
        Some((_, value)) => Ok(Spanned {
            value: *value,
            span: word.span,
        }),
        None => Err(Box::new(
            Diagnostic::new(
                format!("unsupported {what} `{}`", word.text),
                Some(word.span),
            )
            .label(format!("not a {what}"))
            .help(help),
        )),
    }
}

fn unknown_mount_key(key: &str, span: Span, keys: &[&str]) -> Box<Diagnostic> {
    let mut d = Diagnostic::new(format!("unknown key `{key}` in `--mount`"), Some(span))
        .label("not a mount option");
    if let Some(s) = words::suggest(key, keys) {
        d = d.help(format!("did you mean `{s}`?"));
    }
    Box::new(d)
}

/// Docker's `units.RAMInBytes`: `64m`, `1g`, `512MiB`, `100` (binary multiples).
fn ram_bytes(s: &str) -> Option<u64> {
    let num_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(num_len);
    let n: f64 = num.parse().ok()?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.trim_end_matches('b').trim_end_matches('i');
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return None,
    };
    Some((n * (1u64 << shift) as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(ram_bytes("64m"), Some(64 << 20));
        assert_eq!(ram_bytes("1g"), Some(1 << 30));
        assert_eq!(ram_bytes("512MiB"), Some(512 << 20));
        assert_eq!(ram_bytes("100"), Some(100));
        assert_eq!(ram_bytes("1x"), None);
    }
}
