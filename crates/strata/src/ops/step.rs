//! The step debugger of a build: `--break SPEC`, `next` and `continue`, in the monitor or
//! in an editor over the Debug Adapter Protocol.
//!
//! # Where a build pauses
//!
//! | stop | when | the paused state |
//! |---|---|---|
//! | before a stage the build runs ([`At::Stage`]) | before its first step (a Dockerfile instruction; a stage script's first line) | the parent's result |
//! | before line N > 1 of a stage script ([`At::Line`]) | the lines before it ran | the stage so far over its parent (upper) |
//! | at a cached stage | where the stage would run | the cached result: its own layer over its parent's |
//!
//! The worker asks [`Stepper`] at the first two (as [`Stops`]), the solver's hooks at the
//! third ([`super::debug::Introspection`]). A breakpoint on any line of a cached stage pauses
//! at that stage: its lines ran in the build that cached it, and going on does not run them.
//!
//! # Same result
//!
//! A pause changes nothing the stage commits: the debugger's containers write into their own
//! session uppers (see [`strata_debug::Session`]), the stage's upper is only ever their lower,
//! and a stage script run in pieces carries its shell from piece to piece (see
//! [`crate::worker::Stops`]), so the stage digest and the layer's content are an undebugged
//! build's. Images build one at a time while debugged, so a pause is the whole build's.

use std::path::Path;

use anyhow::Context as _;
use std::sync::Mutex;

pub use strata_debug::step::BreakSpec;
use strata_debug::step::{Breakpoints, Reason, Resume, Stop};
use strata_plan::{Op, RunShell, SourceMap, Span, Stage};
use strata_progress::{Event, Sink};
use strata_sandbox::{ContainerSpec, Sandbox};
use strata_solver::{ExecError, StageJob, StageState};
use strata_store::{LocalStore, Store};

use super::debug::DebugIo;
use crate::worker::{At, LocalWorker, Stops};

/// Takes the user's commands at a pause: the monitor ([`Monitor`]) or an editor (DAP).
pub trait Frontend: Sync {
    /// The build is paused at `pause`; returns what the user chose. An error ends the build.
    fn pause(&self, pause: &Pause<'_>) -> anyhow::Result<Resume>;
}

/// A build paused at a stop.
pub struct Pause<'a> {
    /// Where.
    pub stop: &'a Stop,
    /// Why, in words (`breakpoint 1: werf.yaml:7`, `step`), with a cached stage said so.
    pub why: String,
    /// The reason.
    pub reason: Reason,
    /// The paused state as the monitor shows it: `spec` its container (the stage so far as
    /// the upper over the stage's base), `command` what runs next, `location` and `listing`
    /// the source.
    pub view: strata_debug::Failure,
    /// The build's breakpoints (`break`, `clear`, DAP's `setBreakpoints` change them).
    pub breakpoints: &'a Breakpoints,
    /// The sandbox to look inside with.
    pub sandbox: &'a Sandbox,
    /// A dir private to this pause, removed after it.
    pub scratch: &'a Path,
    /// The stages of the image so far, oldest first, for a stack of frames.
    pub stages: Vec<String>,
    /// The stage's source span, for an editor's stack frame.
    pub stage_span: Option<(String, usize)>,
}

/// The step debugger of one build (see the module docs).
pub struct Stepper<'a> {
    breakpoints: &'a Breakpoints,
    frontend: &'a dyn Frontend,
    sandbox: &'a Sandbox,
    store: &'a LocalStore,
    /// The sources of the plan being built, set once it is loaded.
    sources: Mutex<SourceMap>,
}

