//! The container spec of a step (or of a look inside a state for the debugger): lowers, the
//! run dirs, the standard mounts every build container gets, the step's own mounts, user,
//! working directory, network and security.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use strata_digest::Digest;
use strata_plan::{Op, Run, RunShell};
use strata_sandbox::{ContainerSpec, Mount, MountKind, Network, ProcessSpec, Security};
use strata_solver::StageJob;

use super::LocalWorker;
use super::run::{RUN_DIR, RunDirs, STATE_DIR};
use crate::image::StoredImage;
use crate::oci::ImageConfig;
use crate::toolbox;

impl LocalWorker<'_> {
    /// The container spec of a step or of a look inside a state: lowers, the run dirs, the
    /// command and environment, user and working directory (the step's, else the config's).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn container_spec(
        &self,
        lowers: Vec<PathBuf>,
        dirs: &RunDirs,
        args: Vec<String>,
        env: Vec<String>,
        run: Option<&Run>,
        config: &ImageConfig,
        job: &StageJob<'_>,
    ) -> anyhow::Result<ContainerSpec> {
        let mut mounts = self.standard_mounts(dirs, &self.extra_hosts(job))?;
        mounts.extend(self.step_mounts(dirs, run, job)?);
        if let Some(run) = run.filter(|r| r.shell == RunShell::Ansible) {
            crate::ansible::write_playbook(&dirs.control, run)?;
            mounts.extend(ansible_mounts()?);
        }
        Ok(ContainerSpec {
            lowers,
            upper: dirs.upper.clone(),
            work: dirs.work.clone(),
            scratch: dirs.sandbox.clone(),
            process: ProcessSpec {
                args,
                env,
                cwd: run
                    .and_then(|r| r.workdir.clone())
                    .unwrap_or_else(|| non_empty_or(&config.config.working_dir, "/")),
                user: run
                    .and_then(|r| r.user.clone())
                    .unwrap_or_else(|| config.config.user.clone()),
                terminal: false,
            },
            hostname: format!("strata-{}", job.digest.short(12)),
            mounts,
            network: if run.is_some_and(|r| r.no_network) {
                Network::None
            } else {
                self.options.network
            },
            security: match run {
                Some(r) if r.insecure && !self.options.allow_insecure => anyhow::bail!(
                    "security.insecure is not allowed: grant it with `strata build --allow \
                     security.insecure`"
                ),
                Some(r) if r.insecure => Security::Insecure,
                _ => Security::Sandbox,
            },
        })
    }

    /// A container spec to look inside `manifest` (a stage's result, or with the parent's
    /// manifest the state before a stage) in the environment the stage's steps run in.
    /// `scratch` receives the container's own dirs; its upper is thrown away with it.
    pub fn state_spec(
        &self,
        job: &StageJob<'_>,
        manifest: Option<&Digest>,
        args: Vec<String>,
        scratch: &Path,
    ) -> anyhow::Result<ContainerSpec> {
        if let Some(d) = manifest {
            self.ensure_local(d)?;
        }
        let image = match manifest {
            Some(d) => Some(StoredImage::load(self.store, d)?),
            None => None,
        };
        let config = image
            .as_ref()
            .map(|i| i.config.clone())
            .unwrap_or_else(ImageConfig::empty);
        let lowers = match &image {
            Some(i) => i.lowers(self.store)?,
            None => Vec::new(),
        };
        let run = job.stage.steps.iter().find_map(|s| match &s.op {
            Op::Run(run) => Some(run),
            _ => None,
        });
        let dirs = RunDirs::create(scratch)?;
        let mut env = self.stage_env(job, &config, true)?;
        if run.is_some_and(|r| r.shell == RunShell::Ansible) {
            // A look inside an ansible stage has `ansible-playbook` at hand.
            if let Some(path) = env.iter_mut().rev().find(|e| e.starts_with("PATH=")) {
                path.push_str(&format!(":{}/bin", crate::ansible::MOUNT_POINT));
            }
        }
        self.container_spec(lowers, &dirs, args, env, run, &config, job)
    }

    /// The `/etc/hosts` entries a build container of `job` gets after the host's: the command
    /// line's `--add-host` entries, then the stage's own.
    pub(super) fn extra_hosts(&self, job: &StageJob<'_>) -> Vec<(String, std::net::IpAddr)> {
        let stage = &job.stage.options.add_hosts;
        self.options
            .add_hosts
            .iter()
            .chain(stage)
            .cloned()
            .collect()
    }

    /// The mounts every build container gets: toolbox, control dir, resolv.conf and hosts
    /// (with `extra_hosts` after the host's entries).
    pub(super) fn standard_mounts(
        &self,
        dirs: &RunDirs,
        extra_hosts: &[(String, std::net::IpAddr)],
    ) -> anyhow::Result<Vec<Mount>> {
        let mut mounts = vec![
            Mount {
                target: toolbox::MOUNT_POINT.into(),
                source: self.toolbox.clone(),
                kind: MountKind::Bind { readonly: true },
                beneath: None,
            },
            // Read-only: strata writes it before the run; the sandbox mounts a read-only
            // directory as a read-only overlay, so the mount table names no store path.
            Mount {
                target: RUN_DIR.into(),
                source: dirs.control.clone(),
                kind: MountKind::Bind { readonly: true },
                beneath: None,
            },
            // The state dir as an overlay whose upper is the dir: the step's writes land in it
            // as through a bind, and the container's mount table shows a short layer name
            // instead of the store path a bind's root would show.
            Mount {
                target: STATE_DIR.into(),
                source: PathBuf::new(),
                kind: MountKind::Overlay {
                    lowers: vec![dirs.empty.clone()],
                    upper: dirs.state.clone(),
                    work: dirs.state_work.clone(),
                },
                beneath: None,
            },
        ];
        mounts.extend(host_files(&dirs.control)?);
        if !extra_hosts.is_empty() {
            // Copied into the container when it starts: after the host's entries, as docker.
            let hosts = dirs.control.join("hosts");
            let mut file = fs::OpenOptions::new()
                .append(true)
                .open(&hosts)
                .with_context(|| format!("open {}", hosts.display()))?;
            for (name, ip) in extra_hosts {
                writeln!(file, "{ip}\t{name}")
                    .with_context(|| format!("write {}", hosts.display()))?;
            }
        }
        Ok(mounts)
    }
}

