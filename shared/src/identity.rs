//! Identity graph resolution and distribution plans.
//!
//! Resolves a Credential's identity object and everything it references (through the target
//! cluster's ProviderInterface, transitively, with cycle detection and a depth bound) into a
//! [`Plan`]: which objects are copied from the management cluster to which cluster/namespace,
//! with sanitised metadata. The webhook's distributor and `kubectl credential plan` both use it.
//!
//! Deliberate differences from KCM (see the docs, "KCM bugs we do not reproduce"): the source
//! identity is read at `identityRef.namespace`; each reference has its own namespace (no leaking
//! between references); references are followed transitively; all annotations are stripped;
//! ownership is an annotation, so names of any length work. Where copies go is KCM's rule.
//!
//! # Semantics
//!
//! - **Gate** (as KCM): a Credential with a non-empty `spec.region` distributes into that Region's
//!   cluster; one labelled `k0rdent.mirantis.com/managed: "true"` (an AccessManagement copy)
//!   distributes inside the management cluster; any other Credential gets no plan
//!   (`target_cluster: None`). [`plan_for_target`] skips the gate, for `explain`.
//! - **ProviderInterface**: the target cluster's PIs, by name; the first entry whose
//!   group/version/kind equals the identityRef's wins. A kind-only match is recorded in
//!   [`PlanProblem::NoProviderInterface`] so messages can name the version mismatch.
//! - **Source identity** (management cluster): a namespaced kind is read at
//!   `identityRef.namespace` (the Credential's namespace when empty); a cluster-scoped kind by
//!   name. When the scope is unknown (no CRD known), the namespaced location is tried first, then
//!   cluster-scoped. A *managed* Credential's identityRef namespace was rewritten by
//!   AccessManagement to the copy's namespace while the identity stays in the system namespace,
//!   so for managed Credentials the system namespace is tried after `identityRef.namespace`.
//! - **References**: for each `references[]` entry of the matching PI entry, the name is the
//!   non-empty string at `nameFieldPath`; the namespace is the non-empty string at
//!   `namespaceFieldPath` when that path is set (a missing value is a
//!   [`PlanProblem::PathNotResolved`], never silently empty), else the system namespace, decided
//!   per reference. A cluster-scoped reference kind has no namespace. When a referenced GVK is
//!   itself an identity of the same PI, its references are followed too, up to [`MAX_DEPTH`],
//!   with cycles reported as [`PlanProblem::Cycle`].
//! - **Targets** (KCM's rule, where the consumers read them; one rule for the distributor,
//!   `plan` and `explain`): a namespaced identity goes into the Credential's namespace
//!   (ClusterDeployments of that namespace read it there: an AccessManagement copy in a tenant
//!   namespace gets its identity in that namespace); a reference found through a
//!   `namespaceFieldPath` goes into the Credential's namespace too, and that field of the
//!   referencing copy is rewritten to point at it; a reference without one keeps its place (the
//!   system namespace); cluster-scoped objects keep their name. Objects whose target is their own
//!   source are not copies: they are listed in [`Plan::in_place`], never in [`Plan::copies`], so
//!   the distributor can never overwrite an original.
//! - **Order**: references before the objects that reference them (post-order), each object once.
//!
//! Messages name objects, field paths and the fix; they never contain Secret data (values read
//! through field paths are names and namespaces only, and sanitised copies are not printed).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::estate::{Cluster, Estate};
use crate::fieldpath::FieldPath;
use crate::gvk::Gvk;
use crate::model::{self, ClusterIdentity, Credential, ProviderInterface, labels};

/// Most references followed from an identity before the plan gives up.
pub const MAX_DEPTH: usize = 8;

/// Identifies one object in one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectKey {
    pub gvk: Gvk,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    pub fn new(gvk: Gvk, namespace: Option<String>, name: impl Into<String>) -> Self {
        ObjectKey { gvk, namespace: namespace.filter(|n| !n.is_empty()), name: name.into() }
    }

    /// `namespace/name`, or `name` when cluster-scoped.
    pub fn namespaced_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

impl fmt::Display for ObjectKey {
    /// `Kind namespace/name` (the group is left to messages that need it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.gvk.kind, self.namespaced_name())
    }
}

/// How a copy was reached from its parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Via {
    pub parent: ObjectKey,
    pub name_field_path: String,
    pub namespace_field_path: Option<String>,
}

