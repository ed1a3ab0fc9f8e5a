//! The HTTPS admission server and the plain-HTTP admin server.
//!
//! The accept loop is hand-rolled (tokio-rustls + hyper-util auto) so that every connection gets
//! TCP_NODELAY, a TLS-handshake and header-read timeout, and a graceful drain on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::{Bytes, BytesMut};
use credential_core::{Cluster, ResourceKind};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admission::{Admission, Webhook};
use crate::cache::ServingEstate;
use crate::metrics::Metrics;
use crate::sink::{AdmittedChangeSink, NoopSink};
use crate::tls::{CertReloader, TlsError, TlsFiles};

/// Everything the server needs besides the estate.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// HTTPS admission address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Plain-HTTP admin address: `/livez`, `/readyz`, `/metrics`.
    pub admin_listen: SocketAddr,
    pub tls: TlsFiles,
    /// Budget for one request from its headers to the reply (keep below the webhook timeoutSeconds).
    pub request_timeout: Duration,
    /// Budget for the TLS handshake and for reading request headers.
    pub header_read_timeout: Duration,
    /// Largest AdmissionReview body accepted.
    pub max_body_bytes: usize,
    /// Admission requests handled at once; more wait for a slot.
    pub max_concurrent_requests: usize,
    /// After shutdown starts: how long to keep serving (readiness already false) before draining.
    pub shutdown_delay: Duration,
    /// Longest wait for in-flight requests to finish during the drain.
    pub shutdown_timeout: Duration,
}

impl ServerConfig {
    /// Defaults for a given TLS pair: the values `credential-webhook serve` uses.
    pub fn new(tls: TlsFiles) -> Self {
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 9443)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls,
            request_timeout: Duration::from_secs(8),
            header_read_timeout: Duration::from_secs(5),
            max_body_bytes: 4 << 20,
            max_concurrent_requests: 1024,
            shutdown_delay: Duration::from_secs(2),
            shutdown_timeout: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

struct App {
    admission: Admission,
    limit: Semaphore,
    max_body_bytes: usize,
    request_timeout: Duration,
    shutting_down: AtomicBool,
    estate: Arc<dyn ServingEstate>,
    metrics: Arc<Metrics>,
    readiness_detail: Option<ReadinessDetail>,
}

/// Extra lines for `/readyz` (e.g. the distribution mode in force and why).
pub type ReadinessDetail = Arc<dyn Fn() -> String + Send + Sync>;

/// Builds and starts a server.
pub struct ServerBuilder {
    config: ServerConfig,
    estate: Arc<dyn ServingEstate>,
    sink: Arc<dyn AdmittedChangeSink>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    readiness_detail: Option<ReadinessDetail>,
}

impl ServerBuilder {
    pub fn new(config: ServerConfig, estate: Arc<dyn ServingEstate>) -> Self {
        ServerBuilder {
            config,
            estate,
            sink: Arc::new(NoopSink),
            metrics: Arc::new(Metrics::new()),
            shutdown: CancellationToken::new(),
            readiness_detail: None,
        }
    }

    /// Where admitted Credential changes go (distribution); [`NoopSink`] by default.
    pub fn sink(mut self, sink: Arc<dyn AdmittedChangeSink>) -> Self {
        self.sink = sink;
        self
    }

    /// Share a metrics registry (e.g. with the live cache).
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// A line `/readyz` adds after `ok` (the distribution mode in force, say).
    pub fn readiness_detail(mut self, detail: ReadinessDetail) -> Self {
        self.readiness_detail = Some(detail);
        self
    }

    /// A token whose cancellation starts the graceful shutdown (e.g. cancelled on SIGTERM).
    pub fn shutdown_token(mut self, token: CancellationToken) -> Self {
        self.shutdown = token;
        self
    }