/// The mounts of an ansible stage: the ansible toolbox, read-only, and a tmpfs for the files
/// ansible writes.
pub(super) fn ansible_mounts() -> anyhow::Result<[Mount; 2]> {
    Ok([
        Mount {
            target: crate::ansible::MOUNT_POINT.into(),
            source: crate::ansible::toolbox()?,
            kind: MountKind::Bind { readonly: true },
            beneath: None,
        },
        Mount {
            target: crate::ansible::TMP_DIR.into(),
            source: PathBuf::new(),
            kind: MountKind::Tmpfs,
            beneath: None,
        },
    ])
}

/// Private copies of the host's resolv.conf and hosts, copied into the container: the build can
/// resolve names, its writes reach neither the host nor the image, and its mount table does not
/// name the store.
pub(crate) fn host_files(control: &Path) -> anyhow::Result<Vec<Mount>> {
    let mut mounts = Vec::new();
    for (name, fallback) in [
        ("resolv.conf", ""),
        ("hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n"),
    ] {
        let copy = control.join(name);
        let content =
            fs::read(Path::new("/etc").join(name)).unwrap_or_else(|_| fallback.as_bytes().to_vec());
        fs::write(&copy, content).with_context(|| format!("write {}", copy.display()))?;
        mounts.push(Mount {
            target: format!("/etc/{name}"),
            source: copy,
            kind: MountKind::Copy { readonly: false },
            beneath: None,
        });
    }
    Ok(mounts)
}

fn non_empty_or(s: &str, default: &str) -> String {
    if s.is_empty() {
        default.to_string()
    } else {
        s.to_string()
    }
}
