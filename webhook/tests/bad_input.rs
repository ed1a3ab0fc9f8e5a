//! The bad-input catalogue: hostile or broken input at every layer (TCP, TLS, HTTP/1.1, HTTP/2,
//! JSON, AdmissionReview), each with its defined answer, and each followed by a check that the
//! server still answers a well-formed review. Inputs the contract tests already cover the same way
//! (malformed JSON, truncated body, apiVersion v1beta1, missing uid, an unhandled kind, a body over
//! the limit, dry run) are listed in docs/src/design/threat-model.md with the `contract.rs` test
//! that covers them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod tls_hello;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rustls_pki_types::ServerName;
use serde_json::{Value, json};
use tls_hello::{LEGACY_SUITES, MODERN_TLS12_SUITES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const VALIDATE: &str = "/validate?timeout=10s";
const CRED: (&str, &str, &str) = (K0, "v1beta1", "Credential");

/// A well-formed dry-run review through a fresh HTTP/1.1 connection is still answered.
async fn assert_serves(h: &Harness, uid: &str) {
    let c = client(&h.ca, Proto::H1);
    let body = review(uid, "CREATE", CRED, Some("team"), "ok", credential("team", "ok", None), Value::Null, true);
    let r = tokio::time::timeout(Duration::from_secs(10), post(&c, h.server.addr.port(), VALIDATE, body))
        .await
        .expect("the server still answers");
    let v = r.json();
    assert_eq!(v["response"]["uid"], uid);
    assert_eq!(v["response"]["allowed"], true, "{v}");
}

/// The `response` of a reply that must be a 400 BadRequest denial.
fn bad_request(r: &Reply, uid: &str) -> String {
    assert_eq!(r.status, 200, "admission answers are HTTP 200: {:?}", r.body);
    let v = r.json();
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    let resp = &v["response"];
    assert_eq!(resp["uid"], uid, "{v}");
    assert_eq!(resp["allowed"], false, "{v}");
    assert_eq!(resp["status"]["code"], 400, "{v}");
    assert_eq!(resp["status"]["reason"], "BadRequest", "{v}");
    resp["status"]["message"].as_str().unwrap().to_string()
}

fn valid_review(uid: &str) -> Value {
    serde_json::from_str(&review(
        uid,
        "CREATE",
        CRED,
        Some("team"),
        "c",
        credential("team", "c", None),
        Value::Null,
        false,
    ))
    .unwrap()
}

/// Structurally odd reviews: each gets HTTP 200, allowed false, 400 BadRequest and a message that
/// says what is wrong (and the uid whenever it can be read).
#[tokio::test]
async fn odd_reviews_get_a_defined_denial() {
    let h = start(Arc::new(estate()), None).await;
    let c = client(&h.ca, Proto::H1);
    let port = h.server.addr.port();

    let mut wrong_kind = valid_review("k-1");
    wrong_kind["kind"] = json!("ConfigMap");
    let mut no_request = valid_review("");
    no_request.as_object_mut().unwrap().remove("request");
    let mut null_request = valid_review("");
    null_request["request"] = Value::Null;
    let mut uid_number = valid_review("");
    uid_number["request"]["uid"] = json!(42);
    let mut no_kind = valid_review("k-5");
    no_kind["request"].as_object_mut().unwrap().remove("kind");
    let mut bad_op = valid_review("k-6");
    bad_op["request"]["operation"] = json!("PATCH");
    let mut no_object = valid_review("k-7");
    no_object["request"]["object"] = Value::Null;
    let mut dry_run_string = valid_review("k-8");
    dry_run_string["request"]["dryRun"] = json!("yes");

    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("wrong top-level kind", wrong_kind.to_string(), "k-1", "expected kind AdmissionReview, got ConfigMap"),
        ("no request", no_request.to_string(), "", "the AdmissionReview has no request"),
        ("request null", null_request.to_string(), "", "the AdmissionReview has no request"),
        ("uid of the wrong type", uid_number.to_string(), "", "cannot decode the AdmissionReview"),
        ("no request.kind", no_kind.to_string(), "k-5", "request.kind is missing"),
        ("unknown operation", bad_op.to_string(), "k-6", "request.operation \"PATCH\" is not one of"),
        ("CREATE without object", no_object.to_string(), "k-7", "request.object is missing for CREATE"),
        ("dryRun not a boolean", dry_run_string.to_string(), "k-8", "cannot decode the AdmissionReview"),
        ("empty body", String::new(), "", "cannot decode the AdmissionReview"),
        ("JSON array", "[1,2,3]".into(), "", "cannot decode the AdmissionReview"),
        ("JSON null", "null".into(), "", "cannot decode the AdmissionReview"),
    ];
    for (what, body, uid, want) in cases {
        let r = post(&c, port, VALIDATE, body).await;
        let msg = bad_request(&r, uid);
        assert!(msg.contains(want), "{what}: {msg:?} should contain {want:?}");
    }
    // Invalid UTF-8 inside a string is a decode error too.
    let r = post(&c, port, VALIDATE, bytes::Bytes::from_static(b"{\"kind\":\"\xff\"}")).await;
    assert!(bad_request(&r, "").starts_with("cannot decode the AdmissionReview"));
    assert_serves(&h, "after-odd").await;
}

