//! The meta `cleanup:` of werf.yaml: werf's keep policies, which `strata cleanup` applies to a
//! stage repository.
//!
//! ```yaml
//! cleanup:
//!   keepPolicies:
//!   - references:
//!       branch: /^(main|production)$/     # or tag:; a name, or /REGEXP/ (Go syntax)
//!       limit: {last: 10, in: 168h, operator: And}
//!     imagesPerReference: {last: 2, in: 72h, operator: Or}
//!   keepImagesBuiltWithinLastNHours: 2
//!   disableGitHistoryBasedPolicy: false
//!   disableBuiltWithinLastNHoursPolicy: false
//!   disableKubernetesBasedPolicy: true    # accepted: strata never looks at clusters
//! ```

use std::time::Duration;

use strata_plan::Diagnostic;

use super::parse::{Entry, Section, boolean, expected, read, read_value, unreachable_key};
use super::yaml::{Kind, Node};

type Result<T> = std::result::Result<T, Box<Diagnostic>>;

/// The meta `cleanup:`.
#[derive(Clone, Debug, Default)]
pub struct Cleanup {
    /// `keepPolicies`; `None` when not written (werf's default policies apply).
    pub keep_policies: Option<Vec<KeepPolicy>>,
    /// `keepImagesBuiltWithinLastNHours` (werf's default is 2).
    pub keep_built_within_hours: Option<u64>,
    /// `disableGitHistoryBasedPolicy`: the keep policies are not applied (nothing is kept by
    /// them).
    pub disable_git_history: bool,
    /// `disableBuiltWithinLastNHoursPolicy`.
    pub disable_built_within: bool,
}

/// One of `keepPolicies`.
#[derive(Clone, Debug)]
pub struct KeepPolicy {
    /// `references`: which git branches or tags.
    pub references: References,
    /// `imagesPerReference`: how many images of each reference's history to keep; werf's
    /// default is the last one.
    pub images_per_reference: Limit,
}

/// `references:` of a keep policy.
#[derive(Clone, Debug)]
pub struct References {
    /// Branches or tags.
    pub kind: RefKind,
    /// Their names.
    pub names: NameMatch,
    /// `limit`: among the matching references, which ones (by the time of their tip commit).
    pub limit: Limit,
}

/// Whether a policy looks at branches or tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind {
    /// `branch:`.
    Branch,
    /// `tag:`.
    Tag,
}

/// A reference name as werf matches it: exactly, or by a `/REGEXP/`.
#[derive(Clone, Debug)]
pub enum NameMatch {
    /// A plain name.
    Exact(String),
    /// A `/REGEXP/`, unanchored as in Go.
    Regex(regex::Regex),
}

impl NameMatch {
    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            NameMatch::Exact(n) => n == name,
            NameMatch::Regex(re) => re.is_match(name),
        }
    }
}

/// werf's `{last, in, operator}`: the newest `last` items and/or the items of the last `in`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limit {
    /// `last`; `None` (or werf's `-1`) is no count limit.
    pub last: Option<usize>,
    /// `in`.
    pub within: Option<Duration>,
    /// `operator: Or` (werf's default is `And`).
    pub or: bool,
}

impl Limit {
    /// Whether the item at `rank` (0 is the newest) of `age` passes.
    pub fn keeps(&self, rank: usize, age: Duration) -> bool {
        let by_count = self.last.is_none_or(|n| rank < n);
        let by_age = self.within.is_none_or(|w| age <= w);
        match (self.last.is_some(), self.within.is_some()) {
            (true, true) if self.or => by_count || by_age,
            _ => by_count && by_age,
        }
    }
}

