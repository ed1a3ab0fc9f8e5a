//! Trigger mode, and the handover of Credentials written in write mode once the mode in force is
//! no longer write (a child of the engine: it works on the engine's state).
//!
//! Trigger mode never writes to a target cluster. A reconcile plans as write mode does (reads in
//! the management cluster, ProviderInterfaces and discovery in the target), sets
//! [`labels::TRIGGER_ANNOTATION`] on the Credential to the digest of its sources' versions when it
//! differs (KCM's Credential controller reacts to any change of the Credential and copies now),
//! then reads each planned copy in the target cluster and judges it with the core's
//! [`verify_copy`]: the verdict is our condition, Events and metrics. The copy watches of the
//! target cluster bring a deleted or edited copy back here within seconds.
//!
//! Handover: a Credential that still holds our finalizer was written by us in write mode. In
//! trigger mode KCM takes our copies over at its first update (they carry `managed: "true"`; KCM
//! adds its per-Credential label and writes the source's annotations, which drops our owners
//! annotation); once every copy carries KCM's label, our finalizer and copies record go from the
//! Credential. In off mode nobody will release the copies: they are recorded in ConfigMap
//! [`ORPHANED_COPIES`] first. Only the management cluster is written either way.

use std::time::Instant;

use credential_core::distribution::{
    CopyState, ORPHANED_COPIES, Verification, VerifyReason, kcm_adopted, kcm_copy_defects, kcm_namespace_defect,
    needs_trigger, trigger_digest, verification, verify_copy,
};
use credential_core::estate::Cluster;
use credential_core::identity::{self, ObjectKey, Plan};
use credential_core::model::labels;
use json_patch::Patch as JsonPatch;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use super::super::cluster::{ClusterConn, classify, to_value};
use super::super::error::{DistributionError, is_not_found};
use super::super::status::{DesiredCondition, EventType};
use super::{CredentialKey, Engine, EventReason, Outcome, Reason, lock, summary};

/// Where the copies of a Credential leaving write mode go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// Trigger mode: KCM takes them over.
    Kcm,
    /// Off mode: recorded as orphaned, left in place.
    Off,
}

/// What the copies in the target cluster look like.
struct Seen {
    states: Vec<(ObjectKey, CopyState)>,
    defects: Vec<String>,
    /// Every planned copy exists and carries KCM's label for this Credential.
    adopted: bool,
    /// Why the target could not be read, if it could not.
    unreadable: Option<String>,
}

