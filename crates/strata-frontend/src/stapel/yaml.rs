//! A small YAML tree that keeps the byte span of every node and every mapping key.
//!
//! saphyr's own loaders keep a mapping as a hash map: a duplicate key is either an error without
//! the place of the first key or silently replaces it, and markers count characters. This module
//! listens to the parser's events itself and builds [`Node`]s whose mappings are plain lists of
//! `(key, value)` pairs in written order, with byte spans, so that later passes can point at the
//! exact key or value (and at both sides of a duplicate).

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr::Scalar;
use saphyr_parser::{Event, Parser, ScalarStyle, SpannedEventReceiver, Tag};
use strata_plan::{Diagnostic, FileId, Span};

/// At most this many nodes may be produced by alias expansion (guards against "billion laughs").
const ALIAS_BUDGET: usize = 100_000;

/// A YAML node with the byte span it was written at.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    pub span: Span,
}

/// What a node holds.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    /// A scalar: its text after unquoting and its resolved type.
    Scalar { text: String, ty: ScalarType },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in written order; duplicate keys are kept (later passes report them).
    Map(Vec<(Node, Node)>),
}

/// The core-schema type of a scalar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScalarType {
    Null,
    Bool,
    Number,
    String,
}

impl Node {
    /// How messages call the node's type: "a string", "a list", ...
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Scalar { ty, .. } => match ty {
                ScalarType::Null => "null",
                ScalarType::Bool => "a boolean",
                ScalarType::Number => "a number",
                ScalarType::String => "a string",
            },
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    /// The text of a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar {
                text,
                ty: ScalarType::String,
            } => Some(text),
            _ => None,
        }
    }

    /// The text of a string, number or boolean scalar, as written.
    pub fn as_scalar_text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar {
                ty: ScalarType::Null,
                ..
            } => None,
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Whether the node is a null scalar (`~`, `null` or nothing).
    pub fn is_null(&self) -> bool {
        matches!(
            self.kind,
            Kind::Scalar {
                ty: ScalarType::Null,
                ..
            }
        )
    }
}

/// One document of the stream.
#[derive(Debug)]
pub(crate) struct Document {
    /// The root node; `None` or a null scalar for an empty document.
    pub root: Option<Node>,
    /// Where the document starts (a point).
    pub start: Span,
}

/// Parses a (multi-document) YAML text into span-carrying trees.
pub(crate) fn parse(file: FileId, text: &str) -> Result<Vec<Document>, Box<Diagnostic>> {
    let offsets = char_offsets(text);
    let mut builder = Builder {
        file,
        text,
        offsets: &offsets,
        docs: Vec::new(),
        stack: Vec::new(),
        anchors: HashMap::new(),
        budget: ALIAS_BUDGET,
        doc_start: Span::new(file, 0, 0),
        error: None,
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        let at = builder.byte(e.marker().index());
        let mut d = Diagnostic::new(
            format!("invalid YAML: {}", e.info()),
            Some(Span::new(file, at, at)),
        );
        if text.contains("{{") {
            d = d.help("strata does not render Go templates (`{{ ... }}`) yet");
        }
        return Err(Box::new(d));
    }
    if let Some(e) = builder.error {
        return Err(e);
    }
    Ok(builder.docs)
}

/// Byte offset of every character index, plus one entry for the end of the text.
fn char_offsets(text: &str) -> Vec<usize> {
    let mut offsets: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    offsets.push(text.len());
    offsets
}

struct Frame {
    node: Node,
    anchor: usize,
    key: Option<Node>,
}

struct Builder<'a> {
    file: FileId,
    text: &'a str,
    offsets: &'a [usize],
    docs: Vec<Document>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    budget: usize,
    doc_start: Span,
    error: Option<Box<Diagnostic>>,
}