/// One object the distribution copies.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedCopy {
    /// Where it is read (always in the management cluster).
    pub source: ObjectKey,
    /// Where it is written (in `Plan::target_cluster`).
    pub target: ObjectKey,
    /// `None` for the identity itself.
    pub via: Option<Via>,
    /// 0 for the identity, 1 for its references, ...
    pub depth: usize,
    /// The sanitised object to apply; `None` when the source object is missing.
    pub object: Option<Value>,
}

/// Why (part of) a plan cannot be carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum PlanProblem {
    /// The Credential object itself cannot be read (a field of the wrong type).
    InvalidCredential { detail: String },
    /// `spec.identityRef` lacks apiVersion, kind or name.
    IncompleteIdentityRef { missing: Vec<String> },
    /// No ProviderInterface of the target cluster declares the identity GVK exactly.
    NoProviderInterface { identity: Gvk, kind_only_match: Option<(String, Gvk)> },
    /// The target cluster is unknown to the estate (cannot read its ProviderInterfaces).
    TargetUnknown,
    /// A source object is missing in the management cluster.
    SourceMissing { key: ObjectKey },
    /// A reference path does not resolve to a non-empty string.
    PathNotResolved { object: ObjectKey, path: String, detail: String },
    /// A reference loops back to an object already in the chain.
    Cycle { chain: Vec<ObjectKey> },
    /// References go deeper than [`MAX_DEPTH`].
    TooDeep { at: ObjectKey },
}

impl PlanProblem {
    /// The problem as one sentence with the fix, naming `target` (the plan's target cluster) when
    /// given. Never contains Secret data.
    pub fn message(&self, target: Option<&Cluster>) -> String {
        let cluster = target.map_or_else(|| "the target cluster".to_string(), ToString::to_string);
        match self {
            PlanProblem::InvalidCredential { detail } => {
                format!("the Credential cannot be read ({detail}): fix the field named")
            }
            PlanProblem::IncompleteIdentityRef { missing } => format!(
                "{} {} not set: a Credential must name its ClusterIdentity with apiVersion, kind and name",
                missing.join(", "),
                if missing.len() == 1 { "is" } else { "are" }
            ),
            PlanProblem::NoProviderInterface { identity, kind_only_match: Some((pi, declared)) } => format!(
                "ProviderInterface {pi} in {cluster} declares {} as {}, not {}: identity distribution will not \
                 happen; set spec.identityRef.apiVersion to {} if that is the version the provider serves",
                identity.kind,
                declared.api_version(),
                identity.api_version(),
                declared.api_version()
            ),
            PlanProblem::NoProviderInterface { identity, kind_only_match: None } => format!(
                "no ProviderInterface in {cluster} declares {identity}: identity distribution will not happen; \
                 enable the provider for this identity kind there (the provider's ProviderInterface lists it in \
                 spec.clusterIdentities)"
            ),
            PlanProblem::TargetUnknown => format!(
                "{cluster} is not known (its state could not be read): check that the Region exists, that its \
                 kubeconfig Secret is valid and the regional cluster is reachable (offline: add its objects under \
                 regions/<name>/)"
            ),
            PlanProblem::SourceMissing { key } => format!(
                "{key} ({}) does not exist in the management cluster: create it there, or fix the reference to it",
                key.gvk.api_version()
            ),
            PlanProblem::PathNotResolved { object, path, detail } => {
                format!("{object}: {detail}: set {path} in {object}, or fix the field path in the ProviderInterface")
            }
            PlanProblem::Cycle { chain } => format!(
                "references loop: {}: break the loop in the objects' reference fields",
                chain.iter().map(ToString::to_string).collect::<Vec<_>>().join(" -> ")
            ),
            PlanProblem::TooDeep { at } => format!(
                "references nest deeper than {MAX_DEPTH} levels at {at}: the chain is not followed further; \
                 shorten the chain of identities"
            ),
        }
    }
}

impl fmt::Display for PlanProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message(None))
    }
}

/// What distribution would do for one Credential.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// `namespace/name` of the Credential.
    pub credential: String,
    /// Where copies go (`None` for a Credential that is neither regional nor managed: nothing to do).
    pub target_cluster: Option<Cluster>,
    /// Name of the ProviderInterface whose entry matched.
    pub provider_interface: Option<String>,
    /// In apply order: references before the objects that reference them.
    pub copies: Vec<PlannedCopy>,
    /// Objects of the graph that are already where they must be (target = source in the same
    /// cluster): resolved and checked, never written. Same order rules as `copies`.
    pub in_place: Vec<PlannedCopy>,
    pub problems: Vec<PlanProblem>,
}

