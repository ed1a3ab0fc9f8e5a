//! Certificate rotation as kubelet does it for a mounted Secret: timestamped `..<ts>` directories,
//! a `..data` symlink swapped atomically, and `tls.crt`/`tls.key` pointing through `..data`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use credential_webhook::certs::{Ca, ServingPair};
use credential_webhook::server::ServerBuilder;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;

/// Writes one generation `..<ts>/{tls.crt,tls.key}`.
fn write_generation(dir: &Path, ts: &str, cert_pem: &str, key_pem: &str) {
    let g = dir.join(format!("..{ts}"));
    std::fs::create_dir(&g).unwrap();
    std::fs::write(g.join("tls.crt"), cert_pem).unwrap();
    std::fs::write(g.join("tls.key"), key_pem).unwrap();
}

/// Points `..data` at generation `ts` atomically (symlink to a temp name, then rename), as kubelet does.
fn swap_data(dir: &Path, ts: &str) {
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..{ts}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
}

fn der(pair: &ServingPair) -> Vec<u8> {
    CertificateDer::from_pem_slice(pair.cert_pem.as_bytes()).unwrap().to_vec()
}

/// The leaf certificate a fresh TLS connection is served.
async fn served_leaf(addr: std::net::SocketAddr, ca: &Path) -> Vec<u8> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(ca)));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

async fn wait_for(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} not seen within {limit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_symlink_swap_while_requests_flow() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new().unwrap();
    std::fs::write(d.join("ca.crt"), ca.cert_pem()).unwrap();
    let hosts = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let a = ca.issue(&hosts).unwrap();
    let b = ca.issue(&hosts).unwrap();
    let c = ca.issue(&hosts).unwrap();

    write_generation(d, "2026_01_01_00_00_00.000000001", &a.cert_pem, &a.key_pem);
    swap_data(d, "2026_01_01_00_00_00.000000001");
    std::os::unix::fs::symlink("..data/tls.crt", d.join("tls.crt")).unwrap();
    std::os::unix::fs::symlink("..data/tls.key", d.join("tls.key")).unwrap();

    let cfg = config(d.join("tls.crt"), d.join("tls.key"));
    let server = ServerBuilder::new(cfg, Arc::new(estate())).start().await.unwrap();
    let addr = server.addr;
    let ca_file = d.join("ca.crt");
    assert_eq!(served_leaf(addr, &ca_file).await, der(&a));

    // Requests flow all along: one keep-alive client, and a fresh connection per request.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut flows = Vec::new();
    for fresh in [false, true] {
        let (stop, ok, ca_file) = (stop.clone(), ok.clone(), ca_file.clone());
        flows.push(tokio::spawn(async move {
            let mut pooled = client(&ca_file, Proto::H1);
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                if fresh {
                    pooled = client(&ca_file, Proto::H2);
                }
                n += 1;
                let uid = format!("flow-{fresh}-{n}");
                let body = review(
                    &uid,
                    "CREATE",
                    (K0, "v1beta1", "Credential"),
                    Some("team"),
                    "c",
                    credential("team", "c", None),
                    Value::Null,
                    true,
                );
                let r = post(&pooled, addr.port(), "/validate?timeout=10s", body).await;
                assert_eq!(r.status, 200);
                assert_eq!(r.json()["response"]["uid"], uid.as_str());
                ok.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // Rotate to B: served within seconds.
    write_generation(d, "2026_02_01_00_00_00.000000001", &b.cert_pem, &b.key_pem);
    swap_data(d, "2026_02_01_00_00_00.000000001");
    std::fs::remove_dir_all(d.join("..2026_01_01_00_00_00.000000001")).unwrap();
    let took =
        wait_for("certificate B", Duration::from_secs(5), async || served_leaf(addr, &ca_file).await == der(&b)).await;
    assert!(took < Duration::from_secs(3), "rotation took {took:?}");
    let text = server.metrics().encode();
    assert_eq!(metric(&text, "credential_webhook_tls_reloads_total"), Some(1.0), "{text}");
    assert_eq!(metric(&text, "credential_webhook_tls_reload_failures_total"), Some(0.0));

    // Rotate to a broken pair (C's certificate with B's key): B stays, the failure is counted.
    write_generation(d, "2026_03_01_00_00_00.000000001", &c.cert_pem, &b.key_pem);
    swap_data(d, "2026_03_01_00_00_00.000000001");
    wait_for("reload failure metric", Duration::from_secs(5), async || {
        metric(&server.metrics().encode(), "credential_webhook_tls_reload_failures_total") == Some(1.0)
    })
    .await;
    assert_eq!(served_leaf(addr, &ca_file).await, der(&b), "the old pair keeps serving");

    // A good pair afterwards is picked up again.
    write_generation(d, "2026_04_01_00_00_00.000000001", &c.cert_pem, &c.key_pem);
    swap_data(d, "2026_04_01_00_00_00.000000001");
    wait_for("certificate C", Duration::from_secs(5), async || served_leaf(addr, &ca_file).await == der(&c)).await;

    stop.store(true, Ordering::Relaxed);
    for f in flows {
        f.await.expect("no request failed during rotation");
    }
    assert!(ok.load(Ordering::Relaxed) > 20, "requests flowed: {}", ok.load(Ordering::Relaxed));
    let text = server.metrics().encode();
    assert_eq!(metric(&text, "credential_webhook_tls_reloads_total"), Some(2.0));
    assert_eq!(metric(&text, "credential_webhook_tls_reload_failures_total"), Some(1.0));
    server.shutdown();
    server.wait().await;
}
