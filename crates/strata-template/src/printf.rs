//! Go's `fmt.Sprintf`, `fmt.Sprint` and `fmt.Sprintln` for template values.
//!
//! Verbs: `%v %s %q %d %x %X %o %b %c %U %t %f %F %e %E %g %G %T %%` with the flags `-+# 0`,
//! width and precision (also `*`). Mismatches print as Go does: `%!d(string=x)`,
//! `%!s(MISSING)`, `%!(EXTRA int=1)`.

use std::fmt::Write as _;

use super::value::{Value, format_float_e, format_float_f, format_float_g, go_quote};

/// `fmt.Sprint`: operands joined, with a space between two operands when neither is a string.
pub(super) fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        let is_str = matches!(arg, Value::Str(_));
        if i > 0 && !is_str && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        out.push_str(&arg.to_go_string());
    }
    out
}

/// `fmt.Sprintln`: operands always separated by spaces, and a newline.
pub(super) fn sprintln(args: &[Value]) -> String {
    let mut out: Vec<String> = args.iter().map(Value::to_go_string).collect();
    out.push(String::new());
    let mut text = out.join(" ");
    text.pop();
    text.push('\n');
    text
}

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

/// Go's limit on a width or precision (`fmt`'s `tooLarge`).
const MAX_WIDTH: usize = 1_000_000;

