//! `strata run IMAGE [CMD...]`: run a command in a throwaway container of an image, as
//! `docker run --rm` does: the container's changes are gone when it exits.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use strata_sandbox::{Attach, ContainerSpec, Mount, MountKind, Network, ProcessSpec};

use crate::Context;
use crate::files::{self, FileWork};
use crate::image::StoredImage;
use crate::ops::images::lookup;
use crate::toolbox;
use crate::worker::{DEFAULT_PATH, RunDirs, host_files};

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The image: a tag or an image id.
    pub image: String,
    /// The command; replaces the image's CMD (its ENTRYPOINT stays), as `docker run` does.
    pub command: Vec<String>,
    /// Variables to set, `NAME=value`, over the image's.
    pub env: Vec<String>,
    /// The network.
    pub network: Network,
    /// Replaces the image's entrypoint (an empty string clears it), as `docker run --entrypoint`.
    pub entrypoint: Option<String>,
    /// Bind mounts, `HOST:CONTAINER[:ro|:rw]` (`docker run -v`); HOST must be an existing
    /// absolute path.
    pub volumes: Vec<String>,
    /// The working directory, created (owned by root) when the image lacks it, as docker's `-w`.
    pub workdir: Option<String>,
    /// The user, `name|uid[:group|gid]`, instead of the image's.
    pub user: Option<String>,
    /// Stdin and terminal (`-i`, `-t`).
    pub attach: Attach,
}

/// Runs the command and returns its exit code. A program that cannot be executed is a
/// [`strata_sandbox::Error::Exec`], which carries docker's exit code for it (127 when it is
/// not found, 126 when it is not executable).
pub fn run(ctx: &Context, options: &RunOptions) -> anyhow::Result<i32> {
    let named = lookup(ctx, &options.image)?.with_context(|| {
        format!(
            "no image `{}` in the store (see `strata images`)",
            options.image
        )
    })?;
    let image = StoredImage::load(&ctx.store, &named.manifest)?;
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
            "image `{}` has no entrypoint or command; give one after the image",
            options.image
        );
    }
    let mut env = image.config.clone();
    if env.env_var("PATH").is_none() {
        env.set_env("PATH", DEFAULT_PATH);
    }
    for e in &options.env {
        let (k, v) = e
            .split_once('=')
            .with_context(|| format!("-e `{e}`: give NAME=value"))?;
        env.set_env(k, v);
    }
    let mut mounts = vec![Mount {
        target: toolbox::MOUNT_POINT.into(),
        source: toolbox::ensure(&ctx.store)?,
        kind: MountKind::Bind { readonly: true },
        beneath: None,
    }];
    for volume in &options.volumes {
        mounts.push(parse_volume(volume)?);
    }
    let scratch = ctx.store.scratch("run")?;
    let dirs = RunDirs::create(scratch.path())?;
    mounts.extend(host_files(&dirs.control)?);
    let lowers = image.lowers(&ctx.store)?;
    let cwd = match (&options.workdir, config.working_dir.as_str()) {
        (Some(w), _) => {
            if !w.starts_with('/') {
                bail!("-w `{w}`: the working directory must be an absolute path");
            }
            make_dir(&lowers, &dirs, w)?;
            w.clone()
        }
        (None, "") => "/".into(),
        (None, w) => w.into(),
    };
    let spec = ContainerSpec {
        lowers,
        upper: dirs.upper.clone(),
        work: dirs.work.clone(),
        scratch: dirs.sandbox.clone(),
        process: ProcessSpec {
            args,
            env: env.config.env,
            cwd,
            user: options.user.clone().unwrap_or_else(|| config.user.clone()),
            terminal: false,
        },
        hostname: format!("strata-{}", named.manifest.short(12)),
        mounts,
        network: options.network,
        security: strata_sandbox::Security::Sandbox,
    };
    let status = ctx.sandbox.run_attached(&spec, options.attach)?;
    Ok(status.code())
}

/// `mkdir -p` of `path` in the container's root (its upper dir), done by strata inside the
/// image's root so links in the image resolve inside it.
fn make_dir(lowers: &[PathBuf], dirs: &RunDirs, path: &str) -> anyhow::Result<()> {
    let root = strata_sandbox::files::Root {
        lowers: lowers.to_vec(),
        upper: dirs.upper.clone(),
        work: dirs.work.clone(),
        scratch: dirs.sandbox.clone(),
    };
    files::apply(&[(0, FileWork::MakeDir(path.into()))], &dirs.control, &root)
        .map_err(|(_, e)| e.context(format!("create the working directory {path}")))
}

/// A `-v HOST:CONTAINER[:ro|:rw]` bind mount.
fn parse_volume(volume: &str) -> anyhow::Result<Mount> {
    let parts: Vec<&str> = volume.split(':').collect();
    let (host, target, readonly) = match parts[..] {
        [host, target] => (host, target, false),
        [host, target, "ro"] => (host, target, true),
        [host, target, "rw"] => (host, target, false),
        [_, _, option] => bail!("-v `{volume}`: unknown option `{option}` (ro or rw)"),
        _ => bail!("-v `{volume}`: give HOST:CONTAINER[:ro]"),
    };
    if !host.starts_with('/') {
        bail!("-v `{volume}`: the host path must be absolute (strata has no named volumes)");
    }
    if !target.starts_with('/') {
        bail!("-v `{volume}`: the container path must be absolute");
    }
    if !Path::new(host).exists() {
        bail!("-v `{volume}`: {host} does not exist");
    }
    Ok(Mount {
        target: target.into(),
        source: host.into(),
        kind: MountKind::Bind { readonly },
        beneath: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_parse_as_docker_writes_them() {
        let m = parse_volume("/tmp:/data:ro").expect("valid");
        assert_eq!(
            (m.target.as_str(), m.source.as_path(), &m.kind),
            (
                "/data",
                Path::new("/tmp"),
                &MountKind::Bind { readonly: true }
            )
        );
        let m = parse_volume("/tmp:/data").expect("valid");
        assert_eq!(m.kind, MountKind::Bind { readonly: false });
        for (bad, says) in [
            ("data:/data", "absolute"),
            ("/tmp:data", "container path must be absolute"),
            ("/tmp:/data:z", "unknown option `z`"),
            ("/tmp", "HOST:CONTAINER"),
            ("/does/not/exist:/data", "does not exist"),
        ] {
            let err = parse_volume(bad).expect_err(bad).to_string();
            assert!(err.contains(says) && err.contains(bad), "{bad}: {err}");
        }
    }
}
