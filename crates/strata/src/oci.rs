//! The OCI image documents as strata uses them. The types are [`strata_registry::oci`]'s (one
//! set for the workspace, with why they are not `oci-spec`'s); this module adds what needs the
//! plan or the clock: applying a stage's config change, and the build time.

pub use strata_registry::oci::*;

/// Applying the plan's config changes to an image config (an extension trait, since the config
/// type lives in `strata-registry`, which knows no plans).
pub trait ApplyChange {
    /// Applies a config change of the plan.
    fn apply(&mut self, change: &strata_plan::ConfigChange);
}

/// werf's label of the project an image belongs to.
pub const WERF_LABEL: &str = "werf";
/// werf's label of the stage a stage was built on (`DIGEST-MILLIS`).
pub const WERF_PARENT_STAGE_LABEL: &str = "werf.io/parent-stage-id";
/// werf's label of the image id of the stage a stage was built on.
pub const WERF_BASE_IMAGE_ID_LABEL: &str = "werf.io/base-image-id";
/// The prefix of werf's label of a dependency's last stage (the key ends in the sha256 of
/// its value, the stage's `DIGEST-MILLIS`).
pub const WERF_DEPENDENCY_LABEL_PREFIX: &str = "werf-dependency-stage-id-";
/// werf's label of the project repository's HEAD commit at the build.
pub const WERF_REPO_COMMIT_LABEL: &str = "werf-project-repo-commit";
/// The labels werf's `imageSpec` never removes (`pkg/build/stage/image_spec.go`; werf's
/// `werf-stage-content-digest` is among them, which strata does not set).
const ESSENTIAL_WERF_LABELS: &[&str] = &[
    WERF_LABEL,
    WERF_PARENT_STAGE_LABEL,
    "werf-stage-content-digest",
    WERF_REPO_COMMIT_LABEL,
];

/// Whether a removal `pattern` names `key`: equal to it, or (werf's `imageSpec`) a
/// `/REGEX/` matching all of it. The frontend checked the expressions.
fn removes(pattern: &str, key: &str, image_spec: bool) -> bool {
    match pattern.strip_prefix('/').and_then(|p| p.strip_suffix('/')) {
        Some(expr) if image_spec => {
            regex::Regex::new(&format!("^(?:{expr})$")).is_ok_and(|re| re.is_match(key))
        }
        _ => pattern == key,
    }
}

impl ApplyChange for ImageConfig {
    fn apply(&mut self, change: &strata_plan::ConfigChange) {
        let remove = &change.remove;
        let spec = change.image_spec;
        // werf's imageSpec expands its values with the variables the image had.
        let before = self.config.env.clone();
        self.config.env.retain(|e| {
            let name = e.split_once('=').map_or(e.as_str(), |(n, _)| n);
            !remove.env.iter().any(|r| removes(r, name, spec))
        });
        self.config.labels.retain(|k, _| {
            (spec && ESSENTIAL_WERF_LABELS.contains(&k.as_str()))
                || !remove.labels.iter().any(|r| removes(r, k, spec))
        });
        self.config
            .volumes
            .retain(|k, _| !remove.volumes.contains(k));
        if remove.cmd {
            self.config.cmd = None;
        }
        if remove.entrypoint {
            self.config.entrypoint = None;
        }
        if remove.user {
            self.config.user.clear();
        }
        if remove.workdir {
            self.config.working_dir.clear();
        }
        if remove.history {
            self.history.clear();
        }
        if remove.onbuild {
            self.config.onbuild.clear();
        }
        for (k, v) in &change.env {
            let value = if spec {
                let vars = |name: &str| {
                    before.iter().find_map(|e| {
                        e.split_once('=')
                            .filter(|(n, _)| *n == name)
                            .map(|(_, v)| v.to_string())
                    })
                };
                strata_frontend::dockerfile::expand(v, '\\', &vars).unwrap_or_else(|_| v.clone())
            } else {
                v.clone()
            };
            self.set_env(k, &value);
        }
        for (k, v) in &change.labels {
            self.config.labels.insert(k.clone(), v.clone());
        }
        if spec && !change.expose.is_empty() {
            self.config.exposed_ports.clear();
        }
        for port in &change.expose {
            let port = if spec || port.contains('/') {
                port.clone()
            } else {
                format!("{port}/tcp")
            };
            self.config.exposed_ports.insert(port, Empty {});
        }
        for volume in &change.volumes {
            self.config.volumes.insert(volume.clone(), Empty {});
        }
        if let Some(w) = &change.workdir {
            self.config.working_dir = w.clone();
        }
        if let Some(u) = &change.user {
            self.config.user = u.clone();
        }
        if let Some(e) = &change.entrypoint {
            self.config.entrypoint = Some(e.clone());
            // Docker's rule: a new entrypoint resets an inherited command.
            if change.cmd.is_none() {
                self.config.cmd = None;
            }
        }
        if let Some(c) = &change.cmd {
            self.config.cmd = Some(c.clone());
        }
        if change.args_escaped {
            self.config.args_escaped = true;
        }
        if let Some(h) = &change.healthcheck {
            self.config.healthcheck = Some(HealthConfig {
                test: h.test.clone(),
                interval: h.interval,
                timeout: h.timeout,
                start_period: h.start_period,
                retries: h.retries,
            });
        }
        self.config.onbuild.extend(change.onbuild.iter().cloned());
        if let Some(s) = &change.stop_signal {
            self.config.stop_signal = Some(s.clone());
        }
        if let Some(s) = &change.shell {
            self.config.shell = Some(s.clone());
        }
        if let Some(a) = &change.author {
            self.author = Some(a.clone());
        }
    }
}

