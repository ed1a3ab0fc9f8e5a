//! Test equipment for the emulator's own tests: a tiny HTTPS admission webhook (axum-server + rcgen) whose
//! answer is chosen by the object's `emulator.test/verdict` annotation, and webhook configuration builders.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use base64::Engine as _;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::{Value, json};

pub const VERDICT: &str = "emulator.test/verdict";

/// A webhook server on 127.0.0.1 with a certificate signed by its own CA.
pub struct TestWebhook {
    pub port: u16,
    pub ca_pem: String,
    /// Every AdmissionReview request received, in order.
    pub requests: Arc<Mutex<Vec<Value>>>,
    handle: axum_server::Handle<std::net::SocketAddr>,
}

fn answer(review: &Value, mutating: bool) -> Value {
    let req = &review["request"];
    let uid = req["uid"].as_str().unwrap_or_default();
    let obj = if req["object"].is_null() { &req["oldObject"] } else { &req["object"] };
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let verdict = obj.pointer(&format!("/metadata/annotations/{}", VERDICT.replace('/', "~1")));
    let verdict = verdict.and_then(Value::as_str).unwrap_or("allow");
    let mut resp = json!({"uid": uid, "allowed": true});
    match verdict {
        "deny" => resp = json!({"uid": uid, "allowed": false, "status": {"message": format!("{name} is not welcome")}}),
        "deny-422" => {
            resp = json!({"uid": uid, "allowed": false,
                          "status": {"code": 422, "reason": "Invalid", "message": "spec.region is immutable"}})
        }
        "warn" => resp["warnings"] = json!([format!("{name} looks \"odd\""), "second warning"]),
        "bad-uid" => resp["uid"] = json!("not-the-uid"),
        "patch" | "patch-array" if mutating => {
            let patch = json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}]);
            let bytes = patch.to_string().into_bytes();
            resp["patchType"] = json!("JSONPatch");
            resp["patch"] = if verdict == "patch" {
                json!(base64::engine::general_purpose::STANDARD.encode(&bytes))
            } else {
                json!(bytes)
            };
        }
        _ => {}
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp})
}

impl TestWebhook {
    pub async fn start() -> TestWebhook {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = rustls_pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], key)
            .unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let record = |requests: Arc<Mutex<Vec<Value>>>, mutating: bool| {
            move |State(()): State<()>, Json(review): Json<Value>| {
                let requests = requests.clone();
                async move {
                    requests.lock().unwrap().push(review.clone());
                    let slow = review.pointer("/request/object/metadata/annotations").and_then(|a| a.get(VERDICT))
                        == Some(&json!("slow"));
                    if slow {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                    }
                    Json(answer(&review, mutating))
                }
            }
        };
        let app = axum::Router::new()
            .route("/validate", post(record(requests.clone(), false)))
            .route("/mutate", post(record(requests.clone(), true)))
            .with_state(());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = axum_server::Handle::new();
        let server =
            axum_server::from_tcp_rustls(listener, axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls)))
                .unwrap()
                .handle(handle.clone());
        tokio::spawn(async move { server.serve(app.into_make_service()).await });
        TestWebhook { port, ca_pem: ca.pem(), requests, handle }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
    }

    pub fn stop(&self) {
        self.handle.shutdown();
    }

    pub fn received(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

/// A webhook configuration (kind `ValidatingWebhookConfiguration` or `MutatingWebhookConfiguration`) with one
/// hook for configmaps (CREATE, UPDATE, DELETE).
pub fn webhook_config(kind: &str, name: &str, url: &str, ca_bundle: &str, failure_policy: &str) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": [{
            "name": format!("{name}.emulator.test"),
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": failure_policy,
            "timeoutSeconds": 2,
            "clientConfig": {"url": url, "caBundle": ca_bundle},
            "rules": [{"operations": ["CREATE", "UPDATE", "DELETE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["configmaps"], "scope": "Namespaced"}],
        }],
    })
}

pub fn configmap(name: &str, verdict: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    \
         {VERDICT}: {verdict}\ndata:\n  k: v\n"
    )
}
