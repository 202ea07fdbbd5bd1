//! The parser: tokens to trees, following Go's `text/template/parse/parse.go`.
//!
//! As in Go, unknown functions and undefined variables are parse errors, `{{define}}` is only
//! allowed at the top level, `{{break}}`/`{{continue}}` only inside `{{range}}`, and
//! `{{else if}}`/`{{else with}}` are sugar for a nested control.

use super::lex::{self, Kind, Token};
use super::value::Value;

/// A parse error: byte position in the source and message.
#[derive(Debug)]
pub(super) struct ParseError {
    pub pos: usize,
    pub message: String,
}

/// One named template: its source (index into the render's sources) and body.
#[derive(Debug)]
pub(super) struct Tree {
    pub src: usize,
    pub root: Vec<Node>,
}

/// A node of a template body; positions are byte offsets in the tree's source.
#[derive(Debug)]
pub(super) enum Node {
    /// Text output as is: `start..end` of the source.
    Text { start: usize, end: usize },
    /// `{{ pipeline }}`.
    Action { pos: usize, pipe: Pipe },
    /// `{{if}}`, `{{with}}` or `{{range}}`.
    Control {
        kind: ControlKind,
        pos: usize,
        pipe: Pipe,
        list: Vec<Node>,
        otherwise: Option<Vec<Node>>,
    },
    /// `{{template "name" pipeline}}` (also what `{{block}}` leaves in place).
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    /// `{{break}}`.
    Break,
    /// `{{continue}}`.
    Continue,
}

/// The three control structures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ControlKind {
    If,
    With,
    Range,
}

/// `$a, $b := cmd | cmd …`.
#[derive(Debug)]
pub(super) struct Pipe {
    pub pos: usize,
    pub decl: Vec<String>,
    pub assign: bool,
    pub cmds: Vec<Cmd>,
}

/// One command of a pipeline: a function or field and its arguments.
#[derive(Debug)]
pub(super) struct Cmd {
    pub pos: usize,
    pub args: Vec<Arg>,
}

/// An operand.
#[derive(Debug)]
pub(super) enum Arg {
    /// `.A.B`.
    Field { pos: usize, names: Vec<String> },
    /// `$x.A.B` (`names` empty for a bare variable).
    Var {
        pos: usize,
        name: String,
        names: Vec<String>,
    },
    /// `(pipeline).A.B`.
    Chain {
        pos: usize,
        node: Box<Arg>,
        names: Vec<String>,
    },
    /// A function name.
    Func { pos: usize, name: String },
    /// A parenthesized pipeline.
    Pipe(Box<Pipe>),
    /// `.`.
    Dot(usize),
    /// `nil`.
    Nil(usize),
    /// A bool, number or string constant.
    Lit { pos: usize, value: Value },
}

impl Arg {
    pub(super) fn pos(&self) -> usize {
        match self {
            Arg::Field { pos, .. }
            | Arg::Var { pos, .. }
            | Arg::Chain { pos, .. }
            | Arg::Func { pos, .. }
            | Arg::Dot(pos)
            | Arg::Nil(pos)
            | Arg::Lit { pos, .. } => *pos,
            Arg::Pipe(pipe) => pipe.pos,
        }
    }
}

/// The result of parsing one source: its own body and the templates it defines (in order).
/// How deeply bodies (`if`, `range`, `with`, `else if`, `define`, `block`) and parentheses
/// may nest; real templates stay far below.
const MAX_NESTING: usize = 100;

pub(super) struct Parsed {
    pub body: Vec<Node>,
    pub defines: Vec<(String, Vec<Node>)>,
}

