#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rules_support;

use credential_core::rules::{Operation, ResourceKind};
use rules_support::*;
use serde_json::{Value, json};

use Operation::{Create, Delete, Update};

fn bare(name: &str) -> Value {
    json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Region", "metadata": {"name": name}})
}

fn with_spec(name: &str, spec: Value) -> Value {
    with(bare(name), "/spec", spec)
}

/// A Secret as a metadata-only cache holds it before reading its key names.
fn keys_unknown_secret(name: &str, marker: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": SYS,
           "annotations": {credential_core::rules::region::SECRET_KEYS_UNKNOWN_ANNOTATION: marker}}})
}

fn cd_spec(ns: &str, name: &str) -> Value {
    json!({"clusterDeployment": {"namespace": ns, "name": name}})
}

#[test]
fn region_create_rules() {
    let cases = vec![
        case(
            "kubeconfig region, all good",
            Create,
            Some(with_spec("r3", kubeconfig_spec("region1-kubeconfig", "value"))),
            None,
            vec![],
        ),
        case(
            "no spec at all (the CEL hole)",
            Create,
            Some(bare("r3")),
            None,
            vec![deny("RGN002", "spec", &["Region r3 has no spec", "exactly one of"])],
        ),
        case(
            "empty spec",
            Create,
            Some(with_spec("r3", json!({}))),
            None,
            vec![deny("RGN002", "spec", &["Region r3 sets neither"])],
        ),
        case(
            "both kubeConfig and clusterDeployment",
            Create,
            Some(with_spec(
                "r3",
                json!({"kubeConfig": {"name": "region1-kubeconfig", "key": "value"},
                                        "clusterDeployment": {"namespace": "team-a", "name": "child"}}),
            )),
            None,
            vec![deny("RGN003", "spec", &["Region r3 sets both"])],
        ),
        case(
            "kubeConfig name empty",
            Create,
            Some(with_spec("r3", kubeconfig_spec("", "value"))),
            None,
            vec![deny("RGN004", "spec.kubeConfig.name", &["Region r3", "spec.kubeConfig.name is empty"])],
        ),
        case(
            "kubeConfig key empty",
            Create,
            Some(with_spec("r3", kubeconfig_spec("region1-kubeconfig", ""))),
            None,
            vec![deny("RGN005", "spec.kubeConfig.key", &["Region r3", "spec.kubeConfig.key is not set"])],
        ),
        case(
            "kubeConfig key absent and Secret missing",
            Create,
            Some(with_spec("r3", json!({"kubeConfig": {"name": "nope"}}))),
            None,
            vec![
                deny("RGN005", "spec.kubeConfig.key", &["Region r3"]),
                deny("RGN006", "spec.kubeConfig.name", &["Region r3", "kcm-system/nope", "does not exist"]),
            ],
        ),
        case(
            "kubeconfig Secret only outside the system namespace",
            Create,
            Some(with_spec("r3", kubeconfig_spec("elsewhere", "value"))),
            None,
            vec![deny("RGN006", "spec.kubeConfig.name", &["kcm-system/elsewhere"])],
        )
        .estate(|e| {
            e.insert(&mgmt(), secret("team-a", "elsewhere", &["value"]));
        }),
        case(
            "kubeconfig Secret lacks the key",
            Create,
            Some(with_spec("r3", kubeconfig_spec("region1-kubeconfig", "kubeconfig"))),
            None,
            vec![deny(
                "RGN007",
                "spec.kubeConfig.key",
                &["Region r3", "kcm-system/region1-kubeconfig", "\"kubeconfig\""],
            )],
        ),
        case(
            "kubeconfig Secret whose key names are not loaded yet: skipped, not denied",
            Create,
            Some(with_spec("r3", kubeconfig_spec("loading", "value"))),
            None,
            vec![],
        )
        .estate(|e| {
            e.insert(&mgmt(), keys_unknown_secret("loading", "true"));
        }),
        case(
            "kubeconfig Secret with known key names (none): denied",
            Create,
            Some(with_spec("r3", kubeconfig_spec("empty", "value"))),
            None,
            vec![deny("RGN007", "spec.kubeConfig.key", &["Region r3", "kcm-system/empty", "\"value\""])],
        )
        .estate(|e| {
            e.insert(
                &mgmt(),
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "empty", "namespace": SYS}}),
            );
        }),
        case(
            "keys-unknown marker other than \"true\" counts as known",
            Create,
            Some(with_spec("r3", kubeconfig_spec("marked", "value"))),
            None,
            vec![deny("RGN007", "spec.kubeConfig.key", &["kcm-system/marked"])],
        )
        .estate(|e| {
            e.insert(&mgmt(), keys_unknown_secret("marked", "false"));
        }),
        case(
            "keys unknown still needs the Secret to exist",
            Create,
            Some(with_spec("r3", kubeconfig_spec("nope", "value"))),
            None,
            vec![deny("RGN006", "spec.kubeConfig.name", &["kcm-system/nope", "does not exist"])],
        )
        .estate(|e| {
            e.insert(&mgmt(), keys_unknown_secret("loading", "true"));
        }),
        case("key present in stringData", Create, Some(with_spec("r3", kubeconfig_spec("sd", "config"))), None, vec![])
            .estate(|e| {
                e.insert(
                    &mgmt(),
                    json!({"apiVersion": "v1", "kind": "Secret",
                                         "metadata": {"name": "sd", "namespace": SYS}, "stringData": {"config": "x"}}),
                );
            }),
        case(
            "clusterDeployment region, all good",
            Create,
            Some(with_spec("r3", cd_spec("team-a", "child"))),
            None,
            vec![],
        )
        .estate(|e| {
            e.insert(&mgmt(), cd("team-a", "child", "c"));
        }),
        case(
            "clusterDeployment does not exist",
            Create,
            Some(with_spec("r3", cd_spec("team-a", "child"))),
            None,
            vec![deny("RGN009", "spec.clusterDeployment", &["Region r3", "ClusterDeployment team-a/child"])],
        ),
        case(
            "clusterDeployment namespace missing",
            Create,
            Some(with_spec("r3", json!({"clusterDeployment": {"name": "child"}}))),
            None,
            vec![deny("RGN008", "spec.clusterDeployment.namespace", &["Region r3"])],
        ),
        case(
            "name longer than 21 characters",
            Create,
            Some(with_spec("region-with-long-name1", kubeconfig_spec("region1-kubeconfig", "value"))),
            None,
            vec![warn("RGN012", "metadata.name", &["Region region-with-long-name1", "22 characters", "21"])],
        ),
        case(
            "name of exactly 21 characters",
            Create,
            Some(with_spec("region-with-long-name", kubeconfig_spec("region1-kubeconfig", "value"))),
            None,
            vec![],
        ),
        case(
            "field of the wrong type",
            Create,
            Some(with_spec("r3", json!({"kubeConfig": {"name": 5}}))),
            None,
            vec![deny("RGN001", "spec.kubeConfig.name", &["Region r3 is invalid", "spec.kubeConfig.name"])],
        ),
    ];
    check_table(ResourceKind::Region, cases);
}

