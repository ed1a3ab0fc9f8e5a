//! The objects of one cluster and the lookups every estate answers from them: by key, by kind and
//! namespace, which kinds the cluster's CRDs serve (and their scope), and the reverse lookups of
//! [`RefIndex`]. [`super::MemoryEstate`] (offline files) and the webhook's live index keep one
//! [`ClusterStore`] per cluster, so this code exists once.
//!
//! Layout: objects are grouped by kind, then namespace, then name, so a key costs one name string
//! (group, kind and namespace are stored once per kind or namespace, not once per object), and a
//! lookup borrows the caller's strings instead of building a key.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use super::{RefIndex, Served};
use crate::gvk::{Gvk, builtin_scope};

/// Objects of one group+kind: namespace (`""` for cluster-scoped) -> name -> object.
#[derive(Debug, Default, Clone)]
struct KindObjects {
    group: String,
    kind: String,
    by_namespace: BTreeMap<String, BTreeMap<String, Arc<Value>>>,
}

/// What a CRD serves: (group, version, kind, namespaced) per served version.
type Serves = Vec<(String, String, String, bool)>;

/// One cluster's objects, what its CRDs serve, and the reverse-lookup index.
#[derive(Debug, Default, Clone)]
pub struct ClusterStore {
    /// A handful of kinds per cluster: found by a scan, no key built per lookup.
    kinds: Vec<KindObjects>,
    len: usize,
    /// CRD name -> what it serves.
    crds: HashMap<String, Serves>,
    /// (group, version, kind) -> namespaced; derived from `crds`.
    served: HashMap<(String, String, String), bool>,
    /// Whether the CRDs held are all the cluster has (only then can "not served" be said).
    crds_complete: bool,
    refs: RefIndex,
}

/// (group, kind, namespace, name) of an object, namespace `None` when empty or absent.
pub fn object_key(obj: &Value) -> Option<(Gvk, Option<&str>, &str)> {
    let gvk = Gvk::of(obj)?;
    let meta = obj.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    let ns = meta.get("namespace").and_then(Value::as_str).filter(|s| !s.is_empty());
    Some((gvk, ns, name))
}

/// Whether `group`/`kind` is the CustomResourceDefinition kind.
pub fn is_crd(group: &str, kind: &str) -> bool {
    group == "apiextensions.k8s.io" && kind == "CustomResourceDefinition"
}

