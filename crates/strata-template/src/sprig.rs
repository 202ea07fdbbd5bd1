//! Sprig's functions (and Helm's conversions) as werf.yaml users rely on them.
//!
//! Semantics follow Sprig v3 and Helm: `default`/`empty` treat nil, false, 0, "" and empty
//! collections as empty; numeric functions convert leniently like `cast.ToInt64` (a bad string
//! is 0); `get` of a missing key is ""; `fromYaml`/`fromJson` return a dict with an `Error`
//! key instead of failing, and their numbers are float64 (they go through JSON). Left out on
//! purpose: `expandenv` and `env` reading the real process (the executor's `env` reads the
//! render context). The rest of Sprig is in [`super::extra`].

use base64::Engine as _;
use sha1::Digest as _;

use super::funcs::{FnResult, arity, arity_min, check_size, int_arg, str_arg};
use super::value::Value;

/// Every Sprig function provided.
pub(super) const NAMES: [&str; 108] = [
    // strings
    "trim",
    "trimAll",
    "trimPrefix",
    "trimSuffix",
    "upper",
    "lower",
    "title",
    "untitle",
    "replace",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "quote",
    "squote",
    "indent",
    "nindent",
    "repeat",
    "substr",
    "trunc",
    "split",
    "splitList",
    "splitn",
    "join",
    "toString",
    "cat",
    "nospace",
    "abbrev",
    "wrap",
    "plural",
    "snakecase",
    "kebabcase",
    "camelcase",
    // defaults and logic
    "default",
    "empty",
    "coalesce",
    "ternary",
    "fail",
    "required",
    "all",
    "any",
    // encoding and hashing
    "b64enc",
    "b64dec",
    "sha256sum",
    "sha1sum",
    "regexMatch",
    "regexReplaceAll",
    "regexReplaceAllLiteral",
    "regexFind",
    "regexFindAll",
    "regexSplit",
    "regexQuoteMeta",
    // lists
    "list",
    "first",
    "last",
    "rest",
    "initial",
    "append",
    "push",
    "prepend",
    "concat",
    "has",
    "uniq",
    "sortAlpha",
    "without",
    "reverse",
    "compact",
    "until",
    "untilStep",
    // dicts
    "dict",
    "get",
    "set",
    "unset",
    "hasKey",
    "keys",
    "values",
    "merge",
    "mergeOverwrite",
    "pick",
    "omit",
    "pluck",
    "dig",
    "deepCopy",
    // math
    "add",
    "add1",
    "sub",
    "mul",
    "div",
    "mod",
    "max",
    "min",
    "floor",
    "ceil",
    "round",
    // conversions
    "toJson",
    "toPrettyJson",
    "toRawJson",
    "fromJson",
    "toYaml",
    "fromYaml",
    "atoi",
    "int",
    "int64",
    "float64",
    "toStrings",
    "toDecimal",
    "kindOf",
    "kindIs",
    "typeOf",
];

pub(super) fn s(text: impl Into<String>) -> FnResult {
    Ok(Value::Str(text.into()))
}

/// Sprig's `strval`: strings as they are, anything else as `%v`.
pub(super) fn strval(v: &Value) -> String {
    v.to_go_string()
}

/// Sprig's `strslice`: a list's non-nil items as strings, a single value as a one-item list.
pub(super) fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::List(items) => items
            .iter()
            .filter(|i| !matches!(i, Value::Nil))
            .map(strval)
            .collect(),
        Value::Nil => Vec::new(),
        other => vec![strval(other)],
    }
}

/// Sprig's `empty`.
pub(super) fn empty(v: &Value) -> bool {
    !v.is_true()
}

/// `cast.ToInt64`: lenient, 0 when it cannot convert.
pub(super) fn to_int64(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => {
            let t = s.strip_suffix(".0").unwrap_or(s).replace('_', "");
            let (neg, body) = match t.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, t.strip_prefix('+').unwrap_or(&t)),
            };
            let parsed = if let Some(hex) = body.strip_prefix("0x").or(body.strip_prefix("0X")) {
                i64::from_str_radix(hex, 16)
            } else if let Some(bin) = body.strip_prefix("0b") {
                i64::from_str_radix(bin, 2)
            } else if let Some(oct) = body.strip_prefix("0o") {
                i64::from_str_radix(oct, 8)
            } else if body.len() > 1 && body.starts_with('0') {
                i64::from_str_radix(&body[1..], 8)
            } else {
                body.parse()
            };
            parsed.map(|n| if neg { -n } else { n }).unwrap_or(0)
        }
        _ => 0,
    }
}

