//! End-to-end tests of cluster identity distribution on real clusters: a management and one or more
//! regional kube-apiservers (tests/kube-test-cluster, one process each), the distributor running
//! in-process against the management cluster as the shipped ServiceAccount (deploy/ RBAC, a real
//! TokenRequest token) and reaching each regional cluster through its Region's kubeconfig Secret.
//!
//! The benchmarks (1,000 Credentials over 4 regional clusters by default, `BENCH_CREDENTIALS` and
//! `BENCH_REGIONS` to change; write mode and trigger mode) are `#[ignore]`d; run them with
//! `cargo test -p credential-e2e --release --test distribution_e2e -- --ignored --nocapture bench_`.
//! Needs Go (to build the cluster once) and `kubectl` on PATH.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use credential_core::model::labels;
use credential_e2e::cluster::metric_sum;
use credential_webhook::distribution::{Backoff, DistributionConfig, Distributor, LeaderElection};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};
use support::kcm::{KcmStandIn, set_kcm};
use support::regional::{
    self, CRED_AV, Real, StallProxy, WAIT, client_from, kubeconfig_via, port_of, register_region,
    requests_by_verb_resource,
};
use support::{SYS, b64, eventually_async};

const INFRA: &str = "infrastructure.cluster.x-k8s.io";

/// ProviderInterfaces of the regional clusters. AWS and Azure as KCM ships them, except that the controller
/// identity here references a Secret, so that one identity's reference is itself an identity with references.
const PROVIDER_INTERFACES: &str = r#"
apiVersion: k0rdent.mirantis.com/v1beta1
kind: ProviderInterface
metadata: {name: cluster-api-provider-aws}
spec:
  clusterIdentities:
  - group: infrastructure.cluster.x-k8s.io
    version: v1beta2
    kind: AWSClusterStaticIdentity
    references:
    - {group: "", version: v1, kind: Secret, nameFieldPath: spec.secretRef}
  - group: infrastructure.cluster.x-k8s.io
    version: v1beta2
    kind: AWSClusterRoleIdentity
    references:
    - {group: infrastructure.cluster.x-k8s.io, version: v1beta2, kind: AWSClusterControllerIdentity,
       nameFieldPath: spec.sourceIdentityRef.name}
  - group: infrastructure.cluster.x-k8s.io
    version: v1beta2
    kind: AWSClusterControllerIdentity
    references:
    - {group: "", version: v1, kind: Secret, nameFieldPath: spec.secretRef.name}
---
apiVersion: k0rdent.mirantis.com/v1beta1
kind: ProviderInterface
metadata: {name: cluster-api-provider-azure}
spec:
  clusterIdentities:
  - group: infrastructure.cluster.x-k8s.io
    version: v1beta1
    kind: AzureClusterIdentity
    references:
    - {group: "", version: v1, kind: Secret, nameFieldPath: spec.clientSecret.name,
       namespaceFieldPath: spec.clientSecret.namespace}
"#;

/// Starts the distributor with `config` against the management cluster through `client`.
fn start_distributor(config: DistributionConfig, client: &kube::Client) -> Distributor {
    Distributor::start(config, client.clone())
}

fn test_config() -> DistributionConfig {
    DistributionConfig {
        workers: 8,
        leader_election: None,
        credential_backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(2)),
        cluster_backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(1)),
        cluster_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(2),
        instance: "e2e".to_string(),
        ..DistributionConfig::default()
    }
}

struct World {
    mgmt: Real,
    regions: Vec<Real>,
    /// Admin of the management cluster: what the test (an operator, KCM) writes with.
    client: kube::Client,
    /// The shipped ServiceAccount's real token and RBAC: what the distributor runs as.
    sa: kube::Client,
}

async fn regional_cluster(name: &str) -> Real {
    let r = regional::start(name, false).await;
    r.seed_yaml(PROVIDER_INTERFACES).await;
    r
}

/// A management cluster with the shipped RBAC, and `regions` regional clusters (r1, r2, ...) each its own
/// apiserver process, registered as Ready Regions whose kubeconfig Secret holds the cluster's kubeconfig.
async fn world(regions: usize) -> World {
    let names: Vec<String> = (1..=regions).map(|i| format!("r{i}")).collect();
    let (mgmt, rs) = tokio::join!(
        regional::start("mgmt", false),
        futures_util::future::join_all(names.iter().map(|n| regional_cluster(n)))
    );
    for (name, r) in names.iter().zip(&rs) {
        register_region(&mgmt, name, &r.kubeconfig_yaml()).await;
    }
    let client = mgmt.admin.clone();
    let sa = mgmt.shipped_webhook_client().await;
    World { mgmt, regions: rs, client, sa }
}

fn aws_static_identity(identity: &str, secret: &str, allowed: Value) -> Value {
    json!({"apiVersion": format!("{INFRA}/v1beta2"), "kind": "AWSClusterStaticIdentity",
        "metadata": {"name": identity, "annotations": {"note": "source annotation"}},
        "spec": {"secretRef": secret, "allowedNamespaces": allowed}})
}

/// The AWS static identity (cluster-scoped) and its Secret in the system namespace. The Secret carries a
/// last-applied-configuration with its data in clear text, as `kubectl apply` leaves it.
async fn seed_aws_static(mgmt: &Real, identity: &str, secret: &str, key_value: &str) {
    mgmt.seed(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": secret, "namespace": SYS, "labels": {"team": "platform"},
            "annotations": {labels::LAST_APPLIED: format!("{{\"stringData\":{{\"AccessKeyID\":\"{key_value}\"}}}}")}},
        "data": {"AccessKeyID": b64(key_value), "SecretAccessKey": b64("very-secret")}}))
        .await;
    mgmt.seed(aws_static_identity(identity, secret, json!({}))).await;
}

fn credential(
    ns: &str,
    name: &str,
    region: &str,
    api_version: &str,
    kind: &str,
    id_name: &str,
    id_ns: Option<&str>,
) -> Value {
    let mut iref = json!({"apiVersion": api_version, "kind": kind, "name": id_name});
    if let Some(n) = id_ns {
        iref["namespace"] = json!(n);
    }
    json!({"apiVersion": CRED_AV, "kind": "Credential", "metadata": {"name": name, "namespace": ns},
        "spec": {"region": region, "identityRef": iref}})
}

fn cred_api(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: "k0rdent.mirantis.com".into(),
        version: "v1beta1".into(),
        api_version: CRED_AV.into(),
        kind: "Credential".into(),
        plural: "credentials".into(),
    };
    Api::namespaced_with(client.clone(), ns, &ar)
}

/// Creates the Credential (admin, as a user would), then KCM's `status.ready`.
async fn create(mgmt: &Real, obj: &Value) {
    let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap();
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap();
    let dynobj: DynamicObject = serde_json::from_value(obj.clone()).unwrap();
    cred_api(&mgmt.admin, ns).create(&PostParams::default(), &dynobj).await.unwrap();
    mgmt.kcm_reconciled(ns, name).await;
}

async fn delete(client: &kube::Client, ns: &str, name: &str) {
    cred_api(client, ns).delete(name, &DeleteParams::default()).await.unwrap();
}

async fn condition(mgmt: &Real, ns: &str, name: &str) -> Option<Value> {
    let c = mgmt.get(CRED_AV, "Credential", Some(ns), name).await?;
    c.pointer("/status/conditions")?.as_array()?.iter().find(|c| c["type"] == labels::DISTRIBUTED_CONDITION).cloned()
}

async fn wait_condition(mgmt: &Real, ns: &str, name: &str, status: &str) -> Value {
    eventually_async(&format!("{ns}/{name} condition {status}"), WAIT, || async {
        condition(mgmt, ns, name).await.filter(|c| c["status"] == status)
    })
    .await
}

