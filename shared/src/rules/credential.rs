//! Admission rules for `Credential`.
//!
//! KCM has no Credential webhook (only a CRD schema and a CEL rule with holes), so everything here
//! is ours; see `shared/RULES.md` for the codes. On UPDATE only changes are judged: a Credential
//! whose spec did not change is never denied, so KCM's own controller (finalizers, labels) and
//! deletion keep working even when the estate around a Credential went bad.

use serde_json::Value;

use crate::estate::{Cluster, Estate, Served};
use crate::finding::Finding;
use crate::gvk::Gvk;
use crate::model::{Credential, ObjectReference, labels};
use crate::rules::codes::*;
use crate::rules::support::{count, is_deleting, name_list, object_of, pointer, str_at};
use crate::rules::{AdmissionInput, AdmittedObject, Operation};

/// KCM's limit on the name part of a label key (`credential.<namespace>.<name>`).
pub const LABEL_NAME_MAX: usize = 63;

pub fn validate(input: &AdmissionInput<'_>, estate: &dyn Estate) -> Vec<Finding> {
    match input.operation {
        Operation::Create | Operation::Update => validate_write(input, estate),
        Operation::Delete => validate_delete(input, estate),
        Operation::Connect => Vec::new(),
    }
}

/// How a ProviderInterface of a cluster matches an identity GVK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PiMatch {
    /// The named ProviderInterface declares exactly this group/version/kind (the first such wins).
    Exact(String),
    /// No exact match; the named ProviderInterface declares the kind at `declared` (another apiVersion).
    KindOnly {
        provider_interface: String,
        declared: Gvk,
    },
    None,
}

/// Which ProviderInterface of `cluster` declares `identity`, in name order (KCM's first-match-wins).
pub fn match_provider_interface(estate: &dyn Estate, cluster: &Cluster, identity: &Gvk) -> PiMatch {
    let mut kind_only = None;
    for pi in estate.list(cluster, &Gvk::provider_interface(), None) {
        let name = str_at(&pi, "/metadata/name").unwrap_or_default();
        let entries = pointer(&pi, "/spec/clusterIdentities").and_then(Value::as_array);
        for entry in entries.into_iter().flatten() {
            let field = |k: &str| entry.get(k).and_then(Value::as_str).unwrap_or_default();
            if field("kind") != identity.kind {
                continue;
            }
            if field("group") == identity.group && field("version") == identity.version {
                return PiMatch::Exact(name.to_string());
            }
            if kind_only.is_none() {
                kind_only = Some(PiMatch::KindOnly {
                    provider_interface: name.to_string(),
                    declared: Gvk::new(field("group"), field("version"), field("kind")),
                });
            }
        }
    }
    kind_only.unwrap_or(PiMatch::None)
}

/// Whether KCM distributes this Credential's identity (regional, or an AccessManagement copy).
pub fn kcm_distributes(cred: &Credential) -> bool {
    cred.region().is_some() || cred.metadata.labels.get(labels::MANAGED).map(String::as_str) == Some("true")
}

