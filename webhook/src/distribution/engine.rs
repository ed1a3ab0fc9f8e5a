//! The distributor's state for one leadership term, and the convergence of one Credential.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};

use credential_core::distribution::{Mode, ORPHANED_COPIES, OrphanOwner, OrphanRecord, orphan_key};
use credential_core::estate::Cluster;
use credential_core::gvk::Gvk;
use credential_core::identity::{self, ObjectKey, Plan, PlanProblem};
use credential_core::model::labels;
use json_patch::Patch as JsonPatch;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use super::DistributionConfig;
use super::cluster::{ClusterConn, OnCopyEvent, classify, known_resource, to_value};
use super::copies::{ApplyOutcome, ObjectLocks, ReleaseOutcome, apply_copy, release_copy};
use super::error::{DistributionError, is_conflict, is_connect_error, is_not_found};
use super::estate::{FetchedEstate, Miss, SourceVersions};
use super::metrics::DistributionMetrics;
use super::queue::WorkQueue;
use super::status::{DesiredCondition, EventType, REASON_DISTRIBUTED, apply_condition, publish_event};
use crate::informer::{Event, Informers, RegionalError, Subscription, Trim, WatchFailure, WatchSpec};

#[path = "trigger.rs"]
mod trigger;
use trigger::Handover;
pub use trigger::REASON_OFF;

/// `namespace/name` of a Credential: the work-queue key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CredentialKey {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for CredentialKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What the Credential watch remembers, to enqueue only on changes that matter (not on our own
/// status writes) and to find the Credentials of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub target: Option<Cluster>,
    pub fingerprint: String,
    /// It holds our finalizer (a mode change must hand it over even without a target).
    pub ours: bool,
}

