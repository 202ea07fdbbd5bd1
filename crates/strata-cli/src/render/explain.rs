//! Explanations of why stages were built (`strata build --explain`, `strata explain`), as
//! text and as JSON.

use strata::ops::explain::{Change, Explained, Location, MissReason, Outcome};

/// One line per stage (`app/install: built: installCacheVersion changed: "1" → "2"`), and
/// under a changed instruction or git mask the lines or files that changed.
pub fn text(stages: &[Explained]) -> String {
    let mut out = String::new();
    for s in stages {
        let head = format!("{}/{} {}", s.image, s.stage, s.digest.short(12));
        match &s.outcome {
            Outcome::Reused(from) => out.push_str(&format!("{head}: reused ({})\n", place(*from))),
            Outcome::Built(reason) => {
                out.push_str(&format!("{head}: built: {}\n", summary(reason)));
                if let MissReason::Changed { change, .. } = reason {
                    out.push_str(&details(change));
                }
            }
        }
    }
    out
}

fn place(from: Location) -> &'static str {
    match from {
        Location::Local => "local",
        Location::Remote => "--repo",
    }
}

fn summary(reason: &MissReason) -> String {
    match reason {
        MissReason::New => "the image had no such stage before".into(),
        MissReason::Unreadable => {
            "the stage it had before was recorded by an older strata (nothing to compare)".into()
        }
        MissReason::Added { input, value } => format!("{input} is new: {value:?}"),
        MissReason::Removed { input, value } => format!("{input} is gone (was {value:?})"),
        MissReason::Parent => "the stage before it changed".into(),
        MissReason::Encoding => "strata's digest encoding changed".into(),
        MissReason::Forced => "--no-cache asked for it".into(),
        MissReason::Changed { input, change } => match change {
            Change::Value { old, new } => format!("{input} changed: {old:?} → {new:?}"),
            Change::Lines { .. } => format!("{input} changed:"),
            Change::Files { masks, .. } => {
                format!("{input} changed: files under {} changed:", masks.join(", "))
            }
        },
    }
}

fn details(change: &Change) -> String {
    let mut out = String::new();
    match change {
        Change::Value { .. } => {}
        Change::Lines { removed, added } => {
            for line in removed {
                out.push_str(&format!("    - {line}\n"));
            }
            for line in added {
                out.push_str(&format!("    + {line}\n"));
            }
        }
        Change::Files {
            added,
            removed,
            modified,
            unlisted,
            ..
        } => {
            for (mark, paths) in [("M", modified), ("A", added), ("D", removed)] {
                for path in paths {
                    out.push_str(&format!("    {mark} {path}\n"));
                }
            }
            if *unlisted > 0 {
                out.push_str(&format!("    ... and {unlisted} more\n"));
            }
        }
    }
    out
}

/// The stages as a JSON array: `{"image", "stage", "digest", "built", "reusedFrom",
/// "reason"}`, the reason `{"kind", "input", ...}`.
pub fn json(stages: &[Explained]) -> serde_json::Value {
    serde_json::Value::Array(
        stages
            .iter()
            .map(|s| {
                let (reused, reason) = match &s.outcome {
                    Outcome::Reused(from) => (Some(place(*from)), None),
                    Outcome::Built(reason) => (None, Some(reason_json(reason))),
                };
                serde_json::json!({
                    "image": s.image,
                    "stage": s.stage,
                    "digest": s.digest.hex(),
                    "built": reason.is_some(),
                    "reusedFrom": reused,
                    "reason": reason,
                })
            })
            .collect(),
    )
}

fn reason_json(reason: &MissReason) -> serde_json::Value {
    use serde_json::json;
    match reason {
        MissReason::New => json!({"kind": "new"}),
        MissReason::Unreadable => json!({"kind": "unreadable"}),
        MissReason::Parent => json!({"kind": "parent"}),
        MissReason::Encoding => json!({"kind": "encoding"}),
        MissReason::Forced => json!({"kind": "forced"}),
        MissReason::Added { input, value } => {
            json!({"kind": "added", "input": input, "value": value})
        }
        MissReason::Removed { input, value } => {
            json!({"kind": "removed", "input": input, "value": value})
        }
        MissReason::Changed { input, change } => match change {
            Change::Value { old, new } => {
                json!({"kind": "changed", "input": input, "old": old, "new": new})
            }
            Change::Lines { removed, added } => json!({
                "kind": "changed", "input": input, "removedLines": removed, "addedLines": added,
            }),
            Change::Files {
                masks,
                added,
                removed,
                modified,
                unlisted,
            } => json!({
                "kind": "changed", "input": input, "masks": masks, "added": added,
                "removed": removed, "modified": modified, "unlisted": unlisted,
            }),
        },
    }
}
