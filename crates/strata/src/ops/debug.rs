//! Looking inside builds: werf's introspection flags and the interactive debugger.
//!
//! - `--introspect-stage IMAGE/STAGE` opens a shell in a stage's result once it is built or
//!   reused (`STAGE` or `*/STAGE`: that stage of every image; `~/STAGE`: the nameless image).
//! - `--introspect-error` opens one in the state the failing command left, and
//!   `--introspect-before-error` in the clean state before the failed stage ran anything.
//! - `--debugger` drops into a monitor on a failure ([`strata_debug::Session`]) as soon as
//!   the step fails ([`FailureMonitor`]), while the images already building go on; `reload`
//!   stops them and rebuilds with the same settings.
//! - `strata debug FAILURE` ([`debug_failure`]) opens the same monitor on a failure record
//!   ([`super::failures`]), here or on another machine; `reload` is refused there, since the
//!   build's sources are not.
//!
//! Shells and monitors run on the image's own build thread, so other images keep building; one
//! shell or monitor at a time has the terminal, and while a failure's monitor has it the other
//! images' output goes to the build log (`log`) only, and to the terminal after it. Nothing here writes to the cache: every shell works in its own
//! scratch upper that is thrown away.

use std::io::{BufRead, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, bail};
use strata_plan::Plan;
use strata_progress::{Event, Sink};
use strata_sandbox::Sandbox;
use strata_solver::{Hooks, StageJob, StageState};
use strata_store::LocalStore;

use crate::Context;
use crate::worker::{FailedRun, LocalWorker};

/// How to look inside a build.
#[derive(Clone, Debug, Default)]
pub struct DebugOptions {
    /// `--introspect-stage` targets.
    pub introspect: Vec<IntrospectTarget>,
    /// Open a shell in the failed state.
    pub introspect_error: bool,
    /// Open a shell in the state before the failed stage.
    pub introspect_before_error: bool,
    /// Open the debugger monitor on a failure.
    pub debugger: bool,
    /// An image whose root file system the debugger's shell runs in, with the failed state at
    /// `/debugroot`.
    pub debugger_image: Option<String>,
    /// Keep a failed step as a failure record (after the monitor, if it opens): the CLI asks
    /// for it unless the monitor has a terminal.
    pub keep_failures: bool,
    /// Breakpoints (`--break`): the build pauses there (see [`super::step`]); `on-fail` is
    /// [`DebugOptions::debugger`].
    pub breaks: Vec<strata_debug::step::BreakSpec>,
}

/// One `--introspect-stage` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntrospectTarget {
    /// The image (`None`: every image; `~`: the nameless one).
    pub image: Option<String>,
    /// The stage.
    pub stage: String,
}

impl std::str::FromStr for IntrospectTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (image, stage) = match s.rsplit_once('/') {
            Some(("*", stage)) => (None, stage),
            Some((image, stage)) => (Some(image.to_string()), stage),
            None => (None, s),
        };
        if stage.is_empty() || image.as_deref() == Some("") {
            return Err(format!("`{s}` is not IMAGE/STAGE, STAGE or */STAGE"));
        }
        Ok(IntrospectTarget {
            image,
            stage: stage.to_string(),
        })
    }
}

impl IntrospectTarget {
    fn matches(&self, image: &str, stage: &str) -> bool {
        self.stage == stage && self.image.as_deref().is_none_or(|i| i == image)
    }
}

