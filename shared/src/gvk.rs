//! Group/version/kind handling shared by every module.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A group, version and kind. The core group is the empty string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct Gvk {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
}

impl Gvk {
    pub fn new(group: impl Into<String>, version: impl Into<String>, kind: impl Into<String>) -> Self {
        Gvk { group: group.into(), version: version.into(), kind: kind.into() }
    }

    /// Parses `apiVersion` (`group/version` or `version` for the core group) plus a kind.
    pub fn from_api_version(api_version: &str, kind: &str) -> Self {
        match api_version.split_once('/') {
            Some((g, v)) => Gvk::new(g, v, kind),
            None => Gvk::new("", api_version, kind),
        }
    }

    /// Reads `apiVersion` and `kind` of a JSON object; `None` when either is missing.
    pub fn of(obj: &serde_json::Value) -> Option<Self> {
        let api_version = obj.get("apiVersion")?.as_str()?;
        let kind = obj.get("kind")?.as_str()?;
        Some(Gvk::from_api_version(api_version, kind))
    }

    /// `group/version`, or `version` for the core group (what `apiVersion` holds).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// The same group and kind, ignoring the version.
    pub fn same_group_kind(&self, other: &Gvk) -> bool {
        self.group == other.group && self.kind == other.kind
    }

    pub fn core(kind: &str) -> Self {
        Gvk::new("", "v1", kind)
    }

    pub fn k0rdent(kind: &str) -> Self {
        Gvk::new(crate::K0RDENT_GROUP, crate::K0RDENT_VERSION, kind)
    }

    pub fn credential() -> Self {
        Self::k0rdent("Credential")
    }
    pub fn region() -> Self {
        Self::k0rdent("Region")
    }
    pub fn provider_interface() -> Self {
        Self::k0rdent("ProviderInterface")
    }
    pub fn cluster_deployment() -> Self {
        Self::k0rdent("ClusterDeployment")
    }
    pub fn secret() -> Self {
        Self::core("Secret")
    }
    pub fn namespace() -> Self {
        Self::core("Namespace")
    }
    pub fn crd() -> Self {
        Gvk::new("apiextensions.k8s.io", "v1", "CustomResourceDefinition")
    }
}

impl fmt::Display for Gvk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.api_version(), self.kind)
    }
}

/// Built-in kinds every cluster serves (so a "served" check needs no CRD for them), with their scope.
pub const BUILTIN_KINDS: &[(&str, &str, &str, bool)] = &[
    // (group, version, kind, namespaced)
    ("", "v1", "Secret", true),
    ("", "v1", "ConfigMap", true),
    ("", "v1", "Namespace", false),
    ("", "v1", "ServiceAccount", true),
    ("", "v1", "Event", true),
    ("coordination.k8s.io", "v1", "Lease", true),
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", false),
    ("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", false),
    ("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", false),
];

/// `Some(namespaced)` when the GVK is a built-in kind.
pub fn builtin_scope(gvk: &Gvk) -> Option<bool> {
    BUILTIN_KINDS
        .iter()
        .find(|(g, v, k, _)| *g == gvk.group && *v == gvk.version && *k == gvk.kind)
        .map(|(_, _, _, namespaced)| *namespaced)
}
