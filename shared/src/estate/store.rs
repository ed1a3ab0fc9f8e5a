//! The objects of one cluster and the lookups every estate answers from them: by key, by kind and
//! namespace, which kinds the cluster's CRDs serve (and their scope), and the reverse lookups of
//! [`RefIndex`]. [`super::MemoryEstate`] (offline files) and the webhook's live index keep one
//! [`ClusterStore`] per cluster, so this code exists once.
//!
//! Layout: objects are grouped by kind, then namespace, then name, so a key costs one name string
//! (group, kind and namespace are stored once per kind or namespace, not once per object), and a
//! lookup borrows the caller's strings instead of building a key. How each object is held (parsed,
//! or packed as JSON text) is [`Held`]'s rule.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use super::trim::{Shape, shape_of};
use super::{RefIndex, Served};
use crate::gvk::{Gvk, builtin_scope};

/// One object as a store holds it.
///
/// A parsed `Value` costs about ten times its JSON text: every map is a B-tree node of 640 bytes,
/// so a Credential of 700 bytes of text takes 6.2 KB parsed. Kinds that come one or more per
/// Credential (Credentials, ClusterDeployments, Secrets, identity objects) are therefore held
/// packed, as their compact JSON text, and parsed when a rule reads one; the admission hot path
/// reads them only for their existence ([`ClusterStore::contains`]), or one at a time. The kinds it
/// reads whole on every review (Regions, ProviderInterfaces, CRDs, Management, Release) stay parsed
/// and are shared, not copied, when read.
#[derive(Debug, Clone)]
pub(crate) enum Held {
    Parsed(Arc<Value>),
    Packed(Arc<str>),
}

/// Whether objects of `group`/`kind` are held packed (see [`Held`]).
pub fn held_packed(group: &str, kind: &str) -> bool {
    match shape_of(group, kind) {
        Shape::SecretKeys | Shape::Meta => true,
        Shape::Common => matches!(kind, "Credential" | "ClusterDeployment"),
        Shape::Crd => false,
    }
}

impl Held {
    fn new(group: &str, kind: &str, obj: Arc<Value>) -> Held {
        if !held_packed(group, kind) {
            return Held::Parsed(obj);
        }
        // A `Value` always serialises (its map keys are strings); should it not, it stays parsed.
        match serde_json::to_string(&*obj) {
            Ok(text) => Held::Packed(text.into()),
            Err(_) => Held::Parsed(obj),
        }
    }

    /// The object, parsed if packed. The text was written from a `Value` by serde_json, so it
    /// reads back; were it ever not to, the object reads as absent rather than as a wrong one.
    pub(crate) fn value(&self) -> Option<Arc<Value>> {
        match self {
            Held::Parsed(v) => Some(Arc::clone(v)),
            Held::Packed(text) => serde_json::from_str(text).ok().map(Arc::new),
        }
    }
}

