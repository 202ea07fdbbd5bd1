//! The image history text (`created_by`) of each Dockerfile stage, in the form BuildKit's
//! dockerfile2llb writes (`commitToHistory`): `RUN /bin/sh -c make # buildkit`, `COPY a /b #
//! buildkit`, `WORKDIR /app`, `ENV A=b`, `CMD ["sh" "-c" "x"]`. The text is a stage option,
//! never a digest input, so it can follow BuildKit without changing any cache key.

use std::collections::HashMap;
use std::fmt::Write as _;

use strata_plan::{ConfigChange, Image, Op, RunShell, SourceMap, Span, Step};

use super::Dockerfile;

/// What the lowering found that entries name, by the instruction's span.
pub(super) struct Named<'a> {
    /// Per `RUN`: the build args its entry names.
    pub run_args: &'a HashMap<Span, Vec<(String, String)>>,
    /// Per `COPY`/`ADD` without heredocs: its sources and destination, expanded.
    pub copy_paths: &'a HashMap<Span, Vec<String>>,
}

/// Sets the history text of every instruction stage of `images` lowered from `dockerfile`.
/// An instruction that makes no stage (`ARG`, `SHELL`: no digest input of their own) still
/// gets BuildKit's entry without a layer, carried by the next stage of its build stage (or,
/// at the end, by the last one). The `from` stage makes no entry of its own, as in BuildKit,
/// where the base's history is all there is before the first instruction.
pub(super) fn set_created_by(
    images: &mut [Image],
    dockerfile: &Dockerfile,
    sources: &SourceMap,
    named: &Named<'_>,
) {
    let at: HashMap<Span, (usize, usize)> = images
        .iter()
        .enumerate()
        .flat_map(|(i, image)| {
            image
                .stages
                .iter()
                .enumerate()
                .filter_map(move |(j, stage)| stage.span.map(|span| (span, (i, j))))
        })
        .collect();
    for stage in &dockerfile.stages {
        let mut last = at.get(&stage.from.span).copied();
        let mut pending = Vec::new();
        for instruction in &stage.instructions {
            let text = sources.text(instruction.span());
            match at.get(&instruction.span()) {
                Some(&(i, j)) => {
                    let made = &mut images[i].stages[j];
                    made.options.created_by =
                        created_by(&made.steps, text, named, instruction.span());
                    made.options.always_layer = always_layer(&made.steps);
                    made.options.history_before = std::mem::take(&mut pending);
                    last = Some((i, j));
                }
                None => pending.push(created_by(&[], text, named, instruction.span())),
            }
        }
        if let Some((i, j)) = last {
            images[i].stages[j].options.history_after = pending;
        }
    }
    // The ONBUILD triggers a stage ran (no instruction of its own): named by their text.
    for stage in images.iter_mut().flat_map(|i| i.stages.iter_mut()) {
        if let (true, Some(span)) = (stage.name.starts_with("onbuild-"), stage.span) {
            stage.options.created_by = created_by(&stage.steps, sources.text(span), named, span);
            stage.options.always_layer = always_layer(&stage.steps);
        }
    }
}

/// Whether BuildKit gives the instruction lowered to `steps` a layer even when it changes no
/// file: a `RUN`, and a `WORKDIR` of anything but `/` (dockerfile2llb's `withLayer`).
fn always_layer(steps: &[Step]) -> bool {
    steps.iter().any(|s| match &s.op {
        Op::Run(_) => true,
        Op::MakeDir { path, .. } => path != "/",
        _ => false,
    })
}

