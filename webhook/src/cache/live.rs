//! Fills an [`Index`] from the API with kube-rs watchers.
//!
//! Management cluster: Credentials, Regions, ProviderInterfaces and ClusterDeployments (full
//! objects, minus managedFields and last-applied annotations), CRDs (trimmed to what "served"
//! checks read), Secrets of the system namespace (metadata only) and the identity objects of every
//! kind a ProviderInterface declares (metadata only). Each Region's cluster: its ProviderInterfaces
//! and CRDs, through a client built from the Region's kubeconfig Secret.
//!
//! Secret values are read only for the kubeconfig Secrets Regions reference, only to build the
//! regional client; the index keeps their key names, never their values.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use credential_core::estate::{Cluster, Estate, Served};
use credential_core::gvk::{Gvk, builtin_scope};
use credential_core::kubeconfig::{self, UntrustedKubeconfig};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Index, LiveRead};
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("cannot read kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("cannot find cluster credentials (no in-cluster service account, no $KUBECONFIG or ~/.kube/config): {0}")]
    Infer(String),
    #[error("cannot build a Kubernetes client: {0}")]
    Client(String),
}

/// A client for the management cluster: `kubeconfig` when given, else in-cluster / $KUBECONFIG.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, LiveError> {
    let mut config = match kubeconfig {
        Some(path) => {
            let err = |message: String| LiveError::Kubeconfig { path: path.display().to_string(), message };
            let kc = Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.map_err(|e| err(e.to_string()))?
        }
        None => Config::infer().await.map_err(|e| LiveError::Infer(e.to_string()))?,
    };
    // kube's default is no read timeout: a request the API server never answers would hang for
    // good. This client also watches, and a quiet watch lasts up to 290 s (then the watcher
    // reconnects), so the bound sits above that; the distributor bounds its own work tighter.
    config.read_timeout = Some(crate::distribution::WATCH_READ_TIMEOUT);
    config.reset_reader_on_write = true;
    Client::try_from(config).map_err(|e| LiveError::Client(e.to_string()))
}

fn k0rdent(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: credential_core::K0RDENT_GROUP.into(),
        version: credential_core::K0RDENT_VERSION.into(),
        api_version: credential_core::K0RDENT_API_VERSION.into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn crd_resource() -> ApiResource {
    ApiResource {
        group: "apiextensions.k8s.io".into(),
        version: "v1".into(),
        api_version: "apiextensions.k8s.io/v1".into(),
        kind: "CustomResourceDefinition".into(),
        plural: "customresourcedefinitions".into(),
    }
}

fn secret_resource() -> ApiResource {
    ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: "Secret".into(),
        plural: "secrets".into(),
    }
}

// --- object trimming: keep what rules read, drop bulk and anything that may hold secret data ---------

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops managedFields and the last-applied annotation (it can hold a Secret in clear text).
fn strip_common(mut v: Value) -> Value {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            ann.remove(LAST_APPLIED);
        }
    }
    v
}

/// Identity metadata only: name, namespace, uid, resourceVersion, labels (no annotations).
fn identity_meta(api_version: &str, kind: &str, meta: &Value) -> Value {
    let mut m = Map::new();
    for k in ["name", "namespace", "uid", "resourceVersion", "labels", "deletionTimestamp"] {
        if let Some(v) = meta.get(k).filter(|v| !v.is_null()) {
            m.insert(k.into(), v.clone());
        }
    }
    json!({"apiVersion": api_version, "kind": kind, "metadata": Value::Object(m)})
}

/// A CRD reduced to group, scope, names and served versions.
fn trim_crd(v: Value) -> Value {
    let spec = v.get("spec");
    let versions: Vec<Value> = spec
        .and_then(|s| s.get("versions"))
        .and_then(Value::as_array)
        .map(|vs| vs.iter().map(|x| json!({"name": x.get("name"), "served": x.get("served")})).collect())
        .unwrap_or_default();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": v.get("metadata").and_then(|m| m.get("name")),
                     "resourceVersion": v.get("metadata").and_then(|m| m.get("resourceVersion"))},
        "spec": {
            "group": spec.and_then(|s| s.get("group")),
            "scope": spec.and_then(|s| s.get("scope")),
            "names": {"kind": spec.and_then(|s| s.get("names")).and_then(|n| n.get("kind")),
                      "plural": spec.and_then(|s| s.get("names")).and_then(|n| n.get("plural"))},
            "versions": versions,
        }
    })
}