impl Engine {
    /// Trigger mode for a live regional (or managed) Credential: see the module documentation.
    pub(super) async fn trigger_and_verify(
        &self,
        key: &CredentialKey,
        api: &Api<DynamicObject>,
        credential: &Value,
        target: &Cluster,
        finalizers: &[String],
    ) -> Result<Outcome, DistributionError> {
        if let Some(wait) = self.cluster_wait(target) {
            return Ok(Outcome::Wait(wait));
        }
        let conn = self.connection(target).await;
        // Bounded per cluster like write mode, though only reads go there.
        let _permit = match &conn {
            Ok(c) => Some(std::sync::Arc::clone(&c.permits).acquire_owned().await),
            Err(_) => None,
        };
        let planned = async {
            let conn = conn?;
            let pis = conn.provider_interfaces(self.config.cluster_timeout).await?;
            self.cluster_ok(target);
            let (plan, versions) = self.plan(credential, target, &conn, pis, false).await?;
            Ok::<_, DistributionError>((conn, plan, versions))
        };
        let (conn, plan, versions) = match planned.await {
            Ok(p) => p,
            Err(e) => {
                if matches!(e, DistributionError::Unreachable { .. }) {
                    self.cluster_failed(target);
                }
                let v = Verification {
                    reason: VerifyReason::NotVerifiable,
                    message: format!("cannot verify the copies in {target}: {e}; retrying with backoff"),
                };
                self.report_verification(api, credential, &v, &[]).await?;
                return Ok(Outcome::Failed { reason: v.reason.to_string() });
            }
        };
        self.remember(key, target, &plan);

        let digest = trigger_digest(&plan, &|k| versions.get(k));
        let triggered_before = !needs_trigger(credential, &digest);
        // A plan with problems is not triggered: KCM would fail the same way, and the condition
        // already says what to fix.
        if plan.problems.is_empty() && !triggered_before {
            self.trigger(key, api, &digest).await?;
        }

        let seen = self.read_copies(key, &conn, &plan).await;
        let mut defects = seen.defects;
        defects.extend(kcm_namespace_defect(credential, &plan));
        let v = verification(&plan, &seen.states, seen.unreadable.as_deref());
        // Right after a trigger the copies lag by design (KCM at work): not reported as Drifted or
        // Missing before `verify_interval` has passed; KCM's write comes back through the copy watch.
        let since_trigger = lock(&self.triggered_at).get(key).map(Instant::elapsed);
        if let Some(since) = since_trigger.filter(|s| *s < self.config.verify_interval)
            && matches!(v.reason, VerifyReason::Drifted | VerifyReason::Missing)
        {
            return Ok(Outcome::Wait(self.config.verify_interval - since));
        }
        let written = self.report_verification(api, credential, &v, &defects).await?;
        if written {
            match v.reason {
                VerifyReason::Drifted => {
                    for (k, _) in seen.states.iter().filter(|(_, s)| matches!(s, CopyState::Drifted { .. })) {
                        self.metrics.drifted(&k.gvk.kind);
                    }
                    self.event(credential, EventType::Warning, EventReason::Drifted.as_str(), "Verify", &v.message)
                        .await;
                }
                // Missing when KCM had its trigger and its time is worth a warning.
                VerifyReason::Missing if triggered_before => {
                    self.event(credential, EventType::Warning, EventReason::Missing.as_str(), "Verify", &v.message)
                        .await;
                }
                _ => {}
            }
            if !defects.is_empty() {
                let note = format!("copies in {target}: {}", defects.join("; "));
                self.event(credential, EventType::Warning, EventReason::KcmCopyDefect.as_str(), "Verify", &note).await;
            }
        }
        if v.reason == VerifyReason::InSync
            && let Some(at) = lock(&self.triggered_at).remove(key)
        {
            self.metrics.sync_after_trigger_seconds.observe(at.elapsed().as_secs_f64());
        }
        if v.reason == VerifyReason::InSync
            && seen.adopted
            && finalizers.iter().any(|f| f == labels::DISTRIBUTION_FINALIZER)
        {
            self.let_go(key, api, credential, finalizers).await?;
            self.metrics.handovers.inc();
            let note = format!(
                "KCM took over the copies credential-guard wrote in {target}; finalizer {} and annotation {} removed",
                labels::DISTRIBUTION_FINALIZER,
                labels::COPIES_ANNOTATION
            );
            self.event(credential, EventType::Normal, EventReason::HandedOver.as_str(), "Verify", &note).await;
        }
        Ok(match v.reason {
            VerifyReason::InSync => Outcome::Done,
            // The copy watches bring changes in seconds; this re-check covers a change made while
            // a watch (re)started.
            VerifyReason::Drifted | VerifyReason::Missing => Outcome::Wait(self.config.verify_interval),
            VerifyReason::NotVerifiable => Outcome::Failed { reason: v.reason.to_string() },
        })
    }

    /// Sets the trigger annotation (a metadata merge patch of the Credential, nothing else).
    async fn trigger(
        &self,
        key: &CredentialKey,
        api: &Api<DynamicObject>,
        digest: &str,
    ) -> Result<(), DistributionError> {
        let patch = json!({"metadata": {"annotations": {labels::TRIGGER_ANNOTATION: digest}}});
        let params = PatchParams { field_manager: Some(labels::FIELD_MANAGER.to_string()), ..PatchParams::default() };
        api.patch(&key.name, &params, &Patch::Merge(&patch)).await.map_err(|e| {
            DistributionError::api(format!("set annotation {} on Credential {key}", labels::TRIGGER_ANNOTATION), e)
        })?;
        self.metrics.triggers.inc();
        if let Some(at) = lock(&self.changed_at).remove(key) {
            self.metrics.trigger_delay_seconds.observe(at.elapsed().as_secs_f64());
        }
        lock(&self.triggered_at).insert(key.clone(), Instant::now());
        Ok(())
    }

