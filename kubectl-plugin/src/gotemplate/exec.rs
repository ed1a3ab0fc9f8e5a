//! Execution of a parsed template over JSON data, following Go's text/template exec.go: the same
//! evaluation order, the same node an error is reported at, the same messages.

use std::borrow::Cow;

use serde_json::Value;

use super::parse::{Arg, Branch, Command, NAME, Node, Pipe};
use super::value::{Unsupported, V, Val, go_printable, sorted_keys, sprint, sprint_one, sprintf, sprintln};

/// Why execution stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecError {
    /// Go stops there too: Go's message (`template: output:1:7: executing "output" at <.a.b>: ...`).
    Go(String),
    /// Go would go on, but this engine does not implement what comes next.
    Unsupported(String),
}

/// Not an error: how `{{break}}` and `{{continue}}` leave the body of a range.
enum Flow {
    Break,
    Continue,
    Stop(ExecError),
}

impl From<Unsupported> for Flow {
    fn from(u: Unsupported) -> Self {
        Flow::Stop(ExecError::Unsupported(u.0))
    }
}

type R<T> = Result<T, Flow>;

/// The node being evaluated, for the position and `at <...>` of an error.
#[derive(Clone, Copy)]
enum At<'t> {
    Start,
    Node(&'t Node),
    Pipe(&'t Pipe),
    Cmd(&'t Command),
    Arg(&'t Arg),
}

/// What a function's parameter accepts (Go's reflect.Value, interface{} or string parameters).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Param {
    Value,
    Any,
    Str,
}

/// A builtin's error: Go's message, or something refused.
enum CallError {
    Go(String),
    Unsupported(String),
}

impl From<Unsupported> for CallError {
    fn from(u: Unsupported) -> Self {
        CallError::Unsupported(u.0)
    }
}

struct State<'t, 'a> {
    text: &'t str,
    at: At<'t>,
    vars: Vec<(String, V<'a>)>,
    out: String,
}

/// Runs the template; returns what was written (also when execution stopped) and the error.
pub fn execute(text: &str, root: &[Node], data: &Value) -> (String, Option<ExecError>) {
    let dot = V::plain(Val::of_json(data));
    let mut s = State { text, at: At::Start, vars: vec![("$".to_string(), dot.clone())], out: String::new() };
    let result = s.walk_list(&dot, root);
    let err = match result {
        Ok(()) => None,
        Err(Flow::Stop(e)) => Some(e),
        // The parser only accepts break and continue inside range.
        Err(Flow::Break | Flow::Continue) => None,
    };
    (s.out, err)
}

fn position_of(at: At) -> Option<(usize, String)> {
    match at {
        At::Start => None,
        At::Node(n) => match n {
            Node::Action { pos, .. } | Node::Branch { pos, .. } => Some((*pos, n.to_string())),
            _ => Some((0, n.to_string())),
        },
        At::Pipe(p) => Some((p.pos, p.to_string())),
        At::Cmd(c) => Some((c.pos, c.to_string())),
        At::Arg(a) => Some((a.pos(), a.to_string())),
    }
}

impl<'t, 'a> State<'t, 'a>
where
    't: 'a,
{
    fn at(&mut self, at: At<'t>) {
        self.at = at;
    }

    fn error(&self, msg: impl std::fmt::Display) -> Flow {
        let text = match position_of(self.at) {
            None => format!("template: {NAME}: {msg}"),
            Some((pos, context)) => {
                let before = &self.text[..pos.min(self.text.len())];
                let line = 1 + before.matches('\n').count();
                let col = before.rfind('\n').map_or(pos, |nl| pos - (nl + 1));
                format!("template: {NAME}:{line}:{col}: executing \"{NAME}\" at <{context}>: {msg}")
            }
        };
        Flow::Stop(ExecError::Go(text))
    }

    fn unsupported(what: impl Into<String>) -> Flow {
        Flow::Stop(ExecError::Unsupported(what.into()))
    }

    fn walk_list(&mut self, dot: &V<'a>, nodes: &'t [Node]) -> R<()> {
        nodes.iter().try_for_each(|n| self.walk(dot, n))
    }

    fn walk(&mut self, dot: &V<'a>, node: &'t Node) -> R<()> {
        self.at(At::Node(node));
        match node {
            Node::Text(t) => self.out.push_str(t),
            Node::Action { pipe, .. } => {
                // Variables declared here live until the enclosing end.
                let val = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.at(At::Node(node));
                    match &val.val {
                        Val::Invalid => self.out.push_str("<no value>"),
                        v => self.out.push_str(&sprint_one(v)),
                    }
                }
            }
            Node::Branch { kind: Branch::Range, .. } => self.walk_range(dot, node)?,
            Node::Branch { kind, pipe, list, else_list, .. } => {
                let mark = self.vars.len();
                let val = self.eval_pipeline(dot, pipe)?;
                if truth(&val) {
                    let dot = if *kind == Branch::With { &val } else { dot };
                    self.walk_list(dot, list)?;
                } else if let Some(e) = else_list {
                    self.walk_list(dot, e)?;
                }
                self.vars.truncate(mark);
            }
            Node::Break => return Err(Flow::Break),
            Node::Continue => return Err(Flow::Continue),
        }
        Ok(())
    }

    fn walk_range(&mut self, dot: &V<'a>, node: &'t Node) -> R<()> {
        let Node::Branch { pipe, list, else_list, .. } = node else {
            return Ok(());
        };
        let outer = self.vars.len();
        let val = self.eval_pipeline(dot, pipe)?;
        let mark = self.vars.len();
        let mut ran = false;
        match &val.val {
            Val::Slice(items) => {
                for (i, e) in items.iter().enumerate() {
                    ran = true;
                    if !self.iteration(pipe, list, mark, V::plain(Val::Int(i as i64)), V::of_json(e))? {
                        break;
                    }
                }
            }
            Val::Map(m) => {
                for k in sorted_keys(m) {
                    ran = true;
                    let key = V::plain(Val::Str(Cow::Borrowed(k.as_str())));
                    if !self.iteration(pipe, list, mark, key, V::of_json(&m[k]))? {
                        break;
                    }
                }
            }
            Val::Invalid => {}
            Val::Int(_) | Val::Int64(_) | Val::Uint8(_) => {
                // Go 1.22+ counts up to the number; kubectl built with older Go refuses it.
                return Err(Self::unsupported("range over a number"));
            }
            other => return Err(self.error(format!("range can't iterate over {}", sprint_one(other)))),
        }
        if !ran && let Some(e) = else_list {
            self.walk_list(dot, e)?;
        }
        self.vars.truncate(outer);
        Ok(())
    }

    /// One pass of a range body; false when it hit `{{break}}`.
    fn iteration(&mut self, pipe: &'t Pipe, list: &'t [Node], mark: usize, index: V<'a>, elem: V<'a>) -> R<bool> {
        if !pipe.decl.is_empty() {
            if pipe.is_assign {
                let first = if pipe.decl.len() > 1 { index.clone() } else { elem.clone() };
                self.set_var(&pipe.decl[0], first)?;
            } else {
                let n = self.vars.len();
                self.vars[n - 1].1 = elem.clone();
            }
        }
        if pipe.decl.len() > 1 {
            if pipe.is_assign {
                self.set_var(&pipe.decl[1], elem.clone())?;
            } else {
                let n = self.vars.len();
                self.vars[n - 2].1 = index;
            }
        }
        let result = self.walk_list(&elem, list);
        self.vars.truncate(mark);
        match result {
            Ok(()) | Err(Flow::Continue) => Ok(true),
            Err(Flow::Break) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn set_var(&mut self, name: &str, value: V<'a>) -> R<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(v) => {
                v.1 = value;
                Ok(())
            }
            None => Err(self.error(format!("undefined variable: {name}"))),
        }
    }

    fn var_value(&self, name: &str) -> R<V<'a>> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => Err(self.error(format!("undefined variable: {name}"))),
        }
    }

    fn eval_pipeline(&mut self, dot: &V<'a>, pipe: &'t Pipe) -> R<V<'a>> {
        self.at(At::Pipe(pipe));
        let mut value: Option<V<'a>> = None;
        for cmd in &pipe.cmds {
            // An interface{} result is unwrapped before the next command.
            value = Some(self.eval_command(dot, cmd, value)?.unboxed());
        }
        let value = value.unwrap_or_else(V::invalid);
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(name, value.clone())?;
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &[Arg], fin: &Option<V<'a>>) -> R<()> {
        if args.len() > 1 || fin.is_some() {
            return Err(self.error(format!("can't give argument to non-function {}", args[0])));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &V<'a>, cmd: &'t Command, fin: Option<V<'a>>) -> R<V<'a>> {
        let first = &cmd.args[0];
        let has_args = cmd.args.len() > 1 || fin.is_some();
        match first {
            Arg::Field { idents, .. } => {
                self.at(At::Arg(first));
                return self.eval_field_chain(dot.clone(), idents, has_args);
            }
            Arg::Chain { .. } => return self.eval_chain(dot, first, has_args),
            Arg::Ident { name, .. } => {
                self.at(At::Arg(first));
                return self.eval_call(dot, name, At::Cmd(cmd), &cmd.args[1..], fin);
            }
            Arg::Pipe(p) => {
                self.not_a_function(&cmd.args, &fin)?;
                return self.eval_pipeline(dot, p);
            }
            Arg::Variable { .. } => return self.eval_variable(dot, first, &cmd.args, fin),
            _ => {}
        }
        self.at(At::Arg(first));
        self.not_a_function(&cmd.args, &fin)?;
        match first {
            Arg::Bool { value, .. } => Ok(V::plain(Val::Bool(*value))),
            Arg::Dot { .. } => Ok(dot.clone()),
            Arg::Nil { .. } => Err(self.error("nil is not a command")),
            Arg::Number { .. } => self.ideal_constant(first),
            Arg::Str { text, .. } => Ok(V::plain(Val::Str(Cow::Owned(text.clone())))),
            _ => Err(self.error(format!("can't evaluate command {first}"))),
        }
    }

    /// A number literal where no type is known: float64 if written like one, else int.
    fn ideal_constant(&mut self, arg: &'t Arg) -> R<V<'a>> {
        self.at(At::Arg(arg));
        let Arg::Number { number, .. } = arg else {
            return Ok(V::invalid());
        };
        let text = number.text.trim_start_matches(['+', '-']);
        let hex = text.starts_with("0x") || text.starts_with("0X");
        if !number.rune && !hex && number.text.contains(['.', 'e', 'E', 'p', 'P']) {
            return Ok(V::plain(Val::Float(number.float.unwrap_or_default())));
        }
        match number.int {
            Some(i) => Ok(V::plain(Val::Int(i))),
            None => Err(self.error(format!("{} overflows int", number.text))),
        }
    }

    fn eval_chain(&mut self, dot: &V<'a>, chain: &'t Arg, has_args: bool) -> R<V<'a>> {
        self.at(At::Arg(chain));
        let Arg::Chain { node, fields, .. } = chain else {
            return Ok(V::invalid());
        };
        let receiver = self.eval_arg(dot, None, node)?;
        self.eval_fields(receiver, fields, has_args)
    }

    fn eval_variable(&mut self, _dot: &V<'a>, var: &'t Arg, args: &[Arg], fin: Option<V<'a>>) -> R<V<'a>> {
        self.at(At::Arg(var));
        let Arg::Variable { idents, .. } = var else {
            return Ok(V::invalid());
        };
        let value = self.var_value(&idents[0])?;
        if idents.len() == 1 {
            self.not_a_function(args, &fin)?;
            return Ok(value);
        }
        self.eval_fields(value, &idents[1..], args.len() > 1 || fin.is_some())
    }

    fn eval_field_chain(&mut self, receiver: V<'a>, idents: &[String], has_args: bool) -> R<V<'a>> {
        self.eval_fields(receiver, idents, has_args)
    }

    /// `.a.b.c` from a receiver; only the last field may be given arguments (and maps take none).
    fn eval_fields(&mut self, mut receiver: V<'a>, idents: &[String], has_args: bool) -> R<V<'a>> {
        let last = idents.len() - 1;
        for (i, name) in idents.iter().enumerate() {
            receiver = self.eval_field(name, receiver, has_args && i == last)?;
        }
        Ok(receiver)
    }

    fn eval_field(&mut self, name: &str, receiver: V<'a>, has_args: bool) -> R<V<'a>> {
        if matches!(receiver.val, Val::Invalid) {
            // missingkey=default: a field of nothing is nothing.
            return Ok(V::invalid());
        }
        let typ = receiver.type_name();
        match receiver.val {
            Val::Nil => Err(self.error(format!("nil pointer evaluating {typ}.{name}"))),
            Val::Map(m) => {
                if has_args {
                    return Err(self.error(format!("{name} is not a method but has arguments")));
                }
                Ok(m.get(name).map(V::of_json).unwrap_or_else(V::invalid))
            }
            _ => Err(self.error(format!("can't evaluate field {name} in type {typ}"))),
        }
    }

    fn eval_arg(&mut self, dot: &V<'a>, param: Option<Param>, arg: &'t Arg) -> R<V<'a>> {
        self.at(At::Arg(arg));
        let value = match arg {
            Arg::Dot { .. } => dot.clone(),
            Arg::Nil { .. } => {
                return match param {
                    Some(Param::Str) => Err(self.error("cannot assign nil to string")),
                    Some(Param::Any) => Ok(V { val: Val::Nil, boxed: true }),
                    _ => Ok(V::invalid()),
                };
            }
            Arg::Field { idents, .. } => self.eval_field_chain(dot.clone(), idents, false)?,
            Arg::Variable { .. } => self.eval_variable(dot, arg, std::slice::from_ref(arg), None)?,
            Arg::Pipe(p) => self.eval_pipeline(dot, p)?,
            Arg::Ident { name, .. } => self.eval_call(dot, name, At::Arg(arg), &[], None)?,
            Arg::Chain { .. } => self.eval_chain(dot, arg, false)?,
            Arg::Str { text, .. } => {
                return Ok(V::plain(Val::Str(Cow::Owned(text.clone()))));
            }
            Arg::Bool { value, .. } => {
                if param == Some(Param::Str) {
                    return Err(self.error(format!("expected string; found {arg}")));
                }
                return Ok(V::plain(Val::Bool(*value)));
            }
            Arg::Number { .. } => {
                if param == Some(Param::Str) {
                    return Err(self.error(format!("expected string; found {arg}")));
                }
                return self.ideal_constant(arg);
            }
        };
        self.validate(value, param)
    }

    /// Go's validateType: a value passed to a parameter.
    fn validate(&self, v: V<'a>, param: Option<Param>) -> R<V<'a>> {
        match (param, &v.val) {
            (None, _) | (Some(Param::Value), _) => Ok(v),
            (Some(Param::Any), Val::Invalid) => Ok(V { val: Val::Nil, boxed: true }),
            (Some(Param::Any), _) => Ok(v),
            (Some(Param::Str), Val::Invalid) => Err(self.error("invalid value; expected string")),
            (Some(Param::Str), Val::Str(_)) => Ok(V::plain(v.val)),
            (Some(Param::Str), Val::Nil) => Err(self.error("wrong type for value; expected string; got interface {}")),
            (Some(Param::Str), other) => {
                Err(self.error(format!("wrong type for value; expected string; got {}", other.type_name())))
            }
        }
    }

    fn eval_call(&mut self, dot: &V<'a>, name: &str, node: At<'t>, args: &'t [Arg], fin: Option<V<'a>>) -> R<V<'a>> {
        use Param::{Any, Str, Value};
        let (fixed, variadic): (&[Param], Option<Param>) = match name {
            "and" | "or" | "index" | "eq" => (&[Value], Some(Value)),
            "not" | "len" => (&[Value], None),
            "ne" | "lt" | "le" | "gt" | "ge" => (&[Value, Value], None),
            "print" | "println" | "html" | "js" | "urlquery" => (&[], Some(Any)),
            "printf" => (&[Str], Some(Any)),
            "base64decode" => (&[Str], None),
            "exists" => (&[Any], Some(Any)),
            other => return Err(Self::unsupported(format!("the function {other:?}"))),
        };
        let num_in = args.len() + usize::from(fin.is_some());
        let declared = fixed.len() + usize::from(variadic.is_some());
        if variadic.is_some() {
            if num_in < fixed.len() {
                return Err(self.error(format!(
                    "wrong number of args for {name}: want at least {} got {}",
                    fixed.len(),
                    args.len()
                )));
            }
        } else if num_in != declared {
            return Err(self.error(format!("wrong number of args for {name}: want {declared} got {num_in}")));
        }
        if name == "and" || name == "or" {
            // Short-circuit: the first argument that decides, else the last.
            let mut v = V::invalid();
            for a in args {
                v = self.eval_arg(dot, Some(Value), a)?;
                if truth(&v) == (name == "or") {
                    return Ok(v);
                }
            }
            if let Some(f) = fin {
                v = f;
            }
            return Ok(v);
        }
        let mut argv = Vec::with_capacity(num_in);
        for (i, a) in args.iter().enumerate() {
            let param = fixed.get(i).copied().or(variadic);
            argv.push(self.eval_arg(dot, param, a)?);
        }
        if let Some(f) = fin {
            let param = match variadic {
                Some(v) if num_in > fixed.len() => v,
                _ => fixed[num_in - 1],
            };
            argv.push(self.validate(f, Some(param))?);
        }
        match call(name, argv) {
            Ok(v) => Ok(v),
            Err(CallError::Go(msg)) => {
                self.at(node);
                Err(self.error(format!("error calling {name}: {msg}")))
            }
            Err(CallError::Unsupported(what)) => Err(Self::unsupported(what)),
        }
    }
}

/// Go's isTrue: the zero value of its type, or empty, is false.
fn truth(v: &V) -> bool {
    match &v.val {
        Val::Invalid | Val::Nil => false,
        Val::Bool(b) => *b,
        Val::Int(i) | Val::Int64(i) => *i != 0,
        Val::Uint8(b) => *b != 0,
        Val::Float(f) => *f != 0.0,
        Val::Str(s) => !s.is_empty(),
        Val::Map(m) => !m.is_empty(),
        Val::Slice(s) => !s.is_empty(),
    }
}

fn call<'a>(name: &str, argv: Vec<V<'a>>) -> Result<V<'a>, CallError> {
    let vals = || argv.iter().map(|v| v.val.clone()).collect::<Vec<_>>();
    let string = |v: Val| {
        V::plain(Val::Str(Cow::Owned(match v {
            Val::Str(s) => s.into_owned(),
            _ => String::new(),
        })))
    };
    Ok(match name {
        "not" => V::plain(Val::Bool(!truth(&argv[0]))),
        "len" => V::plain(Val::Int(length(&argv[0])?)),
        "index" => index(&argv)?,
        "eq" => V::plain(Val::Bool(eq(&argv[0], &argv[1..])?)),
        "ne" => V::plain(Val::Bool(!eq(&argv[0], &argv[1..])?)),
        "lt" => V::plain(Val::Bool(lt(&argv[0], &argv[1])?)),
        "le" => V::plain(Val::Bool(lt(&argv[0], &argv[1])? || eq(&argv[0], &argv[1..])?)),
        "gt" => V::plain(Val::Bool(!(lt(&argv[0], &argv[1])? || eq(&argv[0], &argv[1..])?))),
        "ge" => V::plain(Val::Bool(!lt(&argv[0], &argv[1])?)),
        "print" => string(Val::Str(Cow::Owned(sprint(&vals())))),
        "println" => string(Val::Str(Cow::Owned(sprintln(&vals())))),
        "printf" => {
            let v = vals();
            let Val::Str(format) = &v[0] else {
                return Err(CallError::Unsupported("printf without a format".into()));
            };
            string(Val::Str(Cow::Owned(sprintf(format, &v[1..])?)))
        }
        "html" => string(Val::Str(Cow::Owned(html_escape(&eval_args(&vals()))))),
        "js" => string(Val::Str(Cow::Owned(js_escape(&eval_args(&vals()))))),
        "urlquery" => string(Val::Str(Cow::Owned(query_escape(&eval_args(&vals()))))),
        "base64decode" => {
            let Val::Str(s) = &argv[0].val else {
                return Err(CallError::Go("base64 decode failed".into()));
            };
            let bytes = base64_std(s.as_bytes())
                .map_err(|at| CallError::Go(format!("base64 decode failed: illegal base64 data at input byte {at}")))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| CallError::Unsupported("base64decode of data that is not UTF-8 text".into()))?;
            string(Val::Str(Cow::Owned(text)))
        }
        "exists" => V::plain(Val::Bool(exists(&argv))),
        other => return Err(CallError::Unsupported(format!("the function {other:?}"))),
    })
}

fn length(v: &V) -> Result<i64, CallError> {
    match &v.val {
        Val::Nil => Err(CallError::Go("len of nil pointer".into())),
        Val::Invalid => Err(CallError::Go("reflect: call of reflect.Value.Type on zero Value".into())),
        Val::Map(m) => Ok(m.len() as i64),
        Val::Slice(s) => Ok(s.len() as i64),
        Val::Str(s) => Ok(s.len() as i64),
        other => Err(CallError::Go(format!("len of type {}", other.type_name()))),
    }
}

fn index_arg(i: &V, len: usize) -> Result<usize, CallError> {
    let x = match &i.val {
        Val::Invalid | Val::Nil => return Err(CallError::Go("cannot index slice/array with nil".into())),
        v => {
            v.as_int().ok_or_else(|| CallError::Go(format!("cannot index slice/array with type {}", v.type_name())))?
        }
    };
    if x < 0 || x as u64 > len as u64 {
        return Err(CallError::Go(format!("index out of range: {x}")));
    }
    Ok(x as usize)
}

fn index<'a>(argv: &[V<'a>]) -> Result<V<'a>, CallError> {
    let mut item = argv[0].clone().unboxed();
    if matches!(item.val, Val::Invalid) {
        return Err(CallError::Go("index of untyped nil".into()));
    }
    for i in &argv[1..] {
        let i = i.clone().unboxed();
        if item.boxed && matches!(item.val, Val::Nil) {
            return Err(CallError::Go("index of nil pointer".into()));
        }
        item = match &item.val {
            Val::Slice(items) => {
                let x = index_arg(&i, items.len())?;
                let e = items.get(x).ok_or_else(|| CallError::Go("reflect: slice index out of range".into()))?;
                V::of_json(e)
            }
            Val::Str(s) => {
                let x = index_arg(&i, s.len())?;
                let b =
                    s.as_bytes().get(x).ok_or_else(|| CallError::Go("reflect: string index out of range".into()))?;
                V::plain(Val::Uint8(*b))
            }
            Val::Map(m) => match &i.val {
                Val::Invalid | Val::Nil => return Err(CallError::Go("value is nil; should be of type string".into())),
                Val::Str(k) => m.get(k.as_ref()).map(V::of_json).unwrap_or(V { val: Val::Nil, boxed: true }),
                other => return Err(CallError::Go(format!("value has type {}; should be string", other.type_name()))),
            },
            other => return Err(CallError::Go(format!("can't index item of type {}", other.type_name()))),
        };
    }
    Ok(item)
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Kind {
    Invalid,
    Bool,
    Int,
    Uint,
    Float,
    Str,
}

