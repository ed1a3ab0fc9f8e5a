//! Benchmark fixtures shared by the load generator (`tests/src/bin/loadgen.rs`) and the criterion
//! benches (`shared/benches`, `webhook/benches`), so every measurement replays the same objects.
//!
//! The estate: `credentials` Credentials `cred-<i>` in `kcm-system`, each with its own
//! cluster-scoped AWSClusterStaticIdentity `aws-id-<i>`, spread round-robin over `regions` Ready
//! Regions `region-<j>` (each with its kubeconfig Secret and a regional cluster serving the AWS
//! identity kinds), one ProviderInterface, and the identity CRDs in every cluster.

use serde_json::{Value, json};

pub const SYS: &str = "kcm-system";
pub const INFRA: &str = "infrastructure.cluster.x-k8s.io";
pub const K0RDENT_AV: &str = "k0rdent.mirantis.com/v1beta1";
pub const PI_NAME: &str = "cluster-api-provider-aws";

/// One file of an offline estate: a path relative to the estate directory and its objects.
pub struct EstateFile {
    pub path: String,
    pub docs: Vec<Value>,
}

impl EstateFile {
    /// The regional cluster this file belongs to (`regions/<name>/...`), `None` for management.
    pub fn region(&self) -> Option<&str> {
        let rest = self.path.strip_prefix("regions/")?;
        let (name, file) = rest.split_once('/')?;
        (!file.is_empty()).then_some(name)
    }

    /// The file as a YAML stream (JSON documents are YAML flow documents).
    pub fn yaml(&self) -> String {
        let mut out = String::new();
        for d in &self.docs {
            out.push_str("---\n");
            out.push_str(&d.to_string());
            out.push('\n');
        }
        out
    }
}

fn crd(kind: &str, plural: &str, version: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{INFRA}")},
        "spec": {
            "group": INFRA,
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "scope": "Cluster",
            "versions": [{"name": version, "served": true, "storage": true}]
        }
    })
}

fn identity_crds() -> Vec<Value> {
    vec![
        crd("AWSClusterStaticIdentity", "awsclusterstaticidentities", "v1beta2"),
        crd("AWSClusterRoleIdentity", "awsclusterroleidentities", "v1beta2"),
        crd("AWSClusterControllerIdentity", "awsclustercontrolleridentities", "v1beta2"),
    ]
}

/// The AWS ProviderInterface; `with_controller` adds the controller identity kind (what an
/// upgrade of the provider would change).
pub fn provider_interface(with_controller: bool, description: &str) -> Value {
    let mut identities = vec![
        json!({"group": INFRA, "version": "v1beta2", "kind": "AWSClusterStaticIdentity",
               "references": [{"group": "", "version": "v1", "kind": "Secret", "nameFieldPath": "spec.secretRef"}]}),
        json!({"group": INFRA, "version": "v1beta2", "kind": "AWSClusterRoleIdentity",
               "references": [{"group": INFRA, "version": "v1beta2", "kind": "AWSClusterControllerIdentity",
                               "nameFieldPath": "spec.sourceIdentityRef.name"}]}),
    ];
    if with_controller {
        identities.push(json!({"group": INFRA, "version": "v1beta2", "kind": "AWSClusterControllerIdentity"}));
    }
    json!({
        "apiVersion": K0RDENT_AV,
        "kind": "ProviderInterface",
        "metadata": {"name": PI_NAME, "generation": 3, "uid": "6f1c1a57-4d0b-4f0e-9a51-6c1f5f1d2e01",
                     "labels": {"cluster.x-k8s.io/provider": "infrastructure-aws"}},
        "spec": {"description": description, "clusterIdentities": identities}
    })
}

pub fn region_name(j: usize) -> String {
    format!("region-{j}")
}

pub fn region(j: usize) -> Value {
    let name = region_name(j);
    json!({
        "apiVersion": K0RDENT_AV,
        "kind": "Region",
        "metadata": {"name": name, "generation": 1, "uid": format!("00000000-0000-4000-8000-{j:012}")},
        "spec": {"kubeConfig": {"name": format!("{name}-kubeconfig"), "key": "value"},
                 "providers": [{"name": "cluster-api-provider-aws"}]},
        "status": {"availableProviders": ["infrastructure-aws"],
                   "conditions": [{"type": "Ready", "status": "True", "reason": "AllComponentsHealthy",
                                   "message": "All components are successfully installed",
                                   "lastTransitionTime": "2025-09-26T09:58:02Z", "observedGeneration": 1}]}
    })
}

fn kubeconfig_secret(j: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": format!("{}-kubeconfig", region_name(j)), "namespace": SYS},
        // base64 of "EXAMPLE-NOT-A-SECRET"
        "data": {"value": "RVhBTVBMRS1OT1QtQS1TRUNSRVQ="}
    })
}

