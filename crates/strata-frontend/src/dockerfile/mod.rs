//! The Dockerfile frontend's parser: Dockerfile text to typed instructions grouped in build
//! stages, every value with the span of its text; variable expansion; `.dockerignore`.
//!
//! It follows BuildKit's Dockerfile syntax (the `docker/dockerfile:1` frontend) and is split
//! like BuildKit's parser:
//!
//! 1. `lines`: the text to logical lines: byte-order mark, parser directives (`# syntax=`,
//!    `# escape=`, `# check=`), comment lines, continuations with the escape character
//!    (across comment lines and blank lines), heredoc bodies;
//! 2. `words`: a line to its keyword, `--flags`, words, JSON arrays, heredoc markers;
//! 3. `parse`: the words to typed [`Instruction`]s and [`Stage`]s, checking arguments and
//!    flags; every error is a [`Diagnostic`] pointing at the offending text;
//! 4. [`expand`]: `$VAR` expansion and quote removal, called by the lowering with the scope of
//!    each instruction (parsing never expands: the scope depends on the build);
//! 5. [`ignore`]: `.dockerignore` patterns and matching.
//!
//! ```
//! use strata_frontend::dockerfile::{self, CommandLine, Instruction};
//! use strata_plan::FileId;
//!
//! let text = "\
//! ARG VERSION=3.20
//! FROM alpine:${VERSION} AS base
//! RUN --mount=type=cache,target=/var/cache/apk apk add curl
//! CMD [\"curl\", \"--version\"]
//! ";
//! let file = dockerfile::parse(FileId(0), text).unwrap();
//! assert_eq!(file.global_args[0].args[0].name.text, "VERSION");
//! let stage = &file.stages[0];
//! assert_eq!(stage.name.as_ref().unwrap().value, "base");
//! let vars = |name: &str| (name == "VERSION").then(|| "3.20".to_string());
//! assert_eq!(dockerfile::expand(&stage.from.image.text, '\\', &vars).unwrap(), "alpine:3.20");
//! let Instruction::Run(run) = &stage.instructions[0] else { panic!() };
//! assert_eq!(run.mounts[0].target.as_ref().unwrap().text, "/var/cache/apk");
//! assert!(matches!(&run.command, CommandLine::Shell(w) if w.text == "apk add curl"));
//! ```
//!
//! # Where Docker's behaviour is subtle (and what this parser does)
//!
//! | case | behaviour |
//! |---|---|
//! | parser directives | only before anything else; the first blank line, other comment or instruction ends them; a repeated directive is an error; `# escape=` takes `\` or `` ` `` only |
//! | comments | only whole lines whose first non-blank character is `#`; `RUN echo # x` keeps `# x` |
//! | continuation | escape character as the last non-blank character, unless itself escaped (`\\`); comment lines and blank lines inside a continuation are dropped (blank ones with a warning); continuation lines keep their leading whitespace |
//! | JSON form | an arguments string that starts with `[` and is a valid JSON array of strings; invalid JSON falls back to the shell form silently, but a valid array with a non-string is an error |
//! | flags | `--name[=value]` words right after the keyword, on every instruction (so `CMD --help` is an "unknown flag" error, as in Docker: use the JSON form); a lone `--` ends them; quotes in flags are removed |
//! | `ENV`/`LABEL` | `k=v k2=v2` (quotes kept for [`expand`] to remove), or legacy `ENV k the rest` when the first word has no `=`; mixing is an error |
//! | `WORKDIR`/`USER`/`STOPSIGNAL`/`MAINTAINER` | the whole rest of the line is the value (`WORKDIR /a b` is the path `/a b`) |
//! | `FROM`/`EXPOSE`/`VOLUME` and shell-form `COPY`/`ADD` | split on blanks only, quotes are *not* grouping (`COPY "a b" /` has sources `"a` and `b"`); use the JSON form for spaces |
//! | stage names | lower-cased, `^[a-z][a-z0-9-_.]*$`, unique |
//! | heredocs | `RUN`, `COPY`, `ADD` (and `ONBUILD` of them) in shell form; the markers are the line's words matching `[n]<<[-]NAME`; the bodies follow the instruction's last line in order; a quote anywhere in `NAME` disables expansion; `<<-` strips leading tabs from the body and the terminator; the terminator must match exactly (trailing blanks count) |
//! | `MAINTAINER` | deprecated (a warning); sets the image's author, as Docker does |
//! | `ONBUILD` | the trigger is validated now (Docker only checks it when a child image builds); `ONBUILD ONBUILD`, `ONBUILD FROM` and `ONBUILD MAINTAINER` are errors |
//! | `CMD`/`ENTRYPOINT` without arguments | an error here (Docker would record `/bin/sh -c ""`); `CMD []` is an empty exec form |
//! | `HEALTHCHECK NONE --interval=1s` | an error (Docker ignores the options) |
//! | `RUN --mount` | BuildKit expands every mount field; here path-like fields (`target`, `source`, `from`, `id`, `env`) are [`Word`]s to expand and enumerations/numbers (`type`, `sharing`, `mode`, `uid`, `gid`, `size`) must be literal |
//! | `.dockerignore` | see [`ignore`]: `*.md` matches only at the root; a pattern also matches everything below what it matches; the last matching pattern wins |
//!
//! # What the lowering must do
//!
//! **Scopes.** Global `ARG`s (before the first `FROM`), with build-arg overrides and the
//! [platform args](platform_args), are the scope of every `FROM` line (image, `--platform`).
//! Inside a stage the scope starts with the platform args and the image's `ENV`; a bare `ARG
//! NAME` that names a global ARG brings its value in; `ARG NAME=default` declares one (a
//! build-arg overrides the default); `ENV` adds (and wins over `ARG` of the same name). An ARG
//! is visible only *after* its `ARG` line. [`PROXY_ARGS`] are usable in `RUN` without an `ARG`
//! line and are then left out of the cache key and history.
//!
//! **Expansion** — call [`Word::expand`] (or [`expand`]) with [`Directives::escape`] on exactly
//! these values, with the scope at that instruction:
//!
//! | instruction | expanded | not expanded |
//! |---|---|---|
//! | `FROM` | image, `--platform` (global scope only) | alias |
//! | `ADD`/`COPY` | sources, destination, `--from`, `--chown`, `--chmod`, `--checksum`; heredoc bodies with `expand` via [`expand_heredoc`] | heredoc names |
//! | `ENV`, `LABEL` | keys and values (also removes their quotes: always expand, even without `$`) | |
//! | `ARG` | defaults | names |
//! | `EXPOSE`, `VOLUME`, `WORKDIR`, `USER`, `STOPSIGNAL` | every word | |
//! | `RUN` | `--mount` fields `target`, `source`, `from`, `id`, `env` | the command (shell form is the shell's job, exec form is literal), heredocs |
//! | `CMD`, `ENTRYPOINT`, `SHELL`, `HEALTHCHECK`, `MAINTAINER` | nothing | everything |
//! | `ONBUILD` | nothing now: store [`Onbuild::expression`] in the image config; it runs in child builds | |
//!
//! **Shell form.** `RUN`/`CMD`/`ENTRYPOINT` in shell form run as the stage's `SHELL` (default
//! `["/bin/sh", "-c"]`) plus the text. `RUN` with heredocs: if the command is exactly one
//! heredoc marker (`RUN <<EOF`), the body is the script (`shell + [body]`; a body starting
//! with `#!` is written to a file and executed instead); otherwise the command passed to the
//! shell is the text, then for every heredoc `"\n" + body + name` (the shell handles the
//! heredoc syntax itself). Chomped bodies: use [`Heredoc::body`].
//!
//! **Other checks that need the build**: `FROM --platform` must be the host platform; `COPY
//! --from`/`--mount=from=` name a stage (by name or index, only earlier ones), or else an
//! image; `FROM <stage name>` builds on that stage; `EXPOSE` values must be `port[/proto]` or
//! a range after expansion; `VOLUME`/`WORKDIR` must not be empty after expansion; a relative
//! `WORKDIR` is relative to the previous one.

