//! `strata debug`.

use strata::ops::debug::{DebugIo, debug_failure};

use crate::args::Progress;
use crate::render::progress;

/// Arguments of `strata debug`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The failure: an id from `strata failures`, or the registry reference a build with
    /// --repo pushed it to (REPO:failure-ID).
    pub failure: String,
    /// Run the debugger's shell in this image, with the failed state mounted at /debugroot.
    #[arg(long, value_name = "IMAGE")]
    pub debugger_image: Option<String>,
}

/// Opens the debugger's monitor on stdin and stdout.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    let sink = progress::for_mode(Progress::Plain);
    let (mut input, mut output) = (std::io::BufReader::new(std::io::stdin()), std::io::stdout());
    let mut io = DebugIo {
        input: &mut input,
        output: &mut output,
    };
    let result = debug_failure(
        ctx,
        &args.failure,
        args.debugger_image.as_deref(),
        &mut io,
        sink.as_ref(),
    );
    sink.finish();
    result?;
    Ok(0)
}