pub fn identity(i: usize) -> Value {
    json!({
        "apiVersion": format!("{INFRA}/v1beta2"),
        "kind": "AWSClusterStaticIdentity",
        "metadata": {"name": format!("aws-id-{i}")},
        "spec": {"secretRef": format!("aws-secret-{i}"), "allowedNamespaces": {}}
    })
}

fn identity_secret(i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": format!("aws-secret-{i}"), "namespace": SYS},
        // base64 of "EXAMPLE-NOT-A-SECRET"
        "data": {"AccessKeyID": "RVhBTVBMRS1OT1QtQS1TRUNSRVQ=", "SecretAccessKey": "RVhBTVBMRS1OT1QtQS1TRUNSRVQ="}
    })
}

/// A Credential as KCM stores it (labels set, finalizer, Ready status).
pub fn credential(name: &str, region: Option<&str>, identity: &str, description: &str, stored: bool) -> Value {
    let mut spec = json!({
        "description": description,
        "identityRef": {"apiVersion": format!("{INFRA}/v1beta2"), "kind": "AWSClusterStaticIdentity", "name": identity}
    });
    if let Some(r) = region {
        spec["region"] = json!(r);
    }
    let mut c = json!({
        "apiVersion": K0RDENT_AV,
        "kind": "Credential",
        "metadata": {"name": name, "namespace": SYS,
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                        format!("{{\"apiVersion\":\"{K0RDENT_AV}\",\"kind\":\"Credential\",\"metadata\":{{\"name\":\"{name}\",\"namespace\":\"{SYS}\"}},\"spec\":{}}}\n", spec)}},
        "spec": spec
    });
    if stored {
        c["metadata"]["uid"] = json!("3b0a3c7e-8f53-4bfa-9d3e-7b1c3f0e9a10");
        c["metadata"]["generation"] = json!(1);
        c["metadata"]["resourceVersion"] = json!("184467");
        c["metadata"]["creationTimestamp"] = json!("2025-09-26T11:15:50Z");
        c["metadata"]["finalizers"] = json!(["k0rdent.mirantis.com/credential"]);
        let mut labels = json!({"k0rdent.mirantis.com/component": "kcm"});
        if let Some(r) = region {
            labels["k0rdent.mirantis.com/region"] = json!(r);
        }
        c["metadata"]["labels"] = labels;
        c["metadata"]["managedFields"] = json!([{
            "manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": K0RDENT_AV,
            "time": "2025-09-26T11:15:50Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}},
                         "f:spec": {".": {}, "f:description": {}, "f:identityRef": {}, "f:region": {}}}
        }, {
            "manager": "manager", "operation": "Update", "apiVersion": K0RDENT_AV, "subresource": "status",
            "time": "2025-09-26T11:15:57Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:status": {".": {}, "f:conditions": {}, "f:ready": {}}}
        }]);
        c["status"] = json!({"ready": true, "conditions": [{"type": "CredentialReady", "status": "True",
            "reason": "Succeeded", "message": "Credential is ready", "observedGeneration": 1,
            "lastTransitionTime": "2025-09-26T11:15:57Z"}]});
    }
    c
}

/// The offline estate described in the module docs. `identity_secrets` also stores each identity's
/// Secret (the webhook's live cache never holds those; `plan` reads them).
pub fn estate(credentials: usize, regions: usize, identity_secrets: bool) -> Vec<EstateFile> {
    let regions = regions.max(1);
    let mut files = vec![
        EstateFile { path: "crds.yaml".into(), docs: identity_crds() },
        EstateFile {
            path: "provider-interfaces.yaml".into(),
            docs: vec![provider_interface(false, "AWS infrastructure provider")],
        },
        EstateFile {
            path: "regions.yaml".into(),
            docs: (0..regions).flat_map(|j| [region(j), kubeconfig_secret(j)]).collect(),
        },
    ];
    // Files of at most CHUNK objects of a kind, well under the loader's per-file size limit.
    const CHUNK: usize = 1000;
    for start in (0..credentials).step_by(CHUNK) {
        let end = (start + CHUNK).min(credentials);
        let mut ids: Vec<Value> = (start..end).map(identity).collect();
        if identity_secrets {
            ids.extend((start..end).map(identity_secret));
        }
        files.push(EstateFile { path: format!("identities-{:03}.yaml", start / CHUNK), docs: ids });
        let creds = (start..end)
            .map(|i| {
                let r = region_name(i % regions);
                let mut c = credential(&format!("cred-{i}"), Some(&r), &format!("aws-id-{i}"), "AWS static keys", true);
                // What the webhook's live cache keeps: no managedFields, no last-applied annotation.
                if let Some(meta) = c.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.remove("managedFields");
                    meta.remove("annotations");
                }
                c
            })
            .collect();
        files.push(EstateFile { path: format!("credentials-{:03}.yaml", start / CHUNK), docs: creds });
    }
    for j in 0..regions {
        let mut docs = identity_crds();
        docs.push(provider_interface(false, "AWS infrastructure provider"));
        files.push(EstateFile { path: format!("regions/{}/cluster.yaml", region_name(j)), docs });
    }
    files
}