pub mod chmod;
pub mod context_files;
mod expand;
mod git_ref;
mod history;
pub mod ignore;
mod instructions;
mod lines;
mod lower;
mod parse;
mod words;

pub use expand::{Error as ExpandError, expand, expand_heredoc};
pub use git_ref::GitRef;
pub use instructions::*;
pub use lower::{
    BaseConfig, DockerfileOptions, Fetch, Fetcher, NamedContext, ResolveBase, absolute,
    base_references, lower, with_base_configs,
};

use strata_plan::{Diagnostic, FileId};

/// The label Docker documents as `MAINTAINER`'s replacement (`LABEL maintainer="..."`), named
/// in the deprecation warning.
pub const MAINTAINER_LABEL: &str = "maintainer";

/// The build args Docker predefines for proxies: usable without an `ARG` line, and left out
/// of the image history and cache key unless declared with `ARG`.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Parses a Dockerfile (`file` is its id in the [`SourceMap`](strata_plan::SourceMap) the
/// spans point into).
///
/// # Errors
/// The first problem found, as a [`Diagnostic`] with the span of the offending text: bad
/// directives, unknown instructions, missing or extra arguments, unknown or duplicate flags,
/// bad `--mount`s, unterminated heredocs, instructions before the first `FROM`, duplicate
/// stage names. A line of any length is fine; parsing is linear in the size of the text.
pub fn parse(file: FileId, text: &str) -> Result<Dockerfile, Box<Diagnostic>> {
    parse::parse(file, text)
}

