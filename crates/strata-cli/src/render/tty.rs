//! The live terminal view: every image with its stages (waiting, running with elapsed time and
//! the last output lines, cached, built, failed), redrawn in place ten times a second.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use strata_progress::{Event, Sink};

use super::progress::{Renderer, plain_line};
use super::{seconds, size};

const TAIL_LINES: usize = 3;

enum Status {
    Waiting,
    Cached,
    Running {
        since: Instant,
        tail: VecDeque<String>,
    },
    Built {
        millis: u64,
        layer_bytes: u64,
    },
    Failed,
    Skipped,
}

struct StageRow {
    name: String,
    digest: String,
    status: Status,
}

#[derive(Default)]
struct View {
    images: Vec<(String, Vec<StageRow>)>,
    notes: Vec<String>,
    summary: Option<String>,
    drawn_lines: usize,
    done: bool,
    paused: bool,
    /// Whether to color (off when `NO_COLOR` is set: <https://no-color.org>).
    color: bool,
}

/// The live view; a background thread redraws it.
pub struct Live {
    view: Arc<(Mutex<View>, Condvar)>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Live {
    /// Starts the redraw thread.
    pub fn start() -> Live {
        let color = super::color();
        let view = Arc::new((
            Mutex::new(View {
                color,
                ..View::default()
            }),
            Condvar::new(),
        ));
        let shared = Arc::clone(&view);
        let thread = std::thread::spawn(move || {
            let (lock, wake) = &*shared;
            let mut v = lock
                .lock()
                .expect("the view lock is never poisoned: drawing does not panic");
            loop {
                if !v.paused {
                    draw(&mut v);
                }
                if v.done {
                    break;
                }
                v = wake
                    .wait_timeout(v, Duration::from_millis(100))
                    .expect("the view lock is never poisoned")
                    .0;
            }
        });
        Live {
            view,
            thread: Mutex::new(Some(thread)),
        }
    }

    fn update(&self, f: impl FnOnce(&mut View)) {
        let mut v = self.view.0.lock().expect("the view lock is never poisoned");
        f(&mut v);
    }
}

impl Sink for Live {
    fn event(&self, event: Event) {
        self.update(|v| match &event {
            Event::BuildStarted { images } => {
                // A build made in rounds (a plan waiting for its dependencies' values) starts
                // again with every image: those of the earlier rounds keep their rows.
                let mut earlier = std::mem::take(&mut v.images);
                v.images = images
                    .iter()
                    .map(|(image, stages)| {
                        if let Some(k) = earlier.iter().position(|(i, _)| i == image) {
                            return earlier.swap_remove(k);
                        }
                        let rows = stages
                            .iter()
                            .map(|s| StageRow {
                                name: s.clone(),
                                digest: String::new(),
                                status: Status::Waiting,
                            })
                            .collect();
                        (image.clone(), rows)
                    })
                    .collect();
            }
            Event::StageDigest { id, digest } => {
                if let Some(row) = find(v, &id.image, &id.stage) {
                    row.digest = digest[..12].to_string();
                }
            }
            Event::StageCached { id, .. } => set(v, &id.image, &id.stage, Status::Cached),
            Event::StageStarted { id, .. } => set(
                v,
                &id.image,
                &id.stage,
                Status::Running {
                    since: Instant::now(),
                    tail: VecDeque::new(),
                },
            ),
            Event::Log { id, line, .. } => {
                if let Some(row) = find(v, &id.image, &id.stage)
                    && let Status::Running { tail, .. } = &mut row.status
                {
                    if tail.len() == TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line.clone());
                }
            }
            Event::StageBuilt {
                id,
                millis,
                layer_bytes,
                ..
            } => set(
                v,
                &id.image,
                &id.stage,
                Status::Built {
                    millis: *millis,
                    layer_bytes: *layer_bytes,
                },
            ),
            Event::StageFailed { id, .. } => set(v, &id.image, &id.stage, Status::Failed),
            Event::StageSkipped { id } => set(v, &id.image, &id.stage, Status::Skipped),
            Event::BuildFinished { .. } => v.summary = plain_line(&event),
            Event::Waiting { .. } | Event::Note { .. } => v.notes.extend(plain_line(&event)),
            Event::Interactive { started, .. } => {
                // Leave the screen to the shell: draw once more, then stop until it ends.
                if *started {
                    draw(v);
                    v.drawn_lines = 0;
                }
                v.paused = *started;
            }
            Event::ImageDone { .. } => {}
        });
    }
}

impl Renderer for Live {
    fn finish(&self) {
        self.update(|v| v.done = true);
        self.view.1.notify_all();
        if let Some(t) = self
            .thread
            .lock()
            .expect("the thread slot is never poisoned")
            .take()
        {
            let _ = t.join();
        }
    }
}

fn find<'a>(v: &'a mut View, image: &str, stage: &str) -> Option<&'a mut StageRow> {
    v.images
        .iter_mut()
        .find(|(i, _)| i == image)
        .and_then(|(_, s)| s.iter_mut().find(|r| r.name == stage))
}

fn set(v: &mut View, image: &str, stage: &str, status: Status) {
    if let Some(row) = find(v, image, stage) {
        row.status = status;
    }
}

fn draw(v: &mut View) {
    let width = crossterm::terminal::size()
        .map(|(w, _)| w as usize)
        .unwrap_or(100)
        .max(20);
    // SGR codes: 1 bold, 2 dim, 31 red, 32 green, 33 yellow, 36 cyan.
    let paint = |sgr: &str, text: &str| match v.color {
        true => format!("\x1b[{sgr}m{text}\x1b[0m"),
        false => text.to_string(),
    };
    let mut lines = Vec::new();
    lines.append(&mut v.notes);
    let permanent = lines.len();
    for (image, stages) in &v.images {
        lines.push(paint("1", image));
        for row in stages {
            let (mark, detail) = match &row.status {
                Status::Waiting => (paint("2", "·"), String::new()),
                Status::Cached => (paint("36", "="), "cached".into()),
                Status::Running { since, .. } => (
                    paint("33", "▸"),
                    format!("running {}", seconds(since.elapsed().as_millis() as u64)),
                ),
                Status::Built {
                    millis,
                    layer_bytes,
                } => (
                    paint("32", "✓"),
                    format!("built in {} ({})", seconds(*millis), size(*layer_bytes)),
                ),
                Status::Failed => (paint("31", "✗"), "failed".into()),
                Status::Skipped => (paint("2", "-"), "skipped".into()),
            };
            lines.push(format!(
                "  {mark} {:<20} {:<12} {detail}",
                row.name, row.digest
            ));
            if let Status::Running { tail, .. } = &row.status {
                for l in tail {
                    lines.push(format!(
                        "      {}",
                        paint("2", &truncate(l, width.saturating_sub(8)))
                    ));
                }
            }
        }
    }
    if let Some(s) = &v.summary {
        lines.push(s.clone());
    }
    let mut err = std::io::stderr().lock();
    let mut out = String::new();
    if v.drawn_lines > 0 {
        out.push_str(&format!("\x1b[{}F\x1b[J", v.drawn_lines));
    }
    for l in &lines {
        out.push_str(l);
        out.push('\n');
    }
    let _ = err.write_all(out.as_bytes());
    let _ = err.flush();
    v.drawn_lines = lines.len() - permanent;
}

fn truncate(s: &str, max: usize) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).collect();
    if clean.chars().count() <= max {
        clean
    } else {
        clean
            .chars()
            .take(max.saturating_sub(1))
            .collect::<String>()
            + "…"
    }
}
