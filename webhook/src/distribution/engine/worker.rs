//! The workers: take a Credential from the queue, reconcile it within `reconcile_timeout`, retry
//! with backoff, forget what a Credential left behind.

use super::*;

impl Engine {
    /// Takes keys from the queue until it closes.
    pub async fn worker(self: Arc<Self>) {
        while let Some(key) = self.queue.next().await {
            self.metrics.queue_depth.set(self.queue.depth() as i64);
            let started = Instant::now();
            // Bounded: whatever hangs (a permit, a cluster, the management API), the worker, the
            // permit it holds and the key come free, and the target backs off.
            let outcome = match tokio::time::timeout(self.config.reconcile_timeout, self.reconcile(&key)).await {
                Ok(outcome) => outcome,
                Err(_) => Ok(self.timed_out(&key).await),
            };
            self.metrics.convergence_seconds.observe(started.elapsed().as_secs_f64());
            match outcome {
                Ok(Outcome::Done) => {
                    lock(&self.failures).remove(&key);
                }
                Ok(Outcome::Wait(d)) => self.queue.add_after(key.clone(), d),
                Ok(Outcome::Failed { reason }) => self.retry(&key, &reason),
                Err(e) => {
                    tracing::warn!(credential = %key, reason = %e.reason(), error = %e, "distribution failed");
                    self.retry(&key, e.reason().as_str());
                }
            }
            self.queue.done(&key);
            self.metrics.queue_depth.set(self.queue.depth() as i64);
        }
    }

    /// A reconcile ran past `reconcile_timeout`: its target is treated as unreachable (it
    /// backs off) and the Credential says so. Every request here is bounded too: the management
    /// API may be what hung.
    pub(super) async fn timed_out(&self, key: &CredentialKey) -> Outcome {
        let limit = self.config.reconcile_timeout;
        let bound = self.config.request_timeout;
        let api = self.credential_api(&key.namespace);
        let credential = match tokio::time::timeout(bound, api.get_opt(&key.name)).await {
            Ok(Ok(Some(obj))) => Some(to_value(&obj)),
            _ => None,
        };
        let remembered = lock(&self.last_plans).get(key).and_then(|f| f.target.clone());
        let target = credential.as_ref().and_then(identity::target_of).or(remembered);
        if let Some(t) = &target {
            self.cluster_failed(t);
        }
        let detail = format!("one reconcile took longer than {}s (it is retried with backoff)", limit.as_secs_f64());
        let err = match &target {
            Some(cluster) => DistributionError::Unreachable { cluster: cluster.clone(), detail },
            None => DistributionError::Unreachable { cluster: Cluster::Management, detail },
        };
        tracing::warn!(credential = %key, reason = %err.reason(), error = %err, "distribution timed out");
        if let (Some(credential), Some(target)) = (&credential, &target) {
            let deleting = credential.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null());
            let (reason, message) = if deleting {
                (
                    Reason::ReleasePending.to_string(),
                    format!(
                        "copies in {target} not released yet ({err}); finalizer {} stays until they are, retrying \
                         with backoff",
                        labels::DISTRIBUTION_FINALIZER
                    ),
                )
            } else {
                (
                    err.reason().to_string(),
                    format!("identities not distributed to {target}: {err}; retrying with backoff"),
                )
            };
            let desired = DesiredCondition { ok: false, reason, message };
            let reported = tokio::time::timeout(bound, self.report(&api, credential, &desired)).await;
            if matches!(reported, Ok(Ok(true))) {
                let event = self.event(credential, EventType::Warning, &desired.reason, "Distribute", &desired.message);
                let _ = tokio::time::timeout(bound, event).await;
            }
        }
        Outcome::Failed { reason: err.reason().to_string() }
    }

    pub(super) fn retry(&self, key: &CredentialKey, reason: &str) {
        self.metrics.failed(reason);
        let n = {
            let mut f = lock(&self.failures);
            let n = f.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        self.queue.add_after(key.clone(), self.config.credential_backoff.delay(n));
    }

    pub(super) fn forget(&self, key: &CredentialKey) {
        lock(&self.failures).remove(key);
        lock(&self.changed_at).remove(key);
        lock(&self.triggered_at).remove(key);
        lock(&self.seen).remove(key);
        if let Some(fp) = lock(&self.last_plans).remove(key) {
            let mut index = lock(&self.index);
            for s in fp.sources {
                if let Some(set) = index.get_mut(&s) {
                    set.remove(key);
                    if set.is_empty() {
                        index.remove(&s);
                    }
                }
            }
        }
    }
}
