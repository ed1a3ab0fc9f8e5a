//! Faults on a real kube-apiserver (tests/kube-test-cluster): the management API server down when the
//! webhook starts and started later on the same port and etcd data; frozen under it (SIGSTOP/SIGCONT)
//! and killed (SIGKILL) and restarted on the same etcd data; plus the live-mode secrecy check (trace
//! logs, Events, conditions, metrics and the cache hold no Secret value while identities are
//! distributed into a regional apiserver, a separate process). The webhook runs as the shipped
//! ServiceAccount (deploy/ RBAC, a real token).
//!
//! The webhook runs in-process in live mode (kube-rs watchers filling its index, as
//! `credential-webhook serve --kubeconfig` does), and decisions are asked of `Admission::review`
//! on that index. Every log line of this test binary (all crates, TRACE) is captured in memory.
//! Other fault scenarios: webhook/tests/faults.rs (SIGTERM with requests in flight on the real binary,
//! broken certificate pair), webhook/tests/rotation.rs (rotation under load), and
//! tests/tests/distribution_e2e.rs `unreachable_region_converges_when_it_starts_and_release_waits_for_it`
//! (a regional cluster down and back during distribution).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use credential_webhook::cache::ServingEstate;
use credential_webhook::metrics::Metrics;
use credential_webhook::{Admission, NoopSink, Webhook};
use serde_json::{Value, json};
use support::regional::{self, Real};
use support::{
    LiveWebhook, PROVIDER_INTERFACE, SYS, admin_get, b64, eventually, prepare_live_webhook, start_live_webhook,
};
use tokio_util::sync::CancellationToken;

const API: &str = "k0rdent.mirantis.com/v1beta1";

/// Captured output of every tracing event in this test binary, at TRACE.
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        struct W(Arc<Mutex<Vec<u8>>>);
        impl Write for W {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || W(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buf
    })
    .clone()
}

/// A plain-HTTP GET on the admin listener: (status, body).
const SEED: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: kcm-system}
---
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: k0rdent.mirantis.com/v1beta1
kind: Credential
metadata: {name: used, namespace: team}
spec:
  identityRef: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSClusterStaticIdentity, name: aws-id}
---
apiVersion: k0rdent.mirantis.com/v1beta1
kind: ClusterDeployment
metadata: {name: prod, namespace: team}
spec: {credential: used, template: t}
"#;

fn region_yaml(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}-kubeconfig, namespace: kcm-system}}\n\
         data: {{value: {kc}}}\n---\napiVersion: {API}\nkind: Region\nmetadata: {{name: {name}}}\n\
         spec: {{kubeConfig: {{name: {name}-kubeconfig, key: value}}}}\n\
         status: {{ready: true, conditions: [{{type: Ready, status: \"True\", reason: Succeeded, message: ok, \
         lastTransitionTime: \"2026-01-01T00:00:00Z\"}}]}}\n",
        kc = b64("not a reachable kubeconfig")
    )
}

/// A CREATE review of Credential `team/<name>` in Region `region`.
fn create_in_region(uid: &str, name: &str, region: &str) -> Vec<u8> {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid, "kind": {"group": "k0rdent.mirantis.com", "version": "v1beta1", "kind": "Credential"},
        "resource": {"group": "k0rdent.mirantis.com", "version": "v1beta1", "resource": "credentials"},
        "name": name, "namespace": "team", "operation": "CREATE", "userInfo": {"username": "admin"},
        "object": {"apiVersion": API, "kind": "Credential", "metadata": {"name": name, "namespace": "team"},
            "spec": {"region": region, "identityRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2",
                "kind": "AWSClusterStaticIdentity", "name": "aws-id"}}},
        // A real write: a dry run only warns about a Region the same apply may create.
        "oldObject": null, "dryRun": false}})
    .to_string()
    .into_bytes()
}

