//! The stable finding codes of the admission rules.
//!
//! A code never changes meaning once released: tests, `kubectl credential lint -o json` and the
//! webhook's metrics key on it. `shared/RULES.md` documents every code (a test keeps the two in step).

use crate::finding::{Code, Severity};

/// One documented code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeInfo {
    pub code: Code,
    /// The kind whose admission emits it.
    pub kind: &'static str,
    pub severity: Severity,
    /// When it fires.
    pub when: &'static str,
}

// Credential.
pub const CRED_INVALID: Code = "CRED001";
pub const CRED_IDENTITY_REF_INCOMPLETE: Code = "CRED002";
pub const CRED_IDENTITY_REF_API_VERSION: Code = "CRED003";
pub const CRED_REGION_NOT_FOUND: Code = "CRED004";
pub const CRED_REGION_IMMUTABLE: Code = "CRED005";
pub const CRED_REGION_DELETING: Code = "CRED006";
pub const CRED_REGION_NOT_READY: Code = "CRED007";
pub const CRED_PI_VERSION_MISMATCH: Code = "CRED008";
pub const CRED_PI_NO_MATCH: Code = "CRED009";
pub const CRED_IDENTITY_MISSING: Code = "CRED010";
pub const CRED_CRD_NOT_SERVED_MANAGEMENT: Code = "CRED011";
pub const CRED_CRD_NOT_SERVED_REGION: Code = "CRED012";
pub const CRED_NAMESPACE_MISMATCH: Code = "CRED013";
pub const CRED_NAMESPACE_ON_CLUSTER_SCOPED: Code = "CRED014";
pub const CRED_NAMESPACE_EMPTY: Code = "CRED015";
pub const CRED_IN_USE: Code = "CRED016";
pub const CRED_KCM_LABEL_TOO_LONG: Code = "CRED017";

// Region.
pub const RGN_INVALID: Code = "RGN001";
pub const RGN_NO_CLUSTER: Code = "RGN002";
pub const RGN_BOTH_CLUSTERS: Code = "RGN003";
pub const RGN_KUBECONFIG_NAME_EMPTY: Code = "RGN004";
pub const RGN_KUBECONFIG_KEY_EMPTY: Code = "RGN005";
pub const RGN_KUBECONFIG_SECRET_MISSING: Code = "RGN006";
pub const RGN_KUBECONFIG_KEY_MISSING: Code = "RGN007";
pub const RGN_CD_REF_INCOMPLETE: Code = "RGN008";
pub const RGN_CD_MISSING: Code = "RGN009";
pub const RGN_KUBECONFIG_IMMUTABLE: Code = "RGN010";
pub const RGN_CD_IMMUTABLE: Code = "RGN011";
pub const RGN_NAME_TOO_LONG: Code = "RGN012";
pub const RGN_IN_USE: Code = "RGN013";
pub const RGN_ORPHANS_CREDENTIALS: Code = "RGN014";

// ProviderInterface.
pub const PI_INVALID: Code = "PI001";
pub const PI_IDENTITY_GVK_INCOMPLETE: Code = "PI002";
pub const PI_REFERENCE_GVK_INCOMPLETE: Code = "PI003";
pub const PI_NAME_FIELD_PATH: Code = "PI004";
pub const PI_NAMESPACE_FIELD_PATH: Code = "PI005";
pub const PI_DUPLICATE_IDENTITY: Code = "PI006";
pub const PI_DECLARED_ELSEWHERE: Code = "PI007";
pub const PI_DEPRECATED_IDENTITY_KINDS: Code = "PI008";
pub const PI_REMOVED_CLUSTER_GVKS: Code = "PI009";
pub const PI_NO_IDENTITIES: Code = "PI010";
pub const PI_REFERENCE_CYCLE: Code = "PI011";
pub const PI_REMOVES_USED_IDENTITY: Code = "PI012";

// ClusterDeployment.
pub const CD_INVALID: Code = "CD001";
pub const CD_CREDENTIAL_EMPTY: Code = "CD002";
pub const CD_CREDENTIAL_NOT_FOUND: Code = "CD003";
pub const CD_CREDENTIAL_NOT_READY: Code = "CD004";
pub const CD_CREDENTIAL_NO_IDENTITY_REF: Code = "CD005";
pub const CD_CREDENTIAL_DELETING: Code = "CD006";
pub const CD_CREDENTIAL_REGION_CHANGE: Code = "CD007";
pub const CD_REFERENCED_BY_REGION: Code = "CD008";

