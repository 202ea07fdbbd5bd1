//! A failed run kept for the debugger: the handle to its state travels with the error. A
//! failed run can also be written down ([`StepSpec`]) and its container made again from that
//! on another machine ([`LocalWorker::postmortem_spec`]), for failure records.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use strata_plan::{MountSource, RunMount, StageKind};
use strata_sandbox::{ContainerSpec, Mount, MountKind, Network, ProcessSpec, Security};
use strata_solver::{ExecError, Kept, StageJob};
use strata_store::{LayerRecord, Scratch};

use super::LocalWorker;
use super::env::build_env;
use super::run::{RUN_DIR, RunDirs};
use super::stage::PendingRun;
use crate::oci::ImageConfig;

use strata_debug::SOURCE as SOURCE_DIR;

impl LocalWorker<'_> {
    /// Keeps the state of a step that failed before any command ran (file work): a shell there
    /// sees the files as they were when the step started, and the `source` side its files
    /// were to be copied from, read-only at [`SOURCE_DIR`].
    pub(super) fn keep_step_failure(
        &self,
        job: &StageJob<'_>,
        prepared: PendingRun,
        lowers: Vec<PathBuf>,
        config: &ImageConfig,
        source: Option<SourceSide>,
    ) -> Option<Kept> {
        // A Dockerfile instruction's: the environment a `RUN` there has (the image's PATH, no
        // locale it did not set); a stapel stage's has the toolbox's.
        let toolbox = job.stage.kind != StageKind::Instruction;
        let env = self
            .stage_env(job, config, toolbox)
            .unwrap_or_else(|_| build_env(config, &job.stage.options.service_env, toolbox));
        let Ok(mut spec) =
            self.container_spec(lowers, &prepared.dirs, Vec::new(), env, None, config, job)
        else {
            return None;
        };
        let (what, rerun_args) = source
            .as_ref()
            .map_or((None, Vec::new()), |s| (Some(s.what), s.recheck.clone()));
        // overlayfs wants two lowers without an upper: one layer is bound read-only.
        let source = match source.as_ref().map(|s| s.dirs.as_slice()) {
            Some([layer]) => Some((layer.clone(), MountKind::Bind { readonly: true })),
            Some(lowers) if !lowers.is_empty() => Some((
                PathBuf::new(),
                MountKind::Overlay {
                    lowers: lowers.to_vec(),
                    upper: PathBuf::new(),
                    work: PathBuf::new(),
                },
            )),
            _ => None,
        };
        if let Some((source, kind)) = source {
            spec.mounts.push(Mount {
                target: SOURCE_DIR.into(),
                source,
                kind,
                beneath: None,
            });
        }
        let failed = FailedRun {
            image: job.image_name.to_string(),
            stage: job.stage.name.clone(),
            spec,
            rerun_args,
            step_args: Vec::new(),
            source_side: what,
            base: Vec::new(),
            mounts: job.stage.options.mounts.clone(),
            extra_hosts: self.extra_hosts(job),
            scratch: prepared.scratch,
        };
        Some(Kept::new(failed))
    }

    /// The container of a recorded failed step on this machine: `lowers` (the base state,
    /// topmost first) under `upper` (the broken state), the recorded process, the standard
    /// mounts made here, and of the step's mounts those a record keeps (see [`StepSpec`]).
    /// Its own dirs are made in `dir`. It is always confined ([`Security::Sandbox`]): a record
    /// from a registry grants nothing.
    pub fn postmortem_spec(
        &self,
        step: &StepSpec,
        lowers: Vec<PathBuf>,
        upper: PathBuf,
        dir: &Path,
    ) -> anyhow::Result<ContainerSpec> {
        let dirs = RunDirs::create(dir)?;
        for (name, text) in &step.scripts {
            if !RECORDED_SCRIPTS.contains(&name.as_str()) {
                anyhow::bail!("the record holds a control file `{name}` strata never writes");
            }
            if let Some(parent) = Path::new(name).parent() {
                std::fs::create_dir_all(dirs.control.join(parent))?;
            }
            crate::beneath::write(&dirs.control, name, text.as_bytes())?;
        }
        let mut mounts = self.standard_mounts(&dirs, &step.extra_hosts)?;
        mounts.extend(self.recorded_mounts(&step.mounts, &step.image, &dirs.mounts)?);
        // An ansible stage's step: the toolbox of this machine runs its playbook.
        if step
            .scripts
            .iter()
            .any(|(name, _)| name == ANSIBLE_PLAYBOOK)
        {
            mounts.extend(super::spec::ansible_mounts()?);
        }
        Ok(ContainerSpec {
            lowers,
            upper,
            work: dirs.work.clone(),
            scratch: dirs.sandbox.clone(),
            process: ProcessSpec {
                terminal: false,
                ..step.process.clone()
            },
            hostname: step.hostname.clone(),
            mounts,
            network: step.network,
            security: Security::Sandbox,
        })
    }
}

