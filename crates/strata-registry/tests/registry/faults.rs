//! The client through a proxy that breaks things.

use std::sync::atomic::Ordering;

use strata_registry::{ManifestFormat, Options, Reference};
use strata_store::Store;

use crate::support::{self, Fault, Proxy, Registry};

fn via(proxy: &Proxy, rest: &str) -> Reference {
    format!("{}/{rest}", proxy.addr()).parse().unwrap()
}

/// A registry holding one image at `team/app:v1`, and a store with it.
fn seeded() -> (Registry, support::TestImage) {
    let registry = Registry::start();
    let (_a, a) = support::store();
    let img = support::simple(&a, "faults");
    let to: Reference = format!("{}/team/app:v1", registry.addr()).parse().unwrap();
    support::client()
        .push(&a, &img.manifest, &to, ManifestFormat::Oci)
        .unwrap();
    (registry, img)
}

#[test]
fn a_connection_closed_mid_blob_is_retried() {
    let (registry, img) = seeded();
    let layer = img.layers[0].digest;
    let proxy = Proxy::start(&registry.addr(), Fault::CloseMidBlobOnce(layer));
    let (_b, b) = support::store();
    let pulled = support::client()
        .pull(&via(&proxy, "team/app:v1"), &b)
        .unwrap();
    assert_eq!(pulled.manifest, img.manifest);
    assert_eq!(
        proxy.blob_gets.load(Ordering::SeqCst),
        2,
        "one cut, one retry"
    );
    assert_eq!(
        b.read_blob(&layer).unwrap().len() as u64,
        img.layers[0].size
    );
}

#[test]
fn a_blob_truncated_every_time_fails_and_stores_nothing() {
    let (registry, img) = seeded();
    let layer = img.layers[0].digest;
    let proxy = Proxy::start(&registry.addr(), Fault::TruncateBlob(layer));
    let (_b, b) = support::store();
    let client = support::client_with(Options {
        retries: 2,
        ..Options::default()
    });
    let err = client.pull(&via(&proxy, "team/app:v1"), &b).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&layer.to_string())
            && msg.contains("the body ended after")
            && msg.contains("gave up after 3 attempts"),
        "{msg}"
    );
    assert_eq!(proxy.blob_gets.load(Ordering::SeqCst), 3);
    let (blobs, ingest) = support::store_files(&b);
    assert!(!blobs.contains(&layer.hex()), "{blobs:?}");
    assert!(
        !blobs.contains(&img.manifest.hex()),
        "no manifest without its layers: {blobs:?}"
    );
    assert_eq!(ingest, 0, "partial writes are cleaned up");
}

#[test]
fn wrong_bytes_for_a_digest_are_refused_and_not_stored() {
    let (registry, img) = seeded();
    let layer = img.layers[0].digest;
    let proxy = Proxy::start(&registry.addr(), Fault::CorruptBlob(layer));
    let (_b, b) = support::store();
    let err = support::client()
        .pull(&via(&proxy, "team/app:v1"), &b)
        .unwrap_err();
    assert!(err.is_digest_mismatch(), "{err}");
    assert!(
        err.to_string().contains(&format!("blob {layer} from")),
        "{err}"
    );
    assert!(err.to_string().contains("nothing was stored"), "{err}");
    assert_eq!(
        proxy.blob_gets.load(Ordering::SeqCst),
        1,
        "a mismatch is not retried"
    );
    let (blobs, ingest) = support::store_files(&b);
    assert!(!blobs.contains(&layer.hex()), "{blobs:?}");
    assert_eq!(ingest, 0);
}

#[test]
fn registry_killed_mid_push_is_a_clear_error_and_a_later_push_completes() {
    let mut registry = Registry::start();
    let pid = registry.pid();
    let kill: Box<dyn FnOnce() + Send> = Box::new(move || {
        let status = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    });
    let proxy = Proxy::start(&registry.addr(), Fault::OnUpload(Some(kill)));
    let (_a, a) = support::store();
    let img = support::image(&a, &["k1", "k2"], "amd64", support::GZIP);
    let client = support::client_with(Options {
        retries: 1,
        ..Options::default()
    });
    let to = via(&proxy, "team/app:v1");
    let err = client
        .push(&a, &img.manifest, &to, ManifestFormat::Oci)
        .unwrap_err();
    let msg = err.to_string();
    assert!(err.is_transient() || msg.contains("gave up"), "{msg}");
    assert!(
        msg.contains("blob sha256:") && msg.contains("gave up after 2 attempts"),
        "{msg}"
    );

    registry.restart();
    *proxy.fault.lock().unwrap() = Fault::None;
    let pushed = client
        .push(&a, &img.manifest, &to, ManifestFormat::Oci)
        .unwrap();
    assert_eq!(pushed.manifest, img.manifest);
    let (_b, b) = support::store();
    let pulled = support::client().pull(&to, &b).unwrap();
    assert_eq!(pulled.layers, img.layers);
}
