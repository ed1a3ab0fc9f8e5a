//! The estate the webhook decides on: an in-memory index of cluster objects.
//!
//! Decisions only read this index (never the API), so their cost does not grow with the number of
//! objects. [`Index`] is filled from the shared watch layer (`crate::informer`) or, with
//! `--estate DIR`, replaced by a [`MemoryEstate`] loaded from YAML.
//!
//! - this file: the [`Index`] and the [`ServingEstate`] trait the server answers from;
//! - [`live`]: subscriptions that fill the index, readiness, regional staleness;
//! - `regions.rs`: the regional caches, one per Region; `identities.rs`: the identity kinds;
//! - `secrets.rs`: Secret key names and admission's short live reads; `overlay.rs`: [`Overlay`];
//! - [`limit`]: bounds on the live reads admission makes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use credential_core::estate::store::{is_crd, object_key};
use credential_core::estate::{Cluster, ClusterStore, Estate, MemoryEstate, RefIndex, Served};
use credential_core::gvk::{Gvk, builtin_scope};
use credential_core::rules::region::SECRET_KEYS_UNKNOWN_ANNOTATION;
use futures_util::future::BoxFuture;
use serde_json::Value;

pub use overlay::Overlay;

mod identities;
pub mod limit;
pub mod live;
mod overlay;
mod regions;
mod secrets;

/// The answer of a live read of one Secret.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveRead {
    /// The Secret as the index keeps it: identity metadata and `data: {key: ""}` (never values).
    Found(Value),
    /// The API server says it does not exist.
    Absent,
    /// No live access (offline estate), or the read failed or timed out.
    Unavailable,
}

/// An estate the server can answer from: thread-safe, and able to say whether it is loaded.
pub trait ServingEstate: Estate + Send + Sync + 'static {
    /// True once the state decisions depend on is loaded (drives `/readyz`).
    fn synced(&self) -> bool;

    /// One short live read of a Secret, for the rare decisions a lagging cache would get wrong (a
    /// Region applied together with its kubeconfig Secret). Offline estates have nothing to read.
    fn read_secret<'a>(&'a self, namespace: &'a str, name: &'a str) -> BoxFuture<'a, LiveRead> {
        let _ = (namespace, name);
        Box::pin(async { LiveRead::Unavailable })
    }

    /// One short live read of a management Credential, Region or ClusterDeployment (`namespace` `None`
    /// for Regions), for a decision that would deny because the cache lacks it. Offline estates have
    /// nothing to read.
    fn read_object<'a>(&'a self, gvk: &'a Gvk, namespace: Option<&'a str>, name: &'a str) -> BoxFuture<'a, LiveRead> {
        let _ = (gvk, namespace, name);
        Box::pin(async { LiveRead::Unavailable })
    }
}

impl ServingEstate for MemoryEstate {
    fn synced(&self) -> bool {
        true
    }
}

/// (group, kind, namespace, name) of a management object ([`Overlay`]).
type Key = (String, String, Option<String>, String);

#[derive(Debug, Default)]
struct ClusterIndex {
    /// Objects, served kinds and reverse lookups; "CRDs complete" once the CRD cache listed.
    store: ClusterStore,
    /// For regional clusters: true once every regional cache synced.
    known: bool,
}

