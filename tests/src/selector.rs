//! Label selectors (query-string form and `LabelSelector` objects) and the field selectors the server supports.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector=` query value. Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Req>);

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn set_values(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect())
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let bad = |part: &str| {
            ApiError::bad_request(format!(
                "unable to parse requirement: found '{part}', expected: '=', '!=', '==', 'in', notin'"
            ))
        };
        let mut reqs = Vec::new();
        for part in split_top(s).into_iter().map(str::trim).filter(|p| !p.is_empty()) {
            if let Some(k) = part.strip_prefix('!') {
                reqs.push(Req::NotExists(k.trim().to_string()));
            } else if let Some((k, v)) = part.split_once("!=") {
                reqs.push(Req::NotEq(k.trim().into(), v.trim().into()));
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                reqs.push(Req::Eq(k.trim().into(), v.trim().into()));
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                reqs.push(Req::NotIn(k.trim().into(), set_values(rest).ok_or_else(|| bad(part))?));
            } else if let Some((k, rest)) = part.split_once(" in ") {
                reqs.push(Req::In(k.trim().into(), set_values(rest).ok_or_else(|| bad(part))?));
            } else if part.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) {
                reqs.push(Req::Exists(part.to_string()));
            } else {
                return Err(bad(part));
            }
        }
        Ok(LabelSelector(reqs))
    }

    /// From a `metav1.LabelSelector` object (`matchLabels`, `matchExpressions`); `null` matches everything.
    pub fn from_object(v: Option<&Value>) -> Result<Self, String> {
        let mut reqs = Vec::new();
        let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(LabelSelector(reqs)) };
        if let Some(m) = v.get("matchLabels").and_then(Value::as_object) {
            for (k, val) in m {
                reqs.push(Req::Eq(k.clone(), val.as_str().unwrap_or_default().to_string()));
            }
        }
        for e in v.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default().to_string();
            let values: Vec<String> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default();
            match e.get("operator").and_then(Value::as_str).unwrap_or_default() {
                "In" => reqs.push(Req::In(key, values)),
                "NotIn" => reqs.push(Req::NotIn(key, values)),
                "Exists" => reqs.push(Req::Exists(key)),
                "DoesNotExist" => reqs.push(Req::NotExists(key)),
                other => return Err(format!("\"{other}\" is not a valid label selector operator")),
            }
        }
        Ok(LabelSelector(reqs))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => labels.get(k) == Some(v),
            Req::NotEq(k, v) => labels.get(k) != Some(v),
            Req::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Req::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Req::Exists(k) => labels.contains_key(k),
            Req::NotExists(k) => !labels.contains_key(k),
        })
    }
}

/// A parsed `fieldSelector=`: `path=value`, `path==value`, `path!=value`, comma-separated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

/// Fields each resource can be selected by, beyond `metadata.name` and `metadata.namespace`.
fn extra_fields(group: &str, resource: &str) -> &'static [&'static str] {
    match (group, resource) {
        ("", "secrets") => &["type"],
        ("", "namespaces") => &["status.phase"],
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("events.k8s.io", "events") => &["regarding.kind", "regarding.namespace", "regarding.name", "reason", "type"],
        _ => &[],
    }
}

impl FieldSelector {
    pub fn parse(s: &str, group: &str, resource: &str) -> Result<Self, ApiError> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, neg, v) = if let Some((k, v)) = part.split_once("!=") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (k, false, v)
            } else {
                return Err(ApiError::bad_request(format!("invalid selector: '{s}'; can't understand '{part}'")));
            };
            let k = k.trim();
            if !matches!(k, "metadata.name" | "metadata.namespace") && !extra_fields(group, resource).contains(&k) {
                return Err(ApiError::bad_request(format!("field label not supported: {k}")));
            }
            out.push((k.to_string(), neg, v.trim().to_string()));
        }
        Ok(FieldSelector(out))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, neg, want)| {
            let mut cur = Some(obj);
            for seg in path.split('.') {
                cur = cur.and_then(|c| c.get(seg));
            }
            let got = match cur {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (got == *want) != *neg
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn set_based_and_equality_requirements() {
        let s = LabelSelector::parse("env in (prod, staging),tier!=db,app,!legacy").unwrap();
        assert!(s.matches(&labels(&[("env", "prod"), ("app", "x")])));
        assert!(!s.matches(&labels(&[("env", "dev"), ("app", "x")])));
        assert!(!s.matches(&labels(&[("env", "prod"), ("app", "x"), ("legacy", "1")])));
        assert!(!s.matches(&labels(&[("env", "prod"), ("app", "x"), ("tier", "db")])));
        assert!(!s.matches(&labels(&[("env", "prod")])));
        let n = LabelSelector::parse("env notin (prod)").unwrap();
        assert!(n.matches(&labels(&[])));
        assert!(!n.matches(&labels(&[("env", "prod")])));
    }

    #[test]
    fn label_selector_object() {
        let sel = json!({"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "Exists"}]});
        let s = LabelSelector::from_object(Some(&sel)).unwrap();
        assert!(s.matches(&labels(&[("a", "1"), ("b", "")])));
        assert!(!s.matches(&labels(&[("a", "1")])));
        assert!(
            LabelSelector::from_object(Some(&json!({"matchExpressions": [{"key": "b", "operator": "Nope"}]}))).is_err()
        );
    }

    #[test]
    fn field_selectors() {
        let f = FieldSelector::parse("metadata.name=a,metadata.namespace!=b", "", "secrets").unwrap();
        assert!(f.matches(&json!({"metadata": {"name": "a", "namespace": "c"}})));
        assert!(!f.matches(&json!({"metadata": {"name": "a", "namespace": "b"}})));
        assert!(FieldSelector::parse("spec.foo=a", "", "configmaps").is_err());
        assert!(FieldSelector::parse("type=Opaque", "", "secrets").is_ok());
    }
}
