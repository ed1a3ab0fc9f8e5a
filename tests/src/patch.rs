//! Patches: JSON merge patch, JSON patch, an approximate strategic merge patch for built-ins, and server-side
//! apply with per-manager field ownership recorded in `metadata.managedFields` (lists are atomic).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::store::{meta_mut, now};

/// A field path: object keys from the root. Lists are owned as a whole.
pub type FieldPath = Vec<String>;

pub fn merge_patch(doc: &mut Value, patch: &Value) {
    json_patch::merge(doc, patch);
}

pub fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), String> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| format!("invalid JSON patch: {e}"))?;
    json_patch::patch(doc, &ops.0).map_err(|e| e.to_string())
}

enum ListStrategy {
    Replace,
    /// `patchStrategy: merge` on a list of scalars: union.
    Primitive,
    /// `patchStrategy: merge` with a `patchMergeKey`.
    Key(&'static str),
}

/// The few merge keys of the built-in kinds the emulator serves; other lists are replaced.
fn list_strategy(field: &str) -> ListStrategy {
    match field {
        "finalizers" => ListStrategy::Primitive,
        "ownerReferences" => ListStrategy::Key("uid"),
        "webhooks" | "containers" | "initContainers" | "volumes" | "env" | "imagePullSecrets" => {
            ListStrategy::Key("name")
        }
        "conditions" => ListStrategy::Key("type"),
        _ => ListStrategy::Replace,
    }
}

fn is_directive(k: &str) -> bool {
    k.starts_with('$')
}

/// Drops strategic-merge directives from a value that is inserted as is.
fn clean(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().filter(|(k, _)| !is_directive(k)).map(|(k, v)| (k.clone(), clean(v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(clean).collect()),
        other => other.clone(),
    }
}

/// Approximate strategic merge patch: JSON merge semantics plus merge keys for the lists named above and the
/// `$patch`, `$retainKeys`, `$deleteFromPrimitiveList/` and `$setElementOrder/` directives kubectl sends.
pub fn strategic_merge(doc: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *doc = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        *doc = clean(patch);
        return;
    }
    if !doc.is_object() {
        *doc = json!({});
    }
    let Value::Object(d) = doc else { return };
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(gone)) = (d.get_mut(field), v.as_array()) {
                list.retain(|x| !gone.contains(x));
            }
            continue;
        }
        if is_directive(k) {
            continue;
        }
        if v.is_null() || v.get("$patch").and_then(Value::as_str) == Some("delete") {
            d.remove(k);
            continue;
        }
        match (d.get_mut(k), v) {
            (Some(existing @ Value::Array(_)), Value::Array(items)) => merge_list(existing, items, k),
            (Some(existing @ Value::Object(_)), Value::Object(_)) => strategic_merge(existing, v),
            _ => {
                d.insert(k.clone(), clean(v));
            }
        }
    }
    if let Some(retain) = p.get("$retainKeys").and_then(Value::as_array) {
        let keep: BTreeSet<&str> = retain.iter().filter_map(Value::as_str).collect();
        d.retain(|k, _| keep.contains(k.as_str()));
    }
}

fn merge_list(existing: &mut Value, items: &[Value], field: &str) {
    let Value::Array(list) = existing else { return };
    match list_strategy(field) {
        ListStrategy::Replace => *list = items.iter().map(clean).collect(),
        ListStrategy::Primitive => {
            for it in items {
                if !list.contains(it) {
                    list.push(it.clone());
                }
            }
        }
        ListStrategy::Key(key) => {
            for it in items {
                let id = it.get(key);
                let pos = list.iter().position(|e| id.is_some() && e.get(key) == id);
                let delete = it.get("$patch").and_then(Value::as_str) == Some("delete");
                match (pos, delete) {
                    (Some(i), true) => {
                        list.remove(i);
                    }
                    (Some(i), false) => strategic_merge(&mut list[i], it),
                    (None, false) => list.push(clean(it)),
                    (None, true) => {}
                }
            }
        }
    }
}

/// Paths the server owns or that identify the object: never tracked as anyone's fields.
fn ignored(path: &[String]) -> bool {
    match path {
        [a] => a == "apiVersion" || a == "kind",
        [m, f, ..] if m == "metadata" => matches!(
            f.as_str(),
            "name"
                | "namespace"
                | "resourceVersion"
                | "uid"
                | "creationTimestamp"
                | "generation"
                | "managedFields"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
                | "selfLink"
        ),
        _ => false,
    }
}

/// Leaf paths of a value: scalars, lists and empty maps.
pub fn leaf_paths(v: &Value) -> BTreeSet<FieldPath> {
    fn walk(v: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        if ignored(prefix) {
            return;
        }
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    prefix.push(k.clone());
                    walk(child, prefix, out);
                    prefix.pop();
                }
            }
            _ if !prefix.is_empty() => {
                out.insert(prefix.clone());
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

pub fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, seg| cur.get(seg))
}