/// `fmt.Sprintf`.
pub(super) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut used = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                _ => break,
            }
            chars.next();
        }
        let mut number = |chars: &mut std::iter::Peekable<std::str::Chars>| -> Option<usize> {
            if chars.peek() == Some(&'*') {
                chars.next();
                // Go's `tooLarge`: a width or precision over 1e6 is bad, not a huge pad.
                let n = match args.get(used) {
                    Some(Value::Int(n)) if *n <= MAX_WIDTH as i64 => Some((*n).max(0) as usize),
                    _ => None,
                };
                used += 1;
                return n;
            }
            let mut n = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                let next = n.unwrap_or(0) * 10 + d as usize;
                if next > MAX_WIDTH {
                    // Go's `parsenum` gives up on the rest of the format there.
                    chars.by_ref().for_each(drop);
                    return None;
                }
                n = Some(next);
                chars.next();
            }
            n
        };
        spec.width = number(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.precision = Some(number(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(used) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        used += 1;
        out.push_str(&format_one(verb, spec, arg));
    }
    if used < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[used..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.to_go_string()))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

fn bad_verb(verb: char, arg: &Value) -> String {
    match arg {
        Value::Nil => format!("%!{verb}(<nil>)"),
        _ => format!("%!{verb}({}={})", arg.type_name(), arg.to_go_string()),
    }
}

fn format_one(verb: char, spec: Spec, arg: &Value) -> String {
    let body = match (verb, arg) {
        ('T', _) => arg.type_name().to_string(),
        ('v', Value::Float(f)) => sign(format_float_g(*f, spec.precision), spec),
        ('v', Value::Int(i)) => sign(i.to_string(), spec),
        ('v', _) => arg.to_go_string(),
        ('s', Value::Str(s)) => truncate(s, spec.precision),
        ('s', Value::List(_) | Value::Map(_)) => arg.to_go_string(),
        ('q', Value::Str(s)) => {
            if spec.sharp && !s.contains('`') {
                format!("`{s}`")
            } else {
                go_quote(s)
            }
        }
        ('q', Value::Int(i)) => {
            let c = char::from_u32(*i as u32).unwrap_or('\u{fffd}');
            let q = go_quote(&c.to_string());
            format!("'{}'", &q[1..q.len() - 1].replace("\\\"", "\""))
        }
        ('t', Value::Bool(b)) => b.to_string(),
        ('d', Value::Int(i)) => sign(i.to_string(), spec),
        ('c', Value::Int(i)) => char::from_u32(*i as u32).unwrap_or('\u{fffd}').to_string(),
        ('U', Value::Int(i)) => format!("U+{:04X}", i),
        ('x' | 'X', Value::Int(i)) => {
            let digits = format!("{:x}", i.unsigned_abs());
            let prefix = if spec.sharp { "0x" } else { "" };
            let s = format!("{}{prefix}{digits}", if *i < 0 { "-" } else { "" });
            if verb == 'X' { s.to_uppercase() } else { s }
        }
        ('x' | 'X', Value::Str(s)) => {
            let s: String = s.bytes().map(|b| format!("{b:02x}")).collect();
            if verb == 'X' { s.to_uppercase() } else { s }
        }
        ('o', Value::Int(i)) => format!(
            "{}{}{:o}",
            if *i < 0 { "-" } else { "" },
            if spec.sharp { "0" } else { "" },
            i.unsigned_abs()
        ),
        ('b', Value::Int(i)) => format!("{}{:b}", if *i < 0 { "-" } else { "" }, i.unsigned_abs()),
        ('f' | 'F', Value::Float(f)) => sign(format_float_f(*f, spec.precision.unwrap_or(6)), spec),
        ('e' | 'E', Value::Float(f)) => sign(
            format_float_e(*f, spec.precision.unwrap_or(6), verb == 'E'),
            spec,
        ),
        ('g' | 'G', Value::Float(f)) => {
            let s = sign(format_float_g(*f, spec.precision), spec);
            if verb == 'G' { s.to_uppercase() } else { s }
        }
        _ => return bad_verb(verb, arg),
    };
    pad(body, spec, matches!(arg, Value::Int(_) | Value::Float(_)))
}

fn sign(s: String, spec: Spec) -> String {
    if s.starts_with('-') {
        s
    } else if spec.plus {
        format!("+{s}")
    } else if spec.space {
        format!(" {s}")
    } else {
        s
    }
}

fn truncate(s: &str, precision: Option<usize>) -> String {
    match precision {
        Some(n) => s.chars().take(n).collect(),
        None => s.to_string(),
    }
}

fn pad(body: String, spec: Spec, numeric: bool) -> String {
    let len = body.chars().count();
    let Some(width) = spec.width.filter(|&w| w > len) else {
        return body;
    };
    let fill = width - len;
    if spec.minus {
        format!("{body}{}", " ".repeat(fill))
    } else if spec.zero && numeric {
        let (sign, digits) = match body.strip_prefix(['-', '+', ' ']) {
            Some(rest) => (&body[..1], rest),
            None => ("", body.as_str()),
        };
        format!("{sign}{}{digits}", "0".repeat(fill))
    } else {
        format!("{}{body}", " ".repeat(fill))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::from(x)
    }

    #[test]
    fn verbs() {
        let cases: [(&str, Vec<Value>, &str); 14] = [
            ("%s-%d", vec![s("a"), Value::Int(3)], "a-3"),
            ("%5s|%-5s|", vec![s("ab"), s("cd")], "   ab|cd   |"),
            ("%05d", vec![Value::Int(-42)], "-0042"),
            ("%.2f", vec![Value::Float(1.23456)], "1.23"),
            (
                "%v %v",
                vec![Value::Float(2.0), Value::Bool(true)],
                "2 true",
            ),
            ("%q", vec![s("a\"b")], r#""a\"b""#),
            ("%x %X", vec![Value::Int(255), s("hi")], "ff 6869"),
            ("%d", vec![s("x")], "%!d(string=x)"),
            ("%s %s", vec![s("x")], "x %!s(MISSING)"),
            ("%s", vec![s("x"), Value::Int(1)], "x%!(EXTRA int=1)"),
            ("100%%", vec![], "100%"),
            ("%v", vec![Value::Nil], "<nil>"),
            ("%T", vec![Value::list(vec![])], "[]interface {}"),
            ("%.3s", vec![s("abcdef")], "abc"),
        ];
        for (format, args, want) in cases {
            assert_eq!(sprintf(format, &args), want, "{format}");
        }
    }

    #[test]
    fn sprint_spacing() {
        assert_eq!(sprint(&[s("a"), s("b")]), "ab");
        assert_eq!(sprint(&[Value::Int(1), Value::Int(2), s("c")]), "1 2c");
        assert_eq!(sprintln(&[s("a"), Value::Int(1)]), "a 1\n");
    }
}
