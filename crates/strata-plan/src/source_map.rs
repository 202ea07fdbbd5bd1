//! Spans into the user's files and the rendering of diagnostics with a source snippet.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Index of a file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId(pub u32);

/// A byte range in one source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Span {
    /// The file.
    pub file: FileId,
    /// Byte offset of the first character.
    pub start: u32,
    /// Byte offset one past the last character (equal to `start` for a point).
    pub end: u32,
}

impl Span {
    /// A span covering `start..end` of `file`.
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span {
            file,
            start: start as u32,
            end: end.max(start) as u32,
        }
    }
}

/// One user file the plan was made from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SourceFile {
    /// Where the file is.
    pub path: PathBuf,
    /// How messages name it (relative to the directory the user works in when possible).
    pub name: String,
    /// Its text, as it was parsed.
    pub text: String,
}

/// A line and column, both counted from 1 (columns in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineCol {
    /// Line number, from 1.
    pub line: usize,
    /// Column number, from 1, in characters.
    pub column: usize,
}

/// Every file the plan was made from, so spans can be shown as `file:line:col` with a snippet.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    /// Adds a file and returns its id.
    pub fn add(&mut self, path: PathBuf, name: String, text: String) -> FileId {
        self.files.push(SourceFile { path, name, text });
        FileId((self.files.len() - 1) as u32)
    }

    /// The file behind an id.
    ///
    /// # Panics
    /// When the id was not made by this map.
    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    /// Line and column of a byte offset.
    pub fn line_col(&self, file: FileId, offset: u32) -> LineCol {
        let text = &self.file(file).text;
        let offset = (offset as usize).min(text.len());
        let before = &text[..floor_char_boundary(text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        LineCol {
            line,
            column: before[line_start..].chars().count() + 1,
        }
    }

    /// `name:line:col` of a span's start.
    pub fn location(&self, span: Span) -> String {
        let lc = self.line_col(span.file, span.start);
        format!("{}:{}:{}", self.file(span.file).name, lc.line, lc.column)
    }

    /// The text a span covers.
    pub fn text(&self, span: Span) -> &str {
        let text = &self.file(span.file).text;
        let start = floor_char_boundary(text, span.start as usize);
        let end = floor_char_boundary(text, span.end as usize).max(start);
        &text[start..end]
    }

    /// Renders `--> file:line:col`, the source line(s) and a caret line under the span.
    pub fn snippet(&self, span: Span, label: &str) -> String {
        let file = self.file(span.file);
        let start = self.line_col(span.file, span.start);
        let end = self.line_col(span.file, span.end.max(span.start));
        let lines: Vec<&str> = file.text.lines().collect();
        let width = end.line.to_string().len();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:width$}--> {}:{}:{}",
            "", file.name, start.line, start.column
        );
        let _ = writeln!(out, "{:width$} |", "");
        let last = end.line.min(start.line + 4).min(lines.len().max(1));
        for n in start.line..=last {
            let full = lines.get(n - 1).copied().unwrap_or("");
            // A generated or minified line can be megabytes long: show its start.
            let shown: String;
            let text = if full.chars().count() > MAX_SHOWN {
                shown = full.chars().take(MAX_SHOWN).chain(['…']).collect();
                shown.as_str()
            } else {
                full
            };
            let _ = writeln!(out, "{n:>width$} | {text}");
            let (from, to) = if start.line == end.line {
                (start.column, end.column.max(start.column + 1))
            } else if n == start.line {
                (start.column, text.chars().count() + 1)
            } else {
                let indent = text.chars().take_while(|c| c.is_whitespace()).count();
                (
                    indent + 1,
                    if n == end.line {
                        end.column
                    } else {
                        text.chars().count() + 1
                    },
                )
            };
            let (from, to) = (from.min(MAX_SHOWN + 1), to.min(MAX_SHOWN + 2));
            let carets = "^".repeat(to.saturating_sub(from).max(1));
            let tail = if n == last && !label.is_empty() {
                format!(" {label}")
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "{:width$} | {}{carets}{tail}",
                "",
                " ".repeat(from - 1)
            );
        }
        out
    }
}

/// Characters of a source line a snippet shows.
const MAX_SHOWN: usize = 240;

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// An error or note about the user's input, with the place it points at.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Diagnostic {
    /// What is wrong, lower case, no trailing period.
    pub message: String,
    /// Where it is.
    pub span: Option<Span>,
    /// Label under the snippet.
    pub label: String,
    /// Further places that matter (for example the other side of a conflict).
    pub notes: Vec<(Span, String)>,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at `span`.
    pub fn new(message: impl Into<String>, span: Option<Span>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            span,
            label: String::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    /// Adds a label under the caret line.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// Adds a hint on how to fix it.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds another place that matters.
    pub fn note(mut self, span: Span, text: impl Into<String>) -> Self {
        self.notes.push((span, text.into()));
        self
    }

    /// The full text: message, snippet, notes and help.
    pub fn render(&self, sources: &SourceMap) -> String {
        let mut out = format!("{}\n", self.message);
        if let Some(span) = self.span {
            out.push_str(&sources.snippet(span, &self.label));
        }
        for (span, text) in &self.notes {
            let _ = writeln!(out, "note: {text}");
            out.push_str(&sources.snippet(*span, ""));
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "help: {help}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str) -> (SourceMap, FileId) {
        let mut m = SourceMap::default();
        let id = m.add("/x/strata.yaml".into(), "strata.yaml".into(), text.into());
        (m, id)
    }

    #[test]
    fn line_and_column_count_characters() {
        let (m, f) = map("a: 1\nshell:\n  instal: x\n");
        let off = "a: 1\nshell:\n  ".len();
        assert_eq!(m.line_col(f, off as u32), LineCol { line: 3, column: 3 });
        assert_eq!(m.location(Span::new(f, off, off + 6)), "strata.yaml:3:3");
    }

    #[test]
    fn snippet_points_at_the_span() {
        let (m, f) = map("a: 1\nshell:\n  instal: x\n");
        let off = "a: 1\nshell:\n  ".len();
        let d = Diagnostic::new("unknown key `instal`", Some(Span::new(f, off, off + 6)))
            .label("not a shell key")
            .help("did you mean `install`?");
        assert_eq!(
            d.render(&m),
            "unknown key `instal`\n --> strata.yaml:3:3\n  |\n3 |   instal: x\n  |   ^^^^^^ not a shell key\nhelp: did you mean `install`?\n"
        );
    }
}
