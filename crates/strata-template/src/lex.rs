//! The lexer: template text to tokens, following Go's `text/template/parse/lex.go`.
//!
//! Trim markers are applied here: `{{- ` drops the whitespace before it from the preceding
//! text token and ` -}}` the whitespace after it, so a text token's span is exactly the source
//! bytes it outputs (which is what the line map relies on). Comments (`{{/* … */}}`) produce
//! no token but still trim.

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Plain text outside actions.
    Text,
    /// `{{` (with its trim marker, if any).
    Open,
    /// `}}` (with its trim marker, if any).
    Close,
    /// Spaces (and newlines) inside an action; they separate arguments.
    Space,
    /// A function name.
    Ident,
    /// A keyword: `if`, `else`, `end`, `range`, `with`, `define`, `template`, `block`,
    /// `break`, `continue`.
    Keyword,
    /// `.Name`.
    Field,
    /// `.` alone.
    Dot,
    /// `$` or `$name`.
    Variable,
    /// `"…"`.
    String,
    /// `` `…` ``.
    RawString,
    /// `'x'`.
    Char,
    /// A number.
    Number,
    /// `true` or `false`.
    Bool,
    /// `nil`.
    Nil,
    /// `|`.
    Pipe,
    /// `(`.
    LParen,
    /// `)`.
    RParen,
    /// `,` (only meaningful in `range $i, $v :=`).
    Comma,
    /// `:=`.
    Declare,
    /// `=`.
    Assign,
    /// Any other printable ASCII character (the parser reports it as unexpected).
    Other,
    /// Where lexing failed; the parser reports the error when it gets there, so errors
    /// earlier in the text are reported first, as with Go's lazy lexer.
    Error,
    /// The end of the input.
    Eof,
}

/// A token: its kind and its byte span in the source.
#[derive(Clone, Copy, Debug)]
pub(super) struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

/// A lexing error: where and what.
#[derive(Debug)]
pub(super) struct LexError {
    pub pos: usize,
    pub message: String,
}

const KEYWORDS: [&str; 10] = [
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
];

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Splits `src` into tokens, ending with [`Kind::Eof`], or with [`Kind::Error`] and the
/// error.
pub(super) fn lex(src: &str) -> (Vec<Token>, Option<LexError>) {
    let mut tokens = Vec::new();
    match lex_into(src, &mut tokens) {
        Ok(()) => (tokens, None),
        Err(e) => {
            tokens.push(Token {
                kind: Kind::Error,
                start: e.pos,
                end: e.pos,
            });
            (tokens, Some(e))
        }
    }
}

fn lex_into(src: &str, tokens: &mut Vec<Token>) -> Result<(), LexError> {
    let bytes = src.as_bytes();
    let mut pos = 0;
    let mut trim_next = false;
    loop {
        let open = src[pos..].find("{{").map_or(src.len(), |i| pos + i);
        let mut text_start = pos;
        if trim_next {
            while text_start < open && is_space(bytes[text_start]) {
                text_start += 1;
            }
        }
        if open == src.len() {
            push_text(tokens, text_start, open);
            tokens.push(Token {
                kind: Kind::Eof,
                start: src.len(),
                end: src.len(),
            });
            return Ok(());
        }
        let trim_left =
            bytes.get(open + 2) == Some(&b'-') && bytes.get(open + 3).is_some_and(|&b| is_space(b));
        let mut text_end = open;
        if trim_left {
            while text_end > text_start && is_space(bytes[text_end - 1]) {
                text_end -= 1;
            }
        }
        push_text(tokens, text_start, text_end);
        let inner = open + if trim_left { 4 } else { 2 };
        if src[inner..].starts_with("/*") {
            let Some(close) = src[inner + 2..].find("*/").map(|i| inner + 2 + i + 2) else {
                return Err(LexError {
                    pos: open,
                    message: "unclosed comment".into(),
                });
            };
            if src[close..].starts_with("}}") {
                pos = close + 2;
                trim_next = false;
            } else if close < src.len()
                && is_space(bytes[close])
                && src[close + 1..].starts_with("-}}")
            {
                pos = close + 4;
                trim_next = true;
            } else {
                return Err(LexError {
                    pos: close,
                    message: "comment ends before closing delimiter".into(),
                });
            }
            continue;
        }
        tokens.push(Token {
            kind: Kind::Open,
            start: open,
            end: inner,
        });
        let (after, trim) = lex_action(src, inner, open, tokens)?;
        pos = after;
        trim_next = trim;
    }
}

