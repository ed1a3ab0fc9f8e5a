#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rules_support;

use credential_core::rules::{Operation, ResourceKind};
use rules_support::*;
use serde_json::{Value, json};

use Operation::{Create, Delete, Update};

const AWS_PI: &str = "cluster-api-provider-aws";

fn ident(kind: &str, refs: Value) -> Value {
    json!({"group": "example.io", "version": "v1", "kind": kind, "references": refs})
}

fn reference(kind: &str, path: &str) -> Value {
    json!({"group": "example.io", "version": "v1", "kind": kind, "nameFieldPath": path})
}

fn static_only() -> Value {
    json!([{"group": INFRA, "version": "v1beta2", "kind": "AWSClusterStaticIdentity"}])
}

#[test]
fn provider_interface_write_rules() {
    let cases = vec![
        case("the shipped AWS ProviderInterface", Create, Some(pi(AWS_PI, aws_identities())), None, vec![]),
        case(
            "same identity GVK in another PI that sorts first",
            Create,
            Some(pi("aaa-custom", static_only())),
            None,
            vec![warn(
                "PI007",
                "spec.clusterIdentities[0]",
                &[
                    "ProviderInterface aaa-custom",
                    "AWSClusterStaticIdentity",
                    "also declared by ProviderInterface cluster-api-provider-aws",
                    "ProviderInterface aaa-custom's entry",
                ],
            )],
        ),
        case(
            "identical entry in another PI (core Secret, as most providers ship it): no warning",
            Create,
            Some(pi("cluster-api-provider-gcp", json!([{"group": "", "version": "v1", "kind": "Secret"}]))),
            None,
            vec![],
        )
        .estate(|e| {
            e.insert(
                &mgmt(),
                pi(
                    "cluster-api-provider-azure",
                    json!([{"group": "", "version": "v1", "kind": "Secret", "references": []}]),
                ),
            );
        }),
        case(
            "same entry with the same references in another order is identical",
            Create,
            Some(pi("p", json!([ident("A", json!([reference("S", "spec.s"), reference("T", "spec.t")]))]))),
            None,
            vec![],
        )
        .estate(|e| {
            e.insert(
                &mgmt(),
                pi("q", json!([ident("A", json!([reference("T", "spec.t"), reference("S", "spec.s")]))])),
            );
        }),
        case(
            "same identity GVK in another PI that sorts first wins over us",
            Create,
            Some(pi("zzz-custom", static_only())),
            None,
            vec![warn("PI007", "spec.clusterIdentities[0]", &["ProviderInterface cluster-api-provider-aws's entry"])],
        ),
        case(
            "no clusterIdentities",
            Create,
            Some(with(pi("p", json!([])), "/spec", json!({"description": "x"}))),
            None,
            vec![warn("PI010", "spec.clusterIdentities", &["ProviderInterface p", "distribution will not work"])],
        ),
        case(
            "no spec",
            Create,
            Some(
                json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "ProviderInterface", "metadata": {"name": "p"}}),
            ),
            None,
            vec![warn("PI010", "spec.clusterIdentities", &["ProviderInterface p"])],
        ),
        case(
            "identity lacks version and kind (group may be empty)",
            Create,
            Some(pi("p", json!([{"group": ""}]))),
            None,
            vec![
                deny("PI002", "spec.clusterIdentities[0].version", &["ProviderInterface p", "version is empty"]),
                deny("PI002", "spec.clusterIdentities[0].kind", &["kind is empty"]),
            ],
        ),
        case(
            "core Secret identity with empty group is fine",
            Create,
            Some(pi("p", json!([{"group": "", "version": "v1", "kind": "Secret"}]))),
            None,
            vec![],
        ),
        case(
            "reference lacks kind",
            Create,
            Some(pi("p", json!([ident("A", json!([{"group": "", "version": "v1", "nameFieldPath": "spec.name"}]))]))),
            None,
            vec![deny("PI003", "spec.clusterIdentities[0].references[0].kind", &["ProviderInterface p"])],
        ),
        case(
            "nameFieldPath missing",
            Create,
            Some(pi("p", json!([ident("A", json!([{"group": "", "version": "v1", "kind": "Secret"}]))]))),
            None,
            vec![deny(
                "PI004",
                "spec.clusterIdentities[0].references[0].nameFieldPath",
                &["ProviderInterface p", "empty"],
            )],
        ),
        case(
            "nameFieldPath with a leading dot",
            Create,
            Some(pi("p", json!([ident("A", json!([reference("S", ".spec.name")]))]))),
            None,
            vec![deny("PI004", "spec.clusterIdentities[0].references[0].nameFieldPath", &["leading dot", "spec.name"])],
        ),
        case(
            "nameFieldPath with an empty segment",
            Create,
            Some(pi("p", json!([ident("A", json!([reference("S", "spec..name")]))]))),
            None,
            vec![deny("PI004", "spec.clusterIdentities[0].references[0].nameFieldPath", &["empty key"])],
        ),
        case(
            "namespaceFieldPath invalid",
            Create,
            Some(pi(
                "p",
                json!([ident(
                    "A",
                    json!([with(reference("S", "spec.name"), "/namespaceFieldPath", json!("spec.ns."))])
                )]),
            )),
            None,
            vec![deny(
                "PI005",
                "spec.clusterIdentities[0].references[0].namespaceFieldPath",
                &["ProviderInterface p", "spec.ns."],
            )],
        ),
        case(
            "namespaceFieldPath empty means absent",
            Create,
            Some(pi(
                "p",
                json!([ident("A", json!([with(reference("S", "spec.name"), "/namespaceFieldPath", json!(""))]))]),
            )),
            None,
            vec![],
        ),
        case(
            "duplicate identity GVK",
            Create,
            Some(pi("p", json!([ident("A", json!([])), ident("B", json!([])), ident("A", json!([]))]))),
            None,
            vec![deny(
                "PI006",
                "spec.clusterIdentities[2]",
                &["ProviderInterface p", "example.io/v1 A", "spec.clusterIdentities[0]"],
            )],
        ),
        case(
            "deprecated clusterIdentityKinds",
            Create,
            Some(with(pi("p", json!([ident("A", json!([]))])), "/spec/clusterIdentityKinds", json!(["A"]))),
            None,
            vec![warn("PI008", "spec.clusterIdentityKinds", &["ProviderInterface p", "deprecated"])],
        ),
        case(
            "removed clusterGVKs",
            Create,
            Some(with(
                pi("p", json!([ident("A", json!([]))])),
                "/spec/clusterGVKs",
                json!([{"group": "", "version": "v1", "kind": "X"}]),
            )),
            None,
            vec![warn("PI009", "spec.clusterGVKs", &["ProviderInterface p", "1.11"])],
        ),
        case(
            "reference cycle of two",
            Create,
            Some(pi(
                "p",
                json!([ident("A", json!([reference("B", "spec.b")])), ident("B", json!([reference("A", "spec.a")]))]),
            )),
            None,
            vec![deny(
                "PI011",
                "spec.clusterIdentities[0].references[0]",
                &["ProviderInterface p", "example.io/v1 A -> example.io/v1 B -> example.io/v1 A"],
            )],
        ),
        case(
            "self reference",
            Create,
            Some(pi("p", json!([ident("A", json!([reference("S", "spec.s"), reference("A", "spec.parent")]))]))),
            None,
            vec![deny("PI011", "spec.clusterIdentities[0].references[1]", &["example.io/v1 A -> example.io/v1 A"])],
        ),
        case(
            "cycle of three behind a tail",
            Create,
            Some(pi(
                "p",
                json!([
                    ident("T", json!([reference("A", "spec.a")])),
                    ident("A", json!([reference("B", "spec.b")])),
                    ident("B", json!([reference("C", "spec.c")])),
                    ident("C", json!([reference("A", "spec.a")])),
                ]),
            )),
            None,
            vec![deny(
                "PI011",
                "spec.clusterIdentities[1].references[0]",
                &["example.io/v1 A -> example.io/v1 B -> example.io/v1 C -> example.io/v1 A"],
            )],
        ),
        case(
            "a shared target (diamond) is no cycle",
            Create,
            Some(pi(
                "p",
                json!([
                    ident("A", json!([reference("B", "spec.b"), reference("C", "spec.c")])),
                    ident("B", json!([reference("C", "spec.c")])),
                    ident("C", json!([])),
                ]),
            )),
            None,
            vec![],
        ),
        case(
            "field of the wrong type",
            Create,
            Some(with(pi("p", json!([])), "/spec/clusterIdentities", json!("AWSClusterStaticIdentity"))),
            None,
            vec![deny("PI001", "spec.clusterIdentities", &["ProviderInterface p is invalid"])],
        ),
    ];
    check_table(ResourceKind::ProviderInterface, cases);
}