/// Objects of one group+kind: namespace (`""` for cluster-scoped) -> name -> object.
#[derive(Debug, Default, Clone)]
struct KindObjects {
    group: String,
    kind: String,
    by_namespace: BTreeMap<String, BTreeMap<String, Held>>,
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
        // The reverse lookups file the object by fields read here, before it is packed.
        let slots = RefIndex::slots(&gvk.group, &gvk.kind, ns.as_deref(), &obj);
        let held = Held::new(&gvk.group, &gvk.kind, obj);
        let objects = self.kind_mut(&gvk.group, &gvk.kind);
        let slot = objects.by_namespace.entry(ns.clone().unwrap_or_default()).or_default();
        let old = slot.insert(name.clone(), held.clone());
        if let Some(old) = &old {
            self.unfile(&gvk.group, &gvk.kind, ns.as_deref(), &name, old);
        } else {
            self.len += 1;
        }
        self.refs.add(slots, ns.as_deref(), &name, &held);
        true
    }

    /// Takes a stored object out of the reverse lookups (its stored fields say where it is filed).
    fn unfile(&mut self, group: &str, kind: &str, namespace: Option<&str>, name: &str, old: &Held) {
        if !RefIndex::files(group, kind) {
            return;
        }
        if let Some(old) = old.value() {
            self.refs.remove(RefIndex::slots(group, kind, namespace, &old), namespace, name);
        }
    }

    /// Removes an object; returns whether it was there.
    pub fn remove(&mut self, gvk: &Gvk, namespace: Option<&str>, name: &str) -> bool {
        self.take(gvk, namespace, name).is_some()
    }

    fn take(&mut self, gvk: &Gvk, namespace: Option<&str>, name: &str) -> Option<Held> {
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
        self.unfile(&gvk.group, &gvk.kind, namespace, name, &old);
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

    fn held(&self, gvk: &Gvk, namespace: Option<&str>, name: &str) -> Option<&Held> {
        let ns = namespace.filter(|s| !s.is_empty()).unwrap_or_default();
        self.kind(&gvk.group, &gvk.kind)?.by_namespace.get(ns)?.get(name)
    }

    /// One object by group+kind (the version is ignored), namespace and name.
    pub fn get(&self, gvk: &Gvk, namespace: Option<&str>, name: &str) -> Option<Arc<Value>> {
        self.held(gvk, namespace, name)?.value()
    }

    /// Whether [`ClusterStore::get`] would find the object, without reading it.
    pub fn contains(&self, gvk: &Gvk, namespace: Option<&str>, name: &str) -> bool {
        self.held(gvk, namespace, name).is_some()
    }

    /// Objects of a group+kind in one namespace or (`None`) all, ordered by namespace/name.
    pub fn list(&self, gvk: &Gvk, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let Some(objects) = self.kind(&gvk.group, &gvk.kind) else { return Vec::new() };
        match namespace {
            Some(ns) => {
                objects.by_namespace.get(ns).map(|m| m.values().filter_map(Held::value).collect()).unwrap_or_default()
            }
            None => objects.by_namespace.values().flat_map(|m| m.values().filter_map(Held::value)).collect(),
        }
    }

    /// How many objects [`ClusterStore::list`] would return, without reading them.
    pub fn count(&self, gvk: &Gvk, namespace: Option<&str>) -> usize {
        let Some(objects) = self.kind(&gvk.group, &gvk.kind) else { return 0 };
        match namespace {
            Some(ns) => objects.by_namespace.get(ns).map_or(0, BTreeMap::len),
            None => objects.by_namespace.values().map(BTreeMap::len).sum(),
        }
    }

    /// Every object, by group, kind, namespace and name.
    pub fn all(&self) -> Vec<Arc<Value>> {
        let mut kinds: Vec<&KindObjects> = self.kinds.iter().collect();
        kinds.sort_by(|a, b| (&a.group, &a.kind).cmp(&(&b.group, &b.kind)));
        kinds
            .into_iter()
            .flat_map(|k| k.by_namespace.values().flat_map(|m| m.values().filter_map(Held::value)))
            .collect()
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
        assert_eq!((s.count(&c, None), s.count(&c, Some("a")), s.count(&c, Some("z"))), (3, 2, 0));
        assert!(s.get(&c, Some("b"), "x").is_some() && s.get(&c, Some("b"), "y").is_none());
        assert!(s.get(&Gvk::region(), Some(""), "r").is_some(), "an empty namespace is cluster scope");
        assert_eq!(s.len(), 4);
        s.put(obj("Credential", Some("a"), "x"));
        assert_eq!(s.len(), 4, "replaced, not added");
        assert!(s.remove(&c, Some("a"), "x") && !s.remove(&c, Some("a"), "x"));
        assert_eq!(names(s.all()), ["a/y", "b/x", "/r"]);
        s.replace_kind("k0rdent.mirantis.com", "Credential", [obj("Credential", Some("c"), "z")]);
        assert_eq!((names(s.list(&c, None)), s.len()), (vec!["c/z".to_string()], 2));
    }

    #[test]
    fn bulk_kinds_are_held_packed_and_read_back_equal() {
        let cred = json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Credential",
            "metadata": {"name": "c", "namespace": "n", "labels": {"a": "b"}},
            "spec": {"region": "r", "identityRef": {"apiVersion": "v1", "kind": "Secret", "name": "s"}},
            "status": {"ready": true, "conditions": [{"type": "Ready", "status": "True", "observedGeneration": 2}]}});
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
            "data": {"k": ""}});
        let identity = json!({"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2",
            "kind": "AWSClusterStaticIdentity", "metadata": {"name": "id"}});
        let region = Arc::new(json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Region",
            "metadata": {"name": "r"}}));
        let mut s = ClusterStore::default();
        for o in [&cred, &secret, &identity] {
            assert!(s.put(Arc::new(o.clone())));
        }
        s.put(Arc::clone(&region));
        let held = |gvk: &Gvk, ns: Option<&str>, name: &str| s.held(gvk, ns, name).cloned();
        let id_gvk = Gvk::new("infrastructure.cluster.x-k8s.io", "v1beta2", "AWSClusterStaticIdentity");
        for (gvk, ns, name, want) in [
            (Gvk::credential(), Some("n"), "c", &cred),
            (Gvk::secret(), Some("n"), "s", &secret),
            (id_gvk, None, "id", &identity),
        ] {
            assert!(matches!(held(&gvk, ns, name), Some(Held::Packed(_))), "{} is held packed", gvk.kind);
            assert_eq!(s.get(&gvk, ns, name).as_deref(), Some(want), "{} reads back equal", gvk.kind);
            assert!(s.contains(&gvk, ns, name) && !s.contains(&gvk, ns, "other"));
        }
        assert!(matches!(held(&Gvk::region(), None, "r"), Some(Held::Parsed(_))));
        let read = s.get(&Gvk::region(), None, "r").expect("stored");
        assert!(Arc::ptr_eq(&read, &region), "a parsed kind is shared when read, not copied");
        // The reverse lookups hold the packed form too, and answer with the object.
        assert_eq!(s.refs().credentials_in_region("r"), [("n".to_string(), "c".to_string())]);
        let by_identity = s.refs().credentials_using_identity_kind("v1", "Secret");
        assert_eq!(by_identity.first().map(|c| &**c), Some(&cred));
        s.put(Arc::new(json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Credential",
            "metadata": {"name": "c", "namespace": "n"}, "spec": {"region": "r2"}})));
        assert!(s.refs().credentials_in_region("r").is_empty(), "the packed old version was unfiled");
        assert_eq!(s.refs().credentials_in_region("r2").len(), 1);
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
