//! Runs the debugger on a failure saved as JSON: the engine-less driver for tests and for
//! trying the monitor by hand. Also the sandbox's init helper (`__sandbox-init`).
//!
//! ```text
//! strata-debug-monitor monitor FAILURE.json SCRATCH [--build-log FIFO] [DEBUGGER_LOWER...]
//! strata-debug-monitor shell SPEC.json SCRATCH
//! ```
//!
//! `monitor` reads commands from stdin and prints `outcome: exit` or `outcome: reload` at the
//! end; `shell` runs [`strata_debug::shell`] and exits with the shell's code. With
//! `--build-log`, the monitor's `log` shows a build that prints `IMAGE/STAGE TEXT` lines
//! into FIFO (as the engine's build threads push theirs), building until its end.

use std::io::{BufReader, Write};
use std::path::PathBuf;

use strata_debug::{BuildLog, Failure, Outcome, Session};
use strata_sandbox::{ContainerSpec, Sandbox};

const INIT: &str = "__sandbox-init";

fn main() {
    if std::env::args().nth(1).as_deref() == Some(INIT) {
        strata_sandbox::init_main();
    }
    match run() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("strata-debug-monitor: {e}");
            std::process::exit(2);
        }
    }
}

fn run() -> Result<i32, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: strata-debug-monitor monitor FAILURE.json SCRATCH [--build-log FIFO] \
                 [DEBUGGER_LOWER...] | shell SPEC.json SCRATCH";
    let [mode, json, scratch, rest @ ..] = args.as_slice() else {
        return Err(usage.into());
    };
    let sandbox = Sandbox::new(vec!["/proc/self/exe".into(), INIT.into()]);
    let text = std::fs::read_to_string(json).map_err(|e| format!("read {json}: {e}"))?;
    match mode.as_str() {
        "monitor" => {
            let failure: Failure = serde_json::from_str(&text)?;
            let (fifo, rest) = match rest {
                [flag, fifo, rest @ ..] if flag == "--build-log" => (Some(fifo.clone()), rest),
                _ => (None, rest),
            };
            let mut session = Session::new(&sandbox, failure, PathBuf::from(scratch))?;
            if let Some(fifo) = fifo {
                // The build outlives the monitor's borrow of its log: the process's life.
                let log: &'static BuildLog = Box::leak(Box::new(BuildLog::new()?));
                log.start();
                // One image, building until the stand-in build's end.
                log.image_started("build");
                std::thread::spawn(move || build(log, &fifo));
                session = session.with_log(log);
            }
            if !rest.is_empty() {
                session = session.with_debugger_image(rest.iter().map(PathBuf::from).collect());
            }
            let stdin = std::io::stdin();
            let mut input = BufReader::new(stdin.lock());
            let mut out = std::io::stdout();
            let outcome = session.monitor(&mut input, &mut out)?;
            drop(session);
            let name = match outcome {
                Outcome::Exit => "exit",
                Outcome::Reload => "reload",
                Outcome::Next => "next",
                Outcome::Continue => "continue",
            };
            writeln!(out, "outcome: {name}")?;
            Ok(0)
        }
        "shell" => {
            let spec: ContainerSpec = serde_json::from_str(&text)?;
            let status = strata_debug::shell(&sandbox, &spec, &PathBuf::from(scratch))?;
            Ok(status.code())
        }
        _ => Err(usage.into()),
    }
}

/// A stand-in build: pushes each `IMAGE/STAGE TEXT` line written into `fifo` to `log`, and
/// stops building at its end.
fn build(log: &BuildLog, fifo: &str) {
    use std::io::BufRead;
    if let Ok(file) = std::fs::File::open(fifo) {
        for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
            let (stage, text) = line.split_once(' ').unwrap_or((&line, ""));
            let (image, stage) = stage.split_once('/').unwrap_or((stage, ""));
            log.push(image, stage, text);
        }
    }
    log.finish();
}
