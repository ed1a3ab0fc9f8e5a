//! Admission rules for the credential reference of `ClusterDeployment`.
//!
//! KCM's own ClusterDeployment webhook checks the Credential on CREATE and when `spec.credential`
//! changes; we match it (same checks, KCM's wording inside our messages) and close its holes: a
//! change to a Credential of another Region is denied (the cluster would silently move), and a
//! Credential being deleted cannot be picked. Template/provider checks stay KCM's.

use serde_json::Value;

use crate::estate::{Cluster, Estate};
use crate::finding::Finding;
use crate::gvk::Gvk;
use crate::model::ClusterDeployment;
use crate::rules::codes::*;
use crate::rules::support::{is_deleting, object_of, pointer, str_at};
use crate::rules::{AdmissionInput, AdmittedObject, Operation};

pub fn validate(input: &AdmissionInput<'_>, estate: &dyn Estate) -> Vec<Finding> {
    match input.operation {
        Operation::Create | Operation::Update => validate_write(input, estate),
        Operation::Delete => validate_delete(input, estate),
        Operation::Connect => Vec::new(),
    }
}

fn validate_write(input: &AdmissionInput<'_>, estate: &dyn Estate) -> Vec<Finding> {
    let obj = match object_of(input, "ClusterDeployment", CD_INVALID) {
        Ok(o) => o,
        Err(f) => return vec![f],
    };
    let cd: ClusterDeployment = match obj.parse("ClusterDeployment", CD_INVALID) {
        Ok(c) => c,
        Err(f) => return vec![f],
    };
    let ns = cd.metadata.namespace.as_deref().or(input.namespace).unwrap_or_default().to_string();
    let name = cd.metadata.name.as_deref().unwrap_or(input.name).to_string();
    let id = format!("ClusterDeployment {ns}/{name}");
    let old_cred = input.old_object.and_then(|o| o.str_at(&["spec", "credential"]));
    let old_cred = old_cred.as_deref();
    if input.operation == Operation::Update && (obj.is_deleting() || old_cred == cd.credential()) {
        // Like KCM: the Credential is judged only when spec.credential changes.
        return Vec::new();
    }
    let Some(cred_name) = cd.credential() else {
        return vec![Finding::deny(
            CD_CREDENTIAL_EMPTY,
            "spec.credential",
            format!("{id}: spec.credential is empty"),
            format!("set spec.credential to a Ready Credential in namespace {ns} (`kubectl get credentials -n {ns}`)"),
        )];
    };
    let cred_id = format!("Credential {ns}/{cred_name}");
    let Some(cred) = estate.get(&Cluster::Management, &Gvk::credential(), Some(&ns), cred_name) else {
        return vec![Finding::deny(
            CD_CREDENTIAL_NOT_FOUND,
            "spec.credential",
            format!("{id}: {cred_id} referred in spec.credential does not exist"),
            format!(
                "create {cred_id} first, or fix spec.credential; it must be in the ClusterDeployment's namespace {ns}"
            ),
        )];
    };
    let mut out = Vec::new();
    if is_deleting(&cred) {
        out.push(Finding::deny(
            CD_CREDENTIAL_DELETING,
            "spec.credential",
            format!("{id}: {cred_id} is being deleted"),
            "use another Credential",
        ));
    } else if pointer(&cred, "/status/ready").and_then(Value::as_bool) != Some(true) {
        let why = ready_message(&cred).map(|m| format!(" ({m})")).unwrap_or_default();
        out.push(Finding::deny(
            CD_CREDENTIAL_NOT_READY,
            "spec.credential",
            format!("{id}: the {cred_id} is not Ready{why}"),
            format!("run `kubectl credential explain {cred_name} -n {ns}` and fix what it reports, then retry"),
        ));
    }
    if let Some(region) = str_at(&cred, "/spec/region")
        && estate.get(&Cluster::Management, &Gvk::region(), None, region).is_none()
    {
        // KCM: "failed to get parent object for <ns>/<cd> ClusterDeployment: failed to get <r> Region".
        out.push(Finding::deny(
            CD_CREDENTIAL_REGION_NOT_FOUND,
            "spec.credential",
            format!(
                "{id}: the {cred_id} names Region {region:?} in spec.region, which does not exist: there is no \
                 cluster to deploy to"
            ),
            format!("create Region {region} first, or set spec.credential to a Credential of an existing Region"),
        ));
    }
    if pointer(&cred, "/spec/identityRef").is_none_or(Value::is_null) {
        out.push(Finding::deny(
            CD_CREDENTIAL_NO_IDENTITY_REF,
            "spec.credential",
            format!("{id}: the {cred_id} does not have identityRef"),
            format!("fix {cred_id}: set spec.identityRef"),
        ));
    }
    if input.operation == Operation::Update
        && let Some(old_name) = old_cred
    {
        check_region_change(
            estate,
            input.old_object.map(AdmittedObject::value),
            &ns,
            old_name,
            cred_name,
            &cred,
            &id,
            &mut out,
        );
    }
    out
}