/// `cast.ToFloat64`.
pub(super) fn to_float64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(pattern).map_err(|e| format!("regexp: Compile({pattern:?}): {e}"))
}

/// Go's `strings.Title`: upper-cases letters that start a word.
fn title(s: &str, upper: bool) -> String {
    let mut prev_sep = true;
    s.chars()
        .map(|c| {
            let out = if prev_sep {
                if upper {
                    c.to_uppercase().next().unwrap_or(c)
                } else {
                    c.to_lowercase().next().unwrap_or(c)
                }
            } else {
                c
            };
            prev_sep = !(c.is_alphanumeric() || c == '_');
            out
        })
        .collect()
}

/// Splits an identifier into words for the case functions.
fn words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let boundary = c.is_uppercase()
            && !cur.is_empty()
            && (chars[i - 1].is_lowercase() || chars.get(i + 1).is_some_and(|n| n.is_lowercase()));
        if boundary {
            words.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Calls a Sprig function.
pub(super) fn call(name: &str, args: &[Value]) -> FnResult {
    let n = |count| arity(name, args, count);
    let str_at = |i: usize| str_arg(&args[i]);
    match name {
        // strings
        "trim" => {
            n(1)?;
            s(str_at(0)?.trim())
        }
        "trimAll" => {
            n(2)?;
            let cut: Vec<char> = str_at(0)?.chars().collect();
            s(str_at(1)?.trim_matches(cut.as_slice()))
        }
        "trimPrefix" => {
            n(2)?;
            s(str_at(1)?.strip_prefix(str_at(0)?).unwrap_or(str_at(1)?))
        }
        "trimSuffix" => {
            n(2)?;
            s(str_at(1)?.strip_suffix(str_at(0)?).unwrap_or(str_at(1)?))
        }
        "upper" => {
            n(1)?;
            s(str_at(0)?.to_uppercase())
        }
        "lower" => {
            n(1)?;
            s(str_at(0)?.to_lowercase())
        }
        "title" | "untitle" => {
            n(1)?;
            s(title(str_at(0)?, name == "title"))
        }
        "replace" => {
            n(3)?;
            s(str_at(2)?.replace(str_at(0)?, str_at(1)?))
        }
        "contains" => {
            n(2)?;
            Ok(Value::Bool(str_at(1)?.contains(str_at(0)?)))
        }
        "hasPrefix" => {
            n(2)?;
            Ok(Value::Bool(str_at(1)?.starts_with(str_at(0)?)))
        }
        "hasSuffix" => {
            n(2)?;
            Ok(Value::Bool(str_at(1)?.ends_with(str_at(0)?)))
        }
        "quote" | "squote" => {
            let quoted: Vec<String> = args
                .iter()
                .filter(|a| !matches!(a, Value::Nil))
                .map(|a| {
                    if name == "quote" {
                        super::value::go_quote(&strval(a))
                    } else {
                        format!("'{}'", strval(a))
                    }
                })
                .collect();
            s(quoted.join(" "))
        }
        "indent" | "nindent" => {
            n(2)?;
            let width = int_arg(&args[0])?.max(0) as u128;
            let text = str_at(1)?;
            let lines = text.matches('\n').count() as u128 + 1;
            check_size("the indented text", width * lines + text.len() as u128)?;
            let pad = " ".repeat(width as usize);
            let text = format!("{pad}{}", str_at(1)?.replace('\n', &format!("\n{pad}")));
            s(if name == "nindent" {
                format!("\n{text}")
            } else {
                text
            })
        }
        "repeat" => {
            n(2)?;
            let count = int_arg(&args[0])?;
            if count < 0 {
                return Err("strings: negative Repeat count".into());
            }
            let text = str_at(1)?;
            check_size("the repeated text", count as u128 * text.len() as u128)?;
            s(text.repeat(count as usize))
        }
        "substr" => {
            n(3)?;
            let (start, end, text) = (int_arg(&args[0])?, int_arg(&args[1])?, str_at(2)?);
            let len = text.len() as i64;
            // Sprig slices as Go does and panics on bounds Go refuses; werf reports the panic.
            let range = if start < 0 {
                0..end
            } else if end < 0 || end > len {
                start..len
            } else {
                start..end
            };
            if range.end > len || range.start > range.end || range.end < 0 {
                return Err(format!(
                    "runtime error: slice bounds out of range [{}:{}]",
                    range.start, range.end
                ));
            }
            s(text
                .get(range.start as usize..range.end as usize)
                .ok_or("substr splits a UTF-8 character")?)
        }
        "trunc" => {
            n(2)?;
            let (c, text) = (int_arg(&args[0])?, str_at(1)?);
            let len = text.len() as i64;
            let out = if c < 0 && len + c > 0 {
                text.get((len + c) as usize..)
            } else if c >= 0 && len > c {
                text.get(..c as usize)
            } else {
                Some(text)
            };
            s(out.ok_or("trunc splits a UTF-8 character")?)
        }
        "split" | "splitn" => {
            let (sep, text, limit) = if name == "split" {
                n(2)?;
                (str_at(0)?, str_at(1)?, None)
            } else {
                n(3)?;
                (str_at(0)?, str_at(2)?, Some(int_arg(&args[1])?))
            };
            let parts: Vec<&str> = match limit {
                Some(l) if l > 0 => text.splitn(l as usize, sep).collect(),
                Some(_) => Vec::new(),
                None => text.split(sep).collect(),
            };
            Ok(Value::map(
                parts
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| (format!("_{i}"), Value::from(p)))
                    .collect(),
            ))
        }
        "splitList" => {
            n(2)?;
            let items = str_at(1)?.split(str_at(0)?).map(Value::from).collect();
            Ok(Value::list(items))
        }
        "join" => {
            n(2)?;
            s(strslice(&args[1]).join(str_at(0)?))
        }
        "toString" => {
            n(1)?;
            s(strval(&args[0]))
        }
        "cat" => {
            let parts: Vec<String> = args
                .iter()
                .filter(|a| !matches!(a, Value::Nil))
                .map(strval)
                .collect();
            s(parts.join(" "))
        }
        "nospace" => {
            n(1)?;
            s(str_at(0)?.split_whitespace().collect::<String>())
        }
        "abbrev" => {
            n(2)?;
            let (width, text) = (int_arg(&args[0])?, str_at(1)?);
            if width < 4 || text.chars().count() as i64 <= width {
                return s(text);
            }
            s(format!(
                "{}...",
                text.chars().take(width as usize - 3).collect::<String>()
            ))
        }
        "wrap" => {
            n(2)?;
            s(wrap(str_at(1)?, int_arg(&args[0])?.max(1) as usize))
        }
        "plural" => {
            n(3)?;
            s(if int_arg(&args[2])? == 1 {
                str_at(0)?
            } else {
                str_at(1)?
            })
        }
        "snakecase" | "kebabcase" => {
            n(1)?;
            let sep = if name == "snakecase" { "_" } else { "-" };
            let w: Vec<String> = words(str_at(0)?).iter().map(|w| w.to_lowercase()).collect();
            s(w.join(sep))
        }
        "camelcase" => {
            n(1)?;
            s(words(str_at(0)?)
                .iter()
                .map(|w| title(&w.to_lowercase(), true))
                .collect::<String>())
        }
        // defaults and logic
        "default" => {
            arity_min(name, args, 1)?;
            Ok(match args.get(1) {
                Some(v) if !empty(v) => v.clone(),
                _ => args[0].clone(),
            })
        }
        "empty" => {
            n(1)?;
            Ok(Value::Bool(empty(&args[0])))
        }
        "coalesce" => Ok(args
            .iter()
            .find(|a| !empty(a))
            .cloned()
            .unwrap_or(Value::Nil)),
        "all" => Ok(Value::Bool(args.iter().all(|a| !empty(a)))),
        "any" => Ok(Value::Bool(args.iter().any(|a| !empty(a)))),
        "ternary" => {
            n(3)?;
            match &args[2] {
                Value::Bool(b) => Ok(if *b { args[0].clone() } else { args[1].clone() }),
                other => Err(format!(
                    "wrong type for value; expected bool; got {}",
                    other.type_name()
                )),
            }
        }
        "fail" => {
            n(1)?;
            Err(str_at(0)?.to_string())
        }
        "required" => {
            n(2)?;
            match &args[1] {
                Value::Nil => Err(str_at(0)?.to_string()),
                Value::Str(v) if v.is_empty() => Err(str_at(0)?.to_string()),
                v => Ok(v.clone()),
            }
        }
        // encoding and hashing
        "b64enc" => {
            n(1)?;
            s(base64::engine::general_purpose::STANDARD.encode(str_at(0)?))
        }
        "b64dec" => {
            n(1)?;
            match base64::engine::general_purpose::STANDARD.decode(str_at(0)?) {
                Ok(bytes) => s(String::from_utf8_lossy(&bytes)),
                Err(e) => s(e.to_string()),
            }
        }
        "sha256sum" => {
            n(1)?;
            s(hex(&sha2::Sha256::digest(str_at(0)?.as_bytes())))
        }
        "sha1sum" => {
            n(1)?;
            s(hex(&sha1::Sha1::digest(str_at(0)?.as_bytes())))
        }
        "regexMatch" => {
            n(2)?;
            Ok(Value::Bool(
                regex::Regex::new(str_at(0)?).is_ok_and(|r| r.is_match(str_at(1).unwrap_or(""))),
            ))
        }
        "regexReplaceAll" | "regexReplaceAllLiteral" => {
            n(3)?;
            let r = regex(str_at(0)?)?;
            let (text, repl) = (str_at(1)?, str_at(2)?);
            s(if name == "regexReplaceAll" {
                r.replace_all(text, repl).into_owned()
            } else {
                r.replace_all(text, regex::NoExpand(repl)).into_owned()
            })
        }
        "regexFind" => {
            n(2)?;
            s(regex(str_at(0)?)?
                .find(str_at(1)?)
                .map_or("", |m| m.as_str()))
        }
        "regexFindAll" | "regexSplit" => {
            n(3)?;
            let r = regex(str_at(0)?)?;
            let (text, limit) = (str_at(1)?, int_arg(&args[2])?);
            let limit = if limit < 0 {
                usize::MAX
            } else {
                limit as usize
            };
            let items: Vec<Value> = if name == "regexFindAll" {
                r.find_iter(text)
                    .take(limit)
                    .map(|m| Value::from(m.as_str()))
                    .collect()
            } else {
                r.splitn(text, limit).map(Value::from).collect()
            };
            Ok(Value::list(items))
        }
        "regexQuoteMeta" => {
            n(1)?;
            s(regex::escape(str_at(0)?))
        }
        _ => super::collections::call(name, args),
    }
}

