//! The one watch layer of the process: per cluster, each collection is watched once and fanned
//! out to the admission index (`crate::cache`) and the distributor (`crate::distribution`), the
//! way linkerd's policy controller feeds its indexes. [`Informers`] holds the management
//! cluster's watches and the Regions' clusters (clients and watches, built once per Region).
//!
//! - [`watches`]: one cluster's shared watches (kube-runtime's `watcher` and backoff underneath).
//! - [`clients`]: every client the webhook builds, one set of timeouts, one kubeconfig trust rule.

pub mod clients;
pub mod watches;

use std::sync::Arc;

pub use clients::{ClientTimeouts, RegionalCluster, RegionalClusters, RegionalError, WATCH_READ_TIMEOUT};
pub use watches::{ClusterWatches, Event, Subscription, Trim, WatchFailure, WatchSpec};

use crate::distribution::Backoff;

/// The watches and clients every part of the process reads through.
pub struct Informers {
    pub management: Arc<ClusterWatches>,
    pub regions: RegionalClusters,
}

impl std::fmt::Debug for Informers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Informers").finish_non_exhaustive()
    }
}

impl Informers {
    /// `mgmt` watches and reads the management cluster; regional clients get `timeouts`; failed
    /// watches retry after `backoff`.
    pub fn new(mgmt: kube::Client, timeouts: ClientTimeouts, backoff: Backoff) -> Arc<Self> {
        Arc::new(Informers {
            management: ClusterWatches::new("management", mgmt.clone(), backoff),
            regions: RegionalClusters::new(mgmt, timeouts, backoff),
        })
    }

    /// The management cluster's client.
    pub fn client(&self) -> &kube::Client {
        self.management.client()
    }
}