    /// Loads the TLS pair, binds both listeners and starts serving.
    pub async fn start(self) -> Result<RunningServer, ServerError> {
        let ServerBuilder { config, estate, sink, metrics, shutdown, readiness_detail } = self;
        let (reloader, pair) = CertReloader::load(config.tls.clone())?;
        if let Some(t) = pair.not_after {
            metrics.tls_not_after.set(t);
        }
        let cert = pair.key.cert.first().map(|c| crate::tls::summarize(c.as_ref())).unwrap_or_default();
        let tls_config = crate::tls::server_config(reloader.resolver())?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Bind { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind { addr: config.listen, source })?;
        let admin_listener = TcpListener::bind(config.admin_listen)
            .await
            .map_err(|source| ServerError::Bind { addr: config.admin_listen, source })?;
        let admin_addr =
            admin_listener.local_addr().map_err(|source| ServerError::Bind { addr: config.admin_listen, source })?;

        let app = Arc::new(App {
            admission: Admission::new(estate.clone(), sink, metrics.clone()),
            limit: Semaphore::new(config.max_concurrent_requests.max(1)),
            max_body_bytes: config.max_body_bytes,
            request_timeout: config.request_timeout,
            shutting_down: AtomicBool::new(false),
            estate,
            metrics: metrics.clone(),
            readiness_detail,
        });

        let background = CancellationToken::new();
        let reload_task = tokio::spawn(reloader.run(metrics.clone(), background.clone()));

        let admin_router = Router::new()
            .route("/livez", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_handler))
            .with_state(app.clone());
        let admin_stop = background.clone();
        let admin_task = tokio::spawn(async move {
            let served = axum::serve(admin_listener, admin_router)
                .with_graceful_shutdown(async move { admin_stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "admin server failed");
            }
        });

        let router =
            Router::new().route("/validate", post(validate)).route("/mutate", post(mutate)).with_state(app.clone());
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).header_read_timeout(config.header_read_timeout);
        builder.http2().timer(TokioTimer::new()).max_concurrent_streams(256);
        let accept = AcceptLoop {
            listener,
            acceptor: tokio_rustls::TlsAcceptor::from(tls_config),
            builder: Arc::new(builder),
            router,
            handshake_timeout: config.header_read_timeout,
        };

        let drain = CancellationToken::new();
        let main_task = tokio::spawn({
            let shutdown = shutdown.clone();
            let app = app.clone();
            async move {
                let drained = drain.clone();
                let conns = tokio::spawn(accept.run(drain.clone()));
                shutdown.cancelled().await;
                app.shutting_down.store(true, Ordering::Release);
                tracing::info!(delay = ?config.shutdown_delay, "shutdown started: readiness is false");
                tokio::time::sleep(config.shutdown_delay).await;
                drained.cancel();
                match tokio::time::timeout(config.shutdown_timeout, conns).await {
                    Ok(_) => tracing::info!("all connections drained"),
                    Err(_) => {
                        tracing::warn!(timeout = ?config.shutdown_timeout, "drain timed out; closing connections")
                    }
                }
                background.cancel();
                let _ = reload_task.await;
                let _ = admin_task.await;
            }
        });

        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            %addr,
            %admin_addr,
            cert_subject = %cert.subject,
            cert_alt_names = ?cert.alt_names,
            cert_not_after = %cert.not_after_rfc3339(),
            cert_days_left = cert.not_after.map(days_left),
            "credential-webhook serving"
        );
        Ok(RunningServer { addr, admin_addr, shutdown, task: main_task, metrics })
    }
}

struct AcceptLoop {
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    builder: Arc<auto::Builder<TokioExecutor>>,
    router: Router,
    handshake_timeout: Duration,
}

