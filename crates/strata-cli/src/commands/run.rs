//! `strata run`.

use std::io::IsTerminal as _;

use strata::ops::run::{RunOptions, run};
use strata_sandbox::Attach;

use crate::args::NetworkArg;

/// Arguments of `strata run`.
///
/// The container is removed when the command exits (docker's `--rm`, always): its changes
/// to the file system are gone, the image is as before.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image: a tag or an image id.
    pub image: String,
    /// The command and its arguments (replaces the image's CMD); everything after the image
    /// is the command's, so its options need no `--`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// Give the command strata's stdin (without it, the command reads nothing).
    #[arg(long, short = 'i')]
    pub interactive: bool,
    /// Give the command a pty of its own (without it, it writes to strata's stdout and stderr
    /// as they are); with -i on a terminal, an interactive session.
    #[arg(long, short = 't')]
    pub tty: bool,
    /// Set a variable: `NAME=value`, or `NAME` for strata's own value (left unset when
    /// strata has none); repeatable.
    #[arg(long, short = 'e', value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,
    /// Bind a host path: `HOST:CONTAINER[:ro]` (HOST absolute and existing); repeatable.
    #[arg(long = "volume", short = 'v', value_name = "HOST:CONTAINER[:ro]")]
    pub volumes: Vec<String>,
    /// The working directory (created if the image lacks it).
    #[arg(long, short = 'w', value_name = "DIR")]
    pub workdir: Option<String>,
    /// The user: `name|uid[:group|gid]`.
    #[arg(long, short = 'u', value_name = "USER")]
    pub user: Option<String>,
    /// The container's network.
    #[arg(long, value_enum, default_value_t)]
    pub network: NetworkArg,
    /// Run this program instead of the image's entrypoint ("" for none).
    #[arg(long)]
    pub entrypoint: Option<String>,
}

/// Runs and returns the command's exit code (127 when its program is not found, 126 when it
/// cannot be executed, as docker).
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    if args.interactive && args.tty && !std::io::stdin().is_terminal() {
        anyhow::bail!("the input device is not a TTY: drop -t, or run from a terminal");
    }
    // `-e NAME` takes strata's own value, as docker takes the client's.
    let env = args
        .env
        .iter()
        .filter_map(|e| match e.contains('=') {
            true => Some(e.clone()),
            false => std::env::var(e).ok().map(|v| format!("{e}={v}")),
        })
        .collect();
    run(
        ctx,
        &RunOptions {
            image: args.image,
            command: args.command,
            env,
            network: args.network.into(),
            entrypoint: args.entrypoint,
            volumes: args.volumes,
            workdir: args.workdir,
            user: args.user,
            attach: Attach {
                stdin: args.interactive,
                tty: args.tty,
            },
        },
    )
}
