//! The part of kubectl's JSONPath that `-o jsonpath=`, `-o custom-columns=` and `--sort-by` use:
//! text with `{...}` expressions; inside, `$`, `.field`, `['field']`, `[N]`, `[*]`, `[?(@.a.b=="x")]`
//! filters (`==`, `!=` against a string, number, `true`/`false`), `range EXPR` ... `end`, and
//! string literals (`{"\n"}`). Results of one expression are printed separated by spaces, strings
//! bare and everything else as JSON, as kubectl prints them.

use serde_json::Value;

/// A template that could not be parsed: kubectl's wording where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("error parsing jsonpath {template}: {reason}")]
pub struct JsonPathError {
    pub template: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    All,
    Filter { path: Vec<Step>, equal: bool, value: Value },
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Path(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    nodes: Vec<Node>,
}

impl Template {
    /// Parses a template; a bare path (`.metadata.name`, as custom-columns and --sort-by take) is
    /// read as `{.metadata.name}`.
    pub fn parse(template: &str) -> Result<Self, JsonPathError> {
        let err = |reason: &str| JsonPathError { template: template.to_string(), reason: reason.to_string() };
        let text = if template.contains('{') { template.to_string() } else { format!("{{{template}}}") };
        let mut tokens: Vec<(bool, String)> = Vec::new(); // (is expression, text)
        let mut rest = text.as_str();
        while let Some(open) = rest.find('{') {
            if open > 0 {
                tokens.push((false, rest[..open].to_string()));
            }
            let close = matching_close(&rest[open..]).ok_or_else(|| err("unclosed action"))?;
            tokens.push((true, rest[open + 1..open + close].trim().to_string()));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            tokens.push((false, rest.to_string()));
        }
        let mut stack: Vec<(Vec<Step>, Vec<Node>)> = Vec::new();
        let mut nodes: Vec<Node> = Vec::new();
        for (expr, t) in tokens {
            if !expr {
                nodes.push(Node::Text(t));
            } else if t == "end" {
                let (path, outer) = stack.pop().ok_or_else(|| err("not in range, nothing to end"))?;
                let body = std::mem::replace(&mut nodes, outer);
                nodes.push(Node::Range(path, body));
            } else if let Some(p) = t.strip_prefix("range ") {
                let path = parse_path(p.trim()).map_err(|r| err(&r))?;
                stack.push((path, std::mem::take(&mut nodes)));
            } else if t.starts_with('"') {
                nodes.push(Node::Text(unquote(&t).ok_or_else(|| err("unterminated string"))?));
            } else {
                nodes.push(Node::Path(parse_path(&t).map_err(|r| err(&r))?));
            }
        }
        if !stack.is_empty() {
            return Err(err("range without end"));
        }
        Ok(Template { nodes })
    }

    /// Renders the template against a value.
    pub fn render(&self, root: &Value) -> String {
        let mut out = String::new();
        render_nodes(&self.nodes, root, &mut out);
        out
    }

    /// The values of a single-path template (custom-columns, --sort-by).
    pub fn values<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        match self.nodes.as_slice() {
            [Node::Path(p)] => eval(p, root),
            _ => Vec::new(),
        }
    }
}

/// Position of the `}` closing the `{` at the start, skipping quoted strings.
fn matching_close(s: &str) -> Option<usize> {
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_str => escaped = true,
            '"' => in_str = !in_str,
            '}' if !in_str => return Some(i),
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            other => out.push(other),
        }
    }
    Some(out)
}

fn parse_path(p: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let mut s = p.strip_prefix('$').unwrap_or(p);
    while !s.is_empty() {
        if let Some(r) = s.strip_prefix('.') {
            if r.starts_with('.') {
                return Err("recursive descent (..) is not supported".into());
            }
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                steps.push(Step::Field(r[..end].to_string()));
            }
            s = &r[end..];
        } else if let Some(r) = s.strip_prefix('[') {
            let end = bracket_end(r).ok_or("unterminated [")?;
            let inner = r[..end].trim();
            s = &r[end + 1..];
            if inner == "*" {
                steps.push(Step::All);
            } else if let Some(f) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
                steps.push(parse_filter(f.trim())?);
            } else if inner.starts_with('\'') || inner.starts_with('"') {
                let key = inner[1..inner.len().saturating_sub(1).max(1)].to_string();
                steps.push(Step::Field(key));
            } else {
                let n: i64 = inner.parse().map_err(|_| format!("unsupported index [{inner}]"))?;
                steps.push(Step::Index(n));
            }
        } else {
            return Err(format!("unrecognized identifier {s}"));
        }
    }
    Ok(steps)
}

