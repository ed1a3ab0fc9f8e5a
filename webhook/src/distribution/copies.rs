//! Writing and releasing one copy in a target cluster.
//!
//! Ownership: a copy carries the managed label and the owners annotation (one `namespace/name`
//! per line, sorted), so any number of Credentials with names of any length can share it. An
//! object without the managed label is never written (a conflict is reported instead). A copy
//! whose last owner releases it is deleted; KCM's per-Credential labels count as owners too, so
//! a copy KCM still uses is never deleted from under it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use credential_core::estate::Cluster;
use credential_core::identity::{ObjectKey, is_managed, owners_annotation_value, owners_of, sanitize};
use credential_core::model::labels;
use credential_core::readiness::differences;
use kube::api::{ApiResource, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::{Value, json};

use super::cluster::{ClusterConn, classify, to_value};
use super::error::{DistributionError, is_not_found};

/// KCM's `k0rdent.mirantis.com/credential.<ns>.<name>` labels on an object.
fn kcm_owner_labels(obj: &Value) -> usize {
    credential_core::distribution::kcm_owners_of(obj).len()
}

/// What happened to one planned copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    Created,
    Updated,
    /// Already identical (including ownership): nothing was written.
    Unchanged,
    /// Exists without the managed label and with the same content: what is wanted is there,
    /// written by someone else (CAPA's own `default` AWSClusterControllerIdentity, say). Success;
    /// left untouched and not owned.
    PresentUnmanaged,
    /// Exists without the managed label and with other content: left untouched.
    Conflict,
}

/// What happened when a Credential released one copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// The last owner left: the copy was deleted.
    Deleted,
    /// Other owners remain: only this Credential was removed from the owners.
    Released,
    /// Nothing to do (absent, unmanaged, or not owned by this Credential).
    Untouched,
}

/// The object to apply: the planner's sanitised object, placed at `target`, marked managed and
/// owned by `owners` (the core's [`sanitize`] is idempotent on an already sanitised object).
pub fn desired_object(planned: &Value, target: &ObjectKey, owners: &[String]) -> Value {
    let mut obj = sanitize(planned, owners);
    if !obj.is_object() {
        obj = json!({"metadata": {}});
    }
    obj["apiVersion"] = json!(target.gvk.api_version());
    obj["kind"] = json!(target.gvk.kind);
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("name".into(), json!(target.name));
        match &target.namespace {
            Some(ns) => meta.insert("namespace".into(), json!(ns)),
            None => meta.remove("namespace"),
        };
    }
    obj
}

/// Whether `existing` already carries everything `desired` says (content, labels, owners): the
/// core's comparison, the same one `kubectl credential plan`/`explain` show, so they agree on
/// "unchanged".
pub fn same_content(existing: &Value, desired: &Value) -> bool {
    differences(desired, existing).is_empty()
}

/// (cluster, group, kind, namespace, name) of a target object.
type LockKey = (Cluster, String, String, Option<String>, String);

/// In-process locks per target object: the single leader serialises read-modify-write of a
/// shared copy's owners (two Credentials sharing a Secret must not lose each other's ownership).
#[derive(Default)]
pub struct ObjectLocks {
    map: Mutex<HashMap<LockKey, Weak<tokio::sync::Mutex<()>>>>,
}

impl ObjectLocks {
    pub fn lock_for(&self, cluster: &Cluster, key: &ObjectKey) -> Arc<tokio::sync::Mutex<()>> {
        let k = (cluster.clone(), key.gvk.group.clone(), key.gvk.kind.clone(), key.namespace.clone(), key.name.clone());
        let mut map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(existing) = map.get(&k).and_then(Weak::upgrade) {
            return existing;
        }
        if map.len() > 4096 {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(k, Arc::downgrade(&lock));
        lock
    }
}

fn describe(key: &ObjectKey, cluster: &Cluster) -> String {
    match &key.namespace {
        Some(ns) => format!("{} {ns}/{} in {cluster}", key.gvk.kind, key.name),
        None => format!("{} {} in {cluster}", key.gvk.kind, key.name),
    }
}

/// Server-side applies one copy for `owner` (see the module documentation).
pub async fn apply_copy(
    conn: &ClusterConn,
    ar: &ApiResource,
    namespaced: bool,
    target: &ObjectKey,
    planned: &Value,
    owner: &str,
) -> Result<ApplyOutcome, DistributionError> {
    let what = || describe(target, &conn.cluster);
    let api = conn.api(ar, namespaced, target.namespace.as_deref());
    let existing =
        api.get_opt(&target.name).await.map_err(|e| classify(&conn.cluster, format!("read {}", what()), e))?;
    let existing = existing.as_ref().map(to_value);
    let mut owners = Vec::new();
    if let Some(e) = &existing {
        if !is_managed(e) {
            let wanted = desired_object(planned, target, &[owner.to_string()]);
            return Ok(if differences(&wanted, e).content.is_empty() {
                ApplyOutcome::PresentUnmanaged
            } else {
                ApplyOutcome::Conflict
            });
        }
        owners = owners_of(e);
    }
    owners.push(owner.to_string());
    let mut body = desired_object(planned, target, &owners);
    if let Some(e) = &existing {
        if same_content(e, &body) {
            return Ok(ApplyOutcome::Unchanged);
        }
        // Precondition: fail (409) rather than overwrite a change made since the read.
        if let Some(rv) = e.pointer("/metadata/resourceVersion").cloned() {
            body["metadata"]["resourceVersion"] = rv;
        }
    } else if let (true, Some(ns)) = (namespaced, target.namespace.as_deref()) {
        conn.ensure_namespace(ns).await?;
    }
    // force only when the object is ours already; a create never needs it.
    let mut params = PatchParams::apply(labels::FIELD_MANAGER);
    params.force = existing.is_some();
    let written = api
        .patch(&target.name, &params, &Patch::Apply(&body))
        .await
        .map_err(|e| classify(&conn.cluster, format!("apply {}", what()), e))?;
    conn.note_own_write(target, written.metadata.resource_version.as_deref());
    Ok(if existing.is_some() { ApplyOutcome::Updated } else { ApplyOutcome::Created })
}

/// Which copies a release leaves alone besides those it does not own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spare {
    /// None: write mode's release (a copy KCM labels is never deleted, only our owner goes).
    Nothing,
    /// Copies KCM took over for the releasing Credential (trigger mode): KCM's, not written at all.
    Adopted,
}

