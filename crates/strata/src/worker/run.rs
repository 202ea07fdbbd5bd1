//! Running one step's commands in a container: the command line (werf's stage script or the
//! Dockerfile's shell/exec form), streaming its output, and on failure the state kept for the
//! debugger.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use strata_plan::{Run, RunShell};
use strata_progress::{Event, Sink, StageId, Stream};
use strata_sandbox::{Container, Security, Stdio};
use strata_solver::{ExecError, Kept, StageJob};
use strata_store::LayerRecord;

use super::LocalWorker;
use super::error::{op, sandbox};
use super::failure::FailedRun;
use super::secrets;
use super::stage::PendingRun;
use crate::oci::ImageConfig;
use crate::toolbox::{self, shell_quote};

/// Lines of output kept to show when a command fails.
const OUTPUT_TAIL: usize = 20;
/// Where the per-run control dir (scripts, staged files, resolv.conf and hosts) is mounted in
/// the container, read-only: strata writes it before the container starts (and the rerun
/// script after it ended), so nothing the container plants there can redirect those writes.
pub(super) const RUN_DIR: &str = "/.strata/run";
/// Where the per-run state dir is mounted, writable: the only thing strata reads back from a
/// container, the index of the running command (`step`), is written there.
pub(super) const STATE_DIR: &str = "/.strata/state";
/// The most bytes of `step` strata reads: a command index.
const STEP_MAX: usize = 20;

