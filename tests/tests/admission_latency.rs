//! Benchmark equipment (ignored; bench/run.sh runs it): the latency the real kube-apiserver itself
//! records for our webhook while a load of server-side applies of Credentials runs, next to the same
//! load without the webhook registered — the added latency a user feels.
//!
//! One cluster (tests/kube-test-cluster). Phases, each under the same load: no webhook registered;
//! the ceiling (`bare-webhook`, tests/src/bin/bare-webhook.rs: a constant "allowed" on the webhook's
//! stack, in its own process) registered under our webhooks' names, i.e. what any webhook costs the
//! apiserver on this machine; our webhook (live mode, the shipped RBAC and webhook configurations) on a
//! runtime of its own, as in its own process; the ceiling again (drift of the machine over the run).
//! Each phase applies `CREDENTIALS` new Credentials and then changes each once (`spec.description`),
//! from `WORKERS` concurrent clients. Reported per phase, as one `BENCH-ADMISSION {json}` line: the
//! client-side latency of each apply (exact), from the apiserver's own histograms
//! (`apiserver_request_duration_seconds` for the applies,
//! `apiserver_admission_webhook_admission_duration_seconds` for the two registered webhooks) the
//! quantiles, interpolated inside the histogram's buckets as Prometheus' `histogram_quantile` does, and
//! for our webhook its own decision time (`credential_webhook_admission_duration_seconds`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use credential_e2e::cluster::{metric_sum, shipped_webhook_configurations};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use support::real::{register_shipped_webhook, shipped_webhook_token, start_cluster};
use support::{LiveWebhook, SYS, eventually_async, start_live_webhook};

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
async fn phase(c: &credential_e2e::KubeCluster, label: &str, prefix: &str, webhook: Option<&LiveWebhook>) -> Value {
    let request = |t: &str| {
        buckets(t, "apiserver_request_duration_seconds", &[("resource", "credentials"), ("verb", "APPLY")], &[])
    };
    let hook = |t: &str, kind: &str| {
        buckets(t, "apiserver_admission_webhook_admission_duration_seconds", &[("type", kind)], &WEBHOOKS)
    };
    // Our webhook's own decision time, both endpoints (seconds, its own buckets).
    let own = |hook: Option<&LiveWebhook>| {
        hook.map(|h| buckets(&h.metrics.encode(), "credential_webhook_admission_duration_seconds", &[], &[]))
    };
    let registered = !label.starts_with("without");
    let before = c.metrics().await.unwrap();
    let own_before = own(webhook);
    let started = Instant::now();
    let took = load(c.client().await.unwrap(), prefix).await;
    let wall = started.elapsed();
    let after = c.metrics().await.unwrap();
    let mut out = json!({
        "label": label,
        "webhook_registered": registered,
        "credentials": CREDENTIALS,
        "workers": WORKERS,
        "wall_s": wall.as_secs_f64(),
        "client": client_summary(&took),
        "apiserver_request": summary(&delta(&request(&after), &request(&before))),
    });
    if registered {
        out["webhook_validating"] = summary(&delta(&hook(&after, "validating"), &hook(&before, "validating")));
        out["webhook_mutating"] = summary(&delta(&hook(&after, "admit"), &hook(&before, "admit")));
    }
    if let (Some(after), Some(before)) = (own(webhook), own_before) {
        out["webhook_own_decision"] = summary(&delta(&after, &before));
    }
    out
}

/// Calls the apiserver has made to webhooks of our names (both types), from its histogram.
async fn webhook_calls(c: &credential_e2e::KubeCluster) -> f64 {
    let text = c.metrics().await.unwrap();
    let all = buckets(&text, "apiserver_admission_webhook_admission_duration_seconds", &[], &WEBHOOKS);
    all.last().map_or(0.0, |b| b.1)
}

/// Reviews our webhook has answered.
fn answered(hook: &LiveWebhook) -> f64 {
    metric_sum(&hook.metrics.encode(), "credential_webhook_admission_requests_total", &[])
}

