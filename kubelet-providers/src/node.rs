//! A generic document tree that keeps mapping keys in order, duplicates included, so the strict
//! decoder can report `duplicate field` and `unknown field` the way the kubelet's codec does.
//! Parsed from JSON (serde_json) or YAML (serde-saphyr, with budgets against hostile input).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    /// Any number; only its kind matters (no numeric field exists in the config).
    Number,
    String(String),
    Seq(Vec<Node>),
    /// Keys in document order; a repeated key appears twice.
    Map(Vec<(String, Node)>),
}

impl Node {
    /// The JSON kind name Go's `encoding/json` uses in "cannot unmarshal X into ...".
    pub fn go_kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "bool",
            Node::Number => "number",
            Node::String(_) => "string",
            Node::Seq(_) => "array",
            Node::Map(_) => "object",
        }
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML or JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Number)
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Node, E> {
        Ok(Node::Number)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Number)
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Node, E> {
        Ok(Node::Number)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Number)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Node, E> {
        Ok(Node::String(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Key>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key.0, value));
        }
        Ok(Node::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

/// A mapping key. YAML allows scalar keys of any type; sigs.k8s.io/yaml turns them into strings.
struct Key(String);

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar mapping key")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Key, E> {
        Ok(Key(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
        Ok(Key("null".into()))
    }
    fn visit_none<E: de::Error>(self) -> Result<Key, E> {
        Ok(Key("null".into()))
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        d.deserialize_any(KeyVisitor)
    }
}

/// Deepest nesting accepted. A CredentialProviderConfig nests 4 levels; serde_json stops at 128.
pub const MAX_DEPTH: usize = 64;

/// Parses JSON (when the first non-blank byte is `{`, as the kubelet's codec decides) or YAML
/// (first document only, like sigs.k8s.io/yaml). Messages never quote the input.
pub fn parse(data: &[u8]) -> Result<Node, String> {
    let first = data.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
    if first == Some(&b'{') {
        let mut de = serde_json::Deserializer::from_slice(data);
        let node = Node::deserialize(&mut de).map_err(|e| json_message(&e))?;
        de.end().map_err(|e| json_message(&e))?;
        return Ok(node);
    }
    let text = std::str::from_utf8(data).map_err(|e| {
        format!("error converting YAML to JSON: yaml: invalid UTF-8 at byte offset {}", e.valid_up_to())
    })?;
    let mut options = serde_saphyr::Options::default();
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_documents = 1_000;
    budget.max_nodes = 1_000_000;
    budget.max_aliases = 1_000;
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = 100_000;
    options.alias_limits.max_replay_stack_depth = MAX_DEPTH;
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    // Source snippets would quote the file, and `env` values may hold secrets.
    options.with_snippet = false;
    let docs: Vec<Node> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|e| format!("error converting YAML to JSON: yaml: {}", one_line(&e.to_string())))?;
    Ok(docs.into_iter().next().unwrap_or(Node::Null))
}

fn json_message(e: &serde_json::Error) -> String {
    format!("invalid JSON at line {} column {}: {}", e.line(), e.column(), json_category(e))
}

fn json_category(e: &serde_json::Error) -> String {
    // serde_json's message may quote an unknown token; keep only the generic part.
    let msg = e.to_string();
    let msg = msg.split(" at line ").next().unwrap_or_default();
    one_line(msg)
}

fn one_line(s: &str) -> String {
    let mut out: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.len() > 300 {
        let mut cut = 300;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}
