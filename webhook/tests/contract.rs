//! Contract tests: AdmissionReviews POSTed exactly as the API server sends them, over real TLS on
//! 127.0.0.1 (HTTP/1.1 and HTTP/2), verified against the CA from `credential-webhook certs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use base64::Engine;
use common::*;
use credential_webhook::sink::{AdmittedChange, ChannelSink};
use serde_json::{Value, json};

const VALIDATE: &str = "/validate?timeout=10s";
const MUTATE: &str = "/mutate?timeout=10s";
const CRED: (&str, &str, &str) = (K0, "v1beta1", "Credential");

fn check_envelope(reply: &Reply, uid: &str) -> Value {
    assert_eq!(reply.status, 200, "always HTTP 200: {:?}", reply.body);
    assert_eq!(reply.content_type, "application/json");
    let v = reply.json();
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    assert_eq!(v["response"]["uid"], uid);
    assert!(v.get("request").is_none());
    v["response"].clone()
}

fn decode_patch(resp: &Value) -> json_patch::Patch {
    assert_eq!(resp["patchType"], "JSONPatch");
    let raw = base64::engine::general_purpose::STANDARD.decode(resp["patch"].as_str().unwrap()).unwrap();
    serde_json::from_slice(&raw).unwrap()
}

async fn contract(proto: Proto) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<AdmittedChange>();
    let h = start(Arc::new(estate()), Some(Arc::new(ChannelSink(tx)))).await;
    let port = h.server.addr.port();
    let c = client(&h.ca, proto);
    let want_version = if proto == Proto::H1 { http::Version::HTTP_11 } else { http::Version::HTTP_2 };

    // 1. CREATE naming a missing Region: 422 Invalid with the field path, like apierrors.NewInvalid.
    let obj = credential("team", "c1", Some("nope"));
    let r = post(&c, port, VALIDATE, review("u-1", "CREATE", CRED, Some("team"), "c1", obj, Value::Null, false)).await;
    assert_eq!(r.version, want_version);
    let resp = check_envelope(&r, "u-1");
    assert_eq!(resp["allowed"], false);
    let st = &resp["status"];
    assert_eq!(st["code"], 422);
    assert_eq!(st["reason"], "Invalid");
    assert_eq!(st["status"], "Failure");
    let msg = st["message"].as_str().unwrap();
    assert!(msg.starts_with("Credential.k0rdent.mirantis.com \"c1\" is invalid: spec.region: [CRED004] "), "{msg}");
    assert!(msg.contains("nope"), "message names the Region: {msg}");
    assert_eq!(st["details"]["name"], "c1");
    assert_eq!(st["details"]["group"], K0);
    assert_eq!(st["details"]["kind"], "Credential");
    let causes = st["details"]["causes"].as_array().unwrap();
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert_eq!(causes[0]["field"], "spec.region");
    assert_eq!(causes[0]["reason"], "FieldValueInvalid");
    assert!(causes[0]["message"].as_str().unwrap().starts_with("[CRED004] "));
    assert!(resp.get("patch").is_none() && resp.get("patchType").is_none());

    // 2. CREATE in a Region that is not Ready: allowed, with one short warning per finding.
    let obj = credential("team", "c2", Some("r2"));
    let r =
        post(&c, port, VALIDATE, review("u-2", "CREATE", CRED, Some("team"), "c2", obj.clone(), Value::Null, false))
            .await;
    let resp = check_envelope(&r, "u-2");
    assert_eq!(resp["allowed"], true, "{resp}");
    assert!(resp.get("status").is_none());
    let warnings: Vec<&str> = resp["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
    assert!(warnings.iter().any(|w| w.starts_with("[CRED007] ") && w.contains("r2")), "{warnings:?}");
    assert!(warnings.iter().all(|w| w.len() <= 256 && w.starts_with('[')), "{warnings:?}");
    // Admitted, not dry-run: the distribution hook saw it, with the object.
    let change = rx.try_recv().expect("sink called for an admitted CREATE");
    assert_eq!((change.uid.as_str(), change.namespace.as_str(), change.name.as_str()), ("u-2", "team", "c2"));
    assert_eq!(change.object.as_deref(), Some(&obj));

    // 3. The same as a dry run: same answer, no side effect.
    let r = post(&c, port, VALIDATE, review("u-3", "CREATE", CRED, Some("team"), "c2", obj.clone(), Value::Null, true))
        .await;
    assert_eq!(check_envelope(&r, "u-3")["allowed"], true);
    assert!(rx.try_recv().is_err(), "dry run must not reach the distribution hook");

    // 4. Mutation: minimal JSONPatch that applies and is idempotent.
    let r =
        post(&c, port, MUTATE, review("u-4", "CREATE", CRED, Some("team"), "c2", obj.clone(), Value::Null, true)).await;
    let resp = check_envelope(&r, "u-4");
    assert_eq!(resp["allowed"], true);
    assert!(resp.get("warnings").is_none() && resp.get("status").is_none());
    let patch = decode_patch(&resp);
    let mut patched = obj.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    assert_eq!(patched["metadata"]["labels"]["k0rdent.mirantis.com/component"], "kcm");
    assert_eq!(patched["metadata"]["labels"]["k0rdent.mirantis.com/region"], "r2");
    let r = post(
        &c,
        port,
        MUTATE,
        review("u-5", "UPDATE", CRED, Some("team"), "c2", patched.clone(), patched.clone(), false),
    )
    .await;
    let resp = check_envelope(&r, "u-5");
    assert_eq!(resp["allowed"], true);
    assert!(resp.get("patch").is_none() && resp.get("patchType").is_none(), "reinvocation adds nothing: {resp}");

    // 5. UPDATE changing spec.region: denied (old object read).
    let moved = credential("team", "c2", Some("r1"));
    let r =
        post(&c, port, VALIDATE, review("u-6", "UPDATE", CRED, Some("team"), "c2", moved, obj.clone(), false)).await;
    let resp = check_envelope(&r, "u-6");
    assert_eq!(resp["allowed"], false);
    assert_eq!(resp["status"]["details"]["causes"][0]["field"], "spec.region");
    assert!(resp["status"]["message"].as_str().unwrap().contains("[CRED005]"), "{resp}");

    // 6. DELETE of a Credential a ClusterDeployment uses: object null, oldObject set; denied naming cd1.
    let used = credential("team", "used", None);
    let r =
        post(&c, port, VALIDATE, review("u-7", "DELETE", CRED, Some("team"), "used", Value::Null, used, false)).await;
    let resp = check_envelope(&r, "u-7");
    assert_eq!(resp["allowed"], false);
    let msg = resp["status"]["message"].as_str().unwrap();
    assert!(msg.contains("[CRED016]") && msg.contains("cd1"), "{msg}");
    assert!(rx.try_recv().is_err(), "a denied DELETE is not an admitted change");

    // 7. A kind we do not handle: allowed, no patch.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "team"}});
    let r = post(
        &c,
        port,
        MUTATE,
        review("u-8", "CREATE", ("", "v1", "ConfigMap"), Some("team"), "x", cm, Value::Null, false),
    )
    .await;
    let resp = check_envelope(&r, "u-8");
    assert_eq!(resp["allowed"], true);
    assert!(resp.get("patch").is_none());

    // 8. Malformed input: HTTP 200, allowed false, a clear message, uid when it can be read.
    let r = post(&c, port, VALIDATE, "{not json").await;
    let resp = check_envelope(&r, "");
    assert_eq!(resp["allowed"], false);
    assert_eq!(resp["status"]["code"], 400);
    assert_eq!(resp["status"]["reason"], "BadRequest");
    assert!(resp["status"]["message"].as_str().unwrap().starts_with("cannot decode the AdmissionReview"));

    let full = review("u-9", "CREATE", CRED, Some("team"), "c9", credential("team", "c9", None), Value::Null, false);
    let r = post(&c, port, VALIDATE, full[..full.len() / 2].to_string()).await;
    let resp = check_envelope(&r, "u-9");
    assert_eq!(resp["allowed"], false, "truncated body");

    let mut v1beta1: Value = serde_json::from_str(&full).unwrap();
    v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let r = post(&c, port, VALIDATE, v1beta1.to_string()).await;
    let resp = check_envelope(&r, "u-9");
    assert_eq!(resp["allowed"], false);
    let msg = resp["status"]["message"].as_str().unwrap();
    assert!(msg.contains("admission.k8s.io/v1beta1") && msg.contains("admissionReviewVersions"), "{msg}");

    let mut no_uid: Value = serde_json::from_str(&full).unwrap();
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    let r = post(&c, port, VALIDATE, no_uid.to_string()).await;
    let resp = check_envelope(&r, "");
    assert_eq!(resp["allowed"], false);
    assert_eq!(resp["status"]["message"], "request.uid is missing");

    // Oversized (default limit 4 MiB): the uid is still read from the start of the body.
    let mut padded = credential("team", "c9", None);
    padded["metadata"]["annotations"] = json!({"pad": "x".repeat(5 << 20)});
    let big = review("u-9", "CREATE", CRED, Some("team"), "c9", padded, Value::Null, false);
    let r = post(&c, port, VALIDATE, big).await;
    let resp = check_envelope(&r, "u-9");
    assert_eq!(resp["allowed"], false);
    assert!(resp["status"]["message"].as_str().unwrap().contains("4194304 bytes"), "{resp}");

    // 9. Still serving after all of that (a fresh client, too).
    let c2 = client(&h.ca, proto);
    for cl in [&c, &c2] {
        let obj = credential("team", "c10", None);
        let r =
            post(cl, port, VALIDATE, review("u-10", "CREATE", CRED, Some("team"), "c10", obj, Value::Null, true)).await;
        assert_eq!(check_envelope(&r, "u-10")["allowed"], true);
    }

    // 10. Unknown paths are 404 (not admission endpoints).
    let r = post(&c, port, "/other", "{}").await;
    assert_eq!(r.status, 404);

    h.server.shutdown();
    h.server.wait().await;
}

#[tokio::test]
async fn contract_http1() {
    contract(Proto::H1).await;
}

#[tokio::test]
async fn contract_http2() {
    contract(Proto::H2).await;
}

#[tokio::test]
async fn untrusted_ca_is_refused_by_the_client() {
    let h = start(Arc::new(estate()), None).await;
    let other = tempfile::tempdir().unwrap();
    make_certs(other.path());
    let c = client(&other.path().join("ca.crt"), Proto::H1);
    let req = http::Request::post(format!("https://localhost:{}/validate", h.server.addr.port()))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
        .unwrap();
    assert!(c.request(req).await.is_err(), "a certificate from another CA must not verify");
}
