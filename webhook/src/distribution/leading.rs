//! Leading: wait for the distribution Lease, then one period of leadership at a time: a fresh
//! engine, its subscriptions to the shared watches (Credentials, Regions), the mode published on
//! the Lease, and the controller (kube-runtime's applier, with the resync), until leadership ends;
//! then the reconciles in hand finish within what is left of it.

use std::sync::Arc;
use std::time::Duration;

use credential_core::gvk::Gvk;
use futures_util::FutureExt;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::engine::Engine;
use super::{DistributionConfig, DistributorHandle, leader};
use crate::informer::{Event, Informers, Subscription, Trim, WatchSpec};

/// Aborts a task when dropped (so aborting the distributor stops every watch and reconcile at
/// once); awaiting it awaits the task.
pub(super) struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        self.0.poll_unpin(cx)
    }
}

pub(super) async fn run_elections(
    config: DistributionConfig,
    informers: Arc<Informers>,
    handle: DistributorHandle,
    shutdown: CancellationToken,
) {
    let mgmt = informers.client().clone();
    loop {
        let leadership = match &config.leader_election {
            Some(le) => match leader::acquire(&mgmt, le, &config.instance, &shutdown).await {
                Some(at) => Some(leader::Leadership::new(at, le)),
                None => return,
            },
            None => None,
        };
        let leading = shutdown.child_token();
        let holder = config.leader_election.clone().zip(leadership.clone()).map(|(le, leadership)| {
            AbortOnDrop(tokio::spawn(leader::hold(
                mgmt.clone(),
                le,
                config.instance.clone(),
                leading.clone(),
                leadership,
            )))
        });
        lead(&config, &informers, &handle, &leading, leadership.as_ref()).await;
        drop(holder);
        if shutdown.is_cancelled() {
            if let Some(le) = &config.leader_election {
                leader::release(&mgmt, le, &config.instance).await;
            }
            return;
        }
    }
}

/// One period of leadership: fresh state, subscriptions and the controller until `leading` is
/// cancelled.
async fn lead(
    config: &DistributionConfig,
    informers: &Arc<Informers>,
    handle: &DistributorHandle,
    leading: &CancellationToken,
    leadership: Option<&leader::Leadership>,
) {
    let mgmt = informers.client();
    let (engine, triggers) = Engine::new(config.clone(), Arc::clone(informers), handle.metrics.clone());
    handle.set_engine(Some(Arc::clone(&engine)));
    let mut watches = Vec::new();
    let mut subscriptions = Vec::new();

    // Credentials and Regions from the shared watches: a new leader is handed both as listed.
    let on_credential: OnObject = |e, o, deleted, _| e.on_credential(o, deleted);
    let on_region: OnObject = |e, o, deleted, listed| e.on_region(o, deleted, listed);
    for (gvk, on) in [(Gvk::credential(), on_credential), (Gvk::region(), on_region)] {
        subscriptions.extend(subscribe(informers, &engine, &gvk, on));
    }
    // Secrets, metadata only, in the system namespace (rotated identity Secrets, changed Region
    // kubeconfigs): the only namespace RBAC grants. Secrets elsewhere (an Azure identity's in its
    // own namespace, a ClusterDeployment Region's kubeconfig) get a watch of their namespace when
    // a plan first uses them; never a cluster-wide one.
    engine.ensure_source_watch(&Gvk::secret(), Some(&config.system_namespace));

    // The mode in force: published on the Lease when leadership starts and on every change; a
    // change re-checks every Credential (a Credential written in write mode is handed over).
    let weak = Arc::downgrade(&engine);
    let (mgmt2, le, instance, mut mode) =
        (mgmt.clone(), config.leader_election.clone(), config.instance.clone(), config.mode.clone());
    watches.push(AbortOnDrop(tokio::spawn(async move {
        let mut state = mode.current();
        loop {
            if let Some(le) = &le {
                let (m, reason) = (state.mode().as_str(), state.decision.reason.as_str());
                if let Err(e) = leader::publish_mode(&mgmt2, le, &instance, m, reason).await {
                    tracing::warn!(error = %e, "distribution mode not published on the Lease");
                }
            }
            let Some(next) = mode.changed().await else { return };
            tracing::info!(mode = %next.mode(), reason = %next.decision.reason, "distribution mode changed");
            state = next;
            let Some(e) = weak.upgrade() else { return };
            e.resync();
        }
    })));

    // The controller stops taking keys once `leading` is cancelled and finishes the reconciles in
    // hand; a stuck one is aborted after a grace period, and never later than our leadership lasts
    // (at once when it was lost): no writes once another replica may lead.
    let mut controller = std::pin::pin!(engine.run_controller(triggers, leading.clone()));
    let finished = tokio::select! {
        () = &mut controller => true,
        () = leading.cancelled() => false,
    };
    handle.set_engine(None);
    drop(subscriptions);
    drop(watches);
    // A finished controller (its trigger channel closed) must not be polled again.
    if !finished {
        let grace = tokio::time::Instant::now() + Duration::from_secs(10);
        let until = leadership.map_or(grace, |t| t.until().min(grace));
        let _ = tokio::time::timeout_at(until, controller).await;
    }
}

/// What the engine does with one object: `(engine, object, deleted, part of a list)`.
type OnObject = fn(&Engine, &Value, bool, bool);

/// Subscribes the engine to a management kind of the kinds table.
fn subscribe(informers: &Informers, engine: &Arc<Engine>, gvk: &Gvk, on: OnObject) -> Option<Subscription> {
    let spec = WatchSpec::known(gvk, Trim::Common)?;
    let weak = Arc::downgrade(engine);
    let kind = gvk.kind.clone();
    Some(informers.management.subscribe(
        &spec,
        Box::new(move |event| {
            let Some(e) = weak.upgrade() else { return };
            match event {
                Event::Listed(objects) => objects.iter().for_each(|o| on(&e, o, false, true)),
                Event::Applied(o) => on(&e, o, false, false),
                Event::Deleted(o) => on(&e, o, true, false),
                Event::Failed(err) => tracing::warn!(kind = %kind, error = %err, "watch retrying"),
            }
        }),
    ))
}
