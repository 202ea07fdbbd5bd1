//! The monitor's command line: words, commands and `help`.
//!
//! Lines are split into words like a POSIX shell would for simple commands: blanks separate
//! words, `'...'` is literal, `"..."` keeps blanks and honours `\"`, `\\`, `\$` and `` \` ``,
//! and a backslash outside quotes escapes the next character. Nothing is expanded: `exec`
//! runs an argv, not a shell (write `exec sh -c '...'` for one).

use crate::step::BreakSpec;

/// A parsed monitor command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `help`.
    Help,
    /// `info`: what failed, again.
    Info,
    /// `shell [--base]`.
    Shell {
        /// In the base state instead of the failed one.
        base: bool,
    },
    /// `rerun [--base]`.
    Rerun {
        /// The whole step in a fresh base state instead of the failed command in the current one.
        base: bool,
    },
    /// `exec [--base] CMD...`.
    Exec {
        /// In the base state instead of the failed one.
        base: bool,
        /// The argv.
        argv: Vec<String>,
    },
    /// `diff`.
    Diff,
    /// `env`.
    Env,
    /// `list`.
    List,
    /// `reset`.
    Reset,
    /// `rollback`.
    Rollback,
    /// `ps`.
    Ps,
    /// `attach ID`.
    Attach(usize),
    /// `kill ID`.
    Kill(usize),
    /// `log [-f] [IMAGE[/STAGE]]`.
    Log {
        /// Follow new lines until Ctrl-C.
        follow: bool,
        /// `IMAGE` or `IMAGE/STAGE`.
        filter: Option<String>,
    },
    /// `reload`.
    Reload,
    /// `exit` or `quit`.
    Exit,
    /// `break SPEC` (`b`).
    Break(BreakSpec),
    /// `breakpoints` (`bp`).
    Breakpoints,
    /// `clear KEY`.
    Clear(usize),
    /// `next` (`n`).
    Next,
    /// `continue` (`c`).
    Continue,
}

/// Every command with its usage and one line of help, in `help`'s order.
pub const HELP: [(&str, &str); 21] = [
    (
        "shell [--base]",
        "interactive shell where the command failed (--base: the state before the step)",
    ),
    (
        "rerun [--base]",
        "run the failed command again here (--base: the whole step in a fresh base state)",
    ),
    (
        "exec [--base] CMD...",
        "run one program (an argv, no shell) where the command failed",
    ),
    (
        "diff",
        "what the failed step changed: A added, M modified, D deleted",
    ),
    ("env", "the step's environment variables"),
    (
        "list",
        "the source around the failed command or the paused step",
    ),
    ("info", "what failed, again"),
    ("reset", "drop the changes made in this session"),
    (
        "rollback",
        "drop them and run the failed step again from its start; stay on its new result",
    ),
    (
        "ps",
        "processes left running (shell/exec: Ctrl-p Ctrl-q detaches)",
    ),
    ("attach ID", "give process ID the terminal again"),
    ("kill ID", "end process ID"),
    (
        "log [-f] [IMAGE[/STAGE]]",
        "what the build printed (-f: follow new lines, Ctrl-C comes back)",
    ),
    (
        "reload",
        "re-read the configuration and sources and build again",
    ),
    (
        "next, n",
        "at a pause: run the step (one line of a stage script) and pause again",
    ),
    ("continue, c", "at a pause: run until the next breakpoint"),
    (
        "break, b SPEC",
        "pause at IMAGE/STAGE, STAGE, FILE:LINE, on-fail or all",
    ),
    ("breakpoints, bp", "the breakpoints, by key"),
    ("clear KEY", "remove breakpoint KEY"),
    (
        "exit, quit",
        "leave the debugger, ending its processes (at a pause: stop the build)",
    ),
    ("help", "this list"),
];

