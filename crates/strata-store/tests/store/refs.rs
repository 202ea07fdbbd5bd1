use std::collections::BTreeMap;

use strata_store::{Digest, LocalStore, PutOutcome, Store, TagTarget};

use crate::support::{ChildProc, RACE_ROUNDS, record, store};

#[test]
fn two_processes_and_two_threads_race_put_stage() {
    let (d, store) = store();
    let go = d.path().join("go");
    let mut children: Vec<_> = (0..2)
        .map(|_| ChildProc::spawn("put_stage", store.root(), Some(&go)))
        .collect();
    // Writer name -> the rounds it won.
    let mut wins: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let (store, go) = (&store, &go);
                s.spawn(move || {
                    while !go.exists() {
                        std::thread::yield_now();
                    }
                    let writer = format!("thread {t}");
                    let won: Vec<usize> = (0..RACE_ROUNDS)
                        .filter(|&i| {
                            store.put_stage(&record(i, &writer)).unwrap() == PutOutcome::Inserted
                        })
                        .collect();
                    (writer, won)
                })
            })
            .collect();
        std::fs::write(&go, b"").unwrap();
        for t in threads {
            let (writer, won) = t.join().unwrap();
            wins.insert(writer, won);
        }
    });
    for child in &mut children {
        let writer = format!("pid {}", child.pid());
        let mut won = Vec::new();
        for _ in 0..RACE_ROUNDS {
            let line = child.expect("OUTCOME");
            let (i, outcome) = line.split_once(' ').unwrap();
            if outcome == "inserted" {
                won.push(i.parse::<usize>().unwrap());
            }
        }
        child.expect("DONE");
        wins.insert(writer, won);
    }
    for i in 0..RACE_ROUNDS {
        let winners: Vec<_> = wins
            .iter()
            .filter(|(_, w)| w.contains(&i))
            .map(|(n, _)| n)
            .collect();
        assert_eq!(winners.len(), 1, "round {i}: winners {winners:?}");
        let stored = store.stage(&record(i, "").digest).unwrap().unwrap();
        assert_eq!(
            &stored.meta["writer"], winners[0],
            "round {i}: the stored record is not the winner's"
        );
    }
    assert_eq!(
        std::fs::read_dir(store.root().join("ingest"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn tags_with_registry_names_survive_reopening() {
    let (_d, store) = store();
    let names = [
        "hello",
        "busybox:latest",
        "registry.local:5000/team/app:v1",
        "app@sha256:abc",
    ];
    for (i, name) in names.iter().enumerate() {
        let target = TagTarget {
            manifest: Digest::of(name.as_bytes()),
            stage: None,
            updated_unix: i as u64,
        };
        store.set_tag(name, &target).unwrap();
    }
    let reopened = LocalStore::open(store.root()).unwrap();
    let listed = reopened.tags().unwrap();
    let mut expected: Vec<_> = names.iter().map(|n| n.to_string()).collect();
    expected.sort();
    assert_eq!(
        listed.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        expected
    );
    for name in names {
        assert_eq!(
            reopened.tag(name).unwrap().unwrap().manifest,
            Digest::of(name.as_bytes())
        );
    }
    // Every tag is one flat file in tags/.
    for entry in std::fs::read_dir(store.root().join("tags")).unwrap() {
        assert!(entry.unwrap().file_type().unwrap().is_file());
    }
}

#[test]
fn corrupted_stage_record_is_an_error_naming_the_file() {
    let (_d, store) = store();
    let rec = record(0, "me");
    store.put_stage(&rec).unwrap();
    let path = store
        .root()
        .join(format!("stages/{}.json", rec.digest.hex()));
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"{\"digest\": \"sha256:").unwrap();
    let err = store.stage(&rec.digest).unwrap_err().to_string();
    assert!(
        err.contains(&path.display().to_string()) && err.contains("corrupt"),
        "{err}"
    );
}