/// Parses `src`; `is_func` says which function names exist.
pub(super) fn parse(src: &str, is_func: &dyn Fn(&str) -> bool) -> Result<Parsed, ParseError> {
    let (tokens, lex_error) = lex::lex(src);
    let mut p = Parser {
        src,
        tokens,
        lex_error,
        at: 0,
        vars: vec!["$".into()],
        range_depth: 0,
        nesting: 0,
        is_func,
        defines: Vec::new(),
    };
    let mut body = Vec::new();
    loop {
        let t = p.peek();
        match t.kind {
            Kind::Eof => break,
            Kind::Open if p.peek_keyword_after_open() == Some("define") => {
                p.next();
                let keyword = p.next_non_space();
                p.definition(keyword.start)?;
            }
            _ => match p.text_or_action()? {
                Item::Node(n) => body.push(n),
                Item::End(pos) | Item::Else(pos) => {
                    return Err(p.error_at(pos, format!("unexpected {}", p.keyword_text(pos))));
                }
            },
        }
    }
    Ok(Parsed {
        body,
        defines: p.defines,
    })
}

enum Item {
    Node(Node),
    End(usize),
    Else(usize),
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    lex_error: Option<lex::LexError>,
    at: usize,
    vars: Vec<String>,
    range_depth: usize,
    /// Open bodies and parentheses around the current token (each is recursion here).
    nesting: usize,
    is_func: &'a dyn Fn(&str) -> bool,
    defines: Vec<(String, Vec<Node>)>,
}

