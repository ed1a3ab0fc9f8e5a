//! AdmissionReview decoding and dispatch: `Admission::review` on raw bytes (odd first byte) or on a
//! structurally valid review around a generated object (even first byte).
//! Invariant: every input gets an `admission.k8s.io/v1` AdmissionReview reply with a boolean
//! `allowed`; a generated review gets its own uid echoed.
#![no_main]

mod common;

use std::sync::{Arc, OnceLock};

use credential_webhook::metrics::Metrics;
use credential_webhook::{Admission, NoopSink, Webhook};
use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fn admission() -> &'static Admission {
    static A: OnceLock<Admission> = OnceLock::new();
    A.get_or_init(|| {
        Admission::new(Arc::new(common::example_estate().clone()), Arc::new(NoopSink), Arc::new(Metrics::new()))
    })
}

const KINDS: &[(&str, &str, &str)] = &[
    ("k0rdent.mirantis.com", "v1beta1", "Credential"),
    ("k0rdent.mirantis.com", "v1beta1", "Region"),
    ("k0rdent.mirantis.com", "v1beta1", "ProviderInterface"),
    ("k0rdent.mirantis.com", "v1beta1", "ClusterDeployment"),
    ("k0rdent.mirantis.com", "v1alpha1", "Credential"),
    ("", "v1", "ConfigMap"),
];
const OPS: &[&str] = &["CREATE", "UPDATE", "DELETE", "CONNECT", "PATCH", ""];

fn generated(u: &mut Unstructured<'_>) -> libfuzzer_sys::arbitrary::Result<(String, Vec<u8>)> {
    let uid = if u.ratio(1, 8)? { String::new() } else { format!("uid-{}", u.arbitrary::<u32>()?) };
    let (group, version, kind) = *u.choose(KINDS)?;
    let api_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    let object = if u.ratio(4, 5)? { common::k8s_object(u, &api_version, kind)? } else { Value::Null };
    let old = if u.ratio(1, 2)? { common::k8s_object(u, &api_version, kind)? } else { Value::Null };
    let name = object.pointer("/metadata/name").or_else(|| old.pointer("/metadata/name")).cloned().unwrap_or_default();
    let mut request = json!({
        "uid": uid,
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": format!("{}s", kind.to_lowercase())},
        "name": name,
        "namespace": object.pointer("/metadata/namespace").cloned().unwrap_or_default(),
        "operation": u.choose(OPS)?,
        "userInfo": {"username": "fuzz"},
        "object": object,
        "oldObject": old,
        "dryRun": u.arbitrary::<bool>()?,
    });
    // Sometimes drop or retype one request member.
    if u.ratio(1, 4)? {
        let k = *u.choose(&["uid", "kind", "operation", "object", "oldObject", "dryRun", "name", "namespace"])?;
        if u.arbitrary()? {
            request.as_object_mut().map(|m| m.remove(k));
        } else {
            request[k] = common::value(u, 2)?;
        }
    }
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request});
    let expect_uid = review.pointer("/request/uid").and_then(Value::as_str).unwrap_or_default().to_string();
    Ok((expect_uid, serde_json::to_vec(&review).unwrap_or_default()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let webhook = if first & 2 == 0 { Webhook::Validate } else { Webhook::Mutate };
    let (expect_uid, body) = if first & 1 == 1 {
        (None, rest.to_vec())
    } else {
        let mut u = Unstructured::new(rest);
        match generated(&mut u) {
            Ok((uid, body)) => (Some(uid), body),
            Err(_) => return,
        }
    };
    let reply = admission().review(webhook, &body);
    let v: Value = serde_json::from_slice(&reply).expect("the reply is JSON");
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1", "{v}");
    assert_eq!(v["kind"], "AdmissionReview", "{v}");
    assert!(v["response"]["allowed"].is_boolean(), "{v}");
    assert!(v["response"]["uid"].is_string(), "{v}");
    if let Some(uid) = expect_uid.filter(|u| !u.is_empty()) {
        // A well-formed uid is echoed even when other members are wrong.
        assert_eq!(v["response"]["uid"], uid.as_str(), "{v}");
    }
});
