//! Flag groups of `strata build`: looking inside builds, and building a Dockerfile.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use strata::ops::debug::{DebugOptions, IntrospectTarget};
use strata_frontend::dockerfile::DockerfileOptions;

/// Introspection and the debugger.
#[derive(Clone, Debug, clap::Args)]
pub struct DebugArgs {
    /// Open a shell in a stage once it is built or reused: IMAGE/STAGE, STAGE or */STAGE (every
    /// image), ~/STAGE (the nameless image). Repeatable.
    #[arg(long, value_name = "IMAGE/STAGE")]
    pub introspect_stage: Vec<IntrospectTarget>,
    /// On a failure, open a shell in the state the failing command left.
    #[arg(long)]
    pub introspect_error: bool,
    /// On a failure, open a shell in the state before the failed stage ran anything.
    #[arg(long)]
    pub introspect_before_error: bool,
    /// On a failure, open the debugger: inspect, rerun, diff, edit your files and `reload`.
    #[arg(long)]
    pub debugger: bool,
    /// Run the debugger's shell in this image, with the failed state mounted at /debugroot.
    #[arg(long, value_name = "IMAGE", requires = "debugger")]
    pub debugger_image: Option<String>,
    /// Pause the build in the debugger before a step: IMAGE/STAGE, STAGE, FILE:LINE (a
    /// Dockerfile instruction, a line of a stage script), on-fail (--debugger) or all (every
    /// step); cached steps too. Repeatable. At a pause: next, continue, break, shell, exec.
    #[arg(long = "break", value_name = "SPEC")]
    pub breaks: Vec<strata::ops::step::BreakSpec>,
}

impl From<DebugArgs> for DebugOptions {
    fn from(a: DebugArgs) -> DebugOptions {
        use strata::ops::step::BreakSpec;
        // Kept unless the monitor has a terminal, where the user looks at it now.
        let monitor = a.debugger || a.breaks.contains(&BreakSpec::OnFail);
        DebugOptions {
            introspect: a.introspect_stage,
            introspect_error: a.introspect_error,
            introspect_before_error: a.introspect_before_error,
            debugger: a.debugger,
            debugger_image: a.debugger_image,
            breaks: a.breaks,
            keep_failures: !(monitor && std::io::stdin().is_terminal()),
        }
    }
}

