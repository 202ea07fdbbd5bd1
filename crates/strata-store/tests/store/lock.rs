use std::sync::mpsc;
use std::time::Duration;

use crate::support::{ChildProc, store};

static NO: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[test]
fn lock_held_by_another_process_blocks_and_names_its_pid() {
    let (_d, store) = store();
    let mut child = ChildProc::spawn("hold_lock", store.root(), None);
    let pid = child.expect("LOCKED");
    assert_eq!(pid, child.pid().to_string());

    let (tx, rx) = mpsc::channel();
    let s = store.clone();
    let waiter = std::thread::spawn(move || {
        let mut messages = Vec::new();
        let guard = s
            .lock("shared", &mut |m| messages.push(m.to_string()), &NO)
            .unwrap()
            .expect("not cancelled");
        tx.send(()).unwrap();
        drop(guard);
        messages
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "the second locker did not block"
    );
    // The holder dies without unlocking; the kernel releases its flock.
    child.kill();
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the lock was not acquired after the holder died");
    let messages = waiter.join().unwrap();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].contains(&format!("pid {pid}")),
        "{}",
        messages[0]
    );
    assert!(
        messages[0].contains("shared") && messages[0].contains("for "),
        "{}",
        messages[0]
    );

    // Free now: no waiting.
    let _g = store
        .lock("shared", &mut |m| panic!("waited on a free lock: {m}"), &NO)
        .unwrap();
}
