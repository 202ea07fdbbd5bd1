use std::sync::{Arc, Barrier};

use strata_registry::stages::{RECORD_ANNOTATION, StageRepo};
use strata_registry::{ManifestFormat, Reference};
use strata_store::{Digest, Store};

use crate::support::{self, Registry};

fn repo(registry: &Registry) -> StageRepo {
    let reference: Reference = format!("{}/team/stages", registry.addr()).parse().unwrap();
    StageRepo::new(support::client(), &reference)
}

#[test]
fn publish_then_find_round_trips_the_record() {
    let registry = Registry::start();
    let stages = repo(&registry);
    let (_a, a) = support::store();
    let img = support::image(&a, &["s1", "s2"], "amd64", support::GZIP);
    let digest = Digest::of(b"stage one");
    let record = support::record(&img, digest, "a");

    assert_eq!(stages.find(&digest).unwrap(), None);
    let published = stages.publish(&a, &record).unwrap();
    assert!(published.ours);
    assert_eq!(published.stage.record, record);
    assert!(
        published
            .stage
            .tag
            .starts_with(&format!("{}-", digest.hex())),
        "{}",
        published.stage.tag
    );
    assert_ne!(
        published.stage.manifest, record.manifest,
        "the remote manifest is annotated"
    );
    assert_eq!(published.pushed.as_ref().unwrap().uploaded, 3);

    let found = stages.find(&digest).unwrap().unwrap();
    assert_eq!(found, published.stage);

    // Publishing again pushes nothing and reports the existing stage as ours.
    let again = stages.publish(&a, &record).unwrap();
    assert!(again.ours && again.pushed.is_none());
    assert_eq!(again.stage, found);

    // Pull the metadata only, then the layers; the original manifest is restored exactly.
    let (_c, c) = support::store();
    let pulled = stages.pull(&found, &c, false).unwrap();
    assert_eq!(pulled, record);
    assert_eq!(
        c.read_blob(&record.manifest).unwrap(),
        a.read_blob(&record.manifest).unwrap()
    );
    assert!(c.has_blob(&record.config));
    assert!(
        !c.has_blob(&record.layers[0].digest),
        "layers only when asked"
    );
    stages.pull(&found, &c, true).unwrap();
    for layer in &record.layers {
        assert!(c.has_blob(&layer.digest));
    }

    // The remote manifest carries the record as an annotation.
    let remote = String::from_utf8(c.read_blob(&found.manifest).unwrap()).unwrap();
    assert!(remote.contains(RECORD_ANNOTATION), "{remote}");
    assert_eq!(stages.find(&Digest::of(b"unknown")).unwrap(), None);
}

#[test]
fn the_oldest_tag_that_resolves_to_a_valid_stage_wins() {
    let registry = Registry::start();
    let stages = repo(&registry);
    let (_a, a) = support::store();
    let img = support::simple(&a, "oldest");
    let digest = Digest::of(b"stage two");
    let record = support::record(&img, digest, "a");
    let published = stages.publish(&a, &record).unwrap();

    // An older tag holding a plain image (no record) is passed over, ...
    let client = support::client();
    let bogus = stages
        .repository()
        .with_tag(&StageRepo::tag_for(&digest, 1));
    client
        .push(&a, &img.manifest, &bogus, ManifestFormat::Oci)
        .unwrap();
    assert_eq!(
        stages.find(&digest).unwrap().unwrap().tag,
        published.stage.tag
    );

    // ... but an older valid stage wins over a newer one.
    let (_b, b) = support::store();
    let other = support::simple(&b, "other builder");
    let older = support::record(&other, digest, "b");
    let first = StageRepo::new(support::client(), stages.repository());
    let theirs = first.publish(&b, &older).unwrap();
    assert!(!theirs.ours, "the existing stage wins: {theirs:?}");
    assert_eq!(theirs.stage.record, record);
    // A third builder's valid stage appears under an older tag than a's (a slow clock, or a
    // publisher that tagged late): it wins for everyone from now on.
    let tag2 = StageRepo::tag_for(&digest, 2);
    let (_c, c) = support::store();
    let third = support::simple(&c, "third builder");
    let third_record = support::record(&third, digest, "c");
    // Publish c's stage under another repository, then move its manifest under tag2 here.
    let elsewhere = StageRepo::new(
        support::client(),
        &format!("{}/team/elsewhere", registry.addr())
            .parse()
            .unwrap(),
    );
    let c_published = elsewhere.publish(&c, &third_record).unwrap();
    client
        .push(
            &c,
            &c_published.stage.manifest,
            &stages.repository().with_tag(&tag2),
            ManifestFormat::Oci,
        )
        .unwrap();
    let winner = stages.find(&digest).unwrap().unwrap();
    assert_eq!(
        (winner.tag.as_str(), &winner.record),
        (tag2.as_str(), &third_record)
    );
}

#[test]
fn concurrent_publishers_agree_on_one_winner() {
    let registry = Registry::start();
    for round in 0..3 {
        let digest = Digest::of(format!("raced stage {round}").as_bytes());
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|builder| {
                let barrier = barrier.clone();
                let stages = repo(&registry);
                std::thread::spawn(move || {
                    let (dir, store) = support::store();
                    let img = support::simple(&store, &format!("{builder}{round}"));
                    let record = support::record(&img, digest, builder);
                    barrier.wait();
                    let published = stages.publish(&store, &record).unwrap();
                    drop(dir);
                    (record, published)
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let (ra, pa) = &results[0];
        let (rb, pb) = &results[1];
        assert_eq!(
            pa.stage, pb.stage,
            "round {round}: both see the same winner"
        );
        assert_eq!(
            pa.ours as u8 + pb.ours as u8,
            1,
            "round {round}: exactly one won"
        );
        let winner_record = if pa.ours { ra } else { rb };
        assert_eq!(&pa.stage.record, winner_record);
        assert_eq!(repo(&registry).find(&digest).unwrap().unwrap(), pa.stage);
    }
}
