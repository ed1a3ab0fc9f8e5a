//! What `credential-webhook serve` runs against a cluster (without `--estate`): the distribution
//! mode control, the distributor and the admission index, wired once here so `main` and the
//! end-to-end tests start the same thing.

use std::sync::Arc;

use credential_core::distribution::{ModeError, ModeSetting};
use tokio_util::sync::CancellationToken;

use crate::cache::Index;
use crate::distribution::{DistributionConfig, DistributionMetrics, Distributor, ModeControl};
use crate::informer::Informers;
use crate::metrics::Metrics;
use crate::server::ReadinessDetail;

/// How the live parts run (the `serve` flags map onto these).
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Who copies cluster identities (`--distribution-mode`).
    pub mode: ModeSetting,
    /// `--force-write-mode`.
    pub force_write_mode: bool,
    /// The distributor's settings; its system namespace is the webhook's.
    pub distribution: DistributionConfig,
}

impl LiveOptions {
    /// Defaults for the system namespace `system_namespace`: mode auto, distributor defaults.
    pub fn new(system_namespace: &str) -> Self {
        LiveOptions {
            mode: ModeSetting::Auto,
            force_write_mode: false,
            distribution: crate::distribution::serve_config(system_namespace),
        }
    }

    pub fn system_namespace(&self) -> &str {
        &self.distribution.system_namespace
    }
}

/// The running live parts.
pub struct LiveWebhook {
    /// The admission index (readiness follows its sync).
    pub index: Arc<Index>,
    /// The distributor; its handle is the admission sink.
    pub distributor: Option<Distributor>,
    /// The distribution mode in force.
    pub mode: Arc<ModeControl>,
    /// The watch layer the index, the distributor and the mode control read.
    pub informers: Arc<Informers>,
}

impl LiveWebhook {
    /// The `/readyz` detail: the distribution mode in force and why.
    pub fn readiness_detail(&self) -> ReadinessDetail {
        let handle = self.mode.handle();
        Arc::new(move || handle.current().summary())
    }

    /// Stops the distributor gracefully (the caches stop with the `stop` token given to [`start`]).
    pub async fn shutdown(self) {
        if let Some(d) = self.distributor {
            d.shutdown().await;
        }
    }
}

/// Decides the distribution mode, starts the distributor (in every mode: in off mode it only hands
/// over Credentials write mode left holding our finalizer) and the admission index. The index is
/// returned at once, not synced yet. An error is a refusal to start (mode write next to a KCM that
/// copies, not forced).
pub async fn start(
    client: kube::Client,
    options: LiveOptions,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> Result<LiveWebhook, ModeError> {
    let dmetrics = DistributionMetrics::default();
    let mode = ModeControl::start(&client, options.mode, options.force_write_mode, dmetrics.clone()).await?;
    let state = mode.current();
    tracing::info!(
        mode = %state.mode(),
        reason = %state.decision.reason,
        who_copies = state.mode().who_copies(),
        "distribution mode in force"
    );
    let mut config = options.distribution;
    // One watch layer for all three: each collection of each cluster is watched once.
    let informers = config.informers(client);
    mode.watch(&informers.management, stop.clone());
    config.mode = mode.handle();
    let system_namespace = config.system_namespace.clone();
    let distributor = crate::distribution::start_for_serve_shared(informers.clone(), config, dmetrics, &metrics);
    let index = crate::cache::live::start_with(&informers, &system_namespace, metrics, stop);
    Ok(LiveWebhook { index, distributor: Some(distributor), mode, informers })
}