/// JSON nested far deeper than serde_json's recursion limit (128): a decode error, not a stack
/// overflow, with the uid still found in front of it.
#[tokio::test]
async fn deeply_nested_json_is_denied_without_a_crash() {
    let h = start(Arc::new(estate()), None).await;
    let c = client(&h.ca, Proto::H2);
    let port = h.server.addr.port();
    for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
        let depth = 100_000;
        let body = format!(
            "{{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{{\"uid\":\"deep-1\",\
             \"object\":{}1{}}}}}",
            open.repeat(depth),
            close.repeat(depth)
        );
        let r = post(&c, port, VALIDATE, body).await;
        let msg = bad_request(&r, "deep-1");
        assert!(msg.contains("recursion limit exceeded"), "{msg}");
    }
    // Nesting just inside the limit decodes and is judged as an object (a stray field).
    let mut ok = valid_review("deep-2");
    let mut nested = json!(1);
    for _ in 0..100 {
        nested = json!([nested]);
    }
    ok["request"]["object"]["spec"]["extra"] = nested;
    let r = post(&c, port, VALIDATE, ok.to_string()).await;
    assert_eq!(r.json()["response"]["uid"], "deep-2");
    assert_serves(&h, "after-deep").await;
}

/// A body that stops arriving: answered at --request-timeout with a denial naming the flag.
#[tokio::test]
async fn stalled_body_is_answered_at_the_request_timeout() {
    let h = start_with(Arc::new(estate()), None, |c| c.request_timeout = Duration::from_millis(700)).await;
    let mut tls = tls_connect(&h, b"http/1.1").await;
    let body = valid_review("stall-1").to_string();
    let head = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&body.as_bytes()[..body.len() / 2]).await.unwrap();
    tls.flush().await.unwrap();
    let started = Instant::now();
    let text = read_http1_response(&mut tls, Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(3), "answered at the timeout: {:?}", started.elapsed());
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("\"allowed\":false") && text.contains("--request-timeout"), "{text}");
    assert_serves(&h, "after-stall").await;
}

/// Waiting for a concurrency slot counts against --request-timeout. One slot, taken in turn by two
/// stalled bodies for a whole budget each: a well-formed request sent after them is still answered within
/// about one budget (before the API server's timeoutSeconds), not after both of theirs.
#[tokio::test]
async fn waiting_for_a_slot_counts_against_the_request_timeout() {
    let budget = Duration::from_millis(1500);
    let h = start_with(Arc::new(estate()), None, |c| {
        c.request_timeout = budget;
        c.max_concurrent_requests = 1;
    })
    .await;
    let body = valid_review("slot-stall").to_string();
    let head = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut tls = tls_connect(&h, b"http/1.1").await;
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.write_all(&body.as_bytes()[..body.len() / 2]).await.unwrap();
        tls.flush().await.unwrap();
        stalled.push(tls);
        tokio::time::sleep(Duration::from_millis(50)).await; // queued in this order
    }
    let c = client(&h.ca, Proto::H1);
    let started = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        post(&c, h.server.addr.port(), VALIDATE, valid_review("late").to_string()),
    )
    .await
    .expect("answered");
    let took = started.elapsed();
    // Waiting outside the budget would answer only after both stalled requests: about two budgets.
    assert!(took < budget * 8 / 5, "waited for the slot past its own budget: {took:?}");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["response"]["uid"], "late", "{:?}", r.body);
    drop(stalled);
    assert_serves(&h, "after-slot-stall").await;
}

