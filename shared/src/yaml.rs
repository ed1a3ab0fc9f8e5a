//! Safe multi-document YAML parsing with hard limits.
//!
//! Manifests come from users (`lint -f`, `--from DIR`), so the parser must survive hostile input:
//! alias/anchor expansion ("billion laughs") is capped by serde-saphyr's alias and budget limits,
//! nesting depth and the number of documents are bounded, and error messages never quote the input
//! (a Secret manifest's `data` must not end up in a terminal or a log): they carry only the file
//! name, a line and serde-saphyr's plain message, rendered without source snippets.
//!
//! Documents are Kubernetes objects: every non-empty document must be a mapping; empty and `null`
//! documents are skipped (as `kubectl apply` does); `kind: List` documents are expanded into their
//! `items`.

use serde_json::Value;
use serde_saphyr::{Budget, Options, Spanned};

/// Limits applied while parsing one YAML stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlLimits {
    /// Most documents (`---`-separated) in one stream.
    pub max_documents: usize,
    /// Deepest nesting of mappings and sequences. CRDs with large OpenAPI schemas nest deeply, so
    /// this is well above what a plain object needs, yet far below what would hurt the stack.
    pub max_depth: usize,
    /// Most alias (`*name`) uses in one stream. Kubernetes manifests rarely use any.
    pub max_aliases: usize,
    /// Most parser events replayed through aliases in total: this is what stops an alias bomb,
    /// whose size grows exponentially with nesting while its text stays tiny.
    pub max_alias_replayed_events: usize,
    /// Most nodes (mappings, sequences, scalars) in one stream.
    pub max_nodes: usize,
}

impl Default for YamlLimits {
    fn default() -> Self {
        YamlLimits {
            max_documents: 10_000,
            max_depth: 100,
            max_aliases: 1_000,
            max_alias_replayed_events: 100_000,
            max_nodes: 2_000_000,
        }
    }
}

/// Why a YAML stream was rejected. Messages name the source and a line; they never quote values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlError {
    /// Not valid YAML, or a limit was exceeded.
    #[error("{file}{}: {message}", line_suffix(*line))]
    Syntax { file: String, line: Option<u64>, message: String },
    /// A document is a scalar or a sequence instead of an object.
    #[error(
        "{file}: document {index} (line {line}) is {found}, not an object: every YAML document must be one \
         Kubernetes object (a mapping with apiVersion, kind and metadata)"
    )]
    NotAMapping { file: String, index: usize, line: u64, found: &'static str },
    /// A `kind: List` document whose `items` is not a sequence of objects.
    #[error("{file}: document {index} (line {line}) is a List whose {field} {problem}: fix or remove it")]
    BadList { file: String, index: usize, line: u64, field: String, problem: &'static str },
}

fn line_suffix(line: Option<u64>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

/// One object read from a stream, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// 1-based index of the document in the stream, counting non-empty documents only.
    pub index: usize,
    /// 1-based line where the document (or the List item) starts; 0 when unknown.
    pub line: u64,
    /// For an item of a `kind: List` document, its 0-based position in `items`.
    pub list_item: Option<usize>,
    pub value: Value,
}

/// Parses every document of `text` into JSON objects (default limits). `source` names the input
/// in errors (usually a file path).
pub fn parse_documents(text: &str, source: &str) -> Result<Vec<Value>, YamlError> {
    Ok(parse_documents_with(text, source, &YamlLimits::default())?.into_iter().map(|d| d.value).collect())
}

/// Like [`parse_documents`], with explicit limits and per-document positions.
pub fn parse_documents_with(text: &str, source: &str, limits: &YamlLimits) -> Result<Vec<Document>, YamlError> {
    let mut options = Options::default();
    let mut budget = Budget::default();
    budget.max_documents = limits.max_documents;
    budget.max_depth = limits.max_depth;
    budget.max_aliases = limits.max_aliases;
    budget.max_nodes = limits.max_nodes.max(1);
    budget.max_events = limits.max_nodes.saturating_mul(3).max(1);
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = limits.max_alias_replayed_events;
    options.alias_limits.max_replay_stack_depth = limits.max_depth;
    // No source snippets in errors: they would quote the input, which may be a Secret.
    options.with_snippet = false;

    let docs: Vec<Spanned<Value>> =
        serde_saphyr::from_multiple_with_options(text, options).map_err(|e| syntax_error(&e, source))?;

    let mut out = Vec::with_capacity(docs.len());
    for (i, doc) in docs.into_iter().enumerate() {
        let index = i + 1;
        let line = doc.referenced.line();
        match doc.value {
            // A document of only `~` or comments: nothing to load.
            Value::Null => {}
            Value::Object(map) => {
                let value = Value::Object(map);
                if is_list(&value) {
                    expand_list(value, source, index, line, &mut out)?;
                } else {
                    out.push(Document { index, line, list_item: None, value });
                }
            }
            other => {
                return Err(YamlError::NotAMapping { file: source.to_string(), index, line, found: type_name(&other) });
            }
        }
    }
    Ok(out)
}

/// Parses a JSON file (one object, or a `kind: List`) with the same document rules as YAML.
pub fn parse_json_documents(text: &str, source: &str) -> Result<Vec<Document>, YamlError> {
    // serde_json bounds nesting itself (128 levels) and has no aliases to expand.
    // Editors on Windows prepend a byte-order mark, which serde_json rejects.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let value: Value = serde_json::from_str(text).map_err(|e| YamlError::Syntax {
        file: source.to_string(),
        line: Some(e.line() as u64).filter(|l| *l > 0),
        message: format!("not valid JSON: {e}"),
    })?;
    let mut out = Vec::new();
    match value {
        Value::Null => {}
        Value::Object(_) if is_list(&value) => expand_list(value, source, 1, 1, &mut out)?,
        Value::Object(_) => out.push(Document { index: 1, line: 1, list_item: None, value }),
        other => {
            return Err(YamlError::NotAMapping {
                file: source.to_string(),
                index: 1,
                line: 1,
                found: type_name(&other),
            });
        }
    }
    Ok(out)
}

