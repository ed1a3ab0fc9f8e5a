//! Admission on the real apiserver: the webhook in-process with the shipped RBAC (a real
//! ServiceAccount token) and the shipped webhook configurations, kubectl with stdin, status writes
//! through the status subresource, and reviews posted straight to the admission port.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use credential_e2e::cluster::shipped_webhook_configurations;
use credential_e2e::{KubeCluster, KubectlOutput};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::Value;

use super::{LiveWebhook, SYS, eventually_async};

pub const API: &str = "k0rdent.mirantis.com/v1beta1";

/// The webhook running live with the shipped identity, not registered yet (objects the webhook
/// would refuse can still be made first).
pub use super::real::start_shipped_webhook as webhook_unregistered;

/// Registers the shipped webhook configurations for `hook` and waits until it judges requests
/// (its caches synced): a server-side dry run of a valid Credential passes.
pub async fn register(c: &KubeCluster, hook: &LiveWebhook) {
    c.apply(&shipped_webhook_configurations(&hook.base_url(), &hook.ca_pem).await.unwrap()).await.unwrap();
    let probe = format!(
        "apiVersion: {API}\nkind: Credential\nmetadata: {{name: probe, namespace: {SYS}}}\nspec:\n  identityRef: \
         {{apiVersion: v1, kind: Secret, name: probe, namespace: {SYS}}}\n"
    );
    eventually_async("the webhook judges requests", Duration::from_secs(60), || async {
        kubectl(c, &["apply", "--dry-run=server", "-f", "-"], &probe).await.success().then_some(())
    })
    .await;
}

/// The webhook live with the shipped identity and configurations, judging requests.
pub async fn webhook_on(c: &KubeCluster) -> LiveWebhook {
    let hook = webhook_unregistered(c).await;
    register(c, &hook).await;
    hook
}

/// kubectl with `args` and `stdin` (may be empty), 30 s at most.
pub async fn kubectl(c: &KubeCluster, args: &[&str], stdin: &str) -> KubectlOutput {
    let stdin = (!stdin.is_empty()).then_some(stdin);
    c.kubectl_with(args, stdin, Duration::from_secs(30)).await.unwrap()
}

/// Merges `status` into an object through its status subresource (status is ignored on create).
pub async fn set_status(c: &KubeCluster, resource: &str, namespace: Option<&str>, name: &str, status: Value) {
    let patch = serde_json::json!({ "status": status }).to_string();
    let mut args = vec!["patch", resource, name, "--subresource=status", "--type=merge", "-p", &patch];
    if let Some(ns) = namespace {
        args.extend(["-n", ns]);
    }
    c.kubectl_ok(&args, None).await.unwrap();
}

/// Waits until the webhook's cache shows `pointer` of a management object equal to `want`.
pub async fn cached(
    hook: &LiveWebhook,
    gvk: &credential_core::Gvk,
    ns: Option<&str>,
    name: &str,
    pointer: &str,
    want: Value,
) {
    use credential_core::Estate as _;
    let what = format!("the webhook's cache shows {name} with {pointer} = {want}");
    super::eventually(&what, Duration::from_secs(30), || {
        hook.index
            .get(&credential_core::Cluster::Management, gvk, ns, name)
            .is_some_and(|o| o.pointer(pointer) == Some(&want))
    })
    .await;
}

/// POSTs an AdmissionReview straight to the webhook's admission port (as a caller that is not the
/// API server could), trusting `ca_pem`; the decoded reply.
pub async fn post_review(hook: &LiveWebhook, path: &str, review: &Value) -> Value {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(hook.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_only().enable_http1().build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let req = http::Request::post(format!("{}{path}", hook.base_url()))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(review.to_string())))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}