impl<'a> Stepper<'a> {
    /// A step debugger pausing where `breakpoints` say, at `frontend`.
    pub fn new(
        breakpoints: &'a Breakpoints,
        frontend: &'a dyn Frontend,
        sandbox: &'a Sandbox,
        store: &'a LocalStore,
    ) -> Stepper<'a> {
        Stepper {
            breakpoints,
            frontend,
            sandbox,
            store,
            sources: Mutex::new(SourceMap::default()),
        }
    }

    /// The plan's sources, for the locations of stops.
    pub fn set_sources(&self, sources: &SourceMap) {
        *self.sources.lock().unwrap_or_else(|e| e.into_inner()) = sources.clone();
    }

    /// The breakpoints.
    pub fn breakpoints(&self) -> &'a Breakpoints {
        self.breakpoints
    }

    fn stop(&self, job: &StageJob<'_>, at: At, cached: bool) -> (Stop, Option<Span>) {
        let sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        let stage = job.stage;
        let span = match at {
            At::Line { step, command } => command_span(stage, step, command),
            At::Stage => first_span(stage),
        };
        let what = match (cached, at) {
            (true, _) => "nothing: the stage is cached (its result is the paused state)".into(),
            (false, At::Line { step, command }) => match stage.steps.get(step).map(|s| &s.op) {
                Some(Op::Run(run)) => run.commands.get(command).map(|c| c.text.clone()),
                _ => None,
            }
            .unwrap_or_default(),
            (false, At::Stage) => span
                .map(|s| sources.text(s).to_string())
                .unwrap_or_else(|| format!("stage {}", stage.name)),
        };
        let lines = |span: Span| {
            (
                sources.line_col(span.file, span.start).line,
                sources.line_col(span.file, span.end.max(span.start)).line,
            )
        };
        let file = span.map(|s| {
            let f = sources.file(s.file);
            (f.path.clone(), f.name.clone())
        });
        // A cached stage stands for every line of it in the stage's file.
        let lines = match (cached, span) {
            (true, Some(first)) => all_spans(stage)
                .filter(|s| s.file == first.file)
                .map(lines)
                .reduce(|(a, b), (c, d)| (a.min(c), b.max(d))),
            (_, span) => span.map(lines),
        };
        let stop = Stop {
            image: job.image_name.to_string(),
            stage: stage.name.clone(),
            file,
            lines,
            what: what.lines().next().unwrap_or_default().to_string(),
            cached,
        };
        (stop, span)
    }

    /// Pauses at `stop` in `spec`'s state; false when the user stopped the build.
    fn pause_at(
        &self,
        job: &StageJob<'_>,
        (stop, span): (Stop, Option<Span>),
        reason: Reason,
        spec: ContainerSpec,
    ) -> anyhow::Result<bool> {
        let (location, listing, stage_span) = {
            let sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
            let stage_span = job.stage.span.map(|s| {
                (
                    sources.file(s.file).path.display().to_string(),
                    sources.line_col(s.file, s.start).line,
                )
            });
            (
                span.map(|s| sources.snippet(s, "")),
                span.map(|s| strata_debug::listing(&sources, s, 3)),
                stage_span,
            )
        };
        let mut why = match reason {
            Reason::Step => "step".to_string(),
            Reason::Breakpoint(key) => {
                let spec = self
                    .breakpoints
                    .list()
                    .into_iter()
                    .find(|(k, _)| *k == key)
                    .map_or(String::new(), |(_, s)| format!(": {s}"));
                format!("breakpoint {key}{spec}")
            }
        };
        if stop.cached {
            why.push_str("; the stage is cached, this is its result");
        }
        let view = strata_debug::Failure {
            image: stop.image.clone(),
            stage: stop.stage.clone(),
            command: stop.what.clone(),
            exit_code: 0,
            output_tail: Vec::new(),
            location,
            listing,
            spec,
            rerun_args: Vec::new(),
            step_args: Vec::new(),
            source_side: None,
        };
        let scratch = self.store.scratch("debugger")?;
        let stages = job
            .image
            .stages
            .iter()
            .take_while(|s| s.name != job.stage.name)
            .map(|s| s.name.clone())
            .collect();
        let pause = Pause {
            stop: &stop,
            why,
            reason,
            view,
            breakpoints: self.breakpoints,
            sandbox: self.sandbox,
            scratch: scratch.path(),
            stages,
            stage_span,
        };
        let resume = self.frontend.pause(&pause)?;
        self.breakpoints.resume(resume);
        Ok(resume != Resume::Stop)
    }

    /// The solver's hook at a cached stage (see [`strata_solver::Hooks::at_cached_stage`]):
    /// pauses there with the cached result when a breakpoint or `next` says so.
    pub(crate) fn at_cached_stage(
        &self,
        worker: &LocalWorker<'_>,
        job: &StageJob<'_>,
        state: &StageState,
        progress: &dyn Sink,
    ) -> bool {
        let stop = self.stop(job, At::Stage, true);
        let Some(reason) = self.breakpoints.hit(&stop.0) else {
            return true;
        };
        let paused = (|| {
            let dir = self.store.scratch("pause")?;
            let mut spec = worker.state_spec(job, Some(&state.manifest), Vec::new(), dir.path())?;
            // The stage's own layer as the upper: `diff` shows what it changed, `--base` the
            // state before it.
            let layers = |digest: Option<&strata_digest::Digest>| -> anyhow::Result<usize> {
                Ok(match digest {
                    Some(d) => self.store.stage(d)?.map_or(0, |r| r.layers.len()),
                    None => 0,
                })
            };
            let own = layers(Some(&job.digest))?.saturating_sub(layers(job.parent_stage.as_ref())?);
            if own == 1 && !spec.lowers.is_empty() {
                spec.upper = spec.lowers.remove(0);
            }
            self.pause_at(job, stop, reason, spec)
        })();
        match paused {
            Ok(go_on) => go_on,
            Err(e) => {
                progress.event(Event::Note {
                    message: format!(
                        "{}/{}: cannot pause at the cached stage: {e:#}",
                        job.image_name, job.stage.name
                    ),
                });
                true
            }
        }
    }
}

