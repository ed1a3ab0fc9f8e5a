#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rules_support;

use credential_core::mutate::mutate;
use credential_core::rules::{AdmissionInput, AdmittedObject, Operation, ResourceKind};
use credential_core::{Estate, MemoryEstate};
use rules_support::*;
use serde_json::{Value, json};

const COMPONENT: &str = "k0rdent.mirantis.com/component";
const REGION: &str = "k0rdent.mirantis.com/region";

fn patch_for(op: Operation, kind: ResourceKind, obj: &Value, estate: &dyn Estate) -> json_patch::Patch {
    let admitted = AdmittedObject::from_value(obj);
    let input = AdmissionInput {
        operation: op,
        kind,
        namespace: obj["metadata"]["namespace"].as_str(),
        name: obj["metadata"]["name"].as_str().unwrap_or("x"),
        object: Some(&admitted),
        old_object: Some(&admitted),
    };
    mutate(&input, estate)
}

/// Applies the Credential CREATE patch, checks that a second round patches nothing, returns the result.
fn apply(obj: &Value, estate: &dyn Estate) -> (Value, json_patch::Patch) {
    let patch = patch_for(Operation::Create, ResourceKind::Credential, obj, estate);
    let mut out = obj.clone();
    json_patch::patch(&mut out, &patch).unwrap_or_else(|e| panic!("patch {patch:?} does not apply: {e}"));
    for op in [Operation::Create, Operation::Update] {
        let again = patch_for(op, ResourceKind::Credential, &out, estate);
        assert!(again.0.is_empty(), "not idempotent: second patch {again:?} for {out}");
    }
    (out, patch)
}

fn azure(ns: &str, iref_ns: Option<Value>) -> Value {
    let mut r = json!({"apiVersion": AZURE_AV, "kind": "AzureClusterIdentity", "name": "az-id"});
    if let Some(v) = iref_ns {
        r["namespace"] = v;
    }
    credential(ns, "az", json!({"identityRef": r}))
}

