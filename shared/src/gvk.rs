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

/// A kind this project reads or writes by name, with what an API path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The resource name in API paths, RBAC and webhook rules.
    pub plural: &'static str,
    pub namespaced: bool,
    /// Served by every cluster (no CRD needed).
    pub builtin: bool,
}

const fn known(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    builtin: bool,
) -> KnownKind {
    KnownKind { group, version, kind, plural, namespaced, builtin }
}

/// The one kinds table: plural and scope of every kind used without discovery (the webhook's
/// caches and distributor, the plugin's reads, the rules' resource names).
pub const KNOWN_KINDS: &[KnownKind] = &[
    known("", "v1", "Secret", "secrets", true, true),
    known("", "v1", "ConfigMap", "configmaps", true, true),
    known("", "v1", "Namespace", "namespaces", false, true),
    known("", "v1", "ServiceAccount", "serviceaccounts", true, true),
    known("", "v1", "Event", "events", true, true),
    known("events.k8s.io", "v1", "Event", "events", true, true),
    known("coordination.k8s.io", "v1", "Lease", "leases", true, true),
    known("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", false, true),
    known(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
        true,
    ),
    known(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
        true,
    ),
    known(crate::K0RDENT_GROUP, crate::K0RDENT_VERSION, "Credential", "credentials", true, false),
    known(crate::K0RDENT_GROUP, crate::K0RDENT_VERSION, "Region", "regions", false, false),
    known(crate::K0RDENT_GROUP, crate::K0RDENT_VERSION, "ProviderInterface", "providerinterfaces", false, false),
    known(crate::K0RDENT_GROUP, crate::K0RDENT_VERSION, "ClusterDeployment", "clusterdeployments", true, false),
    known(crate::K0RDENT_GROUP, crate::K0RDENT_VERSION, "AccessManagement", "accessmanagements", false, false),
    known(crate::K0RDENT_GROUP, crate::K0RDENT_VERSION, "Management", "managements", false, false),
    known(crate::K0RDENT_GROUP, crate::K0RDENT_VERSION, "Release", "releases", false, false),
];

/// The [`KNOWN_KINDS`] entry of a GVK (exact group, version and kind).
pub fn known_kind(gvk: &Gvk) -> Option<&'static KnownKind> {
    KNOWN_KINDS.iter().find(|k| k.group == gvk.group && k.version == gvk.version && k.kind == gvk.kind)
}

/// `Some(namespaced)` when the GVK is a built-in kind.
pub fn builtin_scope(gvk: &Gvk) -> Option<bool> {
    known_kind(gvk).filter(|k| k.builtin).map(|k| k.namespaced)
}

#[cfg(test)]
mod known_kinds_tests {
    use super::*;

    #[test]
    fn every_admitted_kind_is_in_the_table_once() {
        for rk in crate::rules::ResourceKind::ALL {
            let k = known_kind(&rk.gvk()).map(|k| k.plural);
            assert_eq!(k, Some(rk.plural()), "{rk:?}");
            assert!(!rk.plural().is_empty());
        }
        for (i, a) in KNOWN_KINDS.iter().enumerate() {
            assert!(
                KNOWN_KINDS[i + 1..].iter().all(|b| (a.group, a.version, a.kind) != (b.group, b.version, b.kind)),
                "{a:?} twice"
            );
            assert_eq!(a.plural, a.plural.to_ascii_lowercase());
        }
        for kind in ["Management", "Release"] {
            assert_eq!(
                known_kind(&Gvk::k0rdent(kind)).map(|k| k.namespaced),
                Some(false),
                "{kind}: KCM detection reads it"
            );
        }
        assert_eq!(builtin_scope(&Gvk::secret()), Some(true));
        assert_eq!(builtin_scope(&Gvk::credential()), None, "k0rdent kinds need their CRDs");
    }
}
