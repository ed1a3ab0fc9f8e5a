//! End-to-end tests of cluster identity distribution: one management and two regional emulators, the
//! distributor running in-process against them with kube clients built from the emulators' kubeconfigs.
//!
//! The benchmark (1,000 Credentials over 10 regional emulators) is `#[ignore]`d; run it with
//! `cargo test -p credential-e2e --release --test distribution_e2e -- --ignored --nocapture bench_`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use credential_core::model::labels;
use credential_e2e::Emulator;
use credential_webhook::distribution::{Backoff, DistributionConfig, Distributor, LeaderElection};
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

const SYS: &str = "kcm-system";
const CRED_AV: &str = "k0rdent.mirantis.com/v1beta1";
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

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn client_for(emu: &Emulator) -> kube::Client {
    let kc = Kubeconfig::from_yaml(&emu.kubeconfig_yaml()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.unwrap();
    kube::Client::try_from(cfg).unwrap()
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
    mgmt: Emulator,
    regions: Vec<Emulator>,
    client: kube::Client,
}

/// Stores Region `name` (Ready) and its kubeconfig Secret pointing at `kubeconfig`.
fn register_region(mgmt: &Emulator, name: &str, kubeconfig: &str) {
    mgmt.seed(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("{name}-kubeconfig"), "namespace": SYS},
        "data": {"value": b64(kubeconfig)}}))
        .unwrap();
    mgmt.seed(json!({"apiVersion": CRED_AV, "kind": "Region", "metadata": {"name": name},
        "spec": {"kubeConfig": {"name": format!("{name}-kubeconfig"), "key": "value"}},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "AllComponentsHealthy",
            "message": "All components are successfully installed", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}))
        .unwrap();
}

async fn regional_emulator() -> Emulator {
    let r = Emulator::builder().crds(true).start().await.unwrap();
    r.seed_yaml(PROVIDER_INTERFACES).unwrap();
    r
}

async fn world(regions: usize) -> World {
    let mgmt = Emulator::builder().crds(true).start().await.unwrap();
    let mut rs = Vec::new();
    for i in 0..regions {
        let r = regional_emulator().await;
        register_region(&mgmt, &format!("r{}", i + 1), &r.kubeconfig_yaml());
        rs.push(r);
    }
    let client = client_for(&mgmt).await;
    World { mgmt, regions: rs, client }
}

/// The AWS static identity (cluster-scoped) and its Secret in the system namespace. The Secret carries a
/// last-applied-configuration with its data in clear text, as `kubectl apply` leaves it.
fn seed_aws_static(mgmt: &Emulator, identity: &str, secret: &str, key_value: &str) {
    mgmt.seed(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": secret, "namespace": SYS, "labels": {"team": "platform"},
            "annotations": {labels::LAST_APPLIED: format!("{{\"stringData\":{{\"AccessKeyID\":\"{key_value}\"}}}}")}},
        "data": {"AccessKeyID": b64(key_value), "SecretAccessKey": b64("very-secret")}}))
        .unwrap();
    mgmt.seed(json!({"apiVersion": format!("{INFRA}/v1beta2"), "kind": "AWSClusterStaticIdentity",
        "metadata": {"name": identity, "annotations": {"note": "source annotation"}},
        "spec": {"secretRef": secret, "allowedNamespaces": {}}}))
        .unwrap();
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

async fn create(client: &kube::Client, obj: &Value) {
    let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap();
    let dynobj: DynamicObject = serde_json::from_value(obj.clone()).unwrap();
    cred_api(client, ns).create(&PostParams::default(), &dynobj).await.unwrap();
}

async fn delete(client: &kube::Client, ns: &str, name: &str) {
    cred_api(client, ns).delete(name, &DeleteParams::default()).await.unwrap();
}

/// Polls `f` every 20 ms until it returns `Some`, or panics naming `what` after `timeout`.
async fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const WAIT: Duration = Duration::from_secs(20);

fn condition(mgmt: &Emulator, ns: &str, name: &str) -> Option<Value> {
    let c = mgmt.get(CRED_AV, "Credential", Some(ns), name)?;
    c.pointer("/status/conditions")?.as_array()?.iter().find(|c| c["type"] == labels::DISTRIBUTED_CONDITION).cloned()
}

async fn wait_condition(mgmt: &Emulator, ns: &str, name: &str, status: &str) -> Value {
    eventually(&format!("{ns}/{name} condition {status}"), WAIT, || {
        condition(mgmt, ns, name).filter(|c| c["status"] == status)
    })
    .await
}

fn owners(obj: &Value) -> Vec<String> {
    credential_core::identity::owners_of(obj)
}

fn secret(emu: &Emulator, ns: &str, name: &str) -> Option<Value> {
    emu.get("v1", "Secret", Some(ns), name)
}

fn events_for(mgmt: &Emulator, ns: &str, name: &str) -> Vec<Value> {
    mgmt.list("events.k8s.io/v1", "Event", Some(ns))
        .into_iter()
        .filter(|e| e.pointer("/regarding/name").and_then(Value::as_str) == Some(name))
        .collect()
}

