//! The distributor's state while this replica leads, and the reconcile of one Credential.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
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
use super::copies::{ApplyOutcome, ObjectLocks, ReleaseOutcome, Spare, apply_copy, release_copy};
use super::error::{DistributionError, is_conflict, is_connect_error, is_not_found};
use super::estate::{FetchedEstate, Miss, SourceVersions};
use super::metrics::DistributionMetrics;
use super::reason::{EventReason, Reason};
use super::status::{DesiredCondition, EventType, apply_condition, publish_event, recorder};
use crate::informer::{Event, Informers, RegionalError, Subscription, Trim, WatchFailure, WatchSpec};

mod connections;
mod controller;
mod distribute;
mod reconcile;
mod release;
mod sources;
mod trigger;
use controller::Keys;
pub use controller::TriggerRx;
use sources::{Planned, Reads};
use trigger::{Handover, Verdict};

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

/// What the Region watch remembers of a Region: a digest of its spec, and whether it is Ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionSeen {
    spec: u64,
    ready: bool,
}

impl RegionSeen {
    pub fn of(region: &Value) -> Self {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        region.get("spec").map(Value::to_string).unwrap_or_default().hash(&mut h);
        let ready = region
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
        RegionSeen { spec: h.finish(), ready }
    }
}

#[derive(Debug, Clone, Copy)]
struct Health {
    failures: u32,
    next_attempt: Instant,
}

/// Objects a Credential's last plan read or wrote (for watches and garbage collection).
#[derive(Debug, Clone, Default)]
struct LastPlan {
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

/// How one reconcile ended.
#[derive(Debug)]
pub enum Outcome {
    /// Reconciled (or nothing to do).
    Done,
    /// The Credential is gone: forgotten, its key leaves the controller's store.
    Gone,
    /// Not attempted: the target cluster is backing off.
    Wait(Duration),
    /// Attempted and not reconciled; retried with the Credential's backoff.
    Failed { reason: String },
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Shared state while this replica leads (fresh each time it becomes leader).
pub struct Engine {
    pub config: DistributionConfig,
    pub mgmt: kube::Client,
    /// The watch layer shared with the admission index.
    pub informers: Arc<Informers>,
    pub mgmt_conn: Arc<ClusterConn>,
    /// Trigger channel of the controller (see `controller.rs`).
    triggers: tokio::sync::mpsc::UnboundedSender<kube::runtime::reflector::ObjectRef<DynamicObject>>,
    keys: Mutex<Keys>,
    /// Events about Credentials, under this replica's name.
    recorder: kube::runtime::events::Recorder,
    pub metrics: DistributionMetrics,
    /// One slot per Region, filled on first use: a slow build holds up only that Region's
    /// callers, never the map (nor other Regions).
    regions: Mutex<HashMap<String, RegionSlot>>,
    /// What the Region watch last told of each Region: what a change is compared against (the
    /// objects themselves are the watch store's).
    regions_seen: Mutex<HashMap<String, RegionSeen>>,
    health: Mutex<HashMap<Cluster, Health>>,
    failures: Mutex<HashMap<CredentialKey, u32>>,
    pub seen: Mutex<HashMap<CredentialKey, Seen>>,
    last_plans: Mutex<HashMap<CredentialKey, LastPlan>>,
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
    /// Trigger mode: identity objects (never Secrets or ConfigMaps) as last read, valid while
    /// their watch holds the same uid and resourceVersion (`Engine::held_source`).
    source_objects: Mutex<HashMap<SourceKey, Arc<Value>>>,
    /// Trigger mode: the last verdict on each copy of a Credential, and the versions it was
    /// judged at; a copy is read again only when one of them changed.
    verdicts: Mutex<HashMap<CredentialKey, HashMap<ObjectKey, Verdict>>>,
    /// Trigger mode: when a source change was first seen for a Credential not yet triggered
    /// since (metric: source change to trigger).
    changed_at: Mutex<HashMap<CredentialKey, Instant>>,
    /// Trigger mode: when the Credential was last triggered and not yet verified in sync since
    /// (metric: trigger to copies in sync).
    triggered_at: Mutex<HashMap<CredentialKey, Instant>>,
    on_pis: Arc<dyn Fn(&Cluster) + Send + Sync>,
    /// A copy changed or went away in a target cluster: its owners reconcile again.
    on_copy: OnCopyEvent,
    me: Weak<Engine>,
}

impl Engine {
    pub fn new(
        config: DistributionConfig,
        informers: Arc<Informers>,
        metrics: DistributionMetrics,
    ) -> (Arc<Self>, TriggerRx) {
        let mgmt = informers.client().clone();
        let (triggers, rx) = tokio::sync::mpsc::unbounded_channel();
        let recorder = recorder(mgmt.clone(), &config.instance);
        let engine = Arc::new_cyclic(|me: &Weak<Engine>| {
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
                triggers,
                keys: Mutex::new(Keys::new()),
                recorder,
                metrics,
                regions: Mutex::default(),
                regions_seen: Mutex::default(),
                health: Mutex::default(),
                failures: Mutex::default(),
                seen: Mutex::default(),
                last_plans: Mutex::default(),
                index: Mutex::default(),
                locks: ObjectLocks::default(),
                kubeconfigs: Mutex::default(),
                source_watches: Mutex::default(),
                forbidden: Mutex::default(),
                source_versions: Mutex::default(),
                source_objects: Mutex::default(),
                verdicts: Mutex::default(),
                changed_at: Mutex::default(),
                triggered_at: Mutex::default(),
                on_pis,
                on_copy,
                me: me.clone(),
            }
        });
        (engine, rx)
    }

