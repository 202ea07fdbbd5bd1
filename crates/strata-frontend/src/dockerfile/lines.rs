//! Physical lines to logical instructions, as BuildKit's `parser.Parse` does it: the byte-order
//! mark, parser directives, comment lines, line continuations (also across comment lines and
//! empty lines) and heredoc bodies.
//!
//! A logical line is a [`Logical`]: the joined text plus a map from its offsets back to the
//! source, so every word keeps an exact span even when it continues on the next line. All
//! work is linear in the input (a 10 MB line is one segment).

use strata_plan::{Diagnostic, FileId, Span};

use super::instructions::{Directives, Spanned};

/// One instruction's text with continuation lines joined.
#[derive(Debug)]
pub(crate) struct Logical {
    /// The joined text: leading whitespace of the first line removed, escape characters that
    /// continue lines removed, comment lines and empty lines inside the continuation left out.
    pub text: String,
    /// `(offset in text, offset in source)` where each joined piece starts, ascending.
    segments: Vec<(usize, usize)>,
    file: FileId,
}

impl Logical {
    fn new(file: FileId) -> Self {
        Logical {
            text: String::new(),
            segments: Vec::new(),
            file,
        }
    }

    fn push(&mut self, piece: &str, source_offset: usize) {
        if piece.is_empty() {
            return;
        }
        self.segments.push((self.text.len(), source_offset));
        self.text.push_str(piece);
    }

    /// The source offset of a text offset.
    fn source(&self, i: usize) -> usize {
        let k = self.segments.partition_point(|&(start, _)| start <= i);
        match k.checked_sub(1).and_then(|k| self.segments.get(k)) {
            Some(&(start, src)) => src + (i - start),
            None => self.segments.first().map_or(0, |&(_, src)| src),
        }
    }

    /// The source span of `start..end` in the text (an empty range is a point).
    pub fn span(&self, start: usize, end: usize) -> Span {
        let from = self.source(start);
        let to = if end > start {
            self.source(end - 1) + 1
        } else {
            from
        };
        Span::new(self.file, from, to)
    }
}

/// Reads logical lines and heredoc bodies from the text after the directives.
pub(crate) struct Reader<'a> {
    text: &'a str,
    pos: usize,
    escape: char,
    file: FileId,
    /// Empty continuation lines found so far.
    pub warnings: Vec<Diagnostic>,
}

/// The next physical line from `pos`: (start, end without the line ending, next line start).
fn physical(text: &str, pos: usize) -> (usize, usize, usize) {
    let rest = &text[pos..];
    let (line, next) = match rest.find('\n') {
        Some(i) => (&rest[..i], pos + i + 1),
        None => (rest, text.len()),
    };
    let trimmed = line.trim_end_matches(['\r', '\n']);
    (pos, pos + trimmed.len(), next)
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// If `line` ends with the escape character (then optional blanks) that is not itself
/// escaped, the length of the line without them.
fn continuation(line: &str, escape: char) -> Option<usize> {
    let body = line.trim_end_matches([' ', '\t']);
    let before = body.strip_suffix(escape)?;
    if before.ends_with(escape) {
        None
    } else {
        Some(before.len())
    }
}

impl<'a> Reader<'a> {
    pub fn new(file: FileId, text: &'a str, pos: usize, escape: char) -> Self {
        Reader {
            text,
            pos,
            escape,
            file,
            warnings: Vec::new(),
        }
    }

    /// The next instruction's logical line, or `None` at the end.
    pub fn next_line(&mut self) -> Option<Logical> {
        while self.pos < self.text.len() {
            let (start, end, next) = physical(self.text, self.pos);
            self.pos = next;
            let line = &self.text[start..end];
            let lead = line.len() - line.trim_start().len();
            let content = &line[lead..];
            if content.starts_with('#') {
                continue;
            }
            let mut logical = Logical::new(self.file);
            let mut open = match continuation(content, self.escape) {
                Some(len) => {
                    logical.push(&content[..len], start + lead);
                    true
                }
                None => {
                    if content.trim().is_empty() {
                        continue;
                    }
                    logical.push(content, start + lead);
                    false
                }
            };
            let mut empty_continuation = None;
            while open && self.pos < self.text.len() {
                let (start, end, next) = physical(self.text, self.pos);
                self.pos = next;
                let line = &self.text[start..end];
                if is_comment(line) {
                    continue;
                }
                if line.trim().is_empty() {
                    empty_continuation.get_or_insert(Span::new(self.file, start, end));
                    continue;
                }
                match continuation(line, self.escape) {
                    Some(len) => logical.push(&line[..len], start),
                    None => {
                        logical.push(line, start);
                        open = false;
                    }
                }
            }
            if let Some(span) = empty_continuation {
                self.warnings.push(
                    Diagnostic::new("empty continuation line", Some(span))
                        .label("this blank line is inside a continued instruction")
                        .help("remove the blank line; Docker warns that this will become an error"),
                );
            }
            if logical.text.trim().is_empty() {
                continue;
            }
            return Some(logical);
        }
        None
    }

    /// Reads a heredoc body up to a line equal to `name` (after stripping leading tabs if
    /// `chomp`). Returns the raw body and the span of body plus terminator, or `None` at the
    /// end of the file.
    pub fn heredoc(&mut self, name: &str, chomp: bool) -> Option<(String, Span)> {
        let begin = self.pos;
        let mut body = String::new();
        while self.pos < self.text.len() {
            let (start, end, next) = physical(self.text, self.pos);
            self.pos = next;
            let line = &self.text[start..end];
            let candidate = if chomp {
                line.trim_start_matches('\t')
            } else {
                line
            };
            if candidate == name {
                return Some((body, Span::new(self.file, begin, end)));
            }
            body.push_str(&self.text[start..next]);
        }
        None
    }
}

/// Reads the parser directives at the top of `text` (after a byte-order mark). Returns them
/// and the offset where instructions start.
///
/// Like BuildKit, directives are `# name=value` lines before anything else; the first line
/// that is not a known directive (an instruction, an empty line, any other comment) ends
/// them, and a later `# escape=` is just a comment.
pub(crate) fn directives(file: FileId, text: &str) -> Result<(Directives, usize), Box<Diagnostic>> {
    let mut d = Directives::default();
    let mut pos = if text.starts_with('\u{feff}') { 3 } else { 0 };
    while pos < text.len() {
        let (start, end, next) = physical(text, pos);
        let line = &text[start..end];
        let lead = line.len() - line.trim_start().len();
        let Some((name, name_at, value, value_at)) = directive(&line[lead..]) else {
            break;
        };
        let name_span = Span::new(
            file,
            start + lead + name_at,
            start + lead + name_at + name.len(),
        );
        let value_span = Span::new(
            file,
            start + lead + value_at,
            start + lead + value_at + value.len(),
        );
        let lower = name.to_ascii_lowercase();
        let seen = match lower.as_str() {
            "syntax" => d.syntax.is_some(),
            "escape" => d.escape_span.is_some(),
            "check" => d.check.is_some(),
            _ => break,
        };
        if seen {
            return Err(Box::new(
                Diagnostic::new(
                    format!("only one `{lower}` parser directive can be used"),
                    Some(name_span),
                )
                .label("repeated here")
                .help("remove one of the directives"),
            ));
        }
        match lower.as_str() {
            "syntax" => {
                d.syntax = Some(Spanned {
                    value: value.to_string(),
                    span: value_span,
                })
            }
            "check" => {
                d.check = Some(Spanned {
                    value: value.to_string(),
                    span: value_span,
                })
            }
            _ => {
                d.escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(Box::new(
                            Diagnostic::new(
                                format!("invalid escape token `{value}`"),
                                Some(value_span),
                            )
                            .label("must be `\\` or `` ` ``")
                            .help("write `# escape=\\` (the default) or `# escape=``"),
                        ));
                    }
                };
                d.escape_span = Some(value_span);
            }
        }
        pos = next;
    }
    Ok((d, pos))
}

