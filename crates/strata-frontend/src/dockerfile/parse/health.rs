//! `HEALTHCHECK` and Go durations.

use std::time::Duration;

use strata_plan::Diagnostic;

use super::super::instructions::*;
use super::super::words::{self, Json};
use super::{Cx, FlagKind, Parser, Result, error, not_string};

impl Parser {
    pub(super) fn healthcheck(&self, cx: &Cx<'_>) -> Result<Instruction> {
        let flags = self.flags(
            cx,
            &[
                ("interval", FlagKind::String),
                ("timeout", FlagKind::String),
                ("start-period", FlagKind::String),
                ("start-interval", FlagKind::String),
                ("retries", FlagKind::String),
            ],
            &[],
        )?;
        let usage = "write `HEALTHCHECK [--interval=30s] [--timeout=30s] [--start-period=0s] [--retries=3] CMD <command>` or `HEALTHCHECK NONE`";
        let text = &cx.line.text;
        let kind_end = text[cx.args.clone()]
            .find(char::is_whitespace)
            .map_or(cx.args.end, |i| cx.args.start + i);
        let kind = &text[cx.args.start..kind_end];
        let kind_span = cx.line.span(cx.args.start, kind_end);
        let rest = words::skip_space(text, kind_end).min(cx.args.end)..cx.args.end;
        if cx.args.is_empty() {
            return Err(cx.missing("`CMD <command>` or `NONE`", usage));
        }
        let test = if kind.eq_ignore_ascii_case("NONE") {
            if !rest.is_empty() {
                return Err(Box::new(
                    Diagnostic::new(
                        "HEALTHCHECK NONE takes no arguments",
                        Some(cx.line.span(rest.start, rest.end)),
                    )
                    .label("unexpected"),
                ));
            }
            if let Some(f) = flags.0.first() {
                return Err(Box::new(
                    Diagnostic::new("HEALTHCHECK NONE takes no options", Some(f.span))
                        .label("unexpected"),
                ));
            }
            None
        } else if kind.eq_ignore_ascii_case("CMD") {
            if rest.is_empty() {
                return Err(Box::new(
                    Diagnostic::new("missing command after HEALTHCHECK CMD", Some(kind_span))
                        .help(usage),
                ));
            }
            Some(match words::json_array(text, rest.clone()) {
                Json::Strings(p) => CommandLine::Exec(p.iter().map(|p| cx.word(p)).collect()),
                Json::NotString(r) => return Err(not_string(cx, r)),
                Json::Shell => CommandLine::Shell(Word {
                    text: text[rest.clone()].to_string(),
                    span: cx.line.span(rest.start, rest.end),
                }),
            })
        } else {
            return Err(Box::new(
                Diagnostic::new(
                    format!("unknown HEALTHCHECK type `{kind}`"),
                    Some(kind_span),
                )
                .label("expected `CMD` or `NONE`")
                .help(usage),
            ));
        };
        let duration = |name: &str| -> Result<Option<Spanned<Duration>>> {
            let Some(word) = flags.string(name) else {
                return Ok(None);
            };
            let value = go_duration(&word.text).map_err(|e| {
                Box::new(
                    Diagnostic::new(
                        format!("bad `--{name}` in HEALTHCHECK: {e}"),
                        Some(word.span),
                    )
                    .help("write a duration such as `30s`, `1m30s` or `500ms`"),
                )
            })?;
            if !value.is_zero() && value < Duration::from_millis(1) {
                return Err(error(
                    format!("`--{name}` can not be less than 1ms"),
                    word.span,
                ));
            }
            Ok(Some(Spanned {
                value,
                span: word.span,
            }))
        };
        let retries = match flags.string("retries") {
            None => None,
            Some(w) => Some(Spanned {
                value: w.text.parse::<u32>().map_err(|_| {
                    Box::new(
                        Diagnostic::new(
                            format!(
                                "bad `--retries` in HEALTHCHECK: `{}` is not a whole number",
                                w.text
                            ),
                            Some(w.span),
                        )
                        .help("write `--retries=3`"),
                    )
                })?,
                span: w.span,
            }),
        };
        Ok(Instruction::Healthcheck(Healthcheck {
            test,
            interval: duration("interval")?,
            timeout: duration("timeout")?,
            start_period: duration("start-period")?,
            start_interval: duration("start-interval")?,
            retries,
            span: cx.span,
        }))
    }
}

/// Go's `time.ParseDuration`.
pub(crate) fn go_duration(s: &str) -> std::result::Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let invalid = || format!("`{s}` is not a duration");
    if s.is_empty() || s.starts_with('-') {
        return Err(invalid());
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(invalid());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => {
                return Err(format!(
                    "missing unit in duration `{s}` (use ns, us, ms, s, m or h)"
                ));
            }
            _ => return Err(format!("unknown unit `{unit}` in duration `{s}`")),
        };
        let n: f64 = num.parse().map_err(|_| invalid())?;
        total += n * scale;
        rest = after;
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(go_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(go_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(go_duration("0"), Ok(Duration::ZERO));
        assert!(go_duration("5").is_err());
        assert!(go_duration("-1s").is_err());
        assert!(go_duration("1x").is_err());
    }
}
