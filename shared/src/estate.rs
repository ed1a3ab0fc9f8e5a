//! The view of cluster state a rule reads.
//!
//! One [`Estate`] covers the management cluster and every regional cluster. Objects are JSON
//! values behind `Arc` so caches can hand them out without copying.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;

use crate::gvk::{Gvk, builtin_scope};

#[cfg(feature = "fs")]
mod load;
mod refs;
#[cfg(feature = "fs")]
pub use load::{
    DocPos, LoadError, LoadOptions, LoadReport, LoadWarning, load_dir, load_dir_with_report, load_files,
    load_files_with_report, load_inputs_with_report,
};
pub use refs::RefIndex;

/// Which cluster of the estate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cluster {
    Management,
    /// The regional cluster behind the Region of this name.
    Region(String),
}

impl std::fmt::Display for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cluster::Management => f.write_str("management"),
            Cluster::Region(r) => write!(f, "region {r}"),
        }
    }
}

/// Whether a cluster serves a GVK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    Yes,
    No,
    /// The estate does not know (no CRDs were loaded for that cluster, or the cluster is not
    /// reachable): served-checks are skipped, never guessed.
    Unknown,
}

/// Read access to cluster state. Implementations: [`MemoryEstate`] here (offline files, tests);
/// reflector caches in the webhook; API calls in the plugin.
pub trait Estate {
    /// The namespace KCM runs in (`kcm-system` by default).
    fn system_namespace(&self) -> &str;

    /// Whether the estate holds any state for this cluster (a Region whose cluster is unknown to
    /// the estate answers `false`; rules then skip regional checks instead of failing them).
    fn knows_cluster(&self, cluster: &Cluster) -> bool;

    /// One object by GVK (version-insensitive: group+kind), namespace (`None` for cluster-scoped) and name.
    fn get(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>, name: &str) -> Option<Arc<Value>>;

    /// Objects of a GVK (group+kind), in one namespace or (`None`) all, ordered by namespace/name.
    fn list(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>) -> Vec<Arc<Value>>;

    /// Whether the cluster serves this exact group/version/kind.
    fn served(&self, cluster: &Cluster, gvk: &Gvk) -> Served;

    /// `Some(true)` namespaced, `Some(false)` cluster-scoped, `None` unknown.
    fn namespaced(&self, cluster: &Cluster, gvk: &Gvk) -> Option<bool>;

    /// Whether this estate loads objects of this group+kind in `namespace` (`None`: cluster-scoped or
    /// all namespaces) of `cluster`, so that a `get` answering `None` means "does not exist" rather
    /// than "not looked at". Estates holding everything they were given (files, tests) cover all.
    fn covers(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>) -> bool {
        let _ = (cluster, gvk, namespace);
        true
    }

    // Reverse lookups the rules make on the management cluster. The defaults scan `list`; estates
    // that hold many objects override them with a [`RefIndex`] (same answers, same order), and
    // wrappers forward them to the estate they wrap so its index is used.

    /// Management Credentials whose `spec.region` is `region`, ordered by namespace/name.
    fn credentials_in_region(&self, region: &str) -> Vec<Arc<Value>> {
        let mut all = self.list(&Cluster::Management, &Gvk::credential(), None);
        all.retain(|c| text_at(c, "/spec/region") == Some(region));
        all
    }

    /// Management Credentials whose `spec.identityRef` has this apiVersion and kind, ordered by
    /// namespace/name.
    fn credentials_using_identity_kind(&self, api_version: &str, kind: &str) -> Vec<Arc<Value>> {
        let mut all = self.list(&Cluster::Management, &Gvk::credential(), None);
        all.retain(|c| {
            text_at(c, "/spec/identityRef/apiVersion") == Some(api_version)
                && text_at(c, "/spec/identityRef/kind") == Some(kind)
        });
        all
    }

    /// Management ClusterDeployments of `namespace` whose `spec.credential` is `credential`, ordered by name.
    fn cluster_deployments_using(&self, namespace: &str, credential: &str) -> Vec<Arc<Value>> {
        if namespace.is_empty() {
            return Vec::new();
        }
        let mut all = self.list(&Cluster::Management, &Gvk::cluster_deployment(), Some(namespace));
        all.retain(|cd| text_at(cd, "/spec/credential") == Some(credential));
        all
    }

