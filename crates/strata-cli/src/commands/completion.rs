//! `strata completion` and `strata man`: the shell completions and the manual page, made
//! from the argument definitions at run time, so they always match the binary.

use clap::CommandFactory as _;

/// Arguments of `strata completion`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Prints the completion script, e.g. `source <(strata completion bash)`.
pub fn exec(args: Args) -> anyhow::Result<i32> {
    let mut cli = crate::args::Cli::command();
    clap_complete::generate(args.shell, &mut cli, "strata", &mut std::io::stdout());
    Ok(0)
}

/// Arguments of `strata man`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// A command, for its own page (`strata man build`); strata's page otherwise.
    pub command: Option<String>,
}

/// Prints the manual page as roff, e.g. `strata man | man -l -`.
pub fn man(args: ManArgs) -> anyhow::Result<i32> {
    let cli = crate::args::Cli::command();
    let page = match &args.command {
        None => cli,
        Some(name) => cli
            .find_subcommand(name)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no command `{name}` (see `strata --help`)"))?
            .display_name(format!("strata-{name}"))
            .bin_name(format!("strata {name}")),
    };
    clap_mangen::Man::new(page).render(&mut std::io::stdout())?;
    Ok(0)
}