/// Names the layers of the state a failed step started from (`layers`, bottom first) in what
/// the error kept of it.
pub(super) fn with_base(mut error: ExecError, layers: &[LayerRecord]) -> ExecError {
    if let ExecError::CommandFailed { kept, .. } | ExecError::Step { kept, .. } = &mut error
        && let Some(k) = kept.take()
    {
        *kept = Some(match k.downcast::<FailedRun>() {
            Ok(mut failed) => {
                failed.base = layers.to_vec();
                Kept::new(*failed)
            }
            Err(k) => k,
        });
    }
    error
}

/// Where the files of a step that failed copying were to come from, for the debugger.
pub(super) struct SourceSide {
    /// The image's layers (topmost first) or the one directory mounted at [`SOURCE_DIR`].
    pub dirs: Vec<PathBuf>,
    /// What they are, in the user's terms (`the image copied from`).
    pub what: &'static str,
    /// The argv of the debugger's `rerun`, run in the failed state (none: nothing to rerun).
    pub recheck: Vec<String>,
}

/// A failed run kept for the debugger: the exact container spec it ran with and its
/// directories (the broken upper among them), which live as long as this value. It travels
/// inside the error ([`strata_solver::Kept`] of [`ExecError`](strata_solver::ExecError)) to
/// whoever handles the failure; dropping it removes the directories.
pub struct FailedRun {
    /// The image and stage that failed.
    pub image: String,
    /// The stage.
    pub stage: String,
    /// The spec of the failed run: lowers are the state before the step, upper what it wrote.
    pub spec: ContainerSpec,
    /// Runs only the failing command again in that environment.
    pub rerun_args: Vec<String>,
    /// Runs the whole step again from its start.
    pub step_args: Vec<String>,
    /// What is mounted at [`SOURCE_DIR`] (see [`strata_debug::Failure::source_side`]).
    pub source_side: Option<&'static str>,
    /// The layers of the state before the step (bottom first): `spec.lowers` unpacked.
    pub base: Vec<LayerRecord>,
    /// The stage's and the step's mount specs, as planned.
    pub mounts: Vec<RunMount>,
    /// The `/etc/hosts` entries it had after the host's (`--add-host`, `addHost`).
    pub extra_hosts: Vec<(String, std::net::IpAddr)>,
    /// The scratch dir holding the upper, work and control dirs; removed when dropped.
    pub scratch: Scratch,
}

/// The control files a record keeps (relative to [`RUN_DIR`]): the stage script, the script
/// that reruns only the failed command and an ansible stage's playbook. Staged file work is
/// not kept.
const RECORDED_SCRIPTS: [&str; 3] = ["script.sh", "rerun/script.sh", ANSIBLE_PLAYBOOK];
/// An ansible stage's playbook, relative to the control dir.
const ANSIBLE_PLAYBOOK: &str = crate::ansible::PLAYBOOK_FILE;

/// The most bytes of a control script a record keeps.
const SCRIPT_MAX: usize = 1 << 20;

/// What a failure record keeps of a failed step's container, to make it again on any
/// machine: the process (argv, env, user, cwd), host name and network, the `/etc/hosts` entries
/// added to the host's, the control scripts, and of its mounts only those another machine can
/// make without the build's host: cache mounts (by id: this machine's cache of that id),
/// tmpfs, werf's `tmp_dir` and `build_dir`. Secrets and ssh agents are never written down (not even their files' paths), nor are binds
/// of the context, of other images or of host paths; `left_out` says which were there.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepSpec {
    /// The image being built (werf's `build_dir` is kept per image).
    pub image: String,
    /// The failed command's process; its env is the debugger's (the stage's environment,
    /// no secret variables).
    pub process: ProcessSpec,
    /// The container's host name.
    pub hostname: String,
    /// Whether it had the host's network.
    pub network: Network,
    /// The mounts a record keeps (see above).
    pub mounts: Vec<RunMount>,
    /// The mounts it does not keep, described (`secret at /run/secrets/token`).
    pub left_out: Vec<String>,
    /// Control files by path relative to the control dir.
    pub scripts: BTreeMap<String, String>,
    /// Its `/etc/hosts` entries after the host's (`--add-host`, `addHost`); records made
    /// before this field have none.
    #[serde(default)]
    pub extra_hosts: Vec<(String, std::net::IpAddr)>,
}

