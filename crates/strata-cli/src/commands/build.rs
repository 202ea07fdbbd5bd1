//! `strata build`.

use std::path::PathBuf;

use anyhow::Context as _;

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
    /// Layer compression: of the layers pushed (`--push`), exported or loaded, each made when
    /// a layer first leaves the machine and remembered, and of the stages published to
    /// `--repo` [default: gzip for pushed layers, zstd for `--repo` stages].
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
    /// Say on stderr, once built, why each stage was built (the first input that differs from
    /// the stage the image had before) or where a reused one came from; with `--progress
    /// json` as one `{"event":"explain","stages":[..]}` line.
    #[arg(long)]
    pub explain: bool,
    /// Hand the built images to a running docker (`docker load`, its `DOCKER_HOST`) or podman.
    #[arg(long, value_name = "ENGINE", num_args = 0..=1, default_missing_value = "docker",
          value_parser = ["docker", "podman"])]
    pub load: Option<String>,
}

/// Builds, rendering progress on stderr.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    let prepared = prepare(&args)?;
    let options = &prepared.options;
    let quiet = args.dockerfile.quiet;
    let sink = progress::for_mode(if quiet {
        Progress::Quiet
    } else {
        args.progress
    });
    // Not locked: a paused build reads it on the thread building the image.
    let (mut input, mut output) = (std::io::BufReader::new(std::io::stdin()), std::io::stdout());
    let io = DebugIo {
        input: &mut input,
        output: &mut output,
    };
    let cancel = crate::cancel::on_signals()?;
    let result = build(ctx, options, sink.as_ref(), &cancel, Some(io));
    sink.finish();
    let report = match result {
        Ok(report) => report,
        // JSON progress keeps its stream JSON only: the failure is one more event.
        Err(e) if args.progress == Progress::Json && !quiet => {
            return Ok(crate::render::error::report_json(&e));
        }
        Err(e) => return Err(e),
    };
    if args.explain {
        let stages = strata::ops::explain::build(ctx, &report)?;
        if args.progress == Progress::Json && !quiet {
            // The JSON stream stays JSON only: the explanation is one more event.
            let stages = crate::render::explain::json(&stages);
            eprintln!(
                "{}",
                serde_json::json!({"event": "explain", "stages": stages})
            );
        } else {
            eprint!("{}", crate::render::explain::text(&stages));
        }
    }
    if quiet || args.dockerfile.iidfile.is_some() {
        // docker's image id: the digest of the target's config.
        let target = report
            .images
            .iter()
            .find(|i| i.tag.is_some())
            .ok_or_else(|| anyhow::anyhow!("the build tagged no image"))?;
        let id = strata::image::StoredImage::load(&ctx.store, &target.manifest)?
            .manifest
            .config
            .digest;
        if quiet {
            println!("{id}");
        }
        if let Some(file) = &args.dockerfile.iidfile {
            std::fs::write(file, id.to_string())
                .with_context(|| format!("--iidfile: write {}", file.display()))?;
        }
    }
    Ok(0)
}

/// The build options of some arguments, with the files they name that must outlive the build.
pub struct Prepared {
    /// The options.
    pub options: BuildOptions,
    /// The files of `--secret id=..,env=VAR` values, and the Dockerfile `-f -` read from stdin.
    _files: (Option<tempfile::TempDir>, Option<tempfile::TempDir>),
}

/// The build options of `args`.
pub fn prepare(args: &Args) -> anyhow::Result<Prepared> {
    // Made only for `env=` values: a build without them creates no directory.
    let mut secret_files = None;
    let mut dockerfile = args
        .dockerfile
        .options(&args.dir, args.config.is_some(), &args.images)?;
    let options = BuildOptions {
        dir: args.dir.clone(),
        config: args.config.clone(),
        images: if dockerfile.is_some() {
            Vec::new()
        } else {
            args.images.clone()
        },
        parallel: args.parallel.max(1),
        dev: args.dev,
        loose_giterminism: args.loose_giterminism,
        no_dirty_check: args.no_dirty_check,
        env: args.env.clone(),
        push: push_targets(args, dockerfile.is_some())?,
        push_compression: args.compression.as_deref().unwrap_or("gzip").parse()?,
        load: args.load.as_deref().map(str::parse).transpose()?,
        repo: args.repo.clone(),
        more_tags: dockerfile
            .as_ref()
            .map(|d| d.more_tags.clone())
            .unwrap_or_default(),
        dockerfile: dockerfile
            .as_ref()
            .map(|d| (d.file.clone(), d.options.clone())),
        debug: args.debug.clone().into(),
        outputs: args.dockerfile.output.clone(),
        worker: WorkerOptions {
            compression: args.compression.as_deref().unwrap_or("zstd").parse()?,
            network: args.network.into(),
            remote: None,
            secrets: args.dockerfile.secrets(&mut secret_files)?,
            ssh: args.dockerfile.ssh()?,
            pull: args.dockerfile.pull,
            allow_insecure: args.dockerfile.allow_insecure(),
            add_hosts: args.dockerfile.add_hosts()?,
        },
    };
    let stdin = dockerfile.as_mut().and_then(|d| d._stdin.take());
    Ok(Prepared {
        options,
        _files: (secret_files, stdin),
    })
}

/// Where `--push` sends the built images.
fn push_targets(args: &Args, dockerfile: bool) -> anyhow::Result<Vec<String>> {
    if !args.push {
        return Ok(Vec::new());
    }
    match (&args.dockerfile.tag[..], &args.repo) {
        (tags @ [_, ..], _) if dockerfile => Ok(tags.to_vec()),
        (_, Some(repo)) => Ok(vec![format!("{repo}:{{image}}")]),
        _ => {
            anyhow::bail!("--push needs a registry name: -t REGISTRY/NAME:TAG, or --repo")
        }
    }
}