/// One AdmissionReview the load generator replays.
pub struct Review {
    /// Short name used in reports.
    pub name: &'static str,
    /// `/validate` or `/mutate`.
    pub path: &'static str,
    pub uid: String,
    pub body: Vec<u8>,
}

#[allow(clippy::too_many_arguments)]
fn review(
    uid: &str,
    kind: &str,
    plural: &str,
    op: &str,
    namespace: Option<&str>,
    name: &str,
    object: Option<Value>,
    old: Option<Value>,
) -> Value {
    let (group, version) = ("k0rdent.mirantis.com", "v1beta1");
    let options_kind = match op {
        "CREATE" => "CreateOptions",
        "UPDATE" => "UpdateOptions",
        _ => "DeleteOptions",
    };
    let mut req = json!({
        "uid": uid,
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": plural},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": group, "version": version, "resource": plural},
        "name": name,
        "operation": op,
        "userInfo": {"username": "kubernetes-admin", "groups": ["kubeadm:cluster-admins", "system:authenticated"]},
        "object": object,
        "oldObject": old,
        "dryRun": false,
        "options": {"kind": options_kind, "apiVersion": "meta.k8s.io/v1", "fieldManager": "kubectl-client-side-apply",
                    "fieldValidation": "Strict"}
    });
    if let Some(ns) = namespace {
        req["namespace"] = json!(ns);
    }
    json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": req})
}

/// Every review the load generator replays, in its round-robin order: Credential CREATE (mutate
/// and validate, as the API server calls both), Credential UPDATE, ProviderInterface UPDATE,
/// Region DELETE. Names refer to objects of [`estate`] (any size: they use index 0).
pub fn reviews() -> Vec<Review> {
    let mk = |name: &'static str, path: &'static str, uid: &str, v: Value| Review {
        name,
        path,
        uid: uid.to_string(),
        body: serde_json::to_vec(&v).unwrap_or_default(),
    };
    let new_cred = credential("bench-new", Some(&region_name(0)), "aws-id-0", "AWS static keys for team a", false);
    let stored = credential("cred-0", Some(&region_name(0)), "aws-id-0", "AWS static keys", true);
    let mut updated = stored.clone();
    updated["spec"]["description"] = json!("AWS static keys, rotated quarterly");
    updated["metadata"]["generation"] = json!(2);
    let pi_old = provider_interface(false, "AWS infrastructure provider");
    let mut pi_new = provider_interface(true, "AWS infrastructure provider v2.9");
    pi_new["metadata"]["generation"] = json!(4);
    let rgn = region(0);
    vec![
        mk(
            "credential-create-mutate",
            "/mutate",
            "a1b2c3d4-0001-4000-8000-000000000001",
            review(
                "a1b2c3d4-0001-4000-8000-000000000001",
                "Credential",
                "credentials",
                "CREATE",
                Some(SYS),
                "bench-new",
                Some(new_cred.clone()),
                None,
            ),
        ),
        mk(
            "credential-create",
            "/validate",
            "a1b2c3d4-0002-4000-8000-000000000002",
            review(
                "a1b2c3d4-0002-4000-8000-000000000002",
                "Credential",
                "credentials",
                "CREATE",
                Some(SYS),
                "bench-new",
                Some(new_cred),
                None,
            ),
        ),
        mk(
            "credential-update",
            "/validate",
            "a1b2c3d4-0003-4000-8000-000000000003",
            review(
                "a1b2c3d4-0003-4000-8000-000000000003",
                "Credential",
                "credentials",
                "UPDATE",
                Some(SYS),
                "cred-0",
                Some(updated),
                Some(stored),
            ),
        ),
        mk(
            "providerinterface-update",
            "/validate",
            "a1b2c3d4-0004-4000-8000-000000000004",
            review(
                "a1b2c3d4-0004-4000-8000-000000000004",
                "ProviderInterface",
                "providerinterfaces",
                "UPDATE",
                None,
                PI_NAME,
                Some(pi_new),
                Some(pi_old),
            ),
        ),
        mk(
            "region-delete",
            "/validate",
            "a1b2c3d4-0005-4000-8000-000000000005",
            review(
                "a1b2c3d4-0005-4000-8000-000000000005",
                "Region",
                "regions",
                "DELETE",
                None,
                &region_name(0),
                None,
                Some(rgn),
            ),
        ),
    ]
}
