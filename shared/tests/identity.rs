//! Identity graph resolution and distribution plans, including one test per KCM distribution bug
//! (reference Summary items 4 and 6) that planning fixes: those are named `kcm_bug_*`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use credential_core::identity::{
    MAX_DEPTH, ObjectKey, Plan, PlanProblem, PlannedCopy, owners_annotation_value, owners_of, plan, plan_for_target,
    sanitize, with_owner, without_owner,
};
use credential_core::model::labels;
use credential_core::{Cluster, Gvk, MemoryEstate};
use serde_json::{Value, json};

const INFRA: &str = "infrastructure.cluster.x-k8s.io";
const SECRET_DATA: &str = "c3VwZXItc2VjcmV0LWtleQ=="; // must never appear in any message

fn region(name: &str) -> Cluster {
    Cluster::Region(name.into())
}

fn crd(group: &str, kind: &str, version: &str, namespaced: bool) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}s.{group}", kind.to_lowercase())},
        "spec": {
            "group": group,
            "scope": if namespaced { "Namespaced" } else { "Cluster" },
            "names": {"kind": kind, "plural": format!("{}s", kind.to_lowercase())},
            "versions": [{"name": version, "served": true, "storage": true}],
        }
    })
}

fn pi(name: &str, identities: Value) -> Value {
    json!({
        "apiVersion": "k0rdent.mirantis.com/v1beta1",
        "kind": "ProviderInterface",
        "metadata": {"name": name},
        "spec": {"clusterIdentities": identities},
    })
}

fn credential(ns: &str, name: &str, region: Option<&str>, iref: Value) -> Value {
    let mut c = json!({
        "apiVersion": "k0rdent.mirantis.com/v1beta1",
        "kind": "Credential",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"identityRef": iref},
    });
    if let Some(r) = region {
        c["spec"]["region"] = json!(r);
    }
    c
}

fn secret(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": "1234",
            "resourceVersion": "99",
            "labels": {"team": "infra", "k0rdent.mirantis.com/credential.kcm-system.old": "true"},
            "annotations": {
                labels::LAST_APPLIED: format!("{{\"data\":{{\"key\":\"{SECRET_DATA}\"}}}}"),
                "note": "x",
            },
        },
        "data": {"key": SECRET_DATA},
    })
}

fn ident(kind: &str, ns: Option<&str>, name: &str, spec: Value) -> Value {
    let mut v = json!({
        "apiVersion": format!("{INFRA}/v1beta2"),
        "kind": kind,
        "metadata": {"name": name, "uid": "u", "finalizers": ["x"], "managedFields": [{}]},
        "spec": spec,
        "status": {"ready": true},
    });
    if let Some(ns) = ns {
        v["metadata"]["namespace"] = json!(ns);
    }
    v
}

/// Management + region1, with the AWS and Azure ProviderInterfaces as KCM ships them.
fn estate() -> MemoryEstate {
    let mut e = MemoryEstate::new("kcm-system");
    let r1 = region("region1");
    e.add_cluster(r1.clone());
    for c in [Cluster::Management, r1.clone()] {
        e.insert(&c, crd(INFRA, "AWSClusterStaticIdentity", "v1beta2", false));
        e.insert(&c, crd(INFRA, "AWSClusterRoleIdentity", "v1beta2", false));
        e.insert(&c, crd(INFRA, "AWSClusterControllerIdentity", "v1beta2", false));
        e.insert(&c, crd(INFRA, "AzureClusterIdentity", "v1beta1", true));
        e.insert(
            &c,
            pi(
                "cluster-api-provider-aws",
                json!([
                    {"group": INFRA, "version": "v1beta2", "kind": "AWSClusterStaticIdentity",
                     "references": [{"group": "", "version": "v1", "kind": "Secret", "nameFieldPath": "spec.secretRef"}]},
                    {"group": INFRA, "version": "v1beta2", "kind": "AWSClusterRoleIdentity",
                     "references": [{"group": INFRA, "version": "v1beta2", "kind": "AWSClusterControllerIdentity",
                                     "nameFieldPath": "spec.sourceIdentityRef.name"}]},
                    {"group": INFRA, "version": "v1beta2", "kind": "AWSClusterControllerIdentity"},
                ]),
            ),
        );
        e.insert(
            &c,
            pi(
                "cluster-api-provider-azure",
                json!([
                    {"group": INFRA, "version": "v1beta1", "kind": "AzureClusterIdentity",
                     "references": [{"group": "", "version": "v1", "kind": "Secret",
                                     "nameFieldPath": "spec.clientSecret.name",
                                     "namespaceFieldPath": "spec.clientSecret.namespace"}]},
                    {"group": "", "version": "v1", "kind": "Secret"},
                ]),
            ),
        );
    }
    let m = Cluster::Management;
    e.insert(&m, ident("AWSClusterStaticIdentity", None, "aws-id", json!({"secretRef": "aws-secret"})));
    e.insert(&m, secret("kcm-system", "aws-secret"));
    e.insert(
        &m,
        ident(
            "AWSClusterRoleIdentity",
            None,
            "aws-role",
            json!({"sourceIdentityRef": {"kind": "AWSClusterControllerIdentity", "name": "default"}}),
        ),
    );
    e.insert(&m, ident("AWSClusterControllerIdentity", None, "default", json!({})));
    e
}

