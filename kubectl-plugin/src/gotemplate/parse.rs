//! Lexer and parser of Go's text/template, following Go's own (text/template/parse) step for step so
//! that a template Go rejects is rejected here with Go's message, and positions in execution errors
//! (`output:LINE:COL`) are Go's.

use std::fmt;

use super::value::{go_printable, go_quote};

/// The template name kubectl gives (`template.New("output")`), in every message.
pub const NAME: &str = "output";

/// Why a template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Go rejects it too: Go's message (`template: output:1: unclosed action`).
    Go(String),
    /// Go accepts it but this engine does not implement the construct named.
    Unsupported(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Error,
    Bool,
    Char,
    CharConstant,
    Complex,
    Assign,
    Declare,
    Eof,
    Field,
    Identifier,
    LeftDelim,
    LeftParen,
    Number,
    Pipe,
    RawString,
    RightDelim,
    RightParen,
    Space,
    Str,
    Text,
    Variable,
    // Keywords.
    Block,
    Break,
    Continue,
    Dot,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

impl Tok {
    fn is_keyword(self) -> bool {
        matches!(
            self,
            Tok::Block
                | Tok::Break
                | Tok::Continue
                | Tok::Dot
                | Tok::Define
                | Tok::Else
                | Tok::End
                | Tok::If
                | Tok::Nil
                | Tok::Range
                | Tok::Template
                | Tok::With
        )
    }
}

#[derive(Debug, Clone)]
struct Item {
    typ: Tok,
    pos: usize,
    val: String,
    line: usize,
}

impl fmt::Display for Item {
    /// Go's item.String(), as parse errors quote tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.typ {
            Tok::Eof => f.write_str("EOF"),
            Tok::Error => f.write_str(&self.val),
            t if t.is_keyword() => write!(f, "<{}>", self.val),
            _ if self.val.chars().count() > 10 => {
                let head: String = self.val.chars().take(10).collect();
                write!(f, "{}...", go_quote(&head))
            }
            _ => f.write_str(&go_quote(&self.val)),
        }
    }
}

const SPACE: &str = " \t\r\n";

fn is_space(c: char) -> bool {
    SPACE.contains(c)
}

fn is_alphanumeric(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

fn has_left_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(b[1] as char)
}

fn has_right_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && is_space(b[0] as char) && b[1] == b'-'
}

/// Go's lexer, run to the end: its items never depend on the parser, so lexing first is the same.
struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    line: usize,
    start_line: usize,
    paren_depth: i32,
    items: Vec<Item>,
}

impl<'a> Lexer<'a> {
    fn run(input: &'a str) -> Vec<Item> {
        let mut l = Lexer { input, pos: 0, start: 0, line: 1, start_line: 1, paren_depth: 0, items: Vec::new() };
        let mut inside = false;
        loop {
            let done = if inside { l.inside_action(&mut inside) } else { l.text(&mut inside) };
            if done {
                break;
            }
        }
        l.items
    }

