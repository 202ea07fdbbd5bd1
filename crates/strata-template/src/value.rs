//! The values templates compute with, and how Go prints them.
//!
//! Go's `interface{}` world reduced to what configs use: `nil`, bools, `int` (all integers are
//! `i64` here; Go tells `int` from `int64`, we don't), `float64`, strings, `[]interface{}` and
//! `map[string]interface{}`. Maps are shared references as in Go, so Sprig's `set` and `merge`
//! change the dict every holder sees; lists are immutable (`append` copies, as Sprig does).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::rc::Rc;

/// A dict: keys in Go's sort order (byte order), shared like a Go map.
pub(super) type Map = Rc<RefCell<BTreeMap<String, Value>>>;

/// One template value.
#[derive(Clone, Debug)]
pub(super) enum Value {
    /// Go's nil; also what a missing map key evaluates to.
    Nil,
    /// A bool.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float64.
    Float(f64),
    /// A string.
    Str(String),
    /// A list.
    List(Rc<Vec<Value>>),
    /// A dict.
    Map(Map),
    /// werf's `.Files`; its methods are called by the executor, which knows the project dir.
    Files,
    /// A Go `time.Time` from Sprig's date functions: nanoseconds since the epoch, UTC.
    Time(i128),
    /// Sprig's `certificate` struct (`genCA` and the other certificate functions).
    Cert(Rc<Certificate>),
}

/// Sprig's `certificate{Cert, Key string}`: PEM texts.
#[derive(Debug, PartialEq)]
pub(super) struct Certificate {
    /// The certificate's PEM.
    pub(super) cert: String,
    /// Its private key's PEM.
    pub(super) key: String,
}

impl Certificate {
    /// Go's struct as `encoding/json` and sigs.k8s.io/yaml see it: a dict of its fields.
    pub(super) fn as_map(&self) -> Value {
        Value::map(
            [
                ("Cert".to_string(), Value::from(self.cert.as_str())),
                ("Key".to_string(), Value::from(self.key.as_str())),
            ]
            .into(),
        )
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl Value {
    /// A new dict value.
    pub(super) fn map(entries: BTreeMap<String, Value>) -> Value {
        Value::Map(Rc::new(RefCell::new(entries)))
    }

    /// A new list value.
    pub(super) fn list(items: Vec<Value>) -> Value {
        Value::List(Rc::new(items))
    }

    /// Go's type name, for messages (`can't evaluate field x in type string`).
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
            Value::Files => "werf.Files",
            Value::Time(_) => "time.Time",
            Value::Cert(_) => "sprig.certificate",
        }
    }