fn used_by_credentials(e: &mut credential_core::MemoryEstate) {
    e.insert(&mgmt(), credential(SYS, "aws-cred", json!({"identityRef": aws_ref("aws-id")})));
    e.insert(&mgmt(), credential("team-a", "aws-team", json!({"identityRef": aws_ref("aws-id")})));
    // A regional Credential depends on its Region's ProviderInterfaces, not on this one.
    e.insert(&mgmt(), credential(SYS, "aws-regional", json!({"identityRef": aws_ref("aws-id"), "region": "region1"})));
}

#[test]
fn provider_interface_removal_rules() {
    let without_static =
        pi(AWS_PI, json!([{"group": INFRA, "version": "v1beta2", "kind": "AWSClusterControllerIdentity"}]));
    let cases = vec![
        case(
            "update removes an identity kind Credentials use",
            Update,
            Some(without_static.clone()),
            Some(pi(AWS_PI, aws_identities())),
            vec![warn(
                "PI012",
                "spec.clusterIdentities",
                &[
                    "ProviderInterface cluster-api-provider-aws",
                    "AWSClusterStaticIdentity",
                    "2 Credentials",
                    "kcm-system/aws-cred",
                    "team-a/aws-team",
                ],
            )],
        )
        .estate(used_by_credentials),
        case(
            "removed kind still declared by another PI",
            Update,
            Some(without_static.clone()),
            Some(pi(AWS_PI, aws_identities())),
            vec![],
        )
        .estate(|e| {
            used_by_credentials(e);
            e.insert(&mgmt(), pi("other", static_only()));
        }),
        case(
            "removed kind nobody uses",
            Update,
            Some(without_static.clone()),
            Some(pi(AWS_PI, aws_identities())),
            vec![],
        ),
        case(
            "delete of a PI whose kinds Credentials use",
            Delete,
            None,
            Some(pi(AWS_PI, aws_identities())),
            vec![warn(
                "PI012",
                "",
                &["removing infrastructure.cluster.x-k8s.io/v1beta2 AWSClusterStaticIdentity", "2 Credentials"],
            )],
        )
        .estate(used_by_credentials),
        case("delete of an unused PI", Delete, None, Some(pi("unused", json!([ident("A", json!([]))]))), vec![])
            .estate(used_by_credentials),
        case(
            "update of a deleting PI",
            Update,
            Some(deleting(pi(AWS_PI, json!([])))),
            Some(pi(AWS_PI, aws_identities())),
            vec![],
        )
        .estate(used_by_credentials),
    ];
    check_table(ResourceKind::ProviderInterface, cases);
}

