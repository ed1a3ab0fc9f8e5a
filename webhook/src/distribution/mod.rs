//! Cluster identity distribution: copies each regional (or managed) Credential's ClusterIdentity
//! and everything it references from the management cluster into the target cluster, keeps the
//! copies in sync, and releases them when the Credential goes.
//!
//! How it runs:
//! - A [`Distributor`] runs inside `credential-webhook` in the [`mode`] in force (`--distribution-mode`:
//!   write, trigger — KCM writes, we trigger and verify (engine/trigger.rs) — or off, detected from
//!   KCM's version under `auto`). Only the holder of a coordination.k8s.io Lease distributes (and
//!   publishes the mode on it); every replica serves admission.
//! - Work is one key per Credential, run by kube-runtime's controller `applier` (deduplicated,
//!   one reconcile per key at a time, `workers` at once, retries by its `error_policy`), fed by the
//!   admission hook
//!   ([`DistributorHandle`] implements [`crate::sink::AdmittedChangeSink`]), by subscriptions to
//!   the shared watch layer ([`crate::informer`], which the admission index reads too) on
//!   Credentials, Regions (Ready transitions, spec changes), the ProviderInterfaces and copies of
//!   every target cluster, and metadata-only watches on source objects (each mapped back to the
//!   Credentials whose last plan used it) and Secrets (which also rebuild a regional client when
//!   its kubeconfig Secret changes), plus a slow resync. Secrets are watched one namespace at a
//!   time (the system namespace always, others when a plan uses them), never cluster-wide: RBAC
//!   grants them per namespace. A watch refused with 403 is reported once and the resync covers it.
//! - One reconcile: read the Credential; plan with the core planner over an estate fetched on
//!   demand (each source object read once); server-side apply each copy under one field manager
//!   (force only on objects already ours), never writing an object that lacks the managed label;
//!   record ownership in the owners annotation; report the `ClusterIdentitiesDistributed`
//!   condition and Events. A finalizer keeps the Credential until its copies are released.
//! - Failures retry with capped exponential backoff per Credential and per target cluster;
//!   concurrency is bounded per cluster and overall.
//!
//! Files: `engine/` (the state while leading: `sources.rs` watch handlers, `controller.rs` (the
//! applier, its key store and `error_policy`),
//! `reconcile.rs` with the pure `next_step`, `distribute.rs`, `release.rs`, `trigger.rs`,
//! `connections.rs`), `leading.rs` (one period of leadership), `leader.rs` (the Lease),
//! `cluster.rs` (one target cluster), `copies.rs` (apply and release one copy), `estate.rs` (the
//! planner's estate fetched on demand), `backoff.rs`, `mode.rs`, `status.rs` (condition and Events),
//! `reason.rs`, `error.rs`, `metrics.rs`.

mod backoff;
mod cluster;
mod copies;
mod engine;
mod error;
mod estate;
pub mod leader;
mod leading;
mod metrics;
pub mod mode;
pub mod reason;
mod status;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use credential_core::identity;
use credential_core::rules::Operation;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use backoff::Backoff;
pub use credential_core::distribution::ORPHANED_COPIES;
pub use engine::CredentialKey;
pub use error::DistributionError;
pub use leader::LeaderElection;
pub use metrics::{DistributionMetrics, KindLabel, ModeLabel};
pub use mode::{ModeControl, ModeHandle, ModeState};
pub use reason::{EventReason, Reason};
pub use status::{DesiredCondition, apply_condition};

use crate::informer::{ClientTimeouts, Informers};
use crate::sink::{AdmittedChange, AdmittedChangeSink};
use engine::Engine;
use leading::run_elections;

