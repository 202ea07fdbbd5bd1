//! The executor: walks trees against the data, writing output and recording where each piece
//! of output came from (the line map), as Go's `text/template/exec.go` does minus reflection.

use std::collections::HashMap;
use std::rc::Rc;

use super::parse::{self, Arg, Cmd, ControlKind, Node, Pipe, Tree};
use super::value::Value;
use super::{Context, Segment, Source, files, funcs};

/// How deep `template`, `include` and `tpl` may nest (each level is recursion here).
const MAX_DEPTH: usize = 100;

/// How deep template calls and `if`/`range`/`with` bodies may nest together: each level is
/// recursion here, and [`MAX_DEPTH`] calls of templates nested as deep as the parser allows
/// would exhaust the stack.
const MAX_NESTING: usize = 500;

/// The most output one render may produce, against runaway loops.
const MAX_OUTPUT: usize = 64 << 20;

/// How many steps one render may take: one per node run, range iteration and function call,
/// plus one per 64 bytes (or item) of each value a function returns. Loops that print nothing
/// (`{{ range 1000000000000 }}{{ end }}`) or build ever larger values end here; Go's engine
/// has no such bound, but a config render must end. Real configs take thousands.
const MAX_STEPS: u64 = 10_000_000;

/// An execution error: the source and byte position it happened at, and the message.
#[derive(Debug)]
pub(super) struct ExecError {
    pub src: usize,
    pub pos: usize,
    pub message: String,
}

/// Output text plus where each piece came from.
#[derive(Default)]
pub(super) struct Output {
    pub text: String,
    pub segments: Vec<Segment>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

struct Scope {
    src: usize,
    vars: Vec<(String, Value)>,
}

/// The state of one render.
pub(super) struct Exec<'c> {
    pub ctx: &'c Context,
    /// Every source: the config, the partials, then `tpl` texts while they run.
    pub sources: Vec<Source>,
    /// Named templates: partial files, `define`s, the config itself.
    pub templates: HashMap<String, Rc<Tree>>,
    pub out: Output,
    /// Sources from this index on are `tpl` texts.
    pub real_sources: usize,
    /// Names of the templates that are whole files (left out of "defined:" lists).
    pub file_templates: Vec<String>,
    depth: usize,
    /// Steps taken so far (see [`MAX_STEPS`]).
    steps: u64,
    /// Template calls and bodies being run (see [`MAX_NESTING`]).
    nesting: usize,
}

type Result<T> = std::result::Result<T, ExecError>;

