use strata_git::{MaskList, MaskSet, PathFilter};

use crate::util::masks;

#[test]
fn bad_globs_report_the_mask() {
    let e = PathFilter::new("/src", &masks(&["ok", "lib/[a-"]), &[]).expect_err("bad include");
    assert_eq!(e.mask, "lib/[a-");
    assert_eq!(e.list, MaskList::Include);
    assert_eq!(e.index, 1);
    assert_eq!(e.column, Some(5));
    let msg = e.to_string();
    assert!(
        msg.contains("lib/[a-") && msg.contains("includePaths"),
        "{msg}"
    );

    let e = MaskSet::new(&masks(&["{a,b"])).expect_err("bad mask");
    assert_eq!((e.list, e.index), (MaskList::Masks, 0));
    assert!(e.message.contains("missing '}'"), "{}", e.message);
}