/// Checks every target against the plan: an unknown image or stage is an error listing the
/// valid ones.
pub fn check_targets(plan: &Plan, targets: &[IntrospectTarget]) -> anyhow::Result<()> {
    for t in targets {
        let images: Vec<_> = match &t.image {
            Some(name) => match plan.image_index(name) {
                Some(i) => vec![&plan.images[i]],
                None => bail!(
                    "--introspect-stage {}/{}: no image `{name}`; images are: {}",
                    name,
                    t.stage,
                    plan.images
                        .iter()
                        .map(|i| i.name.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            None => plan.images.iter().collect(),
        };
        if !images
            .iter()
            .any(|i| i.stages.iter().any(|s| s.name == t.stage))
        {
            let mut stages: Vec<String> = images
                .iter()
                .flat_map(|i| i.stages.iter().map(|s| s.name.clone()))
                .collect();
            stages.dedup();
            bail!(
                "--introspect-stage: no stage `{}` here; stages are: {}",
                t.stage,
                stages.join(", ")
            );
        }
    }
    Ok(())
}

/// The solver hooks that open introspection shells.
pub(crate) struct Introspection<'a, 'io> {
    pub worker: &'a LocalWorker<'a>,
    pub store: &'a LocalStore,
    pub sandbox: &'a Sandbox,
    pub options: &'a DebugOptions,
    pub progress: &'a dyn Sink,
    /// One shell at a time has the terminal.
    pub terminal: Mutex<()>,
    /// The step debugger, when the build has breakpoints.
    pub stepper: Option<&'a super::step::Stepper<'a>>,
    /// The monitor a failure opens, with `--debugger` on a terminal.
    pub failure: Option<&'a FailureMonitor<'a, 'io>>,
}

impl Introspection<'_, '_> {
    fn open(
        &self,
        job: &StageJob<'_>,
        what: String,
        spec: anyhow::Result<(strata_store::Scratch, strata_sandbox::ContainerSpec)>,
    ) {
        let _terminal = self.terminal.lock().unwrap_or_else(|e| e.into_inner());
        if job.stage.steps.iter().any(|s| {
            matches!(&s.op, strata_plan::Op::Run(r) if r.shell == strata_plan::RunShell::Ansible)
        }) {
            self.progress.event(Event::Note {
                message: format!(
                    "{what}: an ansible stage: `{}/bin/ansible-playbook {}` runs its tasks \
                     again (with `--tags {}N` only the N-th); edit a copy of the playbook to try \
                     a change",
                    crate::ansible::MOUNT_POINT,
                    crate::ansible::PLAYBOOK,
                    crate::ansible::TASK_TAG
                ),
            });
        }
        self.progress.event(Event::Interactive {
            started: true,
            what: what.clone(),
        });
        let result = spec.and_then(|(scratch, spec)| {
            let shell_dir = scratch.path().join("shell");
            std::fs::create_dir(&shell_dir)?;
            Ok(strata_debug::shell(self.sandbox, &spec, &shell_dir)?)
        });
        self.progress.event(Event::Interactive {
            started: false,
            what: what.clone(),
        });
        match result {
            Ok(status) => self.progress.event(Event::Note {
                message: format!("{what}: shell exited with code {}", status.code()),
            }),
            Err(e) => self.progress.event(Event::Note {
                message: format!("{what}: cannot open a shell: {e:#}"),
            }),
        }
    }

    fn failed_spec(
        &self,
        error: &strata_solver::Error,
        before: bool,
    ) -> anyhow::Result<(strata_store::Scratch, strata_sandbox::ContainerSpec)> {
        let scratch = self.store.scratch("introspect")?;
        let Some(mut spec) = error
            .kept()
            .and_then(|k| k.downcast_ref::<FailedRun>())
            .map(|f| f.spec.clone())
        else {
            bail!("the failed step left no state to look at");
        };
        if before {
            // The clean state: the failed run's lowers under an empty upper.
            let empty = scratch.path().join("empty");
            std::fs::create_dir(&empty)?;
            spec.upper = empty;
        }
        Ok((scratch, spec))
    }
}

impl Hooks for Introspection<'_, '_> {
    fn wants_stage(&self, image: &str, stage: &str) -> bool {
        self.options
            .introspect
            .iter()
            .any(|t| t.matches(image, stage))
    }

    fn after_stage(&self, job: &StageJob<'_>, state: &StageState) {
        if !self.wants_stage(job.image_name, &job.stage.name) {
            return;
        }
        let spec = (|| {
            let scratch = self.store.scratch("introspect")?;
            let dir = scratch.path().join("state");
            std::fs::create_dir(&dir)?;
            let spec = self
                .worker
                .state_spec(job, Some(&state.manifest), Vec::new(), &dir)?;
            Ok((scratch, spec))
        })();
        self.open(job, format!("{}/{}", job.image_name, job.stage.name), spec);
    }

    fn wants_cached(&self, image: &str, stage: &str) -> bool {
        self.stepper
            .is_some_and(|s| s.breakpoints().may_stop(image, stage))
    }

    fn at_cached_stage(&self, job: &StageJob<'_>, state: &StageState) -> bool {
        match self.stepper {
            Some(stepper) => stepper.at_cached_stage(self.worker, job, state, self.progress),
            None => true,
        }
    }

    fn on_failure(&self, job: &StageJob<'_>, error: &strata_solver::Error) {
        let what = format!("{}/{}", job.image_name, job.stage.name);
        if self.options.introspect_before_error {
            self.open(
                job,
                format!("{what} (before the failed stage)"),
                self.failed_spec(error, true),
            );
        }
        if self.options.introspect_error {
            self.open(
                job,
                format!("{what} (failed state)"),
                self.failed_spec(error, false),
            );
        }
        if let Some(monitor) = self.failure {
            // Not while another image's introspection shell has the terminal.
            let _terminal = self.terminal.lock().unwrap_or_else(|e| e.into_inner());
            monitor.open(error, self.progress);
        }
    }
}

/// The monitor on a failed step, opened by the solver's hook ([`Introspection`]) on the failed
/// image's thread as soon as the step fails, while the images already building go on: one
/// failure's monitor at a time has the terminal (another failed image's waits for it), and
/// the other images' output goes to the build log only while it does ([`Recording::hold`]).
/// `reload` stops the other images through the solve's own flag ([`FailureMonitor::stop`]),
/// which a Ctrl-C sets too.
pub(crate) struct FailureMonitor<'a, 'io> {
    ctx: &'a Context,
    plan: &'a Plan,
    io: &'a Mutex<Option<DebugIo<'io>>>,
    recording: &'a Recording<'a>,
    debugger_image: Option<&'a str>,
    stop: AtomicBool,
    shown: Mutex<Shown>,
}

/// What the monitors of one solve did.
#[derive(Default)]
struct Shown {
    /// Monitors opened.
    count: usize,
    /// The failure `reload` was chosen on.
    reload: Option<strata_debug::Failure>,
    /// Why a monitor could not run; it ends the build.
    error: Option<anyhow::Error>,
}

impl<'a, 'io> FailureMonitor<'a, 'io> {
    /// The monitor of a solve of `plan` on `io`; `recording` is the build's progress.
    pub fn new(
        ctx: &'a Context,
        plan: &'a Plan,
        io: &'a Mutex<Option<DebugIo<'io>>>,
        recording: &'a Recording<'a>,
        debugger_image: Option<&'a str>,
    ) -> FailureMonitor<'a, 'io> {
        FailureMonitor {
            ctx,
            plan,
            io,
            recording,
            debugger_image,
            stop: AtomicBool::new(false),
            shown: Mutex::default(),
        }
    }

    /// The cancel flag the solve is to look at.
    pub fn stop(&self) -> &AtomicBool {
        &self.stop
    }

    fn shown(&self) -> std::sync::MutexGuard<'_, Shown> {
        self.shown.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens the monitor on `error`, when its step left a state to look at and no monitor of
    /// this solve chose `reload` or failed.
    fn open(&self, error: &strata_solver::Error, progress: &dyn Sink) {
        let Some(view) = error
            .kept()
            .and_then(|k| k.downcast_ref::<FailedRun>())
            .and_then(|failed| failure_for(self.plan, error, failed))
        else {
            return;
        };
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        let Some(io) = io.as_mut() else {
            return;
        };
        let earlier = {
            let mut shown = self.shown();
            if shown.reload.is_some() || shown.error.is_some() {
                return;
            }
            shown.count += 1;
            shown.count - 1
        };
        let choice = (|| {
            if earlier > 0 {
                writeln!(
                    io.output,
                    "image `{}` failed too, in stage `{}`: its debugger",
                    view.image, view.stage
                )
                .context("write the debugger's output")?;
            }
            self.recording.hold();
            let image = self.debugger_image;
            let choice = monitor(
                self.ctx,
                view.clone(),
                image,
                None,
                Some(self.recording.log),
                io,
                progress,
            );
            self.recording.release();
            choice
        })();
        let mut shown = self.shown();
        match choice {
            Ok(DebuggerChoice::Exit) => return,
            Ok(DebuggerChoice::Reload) => shown.reload = Some(view),
            Err(e) => shown.error = Some(e),
        }
        self.stop.store(true, Ordering::Relaxed);
    }

    /// The failure `reload` was chosen on, if one was; an error when a monitor failed.
    pub fn end(self) -> anyhow::Result<Option<strata_debug::Failure>> {
        let shown = self.shown.into_inner().unwrap_or_else(|e| e.into_inner());
        match shown.error {
            Some(e) => Err(e),
            None => Ok(shown.reload),
        }
    }
}

/// Where the debugger monitor reads commands and writes its output.
pub struct DebugIo<'a> {
    /// Commands, a line at a time.
    pub input: &'a mut (dyn BufRead + Send),
    /// The monitor's output.
    pub output: &'a mut (dyn Write + Send),
}

/// What the user chose in the debugger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebuggerChoice {
    /// End the build with the failure.
    Exit,
    /// Re-read the config and build again.
    Reload,
}

/// A progress sink that also keeps the build's output lines in a log, for the monitor's
/// `log`, a build's from the solve's start to its end; [`Recording::hold`] keeps the events
/// from the sink until [`Recording::release`].
pub(crate) struct Recording<'a> {
    /// Where the events go.
    sink: &'a dyn Sink,
    /// Where the lines are kept.
    pub log: &'a strata_debug::BuildLog,
    /// The events held back, while held.
    held: Mutex<Option<Vec<Event>>>,
}

