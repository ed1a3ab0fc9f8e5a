//! Admission rules for `Region` (cluster-scoped).
//!
//! Matches KCM's Region webhook (kubeconfig Secret and key, ClusterDeployment existence, delete
//! protection) and closes its holes: a Region without `spec` is denied, an empty key is denied up
//! front, immutability also covers adding/removing, the documented 21-character name limit warns,
//! and deletion names what blocks it and which Credentials it would orphan.

use serde_json::Value;

use crate::estate::{Cluster, Estate};
use crate::finding::Finding;
use crate::gvk::Gvk;
use crate::model::{ClusterDeploymentRef, Region, RegionSpec, SecretKeyReference};
use crate::rules::codes::*;
use crate::rules::support::{count, name_list, object_of, str_at};
use crate::rules::{AdmissionInput, AdmittedObject, Operation};

/// The longest Region name k0rdent's documentation allows.
pub const NAME_MAX: usize = 21;

/// Set (to `"true"`) by an estate on a Secret whose key names it has not loaded (a metadata-only
/// cache before its key read). Rules then skip key checks instead of guessing "key missing". Real
/// objects never carry it: the webhook's Secret cache keeps no annotations.
pub const SECRET_KEYS_UNKNOWN_ANNOTATION: &str = "credential-guard.k0rdent.mirantis.com/keys-unknown";

/// Whether the estate marked this Secret's key names as not loaded (see [`SECRET_KEYS_UNKNOWN_ANNOTATION`]).
pub fn secret_keys_unknown(secret: &Value) -> bool {
    secret
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(SECRET_KEYS_UNKNOWN_ANNOTATION))
        .and_then(Value::as_str)
        == Some("true")
}

pub fn validate(input: &AdmissionInput<'_>, estate: &dyn Estate) -> Vec<Finding> {
    match input.operation {
        Operation::Create | Operation::Update => validate_write(input, estate),
        Operation::Delete => validate_delete(input, estate),
        Operation::Connect => Vec::new(),
    }
}

fn validate_write(input: &AdmissionInput<'_>, estate: &dyn Estate) -> Vec<Finding> {
    let obj = match object_of(input, "Region", RGN_INVALID) {
        Ok(o) => o,
        Err(f) => return vec![f],
    };
    let region: Region = match obj.parse("Region", RGN_INVALID) {
        Ok(r) => r,
        Err(f) => return vec![f],
    };
    let name = region.metadata.name.as_deref().unwrap_or(input.name).to_string();
    let spec = region.spec.clone().unwrap_or_default();
    let mut out = Vec::new();

    let (check_kubeconfig, check_cd) = if input.operation == Operation::Update {
        // The stored object may predate these rules; read it loosely.
        let old: RegionSpec = input.old_object.and_then(AdmittedObject::spec).unwrap_or_default();
        immutable(&name, "kubeConfig", &old.kube_config, &spec.kube_config, &old, RGN_KUBECONFIG_IMMUTABLE, &mut out);
        immutable(
            &name,
            "clusterDeployment",
            &old.cluster_deployment,
            &spec.cluster_deployment,
            &old,
            RGN_CD_IMMUTABLE,
            &mut out,
        );
        if obj.is_deleting() || input.old_object.map_or_else(|| obj.value().get("spec").is_none(), |o| o.same_spec(obj))
        {
            return out;
        }
        (old.kube_config != spec.kube_config, old.cluster_deployment != spec.cluster_deployment)
    } else {
        if name.chars().count() > NAME_MAX {
            out.push(Finding::warn(
                RGN_NAME_TOO_LONG,
                "metadata.name",
                format!(
                    "Region {name}: the name has {} characters; k0rdent documents a limit of {NAME_MAX} (names KCM \
                     derives from it can exceed Kubernetes limits)",
                    name.chars().count()
                ),
                format!("use a name of at most {NAME_MAX} characters"),
            ));
        }
        (true, true)
    };

    match (&spec.kube_config, &spec.cluster_deployment) {
        (None, None) => {
            let what = if region.spec.is_none() { "has no spec" } else { "sets neither" };
            out.push(Finding::deny(
                RGN_NO_CLUSTER,
                "spec",
                format!("Region {name} {what}: exactly one of spec.kubeConfig or spec.clusterDeployment must be set"),
                "set spec.kubeConfig {name, key} to a kubeconfig Secret in the system namespace, or \
                 spec.clusterDeployment {name, namespace}",
            ));
            return out;
        }
        (Some(_), Some(_)) => {
            out.push(Finding::deny(
                RGN_BOTH_CLUSTERS,
                "spec",
                format!("Region {name} sets both spec.kubeConfig and spec.clusterDeployment: exactly one must be set"),
                "keep only the one that reaches the regional cluster",
            ));
            return out;
        }
        _ => {}
    }
    if let (Some(kc), true) = (&spec.kube_config, check_kubeconfig) {
        check_kube_config(estate, &name, kc, &mut out);
    }
    if let (Some(cd), true) = (&spec.cluster_deployment, check_cd) {
        check_cluster_deployment(estate, &name, cd, &mut out);
    }
    out
}

/// Denies changing, adding or removing `field` — except adding a cluster reference to a stored
/// Region that had none (the only way to repair one that predates the "exactly one" rule).
fn immutable<T: PartialEq>(
    name: &str,
    field: &str,
    old: &Option<T>,
    new: &Option<T>,
    old_spec: &RegionSpec,
    code: crate::finding::Code,
    out: &mut Vec<Finding>,
) {
    let repair = old_spec.kube_config.is_none() && old_spec.cluster_deployment.is_none();
    if old == new || (old.is_none() && repair) {
        return;
    }
    let change = match (old, new) {
        (None, _) => "added",
        (_, None) => "removed",
        _ => "changed",
    };
    out.push(Finding::deny(
        code,
        format!("spec.{field}"),
        format!("Region {name}: spec.{field} is immutable, but the update has it {change}"),
        format!("keep spec.{field} as it is; to point at another cluster create a new Region"),
    ));
}

