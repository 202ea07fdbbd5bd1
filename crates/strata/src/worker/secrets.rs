//! Secrets given on the command line (`--secret id=ID,src=PATH`) and by the config (werf's
//! `secrets:`, [`StageOptions::secrets`]): found by id for a step's secret mounts
//! ([`super::mounts`]) and read into variables (`RUN --mount=type=secret,env=`). A secret is
//! never in a layer or a digest.
//!
//! [`StageOptions::secrets`]: strata_plan::StageOptions::secrets

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use strata_plan::{MountSource, Run, SecretSource};

use super::error::Error;
use super::mounts;

/// The secrets a step of a stage can use, by id: the stage's own first, each as a file (a
/// variable's or a written value is put in a file in `dir`, the step's private run dir, readable
/// by its owner only), then those of the command line.
pub(super) fn for_stage(
    stage: &[(String, SecretSource)],
    given: &[(String, PathBuf)],
    dir: &Path,
) -> Result<Vec<(String, PathBuf)>, mounts::Error> {
    let mut out = Vec::with_capacity(stage.len() + given.len());
    for (k, (id, source)) in stage.iter().enumerate() {
        let value = match source {
            SecretSource::File(path) if path.is_file() => {
                out.push((id.clone(), path.clone()));
                continue;
            }
            SecretSource::File(path) => {
                return Err(mounts::Error::SecretFileMissing {
                    id: id.clone(),
                    path: path.clone(),
                });
            }
            SecretSource::Env(var) => {
                std::env::var_os(var).ok_or_else(|| mounts::Error::SecretEnvMissing {
                    id: id.clone(),
                    var: var.clone(),
                })?
            }
            SecretSource::Value(v) => v.into(),
        };
        // Named by position: an id is the user's text, not a file name.
        let path = dir.join(format!("secret-{k}"));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            file.write_all(value.as_encoded_bytes())
        };
        match write() {
            Ok(()) => {}
            // Made already for this step (its mounts and its variables both ask).
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(mounts::Error::CreateDir {
                    path: path.clone(),
                    source,
                });
            }
        }
        out.push((id.clone(), path));
    }
    out.extend(given.iter().cloned());
    Ok(out)
}

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
    fn config_secrets_come_first_as_files_only_their_owner_reads() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let given = [("tok".to_string(), PathBuf::from("/given"))];
        let stage = [
            ("tok".to_string(), SecretSource::Value("v1".into())),
            ("other".to_string(), SecretSource::Value("v2".into())),
        ];
        let all = for_stage(&stage, &given, dir.path()).expect("made");
        assert_eq!(
            find(&all, "tok"),
            Some(dir.path().join("secret-0").as_path())
        );
        let text = std::fs::read_to_string(dir.path().join("secret-1")).expect("read");
        assert_eq!(text, "v2");
        let mode = std::fs::metadata(dir.path().join("secret-1"))
            .expect("stat")
            .permissions();
        assert_eq!(mode.mode() & 0o777, 0o600);
        // Asked again for the same step: the same files.
        assert_eq!(for_stage(&stage, &given, dir.path()).expect("again"), all);
        let missing = [(
            "x".to_string(),
            SecretSource::Env("STRATA_TEST_UNSET_VAR".into()),
        )];
        let err = for_stage(&missing, &[], dir.path()).expect_err("unset variable");
        assert!(err.to_string().contains("STRATA_TEST_UNSET_VAR"), "{err}");
    }

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
