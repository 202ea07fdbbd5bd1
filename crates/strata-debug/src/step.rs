//! The step debugger's breakpoints: where a build pauses, and whether it pauses at a stop.
//!
//! A *stop* is a place the build can pause at: before a stage, before each line of a stage
//! script (werf's `shell:` lists run line by line while debugged), and at a cached stage (its
//! result shown, since its steps ran in the build that cached it). The engine asks
//! [`Breakpoints::hit`] at every stop; the user's specs ([`BreakSpec`], buildg's `break`) and
//! `next` decide. The engine owns what a pause does (the monitor, or an editor over DAP).

use std::fmt;
use std::path::Path;
use std::sync::Mutex;

/// Where to pause, as the user writes it (`--break SPEC`, the monitor's `break SPEC`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BreakSpec {
    /// `IMAGE/STAGE` or `STAGE` (every image): before the stage.
    Stage {
        /// The image (`None`: every image).
        image: Option<String>,
        /// The stage.
        stage: String,
    },
    /// `FILE:LINE`: before the Dockerfile instruction or the stage script line written there.
    Line {
        /// The file as written (matched against the end of the config's path).
        file: String,
        /// The line, from 1.
        line: usize,
    },
    /// `on-fail`: where a step fails (the monitor on the failure).
    OnFail,
    /// `all`: at every stop.
    All,
}