impl Stops for Stepper<'_> {
    fn hit(&self, job: &StageJob<'_>, at: At) -> Option<Reason> {
        self.breakpoints.hit(&self.stop(job, at, false).0)
    }

    fn pause(
        &self,
        job: &StageJob<'_>,
        at: At,
        reason: Reason,
        spec: ContainerSpec,
    ) -> Result<(), ExecError> {
        match self.pause_at(job, self.stop(job, at, false), reason, spec) {
            Ok(true) => Ok(()),
            Ok(false) => Err(ExecError::Cancelled),
            Err(e) => Err(ExecError::executor(format!("the debugger: {e:#}"))),
        }
    }
}

/// The span of line `command` of the stage script of step `step`.
fn command_span(stage: &Stage, step: usize, command: usize) -> Option<Span> {
    match stage.steps.get(step).map(|s| &s.op) {
        Some(Op::Run(run)) => run.commands.get(command).and_then(|c| c.span),
        _ => None,
    }
    .or(stage.steps.get(step).and_then(|s| s.span))
}

/// Where the stage's first step is written: a stage script's first line, else the stage
/// (a Dockerfile instruction), else its first step with a place.
fn first_span(stage: &Stage) -> Option<Span> {
    let first = stage.steps.iter().find(|s| !matches!(s.op, Op::Config(_)));
    match first.map(|s| &s.op) {
        Some(Op::Run(run)) if run.shell == RunShell::ToolboxScript => {
            run.commands.first().and_then(|c| c.span)
        }
        _ => None,
    }
    .or(stage.span)
    .or(stage.steps.iter().find_map(|s| s.span))
}

/// Every span of a stage: its own, its steps', their commands'.
fn all_spans(stage: &Stage) -> impl Iterator<Item = Span> + '_ {
    stage
        .span
        .into_iter()
        .chain(stage.steps.iter().flat_map(|s| {
            let commands = match &s.op {
                Op::Run(run) => run.commands.iter().filter_map(|c| c.span).collect(),
                _ => Vec::new(),
            };
            s.span.into_iter().chain(commands)
        }))
}

/// The monitor at a pause: the build's debugger input and output.
pub struct Monitor<'a, 'io> {
    /// Where the monitor reads and writes (shared with the monitor on a failure).
    pub io: &'a Mutex<Option<DebugIo<'io>>>,
    /// Progress, told while the monitor has the terminal.
    pub progress: &'a dyn Sink,
}