impl LocalWorker<'_> {
    /// Runs one `Run` step; returns the layer it made, if it changed anything, and the
    /// milliseconds spent committing it. Setting `cancel` while the command runs kills its
    /// container (the whole tree) and ends the step with [`ExecError::Cancelled`]; its dirs go
    /// with the scratch dir, and nothing is committed.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_step(
        &self,
        job: &StageJob<'_>,
        id: &StageId,
        step: usize,
        run: &Run,
        prepared: PendingRun,
        config: &ImageConfig,
        lowers: &[PathBuf],
        progress: &dyn Sink,
        cancel: &AtomicBool,
    ) -> Result<(Option<LayerRecord>, u64), ExecError> {
        let PendingRun {
            scratch,
            dirs,
            prelude: _,
        } = prepared;
        let toolbox = matches!(run.shell, RunShell::ToolboxScript | RunShell::Ansible);
        let mut env = self
            .stage_env(job, config, toolbox)
            .map_err(op("resolve the step's environment"))?;
        super::env::with_args(&mut env, &run.env);
        let secrets = secrets::for_stage(
            &job.stage.options.secrets,
            &self.options.secrets,
            &dirs.mounts,
        )
        .map_err(super::error::Error::from)?;
        env.extend(secrets::env(run, &secrets)?);
        // The locale a stage script exports itself (see `step_command`).
        let locale: Vec<String> = match run.shell {
            RunShell::ToolboxScript | RunShell::Ansible => {
                env.iter().filter(|e| is_locale(e)).cloned().collect()
            }
            _ => Vec::new(),
        };
        // Debugged, a stage script runs in pieces between the lines the build pauses before.
        // (An ansible stage's playbook runs whole: its pauses are the stage's.)
        let stops = self.stops.filter(|_| run.shell == RunShell::ToolboxScript);
        let lines = run.commands.len();
        let next_pause = |from: usize| {
            let stops = stops?;
            (from + 1..lines).find_map(|command| {
                let at = super::At::Line { step, command };
                stops.hit(job, at).map(|reason| (at, reason))
            })
        };
        let mut segment = Segment { from: 0, to: lines };
        let mut pause = next_pause(0);
        let mut cwd = None;
        loop {
            if let Some((super::At::Line { command, .. }, _)) = pause {
                segment.to = command;
            }
            let (args, step_env) = step_command(run, env.clone(), &dirs.control, "", &segment)
                .map_err(op("write the step's command"))?;
            let mut spec = self
                .container_spec(
                    lowers.to_vec(),
                    &dirs,
                    args,
                    step_env,
                    Some(run),
                    config,
                    job,
                )
                .map_err(op("set up the step's container"))?;
            if let Some(cwd) = &cwd {
                spec.process.cwd = String::clone(cwd);
            }
            // A piece of a stage script that runs to its end leaves its shell here.
            let saved = dirs.state.join(SAVED_SHELL);
            if saved.symlink_metadata().is_ok() {
                fs::remove_file(&saved).map_err(op("remove the last piece's shell"))?;
            }
            if spec.security == Security::Insecure && segment.from == 0 {
                // Named in the output, as BuildKit does: this step is not confined.
                let command = run.commands.first().map_or("", |c| c.text.as_str());
                progress.event(Event::Log {
                    id: id.clone(),
                    stream: Stream::Info,
                    line: format!(
                        "security.insecure: all capabilities and no seccomp for `{}`",
                        command.lines().next().unwrap_or_default()
                    ),
                });
            }
            let mut container = self
                .sandbox
                .spawn(&spec, Stdio::Piped)
                .map_err(sandbox("start the step's container"))?;
            let mut tail = VecDeque::with_capacity(OUTPUT_TAIL);
            let output = container.take_output();
            let done = AtomicBool::new(false);
            let stopped = std::thread::scope(|scope| {
                let watcher = scope.spawn(|| stop_on_cancel(&container, cancel, &done));
                if let Some(output) = output {
                    read_output(output, &mut tail, id, progress);
                }
                // The output ends when the container's processes are gone (or closed it).
                done.store(true, Ordering::Release);
                watcher.thread().unpark();
                watcher
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .map_err(sandbox("stop the step's container"))?;
            let status = container
                .wait()
                .map_err(sandbox("wait for the step's container"))?;
            // Cancelled: nothing of the step is kept, whether it ended by the kill or just before.
            if stopped || cancel.load(Ordering::Relaxed) {
                return Err(ExecError::Cancelled);
            }
            if !status.success() {
                // Written by the container: read without following links, bounded, and checked.
                let command = crate::beneath::read(&dirs.state, "step", STEP_MAX)
                    .ok()
                    .flatten()
                    .and_then(|s| String::from_utf8(s).ok())
                    .and_then(|s| s.trim().parse().ok())
                    .filter(|c: &usize| *c < run.commands.len())
                    .or((run.commands.len() == 1).then_some(0));
                let mut spec = spec;
                let rerun_args = match (command, &run.shell) {
                    (Some(c), RunShell::ToolboxScript) => {
                        // The environment and directory the failed line started in, as the
                        // script recorded them; the build's (plus the locale) if it did not.
                        let shell_env = crate::beneath::read(&dirs.state, "env", ENV_MAX)
                            .ok()
                            .flatten()
                            .and_then(|bytes| captured_env(&bytes));
                        spec.process.env = match shell_env {
                            Some(env) => env,
                            None => locale.iter().cloned().chain(spec.process.env).collect(),
                        };
                        if let Some(pwd) = env_value(&spec.process.env, "PWD")
                            && pwd.starts_with('/')
                        {
                            spec.process.cwd = pwd.to_string();
                        }
                        let only = Run {
                            commands: vec![run.commands[c].clone()],
                            ..run.clone()
                        };
                        let (mut args, _) = step_command(
                            &only,
                            spec.process.env.clone(),
                            &dirs.control,
                            RERUN,
                            &Segment { from: 0, to: 1 },
                        )
                        .map_err(op("write the rerun script"))?;
                        // The script sets the locale itself, as the build's did: bash must not
                        // start with it (it warns about locales the image lacks).
                        let mut unset = vec![format!("{}/bin/env", toolbox::MOUNT_POINT)];
                        for name in LOCALE {
                            unset.extend(["-u".to_string(), name.to_string()]);
                        }
                        args.splice(0..0, unset);
                        args
                    }
                    (None, RunShell::ToolboxScript) => {
                        spec.process.env = locale.iter().cloned().chain(spec.process.env).collect();
                        spec.process.args.clone()
                    }
                    // The failed task alone, in the container's environment (the script sets
                    // the locale); without one named, the whole playbook again.
                    (only, RunShell::Ansible) => {
                        let script = format!("{RERUN}/script.sh");
                        crate::beneath::write(
                            &dirs.control,
                            &script,
                            ansible_script(&locale, only).as_bytes(),
                        )
                        .map_err(op("write the rerun script"))?;
                        vec![toolbox::BASH.to_string(), format!("{RUN_DIR}/{script}")]
                    }
                    _ => spec.process.args.clone(),
                };
                let failed = FailedRun {
                    image: job.image_name.to_string(),
                    stage: job.stage.name.clone(),
                    step_args: spec.process.args.clone(),
                    rerun_args,
                    spec,
                    source_side: None,
                    // Filled in by the stage loop, which knows the layers.
                    base: Vec::new(),
                    mounts: job
                        .stage
                        .options
                        .mounts
                        .iter()
                        .chain(&run.mounts)
                        .cloned()
                        .collect(),
                    extra_hosts: self.extra_hosts(job),
                    scratch,
                };
                return Err(ExecError::CommandFailed {
                    step,
                    command,
                    exit_code: status.code(),
                    output_tail: tail.into(),
                    kept: Some(Kept::new(failed)),
                });
            }
            let Some((at, reason)) = pause else { break };
            // No shell saved: the script ended before the line (an `exit 0`), as it would have
            // undebugged; the step is done.
            let Some(shell) = crate::beneath::read(&dirs.state, SAVED_SHELL, ENV_MAX)
                .map_err(op("read the shell of the script so far"))?
            else {
                break;
            };
            crate::beneath::write(&dirs.control, RESUME, &shell)
                .map_err(op("keep the shell of the script so far"))?;
            // The environment and directory the next line starts in, as the script recorded them.
            if let Some(recorded) = crate::beneath::read(&dirs.state, "env", ENV_MAX)
                .ok()
                .flatten()
                .and_then(|bytes| captured_env(&bytes))
            {
                env = recorded;
            }
            cwd = env_value(&env, "PWD")
                .filter(|pwd| pwd.starts_with('/'))
                .map(str::to_string);
            let mut paused = spec;
            paused.process.env = env.clone();
            if let Some(cwd) = &cwd {
                paused.process.cwd = cwd.clone();
            }
            stops
                .expect("a pause comes from the stops")
                .pause(job, at, reason, paused)?;
            segment = Segment {
                from: segment.to,
                to: lines,
            };
            pause = next_pause(segment.from);
        }
        self.commit_upper(&dirs, job.stage.options.always_layer)
    }
}

/// Kills `container` (its whole process tree: the helper, PID 1 and so the PID namespace) as
/// soon as `cancel` is set; returns whether it did, once `done` is set.
fn stop_on_cancel(
    container: &Container,
    cancel: &AtomicBool,
    done: &AtomicBool,
) -> Result<bool, strata_sandbox::Error> {
    while !done.load(Ordering::Acquire) {
        if cancel.load(Ordering::Relaxed) {
            container.kill()?;
            return Ok(true);
        }
        // Unparked when the output ends; the timeout bounds how late a cancel is seen.
        std::thread::park_timeout(CANCEL_POLL);
    }
    Ok(false)
}

/// How often a running step looks at the cancel flag.
pub(crate) const CANCEL_POLL: Duration = Duration::from_millis(50);

/// Streams a container's output to `progress` line by line, keeping the last lines in `tail`.
fn read_output(output: File, tail: &mut VecDeque<String>, id: &StageId, progress: &dyn Sink) {
    let mut reader = BufReader::new(output);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(buf.strip_suffix(b"\n").unwrap_or(&buf)).into_owned();
        if tail.len() == OUTPUT_TAIL {
            tail.pop_front();
        }
        tail.push_back(line.clone());
        progress.event(Event::Log {
            id: id.clone(),
            stream: Stream::Stdout,
            line,
        });
    }
}

