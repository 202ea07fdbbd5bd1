//! Error reports on stderr. The libraries hand over typed errors with their causes; only here
//! do they become text: the message and each cause once, the snippet of the user's file a
//! span points into (rendered with `annotate-snippets`, as cargo does), a failed command's
//! last output lines.

use annotate_snippets::{Annotation, AnnotationKind, Group, Level, Renderer, Snippet};
use strata::ops::build::Failed;
use strata_plan::{Diagnostic, SourceMap, Span};

/// Prints an error and returns the exit code to end with.
pub fn report(err: &anyhow::Error) -> i32 {
    let (text, code) = render(err);
    eprint!("{text}");
    code
}

/// Prints an error as one JSON event on stderr (`--progress json`: nothing but JSON there),
/// `{"event":"error","message":…,"report":…,"exit_code":…}`, `report` being the text
/// [`report`] would print; returns the exit code.
pub fn report_json(err: &anyhow::Error) -> i32 {
    let (text, code) = render(err);
    let event = serde_json::json!({
        "event": "error",
        "message": strata::error_line(err),
        "report": text,
        "exit_code": code,
    });
    eprintln!("{event}");
    code
}

/// The report of an error and its exit code.
fn render(err: &anyhow::Error) -> (String, i32) {
    if let Some(failed) = err.downcast_ref::<Failed>() {
        return (failure(failed), failed.exit_code());
    }
    if let Some(strata_frontend::Error::Config {
        diagnostic,
        sources,
    }) = err.downcast_ref::<strata_frontend::Error>()
    {
        return (format!("{}\n", diagnostic_text(diagnostic, sources)), 1);
    }
    // A program `strata run` could not execute ends as docker's: 127 not found, 126 not
    // executable.
    let code = match err.downcast_ref::<strata_sandbox::Error>() {
        Some(strata_sandbox::Error::Exec { code, .. }) => *code,
        _ => 1,
    };
    (format!("error: {}\n", strata::error_line(err)), code)
}

/// A failed build: what failed with its causes, where, and what the command printed last.
fn failure(failed: &Failed) -> String {
    let title = strata::error_chain(&failed.error);
    let mut out = match failed.error.span() {
        Some(span) => {
            let file = failed.sources.file(span.file);
            let report = [Level::ERROR.primary_title(title.as_str()).element(snippet(
                &file.text,
                &file.name,
                span,
                AnnotationKind::Primary,
                "",
            ))];
            format!("{}\n", Renderer::plain().render(&report))
        }
        None => format!("error: {title}\n"),
    };
    let tail = failed.error.output_tail();
    if !tail.is_empty() {
        out.push_str("last output lines:\n");
        for line in tail {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A diagnostic about the user's input: message, snippet with label, notes at other places,
/// help.
pub fn diagnostic_text(d: &Diagnostic, sources: &SourceMap) -> String {
    let mut main = Group::with_title(Level::ERROR.primary_title(d.message.as_str()));
    if let Some(span) = d.span {
        let file = sources.file(span.file);
        main = main.element(snippet(
            &file.text,
            &file.name,
            span,
            AnnotationKind::Primary,
            &d.label,
        ));
    }
    if let Some(help) = &d.help {
        main = main.element(Level::HELP.message(help.as_str()));
    }
    let mut report = vec![main];
    for (span, text) in &d.notes {
        let file = sources.file(span.file);
        report.push(
            Group::with_title(Level::NOTE.secondary_title(text.as_str())).element(snippet(
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

/// The lines of `text` around `span`, the span underlined and labelled.
fn snippet<'a>(
    text: &'a str,
    origin: &'a str,
    span: Span,
    kind: AnnotationKind,
    label: &'a str,
) -> Snippet<'a, Annotation<'a>> {
    let start = char_floor(text, span.start as usize);
    let mut end = char_floor(text, span.end as usize).max(start);
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

/// The largest char boundary of `s` at or below `i`.
fn char_floor(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str) -> (SourceMap, strata_plan::FileId) {
        let mut m = SourceMap::default();
        let id = m.add("/x/strata.yaml".into(), "strata.yaml".into(), text.into());
        (m, id)
    }

    #[test]
    fn a_diagnostic_points_at_its_span_with_label_and_help() {
        let (m, f) = map("a: 1\nshell:\n  instal: x\n");
        let off = "a: 1\nshell:\n  ".len();
        let d = Diagnostic::new("unknown key `instal`", Some(Span::new(f, off, off + 6)))
            .label("not a shell key")
            .help("did you mean `install`?");
        assert_eq!(
            diagnostic_text(&d, &m),
            "error: unknown key `instal`\n --> strata.yaml:3:3\n  |\n3 |   instal: x\n  |   ^^^^^^ not a shell key\n  |\n  = help: did you mean `install`?"
        );
    }

    #[test]
    fn tabs_and_wide_characters_keep_the_carets_under_the_span() {
        let text = "\tname: 日本語 x\n";
        let (m, f) = map(text);
        let off = text.find('x').expect("x is in the text");
        let d = Diagnostic::new("bad", Some(Span::new(f, off, off + 1)));
        let out = diagnostic_text(&d, &m);
        let lines: Vec<&str> = out.lines().collect();
        let source = lines
            .iter()
            .find(|l| l.starts_with("1 |"))
            .expect("source line");
        let carets = lines.iter().find(|l| l.contains('^')).expect("caret line");
        // Tabs become four columns and each wide character two: the caret is under `x`.
        let width = |s: &str| unicode_width(s);
        let x = source.find('x').expect("x shown");
        assert_eq!(width(&source[..x]), carets.find('^').expect("caret"));
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
        assert!(diagnostic_text(&d, &m).contains("2 | from: [\n  |       ^"));
    }
}
