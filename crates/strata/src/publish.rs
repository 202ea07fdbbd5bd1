//! Publishing built stages to the stage repository (`--repo`) beside the build.
//!
//! A stage built with `--repo` is recorded in the local store like any other (its layers
//! plain), and the build goes on with the next stages on it. The stage is queued here: one
//! thread, in the order the stages were built, compresses the stage's plain layers (each
//! conversion remembered in the store, so a child stage's copy of its parent's layers costs
//! nothing more, and a later push of the image reuses them) and publishes the stage with the
//! compressed manifest ([`StageRepo::publish`]). The build ends when the queue is done
//! ([`Publisher::finish`]); it fails, naming each stage, when a publish failed.
//!
//! Crash safety: before its local record is published, a stage to publish is noted in the
//! store ([`LocalStore::note_unpublished`]), and the note goes once the repository has the
//! stage; a build that finds notes of earlier builds (killed, or whose publish failed) for its
//! repository publishes those stages too, before it ends. A stage is queued only once its local
//! record is published, which comes after its blobs and snapshots are durable (see
//! [`crate::worker`]); a conversion is durable before its record names it; and the
//! repository's tag of a stage goes up only after every blob its manifest names was uploaded,
//! so nothing in the repository ever names what is not there.
//!
//! Races: when another builder published the stage first, our copy is taken back out of the
//! repository (so the stage is there once) and stays in the local store: the later stages of
//! this build were built on it. Both are builds of the same stage digest.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use strata_digest::Digest;
use strata_layer::Compression;
use strata_progress::{Event, Sink};
use strata_registry::stages::StageRepo;
use strata_registry::{Client, Reference};
use strata_store::{Held, LocalStore, StageRecord, Store};

use crate::image::{self, StoredImage};

/// The stages of one build on their way to the stage repository.
pub(crate) struct Publisher {
    client: Client,
    repo: StageRepo,
    store: LocalStore,
    compression: Compression,
    running: Mutex<Option<Running>>,
    /// The stages queued by this build.
    queued: Mutex<BTreeSet<Digest>>,
}

/// The publishing thread, started with the first stage queued.
struct Running {
    jobs: mpsc::Sender<Job>,
    outcomes: mpsc::Receiver<Outcome>,
    queued: usize,
    /// Set when the build is cancelled: the stages not started yet are left.
    stop: Arc<AtomicBool>,
}

/// A stage to publish: its local record and its name, `image/stage`.
struct Job {
    record: StageRecord,
    name: String,
}

/// How one publish ended.
struct Outcome {
    name: String,
    digest: Digest,
    result: anyhow::Result<Won>,
}

/// Whose copy of a published stage the repository kept.
#[derive(PartialEq, Eq)]
enum Won {
    Ours,
    Theirs,
}

/// Why [`Publisher::finish`] failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The build was cancelled while stages were being published.
    #[error("cancelled")]
    Cancelled,
    /// Stages were built but could not be published.
    #[error("{}", failed_text(repository, stages))]
    Failed {
        /// The stage repository.
        repository: String,
        /// Each stage (`image/stage (digest)`) with why.
        stages: Vec<(String, String)>,
    },
}

fn failed_text(repository: &str, stages: &[(String, String)]) -> String {
    let mut text = format!(
        "{} stage(s) were built but not published to the stage repository {repository}:",
        stages.len()
    );
    for (stage, why) in stages {
        text.push_str(&format!("\n  stage {stage}: {why}"));
    }
    text.push_str(
        "\nthe stages are in the local store; the next build with this --repo publishes them",
    );
    text
}

impl Publisher {
    /// A publisher to `repository` of stages of `store`, their plain layers compressed in
    /// `compression`.
    pub(crate) fn new(
        client: &Client,
        repository: &Reference,
        store: &LocalStore,
        compression: Compression,
    ) -> Publisher {
        Publisher {
            client: client.clone(),
            repo: StageRepo::new(client.clone(), repository),
            store: store.clone(),
            compression,
            running: Mutex::new(None),
            queued: Mutex::new(BTreeSet::new()),
        }
    }

    /// Notes in the store that stage `digest` is to be published, before its local record is
    /// (see the module docs).
    pub(crate) fn note(&self, digest: &Digest) -> Result<(), strata_store::Error> {
        self.store
            .note_unpublished(digest, &self.repo.repository().to_string())
    }

    /// Queues a stage just recorded in the local store (`name` is `image/stage`), noted before.
    pub(crate) fn queue(&self, record: StageRecord, name: String) {
        self.queued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(record.digest);
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let running = running.get_or_insert_with(|| self.start());
        running.queued += 1;
        // The thread only ends once the sender is dropped (in `finish`): the send cannot fail.
        let _ = running.jobs.send(Job { record, name });
    }