    /// Reads each planned copy in the target cluster (GET only), watching its kind there.
    async fn read_copies(&self, key: &CredentialKey, conn: &ClusterConn, plan: &Plan) -> Seen {
        let mut seen = Seen { states: Vec::new(), defects: Vec::new(), adopted: true, unreadable: None };
        for copy in plan.copies.iter().filter(|c| c.object.is_some()) {
            let target = &copy.target;
            let found = match conn.resource(&target.gvk).await {
                // Not served there: KCM cannot have copied it.
                Ok(None) => None,
                Ok(Some((ar, namespaced))) => {
                    conn.ensure_copy_watch(&target.gvk, &ar, &self.on_copy);
                    let api = conn.api(&ar, namespaced, target.namespace.as_deref());
                    match api.get_opt(&target.name).await {
                        Ok(o) => o.map(|o| to_value(&o)),
                        Err(e) => {
                            let e = classify(&conn.cluster, format!("read {target}"), e);
                            seen.unreadable = Some(e.to_string());
                            return seen;
                        }
                    }
                }
                Err(e) => {
                    seen.unreadable = Some(e.to_string());
                    return seen;
                }
            };
            seen.adopted &= found.as_ref().is_some_and(|o| kcm_adopted(o, &key.namespace, &key.name));
            if let Some(o) = &found {
                seen.defects.extend(kcm_copy_defects(target, o));
            }
            seen.states.push((target.clone(), verify_copy(copy, found.as_ref())));
        }
        seen
    }

    /// Our condition from a verdict (True only for InSync), defects appended. Whether it was written.
    async fn report_verification(
        &self,
        api: &Api<DynamicObject>,
        credential: &Value,
        v: &Verification,
        defects: &[String],
    ) -> Result<bool, DistributionError> {
        let mut message = v.message.clone();
        if !defects.is_empty() {
            message.push_str(&format!("; KCM copy defects: {}", defects.join("; ")));
        }
        let desired = DesiredCondition { ok: v.reason == VerifyReason::InSync, reason: v.reason.to_string(), message };
        self.report(api, credential, &desired).await
    }

