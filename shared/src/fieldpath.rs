//! The ProviderInterface field-path language (`nameFieldPath`, `namespaceFieldPath`).
//!
//! A path is a dot-separated list of mapping keys, e.g. `spec.clientSecret.name`, resolved from
//! the root of an object. This is exactly what KCM does (`strings.Split(path, ".")` followed by
//! `unstructured.NestedString`), so every path KCM resolves means the same object field here:
//!
//! - **no leading dot** (KCM's schema pattern `^[^.].*$`) and not empty;
//! - **no empty segments** (`a..b`, `a.`): KCM's schema lets them through, but they can only
//!   address a key named `""`, which no Kubernetes object has, so they are always a typo;
//! - **no escapes**: a backslash is an ordinary key character, as it is for KCM. Supporting `\.`
//!   would change the meaning of KCM-valid paths such as `a\.b` (keys `a\` and `b` for KCM), so a
//!   key that contains a dot cannot be addressed (the same limit KCM has);
//! - **no array indexes**: `items.0` looks up the key `"0"` of a mapping, never a list element,
//!   again matching KCM.
//!
//! Resolution distinguishes a missing field, a field of the wrong type and an empty string, so
//! messages can say which one happened. Errors name the path and types, never the values read
//! (an identity object may be a Secret).

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::yaml::type_name;

/// A parsed, valid field path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath {
    raw: String,
    segments: Vec<String>,
}

/// Why a string is not a valid field path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldPathError {
    #[error("field path is empty: give dot-separated keys such as spec.secretRef.name")]
    Empty,
    #[error("field path {path:?} starts with a dot: write it without the leading dot ({suggestion:?})")]
    LeadingDot { path: String, suggestion: String },
    #[error(
        "field path {path:?} has an empty key at position {position} (two dots in a row or a trailing dot): \
         remove the extra dot"
    )]
    EmptySegment { path: String, position: usize },
}

/// Why a path does not resolve to a non-empty string in an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// A key along the path is absent (or `null`).
    #[error("field {path} is not set{}", missing_part(path, at))]
    Missing { path: String, at: String },
    /// A value along the path is not a mapping, so the path cannot go on.
    #[error("field {path} cannot be read: {at} is {found}, not a mapping")]
    NotAMapping { path: String, at: String, found: &'static str },
    /// The value at the path is not a string.
    #[error("field {path} is {found}, not a string")]
    NotAString { path: String, found: &'static str },
    /// The value at the path is the empty string.
    #[error("field {path} is an empty string")]
    Empty { path: String },
}

/// Names the missing intermediate key only when it is not the whole path.
fn missing_part(path: &str, at: &str) -> String {
    if path == at { String::new() } else { format!(" ({at} is missing)") }
}

/// Why a value could not be written at a path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    #[error("cannot set field {path}: {at} is {found}, not a mapping")]
    NotAMapping { path: String, at: String, found: &'static str },
}

impl FieldPath {
    /// Parses a path (see the module doc for the syntax).
    pub fn parse(s: &str) -> Result<FieldPath, FieldPathError> {
        if s.is_empty() {
            return Err(FieldPathError::Empty);
        }
        if s.starts_with('.') {
            return Err(FieldPathError::LeadingDot {
                path: s.to_string(),
                suggestion: s.trim_start_matches('.').to_string(),
            });
        }
        let segments: Vec<String> = s.split('.').map(str::to_string).collect();
        if let Some(position) = segments.iter().position(String::is_empty) {
            return Err(FieldPathError::EmptySegment { path: s.to_string(), position });
        }
        Ok(FieldPath { raw: s.to_string(), segments })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The keys, in order.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The path as an RFC 6901 JSON pointer (`/spec/secretRef/name`), for JSON patches.
    pub fn json_pointer(&self) -> String {
        self.segments.iter().map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1"))).collect()
    }

    /// The value at the path; `None` when a key is absent or a value on the way is not a mapping.
    pub fn get<'a>(&self, obj: &'a Value) -> Option<&'a Value> {
        self.segments.iter().try_fold(obj, |cur, key| cur.as_object()?.get(key))
    }

    /// The non-empty string at the path, or why there is none.
    pub fn get_str<'a>(&self, obj: &'a Value) -> Result<&'a str, ResolveError> {
        let mut cur = obj;
        for (i, key) in self.segments.iter().enumerate() {
            let Some(map) = cur.as_object() else {
                return Err(ResolveError::NotAMapping {
                    path: self.raw.clone(),
                    at: self.prefix(i),
                    found: type_name(cur),
                });
            };
            match map.get(key) {
                Some(Value::Null) | None => {
                    return Err(ResolveError::Missing { path: self.raw.clone(), at: self.prefix(i + 1) });
                }
                Some(v) => cur = v,
            }
        }
        match cur {
            Value::String(s) if s.is_empty() => Err(ResolveError::Empty { path: self.raw.clone() }),
            Value::String(s) => Ok(s),
            other => Err(ResolveError::NotAString { path: self.raw.clone(), found: type_name(other) }),
        }
    }

    /// Writes `value` at the path, creating missing (or `null`) intermediate mappings.
    pub fn set(&self, obj: &mut Value, value: Value) -> Result<(), SetError> {
        if obj.is_null() {
            *obj = Value::Object(Map::new());
        }
        let mut cur = obj;
        let last = self.segments.len() - 1;
        for (i, key) in self.segments.iter().enumerate() {
            let found = type_name(cur);
            let Some(map) = cur.as_object_mut() else {
                return Err(SetError::NotAMapping { path: self.raw.clone(), at: self.prefix(i), found });
            };
            if i == last {
                map.insert(key.clone(), value);
                return Ok(());
            }
            let next = map.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()));
            if next.is_null() {
                *next = Value::Object(Map::new());
            }
            cur = next;
        }
        Ok(())
    }

    /// The first `n` keys joined with dots (`<root>` for none), for messages.
    fn prefix(&self, n: usize) -> String {
        if n == 0 { "<root>".to_string() } else { self.segments[..n].join(".") }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl FromStr for FieldPath {
    type Err = FieldPathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FieldPath::parse(s)
    }
}

