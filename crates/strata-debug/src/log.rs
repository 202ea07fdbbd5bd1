//! The build's output, kept for the monitor's `log`.
//!
//! The engine [`BuildLog::push`]es every line the build's commands print (the progress
//! events' log lines, the very lines `--progress plain` shows as `image/stage | line`), from
//! whichever thread builds the image, between [`BuildLog::start`] and [`BuildLog::finish`]
//! of each build (a `reload`'s build starts the log afresh): a monitor open in between may
//! see more lines come. The engine also says which images start and end
//! ([`BuildLog::image_started`], [`BuildLog::image_ended`]). `log` prints the kept lines,
//! `log -f` then follows new ones until Ctrl-C or no image builds any more. The last
//! [`KEPT`] lines are kept.

use std::collections::{BTreeSet, VecDeque};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};

/// How many lines the log keeps.
pub const KEPT: usize = 100_000;

/// One line of the build's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The image it came from.
    pub image: String,
    /// The stage.
    pub stage: String,
    /// The line, without its newline.
    pub text: String,
}

impl Line {
    /// Whether `filter` (`IMAGE` or `IMAGE/STAGE`, `None`: everything) takes it.
    fn matches(&self, filter: Option<&str>) -> bool {
        match filter.map(|f| f.split_once('/')) {
            None => true,
            Some(Some((image, stage))) => image == self.image && stage == self.stage,
            Some(None) => filter == Some(self.image.as_str()),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    lines: VecDeque<Line>,
    /// How many lines were dropped from the front (so positions stay valid).
    dropped: usize,
    building: bool,
    /// The images started and not ended.
    running: BTreeSet<String>,
}

/// The build's output; see the module docs. Shared by the build's threads and the monitor.
#[derive(Debug)]
pub struct BuildLog {
    inner: Mutex<Inner>,
    /// Readable when a line came since the last [`BuildLog::drain_wake`].
    wake: OwnedFd,
    wake_write: OwnedFd,
}

/// A position in the log: the lines after it are new.
pub(crate) type Mark = usize;

impl BuildLog {
    /// An empty log.
    pub fn new() -> std::io::Result<BuildLog> {
        use rustix::pipe::PipeFlags;
        let (wake, wake_write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        Ok(BuildLog {
            inner: Mutex::default(),
            wake,
            wake_write,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps one line of `image`'s `stage`.
    pub fn push(&self, image: &str, stage: &str, text: &str) {
        let mut inner = self.lock();
        if inner.lines.len() == KEPT {
            inner.lines.pop_front();
            inner.dropped += 1;
        }
        inner.lines.push_back(Line {
            image: image.to_owned(),
            stage: stage.to_owned(),
            text: text.to_owned(),
        });
        // A full pipe already wakes the follower.
        let _ = rustix::io::write(&self.wake_write, &[1]);
    }

    /// A build starts: the lines of the one before are dropped, and images build (and
    /// print) until [`BuildLog::finish`].
    pub fn start(&self) {
        let mut inner = self.lock();
        inner.dropped += inner.lines.len();
        inner.lines.clear();
        inner.running.clear();
        inner.building = true;
    }

    /// `image` builds (more than once is once).
    pub fn image_started(&self, image: &str) {
        let mut inner = self.lock();
        if !inner.running.contains(image) {
            inner.running.insert(image.to_owned());
        }
    }

    /// `image` is built, or failed.
    pub fn image_ended(&self, image: &str) {
        self.lock().running.remove(image);
        // A full pipe already wakes the follower.
        let _ = rustix::io::write(&self.wake_write, &[1]);
    }

    /// The build ended: no more lines come.
    pub fn finish(&self) {
        self.lock().building = false;
        // A full pipe already wakes the follower.
        let _ = rustix::io::write(&self.wake_write, &[1]);
    }

    /// Whether images still build: the build has not finished, and an image that started
    /// has not ended.
    pub(crate) fn building(&self) -> bool {
        let inner = self.lock();
        inner.building && !inner.running.is_empty()
    }

    /// The lines after `from` that `filter` takes, and the new end.
    pub(crate) fn since(&self, from: Mark, filter: Option<&str>) -> (Vec<Line>, Mark) {
        let inner = self.lock();
        let skip = from.saturating_sub(inner.dropped);
        let lines = inner
            .lines
            .iter()
            .skip(skip)
            .filter(|l| l.matches(filter))
            .cloned()
            .collect();
        (lines, inner.dropped + inner.lines.len())
    }

    /// Readable after a [`BuildLog::push`] or [`BuildLog::finish`].
    pub(crate) fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// Consumes the pending wake-ups.
    pub(crate) fn drain_wake(&self) {
        let mut buf = [0u8; 256];
        while matches!(rustix::io::read(&self.wake, &mut buf), Ok(n) if n > 0) {}
    }
}

/// Writes `lines` as `--progress plain` shows them.
pub(crate) fn write_lines(out: &mut dyn Write, lines: &[Line]) -> std::io::Result<()> {
    for line in lines {
        writeln!(out, "{}/{} | {}", line.image, line.stage, line.text)?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_filtered_by_image_or_stage_and_read_from_a_mark() {
        let log = BuildLog::new().expect("log");
        log.push("app", "install", "one");
        log.push("web", "setup", "two");
        log.push("app", "setup", "three");
        let texts = |lines: Vec<Line>| lines.into_iter().map(|l| l.text).collect::<Vec<_>>();
        assert_eq!(texts(log.since(0, None).0), ["one", "two", "three"]);
        assert_eq!(texts(log.since(0, Some("app")).0), ["one", "three"]);
        assert_eq!(texts(log.since(0, Some("app/setup")).0), ["three"]);
        assert!(log.since(0, Some("ap")).0.is_empty());
        let (_, mark) = log.since(0, None);
        log.push("web", "setup", "four");
        assert_eq!(texts(log.since(mark, None).0), ["four"]);
        // A reload's build starts afresh.
        log.start();
        assert!(!log.building(), "no image started yet");
        log.image_started("app");
        log.image_started("web");
        log.image_ended("app");
        assert!(log.building(), "web still builds");
        assert!(log.since(0, None).0.is_empty());
        log.push("app", "install", "five");
        assert_eq!(texts(log.since(0, None).0), ["five"]);
        log.image_ended("web");
        assert!(!log.building(), "no image builds");
        log.image_started("app");
        log.finish();
        assert!(!log.building());
    }
}
