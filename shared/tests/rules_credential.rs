#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rules_support;

use credential_core::rules::{Operation, ResourceKind};
use credential_core::{MemoryEstate, Severity};
use rules_support::*;
use serde_json::json;

use Operation::{Create, Delete, Update};

fn azure_ref(ns: Option<&str>) -> serde_json::Value {
    let mut r = json!({"apiVersion": AZURE_AV, "kind": "AzureClusterIdentity", "name": "az-id"});
    if let Some(ns) = ns {
        r["namespace"] = json!(ns);
    }
    r
}

fn azure_pi(e: &mut MemoryEstate) {
    e.insert(
        &mgmt(),
        pi(
            "cluster-api-provider-azure",
            json!([{"group": INFRA, "version": "v1beta1", "kind": "AzureClusterIdentity"}]),
        ),
    );
}

fn aws_cred(name: &str, region: Option<&str>) -> serde_json::Value {
    let mut spec = json!({"identityRef": aws_ref("aws-id")});
    if let Some(r) = region {
        spec["region"] = json!(r);
    }
    credential(SYS, name, spec)
}

#[test]
fn credential_create_rules() {
    let cases = vec![
        case("management credential, all good", Create, Some(aws_cred("aws-cred", None)), None, vec![]),
        case("regional credential, all good", Create, Some(aws_cred("aws-cred", Some("region1"))), None, vec![]),
        case(
            "identityRef missing",
            Create,
            Some(credential(SYS, "c", json!({}))),
            None,
            vec![deny("CRED002", "spec.identityRef", &["Credential kcm-system/c", "missing"])],
        ),
        case(
            "no spec at all",
            Create,
            Some(json!({"metadata": {"name": "c", "namespace": SYS}})),
            None,
            vec![deny("CRED002", "spec.identityRef", &["Credential kcm-system/c"])],
        ),
        case(
            "identityRef lacks kind and name",
            Create,
            Some(credential(SYS, "c", json!({"identityRef": {"apiVersion": AWS_AV}}))),
            None,
            vec![
                deny("CRED002", "spec.identityRef.kind", &["Credential kcm-system/c", "spec.identityRef.kind"]),
                deny("CRED002", "spec.identityRef.name", &["spec.identityRef.name"]),
            ],
        ),
        case(
            "identityRef apiVersion malformed",
            Create,
            Some(credential(SYS, "c", json!({"identityRef": {"apiVersion": "a/b/c", "kind": "X", "name": "n"}}))),
            None,
            vec![deny("CRED003", "spec.identityRef.apiVersion", &["Credential kcm-system/c", "\"a/b/c\""])],
        ),
        case(
            "identityRef field of the wrong type",
            Create,
            Some(credential(SYS, "c", json!({"identityRef": {"apiVersion": AWS_AV, "kind": 5, "name": "n"}}))),
            None,
            vec![deny("CRED001", "spec.identityRef.kind", &["Credential kcm-system/c", "spec.identityRef.kind"])],
        ),
        case(
            "region does not exist",
            Create,
            Some(aws_cred("c", Some("nope"))),
            None,
            vec![deny("CRED004", "spec.region", &["Credential kcm-system/c", "\"nope\"", "does not exist"])],
        ),
        case(
            "region being deleted",
            Create,
            Some(aws_cred("c", Some("region3"))),
            None,
            vec![deny("CRED006", "spec.region", &["Credential kcm-system/c", "Region region3", "being deleted"])],
        )
        .estate(|e| {
            e.insert(&mgmt(), deleting(region("region3", kubeconfig_spec("k", "value"), "True")));
        }),
        case(
            "region not ready, provider not enabled, no ProviderInterface in the region",
            Create,
            Some(aws_cred("c", Some("region2"))),
            None,
            vec![
                warn("CRED007", "spec.region", &["Region region2 is not Ready", "Components not ready"]),
                warn(
                    "CRED009",
                    "spec.identityRef.kind",
                    &["region region2", "AWSClusterStaticIdentity", "distribution will not happen"],
                ),
                warn("CRED012", "spec.identityRef.apiVersion", &["provider not enabled in Region region2", AWS_AV]),
            ],
        ),
        case(
            "region without a Ready condition",
            Create,
            Some(aws_cred("c", Some("region4"))),
            None,
            vec![warn("CRED007", "spec.region", &["Region region4", "no Ready condition"])],
        )
        .estate(|e| {
            e.insert(
                &mgmt(),
                json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Region",
                                     "metadata": {"name": "region4"}, "spec": kubeconfig_spec("k", "v")}),
            );
        }),
        case(
            "regional cluster unknown to the estate: regional checks skipped",
            Create,
            Some(aws_cred("c", Some("region5"))),
            None,
            vec![],
        )
        .estate(|e| {
            e.insert(&mgmt(), region("region5", kubeconfig_spec("k", "v"), "True"));
        }),
        case(
            "ProviderInterface declares the kind at another version",
            Create,
            Some(credential(
                SYS,
                "c",
                json!({"identityRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
                                                            "kind": "AWSClusterStaticIdentity", "name": "aws-id"}}),
            )),
            None,
            vec![
                warn(
                    "CRED008",
                    "spec.identityRef.apiVersion",
                    &[
                        "ProviderInterface cluster-api-provider-aws",
                        "management",
                        AWS_AV,
                        "not infrastructure.cluster.x-k8s.io/v1beta1",
                    ],
                ),
                warn("CRED011", "spec.identityRef.apiVersion", &["management cluster does not serve", "v1beta1"]),
            ],
        ),
        case(
            "no ProviderInterface declares the kind (management)",
            Create,
            Some(credential("team-a", "az", json!({"identityRef": azure_ref(Some("team-a"))}))),
            None,
            vec![warn(
                "CRED009",
                "spec.identityRef.kind",
                &["Credential team-a/az", "AzureClusterIdentity", "management"],
            )],
        ),
        case(
            "identity object absent in management",
            Create,
            Some(credential(SYS, "c", json!({"identityRef": aws_ref("missing-id")}))),
            None,
            vec![warn("CRED010", "spec.identityRef.name", &["AWSClusterStaticIdentity missing-id", "management"])],
        ),
        case(
            "AccessManagement copy: identity created by distribution, no absence warning",
            Create,
            Some(with(
                credential("team-x", "c", json!({"identityRef": aws_ref("missing-id")})),
                "/metadata",
                json!({"name": "c", "namespace": "team-x", "labels": {"k0rdent.mirantis.com/managed": "true"}}),
            )),
            None,
            vec![],
        ),
        case(
            "identity CRD not served in management",
            Create,
            Some(credential(
                SYS,
                "c",
                json!({"identityRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
                                                            "kind": "GCPIdentity", "name": "g"}}),
            )),
            None,
            vec![
                warn("CRED009", "spec.identityRef.kind", &["GCPIdentity"]),
                warn("CRED011", "spec.identityRef.apiVersion", &["GCPIdentity", "management cluster does not serve"]),
            ],
        ),
        case(
            "namespaced identity in another namespace",
            Create,
            Some(credential("team-b", "az", json!({"identityRef": azure_ref(Some("team-a"))}))),
            None,
            vec![deny("CRED013", "spec.identityRef.namespace", &["Credential team-b/az", "\"team-a\"", "\"team-b\""])],
        )
        .estate(azure_pi),
        case(
            "namespaced identity in the same namespace",
            Create,
            Some(credential("team-a", "az", json!({"identityRef": azure_ref(Some("team-a"))}))),
            None,
            vec![],
        )
        .estate(azure_pi),
        case(
            "namespaced identity without namespace (defaulted by mutation)",
            Create,
            Some(credential("team-a", "az", json!({"identityRef": azure_ref(None)}))),
            None,
            vec![warn("CRED015", "spec.identityRef.namespace", &["Credential team-a/az", "AzureClusterIdentity"])],
        )
        .estate(azure_pi),
        case(
            "cluster-scoped identity with a namespace",
            Create,
            Some(credential(
                SYS,
                "c",
                json!({"identityRef": {"apiVersion": AWS_AV, "kind": "AWSClusterStaticIdentity",
                                                            "name": "aws-id", "namespace": "kcm-system"}}),
            )),
            None,
            vec![warn(
                "CRED014",
                "spec.identityRef.namespace",
                &["AWSClusterStaticIdentity is cluster-scoped", "\"kcm-system\""],
            )],
        ),
        case(
            "scope and served unknown (no CRDs loaded): namespace and served checks skipped",
            Create,
            Some(credential("team-b", "az", json!({"identityRef": azure_ref(Some("team-a"))}))),
            None,
            vec![],
        )
        .estate(|e| {
            *e = MemoryEstate::new(SYS);
            azure_pi(e);
            e.insert(
                &mgmt(),
                json!({"apiVersion": AZURE_AV, "kind": "AzureClusterIdentity",
                                     "metadata": {"name": "az-id", "namespace": "team-a"}}),
            );
        }),
        case(
            "regional credential name at the KCM label limit (63)",
            Create,
            Some(aws_cred(&"a".repeat(41), Some("region1"))),
            None,
            vec![],
        ),
        case(
            "regional credential name over the KCM label limit",
            Create,
            Some(aws_cred(&"a".repeat(42), Some("region1"))),
            None,
            vec![warn("CRED017", "metadata.name", &["64 characters", "credential.kcm-system.aaaa"])],
        ),
        case(
            "long name on a management credential: KCM does not distribute, no warning",
            Create,
            Some(aws_cred(&"a".repeat(60), None)),
            None,
            vec![],
        ),
    ];
    check_table(ResourceKind::Credential, cases);
}