fn aws_ref() -> Value {
    json!({"apiVersion": format!("{INFRA}/v1beta2"), "kind": "AWSClusterStaticIdentity", "name": "aws-id", "namespace": "kcm-system"})
}

fn azure_ref(ns: &str) -> Value {
    json!({"apiVersion": format!("{INFRA}/v1beta1"), "kind": "AzureClusterIdentity", "name": "azure-id", "namespace": ns})
}

fn azure_identity(ns: &str, secret_ns: Option<&str>) -> Value {
    let mut id = ident("AzureClusterIdentity", Some(ns), "azure-id", json!({"clientSecret": {"name": "azure-secret"}}));
    id["apiVersion"] = json!(format!("{INFRA}/v1beta1"));
    if let Some(sns) = secret_ns {
        id["spec"]["clientSecret"]["namespace"] = json!(sns);
    }
    id
}

fn keys(copies: &[PlannedCopy]) -> Vec<String> {
    copies.iter().map(|c| c.target.to_string()).collect()
}

/// No message, serialised plan problem or debug output may carry Secret data.
fn assert_no_secret_data(plan: &Plan) {
    for m in plan.problem_messages() {
        assert!(!m.contains(SECRET_DATA), "secret data in message: {m}");
    }
    let problems = serde_json::to_string(&plan.problems).unwrap();
    assert!(!problems.contains(SECRET_DATA), "{problems}");
    for c in plan.objects() {
        if let Some(o) = &c.object {
            let annotations = o.pointer("/metadata/annotations").map(Value::to_string).unwrap_or_default();
            assert!(!annotations.contains(SECRET_DATA), "{annotations}");
        }
    }
}

#[test]
fn aws_static_identity_regional() {
    let e = estate();
    let p = plan(&credential("kcm-system", "aws-cred", Some("region1"), aws_ref()), &e);
    assert_eq!(p.problems, vec![], "{:?}", p.problem_messages());
    assert_eq!(p.target_cluster, Some(region("region1")));
    assert_eq!(p.provider_interface.as_deref(), Some("cluster-api-provider-aws"));
    assert_eq!(keys(&p.copies), ["Secret kcm-system/aws-secret", "AWSClusterStaticIdentity aws-id"]);
    let secret = &p.copies[0];
    assert_eq!(secret.depth, 1);
    let via = secret.via.as_ref().unwrap();
    assert_eq!((via.name_field_path.as_str(), via.namespace_field_path.as_deref()), ("spec.secretRef", None));
    assert_eq!(via.parent.to_string(), "AWSClusterStaticIdentity aws-id");
    let obj = secret.object.as_ref().unwrap();
    assert_eq!(obj["data"]["key"], SECRET_DATA, "the copy carries the data itself");
    assert_eq!(obj["metadata"]["labels"][labels::MANAGED], "true");
    assert_eq!(obj["metadata"]["annotations"][labels::OWNERS_ANNOTATION], "kcm-system/aws-cred");
    let id = p.copies[1].object.as_ref().unwrap();
    assert!(id.get("status").is_none() && id["metadata"].get("finalizers").is_none());
    assert!(id["metadata"].get("namespace").is_none(), "cluster-scoped copy");
    assert!(p.in_place.is_empty());
    assert_no_secret_data(&p);
}

#[test]
fn azure_identity_with_name_and_namespace_paths() {
    let mut e = estate();
    e.insert(&Cluster::Management, azure_identity("team-a", Some("azure-secrets")));
    e.insert(&Cluster::Management, secret("azure-secrets", "azure-secret"));
    let p = plan(&credential("team-a", "az", Some("region1"), azure_ref("team-a")), &e);
    assert_eq!(p.problems, vec![], "{:?}", p.problem_messages());
    assert_eq!(p.provider_interface.as_deref(), Some("cluster-api-provider-azure"));
    // KCM's rule: a reference found through namespaceFieldPath is copied into the Credential's
    // namespace, and the identity copy is rewritten to point at it there.
    assert_eq!(keys(&p.copies), ["Secret team-a/azure-secret", "AzureClusterIdentity team-a/azure-id"]);
    assert_eq!(p.copies[0].source.namespace.as_deref(), Some("azure-secrets"));
    let id = p.copies[1].object.as_ref().unwrap();
    assert_eq!(id["spec"]["clientSecret"]["namespace"], "team-a");
    assert_eq!(id["metadata"]["namespace"], "team-a");
}

#[test]
fn aws_role_identity_references_the_controller_identity() {
    let e = estate();
    let iref = json!({"apiVersion": format!("{INFRA}/v1beta2"), "kind": "AWSClusterRoleIdentity", "name": "aws-role"});
    let p = plan(&credential("kcm-system", "role", Some("region1"), iref), &e);
    assert_eq!(p.problems, vec![], "{:?}", p.problem_messages());
    assert_eq!(keys(&p.copies), ["AWSClusterControllerIdentity default", "AWSClusterRoleIdentity aws-role"]);
    // Cluster-scoped reference kind: no namespace, although no namespaceFieldPath is set.
    assert_eq!(p.copies[0].source.namespace, None);
}