impl AcceptLoop {
    /// Accepts until `drain`, then waits for every connection to finish its in-flight requests.
    async fn run(self, drain: CancellationToken) {
        let mut conns = JoinSet::new();
        loop {
            while conns.try_join_next().is_some() {}
            let accepted = tokio::select! {
                () = drain.cancelled() => break,
                a = self.listener.accept() => a,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Without TCP_NODELAY small HTTP/2 frames wait for ACKs (Nagle): ~40 ms stalls.
            let _ = tcp.set_nodelay(true);
            let acceptor = self.acceptor.clone();
            let builder = self.builder.clone();
            let service = TowerToHyperService::new(self.router.clone());
            let drain = drain.clone();
            let handshake_timeout = self.handshake_timeout;
            conns.spawn(async move {
                let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let conn = builder.serve_connection(TokioIo::new(tls), service);
                let mut conn = std::pin::pin!(conn);
                let result = tokio::select! {
                    r = conn.as_mut() => r,
                    () = drain.cancelled() => {
                        // Finish in-flight requests, close idle keep-alive connections, GOAWAY on h2.
                        conn.as_mut().graceful_shutdown();
                        conn.as_mut().await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
        drop(self.listener);
        while conns.join_next().await.is_some() {}
    }
}

/// A started server.
#[derive(Debug)]
pub struct RunningServer {
    /// The bound HTTPS address.
    pub addr: SocketAddr,
    /// The bound admin address.
    pub admin_addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    metrics: Arc<Metrics>,
}

impl RunningServer {
    /// Starts the graceful shutdown (same as SIGTERM).
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Waits until the server stopped (after [`shutdown`](Self::shutdown) and the drain).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Whole days from now until `unix` (negative once past).
fn days_left(unix: i64) -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    (unix - i64::try_from(now).unwrap_or(i64::MAX)).div_euclid(86_400)
}

/// What the caches hold: management objects per kind, and the Regions with whether their
/// regional cache has synced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EstateSummary {
    /// (plural, count) for every kind the webhook admits, in [`ResourceKind::ALL`] order.
    pub objects: Vec<(&'static str, usize)>,
    pub regions_synced: Vec<String>,
    pub regions_pending: Vec<String>,
}

/// Counts what `estate` holds now.
pub fn estate_summary(estate: &dyn ServingEstate) -> EstateSummary {
    let objects =
        ResourceKind::ALL.iter().map(|k| (k.plural(), estate.count(&Cluster::Management, &k.gvk(), None))).collect();
    let (mut regions_synced, mut regions_pending) = (Vec::new(), Vec::new());
    for region in estate.list(&Cluster::Management, &ResourceKind::Region.gvk(), None) {
        let Some(name) = region.pointer("/metadata/name").and_then(serde_json::Value::as_str) else { continue };
        if estate.knows_cluster(&Cluster::Region(name.to_string())) {
            regions_synced.push(name.to_string());
        } else {
            regions_pending.push(name.to_string());
        }
    }
    EstateSummary { objects, regions_synced, regions_pending }
}

/// How long [`log_when_synced`] keeps reporting regional caches that have not synced yet.
const REGIONAL_SYNC_REPORT: Duration = Duration::from_secs(300);

/// Logs what the caches hold once the management caches have synced (one line, objects per kind
/// and Regions), then each regional cache as it syncs, and a warning for those still not synced
/// after five minutes. Ends early on `stop`.
pub async fn log_when_synced(estate: Arc<dyn ServingEstate>, stop: CancellationToken) {
    let started = tokio::time::Instant::now();
    let tick = Duration::from_millis(250);
    while !estate.synced() {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
        }
    }
    let summary = estate_summary(estate.as_ref());
    let counts: String = summary.objects.iter().map(|(k, n)| format!("{k}={n}")).collect::<Vec<_>>().join(" ");
    tracing::info!(
        after = ?started.elapsed(),
        objects = %counts,
        regions_synced = ?summary.regions_synced,
        regions_pending = ?summary.regions_pending,
        "caches synced: admission decides from them now"
    );
    let mut pending = summary.regions_pending;
    let deadline = tokio::time::Instant::now() + REGIONAL_SYNC_REPORT;
    while !pending.is_empty() {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        pending.retain(|name| {
            let known = estate.knows_cluster(&Cluster::Region(name.clone()));
            if known {
                tracing::info!(region = %name, "regional cache synced");
            }
            !known
        });
        if tokio::time::Instant::now() > deadline {
            tracing::warn!(regions = ?pending, "regional caches still not synced after 5 minutes; their regional checks are skipped (see the cache_synced metric and the Region's kubeconfig)");
            return;
        }
    }
}

/// Cancels `token` on SIGTERM or SIGINT; a second signal exits at once.
pub fn shutdown_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot install the SIGTERM handler");
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        }
        token.cancel();
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
        tracing::warn!("second signal: exiting without draining");
        std::process::exit(130);
    });
}

// --- handlers ---------------------------------------------------------------------------------------

async fn validate(State(app): State<Arc<App>>, body: Body) -> Response {
    admit(app, Webhook::Validate, body).await
}

async fn mutate(State(app): State<Arc<App>>, body: Body) -> Response {
    admit(app, Webhook::Mutate, body).await
}

enum BodyRead {
    Full(Bytes),
    /// Larger than the limit; holds what was read.
    TooLarge(Bytes),
    Failed(String),
}

async fn read_body(mut body: Body, limit: usize) -> BodyRead {
    // A review usually arrives in one data frame: it is kept as it came, without a copy. Only a
    // second frame starts a buffer.
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let data = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
            Err(e) => return BodyRead::Failed(e.to_string()),
        };
        let read = first.as_ref().map_or(0, Bytes::len) + buf.len();
        if read + data.len() > limit {
            if let Some(f) = first.take() {
                buf.extend_from_slice(&f);
            }
            buf.extend_from_slice(&data[..limit.saturating_sub(read)]);
            return BodyRead::TooLarge(buf.freeze());
        }
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            held => {
                if let Some(f) = held {
                    buf.extend_from_slice(&f);
                }
                buf.extend_from_slice(&data);
            }
        }
    }
    BodyRead::Full(first.unwrap_or_else(|| buf.freeze()))
}