impl Builder<'_> {
    fn byte(&self, char_index: usize) -> usize {
        self.offsets
            .get(char_index)
            .or(self.offsets.last())
            .copied()
            .unwrap_or(0)
    }

    fn span(&self, span: saphyr_parser::Span) -> Span {
        Span::new(
            self.file,
            self.byte(span.start.index()),
            self.byte(span.end.index()),
        )
    }

    fn insert(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let Some(frame) = self.stack.last_mut() else {
            if let Some(doc) = self.docs.last_mut()
                && doc.root.is_none()
            {
                doc.root = Some(node);
            }
            return;
        };
        // A collection ends where its last child ends (block collections' end events sit at the
        // start of the next line, after any comments).
        frame.node.span.end = frame.node.span.end.max(node.span.end);
        match &mut frame.node.kind {
            Kind::Seq(items) => items.push(node),
            Kind::Map(pairs) => match frame.key.take() {
                None => frame.key = Some(node),
                Some(key) => pairs.push((key, node)),
            },
            Kind::Scalar { .. } => {}
        }
    }

    fn alias(&mut self, id: usize, span: Span) -> Option<Node> {
        let Some(node) = self.anchors.get(&id) else {
            self.error = Some(Box::new(Diagnostic::new(
                "invalid YAML: unknown anchor",
                Some(span),
            )));
            return None;
        };
        let size = count(node);
        if size > self.budget {
            self.error = Some(Box::new(Diagnostic::new(
                "invalid YAML: aliases expand to too many nodes",
                Some(span),
            )));
            return None;
        }
        self.budget -= size;
        Some(node.clone())
    }
}

fn count(node: &Node) -> usize {
    1 + match &node.kind {
        Kind::Scalar { .. } => 0,
        Kind::Seq(items) => items.iter().map(count).sum(),
        Kind::Map(pairs) => pairs.iter().map(|(k, v)| count(k) + count(v)).sum(),
    }
}

impl<'input> SpannedEventReceiver<'input> for Builder<'_> {
    fn on_event(&mut self, ev: Event<'input>, span: saphyr_parser::Span) {
        if self.error.is_some() {
            return;
        }
        let span = self.span(span);
        match ev {
            Event::Nothing | Event::StreamStart | Event::StreamEnd => {}
            Event::DocumentStart(_) => {
                self.doc_start = Span::new(self.file, span.start as usize, span.start as usize);
                self.anchors.clear();
                self.docs.push(Document {
                    root: None,
                    start: self.doc_start,
                });
            }
            Event::DocumentEnd => {}
            Event::Scalar(text, style, anchor, tag) => {
                let ty = scalar_type(&text, style, tag.as_deref());
                let span = if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) {
                    block_scalar_span(self.text, span)
                } else {
                    span
                };
                let node = Node {
                    kind: Kind::Scalar {
                        text: text.into_owned(),
                        ty,
                    },
                    span,
                };
                self.insert(node, anchor);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                let kind = if matches!(ev, Event::SequenceStart(..)) {
                    Kind::Seq(Vec::new())
                } else {
                    Kind::Map(Vec::new())
                };
                // Flow collections start at their bracket, block sequences at their first `-`.
                let mut start = Span::new(self.file, span.start as usize, span.end as usize);
                if matches!(ev, Event::SequenceStart(..)) {
                    let at = dash_before(self.text, start.start as usize);
                    start = Span::new(self.file, at, at.max(start.end as usize));
                }
                self.stack.push(Frame {
                    node: Node { kind, span: start },
                    anchor,
                    key: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(mut frame) = self.stack.pop() {
                    // A flow collection's end event covers its closing bracket.
                    if span.end > span.start {
                        frame.node.span.end = frame.node.span.end.max(span.end);
                    }
                    self.insert(frame.node, frame.anchor);
                }
            }
            Event::Alias(id) => {
                if let Some(mut node) = self.alias(id, span) {
                    node.span = span;
                    self.insert(node, 0);
                }
            }
        }
    }
}