/// Building a Dockerfile.
#[derive(Debug, clap::Args)]
pub struct DockerfileArgs {
    /// Build this Dockerfile (`-` reads it from stdin); the first argument after the flags is
    /// then the context directory (default: the Dockerfile's directory). Without -f, a context
    /// directory (the first argument, else --dir) holding a Dockerfile and no strata.yaml or
    /// werf.yaml builds its Dockerfile, as `docker build CONTEXT` does.
    #[arg(long = "file", short = 'f', value_name = "DOCKERFILE")]
    pub file: Option<PathBuf>,
    /// The name to tag the Dockerfile's target with [default: the context directory's name];
    /// with --push it is also where the image is pushed. Repeatable: every name is tagged
    /// (and pushed).
    #[arg(long, short = 't', value_name = "NAME")]
    pub tag: Vec<String>,
    /// The Dockerfile stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// A build argument `NAME=value`. Repeatable.
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    pub build_arg: Vec<String>,
    /// A secret for `RUN --mount=type=secret`: `id=ID,src=FILE`, `id=ID,env=VAR`, or `id=ID`
    /// (the variable ID when set, else the file ID). Repeatable.
    #[arg(long, value_name = "id=ID,src=FILE|env=VAR")]
    pub secret: Vec<String>,
    /// An ssh agent for `RUN --mount=type=ssh`: `default` (`$SSH_AUTH_SOCK`), `ID` (the same
    /// agent under that id) or `ID=SOCKET`. Repeatable.
    #[arg(long, value_name = "default|ID[=SOCKET]")]
    pub ssh: Vec<String>,
    /// Build every stage again, reusing nothing built before (the results replace the
    /// cached ones).
    #[arg(long)]
    pub no_cache: bool,
    /// Build this stage again, and the stages built on it or copying from it. Repeatable.
    #[arg(long, value_name = "STAGE")]
    pub no_cache_filter: Vec<String>,
    /// A named context `NAME=DIR` or `NAME=docker-image://REF`: what `FROM NAME`, `COPY
    /// --from=NAME` and `RUN --mount=from=NAME` mean (a directory: for COPY --from); not
    /// `target:` (a bake file's target, refused as by docker buildx build). Repeatable.
    #[arg(long, value_name = "NAME=DIR|docker-image://REF")]
    pub build_context: Vec<String>,
    /// Pull the base images from their registries even when the store has them.
    #[arg(long)]
    pub pull: bool,
    /// Where the image goes besides the store: `type=local,dest=DIR` (or just `DIR`),
    /// `type=tar,dest=FILE` (the file system), `type=oci,dest=FILE`, `type=docker[,dest=FILE]`
    /// (without dest: `docker load`), `type=image|registry,name=REF`, `type=cacheonly` (build
    /// and cache, export nothing); `dest=-` is stdout. Repeatable.
    #[arg(long, short = 'o', value_name = "type=TYPE,dest=PATH")]
    pub output: Vec<strata::ops::output::Output>,
    /// Grant an entitlement (BuildKit's --allow): `security.insecure` lets the Dockerfile's
    /// `RUN --security=insecure` steps run with all capabilities and no seccomp.
    #[arg(long, value_name = "ENTITLEMENT", value_enum)]
    pub allow: Vec<Entitlement>,
    /// Print only the built image's id (its config digest) on stdout, no progress.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Write the built image's id (its config digest) to this file.
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// The platform to build for: only this machine's (`linux/amd64` on x86-64).
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// A label `KEY=VALUE` on the built image. Repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// An `/etc/hosts` entry `NAME:IP` (or `NAME=IP`) of the build's containers. Repeatable.
    #[arg(long, value_name = "NAME:IP")]
    pub add_host: Vec<String>,
}

/// A Dockerfile to build and how.
pub struct DockerfileBuild {
    /// The Dockerfile (a copy of stdin's for `-f -`).
    pub file: PathBuf,
    /// The frontend's options.
    pub options: DockerfileOptions,
    /// Names tagged besides `options.tag` (the further `-t`).
    pub more_tags: Vec<String>,
    /// Holds stdin's Dockerfile while the build reads it.
    pub _stdin: Option<tempfile::TempDir>,
}

/// An entitlement a build may be granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Entitlement {
    /// All capabilities and no seccomp for the steps that ask (`RUN --security=insecure`).
    #[value(name = "security.insecure")]
    SecurityInsecure,
}