/// The history text of the instruction at `span`, written as `text` and lowered to `steps`,
/// with what the lowering `named`. Empty: no entry (`ONBUILD`, which BuildKit does not record).
fn created_by(steps: &[Step], text: &str, named: &Named<'_>, span: Span) -> String {
    let all = words(text);
    let keyword = all.first().map(|k| k.to_uppercase()).unwrap_or_default();
    let rest = &all[all.len().min(1)..];
    let config = steps.iter().find_map(|s| match &s.op {
        Op::Config(change) => Some(change),
        _ => None,
    });
    let run = steps.iter().find_map(|s| match &s.op {
        Op::Run(run) => Some(run),
        _ => None,
    });
    match (keyword.as_str(), run, config) {
        ("RUN", Some(run), _) => {
            let named = named
                .run_args
                .get(&span)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let mut args = Vec::new();
            // BuildKit names the stage's ARGs, counted: `|1 V=x`.
            if !named.is_empty() {
                args.push(format!("|{}", named.len()));
                args.extend(named.iter().map(|(k, v)| format!("{k}={v}")));
            }
            for command in &run.commands {
                match &run.shell {
                    RunShell::Argv(argv) => {
                        args.extend(argv.iter().cloned());
                        args.push(command.text.clone());
                    }
                    RunShell::Exec => args.extend(
                        serde_json::from_str::<Vec<String>>(&command.text)
                            .unwrap_or_else(|_| vec![command.text.clone()]),
                    ),
                    RunShell::ToolboxScript | RunShell::Ansible => args.push(command.text.clone()),
                }
            }
            format!("RUN {} # buildkit", args.join(" "))
        }
        ("COPY" | "ADD", _, _) if named.copy_paths.contains_key(&span) => {
            format!("{keyword} {} # buildkit", named.copy_paths[&span].join(" "))
        }
        ("COPY" | "ADD", _, _) => {
            // A heredoc's body is not part of the line BuildKit names.
            let rest = match rest.iter().any(|w| w.starts_with("<<")) {
                true => words(text.lines().next().unwrap_or_default())
                    .into_iter()
                    .skip(1)
                    .collect(),
                false => rest.to_vec(),
            };
            let operands: Vec<&String> = rest.iter().skip_while(|w| w.starts_with("--")).collect();
            let joined = operands
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let paths = serde_json::from_str::<Vec<String>>(&joined)
                .unwrap_or_else(|_| operands.iter().map(|s| s.to_string()).collect());
            format!("{keyword} {} # buildkit", paths.join(" "))
        }
        (
            "WORKDIR",
            _,
            Some(ConfigChange {
                workdir: Some(wd), ..
            }),
        ) => format!("WORKDIR {wd}"),
        ("ENV", _, Some(c)) => format!("ENV {}", pairs(&c.env)),
        ("LABEL", _, Some(c)) => format!("LABEL {}", pairs(&c.labels)),
        ("CMD", _, Some(ConfigChange { cmd: Some(a), .. })) => format!("CMD {}", go_quoted(a)),
        (
            "ENTRYPOINT",
            _,
            Some(ConfigChange {
                entrypoint: Some(a),
                ..
            }),
        ) => {
            format!("ENTRYPOINT {}", go_quoted(a))
        }
        ("USER", _, Some(ConfigChange { user: Some(u), .. })) => format!("USER {u}"),
        ("ONBUILD", _, _) => String::new(),
        (
            "STOPSIGNAL",
            _,
            Some(ConfigChange {
                stop_signal: Some(signal),
                ..
            }),
        ) => format!("STOPSIGNAL {signal}"),
        (
            "HEALTHCHECK",
            _,
            Some(ConfigChange {
                healthcheck: Some(h),
                ..
            }),
        ) => format!(
            "HEALTHCHECK &{{{} {:?} {:?} {:?} {}}}",
            go_quoted(&h.test),
            go_duration(h.interval),
            go_duration(h.timeout),
            go_duration(h.start_period),
            go_rune(h.retries)
        ),
        // BuildKit prints these with `%v`: a list as `[a b]`, the port set as a Go map.
        ("VOLUME", _, Some(c)) if !c.volumes.is_empty() => {
            format!("VOLUME [{}]", c.volumes.join(" "))
        }
        ("EXPOSE", _, Some(c)) if !c.expose.is_empty() => {
            let mut ports: Vec<String> = c
                .expose
                .iter()
                .map(|p| match p.contains('/') {
                    true => format!("{p}:{{}}"),
                    false => format!("{p}/tcp:{{}}"),
                })
                .collect();
            ports.sort();
            ports.dedup();
            format!("EXPOSE map[{}]", ports.join(" "))
        }
        ("SHELL", _, _) => {
            let shell = serde_json::from_str::<Vec<String>>(&rest.join(" "))
                .unwrap_or_else(|_| rest.to_vec());
            format!("SHELL [{}]", shell.join(" "))
        }
        _ => [keyword.clone()]
            .into_iter()
            .chain(rest.iter().cloned())
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// `nanos` as Go's `time.Duration.String` prints it: `0s`, `1.5s`, `1m0s`, `2h0m0s`, `500ms`.
fn go_duration(nanos: u64) -> String {
    // Go's fraction: the digits below the unit, trailing zeros dropped.
    let fraction = |value: u64, digits: u32| {
        let unit = 10u64.pow(digits);
        let frac = format!("{:0width$}", value % unit, width = digits as usize);
        let frac = frac.trim_end_matches('0');
        match frac {
            "" => format!("{}", value / unit),
            f => format!("{}.{f}", value / unit),
        }
    };
    match nanos {
        0 => "0s".into(),
        n if n < 1_000 => format!("{n}ns"),
        n if n < 1_000_000 => format!("{}µs", fraction(n, 3)),
        n if n < 1_000_000_000 => format!("{}ms", fraction(n, 6)),
        n => {
            let secs = fraction(n % 60_000_000_000, 9);
            let minutes = n / 60_000_000_000;
            let mut out = String::new();
            if minutes >= 60 {
                let _ = write!(out, "{}h{}m", minutes / 60, minutes % 60);
            } else if minutes > 0 {
                let _ = write!(out, "{minutes}m");
            }
            out + &secs + "s"
        }
    }
}

/// An integer as Go's `%q` prints it: as a quoted rune (`'\x04'`, `'\n'`, `'A'`).
fn go_rune(value: u32) -> String {
    let named = match value {
        7 => Some("\\a"),
        8 => Some("\\b"),
        9 => Some("\\t"),
        10 => Some("\\n"),
        11 => Some("\\v"),
        12 => Some("\\f"),
        13 => Some("\\r"),
        39 => Some("\\'"),
        92 => Some("\\\\"),
        _ => None,
    };
    match (named, char::from_u32(value)) {
        (Some(n), _) => format!("'{n}'"),
        (None, Some(c)) if (' '..='~').contains(&c) => format!("'{c}'"),
        (None, _) if value < 0x100 => format!("'\\x{value:02x}'"),
        (None, _) => format!("'\\u{value:04x}'"),
    }
}

/// The words of an instruction, continuation lines joined (a line's trailing `\` or `` ` ``,
/// whichever the escape is, dropped) and runs of white space made one.
fn words(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            let l = l.trim_end();
            l.strip_suffix('\\')
                .or_else(|| l.strip_suffix('`'))
                .unwrap_or(l)
        })
        .flat_map(str::split_whitespace)
        .map(str::to_string)
        .collect()
}

