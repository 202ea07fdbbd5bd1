//! `strata build`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use strata::ops::build::{BuildOptions, build};
use strata::ops::debug::DebugIo;
use strata::worker::WorkerOptions;

use crate::args::{NetworkArg, Progress};
use crate::render::progress;

/// Arguments of `strata build`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Images to build (with the images they are based on); all when none are given.
    pub images: Vec<String>,
    /// The directory of the config.
    #[arg(long, short = 'C', default_value = ".")]
    pub dir: PathBuf,
    /// The config file [default: strata.yaml, strata.yml, werf.yaml or werf.yml in --dir].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How to show progress.
    #[arg(long, value_enum, default_value_t)]
    pub progress: Progress,
    /// Images built at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Layer compression: of the layers pushed (`--push`; stored layers in another compression
    /// are converted), and of the layers built [default: gzip for pushed layers, zstd for
    /// stored ones, which are converted when pushed or exported].
    #[arg(long, value_parser = ["zstd", "gzip", "none"])]
    pub compression: Option<String>,
    /// Network of build containers.
    #[arg(long, value_enum, default_value_t)]
    pub network: NetworkArg,
    /// Build git mappings from the work tree, uncommitted and untracked files included.
    #[arg(long)]
    pub dev: bool,
    /// werf's loose giterminism: allow `mount: fromPath` and `build_dir` without
    /// werf-giterminism.yaml.
    #[arg(long, env = "WERF_LOOSE_GITERMINISM")]
    pub loose_giterminism: bool,
    /// Do not scan the work tree for uncommitted changes to report (a clean CI checkout has
    /// none, and the scan stats every mapped file).
    #[arg(long)]
    pub no_dirty_check: bool,
    /// The deployment environment's name: `.Env` in config templates (werf's --env).
    #[arg(long, default_value = "")]
    pub env: String,
    /// Introspection and the debugger.
    #[command(flatten)]
    pub debug: super::build_args::DebugArgs,
    /// Building a Dockerfile.
    #[command(flatten)]
    pub dockerfile: super::build_args::DockerfileArgs,
    /// Share stages through this registry repository: stages found there are not built,
    /// stages built are published (werf's --repo).
    #[arg(long, value_name = "REPO")]
    pub repo: Option<String>,
    /// Push the built images: a Dockerfile's to its -t name, a config's to REPO:IMAGE of --repo.
    #[arg(long)]
    pub push: bool,
    /// Hand the built images to a running docker (`docker load`, its `DOCKER_HOST`) or podman.
    #[arg(long, value_name = "ENGINE", num_args = 0..=1, default_missing_value = "docker",
          value_parser = ["docker", "podman"])]
    pub load: Option<String>,
}

/// Builds, rendering progress on stderr.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    let push = push_targets(&args)?;
    let dockerfile = args.dockerfile.options(&args.images)?;
    let options = BuildOptions {
        dir: args.dir,
        config: args.config,
        images: if args.dockerfile.file.is_some() {
            Vec::new()
        } else {
            args.images.clone()
        },
        parallel: args.parallel.max(1),
        dev: args.dev,
        loose_giterminism: args.loose_giterminism,
        no_dirty_check: args.no_dirty_check,
        env: args.env,
        push,
        push_compression: args.compression.as_deref().unwrap_or("gzip").parse()?,
        load: args.load.as_deref().map(str::parse).transpose()?,
        repo: args.repo,
        dockerfile,
        debug: args.debug.into(),
        worker: WorkerOptions {
            compression: args.compression.as_deref().unwrap_or("zstd").parse()?,
            network: args.network.into(),
            remote: None,
            secrets: args.dockerfile.secrets()?,
            allow_insecure: args.dockerfile.allow_insecure(),
        },
    };
    let sink = progress::for_mode(args.progress);
    let stdin = std::io::stdin();
    let (mut input, mut output) = (stdin.lock(), std::io::stdout());
    let io = DebugIo {
        input: &mut input,
        output: &mut output,
    };
    let result = build(
        ctx,
        &options,
        sink.as_ref(),
        &AtomicBool::new(false),
        Some(io),
    );
    sink.finish();
    result.map(|_| 0)
}

/// Where `--push` sends the built images.
fn push_targets(args: &Args) -> anyhow::Result<Vec<String>> {
    if !args.push {
        return Ok(Vec::new());
    }
    match (&args.dockerfile.tag, &args.repo) {
        (Some(tag), _) => Ok(vec![tag.clone()]),
        (None, Some(repo)) => Ok(vec![format!("{repo}:{{image}}")]),
        (None, None) => {
            anyhow::bail!("--push needs a registry name: -t REGISTRY/NAME:TAG, or --repo")
        }
    }
}
