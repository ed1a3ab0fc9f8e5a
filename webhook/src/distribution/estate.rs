//! The estate the planner reads during one reconcile: objects fetched from the API on demand.
//!
//! The planner is a pure, synchronous function, so it cannot fetch. Instead this estate answers
//! from what was fetched so far and records every question it could not answer (an object not
//! fetched yet, a kind whose scope is unknown). The distributor fetches exactly those and plans
//! again, until a plan asks nothing new. Each source object is therefore read once per
//! reconcile, and the number of rounds is bounded by the planner's reference depth.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use credential_core::estate::{Cluster, Estate, Served};
use credential_core::gvk::{Gvk, builtin_scope};
use serde_json::Value;

/// Something the planner asked for that the estate does not know yet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Miss {
    /// An object in the management cluster.
    Object { gvk: Gvk, namespace: Option<String>, name: String },
    /// Whether a kind is namespaced, in a cluster.
    Scope { cluster: Cluster, gvk: Gvk },
}

type ObjKey = (String, String, Option<String>, String); // (group, kind, namespace, name)

fn obj_key(gvk: &Gvk, namespace: Option<&str>, name: &str) -> ObjKey {
    (gvk.group.clone(), gvk.kind.clone(), namespace.filter(|s| !s.is_empty()).map(str::to_string), name.to_string())
}

/// Versions of the management objects one plan read, by object.
#[derive(Debug, Clone, Default)]
pub struct SourceVersions(HashMap<ObjKey, (String, String)>);

impl SourceVersions {
    /// `(uid, resourceVersion)` of a source object, if it was read.
    pub fn get(&self, key: &credential_core::identity::ObjectKey) -> Option<(String, String)> {
        self.0.get(&obj_key(&key.gvk, key.namespace.as_deref(), &key.name)).cloned()
    }
}

/// See the module documentation.
pub struct FetchedEstate {
    system_namespace: String,
    /// The cluster copies go to (its ProviderInterfaces are known).
    target: Cluster,
    /// Management objects fetched so far; `None` = fetched and absent.
    objects: HashMap<ObjKey, Option<Arc<Value>>>,
    /// ProviderInterfaces of the target cluster.
    provider_interfaces: Vec<Arc<Value>>,
    /// (cluster, group, kind) -> namespaced; `None` = the cluster does not serve it.
    scopes: HashMap<(Cluster, String, String), Option<bool>>,
    misses: RefCell<BTreeSet<Miss>>,
}

impl FetchedEstate {
    pub fn new(system_namespace: &str, target: Cluster, provider_interfaces: Vec<Arc<Value>>) -> Self {
        FetchedEstate {
            system_namespace: system_namespace.to_string(),
            target,
            objects: HashMap::new(),
            provider_interfaces,
            scopes: HashMap::new(),
            misses: RefCell::new(BTreeSet::new()),
        }
    }

    /// Records a fetched management object (`None`: it does not exist).
    pub fn put_object(&mut self, gvk: &Gvk, namespace: Option<&str>, name: &str, obj: Option<Arc<Value>>) {
        self.objects.insert(obj_key(gvk, namespace, name), obj);
    }

    /// Records a kind's scope in a cluster (`None`: not served there).
    pub fn put_scope(&mut self, cluster: Cluster, gvk: &Gvk, namespaced: Option<bool>) {
        self.scopes.insert((cluster, gvk.group.clone(), gvk.kind.clone()), namespaced);
    }

    /// What the last plan asked for and could not get; clears the record.
    pub fn take_misses(&self) -> BTreeSet<Miss> {
        std::mem::take(&mut *self.misses.borrow_mut())
    }

    /// `(uid, resourceVersion)` of every management object fetched (the trigger digest's input).
    pub fn versions(&self) -> SourceVersions {
        let field = |o: &Value, p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
        SourceVersions(
            self.objects
                .iter()
                .filter_map(|(k, o)| {
                    let o = o.as_ref()?;
                    Some((k.clone(), (field(o, "/metadata/uid"), field(o, "/metadata/resourceVersion"))))
                })
                .collect(),
        )
    }

    fn miss(&self, m: Miss) {
        self.misses.borrow_mut().insert(m);
    }
}

impl Estate for FetchedEstate {
    fn system_namespace(&self) -> &str {
        &self.system_namespace
    }

