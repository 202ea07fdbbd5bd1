//! Blobs uploaded while they are made (`Client::upload_streamed`), against a real registry.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use strata_registry::Reference;
use strata_store::Digest;

use crate::support::{self, Fault, Proxy, Registry};

fn at(addr: &str, rest: &str) -> Reference {
    format!("{addr}/{rest}").parse().unwrap()
}

/// Where `docker-registry` keeps a blob it has accepted.
fn stored_blob(registry: &Registry, digest: &Digest) -> PathBuf {
    let hex = digest.to_string().trim_start_matches("sha256:").to_string();
    registry.storage().join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ))
}

/// The bytes of the registry's open upload sessions in `repository`.
fn uploading(registry: &Registry, repository: &str) -> u64 {
    let dir = registry.storage().join(format!(
        "docker/registry/v2/repositories/{repository}/_uploads"
    ));
    let Ok(sessions) = std::fs::read_dir(dir) else {
        return 0;
    };
    sessions
        .flatten()
        .filter_map(|s| std::fs::metadata(s.path().join("data")).ok())
        .map(|m| m.len())
        .sum()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn exists(path: &Path) -> bool {
    path.exists()
}

#[test]
fn a_blob_reaches_the_registry_while_it_is_made() {
    let registry = Registry::start();
    let to = at(&registry.addr(), "team/streamed");
    let bytes = support::noise("streamed", 8 << 20);
    let (first, second) = bytes.split_at(bytes.len() / 2);
    let streamed = support::client()
        .upload_streamed(&to, |out| {
            out.write_all(first)?;
            // The first half is in the registry's upload session before the second is made.
            wait_for("the first half in the upload session", || {
                uploading(&registry, "team/streamed") >= (1 << 20)
            });
            out.write_all(second)?;
            std::io::Result::Ok(("made", Digest::of(&bytes), bytes.len() as u64))
        })
        .unwrap();
    streamed.upload.expect("the upload completes");
    assert_eq!(streamed.made, "made");
    assert_eq!(streamed.digest, Digest::of(&bytes));
    assert_eq!(
        std::fs::read(stored_blob(&registry, &streamed.digest)).unwrap(),
        bytes
    );
}

#[test]
fn an_upload_cut_short_still_lets_the_blob_be_made() {
    let registry = Registry::start();
    let proxy = Proxy::start(&registry.addr(), Fault::CutPatch);
    let to = at(&proxy.addr(), "team/cut");
    let bytes = support::noise("cut", 4 << 20);
    let mut kept = Vec::new();
    let streamed = support::client()
        .upload_streamed(&to, |out| {
            for chunk in bytes.chunks(64 * 1024) {
                out.write_all(chunk)?;
                kept.extend_from_slice(chunk);
            }
            std::io::Result::Ok(((), Digest::of(&kept), kept.len() as u64))
        })
        .unwrap();
    assert!(streamed.upload.is_err(), "{streamed:?}");
    // Every byte reached the producer's own copy; none is in the registry under the digest.
    assert_eq!(kept, bytes);
    assert!(!exists(&stored_blob(&registry, &streamed.digest)));
}

#[test]
fn a_producer_that_fails_cancels_the_upload() {
    let registry = Registry::start();
    let to = at(&registry.addr(), "team/failed");
    let bytes = support::noise("failed", 2 << 20);
    let failed = support::client().upload_streamed(&to, |out| {
        out.write_all(&bytes)?;
        Err::<((), Digest, u64), _>(std::io::Error::other("the layer is corrupt"))
    });
    assert_eq!(failed.unwrap_err().to_string(), "the layer is corrupt");
    assert!(!exists(&stored_blob(&registry, &Digest::of(&bytes))));
    wait_for("the upload session to go", || {
        uploading(&registry, "team/failed") == 0
    });
}

#[test]
fn a_streamed_upload_authenticates_as_every_request() {
    let registry = Registry::with_htpasswd("builder", "s3cret");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("docker/config.json");
    strata_registry::login(&registry.addr(), "builder", "s3cret", Some(&config)).unwrap();
    let client = support::client_with(strata_registry::Options {
        docker_config: Some(config),
        ..strata_registry::Options::default()
    });
    let to = at(&registry.addr(), "team/private");
    let bytes = support::noise("private", 1 << 20);
    let streamed = client
        .upload_streamed(&to, |out| {
            out.write_all(&bytes)?;
            std::io::Result::Ok(((), Digest::of(&bytes), bytes.len() as u64))
        })
        .unwrap();
    streamed
        .upload
        .expect("the upload completes with the credentials");
    assert_eq!(
        std::fs::read(stored_blob(&registry, &streamed.digest)).unwrap(),
        bytes
    );
}