fn validate_write(input: &AdmissionInput<'_>, estate: &dyn Estate) -> Vec<Finding> {
    let obj = match object_of(input, "Credential", CRED_INVALID) {
        Ok(o) => o,
        Err(f) => return vec![f],
    };
    let cred: Credential = match obj.parse("Credential", CRED_INVALID) {
        Ok(c) => c,
        Err(f) => return vec![f],
    };
    let ns = cred.metadata.namespace.as_deref().or(input.namespace).unwrap_or_default().to_string();
    let name = cred.metadata.name.as_deref().unwrap_or(input.name).to_string();
    let id = format!("Credential {ns}/{name}");
    let mut out = Vec::new();

    if input.operation == Operation::Update {
        let old = input.old_object;
        let old_region = old.and_then(|o| o.str_at(&["spec", "region"]));
        let old_region = old_region.as_deref();
        if old_region != cred.region() {
            let show = |r: Option<&str>| r.map_or_else(|| "no region".to_string(), |r| format!("region {r:?}"));
            out.push(Finding::deny(
                CRED_REGION_IMMUTABLE,
                "spec.region",
                format!(
                    "{id}: spec.region is immutable: it changes from {} to {}",
                    show(old_region),
                    show(cred.region())
                ),
                "keep spec.region; for another region create a new Credential (ClusterDeployments keep \
                 the region they were created in)",
            ));
            // Checks against the new region would only add noise to a denied write.
            return out;
        }
        // Only changes are judged: a deleting object or an unchanged spec gets no further checks.
        if obj.is_deleting() || old.map_or_else(|| obj.value().get("spec").is_none(), |o| o.same_spec(obj)) {
            return out;
        }
    }

    let region = cred.region().map(str::to_string);
    if let Some(r) = &region {
        check_region(input.operation, estate, &id, r, &mut out);
    }

    let Some(identity) = check_identity_ref(&cred, &id, &mut out) else {
        check_label_length(&cred, &ns, &name, &id, &mut out);
        return out;
    };
    let iref = cred.identity_ref().cloned().unwrap_or_default();
    let target = region.clone().map_or(Cluster::Management, Cluster::Region);
    let scope = estate.namespaced(&Cluster::Management, &identity).or_else(|| estate.namespaced(&target, &identity));
    check_namespace(&iref, &identity, scope, &ns, &id, &mut out);
    check_provider_interface(estate, &cred, &identity, &target, &id, &mut out);

    let served_mgmt = estate.served(&Cluster::Management, &identity);
    if served_mgmt == Served::No {
        out.push(Finding::warn(
            CRED_CRD_NOT_SERVED_MANAGEMENT,
            "spec.identityRef.apiVersion",
            format!(
                "{id}: the management cluster does not serve {identity}: its provider is not installed there, \
                 or not at apiVersion {}",
                identity.api_version()
            ),
            "install or enable the infrastructure provider in the management cluster, or fix \
             spec.identityRef.apiVersion to a version its CRD serves",
        ));
    }
    if let Some(r) = &region
        && estate.served(&Cluster::Region(r.clone()), &identity) == Served::No
    {
        out.push(Finding::warn(
            CRED_CRD_NOT_SERVED_REGION,
            "spec.identityRef.apiVersion",
            format!(
                "{id}: provider not enabled in Region {r}: the regional cluster does not serve {identity}, \
                 so the identity cannot be copied there and the Credential will not become Ready"
            ),
            format!(
                "enable the provider for {} in Region {r} (spec.providers), wait for the Region to be Ready",
                identity.kind
            ),
        ));
    }
    // An AccessManagement copy's identity is created by distribution; do not warn about it.
    let managed_copy = cred.metadata.labels.get(labels::MANAGED).map(String::as_str) == Some("true");
    if served_mgmt != Served::No && !managed_copy {
        check_identity_present(estate, &iref, &identity, scope, &ns, &id, &mut out);
    }
    check_label_length(&cred, &ns, &name, &id, &mut out);
    out
}

fn check_region(op: Operation, estate: &dyn Estate, id: &str, r: &str, out: &mut Vec<Finding>) {
    let Some(obj) = estate.get(&Cluster::Management, &Gvk::region(), None, r) else {
        // On UPDATE the region cannot have changed (CRED005), so a vanished Region is not this write's fault.
        if op == Operation::Create {
            out.push(Finding::deny(
                CRED_REGION_NOT_FOUND,
                "spec.region",
                format!("{id}: spec.region names Region {r:?}, which does not exist"),
                "create the Region first, fix the name (`kubectl get regions`), or leave spec.region empty \
                 for the management cluster",
            ));
        }
        return;
    };
    if is_deleting(&obj) {
        if op == Operation::Create {
            out.push(Finding::deny(
                CRED_REGION_DELETING,
                "spec.region",
                format!("{id}: Region {r} is being deleted"),
                format!("use another Region, or wait until Region {r} is gone and recreate it"),
            ));
        }
        return;
    }
    let ready = pointer(&obj, "/status/conditions")
        .and_then(Value::as_array)
        .and_then(|conds| conds.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("Ready")))
        .map(|c| {
            let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            (s("status"), s("message"))
        });
    match ready {
        Some((status, _)) if status == "True" => {}
        other => {
            let why = match other {
                Some((status, msg)) if !msg.is_empty() => format!("Ready={status}: {msg}"),
                Some((status, _)) => format!("Ready={status}"),
                None => "no Ready condition yet".to_string(),
            };
            out.push(Finding::warn(
                CRED_REGION_NOT_READY,
                "spec.region",
                format!("{id}: Region {r} is not Ready ({why}); the Credential will not be Ready until it is"),
                format!(
                    "check `kubectl describe region {r}`; the Credential is reconciled when the Region turns Ready"
                ),
            ));
        }
    }
}