impl<'a> Recording<'a> {
    /// Events go to `sink`, their lines to `log` too.
    pub fn new(sink: &'a dyn Sink, log: &'a strata_debug::BuildLog) -> Recording<'a> {
        Recording {
            sink,
            log,
            held: Mutex::new(None),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Option<Vec<Event>>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds the events back (the log still gets their lines), but for
    /// [`Event::Interactive`]: a monitor has the terminal.
    pub fn hold(&self) {
        *self.held() = Some(Vec::new());
    }

    /// Passes the held events on, in order, and the next ones as they come.
    pub fn release(&self) {
        let mut held = self.held();
        // Under the lock: no event overtakes the held ones.
        for event in held.take().unwrap_or_default() {
            self.sink.event(event);
        }
    }
}

impl Sink for Recording<'_> {
    fn event(&self, event: Event) {
        match &event {
            Event::Log { id, line, .. } => self.log.push(&id.image, &id.stage, line),
            Event::StageDigest { id, .. }
            | Event::StageStarted { id, .. }
            | Event::StageCached { id, .. } => self.log.image_started(&id.image),
            Event::StageFailed { id, .. } => self.log.image_ended(&id.image),
            Event::ImageDone { image, .. } => self.log.image_ended(image),
            Event::BuildStarted { .. } => self.log.start(),
            Event::BuildFinished { .. } => self.log.finish(),
            _ => {}
        }
        if !matches!(event, Event::Interactive { .. }) {
            let mut held = self.held();
            if let Some(held) = held.as_mut() {
                held.push(event);
                return;
            }
        }
        self.sink.event(event);
    }
}

