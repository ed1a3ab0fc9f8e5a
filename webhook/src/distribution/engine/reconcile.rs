//! One reconcile of a Credential: read it, choose by mode (write, trigger, off) and state
//! (distribute, release, hand over); the condition, Events and our finalizer.

use super::*;

/// What one reconcile does with a Credential, decided from the mode in force and the Credential's
/// state alone (no server: unit-tested below); the Engine carries it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// Leaving write mode: hand the copies over to KCM (trigger) or leave them recorded (off).
    HandOver(Handover),
    /// Trigger mode, a live Credential with a target: trigger KCM and verify its copies.
    TriggerAndVerify(Cluster),
    /// Write mode: bring the copies in `target` in line with the plan.
    Distribute(Cluster),
    /// Write mode, deleting or without a target while holding our finalizer: release the copies
    /// where they were made.
    Release(Cluster),
    /// Nothing of ours on it: forget what we remembered.
    Forget,
}

/// The Credential's API resource (what the controller's keys and the reads use).
pub(super) fn credential_resource() -> kube::api::ApiResource {
    known_resource(&Gvk::credential())
        .map(|(ar, _)| ar)
        .unwrap_or_else(|| kube::api::ApiResource::from_gvk(&super::super::cluster::to_kube_gvk(&Gvk::credential())))
}

/// See [`Step`]. `remembered`: the target of the Credential's last plan in this process.
pub(super) fn next_step(
    mode: Mode,
    target: Option<Cluster>,
    deleting: bool,
    has_finalizer: bool,
    remembered: Option<Cluster>,
) -> Step {
    match (mode, target) {
        (Mode::Off, _) => Step::HandOver(Handover::Off),
        (Mode::Trigger, Some(target)) if !deleting => Step::TriggerAndVerify(target),
        (Mode::Trigger, _) => Step::HandOver(Handover::Kcm),
        (Mode::Write, target) if deleting || target.is_none() => {
            if has_finalizer {
                // Released from where copies were made: the remembered target, else the current one.
                Step::Release(remembered.or(target).unwrap_or(Cluster::Management))
            } else {
                Step::Forget
            }
        }
        (Mode::Write, Some(target)) => Step::Distribute(target),
        (Mode::Write, None) => Step::Forget,
    }
}

