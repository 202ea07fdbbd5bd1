//! werf's `mount: from: tmp_dir`: one empty directory per image and build, shared by all the
//! stages of that image built in the build (werf creates it per image build, so a file one stage
//! leaves there is seen by the next), removed when the build ends.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use strata_store::{LocalStore, Scratch};

/// The `tmp_dir` directories of one build, by image name.
#[derive(Default)]
pub(crate) struct TmpDirs {
    dirs: Mutex<HashMap<String, Scratch>>,
}

impl TmpDirs {
    /// The `tmp_dir` of `image` in this build, made on first use.
    pub(crate) fn dir(
        &self,
        store: &LocalStore,
        image: &str,
    ) -> Result<PathBuf, strata_store::Error> {
        let mut dirs = self
            .dirs
            .lock()
            .expect("no thread panics holding the tmp_dir map");
        if let Some(dir) = dirs.get(image) {
            return Ok(dir.path().to_path_buf());
        }
        let scratch = store.scratch("tmp_dir")?;
        let path = scratch.path().to_path_buf();
        dirs.insert(image.to_string(), scratch);
        Ok(path)
    }
}