/// Server-side dry-run applies until the webhooks of our names answer them and it is ours exactly when
/// `ours` is (the apiserver picks up a changed configuration a moment later).
async fn until_registered(c: &credential_e2e::KubeCluster, hook: &LiveWebhook, ours: bool) {
    let probe = credential("probe", "probe").to_string();
    let what = if ours { "our webhook answers admission" } else { "the ceiling answers admission" };
    eventually_async(what, Duration::from_secs(60), || async {
        let (calls, by_us) = (webhook_calls(c).await, answered(hook));
        let out =
            c.kubectl_with(&["apply", "--dry-run=server", "-f", "-"], Some(&probe), Duration::from_secs(30)).await;
        let ok = out.ok().is_some_and(|o| o.success());
        (ok && webhook_calls(c).await > calls && (answered(hook) > by_us) == ours).then_some(())
    })
    .await;
}

/// The ceiling server as its own process on a free port, serving certificates for 127.0.0.1.
struct Ceiling {
    child: std::process::Child,
    url: String,
    ca_pem: String,
    _dir: tempfile::TempDir,
}

impl Ceiling {
    fn start() -> Ceiling {
        let dir = tempfile::tempdir().unwrap();
        let written = credential_webhook::certs::write_dir(dir.path(), &["127.0.0.1".to_string()]).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_bare-webhook"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--tls-cert-file")
            .arg(&written.tls_cert)
            .arg("--tls-key-file")
            .arg(&written.tls_key)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "bare-webhook did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let ca_pem = std::fs::read_to_string(&written.ca_cert).unwrap();
        Ceiling { child, url: format!("https://127.0.0.1:{port}"), ca_pem, _dir: dir }
    }
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
#[ignore = "benchmark: run by bench/run.sh (a few minutes on a real apiserver)"]
async fn bench_apiserver_admission_latency() {
    let c = start_cluster("admlat", false, true).await;
    // Our webhook on a runtime of its own (two workers, as on a two-CPU node): on the test's
    // single-threaded runtime it would wait behind the load's own client work.
    let yaml = c.kubeconfig_yaml_for_token(&shipped_webhook_token(&c).await);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let hook = runtime.spawn(async move { start_live_webhook(&yaml).await }).await.unwrap();
    let identity = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bench-identity", "namespace": SYS},
                          "stringData": {"accessKey": "AKIA", "secretKey": "s"}});
    c.apply(&identity.to_string()).await.unwrap();
    let ceiling = Ceiling::start();

    // Warm each path (connections, caches) before measuring it.
    let _ = load(c.client().await.unwrap(), "warm").await;
    let without = phase(&c, "without-webhook", "plain", None).await;

    let register_ceiling = || async {
        c.apply(&shipped_webhook_configurations(&ceiling.url, &ceiling.ca_pem).await.unwrap()).await.unwrap();
        until_registered(&c, &hook, false).await;
    };
    register_ceiling().await;
    let _ = load(c.client().await.unwrap(), "warm-ceiling").await;
    let bare = phase(&c, "ceiling", "bare", None).await;

    register_shipped_webhook(&c, &hook).await;
    until_registered(&c, &hook, true).await;
    let _ = load(c.client().await.unwrap(), "warm-hooked").await;
    let with = phase(&c, "with-webhook", "hooked", Some(&hook)).await;
    let served = hook.metrics.encode();
    assert!(
        served.contains("credential_webhook_admission_requests_total{webhook=\"validate\",kind=\"Credential\",operation=\"CREATE\",decision=\"allowed\"}"),
        "the webhook answered the load: {served}"
    );

    // The ceiling again: how far the machine drifted over the run.
    register_ceiling().await;
    let _ = load(c.client().await.unwrap(), "warm-ceiling-2").await;
    let bare_again = phase(&c, "ceiling-again", "bare2", None).await;

    for p in [without, bare, with, bare_again] {
        println!("BENCH-ADMISSION {p}");
    }
    hook.stop.cancel();
    drop(hook);
    runtime.shutdown_background();
}
