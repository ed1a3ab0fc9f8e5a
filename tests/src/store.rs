//! Cluster state: objects keyed by (group, resource, namespace, name), one global resourceVersion counter, and
//! a bounded event history that watches resume from. Everything here is synchronous and runs under one mutex.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::resources::{self, CRD_GROUP, CRD_RESOURCE, ResourceDef};

/// Where an object lives. `namespace` is empty for cluster-scoped objects.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub group: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(def: &ResourceDef, namespace: &str, name: &str) -> Self {
        Key {
            group: def.group.clone(),
            resource: def.plural.clone(),
            namespace: if def.namespaced { namespace.to_string() } else { String::new() },
            name: name.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in the history and sent to open watches.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub kind: EventType,
    pub key: Key,
    pub object: Value,
    /// The object before a MODIFIED change, so filtered watches can tell an object entering or leaving
    /// their selection.
    pub previous: Option<Value>,
}

/// Tunables of one emulated cluster.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How many changes are kept for watches that resume from a resourceVersion; older ones answer 410 Gone.
    pub history_limit: usize,
    /// How often an open watch with `allowWatchBookmarks=true` receives a BOOKMARK.
    pub bookmark_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { history_limit: 1000, bookmark_interval: Duration::from_secs(1) }
    }
}

pub struct State {
    pub objects: BTreeMap<Key, Value>,
    pub rv: u64,
    history: VecDeque<Arc<Change>>,
    /// Changes with a resourceVersion at or below this one may be missing from `history`.
    pub compacted: u64,
    history_limit: usize,
    events: broadcast::Sender<Arc<Change>>,
    uid_hasher: RandomState,
}

/// Shared by the HTTP server and the harness; survives a stop/restart of the listener.
pub struct Inner {
    pub state: Mutex<State>,
    pub events: broadcast::Sender<Arc<Change>>,
    pub counts: Mutex<BTreeMap<(String, String), u64>>,
    pub webhook_clients: Mutex<HashMap<String, crate::admission::WebhookClient>>,
    pub settings: Settings,
}

impl Inner {
    pub fn new(settings: Settings) -> Arc<Inner> {
        let (events, _) = broadcast::channel(4096);
        let mut state = State {
            objects: BTreeMap::new(),
            rv: 0,
            history: VecDeque::new(),
            compacted: 0,
            history_limit: settings.history_limit.max(1),
            events: events.clone(),
            uid_hasher: RandomState::new(),
        };
        let ns = resources::builtins().into_iter().find(|d| d.plural == "namespaces" && d.group.is_empty());
        if let Some(ns) = ns {
            for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
                let obj = state.prepare_create(&ns, obj, true);
                state.put(Key::new(&ns, "", name), obj, EventType::Added);
            }
        }
        Arc::new(Inner {
            state: Mutex::new(state),
            events,
            counts: Mutex::new(BTreeMap::new()),
            webhook_clients: Mutex::new(HashMap::new()),
            settings,
        })
    }

    /// Locks the state. A panic while holding the lock cannot leave it half-written (writes are single inserts),
    /// so a poisoned lock is still usable.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn count(&self, verb: &str, resource: &str) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *c.entry((verb.to_string(), resource.to_string())).or_default() += 1;
    }
}

pub fn now() -> String {
    let ts = jiff::Timestamp::now();
    jiff::Timestamp::from_second(ts.as_second()).map(|t| t.to_string()).unwrap_or_else(|_| ts.to_string())
}

pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default()
}

fn finalizers_empty(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers").and_then(Value::as_array).is_none_or(Vec::is_empty)
}

pub fn meta_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let Value::Object(root) = obj else { unreachable!("made an object above") };
    let meta = root.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    match meta {
        Value::Object(m) => m,
        _ => unreachable!("made an object above"),
    }
}

/// Custom resources, CRDs and workload-like built-ins have `metadata.generation`; ConfigMaps, Secrets and
/// Namespaces do not.
fn tracks_generation(def: &ResourceDef) -> bool {
    !def.builtin || (def.status_subresource && def.plural != "namespaces")
}

