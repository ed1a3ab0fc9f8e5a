//! Secondary indexes for the reverse lookups rules make ("which Credentials name this Region?"),
//! so those cost a map lookup instead of a scan of every object of a kind.
//!
//! An estate keeps one [`RefIndex`] per cluster beside its object map and calls [`RefIndex::add`] /
//! [`RefIndex::remove`] for every object it stores or drops; the answers are the ones the scanning
//! defaults of [`super::Estate`] give, in the same order (namespace, then name).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::store::Held;
use crate::rules::support::str_at;

/// (namespace, name) of an object, ordered like `Estate::list`.
type Pos = (Option<String>, String);
type Bucket = BTreeMap<Pos, Held>;

/// Objects by the values of the fields rules look them up by.
#[derive(Debug, Default, Clone)]
pub struct RefIndex {
    /// Credentials by `spec.region`.
    credentials_by_region: BTreeMap<String, Bucket>,
    /// Credentials by (`spec.identityRef.apiVersion`, `spec.identityRef.kind`).
    credentials_by_identity: BTreeMap<(String, String), Bucket>,
    /// ClusterDeployments by (namespace, `spec.credential`).
    cluster_deployments_by_credential: BTreeMap<(String, String), Bucket>,
    /// Regions by (`spec.clusterDeployment.namespace`, `spec.clusterDeployment.name`).
    regions_by_cluster_deployment: BTreeMap<(String, String), Bucket>,
}

/// Which index and key an object is filed under (at most one per index).
pub(crate) enum Slot {
    Region(String),
    Identity((String, String)),
    Credential((String, String)),
    ClusterDeployment((String, String)),
}

impl RefIndex {
    /// Whether objects of `group`/`kind` are filed at all.
    pub(crate) fn files(group: &str, kind: &str) -> bool {
        group == crate::K0RDENT_GROUP && matches!(kind, "Credential" | "ClusterDeployment" | "Region")
    }

    /// Where an object is filed, read from its fields.
    pub(crate) fn slots(group: &str, kind: &str, namespace: Option<&str>, obj: &Value) -> Vec<Slot> {
        if !Self::files(group, kind) {
            return Vec::new();
        }
        slots(kind, namespace, obj)
    }
}

fn slots(kind: &str, namespace: Option<&str>, obj: &Value) -> Vec<Slot> {
    let mut out = Vec::new();
    match kind {
        "Credential" => {
            if let Some(region) = str_at(obj, "/spec/region") {
                out.push(Slot::Region(region.to_string()));
            }
            if let (Some(av), Some(k)) =
                (str_at(obj, "/spec/identityRef/apiVersion"), str_at(obj, "/spec/identityRef/kind"))
            {
                out.push(Slot::Identity((av.to_string(), k.to_string())));
            }
        }
        "ClusterDeployment" => {
            if let (Some(ns), Some(cred)) = (namespace.filter(|s| !s.is_empty()), str_at(obj, "/spec/credential")) {
                out.push(Slot::Credential((ns.to_string(), cred.to_string())));
            }
        }
        "Region" => {
            let cd_ns = str_at(obj, "/spec/clusterDeployment/namespace");
            if let (Some(ns), Some(name)) = (cd_ns, str_at(obj, "/spec/clusterDeployment/name")) {
                out.push(Slot::ClusterDeployment((ns.to_string(), name.to_string())));
            }
        }
        _ => {}
    }
    out
}

fn matches(bucket: Option<&Bucket>) -> Vec<Arc<Value>> {
    bucket.map(|b| b.values().filter_map(Held::value).collect()).unwrap_or_default()
}

impl RefIndex {
    /// Files a stored object under `slots` ([`RefIndex::slots`] of it). Unfile the object it
    /// replaces first.
    pub(crate) fn add(&mut self, slots: Vec<Slot>, namespace: Option<&str>, name: &str, obj: &Held) {
        let pos: Pos = (namespace.filter(|s| !s.is_empty()).map(str::to_string), name.to_string());
        for slot in slots {
            let bucket = match slot {
                Slot::Region(k) => self.credentials_by_region.entry(k).or_default(),
                Slot::Identity(k) => self.credentials_by_identity.entry(k).or_default(),
                Slot::Credential(k) => self.cluster_deployments_by_credential.entry(k).or_default(),
                Slot::ClusterDeployment(k) => self.regions_by_cluster_deployment.entry(k).or_default(),
            };
            bucket.insert(pos.clone(), obj.clone());
        }
    }

