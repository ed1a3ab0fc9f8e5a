//! The estate the webhook decides on: an in-memory index of cluster objects.
//!
//! Decisions only read this index (never the API), so their cost does not grow with the number of
//! objects. [`Index`] is filled by kube-rs watchers ([`live`]) or, with `--estate DIR`, replaced by a
//! [`MemoryEstate`] loaded from YAML.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use credential_core::estate::{Cluster, Estate, MemoryEstate, Served};
use credential_core::gvk::{Gvk, builtin_scope};
use serde_json::Value;

pub mod live;

/// An estate the server can answer from: thread-safe, and able to say whether it is loaded.
pub trait ServingEstate: Estate + Send + Sync + 'static {
    /// True once the state decisions depend on is loaded (drives `/readyz`).
    fn synced(&self) -> bool;
}

impl ServingEstate for MemoryEstate {
    fn synced(&self) -> bool {
        true
    }
}

type Key = (String, String, Option<String>, String); // (group, kind, namespace, name)

#[derive(Debug, Default)]
struct ClusterIndex {
    objects: BTreeMap<Key, Arc<Value>>,
    /// CRD name -> the (group, version, kind, namespaced) it serves.
    crds: HashMap<String, Vec<(String, String, String, bool)>>,
    /// (group, version, kind) -> namespaced; derived from `crds`.
    served: HashMap<(String, String, String), bool>,
    /// True once the CRD cache of this cluster synced: only then can "not served" be said.
    crds_synced: bool,
    /// For regional clusters: true once every regional cache synced.
    known: bool,
}

impl ClusterIndex {
    fn rebuild_served(&mut self) {
        self.served =
            self.crds.values().flatten().map(|(g, v, k, ns)| ((g.clone(), v.clone(), k.clone()), *ns)).collect();
    }
}

/// The object index shared by the watchers (writers) and admission (readers).
#[derive(Debug)]
pub struct Index {
    system_namespace: String,
    clusters: RwLock<HashMap<Cluster, ClusterIndex>>,
    /// Key names of Secrets whose keys we read (those Regions reference), by (namespace, name).
    /// Values are never kept.
    secret_keys: RwLock<HashMap<(String, String), Vec<String>>>,
    /// Management caches all synced (set by the live cache).
    synced: AtomicBool,
}

fn key_of(obj: &Value) -> Option<Key> {
    let gvk = Gvk::of(obj)?;
    let meta = obj.get("metadata")?;
    let name = meta.get("name")?.as_str()?.to_string();
    let ns = meta.get("namespace").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    Some((gvk.group, gvk.kind, ns, name))
}

/// What a CRD serves: (group, version, kind, namespaced) per served version.
fn crd_serves(crd: &Value) -> Vec<(String, String, String, bool)> {
    let spec = crd.get("spec");
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let group = s(spec.and_then(|s| s.get("group")));
    let kind = s(spec.and_then(|s| s.get("names")).and_then(|n| n.get("kind")));
    let namespaced = spec.and_then(|s| s.get("scope")).and_then(Value::as_str) != Some("Cluster");
    spec.and_then(|s| s.get("versions"))
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(false))
                .filter_map(|v| v.get("name").and_then(Value::as_str))
                .map(|v| (group.clone(), v.to_string(), kind.clone(), namespaced))
                .collect()
        })
        .unwrap_or_default()
}