async fn credential_gone(mgmt: &Real, ns: &str, name: &str) {
    eventually_async(&format!("Credential {ns}/{name} gone"), WAIT, || async {
        mgmt.absent(CRED_AV, "Credential", Some(ns), name).await.then_some(())
    })
    .await;
}

fn owners(obj: &Value) -> Vec<String> {
    credential_core::identity::owners_of(obj)
}

async fn secret(c: &Real, ns: &str, name: &str) -> Option<Value> {
    c.get("v1", "Secret", Some(ns), name).await
}

async fn no_secret(c: &Real, ns: &str, name: &str) -> bool {
    c.absent("v1", "Secret", Some(ns), name).await
}

async fn events_for(mgmt: &Real, ns: &str, name: &str) -> Vec<Value> {
    mgmt.list("events.k8s.io/v1", "Event", Some(ns))
        .await
        .into_iter()
        .filter(|e| e.pointer("/regarding/name").and_then(Value::as_str) == Some(name))
        .collect()
}

#[tokio::test]
async fn aws_and_azure_identities_are_copied_sanitised_with_condition_and_events() {
    let w = world(2).await;
    seed_aws_static(&w.mgmt, "aws-id", "aws-secret", "AKIA1").await;
    // Azure: a namespaced identity whose Secret is named by name and namespace paths.
    w.mgmt
        .seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "azure-secret", "namespace": "team"},
            "data": {"clientSecret": b64("azure-secret-value")}}))
        .await;
    w.mgmt
        .seed(json!({"apiVersion": format!("{INFRA}/v1beta1"), "kind": "AzureClusterIdentity",
            "metadata": {"name": "azure-id", "namespace": "team"},
            "spec": {"type": "ServicePrincipal", "clientID": "c", "tenantID": "t",
                "clientSecret": {"name": "azure-secret", "namespace": "team"}}}))
        .await;
    // The documented grant for identity Secrets outside the system namespace.
    w.mgmt.grant_secret_reads("team").await;
    let d = start_distributor(test_config(), &w.sa);
    create(
        &w.mgmt,
        &credential(SYS, "aws-cred", "r1", &format!("{INFRA}/v1beta2"), "AWSClusterStaticIdentity", "aws-id", None),
    )
    .await;
    create(
        &w.mgmt,
        &credential(
            "team",
            "azure-cred",
            "r2",
            &format!("{INFRA}/v1beta1"),
            "AzureClusterIdentity",
            "azure-id",
            Some("team"),
        ),
    )
    .await;

    let c = wait_condition(&w.mgmt, SYS, "aws-cred", "True").await;
    assert_eq!(c["reason"], "Distributed", "{c}");
    let r1 = &w.regions[0];
    let copy = secret(r1, SYS, "aws-secret").await.expect("AWS Secret copied into region r1, system namespace");
    let src = secret(&w.mgmt, SYS, "aws-secret").await.unwrap();
    assert_eq!(copy["data"], src["data"]);
    assert_eq!(copy["metadata"]["labels"][labels::MANAGED], "true");
    assert_eq!(copy["metadata"]["labels"]["team"], "platform");
    assert_eq!(owners(&copy), vec!["kcm-system/aws-cred".to_string()]);
    assert!(!copy.to_string().contains("last-applied-configuration"), "last-applied never copied: {copy}");
    let id =
        r1.get(&format!("{INFRA}/v1beta2"), "AWSClusterStaticIdentity", None, "aws-id").await.expect("identity copied");
    assert_eq!(id["spec"]["secretRef"], "aws-secret");
    assert!(id["metadata"]["annotations"].get("note").is_none(), "source annotations stripped: {id}");
    assert!(no_secret(&w.regions[1], SYS, "aws-secret").await, "nothing in the other region");

    let c = wait_condition(&w.mgmt, "team", "azure-cred", "True").await;
    assert!(c["message"].as_str().unwrap().contains("AzureClusterIdentity team/azure-id"), "{c}");
    let r2 = &w.regions[1];
    let az = r2
        .get(&format!("{INFRA}/v1beta1"), "AzureClusterIdentity", Some("team"), "azure-id")
        .await
        .expect("azure identity");
    assert_eq!(az["spec"]["clientSecret"]["namespace"], "team");
    let az_secret = secret(r2, "team", "azure-secret").await.expect("azure Secret copied to its own namespace");
    assert_eq!(az_secret["data"]["clientSecret"], b64("azure-secret-value"));
    assert!(r2.get("v1", "Namespace", None, "team").await.is_some(), "namespace created as needed");

    // State on the Credential: finalizer, our condition only, Events without Secret contents.
    let cred = w.mgmt.get(CRED_AV, "Credential", Some(SYS), "aws-cred").await.unwrap();
    assert_eq!(cred["metadata"]["finalizers"], json!([labels::DISTRIBUTION_FINALIZER]));
    let evs = eventually_async("two Copied Events on aws-cred", WAIT, || async {
        let evs = events_for(&w.mgmt, SYS, "aws-cred").await;
        (evs.iter().filter(|e| e["reason"] == "Copied").count() >= 2).then_some(evs)
    })
    .await;
    let all = serde_json::to_string(&evs).unwrap() + &serde_json::to_string(&cred).unwrap();
    for secret_text in ["AKIA1", &b64("AKIA1"), "very-secret", &b64("very-secret")] {
        assert!(!all.contains(secret_text), "secret data leaked into events/status");
    }
    assert!(d.metrics().copies_applied.get() >= 4);
    d.shutdown().await;
}

#[tokio::test]
async fn identity_chain_is_followed_and_released_with_the_right_groups() {
    let w = world(1).await;
    w.mgmt
        .seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ctrl-secret", "namespace": SYS},
            "data": {"k": b64("v")}}))
        .await;
    w.mgmt
        .seed(json!({"apiVersion": format!("{INFRA}/v1beta2"), "kind": "AWSClusterControllerIdentity",
            "metadata": {"name": "default"}, "spec": {"secretRef": {"name": "ctrl-secret"}}}))
        .await;
    w.mgmt
        .seed(json!({"apiVersion": format!("{INFRA}/v1beta2"), "kind": "AWSClusterRoleIdentity",
            "metadata": {"name": "role"},
            "spec": {"roleARN": "arn:aws:iam::1:role/x", "sourceIdentityRef": {"kind": "AWSClusterControllerIdentity", "name": "default"}}}))
        .await;
    let d = start_distributor(test_config(), &w.sa);
    create(
        &w.mgmt,
        &credential(SYS, "role-cred", "r1", &format!("{INFRA}/v1beta2"), "AWSClusterRoleIdentity", "role", None),
    )
    .await;
    wait_condition(&w.mgmt, SYS, "role-cred", "True").await;
    let r1 = &w.regions[0];
    let av = format!("{INFRA}/v1beta2");
    assert!(r1.get(&av, "AWSClusterRoleIdentity", None, "role").await.is_some());
    assert!(r1.get(&av, "AWSClusterControllerIdentity", None, "default").await.is_some());
    assert!(secret(r1, SYS, "ctrl-secret").await.is_some(), "the reference's own reference is copied");

    // Release deletes every copy, grouped kinds included (KCM drops the group and gets stuck here).
    delete(&w.client, SYS, "role-cred").await;
    credential_gone(&w.mgmt, SYS, "role-cred").await;
    assert!(r1.absent(&av, "AWSClusterRoleIdentity", None, "role").await);
    assert!(r1.absent(&av, "AWSClusterControllerIdentity", None, "default").await);
    assert!(no_secret(r1, SYS, "ctrl-secret").await);
    assert!(secret(&w.mgmt, SYS, "ctrl-secret").await.is_some(), "sources untouched");
    d.shutdown().await;
}