#[test]
fn credential_update_rules() {
    let r1 = aws_cred("c", Some("region1"));
    let plain = aws_cred("c", None);
    let cases = vec![
        case(
            "region changed",
            Update,
            Some(aws_cred("c", Some("region2"))),
            Some(r1.clone()),
            vec![deny(
                "CRED005",
                "spec.region",
                &["Credential kcm-system/c", "immutable", "\"region1\"", "\"region2\""],
            )],
        ),
        case(
            "region added (the CEL hole)",
            Update,
            Some(r1.clone()),
            Some(plain.clone()),
            vec![deny("CRED005", "spec.region", &["from no region to region \"region1\""])],
        ),
        case(
            "region removed (the CEL hole)",
            Update,
            Some(plain.clone()),
            Some(r1.clone()),
            vec![deny("CRED005", "spec.region", &["from region \"region1\" to no region"])],
        ),
        case(
            "region \"\" and absent are the same",
            Update,
            Some(with(plain.clone(), "/spec", json!({"identityRef": aws_ref("aws-id"), "region": ""}))),
            Some(plain.clone()),
            vec![],
        ),
        case(
            "unchanged spec whose Region vanished: KCM's label/finalizer writes pass",
            Update,
            Some(with(
                aws_cred("c", Some("gone")),
                "/metadata/labels",
                json!({"k0rdent.mirantis.com/component": "kcm"}),
            )),
            Some(with(aws_cred("c", Some("gone")), "/metadata/namespace", json!(SYS))),
            vec![],
        ),
        case(
            "identityRef changed to a missing object",
            Update,
            Some(credential(SYS, "c", json!({"identityRef": aws_ref("other"), "region": "region1"}))),
            Some(r1.clone()),
            vec![warn("CRED010", "spec.identityRef.name", &["AWSClusterStaticIdentity other"])],
        ),
        case(
            "identityRef changed to an incomplete one",
            Update,
            Some(credential(
                SYS,
                "c",
                json!({"identityRef": {"apiVersion": AWS_AV, "name": "x"}, "region": "region1"}),
            )),
            Some(r1.clone()),
            vec![deny("CRED002", "spec.identityRef.kind", &["Credential kcm-system/c"])],
        ),
        case(
            "object being deleted: only immutability is judged",
            Update,
            Some(deleting(credential(SYS, "c", json!({"identityRef": {}, "region": "region1"})))),
            Some(r1.clone()),
            vec![],
        ),
    ];
    check_table(ResourceKind::Credential, cases);
}

