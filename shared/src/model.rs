//! Typed k0rdent objects, as KCM v1beta1 serves them.
//!
//! Unknown fields are tolerated (forward compatibility); deprecated fields are parsed so rules can
//! warn about them. Objects arrive as JSON values; `from_value` never panics on bad input.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::gvk::Gvk;

/// The metadata fields rules read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub finalizers: Vec<String>,
    #[serde(default)]
    pub deletion_timestamp: Option<String>,
    #[serde(default)]
    pub creation_timestamp: Option<String>,
    #[serde(default)]
    pub generation: Option<i64>,
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub resource_version: Option<String>,
}

/// A `metav1.Condition`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub last_transition_time: Option<String>,
}

/// A `corev1.ObjectReference`; KCM's schema requires none of its fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

impl ObjectReference {
    /// The referenced GVK when both apiVersion and kind are set and non-empty.
    pub fn gvk(&self) -> Option<Gvk> {
        let av = self.api_version.as_deref().filter(|s| !s.is_empty())?;
        let kind = self.kind.as_deref().filter(|s| !s.is_empty())?;
        Some(Gvk::from_api_version(av, kind))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialSpec {
    #[serde(default)]
    pub identity_ref: Option<ObjectReference>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialStatus {
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub ready: bool,
}

/// `k0rdent.mirantis.com/v1beta1 Credential` (namespaced).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Credential {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<CredentialSpec>,
    #[serde(default)]
    pub status: Option<CredentialStatus>,
}

impl Credential {
    /// The region name, treating `""` as absent (KCM does the same).
    pub fn region(&self) -> Option<&str> {
        self.spec.as_ref()?.region.as_deref().filter(|r| !r.is_empty())
    }
    pub fn identity_ref(&self) -> Option<&ObjectReference> {
        self.spec.as_ref()?.identity_ref.as_ref()
    }
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// `spec.kubeConfig` of a Region: a flux `SecretKeyReference`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretKeyReference {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterDeploymentRef {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionSpec {
    #[serde(default)]
    pub kube_config: Option<SecretKeyReference>,
    #[serde(default)]
    pub cluster_deployment: Option<ClusterDeploymentRef>,
    #[serde(default)]
    pub providers: Vec<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionStatus {
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub available_providers: Vec<String>,
}

/// `k0rdent.mirantis.com/v1beta1 Region` (cluster-scoped).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Region {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<RegionSpec>,
    #[serde(default)]
    pub status: Option<RegionStatus>,
}

impl Region {
    pub fn ready_condition(&self) -> Option<&Condition> {
        self.status.as_ref()?.conditions.iter().find(|c| c.type_ == "Ready")
    }
    pub fn is_ready(&self) -> bool {
        self.ready_condition().is_some_and(|c| c.status == "True")
    }
}

/// One reference of a cluster identity (`spec.clusterIdentities[].references[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterIdentityReference {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name_field_path: String,
    #[serde(default)]
    pub namespace_field_path: Option<String>,
}

impl ClusterIdentityReference {
    pub fn gvk(&self) -> Gvk {
        Gvk::new(&self.group, &self.version, &self.kind)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterIdentity {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub references: Vec<ClusterIdentityReference>,
}

impl ClusterIdentity {
    pub fn gvk(&self) -> Gvk {
        Gvk::new(&self.group, &self.version, &self.kind)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderInterfaceSpec {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub cluster_identities: Vec<ClusterIdentity>,
    /// Deprecated: use `clusterIdentities`.
    #[serde(default)]
    pub cluster_identity_kinds: Option<Vec<String>>,
    /// Removed in KCM 1.11 (pruned by the API server); parsed so a rule can warn.
    #[serde(default, rename = "clusterGVKs")]
    pub cluster_gvks: Option<Vec<Value>>,
}

/// `k0rdent.mirantis.com/v1beta1 ProviderInterface` (cluster-scoped).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderInterface {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<ProviderInterfaceSpec>,
}

impl ProviderInterface {
    pub fn identities(&self) -> &[ClusterIdentity] {
        self.spec.as_ref().map(|s| s.cluster_identities.as_slice()).unwrap_or(&[])
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterDeploymentSpec {
    #[serde(default)]
    pub credential: Option<String>,
    #[serde(default)]
    pub template: Option<String>,
}

/// The part of `k0rdent.mirantis.com/v1beta1 ClusterDeployment` (namespaced) this project reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterDeployment {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<ClusterDeploymentSpec>,
}

impl ClusterDeployment {
    pub fn credential(&self) -> Option<&str> {
        self.spec.as_ref()?.credential.as_deref().filter(|c| !c.is_empty())
    }
}

/// Why a JSON value could not be read as a typed object.
#[derive(Debug, thiserror::Error)]
#[error("{kind} {name}: {source}")]
pub struct ModelError {
    pub kind: &'static str,
    pub name: String,
    #[source]
    pub source: serde_json::Error,
}

/// Reads a typed object from JSON, naming the object in the error.
pub fn from_value<T: serde::de::DeserializeOwned>(kind: &'static str, value: &Value) -> Result<T, ModelError> {
    T::deserialize(value).map_err(|source| ModelError { kind, name: display_name(value), source })
}

/// `namespace/name` or `name` of a JSON object, for messages.
pub fn display_name(value: &Value) -> String {
    let meta = value.get("metadata");
    let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("<unnamed>");
    match meta.and_then(|m| m.get("namespace")).and_then(Value::as_str).filter(|s| !s.is_empty()) {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// Labels and names KCM and this project use.
pub mod labels {
    pub const COMPONENT: &str = "k0rdent.mirantis.com/component";
    pub const COMPONENT_KCM: &str = "kcm";
    pub const REGION: &str = "k0rdent.mirantis.com/region";
    pub const MANAGED: &str = "k0rdent.mirantis.com/managed";
    pub const CREDENTIAL_PREFIX: &str = "k0rdent.mirantis.com/credential";
    pub const CAPI_PROVIDER: &str = "cluster.x-k8s.io/provider";
    pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
    /// KCM's own readiness condition on Credentials (never written by us).
    pub const CREDENTIAL_READY_CONDITION: &str = "CredentialReady";
    /// Our condition on Credentials.
    pub const DISTRIBUTED_CONDITION: &str = "ClusterIdentitiesDistributed";
    /// Our finalizer on distributed Credentials.
    pub const DISTRIBUTION_FINALIZER: &str = "credential-guard.k0rdent.mirantis.com/distribution";
    /// Annotation on copies listing the owning Credentials (`ns/name` per line, sorted); works for
    /// names of any length, unlike KCM's per-Credential label keys.
    pub const OWNERS_ANNOTATION: &str = "credential-guard.k0rdent.mirantis.com/owners";
    /// Annotation on a Credential recording the copies it holds (JSON: the target cluster and the
    /// object keys, names only), so releases survive a restart or a change of leader.
    pub const COPIES_ANNOTATION: &str = "credential-guard.k0rdent.mirantis.com/copies";
    /// Annotation on a Credential in trigger mode: a digest of its source objects' versions
    /// ([`crate::distribution::trigger_digest`]). Changing it makes KCM's Credential controller
    /// reconcile (and copy) now; the same sources never change it twice.
    pub const TRIGGER_ANNOTATION: &str = "credential-guard.k0rdent.mirantis.com/sources-digest";
    /// Annotations on the distribution Lease ([`crate::distribution::DISTRIBUTION_LEASE`]): the
    /// [`crate::distribution::Mode`] in force and why, written by the replica that leads, so
    /// `kubectl credential` can say who copies.
    pub const MODE_ANNOTATION: &str = "credential-guard.k0rdent.mirantis.com/distribution-mode";
    pub const MODE_REASON_ANNOTATION: &str = "credential-guard.k0rdent.mirantis.com/distribution-mode-reason";
    /// Our field manager for server-side apply.
    pub const FIELD_MANAGER: &str = "credential-guard";
}