impl std::str::FromStr for BreakSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}` is not a breakpoint: write IMAGE/STAGE, STAGE, FILE:LINE, on-fail or all"
            )
        };
        match s {
            "on-fail" => return Ok(BreakSpec::OnFail),
            "all" => return Ok(BreakSpec::All),
            "" => return Err(bad()),
            _ => {}
        }
        if let Some((file, line)) = s.rsplit_once(':') {
            let line: usize = line.parse().map_err(|_| bad())?;
            if file.is_empty() || line == 0 {
                return Err(bad());
            }
            return Ok(BreakSpec::Line {
                file: file.to_string(),
                line,
            });
        }
        let (image, stage) = match s.rsplit_once('/') {
            Some(("*", stage)) => (None, stage),
            Some((image, stage)) => (Some(image.to_string()), stage),
            None => (None, s),
        };
        if stage.is_empty() || image.as_deref() == Some("") {
            return Err(bad());
        }
        Ok(BreakSpec::Stage {
            image,
            stage: stage.to_string(),
        })
    }
}

impl fmt::Display for BreakSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BreakSpec::Stage { image: None, stage } => write!(f, "{stage}"),
            BreakSpec::Stage {
                image: Some(image),
                stage,
            } => write!(f, "{image}/{stage}"),
            BreakSpec::Line { file, line } => write!(f, "{file}:{line}"),
            BreakSpec::OnFail => f.write_str("on-fail"),
            BreakSpec::All => f.write_str("all"),
        }
    }
}

/// A place the build can pause at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stop {
    /// The image being built.
    pub image: String,
    /// The stage.
    pub stage: String,
    /// The file the step is written in: its path and how messages name it.
    pub file: Option<(std::path::PathBuf, String)>,
    /// The lines (from 1, inclusive) the stop stands for: a stage script line's, a
    /// Dockerfile instruction's, every line of a cached stage's steps.
    pub lines: Option<(usize, usize)>,
    /// What runs next, as the user wrote it (the line, the instruction).
    pub what: String,
    /// The stage is cached: the state is its result, and going on does not run it.
    pub cached: bool,
}

impl Stop {
    fn matches(&self, spec: &BreakSpec) -> bool {
        match spec {
            BreakSpec::All => true,
            BreakSpec::OnFail => false,
            BreakSpec::Stage { image, stage } => {
                *stage == self.stage && image.as_deref().is_none_or(|i| i == self.image)
            }
            BreakSpec::Line { file, line } => {
                let (Some((path, name)), Some((first, last))) = (&self.file, self.lines) else {
                    return false;
                };
                (first..=last).contains(line) && same_file(file, path, name)
            }
        }
    }
}

/// Whether the file a user named (`written`) is the config file at `path` (named `name` in
/// messages): the same name, or a path the config's ends with, or the same file.
pub fn same_file(written: &str, path: &Path, name: &str) -> bool {
    written == name
        || path.ends_with(written)
        || std::fs::canonicalize(written)
            .ok()
            .zip(std::fs::canonicalize(path).ok())
            .is_some_and(|(a, b)| a == b)
}

/// Why the build paused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The breakpoint with this key.
    Breakpoint(usize),
    /// `next` (or DAP's `stopOnEntry` for the first stop).
    Step,
}

/// What the user chose at a pause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Run one step (one stage script line) and pause again.
    Next,
    /// Run until the next breakpoint.
    Continue,
    /// End the build here.
    Stop,
}

/// The breakpoints of a build and whether it is stepping; shared by the build's threads and
/// whatever takes the user's commands. Keys count from 1 and are never reused.
#[derive(Debug, Default)]
pub struct Breakpoints {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    list: Vec<(usize, BreakSpec)>,
    last_key: usize,
    stepping: bool,
}

impl Breakpoints {
    /// Breakpoints at `specs`; `step` pauses at the first stop too.
    pub fn new(specs: impl IntoIterator<Item = BreakSpec>, step: bool) -> Breakpoints {
        let bp = Breakpoints::default();
        for spec in specs {
            bp.add(spec);
        }
        bp.set_stepping(step);
        bp
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a breakpoint; returns its key (an equal one already set keeps its key).
    pub fn add(&self, spec: BreakSpec) -> usize {
        let mut inner = self.lock();
        if let Some((key, _)) = inner.list.iter().find(|(_, s)| *s == spec) {
            return *key;
        }
        inner.last_key += 1;
        let key = inner.last_key;
        inner.list.push((key, spec));
        key
    }

    /// Removes the breakpoint `key`; false if there is none.
    pub fn clear(&self, key: usize) -> bool {
        let mut inner = self.lock();
        let before = inner.list.len();
        inner.list.retain(|(k, _)| *k != key);
        inner.list.len() != before
    }

    /// Removes every breakpoint of a kind `keep` says no to (DAP's `setBreakpoints` replaces
    /// a file's line breakpoints).
    pub fn retain(&self, keep: impl Fn(&BreakSpec) -> bool) {
        self.lock().list.retain(|(_, s)| keep(s));
    }

    /// The breakpoints by key.
    pub fn list(&self) -> Vec<(usize, BreakSpec)> {
        self.lock().list.clone()
    }

    /// Makes the next stop pause (`next`) or only breakpoints (`continue`).
    pub fn set_stepping(&self, stepping: bool) {
        self.lock().stepping = stepping;
    }

    /// Whether `on-fail` is set.
    pub fn on_fail(&self) -> bool {
        self.lock()
            .list
            .iter()
            .any(|(_, s)| *s == BreakSpec::OnFail)
    }

    /// Whether the build pauses at `stop`, and why; a pause for a step ends the stepping
    /// (the user's choice at the pause sets it again).
    pub fn hit(&self, stop: &Stop) -> Option<Reason> {
        let mut inner = self.lock();
        if inner.stepping {
            inner.stepping = false;
            return Some(Reason::Step);
        }
        inner
            .list
            .iter()
            .find(|(_, spec)| stop.matches(spec))
            .map(|(key, _)| Reason::Breakpoint(*key))
    }

    /// Whether some stop of `image`'s `stage` may pause: the engine looks up a cached stage's
    /// state only then.
    pub fn may_stop(&self, image: &str, stage: &str) -> bool {
        let inner = self.lock();
        inner.stepping
            || inner.list.iter().any(|(_, spec)| match spec {
                BreakSpec::Stage { .. } => Stop {
                    image: image.into(),
                    stage: stage.into(),
                    file: None,
                    lines: None,
                    what: String::new(),
                    cached: false,
                }
                .matches(spec),
                BreakSpec::OnFail => false,
                BreakSpec::Line { .. } | BreakSpec::All => true,
            })
    }

    /// Applies the user's choice at a pause.
    pub fn resume(&self, resume: Resume) {
        self.set_stepping(resume == Resume::Next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stop(stage: &str, lines: Option<(usize, usize)>) -> Stop {
        Stop {
            image: "app".into(),
            stage: stage.into(),
            file: Some(("/work/proj/werf.yaml".into(), "werf.yaml".into())),
            lines,
            what: "make".into(),
            cached: false,
        }
    }

    #[test]
    fn specs_parse_and_print_back() {
        for s in [
            "app/install",
            "install",
            "werf.yaml:7",
            "sub/Dockerfile:3",
            "on-fail",
            "all",
        ] {
            let spec: BreakSpec = s.parse().unwrap();
            assert_eq!(spec.to_string(), s);
        }
        assert_eq!(
            "*/setup".parse::<BreakSpec>(),
            Ok(BreakSpec::Stage {
                image: None,
                stage: "setup".into()
            })
        );
        for bad in ["", "werf.yaml:0", ":3", "app/", "/x"] {
            let err = bad.parse::<BreakSpec>().unwrap_err();
            assert!(err.contains("FILE:LINE"), "{err}");
        }
    }

    #[test]
    fn breakpoints_match_stages_and_lines_and_stepping_pauses_once() {
        let bp = Breakpoints::new(["werf.yaml:7".parse().unwrap()], false);
        assert_eq!(bp.hit(&stop("install", Some((5, 6)))), None);
        assert_eq!(
            bp.hit(&stop("install", Some((7, 7)))),
            Some(Reason::Breakpoint(1))
        );
        assert_eq!(bp.hit(&stop("install", None)), None);
        let key = bp.add("app/setup".parse().unwrap());
        assert_eq!(key, 2);
        assert_eq!(bp.add("app/setup".parse().unwrap()), 2, "no duplicate");
        assert_eq!(bp.hit(&stop("setup", None)), Some(Reason::Breakpoint(2)));
        assert!(
            bp.may_stop("app", "anything"),
            "a line breakpoint may be anywhere"
        );
        assert!(bp.clear(1));
        assert!(!bp.clear(1));
        assert!(!bp.may_stop("app", "install"));
        assert!(bp.may_stop("app", "setup"));
        bp.resume(Resume::Next);
        assert!(bp.may_stop("other", "x"));
        assert_eq!(bp.hit(&stop("x", None)), Some(Reason::Step));
        assert_eq!(bp.hit(&stop("x", None)), None, "one step, one pause");
        let bp = Breakpoints::new(["proj/werf.yaml:3".parse().unwrap()], false);
        assert!(
            bp.hit(&stop("x", Some((3, 3)))).is_some(),
            "a path suffix names it"
        );
        let bp = Breakpoints::new(["other.yaml:3".parse().unwrap()], false);
        assert!(bp.hit(&stop("x", Some((3, 3)))).is_none());
    }
}
