//! The typed instructions a Dockerfile parses to: one struct per instruction, every value with
//! the span of the text it came from.
//!
//! Values are kept *as written* wherever Docker expands them later ([`Word`]): quotes, escapes
//! and `$VAR`s are still in the text, and the lowering passes them through
//! [`Word::expand`](super::Word::expand) with the scope of the instruction. Values Docker never
//! expands (JSON arrays, `RUN`/`CMD`/`ENTRYPOINT` shell form, heredoc names, enumerations such
//! as `--network`) are already final.

use std::time::Duration;

use strata_plan::Span;

/// A piece of text as written in the Dockerfile and where it is.
///
/// For words Docker expands, `text` still holds quotes, escapes and variables: call
/// [`Word::expand`] with the instruction's scope. For exec-form (JSON) arguments it is the
/// decoded JSON string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    /// The text.
    pub text: String,
    /// Where it is (for a JSON string: the string literal with its quotes).
    pub span: Span,
}

/// A value that is final after parsing, with its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub span: Span,
}

/// The parser directives at the top of the file (`# syntax=`, `# escape=`, `# check=`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=<frontend image>`: recorded, strata always uses its own parser.
    pub syntax: Option<Spanned<String>>,
    /// The escape character: `\` (default) or `` ` `` (`# escape=`` ` ``).
    pub escape: char,
    /// Where `# escape=` was given.
    pub escape_span: Option<Span>,
    /// `# check=...` (BuildKit's lint configuration): recorded and ignored.
    pub check: Option<Spanned<String>>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            escape_span: None,
            check: None,
        }
    }
}

/// A parsed Dockerfile.
#[derive(Clone, Debug)]
pub struct Dockerfile {
    /// The parser directives.
    pub directives: Directives,
    /// `ARG`s before the first `FROM`: they are in scope of every `FROM` line (image and
    /// `--platform`) and, re-declared with a bare `ARG name` inside a stage, in that stage.
    pub global_args: Vec<Arg>,
    /// The build stages in file order; the last one is the target unless the user names one.
    pub stages: Vec<Stage>,
    /// Things that parse but deserve a word (empty continuation lines, `MAINTAINER`).
    pub warnings: Vec<strata_plan::Diagnostic>,
}

/// A build stage: a `FROM` and the instructions up to the next one.
#[derive(Clone, Debug)]
pub struct Stage {
    /// `AS name`, lower-cased as Docker does (referenced by `COPY --from`, `RUN
    /// --mount=from=` and later `FROM`s).
    pub name: Option<Spanned<String>>,
    /// The `FROM` line.
    pub from: From,
    /// The stage's instructions in order.
    pub instructions: Vec<Instruction>,
    /// From the `FROM` to the end of the last instruction.
    pub span: Span,
}

/// `FROM [--platform=P] image [AS name]`.
#[derive(Clone, Debug)]
pub struct From {
    /// The image (expanded with the global ARGs only), `scratch`, or a previous stage's name.
    pub image: Word,
    /// `AS name` as written (see [`Stage::name`] for the lower-cased name).
    pub alias: Option<Word>,
    /// `--platform=` (expanded with the global ARGs and the platform args).
    pub platform: Option<Word>,
    /// The whole instruction.
    pub span: Span,
}

/// One instruction inside a stage (or, for `ARG`, before the first `FROM`).
#[derive(Clone, Debug)]
pub enum Instruction {
    /// `RUN`.
    Run(Run),
    /// `CMD`.
    Cmd(Cmd),
    /// `ENTRYPOINT`.
    Entrypoint(Entrypoint),
    /// `SHELL`.
    Shell(Shell),
    /// `COPY`.
    Copy(Copy),
    /// `ADD`.
    Add(Add),
    /// `ENV`.
    Env(Env),
    /// `ARG`.
    Arg(Arg),
    /// `WORKDIR`.
    Workdir(Workdir),
    /// `USER`.
    User(User),
    /// `LABEL`.
    Label(Label),
    /// `EXPOSE`.
    Expose(Expose),
    /// `VOLUME`.
    Volume(Volume),
    /// `HEALTHCHECK`.
    Healthcheck(Healthcheck),
    /// `STOPSIGNAL`.
    StopSignal(StopSignal),
    /// `ONBUILD`.
    Onbuild(Onbuild),
    /// `MAINTAINER` (deprecated).
    Maintainer(Maintainer),
}

