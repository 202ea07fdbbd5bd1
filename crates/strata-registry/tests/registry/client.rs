use strata_registry::manifest::{DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use strata_registry::{Error, ManifestFormat, Options, Platform, PushOptions, Reference};
use strata_store::{Digest, Store};

use crate::support::{self, GZIP, Registry, ZSTD};

fn at(registry: &Registry, rest: &str) -> Reference {
    format!("{}/{rest}", registry.addr()).parse().unwrap()
}

#[test]
fn push_then_pull_round_trips_and_second_push_uploads_nothing() {
    let registry = Registry::start();
    let (_a, a) = support::store();
    let img = support::image(&a, &["base", "app"], "amd64", GZIP);
    let client = support::client();
    let to = at(&registry, "team/app:v1");

    let pushed = client
        .push(&a, &img.manifest, &to, ManifestFormat::Oci)
        .unwrap();
    assert_eq!(pushed.manifest, img.manifest, "OCI pushes keep the bytes");
    assert_eq!(pushed.media_type, OCI_MANIFEST);
    assert_eq!(
        (pushed.uploaded, pushed.existing, pushed.mounted),
        (3, 0, 0)
    );
    let layer_bytes: u64 = img.layers.iter().map(|l| l.size).sum();
    assert!(pushed.uploaded_bytes > layer_bytes, "{pushed:?}");

    let (_b, b) = support::store();
    let pulled = support::client().pull(&to, &b).unwrap();
    assert_eq!(pulled.manifest, img.manifest);
    assert_eq!(pulled.config, img.config);
    assert_eq!(pulled.layers, img.layers);
    assert_eq!(pulled.index, None);
    assert_eq!(pulled.downloaded, 3);
    let mut all = vec![img.manifest, img.config];
    all.extend(img.layers.iter().map(|l| l.digest));
    support::same_blobs(&a, &b, &all);

    let again = client
        .push(&a, &img.manifest, &to, ManifestFormat::Oci)
        .unwrap();
    assert_eq!(
        (again.uploaded, again.uploaded_bytes, again.existing),
        (0, 0, 3)
    );

    // Pulling again downloads nothing.
    let repull = support::client().pull(&to, &b).unwrap();
    assert_eq!(repull.downloaded, 0);
}

#[test]
fn push_by_digest_and_resolve_and_tags() {
    let registry = Registry::start();
    let (_a, a) = support::store();
    let img = support::simple(&a, "resolve");
    let client = support::client();
    let repo = at(&registry, "team/app");
    for tag in ["v2", "v1"] {
        client
            .push(&a, &img.manifest, &repo.with_tag(tag), ManifestFormat::Oci)
            .unwrap();
    }
    let by_digest = repo.with_digest(img.manifest);
    client
        .push(&a, &img.manifest, &by_digest, ManifestFormat::Oci)
        .unwrap();
    assert_eq!(
        client.resolve(&repo.with_tag("v1")).unwrap(),
        Some(img.manifest)
    );
    assert_eq!(client.resolve(&by_digest).unwrap(), Some(img.manifest));
    assert_eq!(client.resolve(&repo.with_tag("nope")).unwrap(), None);
    assert_eq!(
        client.resolve(&at(&registry, "never/pushed:x")).unwrap(),
        None
    );
    let mut tags = client.tags(&registry.addr(), "team/app").unwrap();
    tags.sort();
    assert_eq!(tags, ["v1", "v2"]);
    assert!(
        client
            .tags(&registry.addr(), "never/pushed")
            .unwrap()
            .is_empty()
    );

    // A digest reference must match what is pushed.
    let wrong = repo.with_digest(Digest::of(b"other"));
    let err = client
        .push(&a, &img.manifest, &wrong, ManifestFormat::Oci)
        .unwrap_err();
    assert!(err.to_string().contains("push by tag"), "{err}");
}

#[test]
fn push_to_another_repository_mounts_instead_of_uploading() {
    let registry = Registry::start();
    let (_a, a) = support::store();
    let img = support::image(&a, &["m1", "m2"], "amd64", GZIP);
    let client = support::client();
    client
        .push(
            &a,
            &img.manifest,
            &at(&registry, "stages:x"),
            ManifestFormat::Oci,
        )
        .unwrap();

    // The same client knows where the blobs are.
    let pushed = client
        .push(
            &a,
            &img.manifest,
            &at(&registry, "team/app:v1"),
            ManifestFormat::Oci,
        )
        .unwrap();
    assert_eq!(
        (pushed.uploaded, pushed.mounted, pushed.existing),
        (0, 3, 0),
        "{pushed:?}"
    );

    // A fresh client is told where to mount from.
    let options = PushOptions {
        format: ManifestFormat::Oci,
        mount_from: vec!["stages".into()],
        ..PushOptions::default()
    };
    let pushed = support::client()
        .push_with(&a, &img.manifest, &at(&registry, "other/app:v1"), &options)
        .unwrap();
    assert_eq!((pushed.uploaded, pushed.mounted), (0, 3), "{pushed:?}");

    // A mount source that lacks the blobs falls back to uploading.
    let options = PushOptions {
        format: ManifestFormat::Oci,
        mount_from: vec!["empty/repo".into()],
        ..PushOptions::default()
    };
    let pushed = support::client()
        .push_with(&a, &img.manifest, &at(&registry, "third/app:v1"), &options)
        .unwrap();
    assert_eq!((pushed.uploaded, pushed.mounted), (3, 0), "{pushed:?}");

    let (_b, b) = support::store();
    let pulled = support::client()
        .pull(&at(&registry, "team/app:v1"), &b)
        .unwrap();
    assert_eq!(pulled.manifest, img.manifest);
}

#[test]
fn docker_v2_push_is_accepted_and_pulls_back() {
    let registry = Registry::start();
    let (_a, a) = support::store();
    let img = support::simple(&a, "docker");
    let client = support::client();
    let to = at(&registry, "team/docker:v1");
    let pushed = client
        .push(&a, &img.manifest, &to, ManifestFormat::DockerV2)
        .unwrap();
    assert_eq!(pushed.media_type, DOCKER_MANIFEST);
    assert_ne!(pushed.manifest, img.manifest);
    assert!(
        a.has_blob(&pushed.manifest),
        "the converted manifest is stored too"
    );

    let (_b, b) = support::store();
    let pulled = support::client().pull(&to, &b).unwrap();
    assert_eq!(pulled.manifest, pushed.manifest);
    assert_eq!(pulled.media_type, DOCKER_MANIFEST);
    assert_eq!(pulled.config, img.config);
    assert_eq!(pulled.layers[0].digest, img.layers[0].digest);
    assert_eq!(pulled.layers[0].diff_id, img.layers[0].diff_id);
    assert_eq!(
        pulled.layers[0].media_type,
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    support::same_blobs(&a, &b, &[pushed.manifest, img.config, img.layers[0].digest]);

    // And back to OCI: the same bytes as the original.
    let oci = client
        .push(
            &b,
            &pulled.manifest,
            &at(&registry, "team/oci:v1"),
            ManifestFormat::Oci,
        )
        .unwrap();
    assert_eq!(oci.media_type, OCI_MANIFEST);

    // zstd layers have no Docker media type.
    let zstd = support::image(&a, &["z"], "amd64", ZSTD);
    let err = client
        .push(
            &a,
            &zstd.manifest,
            &at(&registry, "team/z:v1"),
            ManifestFormat::DockerV2,
        )
        .unwrap_err();
    assert!(err.to_string().contains("zstd"), "{err}");
}

#[test]
fn an_index_pulls_the_wanted_platform() {
    let registry = Registry::start();
    let (_a, a) = support::store();
    let amd = support::image(&a, &["amd"], "amd64", GZIP);
    let arm = support::image(&a, &["arm"], "arm64", GZIP);
    let entry = |d: Digest, arch: &str, variant: &str| {
        let size = a.blob_size(&d).unwrap();
        format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":{size},"platform":{{"architecture":"{arch}","os":"linux"{variant}}}}}"#
        )
    };
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{},{}]}}"#,
        entry(arm.manifest, "arm64", r#","variant":"v8""#),
        entry(amd.manifest, "amd64", "")
    );
    let index = a.write_blob(index.as_bytes()).unwrap();
    let to = at(&registry, "team/multi:v1");
    let pushed = support::client()
        .push(&a, &index, &to, ManifestFormat::Oci)
        .unwrap();
    assert_eq!((pushed.manifest, pushed.manifests), (index, 3));
    assert_eq!(support::client().resolve(&to).unwrap(), Some(index));

    let (_b, b) = support::store();
    let pulled = support::client().pull(&to, &b).unwrap();
    assert_eq!((pulled.manifest, pulled.index), (amd.manifest, Some(index)));
    assert_eq!(pulled.layers, amd.layers);
    assert!(!b.has_blob(&arm.layers[0].digest));

    let platform = |arch: &str| Options {
        platform: Platform {
            architecture: arch.into(),
            os: "linux".into(),
            variant: None,
        },
        ..Options::default()
    };
    let arm_client = strata_registry::Client::new(Options {
        docker_config: Some("/nonexistent/config.json".into()),
        ..platform("arm64")
    })
    .unwrap();
    assert_eq!(arm_client.pull(&to, &b).unwrap().manifest, arm.manifest);
    let s390x = strata_registry::Client::new(platform("s390x")).unwrap();
    let err = s390x.pull(&to, &b).unwrap_err();
    assert!(matches!(err, Error::NoPlatform { .. }), "{err}");
    assert!(
        err.to_string().contains("linux/arm64/v8, linux/amd64"),
        "{err}"
    );

    // Docker format: a manifest list of converted manifests.
    let to = at(&registry, "team/multi-docker:v1");
    let pushed = support::client()
        .push(&a, &index, &to, ManifestFormat::DockerV2)
        .unwrap();
    assert_eq!(pushed.media_type, strata_registry::manifest::DOCKER_LIST);
    let (_c, c) = support::store();
    let pulled = support::client().pull(&to, &c).unwrap();
    assert_eq!(pulled.media_type, DOCKER_MANIFEST);
    assert_eq!(pulled.config, amd.config);
}

#[test]
fn pulling_what_does_not_exist_names_it() {
    let registry = Registry::start();
    let (_b, b) = support::store();
    let err = support::client()
        .pull(&at(&registry, "no/such:tag"), &b)
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("manifest tag not found in 127.0.0.1"),
        "{err}"
    );
}