/// Runs the monitor on a failed run; with `no_reload`, `reload` is refused for that reason;
/// `log` is the build's output.
pub(crate) fn monitor(
    ctx: &Context,
    failure: strata_debug::Failure,
    debugger_image: Option<&str>,
    no_reload: Option<String>,
    log: Option<&strata_debug::BuildLog>,
    io: &mut DebugIo<'_>,
    progress: &dyn Sink,
) -> anyhow::Result<DebuggerChoice> {
    let debugger_lowers = match debugger_image {
        Some(reference) => {
            let digest = crate::image::resolve(&ctx.store, reference)?.ok_or_else(|| {
                anyhow::anyhow!("--debugger-image: no image `{reference}` in the store")
            })?;
            Some(crate::image::StoredImage::load(&ctx.store, &digest)?.lowers(&ctx.store)?)
        }
        None => None,
    };
    let scratch = ctx.store.scratch("debugger")?;
    let what = format!("debugger on {}/{}", failure.image, failure.stage);
    let mut session =
        strata_debug::Session::new(&ctx.sandbox, failure, scratch.path().to_path_buf())?;
    if let Some(lowers) = debugger_lowers {
        session = session.with_debugger_image(lowers);
    }
    if let Some(reason) = no_reload {
        session = session.refuse_reload(reason);
    }
    if let Some(log) = log {
        session = session.with_log(log);
    }
    progress.event(Event::Interactive {
        started: true,
        what: what.clone(),
    });
    let outcome = session.monitor(io.input, io.output);
    progress.event(Event::Interactive {
        started: false,
        what,
    });
    Ok(match outcome? {
        strata_debug::Outcome::Reload => DebuggerChoice::Reload,
        // `next` and `continue` are refused where nothing is paused.
        strata_debug::Outcome::Exit
        | strata_debug::Outcome::Next
        | strata_debug::Outcome::Continue => DebuggerChoice::Exit,
    })
}