fn kind(v: &Val) -> Kind {
    match v {
        Val::Bool(_) => Kind::Bool,
        Val::Int(_) | Val::Int64(_) => Kind::Int,
        Val::Uint8(_) => Kind::Uint,
        Val::Float(_) => Kind::Float,
        Val::Str(_) => Kind::Str,
        _ => Kind::Invalid,
    }
}

fn incompatible(a: &Val, b: &Val) -> CallError {
    CallError::Go(format!("incompatible types for comparison: {} and {}", a.type_name(), b.type_name()))
}

fn eq(a: &V, others: &[V]) -> Result<bool, CallError> {
    let a = a.clone().unboxed().val;
    if others.is_empty() {
        return Err(CallError::Go("missing argument for comparison".into()));
    }
    let k1 = kind(&a);
    for b in others {
        let b = b.clone().unboxed().val;
        let k2 = kind(&b);
        let equal = if k1 != k2 {
            match (k1, k2) {
                (Kind::Int, Kind::Uint) | (Kind::Uint, Kind::Int) => a.as_int() == b.as_int(),
                _ if !matches!(a, Val::Invalid) && !matches!(b, Val::Invalid) => return Err(incompatible(&a, &b)),
                _ => false,
            }
        } else {
            match (&a, &b) {
                (Val::Bool(x), Val::Bool(y)) => x == y,
                (Val::Float(x), Val::Float(y)) => x == y,
                (Val::Str(x), Val::Str(y)) => x == y,
                _ if k1 == Kind::Int || k1 == Kind::Uint => a.as_int() == b.as_int(),
                // Nil against anything: equal only to nil.
                (Val::Invalid, Val::Invalid) => true,
                (Val::Invalid, _) | (_, Val::Invalid) => {
                    if std::mem::discriminant(&a) != std::mem::discriminant(&b)
                        && !matches!(a, Val::Invalid)
                        && !matches!(b, Val::Invalid)
                    {
                        return Err(CallError::Unsupported("eq of a map or list with another kind".into()));
                    }
                    false
                }
                _ => return Err(CallError::Unsupported("eq of maps or lists (Go cannot compare them)".into())),
            }
        };
        if equal {
            return Ok(true);
        }
    }
    Ok(false)
}