    /// Management Regions whose `spec.clusterDeployment` is `namespace`/`name`, ordered by name.
    fn regions_on_cluster_deployment(&self, namespace: &str, name: &str) -> Vec<Arc<Value>> {
        let mut all = self.list(&Cluster::Management, &Gvk::region(), None);
        all.retain(|r| {
            text_at(r, "/spec/clusterDeployment/namespace") == Some(namespace)
                && text_at(r, "/spec/clusterDeployment/name") == Some(name)
        });
        all
    }
}

/// The non-empty string at a JSON pointer (how rules read reference fields).
fn text_at<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty())
}

type Key = (String, String, Option<String>, String); // (group, kind, namespace, name)

#[derive(Debug, Default, Clone)]
struct ClusterState {
    objects: BTreeMap<Key, Arc<Value>>,
    /// (group, version, kind) -> namespaced, from CRDs seen in this cluster.
    crds: BTreeMap<(String, String, String), bool>,
    /// True once any CRD was loaded into this cluster: only then can "not served" be said.
    has_crds: bool,
    /// Reverse lookups over `objects`, kept in step by `insert`/`remove`.
    refs: RefIndex,
}

/// An in-memory estate, filled from YAML files or by hand.
#[derive(Debug, Clone)]
pub struct MemoryEstate {
    system_namespace: String,
    clusters: BTreeMap<Cluster, ClusterState>,
}

impl Default for MemoryEstate {
    fn default() -> Self {
        Self::new(crate::DEFAULT_SYSTEM_NAMESPACE)
    }
}

impl MemoryEstate {
    pub fn new(system_namespace: impl Into<String>) -> Self {
        let mut clusters = BTreeMap::new();
        clusters.insert(Cluster::Management, ClusterState::default());
        MemoryEstate { system_namespace: system_namespace.into(), clusters }
    }

    /// Makes a cluster known even if it holds no objects yet.
    pub fn add_cluster(&mut self, cluster: Cluster) {
        self.clusters.entry(cluster).or_default();
    }

    /// Adds or replaces an object (identified by apiVersion/kind/metadata). Objects without kind
    /// or name are ignored and reported as `false`. CRDs also register what they serve.
    pub fn insert(&mut self, cluster: &Cluster, obj: Value) -> bool {
        let Some(gvk) = Gvk::of(&obj) else { return false };
        let meta = obj.get("metadata");
        let Some(name) = meta.and_then(|m| m.get("name")).and_then(Value::as_str).map(str::to_string) else {
            return false;
        };
        let namespace =
            meta.and_then(|m| m.get("namespace")).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        let state = self.clusters.entry(cluster.clone()).or_default();
        if gvk.group == "apiextensions.k8s.io" && gvk.kind == "CustomResourceDefinition" {
            state.has_crds = true;
            register_crd(state, &obj);
        }
        let obj = Arc::new(obj);
        let key = (gvk.group, gvk.kind, namespace, name);
        let (group, kind, ns, name) = (&key.0, &key.1, key.2.as_deref(), &key.3);
        // A replaced object may have moved (spec.region changed): unfile the old one first.
        if let Some(old) = state.objects.insert(key.clone(), obj.clone()) {
            state.refs.remove(group, kind, ns, name, &old);
        }
        state.refs.add(group, kind, ns, name, &obj);
        true
    }

    /// Removes an object; returns it if it was there.
    pub fn remove(&mut self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>, name: &str) -> Option<Arc<Value>> {
        let state = self.clusters.get_mut(cluster)?;
        let namespace = namespace.filter(|s| !s.is_empty());
        let old = state.objects.remove(&(
            gvk.group.clone(),
            gvk.kind.clone(),
            namespace.map(str::to_string),
            name.to_string(),
        ))?;
        state.refs.remove(&gvk.group, &gvk.kind, namespace, name, &old);
        Some(old)
    }

    /// The clusters this estate knows, management first.
    pub fn clusters(&self) -> Vec<Cluster> {
        self.clusters.keys().cloned().collect()
    }

    /// Whether CRDs were loaded for this cluster (served-checks are skipped otherwise).
    pub fn has_crds(&self, cluster: &Cluster) -> bool {
        self.clusters.get(cluster).is_some_and(|s| s.has_crds)
    }

    fn management_refs(&self) -> Option<&RefIndex> {
        self.clusters.get(&Cluster::Management).map(|s| &s.refs)
    }

