//! Stage cache keys.
//!
//! A stage's digest is the sha256 of an unambiguous encoding (every field length-prefixed) of:
//!
//! | input | where it comes from | effect of a change |
//! |---|---|---|
//! | encoding version | `strata/stage/v2` (v1 hashed inputs as untyped name/value pairs) | every stage of every image rebuilds |
//! | parent digest | the previous non-empty stage of the image (none for `from`) | this stage and every later one rebuild |
//! | stage name | `from`, `beforeInstall`, ..., `dockerInstructions`, `3-run` | — (fixed per position) |
//! | each input's [`DigestInput::canonical`] encoding | the plan's typed inputs, plus `base` on `from` (the solver's) and late inputs (the executor's) | this stage and every later one |
//!
//! Which kinds of inputs feed which kind of stage is the table of `strata_plan`'s `input`
//! module ([`strata_plan::StageKind::feeds`]); the frontends' module docs list what each of
//! their stages has (`stapel`, `dockerfile::lower`). A stage's `network` setting is `none`
//! for commands run without network (`RUN --network=none`, or any command stage of `strata
//! build --network none`) and absent for the host's network.
//!
//! Service variables (commit hash and time), mount host paths and the files a git mask
//! matched ([`strata_plan::MaskFiles`], covered by the mask's checksum) are deliberately not
//! hashed.

use strata_digest::{Digest, Hasher};
use strata_plan::DigestInput;

const VERSION: &str = "strata/stage/v2";

/// The digest of a stage given its parent's digest, its name and its inputs.
pub fn stage_digest(parent: Option<&Digest>, stage: &str, inputs: &[DigestInput]) -> Digest {
    let mut h = Hasher::new();
    field(&mut h, VERSION.as_bytes());
    field(
        &mut h,
        parent.map(|p| p.hex()).unwrap_or_default().as_bytes(),
    );
    field(&mut h, stage.as_bytes());
    field(&mut h, &(inputs.len() as u64).to_le_bytes());
    for input in inputs {
        field(&mut h, &input.canonical());
    }
    h.finish()
}

fn field(h: &mut Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cv(key: &str, value: &str) -> DigestInput {
        DigestInput::CacheVersion {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn every_part_changes_the_digest() {
        let p = Digest::of(b"parent");
        let base = stage_digest(Some(&p), "install", &[cv("installCacheVersion", "1")]);
        assert_ne!(
            base,
            stage_digest(None, "install", &[cv("installCacheVersion", "1")])
        );
        assert_ne!(
            base,
            stage_digest(Some(&p), "setup", &[cv("installCacheVersion", "1")])
        );
        assert_ne!(
            base,
            stage_digest(Some(&p), "install", &[cv("installCacheVersion", "2")])
        );
        assert_ne!(
            base,
            stage_digest(Some(&p), "install", &[cv("setupCacheVersion", "1")])
        );
        assert_eq!(
            base,
            stage_digest(Some(&p), "install", &[cv("installCacheVersion", "1")])
        );
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let a = stage_digest(
            None,
            "s",
            &[DigestInput::Instructions {
                lines: vec!["ab".into(), "c".into()],
            }],
        );
        let b = stage_digest(
            None,
            "s",
            &[DigestInput::Instructions {
                lines: vec!["a".into(), "bc".into()],
            }],
        );
        assert_ne!(a, b);
        assert_ne!(
            stage_digest(None, "s", &[cv("k", "v"), cv("k2", "")]),
            stage_digest(None, "s", &[cv("k", "vk2")])
        );
    }
}