impl DockerfileArgs {
    /// The Dockerfile to build (with its options): the one `-f` names, else the Dockerfile of
    /// the context directory (`positional`'s first, else `dir`) when no config is there.
    /// `None`: a stapel config builds (and the Dockerfile-only flags are refused).
    pub fn options(
        &self,
        dir: &Path,
        config_given: bool,
        positional: &[String],
    ) -> anyhow::Result<Option<DockerfileBuild>> {
        let (file, context) = match &self.file {
            Some(file) => {
                let context = match positional.first() {
                    Some(dir) => PathBuf::from(dir),
                    None if file == Path::new("-") => {
                        anyhow::bail!(
                            "-f - reads the Dockerfile from stdin: name the context directory too (strata build -f - .)"
                        )
                    }
                    None => file
                        .parent()
                        .filter(|p| !p.as_os_str().is_empty())
                        .unwrap_or(Path::new("."))
                        .to_path_buf(),
                };
                (file.clone(), context)
            }
            None => {
                let context = positional
                    .first()
                    .map(PathBuf::from)
                    .filter(|p| p.is_dir())
                    .unwrap_or_else(|| dir.to_path_buf());
                let has_config = strata_frontend::CONFIG_NAMES
                    .iter()
                    .any(|n| context.join(n).exists());
                if config_given || has_config || !context.join("Dockerfile").is_file() {
                    if !self.tag.is_empty()
                        || self.target.is_some()
                        || self.quiet
                        || self.iidfile.is_some()
                        || !self.label.is_empty()
                        || self.no_cache
                        || !self.no_cache_filter.is_empty()
                        || !self.output.is_empty()
                    {
                        anyhow::bail!(
                            "-t, --target, -q, --iidfile, --label, --no-cache(-filter) and -o are for Dockerfile builds: give -f DOCKERFILE, or a context directory with a Dockerfile and no strata.yaml/werf.yaml"
                        );
                    }
                    return Ok(None);
                }
                (context.join("Dockerfile"), context)
            }
        };
        if let Some(platform) = &self.platform {
            let host = strata_frontend::dockerfile::Platform::host().to_string();
            if *platform != host {
                anyhow::bail!(
                    "--platform {platform}: strata builds for this machine's platform only ({host})"
                );
            }
        }
        let context = context
            .canonicalize()
            .with_context(|| format!("the build context {} does not exist", context.display()))?;
        let (file, stdin) = if file == Path::new("-") {
            let dir = tempfile::tempdir().context("make a directory for stdin's Dockerfile")?;
            let copy = dir.path().join("Dockerfile");
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut text)
                .context("read the Dockerfile from stdin")?;
            std::fs::write(&copy, text).with_context(|| format!("write {}", copy.display()))?;
            (copy, Some(dir))
        } else {
            (file, None)
        };
        let tag = match self.tag.first() {
            Some(n) => n.clone(),
            None => context
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "image".into()),
        };
        let build_args = self
            .build_arg
            .iter()
            .map(|a| match a.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (a.clone(), std::env::var(a).unwrap_or_default()),
            })
            .collect();
        Ok(Some(DockerfileBuild {
            file,
            options: DockerfileOptions {
                context,
                target: self.target.clone(),
                build_args,
                tag,
                allow_insecure: self.allow_insecure(),
                labels: self
                    .label
                    .iter()
                    .map(|l| {
                        let (k, v) = l.split_once('=').unwrap_or((l, ""));
                        (k.to_string(), v.to_string())
                    })
                    .collect(),
                no_cache: self.no_cache,
                no_cache_filter: self.no_cache_filter.clone(),
                build_contexts: self
                    .build_context
                    .iter()
                    .map(|c| {
                        let (name, value) = c.split_once('=').with_context(|| {
                            format!(
                                "--build-context {c}: expected NAME=DIR, NAME=docker-image://REF or NAME=oci-layout://DIR"
                            )
                        })?;
                        let context = value
                            .parse()
                            .map_err(|e| anyhow::anyhow!("--build-context {c}: {e}"))?;
                        Ok((name.to_string(), context))
                    })
                    .collect::<anyhow::Result<_>>()?,
                ..Default::default()
            },
            more_tags: self.tag.iter().skip(1).cloned().collect(),
            _stdin: stdin,
        }))
    }

    /// `--add-host NAME:IP` values.
    pub fn add_hosts(&self) -> anyhow::Result<Vec<(String, std::net::IpAddr)>> {
        self.add_host
            .iter()
            .map(|h| {
                // docker splits at the first `=`, else the first `:` (an IPv6 address has more).
                let (name, ip) = h
                    .split_once('=')
                    .or_else(|| h.split_once(':'))
                    .with_context(|| format!("--add-host {h}: expected NAME:IP"))?;
                let ip = ip.trim_start_matches('[').trim_end_matches(']');
                // docker's name for the host as its containers reach it; strata's build
                // containers share the host's network, where that is the loopback address.
                let ip = match ip {
                    "host-gateway" => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                    _ => ip.parse().with_context(|| {
                        format!("--add-host {h}: `{ip}` is not an IP address or host-gateway")
                    })?,
                };
                Ok((name.to_string(), ip))
            })
            .collect()
    }

    /// `--ssh` values: agent sockets by id.
    pub fn ssh(&self) -> anyhow::Result<Vec<(String, PathBuf)>> {
        self.ssh
            .iter()
            .map(|s| {
                let (id, socket) = match s.split_once('=') {
                    Some((id, path)) => (id, PathBuf::from(path)),
                    None => (
                        s.as_str(),
                        std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from).with_context(
                            || format!("--ssh {s}: SSH_AUTH_SOCK is not set (start an ssh-agent, or give ID=SOCKET)"),
                        )?,
                    ),
                };
                let meta = std::fs::metadata(&socket)
                    .with_context(|| format!("--ssh {s}: cannot read {}", socket.display()))?;
                if !std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) {
                    anyhow::bail!(
                        "--ssh {s}: {} is not an agent's socket (strata forwards agents; load keys with ssh-add)",
                        socket.display()
                    );
                }
                let socket = socket
                    .canonicalize()
                    .with_context(|| format!("--ssh {s}: cannot read {}", socket.display()))?;
                Ok((id.to_string(), socket))
            })
            .collect()
    }

    /// Whether `--allow security.insecure` was given.
    pub fn allow_insecure(&self) -> bool {
        self.allow.contains(&Entitlement::SecurityInsecure)
    }

    /// `--secret` values: `id=ID,src=FILE` (`type=file`), `id=ID,env=VAR` (`type=env`), or
    /// `id=ID` alone (the variable `ID` when set, else the file `ID`), as buildx reads them. A
    /// variable's value is written to a file in a directory made into `holder` on first need,
    /// which lives as long as the build.
    pub fn secrets(
        &self,
        holder: &mut Option<tempfile::TempDir>,
    ) -> anyhow::Result<Vec<(String, PathBuf)>> {
        let mut out = Vec::new();
        for (n, s) in self.secret.iter().enumerate() {
            let (mut id, mut src, mut env, mut kind) = (None, None, None, None);
            for part in s.split(',') {
                match part.split_once('=') {
                    Some(("id", v)) => id = Some(v.to_string()),
                    Some(("src" | "source", v)) => src = Some(v.to_string()),
                    Some(("env", v)) => env = Some(v.to_string()),
                    Some(("type", v @ ("file" | "env"))) => kind = Some(v),
                    _ => anyhow::bail!("--secret {s}: expected id=ID,src=FILE or id=ID,env=VAR"),
                }
            }
            let id = id.with_context(|| format!("--secret {s}: no id=ID"))?;
            // buildx: `type=env,src=VAR` names the variable too.
            if kind == Some("env") && env.is_none() {
                env = src.take().or_else(|| Some(id.clone()));
            }
            if src.is_none() && env.is_none() && kind != Some("file") {
                env = std::env::var_os(&id).is_some().then(|| id.clone());
            }
            let path = match (env, src) {
                (Some(var), None) => {
                    let value = std::env::var(&var)
                        .with_context(|| format!("--secret {s}: the variable {var} is not set"))?;
                    let dir = match holder {
                        Some(dir) => dir,
                        None => holder.insert(
                            tempfile::tempdir().context("make a directory for --secret values")?,
                        ),
                    };
                    let file = dir.path().join(format!("secret-{n}"));
                    std::fs::write(&file, value)
                        .with_context(|| format!("--secret {s}: write {}", file.display()))?;
                    file
                }
                (None, src) => {
                    let src = PathBuf::from(src.unwrap_or_else(|| id.clone()));
                    src.canonicalize()
                        .with_context(|| format!("--secret {s}: cannot read {}", src.display()))?
                }
                (Some(_), Some(_)) => anyhow::bail!("--secret {s}: give src= or env=, not both"),
            };
            out.push((id, path));
        }
        Ok(out)
    }
}