impl Engine {
    pub(super) fn credential_api(&self, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.mgmt.clone(), namespace, &credential_resource())
    }

    /// Brings one Credential's copies in line with its plan (or releases them).
    pub async fn reconcile(&self, key: &CredentialKey) -> Result<Outcome, DistributionError> {
        let api = self.credential_api(&key.namespace);
        let Some(obj) =
            api.get_opt(&key.name).await.map_err(|e| DistributionError::api(format!("read Credential {key}"), e))?
        else {
            self.forget(key);
            return Ok(Outcome::Gone);
        };
        let credential = to_value(&obj);
        let target = identity::target_of(&credential);
        let deleting = credential.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null());
        let finalizers: Vec<String> = credential
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        let has_finalizer = finalizers.iter().any(|f| f == labels::DISTRIBUTION_FINALIZER);
        let remembered = lock(&self.last_plans).get(key).and_then(|f| f.target.clone());
        let target = match next_step(self.config.mode.mode(), target, deleting, has_finalizer, remembered) {
            Step::HandOver(to) => return self.hand_over(key, &api, &credential, &finalizers, to).await,
            Step::TriggerAndVerify(target) => {
                return self.trigger_and_verify(key, &api, &credential, &target, &finalizers).await;
            }
            Step::Forget => {
                self.forget(key);
                return Ok(Outcome::Done);
            }
            Step::Release(from) => return self.release(key, &api, &credential, &from, &finalizers).await,
            Step::Distribute(target) => target,
        };
        if let Some(wait) = self.cluster_wait(&target) {
            self.report_backing_off(&api, &credential, &target).await;
            return Ok(Outcome::Wait(wait));
        }
        // The finalizer goes on only right before the first regional write (distribute): until
        // something was written there is nothing to undo, and nothing may hold the Credential.
        let finalizer = (!has_finalizer).then_some((&api, finalizers.as_slice()));
        match self.distribute(key, &credential, &target, finalizer).await {
            Ok(Distributed::Wait(wait)) => {
                self.report_backing_off(&api, &credential, &target).await;
                Ok(Outcome::Wait(wait))
            }
            Ok(Distributed::Done(condition)) => {
                let failed = !condition.ok;
                // A Warning Event when the failure is new or changed, not at every retry.
                if self.report(&api, &credential, &condition).await? && failed {
                    self.event(&credential, EventType::Warning, &condition.reason, "Distribute", &condition.message)
                        .await;
                }
                Ok(if failed { Outcome::Failed { reason: condition.reason } } else { Outcome::Done })
            }
            Err(e) => {
                if matches!(e, DistributionError::Unreachable { .. })
                    || matches!(&e, DistributionError::Api { source, .. } if is_connect_error(source))
                {
                    self.cluster_failed(&target);
                }
                let desired = DesiredCondition {
                    ok: false,
                    reason: e.reason().to_string(),
                    message: format!("identities not distributed to {target}: {e}; retrying with backoff"),
                };
                if self.report(&api, &credential, &desired).await? {
                    self.event(&credential, EventType::Warning, e.reason().as_str(), "Distribute", &desired.message)
                        .await;
                }
                Ok(Outcome::Failed { reason: e.reason().to_string() })
            }
        }
    }

    /// A Credential whose cluster is backing off says so (`ClusterUnreachable`), written once,
    /// not at every retry: every Credential of a stalled cluster shows why it waits, not only
    /// those that happened to be attempted.
    pub(super) async fn report_backing_off(&self, api: &Api<DynamicObject>, credential: &Value, target: &Cluster) {
        let err = DistributionError::Unreachable {
            cluster: target.clone(),
            detail: "it failed to answer recently (refused, or no reply within the timeout)".to_string(),
        };
        let already = credential.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|cs| {
            cs.iter().any(|c| {
                c["type"] == labels::DISTRIBUTED_CONDITION
                    && c["status"] == "False"
                    && c["reason"] == err.reason().as_str()
            })
        });
        if already {
            return;
        }
        let desired = DesiredCondition {
            ok: false,
            reason: err.reason().to_string(),
            message: format!("identities not distributed to {target}: {err}; retrying with backoff"),
        };
        if let Err(e) = self.report(api, credential, &desired).await {
            tracing::debug!(error = %e, "condition not written; the next attempt writes it");
        }
    }

    pub(super) async fn report(
        &self,
        api: &Api<DynamicObject>,
        credential: &Value,
        desired: &DesiredCondition,
    ) -> Result<bool, DistributionError> {
        apply_condition(api, credential, desired).await
    }

    pub(super) async fn event(&self, credential: &Value, t: EventType, reason: &str, action: &str, note: &str) {
        publish_event(&self.recorder, credential, t, reason, action, note, None).await;
    }

    pub(super) async fn add_finalizer(
        &self,
        key: &CredentialKey,
        api: &Api<DynamicObject>,
        credential: &Value,
        finalizers: &[String],
    ) -> Result<(), DistributionError> {
        const ATTEMPTS: usize = 3;
        let mut fresh: Option<Value> = None;
        for attempt in 1..=ATTEMPTS {
            let current = fresh.as_ref().unwrap_or(credential);
            let held: Vec<String> = match &fresh {
                Some(c) => c
                    .pointer("/metadata/finalizers")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default(),
                None => finalizers.to_vec(),
            };
            if held.iter().any(|f| f == labels::DISTRIBUTION_FINALIZER) {
                return Ok(());
            }
            let patch: Value = if held.is_empty() {
                // No list yet: guard with the resourceVersion so a concurrent add is not clobbered.
                let rv = current.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null);
                json!([
                    {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
                    {"op": "add", "path": "/metadata/finalizers", "value": [labels::DISTRIBUTION_FINALIZER]},
                ])
            } else {
                json!([{"op": "add", "path": "/metadata/finalizers/-", "value": labels::DISTRIBUTION_FINALIZER}])
            };
            let patch: JsonPatch = serde_json::from_value(patch).map_err(|e| DistributionError::Malformed {
                object: format!("Credential {key}"),
                detail: e.to_string(),
            })?;
            match api.patch(&key.name, &PatchParams::default(), &Patch::<()>::Json(patch)).await {
                Ok(_) => return Ok(()),
                // The Credential changed since it was read (our own status write, another
                // controller's finalizer): the guard failed (422 from the patch's test, or 409).
                // Read it again and retry, instead of reporting a failure that is only a race.
                Err(e)
                    if attempt < ATTEMPTS && (is_conflict(&e) || super::super::error::status_code(&e) == Some(422)) =>
                {
                    let got = api
                        .get(&key.name)
                        .await
                        .map_err(|e| DistributionError::api(format!("read Credential {key}"), e))?;
                    fresh = Some(to_value(&got));
                }
                Err(e) => return Err(DistributionError::api(format!("add finalizer to Credential {key}"), e)),
            }
        }
        Ok(())
    }

    pub(super) async fn remove_finalizer(
        &self,
        key: &CredentialKey,
        api: &Api<DynamicObject>,
        finalizers: &[String],
    ) -> Result<(), DistributionError> {
        let Some(i) = finalizers.iter().position(|f| f == labels::DISTRIBUTION_FINALIZER) else { return Ok(()) };
        let path = format!("/metadata/finalizers/{i}");
        let patch: JsonPatch = serde_json::from_value(json!([
            {"op": "test", "path": path, "value": labels::DISTRIBUTION_FINALIZER},
            {"op": "remove", "path": path},
        ]))
        .map_err(|e| DistributionError::Malformed { object: format!("Credential {key}"), detail: e.to_string() })?;
        match api.patch(&key.name, &PatchParams::default(), &Patch::<()>::Json(patch)).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(DistributionError::api(format!("remove finalizer from Credential {key}"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_step_follows_mode_target_deletion_and_finalizer() {
        let r1 = || Some(Cluster::Region("r1".into()));
        let r0 = || Some(Cluster::Region("r0".into()));
        let region = |n: &str| Cluster::Region(n.into());
        // Write mode.
        assert_eq!(next_step(Mode::Write, r1(), false, false, None), Step::Distribute(region("r1")));
        assert_eq!(next_step(Mode::Write, r1(), false, true, r0()), Step::Distribute(region("r1")));
        assert_eq!(
            next_step(Mode::Write, r1(), true, true, r0()),
            Step::Release(region("r0")),
            "where copies were made"
        );
        assert_eq!(next_step(Mode::Write, r1(), true, true, None), Step::Release(region("r1")));
        assert_eq!(next_step(Mode::Write, None, false, true, None), Step::Release(Cluster::Management));
        assert_eq!(next_step(Mode::Write, r1(), true, false, r0()), Step::Forget, "nothing of ours holds it");
        assert_eq!(next_step(Mode::Write, None, false, false, None), Step::Forget);
        // Trigger mode: never a write to a target; deleting or target-less Credentials are handed over.
        assert_eq!(next_step(Mode::Trigger, r1(), false, true, None), Step::TriggerAndVerify(region("r1")));
        assert_eq!(next_step(Mode::Trigger, r1(), true, true, None), Step::HandOver(Handover::Kcm));
        assert_eq!(next_step(Mode::Trigger, None, false, false, None), Step::HandOver(Handover::Kcm));
        // Off mode: always handed over (nothing to do without our finalizer, decided by hand_over).
        assert_eq!(next_step(Mode::Off, r1(), false, true, r0()), Step::HandOver(Handover::Off));
    }
}