/// A line that is not a command.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The first word is no command.
    #[error("unknown command `{name}`{suggestion}; type `help` for the list of commands")]
    Unknown {
        /// What was typed.
        name: String,
        /// `"; did you mean `shell`?"` or empty.
        suggestion: String,
    },
    /// The command's arguments do not fit.
    #[error("{problem}; usage: {usage}")]
    Usage {
        /// What is wrong, e.g. "`diff` takes no arguments".
        problem: String,
        /// The command's usage line from [`HELP`].
        usage: &'static str,
    },
    /// A quote was opened and never closed.
    #[error("missing closing {0} quote")]
    UnclosedQuote(char),
    /// The line ends in a lone backslash.
    #[error("the line ends with a backslash; escape it as \\\\ or quote it")]
    TrailingBackslash,
}

/// Parses one input line; `None` for a blank line.
pub fn parse(line: &str) -> Result<Option<Command>, Error> {
    let words = split(line)?;
    let Some((name, args)) = words.split_first() else {
        return Ok(None);
    };
    let no_args = |cmd: Command| {
        if args.is_empty() {
            Ok(Some(cmd))
        } else {
            Err(Error::Usage {
                problem: format!("`{name}` takes no arguments"),
                usage: usage(name),
            })
        }
    };
    let base_flag = || match args {
        [] => Ok(false),
        [flag] if flag == "--base" => Ok(true),
        _ => Err(Error::Usage {
            problem: format!("`{name}` takes only `--base`"),
            usage: usage(name),
        }),
    };
    match name.as_str() {
        "help" => no_args(Command::Help),
        "info" => no_args(Command::Info),
        "diff" => no_args(Command::Diff),
        "env" => no_args(Command::Env),
        "list" => no_args(Command::List),
        "reset" => no_args(Command::Reset),
        "rollback" => no_args(Command::Rollback),
        "ps" => no_args(Command::Ps),
        "attach" | "kill" => match args {
            [id] => id
                .parse()
                .map(|id| {
                    Some(match name.as_str() {
                        "attach" => Command::Attach(id),
                        _ => Command::Kill(id),
                    })
                })
                .map_err(|_| Error::Usage {
                    problem: format!("`{id}` is no process id (`ps` lists them)"),
                    usage: usage(name),
                }),
            _ => Err(Error::Usage {
                problem: format!("`{name}` takes one process id"),
                usage: usage(name),
            }),
        },
        "log" => {
            let (follow, rest) = match args.split_first() {
                Some((flag, rest)) if flag == "-f" || flag == "--follow" => (true, rest),
                _ => (false, args),
            };
            match rest {
                [] => Ok(Some(Command::Log {
                    follow,
                    filter: None,
                })),
                [filter] if !filter.starts_with('-') => Ok(Some(Command::Log {
                    follow,
                    filter: Some(filter.clone()),
                })),
                _ => Err(Error::Usage {
                    problem: "`log` takes `-f` and one IMAGE or IMAGE/STAGE".into(),
                    usage: usage("log"),
                }),
            }
        }
        "reload" => no_args(Command::Reload),
        "exit" | "quit" => no_args(Command::Exit),
        "next" | "n" => no_args(Command::Next),
        "continue" | "c" => no_args(Command::Continue),
        "breakpoints" | "bp" => no_args(Command::Breakpoints),
        "break" | "b" => match args {
            [spec] => spec
                .parse()
                .map(|spec| Some(Command::Break(spec)))
                .map_err(|problem| Error::Usage {
                    problem,
                    usage: usage("break"),
                }),
            _ => Err(Error::Usage {
                problem: "`break` takes one breakpoint".into(),
                usage: usage("break"),
            }),
        },
        "clear" => match args {
            [key] => key
                .parse()
                .map(|key| Some(Command::Clear(key)))
                .map_err(|_| Error::Usage {
                    problem: format!("`{key}` is no breakpoint key (`breakpoints` lists them)"),
                    usage: usage("clear"),
                }),
            _ => Err(Error::Usage {
                problem: "`clear` takes one breakpoint key".into(),
                usage: usage("clear"),
            }),
        },
        "shell" => Ok(Some(Command::Shell { base: base_flag()? })),
        "rerun" => Ok(Some(Command::Rerun { base: base_flag()? })),
        "exec" => {
            let (base, argv) = match args.split_first() {
                Some((flag, rest)) if flag == "--base" => (true, rest),
                _ => (false, args),
            };
            if argv.is_empty() {
                return Err(Error::Usage {
                    problem: "`exec` needs a program to run".into(),
                    usage: usage("exec"),
                });
            }
            Ok(Some(Command::Exec {
                base,
                argv: argv.to_vec(),
            }))
        }
        _ => Err(Error::Unknown {
            name: name.clone(),
            suggestion: suggest(name),
        }),
    }
}

