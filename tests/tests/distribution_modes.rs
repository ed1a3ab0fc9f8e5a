//! Issue 14: distribution that coexists with KCM, on real API servers (a management and a regional
//! kube-apiserver from tests/kube-test-cluster). The mode is detected from KCM's Management and
//! Release objects with the shipped RBAC (a real ServiceAccount token); in trigger mode a test
//! stand-in for KCM's Credential controller (support/kcm.rs, documented there as NOT KCM) writes
//! the regional copies, and the webhook only triggers (an annotation on the Credential) and
//! verifies. Needs Go (to build the cluster once) and kubectl.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use credential_core::distribution::{Mode, ModeSetting};
use credential_core::model::labels;
use credential_webhook::distribution::{
    Backoff, DistributionConfig, DistributionMetrics, Distributor, KindLabel, LeaderElection, ModeControl,
    ORPHANED_COPIES,
};
use serde_json::{Value, json};
use support::kcm::{KcmStandIn, MANAGEMENT, Writes, set_kcm};
use support::lifecycle::fast_distribution_config;
use support::regional::{self, CRED_AV, Real, WAIT, register_region, requests_by_verb_resource};
use support::{PROVIDER_INTERFACE, SYS, b64, eventually_async};
use tokio_util::sync::CancellationToken;

const INFRA_AV: &str = "infrastructure.cluster.x-k8s.io/v1beta2";
/// Write verbs as `apiserver_request_total` labels them.
const WRITE_VERBS: [&str; 6] = ["POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"];
/// What a distributor could write in the regional cluster of this estate.
const COPY_RESOURCES: [&str; 3] = ["secrets", "awsclusterstaticidentities", "namespaces"];

struct Estate {
    mgmt: Real,
    region: Real,
    /// The shipped ServiceAccount's client in the management cluster.
    sa: kube::Client,
    stop: CancellationToken,
}

impl Drop for Estate {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Management and regional clusters, Region r1 (Ready), the AWS ProviderInterface in the region,
/// the AWS static identity and its Secret in the management cluster, KCM at `kcm_version`.
async fn estate(name: &str, kcm_version: &str) -> Estate {
    let (mgmt_name, region_name) = (format!("{name}-mgmt"), format!("{name}-r1"));
    let (mgmt, region) = tokio::join!(regional::start(&mgmt_name, false), regional::start(&region_name, false));
    region.apply(PROVIDER_INTERFACE).await.unwrap();
    let sa = mgmt.shipped_webhook_client().await;
    register_region(&mgmt, "r1", &region.kubeconfig_yaml()).await;
    rotate(&mgmt, "AKIA-0").await;
    mgmt.seed(json!({"apiVersion": INFRA_AV, "kind": "AWSClusterStaticIdentity", "metadata": {"name": "aws-id"},
        "spec": {"secretRef": "aws-secret"}}))
        .await;
    set_kcm(&mgmt, kcm_version).await;
    Estate { mgmt, region, sa, stop: CancellationToken::new() }
}

/// The source Secret with `key` as its data (a rotation).
async fn rotate(mgmt: &Real, key: &str) {
    mgmt.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "aws-secret", "namespace": SYS},
        "data": {"AccessKeyID": b64(key)}}))
        .await;
}

async fn credential(mgmt: &Real, name: &str) {
    mgmt.seed(json!({"apiVersion": CRED_AV, "kind": "Credential", "metadata": {"name": name, "namespace": SYS},
        "spec": {"region": "r1", "identityRef": {"apiVersion": INFRA_AV, "kind": "AWSClusterStaticIdentity", "name": "aws-id"}}}))
        .await;
}

impl Estate {
    /// The mode decided from the management cluster as the shipped ServiceAccount sees it, watched.
    async fn mode(&self, setting: ModeSetting, metrics: &DistributionMetrics) -> std::sync::Arc<ModeControl> {
        let control = ModeControl::start(&self.sa, setting, false, metrics.clone()).await.unwrap();
        let backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
        let watches = credential_webhook::informer::ClusterWatches::new("management", self.sa.clone(), backoff);
        control.watch(&watches, self.stop.clone());
        control
    }

