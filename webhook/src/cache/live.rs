//! Fills an [`Index`] from the watch layer ([`crate::informer`]), which the distributor reads too.
//!
//! Management cluster: Credentials, Regions, ProviderInterfaces and ClusterDeployments (full
//! objects, minus managedFields and last-applied annotations), CRDs (trimmed to what "served"
//! checks read), Secrets of the system namespace (metadata only) and the identity objects of every
//! kind a ProviderInterface declares (metadata only, [`super::identities`]). Each Region's
//! cluster: its ProviderInterfaces and CRDs ([`super::regions`]).
//!
//! Secret values are read only for the kubeconfig Secrets Regions reference, only to build the
//! regional client; the index keeps their key names, never their values ([`super::secrets`]).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use credential_core::estate::Cluster;
use credential_core::gvk::Gvk;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Index;
use crate::informer::{ClusterWatches, Event, Informers, Subscription, Trim, WatchSpec};
use crate::metrics::Metrics;

pub use crate::informer::clients::{ClientError as LiveError, management_client as client};
pub use crate::informer::watches::kube_error_text;

/// Tracks which caches of a cluster still have to finish their initial list.
pub(super) struct SyncGroup {
    pending: Mutex<HashSet<String>>,
    on_all: Box<dyn Fn() + Send + Sync>,
}

impl SyncGroup {
    pub(super) fn new(resources: &[&str], on_all: Box<dyn Fn() + Send + Sync>) -> Arc<Self> {
        Arc::new(SyncGroup { pending: Mutex::new(resources.iter().map(|s| s.to_string()).collect()), on_all })
    }
    fn done(&self, resource: &str) {
        let mut p = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if p.remove(resource) && p.is_empty() {
            (self.on_all)();
        }
    }
}

/// What one subscription of the index does with its events.
pub(super) struct Feed {
    pub index: Arc<Index>,
    pub metrics: Arc<Metrics>,
    pub cluster: Cluster,
    /// Metric label, e.g. `credentials`.
    pub resource: String,
    pub sync: Option<Arc<SyncGroup>>,
    /// Woken after every change (drives the Region, Secret-key and identity-kind managers).
    pub notify: Vec<Arc<Notify>>,
    /// Regional clusters: tracks how long the watches have been failing.
    pub staleness: Option<Arc<Staleness>>,
    /// Marks the kind covered in the index once synced (kinds outside the fixed management caches).
    pub covers: bool,
}

/// A regional cluster whose watches have failed this long is unknown to the rules (its cached state
/// may be arbitrarily old) until its client is rebuilt and its caches synced again.
pub(super) const REGIONAL_STALE_AFTER: Duration = Duration::from_secs(180);
/// Errors further apart than this start a new failure period: a failing watch retries at most every
/// 60 s (the watch backoff's cap), and a recovered idle watch reports nothing.
const FAILURE_GAP: Duration = Duration::from_secs(90);

/// How long each watch of one regional cluster has been failing.
pub(super) struct Staleness {
    limit: Duration,
    /// resource -> (failing since, last error).
    failing: Mutex<std::collections::HashMap<String, (Instant, Instant)>>,
    signalled: std::sync::atomic::AtomicBool,
    /// Woken once when some watch has failed for `limit`.
    pub stale: Notify,
}

impl Staleness {
    pub(super) fn new(limit: Duration) -> Self {
        Staleness {
            limit,
            failing: Mutex::default(),
            signalled: std::sync::atomic::AtomicBool::new(false),
            stale: Notify::new(),
        }
    }

    /// Records an error of `resource`'s watch; true (once) when it has now been failing for `limit`.
    fn failed(&self, resource: &str, now: Instant) -> bool {
        let mut failing = self.failing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = failing.entry(resource.to_string()).or_insert((now, now));
        if now.saturating_duration_since(entry.1) > FAILURE_GAP {
            entry.0 = now;
        }
        entry.1 = now;
        now.saturating_duration_since(entry.0) >= self.limit
            && !self.signalled.swap(true, std::sync::atomic::Ordering::AcqRel)
    }