#[test]
fn credential_delete_rules() {
    let cred = aws_cred("aws-cred", None);
    let cases = vec![
        case("not in use", Delete, None, Some(cred.clone()), vec![]).estate(|e| {
            e.insert(&mgmt(), cd(SYS, "cd-other", "other-cred"));
            e.insert(&mgmt(), cd("team-a", "cd-elsewhere", "aws-cred"));
        }),
        case(
            "in use by ClusterDeployments in its namespace",
            Delete,
            None,
            Some(cred.clone()),
            vec![deny(
                "CRED016",
                "",
                &["Credential kcm-system/aws-cred", "2 ClusterDeployments", "cd1", "cd2 (being deleted)"],
            )],
        )
        .estate(|e| {
            e.insert(&mgmt(), cd(SYS, "cd1", "aws-cred"));
            e.insert(&mgmt(), deleting(cd(SYS, "cd2", "aws-cred")));
            e.insert(&mgmt(), cd("team-a", "cd-elsewhere", "aws-cred"));
        }),
        case(
            "the list of users is capped",
            Delete,
            None,
            Some(cred.clone()),
            vec![deny("CRED016", "", &["13 ClusterDeployments", "(and 3 more)"])],
        )
        .estate(|e| {
            for i in 0..13 {
                e.insert(&mgmt(), cd(SYS, &format!("cd{i:02}"), "aws-cred"));
            }
        }),
        case("already being deleted", Delete, None, Some(deleting(cred.clone())), vec![]).estate(|e| {
            e.insert(&mgmt(), cd(SYS, "cd1", "aws-cred"));
        }),
    ];
    check_table(ResourceKind::Credential, cases);
}