/// What a CRD serves: (group, version, kind, namespaced) per served version.
fn crd_serves(crd: &Value) -> Serves {
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

impl ClusterStore {
    fn kind(&self, group: &str, kind: &str) -> Option<&KindObjects> {
        self.kinds.iter().find(|k| k.group == group && k.kind == kind)
    }

    fn kind_mut(&mut self, group: &str, kind: &str) -> &mut KindObjects {
        let at = match self.kinds.iter().position(|k| k.group == group && k.kind == kind) {
            Some(i) => i,
            None => {
                self.kinds.push(KindObjects { group: group.into(), kind: kind.into(), ..Default::default() });
                self.kinds.len() - 1
            }
        };
        &mut self.kinds[at]
    }

    /// Adds or replaces an object (identified by apiVersion/kind/metadata); `false` when it has no
    /// kind or name. A replaced object is unfiled from the reverse lookups first (it may have
    /// moved); a CRD also registers what it serves.
    pub fn put(&mut self, obj: Arc<Value>) -> bool {
        let Some((gvk, ns, name)) = object_key(&obj) else { return false };
        let (ns, name) = (ns.map(str::to_string), name.to_string());
        if is_crd(&gvk.group, &gvk.kind) {
            self.crds.insert(name.clone(), crd_serves(&obj));
            self.rebuild_served();
        }
        let objects = self.kind_mut(&gvk.group, &gvk.kind);
        let slot = objects.by_namespace.entry(ns.clone().unwrap_or_default()).or_default();
        let old = slot.insert(name.clone(), obj.clone());
        if let Some(old) = &old {
            self.refs.remove(&gvk.group, &gvk.kind, ns.as_deref(), &name, old);
        } else {
            self.len += 1;
        }
        self.refs.add(&gvk.group, &gvk.kind, ns.as_deref(), &name, &obj);
        true
    }

    /// Removes an object; returns it if it was there.
    pub fn remove(&mut self, gvk: &Gvk, namespace: Option<&str>, name: &str) -> Option<Arc<Value>> {
        let namespace = namespace.filter(|s| !s.is_empty());
        let at = self.kinds.iter().position(|k| k.group == gvk.group && k.kind == gvk.kind)?;
        let objects = &mut self.kinds[at].by_namespace;
        let ns_key = namespace.unwrap_or_default();
        let names = objects.get_mut(ns_key)?;
        let old = names.remove(name)?;
        if names.is_empty() {
            objects.remove(ns_key);
        }
        self.len -= 1;
        self.refs.remove(&gvk.group, &gvk.kind, namespace, name, &old);
        if is_crd(&gvk.group, &gvk.kind) && self.crds.remove(name).is_some() {
            self.rebuild_served();
        }
        Some(old)
    }

    /// Replaces every object of one group+kind (a relist): what is not in `objs` is gone. A CRD
    /// relist also makes the CRDs complete (see [`ClusterStore::set_crds_complete`]).
    pub fn replace_kind(&mut self, group: &str, kind: &str, objs: impl IntoIterator<Item = Arc<Value>>) {
        if let Some(at) = self.kinds.iter().position(|k| k.group == group && k.kind == kind) {
            let gone = self.kinds.swap_remove(at);
            self.len -= gone.by_namespace.values().map(BTreeMap::len).sum::<usize>();
        }
        self.refs.clear_kind(group, kind);
        let crd = is_crd(group, kind);
        if crd {
            self.crds.clear();
        }
        for obj in objs {
            self.put(obj);
        }
        if crd {
            self.rebuild_served();
            self.crds_complete = true;
        }
    }

    fn rebuild_served(&mut self) {
        self.served =
            self.crds.values().flatten().map(|(g, v, k, ns)| ((g.clone(), v.clone(), k.clone()), *ns)).collect();
    }

    /// Declares the CRDs held to be all the cluster has (or not): "not served" is said only then.
    pub fn set_crds_complete(&mut self, complete: bool) {
        self.crds_complete = complete;
    }

    /// Whether "not served" can be said (see [`ClusterStore::set_crds_complete`]).
    pub fn crds_complete(&self) -> bool {
        self.crds_complete
    }

    /// One object by group+kind (the version is ignored), namespace and name.
    pub fn get(&self, gvk: &Gvk, namespace: Option<&str>, name: &str) -> Option<Arc<Value>> {
        let ns = namespace.filter(|s| !s.is_empty()).unwrap_or_default();
        self.kind(&gvk.group, &gvk.kind)?.by_namespace.get(ns)?.get(name).cloned()
    }

    /// Objects of a group+kind in one namespace or (`None`) all, ordered by namespace/name.
    pub fn list(&self, gvk: &Gvk, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let Some(objects) = self.kind(&gvk.group, &gvk.kind) else { return Vec::new() };
        match namespace {
            Some(ns) => objects.by_namespace.get(ns).map(|m| m.values().cloned().collect()).unwrap_or_default(),
            None => objects.by_namespace.values().flat_map(|m| m.values().cloned()).collect(),
        }
    }

    /// Every object, by group, kind, namespace and name.
    pub fn all(&self) -> Vec<Arc<Value>> {
        let mut kinds: Vec<&KindObjects> = self.kinds.iter().collect();
        kinds.sort_by(|a, b| (&a.group, &a.kind).cmp(&(&b.group, &b.kind)));
        kinds.into_iter().flat_map(|k| k.by_namespace.values().flat_map(|m| m.values().cloned())).collect()
    }

    /// Number of objects held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the cluster serves this exact group/version/kind: built-in kinds always; others
    /// by the CRDs held, once they are complete.
    pub fn served(&self, gvk: &Gvk) -> Served {
        if builtin_scope(gvk).is_some() {
            return Served::Yes;
        }
        if !self.crds_complete {
            return Served::Unknown;
        }
        if self.served.contains_key(&(gvk.group.clone(), gvk.version.clone(), gvk.kind.clone())) {
            Served::Yes
        } else {
            Served::No
        }
    }

    /// `Some(true)` namespaced, `Some(false)` cluster-scoped, `None` unknown: built-in kinds, else
    /// any served version of the kind's CRD (scope is a property of group+kind).
    pub fn namespaced(&self, gvk: &Gvk) -> Option<bool> {
        if let Some(ns) = builtin_scope(gvk) {
            return Some(ns);
        }
        self.served.iter().find(|((g, _, k), _)| *g == gvk.group && *k == gvk.kind).map(|(_, ns)| *ns)
    }

    /// The reverse lookups over the objects held.
    pub fn refs(&self) -> &RefIndex {
        &self.refs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(kind: &str, ns: Option<&str>, name: &str) -> Arc<Value> {
        let mut o = json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": kind, "metadata": {"name": name}});
        if let Some(ns) = ns {
            o["metadata"]["namespace"] = json!(ns);
        }
        Arc::new(o)
    }

    fn names(v: Vec<Arc<Value>>) -> Vec<String> {
        v.iter()
            .map(|o| {
                let m = &o["metadata"];
                format!("{}/{}", m["namespace"].as_str().unwrap_or(""), m["name"].as_str().unwrap())
            })
            .collect()
    }

    #[test]
    fn objects_by_kind_namespace_and_name() {
        let mut s = ClusterStore::default();
        for (ns, n) in [("b", "x"), ("a", "y"), ("a", "x")] {
            assert!(s.put(obj("Credential", Some(ns), n)));
        }
        assert!(s.put(obj("Region", None, "r")));
        assert!(!s.put(Arc::new(json!({"kind": "Credential"}))), "no apiVersion or name: not stored");
        let c = Gvk::credential();
        assert_eq!(names(s.list(&c, None)), ["a/x", "a/y", "b/x"]);
        assert_eq!(names(s.list(&c, Some("a"))), ["a/x", "a/y"]);
        assert!(s.list(&c, Some("z")).is_empty());
        assert!(s.get(&c, Some("b"), "x").is_some() && s.get(&c, Some("b"), "y").is_none());
        assert!(s.get(&Gvk::region(), Some(""), "r").is_some(), "an empty namespace is cluster scope");
        assert_eq!(s.len(), 4);
        s.put(obj("Credential", Some("a"), "x"));
        assert_eq!(s.len(), 4, "replaced, not added");
        assert!(s.remove(&c, Some("a"), "x").is_some() && s.remove(&c, Some("a"), "x").is_none());
        assert_eq!(names(s.all()), ["a/y", "b/x", "/r"]);
        s.replace_kind("k0rdent.mirantis.com", "Credential", [obj("Credential", Some("c"), "z")]);
        assert_eq!((names(s.list(&c, None)), s.len()), (vec!["c/z".to_string()], 2));
    }

    #[test]
    fn served_and_scope_from_crds() {
        let crd = Arc::new(json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "xs.g"},
            "spec": {"group": "g", "scope": "Cluster", "names": {"kind": "X", "plural": "xs"},
                     "versions": [{"name": "v1", "served": true}, {"name": "v0", "served": false}]}}));
        let mut s = ClusterStore::default();
        let x1 = Gvk::new("g", "v1", "X");
        assert_eq!(s.served(&Gvk::secret()), Served::Yes);
        s.put(crd.clone());
        assert_eq!((s.served(&x1), s.namespaced(&x1)), (Served::Unknown, Some(false)), "not complete yet");
        s.set_crds_complete(true);
        assert_eq!(s.served(&x1), Served::Yes);
        assert_eq!(s.served(&Gvk::new("g", "v0", "X")), Served::No);
        s.remove(&Gvk::crd(), None, "xs.g");
        assert_eq!((s.served(&x1), s.namespaced(&x1)), (Served::No, None));
        s.set_crds_complete(false);
        s.replace_kind("apiextensions.k8s.io", "CustomResourceDefinition", [crd]);
        assert!(s.crds_complete(), "a CRD relist is the whole set");
        assert_eq!(s.served(&x1), Served::Yes);
    }
}
