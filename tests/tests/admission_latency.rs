//! Benchmark equipment (ignored; bench/run.sh runs it): the latency the real kube-apiserver itself
//! records for our webhook while a load of server-side applies of Credentials runs, next to the same
//! load without the webhook registered — the added latency a user feels.
//!
//! One cluster (tests/kube-test-cluster), the webhook in-process in live mode with the shipped RBAC
//! and webhook configurations. Each phase applies `CREDENTIALS` new Credentials and then changes
//! each once (`spec.description`), from `WORKERS` concurrent clients. Reported per phase, as one
//! `BENCH-ADMISSION {json}` line: the client-side latency of each apply (exact), and from the
//! apiserver's own histograms (`apiserver_request_duration_seconds` for the applies,
//! `apiserver_admission_webhook_admission_duration_seconds` for our two webhooks) the quantiles,
//! interpolated inside the histogram's buckets as Prometheus' `histogram_quantile` does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use support::real::{register_shipped_webhook, start_cluster, start_shipped_webhook};
use support::{SYS, eventually_async};

/// Credentials created (then updated) per phase.
const CREDENTIALS: usize = 300;
/// Concurrent appliers.
const WORKERS: usize = 8;
/// Our webhooks' names in the shipped configurations (deploy/base/webhooks.yaml).
const WEBHOOKS: [&str; 2] =
    ["validate.credential-guard.k0rdent.mirantis.com", "mutate.credential-guard.k0rdent.mirantis.com"];

fn credential(name: &str, description: &str) -> Value {
    json!({
        "apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Credential",
        "metadata": {"name": name, "namespace": SYS},
        "spec": {"description": description,
                 "identityRef": {"apiVersion": "v1", "kind": "Secret", "name": "bench-identity", "namespace": SYS}}
    })
}

/// `(upper bound, cumulative count)` of the buckets of `metric` over every series whose labels hold
/// all of `labels` and whose `name` label (when `names` is not empty) is one of `names`.
fn buckets(text: &str, metric: &str, labels: &[(&str, &str)], names: &[&str]) -> Vec<(f64, f64)> {
    let prefix = format!("{metric}_bucket{{");
    let mut sums: Vec<(f64, f64)> = Vec::new();
    for line in text.lines().filter(|l| l.starts_with(&prefix)) {
        let Some((inner, value)) = line[prefix.len()..].split_once('}') else { continue };
        let has = |k: &str, v: &str| inner.split(',').any(|p| p == format!("{k}=\"{v}\""));
        if !labels.iter().all(|(k, v)| has(k, v)) || (!names.is_empty() && !names.iter().any(|n| has("name", n))) {
            continue;
        }
        let Some(le) = inner.split(',').find_map(|p| p.strip_prefix("le=\"")?.strip_suffix('"')) else { continue };
        let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() };
        let count: f64 = value.trim().parse().unwrap();
        match sums.iter_mut().find(|(b, _)| *b == le) {
            Some((_, c)) => *c += count,
            None => sums.push((le, count)),
        }
    }
    sums.sort_by(|a, b| a.0.total_cmp(&b.0));
    sums
}

/// The buckets of `after` minus those of `before` (what the phase added).
fn delta(after: &[(f64, f64)], before: &[(f64, f64)]) -> Vec<(f64, f64)> {
    after.iter().map(|(le, c)| (*le, c - before.iter().find(|(b, _)| b == le).map_or(0.0, |(_, c)| *c))).collect()
}

/// Prometheus' `histogram_quantile`: linear inside the bucket that holds quantile `q`, seconds.
fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let width = count - lower.1;
            return Some(lower.0 + (le - lower.0) * if width > 0.0 { (rank - lower.1) / width } else { 1.0 });
        }
        lower = (le, count);
    }
    None
}

fn summary(buckets: &[(f64, f64)]) -> Value {
    let ms = |q: f64| quantile(q, buckets).map(|s| (s * 1e6).round() / 1e3);
    json!({
        "count": buckets.last().map_or(0.0, |b| b.1),
        "p50_ms": ms(0.5), "p99_ms": ms(0.99),
        "buckets": buckets.iter().map(|(le, c)| json!([if le.is_infinite() { "+Inf".to_string() } else { le.to_string() }, c])).collect::<Vec<_>>(),
    })
}