impl Plan {
    /// Every problem as a message naming the target cluster.
    pub fn problem_messages(&self) -> Vec<String> {
        self.problems.iter().map(|p| p.message(self.target_cluster.as_ref())).collect()
    }

    /// The whole graph (copies and in-place objects), for display.
    pub fn objects(&self) -> impl Iterator<Item = &PlannedCopy> {
        self.in_place.iter().chain(self.copies.iter())
    }

    /// The plan safe to print: every value under `data`/`stringData` of every planned object
    /// (copies and in-place objects, whatever their kind) becomes [`REDACTED`]; keys stay.
    /// Every caller that shows a plan uses this, so none can forget the in-place Secrets.
    pub fn redacted(&self) -> Plan {
        let mut plan = self.clone();
        for copy in plan.copies.iter_mut().chain(plan.in_place.iter_mut()) {
            if let Some(obj) = copy.object.as_mut() {
                redact_values(obj);
            }
        }
        plan
    }
}

/// What [`Plan::redacted`] puts in place of a Secret value.
pub const REDACTED: &str = "<redacted>";

/// Replaces every value under the top-level `data`/`stringData` of `obj` with [`REDACTED`]
/// (a non-map field is replaced whole).
pub fn redact_values(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else { return };
    for field in ["data", "stringData"] {
        match map.get_mut(field) {
            Some(Value::Object(values)) => values.values_mut().for_each(|v| *v = Value::String(REDACTED.into())),
            Some(Value::Null) | None => {}
            Some(other) => *other = Value::String(REDACTED.into()),
        }
    }
}

impl Serialize for Cluster {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cluster::Management => s.serialize_str("management"),
            Cluster::Region(r) => s.serialize_str(r),
        }
    }
}

/// Where a Credential's identity is distributed, by KCM's gate: its Region's cluster when
/// `spec.region` is set, the management cluster when it carries `k0rdent.mirantis.com/managed:
/// "true"`, else nowhere.
pub fn target_of(credential: &Value) -> Option<Cluster> {
    if let Some(region) = credential.pointer("/spec/region").and_then(Value::as_str).filter(|r| !r.is_empty()) {
        return Some(Cluster::Region(region.to_string()));
    }
    is_managed(credential).then_some(Cluster::Management)
}

/// Whether an object carries `k0rdent.mirantis.com/managed: "true"`.
pub fn is_managed(obj: &Value) -> bool {
    obj.pointer("/metadata/labels").and_then(|l| l.get(labels::MANAGED)).and_then(Value::as_str) == Some("true")
}

/// Builds the distribution plan for a Credential object.
pub fn plan(credential: &Value, estate: &dyn Estate) -> Plan {
    match target_of(credential) {
        Some(target) => plan_for_target(credential, estate, target),
        None => empty_plan(credential, None),
    }
}

