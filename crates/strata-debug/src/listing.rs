//! Rendering the source around a step for the monitor's `list` (buildg's `list`).
//!
//! The engine renders [`Failure::listing`](crate::Failure::listing) once, with [`listing`],
//! so the debugger needs no access to the plan: `--> file:line:col`, then the lines around
//! the span with their numbers, the span's lines marked with `>`.

use std::fmt::Write as _;

use strata_plan::{SourceMap, Span};

/// The lines of `span`'s file from `context` lines before the span to `context` lines after.
pub fn listing(sources: &SourceMap, span: Span, context: usize) -> String {
    let text = &sources.file(span.file).text;
    let start = sources.line_col(span.file, span.start).line;
    let end = sources.line_col(span.file, span.end.max(span.start)).line;
    let lines: Vec<&str> = text.lines().collect();
    let first = start.saturating_sub(context).max(1);
    let last = (end + context).min(lines.len().max(1));
    let width = last.to_string().len();
    let mut out = format!("--> {}\n", sources.location(span));
    for n in first..=last {
        let marker = if (start..=end).contains(&n) { '>' } else { ' ' };
        let line = lines.get(n - 1).copied().unwrap_or("");
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{marker} {n:>width$} | {line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_the_span_and_clips_at_the_file_edges() {
        let mut sources = SourceMap::default();
        let text = "stages:\n  build:\n    run:\n      - make\n      - make install\n";
        let file = sources.add("strata.yaml".into(), "strata.yaml".into(), text.into());
        let at = text.find("make install").expect("in text");
        let span = Span::new(file, at, at + "make install".len());
        assert_eq!(
            listing(&sources, span, 2),
            "--> strata.yaml:5:9\n  \
             3 |     run:\n  \
             4 |       - make\n\
             > 5 |       - make install\n"
        );
        let first = Span::new(file, 0, 6);
        assert_eq!(
            listing(&sources, first, 1),
            "--> strata.yaml:1:1\n> 1 | stages:\n  2 |   build:\n"
        );
    }
}
