//! `toYaml` and `fromYaml`.
//!
//! werf's own function set has no `toYaml` (it is Sprig's plus werf's); strata adds Helm's,
//! which is `sigs.k8s.io/yaml`: go-yaml v2 behind a JSON round trip. The emitter reproduces go-yaml v2's block output byte for byte for the values templates
//! build: keys sorted, two-space indentation, sequences inside mappings not indented
//! (`key:\n- a`), strings plain when they read back as strings and otherwise double-quoted
//! (`"true"`, `"123"`, `""`), single-quoted when plain would be misread (`': x'`), multi-line
//! strings as literal blocks (`|-`), and long plain or quoted strings folded at 80 columns
//! like go-yaml v2.4 does. Whole floats print as integers (they went through JSON).
//!
//! `fromYaml` is werf's (go-yaml v2 into a dict: integers stay integers, a document that is not
//! a mapping is an error), parsed with saphyr, which implements YAML 1.2: unlike go-yaml v2,
//! `yes`/`no`/`on`/`off` stay strings.

use std::collections::BTreeMap;

use saphyr::{LoadableYamlNode, ScalarOwned, YamlOwned};

use super::value::{Value, format_float_g};

/// go-yaml's line width for folding.
const BEST_WIDTH: usize = 80;

/// A value as go-yaml v2 would write it, ending in a newline.
pub(super) fn to_yaml(value: &Value) -> String {
    let mut e = Emitter { out: String::new() };
    let value = &as_data(value);
    match value {
        Value::Map(m) if !m.borrow().is_empty() => e.map(value, 0, true),
        Value::List(l) if !l.is_empty() => e.list(value, 0, true),
        other => e.scalar(other, 2, false),
    }
    e.out.push('\n');
    e.out
}

