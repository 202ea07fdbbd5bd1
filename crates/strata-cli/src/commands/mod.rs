//! One module per command: its arguments and an `exec` that calls one `strata::ops` function.

pub mod build;
pub mod build_args;
pub mod cleanup;
pub mod config;
pub mod export;
pub mod images;
pub mod import;
pub mod inspect;
pub mod load;
pub mod login;
pub mod push;
pub mod rmi;
pub mod run;

use std::ffi::OsString;

use strata::Context;
use strata_sandbox::Sandbox;

use crate::args::{Cli, Command};

/// The hidden first argument that makes this binary a sandbox init.
pub const SANDBOX_INIT: &str = "__sandbox-init";

/// Runs the parsed command; returns the process exit code.
pub fn exec(cli: Cli) -> anyhow::Result<i32> {
    if let Command::Config(args) = cli.command {
        return config::exec(args);
    }
    let root = cli.store.clone().unwrap_or_else(strata::default_store_root);
    let sandbox = Sandbox::new(vec![
        OsString::from("/proc/self/exe"),
        OsString::from(SANDBOX_INIT),
    ]);
    let mut ctx = Context::open(&root, sandbox)?;
    ctx.registry.insecure = cli.insecure_registry.clone();
    match cli.command {
        Command::Build(args) => build::exec(&ctx, *args),
        Command::Import(args) => import::exec(&ctx, args),
        Command::Images(args) => images::exec(&ctx, args),
        Command::Rmi(args) => rmi::exec(&ctx, args),
        Command::Load(args) => load::exec(&ctx, args),
        Command::Inspect(args) => inspect::exec(&ctx, args),
        Command::Run(args) => run::exec(&ctx, args),
        Command::Export(args) => export::exec(&ctx, args),
        Command::Push(args) => push::exec(&ctx, args),
        Command::Login(args) => login::exec(&ctx, args),
        Command::Cleanup(args) => cleanup::exec(&ctx, args),
        Command::Config(_) => unreachable!("handled before the store is opened"),
    }
}
