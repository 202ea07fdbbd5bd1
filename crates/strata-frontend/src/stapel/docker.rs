//! The value syntaxes of `docker:` directives that are strings in the config but structured in
//! the image config: `CMD`/`ENTRYPOINT` strings, `HEALTHCHECK` and Go-style durations.
//!
//! They follow the Dockerfile instructions of the same names:
//! - a `CMD`/`ENTRYPOINT` string that is a JSON array of strings is that argv (exec form), any
//!   other string runs through `/bin/sh -c` (shell form);
//! - `HEALTHCHECK` is `NONE` or `[--interval=D] [--timeout=D] [--start-period=D] [--retries=N]
//!   CMD command`, where the command takes the exec form (`["CMD", args...]`) when it is a JSON
//!   array and the shell form (`["CMD-SHELL", command]`) otherwise;
//! - durations are Go's `time.ParseDuration` syntax (`30s`, `1m30s`, `1.5h`, `500ms`), stored
//!   in nanoseconds; like Docker, a non-zero duration must be at least 1ms.
//!
//! Errors are plain messages; the caller attaches the span of the value.

use strata_plan::Healthcheck;

/// The argv of a `CMD`/`ENTRYPOINT` written as a string.
pub(crate) fn command_form(s: &str) -> Vec<String> {
    json_array(s).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), s.into()])
}