impl FailedRun {
    /// What a failure record keeps of this run (see [`StepSpec`]).
    pub fn step_spec(&self) -> StepSpec {
        let (mounts, other): (Vec<RunMount>, Vec<RunMount>) =
            self.mounts.iter().cloned().partition(recordable);
        let control = self
            .spec
            .mounts
            .iter()
            .find(|m| m.target == RUN_DIR)
            .map(|m| m.source.clone());
        let scripts = control
            .map(|dir| {
                RECORDED_SCRIPTS
                    .iter()
                    .filter_map(|name| {
                        // Written by strata before the run (the rerun script after it), in a
                        // dir the container saw read-only.
                        let bytes = crate::beneath::read(&dir, name, SCRIPT_MAX).ok()??;
                        Some((name.to_string(), String::from_utf8(bytes).ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        // The step's env holds the values of its `secret,env=` mounts: never written down.
        let secret_vars: Vec<&str> = self
            .mounts
            .iter()
            .filter_map(|m| match &m.source {
                MountSource::Secret { env: Some(var), .. } => Some(var.as_str()),
                _ => None,
            })
            .collect();
        let mut process = self.spec.process.clone();
        process.env.retain(|e| {
            let name = e.split_once('=').map_or(e.as_str(), |(name, _)| name);
            !secret_vars.contains(&name)
        });
        // A failed copy's source side is the context or another image's layers: not kept.
        let source_side = self
            .source_side
            .filter(|_| self.spec.mounts.iter().any(|m| m.target == SOURCE_DIR))
            .map(|what| format!("{what} at {SOURCE_DIR}"));
        StepSpec {
            image: self.image.clone(),
            process,
            hostname: self.spec.hostname.clone(),
            network: self.spec.network,
            mounts,
            left_out: other.iter().map(describe).chain(source_side).collect(),
            scripts,
            extra_hosts: self.extra_hosts.clone(),
        }
    }
}

/// Whether a failure record keeps a mount spec (see [`StepSpec`]).
pub(super) fn recordable(m: &RunMount) -> bool {
    matches!(
        m.source,
        MountSource::Cache { .. }
            | MountSource::Tmpfs
            | MountSource::TmpDir
            | MountSource::BuildDir
    )
}

/// A mount a record leaves out, in words: its kind and target only.
fn describe(m: &RunMount) -> String {
    let kind = match &m.source {
        MountSource::Secret { .. } => "a secret",
        MountSource::Ssh { .. } => "an ssh agent",
        MountSource::Bind { image: None, .. } => "a bind of the build context",
        MountSource::Bind { image: Some(_), .. } => "a bind of another image",
        MountSource::Host(_) => "a host directory (fromPath)",
        MountSource::Cache { .. }
        | MountSource::Tmpfs
        | MountSource::TmpDir
        | MountSource::BuildDir => "a mount",
    };
    match m.to.as_str() {
        "" => format!("{kind} read into a variable"),
        to => format!("{kind} at {to}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::run::RERUN;
    use super::*;

    fn mount(to: &str, source: MountSource) -> RunMount {
        RunMount {
            to: to.into(),
            source,
            context: None,
        }
    }

    #[test]
    fn records_keep_caches_by_id_and_never_secrets_or_host_paths() {
        let secret = mount(
            "/run/secrets/token",
            MountSource::Secret {
                id: "token".into(),
                required: true,
                env: None,
            },
        );
        let host = mount("/src", MountSource::Host("/home/me/src".into()));
        let cache = mount("/root/.cache", MountSource::Cache { id: "go".into() });
        assert!(recordable(&cache));
        assert!(recordable(&mount("/tmp", MountSource::Tmpfs)));
        assert!(!recordable(&secret));
        assert!(!recordable(&host));
        assert_eq!(describe(&secret), "a secret at /run/secrets/token");
        assert_eq!(describe(&host), "a host directory (fromPath) at /src");
        // The rerun script sits where step_command writes it.
        assert_eq!(RECORDED_SCRIPTS[1], format!("{RERUN}/script.sh"));
    }
}
