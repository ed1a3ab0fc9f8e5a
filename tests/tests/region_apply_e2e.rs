//! A Region and its kubeconfig Secret in ONE `kubectl apply -f` (k0rdent's documented flow), through
//! credential-webhook with live caches. The Region's admission usually arrives before the webhook's
//! Secret cache has the Secret (or its key names): the webhook reads that one Secret live instead of
//! denying "does not exist" / "has no key". Needs `kubectl` on PATH (or `KUBECTL`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use credential_e2e::{Emulator, KubectlOutput};
use credential_webhook::cache::ServingEstate;
use credential_webhook::metrics::Metrics;
use credential_webhook::server::{ServerBuilder, ServerConfig};
use credential_webhook::tls::TlsFiles;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const API: &str = "k0rdent.mirantis.com/v1beta1";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn validating_configuration(base: &str, ca_pem: &str) -> String {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "credential-webhook"},
        "webhooks": [{
            "name": "validate.credential-guard.test",
            "clientConfig": {"url": format!("{base}/validate"), "caBundle": b64(ca_pem)},
            "rules": [{"apiGroups": ["k0rdent.mirantis.com"], "apiVersions": ["v1beta1"],
                       "operations": ["CREATE", "UPDATE", "DELETE"], "resources": ["regions", "credentials"]}],
            "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Fail", "timeoutSeconds": 10
        }]
    })
    .to_string()
}

/// A Secret holding a kubeconfig under `key`, followed by a Region that reads key `value` of it.
fn secret_and_region(name: &str, key: &str) -> String {
    // The regional cluster need not be reachable for admission; the port is closed.
    let kubeconfig = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"http://127.0.0.1:9\"}\n\
                      users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\n\
                      current-context: c\n";
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}-kubeconfig, namespace: kcm-system}}\n\
         data: {{{key}: {kc}}}\n---\napiVersion: {API}\nkind: Region\nmetadata: {{name: {name}}}\n\
         spec:\n  kubeConfig: {{name: {name}-kubeconfig, key: value}}\n",
        kc = b64(kubeconfig),
    )
}

async fn apply(emu: &Emulator, yaml: &str) -> KubectlOutput {
    emu.kubectl_with(&["apply", "-f", "-"], Some(yaml), Duration::from_secs(30)).await.expect("kubectl runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_and_region_in_one_apply() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let emu = Emulator::builder()
        .crds(true)
        .seed_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: kcm-system}\n")
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let written = credential_webhook::certs::write_dir(dir.path(), &["127.0.0.1".to_string()]).unwrap();
    let ca_pem = std::fs::read_to_string(&written.ca_cert).unwrap();
    let stop = CancellationToken::new();
    let kubeconfig = emu.write_kubeconfig(dir.path()).unwrap();
    let client = credential_webhook::cache::live::client(Some(&kubeconfig)).await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let index = credential_webhook::cache::live::start(client, "kcm-system", metrics.clone(), stop.clone());
    let mut config = ServerConfig::new(TlsFiles {
        cert_file: written.tls_cert.clone(),
        key_file: written.tls_key.clone(),
        poll_interval: Duration::from_secs(1),
    });
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.admin_listen = "127.0.0.1:0".parse().unwrap();
    config.shutdown_delay = Duration::ZERO;
    let server = ServerBuilder::new(config, index.clone())
        .metrics(metrics.clone())
        .shutdown_token(stop.clone())
        .start()
        .await
        .unwrap();
    let start = Instant::now();
    while !index.synced() {
        assert!(start.elapsed() < Duration::from_secs(20), "management caches not synced");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let base = format!("https://127.0.0.1:{}", server.addr.port());
    let out = apply(&emu, &validating_configuration(&base, &ca_pem)).await;
    assert!(out.success(), "{}", out.stderr);

    // 1. Secret and Region together: admitted, both stored.
    let out = apply(&emu, &secret_and_region("east", "value")).await;
    assert!(out.success(), "Secret+Region in one apply must be admitted: {}", out.stderr);
    assert!(emu.get(API, "Region", None, "east").is_some());

    // 2. The Secret lacks the key the Region names: denied with the key named, the Region not stored.
    let out = apply(&emu, &secret_and_region("west", "kubeconfig")).await;
    assert!(!out.success(), "{}", out.stdout);
    assert!(out.stderr.contains("RGN007") && out.stderr.contains("kcm-system/west-kubeconfig"), "{}", out.stderr);
    assert!(!out.stderr.contains(&b64("apiVersion: ")), "no Secret data in the message: {}", out.stderr);
    assert!(emu.get(API, "Region", None, "west").is_none());
    assert!(emu.get("v1", "Secret", Some("kcm-system"), "west-kubeconfig").is_some());

    // 3. The Secret is fixed in the same apply as the Region is retried: admitted (the cached key
    //    names of the previous version must not decide).
    let out = apply(&emu, &secret_and_region("west", "value")).await;
    assert!(out.success(), "{}", out.stderr);
    assert!(emu.get(API, "Region", None, "west").is_some());

    // 4. No such Secret at all: denied as missing.
    let lone = format!(
        "apiVersion: {API}\nkind: Region\nmetadata: {{name: north}}\nspec:\n  kubeConfig: {{name: nope, key: value}}\n"
    );
    let out = apply(&emu, &lone).await;
    assert!(!out.success() && out.stderr.contains("RGN006"), "{}", out.stderr);

    server.shutdown();
    server.wait().await;
    stop.cancel();
}