impl Parser<'_> {
    fn peek(&self) -> Token {
        self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    /// The next token; past the end it keeps giving the last one (`Eof` or `Error`).
    fn next(&mut self) -> Token {
        let t = self.peek();
        // Always advance, also past the last token, so that `backup` undoes exactly one
        // `next`: with a position stuck at the last token, `term`'s `backup` after reading it
        // stepped back onto the token before it, and `command` read it again forever
        // (`{{ 1` followed by whitespace at the end of the input).
        self.at += 1;
        t
    }

    fn backup(&mut self) {
        self.at -= 1;
    }

    fn next_non_space(&mut self) -> Token {
        loop {
            let t = self.next();
            if t.kind != Kind::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> Token {
        let save = self.at;
        let t = self.next_non_space();
        self.at = save;
        t
    }

    fn text(&self, t: Token) -> &str {
        &self.src[t.start..t.end]
    }

    fn peek_keyword_after_open(&self) -> Option<&str> {
        let mut i = self.at + 1;
        while self.tokens.get(i).is_some_and(|t| t.kind == Kind::Space) {
            i += 1;
        }
        let t = self.tokens.get(i)?;
        (t.kind == Kind::Keyword).then(|| &self.src[t.start..t.end])
    }

    fn keyword_text(&self, pos: usize) -> String {
        let word: String = self.src[pos..]
            .chars()
            .take_while(|c| c.is_alphanumeric())
            .collect();
        format!("{{{{{word}}}}}")
    }

    fn error_at(&self, pos: usize, message: String) -> ParseError {
        ParseError { pos, message }
    }

    fn unexpected(&self, t: Token, context: &str) -> ParseError {
        if let (Kind::Error, Some(e)) = (t.kind, &self.lex_error) {
            return self.error_at(e.pos, e.message.clone());
        }
        let what = match t.kind {
            Kind::Eof => "EOF".to_string(),
            Kind::Close => "\"}}\"".to_string(),
            Kind::Keyword => format!("<{}>", self.text(t)),
            _ => format!("{:?}", self.text(t)),
        };
        self.error_at(t.start, format!("unexpected {what} in {context}"))
    }

    fn expect_close(&mut self, context: &str) -> Result<(), ParseError> {
        let t = self.next_non_space();
        if t.kind != Kind::Close {
            return Err(self.unexpected(t, context));
        }
        Ok(())
    }

    /// `{{define "name"}} … {{end}}`, after the `define` keyword.
    fn definition(&mut self, pos: usize) -> Result<(), ParseError> {
        let t = self.next_non_space();
        let name = self.string_literal(t, "define clause")?;
        self.expect_close("define clause")?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let (list, end) = self.body("define", pos)?;
        self.vars = saved;
        if let Item::Else(pos) = end {
            return Err(self.error_at(pos, "unexpected {{else}} in define clause".into()));
        }
        self.defines.push((name, list));
        Ok(())
    }

    fn string_literal(&self, t: Token, context: &str) -> Result<String, ParseError> {
        match t.kind {
            Kind::String | Kind::RawString => unquote(self.text(t)).map_err(|m| ParseError {
                pos: t.start,
                message: m,
            }),
            _ => Err(self.unexpected(t, context)),
        }
    }

    /// [`Self::item_list`] for the body of the `what` (`if`, `define`, …) at `pos`: running
    /// out of text is reported at the opening keyword.
    fn body(&mut self, what: &str, pos: usize) -> Result<(Vec<Node>, Item), ParseError> {
        let listed = self.nested(pos, |p| p.item_list());
        listed.map_err(|e| {
            if e.pos == self.src.len() && e.message == "unexpected EOF" {
                self.error_at(
                    pos,
                    format!("unclosed {{{{{what}}}}}; add {{{{ end }}}} after its body"),
                )
            } else {
                e
            }
        })
    }

    /// Runs `f` one nesting level deeper: hostile input must not nest deep enough to
    /// exhaust the stack (the parser and the executor recurse on each level).
    fn nested<T>(
        &mut self,
        pos: usize,
        f: impl FnOnce(&mut Self) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        if self.nesting >= MAX_NESTING {
            return Err(self.error_at(
                pos,
                format!(
                    "nested too deeply: more than {MAX_NESTING} levels of {{{{if}}}}, \
                     {{{{range}}}}, {{{{with}}}}, {{{{else if}}}}, {{{{define}}}}, {{{{block}}}} and parentheses"
                ),
            ));
        }
        self.nesting += 1;
        let result = f(self);
        self.nesting -= 1;
        result
    }

    /// Nodes up to the `{{end}}` or `{{else}}` that closes them.
    fn item_list(&mut self) -> Result<(Vec<Node>, Item), ParseError> {
        let mut list = Vec::new();
        loop {
            if self.peek().kind == Kind::Eof {
                return Err(self.error_at(self.src.len(), "unexpected EOF".into()));
            }
            match self.text_or_action()? {
                Item::Node(n) => list.push(n),
                end => return Ok((list, end)),
            }
        }
    }

    fn text_or_action(&mut self) -> Result<Item, ParseError> {
        let t = self.next();
        match t.kind {
            Kind::Text => Ok(Item::Node(Node::Text {
                start: t.start,
                end: t.end,
            })),
            Kind::Open => self.action(t.start),
            _ => Err(self.unexpected(t, "input")),
        }
    }

    fn action(&mut self, open: usize) -> Result<Item, ParseError> {
        let t = self.next_non_space();
        if t.kind == Kind::Keyword {
            let pos = t.start;
            return match self.text(t) {
                "if" => self.control(ControlKind::If, pos).map(Item::Node),
                "with" => self.control(ControlKind::With, pos).map(Item::Node),
                "range" => self.control(ControlKind::Range, pos).map(Item::Node),
                "end" => {
                    self.expect_close("end")?;
                    Ok(Item::End(pos))
                }
                "else" => {
                    // `{{else if …}}` leaves the `if` for the enclosing control to see.
                    let next = self.peek_non_space();
                    if next.kind == Kind::Keyword && matches!(self.text(next), "if" | "with") {
                        return Ok(Item::Else(pos));
                    }
                    self.expect_close("else")?;
                    Ok(Item::Else(pos))
                }
                "break" | "continue" => {
                    let word = self.text(t).to_string();
                    if self.range_depth == 0 {
                        return Err(
                            self.error_at(pos, format!("{{{{{word}}}}} outside {{{{range}}}}"))
                        );
                    }
                    self.expect_close(&word)?;
                    Ok(Item::Node(if word == "break" {
                        Node::Break
                    } else {
                        Node::Continue
                    }))
                }
                "template" => self.template(pos).map(Item::Node),
                "block" => self.block(pos).map(Item::Node),
                "define" => Err(self.error_at(pos, "unexpected <define> in command".into())),
                other => Err(self.error_at(pos, format!("unexpected <{other}> in command"))),
            };
        }
        self.backup();
        let pipe = self.pipeline("command", Kind::Close, open)?;
        Ok(Item::Node(Node::Action { pos: open, pipe }))
    }

    fn control(&mut self, kind: ControlKind, pos: usize) -> Result<Node, ParseError> {
        let vars = self.vars.len();
        let context = match kind {
            ControlKind::If => "if",
            ControlKind::With => "with",
            ControlKind::Range => "range",
        };
        let pipe = self.pipeline(context, Kind::Close, pos)?;
        if kind == ControlKind::Range {
            self.range_depth += 1;
        }
        let listed = self.body(context, pos);
        if kind == ControlKind::Range {
            self.range_depth -= 1;
        }
        let (list, end) = listed?;
        let mut otherwise = None;
        if let Item::Else(_) = end {
            let next = self.peek_non_space();
            let chained = next.kind == Kind::Keyword
                && kind != ControlKind::Range
                && self.text(next) == context;
            if chained {
                self.next_non_space();
                let chained = self.nested(next.start, |p| p.control(kind, next.start))?;
                otherwise = Some(vec![chained]);
            } else {
                let (list, end) = self.body(context, pos)?;
                if let Item::Else(pos) = end {
                    return Err(self.error_at(pos, "expected end; found {{else}}".into()));
                }
                otherwise = Some(list);
            }
        }
        self.vars.truncate(vars);
        Ok(Node::Control {
            kind,
            pos,
            pipe,
            list,
            otherwise,
        })
    }

    fn template(&mut self, pos: usize) -> Result<Node, ParseError> {
        let t = self.next_non_space();
        let name = self.string_literal(t, "template clause")?;
        let pipe = if self.peek_non_space().kind == Kind::Close {
            self.next_non_space();
            None
        } else {
            Some(self.pipeline("template clause", Kind::Close, pos)?)
        };
        Ok(Node::Template { pos, name, pipe })
    }

    fn block(&mut self, pos: usize) -> Result<Node, ParseError> {
        let t = self.next_non_space();
        let name = self.string_literal(t, "block clause")?;
        let pipe = self.pipeline("block clause", Kind::Close, pos)?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let (list, end) = self.body("block", pos)?;
        self.vars = saved;
        if let Item::Else(pos) = end {
            return Err(self.error_at(pos, "unexpected {{else}} in block clause".into()));
        }
        self.defines.push((name.clone(), list));
        Ok(Node::Template {
            pos,
            name,
            pipe: Some(pipe),
        })
    }

    fn pipeline(&mut self, context: &str, end: Kind, pos: usize) -> Result<Pipe, ParseError> {
        let mut pipe = Pipe {
            pos,
            decl: Vec::new(),
            assign: false,
            cmds: Vec::new(),
        };
        self.declarations(&mut pipe, context)?;
        loop {
            let t = self.next_non_space();
            match t.kind {
                k if k == end => {
                    if pipe.cmds.is_empty() {
                        return Err(self.error_at(t.start, format!("missing value for {context}")));
                    }
                    for (i, cmd) in pipe.cmds.iter().enumerate().skip(1) {
                        if matches!(cmd.args[0], Arg::Lit { .. } | Arg::Dot(_) | Arg::Nil(_)) {
                            return Err(self.error_at(
                                cmd.pos,
                                format!("non executable command in pipeline stage {}", i + 1),
                            ));
                        }
                    }
                    return Ok(pipe);
                }
                Kind::Bool
                | Kind::Char
                | Kind::Dot
                | Kind::Field
                | Kind::Ident
                | Kind::Number
                | Kind::Nil
                | Kind::RawString
                | Kind::String
                | Kind::Variable
                | Kind::LParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return Err(self.unexpected(t, context)),
            }
        }
    }

    /// `$x :=`, `$x =`, and in a range `$i, $v :=`.
    fn declarations(&mut self, pipe: &mut Pipe, context: &str) -> Result<(), ParseError> {
        let save = self.at;
        let v = self.next_non_space();
        if v.kind != Kind::Variable {
            self.at = save;
            return Ok(());
        }
        let name = self.text(v).to_string();
        let t = self.next_non_space();
        match t.kind {
            Kind::Declare | Kind::Assign => {
                pipe.assign = t.kind == Kind::Assign;
                if pipe.assign && !self.vars.contains(&name) {
                    return Err(self.error_at(v.start, format!("undefined variable {name:?}")));
                }
                if !pipe.assign {
                    self.vars.push(name.clone());
                }
                pipe.decl.push(name);
            }
            Kind::Comma if context == "range" => {
                let second = self.next_non_space();
                let op = self.next_non_space();
                if second.kind != Kind::Variable || !matches!(op.kind, Kind::Declare | Kind::Assign)
                {
                    return Err(
                        self.error_at(t.start, "range can only initialize variables".into())
                    );
                }
                pipe.assign = op.kind == Kind::Assign;
                let second = self.text(second).to_string();
                for name in [name, second] {
                    if pipe.assign && !self.vars.contains(&name) {
                        return Err(self.error_at(v.start, format!("undefined variable {name:?}")));
                    }
                    if !pipe.assign {
                        self.vars.push(name.clone());
                    }
                    pipe.decl.push(name);
                }
            }
            Kind::Comma => {
                return Err(self.error_at(t.start, format!("too many declarations in {context}")));
            }
            _ => self.at = save,
        }
        Ok(())
    }

    fn command(&mut self) -> Result<Cmd, ParseError> {
        let pos = self.peek_non_space().start;
        let mut args = Vec::new();
        loop {
            while self.peek().kind == Kind::Space {
                self.next();
            }
            if let Some(operand) = self.operand()? {
                args.push(operand);
            }
            let t = self.next();
            match t.kind {
                Kind::Space => continue,
                Kind::Close | Kind::RParen => {
                    self.backup();
                    break;
                }
                Kind::Pipe => break,
                _ => return Err(self.unexpected(t, "operand")),
            }
        }
        if args.is_empty() {
            return Err(self.error_at(pos, "empty command".into()));
        }
        Ok(Cmd { pos, args })
    }

    fn operand(&mut self) -> Result<Option<Arg>, ParseError> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().kind != Kind::Field {
            return Ok(Some(node));
        }
        let mut names = Vec::new();
        while self.peek().kind == Kind::Field {
            let t = self.next();
            names.push(self.text(t)[1..].to_string());
        }
        Ok(Some(match node {
            Arg::Field {
                pos,
                names: mut first,
            } => {
                first.extend(names);
                Arg::Field { pos, names: first }
            }
            Arg::Var {
                pos,
                name,
                names: mut first,
            } => {
                first.extend(names);
                Arg::Var {
                    pos,
                    name,
                    names: first,
                }
            }
            Arg::Lit { pos, .. } | Arg::Dot(pos) | Arg::Nil(pos) => {
                return Err(self.error_at(
                    pos,
                    format!("unexpected . after term {:?}", self.term_text(pos)),
                ));
            }
            node => Arg::Chain {
                pos: node.pos(),
                node: Box::new(node),
                names,
            },
        }))
    }

    fn term_text(&self, pos: usize) -> &str {
        let end = self.src[pos..]
            .find(|c: char| c == '.' || c.is_whitespace())
            .map_or(self.src.len(), |i| pos + i.max(1));
        &self.src[pos..end]
    }

    fn term(&mut self) -> Result<Option<Arg>, ParseError> {
        let t = self.next_non_space();
        let pos = t.start;
        let text = self.text(t).to_string();
        Ok(Some(match t.kind {
            Kind::Ident => {
                if !(self.is_func)(&text) {
                    return Err(self.error_at(pos, format!("function {text:?} not defined")));
                }
                Arg::Func { pos, name: text }
            }
            Kind::Dot => Arg::Dot(pos),
            Kind::Nil => Arg::Nil(pos),
            Kind::Variable => {
                if !self.vars.contains(&text) {
                    return Err(self.error_at(pos, format!("undefined variable {text:?}")));
                }
                Arg::Var {
                    pos,
                    name: text,
                    names: Vec::new(),
                }
            }
            Kind::Field => Arg::Field {
                pos,
                names: vec![text[1..].to_string()],
            },
            Kind::Bool => Arg::Lit {
                pos,
                value: Value::Bool(text == "true"),
            },
            Kind::Char | Kind::Number => Arg::Lit {
                pos,
                value: number(&text).map_err(|m| self.error_at(pos, m))?,
            },
            Kind::LParen => {
                let pipe = self.nested(pos, |p| {
                    p.pipeline("parenthesized pipeline", Kind::RParen, pos)
                })?;
                Arg::Pipe(Box::new(pipe))
            }
            Kind::String | Kind::RawString => Arg::Lit {
                pos,
                value: Value::Str(unquote(&text).map_err(|m| self.error_at(pos, m))?),
            },
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

/// A number or character constant: an int unless it has a fraction or exponent (Go's
/// `idealConstant`).
fn number(text: &str) -> Result<Value, String> {
    if text.starts_with('\'') {
        let s = unquote_with(text, '\'')?;
        let mut chars = s.chars();
        return match (chars.next(), chars.next()) {
            (Some(c), None) => Ok(Value::Int(c as i64)),
            _ => Err(format!("malformed character constant: {text}")),
        };
    }
    let clean = text.replace('_', "");
    let (neg, body) = match clean.as_bytes().first() {
        Some(b'-') => (true, &clean[1..]),
        Some(b'+') => (false, &clean[1..]),
        _ => (false, &clean[..]),
    };
    let lower = body.to_ascii_lowercase();
    let radix_int = if let Some(hex) = lower.strip_prefix("0x") {
        (!hex.contains('p')).then(|| i64::from_str_radix(hex, 16))
    } else if let Some(oct) = lower.strip_prefix("0o") {
        Some(i64::from_str_radix(oct, 8))
    } else if let Some(bin) = lower.strip_prefix("0b") {
        Some(i64::from_str_radix(bin, 2))
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|b| b.is_ascii_digit())
    {
        Some(i64::from_str_radix(&lower[1..], 8))
    } else if !lower.contains(['.', 'e']) {
        Some(lower.parse::<i64>())
    } else {
        None
    };
    match radix_int {
        Some(Ok(i)) => Ok(Value::Int(if neg { -i } else { i })),
        Some(Err(_)) if !lower.starts_with("0x") || !lower.contains('.') => {
            Err(format!("illegal number syntax: {text:?}"))
        }
        _ => lower
            .parse::<f64>()
            .map(|f| Value::Float(if neg { -f } else { f }))
            .map_err(|_| format!("illegal number syntax: {text:?}")),
    }
}

/// A Go string literal (`"…"` with escapes or `` `…` `` raw) to its value.
pub(super) fn unquote(text: &str) -> Result<String, String> {
    if let Some(raw) = text.strip_prefix('`') {
        return Ok(raw.strip_suffix('`').unwrap_or(raw).replace('\r', ""));
    }
    unquote_with(text, '"')
}

fn unquote_with(text: &str, quote: char) -> Result<String, String> {
    let inner = text
        .strip_prefix(quote)
        .and_then(|t| t.strip_suffix(quote))
        .ok_or_else(|| format!("bad quoted string {text}"))?;
    let mut out = String::new();
    let mut chars = inner.chars();
    let bad = || format!("invalid syntax in quoted string {text}");
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or_else(bad)?;
        let hex = |chars: &mut std::str::Chars, n: usize| -> Result<u32, String> {
            let digits: String = chars.by_ref().take(n).collect();
            if digits.len() != n {
                return Err(bad());
            }
            u32::from_str_radix(&digits, 16).map_err(|_| bad())
        };
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            '"' if quote == '"' => out.push('"'),
            '\'' if quote == '\'' => out.push('\''),
            'x' => out.push(char::from_u32(hex(&mut chars, 2)?).ok_or_else(bad)?),
            'u' => out.push(char::from_u32(hex(&mut chars, 4)?).ok_or_else(bad)?),
            'U' => out.push(char::from_u32(hex(&mut chars, 8)?).ok_or_else(bad)?),
            '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                let n = u32::from_str_radix(&format!("{e}{rest}"), 8).map_err(|_| bad())?;
                out.push(char::from_u32(n).ok_or_else(bad)?);
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(src: &str) -> Parsed {
        parse(src, &|name| name == "printf" || name == "list").expect(src)
    }

    fn parse_err(src: &str) -> (usize, String) {
        let err = parse(src, &|name| name == "printf")
            .err()
            .unwrap_or_else(|| panic!("{src} parses"));
        (err.pos, err.message)
    }

    #[test]
    fn structures() {
        let p = parse_ok(
            "{{define \"a\"}}x{{end}}{{ if .A }}{{ else if .B }}{{ else }}{{ end }}\
             {{ range $i, $v := list 1 }}{{ break }}{{ end }}{{ block \"b\" . }}y{{ end }}",
        );
        assert_eq!(p.defines.len(), 2);
        assert_eq!(p.body.len(), 3);
        let Node::Control {
            otherwise: Some(otherwise),
            ..
        } = &p.body[0]
        else {
            panic!("if with else");
        };
        assert!(matches!(
            &otherwise[0],
            Node::Control {
                kind: ControlKind::If,
                otherwise: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn numbers() {
        assert!(matches!(number("0x1F"), Ok(Value::Int(31))));
        assert!(matches!(number("-1_000"), Ok(Value::Int(-1000))));
        assert!(matches!(number("017"), Ok(Value::Int(15))));
        assert!(matches!(number("1e3"), Ok(Value::Float(f)) if f == 1000.0));
        assert!(matches!(number("'a'"), Ok(Value::Int(97))));
        assert_eq!(unquote(r#""a\tb\u00e9\x41""#).as_deref(), Ok("a\tbéA"));
    }

    #[test]
    fn errors() {
        let cases = [
            ("{{ foo 1 }}", 3, "function \"foo\" not defined"),
            ("{{ $x }}", 3, "undefined variable \"$x\""),
            (
                "{{ if .a }}",
                3,
                "unclosed {{if}}; add {{ end }} after its body",
            ),
            (
                "{{ define \"x\" }}{{ range . }}{{ end }}",
                3,
                "unclosed {{define}}; add {{ end }} after its body",
            ),
            ("{{ end }}", 3, "unexpected {{end}}"),
            ("{{ break }}", 3, "{{break}} outside {{range}}"),
            ("{{ }}", 3, "missing value for command"),
            (
                "{{ .a | 3 }}",
                8,
                "non executable command in pipeline stage 2",
            ),
            (
                "{{ if .a }}{{ define \"x\" }}{{ end }}{{ end }}",
                14,
                "unexpected <define> in command",
            ),
            ("{{ \"x\".y }}", 3, "unexpected . after term \"\\\"x\\\"\""),
        ];
        for (src, pos, message) in cases {
            assert_eq!(parse_err(src), (pos, message.to_string()), "{src}");
        }
    }
}
