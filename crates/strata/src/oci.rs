//! The OCI image JSON strata writes and reads: manifest, config, index, layout.
//!
//! Own serde types rather than `oci-spec`'s, for two reasons: maps are `BTreeMap`s so the same
//! image always serializes to the same bytes (and digest), and the config carries Docker's
//! `Healthcheck` extension that `oci-spec` lacks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_digest::Digest;
use strata_registry::manifest::null_default;

/// Media type of an OCI image manifest.
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of an OCI image config.
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Annotation naming an image in an OCI layout's index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's annotation with the full image name in an OCI layout's index (`ctr import`).
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// Annotation with the image's creation time (RFC 3339).
pub const CREATED: &str = "org.opencontainers.image.created";
/// Manifest annotation with the fully qualified name of the image this one is built on.
pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
/// Manifest annotation with the manifest digest of the image this one is built on.
pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the content is.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Annotations.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    /// Other places the blob is served from (foreign, non-distributable layers).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub urls: Vec<String>,
}

/// An image manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`MANIFEST`].
    #[serde(default, deserialize_with = "null_default")]
    pub media_type: String,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, bottom first.
    #[serde(default, deserialize_with = "null_default")]
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
}

/// An image index (used for `index.json` of an OCI layout).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// [`INDEX`].
    #[serde(default, deserialize_with = "null_default")]
    pub media_type: String,
    /// The manifests.
    #[serde(default, deserialize_with = "null_default")]
    pub manifests: Vec<Descriptor>,
}

/// An image config (OCI, plus Docker's health check).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// When the image was made (RFC 3339).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub created: Option<String>,
    /// Who made it (a Dockerfile's `MAINTAINER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture (`amd64`).
    #[serde(default, deserialize_with = "null_default")]
    pub architecture: String,
    /// Operating system (`linux`).
    #[serde(default, deserialize_with = "null_default")]
    pub os: String,
    /// How to run it.
    #[serde(default, deserialize_with = "null_default")]
    pub config: RunConfig,
    /// The layers' diff ids.
    #[serde(default, deserialize_with = "null_default")]
    pub rootfs: RootFs,
    /// One entry per stage or instruction.
    #[serde(default, deserialize_with = "null_default")]
    pub history: Vec<History>,
}

/// The run settings of an image config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The user.
    #[serde(
        rename = "User",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub user: String,
    /// Exposed ports (`80/tcp`).
    #[serde(
        rename = "ExposedPorts",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub exposed_ports: BTreeMap<String, Empty>,
    /// `NAME=value` entries.
    #[serde(
        rename = "Env",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<String>,
    /// The entrypoint.
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    /// The command.
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Volumes.
    #[serde(
        rename = "Volumes",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub volumes: BTreeMap<String, Empty>,
    /// The working directory.
    #[serde(
        rename = "WorkingDir",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub working_dir: String,
    /// Labels.
    #[serde(
        rename = "Labels",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// The stop signal.
    #[serde(
        rename = "StopSignal",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_signal: Option<String>,
    /// Docker's health check.
    #[serde(
        rename = "Healthcheck",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub healthcheck: Option<HealthConfig>,
    /// Triggers for images built on this one (Docker's `ONBUILD`).
    #[serde(
        rename = "OnBuild",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub onbuild: Vec<String>,
    /// The shell of shell-form commands (Docker's `SHELL`).
    #[serde(rename = "Shell", default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

/// Docker's health check config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// The test.
    #[serde(rename = "Test", default, deserialize_with = "null_default")]
    pub test: Vec<String>,
    /// Nanoseconds between checks.
    #[serde(
        rename = "Interval",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub interval: u64,
    /// Nanoseconds before a check counts as hung.
    #[serde(
        rename = "Timeout",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub timeout: u64,
    /// Nanoseconds of grace at start.
    #[serde(
        rename = "StartPeriod",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub start_period: u64,
    /// Failures before unhealthy.
    #[serde(
        rename = "Retries",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero32"
    )]
    pub retries: u32,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero32(n: &u32) -> bool {
    *n == 0
}

/// The `{}` value of port and volume maps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// The layers of an image config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type", default, deserialize_with = "null_default")]
    pub kind: String,
    /// Diff ids, bottom first (docker writes `null` for an image without layers).
    #[serde(default, deserialize_with = "null_default")]
    pub diff_ids: Vec<Digest>,
}

/// One history entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// When.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub created: Option<String>,
    /// What made it.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub created_by: String,
    /// A comment.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub comment: String,
    /// True when the step made no layer.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub empty_layer: bool,
}

impl ImageConfig {
    /// The config of an empty image for this machine.
    pub fn empty() -> ImageConfig {
        ImageConfig {
            created: None,
            author: None,
            architecture: host_architecture().into(),
            os: "linux".into(),
            config: RunConfig::default(),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: Vec::new(),
            },
            history: Vec::new(),
        }
    }

    /// The value of an environment variable.
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.config
            .env
            .iter()
            .find_map(|e| e.strip_prefix(name)?.strip_prefix('='))
    }

    /// Sets an environment variable, replacing an earlier value in place.
    pub fn set_env(&mut self, name: &str, value: &str) {
        let entry = format!("{name}={value}");
        match self
            .config
            .env
            .iter_mut()
            .find(|e| e.split_once('=').is_some_and(|(n, _)| n == name))
        {
            Some(e) => *e = entry,
            None => self.config.env.push(entry),
        }
    }

    /// Applies a config change of the plan.
    pub fn apply(&mut self, change: &strata_plan::ConfigChange) {
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

/// The OCI name of this machine's architecture.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
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

    /// The config `docker import` / the legacy builder write (docker 20.10): every unset field
    /// is `null`, plus fields strata does not model.
    #[test]
    fn reads_docker_configs_with_nulls() {
        let d = Digest::of(b"layer");
        let json = format!(
            r#"{{"architecture":"amd64","config":{{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"Tty":false,"Env":null,"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null,"ExposedPorts":null,"Healthcheck":{{"Test":null,"Interval":null}}}},"container_config":{{"Env":null}},"created":"2026-01-01T00:00:00Z","docker_version":"20.10.24","history":[{{"created":"2026-01-01T00:00:00Z","comment":"Imported from -","created_by":null,"empty_layer":null}}],"os":"linux","rootfs":{{"type":"layers","diff_ids":["{d}"]}}}}"#
        );
        let c: ImageConfig = serde_json::from_str(&json).unwrap();
        assert!(c.config.env.is_empty() && c.config.volumes.is_empty());
        assert!(c.config.labels.is_empty() && c.config.onbuild.is_empty());
        assert_eq!(c.config.cmd, None);
        assert_eq!(c.rootfs.diff_ids, [d]);
        assert_eq!(c.history[0].comment, "Imported from -");
        let empty: ImageConfig =
            serde_json::from_str(r#"{"architecture":"amd64","os":"linux","config":null,"rootfs":{"type":"layers","diff_ids":null},"history":null}"#)
                .unwrap();
        assert!(empty.rootfs.diff_ids.is_empty() && empty.history.is_empty());
        let manifest: Manifest = serde_json::from_str(&format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{CONFIG}","digest":"{d}","size":1,"annotations":null}},"layers":null,"annotations":null}}"#
        ))
        .unwrap();
        assert!(manifest.layers.is_empty());
    }
}