#[derive(Clone, Copy)]
enum Trim {
    Common,
    Crd,
    /// Metadata only (metadata watch): Secrets and identity objects.
    Meta,
}

/// One resource to cache.
struct WatchSpec {
    ar: ApiResource,
    namespace: Option<String>,
    trim: Trim,
    /// Metric label, e.g. `credentials`.
    resource: String,
}

/// Tracks which caches of a cluster still have to finish their initial list.
struct SyncGroup {
    pending: Mutex<HashSet<String>>,
    on_all: Box<dyn Fn() + Send + Sync>,
}

impl SyncGroup {
    fn new(resources: &[&str], on_all: Box<dyn Fn() + Send + Sync>) -> Arc<Self> {
        Arc::new(SyncGroup { pending: Mutex::new(resources.iter().map(|s| s.to_string()).collect()), on_all })
    }
    fn done(&self, resource: &str) {
        let mut p = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if p.remove(resource) && p.is_empty() {
            (self.on_all)();
        }
    }
}

fn event_stream(client: Client, spec: &WatchSpec) -> BoxStream<'static, Result<watcher::Event<Value>, watcher::Error>> {
    let cfg = watcher::Config::default();
    match spec.trim {
        Trim::Meta => {
            // An Api of PartialObjectMeta makes metadata-only list/watch requests.
            let api: Api<PartialObjectMeta<DynamicObject>> = match &spec.namespace {
                Some(ns) => Api::namespaced_with(client, ns, &spec.ar),
                None => Api::all_with(client, &spec.ar),
            };
            let (api_version, kind) = (spec.ar.api_version.clone(), spec.ar.kind.clone());
            watcher(api, cfg)
                .default_backoff()
                .map_ok(move |ev| {
                    map_event(ev, |o| {
                        let meta = serde_json::to_value(&o.metadata).unwrap_or(Value::Null);
                        identity_meta(&api_version, &kind, &meta)
                    })
                })
                .boxed()
        }
        Trim::Common | Trim::Crd => {
            let api: Api<DynamicObject> = match &spec.namespace {
                Some(ns) => Api::namespaced_with(client, ns, &spec.ar),
                None => Api::all_with(client, &spec.ar),
            };
            let crd = matches!(spec.trim, Trim::Crd);
            let (api_version, kind) = (spec.ar.api_version.clone(), spec.ar.kind.clone());
            watcher(api, cfg)
                .default_backoff()
                .map_ok(move |ev| {
                    map_event(ev, |o| {
                        let mut v = serde_json::to_value(&o).unwrap_or(Value::Null);
                        // List items may come without apiVersion/kind; the index keys on them.
                        if let Some(m) = v.as_object_mut() {
                            m.entry("apiVersion").or_insert_with(|| Value::String(api_version.clone()));
                            m.entry("kind").or_insert_with(|| Value::String(kind.clone()));
                        }
                        if crd { trim_crd(v) } else { strip_common(v) }
                    })
                })
                .boxed()
        }
    }
}

