//! Which distribution mode is in force, and why (DESIGN.md, "Distribution: who writes the
//! copies"). The operator's setting (`--distribution-mode`) and what KCM publishes in the
//! management cluster (Management `kcm`, the Release it names) go through the core's
//! [`detect_kcm`] and [`decide`]. Every replica watches both objects and re-decides when either
//! changes, so a KCM upgrade to 1.5 switches `auto` from write to trigger at run time; the
//! distributor follows the [`ModeHandle`] it was given.

use std::sync::Arc;

use credential_core::distribution::{
    Decision, KcmDetection, MANAGEMENT_NAME, Mode, ModeError, ModeSetting, decide, detect_kcm, release_name,
};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::cluster::to_value;
use super::error::{readable, status_code};
use super::metrics::DistributionMetrics;
use crate::informer::{ClusterWatches, Event, Trim, WatchSpec};

/// The decision in force and the detection it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeState {
    pub decision: Decision,
    pub kcm: KcmDetection,
}

impl ModeState {
    pub fn mode(&self) -> Mode {
        self.decision.mode
    }

    /// One line for `/readyz` and logs: `distribution mode: trigger (auto: KCM 1.5.0 ...)`.
    pub fn summary(&self) -> String {
        format!("distribution mode: {} ({})", self.decision.mode, self.decision.reason)
    }
}

/// What the distributor reads the mode from: follows a [`ModeControl`], or fixed.
#[derive(Debug, Clone)]
pub struct ModeHandle(watch::Receiver<ModeState>);

impl ModeHandle {
    /// A mode that never changes (tests, `--distribution-mode write` without detection).
    pub fn fixed(mode: Mode, reason: &str) -> ModeHandle {
        let state = ModeState {
            decision: Decision { mode, reason: reason.to_string() },
            kcm: KcmDetection::Unknown { reason: "not detected".to_string() },
        };
        // The sender goes at once: the value stays, and `changed` never fires.
        ModeHandle(watch::channel(state).1)
    }

    pub fn current(&self) -> ModeState {
        self.0.borrow().clone()
    }

    pub fn mode(&self) -> Mode {
        self.0.borrow().decision.mode
    }

    /// Waits for the next change; `None` when nothing can change any more.
    pub async fn changed(&mut self) -> Option<ModeState> {
        self.0.changed().await.ok()?;
        Some(self.0.borrow_and_update().clone())
    }
}

impl Default for ModeHandle {
    fn default() -> Self {
        ModeHandle::fixed(Mode::Write, "mode write set")
    }
}

/// Decides the mode and keeps deciding as KCM's objects change.
pub struct ModeControl {
    setting: ModeSetting,
    force_write: bool,
    tx: watch::Sender<ModeState>,
    metrics: DistributionMetrics,
}

fn management_ar() -> ApiResource {
    k0rdent_ar("Management")
}

fn release_ar() -> ApiResource {
    k0rdent_ar("Release")
}

/// From the core's kinds table; both are listed there (cluster-scoped).
fn k0rdent_ar(kind: &str) -> ApiResource {
    let gvk = credential_core::Gvk::k0rdent(kind);
    let plural = credential_core::gvk::known_kind(&gvk).map_or("", |k| k.plural);
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(&gvk.group, &gvk.version, &gvk.kind), plural)
}

/// Reads Management `kcm` and the Release it names (two GETs) and says what they tell.
pub async fn read_kcm(client: &kube::Client) -> KcmDetection {
    let management_ar = management_ar();
    let managements: Api<DynamicObject> = Api::all_with(client.clone(), &management_ar);
    let management = match managements.get_opt(MANAGEMENT_NAME).await {
        Ok(Some(m)) => to_value(&m),
        Ok(None) => return KcmDetection::NotInstalled,
        // No Management CRD at all: KCM is not installed.
        Err(e) if status_code(&e) == Some(404) => return KcmDetection::NotInstalled,
        Err(e) => {
            return KcmDetection::Unknown {
                reason: format!("Management {MANAGEMENT_NAME} could not be read: {}", readable(&e)),
            };
        }
    };
    let release = match release_name(&management) {
        Some(name) => {
            let release_ar = release_ar();
            let releases: Api<DynamicObject> = Api::all_with(client.clone(), &release_ar);
            // Unreadable: the core falls back to the Release's name.
            releases.get_opt(name).await.ok().flatten().map(|r| to_value(&r))
        }
        None => None,
    };
    detect_kcm(Some(&management), release.as_ref())
}

impl ModeControl {
    /// Decides once from what the management cluster says now. An error is a refusal to start
    /// (mode write next to a KCM that copies, not forced).
    pub async fn start(
        client: &kube::Client,
        setting: ModeSetting,
        force_write: bool,
        metrics: DistributionMetrics,
    ) -> Result<Arc<ModeControl>, ModeError> {
        // A fixed trigger or off needs no detection to decide, but the reason names KCM anyway.
        let kcm = read_kcm(client).await;
        let decision = decide(setting, &kcm, force_write)?;
        Ok(Self::with_state(setting, force_write, ModeState { decision, kcm }, metrics))
    }