impl Instruction {
    /// The span of the whole instruction (continuation lines and heredoc bodies included).
    pub fn span(&self) -> Span {
        match self {
            Instruction::Run(i) => i.span,
            Instruction::Cmd(i) => i.span,
            Instruction::Entrypoint(i) => i.span,
            Instruction::Shell(i) => i.span,
            Instruction::Copy(i) => i.span,
            Instruction::Add(i) => i.span,
            Instruction::Env(i) => i.span,
            Instruction::Arg(i) => i.span,
            Instruction::Workdir(i) => i.span,
            Instruction::User(i) => i.span,
            Instruction::Label(i) => i.span,
            Instruction::Expose(i) => i.span,
            Instruction::Volume(i) => i.span,
            Instruction::Healthcheck(i) => i.span,
            Instruction::StopSignal(i) => i.span,
            Instruction::Onbuild(i) => i.span,
            Instruction::Maintainer(i) => i.span,
        }
    }

    /// The instruction's name in upper case (`"RUN"`).
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::Run(_) => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Shell(_) => "SHELL",
            Instruction::Copy(_) => "COPY",
            Instruction::Add(_) => "ADD",
            Instruction::Env(_) => "ENV",
            Instruction::Arg(_) => "ARG",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::User(_) => "USER",
            Instruction::Label(_) => "LABEL",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Volume(_) => "VOLUME",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::StopSignal(_) => "STOPSIGNAL",
            Instruction::Onbuild(_) => "ONBUILD",
            Instruction::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// A command in exec form (a JSON array) or shell form (the rest of the line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandLine {
    /// `["prog", "arg"]`: the decoded strings, never expanded.
    Exec(Vec<Word>),
    /// `prog arg`: the text after the instruction and its flags, continuation lines joined,
    /// run with the stage's `SHELL` (default `/bin/sh -c`). The frontend does not expand it:
    /// the shell does.
    Shell(Word),
}

/// A heredoc: `<<EOF` on the instruction line and the lines up to `EOF`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heredoc {
    /// The terminator word, quotes removed (`EOF` for `<<"EOF"`).
    pub name: String,
    /// The `<<EOF` word on the instruction line.
    pub word_span: Span,
    /// `<<-EOF`: leading tabs are stripped from the body lines and the terminator.
    pub chomp: bool,
    /// Whether the body is subject to variable expansion: false when any part of the name was
    /// quoted (`<<"EOF"`, `<<'EOF'`).
    pub expand: bool,
    /// `3<<EOF`: the file descriptor the shell redirects (only meaningful in `RUN`).
    pub fd: Option<u32>,
    /// The body lines as written, each with its line ending, without the terminator line.
    pub raw: String,
    /// The body and the terminator line.
    pub span: Span,
}

impl Heredoc {
    /// The body as the instruction sees it: with `<<-`, leading tabs stripped from every line.
    pub fn body(&self) -> String {
        if !self.chomp {
            return self.raw.clone();
        }
        self.raw
            .split_inclusive('\n')
            .map(|line| line.trim_start_matches('\t'))
            .collect()
    }
}

/// `RUN [--mount=...] [--network=...] [--security=...] command`.
#[derive(Clone, Debug)]
pub struct Run {
    /// The command. With heredocs it is the shell-form line that names them (`<<EOF`).
    pub command: CommandLine,
    /// Heredocs in the order of the line.
    pub heredocs: Vec<Heredoc>,
    /// `--mount=` flags in order.
    pub mounts: Vec<Mount>,
    /// `--network=`.
    pub network: Option<Spanned<Network>>,
    /// `--security=`.
    pub security: Option<Spanned<Security>>,
    /// The whole instruction.
    pub span: Span,
}

/// `RUN --network=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// `default`: the builder's default (a private network namespace with access out).
    Default,
    /// `none`: no network.
    None,
    /// `host`: the host's network (an entitlement in BuildKit).
    Host,
}

/// `RUN --security=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// `sandbox`: the default confinement.
    Sandbox,
    /// `insecure`: all capabilities, no seccomp (needs the `security.insecure` entitlement).
    Insecure,
}

/// `--mount=type=...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountType {
    /// A read-only (unless `rw`) view of the context, a stage or an image.
    Bind,
    /// A persistent cache directory keyed by `id` (default: the target).
    Cache,
    /// An empty tmpfs.
    Tmpfs,
    /// A secret file (or env var with `env=`).
    Secret,
    /// The SSH agent socket.
    Ssh,
}

