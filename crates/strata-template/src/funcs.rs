//! The function table: Go's builtins, the names the executor handles itself, and the
//! dispatch to Sprig's families in [`super::sprig`].
//!
//! Functions take evaluated arguments (the piped value last, as in Go) and return a value or
//! a message; the executor adds `error calling NAME:` and the position.

use super::printf::{sprint, sprintf, sprintln};
use super::sprig;
use super::value::Value;

/// The result of a function: a value or what went wrong.
pub(super) type FnResult = Result<Value, String>;

/// The largest string (bytes) or list (items) a function may build from a count in its
/// arguments (`repeat`, `indent`, `until`, ...): the render's output limit.
const MAX_VALUE: u128 = 64 << 20;

/// Refuses to build a `what` of `size` bytes or items over [`MAX_VALUE`], before allocating.
pub(super) fn check_size(what: &str, size: u128) -> Result<(), String> {
    if size > MAX_VALUE {
        return Err(format!(
            "{what} would have {size} bytes or items, over the limit of {MAX_VALUE}"
        ));
    }
    Ok(())
}

/// Functions the executor implements because they need more than their arguments: lazy
/// `and`/`or`, templates (`include`, `tpl` and werf's `*_debug` twins) or the render's
/// context (`env`).
pub(super) const EXEC_FUNCTIONS: [&str; 7] = [
    "and",
    "or",
    "include",
    "tpl",
    "include_debug",
    "tpl_debug",
    "env",
];

/// Go's builtins handled here.
const BUILTINS: [&str; 17] = [
    "not", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt", "le", "gt",
    "ge", "html", "js", "urlquery", "call",
];

/// Whether `name` is a function templates may call.
pub(super) fn exists(name: &str) -> bool {
    EXEC_FUNCTIONS.contains(&name)
        || BUILTINS.contains(&name)
        || sprig::NAMES.contains(&name)
        || super::extra::NAMES.contains(&name)
        || super::semver::NAMES.contains(&name)
        || super::dates::NAMES.contains(&name)
        || super::urls::NAMES.contains(&name)
        || super::certs::NAMES.contains(&name)
}

/// Calls a function that needs only its arguments.
pub(super) fn call(name: &str, args: &[Value]) -> FnResult {
    match name {
        "not" => {
            arity(name, args, 1)?;
            Ok(Value::Bool(!args[0].is_true()))
        }
        "len" => {
            arity(name, args, 1)?;
            length(&args[0])
        }
        "index" => index(args),
        "slice" => slice(args),
        "print" => Ok(Value::Str(sprint(args))),
        "println" => Ok(Value::Str(sprintln(args))),
        "printf" => {
            let (format, rest) = args
                .split_first()
                .ok_or("wrong number of args for printf: want at least 1 got 0")?;
            Ok(Value::Str(sprintf(str_arg(format)?, rest)))
        }
        "eq" => {
            let (first, rest) = args
                .split_first()
                .ok_or("missing argument for comparison")?;
            if rest.is_empty() {
                return Err("missing argument for comparison".into());
            }
            for arg in rest {
                if equal(first, arg)? {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "ne" => {
            arity(name, args, 2)?;
            Ok(Value::Bool(!equal(&args[0], &args[1])?))
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(name, args, 2)?;
            let ord = compare(&args[0], &args[1])?;
            Ok(Value::Bool(match name {
                "lt" => ord.is_lt(),
                "le" => ord.is_le(),
                "gt" => ord.is_gt(),
                _ => ord.is_ge(),
            }))
        }
        "html" => Ok(Value::Str(html_escape(&sprint(args)))),
        "js" => Ok(Value::Str(js_escape(&sprint(args)))),
        "urlquery" => Ok(Value::Str(query_escape(&sprint(args)))),
        "call" => Err("call of non-function: templates here have no function values".into()),
        _ => sprig::call(name, args),
    }
}

/// `wrong number of args for NAME: want N got M` unless there are exactly `n`.
pub(super) fn arity(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ))
    }
}

/// At least `n` arguments.
pub(super) fn arity_min(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() >= n {
        Ok(())
    } else {
        Err(format!(
            "wrong number of args for {name}: want at least {n} got {}",
            args.len()
        ))
    }
}

/// A `string` parameter: Go refuses anything else.
pub(super) fn str_arg(v: &Value) -> Result<&str, String> {
    match v {
        Value::Str(s) => Ok(s),
        Value::Nil => Err("invalid value; expected string".into()),
        other => Err(format!(
            "wrong type for value; expected string; got {}",
            other.type_name()
        )),
    }
}

/// An `int` parameter.
pub(super) fn int_arg(v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Nil => Err("invalid value; expected int".into()),
        other => Err(format!(
            "wrong type for value; expected int; got {}",
            other.type_name()
        )),
    }
}

fn length(v: &Value) -> FnResult {
    Ok(Value::Int(match v {
        Value::Str(s) => s.len() as i64,
        Value::List(l) => l.len() as i64,
        Value::Map(m) => m.borrow().len() as i64,
        Value::Nil => return Err("len of nil pointer".into()),
        other => return Err(format!("len of type {}", other.type_name())),
    }))
}