fn is_crd(group: &str, kind: &str) -> bool {
    group == "apiextensions.k8s.io" && kind == "CustomResourceDefinition"
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
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<Cluster, ClusterIndex>> {
        // A panic while holding the lock cannot leave the maps half-updated in a way readers care
        // about (every write is a single insert/remove/swap), so poisoning is ignored.
        self.clusters.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<Cluster, ClusterIndex>> {
        self.clusters.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds the recorded key names of a Secret as `data: {key: ""}` (never values).
    fn with_secret_keys(&self, mut obj: Value) -> Value {
        let Some((group, kind, Some(ns), name)) = key_of(&obj) else { return obj };
        if !(group.is_empty() && kind == "Secret") {
            return obj;
        }
        let keys = self.secret_keys.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let (Some(k), Some(map)) = (keys.get(&(ns, name)), obj.as_object_mut()) {
            map.insert(
                "data".into(),
                Value::Object(k.iter().map(|k| (k.clone(), Value::String(String::new()))).collect()),
            );
        }
        obj
    }

    /// Adds or replaces one object.
    pub fn apply(&self, cluster: &Cluster, obj: Value) {
        let obj = self.with_secret_keys(obj);
        let Some(key) = key_of(&obj) else { return };
        let mut clusters = self.write();
        let state = clusters.entry(cluster.clone()).or_default();
        if is_crd(&key.0, &key.1) {
            state.crds.insert(key.3.clone(), crd_serves(&obj));
            state.rebuild_served();
        }
        state.objects.insert(key, Arc::new(obj));
    }

    /// Removes one object (identified by its apiVersion/kind/metadata).
    pub fn delete(&self, cluster: &Cluster, obj: &Value) {
        let Some(key) = key_of(obj) else { return };
        let mut clusters = self.write();
        let Some(state) = clusters.get_mut(cluster) else { return };
        if is_crd(&key.0, &key.1) && state.crds.remove(&key.3).is_some() {
            state.rebuild_served();
        }
        state.objects.remove(&key);
    }

    /// Replaces every object of one group+kind in a cluster (after a watcher's initial list).
    pub fn replace_all(&self, cluster: &Cluster, group: &str, kind: &str, objs: Vec<Value>) {
        let objs: Vec<(Key, Value)> =
            objs.into_iter().map(|o| self.with_secret_keys(o)).filter_map(|o| Some((key_of(&o)?, o))).collect();
        let mut clusters = self.write();
        let state = clusters.entry(cluster.clone()).or_default();
        state.objects.retain(|(g, k, _, _), _| !(g == group && k == kind));
        let crd = is_crd(group, kind);
        if crd {
            state.crds.clear();
        }
        for (key, obj) in objs {
            if crd {
                state.crds.insert(key.3.clone(), crd_serves(&obj));
            }
            state.objects.insert(key, Arc::new(obj));
        }
        if crd {
            state.rebuild_served();
            state.crds_synced = true;
        }
    }

    /// Records the key names of a Secret (from a read done for a Region) and updates the cached entry.
    pub fn set_secret_keys(&self, namespace: &str, name: &str, keys: Vec<String>) {
        self.secret_keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((namespace.to_string(), name.to_string()), keys);
        let key: Key = (String::new(), "Secret".into(), Some(namespace.to_string()), name.to_string());
        let existing = self.read().get(&Cluster::Management).and_then(|s| s.objects.get(&key).cloned());
        if let Some(obj) = existing {
            self.apply(&Cluster::Management, (*obj).clone());
        }
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
        self.read().get(cluster).map_or(0, |s| s.objects.len())
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
        let clusters = self.read();
        let state = clusters.get(cluster).filter(|s| s.known)?;
        let key: Key = (
            gvk.group.clone(),
            gvk.kind.clone(),
            namespace.filter(|s| !s.is_empty()).map(str::to_string),
            name.to_string(),
        );
        state.objects.get(&key).cloned()
    }

    fn list(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let clusters = self.read();
        let Some(state) = clusters.get(cluster).filter(|s| s.known) else { return Vec::new() };
        let lo: Key = (gvk.group.clone(), gvk.kind.clone(), namespace.map(str::to_string), String::new());
        state
            .objects
            .range(lo..)
            .take_while(|((g, k, ns, _), _)| {
                *g == gvk.group && *k == gvk.kind && (namespace.is_none() || ns.as_deref() == namespace)
            })
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn served(&self, cluster: &Cluster, gvk: &Gvk) -> Served {
        if builtin_scope(gvk).is_some() {
            return Served::Yes;
        }
        let clusters = self.read();
        let Some(state) = clusters.get(cluster).filter(|s| s.known && s.crds_synced) else { return Served::Unknown };
        if state.served.contains_key(&(gvk.group.clone(), gvk.version.clone(), gvk.kind.clone())) {
            Served::Yes
        } else {
            Served::No
        }
    }

    fn namespaced(&self, cluster: &Cluster, gvk: &Gvk) -> Option<bool> {
        if let Some(ns) = builtin_scope(gvk) {
            return Some(ns);
        }
        let clusters = self.read();
        let state = clusters.get(cluster)?;
        state.served.iter().find(|((g, _, k), _)| *g == gvk.group && *k == gvk.kind).map(|(_, ns)| *ns)
    }
}

impl ServingEstate for Index {
    fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn secrets_carry_key_names_never_values() {
        let idx = Index::new("kcm-system");
        let m = Cluster::Management;
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"namespace": "kcm-system", "name": "r1-kubeconfig"}});
        idx.apply(&m, secret.clone());
        let got = idx.get(&m, &Gvk::secret(), Some("kcm-system"), "r1-kubeconfig").unwrap();
        assert!(got.get("data").is_none());
        idx.set_secret_keys("kcm-system", "r1-kubeconfig", vec!["value".into()]);
        let got = idx.get(&m, &Gvk::secret(), Some("kcm-system"), "r1-kubeconfig").unwrap();
        assert_eq!(got["data"], json!({"value": ""}));
        // A metadata update keeps the key names.
        idx.apply(&m, secret);
        let got = idx.get(&m, &Gvk::secret(), Some("kcm-system"), "r1-kubeconfig").unwrap();
        assert_eq!(got["data"], json!({"value": ""}));
    }
}