/// Slowloris: clients trickling header bytes (one every 100 ms) are cut at the header-read timeout (2 s)
/// although bytes keep arriving, and the server answers a normal client meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_headers_are_cut_at_the_header_timeout() {
    let h = start_with(Arc::new(estate()), None, |c| c.header_read_timeout = Duration::from_millis(2000)).await;
    let mut slow = Vec::new();
    for i in 0..20 {
        let tls = tls_connect(&h, b"http/1.1").await;
        slow.push(tokio::spawn(async move {
            let (mut rd, mut wr) = tokio::io::split(tls);
            let started = Instant::now();
            let header = format!("POST /validate HTTP/1.1\r\nHost: localhost\r\nX-Slow-{i}: {}", "a".repeat(200));
            let writer = async {
                for b in header.bytes() {
                    if wr.write_all(&[b]).await.is_err() || wr.flush().await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            };
            let mut out = Vec::new();
            let reader = rd.read_to_end(&mut out);
            tokio::select! {
                () = writer => panic!("the whole slow header was accepted ({:?})", started.elapsed()),
                _ = reader => {}
            }
            (started.elapsed(), String::from_utf8_lossy(&out).into_owned())
        }));
    }
    // Meanwhile a normal client is served promptly.
    let t = Instant::now();
    assert_serves(&h, "during-slowloris").await;
    // Answered while the slow connections are still open (they are cut at 2 s).
    assert!(t.elapsed() < Duration::from_millis(1500), "normal request took {:?}", t.elapsed());
    for s in slow {
        let (took, out) = tokio::time::timeout(Duration::from_secs(10), s).await.unwrap().unwrap();
        assert!(took >= Duration::from_millis(1800) && took < Duration::from_secs(6), "closed after {took:?}");
        assert!(!out.contains("AdmissionReview"), "{out}");
    }
    assert_serves(&h, "after-slowloris").await;
}

/// A TCP client that connects and never starts the TLS handshake is dropped at the handshake timeout.
#[tokio::test]
async fn silent_tcp_connection_is_dropped_at_the_handshake_timeout() {
    let h = start_with(Arc::new(estate()), None, |c| c.header_read_timeout = Duration::from_millis(500)).await;
    let mut tcp = TcpStream::connect(h.server.addr).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await.expect("closed by the server");
    assert!(matches!(n, Ok(0) | Err(_)), "no bytes, just a close: {n:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_serves(&h, "after-silent").await;
}

/// Plain HTTP on the TLS port: the TLS layer rejects it (no HTTP answer, nothing admitted), the
/// connection is closed, and the server goes on.
#[tokio::test]
async fn plaintext_http_on_the_tls_port_is_refused() {
    let h = start(Arc::new(estate()), None).await;
    let mut tcp = TcpStream::connect(h.server.addr).await.unwrap();
    let body = valid_review("plain-1").to_string();
    let req = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await.expect("closed").ok();
    let text = String::from_utf8_lossy(&out);
    assert!(!text.contains("HTTP/1.1") && !text.contains("plain-1"), "no HTTP answer: {text:?}");
    // rustls answers a non-TLS record with nothing or a fatal alert record (content type 21).
    assert!(out.is_empty() || out[0] == 0x15, "{out:?}");
    assert_serves(&h, "after-plaintext").await;
}

/// TLS 1.0 and 1.1 clients (with or without supported_versions) get a fatal protocol_version alert
/// and a closed connection; the server keeps serving TLS 1.2/1.3 clients.
#[tokio::test]
async fn tls_1_0_and_1_1_client_hellos_get_a_protocol_version_alert() {
    let h = start(Arc::new(estate()), None).await;
    for (what, legacy, supported) in [
        ("TLS 1.0", 0x0301u16, &[][..]),
        ("TLS 1.1", 0x0302, &[][..]),
        ("TLS 1.1 via supported_versions", 0x0303, &[0x0302u16][..]),
        ("TLS 1.0+1.1 via supported_versions", 0x0303, &[0x0302u16, 0x0301][..]),
    ] {
        // Modern suites offered too, so the version alone is what the server refuses.
        let suites = [LEGACY_SUITES, MODERN_TLS12_SUITES].concat();
        let out = tls_hello::exchange(h.server.addr, &tls_hello::client_hello(legacy, supported, &suites)).await;
        // One alert record: type 21, 2 bytes, level fatal (2), description protocol_version (70).
        assert!(out.len() >= 7, "{what}: {out:?}");
        assert_eq!(out[0], 0x15, "{what}: an alert record, not a ServerHello: {out:?}");
        eprintln!("{what}: alert {:?}", (out[5], out[6]));
        assert_eq!((out[5], out[6]), (2, 70), "{what}: fatal protocol_version: {out:?}");
    }
    assert_serves(&h, "after-old-tls").await;
}

/// A TLS connection to the server with the given ALPN protocol.
async fn tls_connect(h: &Harness, alpn: &[u8]) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut cfg = client_config(&h.ca);
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(h.server.addr).await.unwrap();
    connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap()
}

