//! The manifest JSON a registry speaks: OCI image manifests and indexes, Docker v2 schema 2
//! manifests and manifest lists.
//!
//! Parsing reads only what pulling and pushing need (descriptors, platforms, annotations) and
//! never re-serializes what it parsed: manifests are stored and pushed as the exact bytes they
//! came in, because their digest is their identity. Conversion between OCI and Docker media
//! types ([`convert_image`], [`convert_index`]) edits a JSON tree, keeping every field it does not
//! know; the result is a new manifest with a new digest.
//!
//! Everything here treats input as hostile: documents over [`MAX_MANIFEST`] bytes are refused
//! before parsing, and sizes in descriptors are only ever used as upper bounds for reads.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use strata_digest::Digest;

// The document types live in `crate::oci` (one set for the workspace); these are the names
// the registry's callers know them by here.
pub use crate::oci::{
    DOCKER_CONFIG, DOCKER_LIST, DOCKER_MANIFEST, DOCKER_SCHEMA1, Descriptor, ImageManifest, Index,
    OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, Platform, is_nondistributable, null_default,
};

/// The largest manifest, index or image config strata accepts (4 MiB).
pub const MAX_MANIFEST: u64 = 4 << 20;

/// The `Accept` header for manifest requests: every format strata can read.
pub const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// Layer media types: (OCI, Docker). Docker has no zstd layer type.
const LAYER_TYPES: [(&str, &str); 3] = [
    (
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ),
    (
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.docker.image.rootfs.diff.tar",
    ),
    (
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ),
];

/// The OCI media type of a Docker layer media type (`...rootfs.diff.tar.gzip` →
/// `...layer.v1.tar+gzip`); any other type is returned as it is.
pub fn oci_layer_type(media_type: &str) -> &str {
    LAYER_TYPES
        .iter()
        .find(|(_, docker)| *docker == media_type)
        .map_or(media_type, |(oci, _)| oci)
}

/// What can be wrong with a manifest or config.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Larger than [`MAX_MANIFEST`].
    #[error("{what} is {size} bytes, more than the {MAX_MANIFEST}-byte limit")]
    TooLarge {
        /// `manifest`, `image config`, ...
        what: &'static str,
        /// Its size.
        size: u64,
    },
    /// Not valid JSON of the expected shape.
    #[error("{what} is not valid: {source}")]
    Json {
        /// `manifest`, `image config`, ...
        what: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A media type strata does not handle.
    #[error(
        "unsupported manifest media type `{0}`; strata reads OCI and Docker v2 schema 2 manifests and indexes (schema 1 is long deprecated: re-push the image with a current client)"
    )]
    Unsupported(String),
    /// The conversion to the requested format is impossible.
    #[error("cannot convert to {format}: {reason}")]
    Conversion {
        /// The target format.
        format: &'static str,
        /// Why.
        reason: String,
    },
}

/// Which media types a pushed manifest uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ManifestFormat {
    /// OCI image manifest and index media types. Manifests already in OCI form are pushed
    /// byte for byte.
    #[default]
    Oci,
    /// Docker v2 schema 2 manifest and manifest list media types (annotations are dropped, zstd
    /// layers are refused).
    DockerV2,
}

impl ManifestFormat {
    fn name(self) -> &'static str {
        match self {
            ManifestFormat::Oci => "OCI",
            ManifestFormat::DockerV2 => "Docker v2 schema 2",
        }
    }
}

/// A parsed manifest of either kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Manifest {
    /// An image manifest (boxed: its inline config descriptor makes it far larger than an index).
    Image(Box<ImageManifest>),
    /// An index of manifests.
    Index(Index),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default, deserialize_with = "null_default")]
    annotations: BTreeMap<String, String>,
}

