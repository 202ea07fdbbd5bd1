//! The inputs of stages whose digest needs their parent built first ([`LateInputs`]): the
//! checksums of imported files, and werf's git policy: `gitCache` (a stage of its own once the
//! patch since the parent's commits, measured as werf measures it ([`git::werf_patch_size`]),
//! reaches [`git::GIT_CACHE_THRESHOLD`]) and
//! `gitLatestPatch` (keyed by the identity of each mapping's patch).

use strata_plan::{DigestInput, LateInputs, Op};
use strata_solver::{ExecError, StageJob};
use strata_store::Store;

use super::LocalWorker;
use super::error::{op, store};
use crate::git;

impl LocalWorker<'_> {
    pub(super) fn git_late_inputs(
        &self,
        job: &StageJob<'_>,
        kind: &LateInputs,
    ) -> Result<Option<Vec<DigestInput>>, ExecError> {
        if *kind == LateInputs::Imports {
            self.ensure_inputs_local(job)?;
            let mut inputs = Vec::new();
            let imports = job.stage.steps.iter().filter_map(|s| match &s.op {
                Op::Import(import) => Some(import),
                _ => None,
            });
            // Numbered among the stage's imports, as the frontends number their `Import` inputs.
            for (index, import) in imports.enumerate() {
                // Files that cannot be taken (a path the image lacks) fail the step when it
                // runs, where the debugger can look at the state they were to land in; no
                // stage can be stored under this key, as that step always fails.
                let checksum = match crate::import::checksum(self.store, import, job.dependencies) {
                    Ok(sum) => sum.hex(),
                    Err(e) => format!("unavailable: {e:#}"),
                };
                inputs.push(DigestInput::ImportFiles { index, checksum });
            }
            for (name, value) in Self::dependency_values(job) {
                inputs.push(DigestInput::DependencyValue { name, value });
            }
            return Ok(Some(inputs));
        }
        let parent = match &job.parent_stage {
            Some(d) => self
                .store
                .stage(d)
                .map_err(store("read the parent stage's record"))?,
            None => None,
        };
        // A parent built in this very build is at the mappings' commits: nothing to apply.
        let Some(parent) = parent else {
            return Ok(None);
        };
        let mut size = 0;
        let mut patches = Vec::new();
        for (i, mapping) in job.image.git.iter().enumerate() {
            let Some(from) = parent.meta.get(&git::commit_key(i)) else {
                continue;
            };
            if from == &mapping.commit {
                continue;
            }
            let changes = git::change_set(mapping, from)
                .map_err(op("compute the git patch since the parent stage"))?;
            if changes.is_empty() {
                continue;
            }
            size += git::werf_patch_size(mapping, from, &changes)
                .map_err(op("measure the git patch since the parent stage"))?;
            patches.push(DigestInput::GitPatch {
                mapping: i,
                identity: changes.identity.hex(),
            });
        }
        Ok(match kind {
            LateInputs::GitCache if size >= git::GIT_CACHE_THRESHOLD => {
                Some(vec![DigestInput::GitCache {
                    size_mib: size >> 20,
                }])
            }
            LateInputs::GitCache => None,
            LateInputs::GitLatestPatch if patches.is_empty() => None,
            LateInputs::GitLatestPatch => Some(patches),
            LateInputs::Imports => unreachable!("answered above"),
        })
    }
}