    fn distributor(&self, control: &ModeControl, metrics: &DistributionMetrics, leader: bool) -> Distributor {
        let config = DistributionConfig {
            mode: control.handle(),
            verify_interval: Duration::from_secs(2),
            leader_election: leader.then(|| LeaderElection { namespace: SYS.to_string(), ..LeaderElection::default() }),
            ..fast_distribution_config("modes", Duration::from_secs(10))
        };
        Distributor::start_with_metrics(config, self.sa.clone(), metrics.clone())
    }

    fn stand_in(&self) -> KcmStandIn {
        KcmStandIn::start(self.mgmt.admin.clone(), HashMap::from([("r1".to_string(), self.region.admin.clone())]), SYS)
    }

    async fn credential(&self, name: &str) -> Option<Value> {
        self.mgmt.get(CRED_AV, "Credential", Some(SYS), name).await
    }

    /// Our condition once `accept` holds for it.
    async fn condition(&self, name: &str, what: &str, accept: impl Fn(&Value) -> bool) -> Value {
        eventually_async(&format!("{name}: {what}"), WAIT, || async {
            let c = self.credential(name).await?;
            let cond =
                c["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == labels::DISTRIBUTED_CONDITION)?;
            accept(cond).then(|| cond.clone())
        })
        .await
    }

    async fn reason(&self, name: &str, reason: &str) -> Value {
        let status = if reason == "InSync" || reason == "Distributed" { "True" } else { "False" };
        self.condition(name, &format!("reason {reason}"), |c| c["reason"] == reason && c["status"] == status).await
    }

    /// The note of our first Event with `reason` about Credential aws.
    async fn event(&self, reason: &str) -> String {
        eventually_async(&format!("a {reason} Event"), WAIT, || async {
            let events = self.mgmt.list("events.k8s.io/v1", "Event", Some(SYS)).await;
            events
                .iter()
                .find(|ev| ev["reason"] == reason && ev["regarding"]["name"] == "aws" && ev["type"] == "Warning")
                .map(|ev| ev["note"].as_str().unwrap_or_default().to_string())
        })
        .await
    }

    /// The note of our first Normal Event with `reason` about Credential aws.
    async fn normal_event(&self, reason: &str) -> String {
        eventually_async(&format!("a {reason} Event"), WAIT, || async {
            let events = self.mgmt.list("events.k8s.io/v1", "Event", Some(SYS)).await;
            events
                .iter()
                .find(|ev| ev["reason"] == reason && ev["regarding"]["name"] == "aws" && ev["type"] == "Normal")
                .map(|ev| ev["note"].as_str().unwrap_or_default().to_string())
        })
        .await
    }

    /// GET requests `cluster`'s apiserver served, by (verb, resource) (GET only).
    async fn gets(&self, cluster: &Real) -> Writes {
        requests_by_verb_resource(&cluster.metrics().await.unwrap())
            .into_iter()
            .filter(|((v, _), _)| v == "GET")
            .collect()
    }

    /// Waits until neither apiserver serves a GET for 3 s (longer than the verify interval, so a
    /// re-check it schedules is counted before the wait ends).
    async fn quiet(&self) {
        let mut last = (self.gets(&self.mgmt).await, self.gets(&self.region).await);
        loop {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let now = (self.gets(&self.mgmt).await, self.gets(&self.region).await);
            if now == last {
                return;
            }
            last = now;
        }
    }

    async fn region_secret(&self) -> Option<Value> {
        self.region.get("v1", "Secret", Some(SYS), "aws-secret").await
    }

    /// Write requests to the copy resources of the regional apiserver, by (verb, resource).
    async fn region_writes(&self) -> BTreeMap<(String, String), f64> {
        requests_by_verb_resource(&self.region.metrics().await.unwrap())
            .into_iter()
            .filter(|((verb, res), _)| WRITE_VERBS.contains(&verb.as_str()) && COPY_RESOURCES.contains(&res.as_str()))
            .collect()
    }
}

fn annotation(c: &Value, key: &str) -> Option<String> {
    c["metadata"]["annotations"][key].as_str().map(str::to_string)
}

fn has_finalizer(c: &Value) -> bool {
    c["metadata"]["finalizers"].as_array().is_some_and(|f| f.iter().any(|f| f == labels::DISTRIBUTION_FINALIZER))
}

fn delta(
    after: &BTreeMap<(String, String), f64>,
    before: &BTreeMap<(String, String), f64>,
) -> BTreeMap<(String, String), f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// Trigger mode end to end: KCM 1.5 detected; the Credential is triggered and KCM's stand-in copies;
/// a rotation changes the digest and reaches the region; an edited copy is reported Drifted, a deleted
/// one Missing (and KCM, reacting to our condition write, copies again); the mode is on the Lease; the regional apiserver saw writes only from the stand-in and
/// this test, never from the webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_mode_end_to_end_with_a_kcm_stand_in() {
    let e = estate("trig", "1.5.0").await;
    let metrics = DistributionMetrics::default();
    let control = e.mode(ModeSetting::Auto, &metrics).await;
    assert_eq!(control.current().mode(), Mode::Trigger, "{:?}", control.current());
    assert!(control.current().decision.reason.contains("KCM 1.5.0"), "{:?}", control.current());

