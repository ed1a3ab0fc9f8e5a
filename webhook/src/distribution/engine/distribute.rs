//! Write mode: plan over an estate fetched on demand, apply each copy, release copies no longer
//! planned, remember what the plan read and wrote.

use super::super::status::copy_reference;
use super::*;

impl Engine {
    /// Plans with sources read from the management cluster as `reads` says (and, when `fallback`
    /// is given, from the copies in that cluster: a deleted source must not block the release of
    /// its copies). Also gives the versions of the source objects it read (the trigger digest's
    /// input).
    pub(super) async fn plan(
        &self,
        credential: &Value,
        target: &Cluster,
        conn: &ClusterConn,
        pis: Vec<Arc<Value>>,
        fallback: bool,
        reads: &Reads<'_>,
    ) -> Result<Planned, DistributionError> {
        let mut estate = FetchedEstate::new(&self.config.system_namespace, target.clone(), pis);
        let mut partial = HashSet::new();
        // Each round resolves one more level of references; the planner's depth bound caps it.
        for _ in 0..(identity::MAX_DEPTH * 2 + 4) {
            let plan = identity::plan(credential, &estate);
            let misses = estate.take_misses();
            if misses.is_empty() {
                return Ok(Planned { plan, versions: estate.versions(), partial });
            }
            let scope_missed: HashSet<Gvk> = misses
                .iter()
                .filter_map(|m| match m {
                    Miss::Scope { gvk, .. } => Some(gvk.clone()),
                    Miss::Object { .. } => None,
                })
                .collect();
            for miss in misses {
                match miss {
                    Miss::Scope { cluster, gvk } => {
                        let c: &ClusterConn = if cluster == Cluster::Management { &self.mgmt_conn } else { conn };
                        let found = c.resource(&gvk).await?;
                        estate.put_scope(cluster, &gvk, found.map(|(_, namespaced)| namespaced));
                    }
                    // Asked while the scope was unknown: the next round asks the right place.
                    Miss::Object { gvk, .. } if scope_missed.contains(&gvk) => {}
                    Miss::Object { gvk, namespace, name } => {
                        if let Reads::Watched { content } = reads
                            && *target != Cluster::Management
                            && let Some(held) = self.held_source(&gvk, namespace.as_deref(), &name, content)
                        {
                            if held.partial {
                                partial.insert(source_key(&gvk, namespace.as_deref(), &name));
                            }
                            estate.put_object(&gvk, namespace.as_deref(), &name, Some(held.object));
                            continue;
                        }
                        let mut found = self.read_source(&self.mgmt_conn, &gvk, namespace.as_deref(), &name).await?;
                        if matches!(reads, Reads::Watched { .. }) {
                            self.keep_source(&gvk, namespace.as_deref(), &name, found.as_ref());
                        }
                        // Inside the management cluster a copy we made (it carries our owners
                        // annotation) sits where the planner looks first, the Credential's own
                        // namespace: it is never a source, or the next reconcile would see the
                        // copy as its own source, plan nothing to copy and release (delete) it.
                        if *target == Cluster::Management
                            && found.as_deref().is_some_and(|o| !identity::owners_of(o).is_empty())
                        {
                            found = None;
                        }
                        if found.is_none() && fallback {
                            found = self
                                .read_source(conn, &gvk, namespace.as_deref(), &name)
                                .await?
                                .filter(|o| identity::is_managed(o));
                        }
                        estate.put_object(&gvk, namespace.as_deref(), &name, found);
                    }
                }
            }
        }
        Ok(Planned { plan: identity::plan(credential, &estate), versions: estate.versions(), partial })
    }

