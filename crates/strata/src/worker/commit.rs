//! Committing a step: its upper dir becomes a layer blob (hashed while written) and, moved,
//! the layer's snapshot.

use std::time::Instant;

use strata_solver::ExecError;
use strata_store::{LayerRecord, Store};

use super::LocalWorker;
use super::error::{layer, store};
use super::run::RunDirs;

impl LocalWorker<'_> {
    /// Turns what a step wrote into `dirs.upper` into a layer (none if it wrote nothing);
    /// returns it and the milliseconds spent.
    pub(super) fn commit_upper(
        &self,
        dirs: &RunDirs,
    ) -> Result<(Option<LayerRecord>, u64), ExecError> {
        let commit_started = Instant::now();
        if strata_layer::is_empty_dir(&dirs.upper).map_err(layer("look at what the step wrote"))? {
            return Ok((None, 0));
        }
        let mut ingest = self
            .store
            .ingest()
            .map_err(store("start the step's layer"))?;
        // The step's writes start going to disk while the layer is made from them (the commits
        // below wait for them anyway), so the disk and the CPU work overlap.
        let (written, flushed) = std::thread::scope(|scope| {
            let flush = scope.spawn(|| self.store.sync());
            let written =
                strata_layer::write_layer(&dirs.upper, self.options.compression, &mut ingest);
            let flushed = flush
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (written, flushed)
        });
        let stats = written.map_err(layer("write the step's layer"))?;
        flushed.map_err(store("sync the step's writes"))?;
        let size = ingest.written();
        let digest = ingest
            .commit(None)
            .map_err(store("commit the step's layer"))?;
        self.store
            .commit_snapshot(&dirs.upper, &stats.diff_id)
            .map_err(store("keep the step's files as a snapshot"))?;
        let layer = LayerRecord {
            digest,
            diff_id: stats.diff_id,
            size,
            media_type: self.options.compression.media_type().to_string(),
            urls: Vec::new(),
        };
        Ok((Some(layer), commit_started.elapsed().as_millis() as u64))
    }
}
