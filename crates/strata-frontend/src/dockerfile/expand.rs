//! Variable expansion and quote removal of Dockerfile words, as BuildKit's `shell.Lex`
//! `ProcessWord` does it.
//!
//! | syntax | result |
//! |---|---|
//! | `$VAR`, `${VAR}` | the value; unset is empty |
//! | `${VAR:-word}` / `${VAR-word}` | `word` if VAR is unset or empty / unset |
//! | `${VAR:+word}` / `${VAR+word}` | `word` if VAR is set and non-empty / set, else empty |
//! | `${VAR:?msg}` / `${VAR?msg}` | the value; an error if VAR is unset or empty / unset |
//! | `'...'` | literal text, quotes removed |
//! | `"..."` | quotes removed; `$` expands; the escape character escapes `"`, `$` and itself |
//! | escape + c | `c` (so `\$` is a literal `$`); a trailing escape character is dropped |
//! | `$` not followed by a name | a literal `$` |
//!
//! Names are letters, digits and `_` (a name starting with a digit is the digits); shell
//! special parameters (`$@ $* $# $? $- $$ $! $0`) are names that are never set. `word` is
//! itself expanded (quotes included). BuildKit's pattern operations (`${VAR#pat}`,
//! `${VAR%pat}`, `${VAR/pat/repl}`) are rejected with [`Error::Unsupported`].

use std::fmt;

/// Why a word could not be expanded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A `'` or `"` is not closed.
    UnterminatedQuote {
        /// The quote character.
        quote: char,
    },
    /// `${` without its `}`.
    MissingBrace,
    /// `${}`, `${:x}`, `${{x}`.
    BadSubstitution,
    /// A modifier strata does not support (`#`, `%`, `/`, `:1`, ...).
    Unsupported {
        /// The modifier as written after the name.
        modifier: String,
    },
    /// `${VAR?message}` with VAR unset (or empty, with `:?`).
    Required {
        /// The variable.
        name: String,
        /// The message from the word, or a default one.
        message: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnterminatedQuote { quote } => {
                write!(f, "unterminated quote: no matching `{quote}`")
            }
            Error::MissingBrace => write!(f, "missing `}}` after `${{`"),
            Error::BadSubstitution => write!(f, "bad substitution: `${{` needs a variable name"),
            Error::Unsupported { modifier } => match modifier.as_str() {
                "#" | "##" | "%" | "%%" | "/" | "//" => write!(
                    f,
                    "the pattern substitution `${{VAR{modifier}...}}` is not supported by strata"
                ),
                _ => write!(
                    f,
                    "unsupported modifier `{modifier}` in substitution (supported: `:-`, `-`, `:+`, `+`, `:?`, `?`)"
                ),
            },
            Error::Required { name, message } => write!(f, "{name}: {message}"),
        }
    }
}

impl std::error::Error for Error {}