    fn start(&self) -> Running {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (done, outcomes) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let repository = self.repo.repository().to_string();
        let (client, repo, store, compression) = (
            self.client.clone(),
            self.repo.clone(),
            self.store.clone(),
            self.compression,
        );
        let stopped = Arc::clone(&stop);
        // Detached: a cancelled build does not wait for the upload under way.
        std::thread::spawn(move || {
            for job in queue {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let result =
                    publish(&store, &client, &repo, compression, &job.record).and_then(|won| {
                        store.published(&job.record.digest, &repository)?;
                        Ok(won)
                    });
                let outcome = Outcome {
                    name: job.name,
                    digest: job.record.digest,
                    result,
                };
                if done.send(outcome).is_err() {
                    break;
                }
            }
        });
        Running {
            jobs,
            outcomes,
            queued: 0,
            stop,
        }
    }

    /// Queues the stages earlier builds noted but did not publish (see the module docs): those
    /// whose record is still in the store, held so that a gc beside us leaves them.
    fn queue_leftovers(&self) -> anyhow::Result<()> {
        let repository = self.repo.repository().to_string();
        let queued = self
            .queued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for digest in self.store.unpublished(&repository)? {
            if queued.contains(&digest) {
                continue;
            }
            let record = match self.store.stage(&digest)? {
                Some(r)
                    if self
                        .store
                        .protect(&[
                            Held::Stage(r.digest),
                            Held::Blob(r.manifest),
                            Held::Blob(r.config),
                        ])?
                        .is_empty() =>
                {
                    r
                }
                // Gone (gc took it): nothing to publish.
                _ => {
                    self.store.published(&digest, &repository)?;
                    continue;
                }
            };
            let name = format!("{}/{}", record.image, record.stage);
            self.queue(record, name);
        }
        Ok(())
    }

    /// Waits for every queued stage (and those earlier builds left unpublished) to be
    /// published, saying what it waits for on `progress`. A set `cancel` stops waiting: the
    /// stages not published stay noted for the next build.
    pub(crate) fn finish(&self, progress: &dyn Sink, cancel: &AtomicBool) -> Result<(), Error> {
        let repository = self.repo.repository().to_string();
        if !cancel.load(Ordering::Relaxed)
            && let Err(e) = self.queue_leftovers()
        {
            progress.event(Event::Note {
                message: format!(
                    "note: the stages earlier builds left unpublished to {repository} were not \
                     looked at: {}",
                    crate::error_line(&e)
                ),
            });
        }
        let Some(Running {
            jobs,
            outcomes,
            queued,
            stop,
        }) = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        else {
            return Ok(());
        };
        drop(jobs);
        let mut failed = Vec::new();
        let mut received = 0;
        let mut said = false;
        while received < queued {
            if cancel.load(Ordering::Relaxed) {
                stop.store(true, Ordering::Relaxed);
                return Err(Error::Cancelled);
            }
            let outcome = match outcomes.recv_timeout(Duration::from_millis(100)) {
                Ok(outcome) => outcome,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if !said {
                        said = true;
                        progress.event(Event::Note {
                            message: format!(
                                "publishing {} stage(s) to {repository}",
                                queued - received
                            ),
                        });
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    failed.push((
                        format!("{} stage(s)", queued - received),
                        "the publishing thread ended early".to_string(),
                    ));
                    break;
                }
            };
            received += 1;
            let stage = format!("{} ({})", outcome.name, outcome.digest.short(12));
            match outcome.result {
                Ok(Won::Ours) => {}
                Ok(Won::Theirs) => progress.event(Event::Note {
                    message: format!(
                        "stage {stage}: another builder published it first; this build's copy \
                         stays in the local store"
                    ),
                }),
                Err(e) => failed.push((stage, crate::error_line(&e))),
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        Err(Error::Failed {
            repository,
            stages: failed,
        })
    }
}

/// Publishes the stage of `record` (recorded in `store`) with its plain layers compressed.
fn publish(
    store: &LocalStore,
    client: &Client,
    repo: &StageRepo,
    compression: Compression,
    record: &StageRecord,
) -> anyhow::Result<Won> {
    let local = StoredImage::load(store, &record.manifest)?;
    // A layer compressed for the first time goes up as it is compressed.
    let mut streamed = std::collections::BTreeMap::new();
    let manifest = image::with_plain_compressed_made_by(
        store,
        &local,
        compression,
        &mut crate::ops::push::uploading(client, repo.repository(), &mut streamed),
    )
    .with_context(|| format!("compress its layers ({compression})"))?;
    let record = StageRecord {
        manifest,
        layers: StoredImage::load(store, &manifest)?.layer_records(),
        ..record.clone()
    };
    let published = repo.publish_with(store, &record, streamed)?;
    if published.ours {
        return Ok(Won::Ours);
    }
    // Another builder won: take our copy back out so the stage is there once.
    if let Some(pushed) = &published.pushed {
        let _ = client.delete_manifest(repo.repository(), &pushed.manifest);
    }
    Ok(Won::Theirs)
}
