//! Which level each admission decision logs at. This file holds one test on purpose: tracing caches
//! each callsite's interest process-wide, so capturing with a scoped subscriber is only reliable in a
//! test binary where no other test emits the same events concurrently.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use credential_core::MemoryEstate;
use credential_core::estate::Cluster;
use credential_webhook::admission::{Admission, Webhook};
use credential_webhook::metrics::Metrics;
use serde_json::{Value, json};

const ADMISSION_API_VERSION: &str = "admission.k8s.io/v1";

fn region_review(op: &str, key: &str) -> Vec<u8> {
    let region = json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Region", "metadata": {"name": "r9"},
                        "spec": {"kubeConfig": {"name": "r9-kubeconfig", "key": key}}});
    json!({"apiVersion": ADMISSION_API_VERSION, "kind": "AdmissionReview", "request": {
        "uid": "u1", "kind": {"group": "k0rdent.mirantis.com", "version": "v1beta1", "kind": "Region"},
        "name": "r9", "operation": op, "object": region}})
    .to_string()
    .into_bytes()
}

fn secret(keys: &[&str]) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"namespace": "kcm-system", "name": "r9-kubeconfig"},
        "data": keys.iter().map(|k| (k.to_string(), json!(""))).collect::<serde_json::Map<_, _>>()})
}

/// (level, message, webhook) of every event logged while `f` runs.
fn logged(f: impl FnOnce()) -> Vec<(String, String, String)> {
    #[derive(Clone, Default)]
    struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        // Other tests on other threads register callsites and dispatchers concurrently; tracing
        // caches each callsite's interest globally, so recompute it with this subscriber in place.
        tracing::callsite::rebuild_interest_cache();
        f()
    });
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| {
            let s = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
            (s("/level"), s("/fields/message"), s("/fields/webhook"))
        })
        .collect()
}

#[test]
fn routine_allows_and_patches_log_at_debug_and_findings_at_info() {
    let mut estate = MemoryEstate::new("kcm-system");
    estate.insert(&Cluster::Management, secret(&["value"]));
    let admission =
        Admission::new(Arc::new(estate), Arc::new(credential_webhook::sink::NoopSink), Arc::new(Metrics::new()));
    let level_of = |webhook: Webhook, body: &[u8]| {
        let logs = logged(|| {
            admission.review(webhook, body);
        });
        let lines: Vec<_> =
            logs.into_iter().filter(|(_, m, _)| m == "admission" || m.contains("without checks")).collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        lines[0].0.clone()
    };
    // Allowed, no findings / no patch: debug.
    assert_eq!(level_of(Webhook::Validate, &region_review("CREATE", "value")), "DEBUG");
    assert_eq!(level_of(Webhook::Mutate, &region_review("CREATE", "value")), "DEBUG");
    let other = json!({"apiVersion": ADMISSION_API_VERSION, "kind": "AdmissionReview", "request": {
        "uid": "u2", "kind": {"group": "", "version": "v1", "kind": "ConfigMap"}, "name": "cm",
        "namespace": "a", "operation": "CREATE", "object": {}}});
    assert_eq!(level_of(Webhook::Validate, other.to_string().as_bytes()), "DEBUG");
    // Patched (a new Credential gets its labels): debug too; the apiserver's audit log has the patch.
    let cred = json!({"apiVersion": ADMISSION_API_VERSION, "kind": "AdmissionReview", "request": {
        "uid": "u3", "kind": {"group": "k0rdent.mirantis.com", "version": "v1beta1", "kind": "Credential"},
        "name": "c1", "namespace": "kcm-system", "operation": "CREATE",
        "object": {"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Credential",
                   "metadata": {"name": "c1", "namespace": "kcm-system"},
                   "spec": {"region": "r9", "identityRef": {"apiVersion": "v1", "kind": "Secret", "name": "id"}}}}});
    let logs = logged(|| {
        let reply = String::from_utf8(admission.review(Webhook::Mutate, cred.to_string().as_bytes())).unwrap();
        assert!(reply.contains("\"patchType\":\"JSONPatch\""), "{reply}");
    });
    let lines: Vec<_> = logs.iter().filter(|(_, m, _)| m == "admission").collect();
    assert_eq!(lines.len(), 1, "{logs:?}");
    assert_eq!((lines[0].0.as_str(), lines[0].2.as_str()), ("DEBUG", "mutate"));
    // Denied (the Secret has no such key): info.
    assert_eq!(level_of(Webhook::Validate, &region_review("CREATE", "nope")), "INFO");
    // Warned only (name over the documented limit) is still allowed, and logged at info.
    let long = String::from_utf8(region_review("CREATE", "value"))
        .unwrap()
        .replace("\"r9\"", "\"r9-a-very-long-region-name\"");
    let logs = logged(|| {
        let reply = String::from_utf8(admission.review(Webhook::Validate, long.as_bytes())).unwrap();
        assert!(reply.contains("\"allowed\":true") && reply.contains("RGN"), "{reply}");
    });
    assert!(logs.iter().any(|(l, m, w)| l == "INFO" && m == "admission" && w == "validate"), "{logs:?}");
}
