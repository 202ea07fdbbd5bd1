//! The OCI image documents, one type per concept for the whole workspace: descriptors,
//! platforms, image manifests, indexes and image configs, with their media types and
//! annotation keys. The registry reads them, the store's images and exports (crate `strata`)
//! write and read them.
//!
//! Own serde types rather than `oci-spec`'s (0.9/0.10, checked against its deserializers),
//! because that crate cannot keep strata's behaviour:
//! - it cannot read what docker writes: `rootfs.diff_ids: null` (an image without layers),
//!   `layers: null` and `manifests: null` are errors there (plain `Vec`s), while every field
//!   here reads `null` as absent ([`null_default`]);
//! - it has no `Healthcheck`, `OnBuild`, `Shell` or `ArgsEscaped` in the run config, so an
//!   image built on one that sets them would silently lose them;
//! - its maps (labels, annotations, exposed ports, volumes) are `HashMap`s, so the same image
//!   would serialize to different bytes, and so a different digest, from run to run; here
//!   they are `BTreeMap`s.
//!
//! Parsing treats input as hostile; see [`crate::manifest`] for the size limit and the
//! distinction between manifests and indexes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_digest::Digest;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker v2 schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker v2 schema 1 (signed) manifest: refused.
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

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

/// Reads an absent or `null` field as its default: Docker and BuildKit write `"Env": null`,
/// `"Volumes": null`, `"annotations": null`, ... for fields an image does not set, and the
/// image spec allows any optional field to be left out. Use with `#[serde(default,
/// deserialize_with = "null_default")]`.
pub fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The OCI (Go) name of this machine's architecture.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// The platform an index entry is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture, Go style (`amd64`, `arm64`).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// CPU variant (`v8`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this process runs on (`linux/amd64` on x86-64 Linux).
    pub fn host() -> Platform {
        Platform {
            architecture: host_architecture().to_string(),
            os: std::env::consts::OS.to_string(),
            variant: None,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the content is.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes (an upper bound for reads, never an allocation size).
    pub size: u64,
    /// For index entries: the platform.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    /// Where else the blob may be fetched from (the OCI spec's `urls`, set on foreign,
    /// non-distributable layers that registries do not hold).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub urls: Vec<String>,
}

/// Whether a layer is non-distributable (OCI's `nondistributable` types, Docker's foreign
/// layers): such a blob is not uploaded when its descriptor says where else it lives.
pub fn is_nondistributable(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.oci.image.layer.nondistributable.")
        || media_type.starts_with("application/vnd.docker.image.rootfs.foreign.")
}

/// An image manifest (OCI or Docker v2 schema 2: the same fields).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`OCI_MANIFEST`] or [`DOCKER_MANIFEST`].
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

/// An image index or Docker manifest list (also `index.json` of an OCI layout).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// [`OCI_INDEX`] or [`DOCKER_LIST`].
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
    /// Docker's `ArgsEscaped` (deprecated in the OCI spec, read by Docker on Windows): kept
    /// from a base image, set by a Dockerfile's `CMD` as BuildKit sets it.
    #[serde(
        rename = "ArgsEscaped",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub args_escaped: bool,
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let manifest: ImageManifest = serde_json::from_str(&format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_CONFIG}","digest":"{d}","size":1,"annotations":null}},"layers":null,"annotations":null}}"#
        ))
        .unwrap();
        assert!(manifest.layers.is_empty());
    }

    /// Docker's `ArgsEscaped` survives a read and a write (a base image built by docker
    /// keeps it), and is left out when false or `null`, as before the field was read.
    #[test]
    fn args_escaped_is_kept_and_false_left_out() {
        let config = |run: &str| {
            format!(
                r#"{{"architecture":"amd64","os":"linux","config":{run},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
            )
        };
        let escaped: ImageConfig =
            serde_json::from_str(&config(r#"{"Cmd":["sh"],"ArgsEscaped":true}"#)).unwrap();
        assert!(escaped.config.args_escaped);
        let written = serde_json::to_string(&escaped).unwrap();
        assert!(written.contains(r#""ArgsEscaped":true"#), "{written}");
        for run in [r#"{"ArgsEscaped":false}"#, r#"{"ArgsEscaped":null}"#, "{}"] {
            let plain: ImageConfig = serde_json::from_str(&config(run)).unwrap();
            let written = serde_json::to_string(&plain).unwrap();
            assert!(!written.contains("ArgsEscaped"), "{run}: {written}");
        }
    }

    /// The bytes strata writes are its digests: field order and left-out empty fields are
    /// fixed (these are the bytes strata wrote before the types were merged).
    #[test]
    fn writes_the_same_bytes() {
        let d = Digest::of(b"x");
        let descriptor = |media_type: &str| Descriptor {
            media_type: media_type.into(),
            digest: d,
            size: 1,
            platform: None,
            annotations: BTreeMap::new(),
            urls: Vec::new(),
        };
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: OCI_MANIFEST.into(),
            config: descriptor(OCI_CONFIG),
            layers: vec![Descriptor {
                urls: vec!["https://example.com/l".into()],
                ..descriptor("application/vnd.oci.image.layer.v1.tar+gzip")
            }],
            annotations: BTreeMap::from([(CREATED.into(), "now".into()), ("a".into(), "b".into())]),
        };
        assert_eq!(
            serde_json::to_string(&manifest).unwrap(),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{d}","size":1}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{d}","size":1,"urls":["https://example.com/l"]}}],"annotations":{{"a":"b","org.opencontainers.image.created":"now"}}}}"#
            )
        );
        let index = Index {
            schema_version: 2,
            media_type: OCI_INDEX.into(),
            manifests: vec![descriptor(OCI_MANIFEST)],
        };
        assert_eq!(
            serde_json::to_string(&index).unwrap(),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":1}}]}}"#
            )
        );
        assert_eq!(
            serde_json::to_string(&ImageConfig::empty()).unwrap(),
            format!(
                r#"{{"architecture":"{}","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":[]}},"history":[]}}"#,
                host_architecture()
            )
        );
        // An index entry's platform is read (also as `null`) and written back.
        let entry: Descriptor = serde_json::from_str(&format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":1,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}}"#
        ))
        .unwrap();
        assert_eq!(
            entry.platform.as_ref().unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert!(
            serde_json::to_string(&entry)
                .unwrap()
                .contains(r#""platform":{"architecture":"arm64","os":"linux","variant":"v8"}"#)
        );
        let entry: Descriptor = serde_json::from_str(&format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":1,"platform":null}}"#
        ))
        .unwrap();
        assert_eq!(entry.platform, None);
    }
}