    let before = e.region_writes().await;
    let kcm = e.stand_in();
    let d = e.distributor(&control, &metrics, true);
    credential(&e.mgmt, "aws").await;
    let cond = e.reason("aws", "InSync").await;
    assert!(cond["message"].as_str().unwrap().contains("2 copies in region r1 match their sources"), "{cond}");
    let digest = annotation(&e.credential("aws").await.unwrap(), labels::TRIGGER_ANNOTATION).expect("triggered");
    let copy = e.region_secret().await.expect("KCM's stand-in copied the Secret");
    assert_eq!(copy["metadata"]["labels"]["k0rdent.mirantis.com/credential.kcm-system.aws"], "true");
    assert!(!has_finalizer(&e.credential("aws").await.unwrap()), "trigger mode holds no finalizer");

    // The mode in force is on the Lease, for `kubectl credential`.
    eventually_async("the mode on the Lease", WAIT, || async {
        let lease = e.mgmt.get("coordination.k8s.io/v1", "Lease", Some(SYS), "credential-guard-distribution").await?;
        (annotation(&lease, labels::MODE_ANNOTATION).as_deref() == Some("trigger")
            && annotation(&lease, labels::MODE_REASON_ANNOTATION).is_some_and(|r| r.contains("KCM 1.5.0")))
        .then_some(())
    })
    .await;

    // Rotation: a new digest, KCM copies, in sync again.
    rotate(&e.mgmt, "AKIA-1").await;
    eventually_async("a new digest after the rotation", WAIT, || async {
        let now = annotation(&e.credential("aws").await?, labels::TRIGGER_ANNOTATION)?;
        (now != digest).then_some(())
    })
    .await;
    eventually_async("the rotated Secret in the region", WAIT, || async {
        (e.region_secret().await?["data"]["AccessKeyID"] == b64("AKIA-1")).then_some(())
    })
    .await;
    e.reason("aws", "InSync").await;

