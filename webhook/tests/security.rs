//! Security checks: no Secret value reaches logs (at trace verbosity, both formats), replies or
//! metrics; TLS offers only 1.2 and 1.3 with ECDHE + AEAD suites; the image runs as non-root.
//! (The manifests' pod and container securityContext is checked on the rendered kustomization in
//! tests/tests/deploy_invariants.rs `pods_are_hardened_and_highly_available`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod child;
mod common;
mod tls_hello;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use child::Webhook;
use common::*;
use rustls_pki_types::ServerName;
use serde_json::{Value, json};

/// Secret values in the fixtures. None may appear anywhere the webhook writes, in clear or base64.
const SECRETS: &[&str] = &["AKIA-sekrit-7f1d9c", "wJalr-sekrit-SECRET-KEY-55e0", "token-sekrit-kubeconfig-91ab"];

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Every form a Secret value could leak in: clear text, base64, and base64 of the kubeconfig that holds it.
fn forbidden() -> Vec<String> {
    let mut f: Vec<String> = SECRETS.iter().map(|s| s.to_string()).collect();
    f.extend(SECRETS.iter().map(|s| b64(s)));
    f.push(b64(&kubeconfig()));
    f
}

fn assert_no_secret(what: &str, text: &str) {
    for s in forbidden() {
        assert!(!text.contains(&s), "{what} contains Secret data {s:?}:\n{text}");
    }
}

fn kubeconfig() -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: r\n  cluster: {{server: \"https://10.0.0.1\"}}\n\
         users:\n- name: u\n  user: {{token: {}}}\ncontexts:\n- name: r\n  context: {{cluster: r, user: u}}\n\
         current-context: r\n",
        SECRETS[2]
    )
}

const API: &str = "k0rdent.mirantis.com/v1beta1";

/// An offline estate whose Secrets hold the values above (data and stringData).
fn estate_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: kcm-system}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: team}}
---
apiVersion: v1
kind: Secret
metadata:
  name: aws-secret
  namespace: kcm-system
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{{"data":{{"AccessKeyID":"{ak}"}}}}'
data: {{AccessKeyID: {ak}, SecretAccessKey: {sk}}}
stringData: {{Plain: {plain}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: r1-kubeconfig, namespace: kcm-system}}
data: {{value: {kc}}}
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSClusterStaticIdentity
metadata: {{name: aws-id}}
spec: {{secretRef: aws-secret}}
---
{pi}
---
apiVersion: {API}
kind: Region
metadata: {{name: r1}}
spec: {{kubeConfig: {{name: r1-kubeconfig, key: value}}}}
status: {{ready: true, conditions: [{{type: Ready, status: "True", reason: Succeeded}}]}}
---
apiVersion: {API}
kind: Credential
metadata: {{name: used, namespace: team}}
spec:
  identityRef: {{apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSClusterStaticIdentity, name: aws-id}}
---
apiVersion: {API}
kind: ClusterDeployment
metadata: {{name: cd1, namespace: team}}
spec: {{credential: used, template: t}}
"#,
        ak = b64(SECRETS[0]),
        sk = b64(SECRETS[1]),
        plain = SECRETS[1],
        kc = b64(&kubeconfig()),
        pi = credential_e2e::manifests::AWS_PROVIDER_INTERFACE.trim(),
    );
    std::fs::write(dir.path().join("estate.yaml"), yaml).unwrap();
    dir
}