/// Checks the shape of `spec.identityRef`; returns the identity GVK when usable.
fn check_identity_ref(cred: &Credential, id: &str, out: &mut Vec<Finding>) -> Option<Gvk> {
    let Some(iref) = cred.identity_ref() else {
        out.push(Finding::deny(
            CRED_IDENTITY_REF_INCOMPLETE,
            "spec.identityRef",
            format!("{id}: spec.identityRef is missing"),
            "set spec.identityRef to the cluster identity object: apiVersion, kind, name (and namespace for \
             namespaced kinds)",
        ));
        return None;
    };
    let empty = |v: &Option<String>| v.as_deref().is_none_or(str::is_empty);
    let mut complete = true;
    for (field, value, example) in [
        ("apiVersion", &iref.api_version, "infrastructure.cluster.x-k8s.io/v1beta2, or v1 for a Secret"),
        ("kind", &iref.kind, "AWSClusterStaticIdentity, or Secret"),
        ("name", &iref.name, "the name of the identity object"),
    ] {
        if empty(value) {
            complete = false;
            out.push(Finding::deny(
                CRED_IDENTITY_REF_INCOMPLETE,
                format!("spec.identityRef.{field}"),
                format!("{id}: spec.identityRef.{field} is empty"),
                format!("set spec.identityRef.{field} (e.g. {example})"),
            ));
        }
    }
    if let Some(av) = iref.api_version.as_deref().filter(|s| !s.is_empty()) {
        let parts: Vec<&str> = av.split('/').collect();
        if parts.len() > 2 || parts.iter().any(|p| p.is_empty() || p.contains(char::is_whitespace)) {
            complete = false;
            out.push(Finding::deny(
                CRED_IDENTITY_REF_API_VERSION,
                "spec.identityRef.apiVersion",
                format!("{id}: spec.identityRef.apiVersion {av:?} is not `version` or `group/version`"),
                "write it as the identity object's apiVersion, e.g. infrastructure.cluster.x-k8s.io/v1beta2",
            ));
        }
    }
    if complete { iref.gvk() } else { None }
}

fn check_namespace(
    iref: &ObjectReference,
    identity: &Gvk,
    scope: Option<bool>,
    ns: &str,
    id: &str,
    out: &mut Vec<Finding>,
) {
    let ref_ns = iref.namespace.as_deref().filter(|s| !s.is_empty());
    match (scope, ref_ns) {
        (Some(true), Some(rns)) if rns != ns => out.push(Finding::deny(
            CRED_NAMESPACE_MISMATCH,
            "spec.identityRef.namespace",
            format!(
                "{id}: spec.identityRef.namespace is {rns:?}, but the Credential is in namespace {ns:?}: \
                 a Credential may only use a namespaced identity ({}) of its own namespace",
                identity.kind
            ),
            format!(
                "create the Credential in namespace {rns} (or the identity in {ns}) and set \
                 spec.identityRef.namespace to {ns}; to share an identity across namespaces use AccessManagement"
            ),
        )),
        (Some(true), None) => out.push(Finding::warn(
            CRED_NAMESPACE_EMPTY,
            "spec.identityRef.namespace",
            format!("{id}: {} is namespaced but spec.identityRef.namespace is empty", identity.kind),
            format!(
                "set spec.identityRef.namespace: {ns} (the mutating webhook defaults it to the Credential's namespace)"
            ),
        )),
        (Some(false), Some(rns)) => out.push(Finding::warn(
            CRED_NAMESPACE_ON_CLUSTER_SCOPED,
            "spec.identityRef.namespace",
            format!("{id}: {} is cluster-scoped, yet spec.identityRef.namespace is {rns:?}", identity.kind),
            "remove spec.identityRef.namespace (KCM prints it in messages but a cluster-scoped object has none)",
        )),
        _ => {}
    }
}

fn check_provider_interface(
    estate: &dyn Estate,
    cred: &Credential,
    identity: &Gvk,
    target: &Cluster,
    id: &str,
    out: &mut Vec<Finding>,
) {
    if !estate.knows_cluster(target) {
        return;
    }
    let distributes = kcm_distributes(cred);
    match match_provider_interface(estate, target, identity) {
        PiMatch::Exact(_) => {}
        PiMatch::KindOnly { provider_interface, declared } => {
            let effect = if distributes {
                "identity distribution will not happen (it needs the exact apiVersion)"
            } else {
                "KCM's ClusterDeployment check matches on kind only, but distribution and this project's plan \
                 need the exact apiVersion"
            };
            out.push(Finding::warn(
                CRED_PI_VERSION_MISMATCH,
                "spec.identityRef.apiVersion",
                format!(
                    "{id}: ProviderInterface {provider_interface} in {target} declares {} at apiVersion \
                     {}, not {}: {effect}",
                    identity.kind,
                    declared.api_version(),
                    identity.api_version()
                ),
                format!(
                    "set spec.identityRef.apiVersion to {} if the identity object is served at it, or upgrade the \
                     provider so its ProviderInterface declares {}",
                    declared.api_version(),
                    identity.api_version()
                ),
            ));
        }
        PiMatch::None => {
            let effect = if distributes {
                "identity distribution will not happen"
            } else {
                "KCM rejects ClusterDeployments that use this Credential"
            };
            out.push(Finding::warn(
                CRED_PI_NO_MATCH,
                "spec.identityRef.kind",
                format!("{id}: no ProviderInterface in {target} declares {identity}: {effect}",),
                "enable the infrastructure provider that owns this identity kind (it ships the ProviderInterface), \
                 or fix spec.identityRef.kind/apiVersion",
            ));
        }
    }
}