    // Someone edits the regional copy: Drifted, naming the key, never a value. Our condition write
    // is itself a Credential event, which KCM's controller (no predicate) answers with a copy: the
    // drift is repaired right after it is reported, so the report is read from its Warning Event.
    let test_writes = BTreeMap::from([
        (("PATCH".to_string(), "secrets".to_string()), 1.0),
        (("DELETE".to_string(), "secrets".to_string()), 1.0),
    ]);
    let edit = format!(r#"{{"data":{{"AccessKeyID":"{}"}}}}"#, b64("EDITED"));
    e.region.kubectl_ok(&["patch", "secret", "aws-secret", "-n", SYS, "-p", &edit], None).await.unwrap();
    let drifted = e.event("Drifted").await;
    assert!(drifted.contains("Secret kcm-system/aws-secret: data differs (keys: AccessKeyID)"), "{drifted}");
    for value in ["AKIA-1", "EDITED"] {
        assert!(!drifted.contains(value) && !drifted.contains(&b64(value)), "a value in: {drifted}");
    }
    assert!(metrics.drift.get_or_create(&KindLabel { kind: "Secret".into() }).get() >= 1);
    eventually_async("the edited copy repaired", WAIT, || async {
        (e.region_secret().await?["data"]["AccessKeyID"] == b64("AKIA-1")).then_some(())
    })
    .await;
    e.reason("aws", "InSync").await;

    // Someone deletes the copy: Missing (after KCM had its trigger: a Warning), then KCM copies again.
    e.region.kubectl_ok(&["delete", "secret", "aws-secret", "-n", SYS], None).await.unwrap();
    let missing = e.event("Missing").await;
    assert!(missing.contains("not yet copied into region r1: Secret kcm-system/aws-secret"), "{missing}");
    eventually_async("the deleted copy back", WAIT, || async { e.region_secret().await.map(drop) }).await;
    e.reason("aws", "InSync").await;

    // Every write the regional apiserver saw to the copies is the stand-in's or this test's. The
    // stand-in counts a write when its response arrives (and it reconciles on our condition writes
    // too), so an update in flight shows in the apiserver's count first: compared once they agree, or
    // as they stand after WAIT.
    let expected = || {
        let mut expected = kcm.writes();
        for (k, v) in &test_writes {
            *expected.entry(k.clone()).or_insert(0.0) += v;
        }
        expected
    };
    let deadline = std::time::Instant::now() + WAIT;
    let mut seen = delta(&e.region_writes().await, &before);
    while seen != expected() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        seen = delta(&e.region_writes().await, &before);
    }
    assert_eq!(seen, expected(), "regional writes besides KCM's stand-in and the test's own: the webhook wrote");
    assert!(metrics.triggers.get() >= 2, "the first copy and the rotation: {}", metrics.triggers.get());
    d.shutdown().await;
}

/// KCM upgraded from 1.4 to 1.5 at run time: auto switches write to trigger; the Credential written
/// in write mode is handed over (KCM takes our copies over, our finalizer and copies record go),
/// the copies stay, one of each, and the Credential deletes without getting stuck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kcm_upgrade_switches_write_to_trigger_and_hands_over() {
    let e = estate("switch", "1.4.0").await;
    let metrics = DistributionMetrics::default();
    let control = e.mode(ModeSetting::Auto, &metrics).await;
    assert_eq!(control.current().mode(), Mode::Write, "{:?}", control.current());
    let d = e.distributor(&control, &metrics, false);
    credential(&e.mgmt, "aws").await;
    e.reason("aws", "Distributed").await;
    let c = e.credential("aws").await.unwrap();
    assert!(has_finalizer(&c) && annotation(&c, labels::COPIES_ANNOTATION).is_some(), "write mode: {c}");

    // KCM 1.5 rolls out: its controller starts copying, the Release changes.
    let _kcm = e.stand_in();
    set_kcm(&e.mgmt, "1.5.0").await;
    eventually_async("auto switched to trigger", WAIT, || async {
        (control.current().mode() == Mode::Trigger).then_some(())
    })
    .await;
    eventually_async("handed over: no finalizer, no copies record, triggered", WAIT, || async {
        let c = e.credential("aws").await?;
        (!has_finalizer(&c)
            && annotation(&c, labels::COPIES_ANNOTATION).is_none()
            && annotation(&c, labels::TRIGGER_ANNOTATION).is_some())
        .then_some(())
    })
    .await;
    e.reason("aws", "InSync").await;
    let selector = format!("{}=true", labels::MANAGED);
    let secrets = e.region.kubectl_ok(&["get", "secrets", "-A", "-l", &selector, "-o", "name"], None).await.unwrap();
    assert_eq!(secrets.trim(), "secret/aws-secret", "one copy, kept");
    let copy = e.region_secret().await.unwrap();
    assert_eq!(copy["metadata"]["labels"]["k0rdent.mirantis.com/credential.kcm-system.aws"], "true", "KCM's now");
    assert_eq!(copy["data"]["AccessKeyID"], b64("AKIA-0"));
    assert!(metrics.handovers.get() >= 1);

    e.mgmt.kubectl_ok(&["delete", "credential", "aws", "-n", SYS, "--wait=true", "--timeout=30s"], None).await.unwrap();
    d.shutdown().await;
}

