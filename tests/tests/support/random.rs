//! Equipment of the randomized and multi-replica lifecycle suites (tests/tests/lifecycle_random.rs):
//! a small seeded PRNG whose sequences replay, distributor replicas that each run in a runtime of
//! their own (so one can crash: its runtime goes away mid-request, no graceful release of the
//! Lease), a recorder of every version of the copies a watch sees, and a scan for Secret values
//! where they must never appear.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use credential_webhook::distribution::{DistributionConfig, Distributor, DistributorHandle};
use futures_util::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher;
use serde_json::Value;

/// xorshift64*: tiny, deterministic, good enough to pick operations. Never seeded with 0.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng((seed ^ 0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// An index into `weights`, each chosen in proportion to its weight.
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut roll = self.next_u64() % total.max(1);
        for (i, &w) in weights.iter().enumerate() {
            if roll < u64::from(w) {
                return i;
            }
            roll -= u64::from(w);
        }
        weights.len() - 1
    }
}

/// `$var` as a number when set (the replay of a failure), else one derived from the clock; printed
/// either way so a failing run names it.
pub fn seed_from_env(var: &str) -> u64 {
    let seed = match std::env::var(var) {
        Ok(s) => s.trim().parse().unwrap_or_else(|_| panic!("{var}={s} is not a number")),
        Err(_) => {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
                % 1_000_000_007
        }
    };
    eprintln!("{var}={seed}");
    seed
}

/// `$var` as a number, or `default`.
pub fn usize_from_env(var: &str, default: usize) -> usize {
    std::env::var(var).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(default)
}

enum Stop {
    /// The runtime is dropped at once: every task stops at its next poll, requests in flight are
    /// cut, nothing runs afterwards (no Lease release, no finalizer removal): a crashed process.
    Crash,
    /// `Distributor::shutdown`: workers finish, the Lease is released.
    Graceful,
}