/// `sharing=` of a cache mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// Concurrent builds use the cache at the same time (default).
    Shared,
    /// A concurrent build gets its own fresh cache.
    Private,
    /// A concurrent build waits.
    Locked,
}

/// One `RUN --mount=`. Path-like fields are [`Word`]s the lowering expands; the rest is
/// validated here and must be written literally.
#[derive(Clone, Debug)]
pub struct Mount {
    /// `type=` (default `bind`).
    pub kind: MountType,
    /// `target=` / `dst=` / `destination=`; required except for `secret` and `ssh`.
    pub target: Option<Word>,
    /// `source=` / `src=`: a path in `from` (bind, cache) or the secret's id source.
    pub source: Option<Word>,
    /// `from=`: a stage name/index or image (bind, cache).
    pub from: Option<Word>,
    /// `id=`: the cache id (default: the target), the secret or ssh id.
    pub id: Option<Word>,
    /// `sharing=` (cache only; `Some(Shared)` by default for caches).
    pub sharing: Option<Sharing>,
    /// Read-only: `ro`/`readonly`/`rw`/`readwrite`, defaulting to true for bind, secret and
    /// ssh mounts and false for cache and tmpfs.
    pub readonly: bool,
    /// `required` (secret, ssh): fail when the secret is not provided.
    pub required: bool,
    /// `mode=` (octal; cache, secret, ssh).
    pub mode: Option<u32>,
    /// `uid=` (cache, secret, ssh).
    pub uid: Option<u32>,
    /// `gid=` (cache, secret, ssh).
    pub gid: Option<u32>,
    /// `size=` in bytes (tmpfs).
    pub size: Option<u64>,
    /// `env=`: expose the secret as this environment variable (secret).
    pub env: Option<Word>,
    /// The whole `--mount=...` flag.
    pub span: Span,
}

/// `CMD`.
#[derive(Clone, Debug)]
pub struct Cmd {
    /// The command.
    pub command: CommandLine,
    /// The whole instruction.
    pub span: Span,
}

/// `ENTRYPOINT`.
#[derive(Clone, Debug)]
pub struct Entrypoint {
    /// The command.
    pub command: CommandLine,
    /// The whole instruction.
    pub span: Span,
}

/// `SHELL ["executable", "params"]` (JSON form only).
#[derive(Clone, Debug)]
pub struct Shell {
    /// The shell's argv prefix (non-empty).
    pub argv: Vec<Word>,
    /// The whole instruction.
    pub span: Span,
}

/// A source of `COPY`/`ADD`.
#[derive(Clone, Debug)]
pub enum Source {
    /// A path in the context (or stage), a URL or git address (`ADD`); may contain wildcards.
    Path(Word),
    /// `<<EOF`: a file named after the heredoc with the heredoc's body.
    Heredoc(Heredoc),
}

/// `COPY [--from=] [--chown=] [--chmod=] [--link] src... dest`.
#[derive(Clone, Debug)]
pub struct Copy {
    /// The sources (at least one).
    pub sources: Vec<Source>,
    /// The destination (a trailing `/` means a directory).
    pub dest: Word,
    /// `--from=`: stage name, stage index or image.
    pub from: Option<Word>,
    /// `--chown=user[:group]`.
    pub chown: Option<Word>,
    /// `--chmod=` (octal or symbolic).
    pub chmod: Option<Word>,
    /// `--link`.
    pub link: bool,
    /// `--parents`: each source lands at its path (below a `/./` in it, else from the
    /// context's root) under the destination.
    pub parents: bool,
    /// `--exclude=PATTERN` (repeatable): `.dockerignore`-style patterns, relative to each
    /// source directory (or a file source's directory), left out of the copy.
    pub exclude: Vec<Word>,
    /// The whole instruction.
    pub span: Span,
}

/// `ADD [--chown=] [--chmod=] [--link] [--keep-git-dir] [--checksum=] src... dest`.
#[derive(Clone, Debug)]
pub struct Add {
    /// The sources (at least one): context paths, URLs or git addresses.
    pub sources: Vec<Source>,
    /// The destination.
    pub dest: Word,
    /// `--chown=user[:group]`.
    pub chown: Option<Word>,
    /// `--chmod=`.
    pub chmod: Option<Word>,
    /// `--link`.
    pub link: bool,
    /// `--keep-git-dir` (git sources).
    pub keep_git_dir: bool,
    /// `--checksum=sha256:...` (URL sources).
    pub checksum: Option<Word>,
    /// `--exclude=PATTERN` (repeatable), as `COPY`'s.
    pub exclude: Vec<Word>,
    /// The whole instruction.
    pub span: Span,
}