fn lt(a: &V, b: &V) -> Result<bool, CallError> {
    let bad = || CallError::Go("invalid type for comparison".into());
    let a = a.clone().unboxed().val;
    let k1 = kind(&a);
    if k1 == Kind::Invalid {
        return Err(bad());
    }
    let b = b.clone().unboxed().val;
    let k2 = kind(&b);
    if k2 == Kind::Invalid {
        return Err(bad());
    }
    if k1 != k2 {
        return match (k1, k2) {
            (Kind::Int, Kind::Uint) | (Kind::Uint, Kind::Int) => Ok(a.as_int() < b.as_int()),
            _ => Err(incompatible(&a, &b)),
        };
    }
    Ok(match (&a, &b) {
        (Val::Bool(_), _) => return Err(bad()),
        (Val::Float(x), Val::Float(y)) => x < y,
        (Val::Str(x), Val::Str(y)) => x < y,
        _ => a.as_int() < b.as_int(),
    })
}

/// Go's evalArgs: the one string argument as is, else fmt.Sprint of the arguments, a nil one
/// printed `<no value>`.
fn eval_args(args: &[Val]) -> String {
    if let [Val::Str(s)] = args {
        return s.to_string();
    }
    let printable: Vec<Val> = args
        .iter()
        .map(|a| match a {
            Val::Nil | Val::Invalid => Val::Str(Cow::Borrowed("<no value>")),
            other => other.clone(),
        })
        .collect();
    sprint(&printable)
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push('\u{FFFD}'),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u00{:02X}", c as u32)),
            c if c.is_ascii() || go_printable(c) => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out
}