    fn rest(&self) -> &'a str {
        &self.input[self.pos..]
    }

    fn next(&mut self) -> Option<char> {
        let c = self.rest().chars().next()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn backup(&mut self, c: Option<char>) {
        if let Some(c) = c {
            self.pos -= c.len_utf8();
            if c == '\n' {
                self.line -= 1;
            }
        }
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn emit(&mut self, typ: Tok) {
        let val = self.input[self.start..self.pos].to_string();
        self.items.push(Item { typ, pos: self.start, val, line: self.start_line });
        self.start = self.pos;
        self.start_line = self.line;
    }

    fn ignore(&mut self) {
        self.line += self.input[self.start..self.pos].matches('\n').count();
        self.start = self.pos;
        self.start_line = self.line;
    }

    /// An error item ends the stream (returns true: done).
    fn error(&mut self, msg: String) -> bool {
        self.items.push(Item { typ: Tok::Error, pos: self.start, val: msg, line: self.start_line });
        true
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek() {
            Some(c) if valid.contains(c) => {
                self.next();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    fn text(&mut self, inside: &mut bool) -> bool {
        if let Some(x) = self.rest().find("{{") {
            if x > 0 {
                self.pos += x;
                let delim_end = self.pos + 2;
                let trim = if has_left_trim(&self.input[delim_end..]) {
                    let t = &self.input[self.start..self.pos];
                    t.len() - t.trim_end_matches(is_space).len()
                } else {
                    0
                };
                self.pos -= trim;
                self.line += self.input[self.start..self.pos].matches('\n').count();
                let val = self.input[self.start..self.pos].to_string();
                let item = Item { typ: Tok::Text, pos: self.start, val, line: self.start_line };
                self.start = self.pos;
                self.start_line = self.line;
                self.pos += trim;
                self.ignore();
                if !item.val.is_empty() {
                    self.items.push(item);
                }
            }
            return self.left_delim(inside);
        }
        self.pos = self.input.len();
        if self.pos > self.start {
            self.line += self.input[self.start..self.pos].matches('\n').count();
            self.emit(Tok::Text);
        }
        self.emit(Tok::Eof);
        true
    }

    fn left_delim(&mut self, inside: &mut bool) -> bool {
        self.pos += 2;
        let trim = has_left_trim(self.rest());
        let after = if trim { 2 } else { 0 };
        if self.input[self.pos + after..].starts_with("/*") {
            self.pos += after;
            self.ignore();
            return self.comment();
        }
        self.emit(Tok::LeftDelim);
        *inside = true;
        self.pos += after;
        self.ignore();
        self.paren_depth = 0;
        false
    }

    fn at_right_delim(&self) -> (bool, bool) {
        if has_right_trim(self.rest()) && self.input[self.pos + 2..].starts_with("}}") {
            return (true, true);
        }
        (self.rest().starts_with("}}"), false)
    }

    fn comment(&mut self) -> bool {
        self.pos += 2;
        let Some(x) = self.rest().find("*/") else {
            return self.error("unclosed comment".into());
        };
        self.pos += x + 2;
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return self.error("comment ends before closing delimiter".into());
        }
        self.line += self.input[self.start..self.pos].matches('\n').count();
        self.start = self.pos;
        self.start_line = self.line;
        if trim {
            self.pos += 2;
        }
        self.pos += 2;
        if trim {
            let r = self.rest();
            self.pos += r.len() - r.trim_start_matches(is_space).len();
        }
        self.ignore();
        false
    }

    fn right_delim(&mut self, inside: &mut bool) -> bool {
        let (_, trim) = self.at_right_delim();
        if trim {
            self.pos += 2;
            self.ignore();
        }
        self.pos += 2;
        self.emit(Tok::RightDelim);
        if trim {
            let r = self.rest();
            self.pos += r.len() - r.trim_start_matches(is_space).len();
            self.ignore();
        }
        *inside = false;
        false
    }

    fn inside_action(&mut self, inside: &mut bool) -> bool {
        let (delim, _) = self.at_right_delim();
        if delim {
            if self.paren_depth == 0 {
                return self.right_delim(inside);
            }
            return self.error("unclosed left paren".into());
        }
        let Some(c) = self.next() else {
            return self.error("unclosed action".into());
        };
        match c {
            c if is_space(c) => {
                self.backup(Some(c));
                self.space(inside)
            }
            '=' => {
                self.emit(Tok::Assign);
                false
            }
            ':' => {
                if self.next() != Some('=') {
                    return self.error("expected :=".into());
                }
                self.emit(Tok::Declare);
                false
            }
            '|' => {
                self.emit(Tok::Pipe);
                false
            }
            '"' => self.quote(),
            '`' => self.raw_quote(),
            '$' => self.variable(),
            '\'' => self.char_constant(),
            '.' if self.peek().is_some_and(|c| !c.is_ascii_digit()) => self.field_or_variable(Tok::Field),
            '.' | '+' | '-' | '0'..='9' => {
                self.backup(Some(c));
                self.number()
            }
            c if is_alphanumeric(c) => {
                self.backup(Some(c));
                self.identifier()
            }
            '(' => {
                self.paren_depth += 1;
                self.emit(Tok::LeftParen);
                false
            }
            ')' => {
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    return self.error("unexpected right paren".into());
                }
                self.emit(Tok::RightParen);
                false
            }
            c if c.is_ascii() && !c.is_ascii_control() => {
                self.emit(Tok::Char);
                false
            }
            c => self.error(format!("unrecognized character in action: {}", go_sharp_u(c))),
        }
    }

    fn space(&mut self, inside: &mut bool) -> bool {
        let mut n = 0;
        while self.peek().is_some_and(is_space) {
            self.next();
            n += 1;
        }
        if has_right_trim(&self.input[self.pos - 1..]) && self.input[self.pos - 1 + 2..].starts_with("}}") {
            let c = self.input[..self.pos].chars().next_back();
            self.backup(c);
            if n == 1 {
                return self.right_delim(inside);
            }
        }
        self.emit(Tok::Space);
        false
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) || ".,|:)(".contains(c) => true,
            _ => self.rest().starts_with("}}"),
        }
    }

    fn identifier(&mut self) -> bool {
        loop {
            let c = self.next();
            if c.is_some_and(is_alphanumeric) {
                continue;
            }
            self.backup(c);
            if !self.at_terminator() {
                return self.error(format!("bad character {}", c.map_or("U+FFFFFFFFFFFFFFFF".into(), go_sharp_u)));
            }
            let word = &self.input[self.start..self.pos];
            let typ = match word {
                "." => Tok::Dot,
                "block" => Tok::Block,
                "break" => Tok::Break,
                "continue" => Tok::Continue,
                "define" => Tok::Define,
                "else" => Tok::Else,
                "end" => Tok::End,
                "if" => Tok::If,
                "range" => Tok::Range,
                "nil" => Tok::Nil,
                "template" => Tok::Template,
                "with" => Tok::With,
                "true" | "false" => Tok::Bool,
                _ => Tok::Identifier,
            };
            self.emit(typ);
            return false;
        }
    }

    fn variable(&mut self) -> bool {
        if self.at_terminator() {
            self.emit(Tok::Variable);
            return false;
        }
        self.field_or_variable(Tok::Variable)
    }

    fn field_or_variable(&mut self, typ: Tok) -> bool {
        if self.at_terminator() {
            self.emit(if typ == Tok::Variable { Tok::Variable } else { Tok::Dot });
            return false;
        }
        let mut c;
        loop {
            c = self.next();
            if !c.is_some_and(is_alphanumeric) {
                self.backup(c);
                break;
            }
        }
        if !self.at_terminator() {
            return self.error(format!("bad character {}", c.map_or("U+FFFFFFFFFFFFFFFF".into(), go_sharp_u)));
        }
        self.emit(typ);
        false
    }

    fn char_constant(&mut self) -> bool {
        self.quoted('\'', Tok::CharConstant, "unterminated character constant")
    }

    /// A '...' or "..." literal: escapes skip a character, a newline or the end is an error.
    fn quoted(&mut self, close: char, typ: Tok, unterminated: &str) -> bool {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    Some(c) if c != '\n' => {}
                    _ => return self.error(unterminated.into()),
                },
                None | Some('\n') => return self.error(unterminated.into()),
                Some(c) if c == close => break,
                _ => {}
            }
        }
        self.emit(typ);
        false
    }

    fn number(&mut self) -> bool {
        if !self.scan_number() {
            return self.error(format!("bad number syntax: {}", go_quote(&self.input[self.start..self.pos])));
        }
        if matches!(self.peek(), Some('+' | '-')) {
            if !self.scan_number() || !self.input[..self.pos].ends_with('i') {
                return self.error(format!("bad number syntax: {}", go_quote(&self.input[self.start..self.pos])));
            }
            self.emit(Tok::Complex);
            return false;
        }
        self.emit(Tok::Number);
        false
    }

    fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if self.peek().is_some_and(is_alphanumeric) {
            self.next();
            return false;
        }
        true
    }

    fn quote(&mut self) -> bool {
        self.quoted('"', Tok::Str, "unterminated quoted string")
    }

    fn raw_quote(&mut self) -> bool {
        loop {
            match self.next() {
                None => return self.error("unterminated raw quoted string".into()),
                Some('`') => break,
                _ => {}
            }
        }
        self.emit(Tok::RawString);
        false
    }
}

