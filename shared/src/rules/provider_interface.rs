//! Admission rules for `ProviderInterface` (cluster-scoped).
//!
//! KCM has no ProviderInterface webhook: a PI with an empty kind, a bad field path, a duplicate or a
//! reference cycle is accepted and breaks identity distribution later. A PI write concerns the
//! cluster the webhook serves: the estate's management cluster.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::estate::{Cluster, Estate};
use crate::fieldpath::FieldPath;
use crate::finding::Finding;
use crate::gvk::Gvk;
use crate::model::{ClusterIdentity, ProviderInterface};
use crate::rules::codes::*;
use crate::rules::support::{count, name_list, object_of, pointer, str_at};
use crate::rules::{AdmissionInput, AdmittedObject, Operation};

pub fn validate(input: &AdmissionInput<'_>, estate: &dyn Estate) -> Vec<Finding> {
    match input.operation {
        Operation::Create => validate_write(input, estate),
        Operation::Update => {
            let findings = validate_write(input, estate);
            match input.old_object {
                // Judged as it is stored: what it already had is not this update's doing.
                Some(old) => {
                    let stored =
                        AdmissionInput { operation: Operation::Create, object: Some(old), old_object: None, ..*input };
                    only_new_denials(findings, &validate_write(&stored, estate))
                }
                None => findings,
            }
        }
        Operation::Delete => validate_delete(input, estate),
        Operation::Connect => Vec::new(),
    }
}

/// Turns each denial that `stored` (the findings of the object as stored) already had into a warning:
/// an UPDATE denies only what it introduces, so a label change, an adoption by Helm/Flux or a storage
/// migration of a ProviderInterface that a stricter rule than KCM's schema dislikes still goes through.
/// Findings are matched by code and message with list indexes left out (an entry inserted before
/// another shifts its index, not its fault).
fn only_new_denials(findings: Vec<Finding>, stored: &[Finding]) -> Vec<Finding> {
    let before: Vec<(String, String)> =
        stored.iter().filter(|f| f.is_deny()).map(|f| (f.code.clone(), without_indexes(&f.message))).collect();
    findings
        .into_iter()
        .map(|mut f| {
            if f.is_deny() && before.contains(&(f.code.clone(), without_indexes(&f.message))) {
                f.severity = crate::finding::Severity::Warn;
                f.message.push_str(
                    " (already so before this update: warned, not denied, as the update does not introduce it)",
                );
            }
            f
        })
        .collect()
}

/// `spec.clusterIdentities[3].references[0]` -> `spec.clusterIdentities[].references[]`: digits
/// directly inside brackets are dropped.
fn without_indexes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_index = false;
    for c in text.chars() {
        if in_index && c.is_ascii_digit() {
            continue;
        }
        in_index = c == '[';
        out.push(c);
    }
    out
}