    /// Records that `resource`'s watch delivered an event: its failure period is over.
    fn ok(&self, resource: &str) {
        self.failing.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(resource);
    }
}

/// Subscribes the index to `spec` in `watches`: the collection goes into the index as listed and
/// changed. The subscription ends with the returned value.
pub(super) fn feed(watches: &ClusterWatches, spec: &WatchSpec, feed: Feed) -> Subscription {
    let label = cluster_label(&feed.cluster);
    feed.metrics.set_cache_synced(&label, &feed.resource, false);
    let (group, kind) = (spec.group.clone(), spec.kind.clone());
    let mut synced = false;
    let mark_synced = move |f: &Feed, synced: &mut bool| {
        if *synced {
            return;
        }
        *synced = true;
        if f.covers {
            f.index.set_covered(&group, &kind, true);
        }
        f.metrics.set_cache_synced(&label, &f.resource, true);
        if let Some(s) = &f.sync {
            s.done(&f.resource);
        }
    };
    let (group, kind) = (spec.group.clone(), spec.kind.clone());
    watches.subscribe(
        spec,
        Box::new(move |event| {
            let f = &feed;
            if let (false, Some(st)) = (matches!(event, Event::Failed(_)), &f.staleness) {
                st.ok(&f.resource);
            }
            match event {
                Event::Listed(objects) => {
                    f.index.replace_all_shared(&f.cluster, &group, &kind, objects.to_vec());
                    if !synced {
                        tracing::info!(cluster = %cluster_label(&f.cluster), resource = %f.resource, "cache synced");
                    }
                    mark_synced(f, &mut synced);
                }
                Event::Applied(o) => f.index.apply_shared(&f.cluster, Arc::clone(o)),
                Event::Deleted(o) => f.index.delete(&f.cluster, o),
                Event::Failed(e) => {
                    if !synced && e.not_found() {
                        // The kind is not served (CRD not installed): nothing to cache. The watch keeps
                        // retrying with backoff and fills the cache if the CRD appears.
                        f.index.replace_all(&f.cluster, &group, &kind, Vec::new());
                        tracing::warn!(cluster = %cluster_label(&f.cluster), resource = %f.resource,
                            "resource not served by the API server; treating it as empty");
                        mark_synced(f, &mut synced);
                    } else {
                        tracing::warn!(cluster = %cluster_label(&f.cluster), resource = %f.resource, error = %e,
                            "watch error; retrying");
                    }
                    // "Not served" is a state, not a failure; anything else counts towards staleness.
                    if let (false, Some(st)) = (e.not_found(), &f.staleness)
                        && st.failed(&f.resource, Instant::now())
                    {
                        st.stale.notify_one();
                    }
                    return;
                }
            }
            for n in &f.notify {
                n.notify_one();
            }
        }),
    )
}

/// Holds `subscriptions` until `stop`.
pub(super) fn hold_until(stop: CancellationToken, subscriptions: Vec<Subscription>) {
    tokio::spawn(async move {
        stop.cancelled().await;
        drop(subscriptions);
    });
}

pub(super) fn cluster_label(c: &Cluster) -> String {
    match c {
        Cluster::Management => "management".into(),
        Cluster::Region(r) => r.clone(),
    }
}

const MANAGEMENT_RESOURCES: &[&str] =
    &["credentials", "regions", "providerinterfaces", "clusterdeployments", "secrets", "customresourcedefinitions"];

