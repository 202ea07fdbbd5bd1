//! Error reports on stderr. The libraries hand over typed errors with their causes; here they
//! become text: the message and each cause once, the snippet of the user's file a span points
//! into (`strata_plan::Diagnostic::render`, the one renderer of diagnostics), a failed
//! command's last output lines.

use strata::ops::build::Failed;
use strata_plan::Diagnostic;

/// Prints an error and returns the exit code to end with.
pub fn report(err: &anyhow::Error) -> i32 {
    let (text, code) = render(err);
    eprint!("{text}");
    code
}

/// Prints an error as one JSON event on stderr (`--progress json`: nothing but JSON there),
/// `{"event":"error","message":…,"report":…,"exit_code":…}`, `report` being the text
/// [`report`] would print; returns the exit code.
pub fn report_json(err: &anyhow::Error) -> i32 {
    let (text, code) = render(err);
    let event = serde_json::json!({
        "event": "error",
        "message": strata::error_line(err),
        "report": text,
        "exit_code": code,
    });
    eprintln!("{event}");
    code
}

/// The report of an error and its exit code.
fn render(err: &anyhow::Error) -> (String, i32) {
    if let Some(failed) = err.downcast_ref::<Failed>() {
        return (failure(failed), failed.exit_code());
    }
    if let Some(strata_frontend::Error::Config {
        diagnostic,
        sources,
    }) = err.downcast_ref::<strata_frontend::Error>()
    {
        return (format!("{}\n", diagnostic.render(sources)), 1);
    }
    // A program `strata run` could not execute ends as docker's: 127 not found, 126 not
    // executable.
    let code = match err.downcast_ref::<strata_sandbox::Error>() {
        Some(strata_sandbox::Error::Exec { code, .. }) => *code,
        _ => 1,
    };
    (format!("error: {}\n", strata::error_line(err)), code)
}

/// A failed build: what failed with its causes, where, and what the command printed last.
fn failure(failed: &Failed) -> String {
    let title = strata::error_chain(&failed.error);
    let mut out = match failed.error.span() {
        Some(span) => format!(
            "{}\n",
            Diagnostic::new(title, Some(span)).render(&failed.sources)
        ),
        None => format!("error: {title}\n"),
    };
    let tail = failed.error.output_tail();
    if !tail.is_empty() {
        out.push_str("last output lines:\n");
        for line in tail {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    // Last, so that a CI log's last line says how to look at the failure.
    if let Some(kept) = &failed.record {
        out.push_str(&format!("{kept}\n"));
    }
    out
}
