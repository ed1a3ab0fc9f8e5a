//! The controller: kube-runtime's `applier` runs the reconciles (one at a time per Credential, a
//! key triggered while it runs reconciled again after, at most `workers` at once), fed by our
//! trigger streams; this file holds what it calls: the reconcile of one key within
//! `reconcile_timeout`, the `error_policy` (the Credential's capped exponential backoff), and
//! the key store the applier reads.
//!
//! The store holds one key per Credential the engine was asked about, not the Credential: the
//! reconcile reads the Credential itself (the finalizer's resourceVersion guard and the condition
//! need the current object), and the watch layer already keeps the Credentials, trimmed. A key is
//! put in by each trigger and taken out once its reconcile finds the Credential gone.

use std::collections::HashSet;
use std::convert::Infallible;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt, stream};
use kube::api::ApiResource;
use kube::runtime::controller::{Action, Config, Error as ControllerError, applier};
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::watcher;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::super::leading::AbortOnDrop;
use super::reconcile::credential_resource;
use super::*;

/// A reconcile that did not reconcile: retried with the Credential's backoff.
#[derive(Debug, thiserror::Error)]
#[error("Credential {key} not reconciled ({reason})")]
pub struct NotReconciled {
    key: CredentialKey,
    reason: String,
}

/// The keys the applier reads, and what the queue-depth metric and `pending` count.
pub(super) struct Keys {
    writer: Writer<DynamicObject>,
    store: Store<DynamicObject>,
    resource: ApiResource,
    /// Bumped by every trigger: a key is taken out of the store only by the reconcile that saw the
    /// latest trigger (one triggered during a reconcile that finds the Credential gone stays).
    stamp: i64,
    /// Triggered and not started since.
    waiting: HashSet<CredentialKey>,
    running: HashSet<CredentialKey>,
    /// A retry scheduled (`Action::requeue`) and not started since.
    delayed: HashSet<CredentialKey>,
}

impl Keys {
    pub(super) fn new() -> Self {
        let resource = credential_resource();
        let mut writer = Writer::new(resource.clone());
        // Nothing to list: the store is ready at once, and filled by the triggers.
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let store = writer.as_reader();
        Keys {
            writer,
            store,
            resource,
            stamp: 0,
            waiting: HashSet::new(),
            running: HashSet::new(),
            delayed: HashSet::new(),
        }
    }

    fn object(&self, key: &CredentialKey, stamp: i64) -> DynamicObject {
        let mut o = DynamicObject::new(&key.name, &self.resource).within(&key.namespace);
        o.metadata.generation = Some(stamp);
        o
    }

    fn depth(&self) -> usize {
        self.waiting.len() + self.delayed.iter().filter(|k| !self.waiting.contains(*k)).count()
    }

    /// Credentials waiting or in progress, retries excluded.
    pub(super) fn busy(&self) -> usize {
        self.running.len() + self.waiting.iter().filter(|k| !self.running.contains(*k)).count()
    }

    /// A trigger: the key goes in (with a new stamp) and counts as waiting.
    fn admit(&mut self, key: &CredentialKey) -> ObjectRef<DynamicObject> {
        self.stamp += 1;
        let object = self.object(key, self.stamp);
        let r = ObjectRef::from_obj_with(&object, self.resource.clone());
        self.writer.apply_watcher_event(&watcher::Event::Apply(object));
        self.waiting.insert(key.clone());
        r
    }

    /// The applier handed `key` out.
    fn started(&mut self, key: &CredentialKey) {
        self.waiting.remove(key);
        self.delayed.remove(key);
        self.running.insert(key.clone());
    }

    /// The reconcile of `obj` (the store's entry when it was handed out) found the Credential
    /// gone: its key leaves the store unless it was triggered again since.
    fn gone(&mut self, obj: &DynamicObject) {
        let latest = self.store.get(&ObjectRef::from_obj_with(obj, self.resource.clone()));
        if latest.as_deref() == Some(obj) {
            self.writer.apply_watcher_event(&watcher::Event::Delete(obj.clone()));
        }
    }

    pub(super) fn knows(&self, key: &CredentialKey) -> bool {
        self.store.get(&ObjectRef::new_with(&key.name, self.resource.clone()).within(&key.namespace)).is_some()
    }
}