fn map_event<T>(ev: watcher::Event<T>, f: impl Fn(T) -> Value) -> watcher::Event<Value> {
    match ev {
        watcher::Event::Apply(o) => watcher::Event::Apply(f(o)),
        watcher::Event::Delete(o) => watcher::Event::Delete(f(o)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(o) => watcher::Event::InitApply(f(o)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

fn not_found(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s)) => s.code == 404,
        _ => false,
    }
}

struct WatchCtx {
    index: Arc<Index>,
    metrics: Arc<Metrics>,
    cluster: Cluster,
    sync: Option<Arc<SyncGroup>>,
    /// Woken after every change (drives the Region, Secret-key and identity-kind managers).
    notify: Vec<Arc<Notify>>,
    /// Regional clusters: tracks how long the watches have been failing.
    staleness: Option<Arc<Staleness>>,
    /// Marks the kind covered in the index once synced (kinds outside the fixed management caches).
    covers: bool,
    stop: CancellationToken,
}

/// A regional cluster whose watches have failed this long is unknown to the rules (its cached state
/// may be arbitrarily old) until its client is rebuilt and its caches synced again.
const REGIONAL_STALE_AFTER: Duration = Duration::from_secs(180);
/// Errors further apart than this start a new failure period: a failing watch retries at most every
/// 30 s (kube-runtime's default backoff), and a recovered idle watch reports nothing.
const FAILURE_GAP: Duration = Duration::from_secs(90);

/// How long each watch of one regional cluster has been failing.
struct Staleness {
    limit: Duration,
    /// resource -> (failing since, last error).
    failing: Mutex<HashMap<String, (Instant, Instant)>>,
    signalled: std::sync::atomic::AtomicBool,
    /// Woken once when some watch has failed for `limit`.
    stale: Notify,
}

impl Staleness {
    fn new(limit: Duration) -> Self {
        Staleness {
            limit,
            failing: Mutex::new(HashMap::new()),
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

/// Runs one watcher into the index until `stop`.
async fn run_watch(client: Client, spec: WatchSpec, ctx: WatchCtx) {
    let cluster_label = cluster_label(&ctx.cluster);
    ctx.metrics.set_cache_synced(&cluster_label, &spec.resource, false);
    let mut stream = event_stream(client, &spec);
    let mut buffer: Vec<Value> = Vec::new();
    let mut synced = false;
    let (group, kind) = (spec.ar.group.clone(), spec.ar.kind.clone());
    loop {
        let next = tokio::select! {
            () = ctx.stop.cancelled() => return,
            n = stream.next() => n,
        };
        let Some(item) = next else { return };
        if let (Ok(_), Some(st)) = (&item, &ctx.staleness) {
            st.ok(&spec.resource);
        }
        match item {
            Ok(watcher::Event::Init) => buffer.clear(),
            Ok(watcher::Event::InitApply(o)) => buffer.push(o),
            Ok(watcher::Event::InitDone) => {
                ctx.index.replace_all(&ctx.cluster, &group, &kind, std::mem::take(&mut buffer));
                if !synced {
                    synced = true;
                    if ctx.covers {
                        ctx.index.set_covered(&group, &kind, true);
                    }
                    ctx.metrics.set_cache_synced(&cluster_label, &spec.resource, true);
                    tracing::info!(cluster = %cluster_label, resource = %spec.resource, "cache synced");
                    if let Some(s) = &ctx.sync {
                        s.done(&spec.resource);
                    }
                }
            }
            Ok(watcher::Event::Apply(o)) => ctx.index.apply(&ctx.cluster, o),
            Ok(watcher::Event::Delete(o)) => ctx.index.delete(&ctx.cluster, &o),
            Err(e) => {
                if !synced && not_found(&e) {
                    // The kind is not served (CRD not installed): nothing to cache. The watcher keeps
                    // retrying with backoff and fills the cache if the CRD appears.
                    synced = true;
                    ctx.index.replace_all(&ctx.cluster, &group, &kind, Vec::new());
                    if ctx.covers {
                        ctx.index.set_covered(&group, &kind, true);
                    }
                    ctx.metrics.set_cache_synced(&cluster_label, &spec.resource, true);
                    tracing::warn!(cluster = %cluster_label, resource = %spec.resource,
                        "resource not served by the API server; treating it as empty");
                    if let Some(s) = &ctx.sync {
                        s.done(&spec.resource);
                    }
                } else {
                    tracing::warn!(cluster = %cluster_label, resource = %spec.resource, error = %watch_error_text(&e),
                        "watch error; retrying");
                }
                // "Not served" is a state, not a failure; anything else counts towards staleness.
                if let (false, Some(st)) = (not_found(&e), &ctx.staleness)
                    && st.failed(&spec.resource, Instant::now())
                {
                    st.stale.notify_one();
                }
                continue;
            }
        }
        for n in &ctx.notify {
            n.notify_one();
        }
    }
}

/// A watcher error as readable text (no Debug dump of a kube Status).
fn watch_error_text(e: &watcher::Error) -> String {
    match e {
        watcher::Error::InitialListFailed(k) => format!("initial list failed: {}", kube_error_text(k)),
        watcher::Error::WatchStartFailed(k) => format!("watch start failed: {}", kube_error_text(k)),
        watcher::Error::WatchFailed(k) => format!("watch failed: {}", kube_error_text(k)),
        watcher::Error::WatchError(st) => format!("error during watch: HTTP {} {}: {}", st.code, st.reason, st.message),
        other => other.to_string(),
    }
}

fn cluster_label(c: &Cluster) -> String {
    match c {
        Cluster::Management => "management".into(),
        Cluster::Region(r) => r.clone(),
    }
}

const MANAGEMENT_RESOURCES: &[&str] =
    &["credentials", "regions", "providerinterfaces", "clusterdeployments", "secrets", "customresourcedefinitions"];
const REGIONAL_RESOURCES: &[&str] = &["providerinterfaces", "customresourcedefinitions"];

/// Starts every management watcher and the Region / identity-kind managers; returns the index at once
/// (not synced yet: `/readyz` says so until every management cache finished its initial list).
pub fn start(client: Client, system_namespace: &str, metrics: Arc<Metrics>, stop: CancellationToken) -> Arc<Index> {
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
        (k0rdent("Credential", "credentials"), None, Trim::Common, "credentials", vec![]),
        (k0rdent("Region", "regions"), None, Trim::Common, "regions", vec![regions_changed.clone()]),
        (
            k0rdent("ProviderInterface", "providerinterfaces"),
            None,
            Trim::Common,
            "providerinterfaces",
            vec![identities_changed.clone()],
        ),
        (k0rdent("ClusterDeployment", "clusterdeployments"), None, Trim::Common, "clusterdeployments", vec![]),
        (
            secret_resource(),
            Some(system_namespace.to_string()),
            Trim::Meta,
            "secrets",
            vec![regions_changed.clone(), secrets_changed.clone()],
        ),
        (crd_resource(), None, Trim::Crd, "customresourcedefinitions", vec![identities_changed.clone()]),
    ];
    for (ar, namespace, trim, resource, notify) in specs {
        let spec = WatchSpec { ar, namespace, trim, resource: resource.to_string() };
        let ctx = WatchCtx {
            index: index.clone(),
            metrics: metrics.clone(),
            cluster: Cluster::Management,
            sync: Some(sync.clone()),
            notify,
            staleness: None,
            covers: false,
            stop: stop.clone(),
        };
        tokio::spawn(run_watch(client.clone(), spec, ctx));
    }
    let regions = RegionManager {
        client: client.clone(),
        index: index.clone(),
        metrics: metrics.clone(),
        system_namespace: system_namespace.to_string(),
        workers: HashMap::new(),
        polled: HashMap::new(),
    };
    tokio::spawn(regions.run(regions_changed, stop.clone()));
    tokio::spawn(secret_keys_manager(
        client.clone(),
        index.clone(),
        system_namespace.to_string(),
        secrets_changed,
        stop.clone(),
    ));
    tokio::spawn(identity_manager(client, index.clone(), metrics, identities_changed, stop));
    index
}

// --- Secret key names --------------------------------------------------------------------------------

/// Helm keeps release state in Secrets with this name prefix: large, and never a kubeconfig.
const HELM_RELEASE_PREFIX: &str = "sh.helm.release.v1.";

/// Key-name reads run at most this many at a time, each within [`KEY_READ_TIMEOUT`].
const KEY_READS_IN_FLIGHT: usize = 8;
const KEY_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Failed key-name reads are retried this often even when nothing changes.
const KEY_RETRY_PERIOD: Duration = Duration::from_secs(30);
/// The live read admission makes for a Region write must fit well within the API server's timeout.
const LIVE_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Records the key names of the system namespace's Secrets (Region rules check "Secret has key" at
/// admission time, before any Region references it). Each Secret is read once per resourceVersion;
/// only its key names are kept.
async fn secret_keys_manager(
    client: Client,
    index: Arc<Index>,
    system_namespace: String,
    changed: Arc<Notify>,
    stop: CancellationToken,
) {
    let api: Api<Secret> = Api::namespaced(client, &system_namespace);
    let mut fetched: HashMap<String, String> = HashMap::new(); // name -> resourceVersion read
    let mut retry = tokio::time::interval(KEY_RETRY_PERIOD);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = changed.notified() => {}
            _ = retry.tick() => {}
        }
        let current: HashMap<String, String> = index
            .list(&Cluster::Management, &Gvk::secret(), Some(&system_namespace))
            .iter()
            .filter_map(|s| {
                let m = s.get("metadata")?;
                let name = m.get("name")?.as_str()?;
                let rv = m.get("resourceVersion").and_then(Value::as_str).unwrap_or_default();
                (!name.starts_with(HELM_RELEASE_PREFIX)).then(|| (name.to_string(), rv.to_string()))
            })
            .collect();
        fetched.retain(|name, _| current.contains_key(name));
        let todo: Vec<String> =
            current.into_iter().filter(|(name, rv)| fetched.get(name) != Some(rv)).map(|(name, _)| name).collect();
        let api = &api;
        let mut reads = futures_util::stream::iter(todo)
            .map(|name| async move {
                let read = tokio::time::timeout(KEY_READ_TIMEOUT, api.get_opt(&name)).await;
                (name, read)
            })
            .buffer_unordered(KEY_READS_IN_FLIGHT);
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => return,
                n = reads.next() => n,
            };
            let Some((name, read)) = next else { break };
            match read {
                Ok(Ok(Some(secret))) => {
                    let rv = secret.metadata.resource_version.clone().unwrap_or_default();
                    let keys: Vec<String> = secret.data.unwrap_or_default().into_keys().collect();
                    index.set_secret_keys(&system_namespace, &name, &rv, keys);
                    fetched.insert(name, rv);
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(namespace = %system_namespace, secret = %name, error = %e, "cannot read Secret key names");
                }
                Err(_) => {
                    tracing::warn!(namespace = %system_namespace, secret = %name, timeout = ?KEY_READ_TIMEOUT,
                        "cannot read Secret key names: timed out");
                }
            }
        }
    }
}