impl serde::Serialize for FieldPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_table() {
        let cases: &[(&str, Result<&[&str], &str>)] = &[
            ("spec.secretRef", Ok(&["spec", "secretRef"])),
            ("spec.clientSecret.name", Ok(&["spec", "clientSecret", "name"])),
            ("name", Ok(&["name"])),
            // Backslashes and digits are plain key characters, as in KCM.
            (r"spec.a\.b", Ok(&["spec", r"a\", "b"])),
            ("items.0", Ok(&["items", "0"])),
            ("", Err("empty")),
            (".spec.name", Err("leading dot")),
            ("spec..name", Err("empty key at position 1")),
            ("spec.", Err("empty key at position 1")),
        ];
        for (input, want) in cases {
            match (FieldPath::parse(input), want) {
                (Ok(p), Ok(segs)) => {
                    assert_eq!(p.segments(), *segs, "{input}");
                    assert_eq!(p.as_str(), *input);
                    assert_eq!(p.to_string(), *input);
                }
                (Err(e), Err(frag)) => assert!(e.to_string().contains(frag), "{input}: {e}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn leading_dot_suggests_the_fix() {
        let err = FieldPath::parse("..spec.x").unwrap_err();
        assert_eq!(err, FieldPathError::LeadingDot { path: "..spec.x".into(), suggestion: "spec.x".into() });
    }

    #[test]
    fn get_str_table() {
        let obj = json!({
            "spec": {
                "secretRef": "aws-secret",
                "clientSecret": {"name": "azure-secret", "namespace": ""},
                "count": 3,
                "nothing": null,
                "list": ["a"],
            }
        });
        let p = |s: &str| FieldPath::parse(s).unwrap();
        assert_eq!(p("spec.secretRef").get_str(&obj), Ok("aws-secret"));
        assert_eq!(p("spec.clientSecret.name").get_str(&obj), Ok("azure-secret"));
        assert_eq!(
            p("spec.clientSecret.namespace").get_str(&obj),
            Err(ResolveError::Empty { path: "spec.clientSecret.namespace".into() })
        );
        assert_eq!(
            p("spec.count").get_str(&obj),
            Err(ResolveError::NotAString { path: "spec.count".into(), found: "a number" })
        );
        assert_eq!(
            p("spec.clientSecret").get_str(&obj),
            Err(ResolveError::NotAString { path: "spec.clientSecret".into(), found: "a mapping" })
        );
        assert_eq!(
            p("spec.missing.name").get_str(&obj),
            Err(ResolveError::Missing { path: "spec.missing.name".into(), at: "spec.missing".into() })
        );
        assert_eq!(
            p("spec.nothing").get_str(&obj),
            Err(ResolveError::Missing { path: "spec.nothing".into(), at: "spec.nothing".into() })
        );
        assert_eq!(
            p("spec.secretRef.name").get_str(&obj),
            Err(ResolveError::NotAMapping {
                path: "spec.secretRef.name".into(),
                at: "spec.secretRef".into(),
                found: "a string"
            })
        );
        // No array indexing: `list.0` looks for a key "0".
        assert!(matches!(p("spec.list.0").get_str(&obj), Err(ResolveError::NotAMapping { .. })));
        assert_eq!(p("spec.count").get(&obj), Some(&json!(3)));
        assert_eq!(p("spec.nope").get(&obj), None);
        assert_eq!(p("x").get(&json!("scalar root")), None);
    }

    #[test]
    fn resolve_errors_never_quote_values() {
        let obj = json!({"data": {"password": 12345}});
        let err = FieldPath::parse("data.password").unwrap().get_str(&obj).unwrap_err();
        assert!(!err.to_string().contains("12345"), "{err}");
    }

    #[test]
    fn set_creates_intermediate_maps_and_overwrites() {
        let mut obj = json!({"spec": {"clientSecret": {"name": "s"}, "nul": null}});
        let p = |s: &str| FieldPath::parse(s).unwrap();
        p("spec.clientSecret.namespace").set(&mut obj, json!("team-a")).unwrap();
        p("spec.a.b.c").set(&mut obj, json!(1)).unwrap();
        p("spec.nul.x").set(&mut obj, json!(true)).unwrap();
        p("spec.clientSecret.name").set(&mut obj, json!("t")).unwrap();
        assert_eq!(
            obj,
            json!({"spec": {"clientSecret": {"name": "t", "namespace": "team-a"}, "a": {"b": {"c": 1}}, "nul": {"x": true}}})
        );
        let err = p("spec.clientSecret.name.deeper").set(&mut obj, json!("x")).unwrap_err();
        assert_eq!(
            err,
            SetError::NotAMapping {
                path: "spec.clientSecret.name.deeper".into(),
                at: "spec.clientSecret.name".into(),
                found: "a string"
            }
        );
        let mut null = Value::Null;
        p("a.b").set(&mut null, json!("v")).unwrap();
        assert_eq!(null, json!({"a": {"b": "v"}}));
        let mut scalar = json!(3);
        assert!(p("a").set(&mut scalar, json!(1)).is_err());
    }

    #[test]
    fn json_pointer_escapes() {
        assert_eq!(FieldPath::parse("metadata.labels.a/b~c").unwrap().json_pointer(), "/metadata/labels/a~1b~0c");
    }
}