    /// A Credential leaving write mode: see the module documentation. Without our finalizer there
    /// is nothing to hand over.
    pub(super) async fn hand_over(
        &self,
        key: &CredentialKey,
        api: &Api<DynamicObject>,
        credential: &Value,
        finalizers: &[String],
        to: Handover,
    ) -> Result<Outcome, DistributionError> {
        if !finalizers.iter().any(|f| f == labels::DISTRIBUTION_FINALIZER) {
            self.forget(key);
            return Ok(Outcome::Done);
        }
        let remembered = lock(&self.last_plans).get(key).and_then(|f| f.target.clone());
        let cluster =
            remembered.or_else(|| identity::target_of(credential)).or_else(|| identity::recorded_cluster(credential));
        let deleting = credential.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null());
        if let Some(cluster) = &cluster {
            let (left, why) = match to {
                Handover::Off => (
                    self.held_objects(key, credential, cluster),
                    "distribution mode off: credential-guard no longer copies or releases cluster identities; these \
                     copies stay until deleted by hand",
                ),
                Handover::Kcm => (
                    self.not_taken_over(key, credential, cluster).await,
                    "handed over to KCM (distribution mode trigger) before KCM took these copies over, so KCM will \
                     not release them; delete them by hand when unused",
                ),
            };
            if !left.is_empty() {
                self.record_orphans(key, cluster, &left, why).await?;
            }
            if to == Handover::Off && !deleting {
                let desired = DesiredCondition {
                    ok: false,
                    reason: Reason::DistributionOff.to_string(),
                    message: format!(
                        "distribution mode off: nobody copies this Credential's cluster identities now; the copies \
                         in {cluster} stay as they are (recorded in ConfigMap {}/{ORPHANED_COPIES}): {}",
                        self.config.system_namespace,
                        summary(&left)
                    ),
                };
                self.report(api, credential, &desired).await?;
            }
        }
        self.let_go(key, api, credential, finalizers).await?;
        self.metrics.handovers.inc();
        let note = match to {
            Handover::Kcm => format!(
                "distribution mode trigger: KCM writes and releases the copies now; finalizer {} and annotation {} removed",
                labels::DISTRIBUTION_FINALIZER,
                labels::COPIES_ANNOTATION
            ),
            Handover::Off => format!(
                "distribution mode off: copies left in place and recorded in ConfigMap {}/{ORPHANED_COPIES}; \
                 finalizer {} and annotation {} removed",
                self.config.system_namespace,
                labels::DISTRIBUTION_FINALIZER,
                labels::COPIES_ANNOTATION
            ),
        };
        self.event(credential, EventType::Normal, EventReason::HandedOver.as_str(), "HandOver", &note).await;
        self.forget(key);
        Ok(Outcome::Done)
    }

    /// The copies this Credential holds in `cluster` that KCM has not taken over (no KCM label for
    /// it), read-only. What cannot be checked counts as not taken over.
    async fn not_taken_over(&self, key: &CredentialKey, credential: &Value, cluster: &Cluster) -> Vec<String> {
        let held = self.held_copies(key, credential, cluster);
        if held.is_empty() {
            return Vec::new();
        }
        let Ok(conn) = self.connection(cluster).await else {
            return held.iter().map(ToString::to_string).collect();
        };
        let mut left = Vec::new();
        for k in held {
            let found = match conn.resource(&k.gvk).await {
                Ok(None) => continue,
                Ok(Some((ar, namespaced))) => conn.api(&ar, namespaced, k.namespace.as_deref()).get_opt(&k.name).await,
                Err(_) => {
                    left.push(k.to_string());
                    continue;
                }
            };
            match found {
                Ok(None) => {}
                Ok(Some(o)) if kcm_adopted(&to_value(&o), &key.namespace, &key.name) => {}
                _ => left.push(k.to_string()),
            }
        }
        left
    }

    /// Removes our finalizer and our copies record from the Credential in one patch, guarded by a
    /// test of the finalizer entry it removes.
    async fn let_go(
        &self,
        key: &CredentialKey,
        api: &Api<DynamicObject>,
        credential: &Value,
        finalizers: &[String],
    ) -> Result<(), DistributionError> {
        let mut ops = Vec::new();
        if let Some(i) = finalizers.iter().position(|f| f == labels::DISTRIBUTION_FINALIZER) {
            let path = format!("/metadata/finalizers/{i}");
            ops.push(json!({"op": "test", "path": path, "value": labels::DISTRIBUTION_FINALIZER}));
            ops.push(json!({"op": "remove", "path": path}));
        }
        if credential.pointer("/metadata/annotations").and_then(|a| a.get(labels::COPIES_ANNOTATION)).is_some() {
            let path =
                format!("/metadata/annotations/{}", labels::COPIES_ANNOTATION.replace('~', "~0").replace('/', "~1"));
            ops.push(json!({"op": "remove", "path": path}));
        }
        if ops.is_empty() {
            return Ok(());
        }
        let patch: JsonPatch = serde_json::from_value(Value::Array(ops))
            .map_err(|e| DistributionError::Malformed { object: format!("Credential {key}"), detail: e.to_string() })?;
        match api.patch(&key.name, &PatchParams::default(), &Patch::<()>::Json(patch)).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(DistributionError::api(
                format!("remove finalizer {} from Credential {key}", labels::DISTRIBUTION_FINALIZER),
                e,
            )),
        }
    }
}
