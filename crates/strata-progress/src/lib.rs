//! Progress events of a build and the [`Sink`] that receives them.
//!
//! Plumbing emits [`Event`]s; the CLI decides how to show them (a live terminal view, plain
//! prefixed lines, or one JSON object per line). This crate knows nothing about terminals.
//!
//! ```
//! use strata_progress::{Event, Sink, Collect};
//! let sink = Collect::default();
//! sink.event(Event::Note { message: "hello".into() });
//! assert_eq!(sink.events().len(), 1);
//! ```
#![deny(missing_docs)]

use std::sync::Mutex;

use serde::Serialize;

/// Identifies a stage of an image in events.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct StageId {
    /// The image name (`~` for the nameless image).
    pub image: String,
    /// The stage name.
    pub stage: String,
}

/// Which output stream a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output (and standard error: build containers merge them, as werf does).
    Stdout,
    /// strata's own commentary about the step (the echoed command).
    Info,
}

/// One thing that happened during a build.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The build starts; lists every image and its stages in order.
    BuildStarted {
        /// `(image, stages)` pairs.
        images: Vec<(String, Vec<String>)>,
    },
    /// A stage's digest is known.
    StageDigest {
        /// Which stage.
        #[serde(flatten)]
        id: StageId,
        /// The stage digest (64 hex).
        digest: String,
    },
    /// A stage was found in the cache and will not run.
    StageCached {
        /// Which stage.
        #[serde(flatten)]
        id: StageId,
        /// The stage digest.
        digest: String,
    },
    /// A stage starts running.
    StageStarted {
        /// Which stage.
        #[serde(flatten)]
        id: StageId,
        /// The stage digest.
        digest: String,
    },
    /// One line of a running stage's output.
    Log {
        /// Which stage.
        #[serde(flatten)]
        id: StageId,
        /// The stream.
        stream: Stream,
        /// The line, without its newline.
        line: String,
    },
    /// A stage finished and was committed.
    StageBuilt {
        /// Which stage.
        #[serde(flatten)]
        id: StageId,
        /// The stage digest.
        digest: String,
        /// Wall time in milliseconds.
        millis: u64,
        /// Of that, milliseconds spent turning the changes into a layer and committing it.
        commit_millis: u64,
        /// Size of the stage's own layer in bytes (0 when it made none).
        layer_bytes: u64,
    },
    /// A stage turned out to be empty once its parent existed, and was skipped.
    StageSkipped {
        /// Which stage.
        #[serde(flatten)]
        id: StageId,
    },
    /// A stage failed.
    StageFailed {
        /// Which stage.
        #[serde(flatten)]
        id: StageId,
        /// Short reason.
        message: String,
    },
    /// An image is complete.
    ImageDone {
        /// The image name.
        image: String,
        /// Digest of its last stage.
        digest: String,
    },
    /// Waiting for something another process holds.
    Waiting {
        /// What for.
        what: String,
    },
    /// The user is about to work interactively (a shell, the debugger): renderers stop drawing
    /// until the matching `Interactive { started: false }`.
    Interactive {
        /// True when it starts, false when it ends.
        started: bool,
        /// What it is, for example `shell in app/install`.
        what: String,
    },
    /// Free-form information.
    Note {
        /// The text.
        message: String,
    },
    /// The build ended.
    BuildFinished {
        /// Stages that ran.
        built: usize,
        /// Stages reused from the cache.
        cached: usize,
        /// Wall time in milliseconds.
        millis: u64,
        /// Whether it succeeded.
        ok: bool,
    },
}

/// Receives events; shared by the threads of a parallel build.
pub trait Sink: Send + Sync {
    /// Handles one event.
    fn event(&self, event: Event);
}

/// A sink that drops everything.
#[derive(Debug, Default)]
pub struct Discard;

impl Sink for Discard {
    fn event(&self, _: Event) {}
}

/// A sink that keeps every event, for tests and summaries.
#[derive(Debug, Default)]
pub struct Collect {
    events: Mutex<Vec<Event>>,
}

impl Collect {
    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .expect("no thread panics while holding the event list")
            .clone()
    }
}

impl Sink for Collect {
    fn event(&self, event: Event) {
        self.events
            .lock()
            .expect("no thread panics while holding the event list")
            .push(event);
    }
}