impl Word {
    /// [`expand`]s the word with `vars`, turning an error into a diagnostic at the word.
    ///
    /// # Errors
    /// An unterminated quote, a bad or unsupported `${...}`, or `${VAR?}` with VAR unset.
    pub fn expand(
        &self,
        escape: char,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, Box<Diagnostic>> {
        expand(&self.text, escape, vars).map_err(|e| {
            let help = match e {
                ExpandError::Unsupported { .. } => {
                    "expand the value in a RUN step instead, where the shell supports it"
                }
                ExpandError::UnterminatedQuote { .. } => {
                    "close the quote, or escape it with the escape character"
                }
                _ => "write `${NAME}`, `${NAME:-default}` or `${NAME:+alternative}`",
            };
            Box::new(
                Diagnostic::new(
                    format!("cannot expand `{}`: {e}", self.text),
                    Some(self.span),
                )
                .help(help),
            )
        })
    }
}

/// An OS/architecture pair, as in `linux/arm64` or `linux/arm/v7`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// GOARCH style: `amd64`, `arm64`, `arm`, `386`, `ppc64le`, `s390x`, `riscv64`.
    pub architecture: String,
    /// `v7` for `arm`, empty otherwise.
    pub variant: String,
}

impl Platform {
    /// The platform strata runs on (builds are always native).
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", ""),
            "x86" => ("386", ""),
            "aarch64" => ("arm64", ""),
            "arm" => ("arm", "v7"),
            "powerpc64" => ("ppc64le", ""),
            "s390x" => ("s390x", ""),
            "riscv64" => ("riscv64", ""),
            "loongarch64" => ("loong64", ""),
            other => (other, ""),
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: variant.to_string(),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// The automatic platform args BuildKit defines in the global scope (and, re-declared with
/// a bare `ARG`, in stages): `BUILDPLATFORM`, `BUILDOS`, `BUILDARCH`, `BUILDVARIANT` for the
/// build platform and `TARGETPLATFORM`, `TARGETOS`, `TARGETARCH`, `TARGETVARIANT` for the
/// target. Strata builds natively, so both are usually [`Platform::host`].
pub fn platform_args(build: &Platform, target: &Platform) -> Vec<(&'static str, String)> {
    vec![
        ("BUILDPLATFORM", build.to_string()),
        ("BUILDOS", build.os.clone()),
        ("BUILDARCH", build.architecture.clone()),
        ("BUILDVARIANT", build.variant.clone()),
        ("TARGETPLATFORM", target.to_string()),
        ("TARGETOS", target.os.clone()),
        ("TARGETARCH", target.architecture.clone()),
        ("TARGETVARIANT", target.variant.clone()),
    ]
}

#[cfg(test)]
mod tests;
