//! `strata build`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use strata::ops::build::{BuildOptions, build};
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
}

/// Builds, rendering progress on stderr.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    let options = BuildOptions {
        dir: args.dir,
        config: args.config,
        images: args.images,
        parallel: args.parallel.max(1),
        dev: args.dev,
        worker: WorkerOptions {
            compression: args.compression.parse()?,
            network: args.network.into(),
        },
    };
    let sink = progress::for_mode(args.progress);
    let result = build(ctx, &options, sink.as_ref(), &AtomicBool::new(false));
    sink.finish();
    result.map(|_| 0)
}
