//! The admission hook path end to end on real clusters: the real credential-webhook server in live mode
//! against a management kube-apiserver (+ one regional kube-apiserver, a separate process), running as
//! the shipped ServiceAccount (deploy/ RBAC, a real token), wired as `credential-webhook serve` wires it
//! (`credential_webhook::live::start`, Lease-based leader election, the distributor's handle as the
//! admission sink), and the shipped webhook configurations registered (only clientConfig rewritten).
//! `kubectl apply` of a regional Credential puts its copies into the region; `kubectl apply
//! --dry-run=server` copies nothing and never reaches the sink; next to KCM 1.5 (trigger mode) the same
//! apply sets the trigger annotation and writes nothing in the region. Needs Go and `kubectl` on PATH.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use credential_core::model::labels;
use credential_core::rules::Operation;
use credential_e2e::cluster::shipped_webhook_configurations;
use credential_webhook::cache::ServingEstate;
use credential_webhook::distribution::DistributorHandle;
use credential_webhook::sink::{AdmittedChange, AdmittedChangeSink};
use serde_json::json;
use support::regional::{self, WAIT};
use support::{LiveWebhook, PROVIDER_INTERFACE, SYS, b64, eventually_async, eventually_some, prepare_live_webhook};

const API: &str = "k0rdent.mirantis.com/v1beta1";
const INFRA_AV: &str = "infrastructure.cluster.x-k8s.io/v1beta2";

/// Two AWS static identities with their Secrets (one per Credential of the test), the
/// ProviderInterface, and Region r1 (Ready) whose kubeconfig Secret points at the regional emulator.
fn management_seed(regional_kubeconfig: &str) -> String {
    let mut docs = vec![format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {SYS}}}")];
    for (id, secret) in [("aws-id", "aws-secret"), ("aws-id-2", "aws-secret-2")] {
        docs.push(format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {secret}, namespace: {SYS}}}\n\
             data: {{AccessKeyID: {}, SecretAccessKey: {}}}",
            b64(&format!("AKIA-{id}")),
            b64("very-secret")
        ));
        docs.push(format!(
            "apiVersion: {INFRA_AV}\nkind: AWSClusterStaticIdentity\nmetadata: {{name: {id}}}\nspec: {{secretRef: {secret}}}"
        ));
    }
    docs.push(PROVIDER_INTERFACE.to_string());
    docs.push(format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: r1-kubeconfig, namespace: {SYS}}}\ndata: {{value: {}}}",
        b64(regional_kubeconfig)
    ));
    docs.push(format!(
        "apiVersion: {API}\nkind: Region\nmetadata: {{name: r1}}\nspec:\n  kubeConfig: {{name: r1-kubeconfig, key: value}}\n\
         status:\n  ready: true\n  conditions: [{{type: Ready, status: \"True\", reason: Succeeded, message: ok, \
         lastTransitionTime: \"2026-01-01T00:00:00Z\"}}]"
    ));
    docs.join("\n---\n")
}

/// The distributor's handle, recording what the admission hook hands it (and whether this replica
/// distributed at that moment).
struct RecordingSink {
    inner: DistributorHandle,
    seen: Mutex<Vec<(Operation, String, bool)>>,
}

impl AdmittedChangeSink for RecordingSink {
    fn admitted(&self, change: AdmittedChange) {
        let key = format!("{}/{}", change.namespace, change.name);
        self.seen.lock().unwrap().push((change.operation, key, self.inner.is_leader()));
        self.inner.admitted(change);
    }
}

impl RecordingSink {
    fn calls_for(&self, key: &str) -> Vec<(Operation, bool)> {
        self.seen.lock().unwrap().iter().filter(|(_, k, _)| k == key).map(|(o, _, l)| (*o, *l)).collect()
    }
}