/// Parses a manifest or index. The `mediaType` field wins over `content_type` (the HTTP
/// header), which is only consulted when the document has none.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, Error> {
    if bytes.len() as u64 > MAX_MANIFEST {
        return Err(Error::TooLarge {
            what: "manifest",
            size: bytes.len() as u64,
        });
    }
    let raw: Raw = serde_json::from_slice(bytes).map_err(|source| Error::Json {
        what: "manifest",
        source,
    })?;
    let content_type = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim())
        .filter(|c| !c.is_empty() && *c != "application/json");
    let media_type = raw
        .media_type
        .or(content_type.map(String::from))
        .unwrap_or_default();
    if raw.schema_version != 2 || media_type == DOCKER_SCHEMA1 {
        return Err(Error::Unsupported(if media_type.is_empty() {
            format!("schemaVersion {}", raw.schema_version)
        } else {
            media_type
        }));
    }
    match (raw.config, raw.layers, raw.manifests) {
        (Some(config), layers, None)
            if matches!(media_type.as_str(), OCI_MANIFEST | DOCKER_MANIFEST | "") =>
        {
            Ok(Manifest::Image(Box::new(ImageManifest {
                schema_version: raw.schema_version,
                media_type: if media_type.is_empty() {
                    OCI_MANIFEST.to_string()
                } else {
                    media_type
                },
                config,
                layers: layers.unwrap_or_default(),
                annotations: raw.annotations,
            })))
        }
        (None, None, Some(manifests))
            if matches!(media_type.as_str(), OCI_INDEX | DOCKER_LIST | "") =>
        {
            Ok(Manifest::Index(Index {
                schema_version: raw.schema_version,
                media_type: if media_type.is_empty() {
                    OCI_INDEX.to_string()
                } else {
                    media_type
                },
                manifests,
            }))
        }
        _ => Err(Error::Unsupported(media_type)),
    }
}

/// The layer diff ids (`rootfs.diff_ids`) of an image config.
pub fn diff_ids(config: &[u8]) -> Result<Vec<Digest>, Error> {
    #[derive(Deserialize)]
    struct Config {
        rootfs: crate::oci::RootFs,
    }
    if config.len() as u64 > MAX_MANIFEST {
        return Err(Error::TooLarge {
            what: "image config",
            size: config.len() as u64,
        });
    }
    let config: Config = serde_json::from_slice(config).map_err(|source| Error::Json {
        what: "image config",
        source,
    })?;
    Ok(config.rootfs.diff_ids)
}

/// Picks the entry of `index` for `platform`: os and architecture must match; an entry whose
/// variant matches exactly beats one without a variant.
pub fn select<'a>(index: &'a Index, platform: &Platform) -> Option<&'a Descriptor> {
    let candidates = index.manifests.iter().filter(|d| {
        d.platform.as_ref().is_some_and(|p| {
            p.os == platform.os
                && p.architecture == platform.architecture
                && (platform.variant.is_none()
                    || p.variant.is_none()
                    || p.variant == platform.variant)
        })
    });
    let mut best = None;
    for d in candidates {
        let exact = d.platform.as_ref().map(|p| &p.variant) == Some(&platform.variant);
        if exact {
            return Some(d);
        }
        best = best.or(Some(d));
    }
    best
}

/// The media type of a pushed image manifest in `format`.
pub fn manifest_type(format: ManifestFormat) -> &'static str {
    match format {
        ManifestFormat::Oci => OCI_MANIFEST,
        ManifestFormat::DockerV2 => DOCKER_MANIFEST,
    }
}

/// The media type of a pushed index in `format`.
pub fn index_type(format: ManifestFormat) -> &'static str {
    match format {
        ManifestFormat::Oci => OCI_INDEX,
        ManifestFormat::DockerV2 => DOCKER_LIST,
    }
}

fn json_tree(bytes: &[u8]) -> Result<serde_json::Map<String, Value>, Error> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Error::Unsupported(
            "a JSON value that is not an object".into(),
        )),
        Err(source) => Err(Error::Json {
            what: "manifest",
            source,
        }),
    }
}

fn set_type(descriptor: &mut Value, media_type: &str) {
    if let Some(obj) = descriptor.as_object_mut() {
        obj.insert("mediaType".into(), Value::String(media_type.into()));
    }
}