fn check_kube_config(estate: &dyn Estate, name: &str, kc: &SecretKeyReference, out: &mut Vec<Finding>) {
    let sys = estate.system_namespace();
    let Some(secret_name) = kc.name.as_deref().filter(|s| !s.is_empty()) else {
        out.push(Finding::deny(
            RGN_KUBECONFIG_NAME_EMPTY,
            "spec.kubeConfig.name",
            format!("Region {name}: spec.kubeConfig.name is empty"),
            format!("set spec.kubeConfig.name to a Secret in namespace {sys} that holds the regional kubeconfig"),
        ));
        return;
    };
    let key = kc.key.as_deref().filter(|s| !s.is_empty());
    if key.is_none() {
        out.push(Finding::deny(
            RGN_KUBECONFIG_KEY_EMPTY,
            "spec.kubeConfig.key",
            format!("Region {name}: spec.kubeConfig.key is not set; KCM reads the kubeconfig from that data key"),
            format!("set spec.kubeConfig.key to the data key of Secret {sys}/{secret_name} (often `value`)"),
        ));
    }
    let Some(secret) = estate.get(&Cluster::Management, &Gvk::secret(), Some(sys), secret_name) else {
        out.push(Finding::deny(
            RGN_KUBECONFIG_SECRET_MISSING,
            "spec.kubeConfig.name",
            format!("Region {name}: kubeconfig Secret {sys}/{secret_name} does not exist"),
            format!("create Secret {sys}/{secret_name} with the regional kubeconfig first (it must be in {sys})"),
        ));
        return;
    };
    // Key names not loaded yet: "no such key" would be a guess, so the check is skipped.
    if let (Some(key), false) = (key, secret_keys_unknown(&secret)) {
        // Only key names are read, never values.
        let has = |field: &str| secret.get(field).and_then(Value::as_object).is_some_and(|m| m.contains_key(key));
        if !has("data") && !has("stringData") {
            out.push(Finding::deny(
                RGN_KUBECONFIG_KEY_MISSING,
                "spec.kubeConfig.key",
                format!("Region {name}: kubeconfig Secret {sys}/{secret_name} has no data key {key:?}"),
                format!("set spec.kubeConfig.key to the Secret's key that holds the kubeconfig, or add {key:?} to it"),
            ));
        }
    }
}

fn check_cluster_deployment(estate: &dyn Estate, name: &str, cd: &ClusterDeploymentRef, out: &mut Vec<Finding>) {
    let cd_name = cd.name.as_deref().filter(|s| !s.is_empty());
    let cd_ns = cd.namespace.as_deref().filter(|s| !s.is_empty());
    let (Some(cd_name), Some(cd_ns)) = (cd_name, cd_ns) else {
        let missing = if cd_name.is_none() { "name" } else { "namespace" };
        out.push(Finding::deny(
            RGN_CD_REF_INCOMPLETE,
            format!("spec.clusterDeployment.{missing}"),
            format!("Region {name}: spec.clusterDeployment.{missing} is empty"),
            "set both spec.clusterDeployment.name and spec.clusterDeployment.namespace",
        ));
        return;
    };
    if estate.get(&Cluster::Management, &Gvk::cluster_deployment(), Some(cd_ns), cd_name).is_none() {
        out.push(Finding::deny(
            RGN_CD_MISSING,
            "spec.clusterDeployment",
            format!("Region {name}: ClusterDeployment {cd_ns}/{cd_name} does not exist"),
            "create the ClusterDeployment first, or fix spec.clusterDeployment (`kubectl get clusterdeployments -A`)",
        ));
    }
}

fn validate_delete(input: &AdmissionInput<'_>, estate: &dyn Estate) -> Vec<Finding> {
    if input.old_object.is_some_and(AdmittedObject::is_deleting) {
        return Vec::new();
    }
    let name = input.name;
    let mut blockers = Vec::new();
    let mut orphans = Vec::new();
    // Index lookups, not scans: a Region DELETE costs the same with 10 or 10,000 Credentials.
    for (ns, cred_name) in estate.credentials_in_region(name) {
        let (ns, cred_name) = (ns.as_str(), cred_name.as_str());
        let before = blockers.len();
        for cd in estate.cluster_deployments_using(ns, cred_name) {
            let cd_name = str_at(&cd, "/metadata/name").unwrap_or_default();
            blockers.push(format!("{ns}/{cd_name} (Credential {cred_name})"));
        }
        if blockers.len() == before {
            orphans.push(format!("{ns}/{cred_name}"));
        }
    }
    let mut out = Vec::new();
    if !blockers.is_empty() {
        out.push(Finding::deny(
            RGN_IN_USE,
            "",
            format!(
                "Region {name} cannot be deleted: it still has {}: {}",
                count(blockers.len(), "ClusterDeployment"),
                name_list(&blockers)
            ),
            "delete those ClusterDeployments and wait until they are gone, then delete the Region",
        ));
    }
    if !orphans.is_empty() {
        out.push(Finding::warn(
            RGN_ORPHANS_CREDENTIALS,
            "",
            format!(
                "deleting Region {name} orphans {} naming it: {}; a Credential of a deleted Region never becomes \
                 Ready again",
                count(orphans.len(), "Credential"),
                name_list(&orphans)
            ),
            "delete those Credentials too (spec.region is immutable), or recreate the Region with the same name",
        ));
    }
    out
}
