//! `strata dap`: the step debugger for editors, as a Debug Adapter Protocol server on stdio.
//!
//! Messages are JSON with a `Content-Length` header each way. The session goes:
//!
//! 1. `initialize` → the capabilities, then the `initialized` event;
//! 2. `launch` with the build (a config or a Dockerfile, its flags: see the CLI's `dap`),
//!    `stopOnEntry`; `setBreakpoints` by file and line (a Dockerfile instruction, a stage
//!    script line) at any time; `configurationDone` starts the build;
//! 3. at a pause ([`super::step`]) the `stopped` event (`entry`, `breakpoint`, `step`), and
//!    `stackTrace` (the step → its stage → the image, with their source lines), `scopes` and
//!    `variables` (environment, build args, mounts, the files the stage changed so far),
//!    `evaluate` (runs `sh -c EXPRESSION` in the paused state and answers its output;
//!    `shell` asks the editor to `runInTerminal` an interactive shell there), `next`,
//!    `stepIn` (both: one step) and `continue`;
//! 4. the `exited` event with the build's exit status, then `terminated`.
//!
//! One thread (`threads`: `build`): images build one at a time while debugged. The reader
//! thread passes every request to the main loop; requests about a pause go on to the paused
//! build thread, which answers them itself (containers are waited for on the thread that
//! spawned them).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Mutex, mpsc};

use anyhow::Context as _;
use serde_json::{Value, json};
use strata_debug::step::{BreakSpec, Breakpoints, Reason, Resume};
use strata_progress::{Event, Sink};

use super::build::{BuildOptions, build_with};
use super::step::{Frontend, Pause};
use crate::Context;

/// Makes the build options of a `launch` request's arguments; what it returns besides them is
/// kept until the build ends (temporary files the options name).
pub type Prepare<'a> =
    &'a (dyn Fn(&Value) -> anyhow::Result<(BuildOptions, Box<dyn std::any::Any>)> + Sync);

/// The variables references of a pause's scopes.
const SCOPES: [(&str, i64); 4] = [
    ("Environment", 1),
    ("Build args", 2),
    ("Mounts", 3),
    ("Files changed", 4),
];

