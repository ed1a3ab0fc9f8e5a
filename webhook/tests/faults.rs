//! Fault: SIGTERM to the real binary with requests in flight. Requests whose body is still arriving
//! and requests sent during the shutdown delay are all answered; then the process drains and exits 0.
//! (In-process drain and rotation faults: operations.rs `shutdown_drains_in_flight_requests`,
//! rotation.rs `kubelet_symlink_swap_while_requests_flow`; API-server faults: tests/tests/faults_e2e.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod child;
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use child::Webhook;
use common::*;
use rustls_pki_types::ServerName;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CRED: (&str, &str, &str) = (K0, "v1beta1", "Credential");

fn body(uid: &str) -> String {
    review(uid, "CREATE", CRED, Some("team"), "c", credential("team", "c", None), Value::Null, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_requests_in_flight_answers_them_all_then_exits_zero() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let estate = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/estate");
    let (cert, key, ca) = (certs.path().join("tls.crt"), certs.path().join("tls.key"), certs.path().join("ca.crt"));
    let mut wh = Webhook::start(&[
        "--log-format",
        "json",
        "serve",
        "--estate",
        estate.to_str().unwrap(),
        "--tls-cert-file",
        cert.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
        "--shutdown-delay",
        "1500ms",
        "--shutdown-timeout",
        "10s",
    ]);
    let addr = wh.addr;
    assert_eq!(admin_get(wh.admin, "/readyz").await.0, 200);

    // 1. Forty connections, each with a request whose body is half sent.
    const IN_FLIGHT: usize = 40;
    let connector = tokio_rustls::TlsConnector::from(Arc::new({
        let mut c = client_config(&ca);
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        c
    }));
    let mut pending = Vec::new();
    for i in 0..IN_FLIGHT {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
        let uid = format!("inflight-{i}");
        let b = body(&uid);
        let head = format!(
            "POST /validate?timeout=10s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            b.len()
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.write_all(&b.as_bytes()[..b.len() / 2]).await.unwrap();
        tls.flush().await.unwrap();
        pending.push((uid, b, tls));
    }
    // Keep-alive clients (HTTP/1.1 and HTTP/2) that are already connected, as the API server's are.
    let h1 = client(&ca, Proto::H1);
    let h2 = client(&ca, Proto::H2);
    for (c, uid) in [(&h1, "warm-1"), (&h2, "warm-2")] {
        assert_eq!(post(c, addr.port(), "/validate", body(uid)).await.json()["response"]["uid"], uid);
    }

    // 2. SIGTERM. During the delay readiness is false and new requests are still answered.
    let sent = Instant::now();
    wh.signal("TERM");
    let mut during = 0;
    while sent.elapsed() < Duration::from_millis(1000) {
        for (c, p) in [(&h1, "h1"), (&h2, "h2")] {
            let uid = format!("during-{p}-{during}");
            let r = post(c, addr.port(), "/validate", body(&uid)).await;
            assert_eq!(r.json()["response"]["uid"], uid.as_str());
            during += 1;
        }
    }
    assert_eq!(admin_get(wh.admin, "/readyz").await, (503, "not ready: shutting down\n".to_string()));
    assert!(during >= 4, "requests answered during the delay: {during}");

    // 3. The drain: after the delay, finish every half-sent body; each gets its answer.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut answered = 0;
    for (uid, b, mut tls) in pending {
        tls.write_all(&b.as_bytes()[b.len() / 2..]).await.unwrap();
        tls.flush().await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await.unwrap().ok();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{uid}: {text}");
        assert!(text.contains(&format!("\"uid\":\"{uid}\"")) && text.contains("\"allowed\":true"), "{text}");
        answered += 1;
    }
    assert_eq!(answered, IN_FLIGHT);

    // 4. The process exits cleanly once drained.
    let status = wh.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "exit status {status}:\n{}", wh.log());
    let log = wh.log();
    for line in ["SIGTERM received", "shutdown started: readiness is false", "all connections drained", "stopped"] {
        assert!(log.contains(line), "log lacks {line:?}:\n{log}");
    }
    eprintln!("SIGTERM: {IN_FLIGHT} in-flight requests answered, {during} answered during the delay");
}

/// The leaf certificate a fresh TLS connection is served.
async fn served_leaf(addr: std::net::SocketAddr, ca: &std::path::Path) -> Vec<u8> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(ca)));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

async fn wait_until(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !f().await {
        assert!(started.elapsed() < limit, "{what} not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fault: the certificate files are replaced by a broken pair (a certificate for another key, then
/// not PEM at all). The binary keeps serving the old pair, counts each failure in
/// `credential_webhook_tls_reload_failures_total` and logs why; a good pair afterwards is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_certificate_pair_keeps_the_old_one_and_says_why() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let other = tempfile::tempdir().unwrap();
    make_certs(other.path());
    let estate = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/estate");
    let (cert, key, ca) = (certs.path().join("tls.crt"), certs.path().join("tls.key"), certs.path().join("ca.crt"));
    let wh = Webhook::start(&[
        "--log-format",
        "json",
        "serve",
        "--estate",
        estate.to_str().unwrap(),
        "--tls-cert-file",
        cert.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
        "--tls-reload-interval",
        "200ms",
    ]);
    let original = served_leaf(wh.addr, &ca).await;
    let failures = async || {
        let (_, text) = admin_get(wh.admin, "/metrics").await;
        metric(&text, "credential_webhook_tls_reload_failures_total").unwrap_or(-1.0)
    };
    assert_eq!(failures().await, 0.0);

    // 1. A certificate whose key is not the one on disk.
    std::fs::copy(other.path().join("tls.crt"), &cert).unwrap();
    wait_until("first failure counted", Duration::from_secs(10), async || failures().await == 1.0).await;
    assert_eq!(served_leaf(wh.addr, &ca).await, original, "the old pair keeps serving");
    let log = wh.log();
    assert!(
        log.contains("new serving certificate pair rejected; still serving the previous pair")
            && log.contains("the private key does not belong to the first certificate"),
        "{log}"
    );

    // 2. Not a certificate at all.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    wait_until("second failure counted", Duration::from_secs(10), async || failures().await == 2.0).await;
    assert_eq!(served_leaf(wh.addr, &ca).await, original);
    assert!(wh.log().contains("no PEM CERTIFICATE block found"), "{}", wh.log());
    // Admission goes on meanwhile.
    let c = client(&ca, Proto::H2);
    assert_eq!(post(&c, wh.addr.port(), "/validate", body("during-broken")).await.json()["response"]["allowed"], true);

    // 3. A good pair (from the other CA) is picked up.
    std::fs::copy(other.path().join("tls.key"), &key).unwrap();
    std::fs::copy(other.path().join("tls.crt"), &cert).unwrap();
    let other_ca = other.path().join("ca.crt");
    wait_until("new pair served", Duration::from_secs(10), async || {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(&other_ca)));
        let tcp = tokio::net::TcpStream::connect(wh.addr).await.unwrap();
        connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.is_ok()
    })
    .await;
    assert!(wh.log().contains("serving certificate reloaded"), "{}", wh.log());
}
