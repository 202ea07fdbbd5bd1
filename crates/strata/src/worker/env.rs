//! The environment of build containers: the image's variables, werf's service variables and
//! the values of a stage's `dependencies`.

use strata_solver::StageJob;

use super::{DEFAULT_PATH, LocalWorker};
use crate::oci::ImageConfig;
use crate::toolbox;

/// `NAME=value` entries as (name, value) pairs (an entry without `=` is a name with no value).
pub(crate) fn split_env(env: &[String]) -> Vec<(String, String)> {
    env.iter()
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// `env` with a step's build args: an arg overrides the image's variable of its name (one
/// entry each: a program reading the first of two would see the wrong one).
pub(super) fn with_args(env: &mut Vec<String>, args: &[(String, String)]) {
    for (k, v) in args {
        env.retain(|e| e.split_once('=').is_none_or(|(name, _)| name != k));
        env.push(format!("{k}={v}"));
    }
}

impl LocalWorker<'_> {
    /// The values of the stage's `dependencies` variables, as the plan has them (made once
    /// the dependencies were built, [`strata_plan::Plan::waiting`]).
    pub(super) fn dependency_values(job: &StageJob<'_>) -> Vec<(String, String)> {
        job.stage
            .options
            .dependency_env
            .iter()
            .map(|dep| (dep.name.clone(), dep.value.clone()))
            .collect()
    }

    /// The environment of the stage's build containers (see [`build_env`]): with the toolbox
    /// for stage scripts and shells, without for a Dockerfile's `RUN`.
    pub(super) fn stage_env(
        &self,
        job: &StageJob<'_>,
        config: &ImageConfig,
        toolbox: bool,
    ) -> anyhow::Result<Vec<String>> {
        let mut extra = job.stage.options.service_env.clone();
        extra.extend(Self::dependency_values(job));
        Ok(build_env(config, &extra, toolbox))
    }
}

/// The environment of a build container: the image's and the service variables; for stage
/// scripts (and shells looking inside a build) also the locale and the toolbox at the end of
/// PATH. A Dockerfile's `RUN` sees exactly the image's PATH (BuildKit's default PATH when the
/// image has none) and no locale it did not set, as under BuildKit: its shell is found on that
/// PATH, never in the toolbox.
pub(crate) fn build_env(
    config: &ImageConfig,
    service_env: &[(String, String)],
    toolbox: bool,
) -> Vec<String> {
    let mut env = config.clone();
    let path = config.env_var("PATH").unwrap_or(DEFAULT_PATH).to_string();
    if toolbox {
        env.set_env("PATH", &format!("{path}:{}/bin", toolbox::MOUNT_POINT));
    } else {
        env.set_env("PATH", &path);
    }
    if env.env_var("HOME").is_none() {
        env.set_env("HOME", "/root");
    }
    if toolbox {
        env.set_env("LANG", "C.UTF-8");
        env.set_env("LC_ALL", "C.UTF-8");
    }
    for (k, v) in service_env {
        env.set_env(k, v);
    }
    env.config.env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_appends_toolbox_and_locale() {
        let mut config = ImageConfig::empty();
        config.set_env("PATH", "/bin");
        let env = build_env(&config, &[("WERF_COMMIT_HASH".into(), "abc".into())], true);
        assert!(env.contains(&"PATH=/bin:/.strata/toolbox/bin".to_string()));
        assert!(env.contains(&"LC_ALL=C.UTF-8".to_string()));
        assert!(env.contains(&"WERF_COMMIT_HASH=abc".to_string()));
        // A Dockerfile's RUN: the image's PATH exactly, no locale it did not set.
        let env = build_env(&config, &[], false);
        assert!(env.contains(&"PATH=/bin".to_string()));
        assert!(!env.iter().any(|e| e.starts_with("LC_ALL=")));
    }
}