/// The argv and environment that run a step's commands; writes the stage script into `sub`
/// (`""` or [`RERUN`]) of the control dir `control` when the step needs one.
pub(super) fn step_command(
    run: &Run,
    env: Vec<String>,
    control: &Path,
    sub: &str,
    segment: &Segment,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    Ok(match &run.shell {
        RunShell::ToolboxScript | RunShell::Ansible => {
            // The static bash cannot load locales the image lacks and warns when it starts
            // with LC_ALL set; the script sets the locale itself, with the warning silenced.
            let (locale, rest): (Vec<String>, Vec<String>) =
                env.into_iter().partition(|e| is_locale(e));
            let script = match sub {
                "" => "script.sh".to_string(),
                sub => format!("{sub}/script.sh"),
            };
            let text = match run.shell {
                RunShell::Ansible => ansible_script(&locale, None),
                _ => stage_script(run, &locale, segment),
            };
            // The rerun script is written after the container ran: never through its links.
            crate::beneath::write(control, &script, text.as_bytes())?;
            (
                vec![toolbox::BASH.to_string(), format!("{RUN_DIR}/{script}")],
                rest,
            )
        }
        RunShell::Argv(prefix) => {
            let mut a = prefix.clone();
            a.extend(run.commands.iter().map(|c| c.text.clone()));
            (a, env)
        }
        RunShell::Exec => {
            let text = run
                .commands
                .first()
                .map(|c| c.text.as_str())
                .unwrap_or("[]");
            let args = serde_json::from_str(text)
                .with_context(|| format!("exec form {text} is not a JSON array"))?;
            (args, env)
        }
    })
}

