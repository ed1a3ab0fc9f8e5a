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
    assert!(during >= 10, "requests answered during the delay: {during}");

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