const fn info(code: Code, kind: &'static str, severity: Severity, when: &'static str) -> CodeInfo {
    CodeInfo { code, kind, severity, when }
}

use Severity::{Deny, Warn};

/// Every code, in documentation order.
pub const ALL: &[CodeInfo] = &[
    info(CRED_INVALID, "Credential", Deny, "the object does not match the Credential schema"),
    info(
        CRED_IDENTITY_REF_INCOMPLETE,
        "Credential",
        Deny,
        "spec.identityRef is missing or lacks apiVersion, kind or name",
    ),
    info(
        CRED_IDENTITY_REF_API_VERSION,
        "Credential",
        Deny,
        "spec.identityRef.apiVersion is not `version` or `group/version`",
    ),
    info(CRED_REGION_NOT_FOUND, "Credential", Deny, "CREATE: spec.region names a Region that does not exist"),
    info(CRED_REGION_IMMUTABLE, "Credential", Deny, "UPDATE: spec.region is changed, added or removed"),
    info(CRED_REGION_DELETING, "Credential", Deny, "CREATE: spec.region names a Region that is being deleted"),
    info(CRED_REGION_NOT_READY, "Credential", Warn, "the Region is not Ready"),
    info(
        CRED_PI_VERSION_MISMATCH,
        "Credential",
        Warn,
        "a ProviderInterface of the target cluster declares the identity kind, but at another apiVersion",
    ),
    info(CRED_PI_NO_MATCH, "Credential", Warn, "no ProviderInterface of the target cluster declares the identity kind"),
    info(CRED_IDENTITY_MISSING, "Credential", Warn, "the identity object does not exist in the management cluster"),
    info(CRED_CRD_NOT_SERVED_MANAGEMENT, "Credential", Warn, "the management cluster does not serve the identity GVK"),
    info(
        CRED_CRD_NOT_SERVED_REGION,
        "Credential",
        Warn,
        "the regional cluster does not serve the identity GVK (provider not enabled in the Region)",
    ),
    info(
        CRED_NAMESPACE_MISMATCH,
        "Credential",
        Deny,
        "namespaced identity kind and spec.identityRef.namespace differs from the Credential's namespace",
    ),
    info(
        CRED_NAMESPACE_ON_CLUSTER_SCOPED,
        "Credential",
        Warn,
        "cluster-scoped identity kind with spec.identityRef.namespace set",
    ),
    info(
        CRED_NAMESPACE_EMPTY,
        "Credential",
        Warn,
        "namespaced identity kind without spec.identityRef.namespace (the mutating webhook defaults it)",
    ),
    info(CRED_IN_USE, "Credential", Deny, "DELETE while ClusterDeployments in its namespace use it"),
    info(
        CRED_KCM_LABEL_TOO_LONG,
        "Credential",
        Warn,
        "KCM distributes it and `credential.<namespace>.<name>` is longer than 63 characters",
    ),
    info(RGN_INVALID, "Region", Deny, "the object does not match the Region schema"),
    info(RGN_NO_CLUSTER, "Region", Deny, "neither spec.kubeConfig nor spec.clusterDeployment is set (also: no spec)"),
    info(RGN_BOTH_CLUSTERS, "Region", Deny, "both spec.kubeConfig and spec.clusterDeployment are set"),
    info(RGN_KUBECONFIG_NAME_EMPTY, "Region", Deny, "spec.kubeConfig.name is empty"),
    info(RGN_KUBECONFIG_KEY_EMPTY, "Region", Deny, "spec.kubeConfig.key is empty"),
    info(RGN_KUBECONFIG_SECRET_MISSING, "Region", Deny, "the kubeconfig Secret does not exist in the system namespace"),
    info(RGN_KUBECONFIG_KEY_MISSING, "Region", Deny, "the kubeconfig Secret has no data key spec.kubeConfig.key"),
    info(RGN_CD_REF_INCOMPLETE, "Region", Deny, "spec.clusterDeployment lacks name or namespace"),
    info(RGN_CD_MISSING, "Region", Deny, "the ClusterDeployment named by spec.clusterDeployment does not exist"),
    info(RGN_KUBECONFIG_IMMUTABLE, "Region", Deny, "UPDATE: spec.kubeConfig is changed, added or removed"),
    info(RGN_CD_IMMUTABLE, "Region", Deny, "UPDATE: spec.clusterDeployment is changed, added or removed"),
    info(RGN_NAME_TOO_LONG, "Region", Warn, "CREATE: the name is longer than 21 characters (documented k0rdent limit)"),
    info(RGN_IN_USE, "Region", Deny, "DELETE while ClusterDeployments use Credentials of the Region"),
    info(RGN_ORPHANS_CREDENTIALS, "Region", Warn, "DELETE leaves Credentials that name the Region"),
    info(PI_INVALID, "ProviderInterface", Deny, "the object does not match the ProviderInterface schema"),
    info(PI_IDENTITY_GVK_INCOMPLETE, "ProviderInterface", Deny, "a clusterIdentities entry lacks version or kind"),
    info(PI_REFERENCE_GVK_INCOMPLETE, "ProviderInterface", Deny, "a references entry lacks version or kind"),
    info(
        PI_NAME_FIELD_PATH,
        "ProviderInterface",
        Deny,
        "a reference's nameFieldPath is missing or not a valid field path",
    ),
    info(
        PI_NAMESPACE_FIELD_PATH,
        "ProviderInterface",
        Deny,
        "a reference's namespaceFieldPath is not a valid field path",
    ),
    info(PI_DUPLICATE_IDENTITY, "ProviderInterface", Deny, "the same identity group/version/kind appears twice"),
    info(PI_DECLARED_ELSEWHERE, "ProviderInterface", Warn, "another ProviderInterface declares the same identity GVK"),
    info(PI_DEPRECATED_IDENTITY_KINDS, "ProviderInterface", Warn, "deprecated spec.clusterIdentityKinds is set"),
    info(PI_REMOVED_CLUSTER_GVKS, "ProviderInterface", Warn, "spec.clusterGVKs (removed in KCM 1.11) is set"),
    info(PI_NO_IDENTITIES, "ProviderInterface", Warn, "spec.clusterIdentities is empty"),
    info(PI_REFERENCE_CYCLE, "ProviderInterface", Deny, "references among the entries form a cycle"),
    info(
        PI_REMOVES_USED_IDENTITY,
        "ProviderInterface",
        Warn,
        "UPDATE/DELETE removes an identity GVK that Credentials use and no other ProviderInterface declares",
    ),
    info(CD_INVALID, "ClusterDeployment", Deny, "the object does not match the ClusterDeployment schema"),
    info(CD_CREDENTIAL_EMPTY, "ClusterDeployment", Deny, "spec.credential is empty"),
    info(CD_CREDENTIAL_NOT_FOUND, "ClusterDeployment", Deny, "spec.credential names no Credential in the namespace"),
    info(CD_CREDENTIAL_NOT_READY, "ClusterDeployment", Deny, "the Credential is not Ready (status.ready is false)"),
    info(CD_CREDENTIAL_NO_IDENTITY_REF, "ClusterDeployment", Deny, "the Credential has no spec.identityRef"),
    info(CD_CREDENTIAL_DELETING, "ClusterDeployment", Deny, "the Credential is being deleted"),
    info(
        CD_CREDENTIAL_REGION_CHANGE,
        "ClusterDeployment",
        Deny,
        "UPDATE: spec.credential changes to a Credential of another Region",
    ),
    info(CD_REFERENCED_BY_REGION, "ClusterDeployment", Deny, "DELETE while a Region's spec.clusterDeployment names it"),
];

/// The documentation of a code.
pub fn lookup(code: &str) -> Option<&'static CodeInfo> {
    ALL.iter().find(|c| c.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_prefixed_by_kind() {
        let mut seen = std::collections::BTreeSet::new();
        for c in ALL {
            assert!(seen.insert(c.code), "duplicate code {}", c.code);
            let prefix = match c.kind {
                "Credential" => "CRED",
                "Region" => "RGN",
                "ProviderInterface" => "PI",
                "ClusterDeployment" => "CD",
                other => panic!("unknown kind {other}"),
            };
            assert!(c.code.starts_with(prefix) && c.code.len() == prefix.len() + 3, "{}", c.code);
        }
        assert_eq!(lookup("CRED016").map(|c| c.severity), Some(Severity::Deny));
        assert!(lookup("NOPE001").is_none());
    }
}