#[tokio::test]
async fn long_names_conflicts_and_shared_ownership() {
    let w = world(1).await;
    seed_aws_static(&w.mgmt, "aws-id", "aws-secret", "AKIA2").await;
    seed_aws_static(&w.mgmt, "other-id", "taken-secret", "AKIA3").await;
    let r1 = &w.regions[0];
    // Exists in the region without our managed label: must stay untouched.
    let foreign = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "taken-secret", "namespace": SYS,
        "labels": {"owner": "someone-else"}}, "data": {"AccessKeyID": b64("theirs")}});
    r1.seed(foreign).await;
    let before = secret(r1, SYS, "taken-secret").await.unwrap();

    let d = start_distributor(test_config(), &w.sa);
    let long = "a-credential-name-that-is-much-longer-than-forty-one-characters";
    assert!(long.len() > 41);
    let av = format!("{INFRA}/v1beta2");
    create(&w.mgmt, &credential(SYS, long, "r1", &av, "AWSClusterStaticIdentity", "aws-id", None)).await;
    create(&w.mgmt, &credential(SYS, "second", "r1", &av, "AWSClusterStaticIdentity", "aws-id", None)).await;
    create(&w.mgmt, &credential(SYS, "clashing", "r1", &av, "AWSClusterStaticIdentity", "other-id", None)).await;

    wait_condition(&w.mgmt, SYS, long, "True").await;
    wait_condition(&w.mgmt, SYS, "second", "True").await;
    let shared = eventually_async("two owners on the shared Secret", WAIT, || async {
        secret(r1, SYS, "aws-secret").await.filter(|s| owners(s).len() == 2)
    })
    .await;
    assert_eq!(owners(&shared), vec![format!("{SYS}/{long}"), format!("{SYS}/second")]);

    let c = wait_condition(&w.mgmt, SYS, "clashing", "False").await;
    assert_eq!(c["reason"], "Conflict", "{c}");
    assert!(c["message"].as_str().unwrap().contains("Secret kcm-system/taken-secret"), "{c}");
    assert_eq!(secret(r1, SYS, "taken-secret").await.unwrap(), before, "unmanaged object untouched");
    eventually_async("a Conflict Warning Event on clashing", WAIT, || async {
        let evs = events_for(&w.mgmt, SYS, "clashing").await;
        evs.iter().any(|e| e["reason"] == "Conflict" && e["type"] == "Warning").then_some(())
    })
    .await;
    assert!(d.metrics().conflicts.get() >= 1);

    // Deleting one owner keeps the copy; deleting the last removes it.
    delete(&w.client, SYS, long).await;
    credential_gone(&w.mgmt, SYS, long).await;
    let kept = secret(r1, SYS, "aws-secret").await.expect("copy kept for the other owner");
    assert_eq!(owners(&kept), vec![format!("{SYS}/second")]);
    assert!(r1.get(&av, "AWSClusterStaticIdentity", None, "aws-id").await.is_some());
    delete(&w.client, SYS, "second").await;
    eventually_async("last owner released", WAIT, || async { no_secret(r1, SYS, "aws-secret").await.then_some(()) })
        .await;
    assert!(r1.absent(&av, "AWSClusterStaticIdentity", None, "aws-id").await);
    // The conflicting Credential's deletion never touches the foreign object.
    delete(&w.client, SYS, "clashing").await;
    credential_gone(&w.mgmt, SYS, "clashing").await;
    assert_eq!(secret(r1, SYS, "taken-secret").await.unwrap(), before);
    d.shutdown().await;
}

#[tokio::test]
async fn dry_run_copies_nothing_and_rotation_reaches_the_region_fast() {
    let w = world(1).await;
    seed_aws_static(&w.mgmt, "aws-id", "aws-secret", "AKIA4").await;
    seed_aws_static(&w.mgmt, "other-id", "other-secret", "AKIA4b").await;
    let d = start_distributor(test_config(), &w.sa);
    let av = format!("{INFRA}/v1beta2");
    let cred = credential(SYS, "dry", "r1", &av, "AWSClusterStaticIdentity", "aws-id", None);
    let obj: DynamicObject = serde_json::from_value(cred.clone()).unwrap();
    cred_api(&w.client, SYS).create(&PostParams { dry_run: true, ..PostParams::default() }, &obj).await.unwrap();
    // A real Credential created after the dry run converging is the barrier: the dry run gave the
    // watches nothing to see, so by then nothing of it can be on its way.
    create(&w.mgmt, &credential(SYS, "barrier", "r1", &av, "AWSClusterStaticIdentity", "other-id", None)).await;
    wait_condition(&w.mgmt, SYS, "barrier", "True").await;
    let r1 = &w.regions[0];
    assert!(secret(r1, SYS, "other-secret").await.is_some());
    assert!(no_secret(r1, SYS, "aws-secret").await, "dry run copied something");
    assert!(w.mgmt.absent(CRED_AV, "Credential", Some(SYS), "dry").await);

    create(&w.mgmt, &cred).await;
    wait_condition(&w.mgmt, SYS, "dry", "True").await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(w.client.clone(), SYS);
    let mut samples = Vec::new();
    for i in 0..5 {
        let value = b64(&format!("rotated-{i}"));
        let patch = json!({"data": {"AccessKeyID": value}});
        let started = Instant::now();
        secrets.patch("aws-secret", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
        eventually_async("rotated data in the region", Duration::from_secs(20), || async {
            secret(r1, SYS, "aws-secret").await.filter(|s| s["data"]["AccessKeyID"] == value.as_str())
        })
        .await;
        samples.push(started.elapsed());
    }
    samples.sort();
    println!("rotation to region: min {:?} median {:?} max {:?}", samples[0], samples[2], samples[4]);
    assert!(samples[4] < Duration::from_secs(20));
    d.shutdown().await;
}

#[tokio::test]
async fn identity_edits_follow_and_a_changed_kubeconfig_rebuilds_the_client() {
    let w = world(2).await;
    seed_aws_static(&w.mgmt, "aws-id", "aws-secret", "AKIA7").await;
    let d = start_distributor(test_config(), &w.sa);
    let av = format!("{INFRA}/v1beta2");
    create(&w.mgmt, &credential(SYS, "moving", "r1", &av, "AWSClusterStaticIdentity", "aws-id", None)).await;
    wait_condition(&w.mgmt, SYS, "moving", "True").await;
    let (a, b) = (&w.regions[0], &w.regions[1]);
    assert!(secret(a, SYS, "aws-secret").await.is_some());

    // An edit of the source identity (not a Secret) reaches the copy through the metadata watch.
    w.mgmt.seed(aws_static_identity("aws-id", "aws-secret", json!({"list": ["team-a"]}))).await;
    eventually_async("identity edit copied", WAIT, || async {
        a.get(&av, "AWSClusterStaticIdentity", None, "aws-id")
            .await
            .filter(|c| c["spec"]["allowedNamespaces"]["list"] == json!(["team-a"]))
    })
    .await;

    // Region r1's kubeconfig now points at the other cluster: the client is rebuilt, nobody touches the Credential.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(w.client.clone(), SYS);
    let patch = json!({"data": {"value": b64(&b.kubeconfig_yaml())}});
    secrets.patch("r1-kubeconfig", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let copy = eventually_async("copy in the new cluster", WAIT, || async { secret(b, SYS, "aws-secret").await }).await;
    assert_eq!(owners(&copy), vec![format!("{SYS}/moving")]);
    d.shutdown().await;
}

#[tokio::test]
async fn managed_credential_gets_its_identity_in_its_own_namespace() {
    let w = world(0).await;
    w.mgmt.seed_yaml(PROVIDER_INTERFACES).await;
    w.mgmt
        .seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "azure-secret", "namespace": SYS},
            "data": {"clientSecret": b64("s")}}))
        .await;
    let av = format!("{INFRA}/v1beta1");
    w.mgmt
        .seed(
            json!({"apiVersion": av, "kind": "AzureClusterIdentity", "metadata": {"name": "azure-id", "namespace": SYS},
            "spec": {"clientSecret": {"name": "azure-secret", "namespace": SYS}}}),
        )
        .await;
    // The documented opt-in grant where AccessManagement places managed Credentials.
    w.mgmt.grant_managed_copies("team-x").await;
    let d = start_distributor(test_config(), &w.sa);
    // An AccessManagement copy: managed, identityRef.namespace rewritten to the copy's namespace.
    let mut cred = credential("team-x", "copied", "", &av, "AzureClusterIdentity", "azure-id", Some("team-x"));
    cred["spec"].as_object_mut().unwrap().remove("region");
    cred["metadata"]["labels"] = json!({labels::MANAGED: "true"});
    create(&w.mgmt, &cred).await;
    wait_condition(&w.mgmt, "team-x", "copied", "True").await;
    let copy =
        w.mgmt.get(&av, "AzureClusterIdentity", Some("team-x"), "azure-id").await.expect("identity copied into team-x");
    assert_eq!(owners(&copy), vec!["team-x/copied".to_string()]);
    let original = w.mgmt.get(&av, "AzureClusterIdentity", Some(SYS), "azure-id").await.unwrap();
    assert!(
        owners(&original).is_empty() && original["metadata"].get("labels").is_none(),
        "original untouched: {original}"
    );
    // KCM's rule: a reference found through a namespaceFieldPath goes into the Credential's namespace
    // too, and the identity copy points at it there.
    assert_eq!(copy["spec"]["clientSecret"], json!({"name": "azure-secret", "namespace": "team-x"}), "{copy}");
    let secret_copy =
        secret(&w.mgmt, "team-x", "azure-secret").await.expect("the referenced Secret copied into team-x");
    assert_eq!(secret_copy["data"]["clientSecret"], b64("s"));
    assert_eq!(owners(&secret_copy), vec!["team-x/copied".to_string()]);
    // Converging again (what the resync does) keeps the copy: it is not mistaken for its own source.
    let h = d.handle();
    for _ in 0..3 {
        assert!(h.enqueue("team-x", "copied"));
        eventually_async("queue drained", WAIT, || async { (h.pending() == 0).then_some(()) }).await;
        let again = w.mgmt.get(&av, "AzureClusterIdentity", Some("team-x"), "azure-id").await;
        assert!(again.is_some_and(|c| owners(&c) == ["team-x/copied"]), "a re-convergence released the copy");
    }
    let c = condition(&w.mgmt, "team-x", "copied").await.unwrap();
    assert!(
        c["status"] == "True" && c["message"].as_str().unwrap().contains("AzureClusterIdentity team-x/azure-id"),
        "{c}"
    );
    delete(&w.client, "team-x", "copied").await;
    eventually_async("copy released", WAIT, || async {
        w.mgmt.absent(&av, "AzureClusterIdentity", Some("team-x"), "azure-id").await.then_some(())
    })
    .await;
    assert!(no_secret(&w.mgmt, "team-x", "azure-secret").await, "the Secret copy released too");
    assert!(w.mgmt.get(&av, "AzureClusterIdentity", Some(SYS), "azure-id").await.is_some());
    assert!(secret(&w.mgmt, SYS, "azure-secret").await.is_some(), "sources untouched");
    d.shutdown().await;
}