/// One distributor replica (the distribution half of a credential-webhook pod) running in a
/// runtime of its own on its own thread, with its own kube client.
pub struct Replica {
    pub instance: String,
    handle: DistributorHandle,
    alive: Arc<AtomicBool>,
    stop: Option<mpsc::Sender<Stop>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Replica {
    /// Starts `config` (its `instance` names the replica) with a client for `kubeconfig_yaml`.
    pub fn start(config: DistributionConfig, kubeconfig_yaml: &str) -> Replica {
        let instance = config.instance.clone();
        let kubeconfig = kubeconfig_yaml.to_string();
        let (handle_tx, handle_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<Stop>();
        let thread = std::thread::Builder::new()
            .name(format!("replica-{instance}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("replica-worker")
                    .enable_all()
                    .build()
                    .unwrap();
                let distributor = rt.block_on(async {
                    let client = super::regional::client_from(&kubeconfig).await;
                    Distributor::start(config, client)
                });
                handle_tx.send(distributor.handle()).unwrap();
                match stop_rx.recv().unwrap_or(Stop::Crash) {
                    Stop::Crash => rt.shutdown_background(),
                    Stop::Graceful => {
                        rt.block_on(async {
                            tokio::time::timeout(Duration::from_secs(30), distributor.shutdown())
                                .await
                                .expect("graceful distributor shutdown within 30 s");
                        });
                        rt.shutdown_timeout(Duration::from_secs(5));
                    }
                }
            })
            .unwrap();
        let handle = handle_rx.recv_timeout(Duration::from_secs(30)).expect("replica started within 30 s");
        Replica { instance, handle, alive: Arc::new(AtomicBool::new(true)), stop: Some(stop_tx), thread: Some(thread) }
    }

    /// Whether this replica is alive and distributing (holds the Lease).
    pub fn is_leader(&self) -> bool {
        self.alive.load(Ordering::SeqCst) && self.handle.is_leader()
    }

    /// Credentials waiting or in progress in this replica's queue.
    pub fn pending(&self) -> usize {
        self.handle.pending()
    }

    /// Waits (at most `limit`, failing the test) until this replica leads and its queue stayed
    /// empty for a second: the first convergence of every Credential of its term is done.
    pub async fn settled(&self, limit: Duration) {
        let start = std::time::Instant::now();
        let mut idle_since: Option<std::time::Instant> = None;
        loop {
            if self.is_leader() && self.pending() == 0 {
                let since = *idle_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= Duration::from_secs(1) {
                    return;
                }
            } else {
                idle_since = None;
            }
            assert!(start.elapsed() < limit, "{} did not lead with an idle queue within {limit:?}", self.instance);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stop_with(&mut self, how: Stop) {
        self.alive.store(false, Ordering::SeqCst);
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(how);
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("replica thread ended cleanly");
        }
    }

    /// Kills the replica as a crash would (see [`Stop::Crash`]). Blocks only to join its thread.
    pub fn crash(mut self) {
        self.stop_with(Stop::Crash);
    }

    /// Stops it as a pod's SIGTERM would: the term ends, the Lease is released.
    pub async fn shutdown(mut self) {
        tokio::task::spawn_blocking(move || self.stop_with(Stop::Graceful)).await.unwrap();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.stop_with(Stop::Crash);
    }
}

/// Object name -> (resourceVersion, content) of every version seen, oldest first.
pub type Versions = BTreeMap<String, Vec<(String, Value)>>;

/// Every version of each object a watch saw: `name` (or `namespace/name`) -> (resourceVersion,
/// content) in the order seen. Content is what `content` extracts (e.g. a Secret's `data`).
#[derive(Clone, Default)]
pub struct VersionLog {
    seen: Arc<Mutex<Versions>>,
}

impl VersionLog {
    /// Watches `api` (every event, the initial list included) until the returned guard drops.
    pub fn record(&self, api: Api<DynamicObject>, content: fn(&Value) -> Value) -> WatchGuard {
        let seen = Arc::clone(&self.seen);
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            while let Some(event) = stream.next().await {
                let obj = match event {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => o,
                    Ok(_) => continue,
                    Err(e) => {
                        eprintln!("version log watch retrying: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                let v = serde_json::to_value(&obj).unwrap();
                let name = match v.pointer("/metadata/namespace").and_then(Value::as_str) {
                    Some(ns) => format!("{ns}/{}", v["metadata"]["name"].as_str().unwrap_or_default()),
                    None => v["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                };
                let rv = v["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
                let mut seen = seen.lock().unwrap();
                let versions = seen.entry(name).or_default();
                if versions.last().is_none_or(|(last, _)| *last != rv) {
                    versions.push((rv, content(&v)));
                }
            }
        });
        WatchGuard(task)
    }

    /// How many objects were seen.
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn snapshot(&self) -> Versions {
        self.seen.lock().unwrap().clone()
    }

    /// Objects of which two versions had different content: `name -> the distinct contents`.
    pub fn conflicting(&self) -> BTreeMap<String, Vec<Value>> {
        let mut out = BTreeMap::new();
        for (name, versions) in self.seen.lock().unwrap().iter() {
            let mut distinct: Vec<Value> = Vec::new();
            for (_, c) in versions {
                if !distinct.contains(c) {
                    distinct.push(c.clone());
                }
            }
            if distinct.len() > 1 {
                out.insert(name.clone(), distinct);
            }
        }
        out
    }
}

/// Stops a [`VersionLog`] watch when dropped.
pub struct WatchGuard(tokio::task::JoinHandle<()>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The places in `haystack` (a JSON dump, named `where_`) where any of `values` appears, plain or
/// base64-encoded: Secret data must stay in Secrets.
pub fn leaks(where_: &str, haystack: &str, values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| [v.clone(), super::b64(v)])
        .filter(|needle| haystack.contains(needle.as_str()))
        .map(|needle| format!("{needle} in {where_}"))
        .collect()
}