fn regional_credential(name: &str, identity: &str) -> String {
    format!(
        "apiVersion: {API}\nkind: Credential\nmetadata: {{name: {name}, namespace: {SYS}}}\nspec:\n  region: r1\n  \
         identityRef: {{apiVersion: {INFRA_AV}, kind: AWSClusterStaticIdentity, name: {identity}}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_through_the_webhook_distributes_and_dry_run_copies_nothing() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (region, mgmt) = tokio::join!(regional::start("r1", false), regional::start("mgmt", false));
    region.seed_yaml(PROVIDER_INTERFACE).await;
    mgmt.seed_yaml(&management_seed(&region.kubeconfig_yaml())).await;
    let token = mgmt.shipped_webhook_token().await;

    // What `credential-webhook serve` does without --estate, distribution on (webhook/src/main.rs
    // through credential_webhook::live::start: one watch layer for the index and the distributor).
    let live = prepare_live_webhook(&mgmt.kubeconfig_yaml_for_token(&token)).await;
    let running = live.start_live().await;
    let distributor = running.distributor.as_ref().unwrap();
    let sink = Arc::new(RecordingSink { inner: distributor.handle(), seen: Mutex::default() });
    let webhook = live.serve_live(&running, Some(sink.clone())).await;
    let LiveWebhook { server, index, metrics, stop, ca_pem, dir: _dir } = webhook;

    let limit = WAIT;
    eventually_some("management caches synced", limit, || index.synced().then_some(())).await;
    // No Management `kcm` here: auto decides write mode, and /readyz says so and why.
    let (status, body) = support::admin_get(server.admin_addr, "/readyz");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ok\ndistribution mode: write ("), "the mode line of /readyz: {body:?}");
    let handle = distributor.handle();
    eventually_some("this replica holds the distribution Lease", limit, || handle.is_leader().then_some(())).await;
    let lease = mgmt.get("coordination.k8s.io/v1", "Lease", Some(SYS), "credential-guard-distribution").await;
    assert!(lease.is_some(), "live::start elects through the Lease in the system namespace");

    let base = format!("https://127.0.0.1:{}", server.addr.port());
    mgmt.apply(&shipped_webhook_configurations(&base, &ca_pem).await.unwrap()).await.unwrap();

    // 1. A regional Credential through kubectl: admitted (mutated), handed to the distributor by
    //    the admission hook, and its identity and Secret copied into r1. KCM then writes status.ready.
    mgmt.apply(&regional_credential("aws-r1", "aws-id")).await.unwrap();
    mgmt.kcm_reconciled(SYS, "aws-r1").await;
    let stored = mgmt.get(API, "Credential", Some(SYS), "aws-r1").await.unwrap();
    assert_eq!(stored["metadata"]["labels"][labels::REGION], "r1", "mutated by the webhook: {stored}");
    let calls = sink.calls_for("kcm-system/aws-r1");
    assert_eq!(calls.first(), Some(&(Operation::Create, true)), "the hook handed the CREATE to the leader: {calls:?}");

    let copy = eventually_async("Secret copied into r1", limit, || async {
        region.get("v1", "Secret", Some(SYS), "aws-secret").await
    })
    .await;
    let source = mgmt.get("v1", "Secret", Some(SYS), "aws-secret").await.unwrap();
    assert_eq!(copy["data"], source["data"]);
    assert_eq!(copy["metadata"]["labels"][labels::MANAGED], "true");
    assert_eq!(credential_core::identity::owners_of(&copy), vec!["kcm-system/aws-r1".to_string()]);
    let id = eventually_async("identity copied into r1", limit, || async {
        region.get(INFRA_AV, "AWSClusterStaticIdentity", None, "aws-id").await
    })
    .await;
    assert_eq!(id["spec"]["secretRef"], "aws-secret");
    let condition = eventually_async("condition True", limit, || async {
        let c = mgmt.get(API, "Credential", Some(SYS), "aws-r1").await?;
        c.pointer("/status/conditions")?
            .as_array()?
            .iter()
            .find(|c| c["type"] == labels::DISTRIBUTED_CONDITION && c["status"] == "True")
            .cloned()
    })
    .await;
    assert_eq!(condition["reason"], "Distributed", "{condition}");
    let stored = mgmt.get(API, "Credential", Some(SYS), "aws-r1").await.unwrap();
    assert_eq!(stored["metadata"]["finalizers"], json!([labels::DISTRIBUTION_FINALIZER]));
    assert_eq!(stored["status"]["ready"], true, "KCM's status kept: {stored}");

    // 2. A server-side dry run of another Credential (its own identity and Secret): admitted, but
    //    nothing is stored, the sink never hears of it, and nothing is copied.
    let out = mgmt
        .kubectl_with(
            &["apply", "--dry-run=server", "-f", "-"],
            Some(&regional_credential("dry", "aws-id-2")),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert!(out.success(), "{}", out.stderr);
    assert!(out.stdout.contains("dry"), "{}", out.stdout);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(mgmt.absent(API, "Credential", Some(SYS), "dry").await, "a dry run stored the Credential");
    assert!(sink.calls_for("kcm-system/dry").is_empty(), "a dry run reached the sink");
    assert!(region.absent("v1", "Secret", Some(SYS), "aws-secret-2").await, "a dry run copied the Secret");
    assert!(
        region.absent(INFRA_AV, "AWSClusterStaticIdentity", None, "aws-id-2").await,
        "a dry run copied the identity"
    );
    assert_eq!(region.list("v1", "Secret", Some(SYS)).await.len(), 1, "only the first Credential's Secret is in r1");

    // The distribution metrics are served with the webhook's own.
    let m = metrics.encode();
    assert!(m.contains("credential_webhook_distribution_copies_applied_total 2"), "{m}");

    server.shutdown();
    server.wait().await;
    running.shutdown().await;
    stop.cancel();
}

/// Trigger mode through the admission hook (KCM 1.5 installed, its controller not running here):
/// `kubectl apply` of a regional Credential is handed to the distributor, which sets the trigger
/// annotation for KCM's controller, holds no finalizer, and writes nothing in the region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_through_the_webhook_in_trigger_mode_triggers_kcm_and_writes_nothing_regional() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (region, mgmt) = tokio::join!(regional::start("trigger-r1", false), regional::start("trigger-mgmt", false));
    region.seed_yaml(PROVIDER_INTERFACE).await;
    mgmt.seed_yaml(&management_seed(&region.kubeconfig_yaml())).await;
    support::kcm::set_kcm(&mgmt, "1.5.0").await;
    let token = mgmt.shipped_webhook_token().await;

    let live = prepare_live_webhook(&mgmt.kubeconfig_yaml_for_token(&token)).await;
    let running = live.start_live().await;
    assert_eq!(running.mode.current().mode(), credential_core::distribution::Mode::Trigger);
    let distributor = running.distributor.as_ref().unwrap();
    let sink = Arc::new(RecordingSink { inner: distributor.handle(), seen: Mutex::default() });
    let webhook = live.serve_live(&running, Some(sink.clone())).await;
    let LiveWebhook { server, index, stop, ca_pem, dir: _dir, .. } = webhook;
    eventually_some("management caches synced", WAIT, || index.synced().then_some(())).await;
    let handle = distributor.handle();
    eventually_some("this replica holds the distribution Lease", WAIT, || handle.is_leader().then_some(())).await;
    let (status, body) = support::admin_get(server.admin_addr, "/readyz");
    assert!(status == 200 && body.contains("distribution mode: trigger (") && body.contains("1.5.0"), "{body:?}");

    let base = format!("https://127.0.0.1:{}", server.addr.port());
    mgmt.apply(&shipped_webhook_configurations(&base, &ca_pem).await.unwrap()).await.unwrap();
    // Writes to what a distributor could write in the region, as the regional apiserver counts them.
    let regional_writes = async || {
        support::regional::requests_by_verb_resource(&region.metrics().await.unwrap())
            .into_iter()
            .filter(|((verb, res), _)| {
                ["POST", "PUT", "PATCH", "APPLY", "DELETE"].contains(&verb.as_str())
                    && ["secrets", "awsclusterstaticidentities", "namespaces"].contains(&res.as_str())
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let before = regional_writes().await;
    mgmt.apply(&regional_credential("aws-r1", "aws-id")).await.unwrap();
    let calls = sink.calls_for("kcm-system/aws-r1");
    assert_eq!(calls.first(), Some(&(Operation::Create, true)), "the hook handed the CREATE to the leader: {calls:?}");
    let stored = eventually_async("the trigger annotation set", WAIT, || async {
        let c = mgmt.get(API, "Credential", Some(SYS), "aws-r1").await?;
        c["metadata"]["annotations"][labels::TRIGGER_ANNOTATION].is_string().then_some(c)
    })
    .await;
    assert!(stored["metadata"]["finalizers"].is_null(), "trigger mode holds no finalizer: {stored}");
    let digest = stored["metadata"]["annotations"][labels::TRIGGER_ANNOTATION].as_str().unwrap();
    assert!(!digest.contains(&b64("AKIA-aws-id")) && !digest.contains("AKIA"), "a digest of versions: {digest}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(region.absent("v1", "Secret", Some(SYS), "aws-secret").await, "trigger mode copied the Secret itself");
    assert!(
        region.absent(INFRA_AV, "AWSClusterStaticIdentity", None, "aws-id").await,
        "trigger mode copied the identity"
    );
    assert_eq!(regional_writes().await, before, "trigger mode wrote to the region");

    server.shutdown();
    server.wait().await;
    running.shutdown().await;
    stop.cancel();
}
