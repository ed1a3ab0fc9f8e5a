//! Setup shared by the end-to-end tests: the webhook started in-process in live mode (as
//! `credential-webhook serve --kubeconfig` runs it) against a real cluster, kubeconfigs, and polling
//! until a condition holds. Real-cluster fixtures live in `real`, `regional`, `admission`.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub mod regional;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use credential_webhook::RunningServer;
use credential_webhook::cache::Index;
use credential_webhook::certs::Written;
use credential_webhook::metrics::Metrics;
use credential_webhook::server::{ServerBuilder, ServerConfig};
use credential_webhook::sink::AdmittedChangeSink;
use credential_webhook::tls::TlsFiles;
use tokio_util::sync::CancellationToken;

pub mod admission;
pub mod kcm;
pub mod lifecycle;
pub mod plugin;
pub mod random;
pub mod real;

pub const SYS: &str = "kcm-system";

pub use credential_e2e::manifests::AWS_PROVIDER_INTERFACE as PROVIDER_INTERFACE;

pub fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A kubeconfig for a plain-HTTP API server on 127.0.0.1:`port`, its cluster and context named `name`.
pub fn kubeconfig_for(name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster: {{server: \"http://127.0.0.1:{port}\"}}\n\
         users:\n- name: u\n  user: {{token: t}}\ncontexts:\n- name: {name}\n  context: {{cluster: {name}, user: u}}\n\
         current-context: {name}\n"
    )
}

/// A kubeconfig for a cluster nobody serves (a port that was free a moment ago).
pub fn unreachable_kubeconfig() -> String {
    kubeconfig_for("down", free_port())
}

/// Polls `f` until it gives a value; fails the test naming `what` after `limit`.
pub async fn eventually_some<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "{what} not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `f` until it holds; fails the test naming `what` after `limit`. Returns how long it took.
pub async fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    eventually_some(what, limit, || f().then_some(())).await;
    start.elapsed()
}

/// Polls the async `f` until it gives a value; fails the test naming `what` after `limit`.
pub async fn eventually_async<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < limit, "{what} not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The parts of a live webhook made before its server starts, so a test can wire more to the same
/// client and metrics (e.g. the distributor) first.
pub struct LivePrepared {
    pub client: kube::Client,
    pub metrics: Arc<Metrics>,
    pub stop: CancellationToken,
    pub ca_pem: String,
    /// Bounds the server's graceful shutdown; the ServerConfig default when None.
    pub shutdown_timeout: Option<Duration>,
    written: Written,
    dir: tempfile::TempDir,
}

/// credential-webhook serving in-process in live mode (its index filled by watchers of the API server).
pub struct LiveWebhook {
    pub server: RunningServer,
    pub index: Arc<Index>,
    pub metrics: Arc<Metrics>,
    pub stop: CancellationToken,
    /// The CA that signed the serving certificate (for caBundle).
    pub ca_pem: String,
    /// Holds the certificates and kubeconfig: keep it alive as long as the server.
    pub dir: tempfile::TempDir,
}

/// Serving certificates for 127.0.0.1 and a kube client for the API server named by `kubeconfig_yaml`.
pub async fn prepare_live_webhook(kubeconfig_yaml: &str) -> LivePrepared {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, kubeconfig_yaml).unwrap();
    let written = credential_webhook::certs::write_dir(dir.path(), &["127.0.0.1".to_string()]).unwrap();
    let ca_pem = std::fs::read_to_string(&written.ca_cert).unwrap();
    let client = credential_webhook::cache::live::client(Some(&kubeconfig)).await.unwrap();
    LivePrepared {
        client,
        metrics: Arc::new(Metrics::new()),
        stop: CancellationToken::new(),
        ca_pem,
        shutdown_timeout: None,
        written,
        dir,
    }
}

impl LivePrepared {
    /// Starts the live caches and the server on ephemeral ports; admitted changes go to `sink` if given.
    pub async fn serve(self, sink: Option<Arc<dyn AdmittedChangeSink>>) -> LiveWebhook {
        let index =
            credential_webhook::cache::live::start(self.client.clone(), SYS, self.metrics.clone(), self.stop.clone());
        self.serve_index(index, sink).await
    }

    /// What `credential-webhook serve` runs without --estate (`credential_webhook::live::start`: the
    /// mode control, the distributor and the admission index on one watch layer), not serving yet.
    pub async fn start_live(&self) -> credential_webhook::live::LiveWebhook {
        let options = credential_webhook::live::LiveOptions::new(SYS);
        credential_webhook::live::start(self.client.clone(), options, self.metrics.clone(), self.stop.clone())
            .await
            .unwrap()
    }

    /// The server on ephemeral ports, deciding from `index`.
    pub async fn serve_index(self, index: Arc<Index>, sink: Option<Arc<dyn AdmittedChangeSink>>) -> LiveWebhook {
        self.serve_with(index, sink, None).await
    }

    /// The server as `credential-webhook serve` runs it in live mode: deciding from `running`'s
    /// index, `/readyz` naming the distribution mode in force; admitted changes go to `sink`.
    pub async fn serve_live(
        self,
        running: &credential_webhook::live::LiveWebhook,
        sink: Option<Arc<dyn AdmittedChangeSink>>,
    ) -> LiveWebhook {
        self.serve_with(running.index.clone(), sink, Some(running.readiness_detail())).await
    }

    async fn serve_with(
        self,
        index: Arc<Index>,
        sink: Option<Arc<dyn AdmittedChangeSink>>,
        readiness: Option<credential_webhook::server::ReadinessDetail>,
    ) -> LiveWebhook {
        let LivePrepared { client: _, metrics, stop, ca_pem, shutdown_timeout, written, dir } = self;
        let mut config = ServerConfig::new(TlsFiles {
            cert_file: written.tls_cert,
            key_file: written.tls_key,
            poll_interval: Duration::from_secs(1),
        });
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.admin_listen = "127.0.0.1:0".parse().unwrap();
        config.shutdown_delay = Duration::ZERO;
        if let Some(timeout) = shutdown_timeout {
            config.shutdown_timeout = timeout;
        }
        let mut builder =
            ServerBuilder::new(config, index.clone()).metrics(metrics.clone()).shutdown_token(stop.clone());
        if let Some(sink) = sink {
            builder = builder.sink(sink);
        }
        if let Some(detail) = readiness {
            builder = builder.readiness_detail(detail);
        }
        let server = builder.start().await.unwrap();
        LiveWebhook { server, index, metrics, stop, ca_pem, dir }
    }
}

/// credential-webhook in live mode against the API server named by `kubeconfig_yaml`, no admission sink.
pub async fn start_live_webhook(kubeconfig_yaml: &str) -> LiveWebhook {
    prepare_live_webhook(kubeconfig_yaml).await.serve(None).await
}

impl LiveWebhook {
    /// `https://127.0.0.1:<port>` of the admission listener.
    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.server.addr.port())
    }
}

/// GET `path` on the plain-HTTP admin listener: the status code and the body.
pub fn admin_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}