/// Everything but metadata and status: a change here bumps `metadata.generation`.
fn spec_part(obj: &Value) -> Value {
    match obj {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

impl State {
    /// Built-ins plus the resources of every stored CRD.
    pub fn resources(&self) -> Vec<ResourceDef> {
        let mut out = resources::builtins();
        let first = Key {
            group: CRD_GROUP.into(),
            resource: CRD_RESOURCE.into(),
            namespace: String::new(),
            name: String::new(),
        };
        let crds = self.objects.range(first..).take_while(|(k, _)| k.group == CRD_GROUP && k.resource == CRD_RESOURCE);
        out.extend(crds.filter_map(|(_, crd)| resources::from_crd(crd)));
        out
    }

    pub fn find_resource(&self, group: &str, version: &str, plural: &str) -> Option<ResourceDef> {
        self.resources().into_iter().find(|d| d.group == group && d.plural == plural && d.serves(version))
    }

    /// By `apiVersion` and a kind or plural name (case-insensitive), as the harness API takes them.
    pub fn find_by_kind(&self, api_version: &str, kind_or_plural: &str) -> Option<ResourceDef> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        self.resources().into_iter().find(|d| {
            d.group == group
                && d.serves(version)
                && (d.kind.eq_ignore_ascii_case(kind_or_plural) || d.plural.eq_ignore_ascii_case(kind_or_plural))
        })
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of one resource, optionally in one namespace, in key (namespace, name) order.
    pub fn list(&self, def: &ResourceDef, namespace: Option<&str>) -> Vec<(&Key, &Value)> {
        let lo = Key {
            group: def.group.clone(),
            resource: def.plural.clone(),
            namespace: namespace.unwrap_or_default().to_string(),
            name: String::new(),
        };
        self.objects
            .range(lo..)
            .take_while(|(k, _)| {
                k.group == def.group && k.resource == def.plural && namespace.is_none_or(|ns| k.namespace == ns)
            })
            .collect()
    }

    pub fn new_uid(&mut self) -> String {
        let a = self.uid_hasher.hash_one((self.rv, self.objects.len(), "a"));
        let b = self.uid_hasher.hash_one((self.rv, self.objects.len(), "b"));
        let h = format!("{a:016x}{b:016x}");
        format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
    }

    pub fn random_suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut x = self.uid_hasher.hash_one((self.rv, self.objects.len(), "name"));
        (0..5)
            .map(|_| {
                let c = ALPHABET[(x % ALPHABET.len() as u64) as usize] as char;
                x /= ALPHABET.len() as u64;
                c
            })
            .collect()
    }

    /// Server-set fields of a new object: uid, creationTimestamp, generation, kind-specific defaults.
    /// `keep_status` is true for seeds; API creates drop `.status` of resources with a status subresource.
    pub fn prepare_create(&mut self, def: &ResourceDef, mut obj: Value, keep_status: bool) -> Value {
        let uid = self.new_uid();
        {
            let m = meta_mut(&mut obj);
            m.insert("uid".into(), json!(uid));
            m.insert("creationTimestamp".into(), json!(now()));
            if tracks_generation(def) {
                m.insert("generation".into(), json!(1));
            }
            m.remove("resourceVersion");
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
            m.remove("selfLink");
        }
        if def.status_subresource
            && !def.builtin
            && !keep_status
            && let Value::Object(m) = &mut obj
        {
            m.remove("status");
        }
        self.defaults(def, &mut obj);
        obj
    }

    /// Server-set fields on update: immutable metadata is kept, status follows the subresource rules,
    /// generation moves when the spec does.
    pub fn prepare_update(&mut self, def: &ResourceDef, old: &Value, mut new: Value, status_write: bool) -> Value {
        if status_write {
            // Only .status changes through /status.
            let status = new.get("status").cloned();
            new = old.clone();
            match status {
                Some(s) => new["status"] = s,
                None => {
                    if let Value::Object(m) = &mut new {
                        m.remove("status");
                    }
                }
            }
            if let Some(mf) = old.pointer("/metadata/managedFields") {
                meta_mut(&mut new).insert("managedFields".into(), mf.clone());
            }
        } else if def.status_subresource {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Value::Object(m) = &mut new {
                        m.remove("status");
                    }
                }
            }
        }
        for f in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"] {
            let m = meta_mut(&mut new);
            match old.pointer(&format!("/metadata/{f}")) {
                Some(v) => m.insert(f.into(), v.clone()),
                None => m.remove(f),
            };
        }
        if tracks_generation(def) {
            let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
            let generation = if spec_part(old) != spec_part(&new) { generation + 1 } else { generation };
            meta_mut(&mut new).insert("generation".into(), json!(generation));
        }
        self.defaults(def, &mut new);
        new
    }

    fn defaults(&mut self, def: &ResourceDef, obj: &mut Value) {
        match (def.group.as_str(), def.plural.as_str()) {
            ("", "namespaces") => {
                let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
                let m = meta_mut(obj);
                let labels = m.entry("labels").or_insert_with(|| json!({}));
                if let Value::Object(l) = labels {
                    l.insert("kubernetes.io/metadata.name".into(), json!(name));
                }
                if obj.pointer("/status/phase").is_none() {
                    obj["status"] = json!({"phase": "Active"});
                }
                if obj.pointer("/spec/finalizers").is_none() {
                    obj["spec"] = json!({"finalizers": ["kubernetes"]});
                }
            }
            ("", "secrets") => {
                // stringData is write-only: fold it into data, as the real server does.
                if let Some(Value::Object(sd)) = obj.as_object_mut().and_then(|m| m.remove("stringData")) {
                    use base64::Engine as _;
                    if !obj.get("data").is_some_and(Value::is_object) {
                        obj["data"] = json!({});
                    }
                    for (k, v) in sd {
                        let s = v.as_str().unwrap_or_default();
                        obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(s));
                    }
                }
                if obj.get("type").is_none() {
                    obj["type"] = json!("Opaque");
                }
            }
            (CRD_GROUP, CRD_RESOURCE) => {
                // A CRD is established at once: there is no controller to wait for.
                let names = obj.pointer("/spec/names").cloned().unwrap_or_else(|| json!({}));
                let stored: Vec<Value> = obj
                    .pointer("/spec/versions")
                    .and_then(Value::as_array)
                    .map(|vs| {
                        vs.iter()
                            .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                            .filter_map(|v| v.get("name").cloned())
                            .collect()
                    })
                    .unwrap_or_default();
                let t = now();
                obj["status"] = json!({
                    "acceptedNames": names,
                    "storedVersions": stored,
                    "conditions": [
                        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                         "message": "no conflicts found", "lastTransitionTime": t},
                        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                         "message": "the initial names have been accepted", "lastTransitionTime": t},
                    ],
                });
            }
            _ => {}
        }
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        // No receivers is fine: nobody watches.
        let _ = self.events.send(change);
    }

    /// Forgets the whole event history, as an etcd compaction would: watches from any older
    /// resourceVersion then get 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    /// Changes after `rv`, or `None` when some of them were already compacted away.
    pub fn changes_since(&self, rv: u64) -> Option<Vec<Arc<Change>>> {
        if rv < self.compacted {
            return None;
        }
        Some(self.history.iter().filter(|c| c.rv > rv).cloned().collect())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.events.subscribe()
    }

    /// Stores an object under a new resourceVersion and records the change. An object being deleted
    /// whose finalizers are all gone is removed instead. Returns what was stored (or last seen).
    pub fn put(&mut self, key: Key, mut obj: Value, kind: EventType) -> Value {
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        if obj.pointer("/metadata/deletionTimestamp").is_some() && finalizers_empty(&obj) {
            self.objects.remove(&key);
            self.record(Change {
                rv: self.rv,
                kind: EventType::Deleted,
                key: key.clone(),
                object: obj.clone(),
                previous: None,
            });
            self.after_remove(&key, &obj);
            return obj;
        }
        let previous = self.objects.insert(key.clone(), obj.clone());
        self.record(Change { rv: self.rv, kind, key, object: obj.clone(), previous });
        obj
    }

    /// Deletes an object, honouring finalizers: with finalizers it only gets a deletionTimestamp.
    /// Returns the object as last stored, and whether it is gone.
    pub fn delete(&mut self, key: &Key) -> Option<(Value, bool)> {
        let mut obj = self.objects.get(key)?.clone();
        let is_namespace = key.group.is_empty() && key.resource == "namespaces";
        if finalizers_empty(&obj) && !is_namespace {
            self.objects.remove(key);
            self.rv += 1;
            meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
            self.record(Change {
                rv: self.rv,
                kind: EventType::Deleted,
                key: key.clone(),
                object: obj.clone(),
                previous: None,
            });
            self.after_remove(key, &obj);
            return Some((obj, true));
        }
        if obj.pointer("/metadata/deletionTimestamp").is_none() {
            let m = meta_mut(&mut obj);
            m.insert("deletionTimestamp".into(), json!(now()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            if is_namespace {
                obj["status"] = json!({"phase": "Terminating"});
            }
            obj = self.put(key.clone(), obj, EventType::Modified);
        }
        if is_namespace {
            // The namespace controller's job, done at once: delete everything inside, then the namespace.
            let inside: Vec<Key> = self.objects.keys().filter(|k| k.namespace == key.name).cloned().collect();
            for k in inside {
                self.delete(&k);
            }
            return Some(self.finish_namespace(&key.name).map(|o| (o, true)).unwrap_or((obj, false)));
        }
        Some((obj, false))
    }

    fn after_remove(&mut self, key: &Key, removed: &Value) {
        if key.group == CRD_GROUP && key.resource == CRD_RESOURCE {
            // The CRD is gone: so are its custom resources.
            if let (Some(g), Some(p)) = (
                removed.pointer("/spec/group").and_then(Value::as_str),
                removed.pointer("/spec/names/plural").and_then(Value::as_str),
            ) {
                let def = (g.to_string(), p.to_string());
                let gone: Vec<Key> =
                    self.objects.keys().filter(|k| k.group == def.0 && k.resource == def.1).cloned().collect();
                for k in gone {
                    if let Some(mut obj) = self.objects.remove(&k) {
                        self.rv += 1;
                        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
                        self.record(Change {
                            rv: self.rv,
                            kind: EventType::Deleted,
                            key: k,
                            object: obj,
                            previous: None,
                        });
                    }
                }
            }
        }
        if !key.namespace.is_empty() {
            self.finish_namespace(&key.namespace.clone());
        }
    }

    /// Removes a terminating namespace once it is empty.
    fn finish_namespace(&mut self, ns: &str) -> Option<Value> {
        let nskey =
            Key { group: String::new(), resource: "namespaces".into(), namespace: String::new(), name: ns.into() };
        let terminating = self.objects.get(&nskey)?.pointer("/metadata/deletionTimestamp").is_some();
        if !terminating || self.objects.keys().any(|k| k.namespace == ns) {
            return None;
        }
        let mut obj = self.objects.remove(&nskey)?;
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.record(Change { rv: self.rv, kind: EventType::Deleted, key: nskey, object: obj.clone(), previous: None });
        Some(obj)
    }

    /// `Ok` when objects may be created in `ns`.
    pub fn check_namespace(&self, def: &ResourceDef, ns: &str, name: &str) -> Result<(), ApiError> {
        if !def.namespaced {
            return Ok(());
        }
        let nskey =
            Key { group: String::new(), resource: "namespaces".into(), namespace: String::new(), name: ns.into() };
        match self.objects.get(&nskey) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being \
                     terminated",
                    crate::error::qualified(&def.group, &def.plural)
                ),
            )
            .with_details(name, &def.group, &def.plural)),
            Some(_) => Ok(()),
        }
    }

    pub fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        let nskey =
            Key { group: String::new(), resource: "namespaces".into(), namespace: String::new(), name: ns.into() };
        self.objects.get(&nskey).map(labels_of).unwrap_or_default()
    }
}