#[tokio::test]
async fn unreachable_region_converges_when_it_starts_and_release_waits_for_it() {
    let w = world(1).await;
    let region = &w.regions[0];
    region.stop().await; // down before anything happens (SIGTERM; etcd data kept)
    seed_aws_static(&w.mgmt, "aws-id", "aws-secret", "AKIA5").await;
    let d = start_distributor(test_config(), &w.sa);
    create(
        &w.mgmt,
        &credential(SYS, "early", "r1", &format!("{INFRA}/v1beta2"), "AWSClusterStaticIdentity", "aws-id", None),
    )
    .await;
    let c = wait_condition(&w.mgmt, SYS, "early", "False").await;
    assert_eq!(c["reason"], "ClusterUnreachable", "{c}");

    // Started later on the same port and etcd data: nobody touches the Credential.
    region.restart().await.unwrap();
    wait_condition(&w.mgmt, SYS, "early", "True").await;
    assert!(secret(region, SYS, "aws-secret").await.is_some());

    // Deleting while the region is frozen (SIGSTOP): the finalizer stays and the condition says why.
    region.pause();
    delete(&w.client, SYS, "early").await;
    let c = eventually_async("ReleasePending", WAIT, || async {
        condition(&w.mgmt, SYS, "early").await.filter(|c| c["reason"] == "ReleasePending")
    })
    .await;
    assert_eq!(c["status"], "False", "{c}");
    assert!(c["message"].as_str().unwrap().contains(labels::DISTRIBUTION_FINALIZER), "{c}");
    let held = w.mgmt.get(CRED_AV, "Credential", Some(SYS), "early").await;
    assert!(held.is_some_and(|c| c["metadata"]["deletionTimestamp"].is_string()), "never silently forgotten");
    region.resume();
    credential_gone(&w.mgmt, SYS, "early").await;
    assert!(no_secret(region, SYS, "aws-secret").await);
    d.shutdown().await;
}