fn set_path(v: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut cur = v;
    for seg in parents {
        if !cur.get(seg).is_some_and(Value::is_object) {
            cur[seg.as_str()] = json!({});
        }
        cur = &mut cur[seg.as_str()];
    }
    cur[last.as_str()] = value;
}

fn remove_path(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut cur = v;
    for seg in parents {
        match cur.get_mut(seg) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Value::Object(m) = cur {
        m.remove(last);
    }
}

/// One path is the other or contains it.
fn related(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

pub fn to_fields_v1(set: &BTreeSet<FieldPath>) -> Value {
    let mut root = json!({});
    for path in set {
        let mut cur = &mut root;
        for seg in path {
            let key = format!("f:{seg}");
            if !cur.get(&key).is_some_and(Value::is_object) {
                cur[key.as_str()] = json!({});
            }
            cur = &mut cur[key.as_str()];
        }
    }
    root
}

pub fn from_fields_v1(v: &Value) -> BTreeSet<FieldPath> {
    fn walk(v: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        let Some(m) = v.as_object() else { return };
        if m.is_empty() || m.contains_key(".") {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
            if m.is_empty() {
                return;
            }
        }
        for (k, child) in m {
            if let Some(name) = k.strip_prefix("f:") {
                prefix.push(name.to_string());
                walk(child, prefix, out);
                prefix.pop();
            } else if k != "." && !prefix.is_empty() {
                // k:/v:/i: list members: this emulator owns lists as a whole.
                out.insert(prefix.clone());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: String,
    fields: BTreeSet<FieldPath>,
}

fn read_entries(obj: Option<&Value>) -> Vec<Entry> {
    obj.and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| {
                    let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                    Entry {
                        manager: s("manager"),
                        operation: s("operation"),
                        api_version: s("apiVersion"),
                        time: s("time"),
                        subresource: s("subresource"),
                        fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn write_entries(obj: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    let m = meta_mut(obj);
    if list.is_empty() {
        m.remove("managedFields");
    } else {
        m.insert("managedFields".into(), Value::Array(list));
    }
}

fn entry_mut<'a>(
    entries: &'a mut Vec<Entry>,
    manager: &str,
    operation: &str,
    api_version: &str,
    subresource: &str,
) -> &'a mut Entry {
    let pos =
        entries.iter().position(|e| e.manager == manager && e.operation == operation && e.subresource == subresource);
    let i = match pos {
        Some(i) => i,
        None => {
            entries.push(Entry {
                manager: manager.into(),
                operation: operation.into(),
                api_version: api_version.into(),
                time: String::new(),
                subresource: subresource.into(),
                fields: BTreeSet::new(),
            });
            entries.len() - 1
        }
    };
    let e = &mut entries[i];
    e.api_version = api_version.into();
    e.time = now();
    e
}

/// Records a non-apply write (create, update, merge/JSON/strategic patch): the writer takes ownership of the
/// fields it changed, without conflicts; fields that no longer exist leave every manager's set.
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, api_version: &str, subresource: &str) {
    let mut entries = read_entries(old);
    let changed: BTreeSet<FieldPath> = leaf_paths(new)
        .into_iter()
        .filter(|p| old.and_then(|o| get_path(o, p)) != get_path(new, p))
        .filter(|p| subresource != "status" || p.first().map(String::as_str) == Some("status"))
        .collect();
    for e in &mut entries {
        e.fields.retain(|p| get_path(new, p).is_some() && !changed.iter().any(|c| related(c, p)));
    }
    if !changed.is_empty() {
        entry_mut(&mut entries, manager, "Update", api_version, subresource).fields.extend(changed);
    }
    write_entries(new, entries);
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    pub field: String,
}

fn dotted(path: &[String]) -> String {
    path.iter().map(|s| format!(".{s}")).collect()
}

/// Server-side apply of `applied` by `manager` onto `current` (`None`: the object is created).
/// Returns the merged object with updated managedFields, or the conflicts when `force` is false.
pub fn server_side_apply(
    current: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    subresource: &str,
) -> Result<Value, Vec<Conflict>> {
    let applied_set = leaf_paths(applied);
    let Some(cur) = current else {
        let mut obj = applied.clone();
        let mut entries = Vec::new();
        entry_mut(&mut entries, manager, "Apply", api_version, subresource).fields = applied_set;
        write_entries(&mut obj, entries);
        return Ok(obj);
    };
    let mut entries = read_entries(Some(cur));
    let mut conflicts = Vec::new();
    let mut forced: Vec<(usize, FieldPath)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.manager == manager || e.subresource != subresource {
            continue;
        }
        for owned in &e.fields {
            for p in applied_set.iter().filter(|p| related(p, owned)) {
                let deeper = if p.len() >= owned.len() { p } else { owned };
                if get_path(cur, deeper) != get_path(applied, deeper) {
                    conflicts.push(Conflict {
                        manager: e.manager.clone(),
                        api_version: e.api_version.clone(),
                        field: dotted(owned),
                    });
                    forced.push((i, owned.clone()));
                    break;
                }
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    for (i, path) in forced {
        entries[i].fields.remove(&path);
    }
    let mut obj = cur.clone();
    for p in &applied_set {
        if let Some(v) = get_path(applied, p) {
            set_path(&mut obj, p, v.clone());
        }
    }
    // Fields this manager applied before and no longer applies are removed, unless someone else owns them.
    let previous: BTreeSet<FieldPath> = entries
        .iter()
        .filter(|e| e.manager == manager && e.operation == "Apply" && e.subresource == subresource)
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    for p in previous.difference(&applied_set) {
        let shared = entries.iter().any(|e| e.manager != manager && e.fields.iter().any(|q| related(p, q)));
        if !shared && !applied_set.iter().any(|q| q.starts_with(p)) {
            remove_path(&mut obj, p);
        }
    }
    entry_mut(&mut entries, manager, "Apply", api_version, subresource).fields = applied_set;
    write_entries(&mut obj, entries);
    Ok(obj)
}

/// The 409 message the real server gives for apply conflicts.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with \"{}\" using {}: {}",
            c.manager, c.api_version, c.field
        );
    }
    let mut s = format!("Apply failed with {} conflicts: ", conflicts.len());
    let mut by: Vec<(String, String, Vec<String>)> = Vec::new();
    for c in conflicts {
        match by.iter_mut().find(|(m, v, _)| *m == c.manager && *v == c.api_version) {
            Some(group) => group.2.push(c.field.clone()),
            None => by.push((c.manager.clone(), c.api_version.clone(), vec![c.field.clone()])),
        }
    }
    let parts: Vec<String> = by
        .iter()
        .map(|(m, v, fields)| {
            let list: String = fields.iter().map(|f| format!("\n- {f}")).collect();
            format!("conflicts with \"{m}\" using {v}:{list}")
        })
        .collect();
    s.push_str(&parts.join("\n"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategic_merge_merges_webhooks_by_name_and_finalizers_as_set() {
        let mut doc =
            json!({"metadata": {"finalizers": ["a"]}, "webhooks": [{"name": "x", "timeoutSeconds": 5}, {"name": "y"}]});
        let patch = json!({
            "metadata": {"finalizers": ["b"], "$setElementOrder/finalizers": ["a", "b"]},
            "webhooks": [{"name": "x", "timeoutSeconds": 7}, {"name": "y", "$patch": "delete"}],
        });
        strategic_merge(&mut doc, &patch);
        assert_eq!(doc["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(doc["webhooks"], json!([{"name": "x", "timeoutSeconds": 7}]));
    }

    #[test]
    fn fields_v1_round_trip() {
        let v = json!({"metadata": {"name": "n", "labels": {"a": "1"}}, "spec": {"x": [1, 2], "y": {"z": true}}});
        let set = leaf_paths(&v);
        assert_eq!(set.len(), 3);
        assert_eq!(from_fields_v1(&to_fields_v1(&set)), set);
    }

    #[test]
    fn apply_conflicts_unless_forced_and_removes_dropped_fields() {
        let first =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        let obj = server_side_apply(None, &first, "one", false, "v1", "").unwrap();
        // Same values from another manager: shared, no conflict.
        let same = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        let obj = server_side_apply(Some(&obj), &same, "two", false, "v1", "").unwrap();
        let differ = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"b": "3"}});
        let err = server_side_apply(Some(&obj), &differ, "two", false, "v1", "").unwrap_err();
        assert_eq!(err, vec![Conflict { manager: "one".into(), api_version: "v1".into(), field: ".data.b".into() }]);
        assert!(conflict_message(&err).contains("conflict with \"one\" using v1: .data.b"));
        let obj = server_side_apply(Some(&obj), &differ, "two", true, "v1", "").unwrap();
        assert_eq!(obj["data"], json!({"a": "1", "b": "3"}));
        // "two" no longer applies a, but "one" still owns it, so it stayed; now "one" drops it too: it goes.
        let labels = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"l": "x"}}});
        let obj = server_side_apply(Some(&obj), &labels, "one", false, "v1", "").unwrap();
        assert_eq!(obj["data"], json!({"b": "3"}));
        // "one" applies b with the same value: shared ownership; "two" dropping b then keeps it.
        let shared = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"l": "x"}},
                            "data": {"b": "3"}});
        let obj = server_side_apply(Some(&obj), &shared, "one", false, "v1", "").unwrap();
        let none = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let obj = server_side_apply(Some(&obj), &none, "two", false, "v1", "").unwrap();
        assert_eq!(obj["data"], json!({"b": "3"}));
        assert_eq!(obj["metadata"]["labels"], json!({"l": "x"}));
    }

    #[test]
    fn update_takes_ownership_so_a_later_apply_conflicts() {
        let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        let old = server_side_apply(None, &first, "applier", false, "v1", "").unwrap();
        let mut new = old.clone();
        new["data"]["a"] = json!("2");
        record_update(Some(&old), &mut new, "editor", "v1", "");
        let err = server_side_apply(Some(&new), &first, "applier", false, "v1", "").unwrap_err();
        assert_eq!(err[0].manager, "editor");
    }
}
