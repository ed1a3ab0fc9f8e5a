#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rules_support;

use credential_core::MemoryEstate;
use credential_core::rules::{Operation, ResourceKind};
use rules_support::*;
use serde_json::{Value, json};

use Operation::{Create, Delete, Update};

const NS: &str = "team-a";

fn ready_cred(name: &str, region: Option<&str>, ready: bool) -> Value {
    let mut spec = json!({"identityRef": aws_ref("aws-id")});
    if let Some(r) = region {
        spec["region"] = json!(r);
    }
    let mut c = credential(NS, name, spec);
    c["status"] = json!({"ready": ready, "conditions": [{"type": "CredentialReady", "status": if ready { "True" } else { "False" },
        "message": if ready { "Credential is ready" } else { "ClusterIdentity object of Kind=AWSClusterStaticIdentity /aws-id not found" }}]});
    c
}

fn creds(e: &mut MemoryEstate) {
    e.insert(&mgmt(), ready_cred("mgmt-cred", None, true));
    e.insert(&mgmt(), ready_cred("r1-cred", Some("region1"), true));
    e.insert(&mgmt(), ready_cred("r1-cred-b", Some("region1"), true));
    e.insert(&mgmt(), ready_cred("r2-cred", Some("region2"), true));
    e.insert(&mgmt(), ready_cred("broken", None, false));
    e.insert(&mgmt(), deleting(ready_cred("going", None, true)));
    e.insert(&mgmt(), with(ready_cred("no-ref", None, true), "/spec", json!({})));
    e.insert(&mgmt(), ready_cred("lost-cred", Some("gone"), true));
}

fn c(name: &'static str, op: Operation, object: Option<Value>, old: Option<Value>, expect: Vec<Exp>) -> Case {
    case(name, op, object, old, expect).estate(creds)
}

#[test]
fn cluster_deployment_write_rules() {
    let on_r1 = cd(NS, "cl", "r1-cred");
    let cases = vec![
        c("ready credential", Create, Some(cd(NS, "cl", "mgmt-cred")), None, vec![]),
        c(
            "credential empty",
            Create,
            Some(with(cd(NS, "cl", "x"), "/spec", json!({"template": "t"}))),
            None,
            vec![deny("CD002", "spec.credential", &["ClusterDeployment team-a/cl", "empty"])],
        ),
        c(
            "credential in another namespace only",
            Create,
            Some(cd(NS, "cl", "aws-cred")),
            None,
            vec![deny(
                "CD003",
                "spec.credential",
                &["ClusterDeployment team-a/cl", "Credential team-a/aws-cred", "does not exist"],
            )],
        )
        .estate(|e| {
            e.insert(&mgmt(), credential(SYS, "aws-cred", json!({"identityRef": aws_ref("aws-id")})));
        }),
        c(
            "credential not ready",
            Create,
            Some(cd(NS, "cl", "broken")),
            None,
            vec![deny(
                "CD004",
                "spec.credential",
                &["Credential team-a/broken is not Ready", "Kind=AWSClusterStaticIdentity"],
            )],
        ),
        c(
            "credential being deleted",
            Create,
            Some(cd(NS, "cl", "going")),
            None,
            vec![deny("CD006", "spec.credential", &["Credential team-a/going is being deleted"])],
        ),
        c(
            "credential without identityRef",
            Create,
            Some(cd(NS, "cl", "no-ref")),
            None,
            vec![deny("CD005", "spec.credential", &["Credential team-a/no-ref does not have identityRef"])],
        ),
        c(
            "field of the wrong type",
            Create,
            Some(with(cd(NS, "cl", "x"), "/spec/credential", json!(["a"]))),
            None,
            vec![deny("CD001", "spec.credential", &["ClusterDeployment team-a/cl is invalid"])],
        ),
        c(
            "credential unchanged (now not ready)",
            Update,
            Some(with(cd(NS, "cl", "broken"), "/spec/template", json!("t2"))),
            Some(cd(NS, "cl", "broken")),
            vec![],
        ),
        c("changed within the same region", Update, Some(cd(NS, "cl", "r1-cred-b")), Some(on_r1.clone()), vec![]),
        c(
            "changed to another region",
            Update,
            Some(cd(NS, "cl", "r2-cred")),
            Some(on_r1.clone()),
            vec![deny(
                "CD007",
                "spec.credential",
                &["ClusterDeployment team-a/cl", "r1-cred (Region region1)", "r2-cred (Region region2)"],
            )],
        ),
        c(
            "changed from regional to management",
            Update,
            Some(cd(NS, "cl", "mgmt-cred")),
            Some(on_r1.clone()),
            vec![deny("CD007", "spec.credential", &["(Region region1)", "mgmt-cred (the management cluster)"])],
        ),
        c(
            "old credential gone: status.region tells the region",
            Update,
            Some(cd(NS, "cl", "mgmt-cred")),
            Some(with(cd(NS, "cl", "vanished"), "/status", json!({"region": "region1"}))),
            vec![deny("CD007", "spec.credential", &["vanished (Region region1)"])],
        ),
        c(
            "old credential gone and no status: no guess",
            Update,
            Some(cd(NS, "cl", "mgmt-cred")),
            Some(cd(NS, "cl", "vanished")),
            vec![],
        ),
        c(
            "changed to a credential that is not ready",
            Update,
            Some(cd(NS, "cl", "broken")),
            Some(cd(NS, "cl", "mgmt-cred")),
            vec![deny("CD004", "spec.credential", &["Credential team-a/broken is not Ready"])],
        ),
        c("being deleted", Update, Some(deleting(cd(NS, "cl", "r2-cred"))), Some(on_r1.clone()), vec![]),
        c(
            "credential of a Region that does not exist (KCM parity)",
            Create,
            Some(cd(NS, "cl", "lost-cred")),
            None,
            vec![deny(
                "CD009",
                "spec.credential",
                &["ClusterDeployment team-a/cl", "Credential team-a/lost-cred", "Region \"gone\"", "does not exist"],
            )],
        ),
        c(
            "changed to a credential of a Region that does not exist",
            Update,
            Some(cd(NS, "cl", "lost-cred")),
            Some(cd(NS, "cl", "mgmt-cred")),
            vec![
                deny("CD009", "spec.credential", &["Region \"gone\""]),
                deny("CD007", "spec.credential", &["Region gone"]),
            ],
        ),
        c(
            "unchanged credential whose Region vanished: not judged",
            Update,
            Some(with(cd(NS, "cl", "lost-cred"), "/spec/template", json!("t2"))),
            Some(cd(NS, "cl", "lost-cred")),
            vec![],
        ),
    ];
    check_table(ResourceKind::ClusterDeployment, cases);
}

#[test]
fn cluster_deployment_delete_rules() {
    let region_on_cd = |e: &mut MemoryEstate| {
        e.insert(
            &mgmt(),
            region("child-region", json!({"clusterDeployment": {"namespace": NS, "name": "child"}}), "True"),
        );
    };
    let cases = vec![
        c(
            "named by a Region",
            Delete,
            None,
            Some(cd(NS, "child", "mgmt-cred")),
            vec![deny("CD008", "", &["referenced by Region \"child-region\"", "team-a/child"])],
        )
        .estate(region_on_cd),
        c("same name in another namespace", Delete, None, Some(cd("team-b", "child", "mgmt-cred")), vec![])
            .estate(region_on_cd),
        c("not named by any Region", Delete, None, Some(cd(NS, "other", "mgmt-cred")), vec![]).estate(region_on_cd),
    ];
    check_table(ResourceKind::ClusterDeployment, cases);
}
