//! Every Kubernetes client the webhook builds: the management cluster's, and each Region's from its
//! kubeconfig Secret, with one set of timeouts and one trust rule (`credential_core::kubeconfig`:
//! no exec, no local files, no proxy). A Region's clients and watches are built once, shared by the
//! admission index and the distributor, and rebuilt when its kubeconfig Secret changes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use credential_core::kubeconfig::{KubeconfigRef, UntrustedKubeconfig, parse_untrusted};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};

use super::watches::ClusterWatches;
use crate::distribution::Backoff;

/// Read timeout of clients that watch: longer than a quiet watch lasts (the watcher asks the
/// server to end it after 290 s and reconnects itself 5 s after that), so it only catches a list
/// or watch request that never gets an answer.
pub const WATCH_READ_TIMEOUT: Duration = Duration::from_secs(300);

/// Timeouts of the regional clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTimeouts {
    /// TCP connect timeout.
    pub connect: Duration,
    /// Read timeout of one request (not of a watch): an API server that accepts the connection
    /// and never answers fails the request instead of holding a worker forever.
    pub request: Duration,
}

impl Default for ClientTimeouts {
    fn default() -> Self {
        ClientTimeouts { connect: Duration::from_secs(5), request: Duration::from_secs(30) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("cannot find cluster credentials (no in-cluster service account, no $KUBECONFIG or ~/.kube/config): {0}")]
    Infer(String),
    #[error("cannot build a Kubernetes client: {0}")]
    Client(String),
}

/// A client for the management cluster: `kubeconfig` when given, else in-cluster / $KUBECONFIG.
pub async fn management_client(kubeconfig: Option<&Path>) -> Result<Client, ClientError> {
    let mut config = match kubeconfig {
        Some(path) => {
            let err = |message: String| ClientError::Kubeconfig { path: path.display().to_string(), message };
            let kc = Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.map_err(|e| err(e.to_string()))?
        }
        None => Config::infer().await.map_err(|e| ClientError::Infer(e.to_string()))?,
    };
    // kube's default is no read timeout: a request the API server never answers would hang for
    // good. This client also watches, so the bound sits above a quiet watch; the distributor
    // bounds its own work tighter.
    config.read_timeout = Some(WATCH_READ_TIMEOUT);
    config.reset_reader_on_write = true;
    Client::try_from(config).map_err(|e| ClientError::Client(e.to_string()))
}

/// Why a Region's kubeconfig Secret gives no client. Never quotes the Secret's content.
#[derive(Debug, thiserror::Error)]
pub enum RegionalError {
    #[error("cannot read kubeconfig Secret {namespace}/{name}: {detail}")]
    Read {
        namespace: String,
        name: String,
        detail: String,
        #[source]
        source: kube::Error,
    },
    #[error("kubeconfig Secret {0} does not exist; create it with key {1:?}")]
    Missing(String, String),
    #[error("kubeconfig Secret {0} has no key {1:?}")]
    NoKey(String, String),
    #[error("key {1:?} of Secret {0} is not a valid kubeconfig")]
    Invalid(String, String),
    #[error("kubeconfig in Secret {0} key {1:?} is rejected: {2}")]
    Untrusted(String, String, UntrustedKubeconfig),
    #[error("kubeconfig in Secret {0} key {1:?} is unusable: {2}")]
    Unusable(String, String, String),
}

/// One Region's cluster as the webhook reaches it.
pub struct RegionalCluster {
    pub region: String,
    /// Where its kubeconfig came from.
    pub source: KubeconfigRef,
    /// The kubeconfig Secret's resourceVersion the clients were built from.
    pub secret_version: String,
    /// The Secret's key names (never values): the admission index records them.
    pub key_names: Vec<String>,
    /// For requests: short read timeout.
    pub client: Client,
    /// The cluster's watches (their own client, no short read timeout).
    pub watches: Arc<ClusterWatches>,
}

impl std::fmt::Debug for RegionalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionalCluster")
            .field("region", &self.region)
            .field("source", &self.source)
            .field("secret_version", &self.secret_version)
            .finish_non_exhaustive()
    }
}

type Slot = Arc<tokio::sync::OnceCell<Arc<RegionalCluster>>>;

/// The Regions' clusters, built on first use by whoever asks first (the admission index or the
/// distributor), one per Region.
pub struct RegionalClusters {
    mgmt: Client,
    timeouts: ClientTimeouts,
    backoff: Backoff,
    slots: Mutex<HashMap<String, (KubeconfigRef, Slot)>>,
}

impl RegionalClusters {
    pub fn new(mgmt: Client, timeouts: ClientTimeouts, backoff: Backoff) -> Self {
        RegionalClusters { mgmt, timeouts, backoff, slots: Mutex::default() }
    }