/// The value with structs turned into the dicts sigs.k8s.io/yaml's JSON round trip makes.
fn as_data(v: &Value) -> Value {
    match v {
        Value::Cert(c) => c.as_map(),
        Value::List(items) => Value::list(items.iter().map(as_data).collect()),
        Value::Map(m) => Value::map(
            m.borrow()
                .iter()
                .map(|(k, v)| (k.clone(), as_data(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

struct Emitter {
    out: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

impl Emitter {
    fn column(&self) -> usize {
        let line_start = self.out.rfind('\n').map_or(0, |i| i + 1);
        self.out[line_start..].chars().count()
    }

    /// Starts an entry at `indent`, on a new line unless `inline` (right after `- `).
    fn start(&mut self, indent: usize, inline: bool) {
        if !inline {
            if !self.out.is_empty() {
                self.out.push('\n');
            }
            self.out.push_str(&" ".repeat(indent));
        }
    }

    fn map(&mut self, value: &Value, indent: usize, inline: bool) {
        let Value::Map(map) = value else { return };
        for (i, (key, v)) in map.borrow().iter().enumerate() {
            self.start(indent, inline && i == 0);
            self.string(key, indent + 2, true);
            self.out.push(':');
            self.value(v, indent);
        }
    }

    fn list(&mut self, value: &Value, indent: usize, inline: bool) {
        let Value::List(items) = value else { return };
        for (i, item) in items.iter().enumerate() {
            self.start(indent, inline && i == 0);
            self.out.push_str("- ");
            match item {
                Value::Map(m) if !m.borrow().is_empty() => self.map(item, indent + 2, true),
                Value::List(l) if !l.is_empty() => self.list(item, indent + 2, true),
                other => self.scalar(other, indent + 2, false),
            }
        }
    }

    /// The value of a mapping entry whose key sits at `indent`.
    fn value(&mut self, v: &Value, indent: usize) {
        match v {
            Value::Map(m) if !m.borrow().is_empty() => self.map(v, indent + 2, false),
            Value::List(l) if !l.is_empty() => self.list(v, indent, false),
            other => {
                self.out.push(' ');
                self.scalar(other, indent + 2, false);
            }
        }
    }

    fn scalar(&mut self, v: &Value, indent: usize, key: bool) {
        match v {
            Value::Nil | Value::Files => self.out.push_str("null"),
            Value::Time(t) => self.out.push_str(&super::dates::time_json(*t)),
            Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => self.out.push_str(&i.to_string()),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e21 => {
                self.out.push_str(&format!("{f:.0}"));
            }
            Value::Float(f) => {
                let text = format_float_g(*f, None);
                self.out.push_str(match text.as_str() {
                    "+Inf" => ".inf",
                    "-Inf" => "-.inf",
                    "NaN" => ".nan",
                    t => t,
                });
            }
            Value::Str(s) => self.string(s, indent, key),
            Value::List(_) => self.out.push_str("[]"),
            // Structs were turned into dicts by `as_data`.
            Value::Map(_) | Value::Cert(_) => self.out.push_str("{}"),
        }
    }

    fn string(&mut self, s: &str, indent: usize, key: bool) {
        let breaks = !key;
        match style(s, key) {
            Style::Plain => self.folded(s, indent, breaks, false),
            Style::Single => {
                self.out.push('\'');
                self.folded(s, indent, breaks, true);
                self.out.push('\'');
            }
            Style::Double => self.double_quoted(s, indent, breaks),
            Style::Literal => self.literal(s, indent),
        }
    }

    /// A plain or single-quoted scalar, a space turned into a line break past the width.
    fn folded(&mut self, s: &str, indent: usize, breaks: bool, quoted: bool) {
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        let mut column = self.column();
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let inner = !quoted || (i != 0 && i != chars.len() - 1);
                if breaks
                    && !spaces
                    && column > BEST_WIDTH
                    && inner
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.out.push('\n');
                    self.out.push_str(&" ".repeat(indent));
                    column = indent;
                } else {
                    self.out.push(' ');
                    column += 1;
                }
                spaces = true;
            } else {
                if quoted && c == '\'' {
                    self.out.push('\'');
                    column += 1;
                }
                self.out.push(c);
                column += 1;
                spaces = false;
            }
        }
    }

    fn double_quoted(&mut self, s: &str, indent: usize, breaks: bool) {
        let chars: Vec<char> = s.chars().collect();
        self.out.push('"');
        let mut column = self.column();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if breaks && !spaces && column > BEST_WIDTH && i != 0 && i != chars.len() - 1 {
                    self.out.push('\n');
                    self.out.push_str(&" ".repeat(indent));
                    column = indent;
                    if chars.get(i + 1) == Some(&' ') {
                        self.out.push('\\');
                        column += 1;
                    }
                } else {
                    self.out.push(' ');
                    column += 1;
                }
                spaces = true;
                continue;
            }
            spaces = false;
            let escaped = match c {
                '\0' => "\\0".to_string(),
                '\u{7}' => "\\a".to_string(),
                '\u{8}' => "\\b".to_string(),
                '\t' => "\\t".to_string(),
                '\n' => "\\n".to_string(),
                '\u{b}' => "\\v".to_string(),
                '\u{c}' => "\\f".to_string(),
                '\r' => "\\r".to_string(),
                '\u{1b}' => "\\e".to_string(),
                '"' => "\\\"".to_string(),
                '\\' => "\\\\".to_string(),
                '\u{85}' => "\\N".to_string(),
                '\u{a0}' => "\\_".to_string(),
                '\u{2028}' => "\\L".to_string(),
                '\u{2029}' => "\\P".to_string(),
                c if !printable(c) => {
                    let n = c as u32;
                    if n <= 0xff {
                        format!("\\x{n:02X}")
                    } else if n <= 0xffff {
                        format!("\\u{n:04X}")
                    } else {
                        format!("\\U{n:08X}")
                    }
                }
                c => c.to_string(),
            };
            column += escaped.chars().count();
            self.out.push_str(&escaped);
        }
        self.out.push('"');
    }

    fn literal(&mut self, s: &str, indent: usize) {
        self.out.push('|');
        if s.starts_with([' ', '\n']) {
            self.out.push('2');
        }
        let content = match s.strip_suffix('\n') {
            None => {
                self.out.push('-');
                s
            }
            Some(rest) if rest.is_empty() || rest.ends_with('\n') => {
                self.out.push('+');
                rest
            }
            Some(rest) => rest,
        };
        for line in content.split('\n') {
            self.out.push('\n');
            if !line.is_empty() {
                self.out.push_str(&" ".repeat(indent));
                self.out.push_str(line);
            }
        }
    }
}

/// libyaml's `is_printable`.
fn printable(c: char) -> bool {
    matches!(c as u32,
        0x0A | 0x20..=0x7E | 0x85 | 0xA0..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
        && c != '\u{feff}'
}

/// go-yaml v2's choice of style for a string (`encoder.stringv`, then the emitter's
/// `select_scalar_style` after `analyze_scalar`).
fn style(s: &str, key: bool) -> Style {
    let a = analyze(s);
    let requested = if s.contains('\n') {
        Style::Literal
    } else if resolves_to_non_string(s) {
        Style::Double
    } else {
        Style::Plain
    };
    match requested {
        Style::Plain if !a.block_plain || (s.is_empty() && key) => {
            if a.single_quoted {
                Style::Single
            } else {
                Style::Double
            }
        }
        Style::Literal if !a.block || key => Style::Double,
        other => other,
    }
}

struct Analysis {
    block_plain: bool,
    single_quoted: bool,
    block: bool,
}

/// libyaml's `yaml_emitter_analyze_scalar`, block context only.
fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis {
            block_plain: true,
            single_quoted: true,
            block: false,
        };
    }
    let chars: Vec<char> = s.chars().collect();
    let blankz = |c: Option<&char>| c.is_none_or(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    let mut indicators = s.starts_with("---") || s.starts_with("...");
    let mut special = false;
    let mut line_breaks = false;
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut prev_space, mut prev_break) = (false, false);
    let mut preceded_by_ws = true;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_ws = blankz(chars.get(i + 1));
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => indicators = true,
                '?' | ':' | '-' if followed_by_ws => indicators = true,
                _ => {}
            }
        } else if (c == ':' && followed_by_ws) || (c == '#' && preceded_by_ws) {
            indicators = true;
        }
        if !printable(c) {
            special = true;
        }
        let last = i == chars.len() - 1;
        if c == ' ' {
            leading_space |= i == 0;
            trailing_space |= last;
            break_space |= prev_break;
            prev_space = true;
            prev_break = false;
        } else if matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}') {
            line_breaks = true;
            leading_break |= i == 0;
            trailing_break |= last;
            space_break |= prev_space;
            prev_break = true;
            prev_space = false;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_by_ws = blankz(Some(&c));
    }
    let mut a = Analysis {
        block_plain: true,
        single_quoted: true,
        block: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain = false;
    }
    if trailing_space {
        a.block = false;
    }
    if break_space {
        a.block_plain = false;
        a.single_quoted = false;
    }
    if space_break || special {
        a = Analysis {
            block_plain: false,
            single_quoted: false,
            block: false,
        };
    }
    if line_breaks || indicators {
        a.block_plain = false;
    }
    a
}

