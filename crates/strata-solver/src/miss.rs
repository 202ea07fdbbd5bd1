//! Why a stage missed the cache: the first difference between its inputs and those of the
//! stage the same image had before (cargo's `DirtyReason` is the model).
//!
//! Inputs are matched by [`DigestInput::name`], their identity within a stage; the first input
//! of the new stage (in digest order) that the old one lacks or has with another value is the
//! reason, then the first old input the new one lacks. A stage whose own inputs are all the
//! same was rebuilt because the stage before it is another one.

use strata_plan::DigestInput;

/// The most file paths (and added or removed lines) a [`Change`] lists; the rest are counted.
pub const LISTED: usize = 20;

/// Why a stage was built although the image had a stage of that name before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MissReason {
    /// The image never had this stage (in this store).
    New,
    /// The earlier stage's record has inputs this strata cannot read (written before inputs
    /// were typed): nothing to compare with.
    Unreadable,
    /// An input has another value.
    Changed {
        /// The input's name (`installCacheVersion`, `git[0].install`, `arg.VERSION`, ...).
        input: String,
        /// How it changed.
        change: Change,
    },
    /// An input the earlier stage did not have.
    Added {
        /// The input's name.
        input: String,
        /// Its value.
        value: String,
    },
    /// An input the earlier stage had and this one has not.
    Removed {
        /// The input's name.
        input: String,
        /// Its earlier value.
        value: String,
    },
    /// Every input is the same; the stage before it is another one.
    Parent,
    /// Inputs and parent are the same: the digest encoding itself changed.
    Encoding,
    /// Built again on request (docker's `--no-cache`, `--no-cache-filter`), whatever the
    /// cache had.
    Forced,
}

/// How one input changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Instructions (or ansible tasks): the lines taken out and put in (a line diff, each list capped at
    /// [`LISTED`]).
    Lines {
        /// Lines only the old instructions have.
        removed: Vec<String>,
        /// Lines only the new ones have.
        added: Vec<String>,
    },
    /// A git mask's files: which paths changed (capped at [`LISTED`] in all).
    Files {
        /// The masks.
        masks: Vec<String>,
        /// Paths matched now and not before.
        added: Vec<String>,
        /// Paths matched before and not now.
        removed: Vec<String>,
        /// Paths whose content or mode changed.
        modified: Vec<String>,
        /// Changed paths not listed (over the cap, or not recorded: a mask matching more
        /// files than a record keeps).
        unlisted: usize,
    },
    /// Any other value: the old and the new one.
    Value {
        /// The earlier value.
        old: String,
        /// The value now.
        new: String,
    },
}

/// The first difference between a stage's inputs and those of the same image's earlier stage
/// of that name (`parent_changed`: their parents differ).
pub fn miss_reason(old: &[DigestInput], new: &[DigestInput], parent_changed: bool) -> MissReason {
    for input in new {
        let name = input.name();
        match old.iter().find(|o| o.name() == name) {
            None => {
                return MissReason::Added {
                    input: name,
                    value: input.value(),
                };
            }
            Some(before) if before.canonical() != input.canonical() => {
                return MissReason::Changed {
                    input: name,
                    change: change(before, input),
                };
            }
            Some(_) => {}
        }
    }
    if let Some(gone) = old
        .iter()
        .find(|o| !new.iter().any(|n| n.name() == o.name()))
    {
        return MissReason::Removed {
            input: gone.name(),
            value: gone.value(),
        };
    }
    if parent_changed {
        MissReason::Parent
    } else {
        MissReason::Encoding
    }
}

