//! Trigger mode, and the handover of Credentials written in write mode once the mode in force is
//! no longer write (a child of the engine: it works on the engine's state).
//!
//! Trigger mode never writes to a target cluster. A reconcile plans as write mode does, from what
//! the source watches hold where they hold it (`Engine::held_source`), sets
//! [`labels::TRIGGER_ANNOTATION`] on the Credential to the digest of its sources' versions when it
//! differs (KCM's Credential controller reacts to any change of the Credential and copies now),
//! then judges each planned copy with the core's [`verify_copy`]: the verdict is our condition,
//! Events and metrics. A copy is read (and its source's content with it) only when the copy or its
//! source changed since its last [`Verdict`], and not while KCM is rewriting it after a trigger. The
//! copy watches of the target cluster bring a rewritten, deleted or edited copy back here within
//! seconds; a re-check `verify_interval` after a trigger covers a rewrite that never comes.
//!
//! Handover: a Credential that still holds our finalizer was written by us in write mode. In
//! trigger mode KCM takes our copies over at its first update (they carry `managed: "true"`; KCM
//! adds its per-Credential label and writes the source's annotations, which drops our owners
//! annotation); once every copy carries KCM's label, our finalizer and copies record go from the
//! Credential. A Credential KCM copies nothing for any more (deleting, or without a target) gets
//! the copies KCM did not take over released (`Engine::release_not_taken_over`). In off mode nobody
//! will release the copies: they are recorded in ConfigMap [`ORPHANED_COPIES`] first.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use credential_core::distribution::{
    CopyState, ORPHANED_COPIES, Verification, VerifyReason, kcm_adopted, kcm_copy_defects, kcm_namespace_defect,
    needs_trigger, trigger_digest, verification, verify_copy,
};
use credential_core::estate::Cluster;
use credential_core::identity::{self, ObjectKey, Plan, PlannedCopy};
use credential_core::model::labels;
use json_patch::Patch as JsonPatch;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use super::super::cluster::{ClusterConn, classify, to_value};
use super::super::copies::{ReleaseOutcome, Spare, release_copy};
use super::super::error::{DistributionError, is_not_found};
use super::super::estate::SourceVersions;
use super::super::status::{DesiredCondition, EventType};
use super::sources::{Planned, Reads, version_of};
use super::{CredentialKey, Engine, EventReason, Outcome, Reason, SourceKey, deleting_for, lock, source_key, summary};

/// Where the copies of a Credential leaving write mode go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// Trigger mode: KCM takes them over.
    Kcm,
    /// Off mode: recorded as orphaned, left in place.
    Off,
}

/// The last verdict on one copy, and the versions it was judged at.
#[derive(Debug, Clone)]
pub(super) struct Verdict {
    source: ObjectKey,
    /// The source's (uid, resourceVersion) then.
    source_version: Option<(String, String)>,
    /// The copy's resourceVersion when it was read; `None`: it was absent.
    copy_version: Option<String>,
    state: CopyState,
    defects: Vec<String>,
    /// It carried KCM's label for this Credential.
    adopted: bool,
}

/// What one reconcile does about a planned copy.
enum Look {
    /// Neither the source nor the copy changed since this verdict: it stands, nothing is read.
    Reuse(Box<Verdict>),
    /// Its source changed and KCM is being triggered for it: KCM's write comes back through the
    /// copy watch, so reading the copy now would only find it behind.
    Pending,
    /// Read the copy and judge it (the source's content is in the plan).
    Read,
}

/// What [`Engine::release_not_taken_over`] did.
#[derive(Default)]
struct Released {
    deleted: usize,
    /// Our owner removed, the copy kept for its other owners.
    released: usize,
    /// `Kind namespace/name` of each copy that could not be released.
    left: Vec<String>,
    /// The first failure.
    failure: Option<DistributionError>,
}

impl Released {
    /// For the HandedOver Event: what was released (empty when nothing was).
    fn note(&self) -> String {
        match (self.deleted, self.released) {
            (0, 0) => String::new(),
            (d, r) => format!(
                "copies it had not taken over released ({d} deleted, {r} kept for their other owners), as KCM will \
                 not take them over now; "
            ),
        }
    }
}

/// What the copies in the target cluster look like.
#[derive(Default)]
struct Seen {
    states: Vec<(ObjectKey, CopyState)>,
    defects: Vec<String>,
    /// Every planned copy exists and carries KCM's label for this Credential.
    adopted: bool,
    /// Why the target could not be read, if it could not.
    unreadable: Option<String>,
    /// A copy KCM is rewriting now was not judged.
    pending: bool,
    /// The verdicts made or confirmed now, by copy.
    verdicts: Vec<(ObjectKey, Verdict)>,
}

