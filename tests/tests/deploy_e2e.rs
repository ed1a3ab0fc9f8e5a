//! deploy/ end to end on a real kube-apiserver (tests/kube-test-cluster): the webhook configurations exactly
//! as `kubectl kustomize deploy/` renders them are applied, with the two substitutions a real cluster makes —
//! caBundle filled from the serving certificate's CA (what cert-manager's cainjector does for
//! `cert-manager.io/inject-ca-from`) and the Service reference resolved, here to a `url` of the webhook
//! running in this process (the apiserver refuses loopback Service endpoints). The webhook serves a
//! certificate from `credential-webhook certs` (the same code), runs as the shipped ServiceAccount (deploy/
//! RBAC, a real token), reads the cluster through its live caches, and `kubectl apply` is judged by it.
//!
//! Needs Go (to build the cluster once) and `kubectl` on PATH (or `KUBECTL`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use credential_core::model::labels;
use credential_core::yaml::parse_documents;
use serde_json::{Value, json};
use support::regional;
use support::{LiveWebhook, prepare_live_webhook};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SEED: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: kcm-system}
---
apiVersion: v1
kind: Secret
metadata: {name: gcp-credentials, namespace: kcm-system}
type: Opaque
data: {credentials: e30=}
"#;

const GOOD: &str = r#"
apiVersion: k0rdent.mirantis.com/v1beta1
kind: Credential
metadata: {name: gcp-cred, namespace: kcm-system}
spec:
  description: management credential
  identityRef: {apiVersion: v1, kind: Secret, name: gcp-credentials, namespace: kcm-system}
"#;

const MISSING_REGION: &str = r#"
apiVersion: k0rdent.mirantis.com/v1beta1
kind: Credential
metadata: {name: regional-cred, namespace: kcm-system}
spec:
  region: no-such-region
  identityRef: {apiVersion: v1, kind: Secret, name: gcp-credentials, namespace: kcm-system}
