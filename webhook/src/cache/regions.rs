//! The regional caches: for each Region with a usable kubeconfig reference, its cluster's
//! ProviderInterfaces and CRDs, through the regional cluster the distributor shares
//! ([`crate::informer::RegionalClusters`]). A Region whose kubeconfig Secret changes, or whose
//! watches keep failing, gets its cluster rebuilt from a fresh read of the Secret.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use credential_core::estate::{Cluster, Estate};
use credential_core::gvk::Gvk;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Index;
use super::live::{Feed, REGIONAL_STALE_AFTER, Staleness, SyncGroup, feed};
use crate::informer::{Informers, RegionalCluster, Trim, WatchSpec};
use crate::metrics::Metrics;

/// Metadata reads of kubeconfig Secrets outside the system namespace: within this, this many at once.
const KEY_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a Region's kubeconfig lives: the core's one answer (a Region without a usable reference
/// gets no regional cache; admission reports it through the Region rules).
type KubeconfigSource = credential_core::kubeconfig::KubeconfigRef;

fn kubeconfig_source(region: &Value, system_namespace: &str) -> Option<KubeconfigSource> {
    credential_core::kubeconfig::region_kubeconfig_ref_of(region, system_namespace).ok()
}

/// Kubeconfig Secrets outside the system namespace (`<cd>-kubeconfig`) are not cached; their
/// resourceVersion is read this often to notice a rotation.
const KUBECONFIG_POLL_PERIOD: Duration = Duration::from_secs(60);
const KUBECONFIG_POLLS_IN_FLIGHT: usize = 8;

/// What the manager last saw of a kubeconfig Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// Not read yet (or caches not synced): no reason to restart.
    Unknown,
    Gone,
    At(String),
}

/// Whether a regional client built from the Secret at resourceVersion `used` (None: not built yet,
/// its next attempt reads the Secret anyway) must be rebuilt.
fn client_outdated(used: Option<&str>, seen: &Seen) -> bool {
    match (used, seen) {
        (Some(used), Seen::At(rv)) => used != rv,
        (Some(_), Seen::Gone) => true,
        _ => false,
    }
}

struct RegionWorker {
    source: KubeconfigSource,
    /// The regional cluster the worker's caches read, once built.
    built: Built,
    stop: CancellationToken,
}

/// The cluster a worker built (shared with the registry, which the distributor reads too).
type Built = Arc<Mutex<Option<Arc<RegionalCluster>>>>;

pub(super) struct RegionManager {
    informers: Arc<Informers>,
    index: Arc<Index>,
    metrics: Arc<Metrics>,
    system_namespace: String,
    workers: HashMap<String, RegionWorker>,
    /// Last read of kubeconfig Secrets outside the system namespace, by (namespace, name).
    polled: HashMap<(String, String), Seen>,
}

impl RegionManager {
    pub(super) fn new(
        informers: Arc<Informers>,
        index: Arc<Index>,
        metrics: Arc<Metrics>,
        system_namespace: &str,
    ) -> Self {
        RegionManager {
            informers,
            index,
            metrics,
            system_namespace: system_namespace.to_string(),
            workers: HashMap::new(),
            polled: HashMap::new(),
        }
    }

    pub(super) async fn run(mut self, changed: Arc<Notify>, stop: CancellationToken) {
        let mut poll = tokio::time::interval(KUBECONFIG_POLL_PERIOD);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = changed.notified() => tokio::time::sleep(Duration::from_millis(100)).await,
                _ = poll.tick() => tokio::select! {
                    () = stop.cancelled() => return,
                    () = self.poll_external() => {}
                },
            }
            self.reconcile(&stop);
        }
    }

    /// Reads (metadata only) the kubeconfig Secrets outside the system namespace that workers use.
    async fn poll_external(&mut self) {
        let wanted: HashSet<(String, String)> = self
            .workers
            .values()
            .filter(|w| w.source.namespace != self.system_namespace)
            .map(|w| (w.source.namespace.clone(), w.source.name.clone()))
            .collect();
        self.polled.retain(|k, _| wanted.contains(k));
        let client = self.informers.client();
        let mut reads = futures_util::stream::iter(wanted)
            .map(|(ns, name)| async move {
                let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
                let read = tokio::time::timeout(KEY_READ_TIMEOUT, api.get_metadata_opt(&name)).await;
                ((ns, name), read)
            })
            .buffer_unordered(KUBECONFIG_POLLS_IN_FLIGHT);
        while let Some((key, read)) = reads.next().await {
            let seen = match read {
                Ok(Ok(Some(m))) => Seen::At(m.metadata.resource_version.unwrap_or_default()),
                Ok(Ok(None)) => Seen::Gone,
                Ok(Err(e)) => {
                    tracing::warn!(namespace = %key.0, secret = %key.1, error = %e, "cannot read kubeconfig Secret metadata");
                    continue;
                }
                Err(_) => {
                    tracing::warn!(namespace = %key.0, secret = %key.1, "reading kubeconfig Secret metadata timed out");
                    continue;
                }
            };
            self.polled.insert(key, seen);
        }
    }

    fn seen(&self, src: &KubeconfigSource) -> Seen {
        if src.namespace != self.system_namespace {
            return self.polled.get(&(src.namespace.clone(), src.name.clone())).cloned().unwrap_or(Seen::Unknown);
        }
        if !crate::cache::ServingEstate::synced(&*self.index) {
            return Seen::Unknown;
        }
        match self.index.get(&Cluster::Management, &Gvk::secret(), Some(&src.namespace), &src.name) {
            Some(secret) => Seen::At(super::resource_version(&secret).to_string()),
            None => Seen::Gone,
        }
    }

    fn reconcile(&mut self, stop: &CancellationToken) {
        let mut desired: HashMap<String, KubeconfigSource> = HashMap::new();
        for region in self.index.list(&Cluster::Management, &Gvk::region(), None) {
            let Some(name) = region.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str) else {
                continue;
            };
            if let Some(src) = kubeconfig_source(&region, &self.system_namespace) {
                desired.insert(name.to_string(), src);
            }
        }
        let names: Vec<String> = self.workers.keys().cloned().collect();
        for name in names {
            let keep = match (desired.get(&name), self.workers.get(&name)) {
                (Some(src), Some(w)) => {
                    let used = lock(&w.built).as_ref().map(|c| c.secret_version.clone());
                    *src == w.source && !client_outdated(used.as_deref(), &self.seen(src))
                }
                _ => false,
            };
            if !keep && let Some(w) = self.workers.remove(&name) {
                w.stop.cancel();
                // Rebuilt from a fresh read of the Secret by whoever connects next.
                if let Some(built) = lock(&w.built).take() {
                    self.informers.regions.forget(&name, &built);
                }
                let cluster = Cluster::Region(name.clone());
                self.index.remove_cluster(&cluster);
                self.metrics.forget_cluster(&name, REGIONAL_RESOURCES);
                tracing::info!(region = %name, "regional caches stopped (Region or its kubeconfig changed)");
            }
        }
        for (name, source) in desired {
            if self.workers.contains_key(&name) {
                continue;
            }
            let token = stop.child_token();
            let built = Built::default();
            self.workers.insert(
                name.clone(),
                RegionWorker { source: source.clone(), built: built.clone(), stop: token.clone() },
            );
            tokio::spawn(region_worker(
                self.informers.clone(),
                self.index.clone(),
                self.metrics.clone(),
                RegionTarget { region: name, source, built },
                token,
            ));
        }
    }
}