/// Credential aws distributed in write mode (KCM 1.4), then KCM 1.5's Release lands with its
/// controller not up yet (no stand-in): auto switched to trigger mode, nobody took the copies over.
async fn written_then_trigger(name: &str) -> (Estate, Distributor) {
    let e = estate(name, "1.4.0").await;
    let metrics = DistributionMetrics::default();
    let control = e.mode(ModeSetting::Auto, &metrics).await;
    let d = e.distributor(&control, &metrics, false);
    credential(&e.mgmt, "aws").await;
    e.reason("aws", "Distributed").await;
    set_kcm(&e.mgmt, "1.5.0").await;
    until("auto switched to trigger", async || control.current().mode() == Mode::Trigger).await;
    (e, d)
}

/// A Credential written in write mode and deleted in trigger mode before KCM took all its copies over
/// (KCM's controller not running yet; the identity's copy carries the label KCM puts on what it took
/// over, the Secret's does not): it deletes without getting stuck, the copy KCM had not taken over is
/// deleted (KCM takes nothing over for a deleted Credential, so nobody else would), the one KCM took
/// over stays untouched, and nothing is recorded as orphaned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_in_trigger_mode_before_kcm_took_over_releases_our_copies_and_keeps_kcms() {
    let (e, d) = written_then_trigger("early-delete").await;
    // KCM's controller is not up yet: it took over the identity's copy only.
    let kcm_label = "k0rdent.mirantis.com/credential.kcm-system.aws";
    let identity = "awsclusterstaticidentities.v1beta2.infrastructure.cluster.x-k8s.io";
    e.region.kubectl_ok(&["label", identity, "aws-id", &format!("{kcm_label}=true")], None).await.unwrap();
    e.reason("aws", "InSync").await;
    let c = e.credential("aws").await.unwrap();
    assert!(has_finalizer(&c), "held until KCM takes every copy over: {c}");
    e.mgmt.kubectl_ok(&["delete", "credential", "aws", "-n", SYS, "--wait=true", "--timeout=30s"], None).await.unwrap();
    assert!(e.credential("aws").await.is_none(), "deleted");

    assert!(e.region_secret().await.is_none(), "the copy KCM had not taken over is released (deleted)");
    let kept = e.region.get(INFRA_AV, "AWSClusterStaticIdentity", None, "aws-id").await.expect("KCM's copy stays");
    assert_eq!(kept["metadata"]["labels"][kcm_label], "true", "{kept}");
    assert!(
        kept["metadata"]["annotations"][labels::OWNERS_ANNOTATION].is_string(),
        "KCM's copy is not written to, not even to drop our owner: {kept}"
    );
    let record = e.mgmt.get("v1", "ConfigMap", Some(SYS), ORPHANED_COPIES).await;
    assert!(
        record.as_ref().is_none_or(|r| r["data"]["region.r1.kcm-system.aws"].is_null()),
        "nothing is left: {record:?}"
    );
    let note = e.normal_event("HandedOver").await;
    assert!(note.contains("1 deleted"), "{note}");
    d.shutdown().await;
}

/// The same, with the regional apiserver gone: the release is retried (`ReleasePending`) until
/// `--release-timeout` after the deletion, then the copies that may remain are recorded (names, never
/// data), the finalizer goes and the Credential is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_in_trigger_mode_with_its_region_down_records_what_is_left() {
    let (e, d) = written_then_trigger("early-delete-down").await;
    e.reason("aws", "InSync").await;

    e.region.stop().await;
    e.mgmt.kubectl_ok(&["delete", "credential", "aws", "-n", SYS, "--wait=false"], None).await.unwrap();
    let pending = e.reason("aws", "ReleasePending").await;
    assert!(pending["message"].as_str().unwrap().contains("region r1"), "{pending}");
    eventually_async("the Credential deleted once the release is given up", WAIT, || async {
        e.credential("aws").await.is_none().then_some(())
    })
    .await;
    let record = e.mgmt.get("v1", "ConfigMap", Some(SYS), ORPHANED_COPIES).await.expect("the orphaned-copies record");
    let entry = record["data"]["region.r1.kcm-system.aws"].as_str().expect("an entry for kcm-system/aws in r1");
    assert!(entry.contains("Secret kcm-system/aws-secret") && entry.contains("not released"), "{entry}");
    assert!(!entry.contains(&b64("AKIA-0")), "no secret data in the record: {entry}");
    d.shutdown().await;
}

