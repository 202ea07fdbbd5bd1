//! Changes of a real overlay upper dir.

use strata_layer::{ChangeKind, changes};

use crate::*;

#[test]
fn real_overlay_upper_changes() {
    let base = tempfile::tempdir().expect("tempdir");
    let (lower, upper) = real_overlay_upper(base.path());
    let got = changes(&upper, &[lower]).expect("changes");
    let got: Vec<(&str, ChangeKind)> = got.iter().map(|c| (c.path.as_str(), c.kind)).collect();
    assert_eq!(
        got,
        [
            ("/d", ChangeKind::Modified),
            ("/d/new", ChangeKind::Added),
            ("/d/old1", ChangeKind::Deleted),
            ("/d/old2", ChangeKind::Deleted),
            ("/gone", ChangeKind::Deleted),
            ("/new", ChangeKind::Added),
            ("/sub", ChangeKind::Modified),
            ("/sub/f", ChangeKind::Modified),
        ]
    );
}
