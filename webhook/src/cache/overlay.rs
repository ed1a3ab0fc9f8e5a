//! What a decision sees when the cache has not caught up with a write yet: the index plus the
//! management objects live reads found (or found absent).

use std::sync::Arc;

use credential_core::estate::{Cluster, Estate, Served};
use credential_core::gvk::Gvk;
use serde_json::Value;

use super::Key;

/// An estate plus management objects as live reads found them (or found them absent): what a
/// decision sees when the cache has not caught up with them yet (a Secret, Region or
/// ClusterDeployment applied together with the object that names it).
pub struct Overlay<'a> {
    base: &'a (dyn Estate + Sync),
    /// (group, kind, namespace, name) -> the object as read (`None`: it does not exist).
    objects: Vec<(Key, Option<Arc<Value>>)>,
}

impl<'a> Overlay<'a> {
    pub fn new(base: &'a (dyn Estate + Sync)) -> Self {
        Overlay { base, objects: Vec::new() }
    }

    /// Adds one management object as read (`object` `None`: it does not exist).
    pub fn with(mut self, gvk: &Gvk, namespace: Option<&str>, name: &str, object: Option<Value>) -> Self {
        let key: Key = (gvk.group.clone(), gvk.kind.clone(), namespace.map(str::to_string), name.to_string());
        self.objects.retain(|(k, _)| *k != key);
        self.objects.push((key, object.map(Arc::new)));
        self
    }

    /// Shorthand for one Secret as read.
    pub fn with_secret(self, namespace: &str, name: &str, secret: Option<Value>) -> Self {
        self.with(&Gvk::secret(), Some(namespace), name, secret)
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    fn entry(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>, name: &str) -> Option<&Option<Arc<Value>>> {
        if *cluster != Cluster::Management {
            return None;
        }
        self.objects
            .iter()
            .find(|((g, k, ns, n), _)| *g == gvk.group && *k == gvk.kind && ns.as_deref() == namespace && n == name)
            .map(|(_, o)| o)
    }
}

impl Estate for Overlay<'_> {
    fn system_namespace(&self) -> &str {
        self.base.system_namespace()
    }

    fn knows_cluster(&self, cluster: &Cluster) -> bool {
        self.base.knows_cluster(cluster)
    }

    fn get(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>, name: &str) -> Option<Arc<Value>> {
        match self.entry(cluster, gvk, namespace.filter(|s| !s.is_empty()), name) {
            Some(read) => read.clone(),
            None => self.base.get(cluster, gvk, namespace, name),
        }
    }

    fn contains(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>, name: &str) -> bool {
        match self.entry(cluster, gvk, namespace.filter(|s| !s.is_empty()), name) {
            Some(read) => read.is_some(),
            None => self.base.contains(cluster, gvk, namespace, name),
        }
    }

    fn list(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let mut out = self.base.list(cluster, gvk, namespace);
        if *cluster != Cluster::Management {
            return out;
        }
        let pos = |o: &Value| {
            let m = o.get("metadata");
            let s = |k: &str| m.and_then(|m| m.get(k)).and_then(Value::as_str).unwrap_or_default().to_string();
            (s("namespace"), s("name"))
        };
        for ((g, k, ns, n), read) in &self.objects {
            if *g != gvk.group || *k != gvk.kind || namespace.is_some_and(|want| ns.as_deref() != Some(want)) {
                continue;
            }
            let me = (ns.clone().unwrap_or_default(), n.clone());
            out.retain(|o| pos(o) != me);
            if let Some(obj) = read {
                let at = out.partition_point(|o| pos(o) < me);
                out.insert(at, obj.clone());
            }
        }
        out
    }

    fn served(&self, cluster: &Cluster, gvk: &Gvk) -> Served {
        self.base.served(cluster, gvk)
    }

    fn namespaced(&self, cluster: &Cluster, gvk: &Gvk) -> Option<bool> {
        self.base.namespaced(cluster, gvk)
    }

    fn covers(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>) -> bool {
        self.base.covers(cluster, gvk, namespace)
    }

    // The overlay holds single objects: the reverse lookups (Credentials, ClusterDeployments, Regions)
    // are the base's, answered from its index.
    fn credentials_in_region(&self, region: &str) -> Vec<(String, String)> {
        self.base.credentials_in_region(region)
    }

    fn credentials_using_identity_kind(&self, api_version: &str, kind: &str) -> Vec<Arc<Value>> {
        self.base.credentials_using_identity_kind(api_version, kind)
    }

    fn cluster_deployments_using(&self, namespace: &str, credential: &str) -> Vec<Arc<Value>> {
        self.base.cluster_deployments_using(namespace, credential)
    }

    fn regions_on_cluster_deployment(&self, namespace: &str, name: &str) -> Vec<Arc<Value>> {
        self.base.regions_on_cluster_deployment(namespace, name)
    }
}