fn validate_write(input: &AdmissionInput<'_>, estate: &dyn Estate) -> Vec<Finding> {
    let obj = match object_of(input, "ProviderInterface", PI_INVALID) {
        Ok(o) => o,
        Err(f) => return vec![f],
    };
    if input.operation == Operation::Update && obj.is_deleting() {
        return Vec::new();
    }
    let pi: ProviderInterface = match obj.parse("ProviderInterface", PI_INVALID) {
        Ok(p) => p,
        Err(f) => return vec![f],
    };
    let name = pi.metadata.name.as_deref().unwrap_or(input.name).to_string();
    let id = format!("ProviderInterface {name}");
    let mut out = Vec::new();
    let spec = pi.spec.clone().unwrap_or_default();

    if spec.cluster_identity_kinds.as_ref().is_some_and(|k| !k.is_empty()) {
        out.push(Finding::warn(
            PI_DEPRECATED_IDENTITY_KINDS,
            "spec.clusterIdentityKinds",
            format!("{id}: spec.clusterIdentityKinds is deprecated; distribution ignores it"),
            "declare each identity in spec.clusterIdentities {group, version, kind, references}",
        ));
    }
    if spec.cluster_gvks.is_some() {
        out.push(Finding::warn(
            PI_REMOVED_CLUSTER_GVKS,
            "spec.clusterGVKs",
            format!("{id}: spec.clusterGVKs was removed in KCM 1.11; the API server prunes it and nothing reads it"),
            "remove spec.clusterGVKs",
        ));
    }
    let identities = pi.identities();
    if identities.is_empty() {
        out.push(Finding::warn(
            PI_NO_IDENTITIES,
            "spec.clusterIdentities",
            format!(
                "{id} declares no spec.clusterIdentities: cluster identity distribution will not work for \
                 Credentials of this provider"
            ),
            "list every identity kind of the provider in spec.clusterIdentities, with the objects each references",
        ));
    }

    // First index of each complete identity GVK.
    let mut first: BTreeMap<Gvk, usize> = BTreeMap::new();
    for (i, ci) in identities.iter().enumerate() {
        let at = format!("spec.clusterIdentities[{i}]");
        let complete = check_gvk(&id, &at, &ci.version, &ci.kind, PI_IDENTITY_GVK_INCOMPLETE, &mut out);
        if complete {
            if let Some(j) = first.get(&ci.gvk()) {
                out.push(Finding::deny(
                    PI_DUPLICATE_IDENTITY,
                    at.clone(),
                    format!("{id}: {at} declares {} again (already spec.clusterIdentities[{j}])", ci.gvk()),
                    "merge the two entries into one (their references together)",
                ));
            } else {
                first.insert(ci.gvk(), i);
            }
        }
        for (j, r) in ci.references.iter().enumerate() {
            let rat = format!("{at}.references[{j}]");
            check_gvk(&id, &rat, &r.version, &r.kind, PI_REFERENCE_GVK_INCOMPLETE, &mut out);
            if let Err(e) = FieldPath::parse(&r.name_field_path) {
                out.push(Finding::deny(
                    PI_NAME_FIELD_PATH,
                    format!("{rat}.nameFieldPath"),
                    format!("{id}: {rat}.nameFieldPath is invalid: {e}"),
                    "give the dot-separated path of the field holding the referenced object's name, e.g. \
                     spec.secretRef.name",
                ));
            }
            if let Some(p) = r.namespace_field_path.as_deref().filter(|p| !p.is_empty())
                && let Err(e) = FieldPath::parse(p)
            {
                out.push(Finding::deny(
                    PI_NAMESPACE_FIELD_PATH,
                    format!("{rat}.namespaceFieldPath"),
                    format!("{id}: {rat}.namespaceFieldPath is invalid: {e}"),
                    "give a dot-separated path such as spec.secretRef.namespace, or omit it to use the system \
                     namespace",
                ));
            }
        }
    }
    check_cycles(&id, identities, &first, &mut out);
    check_declared_elsewhere(estate, &name, &id, identities, &first, &mut out);

    if input.operation == Operation::Update
        && let Some(old) = input.old_object
    {
        let kept: Vec<Gvk> = first.keys().cloned().collect();
        check_removed(estate, &name, declared_by(old), &kept, "spec.clusterIdentities", &mut out);
    }
    out
}

/// Denies an empty version or kind; returns whether both are set.
fn check_gvk(
    id: &str,
    at: &str,
    version: &str,
    kind: &str,
    code: crate::finding::Code,
    out: &mut Vec<Finding>,
) -> bool {
    let mut ok = true;
    for (field, value, example) in [("version", version, "v1beta2, or v1 for a Secret"), ("kind", kind, "Secret")] {
        if value.is_empty() {
            ok = false;
            out.push(Finding::deny(
                code,
                format!("{at}.{field}"),
                format!("{id}: {at}.{field} is empty"),
                format!("set {at}.{field} (e.g. {example}); group may stay \"\" for core kinds"),
            ));
        }
    }
    ok
}