fn strip_oci_only(obj: &mut serde_json::Map<String, Value>) {
    for key in ["annotations", "artifactType", "subject"] {
        obj.remove(key);
    }
}

/// Converts an image manifest to `format`. Returns `None` when it already is in that format
/// (push its bytes unchanged).
pub fn convert_image(bytes: &[u8], format: ManifestFormat) -> Result<Option<Vec<u8>>, Error> {
    let Manifest::Image(parsed) = parse(bytes, None)? else {
        return Err(Error::Unsupported(
            "an index where an image manifest was expected".into(),
        ));
    };
    let target = manifest_type(format);
    if parsed.media_type == target {
        return Ok(None);
    }
    let conversion = |reason: String| Error::Conversion {
        format: format.name(),
        reason,
    };
    let mut tree = json_tree(bytes)?;
    tree.insert("mediaType".into(), Value::String(target.into()));
    let config_type = match format {
        ManifestFormat::Oci => OCI_CONFIG,
        ManifestFormat::DockerV2 => DOCKER_CONFIG,
    };
    if let Some(config) = tree.get_mut("config") {
        set_type(config, config_type);
        if format == ManifestFormat::DockerV2
            && let Some(obj) = config.as_object_mut()
        {
            strip_oci_only(obj);
        }
    }
    if let Some(Value::Array(layers)) = tree.get_mut("layers") {
        for (layer, descriptor) in layers.iter_mut().zip(&parsed.layers) {
            let from = descriptor.media_type.as_str();
            let to = LAYER_TYPES.iter().find_map(|(oci, docker)| match format {
                ManifestFormat::Oci if from == *docker || from == *oci => Some(*oci),
                ManifestFormat::DockerV2 if from == *oci || from == *docker => Some(*docker),
                _ => None,
            });
            let Some(to) = to else {
                return Err(conversion(format!(
                    "layer {} has media type `{from}`, which has no {} equivalent{}",
                    descriptor.digest,
                    format.name(),
                    if from.contains("zstd") {
                        "; push in OCI format or build with gzip layers"
                    } else {
                        ""
                    }
                )));
            };
            set_type(layer, to);
            if format == ManifestFormat::DockerV2
                && let Some(obj) = layer.as_object_mut()
            {
                strip_oci_only(obj);
            }
        }
    }
    serialize(tree, format, "converted manifest").map(Some)
}

/// The bytes of a converted manifest or index tree; Docker's formats lose the OCI-only fields.
fn serialize(
    mut tree: serde_json::Map<String, Value>,
    format: ManifestFormat,
    what: &'static str,
) -> Result<Vec<u8>, Error> {
    if format == ManifestFormat::DockerV2 {
        strip_oci_only(&mut tree);
    }
    serde_json::to_vec(&tree).map_err(|source| Error::Json { what, source })
}

/// What an index entry became when its manifest was pushed: (digest, media type, size).
pub type Pushed = (Digest, String, u64);