fn syntax_error(e: &serde_saphyr::Error, source: &str) -> YamlError {
    let plain = e.without_snippet();
    let line = plain.location().map(|l| l.line()).filter(|l| *l > 0);
    let mut render = serde_saphyr::RenderOptions::default();
    render.snippets = serde_saphyr::SnippetMode::Off;
    let message = plain.render_with_options(render);
    let what = if is_limit(plain) {
        "over a safety limit (alias expansion, nesting depth, document or node count)"
    } else {
        "not valid YAML"
    };
    YamlError::Syntax { file: source.to_string(), line, message: format!("{what}: {message}") }
}

fn is_limit(mut e: &serde_saphyr::Error) -> bool {
    use serde_saphyr::Error as E;
    while let E::AliasError { error, .. } | E::WithSnippet { error, .. } = e {
        e = error;
    }
    matches!(
        e,
        E::Budget { .. }
            | E::AliasReplayLimitExceeded { .. }
            | E::AliasExpansionLimitExceeded { .. }
            | E::AliasReplayStackDepthExceeded { .. }
            | E::AliasReplayCounterOverflow { .. }
    )
}

/// `kind: List` (what `kubectl get -o yaml` prints for several objects).
fn is_list(value: &Value) -> bool {
    value.get("kind").and_then(Value::as_str) == Some("List")
        && value.get("apiVersion").and_then(Value::as_str).is_none_or(|v| v == "v1")
        && value.get("items").is_some()
}

fn expand_list(list: Value, source: &str, index: usize, line: u64, out: &mut Vec<Document>) -> Result<(), YamlError> {
    let bad = |field: String, problem| YamlError::BadList { file: source.to_string(), index, line, field, problem };
    let Value::Object(mut map) = list else { return Ok(()) };
    let items = match map.remove("items") {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None => Vec::new(),
        Some(_) => return Err(bad("items".into(), "is not a sequence")),
    };
    for (n, item) in items.into_iter().enumerate() {
        match item {
            Value::Object(_) => out.push(Document { index, line, list_item: Some(n), value: item }),
            _ => return Err(bad(format!("items[{n}]"), "is not an object")),
        }
    }
    Ok(())
}