#[tokio::test]
async fn aws_and_azure_identities_are_copied_sanitised_with_condition_and_events() {
    let w = world(2).await;
    seed_aws_static(&w.mgmt, "aws-id", "aws-secret", "AKIA1");
    // Azure: a namespaced identity whose Secret is named by name and namespace paths.
    w.mgmt
        .seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "azure-secret", "namespace": "team"},
            "data": {"clientSecret": b64("azure-secret-value")}}))
        .unwrap();
    w.mgmt
        .seed(json!({"apiVersion": format!("{INFRA}/v1beta1"), "kind": "AzureClusterIdentity",
            "metadata": {"name": "azure-id", "namespace": "team"},
            "spec": {"type": "ServicePrincipal", "clientID": "c", "tenantID": "t",
                "clientSecret": {"name": "azure-secret", "namespace": "team"}}}))
        .unwrap();
    let d = Distributor::start(test_config(), w.client.clone());
    create(
        &w.client,
        &credential(SYS, "aws-cred", "r1", &format!("{INFRA}/v1beta2"), "AWSClusterStaticIdentity", "aws-id", None),
    )
    .await;
    create(
        &w.client,
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
    let copy = secret(r1, SYS, "aws-secret").expect("AWS Secret copied into region r1, system namespace");
    let src = secret(&w.mgmt, SYS, "aws-secret").unwrap();
    assert_eq!(copy["data"], src["data"]);
    assert_eq!(copy["metadata"]["labels"][labels::MANAGED], "true");
    assert_eq!(copy["metadata"]["labels"]["team"], "platform");
    assert_eq!(owners(&copy), vec!["kcm-system/aws-cred".to_string()]);
    assert!(!copy.to_string().contains("last-applied-configuration"), "last-applied never copied: {copy}");
    let id = r1.get(&format!("{INFRA}/v1beta2"), "AWSClusterStaticIdentity", None, "aws-id").expect("identity copied");
    assert_eq!(id["spec"]["secretRef"], "aws-secret");
    assert!(id["metadata"]["annotations"].get("note").is_none(), "source annotations stripped: {id}");
    assert!(secret(&w.regions[1], SYS, "aws-secret").is_none(), "nothing in the other region");

    let c = wait_condition(&w.mgmt, "team", "azure-cred", "True").await;
    assert!(c["message"].as_str().unwrap().contains("AzureClusterIdentity team/azure-id"), "{c}");
    let r2 = &w.regions[1];
    let az =
        r2.get(&format!("{INFRA}/v1beta1"), "AzureClusterIdentity", Some("team"), "azure-id").expect("azure identity");
    assert_eq!(az["spec"]["clientSecret"]["namespace"], "team");
    let az_secret = secret(r2, "team", "azure-secret").expect("azure Secret copied to its own namespace");
    assert_eq!(az_secret["data"]["clientSecret"], b64("azure-secret-value"));
    assert!(r2.get("v1", "Namespace", None, "team").is_some(), "namespace created as needed");

    // State on the Credential: finalizer, our condition only, Events without Secret contents.
    let cred = w.mgmt.get(CRED_AV, "Credential", Some(SYS), "aws-cred").unwrap();
    assert_eq!(cred["metadata"]["finalizers"], json!([labels::DISTRIBUTION_FINALIZER]));
    let evs = events_for(&w.mgmt, SYS, "aws-cred");
    assert!(evs.iter().filter(|e| e["reason"] == "Copied").count() >= 2, "{evs:?}");
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
        .unwrap();
    w.mgmt
        .seed(json!({"apiVersion": format!("{INFRA}/v1beta2"), "kind": "AWSClusterControllerIdentity",
            "metadata": {"name": "default"}, "spec": {"secretRef": {"name": "ctrl-secret"}}}))
        .unwrap();
    w.mgmt
        .seed(json!({"apiVersion": format!("{INFRA}/v1beta2"), "kind": "AWSClusterRoleIdentity",
            "metadata": {"name": "role"},
            "spec": {"roleARN": "arn:aws:iam::1:role/x", "sourceIdentityRef": {"kind": "AWSClusterControllerIdentity", "name": "default"}}}))
        .unwrap();
    let d = Distributor::start(test_config(), w.client.clone());
    create(
        &w.client,
        &credential(SYS, "role-cred", "r1", &format!("{INFRA}/v1beta2"), "AWSClusterRoleIdentity", "role", None),
    )
    .await;
    wait_condition(&w.mgmt, SYS, "role-cred", "True").await;
    let r1 = &w.regions[0];
    let av = format!("{INFRA}/v1beta2");
    assert!(r1.get(&av, "AWSClusterRoleIdentity", None, "role").is_some());
    assert!(r1.get(&av, "AWSClusterControllerIdentity", None, "default").is_some());
    assert!(secret(r1, SYS, "ctrl-secret").is_some(), "the reference's own reference is copied");

    // Release deletes every copy, grouped kinds included (KCM drops the group and gets stuck here).
    delete(&w.client, SYS, "role-cred").await;
    eventually("Credential gone", WAIT, || {
        w.mgmt.get(CRED_AV, "Credential", Some(SYS), "role-cred").is_none().then_some(())
    })
    .await;
    assert!(r1.get(&av, "AWSClusterRoleIdentity", None, "role").is_none());
    assert!(r1.get(&av, "AWSClusterControllerIdentity", None, "default").is_none());
    assert!(secret(r1, SYS, "ctrl-secret").is_none());
    assert!(secret(&w.mgmt, SYS, "ctrl-secret").is_some(), "sources untouched");
    d.shutdown().await;
}