fn push_text(tokens: &mut Vec<Token>, start: usize, end: usize) {
    if end > start {
        tokens.push(Token {
            kind: Kind::Text,
            start,
            end,
        });
    }
}

/// Lexes one action from `pos` (just past `{{`) up to and including its `}}`; returns the
/// position after it and whether it had a right trim marker.
fn lex_action(
    src: &str,
    mut pos: usize,
    open: usize,
    tokens: &mut Vec<Token>,
) -> Result<(usize, bool), LexError> {
    let bytes = src.as_bytes();
    let mut depth = 0usize;
    let err = |pos: usize, message: String| Err(LexError { pos, message });
    loop {
        let rest = &src[pos..];
        let push = |tokens: &mut Vec<Token>, kind, end| {
            tokens.push(Token {
                kind,
                start: pos,
                end,
            })
        };
        if rest.is_empty() {
            return err(open, "unclosed action".into());
        }
        let b = bytes[pos];
        if is_space(b) && rest[1..].starts_with("-}}") {
            if depth > 0 {
                return err(pos, "unclosed left paren".into());
            }
            push(tokens, Kind::Close, pos + 4);
            return Ok((pos + 4, true));
        }
        if rest.starts_with("}}") {
            if depth > 0 {
                return err(pos, "unclosed left paren".into());
            }
            push(tokens, Kind::Close, pos + 2);
            return Ok((pos + 2, false));
        }
        let c = rest.chars().next().unwrap_or('\0');
        let end = match c {
            _ if is_space(b) => {
                let mut end = pos;
                while end < src.len()
                    && is_space(bytes[end])
                    && !(end + 1 < src.len() && src[end + 1..].starts_with("-}}"))
                {
                    end += 1;
                }
                // A lone space before ` -}}` is part of the marker.
                if end == pos {
                    end += 1;
                }
                push(tokens, Kind::Space, end);
                end
            }
            '=' => {
                push(tokens, Kind::Assign, pos + 1);
                pos + 1
            }
            ':' => {
                if !rest.starts_with(":=") {
                    return err(pos, "expected :=".into());
                }
                push(tokens, Kind::Declare, pos + 2);
                pos + 2
            }
            '|' => {
                push(tokens, Kind::Pipe, pos + 1);
                pos + 1
            }
            ',' => {
                push(tokens, Kind::Comma, pos + 1);
                pos + 1
            }
            '(' => {
                depth += 1;
                push(tokens, Kind::LParen, pos + 1);
                pos + 1
            }
            ')' => {
                if depth == 0 {
                    return err(pos, "unexpected right paren".into());
                }
                depth -= 1;
                push(tokens, Kind::RParen, pos + 1);
                pos + 1
            }
            '"' => {
                let end = quoted(src, pos, '"')?;
                push(tokens, Kind::String, end);
                end
            }
            '\'' => {
                let end = quoted(src, pos, '\'')?;
                push(tokens, Kind::Char, end);
                end
            }
            '`' => {
                let Some(close) = rest[1..].find('`') else {
                    return err(pos, "unterminated raw quoted string".into());
                };
                let end = pos + close + 2;
                push(tokens, Kind::RawString, end);
                end
            }
            '$' => {
                let end = pos + 1 + word_len(&rest[1..]);
                push(tokens, Kind::Variable, end);
                check_terminator(src, end)?;
                end
            }
            '.' if !rest[1..].starts_with(|c: char| c.is_ascii_digit()) => {
                let len = word_len(&rest[1..]);
                let kind = if len == 0 { Kind::Dot } else { Kind::Field };
                let end = pos + 1 + len;
                push(tokens, kind, end);
                check_terminator(src, end)?;
                end
            }
            '.' | '+' | '-' | '0'..='9' => {
                let end = number(src, pos)?;
                push(tokens, Kind::Number, end);
                end
            }
            c if is_alnum(c) => {
                let end = pos + word_len(rest);
                let word = &src[pos..end];
                let kind = match word {
                    "true" | "false" => Kind::Bool,
                    "nil" => Kind::Nil,
                    w if KEYWORDS.contains(&w) => Kind::Keyword,
                    _ => Kind::Ident,
                };
                push(tokens, kind, end);
                check_terminator(src, end)?;
                end
            }
            c if c.is_ascii_graphic() => {
                push(tokens, Kind::Other, pos + 1);
                pos + 1
            }
            c => return err(pos, format!("unrecognized character in action: {c:?}")),
        };
        pos = end;
    }
}

fn word_len(s: &str) -> usize {
    s.char_indices()
        .find(|&(_, c)| !is_alnum(c))
        .map_or(s.len(), |(i, _)| i)
}

