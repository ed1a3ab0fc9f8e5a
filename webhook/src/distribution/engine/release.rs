//! Releasing a Credential's copies when it goes (or leaves its target), recording what stays
//! when a release is given up.

use super::*;

impl Engine {
    /// Releases this Credential's ownership of its copies, deleting those nobody else owns; the
    /// finalizer goes only when that succeeded.
    pub(super) async fn release(
        &self,
        key: &CredentialKey,
        api: &Api<DynamicObject>,
        credential: &Value,
        target: &Cluster,
        finalizers: &[String],
    ) -> Result<Outcome, DistributionError> {
        let overdue = deleting_for(credential) >= self.config.release_timeout;
        if let Some(wait) = self.cluster_wait(target) {
            if overdue {
                let why = format!("{target} did not answer for {}s", self.config.release_timeout.as_secs());
                return self.abandon(key, api, credential, target, finalizers, &why).await;
            }
            return Ok(Outcome::Wait(wait));
        }
        match self.release_all(key, credential, target).await {
            Ok(deleted) => {
                self.remove_finalizer(key, api, finalizers).await?;
                if deleted > 0 {
                    self.event(
                        credential,
                        EventType::Normal,
                        EventReason::Released.as_str(),
                        "Release",
                        &format!("released copies in {target}; deleted {deleted} no other Credential owns"),
                    )
                    .await;
                }
                self.forget(key);
                Ok(Outcome::Done)
            }
            Err(e) => {
                if matches!(e, DistributionError::Unreachable { .. }) {
                    self.cluster_failed(target);
                }
                // A Region that is gone cannot come back for this Credential: waiting helps
                // nobody. Anything else (unreachable, forbidden) is retried up to the timeout.
                if matches!(e, DistributionError::RegionNotFound { .. }) || overdue {
                    return self.abandon(key, api, credential, target, finalizers, &e.to_string()).await;
                }
                let desired = DesiredCondition {
                    ok: false,
                    reason: Reason::ReleasePending.to_string(),
                    message: format!(
                        "copies in {target} not released yet ({e}); finalizer {} stays until they are, retrying \
                         with backoff for at most {}s after deletion",
                        labels::DISTRIBUTION_FINALIZER,
                        self.config.release_timeout.as_secs()
                    ),
                };
                if self.report(api, credential, &desired).await.unwrap_or(false) {
                    self.event(
                        credential,
                        EventType::Warning,
                        Reason::ReleasePending.as_str(),
                        "Release",
                        &desired.message,
                    )
                    .await;
                }
                Ok(Outcome::Failed { reason: e.reason().to_string() })
            }
        }
    }