/// `k=v k2=v2`, as BuildKit's `KeyValuePair.String` joins them.
fn pairs(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A list as Go's `%q` prints a `[]string`: `["sh" "-c" "x"]` (strconv.Quote agrees with
/// JSON string escaping for the printable text of Dockerfiles).
fn go_quoted(list: &[String]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|s| serde_json::to_string(s).expect("a string always serializes"))
        .collect();
    format!("[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::super::{DockerfileOptions, lower, parse};
    use strata_plan::SourceMap;

    /// The history texts of the target image of `text`, built with a context of one file `f`.
    fn history(text: &str) -> Vec<String> {
        let context = tempfile::tempdir().expect("tempdir");
        std::fs::write(context.path().join("f"), "f").expect("write f");
        let mut sources = SourceMap::default();
        let file = sources.add("Dockerfile".into(), "Dockerfile".into(), text.into());
        let parsed = parse(file, text).expect("parses");
        let pinned = tempfile::tempdir().expect("tempdir");
        let options = DockerfileOptions {
            context: context.path().to_path_buf(),
            snapshot: Some(crate::dockerfile::context_files::SnapshotDirs {
                build: pinned.path().to_path_buf(),
                pins: None,
            }),
            ..DockerfileOptions::default()
        };
        let plan = lower(&parsed, sources, &options)
            .map_err(|e| e.0)
            .expect("lowers");
        let image = plan.images.last().expect("an image");
        image
            .stages
            .iter()
            .flat_map(|s| {
                let o = &s.options;
                o.history_before
                    .iter()
                    .chain(std::iter::once(&o.created_by).filter(|c| !c.is_empty()))
                    .chain(&o.history_after)
                    .cloned()
            })
            .collect()
    }

    #[test]
    fn copy_flags_heredocs_and_continuations() {
        assert_eq!(
            history(
                "FROM scratch\nCOPY --chown=1:1 --chmod=644 f /f\nCOPY <<EOF /g\nbody line\nEOF\n\
                 ARG A=1\nLABEL a=b \\\n  c=d\n"
            ),
            [
                "COPY f /f # buildkit",
                "COPY <<EOF /g # buildkit",
                "ARG A=1",
                "LABEL a=b c=d"
            ]
        );
    }

    #[test]
    fn copy_paths_are_named_expanded() {
        assert_eq!(
            history("FROM scratch\nENV D=/dst\nCOPY [\"f\", \"$D/\"]\nADD f ${D}/g\n"),
            [
                "ENV D=/dst",
                "COPY f /dst/ # buildkit",
                "ADD f /dst/g # buildkit"
            ]
        );
    }
}