fn key_of(obj: &DynamicObject) -> CredentialKey {
    CredentialKey {
        namespace: obj.metadata.namespace.clone().unwrap_or_default(),
        name: obj.metadata.name.clone().unwrap_or_default(),
    }
}

/// The trigger channel's receiving end as a stream.
pub type TriggerRx = mpsc::UnboundedReceiver<ObjectRef<DynamicObject>>;

impl Engine {
    /// Puts a key in the store and counts it waiting; the applier is handed the returned ref.
    pub(super) fn admit(&self, key: &CredentialKey) -> ObjectRef<DynamicObject> {
        let mut keys = lock(&self.keys);
        let r = keys.admit(key);
        self.metrics.queue_depth.set(keys.depth() as i64);
        r
    }

    /// Runs the controller until `leading` is cancelled and the reconciles in hand are done.
    /// Its queue: the trigger channel (admission, watches, copies, mode changes) and the resync.
    pub async fn run_controller(self: Arc<Self>, triggers: TriggerRx, leading: CancellationToken) {
        let weak = Arc::downgrade(&self);
        let period = self.config.resync_period;
        // The first resync after one period: the initial list already triggered every Credential.
        let tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let resync = stream::unfold(tick, |mut tick| async move {
            tick.tick().await;
            Some(((), tick))
        })
        .flat_map(move |()| {
            let refs = weak.upgrade().map(|e| e.resync_keys().iter().map(|k| e.admit(k)).collect()).unwrap_or_default();
            stream::iter::<Vec<_>>(refs)
        });
        let triggers = stream::unfold(triggers, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
        let queue = stream::select(triggers, resync).map(Ok::<_, Infallible>).take_until(leading.cancelled_owned());
        let store = lock(&self.keys).store.clone();
        let config = Config::default().concurrency(u16::try_from(self.config.workers.max(1)).unwrap_or(u16::MAX));
        let me = Arc::clone(&self);
        let weak_done = Arc::downgrade(&self);
        drop(self);
        applier(
            |obj: Arc<DynamicObject>, engine: Arc<Engine>| -> BoxFuture<'static, Result<Action, NotReconciled>> {
                // Each reconcile on a task of its own (both cores), aborted if the controller is
                // dropped (leadership lost).
                let key = key_of(&obj);
                // Counted as started here, when the applier hands the key out: a trigger from now
                // on is waiting again (the applier holds it and reconciles the key once more after).
                engine.started(&key);
                let task = AbortOnDrop(tokio::spawn(Arc::clone(&engine).reconcile_key(obj)));
                task.map(move |joined| {
                    joined.unwrap_or_else(|e| {
                        engine.finished(&key);
                        Err(NotReconciled::panicked(key, &e))
                    })
                })
                .boxed()
            },
            |obj, failed: &NotReconciled, engine: Arc<Engine>| engine.error_policy(&key_of(&obj), failed),
            me,
            store,
            queue,
            config,
        )
        .for_each(|result| {
            let weak_done = weak_done.clone();
            async move {
                match result {
                    Ok(_) | Err(ControllerError::ReconcilerFailed(..)) => {}
                    // A key taken out of the store after it was triggered: its Credential is gone.
                    Err(ControllerError::ObjectNotFound(r)) => {
                        tracing::debug!(credential = %r, "not in the store");
                        let key = CredentialKey { namespace: r.namespace.unwrap_or_default(), name: r.name };
                        if let Some(engine) = weak_done.upgrade() {
                            engine.started(&key);
                            engine.finished(&key);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "distribution controller"),
                }
            }
        })
        .await;
    }

    /// The applier handed `key` out.
    fn started(&self, key: &CredentialKey) {
        let mut keys = lock(&self.keys);
        keys.started(key);
        self.metrics.queue_depth.set(keys.depth() as i64);
    }

    /// `key` is no longer running (nor waiting, unless triggered again).
    fn finished(&self, key: &CredentialKey) {
        let mut keys = lock(&self.keys);
        keys.running.remove(key);
        self.metrics.queue_depth.set(keys.depth() as i64);
    }

    /// One reconcile of a key (what the applier runs), within `reconcile_timeout`.
    async fn reconcile_key(self: Arc<Self>, obj: Arc<DynamicObject>) -> Result<Action, NotReconciled> {
        let key = key_of(&obj);
        let started = Instant::now();
        // Bounded: whatever hangs (a permit, a cluster, the management API), the slot, the
        // permit it holds and the key come free, and the target backs off.
        let outcome = match tokio::time::timeout(self.config.reconcile_timeout, self.reconcile(&key)).await {
            Ok(outcome) => outcome,
            Err(_) => Ok(self.timed_out(&key).await),
        };
        self.metrics.convergence_seconds.observe(started.elapsed().as_secs_f64());
        let mut keys = lock(&self.keys);
        keys.running.remove(&key);
        let result = match outcome {
            Ok(Outcome::Done) => Ok(Action::await_change()),
            Ok(Outcome::Gone) => {
                keys.gone(&obj);
                Ok(Action::await_change())
            }
            Ok(Outcome::Wait(d)) => {
                keys.delayed.insert(key.clone());
                Ok(Action::requeue(d))
            }
            Ok(Outcome::Failed { reason }) => Err(NotReconciled { key: key.clone(), reason }),
            Err(e) => {
                tracing::warn!(credential = %key, reason = %e.reason(), error = %e, "distribution failed");
                Err(NotReconciled { key: key.clone(), reason: e.reason().to_string() })
            }
        };
        self.metrics.queue_depth.set(keys.depth() as i64);
        drop(keys);
        if result.is_ok() {
            lock(&self.failures).remove(&key);
        }
        result
    }

    /// The `error_policy`: the Credential's next attempt after its capped exponential backoff.
    fn error_policy(&self, key: &CredentialKey, failed: &NotReconciled) -> Action {
        self.metrics.failed(&failed.reason);
        let n = {
            let mut f = lock(&self.failures);
            let n = f.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let mut keys = lock(&self.keys);
        keys.delayed.insert(key.clone());
        self.metrics.queue_depth.set(keys.depth() as i64);
        Action::requeue(self.config.credential_backoff.delay(n))
    }

    /// A reconcile ran past `reconcile_timeout`: its target is treated as unreachable (it
    /// backs off) and the Credential says so. Every request here is bounded too: the management
    /// API may be what hung.
    pub(super) async fn timed_out(&self, key: &CredentialKey) -> Outcome {
        let limit = self.config.reconcile_timeout;
        let bound = self.config.request_timeout;
        let api = self.credential_api(&key.namespace);
        let credential = match tokio::time::timeout(bound, api.get_opt(&key.name)).await {
            Ok(Ok(Some(obj))) => Some(to_value(&obj)),
            _ => None,
        };
        let remembered = lock(&self.last_plans).get(key).and_then(|f| f.target.clone());
        let target = credential.as_ref().and_then(identity::target_of).or(remembered);
        if let Some(t) = &target {
            self.cluster_failed(t);
        }
        let detail = format!("one reconcile took longer than {}s (it is retried with backoff)", limit.as_secs_f64());
        let err = match &target {
            Some(cluster) => DistributionError::Unreachable { cluster: cluster.clone(), detail },
            None => DistributionError::Unreachable { cluster: Cluster::Management, detail },
        };
        tracing::warn!(credential = %key, reason = %err.reason(), error = %err, "distribution timed out");
        if let (Some(credential), Some(target)) = (&credential, &target) {
            let deleting = credential.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null());
            let (reason, message) = if deleting {
                (
                    Reason::ReleasePending.to_string(),
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

    pub(super) fn forget(&self, key: &CredentialKey) {
        lock(&self.failures).remove(key);
        lock(&self.changed_at).remove(key);
        lock(&self.triggered_at).remove(key);
        lock(&self.seen).remove(key);
        lock(&self.verdicts).remove(key);
        if let Some(fp) = lock(&self.last_plans).remove(key) {
            self.unindex(key, fp.sources);
        }
    }

    /// `key`'s plan no longer uses `sources`: out of the index, and a source no plan uses any more
    /// is no longer kept.
    pub(super) fn unindex(&self, key: &CredentialKey, sources: Vec<SourceKey>) {
        let mut index = lock(&self.index);
        for s in sources {
            if let Some(set) = index.get_mut(&s) {
                set.remove(key);
                if set.is_empty() {
                    index.remove(&s);
                    lock(&self.source_objects).remove(&s);
                }
            }
        }
    }
}

impl NotReconciled {
    /// A reconcile task that panicked: a bug, logged; retried like an API error.
    fn panicked(key: CredentialKey, e: &tokio::task::JoinError) -> Self {
        tracing::error!(credential = %key, error = %e, "reconcile panicked");
        NotReconciled { key, reason: Reason::ApiError.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> CredentialKey {
        CredentialKey { namespace: "kcm-system".into(), name: name.into() }
    }

    #[test]
    fn a_key_triggered_while_its_credential_was_found_gone_stays_in_the_store() {
        let mut keys = Keys::new();
        let r = keys.admit(&key("a"));
        assert_eq!((r.name.as_str(), r.namespace.as_deref()), ("a", Some("kcm-system")));
        let handed_out = keys.store.get(&r).unwrap();
        keys.started(&key("a"));
        // Triggered again during the reconcile (a Credential of that name created anew).
        keys.admit(&key("a"));
        keys.gone(&handed_out);
        assert!(keys.knows(&key("a")), "the newer trigger must still find its key");
        // Its own reconcile finds it gone: out.
        let latest = keys.store.get(&r).unwrap();
        keys.started(&key("a"));
        keys.gone(&latest);
        assert!(!keys.knows(&key("a")));
    }

    #[test]
    fn busy_counts_a_key_waiting_and_running_once_and_depth_counts_retries() {
        let mut keys = Keys::new();
        keys.admit(&key("a"));
        keys.admit(&key("a"));
        keys.admit(&key("b"));
        assert_eq!((keys.busy(), keys.depth()), (2, 2));
        keys.started(&key("a"));
        keys.admit(&key("a")); // held by the applier until the running reconcile ends
        assert_eq!((keys.busy(), keys.depth()), (2, 2));
        keys.started(&key("b"));
        keys.running.remove(&key("b"));
        keys.delayed.insert(key("b")); // a retry scheduled: not busy, still queued
        assert_eq!((keys.busy(), keys.depth()), (1, 2));
        keys.started(&key("b"));
        assert_eq!(keys.delayed.len(), 0);
    }

    /// The guarantees of kube-runtime's applier the distributor relies on (hand-written.md): a key
    /// is never reconciled twice at once, and a key triggered while its reconcile runs is
    /// reconciled once more after it (both triggers folded into that one run).
    #[tokio::test]
    async fn the_applier_runs_a_key_once_at_a_time_and_again_after_a_trigger_during_its_run() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        #[derive(Default)]
        struct Seen {
            runs: AtomicUsize,
            running: AtomicUsize,
            overlapped: AtomicUsize,
        }
        let mut keys = Keys::new();
        let r = keys.admit(&key("a"));
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) })
            .map(Ok::<ObjectRef<DynamicObject>, Infallible>);
        let seen = Arc::new(Seen::default());
        let run = applier(
            |_obj, seen: Arc<Seen>| -> BoxFuture<'static, Result<Action, NotReconciled>> {
                async move {
                    if seen.running.fetch_add(1, Ordering::SeqCst) > 0 {
                        seen.overlapped.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    seen.running.fetch_sub(1, Ordering::SeqCst);
                    seen.runs.fetch_add(1, Ordering::SeqCst);
                    Ok(Action::await_change())
                }
                .boxed()
            },
            |_, _, _| Action::await_change(),
            Arc::clone(&seen),
            keys.store.clone(),
            queue,
            Config::default().concurrency(4),
        )
        .for_each(|_| async {});
        let driver = tokio::spawn(run);
        tx.send(r.clone()).unwrap();
        let first = async {
            while seen.running.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), first).await.expect("the first run never started");
        tx.send(r.clone()).unwrap();
        tx.send(r.clone()).unwrap();
        let second = async {
            while seen.runs.load(Ordering::SeqCst) < 2 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), second)
            .await
            .expect("no run after the triggers during the first");
        tokio::time::sleep(Duration::from_millis(200)).await; // and no third
        // The queue's end stops the applier (what the end of leadership does).
        drop(tx);
        tokio::time::timeout(Duration::from_secs(10), driver).await.unwrap().unwrap();
        assert_eq!(seen.overlapped.load(Ordering::SeqCst), 0, "a key reconciled twice at once");
        assert_eq!(seen.runs.load(Ordering::SeqCst), 2, "one run, then one for the triggers during it");
    }
}