/// Resolves the identity graph as if the Credential distributed into `target`, whatever its gate
/// says (`explain` uses it for plain management Credentials: everything is then in place).
pub fn plan_for_target(credential: &Value, estate: &dyn Estate, target: Cluster) -> Plan {
    let mut plan = empty_plan(credential, Some(target.clone()));
    let cred: Credential = match model::from_value("Credential", credential) {
        Ok(c) => c,
        Err(e) => {
            plan.problems.push(PlanProblem::InvalidCredential { detail: e.source.to_string() });
            return plan;
        }
    };
    let cred_ns = cred.metadata.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".into());
    let cred_name = cred.metadata.name.clone().unwrap_or_default();

    // identityRef shape.
    let iref = cred.identity_ref().cloned().unwrap_or_default();
    let present = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    let missing: Vec<String> = [("apiVersion", &iref.api_version), ("kind", &iref.kind), ("name", &iref.name)]
        .iter()
        .filter(|(_, v)| !present(v))
        .map(|(f, _)| format!("spec.identityRef.{f}"))
        .collect();
    let (Some(identity_gvk), Some(identity_name), true) = (iref.gvk(), iref.name.clone(), missing.is_empty()) else {
        plan.problems.push(PlanProblem::IncompleteIdentityRef { missing });
        return plan;
    };

    if !estate.knows_cluster(&target) {
        plan.problems.push(PlanProblem::TargetUnknown);
        return plan;
    }

    // The target cluster's ProviderInterfaces, by name; first exact match wins.
    let pis: Vec<(String, ProviderInterface)> = sorted_pis(estate, &target);
    let matched = pis
        .iter()
        .find_map(|(name, pi)| pi.identities().iter().find(|ci| ci.gvk() == identity_gvk).map(|_| (name.clone(), pi)));
    let Some((pi_name, pi)) = matched else {
        let kind_only_match = pis.iter().find_map(|(name, pi)| {
            pi.identities().iter().find(|ci| ci.kind == identity_gvk.kind).map(|ci| (name.clone(), ci.gvk()))
        });
        plan.problems.push(PlanProblem::NoProviderInterface { identity: identity_gvk, kind_only_match });
        return plan;
    };
    plan.provider_interface = Some(pi_name);

    let managed = is_managed(credential);
    let mut walker = Walker {
        estate,
        target: &target,
        credential_ns: cred_ns.clone(),
        identities: pi.identities(),
        system_ns: estate.system_namespace().to_string(),
        owners: vec![format!("{cred_ns}/{cred_name}")],
        visited: BTreeSet::new(),
        plan: &mut plan,
    };

    // The source identity, and where its copy goes.
    let identity_ns = iref.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| cred_ns.clone());
    let mut candidates = match walker.scope(&identity_gvk) {
        Some(false) => vec![None],
        Some(true) => vec![Some(identity_ns.clone())],
        None => vec![Some(identity_ns.clone()), None],
    };
    if managed && walker.scope(&identity_gvk) != Some(false) && identity_ns != walker.system_ns {
        // AccessManagement rewrote identityRef.namespace; the original lives in the system namespace.
        candidates.insert(1, Some(walker.system_ns.clone()));
    }
    let (source_key, source) = walker.find(&identity_gvk, &candidates, &identity_name);
    let target_key = walker.target_of(&source_key);
    walker.visit(source_key, target_key, source, None, 0, &mut Vec::new());
    plan
}

fn empty_plan(credential: &Value, target_cluster: Option<Cluster>) -> Plan {
    Plan {
        credential: model::display_name(credential),
        target_cluster,
        provider_interface: None,
        copies: Vec::new(),
        in_place: Vec::new(),
        problems: Vec::new(),
    }
}

/// ProviderInterfaces of a cluster sorted by name; unreadable ones are skipped (the PI rules
/// report them).
fn sorted_pis(estate: &dyn Estate, cluster: &Cluster) -> Vec<(String, ProviderInterface)> {
    let mut pis: Vec<(String, ProviderInterface)> = estate
        .list(cluster, &Gvk::provider_interface(), None)
        .iter()
        .filter_map(|v| {
            let pi: ProviderInterface = model::from_value("ProviderInterface", v).ok()?;
            Some((pi.metadata.name.clone().unwrap_or_default(), pi))
        })
        .collect();
    pis.sort_by(|a, b| a.0.cmp(&b.0));
    pis
}

struct Walker<'a> {
    estate: &'a dyn Estate,
    target: &'a Cluster,
    /// Where namespaced copies go (the Credential's namespace).
    credential_ns: String,
    /// The matching PI's identity entries: a reference of one of these kinds is followed.
    identities: &'a [ClusterIdentity],
    system_ns: String,
    owners: Vec<String>,
    /// Source keys already planned (dedupe; a diamond is copied once).
    visited: BTreeSet<ObjectKey>,
    plan: &'a mut Plan,
}