/// The time to record as an image's (and its history's) creation, RFC 3339 in UTC: now, or
/// `$SOURCE_DATE_EPOCH` (unix seconds) when set, as reproducible builds expect
/// (<https://reproducible-builds.org/specs/source-date-epoch/>). A value that is not a number
/// of seconds is ignored, like BuildKit does.
pub fn build_time() -> String {
    let time = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or_else(time::OffsetDateTime::now_utc);
    time.format(&time::format_description::well_known::Rfc3339)
        .expect("formatting a UTC time as RFC 3339 cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_spec_change_has_werfs_semantics() {
        let mut c = ImageConfig::empty();
        c.config.env = vec![
            "PATH=/usr/bin".into(),
            "APP_ENV=test".into(),
            "KEEP=1".into(),
        ];
        for label in [
            "werf",
            WERF_PARENT_STAGE_LABEL,
            WERF_BASE_IMAGE_ID_LABEL,
            "remove.all",
            "save",
        ] {
            c.config.labels.insert(label.into(), "x".into());
        }
        c.config.exposed_ports.insert("1234/tcp".into(), Empty {});
        let mut change = strata_plan::ConfigChange {
            env: vec![("PATH".into(), "${PATH}:/add".into())],
            expose: vec!["99".into()],
            ..Default::default()
        };
        change.remove.env = vec!["/^APP_.*/".into()];
        change.remove.labels = vec!["/.*/".into()];
        let mut plain = c.clone();
        plain.apply(&change);
        // Without werf's semantics: literal names and values, ports added as Docker's.
        assert_eq!(
            plain.config.env,
            ["PATH=${PATH}:/add", "APP_ENV=test", "KEEP=1"]
        );
        assert_eq!(plain.config.labels.len(), 5);
        assert!(plain.config.exposed_ports.contains_key("99/tcp"));
        change.image_spec = true;
        c.apply(&change);
        assert_eq!(c.config.env, ["PATH=/usr/bin:/add", "KEEP=1"]);
        // werf's essential labels stay; its base image id goes.
        assert_eq!(
            c.config.labels.keys().collect::<Vec<_>>(),
            ["werf", WERF_PARENT_STAGE_LABEL]
        );
        assert_eq!(c.config.exposed_ports.keys().collect::<Vec<_>>(), ["99"]);
    }

    #[test]
    fn entrypoint_resets_inherited_cmd_like_docker() {
        let mut c = ImageConfig::empty();
        c.config.cmd = Some(vec!["sh".into()]);
        c.apply(&strata_plan::ConfigChange {
            entrypoint: Some(vec!["/app".into()]),
            ..Default::default()
        });
        assert_eq!(c.config.cmd, None);
        c.apply(&strata_plan::ConfigChange {
            env: vec![("A".into(), "1".into()), ("A".into(), "2".into())],
            expose: vec!["80".into(), "53/udp".into()],
            ..Default::default()
        });
        assert_eq!(c.config.env, ["A=2"]);
        assert_eq!(c.env_var("A"), Some("2"));
        assert!(c.config.exposed_ports.contains_key("80/tcp"));
        let json = serde_json::to_string(&c).unwrap();
        assert!(
            json.contains(r#""ExposedPorts":{"53/udp":{},"80/tcp":{}}"#),
            "{json}"
        );
    }
}
