//! Builders and table runner shared by the rules_*.rs and mutate.rs tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use credential_core::rules::{self, AdmissionInput, AdmittedObject, Operation, ResourceKind, codes};
use credential_core::{Cluster, Finding, MemoryEstate, Severity};
use serde_json::{Value, json};

pub const SYS: &str = "kcm-system";
pub const AWS_AV: &str = "infrastructure.cluster.x-k8s.io/v1beta2";
pub const AZURE_AV: &str = "infrastructure.cluster.x-k8s.io/v1beta1";
pub const INFRA: &str = "infrastructure.cluster.x-k8s.io";

pub fn mgmt() -> Cluster {
    Cluster::Management
}
pub fn rgn(name: &str) -> Cluster {
    Cluster::Region(name.to_string())
}

pub fn credential(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Credential",
           "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

pub fn aws_ref(name: &str) -> Value {
    json!({"apiVersion": AWS_AV, "kind": "AWSClusterStaticIdentity", "name": name})
}

pub fn region(name: &str, spec: Value, ready: &str) -> Value {
    json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Region", "metadata": {"name": name},
           "spec": spec,
           "status": {"conditions": [{"type": "Ready", "status": ready, "message": "Components not ready: [capi]"}]}})
}

pub fn kubeconfig_spec(secret: &str, key: &str) -> Value {
    json!({"kubeConfig": {"name": secret, "key": key}})
}

pub fn secret(ns: &str, name: &str, keys: &[&str]) -> Value {
    let data: serde_json::Map<String, Value> = keys.iter().map(|k| (k.to_string(), json!("c2VjcmV0"))).collect();
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "data": data})
}

pub fn crd(group: &str, kind: &str, versions: &[&str], namespaced: bool) -> Value {
    let plural = format!("{}s", kind.to_lowercase());
    let versions: Vec<Value> = versions.iter().map(|v| json!({"name": v, "served": true, "storage": true})).collect();
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": format!("{plural}.{group}")},
           "spec": {"group": group, "names": {"kind": kind, "plural": plural},
                    "scope": if namespaced { "Namespaced" } else { "Cluster" }, "versions": versions}})
}

pub fn pi(name: &str, identities: Value) -> Value {
    json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "ProviderInterface",
           "metadata": {"name": name}, "spec": {"clusterIdentities": identities}})
}

pub fn aws_identities() -> Value {
    json!([
        {"group": INFRA, "version": "v1beta2", "kind": "AWSClusterStaticIdentity",
         "references": [{"group": "", "version": "v1", "kind": "Secret", "nameFieldPath": "spec.secretRef"}]},
        {"group": INFRA, "version": "v1beta2", "kind": "AWSClusterRoleIdentity",
         "references": [{"group": INFRA, "version": "v1beta2", "kind": "AWSClusterControllerIdentity",
                         "nameFieldPath": "spec.sourceIdentityRef.name"}]},
        {"group": INFRA, "version": "v1beta2", "kind": "AWSClusterControllerIdentity"}
    ])
}

pub fn cd(ns: &str, name: &str, cred: &str) -> Value {
    json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "ClusterDeployment",
           "metadata": {"name": name, "namespace": ns}, "spec": {"credential": cred, "template": "aws-standalone"}})
}

/// Sets (or adds) the member at a JSON pointer whose parent exists.
pub fn with(mut obj: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    obj.pointer_mut(parent).unwrap().as_object_mut().unwrap().insert(key.to_string(), value);
    obj
}

pub fn deleting(mut obj: Value) -> Value {
    obj["metadata"]["deletionTimestamp"] = json!("2026-08-21T10:00:00Z");
    obj
}

/// A small estate: management with AWS (cluster-scoped) and Azure (namespaced) identity CRDs and the
/// AWS ProviderInterface; Region `region1` (Ready, kubeconfig Secret) whose cluster serves AWS and
/// has the AWS ProviderInterface; Region `region2` (not Ready) whose cluster serves nothing of it.
pub fn estate() -> MemoryEstate {
    let mut e = MemoryEstate::new(SYS);
    let m = mgmt();
    e.insert(&m, crd(INFRA, "AWSClusterStaticIdentity", &["v1beta2"], false));
    e.insert(&m, crd(INFRA, "AWSClusterRoleIdentity", &["v1beta2"], false));
    e.insert(&m, crd(INFRA, "AzureClusterIdentity", &["v1beta1"], true));
    e.insert(&m, pi("cluster-api-provider-aws", aws_identities()));
    e.insert(&m, region("region1", kubeconfig_spec("region1-kubeconfig", "value"), "True"));
    e.insert(&m, region("region2", kubeconfig_spec("region2-kubeconfig", "value"), "False"));
    e.insert(&m, secret(SYS, "region1-kubeconfig", &["value"]));
    e.insert(&m, secret(SYS, "region2-kubeconfig", &["value"]));
    e.insert(
        &m,
        json!({"apiVersion": AWS_AV, "kind": "AWSClusterStaticIdentity", "metadata": {"name": "aws-id"},
                        "spec": {"secretRef": "aws-secret"}}),
    );
    e.insert(
        &m,
        json!({"apiVersion": AZURE_AV, "kind": "AzureClusterIdentity",
                        "metadata": {"name": "az-id", "namespace": "team-a"}}),
    );
    let r1 = rgn("region1");
    e.insert(&r1, crd(INFRA, "AWSClusterStaticIdentity", &["v1beta2"], false));
    e.insert(&r1, pi("cluster-api-provider-aws", aws_identities()));
    let r2 = rgn("region2");
    e.insert(&r2, crd(INFRA, "SomethingElse", &["v1"], true));
    e
}