/// Expands variables in `word` and removes its quotes and escapes, with `escape` as the escape
/// character (the `# escape=` directive) and `vars` giving the value of a variable in scope
/// (`None` when unset).
///
/// # Errors
/// See [`Error`].
///
/// ```
/// use strata_frontend::dockerfile::expand;
/// let vars = |name: &str| (name == "V").then(|| "1.2".to_string());
/// assert_eq!(expand(r#"app-${V}-"$X"-\$V-${X:-none}"#, '\\', &vars).unwrap(), "app-1.2--$V-none");
/// ```
pub fn expand(
    word: &str,
    escape: char,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Error> {
    Lexer {
        s: word,
        i: 0,
        escape,
        quotes: true,
        vars,
    }
    .word(None)
}

/// Expands a heredoc body (`COPY <<EOF` with an unquoted name): like [`expand`] but quotes are
/// ordinary characters and the escape character is always `\`, which is BuildKit's
/// `SkipProcessQuotes` lexer (so, as in Docker, `\x` becomes `x` and `\$` a literal `$`).
///
/// # Errors
/// See [`Error`].
pub fn expand_heredoc(body: &str, vars: &dyn Fn(&str) -> Option<String>) -> Result<String, Error> {
    Lexer {
        s: body,
        i: 0,
        escape: '\\',
        quotes: false,
        vars,
    }
    .word(None)
}

struct Lexer<'a> {
    s: &'a str,
    i: usize,
    escape: char,
    quotes: bool,
    vars: &'a dyn Fn(&str) -> Option<String>,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += c.len_utf8();
        Some(c)
    }

    /// Reads up to `stop` (consumed) or the end.
    fn word(&mut self, stop: Option<char>) -> Result<String, Error> {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.bump();
                return Ok(out);
            }
            match c {
                '$' => out.push_str(&self.dollar()?),
                '\'' if self.quotes => out.push_str(&self.single()?),
                '"' if self.quotes => out.push_str(&self.double()?),
                _ => {
                    self.bump();
                    if c == self.escape {
                        match self.bump() {
                            Some(n) => out.push(n),
                            None => break,
                        }
                    } else {
                        out.push(c);
                    }
                }
            }
        }
        match stop {
            Some(_) => Err(Error::MissingBrace),
            None => Ok(out),
        }
    }

    fn single(&mut self) -> Result<String, Error> {
        self.bump();
        let rest = &self.s[self.i..];
        match rest.find('\'') {
            Some(end) => {
                self.i += end + 1;
                Ok(rest[..end].to_string())
            }
            None => Err(Error::UnterminatedQuote { quote: '\'' }),
        }
    }

    fn double(&mut self) -> Result<String, Error> {
        self.bump();
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(Error::UnterminatedQuote { quote: '"' }),
                Some('"') => {
                    self.bump();
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) => {
                    self.bump();
                    if c == self.escape {
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.bump();
                                out.push(n);
                                continue;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    self.bump();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.bump();
                return c.to_string();
            }
            if !(c.is_alphanumeric() || c == '_') {
                break;
            }
            self.bump();
            name.push(c);
        }
        name
    }

    fn dollar(&mut self) -> Result<String, Error> {
        self.bump();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok((self.vars)(&name).unwrap_or_default());
        }
        self.bump();
        match self.peek() {
            None => return Err(Error::MissingBrace),
            Some('{' | '}' | ':') => return Err(Error::BadSubstitution),
            Some(_) => {}
        }
        let name = self.name();
        let (null_is_unset, modifier) = match self.bump() {
            None => return Err(Error::MissingBrace),
            Some('}') => return Ok((self.vars)(&name).unwrap_or_default()),
            Some(':') => match self.bump() {
                None => return Err(Error::MissingBrace),
                Some(m @ ('-' | '+' | '?')) => (true, m),
                Some(m) => {
                    return Err(Error::Unsupported {
                        modifier: format!(":{m}"),
                    });
                }
            },
            Some(m @ ('-' | '+' | '?')) => (false, m),
            Some(m @ ('#' | '%' | '/')) => {
                let doubled = self.peek() == Some(m);
                return Err(Error::Unsupported {
                    modifier: if doubled {
                        format!("{m}{m}")
                    } else {
                        m.to_string()
                    },
                });
            }
            Some(m) => {
                return Err(Error::Unsupported {
                    modifier: m.to_string(),
                });
            }
        };
        let word = self.word(Some('}'))?;
        let value = (self.vars)(&name);
        let unset = match &value {
            None => true,
            Some(v) => null_is_unset && v.is_empty(),
        };
        Ok(match modifier {
            '-' if unset => word,
            '-' => value.unwrap_or_default(),
            '+' if unset => String::new(),
            '+' => word,
            _ if unset => {
                let message = if !word.is_empty() {
                    word
                } else if value.is_none() {
                    "is not allowed to be unset".into()
                } else {
                    "is not allowed to be empty".into()
                };
                return Err(Error::Required { name, message });
            }
            _ => value.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(name: &str) -> Option<String> {
        match name {
            "A" => Some("a".into()),
            "B" => Some("b c".into()),
            "EMPTY" => Some(String::new()),
            "ÜML" => Some("u".into()),
            _ => None,
        }
    }

    /// `syntax!(name, input, expected)`: `expected` is `Ok("...")` or an `Err(...)` pattern.
    macro_rules! syntax {
        ($name:ident, $input:expr, Ok($expected:expr)) => {
            syntax!($name, '\\', $input, Ok($expected));
        };
        ($name:ident, $escape:expr, $input:expr, Ok($expected:expr)) => {
            #[test]
            fn $name() {
                assert_eq!(
                    expand($input, $escape, &scope),
                    Ok(String::from($expected)),
                    "{:?}",
                    $input
                );
            }
        };
        ($name:ident, $input:expr, Err($pat:pat)) => {
            #[test]
            fn $name() {
                let got = expand($input, '\\', &scope);
                assert!(matches!(got, Err($pat)), "{:?} gave {got:?}", $input);
            }
        };
    }

    syntax!(plain, "abc", Ok("abc"));
    syntax!(dollar_name, "$A/x", Ok("a/x"));
    syntax!(braces, "${A}x", Ok("ax"));
    syntax!(unset_is_empty, "[$NOPE]", Ok("[]"));
    syntax!(name_stops_at_punctuation, "$A.b", Ok("a.b"));
    syntax!(unicode_names, "$ÜML", Ok("u"));
    syntax!(lone_dollar, "a$ b$", Ok("a$ b$"));
    syntax!(digits_are_a_name, "$1x", Ok("x"));
    syntax!(special_params, "$$-$@", Ok("-"));
    syntax!(default_unset, "${NOPE:-d}", Ok("d"));
    syntax!(default_empty, "${EMPTY:-d}", Ok("d"));
    syntax!(default_set, "${A:-d}", Ok("a"));
    syntax!(dash_unset, "${NOPE-d}", Ok("d"));
    syntax!(dash_empty_keeps_empty, "${EMPTY-d}", Ok(""));
    syntax!(alt_set, "${A:+alt}", Ok("alt"));
    syntax!(alt_empty, "${EMPTY:+alt}", Ok(""));
    syntax!(plus_empty_is_set, "${EMPTY+alt}", Ok("alt"));
    syntax!(plus_unset, "${NOPE+alt}", Ok(""));
    syntax!(nested_default, "${NOPE:-${A}-$B}", Ok("a-b c"));
    syntax!(default_with_quotes, "${NOPE:-'x y'}", Ok("x y"));
    syntax!(escaped_brace_in_default, r"${NOPE:-a\}b}", Ok("a}b"));
    syntax!(escaped_dollar, r"\$A", Ok("$A"));
    syntax!(escaped_backslash, r"a\\b", Ok(r"a\b"));
    syntax!(escape_other, r"a\b", Ok("ab"));
    syntax!(trailing_escape_dropped, "ab\\", Ok("ab"));
    syntax!(backtick_escape, '`', "`$A \\$A", Ok("$A \\a"));
    syntax!(single_quotes_literal, "'$A \\x'", Ok("$A \\x"));
    syntax!(double_quotes_expand, "\"$A ${B}\"", Ok("a b c"));
    syntax!(double_quote_escapes, r#""\"\$A\\\x""#, Ok(r#""$A\\x"#));
    syntax!(quotes_joined, r#"a'b'"c"d"#, Ok("abcd"));
    syntax!(required_set, "${A:?no}", Ok("a"));
    syntax!(required_unset, "${NOPE?}", Err(Error::Required { .. }));
    syntax!(
        required_empty,
        "${EMPTY:?must be set}",
        Err(Error::Required { .. })
    );
    syntax!(
        unterminated_single,
        "'abc",
        Err(Error::UnterminatedQuote { quote: '\'' })
    );
    syntax!(
        unterminated_double,
        "\"abc",
        Err(Error::UnterminatedQuote { quote: '"' })
    );
    syntax!(missing_brace, "${A", Err(Error::MissingBrace));
    syntax!(missing_brace_default, "${A:-x", Err(Error::MissingBrace));
    syntax!(empty_braces, "${}", Err(Error::BadSubstitution));
    syntax!(colon_first, "${:a}", Err(Error::BadSubstitution));
    syntax!(prefix_pattern, "${A#x}", Err(Error::Unsupported { .. }));
    syntax!(suffix_pattern, "${A%%x}", Err(Error::Unsupported { .. }));
    syntax!(replace_pattern, "${A/x/y}", Err(Error::Unsupported { .. }));
    syntax!(substring, "${A:1}", Err(Error::Unsupported { .. }));

    #[test]
    fn unsupported_message_names_the_feature() {
        let e = expand("${A#x}", '\\', &scope).expect_err("pattern ops are rejected");
        assert_eq!(
            e.to_string(),
            "the pattern substitution `${VAR#...}` is not supported by strata"
        );
    }

    #[test]
    fn heredoc_bodies_keep_quotes() {
        assert_eq!(
            expand_heredoc("echo \"$A\" '${B}' \\$HOME\n", &scope),
            Ok("echo \"a\" 'b c' $HOME\n".to_string())
        );
    }

    #[test]
    fn long_words_are_linear() {
        let word = "x${A}".repeat(2_000_000);
        let out = expand(&word, '\\', &scope).expect("expands");
        assert_eq!(out.len(), 4_000_000);
    }
}
