//! A Region and its kubeconfig Secret in ONE `kubectl apply -f` (k0rdent's documented flow), through
//! credential-webhook with live caches. The Region's admission usually arrives before the webhook's
//! Secret cache has the Secret (or its key names): the webhook reads that one Secret live instead of
//! denying "does not exist" / "has no key". Needs `kubectl` on PATH (or `KUBECTL`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use credential_e2e::Emulator;
use credential_webhook::cache::ServingEstate;
use serde_json::json;
use support::{LiveWebhook, apply, b64, kubeconfig_for, start_live_webhook};

const API: &str = "k0rdent.mirantis.com/v1beta1";

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
    let kubeconfig = kubeconfig_for("c", 9);
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}-kubeconfig, namespace: kcm-system}}\n\
         data: {{{key}: {kc}}}\n---\napiVersion: {API}\nkind: Region\nmetadata: {{name: {name}}}\n\
         spec:\n  kubeConfig: {{name: {name}-kubeconfig, key: value}}\n",
        kc = b64(&kubeconfig),
    )
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
    let LiveWebhook { server, index, stop, ca_pem, dir: _dir, .. } = start_live_webhook(&emu.kubeconfig_yaml()).await;
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
