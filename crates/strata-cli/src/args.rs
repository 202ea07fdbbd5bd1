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
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the images of strata.yaml (or werf.yaml).
    Build(Box<crate::commands::build::Args>),
    /// Make a base image from a root file system tarball or directory.
    Import(crate::commands::import::Args),
    /// List images and their stages.
    Images(crate::commands::images::Args),
    /// Load images from a `docker save` tarball or an OCI image layout, with their configs.
    Load(crate::commands::load::Args),
    /// Remove image tags (also of images whose metadata cannot be read).
    Rmi(crate::commands::rmi::Args),
    /// Show an image's config and stages (with the inputs recorded for each) as JSON.
    Inspect(crate::commands::inspect::Args),
    /// Run a command in a container of an image.
    Run(crate::commands::run::Args),
    /// Write an image as an OCI layout or docker-archive tarball.
    Export(crate::commands::export::Args),
    /// Push an image to a registry.
    Push(crate::commands::push::Args),
    /// Work with the config: `strata config render` prints it after template rendering.
    Config(crate::commands::config::Args),
    /// Store credentials for a registry (checked against it first).
    Login(crate::commands::login::Args),
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