"#;

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The webhook configurations of the default install, as `kubectl kustomize deploy/` renders them.
fn rendered_webhook_configurations() -> Vec<Value> {
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let out = Command::new(&kubectl)
        .arg("kustomize")
        .arg(repo_root().join("deploy"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{kubectl} kustomize` ({e}): install kubectl or set KUBECTL"));
    assert!(out.status.success(), "kubectl kustomize deploy/: {}", String::from_utf8_lossy(&out.stderr));
    let docs = parse_documents(&String::from_utf8(out.stdout).unwrap(), "deploy/").unwrap();
    let configs: Vec<Value> = docs
        .into_iter()
        .filter(|d| d["kind"] == "ValidatingWebhookConfiguration" || d["kind"] == "MutatingWebhookConfiguration")
        .collect();
    assert_eq!(configs.len(), 2);
    configs
}

/// What cert-manager and a Service would do: caBundle from the CA, the service reference resolved to `base`.
fn as_installed(mut config: Value, ca_pem: &str, base: &str) -> Value {
    let annotation = config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].as_str().unwrap();
    assert_eq!(annotation, "kcm-system/credential-webhook-serving", "cainjector source");
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    for wh in config["webhooks"].as_array_mut().unwrap() {
        let svc = wh["clientConfig"]["service"].take();
        let path = svc["path"].as_str().unwrap().to_string();
        wh["clientConfig"] = json!({"url": format!("{base}{path}"), "caBundle": bundle});
    }
    config
}

/// GET on the plain-HTTP admin listener; the status code.
async fn admin_status(addr: std::net::SocketAddr, path: &str) -> Option<u16> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_is_judged_through_the_deployed_webhook_configurations() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let emu = regional::start("deploy", false).await;
    emu.seed_yaml(SEED).await;
    let token = emu.shipped_webhook_token().await;

    // TLS exactly as for a local run (certs/README.md): a CA and a serving pair for 127.0.0.1; the webhook
    // reading the cluster through its live caches as the shipped ServiceAccount.
    let mut live = prepare_live_webhook(&emu.kubeconfig_yaml_for_token(&token)).await;
    live.shutdown_timeout = Some(Duration::from_secs(2));
    let LiveWebhook { server, stop, ca_pem, dir: _dir, .. } = live.serve(None).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while admin_status(server.admin_addr, "/readyz").await != Some(200) {
        assert!(Instant::now() < deadline, "webhook not ready within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Install the rendered configurations with kubectl, as an operator would.
    let base = format!("https://127.0.0.1:{}", server.addr.port());
    let installed: Vec<Value> =
        rendered_webhook_configurations().into_iter().map(|c| as_installed(c, &ca_pem, &base)).collect();
    // JSON documents in a YAML stream (a leading `---`: kubectl reads a stream starting with `{` as JSON).
    let docs: String = installed.iter().map(|d| format!("---\n{d}\n")).collect();
    let out = emu.kubectl_with(&["apply", "-f", "-"], Some(&docs), Duration::from_secs(30)).await.unwrap();
    assert!(out.success(), "installing the webhook configurations: {}", out.stderr);

    // Denied: a Credential naming a Region that does not exist. Nothing is stored.
    let out = emu.kubectl_with(&["apply", "-f", "-"], Some(MISSING_REGION), Duration::from_secs(30)).await.unwrap();
    assert!(!out.success(), "a Credential naming a missing Region must be denied: {}", out.stdout);
    // A 422 denial with field causes is printed by kubectl the way it prints any Invalid object; the
    // code is the webhook's (CRED004: spec.region names a missing Region).
    assert!(out.stderr.contains("is invalid") && out.stderr.contains("CRED004"), "{}", out.stderr);
    assert!(out.stderr.contains("no-such-region"), "the denial names the Region: {}", out.stderr);
    assert!(emu.absent("k0rdent.mirantis.com/v1beta1", "Credential", Some("kcm-system"), "regional-cred").await);

    // Admitted, and mutated by the deployed mutating configuration.
    let out = emu.kubectl_with(&["apply", "-f", "-"], Some(GOOD), Duration::from_secs(30)).await.unwrap();
    assert!(out.success(), "a valid Credential must be admitted: {}", out.stderr);
    let stored = emu.get("k0rdent.mirantis.com/v1beta1", "Credential", Some("kcm-system"), "gcp-cred").await.unwrap();
    assert_eq!(stored["metadata"]["labels"][labels::COMPONENT], labels::COMPONENT_KCM, "mutation applied: {stored}");

    // Server-side dry run goes through admission too (sideEffects NoneOnDryRun) and stores nothing.
    let out = emu
        .kubectl_with(&["apply", "--dry-run=server", "-f", "-"], Some(MISSING_REGION), Duration::from_secs(30))
        .await
        .unwrap();
    // A missing sibling is only a warning on dry run (GitOps dry-runs a whole stage before applying
    // any of it); it is judged all the same: the warning names the code.
    assert!(out.success() && out.stderr.contains("CRED004"), "dry run judged: {}", out.stderr);
    assert!(emu.absent("k0rdent.mirantis.com/v1beta1", "Credential", Some("kcm-system"), "regional-cred").await);

    // Webhook down: validation fails closed (failurePolicy Fail), as docs/src/operator/webhook-down.md says.
    server.shutdown();
    server.wait().await;
    let changed = GOOD.replace("management credential", "changed while the webhook is down");
    let out = emu.kubectl_with(&["apply", "-f", "-"], Some(&changed), Duration::from_secs(40)).await.unwrap();
    assert!(!out.success(), "with the webhook down, writes must be refused");
    assert!(
        out.stderr.contains("failed calling webhook \"validate.credential-guard.k0rdent.mirantis.com\""),
        "{}",
        out.stderr
    );
    // Break glass: deleting the validating configuration lets writes through again.
    let out = emu.kubectl(&["delete", "validatingwebhookconfiguration", "credential-webhook"]).await.unwrap();
    assert!(out.success(), "{}", out.stderr);
    let out = emu.kubectl_with(&["apply", "-f", "-"], Some(&changed), Duration::from_secs(40)).await.unwrap();
    assert!(out.success(), "after break glass (mutation fails open): {}", out.stderr);
    stop.cancel();
}