/// werf's default keep policies: one image for each of the last 10 tags; two images of the
/// past week for each of the 10 branches most active that week; two for main, master,
/// staging and production.
pub fn default_policies() -> Vec<KeepPolicy> {
    let regex = |r: &str| NameMatch::Regex(regex::Regex::new(r).expect("a valid regex"));
    let week = Some(Duration::from_secs(7 * 24 * 3600));
    vec![
        KeepPolicy {
            references: References {
                kind: RefKind::Tag,
                names: regex(".*"),
                limit: Limit {
                    last: Some(10),
                    ..Limit::default()
                },
            },
            images_per_reference: Limit {
                last: Some(1),
                ..Limit::default()
            },
        },
        KeepPolicy {
            references: References {
                kind: RefKind::Branch,
                names: regex(".*"),
                limit: Limit {
                    last: Some(10),
                    within: week,
                    or: false,
                },
            },
            images_per_reference: Limit {
                last: Some(2),
                within: week,
                or: false,
            },
        },
        KeepPolicy {
            references: References {
                kind: RefKind::Branch,
                names: regex("^(main|master|staging|production)$"),
                limit: Limit::default(),
            },
            images_per_reference: Limit {
                last: Some(2),
                ..Limit::default()
            },
        },
    ]
}

const CLEANUP_KEYS: &[&str] = &[
    "keepPolicies",
    "keepImagesBuiltWithinLastNHours",
    "disableGitHistoryBasedPolicy",
    "disableBuiltWithinLastNHoursPolicy",
    "disableKubernetesBasedPolicy",
];
const POLICY_KEYS: &[&str] = &["references", "imagesPerReference"];
const REFERENCES_KEYS: &[&str] = &["branch", "tag", "limit"];
const LIMIT_KEYS: &[&str] = &["last", "in", "operator"];

/// Parses the meta `cleanup:` entry.
pub(super) fn parse(e: &Entry<'_>) -> Result<Cleanup> {
    let mut cleanup = Cleanup::default();
    if !e.value.is_null() {
        read_value(e, "cleanup", &mut cleanup)?;
    }
    Ok(cleanup)
}

impl Section for Cleanup {
    const CONTEXT: &'static str = "`cleanup`";
    const KEYS: &'static [&'static str] = CLEANUP_KEYS;
    const NESTED: &'static [(&'static str, &'static [&'static str])] =
        &[("keepPolicies", POLICY_KEYS)];

    fn entry(&mut self, c: &Entry<'_>) -> Result<()> {
        match c.name {
            "keepPolicies" => {
                let Kind::Seq(items) = &c.value.kind else {
                    return Err(expected(c.value, "a list", "cleanup.keepPolicies"));
                };
                let policies = items.iter().map(policy).collect::<Result<Vec<_>>>()?;
                self.keep_policies = Some(policies);
            }
            "keepImagesBuiltWithinLastNHours" => {
                self.keep_built_within_hours = Some(
                    count(c.value, "cleanup.keepImagesBuiltWithinLastNHours")?.unwrap_or_default()
                        as u64,
                );
            }
            "disableGitHistoryBasedPolicy" => {
                self.disable_git_history =
                    boolean(c.value, "cleanup.disableGitHistoryBasedPolicy")?;
            }
            "disableBuiltWithinLastNHoursPolicy" => {
                self.disable_built_within =
                    boolean(c.value, "cleanup.disableBuiltWithinLastNHoursPolicy")?;
            }
            // strata looks at no Kubernetes cluster, so there is nothing to disable.
            "disableKubernetesBasedPolicy" => {
                boolean(c.value, "cleanup.disableKubernetesBasedPolicy")?;
            }
            _ => unreachable_key(c.key)?,
        }
        Ok(())
    }
}

/// A keep policy as it is read: its `references` are required.
struct PolicySection {
    references: Option<References>,
    images: Limit,
}

impl Section for PolicySection {
    const CONTEXT: &'static str = "a keep policy";
    const KEYS: &'static [&'static str] = POLICY_KEYS;
    const NESTED: &'static [(&'static str, &'static [&'static str])] =
        &[("references", REFERENCES_KEYS)];

    fn entry(&mut self, p: &Entry<'_>) -> Result<()> {
        match p.name {
            "references" => self.references = Some(refs(p)?),
            "imagesPerReference" => self.images = limit(p, "imagesPerReference", self.images)?,
            _ => unreachable_key(p.key)?,
        }
        Ok(())
    }
}

