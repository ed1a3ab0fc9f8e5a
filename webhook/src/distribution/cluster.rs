//! One cluster the distributor writes to (a regional cluster, or the management cluster for
//! managed non-regional Credentials): its client, its ProviderInterfaces (kept by a watch), the
//! API resources of the kinds it copies (discovered once), and its concurrency limit.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use credential_core::estate::Cluster;
use credential_core::gvk::Gvk;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

use super::error::{DistributionError, is_connect_error, status_code};
use crate::informer::{ClusterWatches, Event, RegionalCluster, Subscription, Trim, WatchSpec};

/// API resources the distributor uses without discovery.
/// (The core's kinds table: `credential_core::gvk::KNOWN_KINDS`.)
pub fn known_resource(gvk: &Gvk) -> Option<(ApiResource, bool)> {
    let known = credential_core::gvk::known_kind(gvk)?;
    Some((ApiResource::from_gvk_with_plural(&to_kube_gvk(gvk), known.plural), known.namespaced))
}

pub fn to_kube_gvk(gvk: &Gvk) -> GroupVersionKind {
    GroupVersionKind::gvk(&gvk.group, &gvk.version, &gvk.kind)
}

/// Whether the ProviderInterfaces of a cluster are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PiState {
    Pending,
    Ready,
    Failed(String),
}

/// See the module documentation.
pub struct ClusterConn {
    pub cluster: Cluster,
    pub client: kube::Client,
    /// Regional clusters: the clients and watches shared with the admission index, and the
    /// kubeconfig Secret they were built from; a change rebuilds the connection.
    pub regional: Option<Arc<RegionalCluster>>,
    /// Bounds concurrent reconciles against this cluster.
    pub permits: Arc<Semaphore>,
    resources: Mutex<HashMap<Gvk, (ApiResource, bool)>>,
    namespaces: Mutex<HashSet<String>>,
    pis: Arc<RwLock<Vec<Arc<Value>>>>,
    pi_state: watch::Receiver<PiState>,
    /// The cluster's shared watches.
    watches: Arc<ClusterWatches>,
    /// The ProviderInterface subscription.
    _pi_subscription: Option<Subscription>,
    /// One label-selected watch per copied kind (regional clusters only): a copy deleted or
    /// edited there is noticed in seconds, not at the resync.
    copy_watches: Mutex<HashMap<Gvk, Subscription>>,
    /// Versions of copies this process just wrote: their watch events are our own echo, not a
    /// change to repair, so they enqueue nothing.
    own_writes: Arc<Mutex<HashSet<String>>>,
}

