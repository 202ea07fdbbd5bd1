//! Sprig's `urlParse`, `urlJoin` and `getHostByName`: Go's `net/url` split of a URL into a
//! dict and back, and a host lookup through the system resolver.

use std::collections::BTreeMap;
use std::net::ToSocketAddrs as _;

use rand::Rng as _;

use super::funcs::{FnResult, arity, str_arg};
use super::value::Value;

/// The functions of this module.
pub(super) const NAMES: [&str; 3] = ["urlParse", "urlJoin", "getHostByName"];

/// Calls a function of this module.
pub(super) fn call(name: &str, args: &[Value]) -> FnResult {
    arity(name, args, 1)?;
    match name {
        "urlParse" => {
            let u = parse(str_arg(&args[0])?).map_err(|e| format!("unable to parse url: {e}"))?;
            let hostname = hostname(&u.host);
            let map = BTreeMap::from([
                ("scheme".to_string(), Value::Str(u.scheme)),
                ("host".to_string(), Value::Str(u.host)),
                ("hostname".to_string(), Value::Str(hostname)),
                ("path".to_string(), Value::Str(u.path)),
                ("query".to_string(), Value::Str(u.query)),
                ("opaque".to_string(), Value::Str(u.opaque)),
                ("fragment".to_string(), Value::Str(u.fragment)),
                (
                    "userinfo".to_string(),
                    Value::Str(u.userinfo.unwrap_or_default()),
                ),
            ]);
            Ok(Value::map(map))
        }
        "urlJoin" => {
            let Value::Map(map) = &args[0] else {
                return Err(format!(
                    "wrong type for value; expected map[string]interface {{}}; got {}",
                    args[0].type_name()
                ));
            };
            let map = map.borrow();
            let get = |k: &str| -> Result<String, String> {
                match map.get(k) {
                    None => Ok(String::new()),
                    Some(Value::Str(s)) => Ok(s.clone()),
                    Some(other) => Err(format!(
                        "interface conversion: interface {{}} is {}, not string",
                        other.type_name()
                    )),
                }
            };
            let userinfo = get("userinfo")?;
            let u = Url {
                scheme: get("scheme")?,
                host: get("host")?,
                path: get("path")?,
                query: get("query")?,
                opaque: get("opaque")?,
                fragment: get("fragment")?,
                userinfo: (!userinfo.is_empty()).then_some(userinfo),
            };
            Ok(Value::Str(u.to_string()))
        }
        _ => {
            let host = str_arg(&args[0])?;
            // Sprig answers one of the addresses at random and "" when there is none.
            let addrs: Vec<String> = (host, 0)
                .to_socket_addrs()
                .map(|a| a.map(|a| a.ip().to_string()).collect())
                .unwrap_or_default();
            if addrs.is_empty() {
                return Err("runtime error: index out of range [0] with length 0".into());
            }
            Ok(Value::Str(
                addrs[rand::rng().random_range(0..addrs.len())].clone(),
            ))
        }
    }
}

struct Url {
    scheme: String,
    host: String,
    path: String,
    query: String,
    opaque: String,
    fragment: String,
    userinfo: Option<String>,
}

/// Go's `url.PathUnescape`: `%XX` escapes decoded, anything else kept.
pub fn unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
            let Some(hex) = hex else {
                return Err(format!(
                    "invalid URL escape {:?}",
                    s.get(i..(i + 3).min(s.len())).unwrap_or("%")
                ));
            };
            out.push(u8::from_str_radix(hex, 16).map_err(|e| e.to_string())?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// Go's `url.Parse` for what templates use (no IPv6 zone checks).
fn parse(raw: &str) -> Result<Url, String> {
    let (rest, fragment) = match raw.split_once('#') {
        Some((r, f)) => (r, unescape(f)?),
        None => (raw, String::new()),
    };
    let mut scheme = String::new();
    let mut rest = rest;
    if let Some(i) = rest.find(':') {
        let candidate = &rest[..i];
        let valid = candidate
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && candidate
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if valid {
            scheme = candidate.to_ascii_lowercase();
            rest = &rest[i + 1..];
        } else if i == 0 {
            return Err(format!("parse {raw:?}: missing protocol scheme"));
        }
    }
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, q.to_string()),
        None => (rest, String::new()),
    };
    let mut u = Url {
        scheme,
        host: String::new(),
        path: String::new(),
        query,
        opaque: String::new(),
        fragment,
        userinfo: None,
    };
    if !rest.starts_with('/') && !u.scheme.is_empty() {
        u.opaque = rest.to_string();
        return Ok(u);
    }
    let mut path = rest;
    if let Some(after) = rest
        .strip_prefix("//")
        .filter(|_| !u.scheme.is_empty() || rest.starts_with("//"))
    {
        let end = after.find('/').unwrap_or(after.len());
        let authority = &after[..end];
        path = &after[end..];
        let host = match authority.rfind('@') {
            Some(at) => {
                u.userinfo = Some(authority[..at].to_string());
                &authority[at + 1..]
            }
            None => authority,
        };
        u.host = unescape(host)?;
    }
    u.path = unescape(path)?;
    Ok(u)
}

fn hostname(host: &str) -> String {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_string();
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
        .to_string()
}

/// Go's `shouldEscape` for paths and fragments.
fn escape(s: &str, fragment: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || b"-_.~$&+,/:;=@".contains(&b)
            || (fragment && b"!()*?".contains(&b));
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl std::fmt::Display for Url {
    /// Go's `URL.String()`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.scheme.is_empty() {
            write!(f, "{}:", self.scheme)?;
        }
        if !self.opaque.is_empty() {
            f.write_str(&self.opaque)?;
        } else {
            if !self.scheme.is_empty() || !self.host.is_empty() || self.userinfo.is_some() {
                if !self.host.is_empty() || !self.path.is_empty() || self.userinfo.is_some() {
                    f.write_str("//")?;
                }
                if let Some(user) = &self.userinfo {
                    write!(f, "{user}@")?;
                }
                f.write_str(&self.host)?;
            }
            if !self.path.is_empty() && !self.path.starts_with('/') && !self.host.is_empty() {
                f.write_str("/")?;
            }
            f.write_str(&escape(&self.path, false))?;
        }
        if !self.query.is_empty() {
            write!(f, "?{}", self.query)?;
        }
        if !self.fragment.is_empty() {
            write!(f, "#{}", escape(&self.fragment, true))?;
        }
        Ok(())
    }
}
