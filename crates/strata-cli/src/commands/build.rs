//! `strata build`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use strata::ops::build::{BuildOptions, build};
use strata::ops::debug::{DebugIo, DebugOptions, IntrospectTarget};
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
    /// Layer compression.
    #[arg(long, default_value = "zstd", value_parser = ["zstd", "gzip", "none"])]
    pub compression: String,
    /// Network of build containers.
    #[arg(long, value_enum, default_value_t)]
    pub network: NetworkArg,
    /// Build git mappings from the work tree, uncommitted and untracked files included.
    #[arg(long)]
    pub dev: bool,
    /// Do not scan the work tree for uncommitted changes to report (a clean CI checkout has
    /// none, and the scan stats every mapped file).
    #[arg(long)]
    pub no_dirty_check: bool,
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
    /// Share stages through this registry repository: stages found there are not built,
    /// stages built are published (werf's --repo).
    #[arg(long, value_name = "REPO")]
    pub repo: Option<String>,
    /// Push the final images to REF once built (`{image}` stands for the image's name).
    /// Repeatable.
    #[arg(long, value_name = "REF")]
    pub tag: Vec<String>,
    /// Push the final images to the --repo repository as REPO:IMAGE.
    #[arg(long, requires = "repo")]
    pub push: bool,
}

/// Builds, rendering progress on stderr.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    let options = BuildOptions {
        dir: args.dir,
        config: args.config,
        images: args.images,
        parallel: args.parallel.max(1),
        dev: args.dev,
        no_dirty_check: args.no_dirty_check,
        push: args
            .tag
            .iter()
            .cloned()
            .chain(
                args.push
                    .then(|| format!("{}:{{image}}", args.repo.clone().unwrap_or_default())),
            )
            .collect(),
        repo: args.repo,
        debug: DebugOptions {
            introspect: args.introspect_stage,
            introspect_error: args.introspect_error,
            introspect_before_error: args.introspect_before_error,
            debugger: args.debugger,
            debugger_image: args.debugger_image,
        },
        worker: WorkerOptions {
            compression: args.compression.parse()?,
            network: args.network.into(),
            remote: None,
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