#[test]
fn credential_delete_lists_only_its_namespace() {
    let c = case("x", Delete, None, Some(aws_cred("aws-cred", None)), vec![]).estate(|e| {
        e.insert(&mgmt(), cd(SYS, "cd1", "aws-cred"));
        e.insert(&mgmt(), cd("team-a", "cd-elsewhere", "aws-cred"));
    });
    let got = run(ResourceKind::Credential, &c);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].severity, Severity::Deny);
    assert!(got[0].message.contains("1 ClusterDeployment in namespace kcm-system: cd1;"), "{}", got[0].message);
    assert!(!got[0].message.contains("cd-elsewhere"));
}

#[test]
fn connect_is_ignored() {
    let c = case("connect", Operation::Connect, Some(credential(SYS, "c", json!({}))), None, vec![]);
    assert!(run(ResourceKind::Credential, &c).is_empty());
}

/// An estate that loads Secrets of the system namespace only (as the webhook's cache does).
struct SystemSecretsOnly(MemoryEstate);

impl credential_core::Estate for SystemSecretsOnly {
    fn system_namespace(&self) -> &str {
        self.0.system_namespace()
    }
    fn knows_cluster(&self, c: &credential_core::Cluster) -> bool {
        self.0.knows_cluster(c)
    }
    fn get(
        &self,
        c: &credential_core::Cluster,
        g: &credential_core::gvk::Gvk,
        ns: Option<&str>,
        n: &str,
    ) -> Option<std::sync::Arc<serde_json::Value>> {
        self.0.get(c, g, ns, n)
    }
    fn list(
        &self,
        c: &credential_core::Cluster,
        g: &credential_core::gvk::Gvk,
        ns: Option<&str>,
    ) -> Vec<std::sync::Arc<serde_json::Value>> {
        self.0.list(c, g, ns)
    }
    fn served(&self, c: &credential_core::Cluster, g: &credential_core::gvk::Gvk) -> credential_core::estate::Served {
        self.0.served(c, g)
    }
    fn namespaced(&self, c: &credential_core::Cluster, g: &credential_core::gvk::Gvk) -> Option<bool> {
        self.0.namespaced(c, g)
    }
    fn covers(&self, _: &credential_core::Cluster, g: &credential_core::gvk::Gvk, ns: Option<&str>) -> bool {
        !(g.group.is_empty() && g.kind == "Secret") || ns == Some(SYS)
    }
}