/// Settings of the distributor (flags of `credential-webhook` map onto these).
#[derive(Debug, Clone)]
pub struct DistributionConfig {
    /// KCM's namespace: Region kubeconfig Secrets, default namespace of references.
    pub system_namespace: String,
    /// Credentials reconciled at once, overall.
    pub workers: usize,
    /// Credentials reconciled at once against one target cluster.
    pub per_cluster_concurrency: usize,
    /// Every Credential is re-checked this often even without events (a safety net).
    pub resync_period: Duration,
    /// Retry delay of a Credential that did not reconcile.
    pub credential_backoff: Backoff,
    /// Retry delay of an unreachable target cluster (and of its watches).
    pub cluster_backoff: Backoff,
    /// How long a reconcile waits for a cluster's first ProviderInterface list.
    pub cluster_timeout: Duration,
    /// TCP connect timeout of regional clients.
    pub connect_timeout: Duration,
    /// Read timeout of one request to a regional cluster: an API server that accepts the
    /// connection and never answers fails the request (`ClusterUnreachable`) instead of holding
    /// a worker and the cluster's permit forever. Watches use a separate client (see
    /// [`WATCH_READ_TIMEOUT`]).
    pub request_timeout: Duration,
    /// Longest time one reconcile may take, permits and management requests included; past it
    /// the target cluster is treated as unreachable (backoff, `ClusterUnreachable`).
    pub reconcile_timeout: Duration,
    /// How long a deleting Credential's release may keep failing (its Region gone, unreachable or
    /// unreadable) before the finalizer is removed anyway, with a Warning Event, a metric and a
    /// record of what may remain where. A Credential is never held forever.
    pub release_timeout: Duration,
    /// `None`: always distribute (single replica, tests).
    pub leader_election: Option<LeaderElection>,
    /// This replica's identity (Lease holder, Event reporting instance).
    pub instance: String,
    /// The distribution mode in force (follows KCM's version under `auto`).
    pub mode: ModeHandle,
    /// Trigger mode: how often copies not in sync are read again besides their watch events, and
    /// how long after a trigger a copy KCM has not rewritten yet counts as KCM at work.
    pub verify_interval: Duration,
}

impl Default for DistributionConfig {
    /// Reads nothing from the environment: `credential-webhook serve` sets the instance and the
    /// Lease namespace from its flags (`--instance`, `--lease-namespace`; the Deployment passes the
    /// pod's name and namespace).
    fn default() -> Self {
        let instance = format!("credential-webhook-{}", std::process::id());
        DistributionConfig {
            system_namespace: credential_core::DEFAULT_SYSTEM_NAMESPACE.to_string(),
            workers: 16,
            per_cluster_concurrency: 4,
            resync_period: Duration::from_secs(600),
            credential_backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(300)),
            cluster_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            cluster_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            reconcile_timeout: Duration::from_secs(120),
            release_timeout: Duration::from_secs(300),
            leader_election: Some(LeaderElection::default()),
            instance,
            mode: ModeHandle::default(),
            verify_interval: Duration::from_secs(60),
        }
    }
}

pub use crate::informer::WATCH_READ_TIMEOUT;

impl DistributionConfig {
    /// The timeouts of regional clients these settings ask for.
    pub fn client_timeouts(&self) -> ClientTimeouts {
        ClientTimeouts { connect: self.connect_timeout, request: self.request_timeout }
    }

    /// A watch layer of its own for the management cluster `mgmt` (a distributor without the
    /// admission index: tests, tools).
    pub fn informers(&self, mgmt: kube::Client) -> Arc<Informers> {
        Informers::new(mgmt, self.client_timeouts(), self.cluster_backoff)
    }
}

/// A running distributor. Dropping it does not stop it: call [`Distributor::shutdown`].
pub struct Distributor {
    handle: DistributorHandle,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

/// A cheap handle: the admission hook, manual enqueues, leadership and metrics.
#[derive(Clone)]
pub struct DistributorHandle {
    current: Arc<RwLock<Option<Arc<Engine>>>>,
    metrics: DistributionMetrics,
}

impl Distributor {
    /// Starts distributing with the management cluster's client (needs a tokio runtime).
    pub fn start(config: DistributionConfig, mgmt: kube::Client) -> Distributor {
        Self::start_with_metrics(config, mgmt, DistributionMetrics::default())
    }

    /// Like [`Distributor::start`], with metrics already registered elsewhere.
    pub fn start_with_metrics(
        config: DistributionConfig,
        mgmt: kube::Client,
        metrics: DistributionMetrics,
    ) -> Distributor {
        let informers = config.informers(mgmt);
        Self::start_shared(config, informers, metrics)
    }

    /// Starts distributing through the watch layer `informers` (shared with the admission index).
    pub fn start_shared(
        config: DistributionConfig,
        informers: Arc<Informers>,
        metrics: DistributionMetrics,
    ) -> Distributor {
        let handle = DistributorHandle { current: Arc::default(), metrics };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_elections(config, informers, handle.clone(), shutdown.clone()));
        Distributor { handle, shutdown, task }
    }

    pub fn handle(&self) -> DistributorHandle {
        self.handle.clone()
    }

    pub fn metrics(&self) -> &DistributionMetrics {
        &self.handle.metrics
    }

    /// Stops gracefully: the reconciles in hand finish, the Lease is released.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Stops at once, mid-reconcile (what a crash looks like to the clusters).
    pub fn abort(self) {
        self.handle.set_engine(None);
        self.task.abort();
    }
}