/// The object index shared by the watchers (writers) and admission (readers).
pub struct Index {
    system_namespace: String,
    clusters: RwLock<HashMap<Cluster, ClusterIndex>>,
    /// Key names of Secrets whose keys we read, by (namespace, name), with the resourceVersion read.
    /// Values are never kept.
    secret_keys: RwLock<HashMap<(String, String), SecretKeys>>,
    /// Management caches all synced (set by the live cache).
    synced: AtomicBool,
    /// Management client for [`ServingEstate::read_secret`] (set by the live cache).
    live: OnceLock<kube::Client>,
    /// Management (group, kind)s outside the fixed caches whose watch synced (identity kinds).
    covered: RwLock<HashSet<(String, String)>>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("system_namespace", &self.system_namespace)
            .field("synced", &self.synced.load(Ordering::Relaxed))
            .field("live", &self.live.get().is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct SecretKeys {
    resource_version: String,
    keys: Vec<String>,
}

fn resource_version(obj: &Value) -> &str {
    obj.get("metadata").and_then(|m| m.get("resourceVersion")).and_then(Value::as_str).unwrap_or_default()
}

/// Replaces what a cached Secret says about its keys: `data: {key: ""}` when `keys` is given, else
/// the keys-unknown marker (the rules skip key checks instead of reading "no keys").
fn set_key_names(obj: &mut Value, keys: Option<&[String]>) {
    let Some(map) = obj.as_object_mut() else { return };
    map.remove("data");
    map.remove("stringData");
    let meta = map.entry("metadata").or_insert_with(|| Value::Object(Default::default()));
    let Some(meta) = meta.as_object_mut() else { return };
    let annotations = meta.entry("annotations").or_insert_with(|| Value::Object(Default::default()));
    if let Some(a) = annotations.as_object_mut() {
        a.remove(SECRET_KEYS_UNKNOWN_ANNOTATION);
        if keys.is_none() {
            a.insert(SECRET_KEYS_UNKNOWN_ANNOTATION.into(), Value::String("true".into()));
        }
    }
    if meta.get("annotations").and_then(Value::as_object).is_some_and(|a| a.is_empty()) {
        meta.remove("annotations");
    }
    if let Some(keys) = keys {
        map.insert(
            "data".into(),
            Value::Object(keys.iter().map(|k| (k.clone(), Value::String(String::new()))).collect()),
        );
    }
}

fn is_secret(group: &str, kind: &str) -> bool {
    group.is_empty() && kind == "Secret"
}

impl Index {
    pub fn new(system_namespace: impl Into<String>) -> Self {
        let mut clusters = HashMap::new();
        clusters.insert(Cluster::Management, ClusterIndex { known: true, ..Default::default() });
        Index {
            system_namespace: system_namespace.into(),
            clusters: RwLock::new(clusters),
            secret_keys: RwLock::new(HashMap::new()),
            synced: AtomicBool::new(false),
            live: OnceLock::new(),
            covered: RwLock::new(HashSet::new()),
        }
    }

    /// Records that the management cache of one further kind (an identity kind) is loaded, or no
    /// longer is: [`Estate::covers`] answers from it.
    pub fn set_covered(&self, group: &str, kind: &str, covered: bool) {
        let mut set = self.covered.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if covered {
            set.insert((group.to_string(), kind.to_string()));
        } else {
            set.remove(&(group.to_string(), kind.to_string()));
        }
    }

    /// Enables [`ServingEstate::read_secret`] through this management client.
    pub fn set_live_client(&self, client: kube::Client) {
        let _ = self.live.set(client);
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<Cluster, ClusterIndex>> {
        // A panic while holding the lock cannot leave the maps half-updated in a way readers care
        // about (every write is a single insert/remove/swap), so poisoning is ignored.
        self.clusters.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<Cluster, ClusterIndex>> {
        self.clusters.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds the key names of a Secret as `data: {key: ""}` (never values) when they were read at this
    /// resourceVersion; otherwise marks them unknown, so rules do not take a stale or unread list
    /// for the truth. Other objects are kept as they come, shared with the watch that delivered
    /// them (one copy in memory).
    fn with_secret_keys(&self, obj: Arc<Value>) -> Arc<Value> {
        let Some((gvk, Some(ns), name)) = object_key(&obj) else { return obj };
        if !is_secret(&gvk.group, &gvk.kind) {
            return obj;
        }
        let at = (ns.to_string(), name.to_string());
        let mut obj = Arc::unwrap_or_clone(obj);
        let keys = self.secret_keys.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let known = keys.get(&at).filter(|k| k.resource_version == resource_version(&obj));
        set_key_names(&mut obj, known.map(|k| k.keys.as_slice()));
        Arc::new(obj)
    }

    fn forget_secret_keys(&self, keep: impl Fn(&(String, String)) -> bool) {
        self.secret_keys.write().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|k, _| keep(k));
    }

    /// Adds or replaces one object.
    pub fn apply(&self, cluster: &Cluster, obj: Value) {
        self.apply_shared(cluster, Arc::new(obj));
    }

    /// Adds or replaces one object as a watch shares it.
    pub fn apply_shared(&self, cluster: &Cluster, obj: Arc<Value>) {
        let obj = self.with_secret_keys(obj);
        self.write().entry(cluster.clone()).or_default().store.put(obj);
    }

    /// Removes one object (identified by its apiVersion/kind/metadata).
    pub fn delete(&self, cluster: &Cluster, obj: &Value) {
        let Some((gvk, ns, name)) = object_key(obj) else { return };
        if let (true, Some(ns)) = (is_secret(&gvk.group, &gvk.kind), ns) {
            // A Secret recreated under the same name must not show the old key names.
            self.forget_secret_keys(|k| !(k.0 == ns && k.1 == name));
        }
        if let Some(state) = self.write().get_mut(cluster) {
            state.store.remove(&gvk, ns, name);
        }
    }

    /// Replaces every object of one group+kind in a cluster (after a watcher's initial list).
    pub fn replace_all(&self, cluster: &Cluster, group: &str, kind: &str, objs: Vec<Value>) {
        self.replace_all_shared(cluster, group, kind, objs.into_iter().map(Arc::new).collect());
    }

    /// [`Index::replace_all`] with objects as a watch shares them.
    pub fn replace_all_shared(&self, cluster: &Cluster, group: &str, kind: &str, objs: Vec<Arc<Value>>) {
        let objs: Vec<Arc<Value>> = objs.into_iter().map(|o| self.with_secret_keys(o)).collect();
        if *cluster == Cluster::Management && is_secret(group, kind) {
            // Deletions missed while the watch was down: keep key names only of listed Secrets.
            let listed: HashSet<(String, String)> = objs
                .iter()
                .filter_map(|o| {
                    let (_, ns, name) = object_key(o)?;
                    Some((ns?.to_string(), name.to_string()))
                })
                .collect();
            self.forget_secret_keys(|k| listed.contains(k));
        }
        self.write().entry(cluster.clone()).or_default().store.replace_kind(group, kind, objs);
    }

    /// Records the key names of a Secret as read at `resource_version`, and updates the cached entry
    /// (which shows them once it is at that resourceVersion).
    pub fn set_secret_keys(&self, namespace: &str, name: &str, resource_version: &str, keys: Vec<String>) {
        let keys = SecretKeys { resource_version: resource_version.to_string(), keys };
        self.secret_keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((namespace.to_string(), name.to_string()), keys);
        let existing =
            self.read().get(&Cluster::Management).and_then(|s| s.store.get(&Gvk::secret(), Some(namespace), name));
        if let Some(obj) = existing {
            self.apply_shared(&Cluster::Management, obj);
        }
    }

    /// A reverse lookup on the management cluster's index (empty while it is not known, as `list` is).
    fn management_refs<T: Default>(&self, lookup: impl FnOnce(&RefIndex) -> T) -> T {
        self.read().get(&Cluster::Management).filter(|s| s.known).map(|s| lookup(s.store.refs())).unwrap_or_default()
    }

    /// Marks a regional cluster as known (all its caches synced) or not.
    pub fn set_known(&self, cluster: &Cluster, known: bool) {
        self.write().entry(cluster.clone()).or_default().known = known;
    }

    /// Forgets a regional cluster entirely.
    pub fn remove_cluster(&self, cluster: &Cluster) {
        if *cluster != Cluster::Management {
            self.write().remove(cluster);
        }
    }

    /// Marks the management caches as synced (readiness).
    pub fn set_synced(&self, synced: bool) {
        self.synced.store(synced, Ordering::Release);
    }

    /// Number of objects cached for a cluster (diagnostics, tests).
    pub fn len(&self, cluster: &Cluster) -> usize {
        self.read().get(cluster).map_or(0, |s| s.store.len())
    }

    pub fn is_empty(&self, cluster: &Cluster) -> bool {
        self.len(cluster) == 0
    }
}

impl Estate for Index {
    fn system_namespace(&self) -> &str {
        &self.system_namespace
    }

    fn knows_cluster(&self, cluster: &Cluster) -> bool {
        self.read().get(cluster).is_some_and(|s| s.known)
    }

    fn get(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>, name: &str) -> Option<Arc<Value>> {
        self.read().get(cluster).filter(|s| s.known)?.store.get(gvk, namespace, name)
    }

    fn contains(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>, name: &str) -> bool {
        self.read().get(cluster).filter(|s| s.known).is_some_and(|s| s.store.contains(gvk, namespace, name))
    }

    fn list(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>) -> Vec<Arc<Value>> {
        self.read().get(cluster).filter(|s| s.known).map(|s| s.store.list(gvk, namespace)).unwrap_or_default()
    }

    fn count(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>) -> usize {
        self.read().get(cluster).filter(|s| s.known).map_or(0, |s| s.store.count(gvk, namespace))
    }

    fn served(&self, cluster: &Cluster, gvk: &Gvk) -> Served {
        if builtin_scope(gvk).is_some() {
            return Served::Yes;
        }
        self.read().get(cluster).filter(|s| s.known).map_or(Served::Unknown, |s| s.store.served(gvk))
    }

    fn namespaced(&self, cluster: &Cluster, gvk: &Gvk) -> Option<bool> {
        match self.read().get(cluster) {
            Some(state) => state.store.namespaced(gvk),
            None => builtin_scope(gvk),
        }
    }

    /// Management: the k0rdent kinds and CRDs; Secrets of the system namespace only; other kinds once
    /// their watch synced (the identity kinds management ProviderInterfaces declare). Regional
    /// clusters: what their caches hold (ProviderInterfaces, CRDs) once known.
    fn covers(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>) -> bool {
        if *cluster != Cluster::Management {
            return self.knows_cluster(cluster);
        }
        if gvk.group == credential_core::K0RDENT_GROUP || is_crd(&gvk.group, &gvk.kind) {
            return true;
        }
        if is_secret(&gvk.group, &gvk.kind) {
            return namespace == Some(self.system_namespace.as_str());
        }
        self.covered
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&(gvk.group.clone(), gvk.kind.clone()))
    }

    fn credentials_in_region(&self, region: &str) -> Vec<(String, String)> {
        self.management_refs(|r| r.credentials_in_region(region))
    }

    fn credentials_using_identity_kind(&self, api_version: &str, kind: &str) -> Vec<Arc<Value>> {
        self.management_refs(|r| r.credentials_using_identity_kind(api_version, kind))
    }

    fn cluster_deployments_using(&self, namespace: &str, credential: &str) -> Vec<Arc<Value>> {
        self.management_refs(|r| r.cluster_deployments_using(namespace, credential))
    }

    fn regions_on_cluster_deployment(&self, namespace: &str, name: &str) -> Vec<Arc<Value>> {
        self.management_refs(|r| r.regions_on_cluster_deployment(namespace, name))
    }
}

impl ServingEstate for Index {
    fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    fn read_secret<'a>(&'a self, namespace: &'a str, name: &'a str) -> BoxFuture<'a, LiveRead> {
        Box::pin(async move {
            match self.live.get() {
                Some(client) => secrets::read_secret_keys(client, self, namespace, name).await,
                None => LiveRead::Unavailable,
            }
        })
    }

    fn read_object<'a>(&'a self, gvk: &'a Gvk, namespace: Option<&'a str>, name: &'a str) -> BoxFuture<'a, LiveRead> {
        Box::pin(async move {
            match self.live.get() {
                Some(client) => secrets::read_k0rdent_object(client, gvk, namespace, name).await,
                None => LiveRead::Unavailable,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credential_core::rules::region::secret_keys_unknown;
    use serde_json::json;

    fn cred(ns: &str, name: &str) -> Value {
        json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Credential",
               "metadata": {"namespace": ns, "name": name}, "spec": {}})
    }

    #[test]
    fn get_list_replace_delete() {
        let idx = Index::new("kcm-system");
        let m = Cluster::Management;
        idx.apply(&m, cred("a", "c1"));
        idx.apply(&m, cred("b", "c2"));
        idx.apply(&m, cred("a", "c0"));
        let g = Gvk::credential();
        assert!(idx.get(&m, &g, Some("a"), "c1").is_some());
        assert!(idx.get(&m, &g, Some("b"), "c1").is_none());
        let names = |v: Vec<Arc<Value>>| -> Vec<String> {
            v.iter().map(|o| o["metadata"]["name"].as_str().unwrap().to_string()).collect()
        };
        assert_eq!(names(idx.list(&m, &g, Some("a"))), ["c0", "c1"]);
        assert_eq!(names(idx.list(&m, &g, None)), ["c0", "c1", "c2"]);
        assert!(idx.list(&m, &Gvk::region(), None).is_empty());
        idx.replace_all(&m, "k0rdent.mirantis.com", "Credential", vec![cred("z", "only")]);
        assert_eq!(names(idx.list(&m, &g, None)), ["only"]);
        idx.delete(&m, &cred("z", "only"));
        assert!(idx.list(&m, &g, None).is_empty());
    }

    fn cred_in(ns: &str, name: &str, region: &str) -> Value {
        let mut c = cred(ns, name);
        c["spec"] = json!({"region": region,
            "identityRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "AWSClusterStaticIdentity"}});
        c
    }

    fn cd(ns: &str, name: &str, credential: &str) -> Value {
        json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "ClusterDeployment",
               "metadata": {"namespace": ns, "name": name}, "spec": {"credential": credential}})
    }

    fn keys(v: Vec<(String, String)>) -> Vec<String> {
        v.into_iter().map(|(ns, n)| format!("{ns}/{n}")).collect()
    }

    fn refs(v: Vec<Arc<Value>>) -> Vec<String> {
        v.iter()
            .map(|o| {
                format!("{}/{}", o["metadata"]["namespace"].as_str().unwrap(), o["metadata"]["name"].as_str().unwrap())
            })
            .collect()
    }

    #[test]
    fn reverse_lookups_follow_apply_delete_and_relist() {
        let idx = Index::new("kcm-system");
        let m = Cluster::Management;
        let aws = ("infrastructure.cluster.x-k8s.io/v1beta2", "AWSClusterStaticIdentity");
        idx.apply(&m, cred_in("b", "c1", "r1"));
        idx.apply(&m, cred_in("a", "c1", "r1"));
        idx.apply(&m, cred_in("a", "c2", "r2"));
        idx.apply(&m, cd("a", "cd1", "c1"));
        assert_eq!(keys(idx.credentials_in_region("r1")), ["a/c1", "b/c1"]);
        assert_eq!(refs(idx.credentials_using_identity_kind(aws.0, aws.1)).len(), 3);
        assert_eq!(refs(idx.cluster_deployments_using("a", "c1")), ["a/cd1"]);
        // Replaced with spec.region changed: moves to the other Region.
        idx.apply(&m, cred_in("b", "c1", "r2"));
        assert_eq!(keys(idx.credentials_in_region("r1")), ["a/c1"]);
        assert_eq!(keys(idx.credentials_in_region("r2")), ["a/c2", "b/c1"]);
        // A ClusterDeployment switched to another Credential.
        idx.apply(&m, cd("a", "cd1", "c2"));
        assert!(idx.cluster_deployments_using("a", "c1").is_empty());
        assert_eq!(refs(idx.cluster_deployments_using("a", "c2")), ["a/cd1"]);
        // Deleted.
        idx.delete(&m, &cred_in("a", "c1", "ignored: the stored version says where it is filed"));
        assert!(idx.credentials_in_region("r1").is_empty());
        // Relist: what was not listed is gone, what was is filed; other kinds keep theirs.
        idx.replace_all(&m, "k0rdent.mirantis.com", "Credential", vec![cred_in("z", "c9", "r1")]);
        assert_eq!(keys(idx.credentials_in_region("r1")), ["z/c9"]);
        assert!(idx.credentials_in_region("r2").is_empty());
        assert_eq!(refs(idx.credentials_using_identity_kind(aws.0, aws.1)), ["z/c9"]);
        assert_eq!(refs(idx.cluster_deployments_using("a", "c2")), ["a/cd1"]);
        idx.replace_all(&m, "k0rdent.mirantis.com", "ClusterDeployment", Vec::new());
        assert!(idx.cluster_deployments_using("a", "c2").is_empty());
        // Wrappers answer from the index they wrap.
        let o = Overlay::new(&idx).with_secret("kcm-system", "s", None);
        assert_eq!(keys(o.credentials_in_region("r1")), ["z/c9"]);
    }

    #[test]
    fn served_and_known_clusters() {
        let idx = Index::new("kcm-system");
        let r = Cluster::Region("r1".into());
        let gvk = Gvk::new("infrastructure.cluster.x-k8s.io", "v1beta2", "AWSClusterStaticIdentity");
        assert_eq!(idx.served(&Cluster::Management, &gvk), Served::Unknown);
        assert!(!idx.knows_cluster(&r));
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "awsclusterstaticidentities.infrastructure.cluster.x-k8s.io"},
            "spec": {"group": "infrastructure.cluster.x-k8s.io", "scope": "Cluster",
                     "names": {"kind": "AWSClusterStaticIdentity"},
                     "versions": [{"name": "v1beta2", "served": true}, {"name": "v1beta1", "served": false}]}});
        idx.replace_all(&r, "apiextensions.k8s.io", "CustomResourceDefinition", vec![crd.clone()]);
        // Not known until its caches synced: served-checks say Unknown, lists are empty.
        assert_eq!(idx.served(&r, &gvk), Served::Unknown);
        idx.set_known(&r, true);
        assert!(idx.knows_cluster(&r));
        assert_eq!(idx.served(&r, &gvk), Served::Yes);
        assert_eq!(idx.served(&r, &Gvk { version: "v1beta1".into(), ..gvk.clone() }), Served::No);
        assert_eq!(idx.namespaced(&r, &gvk), Some(false));
        idx.delete(&r, &crd);
        assert_eq!(idx.served(&r, &gvk), Served::No);
        idx.remove_cluster(&r);
        assert!(!idx.knows_cluster(&r));
    }

