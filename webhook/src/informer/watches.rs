//! The watches of one cluster: each collection (resource, namespace, label selector, shape) is
//! listed and watched once, kept in one store, and fanned out to every subscriber (the admission
//! index, the distributor, the verifier). A subscriber that arrives late is first handed the
//! collection as listed, so it starts from the same state as one that was there from the start.
//!
//! kube-runtime's `watcher` lists, watches, resumes and backs off; this file adds what kube's
//! `reflector` does not offer: objects trimmed to what the subscribers read (so the store holds no
//! managedFields, no last-applied Secret text, no CRD schemas), relists handed over whole, and
//! late subscribers replayed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use credential_core::model::labels;
use futures_util::StreamExt;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::utils::Backoff as KubeBackoff;
use kube::runtime::watcher::{self, Event as KubeEvent};
use kube::runtime::{WatchStreamExt, watcher as watch_fn};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::distribution::Backoff;

/// What a watch keeps of each object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trim {
    /// The whole object minus managedFields and the last-applied annotation.
    Common,
    /// A CRD reduced to group, scope, names and served versions.
    Crd,
    /// Identity metadata only, through a metadata-only watch: Secrets and identity objects.
    Meta,
    /// Identity metadata and our owners annotation, through a metadata-only watch: the copies in
    /// a target cluster (no Secret value is ever stored).
    Owners,
}

/// One collection to watch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WatchSpec {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    /// `None`: every namespace (or a cluster-scoped kind).
    pub namespace: Option<String>,
    /// A label selector, e.g. `k0rdent.mirantis.com/managed=true`.
    pub labels: Option<String>,
    pub trim: Trim,
}

impl WatchSpec {
    pub fn new(ar: &ApiResource, namespace: Option<&str>, trim: Trim) -> Self {
        WatchSpec {
            group: ar.group.clone(),
            version: ar.version.clone(),
            kind: ar.kind.clone(),
            plural: ar.plural.clone(),
            namespace: namespace.map(str::to_string),
            labels: None,
            trim,
        }
    }

    /// A kind of the core's kinds table (`credential_core::gvk::KNOWN_KINDS`), cluster-wide.
    pub fn known(gvk: &credential_core::Gvk, trim: Trim) -> Option<Self> {
        let known = credential_core::gvk::known_kind(gvk)?;
        let ar = ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk(&gvk.group, &gvk.version, &gvk.kind),
            known.plural,
        );
        Some(WatchSpec::new(&ar, None, trim))
    }

    pub fn in_namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_string());
        self
    }

    pub fn with_labels(mut self, selector: &str) -> Self {
        self.labels = Some(selector.to_string());
        self
    }

    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version(),
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// What logs and metrics call it: the plural, `/namespace` when namespaced.
    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{ns}", self.plural),
            None => self.plural.clone(),
        }
    }
}

/// Why a watch attempt failed (it is retried after a backoff).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchFailure {
    /// Readable text: HTTP code, reason and message, never a Debug dump.
    pub message: String,
    /// The HTTP status the API server answered with, if it answered.
    pub code: Option<u16>,
}

impl WatchFailure {
    pub fn of(e: &watcher::Error) -> Self {
        let (what, code, detail) = match e {
            watcher::Error::InitialListFailed(k) => ("initial list failed", status(k), kube_error_text(k)),
            watcher::Error::WatchStartFailed(k) => ("watch start failed", status(k), kube_error_text(k)),
            watcher::Error::WatchFailed(k) => ("watch failed", status(k), kube_error_text(k)),
            watcher::Error::WatchError(st) => {
                ("error during watch", Some(st.code), format!("HTTP {} {}: {}", st.code, st.reason, st.message))
            }
            other => ("watch failed", None, other.to_string()),
        };
        WatchFailure { message: format!("{what}: {detail}"), code }
    }

    /// RBAC does not grant list/watch there. Retrying is still right (a binding may be added),
    /// but it deserves one clear warning.
    pub fn forbidden(&self) -> bool {
        self.code == Some(403)
    }

    /// The kind is not served (its CRD is not installed): a state, not an outage.
    pub fn not_found(&self) -> bool {
        self.code == Some(404)
    }
}

impl std::fmt::Display for WatchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn status(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// A kube error as readable text: for an API answer its HTTP code, reason and message (kube's own
/// Display appends a Debug dump of the Status).
pub fn kube_error_text(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let reason = if s.reason.is_empty() { "Failure" } else { s.reason.as_str() };
            format!("HTTP {} {reason}: {}", s.code, s.message)
        }
        other => other.to_string(),
    }
}