/// One rotation of the source Secret in trigger mode, counted by the apiservers' own
/// `apiserver_request_total` less the KCM stand-in's own reads (the test polls with LIST only): the
/// identity is not read again in either cluster (its version is what the source watch holds, its copy
/// did not change), the Secret once (to judge the copy KCM rewrote), only the rewritten copy in the
/// region, and the Credential at most twice (the reconcile that triggers, the one KCM's write
/// brings): no re-check after the verify interval, no reconcile of our own writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_in_trigger_mode_reads_only_what_changed() {
    let e = estate("reads", "1.5.0").await;
    let metrics = DistributionMetrics::default();
    let control = e.mode(ModeSetting::Auto, &metrics).await;
    let kcm = e.stand_in();
    let d = e.distributor(&control, &metrics, false);
    credential(&e.mgmt, "aws").await;
    e.reason("aws", "InSync").await;
    let digest = annotation(&e.credential("aws").await.unwrap(), labels::TRIGGER_ANNOTATION).unwrap();
    e.quiet().await;
    let (mgmt_before, region_before) = (e.gets(&e.mgmt).await, e.gets(&e.region).await);
    let (kcm_mgmt_before, kcm_region_before) = (kcm.reads_in(MANAGEMENT), kcm.reads_in("r1"));
    let triggers = metrics.triggers.get();

    rotate(&e.mgmt, "AKIA-1").await;
    eventually_async("a new digest and the rotated copy", WAIT, || async {
        let creds = e.mgmt.list(CRED_AV, "Credential", Some(SYS)).await;
        let c = creds.iter().find(|c| c["metadata"]["name"] == "aws")?;
        let secrets = e.region.list("v1", "Secret", Some(SYS)).await;
        let copy = secrets.iter().find(|s| s["metadata"]["name"] == "aws-secret")?;
        (annotation(c, labels::TRIGGER_ANNOTATION)? != digest && copy["data"]["AccessKeyID"] == b64("AKIA-1"))
            .then_some(())
    })
    .await;
    e.quiet().await;

    let ours = |after: &Writes, before: &Writes, kcm_after: &Writes, kcm_before: &Writes, resource: &str| {
        let k = ("GET".to_string(), resource.to_string());
        let n = |m: &Writes| m.get(&k).copied().unwrap_or(0.0);
        (n(after) - n(before)) - (n(kcm_after) - n(kcm_before))
    };
    let (mgmt, region) = (e.gets(&e.mgmt).await, e.gets(&e.region).await);
    let (kcm_mgmt, kcm_region) = (kcm.reads_in(MANAGEMENT), kcm.reads_in("r1"));
    let m = |r: &str| ours(&mgmt, &mgmt_before, &kcm_mgmt, &kcm_mgmt_before, r);
    let r = |r: &str| ours(&region, &region_before, &kcm_region, &kcm_region_before, r);
    let counts = format!(
        "management GETs: credentials {} identities {} secrets {}; regional GETs: identities {} secrets {}",
        m("credentials"),
        m("awsclusterstaticidentities"),
        m("secrets"),
        r("awsclusterstaticidentities"),
        r("secrets")
    );
    println!("one rotation in trigger mode, our reads: {counts}");
    assert_eq!(m("awsclusterstaticidentities"), 0.0, "the identity read again: {counts}");
    assert_eq!(m("secrets"), 1.0, "the Secret is read once, to judge its rewritten copy: {counts}");
    assert_eq!(r("awsclusterstaticidentities"), 0.0, "the unchanged copy read again: {counts}");
    assert_eq!(r("secrets"), 1.0, "the rewritten copy is read once: {counts}");
    assert!((1.0..=2.0).contains(&m("credentials")), "reconciles (one Credential GET each): {counts}");
    assert_eq!(metrics.triggers.get(), triggers + 1, "one trigger for one rotation");
    let cond = e.reason("aws", "InSync").await;
    assert!(cond["message"].as_str().unwrap().contains("2 copies in region r1 match their sources"), "{cond}");
    d.shutdown().await;
}

