//! Mutations: minimal, idempotent JSONPatches for Credentials.
//!
//! - label `k0rdent.mirantis.com/component: kcm` (KCM adds it later with a merge patch anyway;
//!   adding it at admission saves KCM an extra write and makes backups select it at once);
//! - label `k0rdent.mirantis.com/region: <spec.region>` on regional Credentials, so
//!   `kubectl get credentials -l k0rdent.mirantis.com/region=r1` selects them. The label always
//!   mirrors `spec.region`: a stale one (wrong value, or on a non-regional Credential) is replaced or
//!   removed, so the selector never lies. A region name that is not a valid label value (longer than
//!   63 characters) gets no label;
//! - `spec.identityRef.namespace` defaults to the Credential's namespace for namespaced identity
//!   kinds (when the estate knows the scope; unknown scope is left alone).
//!
//! Reinvocation gives an empty patch (idempotent); DELETE and other kinds never get one. The patch has
//! no side effects, so dry-run requests get the same patch.

use std::borrow::Cow;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation};
use serde_json::{Map, Value, json};

use crate::estate::{Cluster, Estate};
use crate::gvk::Gvk;
use crate::model::labels;
use crate::rules::{AdmissionInput, JsonText, Operation, ResourceKind};

/// The patch for an admission request; empty when the object already has what we add.
pub fn mutate(input: &AdmissionInput<'_>, estate: &dyn Estate) -> Patch {
    let mut ops = Vec::new();
    if input.kind != ResourceKind::Credential || !matches!(input.operation, Operation::Create | Operation::Update) {
        return Patch(ops);
    }
    // The few members the patch depends on are read from the object's text: no `Value` of it.
    // Each of `metadata` and `spec` is walked once for all its members read here.
    let Some(obj) = input.object else { return Patch(ops) };
    let metadata = obj.at(&["metadata"]);
    let [labels, deletion, namespace] =
        metadata.map_or([None; 3], |m| m.get_many(["labels", "deletionTimestamp", "namespace"]));
    if deletion.is_some_and(JsonText::is_set) {
        return Patch(ops);
    }
    let [region, identity_ref] = obj.at(&["spec"]).map_or([None; 2], |s| s.get_many(["region", "identityRef"]));
    let region = non_empty(region);
    let member = Members { metadata, labels, namespace, identity_ref };
    label_ops(&member, region.as_deref(), &mut ops);
    identity_namespace_op(input, &member, region.as_deref(), estate, &mut ops);
    Patch(ops)
}

/// The members of the object the patch depends on.
struct Members<'t> {
    metadata: Option<JsonText<'t>>,
    labels: Option<JsonText<'t>>,
    namespace: Option<JsonText<'t>>,
    identity_ref: Option<JsonText<'t>>,
}

/// The string `v` is, when it is a non-empty one.
fn non_empty(v: Option<JsonText<'_>>) -> Option<Cow<'_, str>> {
    v.and_then(JsonText::as_str).filter(|s| !s.is_empty())
}

fn pointer(tokens: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(tokens.iter().copied())
}

fn label_ops(obj: &Members<'_>, region: Option<&str>, ops: &mut Vec<PatchOperation>) {
    let region = region.filter(|r| is_label_value(r));
    let mut want: Vec<(&str, &str)> = vec![(labels::COMPONENT, labels::COMPONENT_KCM)];
    if let Some(r) = region {
        want.push((labels::REGION, r));
    }
    let Some(current) = obj.labels.filter(|l| l.is_object()) else {
        let map: Map<String, Value> = want.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        // `add` replaces a null member too; a missing metadata gets created whole.
        let op = if obj.metadata.is_some_and(JsonText::is_object) {
            AddOperation { path: pointer(&["metadata", "labels"]), value: Value::Object(map) }
        } else {
            AddOperation { path: pointer(&["metadata"]), value: json!({ "labels": map }) }
        };
        ops.push(PatchOperation::Add(op));
        return;
    };
    for (key, value) in want {
        let path = pointer(&["metadata", "labels", key]);
        match current.get(key) {
            None => ops.push(PatchOperation::Add(AddOperation { path, value: json!(value) })),
            Some(v) if v.as_str().as_deref() != Some(value) => {
                ops.push(PatchOperation::Replace(ReplaceOperation { path, value: json!(value) }));
            }
            Some(_) => {}
        }
    }
    if region.is_none() && current.get(labels::REGION).is_some() {
        ops.push(PatchOperation::Remove(RemoveOperation { path: pointer(&["metadata", "labels", labels::REGION]) }));
    }
}

fn identity_namespace_op(
    input: &AdmissionInput<'_>,
    obj: &Members<'_>,
    region: Option<&str>,
    estate: &dyn Estate,
    ops: &mut Vec<PatchOperation>,
) {
    let Some(iref) = obj.identity_ref.filter(|v| v.is_object()) else { return };
    let [av, kind, ns] = iref.get_many(["apiVersion", "kind", "namespace"]);
    if non_empty(ns).is_some() {
        return;
    }
    let (Some(av), Some(kind)) = (non_empty(av), non_empty(kind)) else { return };
    let gvk = Gvk::from_api_version(&av, &kind);
    let namespaced = estate
        .namespaced(&Cluster::Management, &gvk)
        .or_else(|| estate.namespaced(&Cluster::Region(region?.to_string()), &gvk));
    if namespaced != Some(true) {
        return;
    }
    let own = non_empty(obj.namespace);
    let Some(ns) = own.or(input.namespace.map(Cow::Borrowed)).filter(|s| !s.is_empty()) else {
        return;
    };
    // `add` also replaces an existing "" or null.
    ops.push(PatchOperation::Add(AddOperation {
        path: pointer(&["spec", "identityRef", "namespace"]),
        value: json!(ns),
    }));
}

/// Whether `s` is a valid Kubernetes label value (at most 63 characters of `[A-Za-z0-9_.-]`,
/// starting and ending alphanumeric).
fn is_label_value(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.len() <= 63
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values() {
        assert!(is_label_value("region1"));
        assert!(is_label_value("a.b-c_d"));
        assert!(!is_label_value(""));
        assert!(!is_label_value("-a"));
        assert!(!is_label_value(&"a".repeat(64)));
        assert!(is_label_value(&"a".repeat(63)));
    }
}
