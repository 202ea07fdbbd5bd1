//! Layer tars: valid archives (files, dirs, links, whiteouts, GNU long names, PAX records)
//! with mutated header fields, given to `strata_layer::unpack_layer` (which reads through
//! the bounded reader) and to `bounded::entries`; nothing may appear outside the target.

use proptest::prelude::*;
use strata_layer::bounded;

use crate::{bounded, config};

#[derive(Clone, Debug)]
enum Item {
    File(String, Vec<u8>),
    Dir(String),
    Symlink(String, String),
    Hardlink(String, String),
    Pax(Vec<(String, Vec<u8>)>),
}

const NAMES: &[&str] = &[
    "a",
    "d",
    "d/x",
    "d/.wh..wh..opq",
    ".wh..wh..opq",
    ".wh.a",
    "d/.wh.x",
    ".wh..",
    ".wh.",
    "../x",
    "d/../../x",
    "/abs",
    "./d/./y",
    "link/x",
    "link/.wh.x",
    "up/x",
    "é",
    "",
];

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => proptest::sample::select(NAMES).prop_map(str::to_string),
        // Long names: GNU long name records and PAX paths.
        1 => (90usize..400).prop_map(|n| format!("d/{}", "n".repeat(n))),
    ]
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        3 => (name(), proptest::collection::vec(any::<u8>(), 0..700)).prop_map(|(n, d)| Item::File(n, d)),
        2 => name().prop_map(Item::Dir),
        2 => (name(), proptest::sample::select(&["/", "..", "../../..", "/etc", "d", "outside", "x"][..]), 1usize..400)
            .prop_map(|(n, t, r)| Item::Symlink(n, if t == "x" { t.repeat(r) } else { t.to_string() })),
        1 => (name(), name()).prop_map(|(n, t)| Item::Hardlink(n, t)),
        1 => proptest::collection::vec(
            (
                proptest::sample::select(&[
                    "path", "linkpath", "size", "uid", "gid", "mtime", "SCHILY.xattr.user.a",
                    "SCHILY.xattr.trusted.overlay.opaque", "SCHILY.xattr.", "GNU.sparse.size",
                ][..]),
                proptest::collection::vec(any::<u8>(), 0..40),
            )
                .prop_map(|(k, v)| (k.to_string(), v)),
            1..4,
        )
        .prop_map(Item::Pax),
    ]
}

fn archive(items: &[Item]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let header = |kind| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(0);
        h
    };
    for item in items {
        // Names the tar crate refuses (`..`, empty) are skipped by the builder: fine.
        let _ = match item {
            Item::File(n, data) => {
                let mut h = header(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, n, data.as_slice())
            }
            Item::Dir(n) => b.append_data(&mut header(tar::EntryType::Directory), n, &[][..]),
            Item::Symlink(n, t) => b.append_link(&mut header(tar::EntryType::Symlink), n, t),
            Item::Hardlink(n, t) => b.append_link(&mut header(tar::EntryType::Link), n, t),
            Item::Pax(records) => {
                b.append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            }
        };
    }
    b.into_inner().expect("finish the tar")
}

/// A change to the archive's bytes.
#[derive(Clone, Debug)]
enum Mutation {
    /// Set the byte at an offset (modulo the length).
    Byte(usize, u8),
    /// Overwrite a header field of the block at an offset with digits, then fix the checksum.
    Field {
        block: usize,
        field: usize,
        value: String,
    },
    /// Cut the archive short.
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), any::<u8>()).prop_map(|(o, b)| Mutation::Byte(o, b)),
        4 => (
            any::<usize>(),
            proptest::sample::select(&[100usize, 108, 116, 124, 136, 156, 157, 345][..]),
            proptest::sample::select(&[
                "77777777777", "00000000000", "7777777777777777", "L", "K", "x", "g", "S", "7",
                "1", "2", "5", "\u{80}\u{ff}\u{ff}\u{ff}\u{ff}\u{ff}\u{ff}\u{ff}", "-1", "",
            ][..]),
        )
            .prop_map(|(block, field, value)| Mutation::Field { block, field, value: value.to_string() }),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut tar: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if tar.is_empty() {
            break;
        }
        match m {
            Mutation::Byte(o, b) => {
                let o = o % tar.len();
                tar[o] = *b;
            }
            Mutation::Field {
                block,
                field,
                value,
            } => {
                let blocks = tar.len() / 512;
                if blocks == 0 {
                    continue;
                }
                let start = (block % blocks) * 512;
                let bytes = value.as_bytes();
                let end = (start + field + bytes.len()).min(start + 512);
                tar[start + field..end].copy_from_slice(&bytes[..end - start - field]);
                let mut h = tar::Header::new_old();
                h.as_mut_bytes().copy_from_slice(&tar[start..start + 512]);
                h.set_cksum();
                tar[start..start + 512].copy_from_slice(h.as_bytes());
            }
            Mutation::Truncate(at) => {
                let at = at % tar.len();
                tar.truncate(at);
            }
        }
    }
    tar
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn unpack_ends_inside(
        items in proptest::collection::vec(item(), 0..12),
        mutations in proptest::collection::vec(mutation(), 0..4),
    ) {
        let tar = mutate(archive(&items), &mutations);
        let input = format!("{items:?} mutated by {mutations:?}");
        bounded(&input, move || {
            let base = tempfile::tempdir().expect("tempdir");
            let target = base.path().join("target");
            let outside = base.path().join("outside");
            std::fs::create_dir(&target).expect("mkdir");
            std::fs::create_dir(&outside).expect("mkdir");
            let _ = strata_layer::unpack_layer(&mut tar.as_slice(), &target);
            let mut ar = bounded::archive(tar.as_slice());
            if let Ok(entries) = bounded::entries(&mut ar) {
                for entry in entries {
                    let Ok(mut entry) = entry else { break };
                    if std::io::copy(&mut entry, &mut std::io::sink()).is_err() {
                        break;
                    }
                }
            }
            let mut left = Vec::new();
            for e in std::fs::read_dir(base.path()).expect("read base") {
                left.push(e.expect("entry").file_name());
            }
            left.sort();
            assert_eq!(left, ["outside", "target"], "the unpack wrote beside its target");
            assert_eq!(std::fs::read_dir(&outside).expect("read").count(), 0);
        });
    }
}
