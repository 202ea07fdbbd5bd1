//! `strata run`.

use strata::ops::run::{RunOptions, run};

use crate::args::NetworkArg;

/// Arguments of `strata run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image.
    pub image: String,
    /// The command (replaces the image's CMD).
    #[arg(last = true)]
    pub command: Vec<String>,
    /// Set a variable (`NAME=value`); repeatable.
    #[arg(long, short = 'e')]
    pub env: Vec<String>,
    /// The container's network.
    #[arg(long, value_enum, default_value_t)]
    pub network: NetworkArg,
    /// Run this program instead of the image's entrypoint ("" for none).
    #[arg(long)]
    pub entrypoint: Option<String>,
}

/// Runs and returns the command's exit code.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    run(
        ctx,
        &RunOptions {
            image: args.image,
            command: args.command,
            env: args.env,
            network: args.network.into(),
            entrypoint: args.entrypoint,
        },
    )
}