/// DELETE review of the Credential `team/used` that ClusterDeployment `prod` uses.
fn delete_used(uid: &str) -> Vec<u8> {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid, "kind": {"group": "k0rdent.mirantis.com", "version": "v1beta1", "kind": "Credential"},
        "resource": {"group": "k0rdent.mirantis.com", "version": "v1beta1", "resource": "credentials"},
        "name": "used", "namespace": "team", "operation": "DELETE", "userInfo": {"username": "admin"},
        "object": null, "oldObject": {"apiVersion": API, "kind": "Credential",
            "metadata": {"name": "used", "namespace": "team"}}, "dryRun": true}})
    .to_string()
    .into_bytes()
}

fn response(reply: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(reply).unwrap();
    v["response"].clone()
}

struct Live {
    index: Arc<credential_webhook::cache::Index>,
    admission: Admission,
    server: credential_webhook::RunningServer,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

/// The webhook in live mode against the API server named by `kubeconfig`.
async fn live(kubeconfig: &str) -> Live {
    let LiveWebhook { server, index, metrics, stop, dir, .. } = start_live_webhook(kubeconfig).await;
    let admission = Admission::new(index.clone(), Arc::new(NoopSink), metrics.clone());
    Live { index, admission, server, metrics, stop, _dir: dir }
}

impl Live {
    async fn shutdown(self) {
        self.stop.cancel();
        self.server.wait().await;
    }
}

/// A management cluster with SEED and the shipped RBAC; the webhook's kubeconfig (a real token of it).
async fn management() -> (Real, String) {
    let mgmt = regional::start("mgmt", false).await;
    mgmt.seed_yaml(SEED).await;
    let token = mgmt.shipped_webhook_token().await;
    let kubeconfig = mgmt.kubeconfig_yaml_for_token(&token);
    (mgmt, kubeconfig)
}

/// Fault: the management API server is down when the webhook starts. It serves (livez 200), is not
/// ready (readyz 503 "caches not synced"), refuses to decide on empty caches (allowed=false, 503),
/// and becomes ready and decides from real state once the API server is started again (same port,
/// same etcd data), without a restart of the webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_unreachable_at_start_then_ready_once_it_appears() {
    captured_log();
    let (mgmt, kubeconfig) = management().await;
    mgmt.stop().await;
    assert!(!mgmt.is_running());
    let watch_errors =
        || String::from_utf8_lossy(&captured_log().lock().unwrap()).matches("watch error; retrying").count();
    let errors_before = watch_errors();
    let w = live(&kubeconfig).await;
    let admin = w.server.admin_addr;
    // The webhook tried and failed: its reflectors report the failure (not merely "not yet").
    eventually("a failed watch against the stopped apiserver logged", Duration::from_secs(30), || {
        watch_errors() > errors_before
    })
    .await;
    assert_eq!(admin_get(admin, "/livez"), (200, "ok".to_string()));
    assert_eq!(admin_get(admin, "/readyz"), (503, "not ready: caches not synced\n".to_string()));
    assert!(!w.index.synced());
    let early = response(&w.admission.review(Webhook::Validate, &delete_used("early-1")));
    assert_eq!(early["allowed"], false, "no decision from empty caches: {early}");
    assert_eq!(early["status"]["code"], 503, "{early}");
    assert!(early["status"]["message"].as_str().unwrap().contains("not synced"), "{early}");
    let m = w.metrics.encode();
    assert!(m.contains("credential_webhook_cache_synced{cluster=\"management\",resource=\"credentials\"} 0"), "{m}");

    let appeared = Instant::now();
    mgmt.restart().await.unwrap();
    let took = eventually("synced after the API server appeared", Duration::from_secs(90), || w.index.synced()).await;
    assert_eq!(admin_get(admin, "/readyz"), (200, "ok\n".to_string()));
    let r = response(&w.admission.review(Webhook::Validate, &delete_used("late-1")));
    assert_eq!(r["allowed"], false, "{r}");
    assert!(r["status"]["message"].as_str().unwrap().contains("prod"), "decided from real state: {r}");
    eprintln!(
        "unreachable at start: ready {took:?} after the apiserver was ready ({:?} after its start)",
        appeared.elapsed()
    );
    w.shutdown().await;
}

