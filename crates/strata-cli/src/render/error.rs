//! Error reports on stderr.

/// Prints an error and returns the exit code to end with.
pub fn report(err: &anyhow::Error) -> i32 {
    if let Some(failure) = err.downcast_ref::<strata::Failure>() {
        eprint!("{}", failure.report);
        if !failure.report.ends_with('\n') {
            eprintln!();
        }
        return failure.exit_code;
    }
    eprintln!("error: {}", strata::error_line(err));
    1
}