/// Go's `%#U`: `U+0007` or, for a printable rune, `U+00E9 'é'`.
fn go_sharp_u(c: char) -> String {
    let code = format!("U+{:04X}", c as u32);
    if go_printable(c) { format!("{code} '{c}'") } else { code }
}

// ---------------------------------------------------------------------------------------------
// The tree.

/// A number literal, as Go's NumberNode keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Number {
    pub text: String,
    pub int: Option<i64>,
    pub float: Option<f64>,
    /// `'a'`: a rune constant (an int for the executor).
    pub rune: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// `.a.b`: the identifiers without dots.
    Field {
        pos: usize,
        idents: Vec<String>,
    },
    /// `(pipe).a.b` or `fn.a` (an identifier followed by fields).
    Chain {
        pos: usize,
        node: Box<Arg>,
        fields: Vec<String>,
    },
    /// `$x.a.b`: the variable name (with `$`) then the fields.
    Variable {
        pos: usize,
        idents: Vec<String>,
    },
    Ident {
        pos: usize,
        name: String,
    },
    Dot {
        pos: usize,
    },
    Nil {
        pos: usize,
    },
    Bool {
        pos: usize,
        value: bool,
    },
    Number {
        pos: usize,
        number: Number,
    },
    Str {
        pos: usize,
        quoted: String,
        text: String,
    },
    Pipe(Box<Pipe>),
}

