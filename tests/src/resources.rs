//! The resource registry: built-in kinds the project touches, plus every resource defined by a stored
//! CustomResourceDefinition (derived on demand, so discovery and routing always agree with the store).

use serde_json::Value;

/// One served resource (all its versions share storage; no conversion happens between versions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceDef {
    pub group: String,
    pub versions: Vec<String>,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// `true` when the resource has a `status` subresource: main writes keep the stored `.status`.
    pub status_subresource: bool,
    pub builtin: bool,
}

impl ResourceDef {
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() { version.to_string() } else { format!("{}/{}", self.group, version) }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    /// The preferred (first listed) version.
    pub fn preferred_version(&self) -> &str {
        self.versions.first().map(String::as_str).unwrap_or("v1")
    }
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
    status: bool,
) -> ResourceDef {
    ResourceDef {
        group: group.into(),
        versions: vec![version.into()],
        plural: plural.into(),
        singular: kind.to_ascii_lowercase(),
        kind: kind.into(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: vec![],
        status_subresource: status,
        builtin: true,
    }
}

pub const CRD_GROUP: &str = "apiextensions.k8s.io";
pub const CRD_RESOURCE: &str = "customresourcedefinitions";
pub const ADMISSION_GROUP: &str = "admissionregistration.k8s.io";
pub const MUTATING_RESOURCE: &str = "mutatingwebhookconfigurations";
pub const VALIDATING_RESOURCE: &str = "validatingwebhookconfigurations";

/// Built-in resources served by every emulator.
pub fn builtins() -> Vec<ResourceDef> {
    let mut defs = vec![
        builtin("", "v1", "namespaces", "Namespace", false, &["ns"], true),
        builtin("", "v1", "secrets", "Secret", true, &[], false),
        builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"], false),
        builtin("", "v1", "events", "Event", true, &["ev"], false),
        builtin("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"], false),
        builtin("", "v1", "services", "Service", true, &["svc"], true),
        builtin("apps", "v1", "deployments", "Deployment", true, &["deploy"], true),
        builtin("coordination.k8s.io", "v1", "leases", "Lease", true, &[], false),
        builtin("events.k8s.io", "v1", "events", "Event", true, &["ev"], false),
        builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", true, &[], false),
        builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, &[], false),
        builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, &[], false),
        builtin("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false, &[], false),
        builtin(CRD_GROUP, "v1", CRD_RESOURCE, "CustomResourceDefinition", false, &["crd", "crds"], true),
        builtin(ADMISSION_GROUP, "v1", MUTATING_RESOURCE, "MutatingWebhookConfiguration", false, &[], false),
        builtin(ADMISSION_GROUP, "v1", VALIDATING_RESOURCE, "ValidatingWebhookConfiguration", false, &[], false),
    ];
    // `kubectl get all` expands the `all` category.
    for d in defs.iter_mut().filter(|d| matches!(d.plural.as_str(), "services" | "deployments")) {
        d.categories = vec!["all".into()];
    }
    defs
}

/// The resource a CRD object defines, or `None` when the CRD is malformed (it is then simply not served).
pub fn from_crd(crd: &Value) -> Option<ResourceDef> {
    if crd.pointer("/metadata/deletionTimestamp").is_some() {
        return None;
    }
    let spec = crd.get("spec")?;
    let names = spec.get("names")?;
    let group = spec.get("group")?.as_str()?.to_string();
    let plural = names.get("plural")?.as_str()?.to_string();
    let kind = names.get("kind")?.as_str()?.to_string();
    let singular = names.get("singular").and_then(Value::as_str).map(str::to_string);
    let strs = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let mut versions = Vec::new();
    let mut status_subresource = false;
    for v in spec.get("versions")?.as_array()? {
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let Some(name) = v.get("name").and_then(Value::as_str) else { continue };
        if v.pointer("/subresources/status").is_some() {
            status_subresource = true;
        }
        versions.push(name.to_string());
    }
    if versions.is_empty() {
        return None;
    }
    // Discovery lists the storage version first among equals, as kube-aggregator's version priority roughly does.
    versions.sort_by_key(|v| version_priority(v));
    Some(ResourceDef {
        group,
        versions,
        singular: singular.unwrap_or_else(|| kind.to_ascii_lowercase()),
        plural,
        kind,
        namespaced: spec.get("scope").and_then(Value::as_str) != Some("Cluster"),
        short_names: strs(names.get("shortNames")),
        categories: strs(names.get("categories")),
        status_subresource,
        builtin: false,
    })
}

/// Kubernetes version ordering: GA > beta > alpha, higher numbers first (`v1` < `v2`; `v1beta2` > `v1beta1`).
pub fn version_priority(v: &str) -> (u8, i64, i64) {
    let Some(rest) = v.strip_prefix('v') else { return (3, 0, 0) };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major: i64 = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (class, minor) = if tail.is_empty() {
        (0, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (1, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (2, n.parse().unwrap_or(0))
    } else {
        (3, 0)
    };
    (class, -major, -minor)
}