fn check_identity_present(
    estate: &dyn Estate,
    iref: &ObjectReference,
    identity: &Gvk,
    scope: Option<bool>,
    ns: &str,
    id: &str,
    out: &mut Vec<Finding>,
) {
    let name = iref.name.as_deref().unwrap_or_default();
    let ref_ns = iref.namespace.as_deref().filter(|s| !s.is_empty());
    let lookup_ns = match scope {
        Some(true) => Some(ref_ns.unwrap_or(ns)),
        Some(false) => None,
        None => ref_ns,
    };
    if estate.contains(&Cluster::Management, identity, lookup_ns, name) {
        return;
    }
    let at = lookup_ns.map_or_else(|| name.to_string(), |n| format!("{n}/{name}"));
    if !estate.covers(&Cluster::Management, identity, lookup_ns) {
        // "Not in the cache" is not "does not exist" when the cache does not load this kind or namespace.
        let what = match lookup_ns {
            Some(n) => format!("{} objects in namespace {n}", identity.kind),
            None => format!("{} objects", identity.kind),
        };
        out.push(Finding::warn(
            CRED_IDENTITY_NOT_CHECKED,
            "spec.identityRef.name",
            format!(
                "{id}: could not check that {} {at} exists: this check does not load {what} (not an error)",
                identity.kind
            ),
            format!("make sure the {} {at} exists in the management cluster", identity.kind),
        ));
        return;
    }
    out.push(Finding::warn(
        CRED_IDENTITY_MISSING,
        "spec.identityRef.name",
        format!("{id}: {} {at} does not exist in the management cluster (yet)", identity.kind),
        format!("apply the {} {at} (it may simply come next), or fix spec.identityRef", identity.kind),
    ));
}

fn check_label_length(cred: &Credential, ns: &str, name: &str, id: &str, out: &mut Vec<Finding>) {
    if !kcm_distributes(cred) {
        return;
    }
    let key = format!("credential.{ns}.{name}");
    if key.len() > LABEL_NAME_MAX {
        out.push(Finding::warn(
            CRED_KCM_LABEL_TOO_LONG,
            "metadata.name",
            format!(
                "{id}: KCM labels distributed copies with {}/{key}, whose name part is {} characters (limit \
                 {LABEL_NAME_MAX}): KCM's own distribution fails for this Credential; credential-guard's works",
                labels::CREDENTIAL_PREFIX.split('/').next().unwrap_or_default(),
                key.len()
            ),
            format!(
                "keep namespace and name within {} characters together if KCM distributes too, or rely on \
                 credential-guard's distribution",
                LABEL_NAME_MAX - "credential..".len()
            ),
        ));
    }
}

fn validate_delete(input: &AdmissionInput<'_>, estate: &dyn Estate) -> Vec<Finding> {
    // A repeated DELETE of an object already being deleted changes nothing.
    if input.old_object.is_some_and(AdmittedObject::is_deleting) {
        return Vec::new();
    }
    let old_ns = match input.namespace {
        Some(_) => None,
        None => input.old_object.and_then(|o| o.str_at(&["metadata", "namespace"])),
    };
    let ns = input.namespace.or(old_ns.as_deref()).unwrap_or_default();
    let users: Vec<String> = estate
        .cluster_deployments_using(ns, input.name)
        .iter()
        .map(|cd| {
            let cd_name = str_at(cd, "/metadata/name").unwrap_or("<unnamed>");
            if is_deleting(cd) { format!("{cd_name} (being deleted)") } else { cd_name.to_string() }
        })
        .collect();
    if users.is_empty() {
        return Vec::new();
    }
    vec![Finding::deny(
        CRED_IN_USE,
        "",
        format!(
            "Credential {ns}/{} is used by {} in namespace {ns}: {}; KCM can neither reconcile nor delete a \
             ClusterDeployment whose Credential is gone",
            input.name,
            count(users.len(), "ClusterDeployment"),
            name_list(&users)
        ),
        "delete those ClusterDeployments (and wait until they are gone) or point them at another Credential of \
         the same Region, then delete the Credential",
    )]
}