/// Called with the owners (`namespace/name` of Credentials) of a copy that changed or went away
/// in a target cluster.
pub type OnCopyEvent = Arc<dyn Fn(&Cluster, Vec<String>) + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ClusterConn {
    /// `client` sends requests; the ProviderInterfaces come from `watches` (shared with the
    /// admission index). `on_pis` is called whenever they are (re)listed or change.
    pub fn new(
        cluster: Cluster,
        client: kube::Client,
        watches: Arc<ClusterWatches>,
        regional: Option<Arc<RegionalCluster>>,
        concurrency: usize,
        on_pis: Arc<dyn Fn(&Cluster) + Send + Sync>,
    ) -> Arc<Self> {
        let pis: Arc<RwLock<Vec<Arc<Value>>>> = Arc::default();
        let (tx, rx) = watch::channel(PiState::Pending);
        let mut conn = ClusterConn {
            cluster: cluster.clone(),
            client,
            regional,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            resources: Mutex::default(),
            namespaces: Mutex::default(),
            pis: Arc::clone(&pis),
            pi_state: rx,
            watches: Arc::clone(&watches),
            _pi_subscription: None,
            copy_watches: Mutex::default(),
            own_writes: Arc::default(),
        };
        let Some(spec) = WatchSpec::known(&Gvk::provider_interface(), Trim::Common) else { return Arc::new(conn) };
        conn._pi_subscription = Some(watches.subscribe(
            &spec,
            Box::new(move |event| match event {
                Event::Listed(objects) => {
                    *pis.write().unwrap_or_else(std::sync::PoisonError::into_inner) = objects.to_vec();
                    tx.send_replace(PiState::Ready);
                    on_pis(&cluster);
                }
                Event::Applied(o) => {
                    upsert(&pis, Arc::clone(o), false);
                    on_pis(&cluster);
                }
                Event::Deleted(o) => {
                    upsert(&pis, Arc::clone(o), true);
                    on_pis(&cluster);
                }
                Event::Failed(e) => {
                    // Keep the last known list once we had one: a flaky watch is not an outage.
                    if *tx.borrow() != PiState::Ready {
                        tx.send_replace(PiState::Failed(e.message.clone()));
                    }
                }
            }),
        ));
        Arc::new(conn)
    }

    /// Watches the copies of `gvk` in this regional cluster (label `k0rdent.mirantis.com/managed`),
    /// once per kind: every change or deletion after the initial list calls `on_event` with the
    /// copy's owners, so a copy deleted or edited there is repaired or reported within seconds.
    /// Not in the management cluster, where the ServiceAccount may not list Secrets cluster-wide.
    pub fn ensure_copy_watch(&self, gvk: &Gvk, ar: &ApiResource, on_event: &OnCopyEvent) {
        if self.cluster == Cluster::Management {
            return;
        }
        let mut watches = lock(&self.copy_watches);
        if watches.contains_key(gvk) {
            return;
        }
        let spec = copy_watch_spec(ar);
        let (cluster, on_event, own) = (self.cluster.clone(), Arc::clone(on_event), Arc::clone(&self.own_writes));
        let group = gvk.group.clone();
        let task = self.watches.subscribe(
            &spec,
            Box::new(move |event| match event {
                Event::Applied(obj) => {
                    let s = |p: &str| obj.pointer(p).and_then(Value::as_str);
                    let version = written_version(
                        &group,
                        s("/kind").unwrap_or_default(),
                        s("/metadata/namespace"),
                        s("/metadata/name").unwrap_or_default(),
                        s("/metadata/resourceVersion").unwrap_or_default(),
                    );
                    if !lock(&own).remove(&version) {
                        on_event(&cluster, copy_owners(obj));
                    }
                }
                Event::Deleted(obj) => on_event(&cluster, copy_owners(obj)),
                Event::Failed(e) => tracing::debug!(cluster = %cluster, error = %e, "copy watch retrying"),
                Event::Listed(_) => {}
            }),
        );
        watches.insert(gvk.clone(), task);
    }

    /// A copy as its copy watch holds it (metadata and owners only): `None` when that watch has not
    /// listed (or there is none: the management cluster), `Some(None)` when it holds no such copy.
    pub fn watched_copy(&self, ar: &ApiResource, namespace: Option<&str>, name: &str) -> Option<Option<Arc<Value>>> {
        if self.cluster == Cluster::Management {
            return None;
        }
        self.watches.get(&copy_watch_spec(ar), namespace, name)
    }

    /// Notes that this process wrote `resource_version` of the copy at `key` (its watch event is
    /// then ignored). Bounded: a burst of writes whose events never came is forgotten.
    pub fn note_own_write(&self, key: &credential_core::identity::ObjectKey, resource_version: Option<&str>) {
        let Some(rv) = resource_version else { return };
        let mut own = lock(&self.own_writes);
        if own.len() > 10_000 {
            own.clear();
        }
        own.insert(written_version(&key.gvk.group, &key.gvk.kind, key.namespace.as_deref(), &key.name, rv));
    }

    /// The cluster's ProviderInterfaces, waiting up to `timeout` for the first list. An error
    /// means the cluster was not reachable.
    pub async fn provider_interfaces(&self, timeout: Duration) -> Result<Vec<Arc<Value>>, DistributionError> {
        let mut rx = self.pi_state.clone();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|s| *s != PiState::Pending)).await;
        let state = match waited {
            Ok(Ok(s)) => s.clone(),
            Ok(Err(_)) => PiState::Failed("ProviderInterface watch stopped".to_string()),
            Err(_) => PiState::Failed(format!("no answer within {} ms", timeout.as_millis())),
        };
        match state {
            PiState::Ready => Ok(self.pis.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()),
            PiState::Failed(detail) => Err(DistributionError::Unreachable { cluster: self.cluster.clone(), detail }),
            PiState::Pending => Err(DistributionError::Unreachable {
                cluster: self.cluster.clone(),
                detail: "ProviderInterfaces not listed yet".to_string(),
            }),
        }
    }

    /// The API resource of a kind if discovery already found it (no request).
    pub fn cached_resource(&self, gvk: &Gvk) -> Option<(ApiResource, bool)> {
        lock(&self.resources).get(gvk).cloned().or_else(|| known_resource(gvk))
    }

    /// The API resource and scope of a kind in this cluster; `Ok(None)` when it is not served.
    /// Discovery runs once per kind (one request), then answers from memory.
    pub async fn resource(&self, gvk: &Gvk) -> Result<Option<(ApiResource, bool)>, DistributionError> {
        if let Some(hit) = lock(&self.resources).get(gvk) {
            return Ok(Some(hit.clone()));
        }
        if let Some(known) = known_resource(gvk) {
            lock(&self.resources).insert(gvk.clone(), known.clone());
            return Ok(Some(known));
        }
        match kube::discovery::pinned_kind(&self.client, &to_kube_gvk(gvk)).await {
            Ok((ar, caps)) => {
                let found = (ar, caps.scope == Scope::Namespaced);
                lock(&self.resources).insert(gvk.clone(), found.clone());
                Ok(Some(found))
            }
            // Not served is not cached: the provider may be enabled later.
            Err(kube::Error::Discovery(_)) => Ok(None),
            Err(e) if status_code(&e) == Some(404) => Ok(None),
            Err(e) if is_connect_error(&e) => {
                Err(DistributionError::Unreachable { cluster: self.cluster.clone(), detail: e.to_string() })
            }
            Err(e) => Err(DistributionError::api(format!("discovery of {gvk} in {}", self.cluster), e)),
        }
    }

    /// A dynamic API for a kind in this cluster (`namespace` ignored for cluster-scoped kinds).
    /// Every caller asks for a namespaced kind with its namespace, so the cluster-wide form is
    /// only ever used for cluster-scoped kinds (one object by name).
    pub fn api(&self, ar: &ApiResource, namespaced: bool, namespace: Option<&str>) -> Api<DynamicObject> {
        match (namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, ar),
            _ => Api::all_with(self.client.clone(), ar),
        }
    }

    /// Creates a namespace unless it is known to exist (one GET per namespace per connection).
    pub async fn ensure_namespace(&self, namespace: &str) -> Result<(), DistributionError> {
        // In the management cluster copies go only into a managed Credential's own namespace,
        // which exists (the Credential is in it): no request, and no need for the ServiceAccount
        // to read Namespaces cluster-wide (deploy/base/rbac.yaml grants it nothing there).
        if self.cluster == Cluster::Management || lock(&self.namespaces).contains(namespace) {
            return Ok(());
        }
        let (namespace_ar, _) = known_resource(&Gvk::namespace()).unwrap_or_else(unreachable_pi);
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &namespace_ar);
        let context = || format!("namespace {namespace} in {}", self.cluster);
        match api.get_opt(namespace).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                let ns: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}
                }))
                .map_err(|e| DistributionError::Malformed { object: context(), detail: e.to_string() })?;
                match api.create(&PostParams::default(), &ns).await {
                    Ok(_) => {}
                    Err(e) if status_code(&e) == Some(409) => {}
                    Err(e) => return Err(classify(&self.cluster, context(), e)),
                }
            }
            Err(e) => return Err(classify(&self.cluster, context(), e)),
        }
        lock(&self.namespaces).insert(namespace.to_string());
        Ok(())
    }
}