/// Client-side latencies (µs, sorted) of every apply of one phase: creates, then one change each.
async fn load(client: kube::Client, prefix: &str) -> Vec<u64> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("k0rdent.mirantis.com", "v1beta1", "Credential"));
    let api: Arc<Api<DynamicObject>> = Arc::new(Api::namespaced_with(client, SYS, &ar));
    let mut all = Vec::new();
    for round in ["AWS static keys", "AWS static keys, rotated"] {
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..WORKERS {
            let api = api.clone();
            let prefix = prefix.to_string();
            tasks.spawn(async move {
                let mut took = Vec::new();
                for i in (w..CREDENTIALS).step_by(WORKERS) {
                    let name = format!("{prefix}-{i}");
                    let body = credential(&name, round);
                    let t0 = Instant::now();
                    api.patch(&name, &PatchParams::apply("bench").force(), &Patch::Apply(&body))
                        .await
                        .unwrap_or_else(|e| panic!("apply Credential {name}: {e}"));
                    took.push(t0.elapsed().as_micros() as u64);
                }
                took
            });
        }
        while let Some(t) = tasks.join_next().await {
            all.extend(t.unwrap());
        }
    }
    all.sort_unstable();
    all
}

fn client_summary(sorted: &[u64]) -> Value {
    let at = |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    json!({"requests": sorted.len(), "p50_us": at(0.5), "p99_us": at(0.99), "max_us": sorted.last()})
}

/// One phase: the load, the client's latencies and the apiserver's histograms over exactly it.
async fn phase(c: &credential_e2e::KubeCluster, label: &str, prefix: &str, webhook: bool) -> Value {
    let request = |t: &str| {
        buckets(t, "apiserver_request_duration_seconds", &[("resource", "credentials"), ("verb", "APPLY")], &[])
    };
    let hook = |t: &str, kind: &str| {
        buckets(t, "apiserver_admission_webhook_admission_duration_seconds", &[("type", kind)], &WEBHOOKS)
    };
    let before = c.metrics().await.unwrap();
    let started = Instant::now();
    let took = load(c.client().await.unwrap(), prefix).await;
    let wall = started.elapsed();
    let after = c.metrics().await.unwrap();
    let mut out = json!({
        "label": label,
        "webhook_registered": webhook,
        "credentials": CREDENTIALS,
        "workers": WORKERS,
        "wall_s": wall.as_secs_f64(),
        "client": client_summary(&took),
        "apiserver_request": summary(&delta(&request(&after), &request(&before))),
    });
    if webhook {
        out["webhook_validating"] = summary(&delta(&hook(&after, "validating"), &hook(&before, "validating")));
        out["webhook_mutating"] = summary(&delta(&hook(&after, "admit"), &hook(&before, "admit")));
    }
    out
}

#[tokio::test]
#[ignore = "benchmark: run by bench/run.sh (a few minutes on a real apiserver)"]
async fn bench_apiserver_admission_latency() {
    let c = start_cluster("admlat", false, true).await;
    let hook = start_shipped_webhook(&c).await;
    let identity = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bench-identity", "namespace": SYS},
                          "stringData": {"accessKey": "AKIA", "secretKey": "s"}});
    c.apply(&identity.to_string()).await.unwrap();

    // Warm both paths (connections, caches), then measure without, with, and again without the
    // webhook, so a drift of the machine over the run shows.
    let _ = load(c.client().await.unwrap(), "warm").await;
    let without = phase(&c, "without-webhook", "plain", false).await;
    register_shipped_webhook(&c, &hook).await;
    let probe = credential("probe", "probe").to_string();
    eventually_async("the webhook judges requests", Duration::from_secs(60), || async {
        let out =
            c.kubectl_with(&["apply", "--dry-run=server", "-f", "-"], Some(&probe), Duration::from_secs(30)).await;
        out.ok().filter(|o| o.success()).map(|_| ())
    })
    .await;
    let _ = load(c.client().await.unwrap(), "warm-hooked").await;
    let with = phase(&c, "with-webhook", "hooked", true).await;
    let served = hook.metrics.encode();
    assert!(
        served.contains("credential_webhook_admission_requests_total{webhook=\"validate\",kind=\"Credential\",operation=\"CREATE\",decision=\"allowed\"}"),
        "the webhook answered the load: {served}"
    );
    for p in [without, with] {
        println!("BENCH-ADMISSION {p}");
    }
}