/// Rewrites an index for `format`: its media type, and each entry whose manifest was pushed
/// under another digest (see `children`). Returns `None` if nothing changed.
pub fn convert_index(
    bytes: &[u8],
    format: ManifestFormat,
    children: &BTreeMap<Digest, Pushed>,
) -> Result<Option<Vec<u8>>, Error> {
    let Manifest::Index(parsed) = parse(bytes, None)? else {
        return Err(Error::Unsupported(
            "an image manifest where an index was expected".into(),
        ));
    };
    let target = index_type(format);
    let changed = parsed.media_type != target
        || parsed.manifests.iter().any(|d| {
            children
                .get(&d.digest)
                .is_some_and(|(digest, media_type, size)| {
                    *digest != d.digest || *media_type != d.media_type || *size != d.size
                })
        });
    if !changed {
        return Ok(None);
    }
    let mut tree = json_tree(bytes)?;
    tree.insert("mediaType".into(), Value::String(target.into()));
    if let Some(Value::Array(entries)) = tree.get_mut("manifests") {
        for (entry, descriptor) in entries.iter_mut().zip(&parsed.manifests) {
            if let (Some((digest, media_type, size)), Some(obj)) =
                (children.get(&descriptor.digest), entry.as_object_mut())
            {
                obj.insert("digest".into(), Value::String(digest.to_string()));
                obj.insert("mediaType".into(), Value::String(media_type.clone()));
                obj.insert("size".into(), Value::from(*size));
                if format == ManifestFormat::DockerV2 {
                    strip_oci_only(obj);
                }
            }
        }
    }
    serialize(tree, format, "converted index").map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(layer_type: &str) -> Vec<u8> {
        let c = Digest::of(b"c");
        let l = Digest::of(b"l");
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{c}","size":1}},"layers":[{{"mediaType":"{layer_type}","digest":"{l}","size":1}}],"annotations":{{"a":"b"}}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn parses_oci_and_docker() {
        let bytes = manifest("application/vnd.oci.image.layer.v1.tar+gzip");
        let Manifest::Image(m) = parse(&bytes, None).unwrap() else {
            panic!("not an image")
        };
        assert_eq!(m.media_type, OCI_MANIFEST);
        assert_eq!(m.layers.len(), 1);
        assert_eq!(m.annotations["a"], "b");
        let docker = convert_image(&bytes, ManifestFormat::DockerV2)
            .unwrap()
            .unwrap();
        let Manifest::Image(d) = parse(&docker, None).unwrap() else {
            panic!("not an image")
        };
        assert_eq!(d.media_type, DOCKER_MANIFEST);
        assert_eq!(d.config.media_type, DOCKER_CONFIG);
        assert_eq!(
            d.layers[0].media_type,
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
        assert!(d.annotations.is_empty());
        assert_eq!(convert_image(&bytes, ManifestFormat::Oci).unwrap(), None);
        let back = convert_image(&docker, ManifestFormat::Oci)
            .unwrap()
            .unwrap();
        let Manifest::Image(o) = parse(&back, None).unwrap() else {
            panic!("not an image")
        };
        assert_eq!(
            o.layers[0].media_type,
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
    }

    #[test]
    fn zstd_cannot_become_docker() {
        let bytes = manifest("application/vnd.oci.image.layer.v1.tar+zstd");
        let err = convert_image(&bytes, ManifestFormat::DockerV2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("zstd") && err.contains("gzip layers"), "{err}");
    }

    #[test]
    fn refuses_schema1_garbage_and_huge() {
        let s1 = br#"{"schemaVersion":1,"name":"x"}"#;
        assert!(matches!(parse(s1, None), Err(Error::Unsupported(_))));
        assert!(matches!(parse(b"{}", None), Err(Error::Json { .. })));
        assert!(matches!(parse(b"nope", None), Err(Error::Json { .. })));
        let huge = vec![b' '; MAX_MANIFEST as usize + 1];
        assert!(matches!(parse(&huge, None), Err(Error::TooLarge { .. })));
    }

    #[test]
    fn selects_platform() {
        let d = |arch: &str, variant: Option<&str>| Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: Digest::of(arch.as_bytes()),
            size: 1,
            platform: Some(Platform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: variant.map(String::from),
            }),
            annotations: BTreeMap::new(),
            urls: Vec::new(),
        };
        let index = Index {
            schema_version: 2,
            media_type: OCI_INDEX.into(),
            manifests: vec![d("arm64", Some("v8")), d("amd64", None)],
        };
        let want = |arch: &str| Platform {
            architecture: arch.into(),
            os: "linux".into(),
            variant: None,
        };
        assert_eq!(
            select(&index, &want("amd64")).unwrap().digest,
            Digest::of(b"amd64")
        );
        assert_eq!(
            select(&index, &want("arm64")).unwrap().digest,
            Digest::of(b"arm64")
        );
        assert!(select(&index, &want("s390x")).is_none());
    }

    #[test]
    fn diff_ids_of_config() {
        let d = Digest::of(b"t");
        let config = format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["{d}"]}}}}"#);
        assert_eq!(diff_ids(config.as_bytes()).unwrap(), vec![d]);
    }
}