/// One live read of a Secret for admission, within [`LIVE_READ_TIMEOUT`]: its identity metadata and
/// key names (values are dropped at once). The names are also recorded in the index.
pub(super) async fn read_secret_keys(client: &Client, index: &Index, namespace: &str, name: &str) -> LiveRead {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match tokio::time::timeout(LIVE_READ_TIMEOUT, api.get_opt(name)).await {
        Ok(Ok(Some(secret))) => {
            let meta = serde_json::to_value(&secret.metadata).unwrap_or(Value::Null);
            let keys: Vec<String> = secret.data.unwrap_or_default().into_keys().collect();
            let rv = secret.metadata.resource_version.unwrap_or_default();
            let mut obj = identity_meta("v1", "Secret", &meta);
            super::set_key_names(&mut obj, Some(&keys));
            index.set_secret_keys(namespace, name, &rv, keys);
            LiveRead::Found(obj)
        }
        Ok(Ok(None)) => LiveRead::Absent,
        Ok(Err(e)) => {
            tracing::warn!(namespace, secret = name, error = %kube_error_text(&e),
                "live read of Secret failed; deciding on the cache");
            LiveRead::Unavailable
        }
        Err(_) => {
            tracing::warn!(
                namespace,
                secret = name,
                timeout_seconds = LIVE_READ_TIMEOUT.as_secs(),
                "live read of Secret timed out; deciding on the cache"
            );
            LiveRead::Unavailable
        }
    }
}