/// References that point at another entry of the same PI are followed transitively by
/// distribution; a loop among them can never be resolved.
fn check_cycles(id: &str, identities: &[ClusterIdentity], first: &BTreeMap<Gvk, usize>, out: &mut Vec<Finding>) {
    // edges[i] = (reference index, target entry index)
    let edges: Vec<Vec<(usize, usize)>> = identities
        .iter()
        .enumerate()
        .map(|(i, ci)| {
            if first.get(&ci.gvk()) != Some(&i) {
                return Vec::new(); // duplicates are reported on their own
            }
            ci.references.iter().enumerate().filter_map(|(j, r)| first.get(&r.gvk()).map(|&t| (j, t))).collect()
        })
        .collect();
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut state = vec![0u8; identities.len()];
    let mut cycles: Vec<Vec<(usize, usize)>> = Vec::new();
    for start in 0..identities.len() {
        if state[start] == 0 {
            dfs(start, &edges, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    let mut reported: Vec<Vec<usize>> = Vec::new();
    for cycle in cycles {
        let mut key: Vec<usize> = cycle.iter().map(|&(n, _)| n).collect();
        key.sort_unstable();
        if reported.contains(&key) {
            continue;
        }
        reported.push(key);
        let (n0, r0) = cycle[0];
        let mut chain: Vec<String> = cycle.iter().map(|&(n, _)| identities[n].gvk().to_string()).collect();
        chain.push(identities[n0].gvk().to_string());
        out.push(Finding::deny(
            PI_REFERENCE_CYCLE,
            format!("spec.clusterIdentities[{n0}].references[{r0}]"),
            format!("{id}: references form a cycle: {}", chain.join(" -> ")),
            "remove one reference of the cycle: an identity cannot (indirectly) reference itself",
        ));
    }
}

/// Depth-first search; `path` holds the (entry, reference) edges taken. Depth is bounded by the
/// number of entries of one PI.
fn dfs(
    node: usize,
    edges: &[Vec<(usize, usize)>],
    state: &mut [u8],
    path: &mut Vec<(usize, usize)>,
    cycles: &mut Vec<Vec<(usize, usize)>>,
) {
    state[node] = 1;
    for &(ref_idx, next) in &edges[node] {
        path.push((node, ref_idx));
        match state[next] {
            0 => dfs(next, edges, state, path, cycles),
            1 => {
                if let Some(from) = path.iter().position(|&(n, _)| n == next) {
                    cycles.push(path[from..].to_vec());
                }
            }
            _ => {}
        }
        path.pop();
    }
    state[node] = 2;
}

fn check_declared_elsewhere(
    estate: &dyn Estate,
    name: &str,
    id: &str,
    identities: &[ClusterIdentity],
    mine: &BTreeMap<Gvk, usize>,
    out: &mut Vec<Finding>,
) {
    if mine.is_empty() {
        return;
    }
    for other in estate.list(&Cluster::Management, &Gvk::provider_interface(), None) {
        let other_name = str_at(&other, "/metadata/name").unwrap_or_default();
        if other_name == name {
            continue;
        }
        let entries = pointer(&other, "/spec/clusterIdentities").and_then(Value::as_array);
        for entry in entries.into_iter().flatten() {
            let Ok(theirs) = serde_json::from_value::<ClusterIdentity>(entry.clone()) else { continue };
            let gvk = theirs.gvk();
            if let Some(&i) = mine.get(&gvk) {
                // Identical entries (e.g. the core Secret most providers declare) resolve the same
                // whichever wins: nothing to warn about.
                if same_references(&identities[i], &theirs) {
                    continue;
                }
                // KCM lists PIs in name order and takes the first match.
                let winner = if other_name < name { other_name } else { name };
                out.push(Finding::warn(
                    PI_DECLARED_ELSEWHERE,
                    format!("spec.clusterIdentities[{i}]"),
                    format!(
                        "{id}: {gvk} is also declared by ProviderInterface {other_name}, with other references; the \
                         first match in name order wins, so ProviderInterface {winner}'s entry (and its references) \
                         is used"
                    ),
                    "declare each identity kind in one ProviderInterface only",
                ));
            }
        }
    }
}

/// Whether two entries reference the same objects the same way (an empty namespaceFieldPath is absent).
fn same_references(a: &ClusterIdentity, b: &ClusterIdentity) -> bool {
    let norm = |c: &ClusterIdentity| {
        let mut refs: Vec<_> = c
            .references
            .iter()
            .map(|r| {
                let ns = r.namespace_field_path.clone().filter(|p| !p.is_empty());
                (r.gvk(), r.name_field_path.clone(), ns)
            })
            .collect();
        refs.sort();
        refs
    };
    norm(a) == norm(b)
}

/// The complete identity GVKs a stored PI declares (read loosely: stored objects may be odd).
/// [`declared_gvks`] of an admitted object, from its typed model when it reads as one.
fn declared_by(pi: &AdmittedObject<'_>) -> Vec<Gvk> {
    match pi.parse::<ProviderInterface>("ProviderInterface", PI_INVALID) {
        Ok(pi) => pi
            .identities()
            .iter()
            .filter(|ci| !ci.version.is_empty() && !ci.kind.is_empty())
            .map(ClusterIdentity::gvk)
            .collect(),
        Err(_) => declared_gvks(pi.value()),
    }
}

fn declared_gvks(pi: &Value) -> Vec<Gvk> {
    let entries = pointer(pi, "/spec/clusterIdentities").and_then(Value::as_array);
    entries
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default();
            (!s("version").is_empty() && !s("kind").is_empty()).then(|| Gvk::new(s("group"), s("version"), s("kind")))
        })
        .collect()
}

/// Warns when identity GVKs the old object declared (and `kept` does not) are used by management
/// Credentials and no other ProviderInterface declares them.
fn check_removed(
    estate: &dyn Estate,
    name: &str,
    declared: Vec<Gvk>,
    kept: &[Gvk],
    field: &str,
    out: &mut Vec<Finding>,
) {
    let mut removed: Vec<Gvk> = declared.into_iter().filter(|g| !kept.contains(g)).collect();
    removed.sort();
    removed.dedup();
    if removed.is_empty() {
        return;
    }
    let others: Vec<Gvk> = estate
        .list(&Cluster::Management, &Gvk::provider_interface(), None)
        .iter()
        .filter(|pi| str_at(pi, "/metadata/name") != Some(name))
        .flat_map(|pi| declared_gvks(pi))
        .collect();
    removed.retain(|g| !others.contains(g));
    if removed.is_empty() {
        return;
    }
    for gvk in removed {
        let users: Vec<String> = estate
            .credentials_using_identity_kind(&gvk.api_version(), &gvk.kind)
            .iter()
            .filter(|c| str_at(c, "/spec/region").is_none())
            .map(|c| crate::model::display_name(c))
            .collect();
        if users.is_empty() {
            continue;
        }
        out.push(Finding::warn(
            PI_REMOVES_USED_IDENTITY,
            field,
            format!(
                "ProviderInterface {name}: removing {gvk} leaves {} without a ProviderInterface: {}; their identities \
                 are no longer distributed and KCM rejects new ClusterDeployments using them",
                count(users.len(), "Credential"),
                name_list(&users)
            ),
            "keep the entry until those Credentials are moved to another identity kind or deleted",
        ));
    }
}

fn validate_delete(input: &AdmissionInput<'_>, estate: &dyn Estate) -> Vec<Finding> {
    let Some(old) = input.old_object else { return Vec::new() };
    if old.is_deleting() {
        return Vec::new();
    }
    let mut out = Vec::new();
    check_removed(estate, input.name, declared_by(old), &[], "", &mut out);
    out
}
