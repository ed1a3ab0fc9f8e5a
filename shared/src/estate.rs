//! The view of cluster state a rule reads.
//!
//! One [`Estate`] covers the management cluster and every regional cluster. Objects are JSON
//! values behind `Arc` so caches can hand them out without copying.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;

use crate::gvk::{Gvk, builtin_scope};
use crate::rules::support::str_at;

#[cfg(feature = "fs")]
mod load;
mod refs;
pub mod store;
pub mod trim;
#[cfg(feature = "fs")]
pub use load::{
    DocPos, LoadError, LoadOptions, LoadReport, LoadWarning, load_dir, load_dir_with_report, load_files,
    load_files_with_report, load_inputs_with_report,
};
pub use refs::RefIndex;
pub use store::ClusterStore;

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

    /// Whether `get` would find the object. Stores that hold objects packed answer without reading
    /// it (an existence check on the admission hot path).
    fn contains(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>, name: &str) -> bool {
        self.get(cluster, gvk, namespace, name).is_some()
    }

    /// Objects of a GVK (group+kind), in one namespace or (`None`) all, ordered by namespace/name.
    fn list(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>) -> Vec<Arc<Value>>;

    /// How many objects `list` would return. Stores that hold objects packed count without reading them.
    fn count(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>) -> usize {
        self.list(cluster, gvk, namespace).len()
    }

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

    /// (namespace, name) of the management Credentials whose `spec.region` is `region`, in that
    /// order. Names, not objects: a Region DELETE reads nothing else of them, and stores holding
    /// Credentials packed answer without parsing one.
    fn credentials_in_region(&self, region: &str) -> Vec<(String, String)> {
        let all = self.list(&Cluster::Management, &Gvk::credential(), None);
        all.iter()
            .filter(|c| str_at(c, "/spec/region") == Some(region))
            .map(|c| {
                let at = |p| str_at(c, p).unwrap_or_default().to_string();
                (at("/metadata/namespace"), at("/metadata/name"))
            })
            .collect()
    }

    /// Management Credentials whose `spec.identityRef` has this apiVersion and kind, ordered by
    /// namespace/name.
    fn credentials_using_identity_kind(&self, api_version: &str, kind: &str) -> Vec<Arc<Value>> {
        let mut all = self.list(&Cluster::Management, &Gvk::credential(), None);
        all.retain(|c| {
            str_at(c, "/spec/identityRef/apiVersion") == Some(api_version)
                && str_at(c, "/spec/identityRef/kind") == Some(kind)
        });
        all
    }

    /// Management ClusterDeployments of `namespace` whose `spec.credential` is `credential`, ordered by name.
    fn cluster_deployments_using(&self, namespace: &str, credential: &str) -> Vec<Arc<Value>> {
        if namespace.is_empty() {
            return Vec::new();
        }
        let mut all = self.list(&Cluster::Management, &Gvk::cluster_deployment(), Some(namespace));
        all.retain(|cd| str_at(cd, "/spec/credential") == Some(credential));
        all
    }

    /// Management Regions whose `spec.clusterDeployment` is `namespace`/`name`, ordered by name.
    fn regions_on_cluster_deployment(&self, namespace: &str, name: &str) -> Vec<Arc<Value>> {
        let mut all = self.list(&Cluster::Management, &Gvk::region(), None);
        all.retain(|r| {
            str_at(r, "/spec/clusterDeployment/namespace") == Some(namespace)
                && str_at(r, "/spec/clusterDeployment/name") == Some(name)
        });
        all
    }
}

/// An in-memory estate, filled from YAML files or by hand.
#[derive(Debug, Clone)]
pub struct MemoryEstate {
    system_namespace: String,
    clusters: BTreeMap<Cluster, ClusterStore>,
}

impl Default for MemoryEstate {
    fn default() -> Self {
        Self::new(crate::DEFAULT_SYSTEM_NAMESPACE)
    }
}

impl MemoryEstate {
    pub fn new(system_namespace: impl Into<String>) -> Self {
        let mut clusters = BTreeMap::new();
        clusters.insert(Cluster::Management, ClusterStore::default());
        MemoryEstate { system_namespace: system_namespace.into(), clusters }
    }

    /// Makes a cluster known even if it holds no objects yet.
    pub fn add_cluster(&mut self, cluster: Cluster) {
        self.clusters.entry(cluster).or_default();
    }

    /// Adds or replaces an object (identified by apiVersion/kind/metadata). Objects without kind
    /// or name are ignored and reported as `false`. CRDs also register what they serve.
    pub fn insert(&mut self, cluster: &Cluster, obj: Value) -> bool {
        self.insert_shared(cluster, Arc::new(obj))
    }

    /// [`MemoryEstate::insert`] of an object possibly shared with other clusters or estates.
    pub fn insert_shared(&mut self, cluster: &Cluster, obj: Arc<Value>) -> bool {
        let crd = Gvk::of(&obj).is_some_and(|g| store::is_crd(&g.group, &g.kind));
        let state = self.clusters.entry(cluster.clone()).or_default();
        let stored = state.put(obj);
        // Files hold what they hold: once any CRD of a cluster is loaded, its CRDs are taken as all.
        if stored && crd {
            state.set_crds_complete(true);
        }
        stored
    }

    /// Removes an object; returns whether it was there.
    pub fn remove(&mut self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>, name: &str) -> bool {
        self.clusters.get_mut(cluster).is_some_and(|s| s.remove(gvk, namespace, name))
    }

    /// The clusters this estate knows, management first.
    pub fn clusters(&self) -> Vec<Cluster> {
        self.clusters.keys().cloned().collect()
    }

    /// Whether CRDs were loaded for this cluster (served-checks are skipped otherwise).
    pub fn has_crds(&self, cluster: &Cluster) -> bool {
        self.clusters.get(cluster).is_some_and(ClusterStore::crds_complete)
    }

    fn management_refs(&self) -> Option<&RefIndex> {
        self.clusters.get(&Cluster::Management).map(ClusterStore::refs)
    }

    /// Every object of a cluster, by group, kind, namespace and name.
    pub fn all(&self, cluster: &Cluster) -> Vec<Arc<Value>> {
        self.clusters.get(cluster).map(ClusterStore::all).unwrap_or_default()
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
        self.clusters.get(cluster)?.get(gvk, namespace, name)
    }

    fn contains(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>, name: &str) -> bool {
        self.clusters.get(cluster).is_some_and(|s| s.contains(gvk, namespace, name))
    }

    fn list(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>) -> Vec<Arc<Value>> {
        self.clusters.get(cluster).map(|s| s.list(gvk, namespace)).unwrap_or_default()
    }

    fn count(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>) -> usize {
        self.clusters.get(cluster).map_or(0, |s| s.count(gvk, namespace))
    }

    fn served(&self, cluster: &Cluster, gvk: &Gvk) -> Served {
        match self.clusters.get(cluster) {
            Some(state) => state.served(gvk),
            None if builtin_scope(gvk).is_some() => Served::Yes,
            None => Served::Unknown,
        }
    }

    fn namespaced(&self, cluster: &Cluster, gvk: &Gvk) -> Option<bool> {
        match self.clusters.get(cluster) {
            Some(state) => state.namespaced(gvk),
            None => builtin_scope(gvk),
        }
    }

    fn credentials_in_region(&self, region: &str) -> Vec<(String, String)> {
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