#[test]
fn identity_the_estate_does_not_load_is_not_called_missing() {
    let estate = SystemSecretsOnly(estate());
    let secret_ref =
        |ns: &str, name: &str| json!({"apiVersion": "v1", "kind": "Secret", "name": name, "namespace": ns});
    let check = |cred: serde_json::Value| {
        let object = credential_core::rules::AdmittedObject::from_value(&cred);
        let input = credential_core::rules::AdmissionInput {
            operation: Create,
            kind: ResourceKind::Credential,
            namespace: cred["metadata"]["namespace"].as_str(),
            name: "c",
            object: Some(&object),
            old_object: None,
        };
        credential_core::rules::validate(&input, &estate)
    };
    // A Secret identity in a tenant namespace: not loaded, so "could not check", never "does not exist".
    let got = check(credential("team-a", "c", json!({"identityRef": secret_ref("team-a", "gcp-sa")})));
    assert!(got.iter().all(|f| f.code != "CRED010"), "{got:?}");
    let f = got.iter().find(|f| f.code == "CRED018").expect("CRED018");
    assert_eq!(f.severity, Severity::Warn);
    assert!(f.message.contains("could not check that Secret team-a/gcp-sa exists"), "{}", f.message);
    // In the system namespace the estate knows: a missing one is reported as missing.
    let got = check(credential(SYS, "c", json!({"identityRef": secret_ref(SYS, "nope")})));
    assert!(got.iter().any(|f| f.code == "CRED010") && got.iter().all(|f| f.code != "CRED018"), "{got:?}");
}

#[test]
fn dry_run_warns_where_a_sibling_of_the_same_apply_may_be_missing() {
    let estate = estate();
    let cred = credential_core::rules::AdmittedObject::from_value(&aws_cred("c", Some("not-yet")));
    let input = credential_core::rules::AdmissionInput {
        operation: Create,
        kind: ResourceKind::Credential,
        namespace: Some(SYS),
        name: "c",
        object: Some(&cred),
        old_object: None,
    };
    let real = credential_core::rules::validate(&input, &estate);
    let f = real.iter().find(|f| f.code == "CRED004").expect("CRED004 on a real write");
    assert_eq!(f.severity, Severity::Deny);
    let dry = credential_core::rules::lenient_for_dry_run(real.clone());
    let f = dry.iter().find(|f| f.code == "CRED004").expect("CRED004 on a dry run");
    assert_eq!(f.severity, Severity::Warn);
    assert!(f.message.contains("dry run") && f.message.contains("not-yet"), "{}", f.message);
    // Other denials stay denials on a dry run.
    let bad = credential_core::rules::AdmittedObject::from_value(&credential(SYS, "c", json!({"identityRef": {}})));
    let input = credential_core::rules::AdmissionInput { object: Some(&bad), ..input };
    let dry = credential_core::rules::lenient_for_dry_run(credential_core::rules::validate(&input, &estate));
    assert!(dry.iter().any(|f| f.code == "CRED002" && f.severity == Severity::Deny), "{dry:?}");
}