/// KCM bug (Summary 6): "References are followed only one level deep." A role identity whose
/// source identity is a static identity whose Secret is a third object: all three are copied,
/// deepest first.
#[test]
fn kcm_bug_transitive_references() {
    let mut e = estate();
    e.insert(
        &region("region1"),
        pi(
            "a-chained",
            json!([
                {"group": INFRA, "version": "v1beta2", "kind": "AWSClusterRoleIdentity",
                 "references": [{"group": INFRA, "version": "v1beta2", "kind": "AWSClusterStaticIdentity",
                                 "nameFieldPath": "spec.sourceIdentityRef.name"}]},
                {"group": INFRA, "version": "v1beta2", "kind": "AWSClusterStaticIdentity",
                 "references": [{"group": "", "version": "v1", "kind": "Secret", "nameFieldPath": "spec.secretRef"}]},
            ]),
        ),
    );
    e.insert(
        &Cluster::Management,
        ident("AWSClusterRoleIdentity", None, "chained", json!({"sourceIdentityRef": {"name": "aws-id"}})),
    );
    let iref = json!({"apiVersion": format!("{INFRA}/v1beta2"), "kind": "AWSClusterRoleIdentity", "name": "chained"});
    let p = plan(&credential("kcm-system", "c", Some("region1"), iref), &e);
    assert_eq!(p.problems, vec![], "{:?}", p.problem_messages());
    assert_eq!(p.provider_interface.as_deref(), Some("a-chained"), "first PI by name wins");
    assert_eq!(
        keys(&p.copies),
        ["Secret kcm-system/aws-secret", "AWSClusterStaticIdentity aws-id", "AWSClusterRoleIdentity chained"]
    );
    assert_eq!(p.copies.iter().map(|c| c.depth).collect::<Vec<_>>(), [2, 1, 0]);
}

fn chain_estate(kinds: usize, loop_back: bool) -> MemoryEstate {
    let mut e = MemoryEstate::new("kcm-system");
    e.add_cluster(region("r"));
    let kind = |i: usize| format!("Chain{i}Identity");
    let mut entries = Vec::new();
    for i in 0..kinds {
        let next = if i + 1 < kinds {
            Some(i + 1)
        } else if loop_back {
            Some(0)
        } else {
            None
        };
        let refs: Vec<Value> = next
            .map(|n| json!({"group": INFRA, "version": "v1beta2", "kind": kind(n), "nameFieldPath": "spec.next"}))
            .into_iter()
            .collect();
        entries.push(json!({"group": INFRA, "version": "v1beta2", "kind": kind(i), "references": refs}));
        for c in [Cluster::Management, region("r")] {
            e.insert(&c, crd(INFRA, &kind(i), "v1beta2", false));
        }
        let spec = next.map(|n| json!({"next": format!("obj{n}")})).unwrap_or(json!({}));
        e.insert(&Cluster::Management, ident(&kind(i), None, &format!("obj{i}"), spec));
    }
    e.insert(&region("r"), pi("chain", Value::Array(entries)));
    e
}

fn chain_ref() -> Value {
    json!({"apiVersion": format!("{INFRA}/v1beta2"), "kind": "Chain0Identity", "name": "obj0"})
}