/// The command names a usage line of [`HELP`] documents (`"exit, quit"` documents two).
fn names(usage: &str) -> impl Iterator<Item = &str> {
    usage
        .split(", ")
        .filter_map(|alias| alias.split(' ').next())
}

/// The usage line of command `name`.
fn usage(name: &str) -> &'static str {
    HELP.iter()
        .find(|(usage, _)| names(usage).any(|n| n == name))
        .map_or("help", |(usage, _)| *usage)
}

/// `"; did you mean `x`?"` for a prefix of a command or a command with one typo.
fn suggest(name: &str) -> String {
    for candidate in HELP.iter().flat_map(|(usage, _)| names(usage)) {
        let prefix = name.len() >= 2 && candidate.starts_with(name);
        if prefix || one_edit_apart(name, candidate) {
            return format!("; did you mean `{candidate}`?");
        }
    }
    String::new()
}

/// Whether `a` becomes `b` by one substitution, insertion, deletion or adjacent swap.
fn one_edit_apart(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a == b || a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = |skip_a: usize, skip_b: usize| a[head + skip_a..] == b[head + skip_b..];
    match a.len().cmp(&b.len()) {
        std::cmp::Ordering::Equal => {
            tail(1, 1)
                || (head + 1 < a.len()
                    && a[head] == b[head + 1]
                    && a[head + 1] == b[head]
                    && tail(2, 2))
        }
        std::cmp::Ordering::Less => tail(0, 1),
        std::cmp::Ordering::Greater => tail(1, 0),
    }
}

