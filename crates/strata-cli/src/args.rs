//! Command-line arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// strata builds OCI images in cached stages from werf-style configs.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
pub struct Cli {
    /// The local store [default: $XDG_DATA_HOME/strata, or /var/lib/strata for root].
    #[arg(long, global = true, env = "STRATA_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// A registry (`host:port`) to talk to over plain HTTP; loopback hosts always are.
    /// Repeatable.
    #[arg(long, global = true, value_name = "HOST")]
    pub insecure_registry: Vec<String>,
    /// Builds collect garbage (`strata gc --keep-bytes SIZE`) when the store's images (blobs,
    /// and the snapshots of layers not compressed yet) pass SIZE; 0 turns that off [default: 10%
    /// of the store's file system].
    #[arg(long, global = true, env = "STRATA_GC_MAX_BYTES", value_name = "SIZE",
          value_parser = crate::commands::gc::bytes)]
    pub gc_max_bytes: Option<u64>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the images of strata.yaml (or werf.yaml).
    Build(Box<crate::commands::build::Args>),
    /// Show every stage's digest and whether it is cached (locally or in --repo), without
    /// building: the build `strata build` with the same arguments would run.
    Plan(Box<crate::commands::plan::Args>),
    /// Say why each stage of an image was built: the first input that differs from the stage
    /// the image had before.
    Explain(crate::commands::explain::Args),
    /// Make a base image from a root file system tarball or directory.
    Import(crate::commands::import::Args),
    /// List images and their stages.
    Images(crate::commands::images::Args),
    /// Load images from a `docker save` tarball or an OCI image layout, with their configs.
    Load(crate::commands::load::Args),
    /// Remove images by tag or id (their data goes at the next `strata gc`).
    Rmi(crate::commands::rmi::Args),
    /// Give an image another tag.
    Tag(crate::commands::tag::Args),
    /// Pull an image from a registry into the store.
    Pull(crate::commands::pull::Args),
    /// Show an image's history: what made each layer, and its size.
    History(crate::commands::history::Args),
    /// Show an image's config and stages (with the inputs recorded for each) as JSON.
    Inspect(crate::commands::inspect::Args),
    /// Run a command in a container of an image (removed when the command exits).
    Run(crate::commands::run::Args),
    /// Write an image as an OCI layout or docker-archive tarball.
    Export(crate::commands::export::Args),
    /// Push an image to a registry.
    Push(crate::commands::push::Args),
    /// List the failure records: failed steps kept to debug later (`strata debug ID`).
    Failures(crate::commands::failures::Args),
    /// Open the debugger on a failure record: an id or a pushed record's registry reference.
    Debug(crate::commands::debug::Args),
    /// Serve the step debugger over the Debug Adapter Protocol on stdin/stdout, for editors
    /// (VS Code, nvim-dap): launch a build, set breakpoints, step, look inside.
    Dap(crate::commands::dap::Args),
    /// The shell an editor's `evaluate shell` opens in a paused build (`strata dap`).
    #[command(hide = true)]
    DebugShell(crate::commands::dap::ShellArgs),
    /// Remove stages from a stage repository by werf's keep policies (`cleanup` in werf.yaml).
    Cleanup(crate::commands::cleanup::Args),
    /// Work with the config: `strata config render` prints it after template rendering.
    Config(crate::commands::config::Args),
    /// Store credentials for a registry (checked against it first).
    Login(crate::commands::login::Args),
    /// Remove what no tag or kept stage needs, and what killed builds left.
    #[command(alias = "prune")]
    Gc(crate::commands::gc::Args),
    /// Check the store: `strata store check [--repair]`.
    Store(crate::commands::store::Args),
    /// Remove the credentials stored for a registry.
    Logout(crate::commands::logout::Args),
    /// Print the version.
    Version(crate::commands::version::Args),
    /// Print a shell completion script: `source <(strata completion bash)`.
    Completion(crate::commands::completion::Args),
    /// Print the manual page (roff): `strata man | man -l -`.
    Man(crate::commands::completion::ManArgs),
}

/// How progress is shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    /// A live view on a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// The live terminal view (plain lines when stderr is no terminal, as docker's).
    Tty,
    /// Plain prefixed lines.
    Plain,
    /// One JSON event per line (`rawjson`, docker's name, too).
    #[value(alias = "rawjson")]
    Json,
    /// Nothing (errors are still reported).
    Quiet,
}

/// Network of containers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum NetworkArg {
    /// The host's network.
    #[default]
    Host,
    /// No network but loopback.
    None,
}

impl From<NetworkArg> for strata_sandbox::Network {
    fn from(n: NetworkArg) -> Self {
        match n {
            NetworkArg::Host => strata_sandbox::Network::Host,
            NetworkArg::None => strata_sandbox::Network::None,
        }
    }
}