/// Go's `atTerminator`: what may follow a word.
fn check_terminator(src: &str, pos: usize) -> Result<(), LexError> {
    let rest = &src[pos..];
    match rest.chars().next() {
        None => Ok(()),
        Some(c) if is_space(c as u8) && c.is_ascii() => Ok(()),
        Some('.' | ',' | '|' | ':' | ')' | '(' | '=') => Ok(()),
        Some(_) if rest.starts_with("}}") => Ok(()),
        Some(c) => Err(LexError {
            pos,
            message: format!("bad character {c:?}"),
        }),
    }
}

/// The end of a `"` or `'` quoted literal starting at `pos`.
fn quoted(src: &str, pos: usize, quote: char) -> Result<usize, LexError> {
    let mut chars = src[pos + 1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '\n' => break,
            c if c == quote => return Ok(pos + 1 + i + 1),
            _ => {}
        }
    }
    Err(LexError {
        pos,
        message: if quote == '"' {
            "unterminated quoted string".into()
        } else {
            "unterminated character constant".into()
        },
    })
}

/// The end of a number starting at `pos` (Go's `scanNumber`, without complex numbers).
fn number(src: &str, pos: usize) -> Result<usize, LexError> {
    let bytes = src.as_bytes();
    let mut i = pos;
    if matches!(bytes[i], b'+' | b'-') {
        i += 1;
    }
    let mut digits: &[u8] = b"0123456789_";
    let mut exponent: &[u8] = b"eE";
    if bytes.get(i) == Some(&b'0') && matches!(bytes.get(i + 1), Some(b'x' | b'X')) {
        i += 2;
        digits = b"0123456789abcdefABCDEF_";
        exponent = b"pP";
    } else if bytes.get(i) == Some(&b'0') && matches!(bytes.get(i + 1), Some(b'o' | b'O')) {
        i += 2;
        digits = b"01234567_";
        exponent = b"";
    } else if bytes.get(i) == Some(&b'0') && matches!(bytes.get(i + 1), Some(b'b' | b'B')) {
        i += 2;
        digits = b"01_";
        exponent = b"";
    }
    let run = |i: &mut usize, set: &[u8]| {
        while *i < bytes.len() && set.contains(&bytes[*i]) {
            *i += 1;
        }
    };
    run(&mut i, digits);
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        run(&mut i, digits);
    }
    if i < bytes.len() && exponent.contains(&bytes[i]) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        run(&mut i, b"0123456789_");
    }
    let next = src[i..].chars().next();
    if i == pos || next.is_some_and(|c| is_alnum(c) || c == '.') {
        let end = i + word_len(&src[i..]).max(next.map_or(0, char::len_utf8));
        return Err(LexError {
            pos,
            message: format!("bad number syntax: {:?}", &src[pos..end]),
        });
    }
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(Kind, String)> {
        let (tokens, error) = lex(src);
        assert!(error.is_none(), "{src} lexes");
        tokens
            .into_iter()
            .map(|t| (t.kind, src[t.start..t.end].to_string()))
            .collect()
    }

    #[test]
    fn trims_and_comments() {
        let toks = kinds("a  {{- 3 -}}  b {{/* c */}} d\n{{- /* e */ -}}\n f");
        let texts: Vec<_> = toks
            .iter()
            .filter(|(k, _)| *k == Kind::Text)
            .map(|(_, s)| s.as_str())
            .collect();
        assert_eq!(texts, ["a", "b ", " d", "f"]);
    }

    #[test]
    fn action_tokens() {
        let toks = kinds("{{ $x := .A.B | printf \"%d\" -1 }}");
        let got: Vec<_> = toks.iter().map(|(k, _)| *k).collect();
        use Kind::*;
        assert_eq!(
            got,
            [
                Open, Space, Variable, Space, Declare, Space, Field, Field, Space, Pipe, Space,
                Ident, Space, String, Space, Number, Space, Close, Eof
            ]
        );
        assert_eq!(kinds("{{-3}}")[1], (Kind::Number, "-3".into()));
    }

    #[test]
    fn errors() {
        for (src, want) in [
            ("{{ .a ", "unclosed action"),
            ("{{ \"x }}", "unterminated quoted string"),
            ("{{ 3x }}", "bad number syntax: \"3x\""),
            (
                "{{ a \u{7} }}",
                "unrecognized character in action: '\\u{7}'",
            ),
            ("{{/* x }}", "unclosed comment"),
            ("{{ ) }}", "unexpected right paren"),
        ] {
            let err = lex(src).1.expect(src);
            assert_eq!(err.message, want, "{src}");
        }
    }
}