    /// Unfiles an object filed under `slots` ([`RefIndex::slots`] of the stored version).
    pub(crate) fn remove(&mut self, slots: Vec<Slot>, namespace: Option<&str>, name: &str) {
        let pos: Pos = (namespace.filter(|s| !s.is_empty()).map(str::to_string), name.to_string());
        fn take<K: Ord>(map: &mut BTreeMap<K, Bucket>, key: K, pos: &Pos) {
            if let Some(bucket) = map.get_mut(&key) {
                bucket.remove(pos);
                if bucket.is_empty() {
                    map.remove(&key);
                }
            }
        }
        for slot in slots {
            match slot {
                Slot::Region(k) => take(&mut self.credentials_by_region, k, &pos),
                Slot::Identity(k) => take(&mut self.credentials_by_identity, k, &pos),
                Slot::Credential(k) => take(&mut self.cluster_deployments_by_credential, k, &pos),
                Slot::ClusterDeployment(k) => take(&mut self.regions_by_cluster_deployment, k, &pos),
            }
        }
    }

    /// Drops every entry of one group+kind (before a relist refills it).
    pub fn clear_kind(&mut self, group: &str, kind: &str) {
        if group != crate::K0RDENT_GROUP {
            return;
        }
        match kind {
            "Credential" => {
                self.credentials_by_region.clear();
                self.credentials_by_identity.clear();
            }
            "ClusterDeployment" => self.cluster_deployments_by_credential.clear(),
            "Region" => self.regions_by_cluster_deployment.clear(),
            _ => {}
        }
    }

    /// (namespace, name) of the Credentials whose `spec.region` is `region`, in that order.
    pub fn credentials_in_region(&self, region: &str) -> Vec<(String, String)> {
        let bucket = self.credentials_by_region.get(region);
        bucket
            .map(|b| b.keys().map(|(ns, name)| (ns.clone().unwrap_or_default(), name.clone())).collect())
            .unwrap_or_default()
    }

    /// Credentials whose `spec.identityRef` has this apiVersion and kind, ordered by namespace/name.
    pub fn credentials_using_identity_kind(&self, api_version: &str, kind: &str) -> Vec<Arc<Value>> {
        matches(self.credentials_by_identity.get(&(api_version.to_string(), kind.to_string())))
    }

    /// ClusterDeployments of `namespace` whose `spec.credential` is `credential`, ordered by name.
    pub fn cluster_deployments_using(&self, namespace: &str, credential: &str) -> Vec<Arc<Value>> {
        matches(self.cluster_deployments_by_credential.get(&(namespace.to_string(), credential.to_string())))
    }