    fn knows_cluster(&self, cluster: &Cluster) -> bool {
        *cluster == Cluster::Management || *cluster == self.target
    }

    fn get(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>, name: &str) -> Option<Arc<Value>> {
        if *cluster != Cluster::Management {
            // Only ProviderInterfaces are read from the target, and those are listed.
            return self.list(cluster, gvk, None).into_iter().find(|o| {
                o.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
                    && o.pointer("/metadata/namespace").and_then(Value::as_str).filter(|s| !s.is_empty()) == namespace
            });
        }
        match self.objects.get(&obj_key(gvk, namespace, name)) {
            Some(found) => found.clone(),
            None => {
                self.miss(Miss::Object {
                    gvk: gvk.clone(),
                    namespace: namespace.filter(|s| !s.is_empty()).map(str::to_string),
                    name: name.to_string(),
                });
                None
            }
        }
    }

    fn list(&self, cluster: &Cluster, gvk: &Gvk, namespace: Option<&str>) -> Vec<Arc<Value>> {
        if *cluster == self.target && gvk.same_group_kind(&Gvk::provider_interface()) && namespace.is_none() {
            return self.provider_interfaces.clone();
        }
        Vec::new()
    }

    fn served(&self, cluster: &Cluster, gvk: &Gvk) -> Served {
        if builtin_scope(gvk).is_some() {
            return Served::Yes;
        }
        match self.scopes.get(&(cluster.clone(), gvk.group.clone(), gvk.kind.clone())) {
            Some(Some(_)) => Served::Yes,
            Some(None) => Served::No,
            None => Served::Unknown,
        }
    }

    fn namespaced(&self, cluster: &Cluster, gvk: &Gvk) -> Option<bool> {
        if let Some(ns) = builtin_scope(gvk) {
            return Some(ns);
        }
        match self.scopes.get(&(cluster.clone(), gvk.group.clone(), gvk.kind.clone())) {
            Some(known) => *known,
            None => {
                self.miss(Miss::Scope { cluster: cluster.clone(), gvk: gvk.clone() });
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_misses_and_answers_after_put() {
        let pi = Arc::new(json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "ProviderInterface",
            "metadata": {"name": "aws"}}));
        let mut e = FetchedEstate::new("kcm-system", Cluster::Region("r1".into()), vec![pi]);
        let secret = Gvk::secret();
        let id = Gvk::new("infrastructure.cluster.x-k8s.io", "v1beta2", "AWSClusterStaticIdentity");
        assert!(e.get(&Cluster::Management, &secret, Some("kcm-system"), "s").is_none());
        assert_eq!(e.namespaced(&Cluster::Management, &id), None);
        assert_eq!(e.namespaced(&Cluster::Management, &secret), Some(true), "built-ins need no discovery");
        let misses = e.take_misses();
        assert_eq!(misses.len(), 2, "{misses:?}");
        assert!(e.take_misses().is_empty(), "take clears");

        e.put_object(
            &secret,
            Some("kcm-system"),
            "s",
            Some(Arc::new(json!({"kind": "Secret",
            "metadata": {"uid": "u1", "resourceVersion": "7"}}))),
        );
        let key = credential_core::identity::ObjectKey::new(secret.clone(), Some("kcm-system".into()), "s");
        assert_eq!(e.versions().get(&key), Some(("u1".to_string(), "7".to_string())));
        e.put_scope(Cluster::Management, &id, Some(false));
        assert!(e.get(&Cluster::Management, &secret, Some("kcm-system"), "s").is_some());
        assert_eq!(e.namespaced(&Cluster::Management, &id), Some(false));
        assert_eq!(e.served(&Cluster::Management, &id), Served::Yes);
        // Fetched-and-absent is an answer, not a miss.
        e.put_object(&secret, Some("kcm-system"), "gone", None);
        assert!(e.get(&Cluster::Management, &secret, Some("kcm-system"), "gone").is_none());
        assert!(e.take_misses().is_empty());

        assert_eq!(e.list(&Cluster::Region("r1".into()), &Gvk::provider_interface(), None).len(), 1);
        assert!(e.list(&Cluster::Region("r2".into()), &Gvk::provider_interface(), None).is_empty());
        assert!(e.knows_cluster(&Cluster::Region("r1".into())));
        assert!(!e.knows_cluster(&Cluster::Region("r2".into())));
    }
}
