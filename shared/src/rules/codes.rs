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
    /// What to do, in short (each finding's hint says it for the objects at hand).
    pub fix: &'static str,
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
pub const CRED_IDENTITY_NOT_CHECKED: Code = "CRED018";

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
pub const CD_CREDENTIAL_REGION_NOT_FOUND: Code = "CD009";

/// Deny codes that say only "a referenced object does not exist": the object may be created by the
/// same apply. A dry-run request gets them as warnings ([`crate::rules::lenient_for_dry_run`]), and the
/// webhook confirms the absence with a live read before a real write is denied for them.
pub const MISSING_OBJECT: &[Code] = &[
    CRED_REGION_NOT_FOUND,
    RGN_KUBECONFIG_SECRET_MISSING,
    RGN_CD_MISSING,
    CD_CREDENTIAL_NOT_FOUND,
    CD_CREDENTIAL_REGION_NOT_FOUND,
];

const fn info(code: Code, kind: &'static str, severity: Severity, when: &'static str, fix: &'static str) -> CodeInfo {
    CodeInfo { code, kind, severity, when, fix }
}

use Severity::{Deny, Warn};

/// Every code, in documentation order.
pub const ALL: &[CodeInfo] = &[
    info(
        CRED_INVALID,
        "Credential",
        Deny,
        "the object does not match the Credential schema (the field is named)",
        "fix the named field",
    ),
    info(
        CRED_IDENTITY_REF_INCOMPLETE,
        "Credential",
        Deny,
        "spec.identityRef is missing or lacks apiVersion, kind or name",
        "set all three (and namespace for namespaced kinds)",
    ),
    info(
        CRED_IDENTITY_REF_API_VERSION,
        "Credential",
        Deny,
        "spec.identityRef.apiVersion is not `version` or `group/version`",
        "copy the identity object's apiVersion",
    ),
    info(
        CRED_REGION_NOT_FOUND,
        "Credential",
        Deny,
        "CREATE: spec.region names a Region that does not exist",
        "create the Region first or fix the name",
    ),
    info(
        CRED_REGION_IMMUTABLE,
        "Credential",
        Deny,
        "UPDATE: spec.region is changed, added or removed (KCM's CEL rule misses adding and removing)",
        "create a new Credential for the other region",
    ),
    info(
        CRED_REGION_DELETING,
        "Credential",
        Deny,
        "CREATE: spec.region names a Region that is being deleted",
        "use another Region",
    ),
    info(
        CRED_REGION_NOT_READY,
        "Credential",
        Warn,
        "the Region is not Ready",
        "wait for the Region (`kubectl describe region`)",
    ),
    info(
        CRED_PI_VERSION_MISMATCH,
        "Credential",
        Warn,
        "a ProviderInterface of the target cluster declares the identity kind only at another apiVersion: distribution will not happen",
        "align spec.identityRef.apiVersion or upgrade the provider",
    ),
    info(
        CRED_PI_NO_MATCH,
        "Credential",
        Warn,
        "no ProviderInterface of the target cluster (the Region's, else management) declares the identity kind",
        "enable the provider that owns the kind, or fix the kind",
    ),
    info(
        CRED_IDENTITY_MISSING,
        "Credential",
        Warn,
        "the identity object does not exist in the management cluster (it may be applied next)",
        "apply the identity object",
    ),
    info(
        CRED_CRD_NOT_SERVED_MANAGEMENT,
        "Credential",
        Warn,
        "the management cluster does not serve the identity group/version/kind",
        "install the provider or fix the apiVersion",
    ),
    info(
        CRED_CRD_NOT_SERVED_REGION,
        "Credential",
        Warn,
        "the regional cluster does not serve the identity GVK: provider not enabled in the Region",
        "enable the provider in the Region's spec.providers",
    ),
    info(
        CRED_NAMESPACE_MISMATCH,
        "Credential",
        Deny,
        "namespaced identity kind and spec.identityRef.namespace differs from the Credential's namespace",
        "keep Credential and identity in one namespace; share with AccessManagement",
    ),
    info(
        CRED_NAMESPACE_ON_CLUSTER_SCOPED,
        "Credential",
        Warn,
        "cluster-scoped identity kind with spec.identityRef.namespace set",
        "remove spec.identityRef.namespace",
    ),
    info(
        CRED_NAMESPACE_EMPTY,
        "Credential",
        Warn,
        "namespaced identity kind without spec.identityRef.namespace (the mutating webhook defaults it; seen by `lint`)",
        "set it to the Credential's namespace",
    ),
    info(
        CRED_IN_USE,
        "Credential",
        Deny,
        "DELETE while ClusterDeployments in its namespace use it (they are listed)",
        "delete or move those ClusterDeployments first",
    ),
    info(
        CRED_KCM_LABEL_TOO_LONG,
        "Credential",
        Warn,
        "KCM distributes it and `credential.<namespace>.<name>` exceeds 63 characters: KCM's copy fails, ours works",
        "shorten the name if KCM distributes too",
    ),
    info(
        CRED_IDENTITY_NOT_CHECKED,
        "Credential",
        Warn,
        "whether the identity object exists could not be checked: the estate does not load that kind or namespace (the webhook caches Secrets of the system namespace and the identity kinds ProviderInterfaces declare); not an error",
        "make sure the identity object exists (`kubectl get`)",
    ),
    info(
        RGN_INVALID,
        "Region",
        Deny,
        "the object does not match the Region schema (the field is named)",
        "fix the named field",
    ),
    info(
        RGN_NO_CLUSTER,
        "Region",
        Deny,
        "neither spec.kubeConfig nor spec.clusterDeployment is set, also when spec is absent",
        "set exactly one",
    ),
    info(
        RGN_BOTH_CLUSTERS,
        "Region",
        Deny,
        "both spec.kubeConfig and spec.clusterDeployment are set",
        "keep exactly one",
    ),
    info(RGN_KUBECONFIG_NAME_EMPTY, "Region", Deny, "spec.kubeConfig.name is empty", "name the kubeconfig Secret"),
    info(RGN_KUBECONFIG_KEY_EMPTY, "Region", Deny, "spec.kubeConfig.key is empty", "name the Secret's data key"),
    info(
        RGN_KUBECONFIG_SECRET_MISSING,
        "Region",
        Deny,
        "the kubeconfig Secret does not exist in the system namespace",
        "create it in the system namespace first",
    ),
    info(
        RGN_KUBECONFIG_KEY_MISSING,
        "Region",
        Deny,
        "the kubeconfig Secret has no data key spec.kubeConfig.key",
        "fix the key or the Secret",
    ),
    info(RGN_CD_REF_INCOMPLETE, "Region", Deny, "spec.clusterDeployment lacks name or namespace", "set both"),
    info(
        RGN_CD_MISSING,
        "Region",
        Deny,
        "the ClusterDeployment named by spec.clusterDeployment does not exist",
        "create it first or fix the reference",
    ),
    info(
        RGN_KUBECONFIG_IMMUTABLE,
        "Region",
        Deny,
        "UPDATE: spec.kubeConfig is changed, added or removed (adding to a Region that had neither is allowed: repair)",
        "create a new Region",
    ),
    info(
        RGN_CD_IMMUTABLE,
        "Region",
        Deny,
        "UPDATE: spec.clusterDeployment is changed, added or removed (same repair exception)",
        "create a new Region",
    ),
    info(
        RGN_NAME_TOO_LONG,
        "Region",
        Warn,
        "CREATE: the name is longer than 21 characters (documented k0rdent limit)",
        "use a shorter name",
    ),
    info(
        RGN_IN_USE,
        "Region",
        Deny,
        "DELETE while ClusterDeployments use Credentials of the Region (they are listed)",
        "delete those ClusterDeployments first",
    ),
    info(
        RGN_ORPHANS_CREDENTIALS,
        "Region",
        Warn,
        "DELETE leaves Credentials that name the Region (they are listed)",
        "delete them too",
    ),
    info(
        PI_INVALID,
        "ProviderInterface",
        Deny,
        "the object does not match the ProviderInterface schema (the field is named)",
        "fix the named field",
    ),
    info(
        PI_IDENTITY_GVK_INCOMPLETE,
        "ProviderInterface",
        Deny,
        "a clusterIdentities entry lacks version or kind (group may be \"\")",
        "set version and kind",
    ),
    info(
        PI_REFERENCE_GVK_INCOMPLETE,
        "ProviderInterface",
        Deny,
        "a references entry lacks version or kind",
        "set version and kind",
    ),
    info(
        PI_NAME_FIELD_PATH,
        "ProviderInterface",
        Deny,
        "a reference's nameFieldPath is missing or not a valid field path",
        "write dot-separated keys, e.g. spec.secretRef.name",
    ),
    info(
        PI_NAMESPACE_FIELD_PATH,
        "ProviderInterface",
        Deny,
        "a reference's namespaceFieldPath is not a valid field path",
        "fix it or omit it (system namespace)",
    ),
    info(
        PI_DUPLICATE_IDENTITY,
        "ProviderInterface",
        Deny,
        "the same identity group/version/kind appears twice in one ProviderInterface",
        "merge the entries",
    ),
    info(
        PI_DECLARED_ELSEWHERE,
        "ProviderInterface",
        Warn,
        "another ProviderInterface declares the same identity GVK with other references: the first in name order wins (both named)",
        "declare each kind once",
    ),
    info(
        PI_DEPRECATED_IDENTITY_KINDS,
        "ProviderInterface",
        Warn,
        "deprecated spec.clusterIdentityKinds is set",
        "use spec.clusterIdentities",
    ),
    info(
        PI_REMOVED_CLUSTER_GVKS,
        "ProviderInterface",
        Warn,
        "spec.clusterGVKs (removed in KCM 1.11) is set",
        "remove it",
    ),
    info(
        PI_NO_IDENTITIES,
        "ProviderInterface",
        Warn,
        "spec.clusterIdentities is empty: distribution will not work",
        "declare the provider's identity kinds",
    ),
    info(
        PI_REFERENCE_CYCLE,
        "ProviderInterface",
        Deny,
        "references among the entries form a cycle (the chain is shown)",
        "remove one reference of the cycle",
    ),
    info(
        PI_REMOVES_USED_IDENTITY,
        "ProviderInterface",
        Warn,
        "UPDATE/DELETE removes an identity GVK that management Credentials use and no other ProviderInterface declares (they are listed)",
        "keep it until those Credentials moved",
    ),
    info(
        CD_INVALID,
        "ClusterDeployment",
        Deny,
        "the object does not match the ClusterDeployment schema (the field is named)",
        "fix the named field",
    ),
    info(
        CD_CREDENTIAL_EMPTY,
        "ClusterDeployment",
        Deny,
        "CREATE, or UPDATE changing it: spec.credential is empty",
        "name a Ready Credential of the namespace",
    ),
    info(
        CD_CREDENTIAL_NOT_FOUND,
        "ClusterDeployment",
        Deny,
        "spec.credential names no Credential in the ClusterDeployment's namespace",
        "create it or fix the name",
    ),
    info(
        CD_CREDENTIAL_NOT_READY,
        "ClusterDeployment",
        Deny,
        "the Credential is not Ready (status.ready false; as KCM)",
        "`kubectl credential explain <name>`",
    ),
    info(
        CD_CREDENTIAL_NO_IDENTITY_REF,
        "ClusterDeployment",
        Deny,
        "the Credential has no spec.identityRef (as KCM)",
        "fix the Credential",
    ),
    info(
        CD_CREDENTIAL_DELETING,
        "ClusterDeployment",
        Deny,
        "the Credential is being deleted",
        "use another Credential",
    ),
    info(
        CD_CREDENTIAL_REGION_CHANGE,
        "ClusterDeployment",
        Deny,
        "UPDATE: spec.credential changes to a Credential of another Region (the cluster would silently move)",
        "pick a Credential of the same Region",
    ),
    info(
        CD_REFERENCED_BY_REGION,
        "ClusterDeployment",
        Deny,
        "DELETE while a Region's spec.clusterDeployment names it (as KCM)",
        "delete the Region first",
    ),
    info(
        CD_CREDENTIAL_REGION_NOT_FOUND,
        "ClusterDeployment",
        Deny,
        "CREATE, or UPDATE changing spec.credential: the Credential's spec.region names a Region that does not exist (as KCM)",
        "create the Region or pick a Credential of an existing Region",
    ),
];

/// The Markdown table of every code, as `shared/RULES.md` holds it.
pub fn markdown_table() -> String {
    let mut out = String::from("| Code | Kind | Severity | When | What to do |\n|---|---|---|---|---|\n");
    for c in ALL {
        out.push_str(&format!("| {} | {} | {} | {} | {} |\n", c.code, c.kind, c.severity, c.when, c.fix));
    }
    out
}

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
