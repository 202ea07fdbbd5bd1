//! Committing a step: its upper dir becomes a layer blob (hashed while written) and, moved,
//! the layer's snapshot.

use std::path::Path;
use std::time::Instant;

use strata_layer::Compression;
use strata_solver::ExecError;
use strata_store::{LayerRecord, LocalStore, Store};

use super::LocalWorker;
use super::error::{self, layer};
use super::run::RunDirs;

impl LocalWorker<'_> {
    /// Turns what a step wrote into `dirs.upper` into a layer (none if it wrote nothing,
    /// unless `keep_empty`); returns it and the milliseconds spent.
    pub(super) fn commit_upper(
        &self,
        dirs: &RunDirs,
        keep_empty: bool,
    ) -> Result<(Option<LayerRecord>, u64), ExecError> {
        let commit_started = Instant::now();
        let layer = commit_dir(
            self.store,
            &dirs.upper,
            self.options.compression,
            keep_empty,
        )?;
        let millis = match layer {
            Some(_) => commit_started.elapsed().as_millis() as u64,
            None => 0,
        };
        Ok((layer, millis))
    }
}

/// Turns an upper dir (inside the store's `tmp/`) into a layer and moves it to the layer's
/// snapshot; none if it is empty, unless `keep_empty` (then the layer is the empty tar,
/// BuildKit's `sha256:5f70bf18…` diff). A failed step's broken upper is committed the same way for its
/// failure record.
///
/// With no `compression` no blob is written: the tar is only hashed on its way to a sink,
/// and the layer is plain ([`LayerRecord::is_plain`]), its snapshot the content, compressed when
/// it first leaves the machine ([`crate::image::with_compression`]). That is what BuildKit in
/// dockerd pays at commit: one hashing pass. Otherwise (stages published to `--repo`, which
/// the repository needs compressed) the blob is written in `compression` now.
pub(crate) fn commit_dir(
    store: &LocalStore,
    upper: &Path,
    compression: Option<Compression>,
    keep_empty: bool,
) -> Result<Option<LayerRecord>, ExecError> {
    if !keep_empty
        && strata_layer::is_empty_dir(upper).map_err(layer("look at what the step wrote"))?
    {
        return Ok(None);
    }
    let mut ingest = match compression {
        None => None,
        Some(_) => Some(
            store
                .ingest()
                .map_err(error::store("start the step's layer"))?,
        ),
    };
    // The step's writes start going to disk while the layer is made from them (the commits
    // below wait for them anyway), so the disk and the CPU work overlap.
    let (written, flushed) = std::thread::scope(|scope| {
        let flush = scope.spawn(|| store.sync());
        let written = match (&mut ingest, compression) {
            (Some(ingest), Some(compression)) => {
                strata_layer::write_layer(upper, compression, ingest)
            }
            _ => strata_layer::write_layer(upper, Compression::None, &mut std::io::sink()),
        };
        let flushed = flush
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (written, flushed)
    });
    let stats = written.map_err(layer("write the step's layer"))?;
    flushed.map_err(error::store("sync the step's writes"))?;
    let (digest, size) = match ingest {
        Some(ingest) => {
            let size = ingest.written();
            let digest = ingest
                .commit(None)
                .map_err(error::store("commit the step's layer"))?;
            (digest, size)
        }
        None => (stats.diff_id, stats.uncompressed_size),
    };
    // The snapshot is durable before the stage record that names it is published: its files
    // were synced above, and commit_snapshot syncs the rename.
    store
        .commit_snapshot(upper, &stats.diff_id)
        .map_err(error::store("keep the step's files as a snapshot"))?;
    Ok(Some(LayerRecord {
        digest,
        diff_id: stats.diff_id,
        size,
        media_type: compression
            .unwrap_or(Compression::None)
            .media_type()
            .to_string(),
        urls: Vec::new(),
    }))
}
