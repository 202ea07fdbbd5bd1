//! `strata config render`.

use std::path::PathBuf;

use strata_frontend::LoadOptions;

/// Arguments of `strata config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do with the config.
    #[command(subcommand)]
    pub action: Action,
}

/// `strata config` actions.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Print the config as it is after Go template rendering.
    Render {
        /// The directory of the config.
        #[arg(long, short = 'C', default_value = ".")]
        dir: PathBuf,
        /// The config file [default: strata.yaml, strata.yml, werf.yaml or werf.yml in --dir].
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The deployment environment's name: `.Env` in templates (werf's --env).
        #[arg(long, default_value = "")]
        env: String,
    },
}

/// Prints the rendered config on stdout.
pub fn exec(args: Args) -> anyhow::Result<i32> {
    let Action::Render { dir, config, env } = args.action;
    let options = LoadOptions {
        config,
        env,
        ..LoadOptions::default()
    };
    let text = strata_frontend::render_config(&dir, &options)?;
    print!("{text}");
    Ok(0)
}