fn policy(node: &Node) -> Result<KeepPolicy> {
    let mut section = PolicySection {
        references: None,
        images: Limit {
            last: Some(1),
            ..Limit::default()
        },
    };
    read(node, "cleanup.keepPolicies[]", &mut section)?;
    let references = section.references.ok_or_else(|| {
        Box::new(
            Diagnostic::new("a keep policy needs `references`", Some(node.span))
                .help("add `references: {branch: /.*/}` or `references: {tag: /.*/}`"),
        )
    })?;
    Ok(KeepPolicy {
        references,
        images_per_reference: section.images,
    })
}

/// A policy's `references` as they are read: `branch` or `tag` is required.
#[derive(Default)]
struct ReferencesSection {
    names: Option<(RefKind, NameMatch)>,
    limit: Limit,
}

impl Section for ReferencesSection {
    const CONTEXT: &'static str = "`references`";
    const KEYS: &'static [&'static str] = REFERENCES_KEYS;
    const NESTED: &'static [(&'static str, &'static [&'static str])] = &[("limit", LIMIT_KEYS)];

    fn entry(&mut self, r: &Entry<'_>) -> Result<()> {
        match r.name {
            "branch" | "tag" => {
                if self.names.is_some() {
                    return Err(Box::new(Diagnostic::new(
                        "a keep policy's `references` takes `branch` or `tag`, not both",
                        Some(r.key.span),
                    )));
                }
                let kind = if r.name == "branch" {
                    RefKind::Branch
                } else {
                    RefKind::Tag
                };
                self.names = Some((kind, name_match(r.value, r.name)?));
            }
            "limit" => self.limit = limit(r, "references.limit", Limit::default())?,
            _ => unreachable_key(r.key)?,
        }
        Ok(())
    }
}

fn refs(e: &Entry<'_>) -> Result<References> {
    let mut section = ReferencesSection::default();
    read_value(e, "references", &mut section)?;
    let (kind, names) = section.names.ok_or_else(|| {
        Box::new(Diagnostic::new(
            "a keep policy's `references` needs `branch` or `tag`",
            Some(e.value.span),
        ))
    })?;
    Ok(References {
        kind,
        names,
        limit: section.limit,
    })
}

/// `NAME` or `/REGEXP/`.
fn name_match(value: &Node, path: &str) -> Result<NameMatch> {
    let text = value
        .as_scalar_text()
        .ok_or_else(|| expected(value, "a name or a /REGEXP/", path))?;
    match text
        .strip_prefix('/')
        .and_then(|t| t.strip_suffix('/'))
        .filter(|_| text.len() >= 2)
    {
        Some(pattern) => regex::Regex::new(pattern)
            .map(NameMatch::Regex)
            .map_err(|e| {
                Box::new(
                    Diagnostic::new(format!("`{path}` is not a valid regex"), Some(value.span))
                        .label(e.to_string()),
                )
            }),
        None => Ok(NameMatch::Exact(text.to_string())),
    }
}

/// `{last, in, operator}`, starting from `base` (what an unwritten key means).
fn limit(e: &Entry<'_>, path: &str, base: Limit) -> Result<Limit> {
    if e.value.is_null() {
        return Ok(base);
    }
    let mut section = LimitSection { path, out: base };
    read_value(e, path, &mut section)?;
    Ok(section.out)
}

/// A limit as it is read, at `path` (for messages).
struct LimitSection<'a> {
    path: &'a str,
    out: Limit,
}