async fn read_http1_response(tls: &mut tokio_rustls::client::TlsStream<TcpStream>, limit: Duration) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tls.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&out);
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .unwrap_or(0);
            if out.len() >= end + 4 + len {
                break;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

// --- HTTP/2: many streams on one connection, from a client that ignores the stream limit -----------

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend(&(payload.len() as u32).to_be_bytes()[1..]);
    f.push(kind);
    f.push(flags);
    f.extend(stream.to_be_bytes());
    f.extend(payload);
    f
}

/// HPACK for `POST https://localhost/validate`, content-type JSON: static-table names, literal values.
fn request_headers() -> Vec<u8> {
    let mut b = vec![0x83, 0x87]; // :method POST, :scheme https (indexed)
    // Literal without indexing, indexed name: 4-bit prefix; index 31 needs a continuation byte.
    for (index, value) in
        [(&[0x04u8][..], "/validate"), (&[0x01][..], "localhost"), (&[0x0f, 0x10][..], "application/json")]
    {
        b.extend(index);
        b.push(value.len() as u8);
        b.extend(value.as_bytes());
    }
    b
}

/// 500 streams opened at once on one HTTP/2 connection, ignoring SETTINGS_MAX_CONCURRENT_STREAMS
/// (256): every stream is answered or refused (RST_STREAM / GOAWAY), none hangs, and the server
/// still serves other connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_five_hundred_streams_on_one_connection() {
    let h = start(Arc::new(estate()), None).await;
    let tls = tls_connect(&h, b"h2").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut rd, mut wr) = tokio::io::split(tls);
    const STREAMS: u32 = 500;
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[])); // SETTINGS (defaults)
    out.extend(frame(0x8, 0, 0, &(1u32 << 30).to_be_bytes())); // connection WINDOW_UPDATE
    let headers = request_headers();
    for i in 0..STREAMS {
        // HEADERS with END_STREAM|END_HEADERS: an empty body, answered as an undecodable review.
        out.extend(frame(0x1, 0x5, 1 + 2 * i, &headers));
    }
    wr.write_all(&out).await.unwrap();
    wr.flush().await.unwrap();

    let mut answered = std::collections::BTreeSet::new();
    let mut refused = std::collections::BTreeSet::new();
    let mut goaway_last: Option<u32> = None;
    let mut buf = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut chunk = [0u8; 16384];
    'read: while Instant::now() < deadline {
        let done = |a: &std::collections::BTreeSet<u32>, r: &std::collections::BTreeSet<u32>, g: Option<u32>| {
            let beyond = g.map(|last| (0..STREAMS).filter(|i| 1 + 2 * i > last).count()).unwrap_or(0);
            a.len() + r.len() + beyond >= STREAMS as usize
        };
        if done(&answered, &refused, goaway_last) {
            break;
        }
        let n = match tokio::time::timeout(Duration::from_secs(5), rd.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break 'read,
            Ok(Ok(n)) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            let (kind, flags) = (buf[3], buf[4]);
            let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
            let payload = buf[9..9 + len].to_vec();
            buf.drain(..9 + len);
            match kind {
                0x1 => {
                    answered.insert(stream);
                }
                0x3 => {
                    refused.insert(stream);
                }
                0x4 if flags & 1 == 0 => {
                    wr.write_all(&frame(0x4, 1, 0, &[])).await.unwrap(); // SETTINGS ACK
                }
                0x6 if flags & 1 == 0 => {
                    wr.write_all(&frame(0x6, 1, 0, &payload)).await.unwrap(); // PING ACK
                }
                0x7 => {
                    goaway_last =
                        Some(u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff)
                }
                _ => {}
            }
        }
    }
    let beyond = goaway_last.map(|last| (0..STREAMS).filter(|i| 1 + 2 * i > last).count()).unwrap_or(0);
    assert_eq!(
        answered.len() + refused.len() + beyond,
        STREAMS as usize,
        "answered {} refused {} after GOAWAY {beyond}",
        answered.len(),
        refused.len()
    );
    assert!(answered.len() >= 256, "at least the allowed concurrent streams are answered: {}", answered.len());
    eprintln!("h2 streams: answered {}, refused {}, after GOAWAY {beyond}", answered.len(), refused.len());
    assert_serves(&h, "after-h2-flood").await;
    // And a well-behaved HTTP/2 client multiplexing 500 requests on one connection gets every answer.
    let c = client(&h.ca, Proto::H2);
    let port = h.server.addr.port();
    let mut tasks = Vec::new();
    for i in 0..STREAMS {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let uid = format!("h2-{i}");
            let body =
                review(&uid, "CREATE", CRED, Some("team"), "c", credential("team", "c", None), Value::Null, true);
            let r = post(&c, port, VALIDATE, body).await;
            assert_eq!(r.version, http::Version::HTTP_2);
            assert_eq!(r.json()["response"]["uid"], uid.as_str());
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t).await.unwrap().unwrap();
    }
}