/// One live read of a management Credential, Region or ClusterDeployment for admission, within
/// [`LIVE_READ_TIMEOUT`], trimmed as the cache keeps it.
pub(super) async fn read_k0rdent_object(client: &Client, gvk: &Gvk, namespace: Option<&str>, name: &str) -> LiveRead {
    let Some(kind) = credential_core::rules::ResourceKind::from_gvk(gvk) else { return LiveRead::Unavailable };
    let k0rdent_ar = k0rdent(kind.kind(), kind.plural());
    // Cluster-wide only for Regions (cluster-scoped); the ClusterRole grants get on all four kinds.
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &k0rdent_ar),
        None => Api::all_with(client.clone(), &k0rdent_ar),
    };
    let at = namespace.map_or_else(|| name.to_string(), |ns| format!("{ns}/{name}"));
    match tokio::time::timeout(LIVE_READ_TIMEOUT, api.get_opt(name)).await {
        Ok(Ok(Some(obj))) => {
            let mut v = serde_json::to_value(&obj).unwrap_or(Value::Null);
            if let Some(m) = v.as_object_mut() {
                m.entry("apiVersion").or_insert_with(|| Value::String(k0rdent_ar.api_version.clone()));
                m.entry("kind").or_insert_with(|| Value::String(k0rdent_ar.kind.clone()));
            }
            LiveRead::Found(strip_common(v))
        }
        Ok(Ok(None)) => LiveRead::Absent,
        Ok(Err(e)) => {
            tracing::warn!(kind = kind.kind(), object = %at, error = %kube_error_text(&e),
                "live read failed; deciding on the cache");
            LiveRead::Unavailable
        }
        Err(_) => {
            tracing::warn!(kind = kind.kind(), object = %at, timeout_seconds = LIVE_READ_TIMEOUT.as_secs(),
                "live read timed out; deciding on the cache");
            LiveRead::Unavailable
        }
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

// --- identity kinds --------------------------------------------------------------------------------

/// Watches (metadata only) the identity kinds the management ProviderInterfaces declare and the
/// management cluster serves, so "identity object exists" is answered from the cache.
async fn identity_manager(
    client: Client,
    index: Arc<Index>,
    metrics: Arc<Metrics>,
    changed: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut running: HashMap<(String, String), (String, CancellationToken)> = HashMap::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = changed.notified() => {}
        }
        // Let a burst of events (initial lists) settle before recomputing.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut desired: HashMap<(String, String), ApiResource> = HashMap::new();
        let crds = index.list(&Cluster::Management, &Gvk::crd(), None);
        for pi in index.list(&Cluster::Management, &Gvk::provider_interface(), None) {
            let ids = pi.get("spec").and_then(|s| s.get("clusterIdentities")).and_then(Value::as_array);
            for id in ids.into_iter().flatten() {
                let s = |k: &str| id.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                let gvk = Gvk::new(s("group"), s("version"), s("kind"));
                if gvk.kind.is_empty() || gvk.version.is_empty() || builtin_scope(&gvk).is_some() {
                    continue;
                }
                if index.served(&Cluster::Management, &gvk) != Served::Yes {
                    continue;
                }
                let plural = crds.iter().find_map(|c| {
                    let spec = c.get("spec")?;
                    (spec.get("group")?.as_str()? == gvk.group && spec.get("names")?.get("kind")?.as_str()? == gvk.kind)
                        .then(|| spec.get("names")?.get("plural")?.as_str().map(str::to_string))?
                });
                let Some(plural) = plural else { continue };
                desired.insert(
                    (gvk.group.clone(), gvk.kind.clone()),
                    ApiResource {
                        api_version: gvk.api_version(),
                        group: gvk.group,
                        version: gvk.version,
                        kind: gvk.kind,
                        plural,
                    },
                );
            }
        }
        running.retain(|gk, (version, token)| {
            let keep = desired.get(gk).is_some_and(|ar| ar.version == *version);
            if !keep {
                token.cancel();
                index.set_covered(&gk.0, &gk.1, false);
                index.replace_all(&Cluster::Management, &gk.0, &gk.1, Vec::new());
                metrics.forget_cluster("management", &[&format!("identity:{}", gk.1)]);
            }
            keep
        });
        for (gk, ar) in desired {
            if running.contains_key(&gk) {
                continue;
            }
            let token = stop.child_token();
            tracing::info!(group = %ar.group, version = %ar.version, kind = %ar.kind, "watching identity kind (metadata only)");
            running.insert(gk, (ar.version.clone(), token.clone()));
            let spec = WatchSpec { resource: format!("identity:{}", ar.kind), ar, namespace: None, trim: Trim::Meta };
            let ctx = WatchCtx {
                index: index.clone(),
                metrics: metrics.clone(),
                cluster: Cluster::Management,
                sync: None,
                notify: Vec::new(),
                staleness: None,
                covers: true,
                stop: token,
            };
            tokio::spawn(run_watch(client.clone(), spec, ctx));
        }
    }
}

