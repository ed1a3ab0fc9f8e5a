//! Leader election through a coordination.k8s.io/v1 Lease: only the holder distributes, every
//! replica serves admission. The lease is taken when free or expired and renewed every
//! `renew_period`. Leadership is given up (distribution stops) as soon as `renew_deadline` has
//! passed since the last successful renewal, and every attempt is bounded by that deadline: a
//! hung management API cannot keep a leader going past it. The deadline is shorter than
//! `lease_duration`, so this replica has stopped before another may take the expired Lease.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use credential_core::model::labels;
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
    /// A leader whose last successful renewal is this old stops distributing. Must be shorter
    /// than `lease_duration` (client-go: 10 s against 15 s); a longer value is replaced by two
    /// thirds of the lease.
    pub renew_deadline: Duration,
    /// How often a non-leader checks whether the Lease became free (and a leader retries a
    /// failed renewal).
    pub retry_period: Duration,
}

impl Default for LeaderElection {
    fn default() -> Self {
        LeaderElection {
            namespace: credential_core::DEFAULT_SYSTEM_NAMESPACE.to_string(),
            name: credential_core::distribution::DISTRIBUTION_LEASE.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_period: Duration::from_secs(5),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl LeaderElection {
    /// The Lease duration as written to the Lease (whole seconds, at least one): what other
    /// replicas go by.
    fn lease_secs(&self) -> u64 {
        self.lease_duration.as_secs().clamp(1, i32::MAX as u64)
    }

    /// `renew_deadline`, kept strictly below the Lease duration other replicas see.
    pub fn effective_renew_deadline(&self) -> Duration {
        let lease = Duration::from_secs(self.lease_secs()).min(self.lease_duration.max(Duration::from_millis(1)));
        if !self.renew_deadline.is_zero() && self.renew_deadline < lease { self.renew_deadline } else { lease * 2 / 3 }
    }
}

/// Until when this replica may act as leader: the start of its last successful renewal (the
/// Lease's renewTime is later) plus the renew deadline. Shared by the renewal task and the distributor it lets lead,
/// which stops its workers by then.
#[derive(Debug, Clone)]
pub struct Leadership {
    until: Arc<Mutex<Instant>>,
    deadline: Duration,
}

impl Leadership {
    pub fn new(renewed_at: Instant, le: &LeaderElection) -> Self {
        let deadline = le.effective_renew_deadline();
        Leadership { until: Arc::new(Mutex::new(renewed_at + deadline)), deadline }
    }

    pub fn until(&self) -> Instant {
        *self.until.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn renewed(&self, at: Instant) {
        *self.until.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = at + self.deadline;
    }

    /// Leadership is over now (taken over, or the deadline passed).
    fn end(&self) {
        let mut until = self.until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *until = (*until).min(Instant::now());
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
    let secs = i32::try_from(le.lease_secs()).unwrap_or(i32::MAX);
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

/// Waits until the Lease is ours and returns when the successful attempt started; `None` when
/// cancelled first. Each attempt is bounded by the renew deadline (a hung API is retried).
pub async fn acquire(
    client: &kube::Client,
    le: &LeaderElection,
    identity: &str,
    cancel: &CancellationToken,
) -> Option<Instant> {
    loop {
        let started = Instant::now();
        let attempt = tokio::select! {
            () = cancel.cancelled() => return None,
            r = tokio::time::timeout(le.effective_renew_deadline(), try_acquire(client, le, identity)) => r,
        };
        match attempt {
            Ok(Ok(true)) => {
                tracing::info!(lease = %le.name, %identity, "became distribution leader");
                return Some(started);
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "leader election attempt failed"),
            Err(_) => tracing::warn!(lease = %le.name, "leader election attempt got no answer in time"),
        }
        tokio::select! {
            () = cancel.cancelled() => return None,
            () = tokio::time::sleep(le.retry_period) => {}
        }
    }
}

/// Renews the Lease until `leading` is cancelled; cancels `leading` (and ends `leadership`) when
/// leadership is lost: taken over, or not renewed within the renew deadline, whether the
/// attempts failed or hung.
pub async fn hold(
    client: kube::Client,
    le: LeaderElection,
    identity: String,
    leading: CancellationToken,
    leadership: Leadership,
) {
    let mut pause = le.renew_period;
    loop {
        tokio::select! {
            () = leading.cancelled() => return,
            () = tokio::time::sleep_until(leadership.until()) => break,
            () = tokio::time::sleep(pause) => {}
        }
        let started = Instant::now();
        let attempt = tokio::select! {
            () = leading.cancelled() => return,
            r = tokio::time::timeout_at(leadership.until(), try_acquire(&client, &le, &identity)) => r,
        };
        match attempt {
            Ok(Ok(true)) => {
                leadership.renewed(started);
                pause = le.renew_period;
            }
            Ok(Ok(false)) => {
                tracing::warn!(lease = %le.name, "distribution leadership taken over by another replica");
                leadership.end();
                leading.cancel();
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "lease renewal failed");
                pause = le.retry_period.min(le.renew_period);
            }
            Err(_) => break, // the deadline passed while the attempt hung
        }
    }
    tracing::warn!(
        lease = %le.name,
        deadline = ?le.effective_renew_deadline(),
        "lease not renewed within the renew deadline: giving up distribution leadership"
    );
    leadership.end();
    leading.cancel();
}

/// Publishes the mode in force on the Lease this replica holds (annotations
/// [`labels::MODE_ANNOTATION`] and [`labels::MODE_REASON_ANNOTATION`]), where `kubectl credential`
/// reads it. A read and a compare-and-swap replace (the verbs leader election already has);
/// nothing when another replica holds the Lease or the annotations already say so. Renewals
/// replace the whole Lease as read, so they keep the annotations.
pub async fn publish_mode(
    client: &kube::Client,
    le: &LeaderElection,
    identity: &str,
    mode: &str,
    reason: &str,
) -> Result<(), DistributionError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &le.namespace);
    let Some(mut lease) = api.get_opt(&le.name).await.map_err(|e| lease_error(le, e))? else { return Ok(()) };
    if lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) != Some(identity) {
        return Ok(());
    }
    let annotations = lease.metadata.annotations.get_or_insert_with(Default::default);
    let wanted = [(labels::MODE_ANNOTATION, mode), (labels::MODE_REASON_ANNOTATION, reason)];
    if wanted.iter().all(|(k, v)| annotations.get(*k).map(String::as_str) == Some(*v)) {
        return Ok(());
    }
    for (k, v) in wanted {
        annotations.insert(k.to_string(), v.to_string());
    }
    match api.replace(&le.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(()),
        Err(e) => Err(lease_error(le, e)),
    }
}

/// Gives the Lease up (on shutdown) so another replica takes over without waiting for expiry.
/// Bounded by the renew deadline: a hung API must not stall the shutdown.
pub async fn release(client: &kube::Client, le: &LeaderElection, identity: &str) {
    if tokio::time::timeout(le.effective_renew_deadline(), release_now(client, le, identity)).await.is_err() {
        tracing::debug!(lease = %le.name, "lease release got no answer; it expires instead");
    }
}

async fn release_now(client: &kube::Client, le: &LeaderElection, identity: &str) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renew_deadline_stays_below_the_lease() {
        let le = LeaderElection::default();
        assert_eq!(le.effective_renew_deadline(), Duration::from_secs(10));
        let short = LeaderElection { lease_duration: Duration::from_secs(3), ..LeaderElection::default() };
        assert_eq!(short.effective_renew_deadline(), Duration::from_secs(2));
        // Sub-second leases are written as one second; the deadline stays below what was asked.
        let tiny = LeaderElection { lease_duration: Duration::from_millis(600), ..LeaderElection::default() };
        assert_eq!(tiny.effective_renew_deadline(), Duration::from_millis(400));
        let zero = LeaderElection { renew_deadline: Duration::ZERO, ..LeaderElection::default() };
        assert_eq!(zero.effective_renew_deadline(), Duration::from_secs(10));
    }

    /// A management API that accepts connections and never answers: the holder gives up at the
    /// renew deadline, before the Lease (renewed when leadership began) expires for others.
    #[tokio::test]
    async fn a_hung_renewal_ends_the_term_at_the_renew_deadline() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                open.push(sock); // accepted, never answered
            }
        });
        let cfg = kube::Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
        let client = kube::Client::try_from(cfg).unwrap();
        let le = LeaderElection {
            lease_duration: Duration::from_secs(3),
            renew_deadline: Duration::from_millis(1200),
            renew_period: Duration::from_millis(200),
            retry_period: Duration::from_millis(100),
            ..LeaderElection::default()
        };
        let renewed = Instant::now();
        let leadership = Leadership::new(renewed, &le);
        let leading = CancellationToken::new();
        let task = tokio::spawn(hold(client, le.clone(), "me".into(), leading.clone(), leadership.clone()));
        tokio::time::timeout(Duration::from_secs(5), leading.cancelled()).await.unwrap();
        let gave_up = renewed.elapsed();
        assert!(gave_up >= Duration::from_millis(1100), "gave up too early: {gave_up:?}");
        assert!(gave_up < le.lease_duration, "still leading at lease expiry: {gave_up:?}");
        assert!(leadership.until() <= Instant::now());
        task.await.unwrap();
        held.abort();
    }
}