/// `key=value` of `ENV` and `LABEL`.
#[derive(Clone, Debug)]
pub struct KeyValue {
    /// The key as written (expanded by the lowering).
    pub key: Word,
    /// The value as written (expanded, which also removes its quotes).
    pub value: Word,
}

/// `ENV a=b c=d` or the legacy `ENV a b c` (key `a`, value `b c`).
#[derive(Clone, Debug)]
pub struct Env {
    /// The variables in order.
    pub vars: Vec<KeyValue>,
    /// The whole instruction.
    pub span: Span,
}

/// One name of `ARG a b=c`.
#[derive(Clone, Debug)]
pub struct ArgDecl {
    /// The name (not expanded).
    pub name: Word,
    /// `=default` as written (expanded by the lowering); `None` for a bare `ARG name`.
    pub default: Option<Word>,
}

/// `ARG name[=default] ...`.
#[derive(Clone, Debug)]
pub struct Arg {
    /// The declarations in order.
    pub args: Vec<ArgDecl>,
    /// The whole instruction.
    pub span: Span,
}

/// `WORKDIR path`.
#[derive(Clone, Debug)]
pub struct Workdir {
    /// The rest of the line as written.
    pub path: Word,
    /// The whole instruction.
    pub span: Span,
}

/// `USER user[:group]`.
#[derive(Clone, Debug)]
pub struct User {
    /// The rest of the line as written.
    pub user: Word,
    /// The whole instruction.
    pub span: Span,
}

/// `LABEL a=b` (or legacy `LABEL a b`).
#[derive(Clone, Debug)]
pub struct Label {
    /// The labels in order.
    pub labels: Vec<KeyValue>,
    /// The whole instruction.
    pub span: Span,
}

/// `EXPOSE 80 443/tcp`.
#[derive(Clone, Debug)]
pub struct Expose {
    /// The ports as written (each expanded, then `port[/proto]` or a range).
    pub ports: Vec<Word>,
    /// The whole instruction.
    pub span: Span,
}

/// `VOLUME ["/a", "/b"]` or `VOLUME /a /b`.
#[derive(Clone, Debug)]
pub struct Volume {
    /// The paths (each expanded; empty after expansion is an error).
    pub paths: Vec<Word>,
    /// The whole instruction.
    pub span: Span,
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [options] CMD command`.
#[derive(Clone, Debug)]
pub struct Healthcheck {
    /// `None` for `HEALTHCHECK NONE` (disable the base image's check); the command otherwise
    /// (exec form becomes `["CMD", ...]`, shell form `["CMD-SHELL", text]`).
    pub test: Option<CommandLine>,
    /// `--interval=`.
    pub interval: Option<Spanned<Duration>>,
    /// `--timeout=`.
    pub timeout: Option<Spanned<Duration>>,
    /// `--start-period=`.
    pub start_period: Option<Spanned<Duration>>,
    /// `--start-interval=`.
    pub start_interval: Option<Spanned<Duration>>,
    /// `--retries=`.
    pub retries: Option<Spanned<u32>>,
    /// The whole instruction.
    pub span: Span,
}

/// `STOPSIGNAL signal`.
#[derive(Clone, Debug)]
pub struct StopSignal {
    /// The rest of the line as written.
    pub signal: Word,
    /// The whole instruction.
    pub span: Span,
}

/// `ONBUILD <instruction>`.
#[derive(Clone, Debug)]
pub struct Onbuild {
    /// The trigger, parsed (and validated) like a top-level instruction; never `ONBUILD`,
    /// `FROM` or `MAINTAINER`.
    pub trigger: Box<Instruction>,
    /// The trigger's text as Docker stores it in the image config's `OnBuild` list: the line
    /// after `ONBUILD`, then for every heredoc a newline, its body and its terminator.
    pub expression: String,
    /// The whole instruction.
    pub span: Span,
}

/// `MAINTAINER name` (deprecated): sets the image's `author` to the text as written (Docker
/// does not expand it).
#[derive(Clone, Debug)]
pub struct Maintainer {
    /// The rest of the line.
    pub name: Word,
    /// The whole instruction.
    pub span: Span,
}