/// Whether go-yaml v2 would read the plain string back as something else than a string
/// (YAML 1.1: `yes`, `off`, `~`, numbers, timestamps, base-60 numbers).
fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: [&str; 40] = [
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N",
        "no", "No", "NO", "off", "Off", "OFF", "true", "True", "TRUE", "false", "False", "FALSE",
        ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF", "<<",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    if !s.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.')) {
        return false;
    }
    let plain = s.replace('_', "");
    go_parse_int(&plain) || go_parse_float(&plain) || timestamp(s) || base60(s)
}

/// `strconv.ParseInt(s, 0, 64)` succeeds.
fn go_parse_int(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    let (digits, radix) = if let Some(d) = lower.strip_prefix("0x") {
        (d, 16)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (d, 8)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (d, 2)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (&lower[1..], 8)
    } else {
        (lower.as_str(), 10)
    };
    !digits.is_empty() && u64::from_str_radix(digits, radix).is_ok()
}

/// `strconv.ParseFloat(s, 64)` succeeds (decimal forms, `inf`, `nan`).
fn go_parse_float(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        return true;
    }
    let mut seen_digit = false;
    let mut chars = lower.chars().peekable();
    while chars.peek().is_some_and(char::is_ascii_digit) {
        chars.next();
        seen_digit = true;
    }
    if chars.peek() == Some(&'.') {
        chars.next();
        while chars.peek().is_some_and(char::is_ascii_digit) {
            chars.next();
            seen_digit = true;
        }
    }
    if !seen_digit {
        return false;
    }
    if chars.peek() == Some(&'e') {
        chars.next();
        if matches!(chars.peek(), Some('+' | '-')) {
            chars.next();
        }
        let mut exp = false;
        while chars.peek().is_some_and(char::is_ascii_digit) {
            chars.next();
            exp = true;
        }
        if !exp {
            return false;
        }
    }
    chars.next().is_none()
}