    /// A control starting from `state` (tests; [`ModeControl::start`] after detection).
    pub fn with_state(
        setting: ModeSetting,
        force_write: bool,
        state: ModeState,
        metrics: DistributionMetrics,
    ) -> Arc<ModeControl> {
        metrics.set_mode(state.mode());
        let (tx, _) = watch::channel(state);
        Arc::new(ModeControl { setting, force_write, tx, metrics })
    }

    pub fn handle(&self) -> ModeHandle {
        ModeHandle(self.tx.subscribe())
    }

    pub fn current(&self) -> ModeState {
        self.tx.borrow().clone()
    }

    /// Re-decides from a new detection. A setting of write that KCM now refuses (upgraded to 1.5
    /// at run time) stays write, saying loudly why that is wrong: stopping would strand the copies
    /// mid-way, and the operator chose write explicitly.
    pub fn update(&self, kcm: KcmDetection) {
        let decision = match decide(self.setting, &kcm, self.force_write) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "KCM now copies cluster identities itself while distribution mode write is set: restart with --distribution-mode trigger (or auto)");
                Decision { mode: Mode::Write, reason: e.to_string() }
            }
        };
        let state = ModeState { decision, kcm };
        let changed = self.tx.send_if_modified(|current| {
            if *current == state {
                return false;
            }
            *current = state.clone();
            true
        });
        if changed {
            self.metrics.set_mode(state.mode());
            tracing::info!(mode = %state.mode(), reason = %state.decision.reason, who_copies = state.mode().who_copies(), "distribution mode decided");
        }
    }

    /// Watches Management and Release objects (any change re-reads both and re-decides) until
    /// `shutdown`. A fixed setting other than write cannot change with KCM: nothing is watched.
    pub fn watch(self: &Arc<Self>, watches: &Arc<ClusterWatches>, shutdown: CancellationToken) {
        if matches!(self.setting, ModeSetting::Fixed(Mode::Trigger | Mode::Off)) {
            return;
        }
        let notify = Arc::new(Notify::new());
        let mut subscriptions = Vec::new();
        for kcm_ar in [management_ar(), release_ar()] {
            let n = Arc::clone(&notify);
            let spec = WatchSpec::new(&kcm_ar, None, Trim::Common);
            subscriptions.push(watches.subscribe(
                &spec,
                Box::new(move |event| {
                    if let Event::Failed(e) = event {
                        tracing::debug!(error = %e, "KCM version watch retrying");
                    }
                    n.notify_one();
                }),
            ));
        }
        let me = Arc::clone(self);
        let client = watches.client().clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = notify.notified() => me.update(read_kcm(&client).await),
                }
            }
            drop(subscriptions);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credential_core::distribution::KcmVersion;

    fn found(v: &str) -> KcmDetection {
        KcmDetection::Found { version: KcmVersion::parse(v).unwrap(), source: format!("Release kcm-{v}") }
    }

    #[tokio::test]
    async fn auto_follows_a_kcm_upgrade_and_fixed_write_stays_but_says_why() {
        let metrics = DistributionMetrics::default();
        let initial =
            ModeState { decision: decide(ModeSetting::Auto, &found("1.4.0"), false).unwrap(), kcm: found("1.4.0") };
        let control = ModeControl::with_state(ModeSetting::Auto, false, initial, metrics.clone());
        let mut handle = control.handle();
        assert_eq!(handle.mode(), Mode::Write);
        control.update(found("1.5.0"));
        let now = handle.changed().await.unwrap();
        assert_eq!(now.mode(), Mode::Trigger);
        assert!(now.summary().starts_with("distribution mode: trigger (auto: KCM 1.5.0"), "{}", now.summary());
        // The same detection again changes nothing.
        control.update(found("1.5.0"));
        assert!(!handle.0.has_changed().unwrap());

        let fixed = ModeState {
            decision: decide(ModeSetting::Fixed(Mode::Write), &found("1.4.0"), false).unwrap(),
            kcm: found("1.4.0"),
        };
        let control = ModeControl::with_state(ModeSetting::Fixed(Mode::Write), false, fixed, metrics);
        control.update(found("1.5.0"));
        let state = control.current();
        assert_eq!(state.mode(), Mode::Write);
        assert!(state.decision.reason.contains("--force-write-mode"), "{}", state.decision.reason);
    }

    #[test]
    fn a_fixed_handle_never_changes() {
        let h = ModeHandle::fixed(Mode::Off, "mode off set");
        assert_eq!(h.mode(), Mode::Off);
        assert_eq!(ModeHandle::default().mode(), Mode::Write);
    }
}