    /// Records on the Credential the copies it holds in `target` (annotation
    /// [`labels::COPIES_ANNOTATION`], names only), when that differs from what it carries. An
    /// empty set with no record writes nothing.
    pub(super) async fn record_copies(
        &self,
        key: &CredentialKey,
        credential: &Value,
        target: &Cluster,
        held: &[ObjectKey],
    ) -> Result<(), DistributionError> {
        let current = credential.pointer("/metadata/annotations").and_then(|a| a.get(labels::COPIES_ANNOTATION));
        let wanted = identity::copies_annotation_value(target, held);
        let value = match (current.and_then(Value::as_str), held.is_empty()) {
            (None, true) => return Ok(()),
            (Some(c), _) if c == wanted => return Ok(()),
            (Some(_), true) => Value::Null,
            _ => Value::String(wanted),
        };
        let patch = json!({"metadata": {"annotations": {labels::COPIES_ANNOTATION: value}}});
        self.credential_api(&key.namespace)
            .patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| DistributionError::api(format!("record the copies of Credential {key}"), e))?;
        Ok(())
    }

    /// Gives up a release that cannot be carried out: records what may remain where (ConfigMap
    /// [`ORPHANED_COPIES`] in the system namespace), says so in a Warning Event and a metric, and
    /// removes the finalizer, so the Credential is never held forever.
    pub(super) async fn abandon(
        &self,
        key: &CredentialKey,
        api: &Api<DynamicObject>,
        credential: &Value,
        target: &Cluster,
        finalizers: &[String],
        why: &str,
    ) -> Result<Outcome, DistributionError> {
        let objects = self.held_objects(key, credential, target);
        let note = format!(
            "released nothing in {target} ({why}); finalizer {} removed after giving up. These may remain there: \
             {}. Recorded in ConfigMap {}/{ORPHANED_COPIES}; delete them by hand if the cluster still exists",
            labels::DISTRIBUTION_FINALIZER,
            summary(&objects),
            self.config.system_namespace,
        );
        if let Err(e) = self.record_orphans(key, target, &objects, why).await {
            tracing::warn!(credential = %key, error = %e, "orphaned copies not recorded");
        }
        self.metrics.releases_abandoned.inc();
        self.event(credential, EventType::Warning, EventReason::ReleaseAbandoned.as_str(), "Release", &note).await;
        tracing::warn!(credential = %key, cluster = %target, objects = ?objects, reason = why, "release abandoned");
        self.remove_finalizer(key, api, finalizers).await?;
        self.forget(key);
        Ok(Outcome::Done)
    }

    /// The copies a Credential holds in `target`: remembered by this process, and recorded on the
    /// Credential by whichever replica wrote them.
    pub(super) fn held_copies(&self, key: &CredentialKey, credential: &Value, target: &Cluster) -> Vec<ObjectKey> {
        let mut held = lock(&self.last_plans).get(key).map(|f| f.copies.clone()).unwrap_or_default();
        for k in identity::recorded_copies(credential, target) {
            if !held.contains(&k) {
                held.push(k);
            }
        }
        held
    }

    /// [`Engine::held_copies`] as `Kind namespace/name`, or what they are copies of when nothing
    /// says which (a record written by an older version).
    pub(super) fn held_objects(&self, key: &CredentialKey, credential: &Value, target: &Cluster) -> Vec<String> {
        let held = self.held_copies(key, credential, target);
        if held.is_empty() {
            let iref = credential.pointer("/spec/identityRef");
            let field = |f: &str| iref.and_then(|r| r.get(f)).and_then(Value::as_str).unwrap_or("?").to_string();
            return vec![format!("copies of {} {} and the objects it references", field("kind"), field("name"))];
        }
        held.iter().map(ToString::to_string).collect()
    }

    /// One entry per (cluster, Credential) in ConfigMap [`ORPHANED_COPIES`]: what may remain.
    pub(super) async fn record_orphans(
        &self,
        key: &CredentialKey,
        target: &Cluster,
        objects: &[String],
        why: &str,
    ) -> Result<(), DistributionError> {
        let entry = OrphanRecord {
            credential: OrphanOwner { namespace: key.namespace.clone(), name: key.name.clone() },
            cluster: target.to_string(),
            objects: objects.to_vec(),
            reason: why.to_string(),
            since: k8s_openapi::jiff::Timestamp::now().to_string(),
        };
        let entry = serde_json::to_string(&entry).map_err(|e| DistributionError::Malformed {
            object: format!("ConfigMap {ORPHANED_COPIES}"),
            detail: e.to_string(),
        })?;
        // One key per (cluster, Credential), added with a JSON merge patch: a server-side apply of
        // only the new key by the same field manager would remove every key it applied before.
        let data_key = orphan_key(target, &key.namespace, &key.name);
        let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(self.mgmt.clone(), &self.config.system_namespace);
        let params = PatchParams { field_manager: Some(labels::FIELD_MANAGER.to_string()), ..PatchParams::default() };
        let fail = |e| DistributionError::api(format!("record orphaned copies in ConfigMap {ORPHANED_COPIES}"), e);
        let merge = Patch::Merge(json!({ "data": { data_key.as_str(): entry.as_str() } }));
        match api.patch(ORPHANED_COPIES, &params, &merge).await {
            Err(e) if is_not_found(&e) => {}
            other => return other.map(drop).map_err(fail),
        }
        let created = k8s_openapi::api::core::v1::ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(ORPHANED_COPIES.to_string()),
                namespace: Some(self.config.system_namespace.clone()),
                ..kube::api::ObjectMeta::default()
            },
            data: Some([(data_key, entry)].into_iter().collect()),
            ..k8s_openapi::api::core::v1::ConfigMap::default()
        };
        let post = kube::api::PostParams {
            field_manager: Some(labels::FIELD_MANAGER.to_string()),
            ..kube::api::PostParams::default()
        };
        match api.create(&post, &created).await {
            // Created by another release in between: add to it.
            Err(e) if is_conflict(&e) => api.patch(ORPHANED_COPIES, &params, &merge).await.map(drop).map_err(fail),
            other => other.map(drop).map_err(fail),
        }
    }

    pub(super) async fn release_all(
        &self,
        key: &CredentialKey,
        credential: &Value,
        target: &Cluster,
    ) -> Result<usize, DistributionError> {
        let conn = self.connection(target).await?;
        let _permit = conn.permits.acquire().await;
        let pis = conn.provider_interfaces(self.config.cluster_timeout).await?;
        // The identity graph as it is now; copies stand in for deleted sources.
        let mut plan_credential = credential.clone();
        if let Cluster::Region(r) = target
            && plan_credential.pointer("/spec/region").and_then(Value::as_str).is_none_or(str::is_empty)
        {
            plan_credential["spec"]["region"] = json!(r);
        }
        let plan = self.plan(&plan_credential, target, &conn, pis, true, &Reads::Api).await?.plan;
        let mut keys: Vec<ObjectKey> = plan.copies.iter().map(|c| c.target.clone()).collect();
        for k in self.held_copies(key, credential, target) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        // Referencing objects first (reverse apply order), so no copy points at a deleted one.
        keys.reverse();
        let owner = key.to_string();
        let mut deleted = 0;
        for k in &keys {
            // The right API resource for every kind, group included (KCM drops the group here).
            let Some((ar, namespaced)) = conn.resource(&k.gvk).await? else { continue };
            let lock_handle = self.locks.lock_for(target, k);
            let _guard = lock_handle.lock().await;
            if release_copy(&conn, &ar, namespaced, k, &owner, Spare::Nothing).await? == ReleaseOutcome::Deleted {
                self.metrics.copies_deleted.inc();
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}
