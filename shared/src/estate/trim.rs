//! What a cache keeps of an object: the one rule the webhook's live cache (its watches) and the
//! offline estate it loads with `--estate` both apply, so the rules see the same fields either way
//! and neither holds bulk nobody reads (managedFields, CRD schemas) or secret data (Secret values,
//! kubectl's last-applied annotation, which can hold a Secret in clear text).
//!
//! Readers checked: the admission rules and mutation read k0rdent objects whole (spec, labels,
//! status), CRDs for group/scope/kind/plural and served versions, Secrets for their key names, and
//! identity objects only for their existence. Explain and the distribution planner read identity
//! specs and Secret values: they run on whole objects (the plugin's offline estate is not trimmed;
//! the distributor reads sources live).

use serde_json::{Map, Value, json};

use crate::model::labels::LAST_APPLIED;

/// What is kept of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The whole object minus managedFields and the last-applied annotation: the k0rdent kinds.
    Common,
    /// A CRD reduced to group, scope, names and served versions.
    Crd,
    /// Identity metadata and the key names of `data`/`stringData` (values emptied): Secrets.
    SecretKeys,
    /// Identity metadata only: every other kind (identity objects, looked up by name).
    Meta,
}

/// The shape kept of objects of `group`/`kind`.
pub fn shape_of(group: &str, kind: &str) -> Shape {
    match (group, kind) {
        (crate::K0RDENT_GROUP, _) => Shape::Common,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => Shape::Crd,
        ("", "Secret") => Shape::SecretKeys,
        _ => Shape::Meta,
    }
}

/// `obj` reduced to its kind's [`Shape`]; objects without apiVersion/kind lose only the common bulk.
pub fn trim(obj: Value) -> Value {
    let Some(gvk) = crate::Gvk::of(&obj) else { return strip_common(obj) };
    match shape_of(&gvk.group, &gvk.kind) {
        Shape::Common => strip_common(obj),
        Shape::Crd => trim_crd(obj),
        Shape::SecretKeys => secret_key_names(obj),
        Shape::Meta => identity_meta(&gvk.api_version(), &gvk.kind, obj.get("metadata").unwrap_or(&Value::Null)),
    }
}

/// Drops managedFields and the last-applied annotation (it can hold a Secret in clear text).
pub fn strip_common(mut v: Value) -> Value {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            ann.remove(LAST_APPLIED);
            if ann.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    v
}

/// Identity metadata only: name, namespace, uid, resourceVersion, labels, deletionTimestamp (no
/// annotations).
pub fn identity_meta(api_version: &str, kind: &str, meta: &Value) -> Value {
    let mut m = Map::new();
    for k in ["name", "namespace", "uid", "resourceVersion", "labels", "deletionTimestamp"] {
        if let Some(v) = meta.get(k).filter(|v| !v.is_null()) {
            m.insert(k.into(), v.clone());
        }
    }
    json!({"apiVersion": api_version, "kind": kind, "metadata": Value::Object(m)})
}

/// A Secret as identity metadata plus its key names: `data`/`stringData` keep their keys, each
/// with an empty value (the rules check key names, never values).
pub fn secret_key_names(v: Value) -> Value {
    let meta = v.get("metadata").unwrap_or(&Value::Null);
    let mut out = identity_meta(
        v.get("apiVersion").and_then(Value::as_str).unwrap_or("v1"),
        v.get("kind").and_then(Value::as_str).unwrap_or("Secret"),
        meta,
    );
    for field in ["data", "stringData"] {
        if let (Some(keys), Some(map)) = (v.get(field).and_then(Value::as_object), out.as_object_mut()) {
            let names = keys.keys().map(|k| (k.clone(), Value::String(String::new()))).collect();
            map.insert(field.into(), Value::Object(names));
        }
    }
    out
}

/// A CRD reduced to group, scope, names (kind, plural) and versions (name, served).
pub fn trim_crd(v: Value) -> Value {
    let spec = v.get("spec");
    let versions: Vec<Value> = spec
        .and_then(|s| s.get("versions"))
        .and_then(Value::as_array)
        .map(|vs| vs.iter().map(|x| json!({"name": x.get("name"), "served": x.get("served")})).collect())
        .unwrap_or_default();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": v.get("metadata").and_then(|m| m.get("name")),
                     "resourceVersion": v.get("metadata").and_then(|m| m.get("resourceVersion"))},
        "spec": {
            "group": spec.and_then(|s| s.get("group")),
            "scope": spec.and_then(|s| s.get("scope")),
            "names": {"kind": spec.and_then(|s| s.get("names")).and_then(|n| n.get("kind")),
                      "plural": spec.and_then(|s| s.get("names")).and_then(|n| n.get("plural"))},
            "versions": versions,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_keeps_what_its_readers_read() {
        let cred = json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Credential",
            "metadata": {"name": "c", "managedFields": [{}], "annotations": {LAST_APPLIED: "{secret}", "keep": "x"}},
            "spec": {"region": "r1"}, "status": {"ready": true}});
        let t = trim(cred);
        assert!(t["metadata"].get("managedFields").is_none());
        assert_eq!(t["metadata"]["annotations"], json!({"keep": "x"}));
        assert_eq!((t["spec"]["region"].as_str(), t["status"]["ready"].as_bool()), (Some("r1"), Some(true)));
        let only_last_applied = json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Region",
            "metadata": {"name": "r", "annotations": {LAST_APPLIED: "{}"}}});
        assert!(trim(only_last_applied)["metadata"].get("annotations").is_none());

        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "xs.g", "resourceVersion": "5"},
            "spec": {"group": "g", "scope": "Namespaced", "names": {"kind": "X", "plural": "xs"},
                     "versions": [{"name": "v1", "served": true, "schema": {"huge": true}}]}});
        let t = trim(crd);
        assert_eq!(t["spec"]["versions"], json!([{"name": "v1", "served": true}]));
        assert_eq!(t["spec"]["names"]["plural"], "xs");

        let secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "s", "namespace": "n", "resourceVersion": "1",
                         "annotations": {LAST_APPLIED: "{\"data\":{\"value\":\"c2VjcmV0\"}}"}},
            "data": {"value": "c2VjcmV0"}, "stringData": {"extra": "plain"}});
        let t = trim(secret);
        assert_eq!(t["data"], json!({"value": ""}));
        assert_eq!(t["stringData"], json!({"extra": ""}));
        assert!(!t.to_string().contains("c2VjcmV0") && !t.to_string().contains("plain"), "{t}");
        assert_eq!(t["metadata"]["resourceVersion"], "1");

        let identity = json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "AWSClusterStaticIdentity",
            "metadata": {"name": "id", "labels": {"a": "b"}, "annotations": {"x": "y"}}, "spec": {"secretRef": "s"}});
        let t = trim(identity);
        assert_eq!(
            t,
            json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "AWSClusterStaticIdentity",
                   "metadata": {"name": "id", "labels": {"a": "b"}}})
        );
        // Trimming twice changes nothing (the live cache re-applies objects it already holds).
        assert_eq!(trim(t.clone()), t);
    }
}
