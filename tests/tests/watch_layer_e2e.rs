//! The webhook process opens one watch per kind per cluster (issue 16): the admission cache, the
//! distributor and the mode control read one watch layer. Measured on the real kube-apiservers of a
//! management and a regional cluster with the apiserver's own gauge
//! `apiserver_longrunning_requests{verb="WATCH"}` by resource, before the webhook starts and once it
//! serves admission and has distributed a regional Credential: the difference is the webhook's.
//!
//! `watch_layer_memory` (ignored, a benchmark) prints the process's RSS growth with many Credentials.
//! Reproduce both: `cargo test -p credential-e2e --test watch_layer_e2e -- --include-ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use credential_core::Estate;
use credential_core::model::labels;
use credential_e2e::KubeCluster;
use credential_e2e::cluster::metric_sum;
use credential_webhook::cache::ServingEstate;
use serde_json::json;
use support::regional::{self, CRED_AV, Real, WAIT, register_region};
use support::{PROVIDER_INTERFACE, SYS, b64, eventually_async, eventually_some, prepare_live_webhook};

const INFRA_AV: &str = "infrastructure.cluster.x-k8s.io/v1beta2";

/// Open WATCH requests per resource the apiserver serves now.
async fn open_watches(c: &KubeCluster) -> BTreeMap<String, f64> {
    let text = c.metrics().await.unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("apiserver_longrunning_requests{")) {
        if !line.contains("verb=\"WATCH\"") {
            continue;
        }
        let Some(resource) = line.split("resource=\"").nth(1).and_then(|r| r.split('"').next()) else { continue };
        if out.contains_key(resource) {
            continue;
        }
        let n = metric_sum(&text, "apiserver_longrunning_requests", &[("verb", "WATCH"), ("resource", resource)]);
        out.insert(resource.to_string(), n);
    }
    out
}

/// The watches opened between two samples, by resource (only resources that gained some).
fn opened(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(r, n)| (r.clone(), n - before.get(r).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d > 0.0)
        .collect()
}

/// The management estate: an AWS identity with its Secret, the ProviderInterface, Region r1.
async fn seed(mgmt: &Real, region: &Real) {
    region.seed_yaml(PROVIDER_INTERFACE).await;
    mgmt.seed_yaml(PROVIDER_INTERFACE).await;
    mgmt.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "aws-secret", "namespace": SYS},
        "data": {"AccessKeyID": b64("AKIA"), "SecretAccessKey": b64("very-secret")}}))
        .await;
    mgmt.seed(json!({"apiVersion": INFRA_AV, "kind": "AWSClusterStaticIdentity", "metadata": {"name": "aws-id"},
        "spec": {"secretRef": "aws-secret"}}))
        .await;
    register_region(mgmt, "r1", &region.kubeconfig_yaml()).await;
}