#[test]
fn adds_labels_map_and_defaults_namespace() {
    let e = estate();
    let obj = with(azure("team-a", None), "/spec/region", json!("region1"));
    let (out, patch) = apply(&obj, &e);
    assert_eq!(patch.0.len(), 2, "{patch:?}");
    assert_eq!(out["metadata"]["labels"], json!({COMPONENT: "kcm", REGION: "region1"}));
    assert_eq!(out["spec"]["identityRef"]["namespace"], "team-a");
    let text = serde_json::to_string(&patch).unwrap();
    assert!(text.contains(r#""path":"/metadata/labels""#), "{text}");
    assert!(text.contains(r#""path":"/spec/identityRef/namespace""#), "{text}");
}

#[test]
fn adds_single_keys_with_escaped_slash() {
    let e = estate();
    let obj = with(
        credential(SYS, "c", json!({"identityRef": aws_ref("aws-id"), "region": "region1"})),
        "/metadata/labels",
        json!({"team": "a"}),
    );
    let (out, patch) = apply(&obj, &e);
    let text = serde_json::to_string(&patch).unwrap();
    assert!(text.contains("/metadata/labels/k0rdent.mirantis.com~1component"), "{text}");
    assert!(text.contains("/metadata/labels/k0rdent.mirantis.com~1region"), "{text}");
    assert_eq!(out["metadata"]["labels"], json!({"team": "a", COMPONENT: "kcm", REGION: "region1"}));
    // Cluster-scoped identity: no namespace default.
    assert!(out["spec"]["identityRef"].get("namespace").is_none());
}

#[test]
fn keeps_region_label_consistent_with_spec() {
    let e = estate();
    // Wrong value: replaced.
    let obj = with(
        credential(SYS, "c", json!({"identityRef": aws_ref("aws-id"), "region": "region1"})),
        "/metadata/labels",
        json!({COMPONENT: "other", REGION: "region2"}),
    );
    let (out, patch) = apply(&obj, &e);
    assert!(patch.0.iter().all(|op| matches!(op, json_patch::PatchOperation::Replace(_))), "{patch:?}");
    assert_eq!(out["metadata"]["labels"], json!({COMPONENT: "kcm", REGION: "region1"}));
    // Not regional: a stale region label is removed.
    let obj = with(
        credential(SYS, "c", json!({"identityRef": aws_ref("aws-id")})),
        "/metadata/labels",
        json!({COMPONENT: "kcm", REGION: "region2"}),
    );
    let (out, patch) = apply(&obj, &e);
    assert_eq!(patch.0.len(), 1);
    assert_eq!(out["metadata"]["labels"], json!({COMPONENT: "kcm"}));
    // A region name that is no valid label value gets no label.
    let long = "r".repeat(70);
    let obj = credential(SYS, "c", json!({"identityRef": aws_ref("aws-id"), "region": long}));
    let (out, _) = apply(&obj, &e);
    assert_eq!(out["metadata"]["labels"], json!({COMPONENT: "kcm"}));
}

#[test]
fn already_complete_object_gets_empty_patch() {
    let e = estate();
    let obj = with(azure("team-a", Some(json!("team-a"))), "/metadata/labels", json!({COMPONENT: "kcm"}));
    assert!(patch_for(Operation::Create, ResourceKind::Credential, &obj, &e).0.is_empty());
}

#[test]
fn identity_namespace_rules() {
    let e = estate();
    // An empty string is replaced by the Credential's namespace.
    let (out, _) = apply(&azure("team-a", Some(json!(""))), &e);
    assert_eq!(out["spec"]["identityRef"]["namespace"], "team-a");
    // A set namespace is left alone (the validating rules judge it).
    let (out, _) = apply(&azure("team-b", Some(json!("team-a"))), &e);
    assert_eq!(out["spec"]["identityRef"]["namespace"], "team-a");
    // Unknown scope: left alone.
    let (out, _) = apply(&azure("team-a", None), &MemoryEstate::new(SYS));
    assert!(out["spec"]["identityRef"].get("namespace").is_none());
    // Core Secret identities are namespaced without any CRD.
    let obj = credential("team-a", "s", json!({"identityRef": {"apiVersion": "v1", "kind": "Secret", "name": "s"}}));
    let (out, _) = apply(&obj, &MemoryEstate::new(SYS));
    assert_eq!(out["spec"]["identityRef"]["namespace"], "team-a");
    // Scope known only in the Region's cluster.
    let mut e2 = MemoryEstate::new(SYS);
    e2.insert(&rgn("region1"), crd(INFRA, "AzureClusterIdentity", &["v1beta1"], true));
    let (out, _) = apply(&with(azure("team-a", None), "/spec/region", json!("region1")), &e2);
    assert_eq!(out["spec"]["identityRef"]["namespace"], "team-a");
}

#[test]
fn odd_metadata_shapes() {
    let e = estate();
    let mut obj = credential(SYS, "c", json!({"identityRef": aws_ref("aws-id")}));
    obj["metadata"]["labels"] = Value::Null;
    let (out, _) = apply(&obj, &e);
    assert_eq!(out["metadata"]["labels"], json!({COMPONENT: "kcm"}));
    let obj = json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Credential", "spec": {}});
    let (out, _) = apply(&obj, &e);
    assert_eq!(out["metadata"]["labels"], json!({COMPONENT: "kcm"}));
}

#[test]
fn nothing_for_delete_other_kinds_or_deleting_objects() {
    let e = estate();
    let obj = azure("team-a", None);
    assert!(patch_for(Operation::Delete, ResourceKind::Credential, &obj, &e).0.is_empty());
    assert!(patch_for(Operation::Connect, ResourceKind::Credential, &obj, &e).0.is_empty());
    for kind in [ResourceKind::Region, ResourceKind::ProviderInterface, ResourceKind::ClusterDeployment] {
        assert!(patch_for(Operation::Create, kind, &obj, &e).0.is_empty(), "{kind:?}");
    }
    assert!(patch_for(Operation::Update, ResourceKind::Credential, &deleting(obj), &e).0.is_empty());
}

/// The patch text for the object sent as `text` (the review's own bytes: duplicate members, escapes
/// and `null`s survive, which a `Value` would normalise away).
fn patch_text_for(text: &str, namespace: Option<&str>, estate: &dyn Estate) -> String {
    let raw = serde_json::value::RawValue::from_string(text.to_string()).unwrap();
    let admitted = AdmittedObject::from_raw(&raw);
    let input = AdmissionInput {
        operation: Operation::Create,
        kind: ResourceKind::Credential,
        namespace,
        name: "c",
        object: Some(&admitted),
        old_object: None,
    };
    serde_json::to_string(&mutate(&input, estate)).unwrap()
}

/// Patches of odd objects, byte for byte: pinned from the `Value`-based mutation this replaced.
#[test]
fn patches_of_odd_objects_are_pinned() {
    let e = estate();
    let kind = r#""apiVersion":"k0rdent.mirantis.com/v1beta1","kind":"Credential""#;
    let az = r#""identityRef":{"apiVersion":"infrastructure.cluster.x-k8s.io/v1beta1","kind":"AzureClusterIdentity","name":"a""#;
    let cases = [
        format!(r#"{{{kind},"spec":{{"region":"r1"}}}}"#),
        format!(r#"{{{kind},"metadata":null,"spec":{{"region":"r1"}}}}"#),
        format!(r#"{{{kind},"metadata":{{"labels":null}},"spec":{{}}}}"#),
        format!(r#"{{{kind},"metadata":{{"labels":"text"}},"spec":{{}}}}"#),
        format!(r#"{{{kind},"metadata":{{"labels":{{"{COMPONENT}":null,"{REGION}":5}}}},"spec":{{"region":"r1"}}}}"#),
        format!(r#"{{{kind},"metadata":{{"labels":{{"{COMPONENT}":"kcm","{REGION}":"old"}}}},"spec":{{}}}}"#),
        format!(r#"{{{kind},"metadata":{{"labels":{{"{COMPONENT}":"x","{COMPONENT}":"kcm"}}}},"spec":{{}}}}"#),
        format!(r#"{{{kind},"metadata":{{"labels":{{"{COMPONENT}":"kcm","{COMPONENT}":"x"}}}},"spec":{{}}}}"#),
        format!(
            r#"{{{kind},"metadata":{{"labels":{{"k0rdent.mirantis.com\/component":"k\u0063m"}}}},"spec":{{"region":"r\u0031"}}}}"#
        ),
        format!(r#"{{{kind},"metadata":{{"namespace":"team-a"}},"spec":{{{az},"namespace":""}}}}}}"#),
        format!(r#"{{{kind},"metadata":{{"namespace":"team-a"}},"spec":{{{az},"namespace":null}}}}}}"#),
        format!(r#"{{{kind},"metadata":{{"namespace":"team-a"}},"spec":{{{az},"namespace":5}}}}}}"#),
        format!(r#"{{{kind},"metadata":{{}},"spec":{{{az}}}}}}}"#),
        format!(r#"{{{kind},"metadata":{{"namespace":""}},"spec":{{{az}}}}}}}"#),
        format!(r#"{{{kind},"metadata":{{"name":"x"}},"metadata":{{"namespace":"team-b"}},"spec":{{{az}}}}}}}"#),
        format!(r#"{{{kind},"metadata":{{"deletionTimestamp":"2026-01-01T00:00:00Z"}},"spec":{{}}}}"#),
        format!(r#"{{{kind},"metadata":{{"deletionTimestamp":null}},"spec":{{"identityRef":[]}}}}"#),
        format!(r#"{{{kind},"spec":{{"region":"{}"}}}}"#, "r".repeat(64)),
    ];
    let got: Vec<String> = cases.iter().map(|c| patch_text_for(c, Some("team-ns"), &e)).collect();
    let want = [
        r#"[{"op":"add","path":"/metadata","value":{"labels":{"k0rdent.mirantis.com/component":"kcm","k0rdent.mirantis.com/region":"r1"}}}]"#,
        r#"[{"op":"add","path":"/metadata","value":{"labels":{"k0rdent.mirantis.com/component":"kcm","k0rdent.mirantis.com/region":"r1"}}}]"#,
        r#"[{"op":"add","path":"/metadata/labels","value":{"k0rdent.mirantis.com/component":"kcm"}}]"#,
        r#"[{"op":"add","path":"/metadata/labels","value":{"k0rdent.mirantis.com/component":"kcm"}}]"#,
        r#"[{"op":"replace","path":"/metadata/labels/k0rdent.mirantis.com~1component","value":"kcm"},{"op":"replace","path":"/metadata/labels/k0rdent.mirantis.com~1region","value":"r1"}]"#,
        r#"[{"op":"remove","path":"/metadata/labels/k0rdent.mirantis.com~1region"}]"#,
        r#"[]"#,
        r#"[{"op":"replace","path":"/metadata/labels/k0rdent.mirantis.com~1component","value":"kcm"}]"#,
        r#"[{"op":"add","path":"/metadata/labels/k0rdent.mirantis.com~1region","value":"r1"}]"#,
        r#"[{"op":"add","path":"/metadata/labels","value":{"k0rdent.mirantis.com/component":"kcm"}},{"op":"add","path":"/spec/identityRef/namespace","value":"team-a"}]"#,
        r#"[{"op":"add","path":"/metadata/labels","value":{"k0rdent.mirantis.com/component":"kcm"}},{"op":"add","path":"/spec/identityRef/namespace","value":"team-a"}]"#,
        r#"[{"op":"add","path":"/metadata/labels","value":{"k0rdent.mirantis.com/component":"kcm"}},{"op":"add","path":"/spec/identityRef/namespace","value":"team-a"}]"#,
        r#"[{"op":"add","path":"/metadata/labels","value":{"k0rdent.mirantis.com/component":"kcm"}},{"op":"add","path":"/spec/identityRef/namespace","value":"team-ns"}]"#,
        r#"[{"op":"add","path":"/metadata/labels","value":{"k0rdent.mirantis.com/component":"kcm"}},{"op":"add","path":"/spec/identityRef/namespace","value":"team-ns"}]"#,
        r#"[{"op":"add","path":"/metadata/labels","value":{"k0rdent.mirantis.com/component":"kcm"}},{"op":"add","path":"/spec/identityRef/namespace","value":"team-b"}]"#,
        r#"[]"#,
        r#"[{"op":"add","path":"/metadata/labels","value":{"k0rdent.mirantis.com/component":"kcm"}}]"#,
        r#"[{"op":"add","path":"/metadata","value":{"labels":{"k0rdent.mirantis.com/component":"kcm"}}}]"#,
    ];
    assert_eq!(got, want);
}