/// What a subscriber is told.
#[derive(Debug)]
pub enum Event<'a> {
    /// The collection as (re)listed, whole: the first event a subscriber gets once the watch has
    /// listed, and again after every relist (objects missing from it are gone).
    Listed(&'a [Arc<Value>]),
    Applied(&'a Arc<Value>),
    Deleted(&'a Arc<Value>),
    /// The watch failed and is retried after a backoff. A subscriber arriving while the watch
    /// has never listed and is failing gets the last failure first.
    Failed(&'a WatchFailure),
}

/// Called for every event, on the watch's task, in order. It must not subscribe (that could wait
/// for the watch it runs on): spawn a task for that.
pub type Handler = Box<dyn FnMut(&Event<'_>) + Send>;

type Key = (Option<String>, String);

#[derive(Default)]
struct State {
    objects: BTreeMap<Key, Arc<Value>>,
    listed: bool,
    /// The last failure since the last good event.
    failure: Option<WatchFailure>,
    subscribers: Vec<(u64, Handler)>,
    next_id: u64,
}

/// One collection's watch, alive while anyone subscribes.
struct Shared {
    spec: WatchSpec,
    state: Mutex<State>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(t) = lock(&self.task).take() {
            t.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every write is a single insert/remove/swap: a panic in between leaves nothing half-done.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Keeps a subscriber's handler registered; dropping it unsubscribes, and the last subscriber
/// gone stops the watch.
pub struct Subscription {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.shared.state).subscribers.retain(|(id, _)| *id != self.id);
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("spec", &self.shared.spec).field("id", &self.id).finish()
    }
}

/// The watches of one cluster, through one client (no short read timeout: a quiet watch lasts
/// minutes) and one backoff.
pub struct ClusterWatches {
    /// What logs name it: `management` or the Region's name.
    name: String,
    client: Client,
    backoff: Backoff,
    watches: Mutex<HashMap<WatchSpec, Weak<Shared>>>,
}

impl std::fmt::Debug for ClusterWatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterWatches").field("name", &self.name).finish_non_exhaustive()
    }
}

impl ClusterWatches {
    pub fn new(name: &str, client: Client, backoff: Backoff) -> Arc<Self> {
        Arc::new(ClusterWatches { name: name.to_string(), client, backoff, watches: Mutex::default() })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Subscribes `handler` to `spec`'s collection, starting its watch unless it runs already
    /// (needs a tokio runtime). The handler is first replayed the collection as listed (or the
    /// failure that keeps it from listing), then every change.
    pub fn subscribe(&self, spec: &WatchSpec, mut handler: Handler) -> Subscription {
        let shared = {
            let mut watches = lock(&self.watches);
            watches.retain(|_, w| w.strong_count() > 0);
            match watches.get(spec).and_then(Weak::upgrade) {
                Some(s) => s,
                None => {
                    let s = Arc::new(Shared { spec: spec.clone(), state: Mutex::default(), task: Mutex::new(None) });
                    let task =
                        tokio::spawn(run(self.name.clone(), self.client.clone(), self.backoff, Arc::downgrade(&s)));
                    *lock(&s.task) = Some(task);
                    watches.insert(spec.clone(), Arc::downgrade(&s));
                    s
                }
            }
        };
        let id = {
            let mut state = lock(&shared.state);
            if state.listed {
                let objects: Vec<Arc<Value>> = state.objects.values().cloned().collect();
                handler(&Event::Listed(&objects));
            } else if let Some(f) = &state.failure {
                handler(&Event::Failed(f));
            }
            state.next_id += 1;
            let id = state.next_id;
            state.subscribers.push((id, handler));
            id
        };
        Subscription { shared, id }
    }

    /// One object of a running, listed watch (`None` when it is absent, or the collection is not
    /// watched or not listed yet: ask the API then).
    pub fn get(&self, spec: &WatchSpec, namespace: Option<&str>, name: &str) -> Option<Option<Arc<Value>>> {
        let shared = lock(&self.watches).get(spec).and_then(Weak::upgrade)?;
        let state = lock(&shared.state);
        state.listed.then(|| state.objects.get(&(namespace.map(str::to_string), name.to_string())).cloned())
    }

    /// How many collections are watched now (tests, metrics).
    pub fn running(&self) -> usize {
        lock(&self.watches).values().filter(|w| w.strong_count() > 0).count()
    }
}

struct WatchBackoff {
    policy: Backoff,
    failures: u32,
}

impl Iterator for WatchBackoff {
    type Item = std::time::Duration;
    fn next(&mut self) -> Option<Self::Item> {
        self.failures = self.failures.saturating_add(1);
        Some(self.policy.delay(self.failures))
    }
}

impl KubeBackoff for WatchBackoff {
    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// The watch task: kube's watcher, each event trimmed, stored and handed to the subscribers.
async fn run(cluster: String, client: Client, backoff: Backoff, shared: Weak<Shared>) {
    let Some(spec) = shared.upgrade().map(|s| s.spec.clone()) else { return };
    let ar = spec.api_resource();
    let mut cfg = watcher::Config::default();
    if let Some(selector) = &spec.labels {
        cfg = cfg.labels(selector);
    }
    let backoff = WatchBackoff { policy: backoff, failures: 0 };
    let (api_version, kind) = (ar.api_version.clone(), ar.kind.clone());
    let owners = spec.trim == Trim::Owners;
    let mut stream = match spec.trim {
        Trim::Meta | Trim::Owners => {
            // An Api of PartialObjectMeta makes metadata-only list/watch requests.
            let api: Api<PartialObjectMeta<DynamicObject>> = match &spec.namespace {
                Some(ns) => Api::namespaced_with(client, ns, &ar),
                None => Api::all_with(client, &ar),
            };
            watch_fn(api, cfg)
                .backoff(backoff)
                .map(move |ev| {
                    ev.map(|ev| {
                        map_event(ev, |o| {
                            let meta = serde_json::to_value(&o.metadata).unwrap_or(Value::Null);
                            let mut v = identity_meta(&api_version, &kind, &meta);
                            let owned = meta.pointer("/annotations").and_then(|a| a.get(labels::OWNERS_ANNOTATION));
                            if let (true, Some(owned)) = (owners, owned) {
                                v["metadata"]["annotations"] = json!({ labels::OWNERS_ANNOTATION: owned });
                            }
                            v
                        })
                    })
                })
                .boxed()
        }
        Trim::Common | Trim::Crd => {
            let api: Api<DynamicObject> = match &spec.namespace {
                Some(ns) => Api::namespaced_with(client, ns, &ar),
                None => Api::all_with(client, &ar),
            };
            let crd = spec.trim == Trim::Crd;
            watch_fn(api, cfg)
                .backoff(backoff)
                .map(move |ev| {
                    ev.map(|ev| {
                        map_event(ev, |o| {
                            let mut v = serde_json::to_value(&o).unwrap_or(Value::Null);
                            // List items may come without apiVersion/kind; subscribers key on them.
                            if let Some(m) = v.as_object_mut() {
                                m.entry("apiVersion").or_insert_with(|| Value::String(api_version.clone()));
                                m.entry("kind").or_insert_with(|| Value::String(kind.clone()));
                            }
                            if crd { trim_crd(v) } else { strip_common(v) }
                        })
                    })
                })
                .boxed()
        }
    };
    let mut relist: Vec<Arc<Value>> = Vec::new();
    while let Some(ev) = stream.next().await {
        let Some(shared) = shared.upgrade() else { return };
        let mut state = lock(&shared.state);
        let state = &mut *state;
        let event = match ev {
            Ok(KubeEvent::Init) => {
                relist.clear();
                continue;
            }
            Ok(KubeEvent::InitApply(o)) => {
                relist.push(Arc::new(o));
                continue;
            }
            Ok(KubeEvent::InitDone) => {
                let listed = std::mem::take(&mut relist);
                state.objects = listed.iter().filter_map(|o| Some((key_of(o)?, Arc::clone(o)))).collect();
                state.listed = true;
                state.failure = None;
                Dispatch::Listed(listed)
            }
            Ok(KubeEvent::Apply(o)) => {
                let o = Arc::new(o);
                if let Some(k) = key_of(&o) {
                    state.objects.insert(k, Arc::clone(&o));
                }
                state.failure = None;
                Dispatch::Applied(o)
            }
            Ok(KubeEvent::Delete(o)) => {
                if let Some(k) = key_of(&o) {
                    state.objects.remove(&k);
                }
                state.failure = None;
                Dispatch::Deleted(Arc::new(o))
            }
            Err(e) => {
                let f = WatchFailure::of(&e);
                tracing::debug!(cluster = %cluster, resource = %spec.label(), error = %f, "watch failed; retrying");
                state.failure = Some(f.clone());
                Dispatch::Failed(f)
            }
        };
        let event = event.as_event();
        for (_, handler) in &mut state.subscribers {
            handler(&event);
        }
    }
}

/// An owned event, lent to the handlers.
enum Dispatch {
    Listed(Vec<Arc<Value>>),
    Applied(Arc<Value>),
    Deleted(Arc<Value>),
    Failed(WatchFailure),
}

impl Dispatch {
    fn as_event(&self) -> Event<'_> {
        match self {
            Dispatch::Listed(l) => Event::Listed(l),
            Dispatch::Applied(o) => Event::Applied(o),
            Dispatch::Deleted(o) => Event::Deleted(o),
            Dispatch::Failed(f) => Event::Failed(f),
        }
    }
}

fn key_of(o: &Value) -> Option<Key> {
    let meta = o.get("metadata")?;
    let name = meta.get("name")?.as_str()?.to_string();
    let ns = meta.get("namespace").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    Some((ns, name))
}

fn map_event<T>(ev: KubeEvent<T>, f: impl Fn(T) -> Value) -> KubeEvent<Value> {
    match ev {
        KubeEvent::Apply(o) => KubeEvent::Apply(f(o)),
        KubeEvent::Delete(o) => KubeEvent::Delete(f(o)),
        KubeEvent::Init => KubeEvent::Init,
        KubeEvent::InitApply(o) => KubeEvent::InitApply(f(o)),
        KubeEvent::InitDone => KubeEvent::InitDone,
    }
}

// Trimming (keep what subscribers read, drop bulk and anything that may hold secret data) is the
// core's one rule, shared with the offline estate.
pub use credential_core::estate::trim::{identity_meta, strip_common, trim_crd};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_of_the_same_collection_are_equal_whoever_builds_them() {
        let a = WatchSpec::known(&credential_core::Gvk::credential(), Trim::Common).unwrap();
        let b = WatchSpec::new(&a.api_resource(), None, Trim::Common);
        assert_eq!(a, b);
        assert_eq!(a.api_version(), "k0rdent.mirantis.com/v1beta1");
        assert_ne!(a, b.clone().in_namespace("x"));
        assert_ne!(a.clone(), WatchSpec { trim: Trim::Meta, ..a });
    }

    #[test]
    fn failures_say_forbidden_and_not_served() {
        let status = kube::core::Status::failure("no", "Forbidden").with_code(403);
        let f = WatchFailure::of(&watcher::Error::InitialListFailed(kube::Error::Api(Box::new(status))));
        assert!(f.forbidden() && !f.not_found());
        assert_eq!(f.message, "initial list failed: HTTP 403 Forbidden: no");
    }

    #[tokio::test]
    async fn a_late_subscriber_is_replayed_and_the_last_one_gone_stops_the_watch() {
        // A client for an address nobody serves: the watch fails, and keeps retrying.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let backoff = Backoff::new(std::time::Duration::from_millis(10), std::time::Duration::from_millis(20));
        let watches = ClusterWatches::new("test", client, backoff);
        let spec = WatchSpec::known(&credential_core::Gvk::region(), Trim::Common).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let first = watches.subscribe(
            &spec,
            Box::new(move |e: &Event<'_>| {
                if let Event::Failed(f) = e {
                    let _ = tx.send(WatchFailure::clone(f));
                }
            }),
        );
        let failure = rx.recv().await.unwrap();
        assert!(failure.code.is_none(), "{failure}");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = Arc::clone(&seen);
        let second = watches.subscribe(
            &spec,
            Box::new(move |e: &Event<'_>| {
                if let Event::Failed(f) = e {
                    lock(&seen2).push(WatchFailure::clone(f));
                }
            }),
        );
        assert!(!lock(&seen).is_empty(), "a late subscriber hears of the failure at once");
        assert_eq!(watches.running(), 1, "one watch for both");
        assert!(watches.get(&spec, None, "r1").is_none(), "never listed: ask the API");
        drop(first);
        assert_eq!(watches.running(), 1);
        drop(second);
        assert_eq!(watches.running(), 0, "the last subscriber gone stops the watch");
    }
}