#[tokio::test]
async fn restart_mid_plan_loses_and_duplicates_nothing() {
    let w = world(2).await;
    let av = format!("{INFRA}/v1beta2");
    let n = 30;
    for i in 0..n {
        seed_aws_static(&w.mgmt, &format!("id-{i}"), &format!("s-{}", i % 7), &format!("K{i}")).await;
    }
    let before = request_snapshot(&w).await;
    let d = start_distributor(test_config(), &w.sa);
    for i in 0..n {
        let region = if i % 2 == 0 { "r1" } else { "r2" };
        create(
            &w.mgmt,
            &credential(SYS, &format!("c-{i}"), region, &av, "AWSClusterStaticIdentity", &format!("id-{i}"), None),
        )
        .await;
    }
    // Crash as soon as the first copies land.
    eventually_async("first copy", WAIT, || async {
        let copies = w.regions[0].list("v1", "Secret", Some(SYS)).await.len()
            + w.regions[1].list("v1", "Secret", Some(SYS)).await.len();
        (copies > 0).then_some(())
    })
    .await;
    d.abort();
    let mut done_at_crash = 0;
    for i in 0..n {
        if condition(&w.mgmt, SYS, &format!("c-{i}")).await.is_some_and(|c| c["status"] == "True") {
            done_at_crash += 1;
        }
    }
    println!("crashed with {done_at_crash} of {n} Credentials converged");
    assert!(done_at_crash < n, "the crash must happen mid-way for this test to mean anything");
    let d = start_distributor(test_config(), &w.sa);
    for i in 0..n {
        wait_condition(&w.mgmt, SYS, &format!("c-{i}"), "True").await;
    }
    for (ri, r) in w.regions.iter().enumerate() {
        for s in r.list("v1", "Secret", Some(SYS)).await {
            let o = owners(&s);
            let mut dedup = o.clone();
            dedup.dedup();
            assert_eq!(o, dedup, "owners duplicated: {o:?}");
            let raw = s["metadata"]["annotations"][labels::OWNERS_ANNOTATION].as_str().unwrap();
            assert_eq!(raw.lines().count(), o.len());
            // Every owner is a Credential of this region using this Secret.
            for owner in &o {
                let i: usize = owner.trim_start_matches("kcm-system/c-").parse().unwrap();
                assert_eq!(i % 2, ri, "{owner} owns a copy in the wrong region");
                assert_eq!(s["metadata"]["name"], format!("s-{}", i % 7));
            }
        }
    }
    for i in 0..n {
        let c = w.mgmt.get(CRED_AV, "Credential", Some(SYS), &format!("c-{i}")).await.unwrap();
        assert_eq!(c["metadata"]["finalizers"], json!([labels::DISTRIBUTION_FINALIZER]), "finalizer once");
        let ours = c["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["type"] == labels::DISTRIBUTED_CONDITION)
            .count();
        assert_eq!(ours, 1);
        let region = &w.regions[i % 2];
        let s = secret(region, SYS, &format!("s-{}", i % 7)).await.unwrap();
        assert!(owners(&s).contains(&format!("{SYS}/c-{i}")), "ownership of c-{i} lost");
    }
    let copies = 2 * 7; // each region: the 7 shared Secrets...
    let identities: usize = {
        let mut n_ids = 0;
        for r in &w.regions {
            n_ids += r.list(&av, "AWSClusterStaticIdentity", None).await.len();
        }
        n_ids
    };
    assert_eq!(identities, n, "... and one identity per Credential");
    report_requests("restart_mid_plan", &w, &before, copies + identities).await;
    d.shutdown().await;
}

/// `apiserver_request_total` of every cluster of `w`, by (verb, resource).
type Snapshot = Vec<std::collections::BTreeMap<(String, String), f64>>;

async fn request_snapshot(w: &World) -> Snapshot {
    let mut out = vec![requests_by_verb_resource(&w.mgmt.metrics().await.unwrap())];
    for r in &w.regions {
        out.push(requests_by_verb_resource(&r.metrics().await.unwrap()));
    }
    out
}

/// The API requests made since `before` on each apiserver (its own /metrics), per copied object.
/// Includes the test's own requests (Credential creates, KCM's status writes, the polls).
async fn report_requests(what: &str, w: &World, before: &Snapshot, copies: usize) -> f64 {
    let after = request_snapshot(w).await;
    let delta = |i: usize| -> std::collections::BTreeMap<(String, String), f64> {
        after[i]
            .iter()
            .map(|(k, v)| (k.clone(), v - before[i].get(k).copied().unwrap_or(0.0)))
            .filter(|(_, v)| *v > 0.0)
            .collect()
    };
    let mgmt = delta(0);
    let mut regional = std::collections::BTreeMap::new();
    for i in 1..after.len() {
        for (k, v) in delta(i) {
            *regional.entry(k).or_insert(0.0) += v;
        }
    }
    let (m, r): (f64, f64) = (mgmt.values().sum(), regional.values().sum());
    let per_copy = (m + r) / copies as f64;
    println!("REQUESTS {what}: copies={copies} management={m} regional={r} per_copied_object={per_copy:.2}");
    println!("REQUESTS {what} management by verb/resource: {mgmt:?}");
    println!("REQUESTS {what} regional by verb/resource: {regional:?}");
    per_copy
}

#[tokio::test]
async fn only_the_lease_holder_distributes() {
    let w = world(1).await;
    seed_aws_static(&w.mgmt, "aws-id", "aws-secret", "AKIA6").await;
    let le = LeaderElection {
        namespace: SYS.to_string(),
        lease_duration: Duration::from_secs(2),
        renew_period: Duration::from_millis(300),
        retry_period: Duration::from_millis(200),
        ..LeaderElection::default()
    };
    let cfg = |name: &str| DistributionConfig {
        leader_election: Some(le.clone()),
        instance: name.to_string(),
        ..test_config()
    };
    let a = start_distributor(cfg("replica-a"), &w.sa);
    let b = start_distributor(cfg("replica-b"), &w.sa);
    let (ha, hb) = (a.handle(), b.handle());
    eventually_async("a leader", WAIT, || async { (ha.is_leader() || hb.is_leader()).then_some(()) }).await;
    // The Lease on the server names the leader, and the other replica does not lead (several renewals).
    let leader_name = if ha.is_leader() { "replica-a" } else { "replica-b" };
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(ha.is_leader() ^ hb.is_leader(), "exactly one replica distributes");
    }
    let lease = w.mgmt.get("coordination.k8s.io/v1", "Lease", Some(SYS), &le.name).await.unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], leader_name, "{lease}");
    let (leader, follower, follower_handle) = if ha.is_leader() { (a, b, hb) } else { (b, a, ha) };
    create(
        &w.mgmt,
        &credential(SYS, "led", "r1", &format!("{INFRA}/v1beta2"), "AWSClusterStaticIdentity", "aws-id", None),
    )
    .await;
    wait_condition(&w.mgmt, SYS, "led", "True").await;
    // The leader steps down (releasing the Lease): the other replica takes over.
    leader.shutdown().await;
    eventually_async("takeover", WAIT, || async { follower_handle.is_leader().then_some(()) }).await;
    delete(&w.client, SYS, "led").await;
    eventually_async("released by the new leader", WAIT, || async {
        no_secret(&w.regions[0], SYS, "aws-secret").await.then_some(())
    })
    .await;
    follower.shutdown().await;
}

