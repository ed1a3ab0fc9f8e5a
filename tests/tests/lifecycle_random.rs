//! Issue 13, "must show", on real API servers (tests/kube-test-cluster): a management and a regional
//! kube-apiserver, distributors running as the shipped ServiceAccount (real token, shipped RBAC).
//! - Two replicas with leader election: the leader crashes in the middle of distributing 100
//!   Credentials; the other takes over within the lease duration, every Credential is distributed,
//!   every copy equals its source, and no copy was ever written with conflicting content.
//! - A randomized lifecycle: a seeded sequence (`LIFECYCLE_SEED`, `LIFECYCLE_STEPS`) of
//!   create/update/rotate/delete of Secrets, identities, Regions, Credentials and namespaces, with
//!   distributor restarts and crashes in between, each step followed by the invariants within a
//!   bounded time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use credential_core::model::labels;
use credential_webhook::distribution::{Backoff, DistributionConfig, ORPHANED_COPIES};
use credential_webhook::distribution::leader::LeaderElection;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use support::random::{Replica, Rng, VersionLog, leaks, seed_from_env, usize_from_env};
use support::real::WEBHOOK_SA;
use support::regional::{CRED_AV, Real};
use support::{PROVIDER_INTERFACE, SYS, b64, eventually_async};

const INFRA_AV: &str = "infrastructure.cluster.x-k8s.io/v1beta2";
const STATIC_ID: &str = "AWSClusterStaticIdentity";
const LEASE_NAME: &str = "credential-guard-distribution";

/// Short leases, so a takeover is seconds, not the shipped 15 s.
fn leader_election(lease: Duration) -> LeaderElection {
    LeaderElection {
        namespace: SYS.to_string(),
        name: LEASE_NAME.to_string(),
        lease_duration: lease,
        renew_period: Duration::from_millis(500),
        renew_deadline: lease * 2 / 3,
        retry_period: Duration::from_millis(250),
    }
}

fn replica_config(instance: &str, lease: Duration) -> DistributionConfig {
    DistributionConfig {
        workers: 4,
        per_cluster_concurrency: 2,
        leader_election: Some(leader_election(lease)),
        credential_backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(2)),
        cluster_backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(2)),
        cluster_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        convergence_timeout: Duration::from_secs(20),
        release_timeout: Duration::from_secs(8),
        instance: instance.to_string(),
        ..DistributionConfig::default()
    }
}

/// A management cluster (kube-controller-manager when namespaces get deleted) with the shipped
/// RBAC, a regional cluster with the AWS ProviderInterface, and the kubeconfig of a real token of
/// the shipped ServiceAccount (each replica builds its own client from it).
struct Estate {
    mgmt: Real,
    region: Real,
    sa_kubeconfig: String,
}

async fn estate(name: &str, controller_manager: bool) -> Estate {
    let (mgmt_name, region_name) = (format!("{name}-mgmt"), format!("{name}-r1"));
    let (mgmt, region) = tokio::join!(
        support::regional::start(&mgmt_name, controller_manager),
        support::regional::start(&region_name, false),
    );
    let token = mgmt.shipped_webhook_token().await;
    let sa_kubeconfig = mgmt.kubeconfig_yaml_for_token(&token);
    region.apply(PROVIDER_INTERFACE).await.unwrap();
    mgmt.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "r1-kubeconfig", "namespace": SYS},
        "data": {"value": b64(&region.kubeconfig_yaml())}}))
        .await;
    let e = Estate { mgmt, region, sa_kubeconfig };
    e.create_region().await;
    e
}

fn region_body() -> Value {
    json!({"apiVersion": CRED_AV, "kind": "Region", "metadata": {"name": "r1"},
        "spec": {"kubeConfig": {"name": "r1-kubeconfig", "key": "value"}}})
}

fn secret_body(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": SYS},
        "data": {"AccessKeyID": b64(value)}})
}

fn identity_body(name: &str, secret: &str) -> Value {
    json!({"apiVersion": INFRA_AV, "kind": STATIC_ID, "metadata": {"name": name}, "spec": {"secretRef": secret}})
}