/// go-yaml's timestamp forms: `2006-1-2`, optionally followed by a time.
fn timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |from: usize, min: usize, max: usize| -> Option<usize> {
        let n = b[from.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        (min..=max).contains(&n).then_some(from + n)
    };
    let Some(i) = digits(0, 4, 4) else {
        return false;
    };
    if b.get(i) != Some(&b'-') {
        return false;
    }
    let Some(i) = digits(i + 1, 1, 2) else {
        return false;
    };
    if b.get(i) != Some(&b'-') {
        return false;
    }
    let Some(i) = digits(i + 1, 1, 2) else {
        return false;
    };
    match b.get(i) {
        None => true,
        Some(b'T' | b't' | b' ') => {
            let Some(j) = digits(i + 1, 1, 2) else {
                return false;
            };
            b.get(j) == Some(&b':')
        }
        Some(_) => false,
    }
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`.
fn base60(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (main, frac) = body.split_once('.').unwrap_or((body, ""));
    let mut parts = main.split(':');
    let head = parts.next().unwrap_or("");
    let head_ok = head.starts_with(|c: char| c.is_ascii_digit())
        && head.chars().all(|c| c.is_ascii_digit() || c == '_');
    let mut count = 0;
    for part in parts {
        count += 1;
        let ok = matches!(part.len(), 1 | 2)
            && part.chars().all(|c| c.is_ascii_digit())
            && (part.len() == 1 || part.as_bytes()[0] <= b'5');
        if !ok {
            return false;
        }
    }
    head_ok && count > 0 && frac.chars().all(|c| c.is_ascii_digit() || c == '_')
}

/// The first document of `text` as a value.
pub(super) fn from_yaml(text: &str) -> Result<Value, String> {
    let docs = YamlOwned::load_from_str(text)
        .map_err(|e| format!("error converting YAML to JSON: {e}"))?;
    Ok(docs.first().map_or(Value::Nil, convert))
}

fn convert(node: &YamlOwned) -> Value {
    match node {
        YamlOwned::Value(scalar) => scalar_value(scalar),
        YamlOwned::Representation(s, ..) => Value::Str(s.clone()),
        YamlOwned::Sequence(items) => Value::list(items.iter().map(convert).collect()),
        YamlOwned::Mapping(map) => {
            let mut out = BTreeMap::new();
            for (k, v) in map {
                let key = match convert(k) {
                    Value::Str(s) => s,
                    Value::Nil => "null".to_string(),
                    other => other.to_go_string(),
                };
                out.insert(key, convert(v));
            }
            Value::map(out)
        }
        YamlOwned::Tagged(_, inner) => convert(inner),
        YamlOwned::Alias(_) | YamlOwned::BadValue => Value::Nil,
    }
}

fn scalar_value(scalar: &ScalarOwned) -> Value {
    match scalar {
        ScalarOwned::Null => Value::Nil,
        ScalarOwned::Boolean(b) => Value::Bool(*b),
        ScalarOwned::Integer(i) => Value::Int(*i),
        ScalarOwned::FloatingPoint(f) => Value::Float(f.into_inner()),
        ScalarOwned::String(s) => Value::Str(s.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: Vec<(&str, Value)>) -> Value {
        Value::map(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    #[test]
    fn block_layout_matches_go_yaml_v2() {
        let v = map(vec![
            (
                "b",
                map(vec![("c", Value::Int(2)), ("e", Value::list(vec![]))]),
            ),
            ("a", Value::Float(1.0)),
            (
                "d",
                Value::list(vec![
                    Value::from("x"),
                    map(vec![("k", Value::Int(1)), ("y", Value::Nil)]),
                    Value::list(vec![Value::from("n1"), Value::from("n2")]),
                ]),
            ),
            ("f", Value::from("line1\nline2\n")),
            ("g", Value::from("one\ntwo")),
        ]);
        assert_eq!(
            to_yaml(&v),
            "a: 1\nb:\n  c: 2\n  e: []\nd:\n- x\n- k: 1\n  \"y\": null\n- - n1\n  - n2\n\
             f: |\n  line1\n  line2\ng: |-\n  one\n  two\n"
        );
        assert_eq!(to_yaml(&Value::from("abc")), "abc\n");
        assert_eq!(to_yaml(&Value::Float(1.5)), "1.5\n");
    }

    #[test]
    fn string_styles() {
        let cases = [
            ("plain", "plain"),
            ("true", "\"true\""),
            ("yes", "\"yes\""),
            ("123", "\"123\""),
            ("1.5e3", "\"1.5e3\""),
            ("2024-01-15", "\"2024-01-15\""),
            ("1:20", "\"1:20\""),
            ("", "\"\""),
            ("a: b", "'a: b'"),
            ("- x", "'- x'"),
            ("*star", "'*star'"),
            (" lead", "' lead'"),
            ("it's", "it's"),
            ("#x", "'#x'"),
            ("a #b", "'a #b'"),
            ("tab\there", "\"tab\\there\""),
            ("v1.2.3", "v1.2.3"),
            ("{x}", "'{x}'"),
        ];
        for (s, want) in cases {
            let mut e = Emitter { out: String::new() };
            e.string(s, 2, false);
            assert_eq!(e.out, want, "{s:?}");
        }
    }

    #[test]
    fn long_strings_fold_at_80_columns() {
        let words = vec!["word"; 30].join(" ");
        let out = to_yaml(&map(vec![("key", Value::from(words.as_str()))]));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].chars().count() > 80 && lines[1].starts_with("  word"));
        let round = from_yaml(&out).expect("folded YAML parses");
        assert_eq!(round.to_go_string(), format!("map[key:{words}]"));
    }

    #[test]
    fn from_yaml_keeps_yaml_types() {
        let v = from_yaml("a: 1\nb: [x, 2.5]\nc: {d: true}\n").expect("parses");
        assert_eq!(v.to_go_string(), "map[a:1 b:[x 2.5] c:map[d:true]]");
        let Value::Map(m) = v else { panic!("a map") };
        assert!(matches!(m.borrow().get("a"), Some(Value::Int(1))));
        assert!(from_yaml("a: [").is_err());
    }
}
