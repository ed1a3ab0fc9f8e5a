//! Key names of Secrets (never values) and the short live reads admission makes when the cache
//! may lag behind a write.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use credential_core::estate::{Cluster, Estate};
use credential_core::gvk::Gvk;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, DynamicObject};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Index, LiveRead};
use crate::informer::watches::{identity_meta, kube_error_text, strip_common};

/// Helm keeps release state in Secrets with this name prefix: large, and never a kubeconfig.
const HELM_RELEASE_PREFIX: &str = "sh.helm.release.v1.";

/// Key-name reads run at most this many at a time, each within [`KEY_READ_TIMEOUT`].
const KEY_READS_IN_FLIGHT: usize = 8;
const KEY_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Failed key-name reads are retried this often even when nothing changes.
const KEY_RETRY_PERIOD: Duration = Duration::from_secs(30);
/// The live read admission makes for a Region write must fit well within the API server's timeout.
const LIVE_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Records the key names of the system namespace's Secrets (Region rules check "Secret has key" at
/// admission time, before any Region references it). Each Secret is read once per resourceVersion;
/// only its key names are kept.
pub(super) async fn secret_keys_manager(
    client: Client,
    index: Arc<Index>,
    system_namespace: String,
    changed: Arc<Notify>,
    stop: CancellationToken,
) {
    let api: Api<Secret> = Api::namespaced(client, &system_namespace);
    let mut fetched: HashMap<String, String> = HashMap::new(); // name -> resourceVersion read
    let mut retry = tokio::time::interval(KEY_RETRY_PERIOD);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = changed.notified() => {}
            _ = retry.tick() => {}
        }
        let current: HashMap<String, String> = index
            .list(&Cluster::Management, &Gvk::secret(), Some(&system_namespace))
            .iter()
            .filter_map(|s| {
                let m = s.get("metadata")?;
                let name = m.get("name")?.as_str()?;
                let rv = m.get("resourceVersion").and_then(Value::as_str).unwrap_or_default();
                (!name.starts_with(HELM_RELEASE_PREFIX)).then(|| (name.to_string(), rv.to_string()))
            })
            .collect();
        fetched.retain(|name, _| current.contains_key(name));
        let todo: Vec<String> =
            current.into_iter().filter(|(name, rv)| fetched.get(name) != Some(rv)).map(|(name, _)| name).collect();
        let api = &api;
        let mut reads = futures_util::stream::iter(todo)
            .map(|name| async move {
                let read = tokio::time::timeout(KEY_READ_TIMEOUT, api.get_opt(&name)).await;
                (name, read)
            })
            .buffer_unordered(KEY_READS_IN_FLIGHT);
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => return,
                n = reads.next() => n,
            };
            let Some((name, read)) = next else { break };
            match read {
                Ok(Ok(Some(secret))) => {
                    let rv = secret.metadata.resource_version.clone().unwrap_or_default();
                    let keys: Vec<String> = secret.data.unwrap_or_default().into_keys().collect();
                    index.set_secret_keys(&system_namespace, &name, &rv, keys);
                    fetched.insert(name, rv);
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(namespace = %system_namespace, secret = %name, error = %e, "cannot read Secret key names");
                }
                Err(_) => {
                    tracing::warn!(namespace = %system_namespace, secret = %name, timeout = ?KEY_READ_TIMEOUT,
                        "cannot read Secret key names: timed out");
                }
            }
        }
    }
}

/// One live read of a Secret for admission, within [`LIVE_READ_TIMEOUT`]: its identity metadata and
/// key names (values are dropped at once). The names are also recorded in the index.
pub(super) async fn read_secret_keys(client: &Client, index: &Index, namespace: &str, name: &str) -> LiveRead {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match tokio::time::timeout(LIVE_READ_TIMEOUT, api.get_opt(name)).await {
        Ok(Ok(Some(secret))) => {
            let meta = serde_json::to_value(&secret.metadata).unwrap_or(Value::Null);
            let keys: Vec<String> = secret.data.unwrap_or_default().into_keys().collect();
            let rv = secret.metadata.resource_version.unwrap_or_default();
            let mut obj = identity_meta("v1", "Secret", &meta);
            super::set_key_names(&mut obj, Some(&keys));
            index.set_secret_keys(namespace, name, &rv, keys);
            LiveRead::Found(obj)
        }
        Ok(Ok(None)) => LiveRead::Absent,
        Ok(Err(e)) => {
            tracing::warn!(namespace, secret = name, error = %kube_error_text(&e),
                "live read of Secret failed; deciding on the cache");
            LiveRead::Unavailable
        }
        Err(_) => {
            tracing::warn!(
                namespace,
                secret = name,
                timeout_seconds = LIVE_READ_TIMEOUT.as_secs(),
                "live read of Secret timed out; deciding on the cache"
            );
            LiveRead::Unavailable
        }
    }
}

/// One live read of a management Credential, Region or ClusterDeployment for admission, within
/// [`LIVE_READ_TIMEOUT`], trimmed as the cache keeps it.
pub(super) async fn read_k0rdent_object(client: &Client, gvk: &Gvk, namespace: Option<&str>, name: &str) -> LiveRead {
    let Some(kind) = credential_core::rules::ResourceKind::from_gvk(gvk) else { return LiveRead::Unavailable };
    let k0rdent_ar = kube::api::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk(
            credential_core::K0RDENT_GROUP,
            credential_core::K0RDENT_VERSION,
            kind.kind(),
        ),
        kind.plural(),
    );
    // Cluster-wide only for Regions (cluster-scoped); the ClusterRole grants get on all four kinds.
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &k0rdent_ar),
        None => Api::all_with(client.clone(), &k0rdent_ar),
    };
    let at = namespace.map_or_else(|| name.to_string(), |ns| format!("{ns}/{name}"));
    match tokio::time::timeout(LIVE_READ_TIMEOUT, api.get_opt(name)).await {
        Ok(Ok(Some(obj))) => {
            let mut v = serde_json::to_value(&obj).unwrap_or(Value::Null);
            if let Some(m) = v.as_object_mut() {
                m.entry("apiVersion").or_insert_with(|| Value::String(k0rdent_ar.api_version.clone()));
                m.entry("kind").or_insert_with(|| Value::String(k0rdent_ar.kind.clone()));
            }
            LiveRead::Found(strip_common(v))
        }
        Ok(Ok(None)) => LiveRead::Absent,
        Ok(Err(e)) => {
            tracing::warn!(kind = kind.kind(), object = %at, error = %kube_error_text(&e),
                "live read failed; deciding on the cache");
            LiveRead::Unavailable
        }
        Err(_) => {
            tracing::warn!(kind = kind.kind(), object = %at, timeout_seconds = LIVE_READ_TIMEOUT.as_secs(),
                "live read timed out; deciding on the cache");
            LiveRead::Unavailable
        }
    }
}
