//! Leader election through a coordination.k8s.io/v1 Lease: only the holder distributes, every
//! replica serves admission. The lease is taken when free or expired, renewed every
//! `renew_period`, and leadership is given up (distribution stops) when it could not be renewed
//! for a whole `lease_duration`.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::{DistributionError, is_conflict};

/// Where the Lease lives and how long it lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderElection {
    pub namespace: String,
    pub name: String,
    pub lease_duration: Duration,
    pub renew_period: Duration,
    /// How often a non-leader checks whether the Lease became free.
    pub retry_period: Duration,
}

impl Default for LeaderElection {
    fn default() -> Self {
        LeaderElection {
            namespace: credential_core::DEFAULT_SYSTEM_NAMESPACE.to_string(),
            name: "credential-guard-distribution".to_string(),
            lease_duration: Duration::from_secs(15),
            renew_period: Duration::from_secs(5),
            retry_period: Duration::from_secs(2),
        }
    }
}

fn lease_error(le: &LeaderElection, e: kube::Error) -> DistributionError {
    DistributionError::Lease { lease: format!("{}/{}", le.namespace, le.name), detail: e.to_string() }
}

/// One attempt to take or renew the Lease. `Ok(true)`: we hold it now.
pub async fn try_acquire(
    client: &kube::Client,
    le: &LeaderElection,
    identity: &str,
) -> Result<bool, DistributionError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &le.namespace);
    let now = Timestamp::now();
    let secs = i32::try_from(le.lease_duration.as_secs()).unwrap_or(i32::MAX).max(1);
    let Some(mut lease) = api.get_opt(&le.name).await.map_err(|e| lease_error(le, e))? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(le.name.clone()),
                namespace: Some(le.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(identity.to_string()),
                lease_duration_seconds: Some(secs),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(lease_error(le, e)),
        };
    };
    let mut spec = lease.spec.take().unwrap_or_default();
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    let held_secs = i64::from(spec.lease_duration_seconds.unwrap_or(secs).max(1));
    let expired = spec.renew_time.as_ref().is_none_or(|t| t.0 + SignedDuration::from_secs(held_secs) <= now);
    match holder.as_deref() {
        Some(h) if h == identity => {}
        Some(_) if !expired => return Ok(false),
        _ => {
            spec.holder_identity = Some(identity.to_string());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(secs);
    lease.spec = Some(spec);
    // The resourceVersion from the read makes this a compare-and-swap.
    match api.replace(&le.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(e) if is_conflict(&e) => Ok(false),
        Err(e) => Err(lease_error(le, e)),
    }
}

/// Waits until the Lease is ours; `false` when cancelled first.
pub async fn acquire(client: &kube::Client, le: &LeaderElection, identity: &str, cancel: &CancellationToken) -> bool {
    loop {
        match try_acquire(client, le, identity).await {
            Ok(true) => {
                tracing::info!(lease = %le.name, %identity, "became distribution leader");
                return true;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader election attempt failed"),
        }
        tokio::select! {
            () = cancel.cancelled() => return false,
            () = tokio::time::sleep(le.retry_period) => {}
        }
    }
}

/// Renews the Lease until `term` is cancelled; cancels `term` when leadership is lost.
pub async fn hold(client: kube::Client, le: LeaderElection, identity: String, term: CancellationToken) {
    let mut last_renewed = Instant::now();
    loop {
        tokio::select! {
            () = term.cancelled() => return,
            () = tokio::time::sleep(le.renew_period) => {}
        }
        match try_acquire(&client, &le, &identity).await {
            Ok(true) => last_renewed = Instant::now(),
            Ok(false) => {
                tracing::warn!(lease = %le.name, "distribution leadership taken over by another replica");
                term.cancel();
                return;
            }
            Err(e) => tracing::warn!(error = %e, "lease renewal failed"),
        }
        if last_renewed.elapsed() >= le.lease_duration {
            tracing::warn!(lease = %le.name, "lease not renewed in time: giving up distribution leadership");
            term.cancel();
            return;
        }
    }
}

/// Gives the Lease up (on shutdown) so another replica takes over without waiting for expiry.
pub async fn release(client: &kube::Client, le: &LeaderElection, identity: &str) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &le.namespace);
    let Ok(Some(mut lease)) = api.get_opt(&le.name).await else { return };
    let Some(spec) = lease.spec.as_mut() else { return };
    if spec.holder_identity.as_deref() != Some(identity) {
        return;
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    if let Err(e) = api.replace(&le.name, &PostParams::default(), &lease).await {
        tracing::debug!(error = %e, "lease release failed; it expires instead");
    }
}
