//! `-o go-template=...` as kubectl prints it: Go's text/template run over the object as kubectl's
//! printer sees it (JSON decoded into `map[string]interface{}`), with kubectl's extra functions
//! `exists` and `base64decode`.
//!
//! The engine is a port of the parts of Go's text/template that kubectl templates use, kept to one
//! rule: for every template it accepts, the output is byte for byte what kubectl prints for the
//! same objects (`tests/gotemplate-oracle` runs Go's own engine to check). What it does not
//! reproduce is refused, naming the construct, before anything is printed: named templates
//! (`define`, `template`, `block`), the functions `call` and `slice`, complex and unusual number
//! literals, `range` over a number, printf verbs other than %v %s %d %q %t and the flags `+`, `#`,
//! space, `*` and argument indexes.

mod exec;
mod parse;
mod value;

use serde_json::Value;

pub use exec::ExecError;
pub use parse::ParseError;

/// A parsed template, with its text (kubectl quotes it in errors).
#[derive(Debug, Clone, PartialEq)]
pub struct GoTemplate {
    source: String,
    root: Vec<parse::Node>,
}

/// The outcome of running a template: what was written (also when it stopped), and why it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    pub output: String,
    pub error: Option<ExecError>,
}

impl GoTemplate {
    pub fn parse(source: &str) -> Result<Self, ParseError> {
        Ok(GoTemplate { source: source.to_string(), root: parse::parse(source)? })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn execute(&self, data: &Value) -> Execution {
        let (output, error) = exec::execute(&self.source, &self.root, data);
        Execution { output, error }
    }
}

/// The data as Go's encoding/json writes it (kubectl's "raw data was:").
pub fn go_json(data: &Value) -> String {
    value::go_json(data)
}

/// The data as Go's fmt prints it with %+v (kubectl's "object given to template engine was:").
pub fn go_dump(data: &Value) -> String {
    value::sprint_one(&value::Val::of_json(data))
}

/// Go's %q of a string (kubectl quotes the template with it).
pub fn go_quote(s: &str) -> String {
    value::go_quote(s)
}

#[cfg(test)]
mod tests;