/// The Region a worker serves and where its kubeconfig is.
struct RegionTarget {
    region: String,
    source: KubeconfigSource,
    /// Set to the cluster each time one is built.
    built: Built,
}

/// Builds the regional client and runs the regional watches; when they have failed for
/// [`REGIONAL_STALE_AFTER`], the cluster becomes unknown and the client is rebuilt from a fresh read
/// of the Secret.
async fn region_worker(
    informers: Arc<Informers>,
    index: Arc<Index>,
    metrics: Arc<Metrics>,
    target: RegionTarget,
    stop: CancellationToken,
) {
    let RegionTarget { region, source, built } = target;
    let cluster = Cluster::Region(region.clone());
    let mut backoff = Duration::from_secs(1);
    loop {
        let connected = tokio::select! {
            () = stop.cancelled() => return,
            c = informers.regions.connect(&region, &source) => c,
        };
        let regional = match connected {
            Ok(c) => {
                index.set_secret_keys(&source.namespace, &source.name, &c.secret_version, c.key_names.clone());
                *lock(&built) = Some(c.clone());
                c
            }
            Err(e) => {
                tracing::warn!(region = %region, error = %e, retry_in = ?backoff, "regional cluster not reachable; its checks are skipped");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
                continue;
            }
        };
        let staleness = Arc::new(Staleness::new(REGIONAL_STALE_AFTER));
        let sync = SyncGroup::new(REGIONAL_RESOURCES, {
            let (index, cluster, region) = (index.clone(), cluster.clone(), region.clone());
            Box::new(move || {
                index.set_known(&cluster, true);
                tracing::info!(region = %region, "regional caches synced");
            })
        });
        let mut subscriptions = Vec::new();
        for (gvk, trim) in [(Gvk::provider_interface(), Trim::Common), (Gvk::crd(), Trim::Crd)] {
            let Some(spec) = WatchSpec::known(&gvk, trim) else { continue };
            let f = Feed {
                index: index.clone(),
                metrics: metrics.clone(),
                cluster: cluster.clone(),
                resource: spec.plural.clone(),
                sync: Some(sync.clone()),
                notify: Vec::new(),
                staleness: Some(staleness.clone()),
                covers: false,
            };
            subscriptions.push(feed(&regional.watches, &spec, f));
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = staleness.stale.notified() => {}
        }
        drop(subscriptions);
        informers.regions.forget(&region, &regional);
        index.remove_cluster(&cluster);
        metrics.forget_cluster(&region, REGIONAL_RESOURCES);
        tracing::warn!(region = %region, failing_for = ?REGIONAL_STALE_AFTER, retry_in = ?backoff,
            "regional watches keep failing; the cluster is unknown to the rules until its client is rebuilt");
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

const REGIONAL_RESOURCES: &[&str] = &["providerinterfaces", "customresourcedefinitions"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regional_client_is_rebuilt_when_its_secret_changes() {
        assert!(!client_outdated(Some("5"), &Seen::At("5".into())));
        assert!(client_outdated(Some("5"), &Seen::At("6".into())), "rotated kubeconfig");
        assert!(client_outdated(Some("5"), &Seen::Gone), "Secret deleted");
        assert!(!client_outdated(Some("5"), &Seen::Unknown), "not read yet: keep");
        assert!(!client_outdated(None, &Seen::At("6".into())), "no client yet: its next attempt reads the Secret");
    }
}
