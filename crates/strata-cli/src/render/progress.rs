//! Progress sinks: plain lines, JSON lines, or the live terminal view.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use strata_progress::{Event, Sink};

use super::{seconds, size};
use crate::args::Progress;

/// A sink the CLI can also tell that the build is over.
pub trait Renderer: Sink {
    /// Draws the final state and releases the terminal.
    fn finish(&self) {}
}

/// The renderer for a `--progress` mode (`auto`: the live view on a terminal outside CI).
pub fn for_mode(mode: Progress) -> Box<dyn Renderer> {
    let terminal = std::io::stderr().is_terminal();
    let tty = terminal && std::env::var_os("CI").is_none();
    match mode {
        Progress::Json => Box::new(Json),
        Progress::Quiet => Box::new(Quiet),
        Progress::Tty if terminal => Box::new(super::tty::Live::start()),
        Progress::Auto if tty => Box::new(super::tty::Live::start()),
        Progress::Tty | Progress::Auto | Progress::Plain => Box::new(Plain::default()),
    }
}

/// No output at all (`--progress quiet`, `strata build -q`).
pub struct Quiet;

impl Sink for Quiet {
    fn event(&self, _: Event) {}
}

impl Renderer for Quiet {}

/// One JSON object per event on stderr.
pub struct Json;

impl Sink for Json {
    fn event(&self, event: Event) {
        if let Ok(line) = serde_json::to_string(&event) {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }
}

impl Renderer for Json {}

/// Plain lines prefixed with `image/stage`, for logs and CI.
#[derive(Default)]
pub struct Plain {
    lock: Mutex<()>,
}

impl Sink for Plain {
    fn event(&self, event: Event) {
        let Some(line) = plain_line(&event) else {
            return;
        };
        let _guard = self.lock.lock();
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

impl Renderer for Plain {}

/// The plain text of an event, if it has one.
pub fn plain_line(event: &Event) -> Option<String> {
    Some(match event {
        Event::StageCached { id, digest } => {
            format!("{}/{}: cached {}", id.image, id.stage, &digest[..12])
        }
        Event::StageStarted { id, digest } => {
            format!("{}/{}: building {}", id.image, id.stage, &digest[..12])
        }
        Event::Log { id, line, .. } => format!("{}/{} | {line}", id.image, id.stage),
        Event::StageBuilt {
            id,
            millis,
            layer_bytes,
            ..
        } => {
            format!(
                "{}/{}: built in {} (layer {})",
                id.image,
                id.stage,
                seconds(*millis),
                size(*layer_bytes)
            )
        }
        Event::StageSkipped { id } => format!("{}/{}: skipped (nothing to do)", id.image, id.stage),
        Event::StageFailed { id, message } => {
            format!("{}/{}: failed: {message}", id.image, id.stage)
        }
        Event::ImageDone { image, digest } => format!("{image}: done {}", &digest[..12]),
        Event::Waiting { what } => format!("waiting: {what}"),
        Event::Note { message } => message.clone(),
        Event::Interactive {
            started: true,
            what,
        } => format!("{what}: interactive (exit the shell to go on)"),
        Event::Interactive {
            started: false,
            what,
        } => format!("{what}: done"),
        Event::BuildFinished {
            built,
            cached,
            millis,
            ok,
        } => format!(
            "{} in {}: {built} stage(s) built, {cached} reused",
            if *ok {
                "build finished"
            } else {
                "build failed"
            },
            seconds(*millis)
        ),
        Event::BuildStarted { .. } | Event::StageDigest { .. } => return None,
    })
}
