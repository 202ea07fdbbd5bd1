//! `strata dap`: the step debugger over the Debug Adapter Protocol on stdio, for editors.

use clap::Parser as _;
use serde_json::Value;

/// Arguments of `strata dap`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Arguments of the hidden `strata debug-shell SPEC.json` (DAP's `runInTerminal`).
#[derive(Debug, clap::Args)]
pub struct ShellArgs {
    /// The paused state's container, written by `strata dap`.
    pub spec: std::path::PathBuf,
}

/// `strata build` flags parsed alone, for a launch request.
#[derive(clap::Parser)]
#[command(name = "strata build")]
struct Launch {
    #[command(flatten)]
    build: super::build::Args,
}

/// Serves a debug session on stdin and stdout.
pub fn exec(ctx: &strata::Context, _args: Args) -> anyhow::Result<i32> {
    let program = std::env::current_exe()?;
    let prepare = |launch: &Value| {
        let argv = launch_flags(launch)?;
        let parsed =
            Launch::try_parse_from(std::iter::once("strata build".to_string()).chain(argv))?;
        let prepared = super::build::prepare(&parsed.build)?;
        let options = prepared.options.clone();
        Ok((options, Box::new(prepared) as Box<dyn std::any::Any>))
    };
    strata::ops::dap::serve(ctx, std::io::stdin(), std::io::stdout(), &prepare, program)
}

/// Opens the shell of a DAP `evaluate shell` in the terminal it runs in.
pub fn shell(ctx: &strata::Context, args: ShellArgs) -> anyhow::Result<i32> {
    strata::ops::step::shell(ctx, &args.spec)
}

/// The `strata build` flags of a launch request's arguments: `dockerfile` (or buildg's
/// `program`) with `context` (or buildx's `contextPath`), else `config` and `dir`; `target`,
/// `image` (one or a list), `buildArgs` (an object), and any other flags in `args`.
fn launch_flags(launch: &Value) -> anyhow::Result<Vec<String>> {
    let text = |key: &str| launch[key].as_str().map(str::to_string);
    let mut argv = vec!["--progress".to_string(), "plain".to_string()];
    if let Some(dir) = text("dir") {
        argv.extend(["--dir".into(), dir]);
    }
    if let Some(config) = text("config") {
        argv.extend(["--config".into(), config]);
    }
    if let Some(target) = text("target") {
        argv.extend(["--target".into(), target]);
    }
    if let Some(args) = launch["buildArgs"].as_object() {
        for (name, value) in args {
            let value = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string);
            argv.extend(["--build-arg".into(), format!("{name}={value}")]);
        }
    }
    for arg in launch["args"].as_array().into_iter().flatten() {
        match arg.as_str() {
            Some(arg) => argv.push(arg.to_string()),
            None => anyhow::bail!("launch: `args` holds {arg}, not a string"),
        }
    }
    match text("dockerfile").or(text("program")) {
        Some(dockerfile) => {
            let context = text("context").or(text("contextPath")).unwrap_or_else(|| {
                std::path::Path::new(&dockerfile)
                    .parent()
                    .map_or(".".into(), |p| p.display().to_string())
            });
            argv.extend(["-f".into(), dockerfile, context]);
        }
        None => match &launch["image"] {
            Value::String(image) => argv.push(image.clone()),
            Value::Array(images) => {
                argv.extend(images.iter().filter_map(|i| i.as_str().map(str::to_string)))
            }
            _ => {}
        },
    }
    Ok(argv)
}