/// Shipped RBAC on a real apiserver (Secrets readable in the system namespace only), plus what an operator
/// grants in "team": first reads by name only (a Role with `get`), later the documented RoleBinding with
/// list/watch. Secrets are watched in the system namespace and never across all of them; the refused
/// watch in "team" is reported (metric, condition note) and served by the resync until the grant comes.
#[tokio::test]
async fn secrets_are_watched_only_in_namespaces_rbac_grants() {
    let w = world(1).await;
    seed_aws_static(&w.mgmt, "aws-id", "aws-secret", "AKIA8").await;
    w.mgmt
        .seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "azure-secret", "namespace": "team"},
            "data": {"clientSecret": b64("v0")}}))
        .await;
    w.mgmt
        .seed(json!({"apiVersion": format!("{INFRA}/v1beta1"), "kind": "AzureClusterIdentity",
            "metadata": {"name": "azure-id", "namespace": "team"},
            "spec": {"clientSecret": {"name": "azure-secret", "namespace": "team"}}}))
        .await;
    // "team": the operator granted reads by name but not list/watch (no RoleBinding for the watch yet).
    w.mgmt
        .apply(&format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: secret-get, namespace: team}}\n\
             rules: [{{apiGroups: [\"\"], resources: [secrets], verbs: [get]}}]\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: secret-get, namespace: team}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: secret-get}}\n\
             subjects: [{{kind: ServiceAccount, name: {}, namespace: {SYS}}}]\n",
            regional::WEBHOOK_SA
        ))
        .await
        .unwrap();
    let secret_requests = |scope: &'static str, verb: &'static str| {
        let mgmt = &w.mgmt;
        async move { mgmt.request_total(&[("resource", "secrets"), ("scope", scope), ("verb", verb)]).await.unwrap() }
    };
    // Watches are counted in apiserver_request_total only when they end: open ones are in the gauge.
    let open_watches = |scope: &'static str| {
        let mgmt = &w.mgmt;
        async move {
            let text = mgmt.metrics().await.unwrap();
            metric_sum(
                &text,
                "apiserver_longrunning_requests",
                &[("resource", "secrets"), ("scope", scope), ("verb", "WATCH")],
            )
        }
    };
    let cluster_wide_before = secret_requests("cluster", "LIST").await + open_watches("cluster").await;
    let writes_before = secret_requests("namespace", "POST").await + secret_requests("resource", "PATCH").await;
    let watches_before = open_watches("namespace").await;
    let resync = Duration::from_secs(4);
    let d = start_distributor(DistributionConfig { resync_period: resync, ..test_config() }, &w.sa);
    let av = format!("{INFRA}/v1beta2");
    create(&w.mgmt, &credential(SYS, "aws-cred", "r1", &av, "AWSClusterStaticIdentity", "aws-id", None)).await;
    let azure =
        credential("team", "azure-cred", "r1", &format!("{INFRA}/v1beta1"), "AzureClusterIdentity", "azure-id", None);
    create(&w.mgmt, &azure).await;
    wait_condition(&w.mgmt, SYS, "aws-cred", "True").await;
    wait_condition(&w.mgmt, "team", "azure-cred", "True").await;
    let r1 = &w.regions[0];
    assert!(secret(r1, "team", "azure-secret").await.is_some());

    // The refused watch is reported: metric, and a note in the condition naming the grant (still True).
    eventually_async("forbidden watch counted", WAIT, || async {
        (d.metrics().forbidden_watches.get() == 1).then_some(())
    })
    .await;
    let c = eventually_async("condition note", WAIT, || async {
        condition(&w.mgmt, "team", "azure-cred").await.filter(|c| c["message"].as_str().unwrap().contains("forbidden"))
    })
    .await;
    let msg = c["message"].as_str().unwrap();
    assert_eq!(c["status"], "True", "{c}");
    assert!(msg.contains("namespace team") && msg.contains("RoleBinding credential-webhook-secrets in team"), "{msg}");
    let sys_msg = condition(&w.mgmt, SYS, "aws-cred").await.unwrap()["message"].as_str().unwrap().to_string();
    assert!(!sys_msg.contains("forbidden"), "the system namespace is watched: {sys_msg}");
    // The one refused watch is team's: a cluster-wide Secret watch would have been refused too
    // (apiserver_request_total does not count requests RBAC refuses, the distributor's metric does).
    assert_eq!(d.metrics().forbidden_watches.get(), 1, "refused watches besides team's");
    assert!(open_watches("namespace").await > watches_before, "no Secret watch open in {SYS}");

    // Rotation in the system namespace arrives through the watch (well before the 4 s resync, every time).
    let rotate = |ns: &'static str, name: &'static str, key: &'static str, value: String| {
        let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(w.client.clone(), ns);
        async move {
            let patch = json!({"data": {key: b64(&value)}});
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
            let started = Instant::now();
            eventually_async("rotated data in the region", Duration::from_secs(20), || async {
                secret(r1, ns, name).await.filter(|s| s["data"][key] == b64(&value).as_str())
            })
            .await;
            started.elapsed()
        }
    };
    let mut rotations = 0.0;
    for i in 0..3 {
        let took = rotate(SYS, "aws-secret", "AccessKeyID", format!("sys-{i}")).await;
        rotations += 1.0;
        assert!(took < Duration::from_millis(1500), "system-namespace rotation took {took:?}: not watched?");
    }
    // In "team" only the resync notices it (bounded by the resync period plus a convergence).
    let took = rotate("team", "azure-secret", "clientSecret", "team-1".to_string()).await;
    rotations += 1.0;
    assert!(took < resync + Duration::from_secs(3), "resync fallback took {took:?}");

    // The operator adds the documented RoleBinding: the watch recovers (backoff capped at 1 s here), the note goes.
    w.mgmt.grant_secret_reads("team").await;
    eventually_async("watch allowed", WAIT, || async { (d.metrics().forbidden_watches.get() == 0).then_some(()) })
        .await;
    eventually_async("note gone", WAIT, || async {
        condition(&w.mgmt, "team", "azure-cred").await.filter(|c| !c["message"].as_str().unwrap().contains("forbidden"))
    })
    .await;
    for i in 0..3 {
        let took = rotate("team", "azure-secret", "clientSecret", format!("team-w{i}")).await;
        rotations += 1.0;
        assert!(took < Duration::from_millis(1500), "team rotation after the grant took {took:?}");
    }

    // What the apiserver served for Secrets: no list or watch across all namespaces, and no Secret
    // write in the management cluster but the test's own rotations.
    let cluster_wide = secret_requests("cluster", "LIST").await + open_watches("cluster").await;
    assert_eq!(cluster_wide, cluster_wide_before, "cluster-wide Secret list/watch");
    let writes = secret_requests("namespace", "POST").await + secret_requests("resource", "PATCH").await;
    assert_eq!(writes - writes_before, rotations, "Secret writes in the management cluster besides the rotations");
    d.shutdown().await;
}

async fn unreachable_reason(mgmt: &Real, name: &str) -> Option<Value> {
    condition(mgmt, SYS, name).await.filter(|c| c["status"] == "False" && c["reason"] == "ClusterUnreachable")
}

/// One regional API server wedges after the distributor connected (its ProviderInterface list succeeded,
/// so the cluster looks healthy), another accepts TCP and never answers at all (TCP proxies in front of
/// real apiservers: TLS passes through). More Credentials target them than there are workers. The healthy
/// region still converges at once; every Credential of the stuck ones gets ClusterUnreachable within a
/// bounded time, and converges when its region answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_region_does_not_hold_up_the_others() {
    let w = world(2).await;
    let (mgmt, r1, r2) = (&w.mgmt, &w.regions[0], &w.regions[1]);
    let wedge = StallProxy::start(port_of(r2)).await;
    register_region(mgmt, "r2", &kubeconfig_via(r2, &wedge.url())).await;
    let hole = StallProxy::start(port_of(r1)).await;
    hole.stall();
    register_region(mgmt, "r3", &kubeconfig_via(r1, &hole.url())).await;
    seed_aws_static(mgmt, "aws-id", "aws-secret", "AKIA9").await;
    let cfg = DistributionConfig {
        workers: 4,
        per_cluster_concurrency: 2,
        request_timeout: Duration::from_secs(1),
        reconcile_timeout: Duration::from_secs(5),
        cluster_timeout: Duration::from_secs(2),
        ..test_config()
    };
    let d = start_distributor(cfg, &w.sa);
    let av = format!("{INFRA}/v1beta2");
    let cred =
        |name: &str, region: &str| credential(SYS, name, region, &av, "AWSClusterStaticIdentity", "aws-id", None);
    create(&w.mgmt, &cred("before", "r2")).await;
    wait_condition(mgmt, SYS, "before", "True").await;

    wedge.stall();
    let started = Instant::now();
    let stuck: Vec<String> = (0..8).map(|i| format!("r2-{i}")).chain(["r3-0".to_string()]).collect();
    for name in &stuck {
        create(&w.mgmt, &cred(name, if name.starts_with("r2") { "r2" } else { "r3" })).await;
    }
    for i in 0..4 {
        create(&w.mgmt, &cred(&format!("r1-{i}"), "r1")).await;
    }
    for i in 0..4 {
        wait_condition(mgmt, SYS, &format!("r1-{i}"), "True").await;
    }
    let healthy = started.elapsed();
    for name in &stuck {
        let c = eventually_async(&format!("{name} ClusterUnreachable"), WAIT, || unreachable_reason(mgmt, name)).await;
        assert!(c["message"].as_str().unwrap().contains("retrying"), "{c}");
    }
    let unreachable = started.elapsed();
    println!("healthy region converged after {healthy:?}; all stuck Credentials reported after {unreachable:?}");
    assert!(healthy < Duration::from_secs(10), "the healthy region waited on the stuck ones: {healthy:?}");
    assert!(secret(r2, SYS, "aws-secret").await.is_some(), "the copy made before the stall stays");

    // The wedge clears: new connections answer, the stuck Credentials converge.
    wedge.resume();
    for name in stuck.iter().filter(|n| n.starts_with("r2")) {
        wait_condition(mgmt, SYS, name, "True").await;
    }
    assert!(unreachable_reason(mgmt, "r3-0").await.is_some(), "r3 still never answers");
    tokio::time::timeout(Duration::from_secs(15), d.shutdown()).await.expect("shutdown is bounded");
}