    /// Every object of a cluster, in key order.
    pub fn all(&self, cluster: &Cluster) -> Vec<Arc<Value>> {
        self.clusters.get(cluster).map(|s| s.objects.values().cloned().collect()).unwrap_or_default()
    }
}

fn register_crd(state: &mut ClusterState, crd: &Value) {
    let spec = crd.get("spec");
    let group = spec.and_then(|s| s.get("group")).and_then(Value::as_str).unwrap_or_default();
    let kind =
        spec.and_then(|s| s.get("names")).and_then(|n| n.get("kind")).and_then(Value::as_str).unwrap_or_default();
    let namespaced = spec.and_then(|s| s.get("scope")).and_then(Value::as_str) != Some("Cluster");
    let versions = spec.and_then(|s| s.get("versions")).and_then(Value::as_array).cloned().unwrap_or_default();
    for v in versions {
        let served = v.get("served").and_then(Value::as_bool).unwrap_or(false);
        if let (true, Some(name)) = (served, v.get("name").and_then(Value::as_str)) {
            state.crds.insert((group.to_string(), name.to_string(), kind.to_string()), namespaced);
        }
    }
}

impl Estate for MemoryEstate {
    fn system_namespace(&self) -> &str {
        &self.system_namespace
    }

    fn knows_cluster(&self, cluster: &Cluster) -> bool {
        self.clusters.contains_key(cluster)
    }

    fn get(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>, name: &str) -> Option<Arc<Value>> {
        let state = self.clusters.get(cluster)?;
        state
            .objects
            .get(&(
                gvk.group.clone(),
                gvk.kind.clone(),
                namespace.filter(|s| !s.is_empty()).map(str::to_string),
                name.to_string(),
            ))
            .cloned()
    }

    fn list(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let Some(state) = self.clusters.get(cluster) else { return Vec::new() };
        let lo: Key = (gvk.group.clone(), gvk.kind.clone(), None, String::new());
        state
            .objects
            .range(lo..)
            .take_while(|((g, k, _, _), _)| *g == gvk.group && *k == gvk.kind)
            .filter(|((_, _, ns, _), _)| namespace.is_none() || ns.as_deref() == namespace)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn served(&self, cluster: &Cluster, gvk: &Gvk) -> Served {
        if builtin_scope(gvk).is_some() {
            return Served::Yes;
        }
        let Some(state) = self.clusters.get(cluster) else { return Served::Unknown };
        if !state.has_crds {
            return Served::Unknown;
        }
        if state.crds.contains_key(&(gvk.group.clone(), gvk.version.clone(), gvk.kind.clone())) {
            Served::Yes
        } else {
            Served::No
        }
    }

    fn namespaced(&self, cluster: &Cluster, gvk: &Gvk) -> Option<bool> {
        if let Some(ns) = builtin_scope(gvk) {
            return Some(ns);
        }
        let state = self.clusters.get(cluster)?;
        // Scope is a property of group+kind; any served version tells it.
        state.crds.iter().find(|((g, _, k), _)| *g == gvk.group && *k == gvk.kind).map(|(_, ns)| *ns)
    }

    fn credentials_in_region(&self, region: &str) -> Vec<Arc<Value>> {
        self.management_refs().map(|r| r.credentials_in_region(region)).unwrap_or_default()
    }

    fn credentials_using_identity_kind(&self, api_version: &str, kind: &str) -> Vec<Arc<Value>> {
        self.management_refs().map(|r| r.credentials_using_identity_kind(api_version, kind)).unwrap_or_default()
    }

    fn cluster_deployments_using(&self, namespace: &str, credential: &str) -> Vec<Arc<Value>> {
        self.management_refs().map(|r| r.cluster_deployments_using(namespace, credential)).unwrap_or_default()
    }

    fn regions_on_cluster_deployment(&self, namespace: &str, name: &str) -> Vec<Arc<Value>> {
        self.management_refs().map(|r| r.regions_on_cluster_deployment(namespace, name)).unwrap_or_default()
    }
}

/// Distinct namespaces that objects of a GVK live in (helper for rules and explain).
pub fn namespaces_of(objs: &[Arc<Value>]) -> BTreeSet<String> {
    objs.iter().filter_map(|o| o.get("metadata")?.get("namespace")?.as_str().map(str::to_string)).collect()
}