    /// Regions whose `spec.clusterDeployment` is `namespace`/`name`, ordered by name.
    pub fn regions_on_cluster_deployment(&self, namespace: &str, name: &str) -> Vec<Arc<Value>> {
        matches(self.regions_by_cluster_deployment.get(&(namespace.to_string(), name.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Cluster, Estate, MemoryEstate, Served};
    use crate::gvk::Gvk;
    use serde_json::{Value, json};
    use std::sync::Arc;

    /// The same estate answered by the scanning defaults (the reference the index must match).
    struct Scan<'a>(&'a MemoryEstate);

    impl Estate for Scan<'_> {
        fn system_namespace(&self) -> &str {
            self.0.system_namespace()
        }
        fn knows_cluster(&self, c: &Cluster) -> bool {
            self.0.knows_cluster(c)
        }
        fn get(&self, c: &Cluster, g: &Gvk, ns: Option<&str>, n: &str) -> Option<Arc<Value>> {
            self.0.get(c, g, ns, n)
        }
        fn list(&self, c: &Cluster, g: &Gvk, ns: Option<&str>) -> Vec<Arc<Value>> {
            self.0.list(c, g, ns)
        }
        fn served(&self, c: &Cluster, g: &Gvk) -> Served {
            self.0.served(c, g)
        }
        fn namespaced(&self, c: &Cluster, g: &Gvk) -> Option<bool> {
            self.0.namespaced(c, g)
        }
    }

    fn cred(ns: &str, name: &str, region: Option<&str>, kind: &str) -> Value {
        let mut spec = json!({"identityRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": kind,
                                              "name": "id"}});
        if let Some(r) = region {
            spec["region"] = json!(r);
        }
        json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Credential",
               "metadata": {"namespace": ns, "name": name}, "spec": spec})
    }

    fn cd(ns: &str, name: &str, credential: &str) -> Value {
        json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "ClusterDeployment",
               "metadata": {"namespace": ns, "name": name}, "spec": {"credential": credential}})
    }

    fn region_on(name: &str, cd_ns: &str, cd_name: &str) -> Value {
        json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Region", "metadata": {"name": name},
               "spec": {"clusterDeployment": {"namespace": cd_ns, "name": cd_name}}})
    }

    fn keys(v: Vec<(String, String)>) -> Vec<String> {
        v.into_iter().map(|(ns, n)| format!("{ns}/{n}")).collect()
    }

    fn names(v: Vec<Arc<Value>>) -> Vec<String> {
        v.iter()
            .map(|o| {
                let m = &o["metadata"];
                match m["namespace"].as_str() {
                    Some(ns) => format!("{ns}/{}", m["name"].as_str().unwrap()),
                    None => m["name"].as_str().unwrap().to_string(),
                }
            })
            .collect()
    }

    /// Every lookup the rules make, by index and by scan: (index answer, scan answer) pairs.
    fn check_same(e: &MemoryEstate) {
        let s = Scan(e);
        for r in ["r1", "r2", ""] {
            assert_eq!(keys(e.credentials_in_region(r)), keys(s.credentials_in_region(r)), "region {r}");
        }
        for k in ["AWSClusterStaticIdentity", "AzureClusterIdentity"] {
            let av = "infrastructure.cluster.x-k8s.io/v1beta2";
            assert_eq!(
                names(e.credentials_using_identity_kind(av, k)),
                names(s.credentials_using_identity_kind(av, k)),
                "{k}"
            );
        }
        for (ns, c) in [("a", "c1"), ("b", "c1"), ("a", "c2"), ("", "c1"), ("a", "")] {
            assert_eq!(names(e.cluster_deployments_using(ns, c)), names(s.cluster_deployments_using(ns, c)));
        }
        for (ns, n) in [("a", "cd1"), ("a", "cd2"), ("", "cd1")] {
            assert_eq!(names(e.regions_on_cluster_deployment(ns, n)), names(s.regions_on_cluster_deployment(ns, n)));
        }
    }

    #[test]
    fn memory_estate_indexes_follow_insert_replace_and_remove() {
        let m = Cluster::Management;
        let mut e = MemoryEstate::default();
        e.insert(&m, cred("b", "c1", Some("r1"), "AWSClusterStaticIdentity"));
        e.insert(&m, cred("a", "c1", Some("r1"), "AWSClusterStaticIdentity"));
        e.insert(&m, cred("a", "c2", Some("r2"), "AzureClusterIdentity"));
        e.insert(&m, cred("a", "c3", None, "AWSClusterStaticIdentity"));
        e.insert(&m, cd("a", "cd2", "c1"));
        e.insert(&m, cd("a", "cd1", "c1"));
        e.insert(&m, cd("b", "cd1", "c2"));
        e.insert(&m, region_on("r3", "a", "cd1"));
        // Regional objects are not management Credentials.
        e.insert(&Cluster::Region("r1".into()), cred("a", "far", Some("r1"), "AWSClusterStaticIdentity"));
        check_same(&e);
        assert_eq!(keys(e.credentials_in_region("r1")), ["a/c1", "b/c1"], "ordered by namespace/name");
        assert_eq!(
            names(e.credentials_using_identity_kind(
                "infrastructure.cluster.x-k8s.io/v1beta2",
                "AWSClusterStaticIdentity"
            )),
            ["a/c1", "a/c3", "b/c1"]
        );
        assert!(
            e.credentials_using_identity_kind("infrastructure.cluster.x-k8s.io/v1beta1", "AWSClusterStaticIdentity")
                .is_empty()
        );
        assert_eq!(names(e.cluster_deployments_using("a", "c1")), ["a/cd1", "a/cd2"]);
        assert_eq!(names(e.regions_on_cluster_deployment("a", "cd1")), ["r3"]);

        // Replace with spec.region changed: filed under the new Region only.
        e.insert(&m, cred("a", "c1", Some("r2"), "AzureClusterIdentity"));
        check_same(&e);
        assert_eq!(keys(e.credentials_in_region("r1")), ["b/c1"]);
        assert_eq!(keys(e.credentials_in_region("r2")), ["a/c1", "a/c2"]);
        // Replace with the same reference: still filed once, and the new version is returned.
        e.insert(&m, {
            let mut c = cred("b", "c1", Some("r1"), "AWSClusterStaticIdentity");
            c["metadata"]["labels"] = json!({"v": "2"});
            c
        });
        assert_eq!(keys(e.credentials_in_region("r1")), ["b/c1"]);
        let aws =
            e.credentials_using_identity_kind("infrastructure.cluster.x-k8s.io/v1beta2", "AWSClusterStaticIdentity");
        let b_c1 = aws.iter().find(|c| c["metadata"]["namespace"] == "b").expect("filed by identity kind");
        assert_eq!(b_c1["metadata"]["labels"]["v"], "2", "the new version is returned");
        e.insert(&m, cd("a", "cd2", "c9"));
        assert_eq!(names(e.cluster_deployments_using("a", "c1")), ["a/cd1"]);

        // Remove: gone from every index.
        assert!(e.remove(&m, &Gvk::credential(), Some("b"), "c1"));
        assert!(e.remove(&m, &Gvk::cluster_deployment(), Some("a"), "cd1"));
        assert!(e.remove(&m, &Gvk::region(), None, "r3"));
        check_same(&e);
        assert!(e.credentials_in_region("r1").is_empty());
        assert!(e.cluster_deployments_using("a", "c1").is_empty());
        assert!(e.regions_on_cluster_deployment("a", "cd1").is_empty());
    }
}