/// The merge patch that leaves `owners` on a copy, guarded by its resourceVersion. No owner left
/// (KCM's labels keep the copy): the annotation is removed (null), as `identity::without_owner`
/// does, never left as an empty string.
fn release_patch(rv: Option<String>, owners: &[String]) -> Value {
    let value = if owners.is_empty() { Value::Null } else { json!(owners_annotation_value(owners)) };
    json!({"metadata": {"resourceVersion": rv, "annotations": {labels::OWNERS_ANNOTATION: value}}})
}

/// Removes `owner` from a copy's owners, deleting the copy when nobody owns it any more. With
/// `Spare::Adopted`, a copy that carries KCM's label for `owner` is KCM's and left untouched.
pub async fn release_copy(
    conn: &ClusterConn,
    ar: &ApiResource,
    namespaced: bool,
    target: &ObjectKey,
    owner: &str,
    spare: Spare,
) -> Result<ReleaseOutcome, DistributionError> {
    let what = || describe(target, &conn.cluster);
    let api = conn.api(ar, namespaced, target.namespace.as_deref());
    let Some(existing) =
        api.get_opt(&target.name).await.map_err(|e| classify(&conn.cluster, format!("read {}", what()), e))?
    else {
        return Ok(ReleaseOutcome::Untouched);
    };
    let existing = to_value(&existing);
    if spare == Spare::Adopted
        && let Some((ns, name)) = owner.split_once('/')
        && credential_core::distribution::kcm_adopted(&existing, ns, name)
    {
        return Ok(ReleaseOutcome::Untouched);
    }
    let mut owners = owners_of(&existing);
    let before = owners.len();
    owners.retain(|o| o != owner);
    if !is_managed(&existing) || owners.len() == before {
        return Ok(ReleaseOutcome::Untouched);
    }
    let rv = existing.pointer("/metadata/resourceVersion").and_then(Value::as_str).map(str::to_string);
    if owners.is_empty() && kcm_owner_labels(&existing) == 0 {
        let dp = DeleteParams {
            preconditions: Some(Preconditions { resource_version: rv, uid: None }),
            ..DeleteParams::default()
        };
        return match api.delete(&target.name, &dp).await {
            Ok(_) => Ok(ReleaseOutcome::Deleted),
            Err(e) if is_not_found(&e) => Ok(ReleaseOutcome::Untouched),
            Err(e) => Err(classify(&conn.cluster, format!("delete {}", what()), e)),
        };
    }
    let patch = release_patch(rv, &owners);
    let params = PatchParams { field_manager: Some(labels::FIELD_MANAGER.to_string()), ..PatchParams::default() };
    match api.patch(&target.name, &params, &Patch::Merge(&patch)).await {
        Ok(written) => {
            conn.note_own_write(target, written.metadata.resource_version.as_deref());
            Ok(ReleaseOutcome::Released)
        }
        Err(e) if is_not_found(&e) => Ok(ReleaseOutcome::Untouched),
        Err(e) => Err(classify(&conn.cluster, format!("release {}", what()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credential_core::gvk::Gvk;
    use serde_json::Map;

    fn key(ns: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey { gvk: Gvk::secret(), namespace: ns.map(str::to_string), name: name.into() }
    }

    #[test]
    fn desired_object_strips_annotations_and_marks_ownership() {
        let planned = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "src", "uid": "u", "resourceVersion": "7",
                "annotations": {labels::LAST_APPLIED: "{\"data\":{\"k\":\"c2VjcmV0\"}}"},
                "labels": {"team": "a"}},
            "data": {"k": "c2VjcmV0"}, "status": {"x": 1}});
        let owners = vec!["ns/cred".to_string()];
        let d = desired_object(&planned, &key(Some("kcm-system"), "s"), &owners);
        assert_eq!(d["metadata"]["namespace"], "kcm-system");
        assert_eq!(d["metadata"]["labels"][labels::MANAGED], "true");
        assert_eq!(d["metadata"]["labels"]["team"], "a");
        assert_eq!(d["metadata"]["annotations"].as_object().map(Map::len), Some(1));
        assert_eq!(d["metadata"]["annotations"][labels::OWNERS_ANNOTATION], "ns/cred");
        assert!(d["metadata"].get("uid").is_none() && d["metadata"].get("resourceVersion").is_none());
        assert!(d.get("status").is_none());
        assert!(!d.to_string().contains("last-applied"));
    }

    #[test]
    fn cluster_scoped_targets_have_no_namespace() {
        let planned = json!({"metadata": {"name": "id", "namespace": "x"}, "spec": {}});
        let k = ObjectKey {
            gvk: Gvk::new("infrastructure.cluster.x-k8s.io", "v1beta2", "AWSClusterStaticIdentity"),
            namespace: None,
            name: "id".into(),
        };
        let d = desired_object(&planned, &k, &[]);
        assert!(d["metadata"].get("namespace").is_none());
        assert_eq!(d["apiVersion"], "infrastructure.cluster.x-k8s.io/v1beta2");
    }

    #[test]
    fn same_content_sees_data_label_and_owner_changes() {
        let owners = vec!["ns/a".to_string()];
        let planned = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "MQ=="}});
        let d = desired_object(&planned, &key(Some("n"), "s"), &owners);
        let mut live = d.clone();
        live["metadata"]["resourceVersion"] = json!("5");
        live["metadata"]["labels"]["extra"] = json!("kept");
        assert!(same_content(&live, &d));
        live["data"]["k"] = json!("Mg==");
        assert!(!same_content(&live, &d), "rotated data must be re-applied");
        let mut live2 = d.clone();
        live2["metadata"]["annotations"][labels::OWNERS_ANNOTATION] = json!("ns/b");
        assert!(!same_content(&live2, &d), "this owner is not recorded yet");
        // apply_copy's desired owners are the existing ones plus this one: nothing to write when
        // the copy already lists them all.
        let shared = desired_object(&planned, &key(Some("n"), "s"), &["ns/a".to_string(), "ns/b".to_string()]);
        live2["metadata"]["annotations"][labels::OWNERS_ANNOTATION] = json!("ns/a\nns/b");
        assert!(same_content(&live2, &shared));
        let mut typed = d.clone();
        typed["type"] = json!("kubernetes.io/tls");
        assert!(!same_content(&typed, &d), "every top-level field counts, not just data");
        let mut live3 = d.clone();
        live3["stringData"] = json!({"x": "y"});
        assert!(!same_content(&live3, &d), "a field the source no longer has must go");
    }

    #[test]
    fn kcm_labels_count_as_owners() {
        let obj = json!({"metadata": {"labels": {"k0rdent.mirantis.com/credential.kcm-system.aws": "true",
            labels::MANAGED: "true"}}});
        assert_eq!(kcm_owner_labels(&obj), 1);
        assert!(is_managed(&obj));
    }

    #[test]
    fn release_patch_removes_an_emptied_owners_annotation() {
        let p = release_patch(Some("7".into()), &[]);
        assert_eq!(p["metadata"]["resourceVersion"], "7");
        let ann = p["metadata"]["annotations"].as_object().unwrap();
        assert_eq!(ann.get(labels::OWNERS_ANNOTATION), Some(&Value::Null), "removed, not \"\": {p}");
        let p = release_patch(None, &["b/y".to_string(), "a/x".to_string()]);
        assert_eq!(p["metadata"]["annotations"][labels::OWNERS_ANNOTATION], "a/x\nb/y");
        // The merge patch applied to a copy KCM still labels: no owners annotation at all, as the core's
        // without_owner leaves it.
        let mut live = live_before();
        json_patch::merge(&mut live, &release_patch(Some("7".into()), &[]));
        assert_eq!(live, credential_core::identity::without_owner(&live_before(), "ns/c"));
    }

    fn live_before() -> Value {
        json!({"metadata": {"resourceVersion": "7", "annotations": {labels::OWNERS_ANNOTATION: "ns/c", "keep": "1"},
            "labels": {labels::MANAGED: "true"}}})
    }

    #[tokio::test]
    async fn object_locks_are_shared_per_key() {
        let locks = ObjectLocks::default();
        let a1 = locks.lock_for(&Cluster::Management, &key(Some("n"), "s"));
        let a2 = locks.lock_for(&Cluster::Management, &key(Some("n"), "s"));
        let b = locks.lock_for(&Cluster::Region("r".into()), &key(Some("n"), "s"));
        assert!(Arc::ptr_eq(&a1, &a2));
        assert!(!Arc::ptr_eq(&a1, &b));
        let _g = a1.lock().await;
        assert!(a2.try_lock().is_err());
        assert!(b.try_lock().is_ok());
    }
}