impl Walker<'_> {
    /// Scope of a kind: the management cluster's answer, else the target's.
    fn scope(&self, gvk: &Gvk) -> Option<bool> {
        self.estate.namespaced(&Cluster::Management, gvk).or_else(|| self.estate.namespaced(self.target, gvk))
    }

    /// The first candidate location holding the object; the first candidate when none does.
    fn find(&self, gvk: &Gvk, candidates: &[Option<String>], name: &str) -> (ObjectKey, Option<Arc<Value>>) {
        for ns in candidates {
            if let Some(obj) = self.estate.get(&Cluster::Management, gvk, ns.as_deref(), name) {
                return (ObjectKey::new(gvk.clone(), ns.clone(), name), Some(obj));
            }
        }
        (ObjectKey::new(gvk.clone(), candidates.first().cloned().flatten(), name), None)
    }

    /// Plans `source` (already read) and, first, everything it references. `chain` holds the
    /// source keys from the identity down to `source`'s parent.
    fn visit(
        &mut self,
        source_key: ObjectKey,
        target_key: ObjectKey,
        source: Option<Arc<Value>>,
        via: Option<Via>,
        depth: usize,
        chain: &mut Vec<ObjectKey>,
    ) {
        if !self.visited.insert(source_key.clone()) {
            return;
        }
        let Some(obj) = source else {
            self.plan.problems.push(PlanProblem::SourceMissing { key: source_key.clone() });
            self.push(PlannedCopy { source: source_key, target: target_key, via, depth, object: None });
            return;
        };
        chain.push(source_key.clone());
        let entry = self.identities.iter().find(|ci| ci.gvk() == source_key.gvk);
        let mut rewrites = Vec::new();
        for reference in entry.map(|e| e.references.as_slice()).unwrap_or_default() {
            rewrites.extend(self.follow(&source_key, &obj, reference, depth + 1, chain));
        }
        chain.pop();
        let mut copy = self.copy_of(&obj, &target_key);
        // The copy points at its references where they were copied to.
        for (path, namespace) in rewrites {
            if let Ok(p) = FieldPath::parse(&path) {
                let _ = p.set(&mut copy, Value::String(namespace));
            }
        }
        let object = Some(copy);
        self.push(PlannedCopy { source: source_key, target: target_key, via, depth, object });
    }

    /// Where the copy of `source` goes: namespaced objects into the Credential's namespace,
    /// cluster-scoped ones by name.
    fn target_of(&self, source: &ObjectKey) -> ObjectKey {
        match &source.namespace {
            Some(_) => ObjectKey::new(source.gvk.clone(), Some(self.credential_ns.clone()), &source.name),
            None => source.clone(),
        }
    }

    /// Resolves one `references[]` entry of `parent` and visits what it names. Returns the
    /// rewrite of the parent's copy (namespace field path, new namespace) when the reference
    /// moves into the Credential's namespace.
    fn follow(
        &mut self,
        parent_key: &ObjectKey,
        parent: &Value,
        reference: &model::ClusterIdentityReference,
        depth: usize,
        chain: &mut Vec<ObjectKey>,
    ) -> Option<(String, String)> {
        let gvk = reference.gvk();
        let what = format!("the {} reference", gvk.kind);
        let name = self.resolve(parent_key, parent, &reference.name_field_path, &what, "nameFieldPath")?;
        // The namespace is decided per reference: nothing carries over from a previous one.
        let ns_path = reference.namespace_field_path.clone().filter(|p| !p.is_empty());
        let scope = self.scope(&gvk);
        let namespace = match (&ns_path, scope) {
            (_, Some(false)) => None,
            (Some(path), _) => Some(self.resolve(parent_key, parent, path, &what, "namespaceFieldPath")?),
            (None, _) => Some(self.system_ns.clone()),
        };
        let candidates = match scope {
            None => vec![namespace.clone(), None],
            Some(_) => vec![namespace.clone()],
        };
        let (key, obj) = self.find(&gvk, &candidates, &name);
        if let Some(at) = chain.iter().position(|k| *k == key) {
            let mut cycle = chain[at..].to_vec();
            cycle.push(key);
            self.plan.problems.push(PlanProblem::Cycle { chain: cycle });
            return None;
        }
        if depth > MAX_DEPTH {
            self.plan.problems.push(PlanProblem::TooDeep { at: key });
            return None;
        }
        // A reference reached through a namespace field moves with its identity into the
        // Credential's namespace; one without keeps its place (the system namespace).
        let (target, rewrite) = match (&ns_path, &key.namespace) {
            (Some(path), Some(_)) => (self.target_of(&key), Some((path.clone(), self.credential_ns.clone()))),
            _ => (key.clone(), None),
        };
        let via = Via {
            parent: parent_key.clone(),
            name_field_path: reference.name_field_path.clone(),
            namespace_field_path: ns_path,
        };
        self.visit(key, target, obj, Some(via), depth, chain);
        rewrite
    }

    /// The non-empty string at `path` in `object`, or a PathNotResolved problem.
    fn resolve(&mut self, key: &ObjectKey, object: &Value, path: &str, what: &str, field: &str) -> Option<String> {
        let problem = |detail: String| PlanProblem::PathNotResolved {
            object: key.clone(),
            path: path.to_string(),
            detail: format!("{what} ({field} {path:?}) does not resolve: {detail}"),
        };
        let parsed = match FieldPath::parse(path) {
            Ok(p) => p,
            Err(e) => {
                self.plan.problems.push(problem(e.to_string()));
                return None;
            }
        };
        match parsed.get_str(object) {
            Ok(s) => Some(s.to_string()),
            Err(e) => {
                self.plan.problems.push(problem(e.to_string()));
                None
            }
        }
    }

    fn copy_of(&self, source: &Value, target: &ObjectKey) -> Value {
        let mut copy = sanitize(source, &self.owners);
        if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
            match &target.namespace {
                Some(ns) => meta.insert("namespace".into(), Value::String(ns.clone())),
                None => meta.remove("namespace"),
            };
        }
        copy
    }

    fn push(&mut self, copy: PlannedCopy) {
        if *self.target == Cluster::Management && copy.source == copy.target {
            self.plan.in_place.push(copy);
        } else {
            self.plan.copies.push(copy);
        }
    }
}