/// The variables a stage script exports itself instead of starting bash with them.
const LOCALE: [&str; 2] = ["LANG", "LC_ALL"];

fn is_locale(entry: &str) -> bool {
    entry
        .split_once('=')
        .is_some_and(|(name, _)| LOCALE.contains(&name))
}

/// The value of `name` in `env` (the last entry wins, as for a program reading it).
fn env_value<'a>(env: &'a [String], name: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix(name)?.strip_prefix('='))
}

/// The most bytes of the environment a stage script records before each command.
const ENV_MAX: usize = 1 << 20;

/// The environment a stage script recorded before a command (`env -0`), without what bash
/// keeps per process (`_`, `SHLVL`); `None` when it is not a list of `NAME=value` entries.
/// Written by the container: used only as the environment of the debugger's containers.
fn captured_env(bytes: &[u8]) -> Option<Vec<String>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut env = Vec::new();
    for entry in text.split('\0').filter(|e| !e.is_empty()) {
        let (name, _) = entry.split_once('=')?;
        if name.is_empty() {
            return None;
        }
        if name != "_" && name != "SHLVL" {
            env.push(entry.to_string());
        }
    }
    (!env.is_empty()).then_some(env)
}

/// Where, inside the control dir, the script that reruns only a failed command is written.
pub(super) const RERUN: &str = "rerun";

/// Where, in the state dir, a piece of a debugged stage script saves its shell at its end.
const SAVED_SHELL: &str = "shell";
/// Where, in the control dir, the next piece finds that shell to restore.
const RESUME: &str = "resume.sh";

/// The lines of a stage script one container runs: all of them unless the build is debugged
/// (see [`super::Stops`]).
pub(super) struct Segment {
    /// The first line.
    pub from: usize,
    /// One past the last.
    pub to: usize,
}

/// What a piece of a stage script does not save of its shell: what bash sets itself (most
/// of it read-only, or meaningless in another shell) and the loop's own variable.
const UNSAVED: &str = "BASH|BASH_*|BASHOPTS|BASHPID|COLUMNS|COMP_WORDBREAKS|DIRSTACK|\
EPOCHREALTIME|EPOCHSECONDS|EUID|FUNCNAME|GROUPS|HISTCMD|HOSTNAME|HOSTTYPE|LINENO|LINES|MACHTYPE|\
OLDPWD|OPTERR|OPTIND|OSTYPE|PIPESTATUS|PPID|PWD|RANDOM|SECONDS|SHELLOPTS|SHLVL|SRANDOM|UID|_|\
__strata_v";

/// Directories of one container run inside a scratch dir.
pub(crate) struct RunDirs {
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Written by strata only; read-only in the container ([`RUN_DIR`]).
    pub control: PathBuf,
    /// Written by the container ([`STATE_DIR`]); read back only through [`crate::beneath`].
    pub state: PathBuf,
    /// The overlay work dir of `state` and the empty lower under it (see `standard_mounts`).
    pub state_work: PathBuf,
    pub empty: PathBuf,
    /// Sources of the step's own mounts (tmp dirs, bind uppers, whiteout layers).
    pub mounts: PathBuf,
    pub sandbox: PathBuf,
}

impl RunDirs {
    pub(crate) fn create(root: &Path) -> anyhow::Result<RunDirs> {
        let dirs = RunDirs {
            upper: root.join("upper"),
            work: root.join("work"),
            control: root.join("control"),
            state: root.join("state"),
            state_work: root.join("state-work"),
            empty: root.join("empty"),
            mounts: root.join("mounts"),
            sandbox: root.join("sandbox"),
        };
        for d in [
            &dirs.upper,
            &dirs.work,
            &dirs.control,
            &dirs.control.join(RERUN),
            &dirs.state,
            &dirs.state_work,
            &dirs.empty,
            &dirs.mounts,
            &dirs.sandbox,
        ] {
            fs::create_dir(d).with_context(|| format!("create {}", d.display()))?;
        }
        Ok(dirs)
    }
}

