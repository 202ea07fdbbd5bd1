//! `.dockerignore` patterns and git masks (`includePaths`/`excludePaths`): parse, then match
//! paths against them.

use proptest::prelude::*;
use strata_frontend::dockerfile::ignore::DockerIgnore;
use strata_git::PathFilter;

use crate::{bounded, config};

const PARTS: &[&str] = &[
    "*", "**", "?", "/", "a", "b", ".", "..", "[a-z]", "[!a]", "[^a]", "[", "]", "[]]", "[a-",
    "{a,b}", "{", "}", "\\", "\\*", "!", "#", " ", "é", "**/", "/**", "*.go", "src", "~",
];

fn pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::collection::vec(proptest::sample::select(PARTS), 0..10).prop_map(|p| p.concat()),
        // Long runs that a backtracking matcher pays for.
        1 => (0usize..5000, proptest::sample::select(&["*", "**/", "?", "a", "*a"][..]))
            .prop_map(|(n, p)| p.repeat(n)),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::collection::vec(
            proptest::sample::select(&["a", "b", "src", ".git", "x.go", "é", "a.b", "..."][..]),
            0..8,
        )
        .prop_map(|p| p.join("/")),
        1 => (0usize..4096).prop_map(|n| "a".repeat(n)),
        1 => (0usize..2000).prop_map(|n| "a/".repeat(n)),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn dockerignore_ends(
        patterns in proptest::collection::vec(pattern(), 0..8),
        paths in proptest::collection::vec(path(), 1..6),
    ) {
        let text = patterns.join("\n");
        let input = format!("{text:?} against {paths:?}");
        bounded(&input, move || {
            if let Ok(ignore) = DockerIgnore::parse(&text) {
                for p in &paths {
                    let _ = ignore.is_excluded(p);
                    let _ = ignore.may_include_below(p);
                }
            }
        });
    }

    #[test]
    fn git_masks_end(
        add in proptest::sample::select(&["/", "/src", "src/", "", "..", "/a/../b"][..]),
        include in proptest::collection::vec(pattern(), 0..4),
        exclude in proptest::collection::vec(pattern(), 0..4),
        paths in proptest::collection::vec(path(), 1..6),
    ) {
        let input = format!("add {add:?} include {include:?} exclude {exclude:?} against {paths:?}");
        bounded(&input, move || {
            if let Ok(filter) = PathFilter::new(add, &include, &exclude) {
                for p in &paths {
                    let _ = filter.matches(p);
                    let _ = filter.relative(p);
                }
            }
        });
    }
}