/// Matches BuildKit's `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`: name, its offset, value,
/// its offset.
fn directive(line: &str) -> Option<(&str, usize, &str, usize)> {
    let rest = line.strip_prefix('#')?;
    let name_at = 1 + (rest.len() - rest.trim_start().len());
    let rest = &line[name_at..];
    let name_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let after = rest[name_len..].trim_start();
    let after = after.strip_prefix('=')?;
    let value = after.trim();
    if value.is_empty() {
        return None;
    }
    let value_at = line.len() - after.trim_start().len();
    Some((&rest[..name_len], name_at, value, value_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        let (d, pos) = directives(FileId(0), text).expect("directives parse");
        let mut r = Reader::new(FileId(0), text, pos, d.escape);
        std::iter::from_fn(|| r.next_line().map(|l| l.text)).collect()
    }

    #[test]
    fn continuation_rules() {
        assert_eq!(continuation("a \\", '\\'), Some(2));
        assert_eq!(continuation("a \\  \t", '\\'), Some(2));
        assert_eq!(continuation("a \\\\", '\\'), None);
        assert_eq!(continuation("\\", '\\'), Some(0));
        assert_eq!(continuation("a `", '`'), Some(2));
        assert_eq!(continuation("a \\", '`'), None);
    }

    #[test]
    fn joins_continuations_skipping_comments_and_blank_lines() {
        let text = "RUN a \\\n  # note\n\n    && b\nRUN c";
        assert_eq!(lines(text), ["RUN a     && b", "RUN c"]);
    }

    #[test]
    fn spans_map_back_through_continuations() {
        let text = "RUN ab\\\ncd";
        let (_, pos) = directives(FileId(0), text).expect("directives parse");
        let mut r = Reader::new(FileId(0), text, pos, '\\');
        let l = r.next_line().expect("a line");
        assert_eq!(l.text, "RUN abcd");
        let s = l.span(4, 8);
        assert_eq!((s.start, s.end), (4, 10));
        let s = l.span(6, 7);
        assert_eq!((s.start, s.end), (8, 9));
    }

    #[test]
    fn directive_syntax() {
        assert_eq!(directive("# escape=`"), Some(("escape", 2, "`", 9)));
        assert_eq!(directive("#syntax = x "), Some(("syntax", 1, "x", 10)));
        assert_eq!(directive("# not a directive"), None);
        assert_eq!(directive("# x="), None);
    }
}