fn index(args: &[Value]) -> FnResult {
    let (item, indices) = args
        .split_first()
        .ok_or("wrong number of args for index: want at least 1 got 0")?;
    let mut item = item.clone();
    for i in indices {
        item = match (&item, i) {
            (Value::List(list), Value::Int(n)) => {
                let n = usize::try_from(*n)
                    .ok()
                    .filter(|&n| n < list.len())
                    .ok_or_else(|| format!("error calling index: index out of range: {n}"))?;
                list[n].clone()
            }
            (Value::Str(s), Value::Int(n)) => {
                let n = usize::try_from(*n)
                    .ok()
                    .filter(|&n| n < s.len())
                    .ok_or_else(|| format!("error calling index: index out of range: {n}"))?;
                Value::Int(i64::from(s.as_bytes()[n]))
            }
            (Value::Map(map), Value::Str(key)) => {
                map.borrow().get(key).cloned().unwrap_or(Value::Nil)
            }
            (Value::Map(_), Value::Nil) => Value::Nil,
            (Value::Nil, _) => return Err("error calling index: index of untyped nil".into()),
            (Value::List(_) | Value::Str(_), other) => {
                return Err(format!(
                    "error calling index: cannot index slice/array with type {}",
                    other.type_name()
                ));
            }
            (Value::Map(_), other) => {
                return Err(format!(
                    "error calling index: value has type {}; should be string",
                    other.type_name()
                ));
            }
            (other, _) => {
                return Err(format!(
                    "error calling index: can't index item of type {}",
                    other.type_name()
                ));
            }
        };
    }
    Ok(item)
}

fn slice(args: &[Value]) -> FnResult {
    let (item, indices) = args
        .split_first()
        .ok_or("wrong number of args for slice: want at least 1 got 0")?;
    if indices.len() > 3 {
        return Err(format!("too many slice indexes: {}", indices.len()));
    }
    let len = match item {
        Value::List(l) => l.len(),
        // Sprig's `slice` replaces Go's builtin in werf's function map, and it takes lists only.
        Value::Str(_) => return Err("list should be type of slice or array but string".into()),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut bounds = Vec::new();
    for i in indices {
        let n = int_arg(i)?;
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= len)
            .ok_or_else(|| format!("index out of range: {n}"))?;
        bounds.push(n);
    }
    let start = bounds.first().copied().unwrap_or(0);
    let end = bounds.get(1).copied().unwrap_or(len);
    if start > end {
        return Err(format!("invalid slice index: {start} > {end}"));
    }
    Ok(match item {
        Value::List(l) => Value::list(l[start..end].to_vec()),
        _ => Value::Nil,
    })
}

#[derive(PartialEq)]
enum BasicKind {
    Bool,
    Int,
    Float,
    Str,
    Other,
}

fn basic_kind(v: &Value) -> BasicKind {
    match v {
        Value::Bool(_) => BasicKind::Bool,
        Value::Int(_) => BasicKind::Int,
        Value::Float(_) => BasicKind::Float,
        Value::Str(_) => BasicKind::Str,
        _ => BasicKind::Other,
    }
}

/// Go's `eq` for two operands: basic kinds must match (nil against anything is false), lists
/// and maps are not comparable.
fn equal(a: &Value, b: &Value) -> Result<bool, String> {
    Ok(match (a, b) {
        (Value::Nil, Value::Nil) => true,
        (Value::Nil, _) | (_, Value::Nil) => false,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        _ if basic_kind(a) != basic_kind(b) => {
            return Err("incompatible types for comparison".into());
        }
        _ => {
            return Err(format!(
                "non-comparable type {}: {}",
                a.to_go_string(),
                a.type_name()
            ));
        }
    })
}

fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => x
            .partial_cmp(y)
            .ok_or_else(|| "invalid type for comparison".to_string()),
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        _ if basic_kind(a) != basic_kind(b) => Err("incompatible types for comparison".into()),
        _ => Err("invalid type for comparison".into()),
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            // Go's JSEscape writes every unprintable rune as \uXXXX, newlines included.
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::from(x)
    }

    #[test]
    fn every_listed_function_dispatches() {
        for name in BUILTINS.iter().chain(sprig::NAMES.iter()) {
            if let Err(message) = call(name, &[]) {
                assert!(
                    !message.starts_with("unknown function"),
                    "{name}: {message}"
                );
            }
        }
    }

    #[test]
    fn comparisons_follow_go() {
        assert!(matches!(
            call("eq", &[s("a"), s("b"), s("a")]),
            Ok(Value::Bool(true))
        ));
        assert!(matches!(
            call("eq", &[Value::Nil, s("a")]),
            Ok(Value::Bool(false))
        ));
        assert_eq!(
            call("eq", &[Value::Int(1), Value::Float(1.0)])
                .err()
                .as_deref(),
            Some("incompatible types for comparison")
        );
        assert!(matches!(
            call("lt", &[s("a"), s("b")]),
            Ok(Value::Bool(true))
        ));
        assert!(call("eq", &[Value::list(vec![]), Value::list(vec![])]).is_err());
    }

    #[test]
    fn index_and_slice() {
        let list = Value::list(vec![s("a"), s("b"), s("c")]);
        assert_eq!(
            call("index", &[list.clone(), Value::Int(1)]).map(|v| v.to_go_string()),
            Ok("b".into())
        );
        assert!(call("index", &[list.clone(), Value::Int(5)]).is_err());
        assert_eq!(
            call("slice", &[list, Value::Int(1)]).map(|v| v.to_go_string()),
            Ok("[b c]".into())
        );
        assert_eq!(
            call("html", &[s("<a&'>")]).map(|v| v.to_go_string()),
            Ok("&lt;a&amp;&#39;&gt;".into())
        );
        assert_eq!(
            call("urlquery", &[s("a b/c")]).map(|v| v.to_go_string()),
            Ok("a+b%2Fc".into())
        );
    }
}
