//! A failed run kept for the debugger: the handle to its state travels with the error.

use std::path::PathBuf;

use strata_sandbox::ContainerSpec;
use strata_solver::{Kept, StageJob};
use strata_store::Scratch;

use super::LocalWorker;
use super::env::build_env;
use super::stage::PendingRun;
use crate::oci::ImageConfig;

impl LocalWorker<'_> {
    /// Keeps the state of a step that failed before any command ran (git work): a shell there
    /// sees the files as they were when the step started.
    pub(super) fn keep_step_failure(
        &self,
        job: &StageJob<'_>,
        prepared: PendingRun,
        lowers: Vec<PathBuf>,
        config: &ImageConfig,
    ) -> Option<Kept> {
        let env = self
            .stage_env(job, config, true)
            .unwrap_or_else(|_| build_env(config, &job.stage.options.service_env, true));
        let Ok(spec) =
            self.container_spec(lowers, &prepared.dirs, Vec::new(), env, None, config, job)
        else {
            return None;
        };
        let failed = FailedRun {
            image: job.image_name.to_string(),
            stage: job.stage.name.clone(),
            spec,
            rerun_args: Vec::new(),
            step_args: Vec::new(),
            scratch: prepared.scratch,
        };
        Some(Kept::new(failed))
    }
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
    /// The scratch dir holding the upper, work and control dirs; removed when dropped.
    pub scratch: Scratch,
}