fn bracket_end(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[') => depth += 1,
            (None, ')') => depth = depth.saturating_sub(1),
            (None, ']') if depth == 0 => return Some(i),
            (None, ']') => depth -= 1,
            _ => {}
        }
    }
    None
}

fn parse_filter(f: &str) -> Result<Step, String> {
    let (lhs, rhs, equal) = if let Some((l, r)) = f.split_once("==") {
        (l, r, true)
    } else if let Some((l, r)) = f.split_once("!=") {
        (l, r, false)
    } else {
        return Err(format!("unsupported filter {f}: use @.path==\"value\" or !="));
    };
    let path = parse_path(lhs.trim().strip_prefix('@').ok_or("a filter starts with @")?)?;
    let rhs = rhs.trim();
    let value = if rhs.starts_with('"') || rhs.starts_with('\'') {
        Value::String(rhs[1..rhs.len().saturating_sub(1).max(1)].to_string())
    } else {
        serde_json::from_str(rhs).map_err(|_| format!("unsupported filter value {rhs}"))?
    };
    Ok(Step::Filter { path, equal, value })
}

fn eval<'a>(steps: &[Step], root: &'a Value) -> Vec<&'a Value> {
    let mut cur = vec![root];
    for step in steps {
        let mut next = Vec::new();
        for v in cur {
            match step {
                Step::Field(f) => next.extend(v.get(f.as_str())),
                Step::Index(i) => {
                    if let Some(a) = v.as_array() {
                        let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                        next.extend(usize::try_from(idx).ok().and_then(|i| a.get(i)));
                    }
                }
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter { path, equal, value } => {
                    let items: Vec<&Value> = match v {
                        Value::Array(a) => a.iter().collect(),
                        other => vec![other],
                    };
                    for item in items {
                        let found = eval(path, item).first().is_some_and(|x| *x == value);
                        if found == *equal {
                            next.push(item);
                        }
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

fn render_nodes(nodes: &[Node], root: &Value, out: &mut String) {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Path(p) => {
                let values: Vec<String> = eval(p, root).into_iter().map(print).collect();
                out.push_str(&values.join(" "));
            }
            Node::Range(p, body) => {
                for v in eval(p, root) {
                    render_nodes(body, v, out);
                }
            }
        }
    }
}

/// A value as kubectl prints it: strings bare, the rest as JSON.
pub fn print(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, v: &Value) -> String {
        Template::parse(t).map(|t| t.render(v)).unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn paths_ranges_filters_and_literals() {
        let list = json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"k0rdent.mirantis.com/region": "r1"}}, "status": {"ready": true}},
            {"metadata": {"name": "b"}, "status": {"ready": false}}
        ]});
        assert_eq!(render("{.items[*].metadata.name}", &list), "a b");
        assert_eq!(render("{range .items[*]}{.metadata.name}{\"\\n\"}{end}", &list), "a\nb\n");
        assert_eq!(render("{.items[0].status.ready}", &list), "true");
        assert_eq!(render("{.items[-1].metadata.name}", &list), "b");
        assert_eq!(render("{.items[?(@.status.ready==true)].metadata.name}", &list), "a");
        assert_eq!(render("{.items[?(@.metadata.name!=\"a\")].metadata.name}", &list), "b");
        assert_eq!(render("{.items[0].metadata.labels['k0rdent.mirantis.com/region']}", &list), "r1");
        assert_eq!(render("name={$.items[1].metadata.name}", &list), "name=b");
        assert_eq!(
            render(".items[0].metadata", &list),
            r#"{"labels":{"k0rdent.mirantis.com/region":"r1"},"name":"a"}"#
        );
        assert_eq!(render("{.missing}", &list), "");
    }

    #[test]
    fn bad_templates_are_errors() {
        assert!(Template::parse("{.a").is_err());
        assert!(Template::parse("{range .items[*]}{.a}").is_err());
        assert!(Template::parse("{end}").is_err());
        assert!(Template::parse("{..a}").is_err());
        assert!(Template::parse("{.a[x]}").is_err());
    }
}
