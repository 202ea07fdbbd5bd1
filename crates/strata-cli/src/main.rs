//! The `strata` command line: parses arguments, calls one `strata::ops` function per command,
//! renders progress and errors.

mod args;
mod cancel;
mod commands;
mod render;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    // The sandbox re-executes this binary as the init of each container (see strata-sandbox).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == commands::SANDBOX_INIT)
    {
        strata_sandbox::init_main();
    }
    let cli = args::Cli::parse();
    match commands::exec(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            let code = render::error::report(&err);
            ExitCode::from(code.clamp(1, 255) as u8)
        }
    }
}