/// The leader's management API wedges (requests accepted, never answered; a TCP proxy in front of the
/// real apiserver): it stops distributing at the renew deadline, before its Lease expires, and only then
/// does the other replica take over. Never two leaders at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_lease_renewal_gives_up_leadership_before_the_lease_expires() {
    let w = world(1).await;
    seed_aws_static(&w.mgmt, "aws-id", "aws-secret", "AKIA10").await;
    let le = LeaderElection {
        namespace: SYS.to_string(),
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        renew_period: Duration::from_millis(200),
        retry_period: Duration::from_millis(200),
        ..LeaderElection::default()
    };
    let cfg = |name: &str| DistributionConfig {
        leader_election: Some(le.clone()),
        instance: name.to_string(),
        ..test_config()
    };
    let token = w.mgmt.shipped_webhook_token().await;
    let wedge = StallProxy::start(port_of(&w.mgmt)).await;
    let wedged_client =
        client_from(&w.mgmt.kubeconfig_yaml_for_token(&token).replace(w.mgmt.server(), &wedge.url())).await;
    let a = start_distributor(cfg("replica-a"), &wedged_client);
    let ha = a.handle();
    eventually_async("replica-a leads", WAIT, || async { ha.is_leader().then_some(()) }).await;
    let b = start_distributor(cfg("replica-b"), &w.sa);
    let hb = b.handle();
    // replica-a keeps renewing (the Lease's renewTime moves) while replica-b waits.
    let renew_time = || async {
        let lease = w.mgmt.get("coordination.k8s.io/v1", "Lease", Some(SYS), &le.name).await.unwrap();
        assert_eq!(lease["spec"]["holderIdentity"], "replica-a", "{lease}");
        lease["spec"]["renewTime"].as_str().unwrap().to_string()
    };
    let first = renew_time().await;
    eventually_async("replica-a renews its Lease", WAIT, || async { (renew_time().await != first).then_some(()) })
        .await;
    assert!(ha.is_leader() && !hb.is_leader(), "replica-a renews, replica-b waits");

    wedge.stall();
    let stalled = Instant::now();
    let mut a_stopped: Option<(Instant, Value)> = None;
    let b_started = loop {
        assert!(!(ha.is_leader() && hb.is_leader()), "two leaders at once");
        let now = Instant::now();
        if a_stopped.is_none() && !ha.is_leader() {
            let lease = w.mgmt.get("coordination.k8s.io/v1", "Lease", Some(SYS), &le.name).await.unwrap();
            a_stopped = Some((now, lease));
        }
        if hb.is_leader() {
            break now;
        }
        assert!(stalled.elapsed() < WAIT, "no takeover");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let (a_stopped, held) = a_stopped.expect("replica-a stopped before replica-b started");
    assert!(a_stopped <= b_started);
    // The Lease as replica-a left it: still its own, and it had not expired when replica-a stopped.
    assert_eq!(held["spec"]["holderIdentity"], "replica-a", "{held}");
    let renewed: jiff::Timestamp = held["spec"]["renewTime"].as_str().unwrap().parse().unwrap();
    let expires = renewed + jiff::SignedDuration::from_secs(held["spec"]["leaseDurationSeconds"].as_i64().unwrap());
    let stopped_wall = jiff::Timestamp::now() - jiff::SignedDuration::try_from(a_stopped.elapsed()).unwrap();
    assert!(stopped_wall < expires, "replica-a led until {stopped_wall}, its Lease expired at {expires}");
    println!(
        "replica-a stopped {:?} after the stall, {:?} before its Lease expired; replica-b took over {:?} later",
        a_stopped - stalled,
        expires.duration_since(stopped_wall),
        b_started - a_stopped
    );

    // The new leader distributes.
    create(
        &w.mgmt,
        &credential(SYS, "after", "r1", &format!("{INFRA}/v1beta2"), "AWSClusterStaticIdentity", "aws-id", None),
    )
    .await;
    wait_condition(&w.mgmt, SYS, "after", "True").await;
    assert!(!ha.is_leader());
    tokio::time::timeout(Duration::from_secs(15), a.shutdown()).await.expect("a wedged replica still shuts down");
    b.shutdown().await;
}

/// Regional apiservers of the benchmarks: `BENCH_REGIONS`, default 4.
fn bench_regions() -> usize {
    std::env::var("BENCH_REGIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(4)
}

/// Credentials of the benchmarks: `BENCH_CREDENTIALS`, default 1,000.
fn bench_credentials() -> usize {
    std::env::var("BENCH_CREDENTIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000)
}

/// `total` Credentials `c-<i>` in the system namespace, round-robin over Regions r1..r<regions>, each
/// with its own AWS static identity `id-<i>` and Secret `s-<i>` (key `k` holding `<value>-<i>`), Ready
/// as KCM's reconcile would leave them.
async fn seed_bench_estate(w: &World, total: usize, regions: usize, value: &str) {
    use futures_util::StreamExt as _;
    let av = format!("{INFRA}/v1beta2");
    let seeded = Instant::now();
    futures_util::stream::iter(0..total)
        .map(|i| {
            let av = av.clone();
            async move {
                bench_secret(&w.mgmt, i, value).await;
                w.mgmt
                    .seed(json!({"apiVersion": av, "kind": "AWSClusterStaticIdentity",
                    "metadata": {"name": format!("id-{i}")}, "spec": {"secretRef": format!("s-{i}")}}))
                    .await;
                let mut cred = credential(
                    SYS,
                    &format!("c-{i}"),
                    &format!("r{}", i % regions + 1),
                    &av,
                    "AWSClusterStaticIdentity",
                    &format!("id-{i}"),
                    None,
                );
                cred["status"] = json!({"ready": true}); // KCM's reconcile
                w.mgmt.seed(cred).await;
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    println!("BENCH seeded {total} Credentials with identities and Secrets in {:?}", seeded.elapsed());
}

/// The bench estate's Secret `s-<i>` with `<value>-<i>` under key `k`.
async fn bench_secret(mgmt: &Real, i: usize, value: &str) {
    mgmt.seed(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("s-{i}"), "namespace": SYS}, "data": {"k": b64(&format!("{value}-{i}"))}}))
        .await;
}

/// Copies of the bench estate's Secrets in the regional clusters holding `<value>-<i>`.
async fn bench_copies_holding(w: &World, value: &str) -> usize {
    let mut n = 0;
    for r in &w.regions {
        n += r
            .list("v1", "Secret", Some(SYS))
            .await
            .iter()
            .filter(|s| {
                let name = s["metadata"]["name"].as_str().unwrap_or_default();
                name.strip_prefix("s-").is_some_and(|i| s["data"]["k"] == b64(&format!("{value}-{i}")))
            })
            .count();
    }
    n
}

/// Management Credentials of the bench estate whose distribution condition is True with `reason`.
async fn bench_condition_count(w: &World, reason: &str) -> usize {
    let creds = w.mgmt.list(CRED_AV, "Credential", Some(SYS)).await;
    creds
        .iter()
        .filter(|c| {
            c.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["type"] == labels::DISTRIBUTED_CONDITION && c["status"] == "True" && c["reason"] == reason
                })
            })
        })
        .count()
}