/// Reviews that touch every path where a Secret value could be read or echoed.
fn hostile_reviews() -> Vec<(String, &'static str)> {
    let k0 = |k| (K0, "v1beta1", k);
    let secret_obj = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "aws-secret", "namespace": "kcm-system"},
        "data": {"AccessKeyID": b64(SECRETS[0])}, "stringData": {"SecretAccessKey": SECRETS[1]}});
    let mut cred_with_last_applied = credential("team", "c1", Some("r1"));
    cred_with_last_applied["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": secret_obj.to_string()});
    let region_bad_key = json!({"apiVersion": API, "kind": "Region", "metadata": {"name": "r2"},
        "spec": {"kubeConfig": {"name": "r1-kubeconfig", "key": "kubeconfig"}}});
    let region_other_secret = json!({"apiVersion": API, "kind": "Region", "metadata": {"name": "r3"},
        "spec": {"kubeConfig": {"name": "aws-secret", "key": "value"}}});
    let full_secret_review =
        review("s-4", "CREATE", ("", "v1", "Secret"), Some("kcm-system"), "aws-secret", secret_obj, Value::Null, false);
    vec![
        (
            review("s-1", "CREATE", k0("Credential"), Some("team"), "c1", cred_with_last_applied, Value::Null, false),
            "validate",
        ),
        (review("s-2", "CREATE", k0("Region"), None, "r2", region_bad_key, Value::Null, false), "validate"),
        (review("s-3", "CREATE", k0("Region"), None, "r3", region_other_secret, Value::Null, false), "validate"),
        (full_secret_review.clone(), "validate"),
        (full_secret_review.clone(), "mutate"),
        // Truncated inside a Secret value, and with a Secret value where a boolean belongs.
        (full_secret_review[..full_secret_review.find(SECRETS[1]).unwrap() + 8].to_string(), "validate"),
        (
            full_secret_review.replace("\"dryRun\":false", &format!("\"dryRun\":{{\"x\":\"{}\"}}", SECRETS[1])),
            "validate",
        ),
        (
            review(
                "s-5",
                "DELETE",
                k0("Credential"),
                Some("team"),
                "used",
                Value::Null,
                credential("team", "used", None),
                false,
            ),
            "validate",
        ),
        (
            review(
                "s-6",
                "CREATE",
                k0("Credential"),
                Some("team"),
                "c6",
                credential("team", "c6", Some("r1")),
                Value::Null,
                false,
            ),
            "mutate",
        ),
    ]
}