    /// The Region's cluster, built from the kubeconfig at `source` unless built already from it.
    /// A slow build holds up only this Region's callers.
    pub async fn connect(&self, region: &str, source: &KubeconfigRef) -> Result<Arc<RegionalCluster>, RegionalError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let entry = slots.entry(region.to_string()).or_insert_with(|| (source.clone(), Slot::default()));
            if entry.0 != *source {
                *entry = (source.clone(), Slot::default());
            }
            Arc::clone(&entry.1)
        };
        slot.get_or_try_init(|| self.build(region, source)).await.map(Arc::clone)
    }

    /// Forgets the Region's cluster if it is `built` (its kubeconfig changed, or its watches keep
    /// failing): the next [`RegionalClusters::connect`] reads the Secret again. A cluster built
    /// meanwhile by someone else stays.
    pub fn forget(&self, region: &str, built: &RegionalCluster) {
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = slots.get(region).and_then(|(_, s)| s.get()).is_some_and(|c| std::ptr::eq(&**c, built));
        if current {
            slots.remove(region);
        }
    }

    /// Whether `built` is no longer the Region's cluster here (forgotten, or rebuilt since): its
    /// holder should connect again and share the current one.
    pub fn replaced(&self, region: &str, built: &RegionalCluster) -> bool {
        let slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        !slots.get(region).and_then(|(_, s)| s.get()).is_some_and(|c| std::ptr::eq(&**c, built))
    }

    async fn build(&self, region: &str, src: &KubeconfigRef) -> Result<Arc<RegionalCluster>, RegionalError> {
        let secrets: Api<Secret> = Api::namespaced(self.mgmt.clone(), &src.namespace);
        let at = format!("{}/{}", src.namespace, src.name);
        let secret = secrets
            .get_opt(&src.name)
            .await
            .map_err(|e| RegionalError::Read {
                namespace: src.namespace.clone(),
                name: src.name.clone(),
                // A decoding error could quote the Secret's content: name the object only.
                detail: match &e {
                    kube::Error::SerdeError(_) => "the answer could not be decoded".to_string(),
                    e => super::watches::kube_error_text(e),
                },
                source: e,
            })?
            .ok_or_else(|| RegionalError::Missing(at.clone(), src.key.clone()))?;
        let secret_version = secret.metadata.resource_version.clone().unwrap_or_default();
        let data = secret.data.unwrap_or_default();
        let key_names: Vec<String> = data.keys().cloned().collect();
        let raw = data.get(&src.key).ok_or_else(|| RegionalError::NoKey(at.clone(), src.key.clone()))?;
        let invalid = || RegionalError::Invalid(at.clone(), src.key.clone());
        let text = std::str::from_utf8(&raw.0).map_err(|_| invalid())?;
        let config = checked_config(text, src).await?;
        let (client, watch_client) = clients(config, self.timeouts)
            .map_err(|e| RegionalError::Unusable(at.clone(), src.key.clone(), e.to_string()))?;
        tracing::info!(region, secret = %at, "regional client built");
        Ok(Arc::new(RegionalCluster {
            region: region.to_string(),
            source: src.clone(),
            secret_version,
            key_names,
            client,
            watches: ClusterWatches::new(region, watch_client, self.backoff),
        }))
    }
}

/// A client configuration from kubeconfig text found at `src`, checked before any client exists:
/// the Secret's writer must not make this pod run a command or send its files (the ServiceAccount
/// token) anywhere. The configuration is built from the checked value. Errors name a line, never
/// the text (it holds credentials).
pub async fn checked_config(text: &str, src: &KubeconfigRef) -> Result<Config, RegionalError> {
    let at = format!("{}/{}", src.namespace, src.name);
    let checked = parse_untrusted(text, &format!("Secret {at}[{}]", src.key)).map_err(|e| match e {
        UntrustedKubeconfig::Syntax(_) => RegionalError::Invalid(at.clone(), src.key.clone()),
        e => RegionalError::Untrusted(at.clone(), src.key.clone(), e),
    })?;
    let kubeconfig: Kubeconfig =
        serde_json::from_value(checked).map_err(|_| RegionalError::Invalid(at.clone(), src.key.clone()))?;
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| RegionalError::Unusable(at, src.key.clone(), e.to_string()))
}

/// Two clients for one cluster: requests time out after `timeouts.request` (counted from the
/// request, not from when a pooled connection went idle); watches stay quiet for minutes, so their
/// client only catches a list or watch that never gets an answer.
pub fn clients(mut config: Config, timeouts: ClientTimeouts) -> Result<(Client, Client), kube::Error> {
    config.connect_timeout = Some(timeouts.connect);
    config.reset_reader_on_write = true;
    let mut watch = config.clone();
    watch.read_timeout = Some(WATCH_READ_TIMEOUT);
    config.read_timeout = Some(timeouts.request);
    Ok((Client::try_from(config)?, Client::try_from(watch)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(region: &str, version: &str) -> Arc<RegionalCluster> {
        let client = Client::try_from(Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(2));
        Arc::new(RegionalCluster {
            region: region.to_string(),
            source: KubeconfigRef {
                namespace: "kcm-system".into(),
                name: format!("{region}-kubeconfig"),
                key: "value".into(),
            },
            secret_version: version.to_string(),
            key_names: vec!["value".into()],
            client: client.clone(),
            watches: ClusterWatches::new(region, client, backoff),
        })
    }

    fn built(clusters: &RegionalClusters, c: &Arc<RegionalCluster>) {
        let slot = Slot::default();
        let _ = slot.set(Arc::clone(c));
        clusters.slots.lock().unwrap().insert(c.region.clone(), (c.source.clone(), slot));
    }

    #[tokio::test]
    async fn a_rebuilt_cluster_is_followed_and_never_forgotten_by_a_stale_holder() {
        let mgmt = Client::try_from(Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(2));
        let clusters = RegionalClusters::new(mgmt, ClientTimeouts::default(), backoff);
        let (old, new) = (cluster("r1", "5"), cluster("r1", "6"));
        built(&clusters, &old);
        assert!(!clusters.replaced("r1", &old), "the one both holders share");
        // The index finds its watches failing: it forgets what it holds; the distributor, still
        // holding it, is told to connect again.
        clusters.forget("r1", &old);
        assert!(clusters.replaced("r1", &old));
        // Rebuilt meanwhile by one holder: a late forget by the other, of the old one, keeps it.
        built(&clusters, &new);
        clusters.forget("r1", &old);
        assert!(!clusters.replaced("r1", &new));
        assert!(clusters.replaced("r1", &old));
        // Another Region is not touched.
        assert!(clusters.replaced("r2", &new));
    }
}