impl Seen {
    pub fn of(credential: &Value) -> Self {
        let deleting = credential.pointer("/metadata/deletionTimestamp").is_some();
        let spec = credential.get("spec").map(Value::to_string).unwrap_or_default();
        let ours = credential
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|f| f == labels::DISTRIBUTION_FINALIZER));
        Seen {
            target: identity::target_of(credential),
            fingerprint: format!("{deleting}|{}|{spec}", identity::is_managed(credential)),
            ours,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Health {
    failures: u32,
    next_attempt: Instant,
}

/// Objects a Credential's last plan read or wrote (for watches and garbage collection).
#[derive(Debug, Clone, Default)]
struct Footprint {
    target: Option<Cluster>,
    sources: Vec<SourceKey>,
    copies: Vec<ObjectKey>,
}

/// A management object, version-insensitive: (group, kind, namespace, name).
pub type SourceKey = (String, String, Option<String>, String);

pub fn source_key(gvk: &Gvk, namespace: Option<&str>, name: &str) -> SourceKey {
    (gvk.group.clone(), gvk.kind.clone(), namespace.map(str::to_string), name.to_string())
}

/// A metadata watch on a source kind of the management cluster: (group, kind, namespace).
/// `None`: cluster-wide (the identity kinds, which the ClusterRole grants everywhere).
pub type WatchKey = (String, String, Option<String>);

/// Where a source object is watched, or `None` when it is not watched at all. Core kinds
/// (Secrets, ConfigMaps) only ever one namespace at a time: RBAC grants them per namespace
/// (deploy/base/rbac.yaml: Secrets in the system namespace only), and a cluster-wide watch
/// would be refused forever. Other kinds (the CAPI identity CRDs) cluster-wide, as granted.
pub fn watch_key(gvk: &Gvk, namespace: Option<&str>) -> Option<WatchKey> {
    watch_key_of(&gvk.group, &gvk.kind, namespace)
}

fn watch_key_of(group: &str, kind: &str, namespace: Option<&str>) -> Option<WatchKey> {
    let scope = if group.is_empty() { Some(namespace.filter(|n| !n.is_empty())?.to_string()) } else { None };
    Some((group.to_string(), kind.to_string(), scope))
}

/// What an operator reads about a refused watch: where, and the grant that fixes it.
pub fn forbidden_hint(key: &WatchKey) -> String {
    let (group, kind, scope) = key;
    match scope {
        Some(ns) if group.is_empty() && kind == "Secret" => format!(
            "watching Secrets in namespace {ns} is forbidden (403), so changes there are noticed only at the \
             resync; add RoleBinding credential-webhook-secrets in {ns} to ClusterRole \
             credential-webhook-system-secrets (docs/src/operator/rbac.md)"
        ),
        Some(ns) => format!(
            "watching {kind} in namespace {ns} is forbidden (403), so changes there are noticed only at the resync; \
             grant get/list/watch on it there with a RoleBinding"
        ),
        None => format!(
            "watching {kind}.{group} is forbidden (403), so changes are noticed only at the resync; add its \
             resource to ClusterRole credential-webhook (deploy/base/rbac.yaml)"
        ),
    }
}

/// A Region whose client was built from a kubeconfig Secret, with the Secret's resourceVersion.
type RegionBuild = (String, Option<String>);

/// A Region's connection, built once by whichever worker asks first.
type RegionSlot = Arc<tokio::sync::OnceCell<Arc<ClusterConn>>>;

/// How one convergence ended.
#[derive(Debug)]
pub enum Outcome {
    /// Converged (or nothing to do).
    Done,
    /// Not attempted: the target cluster is backing off.
    Wait(Duration),
    /// Attempted and not converged; retried with the Credential's backoff.
    Failed { reason: String },
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Shared state of one leadership term.
pub struct Engine {
    pub config: DistributionConfig,
    pub mgmt: kube::Client,
    /// The watch layer shared with the admission index.
    pub informers: Arc<Informers>,
    pub mgmt_conn: Arc<ClusterConn>,
    pub queue: Arc<WorkQueue<CredentialKey>>,
    pub metrics: DistributionMetrics,
    /// One slot per Region, filled on first use: a slow build holds up only that Region's
    /// callers, never the map (nor other Regions).
    regions: Mutex<HashMap<String, RegionSlot>>,
    /// Regions as the Region watch last handed them to this term (shared with the watch's store,
    /// not copies): what a change is compared against.
    pub region_objects: RwLock<HashMap<String, Arc<Value>>>,
    health: Mutex<HashMap<Cluster, Health>>,
    failures: Mutex<HashMap<CredentialKey, u32>>,
    pub seen: Mutex<HashMap<CredentialKey, Seen>>,
    footprints: Mutex<HashMap<CredentialKey, Footprint>>,
    /// Source object -> Credentials whose last plan read it (or missed it).
    index: Mutex<HashMap<SourceKey, HashSet<CredentialKey>>>,
    locks: ObjectLocks,
    /// Kubeconfig Secret (namespace, name) -> Regions whose cached client was built from it, and
    /// the Secret's resourceVersion then.
    kubeconfigs: Mutex<HashMap<(String, String), Vec<RegionBuild>>>,
    /// Metadata watches on source objects in the management cluster.
    source_watches: Mutex<HashMap<WatchKey, Subscription>>,
    /// Source watches the API server refuses (403); each was reported once.
    forbidden: Mutex<BTreeSet<WatchKey>>,
    /// Last seen resourceVersion of indexed source objects (a relist re-enqueues only changes).
    source_versions: Mutex<HashMap<SourceKey, String>>,
    /// Trigger mode: when a source change was first seen for a Credential not yet triggered
    /// since (metric: source change to trigger).
    changed_at: Mutex<HashMap<CredentialKey, Instant>>,
    /// Trigger mode: when the Credential was last triggered and not yet verified in sync since
    /// (metric: trigger to copies in sync).
    triggered_at: Mutex<HashMap<CredentialKey, Instant>>,
    on_pis: Arc<dyn Fn(&Cluster) + Send + Sync>,
    /// A copy changed or went away in a target cluster: its owners converge again.
    on_copy: OnCopyEvent,
    me: Weak<Engine>,
}

impl Engine {
    pub fn new(
        config: DistributionConfig,
        informers: Arc<Informers>,
        queue: Arc<WorkQueue<CredentialKey>>,
        metrics: DistributionMetrics,
    ) -> Arc<Self> {
        let mgmt = informers.client().clone();
        Arc::new_cyclic(|me: &Weak<Engine>| {
            let weak = me.clone();
            // A cluster's ProviderInterfaces were listed or changed: it answers, and its
            // Credentials may now plan differently.
            let on_pis: Arc<dyn Fn(&Cluster) + Send + Sync> = Arc::new(move |cluster: &Cluster| {
                if let Some(engine) = weak.upgrade() {
                    engine.cluster_ok(cluster);
                    engine.enqueue_cluster(cluster);
                }
            });
            let weak = me.clone();
            let on_copy: OnCopyEvent = Arc::new(move |_cluster: &Cluster, owners: Vec<String>| {
                if let Some(engine) = weak.upgrade() {
                    for owner in owners {
                        if let Some((namespace, name)) = owner.split_once('/') {
                            engine.enqueue(CredentialKey { namespace: namespace.to_string(), name: name.to_string() });
                        }
                    }
                }
            });
            let mgmt_conn = ClusterConn::new(
                Cluster::Management,
                mgmt.clone(),
                Arc::clone(&informers.management),
                None,
                config.per_cluster_concurrency,
                Arc::clone(&on_pis),
            );
            Engine {
                config,
                mgmt,
                informers,
                mgmt_conn,
                queue,
                metrics,
                regions: Mutex::default(),
                region_objects: RwLock::default(),
                health: Mutex::default(),
                failures: Mutex::default(),
                seen: Mutex::default(),
                footprints: Mutex::default(),
                index: Mutex::default(),
                locks: ObjectLocks::default(),
                kubeconfigs: Mutex::default(),
                source_watches: Mutex::default(),
                forbidden: Mutex::default(),
                source_versions: Mutex::default(),
                changed_at: Mutex::default(),
                triggered_at: Mutex::default(),
                on_pis,
                on_copy,
                me: me.clone(),
            }
        })
    }

    // ---- queue plumbing -------------------------------------------------------------------

    pub fn enqueue(&self, key: CredentialKey) {
        self.queue.add(key);
        self.metrics.queue_depth.set(self.queue.depth() as i64);
    }

    /// Credentials (as last seen) whose copies go to `cluster`.
    pub fn credentials_of(&self, cluster: &Cluster) -> Vec<CredentialKey> {
        let mut keys: BTreeSet<CredentialKey> = lock(&self.seen)
            .iter()
            .filter(|(_, s)| s.target.as_ref() == Some(cluster))
            .map(|(k, _)| k.clone())
            .collect();
        keys.extend(
            lock(&self.footprints).iter().filter(|(_, f)| f.target.as_ref() == Some(cluster)).map(|(k, _)| k.clone()),
        );
        keys.into_iter().collect()
    }

    pub fn enqueue_cluster(&self, cluster: &Cluster) {
        for key in self.credentials_of(cluster) {
            self.enqueue(key);
        }
    }

    /// Re-checks every distributed Credential (the slow safety net).
    pub fn resync(&self) {
        let mut keys: BTreeSet<CredentialKey> =
            lock(&self.seen).iter().filter(|(_, s)| s.target.is_some() || s.ours).map(|(k, _)| k.clone()).collect();
        keys.extend(lock(&self.footprints).keys().cloned());
        for k in keys {
            self.enqueue(k);
        }
    }

    /// Credentials whose last plan read (or missed) a management object.
    pub fn credentials_using(&self, key: &SourceKey) -> Vec<CredentialKey> {
        lock(&self.index).get(key).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    /// The cluster answered: forget its backoff.
    pub fn cluster_ok(&self, cluster: &Cluster) {
        lock(&self.health).remove(cluster);
    }

    fn cluster_failed(&self, cluster: &Cluster) {
        let mut health = lock(&self.health);
        let h = health.entry(cluster.clone()).or_insert(Health { failures: 0, next_attempt: Instant::now() });
        h.failures = h.failures.saturating_add(1);
        h.next_attempt = Instant::now() + self.config.cluster_backoff.delay(h.failures);
    }

    fn cluster_wait(&self, cluster: &Cluster) -> Option<Duration> {
        let now = Instant::now();
        lock(&self.health).get(cluster).filter(|h| h.next_attempt > now).map(|h| h.next_attempt - now)
    }

    /// Drops the cached connection of a Region (its kubeconfig changed or the Region went away).
    pub async fn drop_region(&self, region: &str) {
        let slot = lock(&self.regions).remove(region);
        if let Some(conn) = slot.as_ref().and_then(|s| s.get())
            && let Some(regional) = &conn.regional
        {
            // Rebuilt from a fresh read of the Secret by whoever connects next.
            self.informers.regions.forget(region, regional);
            let secret = (regional.source.namespace.clone(), regional.source.name.clone());
            let mut kcs = lock(&self.kubeconfigs);
            if let Some(list) = kcs.get_mut(&secret) {
                list.retain(|(r, _)| r != region);
                if list.is_empty() {
                    kcs.remove(&secret);
                }
            }
        }
    }

    // ---- watch handlers --------------------------------------------------------------------

    /// A Credential event from the management cluster.
    pub fn on_credential(&self, value: &Value, deleted: bool) {
        let meta = |f: &str| value.pointer(&format!("/metadata/{f}")).and_then(Value::as_str);
        let Some(name) = meta("name").map(str::to_string) else { return };
        let key = CredentialKey { namespace: meta("namespace").unwrap_or_default().to_string(), name };
        if deleted {
            lock(&self.seen).remove(&key);
            if lock(&self.footprints).contains_key(&key) {
                self.enqueue(key);
            }
            return;
        }
        let seen = Seen::of(value);
        let ours = seen.ours;
        let relevant = seen.target.is_some() || ours || lock(&self.footprints).contains_key(&key);
        let changed = lock(&self.seen).insert(key.clone(), seen.clone()) != Some(seen);
        if relevant && changed {
            self.enqueue(key);
        }
    }

    /// A Region event from the management cluster.
    pub fn on_region(&self, value: &Arc<Value>, deleted: bool, initial: bool) {
        let Some(name) = value.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string) else { return };
        let value = Arc::clone(value);
        let previous = {
            let mut regions = self.region_objects.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            if deleted { regions.remove(&name) } else { regions.insert(name.clone(), Arc::clone(&value)) }
        };
        let cluster = Cluster::Region(name.clone());
        let ready = |v: &Value| {
            v.pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        };
        let spec_changed = previous.as_ref().map(|p| p.get("spec")) != Some(value.get("spec"));
        let became_ready = ready(&value) && !previous.as_deref().is_some_and(ready);
        if deleted || (spec_changed && previous.is_some()) {
            let Some(me) = self.me.upgrade() else { return };
            tokio::spawn(async move {
                me.drop_region(&name).await;
                me.cluster_ok(&cluster);
                me.enqueue_cluster(&cluster);
            });
        } else if (previous.is_none() && !initial) || became_ready {
            self.cluster_ok(&cluster);
            self.enqueue_cluster(&cluster);
        }
    }

    /// A metadata event of a source kind (or of any Secret) in the management cluster.
    pub fn on_source(&self, gvk: &Gvk, object: &Value, deleted: bool) {
        let meta = |f: &str| object.pointer(&format!("/metadata/{f}")).and_then(Value::as_str);
        let Some(name) = meta("name") else { return };
        let namespace = meta("namespace").filter(|n| !n.is_empty());
        let rv = meta("resourceVersion").unwrap_or_default().to_string();
        let key = source_key(gvk, namespace, name);
        let users = self.credentials_using(&key);
        if !users.is_empty() {
            let unchanged = {
                let mut versions = lock(&self.source_versions);
                if deleted {
                    versions.remove(&key);
                    false
                } else {
                    versions.insert(key.clone(), rv.clone()).as_deref() == Some(rv.as_str())
                }
            };
            if !unchanged {
                let trigger = self.config.mode.mode() == Mode::Trigger;
                for k in users {
                    if trigger {
                        lock(&self.changed_at).entry(k.clone()).or_insert_with(Instant::now);
                    }
                    self.enqueue(k);
                }
            }
        }
        if gvk.same_group_kind(&Gvk::secret())
            && let Some(ns) = namespace
        {
            let stale: Vec<String> = lock(&self.kubeconfigs)
                .get(&(ns.to_string(), name.to_string()))
                .map(|list| {
                    list.iter()
                        .filter(|(_, built)| deleted || built.as_deref() != Some(rv.as_str()))
                        .map(|(r, _)| r.clone())
                        .collect()
                })
                .unwrap_or_default();
            if !stale.is_empty()
                && let Some(me) = self.me.upgrade()
            {
                tokio::spawn(async move {
                    for region in stale {
                        // The kubeconfig changed: rebuild the client on next use.
                        me.drop_region(&region).await;
                        let cluster = Cluster::Region(region);
                        me.cluster_ok(&cluster);
                        me.enqueue_cluster(&cluster);
                    }
                });
            }
        }
    }

    /// Starts a metadata-only watch on the management objects of `gvk` at `namespace` (see
    /// [`watch_key`] for the scope), once per scope.
    pub fn ensure_source_watch(&self, gvk: &Gvk, namespace: Option<&str>) {
        let Some(wkey) = watch_key(gvk, namespace) else { return };
        if lock(&self.source_watches).contains_key(&wkey) {
            return;
        }
        let Some((ar, _)) = self.mgmt_conn.cached_resource(gvk) else { return };
        // Only non-core kinds are watched cluster-wide (see `watch_key`).
        let mut spec = WatchSpec::new(&ar, None, Trim::Meta);
        if let Some(ns) = &wkey.2 {
            spec = spec.in_namespace(ns);
        }
        let weak = self.me.clone();
        let (gvk, key) = (gvk.clone(), wkey.clone());
        let subscription = self.informers.management.subscribe(
            &spec,
            Box::new(move |event| {
                let Some(engine) = weak.upgrade() else { return };
                match event {
                    Event::Listed(objects) => {
                        engine.source_watch_ok(&key);
                        for o in *objects {
                            engine.on_source(&gvk, o, false);
                        }
                    }
                    Event::Applied(o) => engine.on_source(&gvk, o, false),
                    Event::Deleted(o) => engine.on_source(&gvk, o, true),
                    Event::Failed(e) => engine.source_watch_failed(&key, e),
                }
            }),
        );
        // Raced with another worker: the second subscription goes (it shares the one watch).
        lock(&self.source_watches).entry(wkey).or_insert(subscription);
    }

    /// A source watch failed (it retries with backoff). A 403 is reported once, at warn, with
    /// the grant that fixes it; the Credentials it concerns are re-checked so their condition
    /// says so too. The resync keeps them converging meanwhile.
    fn source_watch_failed(&self, key: &WatchKey, e: &WatchFailure) {
        if !e.forbidden() {
            tracing::debug!(kind = %key.1, namespace = ?key.2, error = %e, "source watch retrying");
            return;
        }
        let newly = {
            let mut forbidden = lock(&self.forbidden);
            let newly = forbidden.insert(key.clone());
            self.metrics.forbidden_watches.set(forbidden.len() as i64);
            newly
        };
        if newly {
            tracing::warn!(
                kind = %key.1,
                namespace = key.2.as_deref().unwrap_or("<all>"),
                resync = ?self.config.resync_period,
                "{}",
                forbidden_hint(key)
            );
            self.enqueue_watched_by(key);
        }
    }

    /// A source watch listed its objects: if it had been refused, it is allowed now.
    fn source_watch_ok(&self, key: &WatchKey) {
        let was = {
            let mut forbidden = lock(&self.forbidden);
            let was = forbidden.remove(key);
            self.metrics.forbidden_watches.set(forbidden.len() as i64);
            was
        };
        if was {
            tracing::info!(kind = %key.1, namespace = key.2.as_deref().unwrap_or("<all>"), "source watch allowed now");
            self.enqueue_watched_by(key);
        }
    }

    /// Credentials whose last plan used an object in the scope of `key`.
    fn enqueue_watched_by(&self, key: &WatchKey) {
        let users: BTreeSet<CredentialKey> = lock(&self.index)
            .iter()
            .filter(|((g, k, ns, _), _)| watch_key_of(g, k, ns.as_deref()).as_ref() == Some(key))
            .flat_map(|(_, users)| users.iter().cloned())
            .collect();
        for k in users {
            self.enqueue(k);
        }
    }

    /// Hints for the refused watches among `sources` (empty when every one is watched).
    fn unwatched(&self, sources: &[SourceKey]) -> Vec<String> {
        let forbidden = lock(&self.forbidden);
        if forbidden.is_empty() {
            return Vec::new();
        }
        let keys: BTreeSet<WatchKey> = sources
            .iter()
            .filter_map(|(g, k, ns, _)| watch_key_of(g, k, ns.as_deref()))
            .filter(|k| forbidden.contains(k))
            .collect();
        keys.iter().map(forbidden_hint).collect()
    }

    // ---- worker --------------------------------------------------------------------------

    /// Takes keys from the queue until it closes.
    pub async fn worker(self: Arc<Self>) {
        while let Some(key) = self.queue.next().await {
            self.metrics.queue_depth.set(self.queue.depth() as i64);
            let started = Instant::now();
            // Bounded: whatever hangs (a permit, a cluster, the management API), the worker, the
            // permit it holds and the key come free, and the target backs off.
            let outcome = match tokio::time::timeout(self.config.convergence_timeout, self.converge(&key)).await {
                Ok(outcome) => outcome,
                Err(_) => Ok(self.timed_out(&key).await),
            };
            self.metrics.convergence_seconds.observe(started.elapsed().as_secs_f64());
            match outcome {
                Ok(Outcome::Done) => {
                    lock(&self.failures).remove(&key);
                }
                Ok(Outcome::Wait(d)) => self.queue.add_after(key.clone(), d),
                Ok(Outcome::Failed { reason }) => self.retry(&key, &reason),
                Err(e) => {
                    tracing::warn!(credential = %key, reason = e.reason(), error = %e, "distribution failed");
                    self.retry(&key, e.reason());
                }
            }
            self.queue.done(&key);
            self.metrics.queue_depth.set(self.queue.depth() as i64);
        }
    }

    /// A convergence ran past `convergence_timeout`: its target is treated as unreachable (it
    /// backs off) and the Credential says so. Every request here is bounded too: the management
    /// API may be what hung.
    async fn timed_out(&self, key: &CredentialKey) -> Outcome {
        let limit = self.config.convergence_timeout;
        let bound = self.config.request_timeout;
        let api = self.credential_api(&key.namespace);
        let credential = match tokio::time::timeout(bound, api.get_opt(&key.name)).await {
            Ok(Ok(Some(obj))) => Some(to_value(&obj)),
            _ => None,
        };
        let remembered = lock(&self.footprints).get(key).and_then(|f| f.target.clone());
        let target = credential.as_ref().and_then(identity::target_of).or(remembered);
        if let Some(t) = &target {
            self.cluster_failed(t);
        }
        let detail = format!("one convergence took longer than {}s (it is retried with backoff)", limit.as_secs_f64());
        let err = match &target {
            Some(cluster) => DistributionError::Unreachable { cluster: cluster.clone(), detail },
            None => DistributionError::Unreachable { cluster: Cluster::Management, detail },
        };
        tracing::warn!(credential = %key, reason = err.reason(), error = %err, "distribution timed out");
        if let (Some(credential), Some(target)) = (&credential, &target) {
            let deleting = credential.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null());
            let (reason, message) = if deleting {
                (
                    "ReleasePending".to_string(),
                    format!(
                        "copies in {target} not released yet ({err}); finalizer {} stays until they are, retrying \
                         with backoff",
                        labels::DISTRIBUTION_FINALIZER
                    ),
                )
            } else {
                (
                    err.reason().to_string(),
                    format!("identities not distributed to {target}: {err}; retrying with backoff"),
                )
            };
            let desired = DesiredCondition { ok: false, reason, message };
            let reported = tokio::time::timeout(bound, self.report(&api, credential, &desired)).await;
            if matches!(reported, Ok(Ok(true))) {
                let event = self.event(credential, EventType::Warning, &desired.reason, "Distribute", &desired.message);
                let _ = tokio::time::timeout(bound, event).await;
            }
        }
        Outcome::Failed { reason: err.reason().to_string() }
    }

    fn retry(&self, key: &CredentialKey, reason: &str) {
        self.metrics.failed(reason);
        let n = {
            let mut f = lock(&self.failures);
            let n = f.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        self.queue.add_after(key.clone(), self.config.credential_backoff.delay(n));
    }

    fn forget(&self, key: &CredentialKey) {
        lock(&self.failures).remove(key);
        lock(&self.changed_at).remove(key);
        lock(&self.triggered_at).remove(key);
        lock(&self.seen).remove(key);
        if let Some(fp) = lock(&self.footprints).remove(key) {
            let mut index = lock(&self.index);
            for s in fp.sources {
                if let Some(set) = index.get_mut(&s) {
                    set.remove(key);
                    if set.is_empty() {
                        index.remove(&s);
                    }
                }
            }
        }
    }

    fn credential_api(&self, namespace: &str) -> Api<DynamicObject> {
        let (ar, _) = known_resource(&Gvk::credential()).unwrap_or_else(|| {
            (kube::api::ApiResource::from_gvk(&super::cluster::to_kube_gvk(&Gvk::credential())), true)
        });
        Api::namespaced_with(self.mgmt.clone(), namespace, &ar)
    }

    /// Brings one Credential's copies in line with its plan (or releases them).
    pub async fn converge(&self, key: &CredentialKey) -> Result<Outcome, DistributionError> {
        let api = self.credential_api(&key.namespace);
        let Some(obj) =
            api.get_opt(&key.name).await.map_err(|e| DistributionError::api(format!("read Credential {key}"), e))?
        else {
            self.forget(key);
            return Ok(Outcome::Done);
        };
        let credential = to_value(&obj);
        let target = identity::target_of(&credential);
        let deleting = credential.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null());
        let finalizers: Vec<String> = credential
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        let has_finalizer = finalizers.iter().any(|f| f == labels::DISTRIBUTION_FINALIZER);
        match self.config.mode.mode() {
            Mode::Write => {}
            Mode::Off => return self.hand_over(key, &api, &credential, &finalizers, Handover::Off).await,
            Mode::Trigger => match target {
                Some(target) if !deleting => {
                    return self.trigger_and_verify(key, &api, &credential, &target, &finalizers).await;
                }
                _ => return self.hand_over(key, &api, &credential, &finalizers, Handover::Kcm).await,
            },
        }

        if deleting || target.is_none() {
            if !has_finalizer {
                self.forget(key);
                return Ok(Outcome::Done);
            }
            // Released from where copies were made: the remembered target, else the current one.
            let remembered = lock(&self.footprints).get(key).and_then(|f| f.target.clone());
            let from = remembered.or(target).unwrap_or(Cluster::Management);
            return self.release(key, &api, &credential, &from, &finalizers).await;
        }
        let Some(target) = target else { return Ok(Outcome::Done) };
        if let Some(wait) = self.cluster_wait(&target) {
            self.report_backing_off(&api, &credential, &target).await;
            return Ok(Outcome::Wait(wait));
        }
        // The finalizer goes on only right before the first regional write (distribute): until
        // something was written there is nothing to undo, and nothing may hold the Credential.
        let finalizer = (!has_finalizer).then_some((&api, finalizers.as_slice()));
        match self.distribute(key, &credential, &target, finalizer).await {
            Ok(Distributed::Wait(wait)) => {
                self.report_backing_off(&api, &credential, &target).await;
                Ok(Outcome::Wait(wait))
            }
            Ok(Distributed::Done(condition)) => {
                let failed = !condition.ok;
                // A Warning Event when the failure is new or changed, not at every retry.
                if self.report(&api, &credential, &condition).await? && failed {
                    self.event(&credential, EventType::Warning, &condition.reason, "Distribute", &condition.message)
                        .await;
                }
                Ok(if failed { Outcome::Failed { reason: condition.reason } } else { Outcome::Done })
            }
            Err(e) => {
                if matches!(e, DistributionError::Unreachable { .. })
                    || matches!(&e, DistributionError::Api { source, .. } if is_connect_error(source))
                {
                    self.cluster_failed(&target);
                }
                let desired = DesiredCondition {
                    ok: false,
                    reason: e.reason().to_string(),
                    message: format!("identities not distributed to {target}: {e}; retrying with backoff"),
                };
                if self.report(&api, &credential, &desired).await? {
                    self.event(&credential, EventType::Warning, e.reason(), "Distribute", &desired.message).await;
                }
                Ok(Outcome::Failed { reason: e.reason().to_string() })
            }
        }
    }

    /// A Credential whose cluster is backing off says so (`ClusterUnreachable`), written once,
    /// not at every retry: every Credential of a stalled cluster shows why it waits, not only
    /// those that happened to be attempted.
    async fn report_backing_off(&self, api: &Api<DynamicObject>, credential: &Value, target: &Cluster) {
        let err = DistributionError::Unreachable {
            cluster: target.clone(),
            detail: "it failed to answer recently (refused, or no reply within the timeout)".to_string(),
        };
        let already = credential.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|cs| {
            cs.iter().any(|c| {
                c["type"] == labels::DISTRIBUTED_CONDITION && c["status"] == "False" && c["reason"] == err.reason()
            })
        });
        if already {
            return;
        }
        let desired = DesiredCondition {
            ok: false,
            reason: err.reason().to_string(),
            message: format!("identities not distributed to {target}: {err}; retrying with backoff"),
        };
        if let Err(e) = self.report(api, credential, &desired).await {
            tracing::debug!(error = %e, "condition not written; the next attempt writes it");
        }
    }

    async fn report(
        &self,
        api: &Api<DynamicObject>,
        credential: &Value,
        desired: &DesiredCondition,
    ) -> Result<bool, DistributionError> {
        apply_condition(api, credential, desired).await
    }

    async fn event(&self, credential: &Value, t: EventType, reason: &str, action: &str, note: &str) {
        publish_event(&self.mgmt, &self.config.instance, credential, t, reason, action, note).await;
    }

    async fn add_finalizer(
        &self,
        key: &CredentialKey,
        api: &Api<DynamicObject>,
        credential: &Value,
        finalizers: &[String],
    ) -> Result<(), DistributionError> {
        let patch: Value = if finalizers.is_empty() {
            // No list yet: guard with the resourceVersion so a concurrent add is not clobbered.
            let rv = credential.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null);
            json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
                {"op": "add", "path": "/metadata/finalizers", "value": [labels::DISTRIBUTION_FINALIZER]},
            ])
        } else {
            json!([{"op": "add", "path": "/metadata/finalizers/-", "value": labels::DISTRIBUTION_FINALIZER}])
        };
        let patch: JsonPatch = serde_json::from_value(patch)
            .map_err(|e| DistributionError::Malformed { object: format!("Credential {key}"), detail: e.to_string() })?;
        api.patch(&key.name, &PatchParams::default(), &Patch::<()>::Json(patch))
            .await
            .map_err(|e| DistributionError::api(format!("add finalizer to Credential {key}"), e))?;
        Ok(())
    }

    async fn remove_finalizer(
        &self,
        key: &CredentialKey,
        api: &Api<DynamicObject>,
        finalizers: &[String],
    ) -> Result<(), DistributionError> {
        let Some(i) = finalizers.iter().position(|f| f == labels::DISTRIBUTION_FINALIZER) else { return Ok(()) };
        let path = format!("/metadata/finalizers/{i}");
        let patch: JsonPatch = serde_json::from_value(json!([
            {"op": "test", "path": path, "value": labels::DISTRIBUTION_FINALIZER},
            {"op": "remove", "path": path},
        ]))
        .map_err(|e| DistributionError::Malformed { object: format!("Credential {key}"), detail: e.to_string() })?;
        match api.patch(&key.name, &PatchParams::default(), &Patch::<()>::Json(patch)).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(DistributionError::api(format!("remove finalizer from Credential {key}"), e)),
        }
    }

    // ---- connections ---------------------------------------------------------------------

    async fn region_object(&self, region: &str) -> Result<Arc<Value>, DistributionError> {
        if let Some(r) = self.region_objects.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(region) {
            return Ok(Arc::clone(r));
        }
        let listed = WatchSpec::known(&Gvk::region(), Trim::Common)
            .and_then(|spec| self.informers.management.get(&spec, None, region));
        match listed {
            Some(Some(r)) => return Ok(r),
            Some(None) => return Err(DistributionError::RegionNotFound { region: region.to_string() }),
            None => {}
        }
        let (region_ar, _) = known_resource(&Gvk::region())
            .unwrap_or_else(|| (kube::api::ApiResource::from_gvk(&super::cluster::to_kube_gvk(&Gvk::region())), false));
        let api: Api<DynamicObject> = Api::all_with(self.mgmt.clone(), &region_ar);
        match api.get_opt(region).await {
            Ok(Some(r)) => Ok(Arc::new(to_value(&r))),
            Ok(None) => Err(DistributionError::RegionNotFound { region: region.to_string() }),
            Err(e) => Err(DistributionError::api(format!("read Region {region}"), e)),
        }
    }

    /// The connection to a target cluster, built from the Region's kubeconfig on first use.
    pub async fn connection(&self, target: &Cluster) -> Result<Arc<ClusterConn>, DistributionError> {
        let region = match target {
            Cluster::Management => return Ok(Arc::clone(&self.mgmt_conn)),
            Cluster::Region(r) => r,
        };
        // The map's lock is held only to find the slot; the build (API reads) runs outside it.
        let slot = Arc::clone(lock(&self.regions).entry(region.clone()).or_default());
        slot.get_or_try_init(|| self.build_connection(target)).await.map(Arc::clone)
    }

    /// Builds a Region's connection from its kubeconfig Secret.
    async fn build_connection(&self, target: &Cluster) -> Result<Arc<ClusterConn>, DistributionError> {
        let Cluster::Region(region) = target else { return Ok(Arc::clone(&self.mgmt_conn)) };
        let region_obj = self.region_object(region).await?;
        let source = credential_core::kubeconfig::region_kubeconfig_ref_of(&region_obj, &self.config.system_namespace)?;
        let (ns, name) = (source.namespace.clone(), source.name.clone());
        // A ClusterDeployment Region's kubeconfig lives in the ClusterDeployment's namespace:
        // watched there (the system namespace is watched from the start), so a change rebuilds
        // the client.
        self.ensure_source_watch(&Gvk::secret(), Some(&ns));
        let regional = self.informers.regions.connect(region, &source).await.map_err(|e| match e {
            RegionalError::Read { source, .. } => {
                DistributionError::api(format!("read kubeconfig Secret {ns}/{name} of Region {region}"), source)
            }
            e => DistributionError::RegionKubeconfig { region: region.clone(), detail: e.to_string() },
        })?;
        lock(&self.kubeconfigs)
            .entry((ns, name))
            .or_default()
            .push((region.clone(), Some(regional.secret_version.clone())));
        let conn = ClusterConn::new(
            target.clone(),
            regional.client.clone(),
            Arc::clone(&regional.watches),
            Some(regional),
            self.config.per_cluster_concurrency,
            Arc::clone(&self.on_pis),
        );
        Ok(conn)
    }

    // ---- distribute ----------------------------------------------------------------------

    /// Plans with sources read from the management cluster (and, when `fallback` is given, from
    /// the copies in that cluster: a deleted source must not block the release of its copies).
    /// Also gives the versions of the source objects it read (the trigger digest's input).
    async fn plan(
        &self,
        credential: &Value,
        target: &Cluster,
        conn: &ClusterConn,
        pis: Vec<Arc<Value>>,
        fallback: bool,
    ) -> Result<(Plan, SourceVersions), DistributionError> {
        let mut estate = FetchedEstate::new(&self.config.system_namespace, target.clone(), pis);
        // Each round resolves one more level of references; the planner's depth bound caps it.
        for _ in 0..(identity::MAX_DEPTH * 2 + 4) {
            let plan = identity::plan(credential, &estate);
            let misses = estate.take_misses();
            if misses.is_empty() {
                return Ok((plan, estate.versions()));
            }
            let scope_missed: HashSet<Gvk> = misses
                .iter()
                .filter_map(|m| match m {
                    Miss::Scope { gvk, .. } => Some(gvk.clone()),
                    Miss::Object { .. } => None,
                })
                .collect();
            for miss in misses {
                match miss {
                    Miss::Scope { cluster, gvk } => {
                        let c: &ClusterConn = if cluster == Cluster::Management { &self.mgmt_conn } else { conn };
                        let found = c.resource(&gvk).await?;
                        estate.put_scope(cluster, &gvk, found.map(|(_, namespaced)| namespaced));
                    }
                    // Asked while the scope was unknown: the next round asks the right place.
                    Miss::Object { gvk, .. } if scope_missed.contains(&gvk) => {}
                    Miss::Object { gvk, namespace, name } => {
                        let mut found = self.read_source(&self.mgmt_conn, &gvk, namespace.as_deref(), &name).await?;
                        // Inside the management cluster a copy we made (it carries our owners
                        // annotation) sits where the planner looks first, the Credential's own
                        // namespace: it is never a source, or the next convergence would see the
                        // copy as its own source, plan nothing to copy and release (delete) it.
                        if *target == Cluster::Management
                            && found.as_deref().is_some_and(|o| !identity::owners_of(o).is_empty())
                        {
                            found = None;
                        }
                        if found.is_none() && fallback {
                            found = self
                                .read_source(conn, &gvk, namespace.as_deref(), &name)
                                .await?
                                .filter(|o| identity::is_managed(o));
                        }
                        estate.put_object(&gvk, namespace.as_deref(), &name, found);
                    }
                }
            }
        }
        Ok((identity::plan(credential, &estate), estate.versions()))
    }

    async fn read_source(
        &self,
        conn: &ClusterConn,
        gvk: &Gvk,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Arc<Value>>, DistributionError> {
        let Some((ar, namespaced)) = conn.resource(gvk).await? else { return Ok(None) };
        if namespaced != namespace.is_some() {
            return Ok(None); // asked at a location this kind cannot have
        }
        let api = conn.api(&ar, namespaced, namespace);
        let what = match namespace {
            Some(ns) => format!("read {} {ns}/{name} in {}", gvk.kind, conn.cluster),
            None => format!("read {} {name} in {}", gvk.kind, conn.cluster),
        };
        match api.get_opt(name).await {
            Ok(o) => Ok(o.map(|o| Arc::new(to_value(&o)))),
            Err(e) => Err(classify(&conn.cluster, what, e)),
        }
    }

    fn remember(&self, key: &CredentialKey, target: &Cluster, plan: &Plan) {
        let mut sources: Vec<SourceKey> =
            plan.objects().map(|c| source_key(&c.source.gvk, c.source.namespace.as_deref(), &c.source.name)).collect();
        for p in &plan.problems {
            if let PlanProblem::SourceMissing { key: k } = p {
                sources.push(source_key(&k.gvk, k.namespace.as_deref(), &k.name));
            }
        }
        // Watched where they are (missing ones too: their creation is a change).
        for c in plan.objects() {
            self.ensure_source_watch(&c.source.gvk, c.source.namespace.as_deref());
        }
        for p in &plan.problems {
            if let PlanProblem::SourceMissing { key: k } = p {
                self.ensure_source_watch(&k.gvk, k.namespace.as_deref());
            }
        }
        // Copies made before stay remembered until released (a blocked plan or a failed write
        // must not make us forget what exists in the target); `distribute` narrows them to the
        // plan once the stale ones are released.
        let mut copies: Vec<ObjectKey> =
            plan.copies.iter().filter(|c| c.object.is_some()).map(|c| c.target.clone()).collect();
        let mut footprints = lock(&self.footprints);
        for k in footprints.get(key).map(|f| f.copies.clone()).unwrap_or_default() {
            if !copies.contains(&k) {
                copies.push(k);
            }
        }
        let previous = footprints
            .insert(key.clone(), Footprint { target: Some(target.clone()), sources: sources.clone(), copies });
        drop(footprints);
        let mut index = lock(&self.index);
        for s in previous.map(|p| p.sources).unwrap_or_default() {
            if let Some(set) = index.get_mut(&s) {
                set.remove(key);
                if set.is_empty() {
                    index.remove(&s);
                }
            }
        }
        for s in sources {
            index.entry(s).or_default().insert(key.clone());
        }
    }

    async fn distribute(
        &self,
        key: &CredentialKey,
        credential: &Value,
        target: &Cluster,
        mut finalizer: Option<(&Api<DynamicObject>, &[String])>,
    ) -> Result<Distributed, DistributionError> {
        let conn = self.connection(target).await?;
        let _permit = conn.permits.acquire().await;
        // The cluster may have failed while this key waited for a permit: back off, not pile on.
        if let Some(wait) = self.cluster_wait(target) {
            return Ok(Distributed::Wait(wait));
        }
        let pis = conn.provider_interfaces(self.config.cluster_timeout).await?;
        self.cluster_ok(target);
        let (plan, _) = self.plan(credential, target, &conn, pis, false).await?;
        // What this Credential holds there: remembered by this process, and recorded on the
        // Credential by whichever replica wrote it (a change made while no replica led).
        let previous_copies = self.held_copies(key, credential, target);
        self.remember(key, target, &plan);

        let owner = key.to_string();
        let mut problems: Vec<(String, String)> =
            plan.problems.iter().map(|p| (problem_reason(p).to_string(), p.message(Some(target)))).collect();
        let mut placed = Vec::new();
        // KCM copies nothing when any part of the identity graph fails to resolve, and neither do
        // we: half an identity in a region (an identity whose Secret is missing) is worse than none.
        let blocked = !problems.is_empty();
        for copy in plan.copies.iter().filter(|_| !blocked) {
            let Some(object) = &copy.object else { continue };
            let Some((ar, namespaced)) = conn.resource(&copy.target.gvk).await? else {
                problems.push((
                    "KindNotServed".to_string(),
                    format!(
                        "{} is not served in {target}: enable the provider there (its CRD is missing), then the \
                         copy of {} follows",
                        copy.target.gvk, copy.target
                    ),
                ));
                continue;
            };
            if let Some((api, finalizers)) = finalizer.take() {
                self.add_finalizer(key, api, credential, finalizers).await?;
            }
            conn.ensure_copy_watch(&copy.target.gvk, &ar, &self.on_copy);
            let lock_handle = self.locks.lock_for(target, &copy.target);
            let _guard = lock_handle.lock().await;
            match apply_copy(&conn, &ar, namespaced, &copy.target, object, &owner).await? {
                ApplyOutcome::Created | ApplyOutcome::Updated => {
                    self.metrics.copies_applied.inc();
                    placed.push(copy.target.to_string());
                    self.event(
                        credential,
                        EventType::Normal,
                        "Copied",
                        "Distribute",
                        &format!("copied {} ({}) to {target}", copy.target, copy.target.gvk.api_version()),
                    )
                    .await;
                }
                ApplyOutcome::Unchanged => placed.push(copy.target.to_string()),
                ApplyOutcome::PresentUnmanaged => placed.push(format!("{} (present, not managed by us)", copy.target)),
                ApplyOutcome::Conflict => {
                    // Reported through the condition (a Warning Event when it changes), not an
                    // Event per retry.
                    self.metrics.conflicts.inc();
                    let msg = format!(
                        "{} exists in {target} without label {}=true and with other content: it was left \
                         untouched; delete it or label it so credential-guard may manage it",
                        copy.target,
                        labels::MANAGED
                    );
                    problems.push(("Conflict".to_string(), msg));
                }
            }
        }
        // Copies the previous plan made that this one no longer wants (not while the plan is
        // blocked: a missing reference does not mean its copy is unwanted).
        let wanted: HashSet<&ObjectKey> = plan.copies.iter().map(|c| &c.target).collect();
        for stale in previous_copies.iter().filter(|k| !blocked && !wanted.contains(k)) {
            if let Some((ar, namespaced)) = conn.resource(&stale.gvk).await? {
                let lock_handle = self.locks.lock_for(target, stale);
                let _guard = lock_handle.lock().await;
                if release_copy(&conn, &ar, namespaced, stale, &owner).await? == ReleaseOutcome::Deleted {
                    self.metrics.copies_deleted.inc();
                }
            }
        }
        // What this Credential now holds: recorded on it (so a restart or a new leader can release
        // it), and remembered. While the plan is blocked, the old copies stay held.
        let held: Vec<ObjectKey> = if blocked {
            previous_copies.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect()
        } else {
            plan.copies
                .iter()
                .filter(|c| c.object.is_some())
                .map(|c| c.target.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        self.record_copies(key, credential, target, &held).await?;
        if !blocked && let Some(f) = lock(&self.footprints).get_mut(key) {
            f.copies = held.clone();
        }
        let sources = lock(&self.footprints).get(key).map(|f| f.sources.clone()).unwrap_or_default();
        let mut note = self.unwatched(&sources).join("; ");
        if !note.is_empty() {
            note = format!(" (note: {note})");
        }
        let condition = match problems.first() {
            None => DesiredCondition {
                ok: true,
                reason: REASON_DISTRIBUTED.to_string(),
                message: format!("{} object(s) distributed to {target}: {}{note}", placed.len(), summary(&placed)),
            },
            Some((reason, _)) => DesiredCondition {
                ok: false,
                reason: reason.clone(),
                message: format!(
                    "{}{}",
                    if blocked { "nothing copied: " } else { "" },
                    problems.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; ")
                ),
            },
        };
        Ok(Distributed::Done(condition))
    }

    /// Releases this Credential's ownership of its copies, deleting those nobody else owns; the
    /// finalizer goes only when that succeeded.
    async fn release(
        &self,
        key: &CredentialKey,
        api: &Api<DynamicObject>,
        credential: &Value,
        target: &Cluster,
        finalizers: &[String],
    ) -> Result<Outcome, DistributionError> {
        let overdue = deleting_for(credential) >= self.config.release_timeout;
        if let Some(wait) = self.cluster_wait(target) {
            if overdue {
                let why = format!("{target} did not answer for {}s", self.config.release_timeout.as_secs());
                return self.abandon(key, api, credential, target, finalizers, &why).await;
            }
            return Ok(Outcome::Wait(wait));
        }
        match self.release_all(key, credential, target).await {
            Ok(deleted) => {
                self.remove_finalizer(key, api, finalizers).await?;
                if deleted > 0 {
                    self.event(
                        credential,
                        EventType::Normal,
                        "Released",
                        "Release",
                        &format!("released copies in {target}; deleted {deleted} no other Credential owns"),
                    )
                    .await;
                }
                self.forget(key);
                Ok(Outcome::Done)
            }
            Err(e) => {
                if matches!(e, DistributionError::Unreachable { .. }) {
                    self.cluster_failed(target);
                }
                // A Region that is gone cannot come back for this Credential: waiting helps
                // nobody. Anything else (unreachable, forbidden) is retried up to the timeout.
                if matches!(e, DistributionError::RegionNotFound { .. }) || overdue {
                    return self.abandon(key, api, credential, target, finalizers, &e.to_string()).await;
                }
                let desired = DesiredCondition {
                    ok: false,
                    reason: "ReleasePending".to_string(),
                    message: format!(
                        "copies in {target} not released yet ({e}); finalizer {} stays until they are, retrying \
                         with backoff for at most {}s after deletion",
                        labels::DISTRIBUTION_FINALIZER,
                        self.config.release_timeout.as_secs()
                    ),
                };
                if self.report(api, credential, &desired).await.unwrap_or(false) {
                    self.event(credential, EventType::Warning, "ReleasePending", "Release", &desired.message).await;
                }
                Ok(Outcome::Failed { reason: e.reason().to_string() })
            }
        }
    }

    /// Records on the Credential the copies it holds in `target` (annotation
    /// [`labels::COPIES_ANNOTATION`], names only), when that differs from what it carries. An
    /// empty set with no record writes nothing.
    async fn record_copies(
        &self,
        key: &CredentialKey,
        credential: &Value,
        target: &Cluster,
        held: &[ObjectKey],
    ) -> Result<(), DistributionError> {
        let current = credential.pointer("/metadata/annotations").and_then(|a| a.get(labels::COPIES_ANNOTATION));
        let wanted = identity::copies_annotation_value(target, held);
        let value = match (current.and_then(Value::as_str), held.is_empty()) {
            (None, true) => return Ok(()),
            (Some(c), _) if c == wanted => return Ok(()),
            (Some(_), true) => Value::Null,
            _ => Value::String(wanted),
        };
        let patch = json!({"metadata": {"annotations": {labels::COPIES_ANNOTATION: value}}});
        self.credential_api(&key.namespace)
            .patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| DistributionError::api(format!("record the copies of Credential {key}"), e))?;
        Ok(())
    }

    /// Gives up a release that cannot be carried out: records what may remain where (ConfigMap
    /// [`ORPHANED_COPIES`] in the system namespace), says so in a Warning Event and a metric, and
    /// removes the finalizer, so the Credential is never held forever.
    async fn abandon(
        &self,
        key: &CredentialKey,
        api: &Api<DynamicObject>,
        credential: &Value,
        target: &Cluster,
        finalizers: &[String],
        why: &str,
    ) -> Result<Outcome, DistributionError> {
        let objects = self.held_objects(key, credential, target);
        let note = format!(
            "released nothing in {target} ({why}); finalizer {} removed after giving up. These may remain there: \
             {}. Recorded in ConfigMap {}/{ORPHANED_COPIES}; delete them by hand if the cluster still exists",
            labels::DISTRIBUTION_FINALIZER,
            summary(&objects),
            self.config.system_namespace,
        );
        if let Err(e) = self.record_orphans(key, target, &objects, why).await {
            tracing::warn!(credential = %key, error = %e, "orphaned copies not recorded");
        }
        self.metrics.releases_abandoned.inc();
        self.event(credential, EventType::Warning, "ReleaseAbandoned", "Release", &note).await;
        tracing::warn!(credential = %key, cluster = %target, objects = ?objects, reason = why, "release abandoned");
        self.remove_finalizer(key, api, finalizers).await?;
        self.forget(key);
        Ok(Outcome::Done)
    }

    /// The copies a Credential holds in `target`: remembered by this process, and recorded on the
    /// Credential by whichever replica wrote them.
    fn held_copies(&self, key: &CredentialKey, credential: &Value, target: &Cluster) -> Vec<ObjectKey> {
        let mut held = lock(&self.footprints).get(key).map(|f| f.copies.clone()).unwrap_or_default();
        for k in identity::recorded_copies(credential, target) {
            if !held.contains(&k) {
                held.push(k);
            }
        }
        held
    }

    /// [`Engine::held_copies`] as `Kind namespace/name`, or what they are copies of when nothing
    /// says which (a record written by an older version).
    fn held_objects(&self, key: &CredentialKey, credential: &Value, target: &Cluster) -> Vec<String> {
        let held = self.held_copies(key, credential, target);
        if held.is_empty() {
            let iref = credential.pointer("/spec/identityRef");
            let field = |f: &str| iref.and_then(|r| r.get(f)).and_then(Value::as_str).unwrap_or("?").to_string();
            return vec![format!("copies of {} {} and the objects it references", field("kind"), field("name"))];
        }
        held.iter().map(ToString::to_string).collect()
    }

    /// One entry per (cluster, Credential) in ConfigMap [`ORPHANED_COPIES`]: what may remain.
    async fn record_orphans(
        &self,
        key: &CredentialKey,
        target: &Cluster,
        objects: &[String],
        why: &str,
    ) -> Result<(), DistributionError> {
        let entry = OrphanRecord {
            credential: OrphanOwner { namespace: key.namespace.clone(), name: key.name.clone() },
            cluster: target.to_string(),
            objects: objects.to_vec(),
            reason: why.to_string(),
            since: k8s_openapi::jiff::Timestamp::now().to_string(),
        };
        let entry = serde_json::to_string(&entry).map_err(|e| DistributionError::Malformed {
            object: format!("ConfigMap {ORPHANED_COPIES}"),
            detail: e.to_string(),
        })?;
        // One key per (cluster, Credential), added with a JSON merge patch: a server-side apply of
        // only the new key by the same field manager would remove every key it applied before.
        let data_key = orphan_key(target, &key.namespace, &key.name);
        let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(self.mgmt.clone(), &self.config.system_namespace);
        let params = PatchParams { field_manager: Some(labels::FIELD_MANAGER.to_string()), ..PatchParams::default() };
        let fail = |e| DistributionError::api(format!("record orphaned copies in ConfigMap {ORPHANED_COPIES}"), e);
        let merge = Patch::Merge(json!({ "data": { data_key.as_str(): entry.as_str() } }));
        match api.patch(ORPHANED_COPIES, &params, &merge).await {
            Err(e) if is_not_found(&e) => {}
            other => return other.map(drop).map_err(fail),
        }
        let created = k8s_openapi::api::core::v1::ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(ORPHANED_COPIES.to_string()),
                namespace: Some(self.config.system_namespace.clone()),
                ..kube::api::ObjectMeta::default()
            },
            data: Some([(data_key, entry)].into_iter().collect()),
            ..k8s_openapi::api::core::v1::ConfigMap::default()
        };
        let post = kube::api::PostParams {
            field_manager: Some(labels::FIELD_MANAGER.to_string()),
            ..kube::api::PostParams::default()
        };
        match api.create(&post, &created).await {
            // Created by another release in between: add to it.
            Err(e) if is_conflict(&e) => api.patch(ORPHANED_COPIES, &params, &merge).await.map(drop).map_err(fail),
            other => other.map(drop).map_err(fail),
        }
    }

    async fn release_all(
        &self,
        key: &CredentialKey,
        credential: &Value,
        target: &Cluster,
    ) -> Result<usize, DistributionError> {
        let conn = self.connection(target).await?;
        let _permit = conn.permits.acquire().await;
        let pis = conn.provider_interfaces(self.config.cluster_timeout).await?;
        // The identity graph as it is now; copies stand in for deleted sources.
        let mut plan_credential = credential.clone();
        if let Cluster::Region(r) = target
            && plan_credential.pointer("/spec/region").and_then(Value::as_str).is_none_or(str::is_empty)
        {
            plan_credential["spec"]["region"] = json!(r);
        }
        let (plan, _) = self.plan(&plan_credential, target, &conn, pis, true).await?;
        let mut keys: Vec<ObjectKey> = plan.copies.iter().map(|c| c.target.clone()).collect();
        for k in self.held_copies(key, credential, target) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        // Referencing objects first (reverse apply order), so no copy points at a deleted one.
        keys.reverse();
        let owner = key.to_string();
        let mut deleted = 0;
        for k in &keys {
            // The right API resource for every kind, group included (KCM drops the group here).
            let Some((ar, namespaced)) = conn.resource(&k.gvk).await? else { continue };
            let lock_handle = self.locks.lock_for(target, k);
            let _guard = lock_handle.lock().await;
            if release_copy(&conn, &ar, namespaced, k, &owner).await? == ReleaseOutcome::Deleted {
                self.metrics.copies_deleted.inc();
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

/// How long ago the Credential's deletion was requested (zero when not deleting or unreadable).
fn deleting_for(credential: &Value) -> Duration {
    credential
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .and_then(|t| Duration::try_from(k8s_openapi::jiff::Timestamp::now().duration_since(t)).ok())
        .unwrap_or(Duration::ZERO)
}

enum Distributed {
    /// Attempted: the condition to report.
    Done(DesiredCondition),
    /// Not attempted: the cluster started backing off meanwhile.
    Wait(Duration),
}

fn summary(items: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut s = items.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    s
}

/// The condition reason for a plan problem.
pub fn problem_reason(p: &PlanProblem) -> &'static str {
    match p {
        PlanProblem::InvalidCredential { .. } => "InvalidCredential",
        PlanProblem::IncompleteIdentityRef { .. } => "IdentityRefIncomplete",
        PlanProblem::NoProviderInterface { .. } => "NoProviderInterface",
        PlanProblem::TargetUnknown => "TargetUnknown",
        PlanProblem::SourceMissing { .. } => "SourceMissing",
        PlanProblem::PathNotResolved { .. } => "ReferenceNotResolved",
        PlanProblem::Cycle { .. } => "ReferenceCycle",
        PlanProblem::TooDeep { .. } => "ReferenceTooDeep",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_ignores_status_and_finalizers() {
        let a = json!({"metadata": {"name": "c", "resourceVersion": "1"}, "spec": {"region": "r1"}});
        let mut b = a.clone();
        b["status"] = json!({"conditions": [{"type": "X"}]});
        b["metadata"]["finalizers"] = json!(["f"]);
        b["metadata"]["resourceVersion"] = json!("2");
        assert_eq!(Seen::of(&a), Seen::of(&b));
        let mut c = a.clone();
        c["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_ne!(Seen::of(&a), Seen::of(&c));
        let mut d = a.clone();
        d["spec"]["identityRef"] = json!({"name": "x"});
        assert_ne!(Seen::of(&a), Seen::of(&d));
        assert_eq!(Seen::of(&a).target, Some(Cluster::Region("r1".into())));
    }

    #[test]
    fn core_kinds_are_watched_per_namespace_and_never_cluster_wide() {
        let secret = Gvk::secret();
        assert_eq!(watch_key(&secret, Some("team")), Some(("".into(), "Secret".into(), Some("team".into()))));
        // No namespace (or an empty one) for a core kind: not watched at all, never cluster-wide.
        assert_eq!(watch_key(&secret, None), None);
        assert_eq!(watch_key(&secret, Some("")), None);
        assert_eq!(watch_key(&Gvk::new("", "v1", "ConfigMap"), Some("a")).unwrap().2.as_deref(), Some("a"));
        // Identity kinds: one cluster-wide watch per kind, whatever the object's namespace.
        let azure = Gvk::new("infrastructure.cluster.x-k8s.io", "v1beta1", "AzureClusterIdentity");
        assert_eq!(watch_key(&azure, Some("team")), watch_key(&azure, None));
        assert_eq!(watch_key(&azure, Some("team")).unwrap().2, None);
    }

    #[test]
    fn forbidden_hint_names_the_namespace_and_the_grant() {
        let h = forbidden_hint(&watch_key(&Gvk::secret(), Some("team")).unwrap());
        assert!(h.contains("namespace team") && h.contains("RoleBinding credential-webhook-secrets in team"), "{h}");
        assert!(h.contains("credential-webhook-system-secrets") && h.contains("resync"), "{h}");
        let azure = Gvk::new("infrastructure.cluster.x-k8s.io", "v1beta1", "AzureClusterIdentity");
        let h = forbidden_hint(&watch_key(&azure, None).unwrap());
        assert!(h.contains("AzureClusterIdentity.infrastructure.cluster.x-k8s.io"), "{h}");
        assert!(h.contains("ClusterRole credential-webhook "), "{h}");
    }

    #[test]
    fn distribution_page_names_every_condition_reason() {
        // The operator guide's page on distribution is where operators look up a condition reason.
        const PAGE: &str = include_str!("../../../docs/src/operator/distribution.md");
        let key = ObjectKey { gvk: Gvk::secret(), namespace: None, name: "s".into() };
        let problems = [
            PlanProblem::InvalidCredential { detail: String::new() },
            PlanProblem::IncompleteIdentityRef { missing: Vec::new() },
            PlanProblem::NoProviderInterface { identity: Gvk::secret(), kind_only_match: None },
            PlanProblem::TargetUnknown,
            PlanProblem::SourceMissing { key: key.clone() },
            PlanProblem::PathNotResolved { object: key.clone(), path: String::new(), detail: String::new() },
            PlanProblem::Cycle { chain: Vec::new() },
            PlanProblem::TooDeep { at: key },
        ];
        let cluster = Cluster::Region("r".into());
        let status = kube::core::Status::failure("boom", "InternalError").with_code(500);
        let errors = [
            DistributionError::RegionNotFound { region: "r".into() },
            DistributionError::RegionKubeconfig { region: "r".into(), detail: String::new() },
            DistributionError::Unreachable { cluster, detail: String::new() },
            DistributionError::api("x", kube::Error::Api(Box::new(status))),
            DistributionError::Malformed { object: String::new(), detail: String::new() },
            DistributionError::Lease { lease: String::new(), detail: String::new() },
        ];
        let mut reasons: Vec<&str> = problems.iter().map(problem_reason).collect();
        reasons.extend(errors.iter().map(DistributionError::reason));
        reasons.extend([REASON_DISTRIBUTED, "KindNotServed", "Conflict", "ReleasePending", REASON_OFF]);
        reasons.extend(credential_core::distribution::VerifyReason::ALL.map(|r| r.as_str()));
        assert!(reasons.contains(&"ApiError") && reasons.contains(&"LeaderElection"));
        for r in reasons {
            assert!(
                PAGE.contains(&format!("| `{r}`")) || PAGE.contains(&format!(", `{r}`")),
                "{r} not in docs/src/operator/distribution.md"
            );
        }
    }

    #[test]
    fn summary_caps_the_list() {
        let items: Vec<String> = (0..10).map(|i| format!("Secret ns/s{i}")).collect();
        let s = summary(&items);
        assert!(s.ends_with("and 2 more"), "{s}");
        assert_eq!(summary(&items[..1]), "Secret ns/s0");
    }
}
