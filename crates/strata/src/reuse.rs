//! Which cached stages a build may reuse: werf's git ancestry rule.
//!
//! A stage digest depends on the git mappings' parameters and the checksums of the files a
//! stage depends on, never on the commit (else every commit would rebuild `gitArchive`). What
//! a stage *holds* is the files of the commit it recorded (`git[N].commit`), and the stages
//! after it bring them up to date with a patch from that commit. So a stage is only of use
//! where its recorded commit is in the image's repository and is the mapping's commit or one of
//! its ancestors: werf's `selectAncestorStageDescByGitMappings` (`pkg/build/stage/base.go`).
//! A stage from another clone's rewritten history (amend + gc), from a `--dev` commit made in
//! another checkout, or from before a shallow clone's horizon is not, and the build rebuilds
//! it instead of failing on a commit it cannot find.
//!
//! werf keeps every stage built for a digest and picks the oldest suitable one; strata keeps
//! one record per digest, so a rebuilt stage replaces the unsuitable record
//! ([`Store::replace_stage`]): the record always holds the history of the build that last
//! needed it. Two checkouts with diverged histories sharing one store rebuild in turn instead
//! of both keeping theirs; neither ever fails.
//!
//! Stages are also kept per project: the stapel frontend makes werf's `project:` a digest input
//! of every image's first stage, as werf keeps one stages storage per project.

use strata_git::{ObjectId, Repository};
use strata_plan::{DigestInput, Image, Setting};
use strata_store::{LocalStore, StageRecord, Store};

use crate::git;

/// The typed inputs a stage record holds; `None` for a record written before inputs were
/// typed (or by a newer strata with kinds this one lacks): nothing to compare it with.
pub(crate) fn recorded_inputs(record: &StageRecord) -> Option<Vec<DigestInput>> {
    record
        .inputs
        .iter()
        .map(|i| serde_json::from_value(i.clone()).ok())
        .collect()
}

/// Whether a build of `image` can use `record`: every git commit the record is at is in the
/// mapping's repository and is the mapping's commit or an ancestor of it. A record without git
/// commits (a stage before `gitArchive`) always can. Anything that keeps the check from
/// answering (a repository that cannot be opened, a history that cannot be walked) counts as
/// "cannot": rebuilding is always correct, failing the build on a cache entry never is.
pub(crate) fn suitable(record: &StageRecord, image: &Image) -> bool {
    image.git.iter().enumerate().all(|(i, mapping)| {
        let Some(recorded) = record.meta.get(&git::commit_key(i)) else {
            return true;
        };
        if *recorded == mapping.commit {
            return true;
        }
        let parse = |hex: &str| ObjectId::from_hex(hex.as_bytes()).ok();
        let (Some(recorded), Some(current)) = (parse(recorded), parse(&mapping.commit)) else {
            return false;
        };
        let Ok(repo) = Repository::discover(&mapping.repo) else {
            return false;
        };
        repo.has_commit(&recorded) && repo.is_ancestor(&recorded, &current).unwrap_or(false)
    })
}

/// Records a stage just built in the local store, like [`crate::remote::local_put`], except
/// that a record already there which this build cannot use ([`suitable`]) is replaced by ours
/// instead of adopted. Returns the record to use and whether it is another builder's.
pub(crate) fn publish(
    store: &LocalStore,
    record: StageRecord,
    image: &Image,
) -> anyhow::Result<(StageRecord, bool)> {
    let (found, adopted) = crate::remote::local_put(store, record.clone())?;
    if !adopted || suitable(&found, image) {
        return Ok((found, adopted));
    }
    // Another builder at yet another history may replace it meanwhile; take theirs when it
    // suits us, else try again against what is there now.
    let mut replaced = found;
    for _ in 0..3 {
        match store.replace_stage(&record, &replaced)? {
            strata_store::PutOutcome::Inserted => return Ok((record, false)),
            strata_store::PutOutcome::AlreadyExists(theirs) if suitable(&theirs, image) => {
                return Ok((theirs, true));
            }
            strata_store::PutOutcome::AlreadyExists(theirs) => replaced = theirs,
        }
    }
    anyhow::bail!(
        "stage {} of image {} keeps being replaced by builds at other git histories; run \
         the build again",
        record.digest.short(12),
        image.name
    )
}

/// The project that built the image a local tag names, when it is another than `project`
/// (the building config's `project:`). werf keeps each project's images in its own storage, so
/// a `from: app` of one project never means another project's `app`: it names a registry's
/// image. The project is the `project` input of the first stage of the tag's stage chain.
pub(crate) fn other_project(
    store: &LocalStore,
    reference: &str,
    project: Option<&str>,
) -> Result<Option<String>, strata_store::Error> {
    let Some(project) = project else {
        return Ok(None);
    };
    let tag = store.tag(&crate::image::normalize_reference(reference))?;
    let mut next = tag.and_then(|t| t.stage);
    // A chain is as long as an image has stages; the bound keeps a corrupt cycle finite.
    for _ in 0..1000 {
        let Some(digest) = next else { break };
        let Some(record) = store.stage(&digest)? else {
            break;
        };
        if record.parent.is_none() {
            let built_by = recorded_inputs(&record)
                .unwrap_or_default()
                .into_iter()
                .find_map(|i| match i {
                    DigestInput::Setting {
                        name: Setting::Project,
                        value,
                    } => Some(value),
                    _ => None,
                });
            return Ok(built_by.filter(|p| p != project));
        }
        next = record.parent;
    }
    Ok(None)
}