impl Frontend for Monitor<'_, '_> {
    fn pause(&self, pause: &Pause<'_>) -> anyhow::Result<Resume> {
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        let Some(io) = io.as_mut() else {
            anyhow::bail!("the build paused, and there is no terminal to debug it on");
        };
        let mut session =
            strata_debug::Session::new(pause.sandbox, pause.view.clone(), pause.scratch.into())?
                .paused(pause.breakpoints, pause.why.clone());
        let what = format!("debugger at {}/{}", pause.stop.image, pause.stop.stage);
        self.progress.event(Event::Interactive {
            started: true,
            what: what.clone(),
        });
        let outcome = session.monitor(io.input, io.output);
        self.progress.event(Event::Interactive {
            started: false,
            what,
        });
        Ok(match outcome? {
            strata_debug::Outcome::Next => Resume::Next,
            strata_debug::Outcome::Continue => Resume::Continue,
            strata_debug::Outcome::Exit | strata_debug::Outcome::Reload => Resume::Stop,
        })
    }
}

/// Checks `specs` against the plan: a stage no image has, a file the plan was not made of,
/// or a line no step is written on is an error naming what there is.
pub fn check(plan: &strata_plan::Plan, specs: &[BreakSpec]) -> anyhow::Result<()> {
    let stages = || {
        plan.images
            .iter()
            .flat_map(|i| i.stages.iter().map(move |s| (i, s)))
    };
    for spec in specs {
        match spec {
            BreakSpec::Stage { image, stage } => {
                let found = stages().any(|(i, s)| {
                    s.name == *stage && image.as_deref().is_none_or(|name| i.name.matches(name))
                });
                if !found {
                    let mut names: Vec<String> = stages()
                        .map(|(i, s)| format!("{}/{}", i.name, s.name))
                        .collect();
                    names.dedup();
                    anyhow::bail!(
                        "--break {spec}: no such stage; stages are: {}",
                        names.join(", ")
                    );
                }
            }
            BreakSpec::Line { file, line } => {
                let spans: Vec<Span> = stages()
                    .flat_map(|(_, s)| all_spans(s))
                    .filter(|s| {
                        let f = plan.sources.file(s.file);
                        strata_debug::step::same_file(file, &f.path, &f.name)
                    })
                    .collect();
                if spans.is_empty() {
                    anyhow::bail!("--break {spec}: the build has no steps written in `{file}`");
                }
                let lines = |s: &Span| {
                    let lc = |at| plan.sources.line_col(s.file, at).line;
                    (lc(s.start), lc(s.end.max(s.start)))
                };
                if !spans.iter().map(lines).any(|(a, b)| (a..=b).contains(line)) {
                    let mut starts: Vec<usize> = spans.iter().map(|s| lines(s).0).collect();
                    starts.sort_unstable();
                    starts.dedup();
                    let starts: Vec<String> = starts.iter().map(usize::to_string).collect();
                    anyhow::bail!(
                        "--break {spec}: no step is written on line {line} of `{file}`; steps \
                         start on lines {}",
                        starts.join(", ")
                    );
                }
            }
            BreakSpec::OnFail | BreakSpec::All => {}
        }
    }
    Ok(())
}

/// `strata debug-shell SPEC`: an interactive shell in a paused state an editor asked for
/// (DAP's `evaluate shell`), its changes dropped; its exit code.
pub fn shell(ctx: &crate::Context, spec: &Path) -> anyhow::Result<i32> {
    let text = std::fs::read(spec).with_context(|| format!("read {}", spec.display()))?;
    let spec: ContainerSpec = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a paused state", spec.display()))?;
    let scratch = ctx.store.scratch("shell")?;
    Ok(strata_debug::shell(&ctx.sandbox, &spec, scratch.path())?.code())
}

/// Whether `specs` ask for a step debugger (anything but `on-fail`, which is the monitor on
/// a failure).
pub fn steps(specs: &[BreakSpec]) -> bool {
    specs.iter().any(|s| *s != BreakSpec::OnFail)
}