/// The parser puts a block scalar (`|`, `>`) at its first content line and ends it after the
/// next line's indentation; make it start at the header (`- |`) and end at its last character.
fn block_scalar_span(text: &str, span: Span) -> Span {
    let (start, end) = (span.start as usize, span.end as usize);
    let (Some(before), Some(body)) = (text.get(..start), text.get(start..end)) else {
        return span;
    };
    let end = start + body.trim_end().len();
    let header_end = before.trim_end().len();
    let line_start = before[..header_end].rfind('\n').map_or(0, |i| i + 1);
    let line = &before[line_start..header_end];
    // The indicator is the first `|` or `>` followed by chomping/indentation digits only.
    let header = line.char_indices().find(|&(i, c)| {
        (c == '|' || c == '>')
            && line[i + 1..]
                .split(|c: char| c.is_whitespace() || c == '#')
                .next()
                .is_some_and(|rest| {
                    rest.chars()
                        .all(|c| c == '-' || c == '+' || c.is_ascii_digit())
                })
            && (i == 0 || line[..i].ends_with([' ', '\t']))
    });
    match header {
        Some((i, _)) => Span::new(span.file, line_start + i, end),
        None => Span::new(span.file, start, end),
    }
}

/// A block sequence's start event may sit at its first item's content; move it to the `-`.
fn dash_before(text: &str, at: usize) -> usize {
    if text.get(at..).is_some_and(|t| t.starts_with('-')) {
        return at;
    }
    let before = text.get(..at).unwrap_or("").trim_end_matches([' ', '\t']);
    if before.ends_with('-') {
        before.len() - 1
    } else {
        at
    }
}

fn scalar_type(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> ScalarType {
    if style != ScalarStyle::Plain {
        return ScalarType::String;
    }
    if let Some(tag) = tag
        && tag.is_yaml_core_schema()
    {
        match tag.suffix.as_str() {
            "str" => return ScalarType::String,
            "null" => return ScalarType::Null,
            "bool" => return ScalarType::Bool,
            "int" | "float" => return ScalarType::Number,
            _ => {}
        }
    }
    if text.is_empty() {
        return ScalarType::Null;
    }
    match Scalar::parse_from_cow(Cow::Borrowed(text)) {
        Scalar::Null => ScalarType::Null,
        Scalar::Boolean(_) => ScalarType::Bool,
        Scalar::Integer(_) | Scalar::FloatingPoint(_) => ScalarType::Number,
        Scalar::String(_) => ScalarType::String,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_one(text: &str) -> Node {
        let docs = parse(FileId(0), text).expect("valid YAML");
        docs.into_iter()
            .next()
            .and_then(|d| d.root)
            .expect("one document")
    }

    fn slice(text: &str, span: Span) -> &str {
        &text[span.start as usize..span.end as usize]
    }

    #[test]
    fn spans_are_byte_offsets() {
        let text = "image: \"é\"\nfrom: ü\n";
        let root = parse_one(text);
        let Kind::Map(pairs) = &root.kind else {
            panic!("a mapping")
        };
        assert_eq!(slice(text, pairs[0].1.span), "\"é\"");
        assert_eq!(slice(text, pairs[1].0.span), "from");
        assert_eq!(slice(text, pairs[1].1.span), "ü");
    }

    #[test]
    fn scalar_types_follow_the_core_schema() {
        let root = parse_one("[a, 1, 1.5, true, ~, '2', !!str 3, null]");
        let Kind::Seq(items) = &root.kind else {
            panic!("a list")
        };
        let types: Vec<_> = items.iter().map(Node::type_name).collect();
        assert_eq!(
            types,
            [
                "a string",
                "a number",
                "a number",
                "a boolean",
                "null",
                "a string",
                "a string",
                "null"
            ]
        );
    }

    #[test]
    fn duplicate_keys_are_kept() {
        let root = parse_one("a: 1\na: 2\n");
        let Kind::Map(pairs) = &root.kind else {
            panic!("a mapping")
        };
        assert_eq!(pairs.len(), 2);
    }

    #[test]
    fn aliases_are_expanded() {
        let root = parse_one("a: &x [1, 2]\nb: *x\n");
        let Kind::Map(pairs) = &root.kind else {
            panic!("a mapping")
        };
        assert!(matches!(&pairs[1].1.kind, Kind::Seq(items) if items.len() == 2));
    }
}