/// Metadata fields a copy must not carry: server-set state, and links that would cross clusters.
const STRIPPED_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "ownerReferences",
    "finalizers",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generateName",
    // All of them: kubectl's last-applied-configuration holds Secret data in clear text.
    "annotations",
];

/// The object to write as a copy of `source`, owned by `owners` (`namespace/name` of Credentials).
///
/// Strips server-set metadata, `status` and every annotation; keeps the source labels except
/// KCM's per-Credential `k0rdent.mirantis.com/credential.*` keys; adds
/// `k0rdent.mirantis.com/managed: "true"` and the owners annotation (sorted, deduped, one per line).
pub fn sanitize(source: &Value, owners: &[String]) -> Value {
    let mut copy = source.clone();
    let Some(obj) = copy.as_object_mut() else { return copy };
    obj.remove("status");
    let meta = obj.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Some(meta) = meta.as_object_mut() {
        for field in STRIPPED_METADATA {
            meta.remove(*field);
        }
        let kcm_owner_prefix = format!("{}.", labels::CREDENTIAL_PREFIX);
        let mut new_labels: Map<String, Value> = meta
            .get("labels")
            .and_then(Value::as_object)
            .map(|l| l.iter().filter(|(k, _)| !k.starts_with(&kcm_owner_prefix)).map(|(k, v)| (k.clone(), v.clone())))
            .into_iter()
            .flatten()
            .collect();
        new_labels.insert(labels::MANAGED.into(), Value::String("true".into()));
        meta.insert("labels".into(), Value::Object(new_labels));
        let owners = normalise_owners(owners.iter().map(String::as_str));
        if !owners.is_empty() {
            let mut annotations = Map::new();
            annotations.insert(labels::OWNERS_ANNOTATION.into(), Value::String(owners.join("\n")));
            meta.insert("annotations".into(), Value::Object(annotations));
        }
    }
    copy
}

/// The copies a Credential holds in `cluster`, as recorded on the Credential by
/// [`copies_annotation_value`] (empty when the record is missing, unreadable or for another
/// cluster). The record outlives the process that wrote the copies, so a new leader releases what
/// an earlier one wrote.
pub fn recorded_copies(credential: &Value, cluster: &Cluster) -> Vec<ObjectKey> {
    copies_record(credential)
        .filter(|r| r.cluster == cluster_record_name(cluster))
        .map(|r| r.copies)
        .unwrap_or_default()
}

/// The cluster a Credential's copies record names (see [`recorded_copies`]), if it has a readable one:
/// where the copies are when the Credential no longer says (its region removed, say).
pub fn recorded_cluster(credential: &Value) -> Option<Cluster> {
    copies_record(credential).map(|r| match r.cluster.as_str() {
        "" => Cluster::Management,
        region => Cluster::Region(region.to_string()),
    })
}

#[derive(Deserialize)]
struct CopiesRecord {
    cluster: String,
    copies: Vec<ObjectKey>,
}

fn copies_record(credential: &Value) -> Option<CopiesRecord> {
    credential
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(labels::COPIES_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|raw| serde_json::from_str::<CopiesRecord>(raw).ok())
}