/// The copy watch of a kind: every object labelled managed, cluster-wide, metadata and owners only.
fn copy_watch_spec(ar: &ApiResource) -> WatchSpec {
    let selector = format!("{}=true", credential_core::model::labels::MANAGED);
    WatchSpec::new(ar, None, Trim::Owners).with_labels(&selector)
}

/// The Credentials a copy belongs to: our owners annotation and KCM's per-Credential labels (a
/// copy KCM wrote in trigger mode carries only those).
fn copy_owners(copy: &Value) -> Vec<String> {
    let mut owners = credential_core::identity::owners_of(copy);
    owners.extend(credential_core::distribution::kcm_owners_of(copy));
    owners.sort();
    owners.dedup();
    owners
}

fn written_version(group: &str, kind: &str, namespace: Option<&str>, name: &str, rv: &str) -> String {
    format!("{group}/{kind}/{}/{name}@{rv}", namespace.unwrap_or_default())
}

/// Maps a transport failure to `Unreachable` (so the cluster backs off), anything else to `Api`.
pub fn classify(cluster: &Cluster, context: String, e: kube::Error) -> DistributionError {
    if is_connect_error(&e) {
        DistributionError::Unreachable {
            cluster: cluster.clone(),
            detail: format!("{context}: {}", super::error::readable(&e)),
        }
    } else {
        DistributionError::api(context, e)
    }
}

fn unreachable_pi() -> (ApiResource, bool) {
    // `known_resource` covers these kinds; keep a sane value instead of panicking.
    (ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Namespace")), false)
}

pub fn to_value(obj: &DynamicObject) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

fn upsert(store: &RwLock<Vec<Arc<Value>>>, obj: Arc<Value>, delete: bool) {
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string);
    let mut list = store.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    list.retain(|o| o.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string) != name);
    if !delete {
        list.push(obj);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_resources_keep_their_group() {
        let (ar, namespaced) = known_resource(&Gvk::secret()).unwrap();
        assert_eq!((ar.plural.as_str(), ar.api_version.as_str(), namespaced), ("secrets", "v1", true));
        let (ar, namespaced) = known_resource(&Gvk::provider_interface()).unwrap();
        assert_eq!(ar.api_version, "k0rdent.mirantis.com/v1beta1");
        assert_eq!((ar.plural.as_str(), namespaced), ("providerinterfaces", false));
        assert!(
            known_resource(&Gvk::new("infrastructure.cluster.x-k8s.io", "v1beta2", "AWSClusterStaticIdentity"))
                .is_none()
        );
    }

    #[test]
    fn upsert_replaces_and_deletes_by_name() {
        let store = RwLock::new(Vec::new());
        upsert(&store, Arc::new(json!({"metadata": {"name": "a"}, "v": 1})), false);
        upsert(&store, Arc::new(json!({"metadata": {"name": "a"}, "v": 2})), false);
        upsert(&store, Arc::new(json!({"metadata": {"name": "b"}})), false);
        assert_eq!(store.read().unwrap().len(), 2);
        assert!(store.read().unwrap().iter().any(|o| o["v"] == 2));
        upsert(&store, Arc::new(json!({"metadata": {"name": "a"}})), true);
        assert_eq!(store.read().unwrap().len(), 1);
    }
}