    // ---- triggers ------------------------------------------------------------------------

    /// Triggers a reconcile of `key` (deduplicated by the controller).
    pub fn enqueue(&self, key: CredentialKey) {
        let r = self.admit(&key);
        // Closed only once leadership ended: nothing reconciles any more.
        let _ = self.triggers.send(r);
    }

    /// Credentials waiting or in progress, retries excluded.
    pub fn busy(&self) -> usize {
        lock(&self.keys).busy()
    }

    /// Credentials (as last seen) whose copies go to `cluster`.
    pub fn credentials_of(&self, cluster: &Cluster) -> Vec<CredentialKey> {
        let mut keys: BTreeSet<CredentialKey> = lock(&self.seen)
            .iter()
            .filter(|(_, s)| s.target.as_ref() == Some(cluster))
            .map(|(k, _)| k.clone())
            .collect();
        keys.extend(
            lock(&self.last_plans).iter().filter(|(_, f)| f.target.as_ref() == Some(cluster)).map(|(k, _)| k.clone()),
        );
        keys.into_iter().collect()
    }

    pub fn enqueue_cluster(&self, cluster: &Cluster) {
        for key in self.credentials_of(cluster) {
            self.enqueue(key);
        }
    }

    /// Every distributed Credential (what the slow resync re-checks).
    pub fn resync_keys(&self) -> BTreeSet<CredentialKey> {
        let mut keys: BTreeSet<CredentialKey> =
            lock(&self.seen).iter().filter(|(_, s)| s.target.is_some() || s.ours).map(|(k, _)| k.clone()).collect();
        keys.extend(lock(&self.last_plans).keys().cloned());
        keys
    }

    /// Re-checks every distributed Credential now (a mode change).
    pub fn resync(&self) {
        for k in self.resync_keys() {
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
    fn a_region_is_remembered_by_its_spec_and_readiness_only() {
        let r = json!({"metadata": {"name": "r1", "resourceVersion": "1"}, "spec": {"kubeConfig": {"name": "a"}}});
        let mut status_only = r.clone();
        status_only["metadata"]["resourceVersion"] = json!("2");
        status_only["status"] = json!({"conditions": [{"type": "Ready", "status": "True"}]});
        let (a, b) = (RegionSeen::of(&r), RegionSeen::of(&status_only));
        assert_eq!(a.spec, b.spec);
        assert!(!a.ready && b.ready);
        let mut moved = r.clone();
        moved["spec"]["kubeConfig"]["name"] = json!("b");
        assert_ne!(RegionSeen::of(&moved).spec, a.spec);
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
        const PAGE: &str = include_str!("../../../../docs/src/operator/distribution.md");
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
        // Every plan problem and error maps into the one list, and every reason in it is documented.
        let mapped: Vec<Reason> =
            problems.iter().map(Reason::of_problem).chain(errors.iter().map(DistributionError::reason)).collect();
        assert!(mapped.iter().all(|r| Reason::ALL.contains(r)));
        let mut reasons: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
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