#[tokio::test]
async fn long_names_conflicts_and_shared_ownership() {
    let w = world(1).await;
    seed_aws_static(&w.mgmt, "aws-id", "aws-secret", "AKIA2");
    seed_aws_static(&w.mgmt, "other-id", "taken-secret", "AKIA3");
    let r1 = &w.regions[0];
    // Exists in the region without our managed label: must stay untouched.
    let foreign = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "taken-secret", "namespace": SYS,
        "labels": {"owner": "someone-else"}}, "data": {"AccessKeyID": b64("theirs")}});
    r1.seed(foreign).unwrap();
    let before = secret(r1, SYS, "taken-secret").unwrap();

    let d = Distributor::start(test_config(), w.client.clone());
    let long = "a-credential-name-that-is-much-longer-than-forty-one-characters";
    assert!(long.len() > 41);
    let av = format!("{INFRA}/v1beta2");
    create(&w.client, &credential(SYS, long, "r1", &av, "AWSClusterStaticIdentity", "aws-id", None)).await;
    create(&w.client, &credential(SYS, "second", "r1", &av, "AWSClusterStaticIdentity", "aws-id", None)).await;
    create(&w.client, &credential(SYS, "clashing", "r1", &av, "AWSClusterStaticIdentity", "other-id", None)).await;

    wait_condition(&w.mgmt, SYS, long, "True").await;
    wait_condition(&w.mgmt, SYS, "second", "True").await;
    let shared = eventually("two owners on the shared Secret", WAIT, || {
        secret(r1, SYS, "aws-secret").filter(|s| owners(s).len() == 2)
    })
    .await;
    assert_eq!(owners(&shared), vec![format!("{SYS}/{long}"), format!("{SYS}/second")]);

    let c = wait_condition(&w.mgmt, SYS, "clashing", "False").await;
    assert_eq!(c["reason"], "Conflict", "{c}");
    assert!(c["message"].as_str().unwrap().contains("Secret kcm-system/taken-secret"), "{c}");
    assert_eq!(secret(r1, SYS, "taken-secret").unwrap(), before, "unmanaged object untouched");
    assert!(events_for(&w.mgmt, SYS, "clashing").iter().any(|e| e["reason"] == "Conflict" && e["type"] == "Warning"));
    assert!(d.metrics().conflicts.get() >= 1);

    // Deleting one owner keeps the copy; deleting the last removes it.
    delete(&w.client, SYS, long).await;
    eventually("long Credential released", WAIT, || {
        w.mgmt.get(CRED_AV, "Credential", Some(SYS), long).is_none().then_some(())
    })
    .await;
    let kept = secret(r1, SYS, "aws-secret").expect("copy kept for the other owner");
    assert_eq!(owners(&kept), vec![format!("{SYS}/second")]);
    assert!(r1.get(&av, "AWSClusterStaticIdentity", None, "aws-id").is_some());
    delete(&w.client, SYS, "second").await;
    eventually("last owner released", WAIT, || secret(r1, SYS, "aws-secret").is_none().then_some(())).await;
    assert!(r1.get(&av, "AWSClusterStaticIdentity", None, "aws-id").is_none());
    // The conflicting Credential's deletion never touches the foreign object.
    delete(&w.client, SYS, "clashing").await;
    eventually("clashing released", WAIT, || {
        w.mgmt.get(CRED_AV, "Credential", Some(SYS), "clashing").is_none().then_some(())
    })
    .await;
    assert_eq!(secret(r1, SYS, "taken-secret").unwrap(), before);
    d.shutdown().await;
}

