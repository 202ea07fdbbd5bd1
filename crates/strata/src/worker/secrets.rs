//! Secrets given on the command line (`--secret id=ID,src=PATH`): found by id for a step's
//! secret mounts ([`super::mounts`]) and read into variables (`RUN --mount=type=secret,env=`).
//! A secret is never in a layer or a digest.

use std::path::{Path, PathBuf};

use strata_plan::{MountSource, Run};

use super::error::Error;

/// The file of secret `id`, if it was given.
pub(super) fn find<'a>(secrets: &'a [(String, PathBuf)], id: &str) -> Option<&'a Path> {
    secrets
        .iter()
        .find(|(s, _)| s == id)
        .map(|(_, p)| p.as_path())
}

/// `NAME=value` for each of the step's secrets read into a variable, the value without its
/// trailing newlines; a secret not given is left out (its mount says whether it is required).
pub(super) fn env(run: &Run, secrets: &[(String, PathBuf)]) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for m in &run.mounts {
        if let MountSource::Secret {
            id, env: Some(var), ..
        } = &m.source
            && let Some(path) = find(secrets, id)
        {
            let value = std::fs::read_to_string(path).map_err(|source| Error::Secret {
                id: id.clone(),
                path: path.to_path_buf(),
                source,
            })?;
            out.push(format!("{var}={}", value.trim_end_matches('\n')));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_plan::{RunMount, RunShell};

    #[test]
    fn secrets_read_into_variables_lose_the_trailing_newline() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("tok");
        std::fs::write(&file, "s3cret\n\n").expect("write the secret");
        let secret = |id: &str, var: Option<&str>| RunMount {
            to: String::new(),
            source: MountSource::Secret {
                id: id.into(),
                required: false,
                env: var.map(str::to_string),
            },
            context: None,
        };
        let run = Run {
            commands: Vec::new(),
            shell: RunShell::Exec,
            user: None,
            workdir: None,
            env: Vec::new(),
            mounts: vec![
                secret("tok", Some("TOKEN")),
                secret("tok", None),
                secret("absent", Some("NOPE")),
            ],
            no_network: false,
            insecure: false,
        };
        let secrets = [("tok".to_string(), file)];
        assert_eq!(env(&run, &secrets).expect("reads"), ["TOKEN=s3cret"]);
    }
}
