//! One module per command: its arguments and an `exec` that calls one `strata::ops` function.

pub mod build;
pub mod build_args;
pub mod cleanup;
pub mod completion;
pub mod config;
pub mod dap;
pub mod debug;
pub mod explain;
pub mod export;
pub mod failures;
pub mod gc;
pub mod history;
pub mod images;
pub mod import;
pub mod inspect;
pub mod load;
pub mod login;
pub mod logout;
pub mod plan;
pub mod pull;
pub mod push;
pub mod rmi;
pub mod run;
pub mod store;
pub mod tag;
pub mod version;

use std::ffi::OsString;

use strata::Context;
use strata_sandbox::Sandbox;

use crate::args::{Cli, Command};

/// The hidden first argument that makes this binary a sandbox init.
pub const SANDBOX_INIT: &str = "__sandbox-init";

/// Runs the parsed command; returns the process exit code.
pub fn exec(cli: Cli) -> anyhow::Result<i32> {
    // Commands that need no store.
    let command = match cli.command {
        Command::Config(args) => return config::exec(args),
        Command::Logout(args) => return logout::exec(args),
        Command::Version(args) => return version::exec(args),
        Command::Completion(args) => return completion::exec(args),
        Command::Man(args) => return completion::man(args),
        command => command,
    };
    // Not root: the rest runs as root of a user namespace with the user's subordinate ids
    // (still single-threaded here, as entering needs; before anything asks which namespace
    // it is in, since the answer is kept).
    strata_sandbox::rootless::enter()?;
    let root = cli.store.clone().unwrap_or_else(strata::default_store_root);
    let sandbox = Sandbox::new(vec![
        OsString::from("/proc/self/exe"),
        OsString::from(SANDBOX_INIT),
    ]);
    let mut ctx = Context::open(&root, sandbox)?;
    ctx.registry.insecure = cli.insecure_registry.clone();
    if let Some(max) = cli.gc_max_bytes {
        ctx.gc = strata::ops::gc::GcPolicy::MaxBytes(max);
    }
    match command {
        Command::Build(args) => build::exec(&ctx, *args),
        Command::Plan(args) => plan::exec(&ctx, *args),
        Command::Explain(args) => explain::exec(&ctx, args),
        Command::Import(args) => import::exec(&ctx, args),
        Command::Images(args) => images::exec(&ctx, args),
        Command::Rmi(args) => rmi::exec(&ctx, args),
        Command::Tag(args) => tag::exec(&ctx, args),
        Command::Pull(args) => pull::exec(&ctx, args),
        Command::History(args) => history::exec(&ctx, args),
        Command::Load(args) => load::exec(&ctx, args),
        Command::Inspect(args) => inspect::exec(&ctx, args),
        Command::Run(args) => run::exec(&ctx, args),
        Command::Export(args) => export::exec(&ctx, args),
        Command::Push(args) => push::exec(&ctx, args),
        Command::Login(args) => login::exec(&ctx, args),
        Command::Gc(args) => gc::exec(&ctx, args),
        Command::Store(args) => store::exec(&ctx, args),
        Command::Cleanup(args) => cleanup::exec(&ctx, args),
        Command::Failures(args) => failures::exec(&ctx, args),
        Command::Debug(args) => debug::exec(&ctx, args),
        Command::Dap(args) => dap::exec(&ctx, args),
        Command::DebugShell(args) => dap::shell(&ctx, args),
        Command::Config(_)
        | Command::Logout(_)
        | Command::Version(_)
        | Command::Completion(_)
        | Command::Man(_) => unreachable!("handled before the store is opened"),
    }
}