/// `strata debug FAILURE`: opens the monitor on a failure record (an id in the store or a
/// registry reference, see [`super::failures::open`]) with the recorded step's container made
/// here ([`crate::worker::LocalWorker::postmortem_spec`]): the base layers, the broken layer
/// as the failed state, the recorded env, user, cwd and scripts.
pub fn debug_failure(
    ctx: &Context,
    failure: &str,
    debugger_image: Option<&str>,
    io: &mut DebugIo<'_>,
    progress: &dyn Sink,
) -> anyhow::Result<()> {
    let opened = super::failures::open(ctx, failure)?;
    let record = opened.record;
    let layers = opened.image.layer_records();
    let (base, broken) = layers.split_at(record.base_layers);
    let lowers = crate::image::lowers(&ctx.store, base)?;
    let scratch = ctx.store.scratch("postmortem")?;
    let upper = match broken.first() {
        Some(layer) => crate::image::ensure_snapshot(&ctx.store, layer)?,
        // The step wrote nothing: its broken state is the base state.
        None => {
            let empty = scratch.path().join("broken");
            std::fs::create_dir(&empty)?;
            empty
        }
    };
    let worker = LocalWorker::new(
        &ctx.store,
        &ctx.sandbox,
        crate::worker::WorkerOptions::default(),
    )?;
    let run = scratch.path().join("run");
    std::fs::create_dir(&run)?;
    let spec = worker.postmortem_spec(&record.step, lowers, upper, &run)?;
    if !record.step.left_out.is_empty() {
        progress.event(Event::Note {
            message: format!(
                "not in the record, so not mounted here: {}",
                record.step.left_out.join(", ")
            ),
        });
    }
    let view = strata_debug::Failure {
        image: record.image,
        stage: record.stage,
        command: record.command,
        exit_code: record.exit_code,
        output_tail: record.output_tail,
        location: record.location,
        listing: record.listing,
        spec,
        rerun_args: record.rerun_args,
        step_args: record.step_args,
        // The record keeps no source side (see `StepSpec::left_out`).
        source_side: None,
    };
    let reason = format!(
        "this is failure record {}, and the build's config and sources are not here; fix them \
         where they are and run `strata build` again",
        record.id
    );
    monitor(ctx, view, debugger_image, Some(reason), None, io, progress)?;
    Ok(())
}

/// The debugger's view of a failed run.
pub(crate) fn failure_for(
    plan: &Plan,
    error: &strata_solver::Error,
    failed: &FailedRun,
) -> Option<strata_debug::Failure> {
    let (image, stage, command, exit_code, output_tail, span) = match error {
        strata_solver::Error::CommandFailed(f) => (
            f.image.clone(),
            f.stage.clone(),
            f.command.clone(),
            f.exit_code,
            f.output_tail.clone(),
            f.span,
        ),
        strata_solver::Error::Stage {
            image,
            stage,
            span,
            source,
        } => (
            image.clone(),
            stage.clone(),
            crate::error_chain(source),
            1,
            Vec::new(),
            *span,
        ),
        _ => return None,
    };
    Some(strata_debug::Failure {
        image,
        stage,
        command,
        exit_code,
        output_tail,
        location: span.map(|s| plan.sources.snippet(s, "")),
        listing: span.map(|s| strata_debug::listing(&plan.sources, s, 3)),
        spec: failed.spec.clone(),
        rerun_args: failed.rerun_args.clone(),
        step_args: failed.step_args.clone(),
        source_side: failed.source_side.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_events_reach_the_log_at_once_and_the_sink_after_in_order() {
        let sink = strata_progress::Collect::default();
        let log = strata_debug::BuildLog::new().unwrap();
        let recording = Recording::new(&sink, &log);
        let line = |text: &str| Event::Log {
            id: strata_progress::StageId {
                image: "b".into(),
                stage: "install".into(),
            },
            line: text.into(),
            stream: strata_progress::Stream::Stdout,
        };
        let interactive = Event::Interactive {
            started: true,
            what: "debugger on a/install".into(),
        };
        recording.event(line("one"));
        recording.hold();
        recording.event(interactive.clone());
        recording.event(line("two"));
        recording.event(line("three"));
        let texts = |events: Vec<Event>| -> Vec<String> {
            events
                .into_iter()
                .map(|e| match e {
                    Event::Log { line, .. } => line,
                    Event::Interactive { what, .. } => what,
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        // The monitor's own event passes; the other images' wait.
        assert_eq!(texts(sink.events()), ["one", "debugger on a/install"]);
        recording.release();
        recording.event(line("four"));
        assert_eq!(
            texts(sink.events()),
            ["one", "debugger on a/install", "two", "three", "four"]
        );
    }

    #[test]
    fn targets_parse_like_werf() {
        let t = |s: &str| s.parse::<IntrospectTarget>().unwrap();
        assert_eq!(
            t("app/install"),
            IntrospectTarget {
                image: Some("app".into()),
                stage: "install".into()
            }
        );
        assert_eq!(
            t("install"),
            IntrospectTarget {
                image: None,
                stage: "install".into()
            }
        );
        assert_eq!(
            t("*/setup"),
            IntrospectTarget {
                image: None,
                stage: "setup".into()
            }
        );
        assert_eq!(t("~/setup").image.as_deref(), Some("~"));
        assert!("app/".parse::<IntrospectTarget>().is_err());
        assert!(t("*/setup").matches("any", "setup"));
        assert!(!t("app/setup").matches("other", "setup"));
    }
}
