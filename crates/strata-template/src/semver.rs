//! Sprig's `semver` and `semverCompare`: Masterminds/semver v3's lenient versions and its
//! constraint language (`>=1.2, <2`, `~1.2`, `^0.3`, `1.x`, `1.2 - 1.4`, `||`), ported rule
//! for rule because werf users' constraints rely on its quirks (a prerelease only matches a
//! constraint that has one, `x` wildcards, `=` as tilde when a part is missing). The `semver`
//! crate's requirement syntax and prerelease rules differ, so it is not used.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use super::funcs::{FnResult, arity, str_arg};
use super::value::Value;

/// The functions of this module.
pub(super) const NAMES: [&str; 2] = ["semver", "semverCompare"];

const VERSION: &str = r"v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";
const CONSTRAINT_VERSION: &str = r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";
const OPS: &str = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^";

fn re(pattern: String) -> regex::Regex {
    regex::Regex::new(&pattern).expect("the pattern is Masterminds/semver's, which is valid")
}

static VERSION_RE: LazyLock<regex::Regex> = LazyLock::new(|| re(format!("^{VERSION}$")));
static CONSTRAINT_RE: LazyLock<regex::Regex> =
    LazyLock::new(|| re(format!(r"^\s*({OPS})\s*({CONSTRAINT_VERSION})\s*$")));
static RANGE_RE: LazyLock<regex::Regex> = LazyLock::new(|| {
    re(format!(
        r"\s*({CONSTRAINT_VERSION})\s+-\s+({CONSTRAINT_VERSION})\s*"
    ))
});
static FIND_RE: LazyLock<regex::Regex> =
    LazyLock::new(|| re(format!(r"({OPS})\s*({CONSTRAINT_VERSION})")));
static VALID_RE: LazyLock<regex::Regex> = LazyLock::new(|| {
    re(format!(
        r"^(\s*({OPS})\s*({CONSTRAINT_VERSION})\s*)((?:\s+|,\s*)({OPS})\s*({CONSTRAINT_VERSION})\s*)*$"
    ))
});

#[derive(Clone, Debug)]
struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: String,
    metadata: String,
    original: String,
}

fn parse_version(text: &str) -> Result<Version, String> {
    let m = VERSION_RE
        .captures(text)
        .ok_or("Invalid Semantic Version")?;
    let part = |i: usize| -> Result<u64, String> {
        m.get(i).map_or(Ok(0), |p| {
            p.as_str()
                .trim_start_matches('.')
                .parse()
                .map_err(|e| format!("Error parsing version segment: {e}"))
        })
    };
    let pre = m.get(5).map_or("", |p| p.as_str()).to_string();
    for segment in pre.split('.').filter(|_| !pre.is_empty()) {
        if segment.len() > 1
            && segment.starts_with('0')
            && segment.bytes().all(|b| b.is_ascii_digit())
        {
            return Err("Version segment starts with 0".into());
        }
    }
    Ok(Version {
        major: part(1)?,
        minor: part(2)?,
        patch: part(3)?,
        pre,
        metadata: m.get(8).map_or("", |p| p.as_str()).to_string(),
        original: text.to_string(),
    })
}

fn compare(v: &Version, o: &Version) -> Ordering {
    (v.major, v.minor, v.patch)
        .cmp(&(o.major, o.minor, o.patch))
        .then_with(|| match (v.pre.is_empty(), o.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => compare_prerelease(&v.pre, &o.pre),
        })
}

fn compare_prerelease(v: &str, o: &str) -> Ordering {
    let (vs, os): (Vec<&str>, Vec<&str>) = (v.split('.').collect(), o.split('.').collect());
    for i in 0..vs.len().max(os.len()) {
        let (s, o) = (
            vs.get(i).copied().unwrap_or(""),
            os.get(i).copied().unwrap_or(""),
        );
        let d = compare_pre_part(s, o);
        if d != Ordering::Equal {
            return d;
        }
    }
    Ordering::Equal
}

fn compare_pre_part(s: &str, o: &str) -> Ordering {
    if s == o {
        return Ordering::Equal;
    }
    if s.is_empty() {
        return Ordering::Less;
    }
    if o.is_empty() {
        return Ordering::Greater;
    }
    match (s.parse::<u64>(), o.parse::<u64>()) {
        (Err(_), Err(_)) => s.cmp(o),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Ok(a), Ok(b)) => a.cmp(&b),
    }
}

struct Constraint {
    op: String,
    con: Version,
    minor_dirty: bool,
    patch_dirty: bool,
    dirty: bool,
}

fn is_x(s: &str) -> bool {
    matches!(s, "x" | "X" | "*")
}