/// What to do about one planned copy, from its last verdict, the source's version in this plan and
/// the copy's version in its watch (no request). A copy its watch does not hold (absent, or not
/// listed) is read: an object without the managed label is not in that watch.
fn look(
    conn: &ClusterConn,
    copy: &PlannedCopy,
    versions: &SourceVersions,
    memo: &HashMap<ObjectKey, Verdict>,
    due: bool,
) -> Look {
    let Some(last) = memo.get(&copy.target).filter(|v| v.source == copy.source) else { return Look::Read };
    let source_version = versions.get(&copy.source);
    let copy_version = conn
        .cached_resource(&copy.target.gvk)
        .and_then(|(ar, _)| conn.watched_copy(&ar, copy.target.namespace.as_deref(), &copy.target.name))
        .flatten()
        .and_then(|o| version_of(&o).1.map(str::to_string));
    if last.source_version == source_version && copy_version.is_some() && copy_version == last.copy_version {
        Look::Reuse(Box::new(last.clone()))
    } else if due && last.source_version != source_version {
        Look::Pending
    } else {
        Look::Read
    }
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
        let memo = lock(&self.verdicts).get(key).cloned().unwrap_or_default();
        let planned = async {
            let conn = conn?;
            let pis = conn.provider_interfaces(self.config.cluster_timeout).await?;
            self.cluster_ok(target);
            let (planned, looks) = self.plan_and_look(credential, target, &conn, pis, &memo).await?;
            Ok::<_, DistributionError>((conn, planned, looks))
        };
        let (conn, Planned { plan, versions, .. }, looks) = match planned.await {
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

        // With plan problems the verdict is NotVerifiable whatever the copies hold: none is read.
        let seen = if plan.problems.is_empty() {
            self.look_at_copies(key, &conn, &plan, &versions, looks).await
        } else {
            Seen::default()
        };
        self.keep_verdicts(key, &plan, &memo, &seen.verdicts);
        let mut defects = seen.defects;
        defects.extend(kcm_namespace_defect(credential, &plan));
        let v = verification(&plan, &seen.states, seen.unreadable.as_deref());
        // KCM was triggered for a copy just now: nothing to judge until its write arrives (the copy
        // watch) or `verify_interval` passes (the re-check `trigger` arranged).
        if seen.pending && seen.unreadable.is_none() {
            return Ok(Outcome::Done);
        }
        // Right after a trigger the copies lag by design (KCM at work): not reported as Drifted or
        // Missing before `verify_interval` has passed; KCM's write comes back through the copy
        // watch, and the re-check `trigger` arranged covers a write that never comes.
        let since_trigger = lock(&self.triggered_at).get(key).map(Instant::elapsed);
        if since_trigger.is_some_and(|s| s < self.config.verify_interval)
            && matches!(v.reason, VerifyReason::Drifted | VerifyReason::Missing)
        {
            return Ok(Outcome::Done);
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
        let at = Instant::now();
        lock(&self.triggered_at).insert(key.clone(), at);
        self.verify_later(key, at);
        Ok(())
    }

    /// Re-checks `key` once `verify_interval` after its trigger at `at`, unless its copies were
    /// verified in sync meanwhile (or it was triggered again): a copy KCM never writes brings no
    /// watch event, and is reported Missing or Drifted then. Without this the reconcile would
    /// requeue itself, and that requeue would run even after the copies were verified.
    fn verify_later(&self, key: &CredentialKey, at: Instant) {
        let (engine, key) = (self.me.clone(), key.clone());
        // A little past the interval, so the re-check finds the lag window over.
        let delay = self.config.verify_interval + std::time::Duration::from_millis(10);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let Some(engine) = engine.upgrade() else { return };
            let due = lock(&engine.triggered_at).get(&key) == Some(&at);
            if due {
                engine.enqueue(key);
            }
        });
    }

    /// Plans from what the watches hold and decides, copy by copy, what this reconcile does about
    /// it ([`Look`]); plans again with the contents the copies to read need (Secrets known by
    /// metadata only), or all of them when the plan has problems (a Secret's fields may be what
    /// does not resolve). The second plan asks for nothing more unless it names new sources, then
    /// a third reads everything.
    async fn plan_and_look(
        &self,
        credential: &Value,
        target: &Cluster,
        conn: &ClusterConn,
        pis: Vec<std::sync::Arc<Value>>,
        memo: &HashMap<ObjectKey, Verdict>,
    ) -> Result<(Planned, Vec<Look>), DistributionError> {
        let mut content = HashSet::new();
        for round in 0..3 {
            let reads = if round < 2 { Reads::Watched { content: &content } } else { Reads::Api };
            let planned = self.plan(credential, target, conn, pis.clone(), false, &reads).await?;
            let (looks, needed): (Vec<Look>, HashSet<SourceKey>) = if planned.plan.problems.is_empty() {
                let digest = trigger_digest(&planned.plan, &|k| planned.versions.get(k));
                let due = needs_trigger(credential, &digest);
                let copies: Vec<&PlannedCopy> = planned.plan.copies.iter().filter(|c| c.object.is_some()).collect();
                let looks: Vec<Look> = copies.iter().map(|c| look(conn, c, &planned.versions, memo, due)).collect();
                let needed = copies
                    .iter()
                    .zip(&looks)
                    .filter(|(_, l)| matches!(l, Look::Read))
                    .map(|(c, _)| source_key(&c.source.gvk, c.source.namespace.as_deref(), &c.source.name))
                    .filter(|k| planned.partial.contains(k))
                    .collect();
                (looks, needed)
            } else {
                (Vec::new(), planned.partial.clone())
            };
            if needed.is_empty() {
                return Ok((planned, looks));
            }
            content.extend(needed);
        }
        // Unreachable in practice (the third plan reads every source whole); planned once more
        // from the API so the caller always gets whole contents.
        let planned = self.plan(credential, target, conn, pis, false, &Reads::Api).await?;
        let looks = planned.plan.copies.iter().filter(|c| c.object.is_some()).map(|_| Look::Read).collect();
        Ok((planned, looks))
    }

    /// Reads the copies `looks` says to read (GET only, watching their kind there), and gathers
    /// the verdicts that stand.
    async fn look_at_copies(
        &self,
        key: &CredentialKey,
        conn: &ClusterConn,
        plan: &Plan,
        versions: &SourceVersions,
        looks: Vec<Look>,
    ) -> Seen {
        let mut seen = Seen { adopted: true, ..Seen::default() };
        let copies = plan.copies.iter().filter(|c| c.object.is_some());
        for (copy, look) in copies.zip(looks) {
            let target = &copy.target;
            let verdict = match look {
                Look::Reuse(v) => *v,
                Look::Pending => {
                    seen.pending = true;
                    seen.adopted = false;
                    continue;
                }
                Look::Read => match self.read_copy(key, conn, copy, versions).await {
                    Ok(v) => v,
                    Err(e) => {
                        seen.unreadable = Some(e.to_string());
                        return seen;
                    }
                },
            };
            seen.adopted &= verdict.adopted;
            seen.defects.extend(verdict.defects.iter().cloned());
            seen.states.push((target.clone(), verdict.state.clone()));
            seen.verdicts.push((target.clone(), verdict));
        }
        seen
    }

    /// Reads one planned copy in the target cluster and judges it against its source.
    async fn read_copy(
        &self,
        key: &CredentialKey,
        conn: &ClusterConn,
        copy: &PlannedCopy,
        versions: &SourceVersions,
    ) -> Result<Verdict, DistributionError> {
        let target = &copy.target;
        let found = match conn.resource(&target.gvk).await? {
            // Not served there: KCM cannot have copied it.
            None => None,
            Some((ar, namespaced)) => {
                conn.ensure_copy_watch(&target.gvk, &ar, &self.on_copy);
                let api = conn.api(&ar, namespaced, target.namespace.as_deref());
                let found = api
                    .get_opt(&target.name)
                    .await
                    .map_err(|e| classify(&conn.cluster, format!("read {target}"), e))?;
                found.map(|o| to_value(&o))
            }
        };
        Ok(Verdict {
            source: copy.source.clone(),
            source_version: versions.get(&copy.source),
            copy_version: found.as_ref().and_then(|o| version_of(o).1).map(str::to_string),
            state: verify_copy(copy, found.as_ref()),
            defects: found.as_ref().map(|o| kcm_copy_defects(target, o)).unwrap_or_default(),
            adopted: found.as_ref().is_some_and(|o| kcm_adopted(o, &key.namespace, &key.name)),
        })
    }

    /// Remembers the verdicts on the copies `plan` has: those made or confirmed now, the earlier
    /// ones of copies not judged now (pending, or not reached).
    fn keep_verdicts(
        &self,
        key: &CredentialKey,
        plan: &Plan,
        memo: &HashMap<ObjectKey, Verdict>,
        now: &[(ObjectKey, Verdict)],
    ) {
        let mut kept: HashMap<ObjectKey, Verdict> =
            plan.copies.iter().filter_map(|c| memo.get(&c.target).map(|v| (c.target.clone(), v.clone()))).collect();
        kept.extend(now.iter().cloned());
        lock(&self.verdicts).insert(key.clone(), kept);
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
        let mut released = None;
        if let Some(cluster) = &cluster {
            let (left, why) = match to {
                Handover::Off => (
                    self.held_objects(key, credential, cluster),
                    "distribution mode off: credential-guard no longer copies or releases cluster identities; these \
                     copies stay until deleted by hand"
                        .to_string(),
                ),
                Handover::Kcm => {
                    let r = self.release_not_taken_over(key, credential, cluster).await;
                    if let Some(failure) = &r.failure {
                        let overdue = deleting_for(credential) >= self.config.release_timeout;
                        // Retried like write mode's release, up to the timeout; a Region that is
                        // gone cannot come back for this Credential.
                        if !overdue && !matches!(failure, DistributionError::RegionNotFound { .. }) {
                            return self.release_pending(api, credential, cluster, failure).await;
                        }
                    }
                    let why = match &r.failure {
                        Some(e) => format!(
                            "written by credential-guard in write mode, not taken over by KCM (distribution mode \
                             trigger), and not released ({e}); KCM will not release them: delete them by hand when \
                             unused"
                        ),
                        None => String::new(),
                    };
                    let left = r.left.clone();
                    released = Some(r);
                    (left, why)
                }
            };
            if !left.is_empty() {
                self.record_orphans(key, cluster, &left, &why).await?;
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
                "distribution mode trigger: KCM writes and releases the copies now; {}finalizer {} and annotation {} \
                 removed",
                released.as_ref().map(Released::note).unwrap_or_default(),
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

    /// Trigger mode, a Credential KCM copies nothing for any more (being deleted, or without a
    /// target) that still holds copies credential-guard wrote in write mode: KCM will never take
    /// those over, so each one it has not taken over yet (no KCM label for this Credential) is
    /// released as write mode releases it (deleted unless another Credential owns it); those KCM
    /// took over are KCM's and stay untouched. What could not be released is returned.
    async fn release_not_taken_over(&self, key: &CredentialKey, credential: &Value, cluster: &Cluster) -> Released {
        let held = self.held_copies(key, credential, cluster);
        let mut out = Released::default();
        if held.is_empty() {
            return out;
        }
        let conn = match self.connection(cluster).await {
            Ok(c) => c,
            Err(e) => {
                out.left = held.iter().map(ToString::to_string).collect();
                out.failure = Some(e);
                return out;
            }
        };
        let owner = key.to_string();
        for k in held {
            let released = async {
                let Some((ar, namespaced)) = conn.resource(&k.gvk).await? else { return Ok(ReleaseOutcome::Untouched) };
                let lock_handle = self.locks.lock_for(cluster, &k);
                let _guard = lock_handle.lock().await;
                release_copy(&conn, &ar, namespaced, &k, &owner, Spare::Adopted).await
            };
            match released.await {
                Ok(ReleaseOutcome::Deleted) => {
                    self.metrics.copies_deleted.inc();
                    out.deleted += 1;
                }
                Ok(ReleaseOutcome::Released) => out.released += 1,
                Ok(ReleaseOutcome::Untouched) => {}
                Err(e) => {
                    out.left.push(k.to_string());
                    out.failure.get_or_insert(e);
                }
            }
        }
        out
    }

    /// A release that failed and is retried: the condition says so (a Warning Event when it changes).
    async fn release_pending(
        &self,
        api: &Api<DynamicObject>,
        credential: &Value,
        cluster: &Cluster,
        failure: &DistributionError,
    ) -> Result<Outcome, DistributionError> {
        if matches!(failure, DistributionError::Unreachable { .. }) {
            self.cluster_failed(cluster);
        }
        let desired = DesiredCondition {
            ok: false,
            reason: Reason::ReleasePending.to_string(),
            message: format!(
                "copies credential-guard wrote in {cluster} that KCM did not take over are not released yet \
                 ({failure}); finalizer {} stays until they are, retrying with backoff for at most {}s after deletion",
                labels::DISTRIBUTION_FINALIZER,
                self.config.release_timeout.as_secs()
            ),
        };
        if self.report(api, credential, &desired).await.unwrap_or(false) {
            self.event(credential, EventType::Warning, Reason::ReleasePending.as_str(), "Release", &desired.message)
                .await;
        }
        Ok(Outcome::Failed { reason: failure.reason().to_string() })
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