/// An estate that never finishes syncing (as when the API server is unreachable at start).
struct NeverSynced(credential_core::estate::MemoryEstate);

impl credential_core::estate::Estate for NeverSynced {
    fn system_namespace(&self) -> &str {
        self.0.system_namespace()
    }
    fn knows_cluster(&self, c: &credential_core::estate::Cluster) -> bool {
        self.0.knows_cluster(c)
    }
    fn get(
        &self,
        c: &credential_core::estate::Cluster,
        g: &credential_core::gvk::Gvk,
        ns: Option<&str>,
        n: &str,
    ) -> Option<Arc<Value>> {
        self.0.get(c, g, ns, n)
    }
    fn list(
        &self,
        c: &credential_core::estate::Cluster,
        g: &credential_core::gvk::Gvk,
        ns: Option<&str>,
    ) -> Vec<Arc<Value>> {
        self.0.list(c, g, ns)
    }
    fn served(&self, c: &credential_core::estate::Cluster, g: &credential_core::gvk::Gvk) -> credential_core::Served {
        self.0.served(c, g)
    }
    fn namespaced(&self, c: &credential_core::estate::Cluster, g: &credential_core::gvk::Gvk) -> Option<bool> {
        self.0.namespaced(c, g)
    }
    fn credentials_in_region(&self, region: &str) -> Vec<(String, String)> {
        self.0.credentials_in_region(region)
    }
    fn credentials_using_identity_kind(&self, api_version: &str, kind: &str) -> Vec<Arc<Value>> {
        self.0.credentials_using_identity_kind(api_version, kind)
    }
    fn cluster_deployments_using(&self, namespace: &str, credential: &str) -> Vec<Arc<Value>> {
        self.0.cluster_deployments_using(namespace, credential)
    }
    fn regions_on_cluster_deployment(&self, namespace: &str, name: &str) -> Vec<Arc<Value>> {
        self.0.regions_on_cluster_deployment(namespace, name)
    }
}

impl credential_webhook::cache::ServingEstate for NeverSynced {
    fn synced(&self) -> bool {
        false
    }
}

