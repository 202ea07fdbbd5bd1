//! `strata login`.

use std::io::Read;

use anyhow::{Context as _, bail};
use strata::ops::push::login;

/// Arguments of `strata login`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The registry (`host[:port]`).
    pub registry: String,
    /// The user name.
    #[arg(long, short = 'u')]
    pub username: String,
    /// The password (prefer --password-stdin: command lines are visible to other users).
    #[arg(long, short = 'p')]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

/// Checks the credentials and stores them in the Docker config.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    let password = match (args.password, args.password_stdin) {
        (Some(p), false) => p,
        (None, true) => {
            let mut p = String::new();
            std::io::stdin()
                .read_to_string(&mut p)
                .context("read the password from stdin")?;
            p.trim_end_matches(['\n', '\r']).to_string()
        }
        _ => bail!("give the password with exactly one of --password and --password-stdin"),
    };
    login(ctx, &args.registry, &args.username, &password)?;
    eprintln!("login succeeded for {}", args.registry);
    Ok(0)
}
