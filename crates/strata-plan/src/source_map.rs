//! Spans into the user's files and the one rendering of diagnostics with a source snippet
//! (`annotate-snippets`, as cargo renders its own).

use std::path::PathBuf;

use annotate_snippets::{Annotation, AnnotationKind, Group, Level, Renderer, Snippet};
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

    /// `--> file:line:col`, the source line(s) and a caret line under the span, labelled
    /// (a place to show without a message, as the debugger does).
    pub fn snippet(&self, span: Span, label: &str) -> String {
        let file = self.file(span.file);
        let report = [Group::with_level(Level::NOTE).element(annotated(
            &file.text,
            &file.name,
            span,
            AnnotationKind::Primary,
            label,
        ))];
        format!("{}\n", Renderer::plain().render(&report))
    }
}

/// The lines of `text` around `span`, the span underlined and labelled (`annotate-snippets`,
/// cargo's renderer: tabs and wide characters line up, long lines are cut).
fn annotated<'a>(
    text: &'a str,
    origin: &'a str,
    span: Span,
    kind: AnnotationKind,
    label: &'a str,
) -> Snippet<'a, Annotation<'a>> {
    let start = floor_char_boundary(text, span.start as usize);
    let mut end = floor_char_boundary(text, span.end as usize).max(start);
    if end == start {
        // A point: mark the character there (or nothing at the end of the file).
        end = text[start..]
            .chars()
            .next()
            .filter(|c| *c != '\n')
            .map_or(start, |c| start + c.len_utf8());
    }
    Snippet::source(text)
        .line_start(1)
        .path(origin)
        .fold(true)
        .annotation(kind.span(start..end).label(label))
}

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

    /// The full text, as every part of strata shows it: `error: message`, the snippet with
    /// its label, help, then each note at its place. The one renderer of diagnostics.
    pub fn render(&self, sources: &SourceMap) -> String {
        self.render_as(Level::ERROR, sources)
    }

    /// [`Diagnostic::render`] of a warning (`warning: message`, ...).
    pub fn render_warning(&self, sources: &SourceMap) -> String {
        self.render_as(Level::WARNING, sources)
    }

    fn render_as(&self, level: Level<'_>, sources: &SourceMap) -> String {
        let mut main = Group::with_title(level.primary_title(self.message.as_str()));
        if let Some(span) = self.span {
            let file = sources.file(span.file);
            main = main.element(annotated(
                &file.text,
                &file.name,
                span,
                AnnotationKind::Primary,
                &self.label,
            ));
        }
        if let Some(help) = &self.help {
            main = main.element(Level::HELP.message(help.as_str()));
        }
        let mut report = vec![main];
        for (span, text) in &self.notes {
            let file = sources.file(span.file);
            report.push(
                Group::with_title(Level::NOTE.secondary_title(text.as_str())).element(annotated(
                    &file.text,
                    &file.name,
                    *span,
                    AnnotationKind::Context,
                    "",
                )),
            );
        }
        Renderer::plain().render(&report).to_string()
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
    fn a_diagnostic_points_at_its_span_with_label_and_help() {
        let (m, f) = map("a: 1\nshell:\n  instal: x\n");
        let off = "a: 1\nshell:\n  ".len();
        let d = Diagnostic::new("unknown key `instal`", Some(Span::new(f, off, off + 6)))
            .label("not a shell key")
            .help("did you mean `install`?");
        assert_eq!(
            d.render(&m),
            "error: unknown key `instal`\n --> strata.yaml:3:3\n  |\n3 |   instal: x\n  |   ^^^^^^ not a shell key\n  |\n  = help: did you mean `install`?"
        );
    }

    #[test]
    fn tabs_and_wide_characters_keep_the_carets_under_the_span() {
        let text = "\tname: 日本語 x\n";
        let (m, f) = map(text);
        let off = text.find('x').expect("x is in the text");
        let d = Diagnostic::new("bad", Some(Span::new(f, off, off + 1)));
        let out = d.render(&m);
        let lines: Vec<&str> = out.lines().collect();
        let source = lines
            .iter()
            .find(|l| l.starts_with("1 |"))
            .expect("source line");
        let carets = lines.iter().find(|l| l.contains('^')).expect("caret line");
        // Tabs become four columns and each wide character two: the caret is under `x`.
        let x = source.find('x').expect("x shown");
        assert_eq!(
            unicode_width(&source[..x]),
            carets.find('^').expect("caret")
        );
        assert!(out.contains("--> strata.yaml:1:"), "{out}");
    }

    /// Display columns as a terminal shows them (CJK two wide, tabs as spaces already).
    fn unicode_width(s: &str) -> usize {
        s.chars()
            .map(|c| {
                if ('\u{3000}'..='\u{9fff}').contains(&c) {
                    2
                } else {
                    1
                }
            })
            .sum()
    }

    #[test]
    fn a_point_span_marks_one_character() {
        let (m, f) = map("image: a\nfrom: [\n");
        let d = Diagnostic::new("unclosed", Some(Span::new(f, 15, 15)));
        assert!(d.render(&m).contains("2 | from: [\n  |       ^"));
    }

    #[test]
    fn a_snippet_alone_shows_the_place() {
        let (m, f) = map("a: 1\nb: 2\n");
        let out = m.snippet(Span::new(f, 5, 6), "here");
        assert!(out.contains("--> strata.yaml:2:1"), "{out}");
        assert!(out.contains("2 | b: 2\n  | ^ here"), "{out}");
        assert!(!out.contains("error"), "{out}");
    }
}