fn ready_message(cred: &Value) -> Option<String> {
    let conds = pointer(cred, "/status/conditions").and_then(Value::as_array)?;
    let c = conds.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("CredentialReady"))?;
    let msg = c.get("message").and_then(Value::as_str).filter(|s| !s.is_empty())?;
    Some(format!("CredentialReady: {msg}"))
}

#[allow(clippy::too_many_arguments)]
fn check_region_change(
    estate: &dyn Estate,
    old_cd: Option<&Value>,
    ns: &str,
    old_name: &str,
    new_name: &str,
    new_cred: &Value,
    id: &str,
    out: &mut Vec<Finding>,
) {
    // The old region: from the old Credential, else what KCM recorded on the cluster (status.region).
    let old_region = match estate.get(&Cluster::Management, &Gvk::credential(), Some(ns), old_name) {
        Some(c) => str_at(&c, "/spec/region").map(str::to_string),
        None => match old_cd.and_then(|o| pointer(o, "/status/region")) {
            Some(v) => v.as_str().filter(|s| !s.is_empty()).map(str::to_string),
            None => return, // cannot tell where the cluster lives: do not guess
        },
    };
    let new_region = str_at(new_cred, "/spec/region").map(str::to_string);
    if old_region == new_region {
        return;
    }
    let show =
        |r: &Option<String>| r.as_ref().map_or_else(|| "the management cluster".into(), |r| format!("Region {r}"));
    out.push(Finding::deny(
        CD_CREDENTIAL_REGION_CHANGE,
        "spec.credential",
        format!(
            "{id}: changing spec.credential from {old_name} ({}) to {new_name} ({}) would silently move the cluster \
             to another region",
            show(&old_region),
            show(&new_region)
        ),
        format!("pick a Credential of {} or create a new ClusterDeployment in the other region", show(&old_region)),
    ));
}

fn validate_delete(input: &AdmissionInput<'_>, estate: &dyn Estate) -> Vec<Finding> {
    if input.old_object.is_some_and(AdmittedObject::is_deleting) {
        return Vec::new();
    }
    let old_ns = match input.namespace {
        Some(_) => None,
        None => input.old_object.and_then(|o| o.str_at(&["metadata", "namespace"])),
    };
    let ns = input.namespace.or(old_ns.as_deref()).unwrap_or_default();
    estate
        .regions_on_cluster_deployment(ns, input.name)
        .iter()
        .map(|r| {
            let region = str_at(r, "/metadata/name").unwrap_or_default();
            Finding::deny(
                CD_REFERENCED_BY_REGION,
                "",
                format!(
                    "ClusterDeployment cannot be deleted: referenced by Region {region:?} (ClusterDeployment \
                     {ns}/{} is that Region's cluster)",
                    input.name
                ),
                format!("delete Region {region} first (it must have no ClusterDeployments of its own)"),
            )
        })
        .collect()
}