impl<'c> Exec<'c> {
    pub(super) fn new(ctx: &'c Context, sources: Vec<Source>) -> Exec<'c> {
        Exec {
            ctx,
            real_sources: sources.len(),
            sources,
            templates: HashMap::new(),
            out: Output::default(),
            file_templates: Vec::new(),
            depth: 0,
            steps: 0,
            nesting: 0,
        }
    }

    fn err(&self, src: usize, pos: usize, message: impl Into<String>) -> ExecError {
        ExecError {
            src,
            pos,
            message: message.into(),
        }
    }

    /// Runs the template `name` with `data` as dot and `$`, writing to the current output.
    pub(super) fn run(&mut self, src: usize, pos: usize, name: &str, data: Value) -> Result<()> {
        let Some(tree) = self.templates.get(name).cloned() else {
            return Err(self.err(src, pos, format!("no such template {name:?}")));
        };
        if self.depth >= MAX_DEPTH {
            return Err(self.err(
                src,
                pos,
                format!("exceeded maximum template depth ({MAX_DEPTH})"),
            ));
        }
        let mut scope = Scope {
            src: tree.src,
            vars: vec![("$".into(), data.clone())],
        };
        self.depth += 1;
        let result = self.nested(src, pos, |this| this.walk(&mut scope, &data, &tree.root));
        self.depth -= 1;
        result.map(|_| ())
    }

    fn write_text(&mut self, src: usize, start: usize, end: usize) -> Result<()> {
        self.out.segments.push(Segment {
            out: self.out.text.len(),
            source: src,
            at: start,
            verbatim: true,
        });
        let text = &self.sources[src].text[start..end];
        self.out.text.push_str(text);
        self.check_size(src, start)
    }

    fn write_value(&mut self, src: usize, pos: usize, value: &Value) -> Result<()> {
        let text = match value {
            Value::Nil => "<no value>".to_string(),
            v => v.to_go_string(),
        };
        if text.is_empty() {
            return Ok(());
        }
        self.out.segments.push(Segment {
            out: self.out.text.len(),
            source: src,
            at: pos,
            verbatim: false,
        });
        self.out.text.push_str(&text);
        self.check_size(src, pos)
    }

    fn check_size(&self, src: usize, pos: usize) -> Result<()> {
        if self.out.text.len() > MAX_OUTPUT {
            return Err(self.err(
                src,
                pos,
                format!("the output is larger than {} MiB", MAX_OUTPUT >> 20),
            ));
        }
        Ok(())
    }

    /// Runs `f` one nesting level deeper (see [`MAX_NESTING`]).
    fn nested<T>(
        &mut self,
        src: usize,
        pos: usize,
        f: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        if self.nesting >= MAX_NESTING {
            return Err(self.err(
                src,
                pos,
                format!(
                    "nested too deeply: more than {MAX_NESTING} levels of template calls and \
                     if/range/with bodies"
                ),
            ));
        }
        self.nesting += 1;
        let result = f(self);
        self.nesting -= 1;
        result
    }

    /// Takes `cost` steps of the render's budget.
    fn step(&mut self, src: usize, pos: usize, cost: u64) -> Result<()> {
        self.steps = self.steps.saturating_add(cost);
        if self.steps > MAX_STEPS {
            return Err(self.err(
                src,
                pos,
                format!(
                    "the template takes more than {MAX_STEPS} steps; does a range or a \
                     template call never end?"
                ),
            ));
        }
        Ok(())
    }

    fn walk(&mut self, sc: &mut Scope, dot: &Value, nodes: &[Node]) -> Result<Flow> {
        for node in nodes {
            let pos = match node {
                Node::Text { start: pos, .. }
                | Node::Action { pos, .. }
                | Node::Control { pos, .. }
                | Node::Template { pos, .. } => *pos,
                Node::Break | Node::Continue => 0,
            };
            self.step(sc.src, pos, 1)?;
            match node {
                Node::Text { start, end } => self.write_text(sc.src, *start, *end)?,
                Node::Action { pos, pipe } => {
                    let value = self.pipe(sc, dot, pipe)?;
                    if pipe.decl.is_empty() {
                        self.write_value(sc.src, *pos, &value)?;
                    }
                }
                Node::Control {
                    kind,
                    pos,
                    pipe,
                    list,
                    otherwise,
                } => {
                    let mark = sc.vars.len();
                    let flow = self.nested(sc.src, *pos, |this| {
                        if *kind == ControlKind::Range {
                            this.range(sc, dot, *pos, pipe, list, otherwise.as_deref())
                        } else {
                            this.if_or_with(sc, dot, *kind, pipe, list, otherwise.as_deref())
                        }
                    });
                    sc.vars.truncate(mark);
                    let flow = flow?;
                    if flow != Flow::Normal {
                        return Ok(flow);
                    }
                }
                Node::Template { pos, name, pipe } => {
                    let data = match pipe {
                        Some(pipe) => self.pipe(sc, dot, pipe)?,
                        None => Value::Nil,
                    };
                    self.run(sc.src, *pos, name, data)?;
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn if_or_with(
        &mut self,
        sc: &mut Scope,
        dot: &Value,
        kind: ControlKind,
        pipe: &Pipe,
        list: &[Node],
        otherwise: Option<&[Node]>,
    ) -> Result<Flow> {
        let value = self.pipe(sc, dot, pipe)?;
        if value.is_true() {
            let inner = if kind == ControlKind::With {
                &value
            } else {
                dot
            };
            self.walk(sc, inner, list)
        } else if let Some(otherwise) = otherwise {
            self.walk(sc, dot, otherwise)
        } else {
            Ok(Flow::Normal)
        }
    }

    fn range(
        &mut self,
        sc: &mut Scope,
        dot: &Value,
        pos: usize,
        pipe: &Pipe,
        list: &[Node],
        otherwise: Option<&[Node]>,
    ) -> Result<Flow> {
        let value = self.eval_pipe(sc, dot, pipe)?;
        // An int is counted, never collected: `range` over a huge one must not allocate.
        let items: Box<dyn Iterator<Item = (Value, Value)>> = match &value {
            Value::List(items) => Box::new(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (Value::Int(i as i64), v.clone()))
                    .collect::<Vec<_>>()
                    .into_iter(),
            ),
            Value::Map(map) => Box::new(
                map.borrow()
                    .iter()
                    .map(|(k, v)| (Value::from(k.as_str()), v.clone()))
                    .collect::<Vec<_>>()
                    .into_iter(),
            ),
            Value::Int(n) => {
                if pipe.decl.len() > 1 {
                    return Err(self.err(
                        sc.src,
                        pos,
                        format!("can't use {n} to iterate over more than one variable"),
                    ));
                }
                Box::new((0..*n).map(|i| (Value::Int(i), Value::Int(i))))
            }
            Value::Nil => Box::new(std::iter::empty()),
            other => {
                return Err(self.err(
                    sc.src,
                    pos,
                    format!("range can't iterate over {}", other.to_go_string()),
                ));
            }
        };
        let mut items = items.peekable();
        if items.peek().is_none() {
            return match otherwise {
                Some(otherwise) => self.walk(sc, dot, otherwise),
                None => Ok(Flow::Normal),
            };
        }
        for (key, elem) in items {
            self.step(sc.src, pos, 1)?;
            let mark = sc.vars.len();
            let values = match pipe.decl.len() {
                1 => vec![elem.clone()],
                2 => vec![key, elem.clone()],
                _ => Vec::new(),
            };
            for (name, value) in pipe.decl.iter().zip(values) {
                self.set_var(sc, name, value, pipe.assign);
            }
            let flow = self.walk(sc, &elem, list);
            sc.vars.truncate(mark);
            if flow? == Flow::Break {
                break;
            }
        }
        Ok(Flow::Normal)
    }

    fn set_var(&self, sc: &mut Scope, name: &str, value: Value, assign: bool) {
        if assign && let Some(slot) = sc.vars.iter_mut().rev().find(|(n, _)| n == name) {
            slot.1 = value;
            return;
        }
        sc.vars.push((name.to_string(), value));
    }

    /// A pipeline's value, with its variables declared or assigned.
    fn pipe(&mut self, sc: &mut Scope, dot: &Value, pipe: &Pipe) -> Result<Value> {
        let value = self.eval_pipe(sc, dot, pipe)?;
        for name in &pipe.decl {
            self.set_var(sc, name, value.clone(), pipe.assign);
        }
        Ok(value)
    }

    fn eval_pipe(&mut self, sc: &mut Scope, dot: &Value, pipe: &Pipe) -> Result<Value> {
        let mut value = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_cmd(sc, dot, cmd, value)?);
        }
        Ok(value.unwrap_or(Value::Nil))
    }

    fn source_word(&self, src: usize, pos: usize) -> &str {
        let text = &self.sources[src].text[pos..];
        let end = text
            .find(|c: char| c.is_whitespace() || c == '}' || c == '|')
            .unwrap_or(text.len());
        &text[..end]
    }

    fn not_a_function(&self, src: usize, cmd: &Cmd, fin: &Option<Value>) -> Result<()> {
        if cmd.args.len() > 1 || fin.is_some() {
            let pos = cmd.args[0].pos();
            return Err(self.err(
                src,
                pos,
                format!(
                    "can't give argument to non-function {}",
                    self.source_word(src, pos)
                ),
            ));
        }
        Ok(())
    }

    fn eval_cmd(
        &mut self,
        sc: &mut Scope,
        dot: &Value,
        cmd: &Cmd,
        fin: Option<Value>,
    ) -> Result<Value> {
        let rest = &cmd.args[1..];
        match &cmd.args[0] {
            Arg::Func { pos, name } => self.call(sc, dot, *pos, name, rest, fin),
            Arg::Field { pos, names } => self.chain(sc, dot, *pos, dot.clone(), names, rest, fin),
            Arg::Var { pos, name, names } => {
                let value = self.var(sc, *pos, name)?;
                if names.is_empty() {
                    self.not_a_function(sc.src, cmd, &fin)?;
                    return Ok(value);
                }
                self.chain(sc, dot, *pos, value, names, rest, fin)
            }
            Arg::Chain { pos, node, names } => {
                let value = self.eval_arg(sc, dot, node)?;
                self.chain(sc, dot, *pos, value, names, rest, fin)
            }
            Arg::Pipe(pipe) => {
                self.not_a_function(sc.src, cmd, &fin)?;
                self.pipe(sc, dot, pipe)
            }
            Arg::Dot(_) => {
                self.not_a_function(sc.src, cmd, &fin)?;
                Ok(dot.clone())
            }
            Arg::Nil(pos) => Err(self.err(sc.src, *pos, "nil is not a command")),
            Arg::Lit { value, .. } => {
                self.not_a_function(sc.src, cmd, &fin)?;
                Ok(value.clone())
            }
        }
    }

    fn var(&self, sc: &Scope, pos: usize, name: &str) -> Result<Value> {
        sc.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| self.err(sc.src, pos, format!("undefined variable: {name}")))
    }

    fn eval_arg(&mut self, sc: &mut Scope, dot: &Value, arg: &Arg) -> Result<Value> {
        match arg {
            Arg::Dot(_) => Ok(dot.clone()),
            Arg::Nil(_) => Ok(Value::Nil),
            Arg::Lit { value, .. } => Ok(value.clone()),
            Arg::Field { pos, names } => self.chain(sc, dot, *pos, dot.clone(), names, &[], None),
            Arg::Var { pos, name, names } => {
                let value = self.var(sc, *pos, name)?;
                self.chain(sc, dot, *pos, value, names, &[], None)
            }
            Arg::Chain { pos, node, names } => {
                let value = self.eval_arg(sc, dot, node)?;
                self.chain(sc, dot, *pos, value, names, &[], None)
            }
            Arg::Func { pos, name } => self.call(sc, dot, *pos, name, &[], None),
            Arg::Pipe(pipe) => self.pipe(sc, dot, pipe),
        }
    }

    /// `receiver.A.B args…`: fields of maps, methods of `.Files`.
    #[allow(clippy::too_many_arguments)]
    fn chain(
        &mut self,
        sc: &mut Scope,
        dot: &Value,
        pos: usize,
        receiver: Value,
        names: &[String],
        args: &[Arg],
        mut fin: Option<Value>,
    ) -> Result<Value> {
        let mut value = receiver;
        // Go's map lookup of a missing key gives an invalid value, and a field of an invalid
        // value is invalid again (`<no value>`); only a present nil is a nil pointer error.
        let mut missing = false;
        for (i, name) in names.iter().enumerate() {
            let last = i + 1 == names.len();
            let has_args = last && (!args.is_empty() || fin.is_some());
            value = match &value {
                Value::Files => {
                    let mut vals = Vec::new();
                    if last {
                        for arg in args {
                            vals.push(self.eval_arg(sc, dot, arg)?);
                        }
                        vals.extend(fin.take());
                    }
                    files::call(&self.ctx.dir, name, &vals).map_err(|m| self.err(sc.src, pos, m))?
                }
                Value::Map(map) => {
                    if has_args {
                        return Err(self.err(
                            sc.src,
                            pos,
                            format!("{name} is not a method but has arguments"),
                        ));
                    }
                    let found = map.borrow().get(name).cloned();
                    missing = found.is_none();
                    found.unwrap_or(Value::Nil)
                }
                Value::Cert(cert) if !has_args && (name == "Cert" || name == "Key") => {
                    Value::from(if name == "Cert" {
                        cert.cert.as_str()
                    } else {
                        cert.key.as_str()
                    })
                }
                Value::Nil if missing => Value::Nil,
                Value::Nil => {
                    let path: String = names[..i].iter().map(|n| format!(".{n}")).collect();
                    let hint = if path.is_empty() {
                        String::new()
                    } else {
                        format!(" ({path} is missing or nil)")
                    };
                    return Err(self.err(
                        sc.src,
                        pos,
                        format!("nil pointer evaluating interface {{}}.{name}{hint}"),
                    ));
                }
                other => {
                    return Err(self.err(
                        sc.src,
                        pos,
                        format!("can't evaluate field {name} in type {}", other.type_name()),
                    ));
                }
            };
        }
        Ok(value)
    }

    fn call(
        &mut self,
        sc: &mut Scope,
        dot: &Value,
        pos: usize,
        name: &str,
        args: &[Arg],
        fin: Option<Value>,
    ) -> Result<Value> {
        if name == "and" || name == "or" {
            if args.is_empty() && fin.is_none() {
                return Err(self.err(
                    sc.src,
                    pos,
                    format!("wrong number of args for {name}: want at least 1 got 0"),
                ));
            }
            let mut last = Value::Nil;
            for arg in args {
                let value = self.eval_arg(sc, dot, arg)?;
                if value.is_true() == (name == "or") {
                    return Ok(value);
                }
                last = value;
            }
            return Ok(fin.unwrap_or(last));
        }
        let mut vals = Vec::with_capacity(args.len() + 1);
        for arg in args {
            vals.push(self.eval_arg(sc, dot, arg)?);
        }
        vals.extend(fin);
        self.step(sc.src, pos, 1)?;
        let result = match name {
            // werf's debug twins log what they render under `--debug-templates`, which
            // strata does not have; otherwise they are `include` and `tpl`.
            "include" | "include_debug" => return self.include(sc.src, pos, &vals),
            "tpl" | "tpl_debug" => return self.tpl(sc.src, pos, &vals),
            "env" => self.env(&vals),
            _ => funcs::call(name, &vals),
        };
        if let Ok(value) = &result {
            let size = match value {
                Value::Str(s) => s.len() / 64,
                Value::List(items) => items.len(),
                Value::Map(map) => map.borrow().len(),
                _ => 0,
            };
            self.step(sc.src, pos, size as u64)?;
        }
        result.map_err(|message| {
            let message = if matches!(name, "fail" | "required") {
                message
            } else {
                format!("error calling {name}: {message}")
            };
            self.err(sc.src, pos, message)
        })
    }

    /// werf's `env NAME [DEFAULT]`: the default replaces an unset or empty variable, and an
    /// unset variable without a default is an error (werf's giterministic mode), so a build
    /// cannot silently depend on a variable someone forgot to export.
    fn env(&self, vals: &[Value]) -> std::result::Result<Value, String> {
        if vals.is_empty() || vals.len() > 2 {
            return Err(format!(
                "wrong number of args for env: want 1 or 2 got {}",
                vals.len()
            ));
        }
        let name = super::sprig::strval(&vals[0]);
        let default = vals.get(1).map(funcs::str_arg).transpose()?;
        match (self.ctx.env.get(&name), default) {
            (Some(value), Some(default)) if value.is_empty() => Ok(Value::from(default)),
            (Some(value), _) => Ok(Value::from(value.as_str())),
            (None, Some(default)) => Ok(Value::from(default)),
            (None, None) => Err(format!(
                "the environment variable {name:?} must be set or a default must be provided \
                 ({{{{ env {name:?} \"default\" }}}})"
            )),
        }
    }

    /// Renders into a fresh buffer and returns its text.
    fn capture(&mut self, f: impl FnOnce(&mut Self) -> Result<()>) -> Result<String> {
        let saved = std::mem::take(&mut self.out);
        let result = f(self);
        let captured = std::mem::replace(&mut self.out, saved);
        result.map(|()| captured.text)
    }

    fn include(&mut self, src: usize, pos: usize, vals: &[Value]) -> Result<Value> {
        let fail =
            |this: &Self, m: String| this.err(src, pos, format!("error calling include: {m}"));
        if vals.len() != 2 {
            return Err(fail(
                self,
                format!(
                    "wrong number of args for include: want 2 got {}",
                    vals.len()
                ),
            ));
        }
        let name = funcs::str_arg(&vals[0])
            .map_err(|m| fail(self, m))?
            .to_string();
        if !self.templates.contains_key(&name) {
            let mut known: Vec<&str> = self
                .templates
                .keys()
                .filter(|k| !self.file_templates.contains(k))
                .map(String::as_str)
                .collect();
            known.sort_unstable();
            let known = if known.is_empty() {
                "no templates are defined (put `define`s in .werf/*.tmpl)".to_string()
            } else {
                format!("defined: {}", known.join(", "))
            };
            return Err(fail(self, format!("no template {name:?}; {known}")));
        }
        let data = vals[1].clone();
        let text = self.capture(|this| this.run(src, pos, &name, data))?;
        Ok(Value::Str(text))
    }

    fn tpl(&mut self, src: usize, pos: usize, vals: &[Value]) -> Result<Value> {
        let fail = |this: &Self, m: String| this.err(src, pos, format!("error calling tpl: {m}"));
        if vals.len() != 2 {
            return Err(fail(
                self,
                format!("wrong number of args for tpl: want 2 got {}", vals.len()),
            ));
        }
        let text = funcs::str_arg(&vals[0])
            .map_err(|m| fail(self, m))?
            .to_string();
        let index = self.sources.len();
        let parsed = parse::parse(&text, &funcs::exists);
        self.sources.push(Source {
            name: "tpl".into(),
            path: Default::default(),
            text,
        });
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(e) => {
                let e = self.err(index, e.pos, e.message);
                return Err(self.unwind_tpl(e, index, src, pos));
            }
        };
        let saved = self.templates.clone();
        for (name, body) in parsed.defines {
            self.templates.insert(
                name,
                Rc::new(Tree {
                    src: index,
                    root: body,
                }),
            );
        }
        let body = Rc::new(Tree {
            src: index,
            root: parsed.body,
        });
        let data = vals[1].clone();
        let result = self.capture(|this| {
            let mut scope = Scope {
                src: index,
                vars: vec![("$".into(), data.clone())],
            };
            if this.depth >= MAX_DEPTH {
                return Err(this.err(
                    src,
                    pos,
                    format!("exceeded maximum template depth ({MAX_DEPTH})"),
                ));
            }
            this.depth += 1;
            let r = this
                .nested(src, pos, |this| this.walk(&mut scope, &data, &body.root))
                .map(|_| ());
            this.depth -= 1;
            r
        });
        self.templates = saved;
        match result {
            Ok(text) => {
                self.sources.truncate(index);
                Ok(Value::Str(text))
            }
            Err(e) => Err(self.unwind_tpl(e, index, src, pos)),
        }
    }

    /// An error inside a `tpl` text is reported at the `tpl` call, with the position inside
    /// the text; errors in real files (a partial the text includes) stay where they are.
    fn unwind_tpl(&mut self, e: ExecError, index: usize, src: usize, pos: usize) -> ExecError {
        let wrapped = if e.src >= self.real_sources && e.src >= index {
            let (line, column) = super::line_col(&self.sources[e.src].text, e.pos);
            self.err(
                src,
                pos,
                format!("error calling tpl: tpl text {line}:{column}: {}", e.message),
            )
        } else {
            e
        };
        self.sources.truncate(index);
        wrapped
    }
}