// --- regional clusters -----------------------------------------------------------------------------

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
    /// resourceVersion of the Secret the current regional client was built from.
    used_rv: Arc<Mutex<Option<String>>>,
    stop: CancellationToken,
}

struct RegionManager {
    client: Client,
    index: Arc<Index>,
    metrics: Arc<Metrics>,
    system_namespace: String,
    workers: HashMap<String, RegionWorker>,
    /// Last read of kubeconfig Secrets outside the system namespace, by (namespace, name).
    polled: HashMap<(String, String), Seen>,
}

impl RegionManager {
    async fn run(mut self, changed: Arc<Notify>, stop: CancellationToken) {
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
        let client = &self.client;
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
                    let used = w.used_rv.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
                    *src == w.source && !client_outdated(used.as_deref(), &self.seen(src))
                }
                _ => false,
            };
            if !keep && let Some(w) = self.workers.remove(&name) {
                w.stop.cancel();
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
            let used_rv = Arc::new(Mutex::new(None));
            self.workers.insert(
                name.clone(),
                RegionWorker { source: source.clone(), used_rv: used_rv.clone(), stop: token.clone() },
            );
            tokio::spawn(region_worker(
                self.client.clone(),
                self.index.clone(),
                self.metrics.clone(),
                RegionTarget { region: name, source, used_rv },
                token,
            ));
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum RegionError {
    #[error("cannot read kubeconfig Secret {0}/{1}: {2}")]
    Get(String, String, String),
    #[error("kubeconfig Secret {0}/{1} has no key {2:?}")]
    NoKey(String, String, String),
    // Parse errors are not shown: their text may quote the (secret) kubeconfig.
    #[error("kubeconfig Secret {0}/{1} key {2:?} does not hold a usable kubeconfig")]
    BadKubeconfig(String, String, String),
    #[error("kubeconfig Secret {0}/{1} key {2:?} is rejected: {3}")]
    Untrusted(String, String, String, UntrustedKubeconfig),
}

/// Reads the kubeconfig Secret (recording its key names) and builds the regional client; also returns
/// the Secret's resourceVersion.
async fn regional_client(
    client: &Client,
    index: &Index,
    src: &KubeconfigSource,
) -> Result<(Client, String), RegionError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &src.namespace);
    let secret = api
        .get(&src.name)
        .await
        .map_err(|e| RegionError::Get(src.namespace.clone(), src.name.clone(), e.to_string()))?;
    let rv = secret.metadata.resource_version.unwrap_or_default();
    let data = secret.data.unwrap_or_default();
    index.set_secret_keys(&src.namespace, &src.name, &rv, data.keys().cloned().collect());
    let bad = || RegionError::BadKubeconfig(src.namespace.clone(), src.name.clone(), src.key.clone());
    let raw = data
        .get(&src.key)
        .ok_or_else(|| RegionError::NoKey(src.namespace.clone(), src.name.clone(), src.key.clone()))?;
    let text = std::str::from_utf8(&raw.0).map_err(|_| bad())?;
    // Checked before any client exists: the Secret's writer must not make this pod run a command
    // or send its files (the ServiceAccount token) anywhere. The client is built from the checked value.
    let source = format!("Secret {}/{}[{}]", src.namespace, src.name, src.key);
    let value = kubeconfig::parse_untrusted(text, &source).map_err(|e| match e {
        UntrustedKubeconfig::Syntax(_) => bad(),
        e => RegionError::Untrusted(src.namespace.clone(), src.name.clone(), src.key.clone(), e),
    })?;
    let kc: Kubeconfig = serde_json::from_value(value).map_err(|_| bad())?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.map_err(|_| bad())?;
    Client::try_from(config).map(|c| (c, rv)).map_err(|_| bad())
}

