//! Server-side printing: the `meta.k8s.io/v1` Table kubectl asks for (`Accept: ...;as=Table;...`) so that
//! `kubectl get` shows the same columns as on a real server: CRD `additionalPrinterColumns`, and the usual
//! columns of the built-ins the project touches.

use serde_json::{Value, json};

use crate::resources::{CRD_GROUP, CRD_RESOURCE, ResourceDef};

struct Column {
    name: String,
    kind: String,
    priority: i64,
    description: String,
    path: String,
}

fn col(name: &str, kind: &str, path: &str) -> Column {
    Column { name: name.into(), kind: kind.into(), priority: 0, description: String::new(), path: path.into() }
}

/// Columns after Name. `crd` is the CustomResourceDefinition of a custom resource.
fn columns(def: &ResourceDef, version: &str, crd: Option<&Value>) -> Vec<Column> {
    if let Some(crd) = crd {
        let printer = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .and_then(|vs| vs.iter().find(|v| v.get("name").and_then(Value::as_str) == Some(version)))
            .and_then(|v| v.get("additionalPrinterColumns"))
            .and_then(Value::as_array);
        if let Some(printer) = printer {
            return printer
                .iter()
                .map(|c| {
                    let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                    Column {
                        name: s("name"),
                        kind: s("type"),
                        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                        description: s("description"),
                        path: s("jsonPath"),
                    }
                })
                .collect();
        }
        return vec![col("Age", "date", ".metadata.creationTimestamp")];
    }
    let mut cols = match (def.group.as_str(), def.plural.as_str()) {
        ("", "namespaces") => vec![col("Status", "string", ".status.phase")],
        ("", "configmaps") => vec![col("Data", "count", ".data")],
        ("", "secrets") => vec![col("Type", "string", ".type"), col("Data", "count", ".data")],
        ("coordination.k8s.io", "leases") => vec![col("Holder", "string", ".spec.holderIdentity")],
        (CRD_GROUP, CRD_RESOURCE) => vec![col("Created At", "string", ".metadata.creationTimestamp")],
        _ => vec![],
    };
    if !(def.group == CRD_GROUP && def.plural == CRD_RESOURCE) {
        cols.push(col("Age", "date", ".metadata.creationTimestamp"));
    }
    cols
}

/// Evaluates the JSONPath subset printer columns use: `.a.b`, `.a[0]`, `.a[*].b`, `.a[?(@.k=="v")].b`.
pub fn jsonpath(obj: &Value, path: &str) -> Vec<Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}').trim_start_matches('$');
    let mut cur = vec![obj.clone()];
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            cur = cur.iter().filter_map(|v| v.get(key).cloned()).collect();
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else { return vec![] };
            let sel = &r[..end];
            rest = &r[end + 1..];
            let items = cur.iter().filter_map(|v| v.as_array()).flatten();
            cur = if sel == "*" {
                items.cloned().collect()
            } else if let Ok(i) = sel.parse::<usize>() {
                cur.iter().filter_map(|v| v.get(i).cloned()).collect()
            } else if let Some(f) = sel.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (k, want) = f.split_once("==").unwrap_or((f, ""));
                let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
                items
                    .filter(|it| {
                        let got = jsonpath(it, &format!(".{}", k.trim()));
                        got.first().is_some_and(|g| g.as_str().map_or_else(|| g.to_string(), str::to_string) == want)
                    })
                    .cloned()
                    .collect()
            } else {
                return vec![];
            };
        } else {
            return vec![];
        }
    }
    cur
}

/// `5s`, `3m20s`, `42m`, `5h10m`, `3d4h`, `120d`: kube's HumanDuration, close enough.
pub fn human_age(created: &str) -> String {
    let Ok(ts) = created.parse::<jiff::Timestamp>() else { return "<unknown>".into() };
    let secs = jiff::Timestamp::now().as_second() - ts.as_second();
    if secs < 0 {
        return "0s".into();
    }
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    match secs {
        s if s < 120 => format!("{s}s"),
        _ if m < 10 && secs % 60 != 0 => format!("{m}m{}s", secs % 60),
        _ if h < 3 => format!("{m}m"),
        _ if h < 8 && m % 60 != 0 => format!("{h}h{}m", m % 60),
        _ if h < 48 => format!("{h}h"),
        _ if d < 8 && h % 24 != 0 => format!("{d}d{}h", h % 24),
        _ => format!("{d}d"),
    }
}

fn cell(obj: &Value, c: &Column) -> Value {
    let found = jsonpath(obj, &c.path);
    match c.kind.as_str() {
        "count" => json!(found.first().and_then(Value::as_object).map_or(0, |m| m.len())),
        "date" => match found.first().and_then(Value::as_str) {
            Some(t) => json!(human_age(t)),
            None => json!("<unknown>"),
        },
        _ => match found.as_slice() {
            [] => Value::Null,
            [one] => one.clone(),
            many => json!(
                many.iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        },
    }
}

fn column_type(kind: &str) -> &str {
    match kind {
        "count" => "integer",
        "date" => "string",
        other => other,
    }
}

/// A Table of `objects`. `include_object` is the `includeObject` query value (`Metadata` by default).
pub fn table(
    def: &ResourceDef,
    version: &str,
    crd: Option<&Value>,
    objects: &[Value],
    include_object: &str,
    resource_version: &str,
) -> Value {
    let cols = columns(def, version, crd);
    let mut defs = vec![json!({"name": "Name", "type": "string", "format": "name", "priority": 0,
                               "description": "Name must be unique within a namespace."})];
    defs.extend(cols.iter().map(|c| {
        json!({"name": c.name, "type": column_type(&c.kind), "format": "", "priority": c.priority, "description": c.description})
    }));
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
            cells.extend(cols.iter().map(|c| cell(o, c)));
            let mut row = json!({"cells": cells});
            match include_object {
                "None" => {}
                "Object" => row["object"] = o.clone(),
                _ => {
                    row["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                           "metadata": o.get("metadata").cloned().unwrap_or(Value::Null)})
                }
            }
            row
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": resource_version},
           "columnDefinitions": defs, "rows": rows})
}

/// `true` when the client asked for a Table (kubectl's human-readable output).
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').next().is_some_and(|first| first.contains("as=Table") && first.contains("g=meta.k8s.io"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_subset() {
        let o = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]},
                       "spec": {"items": [1, 2]}});
        assert_eq!(jsonpath(&o, r#".status.conditions[?(@.type=="Ready")].status"#), vec![json!("True")]);
        assert_eq!(jsonpath(&o, ".spec.items[1]"), vec![json!(2)]);
        assert_eq!(jsonpath(&o, ".status.conditions[*].type"), vec![json!("A"), json!("Ready")]);
        assert!(jsonpath(&o, ".missing.x").is_empty());
    }
}