#[test]
fn region_messages_never_carry_secret_data() {
    let c = case("x", Create, Some(with_spec("r3", kubeconfig_spec("region1-kubeconfig", "other"))), None, vec![]);
    for f in run(ResourceKind::Region, &c) {
        assert!(!f.message.contains("c2VjcmV0") && !f.hint.contains("c2VjcmV0"), "{f:?}");
    }
}

#[test]
fn region_update_rules() {
    let kc = with_spec("r3", kubeconfig_spec("region1-kubeconfig", "value"));
    let cases = vec![
        case(
            "kubeConfig changed",
            Update,
            Some(with_spec("r3", kubeconfig_spec("region2-kubeconfig", "value"))),
            Some(kc.clone()),
            vec![deny("RGN010", "spec.kubeConfig", &["Region r3", "immutable", "changed"])],
        ),
        case(
            "kubeConfig swapped for clusterDeployment",
            Update,
            Some(with_spec("r3", cd_spec("team-a", "child"))),
            Some(kc.clone()),
            vec![deny("RGN010", "spec.kubeConfig", &["removed"]), deny("RGN011", "spec.clusterDeployment", &["added"])],
        )
        .estate(|e| {
            e.insert(&mgmt(), cd("team-a", "child", "c"));
        }),
        case(
            "clusterDeployment changed",
            Update,
            Some(with_spec("r3", cd_spec("team-a", "child2"))),
            Some(with_spec("r3", cd_spec("team-a", "child"))),
            vec![deny("RGN011", "spec.clusterDeployment", &["Region r3", "changed"])],
        )
        .estate(|e| {
            e.insert(&mgmt(), cd("team-a", "child2", "c"));
        }),
        case("repair: a Region without spec gets one", Update, Some(kc.clone()), Some(bare("r3")), vec![]),
        case(
            "repair with a missing Secret is still checked",
            Update,
            Some(with_spec("r3", kubeconfig_spec("nope", "value"))),
            Some(bare("r3")),
            vec![deny("RGN006", "spec.kubeConfig.name", &["kcm-system/nope"])],
        ),
        case(
            "only providers change: references are not re-checked",
            Update,
            Some(with_spec(
                "r3",
                json!({"kubeConfig": {"name": "gone", "key": "value"}, "providers": [{"name": "aws"}]}),
            )),
            Some(with_spec("r3", json!({"kubeConfig": {"name": "gone", "key": "value"}}))),
            vec![],
        ),
        case(
            "labels only on a Region without spec",
            Update,
            Some(with(bare("r3"), "/metadata/labels", json!({"a": "b"}))),
            Some(bare("r3")),
            vec![],
        ),
        case(
            "being deleted: only immutability",
            Update,
            Some(deleting(with_spec("r3", json!({})))),
            Some(deleting(with_spec("r3", json!({})))),
            vec![],
        ),
    ];
    check_table(ResourceKind::Region, cases);
}

