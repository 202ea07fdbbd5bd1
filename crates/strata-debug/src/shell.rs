//! Interactive shells in a state: which shell, which `PATH`, and [`shell`] for introspection.
//!
//! The shell is the state's own `/bin/sh` when it has one (looked up on the host through the
//! layers, see [`crate::lookup`]), else the toolbox's static bash. The toolbox is the
//! directory the engine mounts at [`TOOLBOX`] in every build container; when it is mounted,
//! its `bin` is appended to the *end* of `PATH`, so the state's own programs win and the
//! toolbox only fills gaps. Everything else (user, cwd, environment, mounts, host name,
//! network) is the state's, unchanged.

use std::path::{Path, PathBuf};

use strata_sandbox::{ContainerSpec, ExitStatus, ProcessSpec, Sandbox};

use crate::Error;
use crate::lookup;
use crate::scratch::{Scratch, Slot};

/// Where the engine mounts the toolbox in build containers.
pub const TOOLBOX: &str = "/.strata/toolbox";

/// The toolbox's shell, for states without `/bin/sh`.
pub const TOOLBOX_BASH: &str = "/.strata/toolbox/bin/bash";

/// `PATH` when the state sets none (the sandbox's own default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Opens an interactive shell in a state and returns the shell's exit status.
///
/// The state is `spec.upper` on top of `spec.lowers` (a stage result, or a base state with an
/// empty upper); both are only read. The shell writes into a session upper dir under
/// `scratch`, which is removed before returning: changes are discarded. `scratch` must exist
/// and be private to this call; `spec.work` and `spec.scratch` are not used. Env, user, cwd,
/// mounts, host name and network are the spec's; the toolbox, when mounted, is on `PATH`'s
/// end (see the module docs). With a terminal on stdin the shell gets its own pty, else it
/// inherits our stdio (see [`Sandbox::run_interactive`]).
pub fn shell(sandbox: &Sandbox, spec: &ContainerSpec, scratch: &Path) -> Result<ExitStatus, Error> {
    let scratch = Scratch::new(scratch)?;
    let pair = scratch.pair(Slot::Base)?;
    let mut lowers = vec![spec.upper.clone()];
    lowers.extend(spec.lowers.iter().cloned());
    let mut lookup_layers = vec![pair.upper.clone()];
    lookup_layers.extend(lowers.iter().cloned());
    let shell_spec = ContainerSpec {
        lowers,
        upper: pair.upper,
        work: pair.work,
        scratch: scratch.container()?,
        process: process(spec, &lookup_layers)?,
        ..spec.clone()
    };
    let status = sandbox
        .run_interactive(&shell_spec)
        .map_err(|source| Error::Sandbox {
            what: format!("run {} in the state", shell_spec.process.args.join(" ")),
            source,
        })?;
    scratch.clear()?;
    Ok(status)
}

/// Whether `spec` mounts the toolbox.
pub(crate) fn has_toolbox(spec: &ContainerSpec) -> bool {
    spec.mounts
        .iter()
        .any(|m| m.target.trim_end_matches('/') == TOOLBOX)
}

/// The interactive shell's process in a state whose layers (topmost first, session upper
/// included) are `layers`; the rest comes from `spec.process`.
pub(crate) fn process(spec: &ContainerSpec, layers: &[PathBuf]) -> Result<ProcessSpec, Error> {
    let toolbox = has_toolbox(spec);
    let program = if lookup::is_executable(layers, "/bin/sh")? {
        "/bin/sh"
    } else if toolbox {
        TOOLBOX_BASH
    } else {
        return Err(Error::NoShell);
    };
    Ok(ProcessSpec {
        args: vec![program.to_owned()],
        env: if toolbox {
            path_with_toolbox(&spec.process.env)
        } else {
            spec.process.env.clone()
        },
        // run_interactive turns the terminal on when stdin is one; scripted input inherits stdio.
        terminal: false,
        ..spec.process.clone()
    })
}

/// `env` with `TOOLBOX/bin` appended to (the last) `PATH` unless it is on it already (a
/// stage script's `PATH` has it), or a default `PATH` plus the toolbox when there is none.
pub(crate) fn path_with_toolbox(env: &[String]) -> Vec<String> {
    let mut env = env.to_vec();
    let bin = format!("{TOOLBOX}/bin");
    match env.iter_mut().rev().find(|e| e.starts_with("PATH=")) {
        Some(path) if path["PATH=".len()..].split(':').any(|dir| dir == bin) => {}
        Some(path) if path == "PATH=" => *path = format!("PATH={bin}"),
        Some(path) => *path = format!("{path}:{bin}"),
        None => env.push(format!("PATH={DEFAULT_PATH}:{bin}")),
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toolbox_goes_to_the_end_of_path() {
        let env = vec!["PATH=/usr/bin:/bin".to_owned(), "HOME=/root".to_owned()];
        assert_eq!(
            path_with_toolbox(&env),
            ["PATH=/usr/bin:/bin:/.strata/toolbox/bin", "HOME=/root"]
        );
        assert_eq!(
            path_with_toolbox(&["A=1".to_owned()]),
            [
                "A=1".to_owned(),
                format!("PATH={DEFAULT_PATH}:/.strata/toolbox/bin")
            ]
        );
        let once = ["PATH=/bin:/.strata/toolbox/bin".to_owned()];
        assert_eq!(path_with_toolbox(&once), once);
        assert_eq!(
            path_with_toolbox(&["PATH=".to_owned()]),
            ["PATH=/.strata/toolbox/bin"]
        );
    }
}