/// Serves one debug session on `input` and `output` until the client disconnects or its
/// input ends; the build's exit status is the `exited` event's (and the return value).
/// `program` is this executable, run by the editor for `shell` (`runInTerminal`).
pub fn serve(
    ctx: &Context,
    input: impl Read + Send + 'static,
    output: impl Write + Send,
    prepare: Prepare<'_>,
    program: PathBuf,
) -> anyhow::Result<i32> {
    let shared = Shared {
        out: Mutex::new(Box::new(output)),
        seq: AtomicI64::new(1),
        paused: Mutex::new(None),
        breakpoints: Breakpoints::default(),
        entry: AtomicBool::new(false),
        cancel: AtomicBool::new(false),
        build_args: Mutex::new(Vec::new()),
        program,
        store: ctx.store.root().to_path_buf(),
    };
    let (tx, rx) = mpsc::channel::<Value>();
    // Not joined: a client that disconnects may leave its end of our stdin open.
    std::thread::spawn(move || {
        let mut input = BufReader::new(input);
        while let Ok(Some(message)) = read_message(&mut input) {
            if tx.send(message).is_err() {
                break;
            }
        }
    });
    let mut launch: Option<Value> = None;
    let code = Mutex::new(0);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        for request in rx {
            if request["type"] != "request" {
                // The answer to our `runInTerminal`: nothing to do.
                continue;
            }
            let command = request["command"].as_str().unwrap_or_default().to_string();
            let args = &request["arguments"];
            match command.as_str() {
                "initialize" => {
                    shared.respond(
                        &request,
                        json!({
                            "supportsConfigurationDoneRequest": true,
                            "supportsEvaluateForHovers": false,
                            "supportsTerminateRequest": true,
                            "supportsSingleThreadExecutionRequests": false,
                        }),
                    )?;
                    shared.notify("initialized", json!({}))?;
                }
                "launch" => {
                    let entry = args["stopOnEntry"] == true;
                    shared.entry.store(entry, Ordering::Relaxed);
                    shared.breakpoints.set_stepping(entry);
                    launch = Some(args.clone());
                    shared.respond(&request, json!({}))?;
                }
                "setBreakpoints" => {
                    let path = args["source"]["path"].as_str().unwrap_or_default();
                    let lines: Vec<usize> = args["breakpoints"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|b| b["line"].as_u64())
                        .map(|l| l as usize)
                        .collect();
                    shared
                        .breakpoints
                        .retain(|s| !matches!(s, BreakSpec::Line { file, .. } if file == path));
                    let set: Vec<Value> = lines
                        .iter()
                        .map(|&line| {
                            let id = shared.breakpoints.add(BreakSpec::Line {
                                file: path.to_string(),
                                line,
                            });
                            json!({"id": id, "verified": true, "line": line})
                        })
                        .collect();
                    shared.respond(&request, json!({ "breakpoints": set }))?;
                }
                "setExceptionBreakpoints" => {
                    shared.respond(&request, json!({ "breakpoints": [] }))?
                }
                "threads" => {
                    shared.respond(&request, json!({ "threads": [{"id": 1, "name": "build"}] }))?
                }
                "configurationDone" => {
                    shared.respond(&request, json!({}))?;
                    let Some(launch) = launch.take() else {
                        shared.notify(
                            "output",
                            json!({"category": "stderr", "output": "no `launch` before `configurationDone`\n"}),
                        )?;
                        continue;
                    };
                    let (shared, code) = (&shared, &code);
                    scope.spawn(move || {
                        let status = shared.build(ctx, &launch, prepare);
                        *code.lock().unwrap_or_else(|e| e.into_inner()) = status;
                        // The client may be gone already: nothing to tell then.
                        let _ = shared.notify("exited", json!({ "exitCode": status }));
                        let _ = shared.notify("terminated", json!({}));
                    });
                }
                "disconnect" | "terminate" => {
                    shared.cancel.store(true, Ordering::Relaxed);
                    if let Some(paused) = shared.paused_sender() {
                        let _ = paused.send(json!({"command": "_stop"}));
                    }
                    shared.respond(&request, json!({}))?;
                    if command == "disconnect" {
                        break;
                    }
                }
                "next" | "stepIn" | "stepOut" | "continue" | "stackTrace" | "scopes"
                | "variables" | "evaluate" => match shared.paused_sender() {
                    Some(paused) => {
                        let _ = paused.send(request);
                    }
                    None if command == "stackTrace" => {
                        shared.respond(&request, json!({"stackFrames": [], "totalFrames": 0}))?
                    }
                    None => shared.fail(&request, "the build is not paused")?,
                },
                other => shared.fail(&request, &format!("`{other}` is not supported"))?,
            }
        }
        // The input ended or the client disconnected: a build still running stops.
        shared.cancel.store(true, Ordering::Relaxed);
        if let Some(paused) = shared.paused_sender() {
            let _ = paused.send(json!({"command": "_stop"}));
        }
        Ok(())
    })?;
    Ok(*code.lock().unwrap_or_else(|e| e.into_inner()))
}

/// What the main loop and the build thread share.
struct Shared<'o> {
    out: Mutex<Box<dyn Write + Send + 'o>>,
    seq: AtomicI64,
    /// Where the requests about a pause go while the build is paused.
    paused: Mutex<Option<mpsc::Sender<Value>>>,
    breakpoints: Breakpoints,
    /// `stopOnEntry`, until the first pause.
    entry: AtomicBool,
    cancel: AtomicBool,
    /// The launch's build args, shown at every pause.
    build_args: Mutex<Vec<(String, String)>>,
    program: PathBuf,
    store: PathBuf,
}