/// Fault: the API server freezes (SIGSTOP for 3 s), then is killed (SIGKILL) and restarted on the
/// same port and etcd data. Decisions go on from the cache meanwhile; the reflectors reconnect and a
/// change made after the restart reaches decisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_restart_reflectors_recover_and_see_new_changes() {
    captured_log();
    let (mgmt, kubeconfig) = management().await;
    let w = live(&kubeconfig).await;
    eventually("initial sync", Duration::from_secs(30), || w.index.synced()).await;
    let before = response(&w.admission.review(Webhook::Validate, &create_in_region("r-1", "c1", "late-region")));
    assert_eq!(before["allowed"], false, "{before}");
    assert!(before["status"]["message"].as_str().unwrap().contains("CRED004"), "{before}");

    // Frozen: connections open, nothing answers. Still ready and deciding from the last known state.
    mgmt.pause();
    let frozen = Instant::now();
    while frozen.elapsed() < Duration::from_secs(3) {
        assert_eq!(admin_get(w.server.admin_addr, "/readyz").0, 200, "not ready while the apiserver is frozen");
        let during = response(&w.admission.review(Webhook::Validate, &delete_used("r-2")));
        assert_eq!(during["allowed"], false, "{during}");
        assert!(during["status"]["message"].as_str().unwrap().contains("prod"), "{during}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    mgmt.resume();

    // Killed (no drain), then down while it restarts on the same etcd data: decisions go on.
    mgmt.kill().await;
    assert_eq!(admin_get(w.server.admin_addr, "/readyz").0, 200);
    let down = response(&w.admission.review(Webhook::Validate, &delete_used("r-3")));
    assert_eq!(down["allowed"], false, "{down}");
    assert!(down["status"]["message"].as_str().unwrap().contains("prod"), "{down}");
    mgmt.restart().await.unwrap();
    assert!(mgmt.get(API, "ClusterDeployment", Some("team"), "prod").await.is_some(), "etcd data survived the kill");
    mgmt.seed_yaml(&region_yaml("late-region")).await;
    let started = Instant::now();
    let mut after = Value::Null;
    while started.elapsed() < Duration::from_secs(60) {
        after = response(&w.admission.review(Webhook::Validate, &create_in_region("r-4", "c1", "late-region")));
        if after["allowed"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(after["allowed"], true, "the Region created after the restart is seen: {after}");
    eprintln!("API server restart: change after restart seen in a decision after {:?}", started.elapsed());
    w.shutdown().await;
}

// --- secrecy in live mode --------------------------------------------------------------------------

const AK: &str = "AKIA-live-sekrit-4e21";
const SK: &str = "live-sekrit-SECRET-KEY-8d0c";

/// Distribution copies an identity Secret into a regional cluster while everything logs at TRACE:
/// no Secret value (clear or base64, nor the regional kubeconfig's token) appears in the log, the
/// Events, the Credential's status, the metrics or the webhook's cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_trace_logs_events_status_and_cache_hold_no_secret_values() {
    let log = captured_log();
    let (region, mgmt) = tokio::join!(regional::start("r1", false), regional::start("mgmt", false));
    region.seed_yaml(PROVIDER_INTERFACE).await;
    mgmt.seed_yaml(PROVIDER_INTERFACE).await;
    // The regional cluster's real admin token is a Secret value too.
    let regional_kubeconfig = region.kubeconfig_yaml();
    let token = region.admin_token().to_string();
    assert!(regional_kubeconfig.contains(&token));
    mgmt.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "r1-kubeconfig", "namespace": SYS},
        "data": {"value": b64(&regional_kubeconfig)}}))
        .await;
    mgmt.seed(json!({"apiVersion": API, "kind": "Region", "metadata": {"name": "r1"},
        "spec": {"kubeConfig": {"name": "r1-kubeconfig", "key": "value"}},
        "status": {"ready": true, "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded",
            "message": "ok", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}))
        .await;
    mgmt.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "aws-secret", "namespace": SYS,
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
            format!("{{\"stringData\":{{\"AccessKeyID\":\"{AK}\"}}}}")}},
        "data": {"AccessKeyID": b64(AK), "SecretAccessKey": b64(SK)}}))
        .await;
    mgmt.seed(json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "AWSClusterStaticIdentity",
        "metadata": {"name": "aws-id"}, "spec": {"secretRef": "aws-secret"}}))
        .await;
    let sa_token = mgmt.shipped_webhook_token().await;

    // What `credential-webhook serve` runs (credential_webhook::live::start: the mode control, the
    // distributor and the admission index on one watch layer), so the cache checked below is the
    // one the distributor reads too.
    let prepared = prepare_live_webhook(&mgmt.kubeconfig_yaml_for_token(&sa_token)).await;
    let running = prepared.start_live().await;
    let LiveWebhook { server, index, metrics, stop, dir, .. } = prepared.serve_index(running.index.clone(), None).await;
    let admission = Admission::new(index.clone(), Arc::new(NoopSink), metrics.clone());
    let w = Live { index, admission, server, metrics, stop, _dir: dir };
    eventually("synced", Duration::from_secs(30), || w.index.synced()).await;
    // Created, with the status.ready KCM's controller writes.
    mgmt.seed(json!({"apiVersion": API, "kind": "Credential", "metadata": {"name": "aws-r1", "namespace": SYS},
        "spec": {"region": "r1", "identityRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2",
            "kind": "AWSClusterStaticIdentity", "name": "aws-id"}}, "status": {"ready": true}}))
        .await;
    // The copy arrives (with its data: that is the point of distribution) ...
    support::eventually_async("Secret copied into the region", Duration::from_secs(30), || async {
        region.get("v1", "Secret", Some(SYS), "aws-secret").await.filter(|s| s["data"]["AccessKeyID"] == b64(AK))
    })
    .await;
    // ... and a decision that reads the kubeconfig Secret's keys (Region with a key it lacks).
    let bad_key = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "k-1", "kind": {"group": "k0rdent.mirantis.com", "version": "v1beta1", "kind": "Region"},
        "name": "r2", "operation": "CREATE", "userInfo": {"username": "admin"}, "dryRun": true,
        "object": {"apiVersion": API, "kind": "Region", "metadata": {"name": "r2"},
            "spec": {"kubeConfig": {"name": "r1-kubeconfig", "key": "kubeconfig"}}}}});
    let mut decision = Value::Null;
    eventually("kubeconfig Secret keys cached", Duration::from_secs(20), || {
        decision = response(&w.admission.review(Webhook::Validate, bad_key.to_string().as_bytes()));
        decision["status"]["message"].as_str().is_some_and(|m| m.contains("RGN007"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let forbidden: Vec<String> = [AK, SK, token.as_str(), sa_token.as_str()]
        .iter()
        .flat_map(|s| [s.to_string(), b64(s)])
        .chain([b64(&regional_kubeconfig)])
        .collect();
    let check = |what: &str, text: &str| {
        for f in &forbidden {
            assert!(!text.contains(f.as_str()), "{what} contains Secret data {f:?}");
        }
    };
    let logs = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(logs.lines().count() > 100 && logs.contains("\"level\":\"TRACE\""), "trace logging is on");
    check("trace log", &logs);
    check("decision", &decision.to_string());
    check("metrics", &w.metrics.encode());
    let events = eventually_events(&mgmt).await;
    assert!(!events.is_empty(), "distribution reported Events");
    check("events", &serde_json::to_string(&events).unwrap());
    let cred = mgmt.get(API, "Credential", Some(SYS), "aws-r1").await.unwrap();
    assert!(cred.pointer("/status/conditions").is_some(), "{cred}");
    check("Credential status", &cred["status"].to_string());
    use credential_core::estate::{Cluster, Estate};
    let cached = w.index.list(&Cluster::Management, &credential_core::gvk::Gvk::secret(), Some(SYS));
    assert!(cached.len() >= 2);
    let cached: Vec<&Value> = cached.iter().map(|v| v.as_ref()).collect();
    check("webhook cache", &serde_json::to_string(&cached).unwrap());
    running.shutdown().await;
    w.shutdown().await;
}

/// The Events (both APIs) in the management cluster, once distribution reported some.
async fn eventually_events(mgmt: &Real) -> Vec<Value> {
    support::eventually_async("distribution reported Events", Duration::from_secs(30), || async {
        let events =
            [mgmt.list("events.k8s.io/v1", "Event", None).await, mgmt.list("v1", "Event", None).await].concat();
        (!events.is_empty()).then_some(events)
    })
    .await
}
