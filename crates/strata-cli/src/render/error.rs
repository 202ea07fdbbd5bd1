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
    (format!("error: {}\n", strata::error_line(err)), 1)
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
    out
}