    /// text/template's truth: false, 0, nil and empty strings, lists and maps are false.
    pub(super) fn is_true(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.borrow().is_empty(),
            Value::Files | Value::Time(_) | Value::Cert(_) => true,
        }
    }

    /// `fmt.Sprint(v)` (`%v`): nil is `<nil>`, lists `[a b]`, maps `map[k:v]`.
    pub(super) fn to_go_string(&self) -> String {
        let mut out = String::new();
        self.write_go(&mut out);
        out
    }

    fn write_go(&self, out: &mut String) {
        match self {
            Value::Nil => out.push_str("<nil>"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.push_str(&format_float_g(*f, None)),
            Value::Str(s) => out.push_str(s),
            Value::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    item.write_go(out);
                }
                out.push(']');
            }
            Value::Map(map) => {
                out.push_str("map[");
                for (i, (k, v)) in map.borrow().iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write_go(out);
                }
                out.push(']');
            }
            Value::Files => out.push_str("{Files}"),
            Value::Time(t) => out.push_str(&super::dates::time_string(*t)),
            Value::Cert(c) => {
                let _ = write!(out, "{{{} {}}}", c.cert, c.key);
            }
        }
    }

    /// A deep copy (maps are references; `deepCopy` and JSON round trips need fresh ones).
    pub(super) fn deep_copy(&self) -> Value {
        match self {
            Value::List(items) => Value::list(items.iter().map(Value::deep_copy).collect()),
            Value::Map(map) => Value::map(
                map.borrow()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.deep_copy()))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// The decimal digits of `f` (no sign, no trailing zeros) and the position of the decimal
/// point, as Go's `strconv` works with them: `f = 0.d1d2d3… × 10^dp`. `significant` rounds to
/// that many digits; `None` is the shortest representation that reads back exactly.
fn decimal_digits(f: f64, significant: Option<usize>) -> (String, i32) {
    let text = match significant {
        Some(n) => format!("{:.*e}", n.max(1) - 1, f.abs()),
        None => format!("{:e}", f.abs()),
    };
    let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    if digits == "0" {
        return (digits, 1);
    }
    (digits, exp + 1)
}

/// `%e`-style text from digits: `d.ddde+XX`, with at least `frac` fraction digits when given.
fn exp_form(digits: &str, dp: i32, frac: Option<usize>, upper: bool) -> String {
    let mut out = String::new();
    let (first, rest) = digits.split_at(1);
    out.push_str(first);
    let mut rest = rest.to_string();
    if let Some(frac) = frac {
        while rest.len() < frac {
            rest.push('0');
        }
    }
    if !rest.is_empty() {
        out.push('.');
        out.push_str(&rest);
    }
    let exp = if digits == "0" { 0 } else { dp - 1 };
    let _ = write!(
        out,
        "{}{}{:02}",
        if upper { 'E' } else { 'e' },
        if exp < 0 { '-' } else { '+' },
        exp.abs()
    );
    out
}

/// `%f`-style text from digits with exactly the digits there are.
fn fixed_form(digits: &str, dp: i32) -> String {
    let nd = digits.len() as i32;
    if dp <= 0 {
        format!("0.{}{}", "0".repeat((-dp) as usize), digits)
    } else if dp >= nd {
        format!("{}{}", digits, "0".repeat((dp - nd) as usize))
    } else {
        let (int, frac) = digits.split_at(dp as usize);
        format!("{int}.{frac}")
    }
}

fn special_float(f: f64) -> Option<&'static str> {
    if f.is_nan() {
        Some("NaN")
    } else if f.is_infinite() {
        Some(if f > 0.0 { "+Inf" } else { "-Inf" })
    } else {
        None
    }
}

/// Go's `strconv.FormatFloat(f, 'g', prec, 64)`; `None` is the shortest form (`%v`), which
/// uses an exponent when it is below -4 or at least 6, as Go does (`1e+06` for a million,
/// the well-known surprise of numbers that went through JSON).
pub(super) fn format_float_g(f: f64, precision: Option<usize>) -> String {
    if let Some(s) = special_float(f) {
        return s.to_string();
    }
    let sign = if f.is_sign_negative() && f != 0.0 {
        "-"
    } else {
        ""
    };
    let (digits, dp) = decimal_digits(f, precision);
    let nd = digits.len() as i32;
    let mut eprec = match precision {
        None => 6,
        Some(p) => p.max(1) as i32,
    };
    if precision.is_some() && eprec > nd && nd >= dp {
        eprec = nd;
    }
    let exp = dp - 1;
    if exp < -4 || exp >= eprec {
        format!("{sign}{}", exp_form(&digits, dp, None, false))
    } else {
        format!("{sign}{}", fixed_form(&digits, dp))
    }
}

/// Go's `%e` with a precision (default 6).
pub(super) fn format_float_e(f: f64, precision: usize, upper: bool) -> String {
    if let Some(s) = special_float(f) {
        return s.to_string();
    }
    let sign = if f.is_sign_negative() && f != 0.0 {
        "-"
    } else {
        ""
    };
    let (digits, dp) = decimal_digits(f, Some(precision + 1));
    format!("{sign}{}", exp_form(&digits, dp, Some(precision), upper))
}

/// Go's `%f` with a precision (default 6).
pub(super) fn format_float_f(f: f64, precision: usize) -> String {
    if let Some(s) = special_float(f) {
        return s.to_string();
    }
    format!("{f:.precision$}")
}