    pub(super) async fn read_source(
        &self,
        conn: &ClusterConn,
        gvk: &Gvk,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Arc<Value>>, DistributionError> {
        let Some((ar, namespaced)) = conn.resource(gvk).await? else { return Ok(None) };
        if namespaced != namespace.is_some() {
            return Ok(None); // asked at a location this kind cannot have
        }
        let api = conn.api(&ar, namespaced, namespace);
        let what = match namespace {
            Some(ns) => format!("read {} {ns}/{name} in {}", gvk.kind, conn.cluster),
            None => format!("read {} {name} in {}", gvk.kind, conn.cluster),
        };
        match api.get_opt(name).await {
            Ok(o) => Ok(o.map(|o| Arc::new(to_value(&o)))),
            Err(e) => Err(classify(&conn.cluster, what, e)),
        }
    }

    pub(super) fn remember(&self, key: &CredentialKey, target: &Cluster, plan: &Plan) {
        let mut sources: Vec<SourceKey> =
            plan.objects().map(|c| source_key(&c.source.gvk, c.source.namespace.as_deref(), &c.source.name)).collect();
        for p in &plan.problems {
            if let PlanProblem::SourceMissing { key: k } = p {
                sources.push(source_key(&k.gvk, k.namespace.as_deref(), &k.name));
            }
        }
        // Watched where they are (missing ones too: their creation is a change).
        for c in plan.objects() {
            self.ensure_source_watch(&c.source.gvk, c.source.namespace.as_deref());
        }
        for p in &plan.problems {
            if let PlanProblem::SourceMissing { key: k } = p {
                self.ensure_source_watch(&k.gvk, k.namespace.as_deref());
            }
        }
        // Copies made before stay remembered until released (a blocked plan or a failed write
        // must not make us forget what exists in the target); `distribute` narrows them to the
        // plan once the stale ones are released.
        let mut copies: Vec<ObjectKey> =
            plan.copies.iter().filter(|c| c.object.is_some()).map(|c| c.target.clone()).collect();
        let mut last_plans = lock(&self.last_plans);
        for k in last_plans.get(key).map(|f| f.copies.clone()).unwrap_or_default() {
            if !copies.contains(&k) {
                copies.push(k);
            }
        }
        let previous =
            last_plans.insert(key.clone(), LastPlan { target: Some(target.clone()), sources: sources.clone(), copies });
        drop(last_plans);
        // Re-indexed first, so a source both plans use stays kept.
        let mut index = lock(&self.index);
        for s in &sources {
            index.entry(s.clone()).or_default().insert(key.clone());
        }
        drop(index);
        let gone = previous.map(|p| p.sources).unwrap_or_default().into_iter().filter(|s| !sources.contains(s));
        self.unindex(key, gone.collect());
    }

    pub(super) async fn distribute(
        &self,
        key: &CredentialKey,
        credential: &Value,
        target: &Cluster,
        mut finalizer: Option<(&Api<DynamicObject>, &[String])>,
    ) -> Result<Distributed, DistributionError> {
        let conn = self.connection(target).await?;
        let _permit = conn.permits.acquire().await;
        // The cluster may have failed while this key waited for a permit: back off, not pile on.
        if let Some(wait) = self.cluster_wait(target) {
            return Ok(Distributed::Wait(wait));
        }
        let pis = conn.provider_interfaces(self.config.cluster_timeout).await?;
        self.cluster_ok(target);
        let plan = self.plan(credential, target, &conn, pis, false, &Reads::Api).await?.plan;
        // What this Credential holds there: remembered by this process, and recorded on the
        // Credential by whichever replica wrote it (a change made while no replica led).
        let previous_copies = self.held_copies(key, credential, target);
        self.remember(key, target, &plan);

        let owner = key.to_string();
        let mut problems: Vec<(Reason, String)> =
            plan.problems.iter().map(|p| (Reason::of_problem(p), p.message(Some(target)))).collect();
        let mut placed = Vec::new();
        // KCM copies nothing when any part of the identity graph fails to resolve, and neither do
        // we: half an identity in a region (an identity whose Secret is missing) is worse than none.
        let blocked = !problems.is_empty();
        for copy in plan.copies.iter().filter(|_| !blocked) {
            let Some(object) = &copy.object else { continue };
            let Some((ar, namespaced)) = conn.resource(&copy.target.gvk).await? else {
                problems.push((
                    Reason::KindNotServed,
                    format!(
                        "{} is not served in {target}: enable the provider there (its CRD is missing), then the \
                         copy of {} follows",
                        copy.target.gvk, copy.target
                    ),
                ));
                continue;
            };
            if let Some((api, finalizers)) = finalizer.take() {
                self.add_finalizer(key, api, credential, finalizers).await?;
            }
            conn.ensure_copy_watch(&copy.target.gvk, &ar, &self.on_copy);
            let lock_handle = self.locks.lock_for(target, &copy.target);
            let _guard = lock_handle.lock().await;
            match apply_copy(&conn, &ar, namespaced, &copy.target, object, &owner).await? {
                ApplyOutcome::Created | ApplyOutcome::Updated => {
                    self.metrics.copies_applied.inc();
                    placed.push(copy.target.to_string());
                    // About the copy too: one Event per copy, not a series of the first.
                    publish_event(
                        &self.recorder,
                        credential,
                        EventType::Normal,
                        EventReason::Copied.as_str(),
                        "Distribute",
                        &format!("copied {} ({}) to {target}", copy.target, copy.target.gvk.api_version()),
                        Some(copy_reference(&copy.target)),
                    )
                    .await;
                }
                ApplyOutcome::Unchanged => placed.push(copy.target.to_string()),
                ApplyOutcome::PresentUnmanaged => placed.push(format!("{} (present, not managed by us)", copy.target)),
                ApplyOutcome::Conflict => {
                    // Reported through the condition (a Warning Event when it changes), not an
                    // Event per retry.
                    self.metrics.conflicts.inc();
                    let msg = format!(
                        "{} exists in {target} without label {}=true and with other content: it was left \
                         untouched; delete it or label it so credential-guard may manage it",
                        copy.target,
                        labels::MANAGED
                    );
                    problems.push((Reason::Conflict, msg));
                }
            }
        }
        // Copies the previous plan made that this one no longer wants (not while the plan is
        // blocked: a missing reference does not mean its copy is unwanted).
        let wanted: HashSet<&ObjectKey> = plan.copies.iter().map(|c| &c.target).collect();
        for stale in previous_copies.iter().filter(|k| !blocked && !wanted.contains(k)) {
            if let Some((ar, namespaced)) = conn.resource(&stale.gvk).await? {
                let lock_handle = self.locks.lock_for(target, stale);
                let _guard = lock_handle.lock().await;
                if release_copy(&conn, &ar, namespaced, stale, &owner, Spare::Nothing).await? == ReleaseOutcome::Deleted
                {
                    self.metrics.copies_deleted.inc();
                }
            }
        }
        // What this Credential now holds: recorded on it (so a restart or a new leader can release
        // it), and remembered. While the plan is blocked, the old copies stay held.
        let held: Vec<ObjectKey> = if blocked {
            previous_copies.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect()
        } else {
            plan.copies
                .iter()
                .filter(|c| c.object.is_some())
                .map(|c| c.target.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        self.record_copies(key, credential, target, &held).await?;
        if !blocked && let Some(f) = lock(&self.last_plans).get_mut(key) {
            f.copies = held.clone();
        }
        let sources = lock(&self.last_plans).get(key).map(|f| f.sources.clone()).unwrap_or_default();
        let mut note = self.unwatched(&sources).join("; ");
        if !note.is_empty() {
            note = format!(" (note: {note})");
        }
        let condition = match problems.first() {
            None => DesiredCondition {
                ok: true,
                reason: Reason::Distributed.to_string(),
                message: format!("{} object(s) distributed to {target}: {}{note}", placed.len(), summary(&placed)),
            },
            Some((reason, _)) => DesiredCondition {
                ok: false,
                reason: reason.to_string(),
                message: format!(
                    "{}{}",
                    if blocked { "nothing copied: " } else { "" },
                    problems.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; ")
                ),
            },
        };
        Ok(Distributed::Done(condition))
    }
}
