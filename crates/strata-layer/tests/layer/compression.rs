//! Compression: the decompressed view matches the uncompressed layer byte for byte.

use std::io::Read;

use strata_layer::{Compression, decompressed, write_layer};

#[test]
fn decompressed_yields_the_plain_tar() {
    let src = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(src.path().join("d")).expect("mkdir");
    std::fs::write(src.path().join("d/f"), vec![1u8; 300_000]).expect("write");
    let mut plain = Vec::new();
    let stats = write_layer(src.path(), Compression::None, &mut plain).expect("write");
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let mut blob = Vec::new();
        let s = write_layer(src.path(), compression, &mut blob).expect("write");
        assert_eq!(s.diff_id, stats.diff_id, "{compression}");
        let mut reader = decompressed(Box::new(std::io::Cursor::new(blob))).expect("open");
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("read");
        assert!(out == plain, "{compression}: decompressed stream differs");
    }
}

#[test]
fn media_types_match_the_oci_spec() {
    assert_eq!(
        Compression::Zstd.media_type(),
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert_eq!(
        Compression::Gzip.media_type(),
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(
        Compression::None.media_type(),
        "application/vnd.oci.image.layer.v1.tar"
    );
    assert_eq!(
        Compression::from_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip"),
        Some(Compression::Gzip)
    );
    assert_eq!(
        "gzip".parse::<Compression>().expect("parse"),
        Compression::Gzip
    );
}