/// Go's `strconv.Quote`: double quotes, Go escapes, printable Unicode kept.
pub(super) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                if (c as u32) < 0x10000 {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `encoding/json` text of a value (what Sprig's `toJson` gives): map keys sorted, `<`,
/// `>` and `&` escaped as `\u003c`…, floats as `encoding/json` writes them. `indent` pretty
/// prints with that many spaces per level (`toPrettyJson`).
pub(super) fn to_json(value: &Value, indent: Option<usize>, html_escape: bool) -> String {
    let mut out = String::new();
    write_json(value, indent, html_escape, 0, &mut out);
    out
}

fn write_json(value: &Value, indent: Option<usize>, html: bool, level: usize, out: &mut String) {
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    };
    match value {
        Value::Nil | Value::Files => out.push_str("null"),
        Value::Time(t) => out.push_str(&go_quote(&super::dates::time_json(*t))),
        Value::Cert(c) => write_json(&c.as_map(), indent, html, level, out),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&json_float(*f)),
        Value::Str(s) => json_string(s, html, out),
        Value::List(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, level + 1);
                write_json(item, indent, html, level + 1, out);
            }
            newline(out, level);
            out.push(']');
        }
        Value::Map(map) => {
            let map = map.borrow();
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, level + 1);
                json_string(k, html, out);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write_json(v, indent, html, level + 1, out);
            }
            newline(out, level);
            out.push('}');
        }
    }
}

/// `encoding/json`'s float: shortest digits, exponent only below 1e-6 or from 1e21.
pub(super) fn json_float(f: f64) -> String {
    if !f.is_finite() {
        return "null".to_string();
    }
    let abs = f.abs();
    let sign = if f < 0.0 { "-" } else { "" };
    let (digits, dp) = decimal_digits(f, None);
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let text = exp_form(&digits, dp, None, false);
        // Go writes e-07 as e-7.
        let text = text.replace("e-0", "e-").replace("e+0", "e+");
        format!("{sign}{text}")
    } else {
        format!("{sign}{}", fixed_form(&digits, dp))
    }
}

fn json_string(s: &str, html: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' if html => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON document to a value, numbers as float64 (Go decodes into `interface{}` that way).
pub(super) fn from_json(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::Str(s.clone()),
        serde_json::Value::Array(items) => Value::list(items.iter().map(from_json).collect()),
        serde_json::Value::Object(map) => {
            Value::map(map.iter().map(|(k, v)| (k.clone(), from_json(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go() {
        let cases = [
            (3.0, "3"),
            (1.5, "1.5"),
            (1_000_000.0, "1e+06"),
            (123_456.0, "123456"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.25, "-2.25"),
            (0.0, "0"),
            (1e21, "1e+21"),
            (0.1 + 0.2, "0.30000000000000004"),
        ];
        for (f, want) in cases {
            assert_eq!(format_float_g(f, None), want, "{f}");
        }
        assert_eq!(format_float_g(1.23456, Some(3)), "1.23");
        assert_eq!(format_float_g(1234.0, Some(2)), "1.2e+03");
        assert_eq!(format_float_e(1234.5678, 2, false), "1.23e+03");
        assert_eq!(format_float_f(2.5, 3), "2.500");
    }

    #[test]
    fn json_matches_encoding_json() {
        assert_eq!(json_float(1_000_000.0), "1000000");
        assert_eq!(json_float(1e21), "1e+21");
        assert_eq!(json_float(1e-7), "1e-7");
        assert_eq!(json_float(0.5), "0.5");
        let v = Value::map(BTreeMap::from([
            (
                "b".to_string(),
                Value::list(vec![Value::Int(1), Value::Nil]),
            ),
            ("a".to_string(), Value::from("<x&y>")),
        ]));
        assert_eq!(
            to_json(&v, None, true),
            r#"{"a":"\u003cx\u0026y\u003e","b":[1,null]}"#
        );
        assert_eq!(
            to_json(&v, Some(2), false),
            "{\n  \"a\": \"<x&y>\",\n  \"b\": [\n    1,\n    null\n  ]\n}"
        );
    }

    #[test]
    fn go_printing() {
        let v = Value::map(BTreeMap::from([
            (
                "k".to_string(),
                Value::list(vec![Value::from("a"), Value::Nil]),
            ),
            ("n".to_string(), Value::Float(2.0)),
        ]));
        assert_eq!(v.to_go_string(), "map[k:[a <nil>] n:2]");
        assert_eq!(go_quote("a\"b\n\u{1}é"), r#""a\"b\n\x01é""#);
    }
}