async fn admit(app: Arc<App>, webhook: Webhook, body: Body) -> Response {
    // A guard, so a request abandoned by its client (future dropped) still leaves the gauge.
    struct InFlight<'a>(&'a Metrics);
    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            self.0.in_flight.dec();
        }
    }
    app.metrics.in_flight.inc();
    let _in_flight = InFlight(&app.metrics);
    let work = async {
        // Waiting for a slot counts against --request-timeout: under overload we still answer
        // before the API server's timeoutSeconds. The semaphore is never closed, so acquire
        // cannot fail; without a permit we still answer.
        let _permit = app.limit.acquire().await.ok();
        match read_body(body, app.max_body_bytes).await {
            BodyRead::Full(bytes) => app.admission.review_async(webhook, &bytes).await,
            BodyRead::TooLarge(prefix) => app.admission.oversized(webhook, &prefix, app.max_body_bytes),
            BodyRead::Failed(e) => app.admission.unreadable(webhook, b"", format!("cannot read the request body: {e}")),
        }
    };
    let reply = match tokio::time::timeout(app.request_timeout, work).await {
        Ok(reply) => reply,
        Err(_) => app.admission.unreadable(
            webhook,
            b"",
            format!("the request was not complete within {:?} (--request-timeout)", app.request_timeout),
        ),
    };
    let mut res = Response::new(Body::from(reply));
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.shutting_down.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: shutting down\n").into_response();
    }
    if !app.estate.synced() {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: caches not synced\n").into_response();
    }
    match &app.readiness_detail {
        Some(detail) => (StatusCode::OK, format!("ok\n{}\n", detail())).into_response(),
        None => (StatusCode::OK, "ok\n").into_response(),
    }
}

async fn metrics_handler(State(app): State<Arc<App>>) -> Response {
    let mut res = Response::new(Body::from(app.metrics.encode()));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use credential_core::Estate as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn admin_get(addr: SocketAddr, path: &str) -> String {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        tcp.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn metrics_hold_every_admission_series_before_the_first_request() {
        let dir = tempfile::tempdir().unwrap();
        let w = crate::certs::write_dir(dir.path(), &["localhost".to_string()]).unwrap();
        let mut config = ServerConfig::new(TlsFiles {
            cert_file: w.tls_cert,
            key_file: w.tls_key,
            poll_interval: Duration::from_secs(1),
        });
        assert_eq!(config.admin_listen.ip().to_string(), "127.0.0.1", "the admin listener defaults to loopback");
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.admin_listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.shutdown_delay = Duration::ZERO;
        let estate: Arc<dyn ServingEstate> = Arc::new(credential_core::MemoryEstate::default());
        let server = ServerBuilder::new(config, estate).start().await.unwrap();
        let reply = admin_get(server.admin_addr, "/metrics").await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        for series in [
            r#"credential_webhook_admission_requests_total{webhook="validate",kind="Credential",operation="CREATE",decision="denied"} 0"#,
            r#"credential_webhook_admission_requests_total{webhook="validate",kind="ClusterDeployment",operation="DELETE",decision="allowed"} 0"#,
            r#"credential_webhook_admission_requests_total{webhook="mutate",kind="Credential",operation="UPDATE",decision="patched"} 0"#,
            r#"credential_webhook_admission_requests_total{webhook="validate",kind="unknown",operation="unknown",decision="malformed"} 0"#,
            r#"credential_webhook_admission_duration_seconds_count{webhook="validate"} 0"#,
        ] {
            assert!(reply.contains(series), "no {series} before the first request:\n{reply}");
        }
        // The serving certificate's expiry is there from the start too (certs: one year).
        let not_after: i64 = reply
            .lines()
            .find_map(|l| l.strip_prefix("credential_webhook_tls_certificate_not_after_seconds "))
            .expect("tls_certificate_not_after_seconds")
            .parse()
            .unwrap();
        assert!((300..=366).contains(&days_left(not_after)), "{not_after}");
        server.shutdown();
        server.wait().await;
    }

    #[test]
    fn estate_summary_counts_kinds_and_regions() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/estate");
        let estate = credential_core::estate::load_dir(&dir, &Default::default()).unwrap();
        let s = estate_summary(&estate);
        let kinds: Vec<&str> = s.objects.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, ResourceKind::ALL.map(|k| k.plural()));
        let credentials = estate.list(&Cluster::Management, &ResourceKind::Credential.gvk(), None).len();
        assert!(credentials > 0);
        assert_eq!(s.objects[0], ("credentials", credentials));
        // Every Region of the example estate has its regional objects in the files.
        assert_eq!(s.objects[1], ("regions", s.regions_synced.len()), "{s:?}");
        assert!(s.regions_pending.is_empty(), "{s:?}");
    }
}