impl Shared<'_> {
    fn send(&self, mut message: Value) -> anyhow::Result<()> {
        message["seq"] = json!(self.seq.fetch_add(1, Ordering::Relaxed));
        let body = serde_json::to_vec(&message)?;
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        write!(out, "Content-Length: {}\r\n\r\n", body.len())?;
        out.write_all(&body)?;
        out.flush().context("write to the DAP client")
    }

    fn respond(&self, request: &Value, body: Value) -> anyhow::Result<()> {
        self.send(json!({
            "type": "response",
            "request_seq": request["seq"],
            "command": request["command"],
            "success": true,
            "body": body,
        }))
    }

    fn fail(&self, request: &Value, message: &str) -> anyhow::Result<()> {
        self.send(json!({
            "type": "response",
            "request_seq": request["seq"],
            "command": request["command"],
            "success": false,
            "message": message,
            "body": {"error": {"id": 1, "format": message}},
        }))
    }

    fn notify(&self, event: &str, body: Value) -> anyhow::Result<()> {
        self.send(json!({"type": "event", "event": event, "body": body}))
    }

    fn output(&self, category: &str, text: String) {
        // A client gone is seen by the main loop.
        let _ = self.notify("output", json!({"category": category, "output": text}));
    }

    fn paused_sender(&self) -> Option<mpsc::Sender<Value>> {
        self.paused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs the launched build; its exit status.
    fn build(&self, ctx: &Context, launch: &Value, prepare: Prepare<'_>) -> i32 {
        let result = prepare(launch).and_then(|(mut options, keep)| {
            *self.build_args.lock().unwrap_or_else(|e| e.into_inner()) = options
                .dockerfile
                .as_ref()
                .map(|(_, df)| df.build_args.clone())
                .unwrap_or_default();
            for spec in options.debug.breaks.drain(..) {
                self.breakpoints.add(spec);
            }
            let io = Mutex::new(None);
            let built = build_with(
                ctx,
                &options,
                self,
                &self.cancel,
                &io,
                self,
                Some(&self.breakpoints),
            );
            drop(keep);
            built
        });
        match result {
            Ok(_) => 0,
            Err(e) => {
                self.output("stderr", format!("{e:#}\n"));
                e.downcast_ref::<super::build::Failed>()
                    .map_or(1, super::build::Failed::exit_code)
            }
        }
    }

    /// Answers the requests about `pause` until the user goes on.
    fn serve_pause(
        &self,
        pause: &Pause<'_>,
        requests: mpsc::Receiver<Value>,
    ) -> anyhow::Result<Resume> {
        let dir = pause.scratch.join("session");
        std::fs::create_dir(&dir)?;
        let session = strata_debug::Session::new(pause.sandbox, pause.view.clone(), dir)?
            .paused(pause.breakpoints, pause.why.clone());
        let mut shells = 0;
        for request in requests {
            let args = &request["arguments"];
            match request["command"].as_str().unwrap_or_default() {
                "next" | "stepIn" | "stepOut" => {
                    self.respond(&request, json!({}))?;
                    return Ok(Resume::Next);
                }
                "continue" => {
                    self.respond(&request, json!({"allThreadsContinued": true}))?;
                    return Ok(Resume::Continue);
                }
                "_stop" => return Ok(Resume::Stop),
                "stackTrace" => self.respond(&request, stack(pause))?,
                "scopes" => {
                    let scopes: Vec<Value> = SCOPES
                        .iter()
                        .map(|(name, reference)| {
                            json!({"name": name, "variablesReference": reference, "expensive": false})
                        })
                        .collect();
                    self.respond(&request, json!({ "scopes": scopes }))?
                }
                "variables" => {
                    let variables = self.variables(&session, args["variablesReference"].as_i64());
                    self.respond(&request, json!({ "variables": variables? }))?
                }
                "evaluate" => {
                    let expression = args["expression"].as_str().unwrap_or_default();
                    if expression.trim() == "shell" {
                        shells += 1;
                        let spec = pause.scratch.join(format!("shell-{shells}.json"));
                        std::fs::write(&spec, serde_json::to_vec(&pause.view.spec)?)?;
                        self.send(json!({
                            "type": "request",
                            "command": "runInTerminal",
                            "arguments": {
                                "kind": "integrated",
                                "title": format!("{}/{}", pause.stop.image, pause.stop.stage),
                                "cwd": std::env::current_dir()?.display().to_string(),
                                "args": [
                                    self.program.display().to_string(),
                                    "--store",
                                    self.store.display().to_string(),
                                    "debug-shell",
                                    spec.display().to_string(),
                                ],
                            },
                        }))?;
                        let result = "a shell in the paused state opens in the terminal; \
                                      changes there are dropped";
                        self.respond(&request, json!({"result": result, "variablesReference": 0}))?;
                        continue;
                    }
                    let argv = vec!["sh".into(), "-c".into(), expression.to_string()];
                    match session.exec_output(argv) {
                        Ok((status, output)) => {
                            let mut result = String::from_utf8_lossy(&output).into_owned();
                            if !status.success() {
                                result.push_str(&format!("(exit code {})", status.code()));
                            }
                            self.respond(
                                &request,
                                json!({"result": result.trim_end(), "variablesReference": 0}),
                            )?
                        }
                        Err(e) => self.fail(&request, &e.to_string())?,
                    }
                }
                other => self.fail(&request, &format!("`{other}` is not supported at a pause"))?,
            }
        }
        Ok(Resume::Stop)
    }

    fn variables(
        &self,
        session: &strata_debug::Session<'_>,
        reference: Option<i64>,
    ) -> anyhow::Result<Vec<Value>> {
        let spec = &session.failure().spec;
        let pairs: Vec<(String, String)> = match reference {
            Some(1) => crate::worker::split_env(&spec.process.env),
            Some(2) => self
                .build_args
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            Some(3) => spec
                .mounts
                .iter()
                .map(|m| (m.target.clone(), format!("{:?}", m.kind)))
                .collect(),
            Some(4) => session
                .changes()?
                .into_iter()
                .map(|c| {
                    let kind = match c.kind {
                        strata_layer::ChangeKind::Added => "added",
                        strata_layer::ChangeKind::Modified => "modified",
                        strata_layer::ChangeKind::Deleted => "deleted",
                    };
                    (c.path, kind.to_string())
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(pairs
            .into_iter()
            .map(|(name, value)| json!({"name": name, "value": value, "variablesReference": 0}))
            .collect())
    }
}

/// The frames of a pause: the step, its stage, the image.
fn stack(pause: &Pause<'_>) -> Value {
    let source = |path: &std::path::Path| {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        json!({
            "name": path.file_name().map(|n| n.to_string_lossy().into_owned()),
            "path": path.display().to_string(),
        })
    };
    let stop = pause.stop;
    let mut step = json!({"id": 1, "name": stop.what, "line": 0, "column": 0});
    if let (Some((path, _)), Some((line, _))) = (&stop.file, stop.lines) {
        step["source"] = source(path);
        step["line"] = json!(line);
        step["column"] = json!(1);
    }
    let mut stage =
        json!({"id": 2, "name": format!("stage {}", stop.stage), "line": 0, "column": 0});
    if let Some((path, line)) = &pause.stage_span {
        stage["source"] = source(std::path::Path::new(path));
        stage["line"] = json!(line);
        stage["column"] = json!(1);
    }
    let image = json!({
        "id": 3,
        "name": format!("image {} (stages before: {})", stop.image, pause.stages.join(", ")),
        "line": 0,
        "column": 0,
        "presentationHint": "label",
    });
    json!({"stackFrames": [step, stage, image], "totalFrames": 3})
}

impl Frontend for Shared<'_> {
    fn pause(&self, pause: &Pause<'_>) -> anyhow::Result<Resume> {
        let (tx, rx) = mpsc::channel();
        *self.paused.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        let reason = match pause.reason {
            _ if self.entry.swap(false, Ordering::Relaxed) => "entry",
            Reason::Step => "step",
            Reason::Breakpoint(_) => "breakpoint",
        };
        let mut body = json!({
            "reason": reason,
            "description": pause.why,
            "threadId": 1,
            "allThreadsStopped": true,
        });
        if let Reason::Breakpoint(id) = pause.reason {
            body["hitBreakpointIds"] = json!([id]);
        }
        self.notify("stopped", body)?;
        let resume = self.serve_pause(pause, rx);
        *self.paused.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if matches!(resume, Ok(Resume::Next | Resume::Continue)) {
            self.notify(
                "continued",
                json!({"threadId": 1, "allThreadsContinued": true}),
            )?;
        }
        resume
    }
}

impl Sink for Shared<'_> {
    fn event(&self, event: Event) {
        let line = match event {
            Event::Log { id, line, .. } => format!("{}/{} | {line}\n", id.image, id.stage),
            Event::StageCached { id, .. } => format!("{}/{}: cached\n", id.image, id.stage),
            Event::StageBuilt { id, .. } => format!("{}/{}: built\n", id.image, id.stage),
            Event::StageFailed { id, message } => {
                format!("{}/{}: failed: {message}\n", id.image, id.stage)
            }
            Event::Note { message } => format!("{message}\n"),
            _ => return,
        };
        self.output("stdout", line);
    }
}

/// Reads one message (`Content-Length: N`, a blank line, N bytes of JSON); `None` at the
/// end of the input.
fn read_message(input: &mut impl BufRead) -> anyhow::Result<Option<Value>> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let line = line.trim_end();
        if line.is_empty() {
            if length.is_some() {
                break;
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = Some(value.trim().parse::<usize>()?);
        }
    }
    let mut body = vec![0; length.unwrap_or(0)];
    input.read_exact(&mut body)?;
    Ok(Some(serde_json::from_slice(&body)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_framed_by_their_length() {
        let text = "Content-Length: 13\r\n\r\n{\"seq\": 1}   Content-Length: 2\r\n\r\n{}";
        let mut input = BufReader::new(text.as_bytes());
        assert_eq!(read_message(&mut input).unwrap(), Some(json!({"seq": 1})));
        assert_eq!(read_message(&mut input).unwrap(), Some(json!({})));
        assert_eq!(read_message(&mut input).unwrap(), None);
    }
}