/// Before the caches synced, validation of our kinds is refused with 503 (no decision from a
/// half-loaded state) and mutation fails open (allowed, no patch); other kinds are still allowed.
#[tokio::test]
async fn reviews_before_the_caches_synced_are_refused_with_503() {
    let h = start(Arc::new(NeverSynced(estate())), None).await;
    let c = client(&h.ca, Proto::H1);
    let port = h.server.addr.port();
    let used = credential("team", "used", None);
    let r =
        post(&c, port, VALIDATE, review("ns-1", "DELETE", CRED, Some("team"), "used", Value::Null, used, false)).await;
    let v = r.json();
    assert_eq!(v["response"]["uid"], "ns-1");
    assert_eq!(v["response"]["allowed"], false, "{v}");
    assert_eq!(v["response"]["status"]["code"], 503, "{v}");
    assert_eq!(v["response"]["status"]["reason"], "ServiceUnavailable", "{v}");
    assert!(v["response"]["status"]["message"].as_str().unwrap().contains("caches not synced"), "{v}");
    let fresh = credential("team", "fresh", None);
    let r = post(
        &c,
        port,
        "/mutate?timeout=10s",
        review("ns-m", "CREATE", CRED, Some("team"), "fresh", fresh, Value::Null, false),
    )
    .await;
    let v = r.json();
    assert_eq!(v["response"]["uid"], "ns-m");
    assert_eq!(v["response"]["allowed"], true, "mutation fails open before the sync: {v}");
    assert!(v["response"].get("patch").is_none(), "no patch from a half-loaded state: {v}");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "team"}});
    let r = post(
        &c,
        port,
        VALIDATE,
        review("ns-2", "CREATE", ("", "v1", "ConfigMap"), Some("team"), "x", cm, Value::Null, false),
    )
    .await;
    assert_eq!(r.json()["response"]["allowed"], true);
    let (_, metrics) = admin_get(h.server.admin_addr, "/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            "credential_webhook_admission_requests_total{webhook=\"validate\",kind=\"Credential\",operation=\"DELETE\",decision=\"unavailable\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
}

/// A request with 1 MiB of headers: refused at the HTTP layer with 431, nothing
/// admitted, server alive.
#[tokio::test]
async fn oversized_headers_are_refused() {
    let h = start(Arc::new(estate()), None).await;
    let mut tls = tls_connect(&h, b"http/1.1").await;
    let head = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\n{{}}",
        "a".repeat(1 << 20)
    );
    // The server may close while we are still writing: a write error is part of the answer.
    let _ = tls.write_all(head.as_bytes()).await;
    let _ = tls.flush().await;
    let text = read_http1_response(&mut tls, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{text}");
    assert!(!text.contains("AdmissionReview"), "{text}");
    assert_serves(&h, "after-big-headers").await;
}

/// HTTP/2 rapid reset (CVE-2023-44487): 20,000 streams opened and reset at once on one connection.
/// The server closes that connection with GOAWAY ENHANCE_YOUR_CALM, no request is left in flight,
/// and other clients are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_rapid_reset_flood_does_not_take_the_server_down() {
    let h = start(Arc::new(estate()), None).await;
    let tls = tls_connect(&h, b"h2").await;
    let (mut rd, mut wr) = tokio::io::split(tls);
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    let headers = request_headers();
    const STREAMS: u32 = 20_000;
    for i in 0..STREAMS {
        let id = 1 + 2 * i;
        out.extend(frame(0x1, 0x4, id, &headers)); // HEADERS, END_HEADERS, body still to come
        out.extend(frame(0x3, 0, id, &8u32.to_be_bytes())); // RST_STREAM CANCEL
    }
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&out).await;
        let _ = wr.flush().await;
        wr
    });
    // Read until the server closes or goes quiet; note a GOAWAY and its error code.
    let mut goaway = None;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        match tokio::time::timeout(Duration::from_secs(3), rd.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            if buf[3] == 0x7 && len >= 8 {
                goaway = Some(u32::from_be_bytes([buf[13], buf[14], buf[15], buf[16]]));
            }
            buf.drain(..9 + len);
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    // hyper's h2 counts streams reset before they were accepted and answers ENHANCE_YOUR_CALM (11).
    assert_eq!(goaway, Some(11), "GOAWAY ENHANCE_YOUR_CALM expected");
    assert_serves(&h, "after-rapid-reset").await;
    let (_, metrics) = admin_get(h.server.admin_addr, "/metrics").await;
    assert_eq!(metric(&metrics, "credential_webhook_admission_in_flight"), Some(0.0), "no request left hanging");
}
