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

impl ApplyChange for ImageConfig {
    fn apply(&mut self, change: &strata_plan::ConfigChange) {
        let remove = &change.remove;
        self.config.env.retain(|e| {
            let name = e.split_once('=').map_or(e.as_str(), |(n, _)| n);
            !remove.env.iter().any(|r| r == name)
        });
        self.config.labels.retain(|k, _| !remove.labels.contains(k));
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
            self.set_env(k, v);
        }
        for (k, v) in &change.labels {
            self.config.labels.insert(k.clone(), v.clone());
        }
        for port in &change.expose {
            let port = if port.contains('/') {
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