/// KCM copies a source's annotations, so a Secret applied client-side carries its data in clear text
/// (`last-applied-configuration`) into the regional cluster. Trigger mode's verifier names the copy,
/// the annotation and the fix in a `KcmCopyDefect` Warning Event, never the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kcm_copy_carrying_last_applied_is_reported_as_a_defect_without_the_value() {
    let e = estate("defect", "1.5.0").await;
    e.mgmt
        .seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "aws-secret", "namespace": SYS,
            "annotations": {labels::LAST_APPLIED: "{\"stringData\":{\"AccessKeyID\":\"AKIA-CLEAR\"}}"}},
            "data": {"AccessKeyID": b64("AKIA-CLEAR")}}))
        .await;
    let metrics = DistributionMetrics::default();
    let control = e.mode(ModeSetting::Auto, &metrics).await;
    assert_eq!(control.current().mode(), Mode::Trigger);
    let _kcm = e.stand_in();
    let d = e.distributor(&control, &metrics, false);
    credential(&e.mgmt, "aws").await;
    let cond = e.reason("aws", "InSync").await;
    let copy = e.region_secret().await.unwrap();
    assert!(copy["metadata"]["annotations"][labels::LAST_APPLIED].is_string(), "KCM carried it over: {copy}");

    let note = e.event("KcmCopyDefect").await;
    assert!(
        note.contains("Secret kcm-system/aws-secret")
            && note.contains(labels::LAST_APPLIED)
            && note.contains("server-side"),
        "names the copy, the annotation and the fix: {note}"
    );
    assert!(!note.contains("AKIA-CLEAR") && !note.contains(&b64("AKIA-CLEAR")), "no secret data: {note}");
    assert!(!cond.to_string().contains("AKIA-CLEAR"), "no secret data in the condition: {cond}");
    d.shutdown().await;
}

/// Write mode is refused next to KCM 1.5 unless forced, with the reason and the way out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_mode_is_refused_next_to_kcm_1_5_unless_forced() {
    let e = estate("refuse", "1.5.0").await;
    let metrics = DistributionMetrics::default();
    let Err(err) = ModeControl::start(&e.sa, ModeSetting::Fixed(Mode::Write), false, metrics.clone()).await else {
        panic!("write mode started next to KCM 1.5.0");
    };
    let text = err.to_string();
    assert!(text.contains("KCM 1.5.0") && text.contains("--force-write-mode") && text.contains("trigger"), "{text}");
    let forced = ModeControl::start(&e.sa, ModeSetting::Fixed(Mode::Write), true, metrics).await.unwrap();
    assert_eq!(forced.current().mode(), Mode::Write);
    assert!(forced.current().decision.reason.contains("two writers"), "{:?}", forced.current());
}