/// `s` as a JSON array of strings, if it is one.
pub(crate) fn json_array(s: &str) -> Option<Vec<String>> {
    let t = s.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

/// Parses the text after `HEALTHCHECK` in a Dockerfile.
pub(crate) fn healthcheck(s: &str) -> Result<Healthcheck, String> {
    let mut rest = s.trim();
    if rest.eq_ignore_ascii_case("NONE") {
        return Ok(Healthcheck {
            test: vec!["NONE".into()],
            ..Healthcheck::default()
        });
    }
    let mut check = Healthcheck::default();
    let mut seen: Vec<&str> = Vec::new();
    while let Some(option) = rest.strip_prefix("--") {
        let end = option.find(char::is_whitespace).unwrap_or(option.len());
        let (word, after) = option.split_at(end);
        rest = after.trim_start();
        let Some((name, value)) = word.split_once('=') else {
            return Err(format!(
                "healthcheck option `--{word}` needs a value (`--{word}=...`)"
            ));
        };
        if seen.contains(&name) {
            return Err(format!("healthcheck option `--{name}` is given twice"));
        }
        seen.push(name);
        let bad = |e: String| format!("bad `--{name}` in healthcheck: {e}");
        match name {
            "interval" => check.interval = probe_duration(value).map_err(bad)?,
            "timeout" => check.timeout = probe_duration(value).map_err(bad)?,
            "start-period" => check.start_period = probe_duration(value).map_err(bad)?,
            "retries" => {
                check.retries = value
                    .parse()
                    .map_err(|_| bad(format!("`{value}` is not a whole number of retries")))?
            }
            _ => {
                return Err(format!(
                    "unknown healthcheck option `--{name}`; \
                     expected `--interval`, `--timeout`, `--start-period` or `--retries`"
                ));
            }
        }
    }
    let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (word, command) = rest.split_at(word_end);
    if word.eq_ignore_ascii_case("NONE") {
        return Err("a healthcheck `NONE` takes no options".into());
    }
    if !word.eq_ignore_ascii_case("CMD") {
        return Err(format!(
            "expected `CMD <command>` or `NONE` in healthcheck, found `{word}`"
        ));
    }
    let command = command.trim();
    if command.is_empty() {
        return Err("healthcheck `CMD` needs a command".into());
    }
    check.test = match json_array(command) {
        Some(args) if args.is_empty() => return Err("healthcheck `CMD` needs a command".into()),
        Some(args) => std::iter::once("CMD".to_string()).chain(args).collect(),
        None => vec!["CMD-SHELL".into(), command.into()],
    };
    Ok(check)
}

/// A healthcheck duration: Go syntax, and at least 1ms unless 0.
fn probe_duration(s: &str) -> Result<u64, String> {
    let d = duration(s)?;
    if d != 0 && d < 1_000_000 {
        return Err(format!("`{s}` is shorter than 1ms"));
    }
    Ok(d)
}

/// Parses a Go duration (`300ms`, `1.5h`, `2h45m`) into nanoseconds.
pub(crate) fn duration(s: &str) -> Result<u64, String> {
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s.starts_with(['-', '+']) {
        return Err(format!("`{s}` is not a valid duration (no sign allowed)"));
    }
    let invalid = || format!("`{s}` is not a valid duration (examples: `30s`, `1m30s`, `500ms`)");
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(f) => {
                let len = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
                f.split_at(len)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(invalid());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => {
                return Err(format!(
                    "missing unit in duration `{s}` (use ns, us, ms, s, m or h)"
                ));
            }
            _ => return Err(format!("unknown unit `{unit}` in duration `{s}`")),
        };
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| invalid())?
        };
        total = total.saturating_add(int.saturating_mul(scale));
        // Only the digits that can matter at nanosecond precision.
        let frac = &frac[..frac.len().min(20)];
        if !frac.is_empty() {
            let digits: u128 = frac.parse().map_err(|_| invalid())?;
            let div = 10u128.pow(frac.len() as u32);
            total = total.saturating_add(digits.saturating_mul(scale) / div);
        }
        rest = after;
    }
    u64::try_from(total).map_err(|_| format!("duration `{s}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000 * MS;

    /// `syntax!(name, input, expected)`: one parser case per line, like globset's table.
    macro_rules! syntax {
        ($name:ident, $parse:expr, $input:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!($parse($input), $expected, "input: {:?}", $input);
            }
        };
    }

    fn hc(test: &[&str], interval: u64, timeout: u64, start: u64, retries: u32) -> Healthcheck {
        Healthcheck {
            test: test.iter().map(|s| s.to_string()).collect(),
            interval,
            timeout,
            start_period: start,
            retries,
        }
    }

    fn err<T>(s: &str) -> Result<T, String> {
        Err(s.to_string())
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    syntax!(dur_seconds, duration, "30s", Ok(30 * S));
    syntax!(dur_compound, duration, "1m30s", Ok(90 * S));
    syntax!(dur_millis, duration, "500ms", Ok(500 * MS));
    syntax!(dur_fraction, duration, "1.5h", Ok(5400 * S));
    syntax!(dur_leading_dot, duration, ".5s", Ok(500 * MS));
    syntax!(dur_micros, duration, "3us", Ok(3_000));
    syntax!(dur_micro_sign, duration, "3µs", Ok(3_000));
    syntax!(dur_nanos, duration, "7ns", Ok(7));
    syntax!(dur_zero, duration, "0", Ok(0));
    syntax!(dur_zero_unit, duration, "0s", Ok(0));
    syntax!(
        dur_no_unit,
        duration,
        "30",
        err("missing unit in duration `30` (use ns, us, ms, s, m or h)")
    );
    syntax!(
        dur_bad_unit,
        duration,
        "3d",
        err("unknown unit `d` in duration `3d`")
    );
    syntax!(
        dur_negative,
        duration,
        "-1s",
        err("`-1s` is not a valid duration (no sign allowed)")
    );
    syntax!(
        dur_only_unit,
        duration,
        "s",
        err("`s` is not a valid duration (examples: `30s`, `1m30s`, `500ms`)")
    );
    syntax!(dur_empty, duration, "", err("empty duration"));
    syntax!(
        dur_overflow,
        duration,
        "9999999999h",
        err("duration `9999999999h` is too long")
    );

    syntax!(
        json_exec,
        json_array,
        r#"["a", "b c"]"#,
        Some(strings(&["a", "b c"]))
    );
    syntax!(
        json_padded,
        json_array,
        r#"  ["a"]  "#,
        Some(strings(&["a"]))
    );
    syntax!(json_empty, json_array, "[]", Some(vec![]));
    syntax!(json_not_strings, json_array, "[1, 2]", None);
    syntax!(json_broken, json_array, r#"["a", "#, None);
    syntax!(json_shell, json_array, "echo [a]", None);
    syntax!(json_single_quotes, json_array, "['a']", None);

    syntax!(
        cmd_shell_form,
        command_form,
        "nginx -g 'daemon off;'",
        strings(&["/bin/sh", "-c", "nginx -g 'daemon off;'"])
    );
    syntax!(
        cmd_exec_form,
        command_form,
        r#"["nginx", "-g", "daemon off;"]"#,
        strings(&["nginx", "-g", "daemon off;"])
    );
    syntax!(
        cmd_broken_json_is_shell,
        command_form,
        r#"["nginx", -g]"#,
        strings(&["/bin/sh", "-c", r#"["nginx", -g]"#])
    );

    syntax!(hc_none, healthcheck, "NONE", Ok(hc(&["NONE"], 0, 0, 0, 0)));
    syntax!(
        hc_none_lower,
        healthcheck,
        " none ",
        Ok(hc(&["NONE"], 0, 0, 0, 0))
    );
    syntax!(
        hc_shell,
        healthcheck,
        "CMD curl -f http://localhost/ || exit 1",
        Ok(hc(
            &["CMD-SHELL", "curl -f http://localhost/ || exit 1"],
            0,
            0,
            0,
            0
        ))
    );
    syntax!(
        hc_exec,
        healthcheck,
        r#"CMD ["curl", "-f", "http://localhost/"]"#,
        Ok(hc(&["CMD", "curl", "-f", "http://localhost/"], 0, 0, 0, 0))
    );
    syntax!(
        hc_options,
        healthcheck,
        "--interval=5s --timeout=3s --start-period=1m30s --retries=4 CMD true",
        Ok(hc(&["CMD-SHELL", "true"], 5 * S, 3 * S, 90 * S, 4))
    );
    syntax!(
        hc_unknown_option,
        healthcheck,
        "--every=5s CMD true",
        err(
            "unknown healthcheck option `--every`; expected `--interval`, `--timeout`, `--start-period` or `--retries`"
        )
    );
    syntax!(
        hc_option_without_value,
        healthcheck,
        "--interval 5s CMD true",
        err("healthcheck option `--interval` needs a value (`--interval=...`)")
    );
    syntax!(
        hc_bad_duration,
        healthcheck,
        "--timeout=3 CMD true",
        err(
            "bad `--timeout` in healthcheck: missing unit in duration `3` (use ns, us, ms, s, m or h)"
        )
    );
    syntax!(
        hc_too_short,
        healthcheck,
        "--interval=10us CMD true",
        err("bad `--interval` in healthcheck: `10us` is shorter than 1ms")
    );
    syntax!(
        hc_bad_retries,
        healthcheck,
        "--retries=x CMD true",
        err("bad `--retries` in healthcheck: `x` is not a whole number of retries")
    );
    syntax!(
        hc_twice,
        healthcheck,
        "--retries=1 --retries=2 CMD true",
        err("healthcheck option `--retries` is given twice")
    );
    syntax!(
        hc_no_cmd,
        healthcheck,
        "curl localhost",
        err("expected `CMD <command>` or `NONE` in healthcheck, found `curl`")
    );
    syntax!(
        hc_empty_cmd,
        healthcheck,
        "CMD  ",
        err("healthcheck `CMD` needs a command")
    );
    syntax!(
        hc_empty_exec,
        healthcheck,
        "CMD []",
        err("healthcheck `CMD` needs a command")
    );
    syntax!(
        hc_none_with_options,
        healthcheck,
        "--retries=3 NONE",
        err("a healthcheck `NONE` takes no options")
    );
}