/// The JSON type of a value, for messages ("a string", "a sequence").
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn multi_document_with_empty_and_null_documents() {
        let text = "---\n# only a comment\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: a}\n---\n~\n---\n\
                    apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n";
        let docs = parse_documents_with(text, "f.yaml", &YamlLimits::default()).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].value["kind"], "Secret");
        assert_eq!(docs[1].value["metadata"]["name"], "b");
        assert!(docs[1].line > docs[0].line, "lines {} {}", docs[0].line, docs[1].line);
    }

    #[test]
    fn list_is_expanded() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: a}}\n\
                    - {apiVersion: v1, kind: Secret, metadata: {name: b}}\n";
        let docs = parse_documents(text, "l.yaml").unwrap();
        assert_eq!(
            docs.iter().map(|d| d["metadata"]["name"].clone()).collect::<Vec<_>>(),
            vec![json!("a"), json!("b")]
        );
    }

    #[test]
    fn list_with_scalar_item_is_an_error() {
        let err = parse_documents("apiVersion: v1\nkind: List\nitems: [1]\n", "l.yaml").unwrap_err();
        assert!(err.to_string().contains("items[0]"), "{err}");
    }

    #[test]
    fn scalar_document_is_named() {
        let err = parse_documents("apiVersion: v1\nkind: Secret\n---\njust a string\n", "s.yaml").unwrap_err();
        match &err {
            YamlError::NotAMapping { file, index, found, .. } => {
                assert_eq!((file.as_str(), *index, *found), ("s.yaml", 2, "a string"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn syntax_error_names_file_and_line_but_not_content() {
        let text = "apiVersion: v1\nkind: Secret\ndata:\n  password: c2VjcmV0\n   bad: [unclosed\n";
        let err = parse_documents(text, "bad.yaml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("bad.yaml:"), "{msg}");
        assert!(matches!(err, YamlError::Syntax { line: Some(_), .. }), "{err:?}");
        assert!(!msg.contains("c2VjcmV0"), "secret data leaked: {msg}");
    }

    #[test]
    fn alias_bomb_is_rejected_quickly() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse_documents(&text, "bomb.yaml").unwrap_err();
        assert!(matches!(err, YamlError::Syntax { .. }), "{err:?}");
        assert!(err.to_string().contains("over a safety limit"), "{err}");
    }

    #[test]
    fn small_alias_use_is_fine() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: &l {x: z}}\ndata: *l\n";
        let docs = parse_documents(text, "ok.yaml").unwrap();
        assert_eq!(docs[0]["data"]["x"], "z");
    }

    #[test]
    fn depth_and_document_count_are_bounded() {
        let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
        assert!(matches!(parse_documents(&deep, "deep.yaml"), Err(YamlError::Syntax { .. })));
        let limits = YamlLimits { max_documents: 3, ..YamlLimits::default() };
        let many = "a: 1\n---\na: 2\n---\na: 3\n---\na: 4\n---\na: 5\n";
        assert!(matches!(parse_documents_with(many, "many.yaml", &limits), Err(YamlError::Syntax { .. })));
    }

    #[test]
    fn json_documents() {
        let docs =
            parse_json_documents(r#"{"apiVersion":"v1","kind":"List","items":[{"kind":"A"}]}"#, "j.json").unwrap();
        assert_eq!((docs.len(), docs[0].list_item), (1, Some(0)));
        let err = parse_json_documents("{\n\"a\": }", "j.json").unwrap_err();
        assert!(matches!(err, YamlError::Syntax { line: Some(2), .. }), "{err:?}");
        assert!(matches!(parse_json_documents("[1]", "j.json"), Err(YamlError::NotAMapping { .. })));
        assert_eq!(parse_json_documents("\u{feff}{\"kind\": \"A\"}", "bom.json").unwrap().len(), 1);
    }

    #[test]
    fn bom_and_crlf_are_accepted() {
        let text = "\u{feff}apiVersion: v1\r\nkind: Secret\r\nmetadata:\r\n  name: a\r\n---\r\napiVersion: v1\r\nkind: Secret\r\nmetadata: {name: b}\r\n";
        let docs = parse_documents(text, "crlf.yaml").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["apiVersion"], "v1");
        assert_eq!(docs[1]["metadata"]["name"], "b");
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let err = parse_documents("kind: A\nkind: B\n", "dup.yaml").unwrap_err();
        assert!(matches!(err, YamlError::Syntax { .. }), "{err:?}");
    }
}