fn change(old: &DigestInput, new: &DigestInput) -> Change {
    match (old, new) {
        // One line per task (its JSON is one line).
        (DigestInput::Instructions { lines: a }, DigestInput::Instructions { lines: b })
        | (DigestInput::AnsibleTasks { tasks: a }, DigestInput::AnsibleTasks { tasks: b }) => {
            let split = |l: &[String]| -> Vec<String> {
                l.iter()
                    .flat_map(|c| c.lines().map(str::to_string))
                    .collect()
            };
            let (removed, added) = line_diff(&split(a), &split(b));
            Change::Lines { removed, added }
        }
        (
            DigestInput::GitMask {
                files: a,
                masks: old_masks,
                ..
            },
            DigestInput::GitMask {
                files: b, masks, ..
            },
        ) if old_masks == masks => {
            let listed = |f: &strata_plan::MaskFiles| f.files.len() == f.total;
            if !(listed(a) && listed(b)) {
                return Change::Files {
                    masks: masks.clone(),
                    added: Vec::new(),
                    removed: Vec::new(),
                    modified: Vec::new(),
                    unlisted: a.total.max(b.total),
                };
            }
            let id = |f: &strata_plan::MaskFiles, p: &str| {
                f.files
                    .iter()
                    .find(|(q, _)| q == p)
                    .map(|(_, id)| id.clone())
            };
            let mut changed = Vec::new();
            for (path, now) in &b.files {
                match id(a, path) {
                    None => changed.push((0, path.clone())),
                    Some(before) if &before != now => changed.push((2, path.clone())),
                    Some(_) => {}
                }
            }
            for (path, _) in &a.files {
                if id(b, path).is_none() {
                    changed.push((1, path.clone()));
                }
            }
            let unlisted = changed.len().saturating_sub(LISTED);
            changed.sort_by(|x, y| x.1.cmp(&y.1));
            changed.truncate(LISTED);
            let of = |k: u8| -> Vec<String> {
                changed
                    .iter()
                    .filter(|(c, _)| *c == k)
                    .map(|(_, p)| p.clone())
                    .collect()
            };
            Change::Files {
                masks: masks.clone(),
                added: of(0),
                removed: of(1),
                modified: of(2),
                unlisted,
            }
        }
        _ => Change::Value {
            old: old.value(),
            new: new.value(),
        },
    }
}

/// The lines only `a` has and those only `b` has, by a longest common subsequence (stage
/// instructions are a few hundred lines at most), each list capped at [`LISTED`].
fn line_diff(a: &[String], b: &[String]) -> (Vec<String>, Vec<String>) {
    let (n, m) = (a.len(), b.len());
    // lcs[i][j]: the LCS length of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            added.push(b[j].clone());
            j += 1;
        } else {
            removed.push(a[i].clone());
            i += 1;
        }
    }
    removed.truncate(LISTED);
    added.truncate(LISTED);
    (removed, added)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_plan::MaskFiles;

    fn cv(key: &str, value: &str) -> DigestInput {
        DigestInput::CacheVersion {
            key: key.into(),
            value: value.into(),
        }
    }

    fn lines(l: &[&str]) -> DigestInput {
        DigestInput::Instructions {
            lines: l.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn names_the_first_changed_input() {
        let old = [lines(&["make"]), cv("installCacheVersion", "1")];
        let new = [lines(&["make"]), cv("installCacheVersion", "2")];
        assert_eq!(
            miss_reason(&old, &new, true),
            MissReason::Changed {
                input: "installCacheVersion".into(),
                change: Change::Value {
                    old: "1".into(),
                    new: "2".into()
                }
            }
        );
        assert_eq!(miss_reason(&old, &old, true), MissReason::Parent);
        assert_eq!(miss_reason(&old, &old, false), MissReason::Encoding);
        assert!(matches!(
            miss_reason(&old, &old[..1], false),
            MissReason::Removed { input, .. } if input == "installCacheVersion"
        ));
        assert!(matches!(
            miss_reason(&old[..1], &old, false),
            MissReason::Added { input, .. } if input == "installCacheVersion"
        ));
    }

    #[test]
    fn instructions_are_diffed_by_line() {
        let old = [lines(&["apt-get update\napt-get install -y curl", "make"])];
        let new = [lines(&[
            "apt-get update\napt-get install -y curl jq",
            "make",
        ])];
        assert_eq!(
            miss_reason(&old, &new, false),
            MissReason::Changed {
                input: "instructions".into(),
                change: Change::Lines {
                    removed: vec!["apt-get install -y curl".into()],
                    added: vec!["apt-get install -y curl jq".into()],
                }
            }
        );
    }

    #[test]
    fn masks_name_the_files_that_changed() {
        let mask = |checksum: &str, files: &[(&str, &str)]| DigestInput::GitMask {
            mapping: 0,
            stage: "install".into(),
            masks: vec!["src/**".into()],
            checksum: checksum.into(),
            files: MaskFiles {
                total: files.len(),
                files: files
                    .iter()
                    .map(|(p, id)| (p.to_string(), id.to_string()))
                    .collect(),
            },
        };
        let old = [mask("a", &[("src/a", "1"), ("src/b", "1"), ("src/c", "1")])];
        let new = [mask("b", &[("src/a", "1"), ("src/b", "2"), ("src/d", "1")])];
        assert_eq!(
            miss_reason(&old, &new, false),
            MissReason::Changed {
                input: "git[0].install".into(),
                change: Change::Files {
                    masks: vec!["src/**".into()],
                    added: vec!["src/d".into()],
                    removed: vec!["src/c".into()],
                    modified: vec!["src/b".into()],
                    unlisted: 0,
                }
            }
        );
    }
}