/// Splits a line into words; see the module docs.
pub fn split(line: &str) -> Result<Vec<String>, Error> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err(Error::UnclosedQuote('\'')),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err(Error::UnclosedQuote('"')),
                        },
                        Some(c) => w.push(c),
                        None => return Err(Error::UnclosedQuote('"')),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err(Error::TrailingBackslash),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! words {
        ($name:ident, $line:expr, $expected:expr) => {
            #[test]
            fn $name() {
                let expected: Vec<String> =
                    $expected.iter().map(|s: &&str| s.to_string()).collect();
                assert_eq!(split($line), Ok(expected));
            }
        };
    }

    words!(blanks_separate, "  exec  ls\t-l ", ["exec", "ls", "-l"]);
    words!(
        single_quotes_are_literal,
        r#"sh -c 'echo "$x" > /new'"#,
        ["sh", "-c", r#"echo "$x" > /new"#]
    );
    words!(
        double_quotes_escape,
        r#"a "b \"c\" \$d \n""#,
        ["a", r#"b "c" $d \n"#]
    );
    words!(backslash_escapes_a_blank, r"a\ b c", ["a b", "c"]);
    words!(empty_quotes_are_a_word, "a '' b", ["a", "", "b"]);
    words!(adjacent_parts_join, r#"a'b'"c"d"#, ["abcd"]);

    #[test]
    fn bad_quoting_is_explained() {
        assert_eq!(split("exec 'x"), Err(Error::UnclosedQuote('\'')));
        assert_eq!(split("exec \"x"), Err(Error::UnclosedQuote('"')));
        assert_eq!(split("exec x\\"), Err(Error::TrailingBackslash));
    }

    #[test]
    fn commands() {
        assert_eq!(parse("   "), Ok(None));
        assert_eq!(parse("shell"), Ok(Some(Command::Shell { base: false })));
        assert_eq!(
            parse("shell --base"),
            Ok(Some(Command::Shell { base: true }))
        );
        assert_eq!(
            parse("rerun --base"),
            Ok(Some(Command::Rerun { base: true }))
        );
        assert_eq!(parse("quit"), Ok(Some(Command::Exit)));
        assert_eq!(parse("attach 2"), Ok(Some(Command::Attach(2))));
        assert_eq!(parse("kill 1"), Ok(Some(Command::Kill(1))));
        let usage = parse("kill sh").expect_err("no id").to_string();
        assert!(usage.ends_with("usage: kill ID"), "{usage}");
        assert_eq!(
            parse("log -f app/setup"),
            Ok(Some(Command::Log {
                follow: true,
                filter: Some("app/setup".into())
            }))
        );
        let usage = parse("log -x").expect_err("flag").to_string();
        assert!(
            usage.ends_with("usage: log [-f] [IMAGE[/STAGE]]"),
            "{usage}"
        );
        assert_eq!(parse("n"), Ok(Some(Command::Next)));
        assert_eq!(parse("continue"), Ok(Some(Command::Continue)));
        assert_eq!(parse("bp"), Ok(Some(Command::Breakpoints)));
        assert_eq!(parse("clear 2"), Ok(Some(Command::Clear(2))));
        assert_eq!(
            parse("b Dockerfile:3"),
            Ok(Some(Command::Break(BreakSpec::Line {
                file: "Dockerfile".into(),
                line: 3
            })))
        );
        let usage = parse("break").expect_err("no spec").to_string();
        assert!(usage.ends_with("usage: break, b SPEC"), "{usage}");
        let usage = parse("clear x").expect_err("no key").to_string();
        assert!(usage.contains("no breakpoint key"), "{usage}");
        assert_eq!(
            parse("exec --base ls -l /"),
            Ok(Some(Command::Exec {
                base: true,
                argv: vec!["ls".into(), "-l".into(), "/".into()]
            }))
        );
    }

    #[test]
    fn mistakes_point_to_help_or_usage() {
        let unknown = parse("frobnicate").expect_err("unknown").to_string();
        assert_eq!(
            unknown,
            "unknown command `frobnicate`; type `help` for the list of commands"
        );
        let typo = parse("rerum").expect_err("typo").to_string();
        assert!(typo.contains("did you mean `rerun`?"), "{typo}");
        let prefix = parse("sh").expect_err("prefix").to_string();
        assert!(prefix.contains("did you mean `shell`?"), "{prefix}");
        let usage = parse("diff -u").expect_err("args").to_string();
        assert_eq!(usage, "`diff` takes no arguments; usage: diff");
        let usage = parse("shell --init").expect_err("flag").to_string();
        assert_eq!(usage, "`shell` takes only `--base`; usage: shell [--base]");
        let usage = parse("exec --base").expect_err("no argv").to_string();
        assert!(usage.contains("usage: exec [--base] CMD..."), "{usage}");
        let usage = parse("quit now").expect_err("args").to_string();
        assert!(usage.ends_with("usage: exit, quit"), "{usage}");
    }

    #[test]
    fn one_edit() {
        assert!(one_edit_apart("exot", "exit"));
        assert!(one_edit_apart("lsit", "list"));
        assert!(one_edit_apart("envv", "env"));
        assert!(one_edit_apart("rset", "reset"));
        assert!(!one_edit_apart("diff", "diff"));
        assert!(!one_edit_apart("xyz", "env"));
    }
}