#[test]
fn reference_cycle_is_reported_with_its_chain() {
    let e = chain_estate(3, true);
    let p = plan(&credential("ns", "c", Some("r"), chain_ref()), &e);
    let chain: Vec<String> = match p.problems.as_slice() {
        [PlanProblem::Cycle { chain }] => chain.iter().map(ToString::to_string).collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(chain, ["Chain0Identity obj0", "Chain1Identity obj1", "Chain2Identity obj2", "Chain0Identity obj0"]);
    assert_eq!(p.copies.len(), 3, "each object once, and the loop does not repeat them");
    let msg = &p.problem_messages()[0];
    assert!(msg.contains("references loop: Chain0Identity obj0 -> Chain1Identity obj1"), "{msg}");
}

#[test]
fn self_reference_is_a_cycle() {
    let e = chain_estate(1, true);
    let p = plan(&credential("ns", "c", Some("r"), chain_ref()), &e);
    assert!(matches!(p.problems.as_slice(), [PlanProblem::Cycle { chain }] if chain.len() == 2), "{:?}", p.problems);
}

#[test]
fn depth_is_bounded() {
    let e = chain_estate(MAX_DEPTH + 3, false);
    let p = plan(&credential("ns", "c", Some("r"), chain_ref()), &e);
    match p.problems.as_slice() {
        [PlanProblem::TooDeep { at }] => assert_eq!(at.name, format!("obj{}", MAX_DEPTH + 1)),
        other => panic!("{other:?}"),
    }
    assert_eq!(p.copies.len(), MAX_DEPTH + 1, "depths 0..=MAX_DEPTH are planned");
    assert_eq!(p.copies.iter().map(|c| c.depth).max(), Some(MAX_DEPTH));
    // Exactly at the bound: no problem.
    let e = chain_estate(MAX_DEPTH + 1, false);
    assert_eq!(plan(&credential("ns", "c", Some("r"), chain_ref()), &e).problems, vec![]);
}

#[test]
fn missing_sources_are_reported_and_planned_without_object() {
    let mut e = estate();
    e.remove(&Cluster::Management, &Gvk::secret(), Some("kcm-system"), "aws-secret");
    let p = plan(&credential("kcm-system", "aws-cred", Some("region1"), aws_ref()), &e);
    let key = ObjectKey::new(Gvk::secret(), Some("kcm-system".into()), "aws-secret");
    assert_eq!(p.problems, vec![PlanProblem::SourceMissing { key }]);
    assert_eq!(p.copies[0].object, None);
    assert!(p.copies[1].object.is_some());
    let msg = &p.problem_messages()[0];
    assert!(msg.contains("Secret kcm-system/aws-secret (v1) does not exist in the management cluster"), "{msg}");

    // The identity itself missing: one problem, nothing else resolved.
    let iref = json!({"apiVersion": format!("{INFRA}/v1beta2"), "kind": "AWSClusterStaticIdentity", "name": "nope"});
    let p = plan(&credential("kcm-system", "x", Some("region1"), iref), &e);
    assert!(matches!(p.problems.as_slice(), [PlanProblem::SourceMissing { key }] if key.name == "nope"));
    assert_eq!(p.copies.len(), 1);
}

#[test]
fn missing_name_path_value_is_reported() {
    let mut e = estate();
    e.insert(&Cluster::Management, ident("AWSClusterStaticIdentity", None, "aws-id", json!({})));
    let p = plan(&credential("kcm-system", "aws-cred", Some("region1"), aws_ref()), &e);
    match p.problems.as_slice() {
        [PlanProblem::PathNotResolved { object, path, detail }] => {
            assert_eq!(object.to_string(), "AWSClusterStaticIdentity aws-id");
            assert_eq!(path, "spec.secretRef");
            assert!(detail.contains("nameFieldPath") && detail.contains("is not set"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(keys(&p.copies), ["AWSClusterStaticIdentity aws-id"]);
}

#[test]
fn non_string_and_empty_path_values_are_reported() {
    for (value, want) in [(json!(42), "is a number, not a string"), (json!(""), "is an empty string")] {
        let mut e = estate();
        e.insert(&Cluster::Management, ident("AWSClusterStaticIdentity", None, "aws-id", json!({"secretRef": value})));
        let p = plan(&credential("kcm-system", "aws-cred", Some("region1"), aws_ref()), &e);
        let msgs = p.problem_messages();
        assert_eq!(msgs.len(), 1);
        assert!(msgs[0].contains(want) && msgs[0].contains("spec.secretRef"), "{}", msgs[0]);
    }
}

/// KCM bug (Summary 4): "identityRef.namespace is ignored for the source lookup" (KCM always
/// reads the system namespace). The identity exists in both team-a and kcm-system; the one at
/// identityRef.namespace (team-a) is the source.
#[test]
fn kcm_bug_identity_ref_namespace_honoured() {
    let mut e = estate();
    e.insert(&Cluster::Management, azure_identity("team-a", Some("team-a")));
    let mut decoy = azure_identity("kcm-system", Some("kcm-system"));
    decoy["spec"]["clientSecret"]["name"] = json!("decoy");
    e.insert(&Cluster::Management, decoy);
    e.insert(&Cluster::Management, secret("team-a", "azure-secret"));
    let p = plan(&credential("team-a", "az", Some("region1"), azure_ref("team-a")), &e);
    assert_eq!(p.problems, vec![], "{:?}", p.problem_messages());
    assert_eq!(keys(&p.copies), ["Secret team-a/azure-secret", "AzureClusterIdentity team-a/azure-id"]);
}

#[test]
fn namespaced_identity_defaults_to_the_credential_namespace() {
    let mut e = estate();
    e.insert(&Cluster::Management, azure_identity("team-b", Some("team-b")));
    e.insert(&Cluster::Management, secret("team-b", "azure-secret"));
    let mut iref = azure_ref("");
    iref.as_object_mut().unwrap().remove("namespace");
    let p = plan(&credential("team-b", "az", Some("region1"), iref), &e);
    assert_eq!(p.problems, vec![], "{:?}", p.problem_messages());
    assert_eq!(p.copies[1].source.namespace.as_deref(), Some("team-b"));
}

/// KCM bug (Summary 6): "`sourceNamespace` leaks between references": a reference without
/// namespaceFieldPath inherited the previous reference's namespace. Here the first reference
/// resolves to namespace `elsewhere`; the second (no namespace path) must use the system namespace.
#[test]
fn kcm_bug_no_namespace_leak_between_references() {
    let mut e = estate();
    e.insert(
        &region("region1"),
        pi(
            "a-two-refs",
            json!([{"group": INFRA, "version": "v1beta1", "kind": "AzureClusterIdentity", "references": [
                {"group": "", "version": "v1", "kind": "Secret",
                 "nameFieldPath": "spec.clientSecret.name", "namespaceFieldPath": "spec.clientSecret.namespace"},
                {"group": "", "version": "v1", "kind": "Secret", "nameFieldPath": "spec.extraSecret"},
            ]}]),
        ),
    );
    let mut id = azure_identity("team-a", Some("elsewhere"));
    id["spec"]["extraSecret"] = json!("extra");
    e.insert(&Cluster::Management, id);
    e.insert(&Cluster::Management, secret("elsewhere", "azure-secret"));
    e.insert(&Cluster::Management, secret("kcm-system", "extra"));
    e.insert(&Cluster::Management, secret("elsewhere", "extra")); // where the KCM bug would look
    let p = plan(&credential("team-a", "az", Some("region1"), azure_ref("team-a")), &e);
    assert_eq!(p.problems, vec![], "{:?}", p.problem_messages());
    assert_eq!(
        keys(&p.copies),
        ["Secret team-a/azure-secret", "Secret kcm-system/extra", "AzureClusterIdentity team-a/azure-id"]
    );
    let sources: Vec<_> = p.copies.iter().map(|c| c.source.namespace.clone().unwrap_or_default()).collect();
    assert_eq!(sources, ["elsewhere", "kcm-system", "team-a"], "each reference read where its own path says");
}

/// KCM bug (Summary 6): "A missing namespace value is silently treated as empty." With
/// namespaceFieldPath set and no value there, the plan reports the path instead of guessing.
#[test]
fn kcm_bug_missing_namespace_value_reported() {
    let mut e = estate();
    e.insert(&Cluster::Management, azure_identity("team-a", None));
    e.insert(&Cluster::Management, secret("kcm-system", "azure-secret"));
    let p = plan(&credential("team-a", "az", Some("region1"), azure_ref("team-a")), &e);
    match p.problems.as_slice() {
        [PlanProblem::PathNotResolved { object, path, detail }] => {
            assert_eq!(object.to_string(), "AzureClusterIdentity team-a/azure-id");
            assert_eq!(path, "spec.clientSecret.namespace");
            assert!(detail.contains("namespaceFieldPath"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(keys(&p.copies), ["AzureClusterIdentity team-a/azure-id"], "the Secret is not guessed");
}

/// KCM bug (Summary 6): "Wrong paths and kinds appear in error messages" (a namespace type error
/// printed the *name* path; a missing reference printed the identity's kind) and "one
/// `errors.Join` call drops earlier errors". Both failing references are reported, each with its
/// own path and kind.
#[test]
fn kcm_bug_errors_name_the_right_path_and_kind_and_none_are_dropped() {
    let mut e = estate();
    let mut id = azure_identity("team-a", None);
    id["spec"]["clientSecret"]["namespace"] = json!(7);
    e.insert(&Cluster::Management, id);
    e.insert(
        &region("region1"),
        pi(
            "a-two-refs",
            json!([{"group": INFRA, "version": "v1beta1", "kind": "AzureClusterIdentity", "references": [
                {"group": "", "version": "v1", "kind": "Secret",
                 "nameFieldPath": "spec.clientSecret.name", "namespaceFieldPath": "spec.clientSecret.namespace"},
                {"group": "", "version": "v1", "kind": "ConfigMap", "nameFieldPath": "spec.clientSecret.name"},
            ]}]),
        ),
    );
    let p = plan(&credential("team-a", "az", Some("region1"), azure_ref("team-a")), &e);
    let msgs = p.problem_messages();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(msgs[0].contains("spec.clientSecret.namespace") && msgs[0].contains("is a number"), "{}", msgs[0]);
    assert!(msgs[1].starts_with("ConfigMap kcm-system/azure-secret (v1) does not exist"), "{}", msgs[1]);
}

/// KCM bug (Summary 6): "Annotations, including last-applied-configuration, which holds Secret
/// data in plain text ... are copied verbatim ... Source labels are dropped." Copies carry no
/// source annotation and keep the source's own labels (KCM's per-Credential keys excepted).
#[test]
fn kcm_bug_annotations_incl_last_applied_stripped() {
    let e = estate();
    let p = plan(&credential("kcm-system", "aws-cred", Some("region1"), aws_ref()), &e);
    let copy = p.copies[0].object.as_ref().unwrap();
    let annotations = copy["metadata"]["annotations"].as_object().unwrap();
    assert_eq!(annotations.keys().collect::<Vec<_>>(), [labels::OWNERS_ANNOTATION]);
    assert!(!copy["metadata"].to_string().contains(SECRET_DATA));
    assert_eq!(copy["metadata"]["labels"], json!({"team": "infra", labels::MANAGED: "true"}));
    assert!(copy["metadata"].get("uid").is_none() && copy["metadata"].get("resourceVersion").is_none());
}

/// KCM bug (Summary 6): the owner label key `k0rdent.mirantis.com/credential.<ns>.<name>` exceeds
/// the 63-character label-name limit for names over 41 characters, and the write fails. Here the
/// owner is recorded in an annotation, and no label key of any copy exceeds the limit.
#[test]
fn kcm_bug_names_over_41_chars_work() {
    let e = estate();
    let long = "a-credential-name-that-is-much-longer-than-forty-one-characters";
    assert!(long.len() > 41);
    let p = plan(&credential("kcm-system", long, Some("region1"), aws_ref()), &e);
    assert_eq!(p.problems, vec![]);
    for c in &p.copies {
        let obj = c.object.as_ref().unwrap();
        assert_eq!(owners_of(obj), vec![format!("kcm-system/{long}")]);
        for key in obj["metadata"]["labels"].as_object().unwrap().keys() {
            let name = key.rsplit('/').next().unwrap();
            assert!(name.len() <= 63, "label name too long: {key}");
        }
    }
}

/// KCM bug (Summary 6): "Release uses `reference.Version` without its group", so grouped
/// reference kinds such as AWSClusterControllerIdentity could not be found. Planned keys and
/// copies keep the reference's full group/version/kind.
#[test]
fn kcm_bug_reference_kinds_keep_their_group() {
    let e = estate();
    let iref = json!({"apiVersion": format!("{INFRA}/v1beta2"), "kind": "AWSClusterRoleIdentity", "name": "aws-role"});
    let p = plan(&credential("kcm-system", "role", Some("region1"), iref), &e);
    let controller = &p.copies[0];
    assert_eq!(controller.target.gvk, Gvk::new(INFRA, "v1beta2", "AWSClusterControllerIdentity"));
    assert_eq!(controller.object.as_ref().unwrap()["apiVersion"], format!("{INFRA}/v1beta2"));
    let json = serde_json::to_value(controller).unwrap();
    assert_eq!(json["target"]["gvk"]["group"], INFRA);
}

#[test]
fn gate_plain_management_credential_gets_no_plan() {
    let e = estate();
    let p = plan(&credential("kcm-system", "aws-cred", None, aws_ref()), &e);
    assert_eq!((p.target_cluster.clone(), p.copies.len(), p.problems.len()), (None, 0, 0));
    assert_eq!(p.credential, "kcm-system/aws-cred");
    // explain can still resolve the graph: everything is in place.
    let p = plan_for_target(&credential("kcm-system", "aws-cred", None, aws_ref()), &e, Cluster::Management);
    assert_eq!(p.copies, vec![]);
    assert_eq!(keys(&p.in_place), ["Secret kcm-system/aws-secret", "AWSClusterStaticIdentity aws-id"]);
}

/// A managed Credential (an AccessManagement copy in team-c, identityRef.namespace rewritten to
/// team-c) distributes inside the management cluster, as KCM does: the namespaced identity is
/// copied from the system namespace into the Credential's namespace, and so is the Secret it
/// names through namespaceFieldPath (the copy is rewritten to point at it there).
#[test]
fn managed_credential_copies_the_identity_into_its_namespace() {
    let mut e = estate();
    e.insert(&Cluster::Management, azure_identity("kcm-system", Some("kcm-system")));
    e.insert(&Cluster::Management, secret("kcm-system", "azure-secret"));
    let mut cred = credential("team-c", "az", None, azure_ref("team-c"));
    cred["metadata"]["labels"] = json!({labels::MANAGED: "true"});
    let p = plan(&cred, &e);
    assert_eq!(p.problems, vec![], "{:?}", p.problem_messages());
    assert_eq!(p.target_cluster, Some(Cluster::Management));
    assert_eq!(keys(&p.copies), ["Secret team-c/azure-secret", "AzureClusterIdentity team-c/azure-id"]);
    assert_eq!(p.copies[1].source.namespace.as_deref(), Some("kcm-system"));
    let id = p.copies[1].object.as_ref().unwrap();
    assert_eq!(
        (id["metadata"]["namespace"].as_str(), id["spec"]["clientSecret"]["namespace"].as_str()),
        (Some("team-c"), Some("team-c"))
    );
    assert!(p.in_place.is_empty());
    // A cluster-scoped identity of a managed Credential is already in place.
    let mut cred = credential("team-c", "aws", None, aws_ref());
    cred["metadata"]["labels"] = json!({labels::MANAGED: "true"});
    let p = plan(&cred, &e);
    assert_eq!((p.copies.len(), p.in_place.len()), (0, 2));
}

#[test]
fn no_provider_interface_and_kind_only_match() {
    let e = estate();
    let iref = json!({"apiVersion": format!("{INFRA}/v1beta1"), "kind": "AWSClusterStaticIdentity", "name": "aws-id"});
    let p = plan(&credential("kcm-system", "c", Some("region1"), iref), &e);
    match p.problems.as_slice() {
        [PlanProblem::NoProviderInterface { kind_only_match: Some((pi, gvk)), .. }] => {
            assert_eq!((pi.as_str(), gvk.version.as_str()), ("cluster-api-provider-aws", "v1beta2"));
        }
        other => panic!("{other:?}"),
    }
    let msg = &p.problem_messages()[0];
    assert!(msg.contains("region region1") && msg.contains("v1beta2") && msg.contains("v1beta1"), "{msg}");
    let iref = json!({"apiVersion": "example.com/v1", "kind": "Unknown", "name": "x"});
    let p = plan(&credential("kcm-system", "c", Some("region1"), iref), &e);
    assert!(matches!(p.problems.as_slice(), [PlanProblem::NoProviderInterface { kind_only_match: None, .. }]));
    assert_eq!(p.provider_interface, None);
}

#[test]
fn unknown_region_and_incomplete_identity_ref() {
    let e = estate();
    let p = plan(&credential("kcm-system", "c", Some("nowhere"), aws_ref()), &e);
    assert_eq!(p.problems, vec![PlanProblem::TargetUnknown]);
    let p = plan(&credential("kcm-system", "c", Some("region1"), json!({"kind": "AWSClusterStaticIdentity"})), &e);
    assert_eq!(
        p.problems,
        vec![PlanProblem::IncompleteIdentityRef {
            missing: vec!["spec.identityRef.apiVersion".into(), "spec.identityRef.name".into()]
        }]
    );
    assert!(p.problem_messages()[0].starts_with("spec.identityRef.apiVersion, spec.identityRef.name are not set"));
    let mut bad = credential("kcm-system", "c", Some("region1"), aws_ref());
    bad["spec"]["identityRef"]["name"] = json!(5);
    assert!(matches!(plan(&bad, &e).problems.as_slice(), [PlanProblem::InvalidCredential { .. }]));
}

#[test]
fn repeated_references_are_copied_once() {
    let mut e = estate();
    e.insert(
        &region("region1"),
        pi(
            "a-dup",
            json!([{"group": INFRA, "version": "v1beta2", "kind": "AWSClusterStaticIdentity", "references": [
                {"group": "", "version": "v1", "kind": "Secret", "nameFieldPath": "spec.secretRef"},
                {"group": "", "version": "v1", "kind": "Secret", "nameFieldPath": "spec.secretRef"},
            ]}]),
        ),
    );
    let p = plan(&credential("kcm-system", "aws-cred", Some("region1"), aws_ref()), &e);
    assert_eq!(keys(&p.copies), ["Secret kcm-system/aws-secret", "AWSClusterStaticIdentity aws-id"]);
}

#[test]
fn unknown_scope_falls_back_to_cluster_scoped_lookup() {
    // No CRDs at all: AWS docs put identityRef.namespace on a cluster-scoped identity.
    let mut e = MemoryEstate::new("kcm-system");
    e.add_cluster(region("r"));
    e.insert(
        &region("r"),
        pi(
            "aws",
            json!([{"group": INFRA, "version": "v1beta2", "kind": "AWSClusterStaticIdentity", "references": [
            {"group": "", "version": "v1", "kind": "Secret", "nameFieldPath": "spec.secretRef"}]}]),
        ),
    );
    e.insert(&Cluster::Management, ident("AWSClusterStaticIdentity", None, "aws-id", json!({"secretRef": "s"})));
    e.insert(&Cluster::Management, secret("kcm-system", "s"));
    let p = plan(&credential("kcm-system", "c", Some("r"), aws_ref()), &e);
    assert_eq!(p.problems, vec![], "{:?}", p.problem_messages());
    assert_eq!(keys(&p.copies), ["Secret kcm-system/s", "AWSClusterStaticIdentity aws-id"]);
}

#[test]
fn sanitize_strips_and_marks() {
    let mut src = secret("ns", "s");
    src["metadata"]["ownerReferences"] = json!([{"kind": "X"}]);
    src["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    src["metadata"]["deletionGracePeriodSeconds"] = json!(30);
    src["metadata"]["selfLink"] = json!("/x");
    src["metadata"]["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
    src["metadata"]["generation"] = json!(3);
    src["status"] = json!({"x": 1});
    let out = sanitize(&src, &["b/two".into(), "a/one".into(), "b/two".into()]);
    assert_eq!(
        out["metadata"],
        json!({
            "name": "s",
            "namespace": "ns",
            "labels": {"team": "infra", labels::MANAGED: "true"},
            "annotations": {labels::OWNERS_ANNOTATION: "a/one\nb/two"},
        })
    );
    assert!(out.get("status").is_none());
    assert_eq!(out["data"], src["data"]);
    // No metadata at all, or no owners: still well-formed.
    let out = sanitize(&json!({"kind": "X"}), &[]);
    assert_eq!(out["metadata"], json!({"labels": {labels::MANAGED: "true"}}));
}

#[test]
fn owner_helpers() {
    let obj = json!({"metadata": {"name": "s", "annotations": {"other": "x"}}});
    assert_eq!(owners_of(&obj), Vec::<String>::new());
    let one = with_owner(&obj, "ns/b");
    let two = with_owner(&with_owner(&one, "ns/a"), "ns/b");
    assert_eq!(owners_of(&two), ["ns/a", "ns/b"]);
    assert_eq!(two["metadata"]["annotations"][labels::OWNERS_ANNOTATION], "ns/a\nns/b");
    assert_eq!(two["metadata"]["annotations"]["other"], "x", "other annotations untouched");
    let back = without_owner(&without_owner(&two, "ns/a"), "ns/b");
    assert_eq!(owners_of(&back), Vec::<String>::new());
    assert_eq!(back["metadata"]["annotations"], json!({"other": "x"}));
    let bare = without_owner(&with_owner(&json!({}), "n/x"), "n/x");
    assert_eq!(bare, json!({"metadata": {}}));
    assert_eq!(owners_annotation_value(&["z/1".into(), " a/2 ".into(), "".into()]), "a/2\nz/1");
}

/// KCM's own distribution cases #9 and #16: the identity is a core Secret (no references).
#[test]
fn secret_identity_regional_and_managed() {
    let mut e = estate();
    e.insert(&Cluster::Management, secret("test3", "gcp-secret"));
    e.insert(&Cluster::Management, secret("kcm-system", "sys-secret"));
    let iref = |ns: &str, name: &str| json!({"apiVersion": "v1", "kind": "Secret", "name": name, "namespace": ns});
    let p = plan(&credential("test3", "rgn-cred", Some("region1"), iref("test3", "gcp-secret")), &e);
    assert_eq!(p.problems, vec![], "{:?}", p.problem_messages());
    assert_eq!(p.provider_interface.as_deref(), Some("cluster-api-provider-azure"));
    assert_eq!(keys(&p.copies), ["Secret test3/gcp-secret"]);
    assert_eq!(owners_of(p.copies[0].object.as_ref().unwrap()), ["test3/rgn-cred"]);

    // An AccessManagement copy in test2: identityRef.namespace was rewritten to test2, the Secret
    // is in the system namespace; it is copied into test2.
    let mut cred = credential("test2", "credential", None, iref("test2", "sys-secret"));
    cred["metadata"]["labels"] = json!({labels::MANAGED: "true"});
    let p = plan(&cred, &e);
    assert_eq!(p.problems, vec![], "{:?}", p.problem_messages());
    assert_eq!(keys(&p.copies), ["Secret test2/sys-secret"]);
    assert_eq!(p.copies[0].source.to_string(), "Secret kcm-system/sys-secret");
}

/// Issue 13 item 3: an AccessManagement copy of a regional Credential (managed, in tenant
/// namespace team-d) gets its namespaced identity in team-d of the region, where that namespace's
/// ClusterDeployments read it, as KCM writes it; not at the source's place in the system namespace.
#[test]
fn managed_regional_credential_puts_the_identity_in_its_namespace_in_the_region() {
    let mut e = estate();
    e.insert(&Cluster::Management, azure_identity("kcm-system", Some("kcm-system")));
    e.insert(&Cluster::Management, secret("kcm-system", "azure-secret"));
    let mut cred = credential("team-d", "az", Some("region1"), azure_ref("team-d"));
    cred["metadata"]["labels"] = json!({labels::MANAGED: "true"});
    let p = plan(&cred, &e);
    assert_eq!(p.problems, vec![], "{:?}", p.problem_messages());
    assert_eq!(p.target_cluster, Some(region("region1")));
    assert_eq!(keys(&p.copies), ["Secret team-d/azure-secret", "AzureClusterIdentity team-d/azure-id"]);
    assert_eq!(p.copies[1].source.namespace.as_deref(), Some("kcm-system"));
}

#[test]
fn the_copies_record_round_trips_for_its_cluster_only() {
    let keys = vec![
        ObjectKey::new(Gvk::secret(), Some("kcm-system".into()), "aws-secret"),
        ObjectKey::new(Gvk::new(INFRA, "v1beta2", "AWSClusterStaticIdentity"), None, "aws-id"),
    ];
    let value = credential_core::identity::copies_annotation_value(&region("region1"), &keys);
    let mut cred = credential("kcm-system", "aws", Some("region1"), aws_ref());
    cred["metadata"]["annotations"] = json!({labels::COPIES_ANNOTATION: value});
    let mut back = credential_core::identity::recorded_copies(&cred, &region("region1"));
    back.sort();
    let mut want = keys.clone();
    want.sort();
    assert_eq!(back, want);
    assert!(credential_core::identity::recorded_copies(&cred, &region("region2")).is_empty());
    assert_eq!(credential_core::identity::recorded_cluster(&cred), Some(region("region1")));
    let managed = credential_core::identity::copies_annotation_value(&credential_core::Cluster::Management, &keys);
    let mut in_management = cred.clone();
    in_management["metadata"]["annotations"][labels::COPIES_ANNOTATION] = json!(managed);
    assert_eq!(credential_core::identity::recorded_cluster(&in_management), Some(credential_core::Cluster::Management));
    cred["metadata"]["annotations"][labels::COPIES_ANNOTATION] = json!("not json");
    assert_eq!(credential_core::identity::recorded_cluster(&cred), None);
    assert!(credential_core::identity::recorded_copies(&cred, &region("region1")).is_empty());
}