/// Off: a Credential written in write mode is handed over (its copies recorded in the orphaned-copies
/// ConfigMap, finalizer and copies record removed, copies left in place); nothing regional is written,
/// for it or for a new Credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_mode_hands_over_and_writes_nothing_regional() {
    let e = estate("off", "1.4.0").await;
    let metrics = DistributionMetrics::default();
    let write = e.mode(ModeSetting::Auto, &metrics).await;
    let d = e.distributor(&write, &metrics, false);
    credential(&e.mgmt, "aws").await;
    e.reason("aws", "Distributed").await;
    d.shutdown().await;

    let before = e.region_writes().await;
    let off = e.mode(ModeSetting::Fixed(Mode::Off), &metrics).await;
    credential(&e.mgmt, "later").await;
    let d = e.distributor(&off, &metrics, false);
    let cond = e.reason("aws", "DistributionOff").await;
    assert!(cond["message"].as_str().unwrap().contains("Secret kcm-system/aws-secret"), "{cond}");
    let c = e.credential("aws").await.unwrap();
    assert!(!has_finalizer(&c) && annotation(&c, labels::COPIES_ANNOTATION).is_none(), "{c}");
    let record = e.mgmt.get("v1", "ConfigMap", Some(SYS), ORPHANED_COPIES).await.expect("the orphaned-copies record");
    let entry = record["data"]["region.r1.kcm-system.aws"].as_str().expect("an entry for kcm-system/aws in r1");
    assert!(entry.contains("Secret kcm-system/aws-secret") && entry.contains("mode off"), "{entry}");
    assert!(!entry.contains(&b64("AKIA-0")), "{entry}");
    assert!(e.region_secret().await.is_some(), "the copy stays");
    // The new Credential was listed with the old one: nothing was written for it.
    let later = e.credential("later").await.unwrap();
    assert!(later["status"]["conditions"].is_null() && !has_finalizer(&later), "{later}");
    assert!(delta(&e.region_writes().await, &before).is_empty(), "off mode wrote to the region");
    assert_eq!(
        metrics.mode.get_or_create(&credential_webhook::distribution::ModeLabel { mode: "off".into() }).get(),
        1
    );
    d.shutdown().await;
}

/// Polls `f` every 2 ms until it holds (the resolution of the latencies measured with it).
async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f().await {
        assert!(start.elapsed() < WAIT, "{what} not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let at = |q: usize| v[((v.len() * q).div_ceil(100)).saturating_sub(1).min(v.len() - 1)];
    (at(50), at(99), v[v.len() - 1])
}

/// Benchmark (run explicitly, numbers in webhook/src/distribution/BENCH.md): 100 rotations of the
/// source Secret in trigger mode (source change to the Credential annotated; source change to the
/// copy in sync, KCM's stand-in writing it), then KCM "downgraded" to 1.4 in the same run, so auto
/// switches to write mode, and 100 rotations there (source change to the copy in sync, we writing it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly (see webhook/src/distribution/BENCH.md)"]
async fn bench_trigger_latency_against_write_rotation() {
    const N: usize = 100;
    let e = estate("bench-modes", "1.5.0").await;
    let metrics = DistributionMetrics::default();
    let control = e.mode(ModeSetting::Auto, &metrics).await;
    let kcm = e.stand_in();
    let d = e.distributor(&control, &metrics, false);
    credential(&e.mgmt, "aws").await;
    e.reason("aws", "InSync").await;

    let digest = async || annotation(&e.credential("aws").await.unwrap_or_default(), labels::TRIGGER_ANNOTATION);
    let copy_is = async |key: &str| e.region_secret().await.is_some_and(|s| s["data"]["AccessKeyID"] == b64(key));
    let (mut annotated, mut trigger_synced, mut write_synced) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..N {
        let before = digest().await;
        let key = format!("AKIA-T{i}");
        let t0 = std::time::Instant::now();
        rotate(&e.mgmt, &key).await;
        until("annotated", async || digest().await != before).await;
        annotated.push(t0.elapsed());
        until("copy in sync", async || copy_is(&key).await).await;
        trigger_synced.push(t0.elapsed());
    }
    drop(kcm);
    set_kcm(&e.mgmt, "1.4.0").await;
    until("auto switched to write", async || control.current().mode() == Mode::Write).await;
    e.reason("aws", "Distributed").await;
    for i in 0..N {
        let key = format!("AKIA-W{i}");
        let t0 = std::time::Instant::now();
        rotate(&e.mgmt, &key).await;
        until("copy written", async || copy_is(&key).await).await;
        write_synced.push(t0.elapsed());
    }
    for (what, v) in [
        ("trigger: source change -> Credential annotated", annotated),
        ("trigger: source change -> copy in sync (KCM stand-in writes)", trigger_synced),
        ("write: source change -> copy in sync (we write)", write_synced),
    ] {
        let (p50, p99, max) = percentiles(v);
        println!("BENCH {what}: n={N} p50={p50:?} p99={p99:?} max={max:?}");
    }
    d.shutdown().await;
}