/// Starts the admission index on watches of its own (a process without a distributor, tests).
pub fn start(
    client: kube::Client,
    system_namespace: &str,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> Arc<Index> {
    let informers = Informers::new(
        client,
        crate::informer::ClientTimeouts::default(),
        crate::distribution::DistributionConfig::default().cluster_backoff,
    );
    start_with(&informers, system_namespace, metrics, stop)
}

/// Subscribes the index to the management collections and starts the Region, Secret-key and
/// identity-kind managers; returns the index at once (not synced yet: `/readyz` says so until
/// every management cache finished its initial list).
pub fn start_with(
    informers: &Arc<Informers>,
    system_namespace: &str,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> Arc<Index> {
    let client = informers.client().clone();
    let index = Arc::new(Index::new(system_namespace));
    index.set_live_client(client.clone());
    // Readiness does not wait for the Secret key names: until a Secret's names are read it is marked
    // keys-unknown (rules skip the key check), and Region writes read their Secret live. Waiting would
    // hold readiness for one read per Secret of the system namespace.
    let sync = SyncGroup::new(MANAGEMENT_RESOURCES, {
        let index = index.clone();
        Box::new(move || {
            index.set_synced(true);
            tracing::info!("management caches synced: ready");
        })
    });
    let regions_changed = Arc::new(Notify::new());
    let identities_changed = Arc::new(Notify::new());
    let secrets_changed = Arc::new(Notify::new());
    let specs = [
        (Gvk::credential(), None, Trim::Common, vec![]),
        (Gvk::region(), None, Trim::Common, vec![regions_changed.clone()]),
        (Gvk::provider_interface(), None, Trim::Common, vec![identities_changed.clone()]),
        (Gvk::k0rdent("ClusterDeployment"), None, Trim::Common, vec![]),
        (Gvk::secret(), Some(system_namespace), Trim::Meta, vec![regions_changed.clone(), secrets_changed.clone()]),
        (Gvk::crd(), None, Trim::Crd, vec![identities_changed.clone()]),
    ];
    let mut subscriptions = Vec::new();
    for (gvk, namespace, trim, notify) in specs {
        let Some(mut spec) = WatchSpec::known(&gvk, trim) else { continue };
        if let Some(ns) = namespace {
            spec = spec.in_namespace(ns);
        }
        let f = Feed {
            index: index.clone(),
            metrics: metrics.clone(),
            cluster: Cluster::Management,
            resource: spec.plural.clone(),
            sync: Some(sync.clone()),
            notify,
            staleness: None,
            covers: false,
        };
        subscriptions.push(feed(&informers.management, &spec, f));
    }
    hold_until(stop.clone(), subscriptions);
    let regions =
        super::regions::RegionManager::new(informers.clone(), index.clone(), metrics.clone(), system_namespace);
    tokio::spawn(regions.run(regions_changed, stop.clone()));
    tokio::spawn(super::secrets::secret_keys_manager(
        client,
        index.clone(),
        system_namespace.to_string(),
        secrets_changed,
        stop.clone(),
    ));
    tokio::spawn(super::identities::identity_manager(
        informers.management.clone(),
        index.clone(),
        metrics,
        identities_changed,
        stop,
    ));
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regional_watches_failing_too_long_make_the_cluster_stale() {
        let st = Staleness::new(Duration::from_secs(180));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // Errors every 30 s: stale once 180 s of continuous failure passed, signalled once.
        assert!((0..6).all(|i| !st.failed("crds", at(i * 30))));
        assert!(st.failed("crds", at(180)));
        assert!(!st.failed("crds", at(210)), "signalled once per watch round");

        let st = Staleness::new(Duration::from_secs(180));
        assert!(!st.failed("pis", at(0)));
        // An event in between ends the failure period.
        st.ok("pis");
        assert!(!st.failed("pis", at(120)));
        assert!(!st.failed("pis", at(200)));
        // A gap longer than a retry (silent recovery of an idle watch) starts a new period.
        assert!(!st.failed("pis", at(400)));
        assert!(!st.failed("pis", at(480)));
        assert!(!st.failed("pis", at(560)));
        assert!(st.failed("pis", at(580)));
        // Each resource has its own period.
        let st = Staleness::new(Duration::from_secs(180));
        assert!([0, 60, 120].iter().all(|&t| !st.failed("pis", at(t))));
        assert!(!st.failed("crds", at(170)));
        assert!(st.failed("pis", at(180)));
    }
}