#[tokio::test]
async fn dry_run_copies_nothing_and_rotation_reaches_the_region_fast() {
    let w = world(1).await;
    seed_aws_static(&w.mgmt, "aws-id", "aws-secret", "AKIA4");
    let d = Distributor::start(test_config(), w.client.clone());
    let cred = credential(SYS, "dry", "r1", &format!("{INFRA}/v1beta2"), "AWSClusterStaticIdentity", "aws-id", None);
    let obj: DynamicObject = serde_json::from_value(cred.clone()).unwrap();
    cred_api(&w.client, SYS).create(&PostParams { dry_run: true, ..PostParams::default() }, &obj).await.unwrap();
    // The admission hook point is told about non-dry-run changes only; give the watches time anyway.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r1 = &w.regions[0];
    assert!(secret(r1, SYS, "aws-secret").is_none(), "dry run copied something");
    assert!(w.mgmt.get(CRED_AV, "Credential", Some(SYS), "dry").is_none());

    create(&w.client, &cred).await;
    wait_condition(&w.mgmt, SYS, "dry", "True").await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(w.client.clone(), SYS);
    let mut samples = Vec::new();
    for i in 0..5 {
        let value = b64(&format!("rotated-{i}"));
        let patch = json!({"data": {"AccessKeyID": value}});
        let started = Instant::now();
        secrets
            .patch("aws-secret", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
            .await
            .unwrap();
        eventually("rotated data in the region", Duration::from_secs(20), || {
            secret(r1, SYS, "aws-secret").filter(|s| s["data"]["AccessKeyID"] == value.as_str())
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
    seed_aws_static(&w.mgmt, "aws-id", "aws-secret", "AKIA7");
    let d = Distributor::start(test_config(), w.client.clone());
    let av = format!("{INFRA}/v1beta2");
    create(&w.client, &credential(SYS, "moving", "r1", &av, "AWSClusterStaticIdentity", "aws-id", None)).await;
    wait_condition(&w.mgmt, SYS, "moving", "True").await;
    let (a, b) = (&w.regions[0], &w.regions[1]);
    assert!(secret(a, SYS, "aws-secret").is_some());

    // An edit of the source identity (not a Secret) reaches the copy through the metadata watch.
    let mut id = w.mgmt.get(&av, "AWSClusterStaticIdentity", None, "aws-id").unwrap();
    id["spec"]["allowedNamespaces"] = json!({"list": ["team-a"]});
    w.mgmt.seed(id).unwrap();
    eventually("identity edit copied", WAIT, || {
        a.get(&av, "AWSClusterStaticIdentity", None, "aws-id")
            .filter(|c| c["spec"]["allowedNamespaces"]["list"] == json!(["team-a"]))
    })
    .await;

    // Region r1's kubeconfig now points at the other cluster: the client is rebuilt, nobody touches the Credential.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(w.client.clone(), SYS);
    let patch = json!({"data": {"value": b64(&b.kubeconfig_yaml())}});
    secrets.patch("r1-kubeconfig", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    let copy = eventually("copy in the new cluster", WAIT, || secret(b, SYS, "aws-secret")).await;
    assert_eq!(owners(&copy), vec![format!("{SYS}/moving")]);
    d.shutdown().await;
}

#[tokio::test]
async fn managed_credential_gets_its_identity_in_its_own_namespace() {
    let w = world(0).await;
    w.mgmt.seed_yaml(PROVIDER_INTERFACES).unwrap();
    w.mgmt
        .seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "azure-secret", "namespace": SYS},
            "data": {"clientSecret": b64("s")}}))
        .unwrap();
    let av = format!("{INFRA}/v1beta1");
    w.mgmt
        .seed(
            json!({"apiVersion": av, "kind": "AzureClusterIdentity", "metadata": {"name": "azure-id", "namespace": SYS},
            "spec": {"clientSecret": {"name": "azure-secret", "namespace": SYS}}}),
        )
        .unwrap();
    let d = Distributor::start(test_config(), w.client.clone());
    // An AccessManagement copy: managed, identityRef.namespace rewritten to the copy's namespace.
    let mut cred = credential("team-x", "copied", "", &av, "AzureClusterIdentity", "azure-id", Some("team-x"));
    cred["spec"].as_object_mut().unwrap().remove("region");
    cred["metadata"]["labels"] = json!({labels::MANAGED: "true"});
    w.mgmt.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-x"}})).unwrap();
    create(&w.client, &cred).await;
    wait_condition(&w.mgmt, "team-x", "copied", "True").await;
    let copy =
        w.mgmt.get(&av, "AzureClusterIdentity", Some("team-x"), "azure-id").expect("identity copied into team-x");
    assert_eq!(owners(&copy), vec!["team-x/copied".to_string()]);
    let original = w.mgmt.get(&av, "AzureClusterIdentity", Some(SYS), "azure-id").unwrap();
    assert!(
        owners(&original).is_empty() && original["metadata"].get("labels").is_none(),
        "original untouched: {original}"
    );
    // KCM's rule: the Secret named through namespaceFieldPath moves with the identity into team-x,
    // and the identity copy points at it there.
    assert!(secret(&w.mgmt, "team-x", "azure-secret").is_some(), "the referenced Secret copied into team-x");
    assert_eq!(copy["spec"]["clientSecret"]["namespace"], "team-x", "the copy points at the Secret's copy");
    // Converging again (what the resync does) keeps the copy: it is not mistaken for its own source.
    let h = d.handle();
    for _ in 0..3 {
        assert!(h.enqueue("team-x", "copied"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        eventually("queue drained", WAIT, || (h.pending() == 0).then_some(())).await;
        let again = w.mgmt.get(&av, "AzureClusterIdentity", Some("team-x"), "azure-id");
        assert!(again.is_some_and(|c| owners(&c) == ["team-x/copied"]), "a re-convergence released the copy");
    }
    let c = condition(&w.mgmt, "team-x", "copied").unwrap();
    assert!(
        c["status"] == "True" && c["message"].as_str().unwrap().contains("AzureClusterIdentity team-x/azure-id"),
        "{c}"
    );
    delete(&w.client, "team-x", "copied").await;
    eventually("copy released", WAIT, || {
        w.mgmt.get(&av, "AzureClusterIdentity", Some("team-x"), "azure-id").is_none().then_some(())
    })
    .await;
    assert!(w.mgmt.get(&av, "AzureClusterIdentity", Some(SYS), "azure-id").is_some());
    d.shutdown().await;
}

#[tokio::test]
async fn unreachable_region_converges_when_it_starts_and_release_waits_for_it() {
    let mgmt = Emulator::builder().crds(true).start().await.unwrap();
    let region = regional_emulator().await;
    let port = region.port();
    register_region(&mgmt, "r1", &region.kubeconfig_yaml());
    let state = region.stop().await; // down before anything happens
    seed_aws_static(&mgmt, "aws-id", "aws-secret", "AKIA5");
    let client = client_for(&mgmt).await;
    let d = Distributor::start(test_config(), client.clone());
    create(
        &client,
        &credential(SYS, "early", "r1", &format!("{INFRA}/v1beta2"), "AWSClusterStaticIdentity", "aws-id", None),
    )
    .await;
    let c = wait_condition(&mgmt, SYS, "early", "False").await;
    assert_eq!(c["reason"], "ClusterUnreachable", "{c}");

    // Started later: nobody touches the Credential.
    let mut region = Emulator::start_on(port, state).await.unwrap();
    wait_condition(&mgmt, SYS, "early", "True").await;
    assert!(secret(&region, SYS, "aws-secret").is_some());

    // Deleting while the region is down: the finalizer stays and the condition says why.
    region.pause().await;
    delete(&client, SYS, "early").await;
    let c = wait_condition(&mgmt, SYS, "early", "False").await;
    let c = if c["reason"] == "ReleasePending" {
        c
    } else {
        eventually("ReleasePending", WAIT, || {
            condition(&mgmt, SYS, "early").filter(|c| c["reason"] == "ReleasePending")
        })
        .await
    };
    assert!(c["message"].as_str().unwrap().contains(labels::DISTRIBUTION_FINALIZER), "{c}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(mgmt.get(CRED_AV, "Credential", Some(SYS), "early").is_some(), "never silently forgotten");
    region.resume().await.unwrap();
    eventually("released after the region came back", WAIT, || {
        mgmt.get(CRED_AV, "Credential", Some(SYS), "early").is_none().then_some(())
    })
    .await;
    assert!(secret(&region, SYS, "aws-secret").is_none());
    d.shutdown().await;
}

#[tokio::test]
async fn restart_mid_plan_loses_and_duplicates_nothing() {
    let w = world(2).await;
    let av = format!("{INFRA}/v1beta2");
    let n = 30;
    for i in 0..n {
        seed_aws_static(&w.mgmt, &format!("id-{i}"), &format!("s-{}", i % 7), &format!("K{i}"));
    }
    let d = Distributor::start(test_config(), w.client.clone());
    for i in 0..n {
        let region = if i % 2 == 0 { "r1" } else { "r2" };
        create(
            &w.client,
            &credential(SYS, &format!("c-{i}"), region, &av, "AWSClusterStaticIdentity", &format!("id-{i}"), None),
        )
        .await;
    }
    // Crash as soon as the first copies land.
    eventually("first copy", WAIT, || {
        (w.regions[0].list("v1", "Secret", Some(SYS)).len() + w.regions[1].list("v1", "Secret", Some(SYS)).len() > 0)
            .then_some(())
    })
    .await;
    d.abort();
    let done_at_crash =
        (0..n).filter(|i| condition(&w.mgmt, SYS, &format!("c-{i}")).is_some_and(|c| c["status"] == "True")).count();
    println!("crashed with {done_at_crash} of {n} Credentials converged");
    assert!(done_at_crash < n, "the crash must happen mid-way for this test to mean anything");
    let d = Distributor::start(test_config(), w.client.clone());
    for i in 0..n {
        wait_condition(&w.mgmt, SYS, &format!("c-{i}"), "True").await;
    }
    for (ri, r) in w.regions.iter().enumerate() {
        for s in r.list("v1", "Secret", Some(SYS)) {
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
        let c = w.mgmt.get(CRED_AV, "Credential", Some(SYS), &format!("c-{i}")).unwrap();
        assert_eq!(c["metadata"]["finalizers"], json!([labels::DISTRIBUTION_FINALIZER]), "finalizer once");
        let ours = c["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["type"] == labels::DISTRIBUTED_CONDITION)
            .count();
        assert_eq!(ours, 1);
        let region = &w.regions[i % 2];
        let s = secret(region, SYS, &format!("s-{}", i % 7)).unwrap();
        assert!(owners(&s).contains(&format!("{SYS}/c-{i}")), "ownership of c-{i} lost");
    }
    d.shutdown().await;
}

#[tokio::test]
async fn only_the_lease_holder_distributes() {
    let w = world(1).await;
    seed_aws_static(&w.mgmt, "aws-id", "aws-secret", "AKIA6");
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
    let a = Distributor::start(cfg("replica-a"), w.client.clone());
    let b = Distributor::start(cfg("replica-b"), w.client.clone());
    let (ha, hb) = (a.handle(), b.handle());
    eventually("a leader", WAIT, || (ha.is_leader() || hb.is_leader()).then_some(())).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(ha.is_leader() ^ hb.is_leader(), "exactly one replica distributes");
    let (leader, follower, follower_handle) = if ha.is_leader() { (a, b, hb) } else { (b, a, ha) };
    create(
        &w.client,
        &credential(SYS, "led", "r1", &format!("{INFRA}/v1beta2"), "AWSClusterStaticIdentity", "aws-id", None),
    )
    .await;
    wait_condition(&w.mgmt, SYS, "led", "True").await;
    // The leader steps down (releasing the Lease): the other replica takes over.
    leader.shutdown().await;
    eventually("takeover", WAIT, || follower_handle.is_leader().then_some(())).await;
    delete(&w.client, SYS, "led").await;
    eventually("released by the new leader", WAIT, || secret(&w.regions[0], SYS, "aws-secret").is_none().then_some(()))
        .await;
    follower.shutdown().await;
}

/// Stands in for the API server's authorizer, which the emulator does not have: a plain HTTP proxy
/// in front of an emulator that enforces the Secrets part of deploy/base/rbac.yaml. Secrets across
/// all namespaces and every Secret write are refused (403, worded as upstream); in one namespace,
/// reads by name and list/watch are allowed where the sets say. Every request is logged.
struct RbacProxy {
    port: u16,
    /// "METHOD path?query" of every request, in order.
    log: Arc<Mutex<Vec<String>>>,
    /// Namespaces whose Secrets may be listed and watched (changeable while running: a new RoleBinding).
    list_watch: Arc<Mutex<BTreeSet<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RbacProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type ProxyBody = http_body_util::combinators::BoxBody<bytes::Bytes, hyper::Error>;

/// Why the shipped RBAC refuses this request, if it does: (verb, namespace) of a Secret access.
fn secret_denial(
    method: &http::Method,
    path: &str,
    get: &BTreeSet<String>,
    list_watch: &BTreeSet<String>,
) -> Option<String> {
    let (namespace, name) = if path == "/api/v1/secrets" {
        (None, None)
    } else {
        let rest = path.strip_prefix("/api/v1/namespaces/")?;
        let mut parts = rest.split('/');
        let ns = parts.next()?;
        if parts.next()? != "secrets" {
            return None;
        }
        (Some(ns), parts.next())
    };
    let verb = match (method, name) {
        (&http::Method::GET, Some(_)) => "get",
        (&http::Method::GET, None) => "list",
        _ => "create",
    };
    let allowed = match (verb, namespace) {
        ("get", Some(ns)) => get.contains(ns) || list_watch.contains(ns),
        ("list", Some(ns)) => list_watch.contains(ns),
        _ => false,
    };
    if allowed {
        return None;
    }
    let scope = namespace.map_or_else(|| "at the cluster scope".to_string(), |ns| format!("in the namespace \"{ns}\""));
    Some(format!(
        "secrets is forbidden: User \"system:serviceaccount:kcm-system:credential-webhook\" cannot {verb} resource \
         \"secrets\" in API group \"\" {scope}"
    ))
}

async fn start_rbac_proxy(upstream: u16, get: &[&str], list_watch: &[&str]) -> RbacProxy {
    use http_body_util::BodyExt as _;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let list_watch: Arc<Mutex<BTreeSet<String>>> =
        Arc::new(Mutex::new(list_watch.iter().map(|s| s.to_string()).collect()));
    let get: Arc<BTreeSet<String>> = Arc::new(get.iter().map(|s| s.to_string()).collect());
    let client: hyper_util::client::legacy::Client<_, hyper::body::Incoming> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let (log2, lw2) = (Arc::clone(&log), Arc::clone(&list_watch));
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (client, log, lw, get) = (client.clone(), Arc::clone(&log2), Arc::clone(&lw2), Arc::clone(&get));
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    let (client, log, lw, get) = (client.clone(), Arc::clone(&log), Arc::clone(&lw), Arc::clone(&get));
                    async move {
                        let pq = req.uri().path_and_query().map(ToString::to_string).unwrap_or_default();
                        log.lock().unwrap().push(format!("{} {pq}", req.method()));
                        let denial = secret_denial(req.method(), req.uri().path(), &get, &lw.lock().unwrap());
                        let reply = |code: u16, body: Value| -> http::Response<ProxyBody> {
                            let body = http_body_util::Full::new(bytes::Bytes::from(body.to_string()))
                                .map_err(|never| match never {})
                                .boxed();
                            http::Response::builder()
                                .status(code)
                                .header("content-type", "application/json")
                                .body(body)
                                .unwrap()
                        };
                        if let Some(message) = denial {
                            return Ok::<_, std::convert::Infallible>(reply(
                                403,
                                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                    "message": message, "reason": "Forbidden", "details": {"kind": "secrets"}, "code": 403}),
                            ));
                        }
                        *req.uri_mut() = format!("http://127.0.0.1:{upstream}{pq}").parse().unwrap();
                        Ok(match client.request(req).await {
                            Ok(resp) => resp.map(http_body_util::BodyExt::boxed),
                            Err(e) => reply(502, json!({"message": e.to_string()})),
                        })
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    RbacProxy { port, log, list_watch, task }
}

impl RbacProxy {
    async fn client(&self) -> kube::Client {
        let cfg = kube::Config::new(format!("http://127.0.0.1:{}", self.port).parse().unwrap());
        kube::Client::try_from(cfg).unwrap()
    }

    fn requests(&self, prefix: &str) -> Vec<String> {
        self.log.lock().unwrap().iter().filter(|l| l.starts_with(prefix)).cloned().collect()
    }
}

/// With the shipped RBAC (Secrets readable in the system namespace only), Secrets are watched in that
/// namespace and never across all of them; a namespace without list/watch is reported (metric, condition
/// note) and served by the resync until a RoleBinding allows the watch.
#[tokio::test]
async fn secrets_are_watched_only_in_namespaces_rbac_grants() {
    let w = world(1).await;
    seed_aws_static(&w.mgmt, "aws-id", "aws-secret", "AKIA8");
    w.mgmt
        .seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "azure-secret", "namespace": "team"},
            "data": {"clientSecret": b64("v0")}}))
        .unwrap();
    w.mgmt
        .seed(json!({"apiVersion": format!("{INFRA}/v1beta1"), "kind": "AzureClusterIdentity",
            "metadata": {"name": "azure-id", "namespace": "team"},
            "spec": {"clientSecret": {"name": "azure-secret", "namespace": "team"}}}))
        .unwrap();
    // "team": the operator granted reads by name but not list/watch (or no RoleBinding yet for the watch).
    let proxy = start_rbac_proxy(w.mgmt.port(), &["team"], &[SYS]).await;
    let resync = Duration::from_secs(4);
    let d = Distributor::start(DistributionConfig { resync_period: resync, ..test_config() }, proxy.client().await);
    let av = format!("{INFRA}/v1beta2");
    create(&w.client, &credential(SYS, "aws-cred", "r1", &av, "AWSClusterStaticIdentity", "aws-id", None)).await;
    let azure =
        credential("team", "azure-cred", "r1", &format!("{INFRA}/v1beta1"), "AzureClusterIdentity", "azure-id", None);
    create(&w.client, &azure).await;
    wait_condition(&w.mgmt, SYS, "aws-cred", "True").await;
    wait_condition(&w.mgmt, "team", "azure-cred", "True").await;
    let r1 = &w.regions[0];
    assert!(secret(r1, "team", "azure-secret").is_some());

    // The refused watch is reported: metric, and a note in the condition naming the grant (still True).
    eventually("forbidden watch counted", WAIT, || (d.metrics().forbidden_watches.get() == 1).then_some(())).await;
    let c = eventually("condition note", WAIT, || {
        condition(&w.mgmt, "team", "azure-cred").filter(|c| c["message"].as_str().unwrap().contains("forbidden"))
    })
    .await;
    let msg = c["message"].as_str().unwrap();
    assert_eq!(c["status"], "True", "{c}");
    assert!(msg.contains("namespace team") && msg.contains("RoleBinding credential-webhook-secrets in team"), "{msg}");
    let sys_msg = condition(&w.mgmt, SYS, "aws-cred").unwrap()["message"].as_str().unwrap().to_string();
    assert!(!sys_msg.contains("forbidden"), "the system namespace is watched: {sys_msg}");

    // Rotation in the system namespace arrives through the watch (well before the 4 s resync, every time).
    let secrets = |ns: &str| -> Api<k8s_openapi::api::core::v1::Secret> { Api::namespaced(w.client.clone(), ns) };
    let rotate = |ns: &'static str, name: &'static str, key: &'static str, value: String| {
        let api = secrets(ns);
        async move {
            let patch = json!({"data": {key: b64(&value)}});
            api.patch(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
            let started = Instant::now();
            eventually("rotated data in the region", Duration::from_secs(20), || {
                secret(r1, ns, name).filter(|s| s["data"][key] == b64(&value).as_str())
            })
            .await;
            started.elapsed()
        }
    };
    for i in 0..3 {
        let took = rotate(SYS, "aws-secret", "AccessKeyID", format!("sys-{i}")).await;
        assert!(took < Duration::from_millis(1500), "system-namespace rotation took {took:?}: not watched?");
    }
    // In "team" only the resync notices it (bounded by the resync period plus a convergence).
    let took = rotate("team", "azure-secret", "clientSecret", "team-1".to_string()).await;
    assert!(took < resync + Duration::from_secs(3), "resync fallback took {took:?}");

    // The operator adds the RoleBinding: the watch recovers (backoff capped at 1 s here), the note goes.
    proxy.list_watch.lock().unwrap().insert("team".to_string());
    eventually("watch allowed", WAIT, || (d.metrics().forbidden_watches.get() == 0).then_some(())).await;
    eventually("note gone", WAIT, || {
        condition(&w.mgmt, "team", "azure-cred").filter(|c| !c["message"].as_str().unwrap().contains("forbidden"))
    })
    .await;
    for i in 0..3 {
        let took = rotate("team", "azure-secret", "clientSecret", format!("team-w{i}")).await;
        assert!(took < Duration::from_millis(1500), "team rotation after the grant took {took:?}");
    }

    // What the distributor asked for: Secrets never across all namespaces; watched in the system namespace.
    assert!(
        proxy.requests("GET /api/v1/secrets").is_empty(),
        "cluster-wide Secret access: {:?}",
        proxy.requests("GET /api/v1/secrets")
    );
    assert!(
        proxy.requests(&format!("GET /api/v1/namespaces/{SYS}/secrets?")).iter().any(|r| r.contains("watch=true")),
        "no Secret watch in {SYS}: {:?}",
        proxy.requests("GET /api/v1/namespaces")
    );
    assert!(
        proxy.requests("PATCH /api/v1").is_empty() && proxy.requests("POST /api/v1/namespaces/team/secrets").is_empty()
    );
    d.shutdown().await;
}

/// A TCP proxy that can wedge, like a hung load balancer: while stalled it still accepts connections but
/// forwards nothing in either direction, on new and already open connections. Requests get no answer and
/// open watches go quiet without closing.
struct StallProxy {
    port: u16,
    stalled: Arc<AtomicBool>,
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl StallProxy {
    async fn start(upstream: u16) -> StallProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stalled = Arc::new(AtomicBool::new(false));
        let tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (st, ts) = (Arc::clone(&stalled), Arc::clone(&tasks));
        let accept = tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let st = Arc::clone(&st);
                let conn = tokio::spawn(async move {
                    if st.load(Ordering::SeqCst) {
                        // Accepted, never answered: the socket stays open until the proxy goes.
                        return hold_open(down).await;
                    }
                    let Ok(up) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else { return };
                    let ((dr, dw), (ur, uw)) = (down.into_split(), up.into_split());
                    tokio::join!(pump(dr, uw, &st), pump(ur, dw, &st));
                });
                ts.lock().unwrap().push(conn.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        StallProxy { port, stalled, tasks }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }

    /// New connections work again (the wedged ones stay wedged, as after a real outage).
    fn resume(&self) {
        self.stalled.store(false, Ordering::SeqCst);
    }

    fn client(&self) -> kube::Client {
        kube::Client::try_from(kube::Config::new(self.url().parse().unwrap())).unwrap()
    }
}

async fn hold_open(_socket: tokio::net::TcpStream) {
    std::future::pending::<()>().await;
}

async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, stalled: &AtomicBool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if stalled.load(Ordering::SeqCst) {
            std::future::pending::<()>().await; // swallowed: the other side waits forever
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

fn unreachable_reason(mgmt: &Emulator, name: &str) -> Option<Value> {
    condition(mgmt, SYS, name).filter(|c| c["status"] == "False" && c["reason"] == "ClusterUnreachable")
}

/// One regional API server wedges after the distributor connected (its ProviderInterface list succeeded,
/// so the cluster looks healthy), another accepts TCP and never answers at all. More Credentials target
/// them than there are workers. The healthy region still converges at once; every Credential of the stuck
/// ones gets ClusterUnreachable within a bounded time, and converges when its region answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_region_does_not_hold_up_the_others() {
    let mgmt = Emulator::builder().crds(true).start().await.unwrap();
    let (r1, r2) = (regional_emulator().await, regional_emulator().await);
    register_region(&mgmt, "r1", &r1.kubeconfig_yaml());
    let wedge = StallProxy::start(r2.port()).await;
    register_region(&mgmt, "r2", &r2.kubeconfig_yaml().replace(&r2.url(), &wedge.url()));
    let hole = StallProxy::start(r1.port()).await;
    hole.stall();
    register_region(&mgmt, "r3", &r1.kubeconfig_yaml().replace(&r1.url(), &hole.url()));
    seed_aws_static(&mgmt, "aws-id", "aws-secret", "AKIA9");
    let client = client_for(&mgmt).await;
    let cfg = DistributionConfig {
        workers: 4,
        per_cluster_concurrency: 2,
        request_timeout: Duration::from_secs(1),
        convergence_timeout: Duration::from_secs(5),
        cluster_timeout: Duration::from_secs(2),
        ..test_config()
    };
    let d = Distributor::start(cfg, client.clone());
    let av = format!("{INFRA}/v1beta2");
    let cred =
        |name: &str, region: &str| credential(SYS, name, region, &av, "AWSClusterStaticIdentity", "aws-id", None);
    create(&client, &cred("before", "r2")).await;
    wait_condition(&mgmt, SYS, "before", "True").await;

    wedge.stall();
    let started = Instant::now();
    let stuck: Vec<String> = (0..8).map(|i| format!("r2-{i}")).chain(["r3-0".to_string()]).collect();
    for name in &stuck {
        create(&client, &cred(name, if name.starts_with("r2") { "r2" } else { "r3" })).await;
    }
    for i in 0..4 {
        create(&client, &cred(&format!("r1-{i}"), "r1")).await;
    }
    for i in 0..4 {
        wait_condition(&mgmt, SYS, &format!("r1-{i}"), "True").await;
    }
    let healthy = started.elapsed();
    for name in &stuck {
        let c = eventually(&format!("{name} ClusterUnreachable"), WAIT, || unreachable_reason(&mgmt, name)).await;
        assert!(c["message"].as_str().unwrap().contains("retrying"), "{c}");
    }
    let unreachable = started.elapsed();
    println!("healthy region converged after {healthy:?}; all stuck Credentials reported after {unreachable:?}");
    assert!(healthy < Duration::from_secs(10), "the healthy region waited on the stuck ones: {healthy:?}");
    assert!(secret(&r2, SYS, "aws-secret").is_some(), "the copy made before the stall stays");

    // The wedge clears: new connections answer, the stuck Credentials converge.
    wedge.resume();
    for name in stuck.iter().filter(|n| n.starts_with("r2")) {
        wait_condition(&mgmt, SYS, name, "True").await;
    }
    assert!(unreachable_reason(&mgmt, "r3-0").is_some(), "r3 still never answers");
    tokio::time::timeout(Duration::from_secs(15), d.shutdown()).await.expect("shutdown is bounded");
}

/// The leader's management API wedges (requests accepted, never answered): it stops distributing at the
/// renew deadline, before its Lease expires, and only then does the other replica take over. Never two
/// leaders at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_lease_renewal_gives_up_leadership_before_the_lease_expires() {
    let w = world(1).await;
    seed_aws_static(&w.mgmt, "aws-id", "aws-secret", "AKIA10");
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
    let wedge = StallProxy::start(w.mgmt.port()).await;
    let a = Distributor::start(cfg("replica-a"), wedge.client());
    let ha = a.handle();
    eventually("replica-a leads", WAIT, || ha.is_leader().then_some(())).await;
    let b = Distributor::start(cfg("replica-b"), w.client.clone());
    let hb = b.handle();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(ha.is_leader() && !hb.is_leader(), "replica-a renews, replica-b waits");

    wedge.stall();
    let stalled = Instant::now();
    let lease = || w.mgmt.get("coordination.k8s.io/v1", "Lease", Some(SYS), &le.name).unwrap();
    let mut a_stopped: Option<(Instant, Value)> = None;
    let b_started = loop {
        assert!(!(ha.is_leader() && hb.is_leader()), "two leaders at once");
        let now = Instant::now();
        if a_stopped.is_none() && !ha.is_leader() {
            a_stopped = Some((now, lease()));
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
        &w.client,
        &credential(SYS, "after", "r1", &format!("{INFRA}/v1beta2"), "AWSClusterStaticIdentity", "aws-id", None),
    )
    .await;
    wait_condition(&w.mgmt, SYS, "after", "True").await;
    assert!(!ha.is_leader());
    tokio::time::timeout(Duration::from_secs(15), a.shutdown()).await.expect("a wedged replica still shuts down");
    b.shutdown().await;
}

/// 1,000 Credentials over 10 regional emulators: time to converge and API requests per copied object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly (see BENCH.md)"]
async fn bench_thousand_credentials_over_ten_regions() {
    let regions = 10;
    let per_region = 100;
    let w = world(regions).await;
    let av = format!("{INFRA}/v1beta2");
    for i in 0..regions * per_region {
        w.mgmt
            .seed(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("s-{i}"), "namespace": SYS},
                "data": {"k": b64(&format!("v{i}"))}}),
            )
            .unwrap();
        w.mgmt
            .seed(json!({"apiVersion": av, "kind": "AWSClusterStaticIdentity", "metadata": {"name": format!("id-{i}")},
                "spec": {"secretRef": format!("s-{i}")}}))
            .unwrap();
        w.mgmt
            .seed(credential(
                SYS,
                &format!("c-{i}"),
                &format!("r{}", i % regions + 1),
                &av,
                "AWSClusterStaticIdentity",
                &format!("id-{i}"),
                None,
            ))
            .unwrap();
    }
    w.mgmt.reset_request_counts();
    for r in &w.regions {
        r.reset_request_counts();
    }
    let cfg = DistributionConfig { workers: 32, per_cluster_concurrency: 8, ..test_config() };
    let started = Instant::now();
    let d = Distributor::start(cfg, w.client.clone());
    let total = regions * per_region;
    // Polled every 100 ms: reading 1,000 objects takes the emulator's lock, so polling faster would slow
    // the emulator down and measure the test instead of the distributor.
    let converged = || {
        w.mgmt
            .list(CRED_AV, "Credential", Some(SYS))
            .iter()
            .filter(|c| {
                c.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|cs| {
                    cs.iter().any(|c| c["type"] == labels::DISTRIBUTED_CONDITION && c["status"] == "True")
                })
            })
            .count()
    };
    while converged() < total {
        assert!(started.elapsed() < Duration::from_secs(300), "not converged after 300 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    let copies: usize = w.regions.iter().map(|r| r.list("v1", "Secret", Some(SYS)).len()).sum::<usize>()
        + w.regions.iter().map(|r| r.list(&av, "AWSClusterStaticIdentity", None).len()).sum::<usize>();
    assert_eq!(copies, 2 * total);
    let mgmt_requests = w.mgmt.resource_request_total();
    let regional_requests: u64 = w.regions.iter().map(Emulator::resource_request_total).sum();
    let per_copy = (mgmt_requests + regional_requests) as f64 / copies as f64;
    println!("BENCH credentials={total} regions={regions} copies={copies} converge={elapsed:?}");
    let (count, sum) = d.metrics().convergence_totals();
    println!("BENCH convergences={count} mean={:.1} ms", sum / count.max(1.0) * 1000.0);
    println!("BENCH requests: management={mgmt_requests} regional={regional_requests} per_copied_object={per_copy:.2}");
    let mut counts: Vec<_> = w.mgmt.request_counts().into_iter().filter(|((_, r), _)| !r.starts_with('/')).collect();
    counts.sort();
    println!("BENCH management by verb/resource: {counts:?}");
    let mut rc = std::collections::BTreeMap::new();
    for r in &w.regions {
        for ((verb, res), n) in r.request_counts() {
            if !res.starts_with('/') {
                *rc.entry((verb, res)).or_insert(0u64) += n;
            }
        }
    }
    println!("BENCH regional by verb/resource: {rc:?}");
    assert!(per_copy < 10.0, "requests per copied object must stay bounded: {per_copy}");
    d.shutdown().await;
}