/// Polls `count` every second until it reaches `want`; the time it took, from `since`.
async fn bench_until(what: &str, since: Instant, want: usize, mut count: impl AsyncFnMut() -> usize) -> Duration {
    loop {
        let n = count().await;
        if n >= want {
            return since.elapsed();
        }
        assert!(since.elapsed() < Duration::from_secs(900), "{what}: {n} of {want} after 900 s");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Every source Secret rotated at once (16 writes in flight); the time until every copy holds the new value.
async fn bench_rotate_all(w: &World, total: usize, value: &str) -> Duration {
    use futures_util::StreamExt as _;
    let started = Instant::now();
    futures_util::stream::iter(0..total)
        .map(|i| bench_secret(&w.mgmt, i, value))
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    println!("BENCH rotated {total} source Secrets in {:?}", started.elapsed());
    bench_until("copies rotated", started, total, async || bench_copies_holding(w, value).await).await
}

/// Resource requests the KCM stand-in has made (reads and writes).
fn stand_in_requests(kcm: &KcmStandIn) -> f64 {
    kcm.reads() + kcm.writes().values().sum::<f64>()
}

/// 1,000 Credentials over `BENCH_REGIONS` (default 4) regional apiservers, write mode: time to converge
/// and API requests per copied object (the apiservers' own `apiserver_request_total`), then every source
/// Secret rotated at once: time until every copy holds the new value.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run explicitly (see the module docs)"]
async fn bench_thousand_credentials_over_ten_regions() {
    let (regions, total) = (bench_regions(), bench_credentials());
    let w = world(regions).await;
    seed_bench_estate(&w, total, regions, "v").await;
    let before = request_snapshot(&w).await;
    let cfg = DistributionConfig { workers: 32, per_cluster_concurrency: 8, ..test_config() };
    let started = Instant::now();
    let d = start_distributor(cfg, &w.sa);
    // Polled every second with one LIST (counted below as the test's own requests).
    let elapsed =
        bench_until("converged", started, total, async || bench_condition_count(&w, "Distributed").await).await;
    let mut copies = 0;
    for r in &w.regions {
        copies += r.list("v1", "Secret", Some(SYS)).await.len()
            + r.list(&format!("{INFRA}/v1beta2"), "AWSClusterStaticIdentity", None).await.len();
    }
    assert_eq!(copies, 2 * total);
    println!("BENCH write mode: credentials={total} regions={regions} copies={copies} converge={elapsed:?}");
    let (count, sum) = d.metrics().convergence_totals();
    println!("BENCH reconciles={count} mean={:.1} ms", sum / count.max(1.0) * 1000.0);
    let per_copy = report_requests("write mode, converge", &w, &before, copies).await;
    assert!(per_copy < 10.0, "requests per copied object must stay bounded: {per_copy}");
    let before = request_snapshot(&w).await;
    let rotated = bench_rotate_all(&w, total, "w").await;
    println!("BENCH write mode: {total} sources rotated at once -> every copy rotated in {rotated:?}");
    report_requests("write mode, rotation", &w, &before, total).await;
    d.shutdown().await;
}

/// The same estate in trigger mode next to KCM 1.5 (the test's KCM stand-in, `support/kcm.rs`, writes
/// the copies; it copied everything before we start, as KCM would have): time until every Credential
/// is verified InSync, our API requests, then every source rotated at once: time until every
/// Credential carries the new trigger digest (our part) and until every copy holds the new value (the
/// stand-in's part, which is not KCM's speed).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run explicitly (see the module docs)"]
async fn bench_thousand_credentials_trigger_mode() {
    use credential_core::distribution::{Mode, ModeSetting};
    use credential_webhook::distribution::{DistributionMetrics, ModeControl};
    let (regions, total) = (bench_regions(), bench_credentials());
    let w = world(regions).await;
    set_kcm(&w.mgmt, "1.5.0").await;
    seed_bench_estate(&w, total, regions, "v").await;
    let region_admins = (1..=regions).map(|i| (format!("r{i}"), w.regions[i - 1].admin.clone())).collect();
    let before = request_snapshot(&w).await;
    let kcm = KcmStandIn::start(w.client.clone(), region_admins, SYS);
    let t =
        bench_until("KCM stand-in copied", Instant::now(), total, async || bench_copies_holding(&w, "v").await).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("BENCH KCM stand-in copied {total} Credentials' Secrets in {t:?}");
    // Checks the stand-in's own count against the apiservers' (only it and the polls run here).
    report_requests("KCM stand-in alone (and the test's polls)", &w, &before, 2 * total).await;
    println!("BENCH the KCM stand-in counted {} requests in {} reconciles", stand_in_requests(&kcm), kcm.reconciles());

    let before = request_snapshot(&w).await;
    let kcm_before = stand_in_requests(&kcm);
    let stop = tokio_util::sync::CancellationToken::new();
    let metrics = DistributionMetrics::default();
    let started = Instant::now();
    let control = ModeControl::start(&w.sa, ModeSetting::Auto, false, metrics.clone()).await.unwrap();
    let watches = credential_webhook::informer::ClusterWatches::new(
        "management",
        w.sa.clone(),
        Backoff::new(Duration::from_millis(200), Duration::from_secs(2)),
    );
    control.watch(&watches, stop.clone());
    assert_eq!(control.current().mode(), Mode::Trigger);
    let cfg = DistributionConfig {
        mode: control.handle(),
        workers: 32,
        per_cluster_concurrency: 8,
        // The shipped --verify-interval: copies not in sync are re-read this often besides their watch events.
        verify_interval: Duration::from_secs(60),
        ..test_config()
    };
    let d = Distributor::start_with_metrics(cfg, w.sa.clone(), metrics);
    let elapsed = bench_until("verified", started, total, async || bench_condition_count(&w, "InSync").await).await;
    println!("BENCH trigger mode: credentials={total} regions={regions} every Credential InSync in {elapsed:?}");
    let stand_in = stand_in_requests(&kcm) - kcm_before;
    let all = report_requests("trigger mode, verify (the stand-in's included)", &w, &before, 2 * total).await;
    println!(
        "BENCH trigger mode, verify: the KCM stand-in made {stand_in} requests; ours per copied object: {:.2}",
        all - stand_in / (2 * total) as f64
    );

    let digests = async || -> BTreeMap<String, String> {
        w.mgmt
            .list(CRED_AV, "Credential", Some(SYS))
            .await
            .iter()
            .filter_map(|c| {
                let digest = c["metadata"]["annotations"][labels::TRIGGER_ANNOTATION].as_str()?;
                Some((c["metadata"]["name"].as_str()?.to_string(), digest.to_string()))
            })
            .collect()
    };
    let old = digests().await;
    assert_eq!(old.len(), total, "every Credential carries a trigger digest");
    let before = request_snapshot(&w).await;
    let kcm_before = stand_in_requests(&kcm);
    // Both clocks start at the first source write.
    let rotation = Instant::now();
    let annotated = bench_until("re-annotated", rotation, total, async || {
        digests().await.iter().filter(|(n, d)| old.get(*n) != Some(*d)).count()
    });
    let (annotated, copied) = tokio::join!(annotated, bench_rotate_all(&w, total, "t"));
    println!("BENCH trigger mode: {total} sources rotated at once -> every Credential re-annotated in {annotated:?}");
    println!("BENCH trigger mode: {total} sources rotated at once -> every copy rotated (stand-in) in {copied:?}");
    let stand_in = stand_in_requests(&kcm) - kcm_before;
    let all = report_requests("trigger mode, rotation (the stand-in's included)", &w, &before, total).await;
    println!(
        "BENCH trigger mode, rotation: the KCM stand-in made {stand_in} requests ({} reconciles); ours per rotated source: {:.2}",
        kcm.reconciles(),
        all - stand_in / total as f64
    );
    d.shutdown().await;
    stop.cancel();
}