/// The record of the copies a Credential holds in `cluster` (see [`recorded_copies`]): names only.
pub fn copies_annotation_value(cluster: &Cluster, copies: &[ObjectKey]) -> String {
    let mut sorted: Vec<&ObjectKey> = copies.iter().collect();
    sorted.sort();
    sorted.dedup();
    serde_json::json!({"cluster": cluster_record_name(cluster), "copies": sorted}).to_string()
}

fn cluster_record_name(cluster: &Cluster) -> String {
    match cluster {
        Cluster::Management => String::new(),
        Cluster::Region(r) => r.clone(),
    }
}

/// The Credentials (`namespace/name`) recorded as owners of a copy, sorted and deduped.
pub fn owners_of(obj: &Value) -> Vec<String> {
    let raw = obj
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(labels::OWNERS_ANNOTATION))
        .and_then(Value::as_str)
        .unwrap_or_default();
    normalise_owners(raw.lines())
}

/// The owners annotation value for a set of owners (sorted, deduped, one per line).
pub fn owners_annotation_value(owners: &[String]) -> String {
    normalise_owners(owners.iter().map(String::as_str)).join("\n")
}

/// `obj` with `owner` added to its owners annotation (other metadata untouched).
pub fn with_owner(obj: &Value, owner: &str) -> Value {
    let mut owners = owners_of(obj);
    owners.push(owner.to_string());
    set_owners(obj, &owners)
}

/// `obj` with `owner` removed from its owners annotation; the annotation goes when it empties
/// (the distributor then deletes the copy if no owner is left: see [`owners_of`]).
pub fn without_owner(obj: &Value, owner: &str) -> Value {
    let owners: Vec<String> = owners_of(obj).into_iter().filter(|o| o != owner.trim()).collect();
    set_owners(obj, &owners)
}

fn set_owners(obj: &Value, owners: &[String]) -> Value {
    let mut out = obj.clone();
    let Some(map) = out.as_object_mut() else { return out };
    let meta = map.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else { return out };
    let annotations = meta.entry("annotations").or_insert_with(|| Value::Object(Map::new()));
    if !annotations.is_object() {
        *annotations = Value::Object(Map::new());
    }
    if let Some(a) = annotations.as_object_mut() {
        let value = owners_annotation_value(owners);
        if value.is_empty() {
            a.remove(labels::OWNERS_ANNOTATION);
        } else {
            a.insert(labels::OWNERS_ANNOTATION.into(), Value::String(value));
        }
        if a.is_empty() {
            meta.remove("annotations");
        }
    }
    out
}

fn normalise_owners<'a>(owners: impl Iterator<Item = &'a str>) -> Vec<String> {
    let set: BTreeSet<String> = owners.map(str::trim).filter(|o| !o.is_empty()).map(str::to_string).collect();
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn copy(ns: &str, object: Value) -> PlannedCopy {
        let key = ObjectKey::new(Gvk::secret(), Some(ns.into()), "s");
        PlannedCopy { source: key.clone(), target: key, via: None, depth: 1, object: Some(object) }
    }

    #[test]
    fn redacted_plan_hides_values_of_copies_and_in_place_objects() {
        let secret = json!({"kind": "Secret", "data": {"a": "c2VjcmV0"}, "stringData": {"b": "plain-secret"}});
        let custom = json!({"kind": "Custom", "data": "c2VjcmV0", "spec": {"keep": "me"}});
        let plan = Plan {
            credential: "ns/c".into(),
            target_cluster: Some(Cluster::Management),
            provider_interface: None,
            copies: vec![copy("a", secret.clone()), copy("b", custom)],
            in_place: vec![copy("kcm-system", secret)],
            problems: Vec::new(),
        };
        let text = serde_json::to_string(&plan.redacted()).unwrap();
        assert!(!text.contains("c2VjcmV0") && !text.contains("plain-secret"), "{text}");
        let r = plan.redacted();
        assert_eq!(r.in_place[0].object.as_ref().unwrap()["data"]["a"], REDACTED);
        assert_eq!(r.copies[0].object.as_ref().unwrap()["stringData"]["b"], REDACTED);
        assert_eq!(r.copies[1].object.as_ref().unwrap()["spec"]["keep"], "me");
        // The original keeps its values: the distributor applies it.
        assert_eq!(plan.in_place[0].object.as_ref().unwrap()["data"]["a"], "c2VjcmV0");
    }
}