#[test]
fn region_delete_rules() {
    let r1 = region("region1", kubeconfig_spec("region1-kubeconfig", "value"), "True");
    let used = |e: &mut credential_core::MemoryEstate| {
        e.insert(&mgmt(), credential(SYS, "aws-cred", json!({"identityRef": aws_ref("aws-id"), "region": "region1"})));
        e.insert(
            &mgmt(),
            credential("team-a", "cred2", json!({"identityRef": aws_ref("aws-id"), "region": "region1"})),
        );
        e.insert(&mgmt(), credential("team-a", "mgmt-cred", json!({"identityRef": aws_ref("aws-id")})));
        e.insert(&mgmt(), cd(SYS, "cd1", "aws-cred"));
        e.insert(&mgmt(), cd("team-a", "cd-mgmt", "mgmt-cred"));
    };
    let cases = vec![
        case(
            "ClusterDeployments use its Credentials",
            Delete,
            None,
            Some(r1.clone()),
            vec![
                deny(
                    "RGN013",
                    "",
                    &[
                        "Region region1 cannot be deleted",
                        "1 ClusterDeployment",
                        "kcm-system/cd1 (Credential aws-cred)",
                    ],
                ),
                warn("RGN014", "", &["Region region1", "1 Credential", "team-a/cred2"]),
            ],
        )
        .estate(used),
        case(
            "only unused Credentials name it",
            Delete,
            None,
            Some(r1.clone()),
            vec![warn("RGN014", "", &["orphans 1 Credential", "kcm-system/c1"])],
        )
        .estate(|e| {
            e.insert(&mgmt(), credential(SYS, "c1", json!({"identityRef": aws_ref("aws-id"), "region": "region1"})));
        }),
        case("nothing uses it", Delete, None, Some(r1.clone()), vec![]),
        case("already being deleted", Delete, None, Some(deleting(r1.clone())), vec![]).estate(used),
    ];
    check_table(ResourceKind::Region, cases);
}