/// One expected finding: code, severity, field, and fragments the message must contain.
#[derive(Debug, Clone)]
pub struct Exp {
    pub code: &'static str,
    pub severity: Severity,
    pub field: &'static str,
    pub mentions: Vec<&'static str>,
}

pub fn deny(code: &'static str, field: &'static str, mentions: &[&'static str]) -> Exp {
    Exp { code, severity: Severity::Deny, field, mentions: mentions.to_vec() }
}
pub fn warn(code: &'static str, field: &'static str, mentions: &[&'static str]) -> Exp {
    Exp { code, severity: Severity::Warn, field, mentions: mentions.to_vec() }
}

/// One table row: a request against an estate and exactly the findings it must produce.
pub struct Case {
    pub name: &'static str,
    pub op: Operation,
    pub object: Option<Value>,
    pub old: Option<Value>,
    pub estate: MemoryEstate,
    pub expect: Vec<Exp>,
}

pub fn case(name: &'static str, op: Operation, object: Option<Value>, old: Option<Value>, expect: Vec<Exp>) -> Case {
    Case { name, op, object, old, estate: estate(), expect }
}

impl Case {
    pub fn estate(mut self, f: impl FnOnce(&mut MemoryEstate)) -> Self {
        f(&mut self.estate);
        self
    }
}

pub fn run(kind: ResourceKind, c: &Case) -> Vec<Finding> {
    let obj = c.object.as_ref().or(c.old.as_ref());
    let meta = |k: &str| obj.and_then(|o| o["metadata"][k].as_str()).map(str::to_string);
    let ns = meta("namespace");
    let name = meta("name").unwrap_or_default();
    let object = c.object.as_ref().map(AdmittedObject::from_value);
    let old = c.old.as_ref().map(AdmittedObject::from_value);
    let input = AdmissionInput {
        operation: c.op,
        kind,
        namespace: ns.as_deref(),
        name: &name,
        object: object.as_ref(),
        old_object: old.as_ref(),
    };
    rules::validate(&input, &c.estate)
}

/// Runs every case; each must produce exactly the expected findings (in any order).
pub fn check_table(kind: ResourceKind, cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in &cases {
        let got = run(kind, c);
        // RULES_PRINT=1 shows every message, to proofread them.
        if std::env::var_os("RULES_PRINT").is_some() {
            for f in &got {
                eprintln!("[{}] {} {} {}: {}\n    hint: {}", c.name, f.severity, f.code, f.field, f.message, f.hint);
            }
        }
        let mut errs = Vec::new();
        for e in &c.expect {
            match got.iter().find(|f| f.code == e.code && f.field == e.field) {
                None => errs.push(format!("missing {} at {:?}", e.code, e.field)),
                Some(f) => {
                    if f.severity != e.severity {
                        errs.push(format!("{}: severity {:?}, want {:?}", e.code, f.severity, e.severity));
                    }
                    for m in &e.mentions {
                        if !f.message.contains(m) {
                            errs.push(format!("{}: message lacks {m:?}: {}", e.code, f.message));
                        }
                    }
                    if f.hint.is_empty() {
                        errs.push(format!("{}: empty hint", e.code));
                    }
                }
            }
        }
        for f in &got {
            match codes::lookup(&f.code) {
                None => errs.push(format!("{} is not in codes::ALL", f.code)),
                Some(doc) if doc.severity != f.severity => {
                    errs.push(format!("{} emitted as {}, documented as {}", f.code, f.severity, doc.severity))
                }
                Some(_) => {}
            }
            if !c.expect.iter().any(|e| e.code == f.code && e.field == f.field) {
                errs.push(format!("unexpected {} {} at {:?}: {}", f.severity, f.code, f.field, f.message));
            }
        }
        if !errs.is_empty() {
            failures.push(format!("case {:?}:\n  {}", c.name, errs.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
