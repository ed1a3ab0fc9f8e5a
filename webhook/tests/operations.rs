//! Admin endpoints, readiness, metrics, and graceful shutdown that drains in-flight requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use credential_core::estate::{Cluster, Estate, MemoryEstate, Served};
use credential_core::gvk::Gvk;
use credential_webhook::cache::ServingEstate;
use rustls_pki_types::ServerName;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A MemoryEstate whose sync state the test controls.
struct Toggle {
    inner: MemoryEstate,
    synced: AtomicBool,
}

impl Estate for Toggle {
    fn system_namespace(&self) -> &str {
        self.inner.system_namespace()
    }
    fn knows_cluster(&self, c: &Cluster) -> bool {
        self.inner.knows_cluster(c)
    }
    fn get(&self, c: &Cluster, g: &Gvk, ns: Option<&str>, n: &str) -> Option<Arc<Value>> {
        self.inner.get(c, g, ns, n)
    }
    fn list(&self, c: &Cluster, g: &Gvk, ns: Option<&str>) -> Vec<Arc<Value>> {
        self.inner.list(c, g, ns)
    }
    fn served(&self, c: &Cluster, g: &Gvk) -> Served {
        self.inner.served(c, g)
    }
    fn namespaced(&self, c: &Cluster, g: &Gvk) -> Option<bool> {
        self.inner.namespaced(c, g)
    }
    fn credentials_in_region(&self, region: &str) -> Vec<(String, String)> {
        self.inner.credentials_in_region(region)
    }
    fn credentials_using_identity_kind(&self, api_version: &str, kind: &str) -> Vec<Arc<Value>> {
        self.inner.credentials_using_identity_kind(api_version, kind)
    }
    fn cluster_deployments_using(&self, namespace: &str, credential: &str) -> Vec<Arc<Value>> {
        self.inner.cluster_deployments_using(namespace, credential)
    }
    fn regions_on_cluster_deployment(&self, namespace: &str, name: &str) -> Vec<Arc<Value>> {
        self.inner.regions_on_cluster_deployment(namespace, name)
    }
}

impl ServingEstate for Toggle {
    fn synced(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
    }
}

#[tokio::test]
async fn probes_and_metrics() {
    let estate = Arc::new(Toggle { inner: estate(), synced: AtomicBool::new(false) });
    let h = start_with(estate.clone(), None, |c| c.shutdown_delay = Duration::from_millis(800)).await;
    let admin = h.server.admin_addr;

    assert_eq!(admin_get(admin, "/livez").await, (200, "ok".to_string()));
    assert_eq!(admin_get(admin, "/readyz").await, (503, "not ready: caches not synced\n".to_string()));
    estate.synced.store(true, Ordering::Relaxed);
    assert_eq!(admin_get(admin, "/readyz").await, (200, "ok\n".to_string()));
    assert_eq!(admin_get(admin, "/nope").await.0, 404);

    // Traffic shows up in the metrics by kind, operation and decision, plus finding codes.
    let c = client(&h.ca, Proto::H1);
    let port = h.server.addr.port();
    let cred = (K0, "v1beta1", "Credential");
    let deny =
        review("m-1", "CREATE", cred, Some("team"), "c1", credential("team", "c1", Some("nope")), Value::Null, false);
    post(&c, port, "/validate?timeout=10s", deny).await;
    let ok = review("m-2", "CREATE", cred, Some("team"), "c2", credential("team", "c2", None), Value::Null, false);
    post(&c, port, "/mutate?timeout=10s", ok).await;
    post(&c, port, "/validate?timeout=10s", "garbage").await;

    let (status, text) = admin_get(admin, "/metrics").await;
    assert_eq!(status, 200);
    let m = |s: &str| metric(&text, s);
    assert_eq!(
        m(
            "credential_webhook_admission_requests_total{webhook=\"validate\",kind=\"Credential\",operation=\"CREATE\",decision=\"denied\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        m(
            "credential_webhook_admission_requests_total{webhook=\"mutate\",kind=\"Credential\",operation=\"CREATE\",decision=\"patched\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        m(
            "credential_webhook_admission_requests_total{webhook=\"validate\",kind=\"unknown\",operation=\"unknown\",decision=\"malformed\"}"
        ),
        Some(1.0)
    );
    assert_eq!(m("credential_webhook_findings_total{code=\"CRED004\",severity=\"deny\"}"), Some(1.0), "{text}");
    assert_eq!(m("credential_webhook_admission_duration_seconds_count{webhook=\"validate\"}"), Some(2.0));
    let not_after = m("credential_webhook_tls_certificate_not_after_seconds").unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(not_after > now + 300.0 * 86_400.0, "one-year certificate: {not_after}");
    assert_eq!(m("credential_webhook_admission_in_flight"), Some(0.0));

    // Shutdown: readiness drops at once while admission still answers during the delay.
    h.server.shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(admin_get(admin, "/readyz").await, (503, "not ready: shutting down\n".to_string()));
    assert_eq!(admin_get(admin, "/livez").await.0, 200);
    let again = review("m-3", "CREATE", cred, Some("team"), "c2", credential("team", "c2", None), Value::Null, true);
    assert_eq!(post(&c, port, "/validate?timeout=10s", again).await.json()["response"]["allowed"], true);
    tokio::time::timeout(Duration::from_secs(10), h.server.wait()).await.expect("server stops");
    assert!(tokio::net::TcpStream::connect(admin).await.is_err(), "admin listener closed after shutdown");
}

/// A request whose body is still arriving when shutdown starts is answered; then the server stops.
#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let h = start(Arc::new(estate()), None).await;
    let addr = h.server.addr;
    let connector = tokio_rustls::TlsConnector::from(Arc::new({
        let mut c = client_config(&h.ca);
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        c
    }));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    let body = review(
        "d-1",
        "CREATE",
        (K0, "v1beta1", "Credential"),
        Some("team"),
        "c",
        credential("team", "c", None),
        Value::Null,
        true,
    );
    let head = format!(
        "POST /validate?timeout=10s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    tls.write_all(first).await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    h.server.shutdown();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New connections are no longer accepted once the drain started.
    let refused = match tokio::net::TcpStream::connect(addr).await {
        Err(_) => true,
        Ok(tcp) => connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.is_err(),
    };
    assert!(refused, "no new connections during the drain");

    tls.write_all(rest).await.unwrap();
    tls.flush().await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await.unwrap().ok();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("\"uid\":\"d-1\"") && text.contains("\"allowed\":true"), "{text}");
    tokio::time::timeout(Duration::from_secs(5), h.server.wait()).await.expect("server stops after the drain");
}

/// Slow clients do not hold a connection forever: headers must arrive within the header-read timeout.
#[tokio::test]
async fn header_read_timeout_closes_slow_connections() {
    let h = start_with(Arc::new(estate()), None, |c| c.header_read_timeout = Duration::from_millis(500)).await;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(&h.ca)));
    let tcp = tokio::net::TcpStream::connect(h.server.addr).await.unwrap();
    let mut tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    tls.write_all(b"POST /validate HTTP/1.1\r\nHost: local").await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), tls.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server closed the connection within the timeout");
    // hyper answers 408 or just closes; either way no admission reply was produced.
    assert!(!String::from_utf8_lossy(&out).contains("AdmissionReview"));
}