fn wrap(text: &str, width: usize) -> String {
    wrap_with(text, width, "\n")
}

/// goutils' `WrapCustom`: words joined by spaces, lines of at most `width` joined by `sep`.
pub(super) fn wrap_with(text: &str, width: usize, sep: &str) -> String {
    let mut out = String::new();
    let mut line_len = 0;
    for word in text.split(' ') {
        if line_len > 0 && line_len + 1 + word.len() > width {
            out.push_str(sep);
            line_len = 0;
        } else if line_len > 0 || !out.is_empty() {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += word.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_s(name: &str, args: &[Value]) -> String {
        match call(name, args) {
            Ok(v) => v.to_go_string(),
            Err(e) => format!("error: {e}"),
        }
    }

    fn v(x: &str) -> Value {
        Value::from(x)
    }

    #[test]
    fn strings() {
        let i = Value::Int;
        let cases: Vec<(&str, Vec<Value>, &str)> = vec![
            ("trimAll", vec![v("$"), v("$5.00$")], "5.00"),
            ("title", vec![v("hello wide-world")], "Hello Wide-World"),
            ("indent", vec![i(2), v("a\nb")], "  a\n  b"),
            ("nindent", vec![i(2), v("a")], "\n  a"),
            ("substr", vec![i(1), i(3), v("hello")], "el"),
            ("substr", vec![i(-1), i(3), v("hello")], "hel"),
            ("trunc", vec![i(-2), v("hello")], "lo"),
            ("trunc", vec![i(9), v("hello")], "hello"),
            ("quote", vec![v("a"), Value::Nil, i(1)], "\"a\" \"1\""),
            ("squote", vec![v("a")], "'a'"),
            ("split", vec![v("."), v("a.b")], "map[_0:a _1:b]"),
            (
                "join",
                vec![v(","), Value::list(vec![v("a"), i(1), Value::Nil])],
                "a,1",
            ),
            ("cat", vec![v("a"), Value::Nil, i(2)], "a 2"),
            ("b64enc", vec![v("hi")], "aGk="),
            ("b64dec", vec![v("aGk=")], "hi"),
            (
                "sha1sum",
                vec![v("abc")],
                "a9993e364706816aba3e25717850c26c9cd0d89d",
            ),
            (
                "regexReplaceAll",
                vec![v("a(x*)b"), v("-ab-axxb-"), v("${1}W")],
                "-W-xxW-",
            ),
            ("regexMatch", vec![v("^[a-z]+$"), v("abc")], "true"),
            ("snakecase", vec![v("HTTPServerName")], "http_server_name"),
            ("camelcase", vec![v("http_server")], "HttpServer"),
            (
                "upper",
                vec![i(1)],
                "error: wrong type for value; expected string; got int",
            ),
        ];
        for (name, args, want) in cases {
            assert_eq!(call_s(name, &args), want, "{name} {args:?}");
        }
    }
}