fn credential_body(ns: &str, name: &str, identity: &str) -> Value {
    json!({"apiVersion": CRED_AV, "kind": "Credential", "metadata": {"name": name, "namespace": ns},
        "spec": {"region": "r1", "identityRef": {"apiVersion": INFRA_AV, "kind": STATIC_ID, "name": identity}}})
}

/// Our condition on a stored Credential, if any.
fn distributed(credential: &Value) -> Option<&Value> {
    credential["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == labels::DISTRIBUTED_CONDITION)
}

fn is_true(credential: &Value) -> bool {
    distributed(credential).is_some_and(|c| c["status"] == "True")
}

fn name_of(obj: &Value) -> String {
    obj["metadata"]["name"].as_str().unwrap_or_default().to_string()
}

fn ns_name(obj: &Value) -> String {
    format!("{}/{}", obj["metadata"]["namespace"].as_str().unwrap_or_default(), name_of(obj))
}

fn terminating(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null())
}

impl Estate {
    async fn create_region(&self) {
        self.mgmt.seed(region_body()).await;
    }

    /// Deletes `api_version`/`kind` `name` (without waiting; NotFound is fine).
    async fn delete(&self, api_version: &str, kind: &str, ns: Option<&str>, name: &str) {
        let api = self.mgmt.api(api_version, kind, ns).await;
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => panic!("delete {kind} {name}: {e}"),
        }
    }

    async fn lease(&self) -> Option<Lease> {
        let api: Api<Lease> = Api::namespaced(self.mgmt.admin.clone(), SYS);
        api.get_opt(LEASE_NAME).await.unwrap()
    }

    /// Credentials of every namespace.
    async fn credentials(&self) -> Vec<Value> {
        self.mgmt.list(CRED_AV, "Credential", None).await
    }

    /// A copy in the region: `(kind, namespace/name or name) -> object`, managed ones only.
    async fn regional_copies(&self) -> BTreeMap<(String, String), Value> {
        let mut out = BTreeMap::new();
        for (av, kind) in [("v1", "Secret"), (INFRA_AV, STATIC_ID)] {
            for o in self.region.list(av, kind, None).await {
                if o.pointer(&format!("/metadata/labels/{}", labels::MANAGED.replace('/', "~1"))) == Some(&json!("true")) {
                    let key = if kind == "Secret" { ns_name(&o) } else { name_of(&o) };
                    out.insert((kind.to_string(), key), o);
                }
            }
        }
        out
    }
}

/// The content a copy must share with its source: a Secret's data, an identity's spec.
fn content(obj: &Value) -> Value {
    if obj["kind"] == "Secret" || obj.get("data").is_some() { obj["data"].clone() } else { obj["spec"].clone() }
}