/// Go's url.QueryEscape.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's base64.StdEncoding.DecodeString; the error is the offset Go reports.
fn base64_std(src: &[u8]) -> Result<Vec<u8>, usize> {
    let value = |c: u8| -> Option<u8> {
        match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let newline = |c: u8| c == b'\n' || c == b'\r';
    let mut out = Vec::new();
    let mut si = 0;
    loop {
        let mut buf = [0u8; 4];
        let mut len = 4;
        let mut trailing = None;
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                return Err(si - j);
            }
            let c = src[si];
            si += 1;
            if let Some(v) = value(c) {
                buf[j] = v;
                j += 1;
                continue;
            }
            if newline(c) {
                continue;
            }
            if c != b'=' || j < 2 {
                return Err(si - 1);
            }
            if j == 2 {
                while si < src.len() && newline(src[si]) {
                    si += 1;
                }
                if si == src.len() {
                    return Err(src.len());
                }
                if src[si] != b'=' {
                    return Err(si - 1);
                }
                si += 1;
            }
            while si < src.len() && newline(src[si]) {
                si += 1;
            }
            if si < src.len() {
                trailing = Some(si);
            }
            len = j;
            break;
        }
        let v = (u32::from(buf[0]) << 18) | (u32::from(buf[1]) << 12) | (u32::from(buf[2]) << 6) | u32::from(buf[3]);
        let bytes = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
        out.extend_from_slice(&bytes[..len - 1]);
        if let Some(at) = trailing {
            return Err(at);
        }
    }
}

/// kubectl's `exists`: whether `index` would find something non-nil along the path.
fn exists(argv: &[V]) -> bool {
    let mut v = argv[0].clone().unboxed();
    for key in &argv[1..] {
        let key = key.clone().unboxed();
        if matches!(v.val, Val::Nil) {
            return false;
        }
        v = match (&v.val, &key.val) {
            (Val::Slice(items), k) => match k.as_int() {
                Some(i) if i >= 0 && (i as usize) < items.len() => V::of_json(&items[i as usize]),
                _ => return false,
            },
            (Val::Str(s), k) => match k.as_int() {
                Some(i) if i >= 0 && (i as usize) < s.len() => V::plain(Val::Uint8(s.as_bytes()[i as usize])),
                _ => return false,
            },
            (Val::Map(m), Val::Invalid) => m.get("").map(V::of_json).unwrap_or(V { val: Val::Nil, boxed: true }),
            (Val::Map(m), Val::Str(k)) => m.get(k.as_ref()).map(V::of_json).unwrap_or(V { val: Val::Nil, boxed: true }),
            _ => return false,
        };
    }
    !matches!(v.val, Val::Nil)
}