/// werf's stage script: one bash script, `set -e`, each command echoed before it runs. Before
/// each command its index and the environment (with `PWD`) are written to the state dir, so a
/// failure names the command and the debugger starts where it started (after the `cd`s and
/// `export`s of the lines before it).
/// `exports` (`NAME=value`) are exported first, with bash's warnings about them silenced.
///
/// Debugged, the script runs only the lines of `segment`: a piece after the first starts by
/// restoring the shell the piece before it saved (its variables, exported or not, its
/// functions and directory); a piece before the last ends by saving its shell. Traps, shell
/// options and background jobs do not carry over.
pub(crate) fn stage_script(run: &Run, exports: &[String], segment: &Segment) -> String {
    let mut s = script_head(exports);
    if segment.from > 0 {
        s.push_str(&format!("{{ . {RUN_DIR}/{RESUME}; }} 2>/dev/null || :\n"));
    }
    let record = |s: &mut String, i: usize| {
        s.push_str(&format!("printf '%s' {i} > {STATE_DIR}/step\n"));
        s.push_str(&format!(
            "{}/bin/env -0 > {STATE_DIR}/env 2>/dev/null || :\n",
            toolbox::MOUNT_POINT
        ));
    };
    for (i, command) in run
        .commands
        .iter()
        .enumerate()
        .take(segment.to)
        .skip(segment.from)
    {
        record(&mut s, i);
        s.push_str(&format!(
            "printf '+ %s\\n' {}\n",
            shell_quote(&command.text)
        ));
        s.push_str(&command.text);
        s.push('\n');
    }
    if segment.to < run.commands.len() {
        record(&mut s, segment.to);
        s.push_str(&format!(
            "{{ for __strata_v in $(compgen -v); do case $__strata_v in {UNSAVED}) ;; \
             *) declare -p \"$__strata_v\" ;; esac; done; declare -f; \
             printf 'cd -- %q\\n' \"$PWD\"; }} > {STATE_DIR}/{SAVED_SHELL} 2>/dev/null\n"
        ));
    }
    s
}

/// The script of an ansible stage: the toolbox's `ansible-playbook` on the stage's playbook
/// (only the task `only` with it set); the callback plugin writes the index of a failed task to
/// the state dir's `step`.
fn ansible_script(exports: &[String], only: Option<usize>) -> String {
    script_head(exports) + &crate::ansible::command(only)
}

/// The start of every stage script: `exports` (`NAME=value`) exported with bash's warnings
/// about them silenced, then `set -e`.
fn script_head(exports: &[String]) -> String {
    let mut s = String::new();
    if !exports.is_empty() {
        let quoted: Vec<String> = exports
            .iter()
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                format!("{k}={}", shell_quote(v))
            })
            .collect();
        s.push_str(&format!("{{ export {}; }} 2>/dev/null\n", quoted.join(" ")));
    }
    s.push_str("set -e\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_plan::Command;

    #[test]
    fn script_echoes_and_marks_each_command() {
        let run = Run {
            commands: vec![
                Command {
                    text: "echo 'a b'".into(),
                    span: None,
                },
                Command {
                    text: "false".into(),
                    span: None,
                },
            ],
            shell: RunShell::ToolboxScript,
            user: None,
            workdir: None,
            env: Vec::new(),
            mounts: Vec::new(),
            no_network: false,
            insecure: false,
        };
        let script = stage_script(
            &run,
            &["LC_ALL=C.UTF-8".into()],
            &Segment { from: 0, to: 2 },
        );
        assert_eq!(
            script,
            "{ export LC_ALL='C.UTF-8'; } 2>/dev/null\nset -e\n\
             printf '%s' 0 > /.strata/state/step\n/.strata/toolbox/bin/env -0 > /.strata/state/env 2>/dev/null || :\n\
             printf '+ %s\\n' 'echo '\\''a b'\\'''\necho 'a b'\n\
             printf '%s' 1 > /.strata/state/step\n/.strata/toolbox/bin/env -0 > /.strata/state/env 2>/dev/null || :\n\
             printf '+ %s\\n' 'false'\nfalse\n"
        );
    }

    #[test]
    fn a_recorded_environment_drops_what_bash_keeps_per_process() {
        assert_eq!(
            captured_env(b"A=1\0_=/bin/env\0SHLVL=1\0PWD=/app\0B=x=y\nz\0"),
            Some(vec!["A=1".into(), "PWD=/app".into(), "B=x=y\nz".into()])
        );
        // Not an environment: the build's is used instead.
        assert_eq!(captured_env(b"garbage"), None);
        assert_eq!(captured_env(b"=1\0"), None);
        assert_eq!(captured_env(b""), None);
        assert_eq!(captured_env(b"\xff=1\0"), None);
        let env = ["PWD=/a".to_string(), "PWD=/b".to_string()];
        assert_eq!(env_value(&env, "PWD"), Some("/b"));
        assert_eq!(env_value(&env, "PW"), None);
    }
}