/// Two replicas with leader election on the real apiserver; the leader crashes (its runtime is
/// dropped: no graceful Lease release, requests cut mid-flight) while 100 Credentials are being
/// distributed. The other takes over within the lease duration; nothing is lost; no copy is ever
/// seen with two different contents.
#[tokio::test]
async fn the_standby_replica_takes_over_a_crashed_leader_within_the_lease() {
    const N: usize = 100;
    let lease = Duration::from_secs(4);
    let e = estate("takeover", false).await;

    // Every version of every regional copy, from before the first write to the end.
    let log = VersionLog::default();
    let _secrets = log.record(e.region.api("v1", "Secret", Some(SYS)).await, content);
    let _ids = log.record(e.region.api(INFRA_AV, STATIC_ID, None).await, content);

    let a = Replica::start(replica_config("replica-a", lease), &e.sa_kubeconfig);
    eventually_async("replica-a leads", Duration::from_secs(30), || async { a.is_leader().then_some(()) }).await;
    let b = Replica::start(replica_config("replica-b", lease), &e.sa_kubeconfig);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!b.is_leader(), "two leaders at once");

    let mut sources = String::new();
    let mut credentials = String::new();
    for i in 0..N {
        for o in [secret_body(&format!("aws-{i:03}"), &format!("AKIA-takeover-{i:03}")), identity_body(&format!("id-{i:03}"), &format!("aws-{i:03}"))] {
            sources.push_str(&format!("---\n{o}\n"));
        }
        credentials.push_str(&format!("---\n{}\n", credential_body(SYS, &format!("c-{i:03}"), &format!("id-{i:03}"))));
    }
    e.mgmt.kubectl_ok(&["create", "-f", "-"], Some(&sources)).await.unwrap();
    let creating = {
        let api = e.mgmt.api(CRED_AV, "Credential", Some(SYS)).await;
        tokio::spawn(async move {
            for doc in credentials.split("---\n").filter(|d| !d.trim().is_empty()) {
                let obj: kube::api::DynamicObject = serde_json::from_str(doc).unwrap();
                api.create(&Default::default(), &obj).await.unwrap();
            }
        })
    };

    // Kill the leader once some copies are written and most are still to come.
    let copies_of = |log: &VersionLog| log.snapshot().keys().filter(|k| k.starts_with(&format!("{SYS}/aws-"))).count();
    eventually_async("the leader has copied 10 Secrets", Duration::from_secs(60), || async {
        (copies_of(&log) >= 10).then_some(())
    })
    .await;
    let at_kill = copies_of(&log);
    let killed = Instant::now();
    a.crash();
    eprintln!("replica-a crashed after {at_kill} of {N} Secret copies");
    assert!(at_kill < N, "everything was copied before the crash: not a takeover in the middle");
    // A crash does not release the Lease: it still names the dead leader.
    let held = e.lease().await.expect("Lease").spec.unwrap();
    assert_eq!(held.holder_identity.as_deref(), Some("replica-a"), "{held:?}");
    assert!(held.renew_time.is_some(), "the crashed leader released its Lease");

    let bound = lease + Duration::from_millis(250) + Duration::from_secs(3);
    eventually_async("replica-b takes over", bound + Duration::from_secs(10), || async { b.is_leader().then_some(()) })
        .await;
    let takeover = killed.elapsed();
    eprintln!("takeover after {:.2} s (lease {lease:?})", takeover.as_secs_f64());
    assert!(takeover <= bound, "takeover took {takeover:?}, more than the lease {lease:?} plus slack");
    let now = e.lease().await.unwrap().spec.unwrap();
    assert_eq!(now.holder_identity.as_deref(), Some("replica-b"));
    assert!(now.lease_transitions.unwrap_or(0) >= 1, "{now:?}");
    creating.await.unwrap();

    // Nothing lost: every Credential distributed, every copy equal to its source.
    let done = eventually_async(&format!("all {N} Credentials {}=True", labels::DISTRIBUTED_CONDITION), Duration::from_secs(120), || async {
        let all = e.credentials().await;
        (all.len() == N && all.iter().all(is_true)).then_some(all)
    })
    .await;
    assert_eq!(done.len(), N);
    let copies = e.regional_copies().await;
    for i in 0..N {
        let (secret, id) = (format!("aws-{i:03}"), format!("id-{i:03}"));
        let src = e.mgmt.get("v1", "Secret", Some(SYS), &secret).await.unwrap();
        let copy = &copies[&("Secret".to_string(), format!("{SYS}/{secret}"))];
        assert_eq!(copy["data"], src["data"], "copy of Secret {secret}");
        let src = e.mgmt.get(INFRA_AV, STATIC_ID, None, &id).await.unwrap();
        let copy = &copies[&(STATIC_ID.to_string(), id.clone())];
        assert_eq!(copy["spec"], src["spec"], "copy of {id}");
        assert_eq!(credential_core::identity::owners_of(copy), vec![format!("{SYS}/c-{i:03}")]);
    }
    assert_eq!(copies.len(), 2 * N, "copies nobody asked for: {:?}", copies.keys().collect::<Vec<_>>());

    // No copy was ever written with conflicting content (every version the watch saw).
    let conflicting = log.conflicting();
    assert!(conflicting.is_empty(), "copies seen with different contents: {conflicting:#?}");
    let rewritten = log.snapshot().values().filter(|v| v.len() > 1).count();
    eprintln!("{} copies watched, {rewritten} written more than once (same content)", log.len());
    b.shutdown().await;
}