#[test]
fn removal_warning_does_not_list_regional_credentials() {
    let c = case("x", Delete, None, Some(pi(AWS_PI, aws_identities())), vec![]).estate(used_by_credentials);
    let got = run(ResourceKind::ProviderInterface, &c);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(!got[0].message.contains("aws-regional"), "{}", got[0].message);
}

#[test]
fn update_denies_only_what_it_introduces() {
    // A third-party PI stored with a path KCM's schema accepts and this project's rule does not.
    let stored = pi("third-party", json!([ident("KindA", json!([reference("SecretA", "spec.secretRef.")]))]));
    let labelled = with(stored.clone(), "/metadata/labels", json!({"helm.toolkit.fluxcd.io/name": "x"}));
    let findings = |object: &Value| {
        let c = case("update", Update, Some(object.clone()), Some(stored.clone()), vec![]);
        run(ResourceKind::ProviderInterface, &c)
    };
    // A label-only change (adoption): the old finding is a warning that says so.
    let got = findings(&labelled);
    let f = got.iter().find(|f| f.code == "PI004").expect("PI004 still reported");
    assert_eq!(f.severity, credential_core::Severity::Warn, "{got:?}");
    assert!(f.message.contains("already so before this update"), "{}", f.message);
    assert!(got.iter().all(|f| !f.is_deny()), "{got:?}");
    // An entry inserted before it shifts its index: still the same finding.
    let shifted = pi(
        "third-party",
        json!([ident("KindZ", json!([])), ident("KindA", json!([reference("SecretA", "spec.secretRef.")]))]),
    );
    assert!(findings(&shifted).iter().all(|f| !f.is_deny()), "{:?}", findings(&shifted));
    // A new bad path is this update's doing: denied, while the old one stays a warning.
    let worse = pi(
        "third-party",
        json!([ident("KindA", json!([reference("SecretA", "spec.secretRef."), reference("SecretB", "spec..b")]))]),
    );
    let got = findings(&worse);
    let denied: Vec<&str> = got.iter().filter(|f| f.is_deny()).map(|f| f.field.as_str()).collect();
    assert_eq!(denied, ["spec.clusterIdentities[0].references[1].nameFieldPath"], "{got:?}");
    // The same object on CREATE is denied.
    let c = case("create", Create, Some(stored.clone()), None, vec![]);
    assert!(run(ResourceKind::ProviderInterface, &c).iter().any(|f| f.code == "PI004" && f.is_deny()));
}