    fn secret(name: &str, rv: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"namespace": "kcm-system", "name": name, "resourceVersion": rv}})
    }

    fn cached(idx: &dyn Estate, name: &str) -> Arc<Value> {
        idx.get(&Cluster::Management, &Gvk::secret(), Some("kcm-system"), name).unwrap()
    }

    #[test]
    fn secrets_carry_key_names_never_values() {
        let idx = Index::new("kcm-system");
        let m = Cluster::Management;
        idx.apply(&m, secret("r1-kubeconfig", "1"));
        let got = cached(&idx, "r1-kubeconfig");
        assert!(got.get("data").is_none());
        assert!(secret_keys_unknown(&got), "not read yet: marked unknown, {got}");
        idx.set_secret_keys("kcm-system", "r1-kubeconfig", "1", vec!["value".into()]);
        let got = cached(&idx, "r1-kubeconfig");
        assert_eq!(got["data"], json!({"value": ""}));
        assert!(!secret_keys_unknown(&got) && got["metadata"].get("annotations").is_none(), "{got}");
        // A metadata update at the same resourceVersion keeps the key names.
        idx.apply(&m, secret("r1-kubeconfig", "1"));
        assert_eq!(cached(&idx, "r1-kubeconfig")["data"], json!({"value": ""}));
        // A new resourceVersion: the old names may be stale, so they are unknown until read again.
        idx.apply(&m, secret("r1-kubeconfig", "2"));
        let got = cached(&idx, "r1-kubeconfig");
        assert!(got.get("data").is_none() && secret_keys_unknown(&got), "{got}");
        // Keys read ahead of the cache show once the cache reaches that resourceVersion.
        idx.set_secret_keys("kcm-system", "r1-kubeconfig", "3", vec!["kubeconfig".into()]);
        assert!(secret_keys_unknown(&cached(&idx, "r1-kubeconfig")));
        idx.apply(&m, secret("r1-kubeconfig", "3"));
        assert_eq!(cached(&idx, "r1-kubeconfig")["data"], json!({"kubeconfig": ""}));
    }

    #[test]
    fn deleted_secrets_forget_their_key_names() {
        let idx = Index::new("kcm-system");
        let m = Cluster::Management;
        idx.apply(&m, secret("a", "1"));
        idx.set_secret_keys("kcm-system", "a", "1", vec!["value".into()]);
        idx.delete(&m, &secret("a", "1"));
        assert!(idx.secret_keys.read().unwrap().is_empty());
        // Recreated: unknown again, not the old names (resourceVersions are opaque; equality is not safe).
        idx.apply(&m, secret("a", "1"));
        assert!(secret_keys_unknown(&cached(&idx, "a")));
        // A relist drops names of Secrets deleted while the watch was down.
        idx.set_secret_keys("kcm-system", "a", "1", vec!["value".into()]);
        idx.set_secret_keys("kcm-system", "b", "1", vec!["value".into()]);
        idx.replace_all(&m, "", "Secret", vec![secret("b", "1")]);
        let keys = idx.secret_keys.read().unwrap();
        assert_eq!(keys.keys().cloned().collect::<Vec<_>>(), [("kcm-system".to_string(), "b".to_string())]);
    }

    #[test]
    fn overlay_answers_for_its_one_secret() {
        let idx = Index::new("kcm-system");
        let m = Cluster::Management;
        idx.set_synced(true);
        idx.apply(&m, secret("a", "1"));
        idx.apply(&m, secret("c", "1"));
        let mut fresh = secret("b", "7");
        set_key_names(&mut fresh, Some(&["value".to_string()]));
        let o = Overlay::new(&idx).with_secret("kcm-system", "b", Some(fresh));
        assert_eq!(cached(&o, "b")["data"], json!({"value": ""}));
        assert!(secret_keys_unknown(&cached(&o, "a")), "other Secrets come from the base");
        let names: Vec<String> = o
            .list(&m, &Gvk::secret(), Some("kcm-system"))
            .iter()
            .map(|s| s["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(o.list(&m, &Gvk::secret(), Some("other")).len(), 0);
        // Found absent: hides a cached copy.
        let gone = Overlay::new(&idx).with_secret("kcm-system", "a", None);
        assert!(gone.get(&m, &Gvk::secret(), Some("kcm-system"), "a").is_none());
        assert_eq!(gone.list(&m, &Gvk::secret(), None).len(), 1);
    }
}