impl Arg {
    pub fn pos(&self) -> usize {
        match self {
            Arg::Field { pos, .. }
            | Arg::Chain { pos, .. }
            | Arg::Variable { pos, .. }
            | Arg::Ident { pos, .. }
            | Arg::Dot { pos }
            | Arg::Nil { pos }
            | Arg::Bool { pos, .. }
            | Arg::Number { pos, .. }
            | Arg::Str { pos, .. } => *pos,
            Arg::Pipe(p) => p.pos,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub pos: usize,
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pipe {
    pub pos: usize,
    pub is_assign: bool,
    pub decl: Vec<String>,
    pub cmds: Vec<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Branch {
    If,
    Range,
    With,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Text(String),
    Action { pos: usize, pipe: Pipe },
    Branch { kind: Branch, pos: usize, pipe: Pipe, list: Vec<Node>, else_list: Option<Vec<Node>> },
    Break,
    Continue,
}

/// What `itemList` stops at, besides the nodes.
enum Stop {
    End,
    Else,
}

// String forms (Go's node String()), for the `at <...>` of execution errors.

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Field { idents, .. } => idents.iter().try_for_each(|i| write!(f, ".{i}")),
            Arg::Chain { node, fields, .. } => {
                match node.as_ref() {
                    Arg::Pipe(p) => write!(f, "({p})")?,
                    other => write!(f, "{other}")?,
                }
                fields.iter().try_for_each(|i| write!(f, ".{i}"))
            }
            Arg::Variable { idents, .. } => f.write_str(&idents.join(".")),
            Arg::Ident { name, .. } => f.write_str(name),
            Arg::Dot { .. } => f.write_str("."),
            Arg::Nil { .. } => f.write_str("nil"),
            Arg::Bool { value, .. } => write!(f, "{value}"),
            Arg::Number { number, .. } => f.write_str(&number.text),
            Arg::Str { quoted, .. } => f.write_str(quoted),
            Arg::Pipe(p) => write!(f, "{p}"),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match a {
                Arg::Pipe(p) => write!(f, "({p})")?,
                other => write!(f, "{other}")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            f.write_str(&self.decl.join(", "))?;
            f.write_str(if self.is_assign { " = " } else { " := " })?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Text(t) => f.write_str(t),
            Node::Action { pipe, .. } => write!(f, "{{{{{pipe}}}}}"),
            Node::Branch { kind, pipe, list, else_list, .. } => {
                let name = match kind {
                    Branch::If => "if",
                    Branch::Range => "range",
                    Branch::With => "with",
                };
                write!(f, "{{{{{name} {pipe}}}}}")?;
                list.iter().try_for_each(|n| write!(f, "{n}"))?;
                if let Some(e) = else_list {
                    f.write_str("{{else}}")?;
                    e.iter().try_for_each(|n| write!(f, "{n}"))?;
                }
                f.write_str("{{end}}")
            }
            Node::Break => f.write_str("{{break}}"),
            Node::Continue => f.write_str("{{continue}}"),
        }
    }
}

/// The functions a template may name: Go's builtins and kubectl's two.
pub const FUNCTIONS: &[&str] = &[
    "and",
    "call",
    "html",
    "index",
    "slice",
    "js",
    "len",
    "not",
    "or",
    "print",
    "printf",
    "println",
    "urlquery",
    "eq",
    "ge",
    "gt",
    "le",
    "lt",
    "ne",
    "exists",
    "base64decode",
];

/// Functions Go has that this engine refuses (`call` needs Go functions in the data; `slice` depends
/// on the capacity Go's JSON decoder happened to give a slice).
const REFUSED_FUNCTIONS: &[&str] = &["call", "slice"];

type PResult<T> = Result<T, ParseError>;

struct Parser {
    items: Vec<Item>,
    i: usize,
    /// The furthest item read: Go reports parse errors at its line.
    furthest: usize,
    vars: Vec<String>,
    action_line: usize,
    range_depth: usize,
    depth: usize,
}

pub fn parse(text: &str) -> PResult<Vec<Node>> {
    let items = Lexer::run(text);
    let mut p = Parser { items, i: 0, furthest: 0, vars: vec!["$".into()], action_line: 0, range_depth: 0, depth: 0 };
    let mut root = Vec::new();
    while p.peek().typ != Tok::Eof {
        if p.peek().typ == Tok::LeftDelim {
            let mark = p.i;
            p.next();
            if p.next_non_space().typ == Tok::Define {
                return Err(unsupported("{{define}} (named templates)"));
            }
            p.i = mark;
        }
        match p.text_or_action()? {
            Ok(n) => root.push(n),
            Err(Stop::End) => return Err(p.error("unexpected {{end}}")),
            Err(Stop::Else) => return Err(p.error("unexpected {{else}}")),
        }
    }
    Ok(root)
}

fn unsupported(what: &str) -> ParseError {
    ParseError::Unsupported(what.to_string())
}

impl Parser {
    fn item(&mut self, i: usize) -> Item {
        let i = i.min(self.items.len() - 1);
        self.furthest = self.furthest.max(i);
        self.items[i].clone()
    }

    fn next(&mut self) -> Item {
        // Past the end the last item (EOF or an error) repeats, as Go's lexer does.
        let it = self.item(self.i);
        self.i += 1;
        it
    }

    fn backup(&mut self) {
        self.i -= 1;
    }

    fn peek(&mut self) -> Item {
        self.item(self.i)
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let t = self.next();
            if t.typ != Tok::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let t = self.next_non_space();
        self.backup();
        t
    }

    fn error(&self, msg: &str) -> ParseError {
        let line = self.items[self.furthest].line;
        ParseError::Go(format!("template: {NAME}:{line}: {msg}"))
    }

    fn unexpected(&self, token: &Item, context: &str) -> ParseError {
        if token.typ == Tok::Error {
            let mut extra = String::new();
            if self.action_line != 0 && self.action_line != token.line {
                extra = format!(" in action started at {NAME}:{}", self.action_line);
                if token.val.ends_with(" action") {
                    extra = extra[" in action".len()..].to_string();
                }
            }
            return self.error(&format!("{token}{extra}"));
        }
        self.error(&format!("unexpected {token} in {context}"))
    }

    fn expect(&mut self, expected: Tok, context: &str) -> PResult<Item> {
        let t = self.next_non_space();
        if t.typ != expected {
            return Err(self.unexpected(&t, context));
        }
        Ok(t)
    }

    /// Nodes until `{{end}}` or `{{else}}`.
    fn item_list(&mut self) -> PResult<(Vec<Node>, Stop)> {
        let mut list = Vec::new();
        while self.peek_non_space().typ != Tok::Eof {
            match self.text_or_action()? {
                Ok(n) => list.push(n),
                Err(stop) => return Ok((list, stop)),
            }
        }
        Err(self.error("unexpected EOF"))
    }

    fn text_or_action(&mut self) -> PResult<Result<Node, Stop>> {
        let token = self.next_non_space();
        match token.typ {
            Tok::Text => Ok(Ok(Node::Text(token.val))),
            Tok::LeftDelim => {
                self.action_line = token.line;
                let r = self.action();
                self.action_line = 0;
                r
            }
            _ => Err(self.unexpected(&token, "input")),
        }
    }

    fn action(&mut self) -> PResult<Result<Node, Stop>> {
        let token = self.next_non_space();
        match token.typ {
            Tok::Block => return Err(unsupported("{{block}} (named templates)")),
            Tok::Template => return Err(unsupported("{{template}} (named templates)")),
            Tok::Break | Tok::Continue => {
                let (node, name) =
                    if token.typ == Tok::Break { (Node::Break, "break") } else { (Node::Continue, "continue") };
                let t = self.next_non_space();
                if t.typ != Tok::RightDelim {
                    return Err(self.unexpected(&t, &format!("{{{{{name}}}}}")));
                }
                if self.range_depth == 0 {
                    return Err(self.error(&format!("{{{{{name}}}}} outside {{{{range}}}}")));
                }
                return Ok(Ok(node));
            }
            Tok::Else => {
                let peek = self.peek_non_space();
                if matches!(peek.typ, Tok::If | Tok::With) {
                    return Ok(Err(Stop::Else));
                }
                self.expect(Tok::RightDelim, "else")?;
                return Ok(Err(Stop::Else));
            }
            Tok::End => {
                self.expect(Tok::RightDelim, "end")?;
                return Ok(Err(Stop::End));
            }
            Tok::If => return self.control(Branch::If).map(Ok),
            Tok::Range => return self.control(Branch::Range).map(Ok),
            Tok::With => return self.control(Branch::With).map(Ok),
            _ => {}
        }
        self.backup();
        let pos = self.peek().pos;
        let pipe = self.pipeline("command", Tok::RightDelim)?;
        Ok(Ok(Node::Action { pos, pipe }))
    }

    fn control(&mut self, kind: Branch) -> PResult<Node> {
        let context = match kind {
            Branch::If => "if",
            Branch::Range => "range",
            Branch::With => "with",
        };
        let vars = self.vars.len();
        let pipe = self.pipeline(context, Tok::RightDelim)?;
        if kind == Branch::Range {
            self.range_depth += 1;
        }
        let (list, stop) = self.item_list()?;
        if kind == Branch::Range {
            self.range_depth -= 1;
        }
        let mut else_list = None;
        if let Stop::Else = stop {
            let peek = self.peek().typ;
            if (kind == Branch::If && peek == Tok::If) || (kind == Branch::With && peek == Tok::With) {
                self.next();
                else_list = Some(vec![self.control(kind)?]);
            } else {
                let (l, stop) = self.item_list()?;
                if let Stop::Else = stop {
                    return Err(self.error("expected end; found {{else}}"));
                }
                else_list = Some(l);
            }
        }
        self.vars.truncate(vars);
        Ok(Node::Branch { kind, pos: pipe.pos, pipe, list, else_list })
    }

    fn pipeline(&mut self, context: &str, end: Tok) -> PResult<Pipe> {
        let pos = self.peek_non_space().pos;
        let mut pipe = Pipe { pos, is_assign: false, decl: Vec::new(), cmds: Vec::new() };
        'decls: loop {
            let v = self.peek_non_space();
            if v.typ != Tok::Variable {
                break;
            }
            let mark = self.i;
            self.next_non_space();
            let after = self.peek();
            let next = self.peek_non_space();
            if matches!(next.typ, Tok::Assign | Tok::Declare) {
                pipe.is_assign = next.typ == Tok::Assign;
                self.next_non_space();
                pipe.decl.push(v.val.clone());
                self.vars.push(v.val);
            } else if next.typ == Tok::Char && next.val == "," {
                self.next_non_space();
                pipe.decl.push(v.val.clone());
                self.vars.push(v.val);
                if context == "range" && pipe.decl.len() < 2 {
                    match self.peek_non_space().typ {
                        Tok::Variable | Tok::RightDelim | Tok::RightParen => continue 'decls,
                        _ => return Err(self.error("range can only initialize variables")),
                    }
                }
                return Err(self.error(&format!("too many declarations in {context}")));
            } else {
                let _ = after;
                self.i = mark;
            }
            break;
        }
        loop {
            let token = self.next_non_space();
            match token.typ {
                t if t == end => {
                    if pipe.cmds.is_empty() {
                        return Err(self.error(&format!("missing value for {context}")));
                    }
                    for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
                        if matches!(
                            c.args[0],
                            Arg::Bool { .. } | Arg::Dot { .. } | Arg::Nil { .. } | Arg::Number { .. } | Arg::Str { .. }
                        ) {
                            return Err(self.error(&format!("non executable command in pipeline stage {}", i + 1)));
                        }
                    }
                    return Ok(pipe);
                }
                Tok::Bool
                | Tok::CharConstant
                | Tok::Complex
                | Tok::Dot
                | Tok::Field
                | Tok::Identifier
                | Tok::Number
                | Tok::Nil
                | Tok::RawString
                | Tok::Str
                | Tok::Variable
                | Tok::LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return Err(self.unexpected(&token, context)),
            }
        }
    }