/// The distributor settings of `credential-webhook serve`: the system namespace, and leader
/// election through a Lease in that namespace (`--lease-namespace` moves it).
pub fn serve_config(system_namespace: &str) -> DistributionConfig {
    DistributionConfig {
        system_namespace: system_namespace.to_string(),
        leader_election: Some(LeaderElection { namespace: system_namespace.to_string(), ..LeaderElection::default() }),
        ..DistributionConfig::default()
    }
}

/// Starts distribution with `config` through the watch layer `informers` (the admission index
/// reads it too), its metrics (`distribution`) in the server's registry.
pub fn start_for_serve_shared(
    informers: Arc<Informers>,
    config: DistributionConfig,
    distribution: DistributionMetrics,
    metrics: &crate::metrics::Metrics,
) -> Distributor {
    let mode = config.mode.current();
    let d = Distributor::start_shared(config, informers, distribution);
    metrics.register_with(|r| d.metrics().register(r));
    tracing::info!(mode = %mode.mode(), "identity distribution running (leader election through a Lease)");
    d
}

/// Runs the distributor until `shutdown` is cancelled.
pub async fn run(
    config: DistributionConfig,
    mgmt: kube::Client,
    metrics: DistributionMetrics,
    shutdown: CancellationToken,
) {
    let handle = DistributorHandle { current: Arc::default(), metrics };
    let informers = config.informers(mgmt);
    run_elections(config, informers, handle, shutdown).await;
}

impl DistributorHandle {
    fn engine(&self) -> Option<Arc<Engine>> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set_engine(&self, engine: Option<Arc<Engine>>) {
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = engine;
    }

    /// Whether this replica distributes now.
    pub fn is_leader(&self) -> bool {
        self.engine().is_some()
    }

    /// Queues a Credential for reconcile; `false` when this replica is not distributing.
    pub fn enqueue(&self, namespace: &str, name: &str) -> bool {
        match self.engine() {
            Some(e) => {
                e.enqueue(CredentialKey { namespace: namespace.to_string(), name: name.to_string() });
                true
            }
            None => false,
        }
    }

    pub fn metrics(&self) -> &DistributionMetrics {
        &self.metrics
    }

    /// Credentials waiting or in progress (tests wait for this to drain).
    pub fn pending(&self) -> usize {
        self.engine().map_or(0, |e| e.busy())
    }
}

/// Whether an admitted change concerns distribution: a regional or managed Credential (new or
/// old object), or a deletion.
pub fn wants(change: &AdmittedChange) -> bool {
    if change.operation == Operation::Delete {
        return true;
    }
    if !matches!(change.operation, Operation::Create | Operation::Update) {
        return false;
    }
    [&change.object, &change.old_object].into_iter().flatten().any(|o| identity::target_of(o).is_some())
}

impl AdmittedChangeSink for DistributorHandle {
    /// Enqueues and returns (the request path never waits on distribution). Admission of dry
    /// runs never reaches a sink.
    fn admitted(&self, change: AdmittedChange) {
        if wants(&change) {
            self.enqueue(&change.namespace, &change.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(
        operation: Operation,
        object: Option<serde_json::Value>,
        old: Option<serde_json::Value>,
    ) -> AdmittedChange {
        AdmittedChange {
            uid: "u".into(),
            operation,
            namespace: "kcm-system".into(),
            name: "c".into(),
            object: object.map(Arc::new),
            old_object: old.map(Arc::new),
        }
    }

    #[test]
    fn admission_hook_wants_regional_managed_and_deleted_credentials_only() {
        let regional = json!({"metadata": {"name": "c"}, "spec": {"region": "r1"}});
        let managed =
            json!({"metadata": {"name": "c", "labels": {"k0rdent.mirantis.com/managed": "true"}}, "spec": {}});
        let plain = json!({"metadata": {"name": "c"}, "spec": {"region": ""}});
        assert!(wants(&change(Operation::Create, Some(regional.clone()), None)));
        assert!(wants(&change(Operation::Update, Some(managed), None)));
        assert!(!wants(&change(Operation::Create, Some(plain.clone()), None)));
        // Region removed by an update (KCM's CEL allows it): the old copies must be released.
        assert!(wants(&change(Operation::Update, Some(plain), Some(regional))));
        assert!(wants(&change(Operation::Delete, None, None)));
        assert!(!wants(&change(Operation::Connect, None, None)));
    }

    #[test]
    fn handle_without_a_running_term_enqueues_nothing() {
        let h = DistributorHandle { current: Arc::default(), metrics: DistributionMetrics::default() };
        assert!(!h.is_leader());
        assert!(!h.enqueue("ns", "c"));
        assert_eq!(h.pending(), 0);
    }
}