impl Section for LimitSection<'_> {
    const CONTEXT: &'static str = "a limit";
    const KEYS: &'static [&'static str] = LIMIT_KEYS;

    fn entry(&mut self, l: &Entry<'_>) -> Result<()> {
        let path = self.path;
        match l.name {
            "last" => self.out.last = count(l.value, &format!("{path}.last"))?,
            "in" => {
                let text = l
                    .value
                    .as_str()
                    .ok_or_else(|| expected(l.value, "a duration (`168h`)", path))?;
                let nanos = strata_template::parse_go_duration(text)
                    .ok()
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or_else(|| {
                        Box::new(
                            Diagnostic::new(
                                format!("`{path}.in` is not a duration: {text:?}"),
                                Some(l.value.span),
                            )
                            .help("write it as Go does: `168h`, `30m`, `1h30m`"),
                        )
                    })?;
                self.out.within = Some(Duration::from_nanos(nanos));
            }
            "operator" => {
                self.out.or = match l.value.as_str() {
                    Some("And") => false,
                    Some("Or") => true,
                    _ => return Err(expected(l.value, "`And` or `Or`", path)),
                }
            }
            _ => unreachable_key(l.key)?,
        }
        Ok(())
    }
}

/// A count: a non-negative integer, or werf's `-1` for none.
fn count(value: &Node, path: &str) -> Result<Option<usize>> {
    match value.as_scalar_text().map(str::parse::<i64>) {
        Some(Ok(-1)) => Ok(None),
        Some(Ok(n)) if n >= 0 => Ok(Some(n as usize)),
        _ => Err(expected(
            value,
            "a count (a whole number, or -1 for none)",
            path,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> std::result::Result<Cleanup, String> {
        let config = super::super::parse(strata_plan::FileId(0), text).map_err(|d| d.message)?;
        Ok(config.cleanup.unwrap_or_default())
    }

    #[test]
    fn keep_policies_parse_as_werf_writes_them() {
        let c = parsed(
            "project: p\nconfigVersion: 1\ncleanup:\n  keepPolicies:\n  - references:\n      branch: /^feat-.*/\n      limit: {last: 3, in: 1h30m, operator: Or}\n    imagesPerReference: {last: -1}\n  - references: {tag: v1.0}\n  keepImagesBuiltWithinLastNHours: 5\n---\nimage: a\nfrom: alpine\n",
        )
        .expect("parses");
        let p = c.keep_policies.expect("policies");
        assert_eq!(p[0].references.kind, RefKind::Branch);
        assert!(p[0].references.names.matches("feat-x") && !p[0].references.names.matches("main"));
        assert_eq!(
            p[0].references.limit,
            Limit {
                last: Some(3),
                within: Some(Duration::from_secs(5400)),
                or: true
            }
        );
        assert_eq!(p[0].images_per_reference.last, None);
        assert_eq!(p[1].references.kind, RefKind::Tag);
        assert!(p[1].references.names.matches("v1.0") && !p[1].references.names.matches("v1.01"));
        assert_eq!(p[1].images_per_reference.last, Some(1), "werf's default");
        assert_eq!(c.keep_built_within_hours, Some(5));
    }

    #[test]
    fn bad_policies_are_errors_at_the_key() {
        for (text, message) in [
            ("  - references: {branch: /(/}\n", "not a valid regex"),
            ("  - references: {branch: a, tag: b}\n", "not both"),
            ("  - imagesPerReference: {last: 1}\n", "needs `references`"),
            (
                "  - references: {branch: a, limit: {in: 7d}}\n",
                "not a duration",
            ),
            (
                "  - references: {branch: a, limit: {operator: Xor}}\n",
                "`And` or `Or`",
            ),
        ] {
            let e = parsed(&format!("project: p\nconfigVersion: 1\ncleanup:\n  keepPolicies:\n{text}---\nimage: a\nfrom: alpine\n"))
                .expect_err(text);
            assert!(e.contains(message), "{text}: {e}");
        }
    }

    #[test]
    fn limits_combine_with_and_or_or() {
        let hour = Duration::from_secs(3600);
        let and = Limit {
            last: Some(2),
            within: Some(hour),
            or: false,
        };
        assert!(and.keeps(1, hour) && !and.keeps(2, hour) && !and.keeps(0, hour * 2));
        let or = Limit { or: true, ..and };
        assert!(or.keeps(5, hour) && or.keeps(0, hour * 2) && !or.keeps(5, hour * 2));
        assert!(Limit::default().keeps(1000, hour * 1000));
    }
}