    fn command(&mut self) -> PResult<Command> {
        let pos = self.peek_non_space().pos;
        let mut cmd = Command { pos, args: Vec::new() };
        loop {
            self.peek_non_space();
            if let Some(op) = self.operand()? {
                cmd.args.push(op);
            }
            let token = self.next();
            match token.typ {
                Tok::Space => continue,
                Tok::RightDelim | Tok::RightParen => self.backup(),
                Tok::Pipe => {}
                _ => return Err(self.unexpected(&token, "operand")),
            }
            break;
        }
        if cmd.args.is_empty() {
            return Err(self.error("empty command"));
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().typ != Tok::Field {
            return Ok(Some(node));
        }
        let pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().typ == Tok::Field {
            fields.push(self.next().val[1..].to_string());
        }
        Ok(Some(match node {
            Arg::Field { idents, .. } => Arg::Field { pos, idents: idents.into_iter().chain(fields).collect() },
            Arg::Variable { idents, .. } => Arg::Variable { pos, idents: idents.into_iter().chain(fields).collect() },
            Arg::Bool { .. } | Arg::Str { .. } | Arg::Number { .. } | Arg::Nil { .. } | Arg::Dot { .. } => {
                return Err(self.error(&format!("unexpected . after term {}", go_quote(&node.to_string()))));
            }
            other => Arg::Chain { pos, node: Box::new(other), fields },
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let token = self.next_non_space();
        let pos = token.pos;
        Ok(Some(match token.typ {
            Tok::Identifier => {
                if !FUNCTIONS.contains(&token.val.as_str()) {
                    return Err(self.error(&format!("function {} not defined", go_quote(&token.val))));
                }
                if REFUSED_FUNCTIONS.contains(&token.val.as_str()) {
                    return Err(unsupported(&format!("the function {:?}", token.val)));
                }
                Arg::Ident { pos, name: token.val }
            }
            Tok::Dot => Arg::Dot { pos },
            Tok::Nil => Arg::Nil { pos },
            Tok::Variable => {
                let idents: Vec<String> = token.val.split('.').map(str::to_string).collect();
                if !self.vars.contains(&idents[0]) {
                    return Err(self.error(&format!("undefined variable {}", go_quote(&idents[0]))));
                }
                Arg::Variable { pos, idents }
            }
            Tok::Field => Arg::Field { pos, idents: token.val[1..].split('.').map(str::to_string).collect() },
            Tok::Bool => Arg::Bool { pos, value: token.val == "true" },
            Tok::Complex => return Err(unsupported("complex number constants")),
            Tok::CharConstant | Tok::Number => Arg::Number { pos, number: self.number(&token)? },
            Tok::LeftParen => {
                if self.depth >= 10000 {
                    return Err(self.error("max expression depth exceeded"));
                }
                self.depth += 1;
                let p = self.pipeline("parenthesized pipeline", Tok::RightParen);
                self.depth -= 1;
                Arg::Pipe(Box::new(p?))
            }
            Tok::Str | Tok::RawString => {
                let text = match unquote(&token.val) {
                    Ok(t) => t,
                    Err(Unquote::Syntax) => return Err(self.error("invalid syntax")),
                    Err(Unquote::Byte) => return Err(unsupported("byte escapes above \\x7f in strings")),
                };
                Arg::Str { pos, quoted: token.val, text }
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }

    fn number(&self, token: &Item) -> PResult<Number> {
        let text = token.val.clone();
        if token.typ == Tok::CharConstant {
            let inner = &text[1..];
            let (c, tail) = match unquote_char(inner, '\'') {
                Ok(r) => r,
                Err(Unquote::Syntax) => return Err(self.error("invalid syntax")),
                Err(Unquote::Byte) => return Err(unsupported("byte escapes above \\x7f in characters")),
            };
            if tail != "'" {
                return Err(self.error(&format!("malformed character constant: {text}")));
            }
            return Ok(Number { text, int: Some(c as i64), float: Some(c as u32 as f64), rune: true });
        }
        if text.ends_with('i') {
            return Err(unsupported("complex number constants"));
        }
        let body = text.trim_start_matches(['+', '-']);
        let exotic = body.contains('_')
            || body.starts_with("0o")
            || body.starts_with("0O")
            || body.starts_with("0b")
            || body.starts_with("0B")
            || ((body.starts_with("0x") || body.starts_with("0X")) && body.contains(['.', 'p', 'P']))
            || (body.len() > 1 && body.starts_with('0') && body.as_bytes()[1].is_ascii_digit());
        if exotic {
            return Err(unsupported(&format!("the number syntax {text}")));
        }
        let neg = text.starts_with('-');
        let hex = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X"));
        let int = match hex {
            Some(h) => i128::from_str_radix(h, 16).ok(),
            None if !body.contains(['.', 'e', 'E']) => body.parse::<i128>().ok(),
            None => None,
        }
        .map(|v| if neg { -v } else { v });
        if let Some(v) = int {
            return match i64::try_from(v) {
                Ok(i) => Ok(Number { text, int: Some(i), float: Some(i as f64), rune: false }),
                // Fits uint64 only, or neither: the executor has no use for either (Go: overflows int).
                Err(_) => Err(unsupported(&format!("the number {text} (larger than int64)"))),
            };
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => {
                // A float that is a whole number is also an int (Go's rule for constants).
                let int = (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64);
                Ok(Number { text, int, float: Some(f), rune: false })
            }
            _ => Err(self.error(&format!("illegal number syntax: {}", go_quote(&text)))),
        }
    }
}

/// Why a literal could not be unquoted.
enum Unquote {
    /// Go rejects it too (`invalid syntax`).
    Syntax,
    /// A `\xHH` or octal escape of a byte above 0x7f: Go makes a string that is not UTF-8.
    Byte,
}

/// Go's strconv.Unquote for "..." and `...` literals.
fn unquote(s: &str) -> Result<String, Unquote> {
    if let Some(raw) = s.strip_prefix('`').and_then(|r| r.strip_suffix('`')) {
        return Ok(raw.replace('\r', ""));
    }
    let mut rest = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')).ok_or(Unquote::Syntax)?;
    let mut out = String::new();
    while !rest.is_empty() {
        let (c, tail) = unquote_char(rest, '"')?;
        out.push(c);
        rest = tail;
    }
    Ok(out)
}

/// Go's strconv.UnquoteChar: the first character of `s` (an escape or not) and the rest.
fn unquote_char(s: &str, quote: char) -> Result<(char, &str), Unquote> {
    let mut chars = s.chars();
    let c = chars.next().ok_or(Unquote::Syntax)?;
    if c == quote {
        return Err(Unquote::Syntax);
    }
    if c != '\\' {
        return Ok((c, chars.as_str()));
    }
    let e = chars.next().ok_or(Unquote::Syntax)?;
    let rest = chars.as_str();
    let simple = match e {
        'a' => Some('\x07'),
        'b' => Some('\x08'),
        'f' => Some('\x0c'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\x0b'),
        '\\' => Some('\\'),
        '\'' | '"' if e == quote => Some(e),
        _ => None,
    };
    if let Some(c) = simple {
        return Ok((c, rest));
    }
    let (len, radix) = match e {
        'x' => (2, 16),
        'u' => (4, 16),
        'U' => (8, 16),
        '0'..='7' => (2, 8),
        _ => return Err(Unquote::Syntax),
    };
    let digits = if radix == 8 {
        format!("{e}{}", rest.get(..2).ok_or(Unquote::Syntax)?)
    } else {
        rest.get(..len).ok_or(Unquote::Syntax)?.to_string()
    };
    let v = u32::from_str_radix(&digits, radix).map_err(|_| Unquote::Syntax)?;
    let rest = &rest[if radix == 8 { 2 } else { len }..];
    if matches!(e, 'x' | '0'..='7') {
        if v > 255 {
            return Err(Unquote::Syntax);
        }
        // Octal and \x escapes are bytes: only ASCII ones make a character on their own.
        return if v < 0x80 { Ok((char::from(v as u8), rest)) } else { Err(Unquote::Byte) };
    }
    Ok((char::from_u32(v).ok_or(Unquote::Syntax)?, rest))
}
