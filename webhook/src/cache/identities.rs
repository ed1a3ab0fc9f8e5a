//! Watches (metadata only) of the identity kinds the management ProviderInterfaces declare, so
//! "identity object exists" is answered from the index.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use credential_core::estate::{Cluster, Estate, Served};
use credential_core::gvk::{Gvk, builtin_scope};
use kube::api::ApiResource;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Index;
use super::live::{Feed, feed};
use crate::informer::{ClusterWatches, Subscription, Trim, WatchSpec};
use crate::metrics::Metrics;

/// Watches (metadata only) the identity kinds the management ProviderInterfaces declare and the
/// management cluster serves, so "identity object exists" is answered from the cache.
pub(super) async fn identity_manager(
    watches: Arc<ClusterWatches>,
    index: Arc<Index>,
    metrics: Arc<Metrics>,
    changed: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut running: HashMap<(String, String), (String, Subscription)> = HashMap::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = changed.notified() => {}
        }
        // Let a burst of events (initial lists) settle before recomputing.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut desired: HashMap<(String, String), ApiResource> = HashMap::new();
        let crds = index.list(&Cluster::Management, &Gvk::crd(), None);
        for pi in index.list(&Cluster::Management, &Gvk::provider_interface(), None) {
            let ids = pi.get("spec").and_then(|s| s.get("clusterIdentities")).and_then(Value::as_array);
            for id in ids.into_iter().flatten() {
                let s = |k: &str| id.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                let gvk = Gvk::new(s("group"), s("version"), s("kind"));
                if gvk.kind.is_empty() || gvk.version.is_empty() || builtin_scope(&gvk).is_some() {
                    continue;
                }
                if index.served(&Cluster::Management, &gvk) != Served::Yes {
                    continue;
                }
                let plural = crds.iter().find_map(|c| {
                    let spec = c.get("spec")?;
                    (spec.get("group")?.as_str()? == gvk.group && spec.get("names")?.get("kind")?.as_str()? == gvk.kind)
                        .then(|| spec.get("names")?.get("plural")?.as_str().map(str::to_string))?
                });
                let Some(plural) = plural else { continue };
                desired.insert(
                    (gvk.group.clone(), gvk.kind.clone()),
                    ApiResource {
                        api_version: gvk.api_version(),
                        group: gvk.group,
                        version: gvk.version,
                        kind: gvk.kind,
                        plural,
                    },
                );
            }
        }
        let stale: Vec<(String, String)> = running
            .iter()
            .filter(|(gk, (version, _))| desired.get(*gk).is_none_or(|ar| ar.version != *version))
            .map(|(gk, _)| gk.clone())
            .collect();
        for gk in stale {
            // Unsubscribed first, so no late event refills what is cleared here.
            running.remove(&gk);
            index.set_covered(&gk.0, &gk.1, false);
            index.replace_all(&Cluster::Management, &gk.0, &gk.1, Vec::new());
            metrics.forget_cluster("management", &[&format!("identity:{}", gk.1)]);
        }
        for (gk, ar) in desired {
            if running.contains_key(&gk) {
                continue;
            }
            tracing::info!(group = %ar.group, version = %ar.version, kind = %ar.kind, "watching identity kind (metadata only)");
            let spec = WatchSpec::new(&ar, None, Trim::Meta);
            let f = Feed {
                index: index.clone(),
                metrics: metrics.clone(),
                cluster: Cluster::Management,
                resource: format!("identity:{}", ar.kind),
                sync: None,
                notify: Vec::new(),
                staleness: None,
                covers: true,
            };
            running.insert(gk, (ar.version.clone(), feed(&watches, &spec, f)));
        }
    }
}
