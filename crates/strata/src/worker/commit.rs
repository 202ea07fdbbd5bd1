//! Committing a step: its upper dir becomes a plain layer (its tar hashed, no blob written)
//! and, moved, the layer's snapshot.

use std::path::Path;
use std::time::Instant;

use strata_layer::Compression;
use strata_solver::ExecError;
use strata_store::{LayerRecord, LocalStore};

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
        let layer = commit_dir(self.store, &dirs.upper, keep_empty)?;
        let millis = match layer {
            Some(_) => commit_started.elapsed().as_millis() as u64,
            None => 0,
        };
        Ok((layer, millis))
    }
}

/// Turns an upper dir (inside the store's `tmp/`) into a layer and moves it to the layer's
/// snapshot; none if it is empty, unless `keep_empty` (then the layer is the empty tar,
/// BuildKit's `sha256:5f70bf18…` diff). A failed step's broken upper is committed the same way
/// for its failure record.
///
/// No blob is written: the tar is only hashed on its way to a sink, and the layer is plain
/// ([`LayerRecord::is_plain`]), its snapshot the content, compressed when it first leaves the
/// machine ([`crate::image::with_compression`]; for `--repo`, by the publisher beside the build:
/// [`crate::publish`]). That is what BuildKit in dockerd pays at commit: one hashing pass.
pub(crate) fn commit_dir(
    store: &LocalStore,
    upper: &Path,
    keep_empty: bool,
) -> Result<Option<LayerRecord>, ExecError> {
    if !keep_empty
        && strata_layer::is_empty_dir(upper).map_err(layer("look at what the step wrote"))?
    {
        return Ok(None);
    }
    // The step's writes start going to disk while the layer is made from them (the commit
    // below waits for them anyway), so the disk and the CPU work overlap.
    let (written, flushed) = std::thread::scope(|scope| {
        let flush = scope.spawn(|| store.sync());
        let written = strata_layer::write_layer(upper, Compression::None, &mut std::io::sink());
        let flushed = flush
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (written, flushed)
    });
    let stats = written.map_err(layer("write the step's layer"))?;
    flushed.map_err(error::store("sync the step's writes"))?;
    // The snapshot is durable before the stage record that names it is published: its files
    // were synced above, and the stage's sync before its record (worker::stage) syncs the
    // rename.
    store
        .publish_synced_snapshot(upper, &stats.diff_id)
        .map_err(error::store("keep the step's files as a snapshot"))?;
    Ok(Some(LayerRecord {
        digest: stats.diff_id,
        diff_id: stats.diff_id,
        size: stats.uncompressed_size,
        media_type: Compression::None.media_type().to_string(),
        urls: Vec::new(),
    }))
}