fn credential(name: &str) -> serde_json::Value {
    json!({"apiVersion": CRED_AV, "kind": "Credential", "metadata": {"name": name, "namespace": SYS},
        "spec": {"region": "r1", "identityRef": {"apiVersion": INFRA_AV, "kind": "AWSClusterStaticIdentity",
            "name": "aws-id"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_opens_one_watch_per_kind_per_cluster() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (region, mgmt) = tokio::join!(regional::start("r1", false), regional::start("mgmt", false));
    seed(&mgmt, &region).await;
    let token = mgmt.shipped_webhook_token().await;
    // Settle: the apiservers' own informers have started before the baseline is taken.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (mgmt_before, region_before) = (open_watches(&mgmt).await, open_watches(&region).await);

    let live = prepare_live_webhook(&mgmt.kubeconfig_yaml_for_token(&token)).await;
    let webhook = live.start_live().await;
    let index = webhook.index.clone();
    eventually_some("management caches synced", WAIT, || index.synced().then_some(())).await;
    let handle = webhook.distributor.as_ref().unwrap().handle();
    eventually_some("this replica distributes", WAIT, || handle.is_leader().then_some(())).await;

    mgmt.seed(credential("aws-r1")).await;
    eventually_async("Secret copied into r1", WAIT, || async {
        region.get("v1", "Secret", Some(SYS), "aws-secret").await
    })
    .await;
    eventually_async("condition True", WAIT, || async {
        let c = mgmt.get(CRED_AV, "Credential", Some(SYS), "aws-r1").await?;
        c.pointer("/status/conditions")?
            .as_array()?
            .iter()
            .any(|c| c["type"] == labels::DISTRIBUTED_CONDITION && c["status"] == "True")
            .then_some(())
    })
    .await;
    // Regional caches synced too (the admission index knows r1).
    eventually_some("regional caches synced", WAIT, || {
        index.knows_cluster(&credential_core::estate::Cluster::Region("r1".into())).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mgmt_opened = opened(&mgmt_before, &open_watches(&mgmt).await);
    let region_opened = opened(&region_before, &open_watches(&region).await);
    println!("watches the webhook opened in the management cluster: {mgmt_opened:?}");
    println!("watches the webhook opened in the regional cluster:   {region_opened:?}");

    // Each kind the webhook reads is watched, and watched once.
    for resource in ["credentials", "regions", "providerinterfaces", "secrets", "awsclusterstaticidentities"] {
        assert_eq!(mgmt_opened.get(resource), Some(&1.0), "management {resource}: {mgmt_opened:?}");
    }
    for resource in ["providerinterfaces", "secrets", "awsclusterstaticidentities"] {
        assert_eq!(region_opened.get(resource), Some(&1.0), "regional {resource}: {region_opened:?}");
    }
    for (resource, n) in mgmt_opened.iter().chain(&region_opened) {
        assert_eq!(*n, 1.0, "{resource} watched {n} times: {mgmt_opened:?} {region_opened:?}");
    }

    webhook.shutdown().await;
    live.stop.cancel();
}

/// RSS of this process in KiB (VmRSS).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// A benchmark, not a check: the growth of this process's RSS from before the webhook starts to once
/// its caches hold `WATCH_LAYER_CREDENTIALS` (default 10,000) regional Credentials spread over
/// `WATCH_LAYER_REGIONS` (default 2) Regions, each its own apiserver, and again after a minute of distribution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: starts several apiservers and stores 10,000 Credentials"]
async fn watch_layer_memory() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (credentials, regions) = (env("WATCH_LAYER_CREDENTIALS", 10_000), env("WATCH_LAYER_REGIONS", 2));
    let mgmt = regional::start("mgmt", false).await;
    let mut clusters = Vec::new();
    for i in 0..regions {
        let region = regional::start(&format!("r{i}"), false).await;
        region.seed_yaml(PROVIDER_INTERFACE).await;
        clusters.push(region);
    }
    mgmt.seed_yaml(PROVIDER_INTERFACE).await;
    for (i, region) in clusters.iter().enumerate() {
        register_region(&mgmt, &format!("r{i}"), &region.kubeconfig_yaml()).await;
    }
    // Credentials whose identity does not exist: planned (SourceMissing), nothing to copy, so the
    // measure is the caches and the distributor's bookkeeping, not copies.
    let mut yaml = String::new();
    for i in 0..credentials {
        yaml.push_str(&format!(
            "---\napiVersion: {CRED_AV}\nkind: Credential\nmetadata: {{name: c{i}, namespace: {SYS}}}\nspec:\n  region: r{}\n  \
             identityRef: {{apiVersion: {INFRA_AV}, kind: AWSClusterStaticIdentity, name: absent}}\n",
            i % regions.max(1)
        ));
    }
    let chunk = 500;
    let docs: Vec<&str> = yaml.split("---\n").filter(|d| !d.is_empty()).collect();
    for part in docs.chunks(chunk) {
        mgmt.kubectl_ok(&["create", "-f", "-"], Some(&part.iter().map(|d| format!("---\n{d}")).collect::<String>()))
            .await
            .unwrap();
    }
    let token = mgmt.shipped_webhook_token().await;
    let live = prepare_live_webhook(&mgmt.kubeconfig_yaml_for_token(&token)).await;
    let before = rss_kib();
    let started = std::time::Instant::now();
    let webhook = live.start_live().await;
    let index: Arc<credential_webhook::cache::Index> = webhook.index.clone();
    let limit = Duration::from_secs(600);
    eventually_some("management caches synced", limit, || index.synced().then_some(())).await;
    for i in 0..regions {
        let r = credential_core::estate::Cluster::Region(format!("r{i}"));
        eventually_some("regional caches synced", limit, || index.knows_cluster(&r).then_some(())).await;
    }
    let synced = rss_kib();
    // The distributor works through every Credential (each fails with SourceMissing and is retried
    // with backoff, so its queue never drains): a fixed minute of it.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let after = rss_kib();
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "webhook RSS growth with {credentials} Credentials and {regions} Regions: {:.1} MiB when synced, {:.1} MiB a \
         minute later (process {:.1} -> {:.1} -> {:.1} MiB; synced after {:.0}s)",
        mib(synced.saturating_sub(before)),
        mib(after.saturating_sub(before)),
        mib(before),
        mib(synced),
        mib(after),
        started.elapsed().as_secs_f64() - 60.0
    );
    webhook.shutdown().await;
    live.stop.cancel();
}