async fn run_with_logs(format: &str, level: &str) {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let estate = estate_dir();
    let cert = certs.path().join("tls.crt");
    let key = certs.path().join("tls.key");
    let wh = Webhook::start(&[
        "--log-format",
        format,
        "--log-level",
        level,
        "serve",
        "--estate",
        estate.path().to_str().unwrap(),
        "--tls-cert-file",
        cert.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
    ]);
    let ca = certs.path().join("ca.crt");
    let mut replies = String::new();
    for proto in [Proto::H1, Proto::H2] {
        let c = client(&ca, proto);
        for (body, path) in hostile_reviews() {
            let r = post(&c, wh.addr.port(), &format!("/{path}?timeout=10s"), body).await;
            assert_eq!(r.status, 200);
            replies.push_str(&String::from_utf8_lossy(&r.body));
            replies.push('\n');
        }
    }
    // The reviews were judged (not all refused as malformed): the bad key is named, not the values.
    assert!(replies.contains("RGN007") && replies.contains("kubeconfig"), "{replies}");
    assert!(replies.matches("\"allowed\":true").count() >= 2, "{replies}");
    let (status, metrics) = admin_get(wh.admin, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("credential_webhook_admission_requests_total"), "{metrics}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = wh.log();
    // The verbosity took effect: trace/debug lines of the TLS and HTTP stacks are there.
    assert!(log.lines().count() > 50, "{format}/{level}: only {} log lines:\n{log}", log.lines().count());
    assert!(log.contains("TRACE") || log.contains("DEBUG") || log.contains("\"level\":\"TRACE\""), "{log}");
    assert_no_secret(&format!("log ({format}, {level})"), &log);
    assert_no_secret("admission replies", &replies);
    assert_no_secret("metrics", &metrics);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_values_in_trace_logs_json_replies_or_metrics() {
    run_with_logs("json", "trace").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_values_in_debug_logs_text() {
    run_with_logs("text", "debug").await;
}

// --- TLS ---------------------------------------------------------------------------------------------

/// What a rustls client restricted to one version and one suite negotiates (`None`: refused).
async fn negotiate(
    addr: std::net::SocketAddr,
    ca: &std::path::Path,
    version: &'static rustls::SupportedProtocolVersion,
    suite: rustls::SupportedCipherSuite,
) -> Option<(rustls::ProtocolVersion, rustls::CipherSuite)> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![suite];
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots(ca))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .ok()?;
    let conn = tls.get_ref().1;
    Some((conn.protocol_version()?, conn.negotiated_cipher_suite()?.suite()))
}

/// Every suite rustls knows, one at a time, per version: TLS 1.3 accepts all three AEAD suites;
/// TLS 1.2 accepts only ECDHE + AEAD suites matching the certificate's key.
#[tokio::test]
async fn tls_negotiates_only_1_2_and_1_3_with_ecdhe_aead_suites() {
    let h = start(Arc::new(estate()), None).await;
    let mut accepted = Vec::new();
    for suite in rustls::crypto::ring::ALL_CIPHER_SUITES {
        let version = match suite {
            rustls::SupportedCipherSuite::Tls13(_) => &rustls::version::TLS13,
            rustls::SupportedCipherSuite::Tls12(_) => &rustls::version::TLS12,
        };
        if let Some((v, s)) = negotiate(h.server.addr, &h.ca, version, *suite).await {
            assert_eq!(v, version.version);
            assert_eq!(s, suite.suite());
            accepted.push(format!("{v:?} {s:?}"));
        }
    }
    eprintln!("accepted: {accepted:?}");
    let tls13: Vec<_> = accepted.iter().filter(|a| a.starts_with("TLSv1_3")).collect();
    assert_eq!(tls13.len(), 3, "{accepted:?}");
    let tls12: Vec<_> = accepted.iter().filter(|a| a.starts_with("TLSv1_2")).collect();
    assert!(!tls12.is_empty(), "TLS 1.2 clients (older API servers) still connect: {accepted:?}");
    for a in &tls12 {
        assert!(a.contains("_ECDHE_") && (a.contains("_GCM_") || a.contains("CHACHA20_POLY1305")), "{a}");
    }
}

/// A TLS 1.2 ClientHello with only legacy suites (CBC, 3DES, RC4, RSA key exchange) is refused with
/// a fatal handshake_failure; the same hello with modern suites gets a ServerHello (control).
#[tokio::test]
async fn tls_1_2_legacy_suites_are_refused() {
    let h = start(Arc::new(estate()), None).await;
    let control =
        tls_hello::exchange(h.server.addr, &tls_hello::client_hello(0x0303, &[], tls_hello::MODERN_TLS12_SUITES)).await;
    let chosen = tls_hello::server_hello_suite(&control).unwrap_or_else(|| panic!("no ServerHello: {control:?}"));
    assert!(tls_hello::MODERN_TLS12_SUITES.contains(&chosen), "{chosen:#06x}");
    for &suite in tls_hello::LEGACY_SUITES {
        let out = tls_hello::exchange(h.server.addr, &tls_hello::client_hello(0x0303, &[], &[suite])).await;
        assert!(out.len() >= 7 && out[0] == 0x15, "suite {suite:#06x}: an alert, not a ServerHello: {out:?}");
        assert_eq!((out[5], out[6]), (2, 40), "suite {suite:#06x}: fatal handshake_failure");
    }
}

/// The container image's final stage runs as a non-root numeric user (the manifests set
/// runAsNonRoot; a numeric USER lets the kubelet verify it).
#[test]
fn image_runs_as_non_root() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Containerfile");
    let text = std::fs::read_to_string(&file).unwrap();
    let last_stage = text.rsplit_once("\nFROM ").map(|(_, s)| s).unwrap_or(&text);
    let user = last_stage
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("USER "))
        .unwrap_or_else(|| panic!("no USER in the final stage of {}", file.display()));
    let uid: u32 = user.split(':').next().unwrap().trim().parse().expect("numeric USER");
    assert!(uid > 0, "USER {user}");
}