/// The Region a worker serves and where its kubeconfig is.
struct RegionTarget {
    region: String,
    source: KubeconfigSource,
    /// Set to the Secret's resourceVersion each time a client is built from it.
    used_rv: Arc<Mutex<Option<String>>>,
}

/// Builds the regional client and runs the regional watches; when they have failed for
/// [`REGIONAL_STALE_AFTER`], the cluster becomes unknown and the client is rebuilt from a fresh read
/// of the Secret.
async fn region_worker(
    client: Client,
    index: Arc<Index>,
    metrics: Arc<Metrics>,
    target: RegionTarget,
    stop: CancellationToken,
) {
    let RegionTarget { region, source, used_rv } = target;
    let cluster = Cluster::Region(region.clone());
    let mut backoff = Duration::from_secs(1);
    loop {
        let regional = match regional_client(&client, &index, &source).await {
            Ok((c, rv)) => {
                *used_rv.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(rv);
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
        let round = stop.child_token();
        let sync = SyncGroup::new(REGIONAL_RESOURCES, {
            let (index, cluster, region) = (index.clone(), cluster.clone(), region.clone());
            Box::new(move || {
                index.set_known(&cluster, true);
                tracing::info!(region = %region, "regional caches synced");
            })
        });
        let specs = [
            (k0rdent("ProviderInterface", "providerinterfaces"), Trim::Common, "providerinterfaces"),
            (crd_resource(), Trim::Crd, "customresourcedefinitions"),
        ];
        for (ar, trim, resource) in specs {
            let spec = WatchSpec { ar, namespace: None, trim, resource: resource.to_string() };
            let ctx = WatchCtx {
                index: index.clone(),
                metrics: metrics.clone(),
                cluster: cluster.clone(),
                sync: Some(sync.clone()),
                notify: Vec::new(),
                staleness: Some(staleness.clone()),
                covers: false,
                stop: round.clone(),
            };
            tokio::spawn(run_watch(regional.clone(), spec, ctx));
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = staleness.stale.notified() => {}
        }
        round.cancel();
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

    #[test]
    fn regional_client_is_rebuilt_when_its_secret_changes() {
        assert!(!client_outdated(Some("5"), &Seen::At("5".into())));
        assert!(client_outdated(Some("5"), &Seen::At("6".into())), "rotated kubeconfig");
        assert!(client_outdated(Some("5"), &Seen::Gone), "Secret deleted");
        assert!(!client_outdated(Some("5"), &Seen::Unknown), "not read yet: keep");
        assert!(!client_outdated(None, &Seen::At("6".into())), "no client yet: its next attempt reads the Secret");
    }

    #[test]
    fn trims_drop_bulk_and_secret_bearing_fields() {
        let v = json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Credential",
            "metadata": {"name": "c", "managedFields": [{}], "annotations": {LAST_APPLIED: "{secret}", "keep": "x"}}});
        let t = strip_common(v);
        assert!(t["metadata"].get("managedFields").is_none());
        assert_eq!(t["metadata"]["annotations"], json!({"keep": "x"}));
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "xs.g", "resourceVersion": "5"},
            "spec": {"group": "g", "scope": "Namespaced", "names": {"kind": "X", "plural": "xs"},
                     "versions": [{"name": "v1", "served": true, "schema": {"huge": true}}]}});
        let t = trim_crd(crd);
        assert_eq!(t["spec"]["versions"], json!([{"name": "v1", "served": true}]));
        assert_eq!(t["spec"]["names"]["plural"], "xs");
        let meta = json!({"name": "s", "namespace": "n", "annotations": {LAST_APPLIED: "x"}, "resourceVersion": "1"});
        let t = identity_meta("v1", "Secret", &meta);
        assert!(t["metadata"].get("annotations").is_none());
        assert_eq!(t["metadata"]["resourceVersion"], "1");
    }
}
