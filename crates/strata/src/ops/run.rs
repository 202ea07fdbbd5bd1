//! `strata run IMAGE [-- CMD...]`: run a command in a throwaway container of an image.

use anyhow::{Context as _, bail};
use strata_sandbox::{ContainerSpec, Network, ProcessSpec};

use crate::Context;
use crate::image::{self, StoredImage};
use crate::toolbox;
use crate::worker::{DEFAULT_PATH, RunDirs, host_files};

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The image reference.
    pub image: String,
    /// The command; replaces the image's CMD (its ENTRYPOINT stays), as `docker run` does.
    pub command: Vec<String>,
    /// Extra `NAME=value` variables.
    pub env: Vec<String>,
    /// The network.
    pub network: Network,
    /// Replaces the image's entrypoint (an empty string clears it), as `docker run --entrypoint`.
    pub entrypoint: Option<String>,
}

/// Runs the command (interactively when a terminal is attached); returns its exit code.
pub fn run(ctx: &Context, options: &RunOptions) -> anyhow::Result<i32> {
    let digest = image::resolve(&ctx.store, &options.image)?.with_context(|| {
        format!(
            "no image `{}` in the store (see `strata images`)",
            options.image
        )
    })?;
    let image = StoredImage::load(&ctx.store, &digest)?;
    let config = &image.config.config;
    let mut args = match &options.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => config.entrypoint.clone().unwrap_or_default(),
    };
    if options.command.is_empty() {
        args.extend(config.cmd.clone().unwrap_or_default());
    } else {
        args.extend(options.command.iter().cloned());
    }
    if args.is_empty() {
        bail!(
            "image `{}` has no entrypoint or command; give one after `--`",
            options.image
        );
    }
    let mut env = image.config.clone();
    if env.env_var("PATH").is_none() {
        env.set_env("PATH", DEFAULT_PATH);
    }
    for e in &options.env {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        env.set_env(k, v);
    }
    let scratch = ctx.store.scratch("run")?;
    let dirs = RunDirs::create(scratch.path())?;
    let mut mounts = vec![strata_sandbox::Mount {
        target: toolbox::MOUNT_POINT.into(),
        source: toolbox::ensure(&ctx.store)?,
        kind: strata_sandbox::MountKind::Bind { readonly: true },
        beneath: None,
    }];
    mounts.extend(host_files(&dirs.control)?);
    let spec = ContainerSpec {
        lowers: image.lowers(&ctx.store)?,
        upper: dirs.upper.clone(),
        work: dirs.work.clone(),
        scratch: dirs.sandbox.clone(),
        process: ProcessSpec {
            args,
            env: env.config.env,
            cwd: if config.working_dir.is_empty() {
                "/".into()
            } else {
                config.working_dir.clone()
            },
            user: config.user.clone(),
            terminal: false,
        },
        hostname: format!("strata-{}", digest.short(12)),
        mounts,
        network: options.network,
        security: strata_sandbox::Security::Sandbox,
    };
    let status = ctx.sandbox.run_interactive(&spec)?;
    Ok(status.code())
}