fn parse_constraint(text: &str) -> Result<Constraint, String> {
    let m = CONSTRAINT_RE
        .captures(text)
        .ok_or_else(|| format!("improper constraint: {text}"))?;
    let g = |i: usize| m.get(i).map_or("", |p| p.as_str());
    let (major, minor, patch, pre) = (g(3), g(4), g(5), g(6));
    let (mut minor_dirty, mut patch_dirty, mut dirty) = (false, false, false);
    let version = if is_x(major) || major.is_empty() {
        dirty = true;
        format!("0.0.0{pre}")
    } else if is_x(minor.trim_start_matches('.')) || minor.is_empty() {
        minor_dirty = true;
        dirty = true;
        format!("{major}.0.0{pre}")
    } else if is_x(patch.trim_start_matches('.')) || patch.is_empty() {
        dirty = true;
        patch_dirty = true;
        format!("{major}{minor}.0{pre}")
    } else {
        g(2).to_string()
    };
    let con = parse_version(&version).map_err(|_| "constraint Parser Error".to_string())?;
    Ok(Constraint {
        op: g(1).to_string(),
        con,
        minor_dirty,
        patch_dirty,
        dirty,
    })
}

fn check(v: &Version, c: &Constraint) -> bool {
    let con = &c.con;
    // Masterminds' `!=` of a full version alone skips the prerelease rule.
    if !v.pre.is_empty() && con.pre.is_empty() && (c.op != "!=" || c.dirty) {
        return false;
    }
    let tilde = || {
        if compare(v, con).is_lt() {
            return false;
        }
        if con.major == 0 && con.minor == 0 && con.patch == 0 && !c.minor_dirty && !c.patch_dirty {
            return true;
        }
        v.major == con.major && (v.minor == con.minor || c.minor_dirty)
    };
    match c.op.as_str() {
        "" | "=" => {
            if c.dirty {
                tilde()
            } else {
                compare(v, con).is_eq()
            }
        }
        "!=" => {
            if c.dirty {
                if con.major != v.major {
                    return true;
                }
                if con.minor != v.minor && !c.minor_dirty {
                    return true;
                } else if c.minor_dirty {
                    return false;
                } else if con.patch != v.patch && !c.patch_dirty {
                    return true;
                } else if c.patch_dirty {
                    return (!v.pre.is_empty() || !con.pre.is_empty())
                        && compare_prerelease(&v.pre, &con.pre).is_ne();
                }
            }
            compare(v, con).is_ne()
        }
        ">" => {
            if !c.dirty {
                return compare(v, con).is_gt();
            }
            if v.major != con.major {
                return v.major > con.major;
            }
            if c.minor_dirty {
                return false;
            }
            if c.patch_dirty {
                return v.minor > con.minor;
            }
            compare(v, con).is_gt()
        }
        "<" => compare(v, con).is_lt(),
        ">=" | "=>" => compare(v, con).is_ge(),
        "<=" | "=<" => {
            if !c.dirty {
                return compare(v, con).is_le();
            }
            !(v.major > con.major
                || (v.major == con.major && v.minor > con.minor && !c.minor_dirty))
        }
        "~" | "~>" => tilde(),
        _ => {
            // `^`
            if compare(v, con).is_lt() {
                return false;
            }
            if con.major > 0 || c.minor_dirty {
                return v.major == con.major;
            }
            if v.major > 0 {
                return false;
            }
            if con.minor > 0 || c.patch_dirty {
                return v.minor == con.minor;
            }
            if v.minor > 0 {
                return false;
            }
            con.patch == v.patch
        }
    }
}

/// Masterminds' `NewConstraint`: `||` groups of constraints that all must hold.
fn parse_constraints(text: &str) -> Result<Vec<Vec<Constraint>>, String> {
    let mut text = text.to_string();
    let ranges: Vec<(String, String, String)> = RANGE_RE
        .captures_iter(&text)
        .map(|m| {
            (
                m[0].to_string(),
                m[1].to_string(),
                m.get(11).map_or("", |p| p.as_str()).to_string(),
            )
        })
        .collect();
    for (whole, from, to) in ranges {
        text = text.replacen(&whole, &format!(">= {from}, <= {to}"), 1);
    }
    text.split("||")
        .map(|group| {
            if !VALID_RE.is_match(group) {
                return Err(format!("improper constraint: {group}"));
            }
            let found: Vec<&str> = FIND_RE.find_iter(group).map(|m| m.as_str()).collect();
            let parts = if found.is_empty() { vec![group] } else { found };
            parts.into_iter().map(parse_constraint).collect()
        })
        .collect()
}

/// Calls `semver` or `semverCompare`.
pub(super) fn call(name: &str, args: &[Value]) -> FnResult {
    if name == "semverCompare" {
        arity(name, args, 2)?;
        let constraints = parse_constraints(str_arg(&args[0])?)?;
        let version = parse_version(str_arg(&args[1])?)?;
        return Ok(Value::Bool(
            constraints
                .iter()
                .any(|group| group.iter().all(|c| check(&version, c))),
        ));
    }
    arity(name, args, 1)?;
    let v = parse_version(str_arg(&args[0])?)?;
    // Go's *Version has methods; templates here see them as the fields of a dict.
    let map = BTreeMap::from([
        ("Major".to_string(), Value::Int(v.major as i64)),
        ("Minor".to_string(), Value::Int(v.minor as i64)),
        ("Patch".to_string(), Value::Int(v.patch as i64)),
        ("Prerelease".to_string(), Value::Str(v.pre.clone())),
        ("Metadata".to_string(), Value::Str(v.metadata.clone())),
        ("Original".to_string(), Value::Str(v.original.clone())),
    ]);
    Ok(Value::map(map))
}
