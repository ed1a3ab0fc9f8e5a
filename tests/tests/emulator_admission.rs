//! Admission through the emulator: a tiny HTTPS test webhook (tests/tests/emulator_support) answers by the
//! object's `emulator.test/verdict` annotation; kubectl shows what it would show against a real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod emulator_support;

use std::time::Duration;

use credential_e2e::{Emulator, KubectlOutput};
use emulator_support::{TestWebhook, configmap, webhook_config};
use serde_json::json;

async fn apply(emu: &Emulator, yaml: &str, extra: &[&str]) -> KubectlOutput {
    let mut args = vec!["apply", "-f", "-"];
    args.extend_from_slice(extra);
    emu.kubectl_with(&args, Some(yaml), Duration::from_secs(30)).await.expect("kubectl runs")
}

async fn with_hook(kind: &str, path: &str, failure_policy: &str) -> (Emulator, TestWebhook) {
    let hook = TestWebhook::start().await;
    let emu = Emulator::start().await.unwrap();
    emu.seed(webhook_config(kind, "test", &hook.url(path), &hook.ca_bundle(), failure_policy)).unwrap();
    (emu, hook)
}

#[tokio::test]
async fn denial_is_printed_like_a_real_server_and_nothing_is_stored() {
    let (emu, hook) = with_hook("ValidatingWebhookConfiguration", "/validate", "Fail").await;
    let out = apply(&emu, &configmap("blocked", "deny"), &[]).await;
    assert!(!out.success());
    assert!(
        out.stderr.contains(r#"admission webhook "test.emulator.test" denied the request: blocked is not welcome"#),
        "{}",
        out.stderr
    );
    assert!(emu.get("v1", "ConfigMap", Some("default"), "blocked").is_none());
    let review = &hook.received()[0];
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["request"]["operation"], "CREATE");
    assert_eq!(review["request"]["resource"], json!({"group": "", "version": "v1", "resource": "configmaps"}));
    assert_eq!(review["request"]["namespace"], "default");
    assert_eq!(review["request"]["dryRun"], false);

    // A status code from the webhook is kept, and so is its reason (kubectl words 422 Invalid its own way).
    let out = apply(&emu, &configmap("invalid", "deny-422"), &[]).await;
    assert!(out.stderr.contains("The request is invalid: error when creating"), "{}", out.stderr);
    assert!(out.stderr.contains("spec.region is immutable"), "{}", out.stderr);
}

#[tokio::test]
async fn warnings_reach_kubectl_and_the_object_is_stored() {
    let (emu, _hook) = with_hook("ValidatingWebhookConfiguration", "/validate", "Fail").await;
    let out = apply(&emu, &configmap("odd", "warn"), &[]).await;
    assert!(out.success(), "{}", out.stderr);
    assert!(out.stderr.contains(r#"Warning: odd looks "odd""#), "{}", out.stderr);
    assert!(out.stderr.contains("Warning: second warning"), "{}", out.stderr);
    assert!(emu.get("v1", "ConfigMap", Some("default"), "odd").is_some());
}

#[tokio::test]
async fn mutating_patches_apply_in_both_encodings() {
    let (emu, hook) = with_hook("MutatingWebhookConfiguration", "/mutate", "Fail").await;
    for (name, verdict) in [("b64", "patch"), ("bytes", "patch-array")] {
        let out = apply(&emu, &configmap(name, verdict), &[]).await;
        assert!(out.success(), "{}", out.stderr);
        let stored = emu.get("v1", "ConfigMap", Some("default"), name).unwrap();
        assert_eq!(stored["metadata"]["labels"]["mutated"], "yes", "{verdict}");
    }
    assert_eq!(hook.received().len(), 2);
    // A validating hook may not patch: the reply is rejected as invalid.
    let emu2 = Emulator::start().await.unwrap();
    emu2.seed(webhook_config("ValidatingWebhookConfiguration", "bad", &hook.url("/mutate"), &hook.ca_bundle(), "Fail"))
        .unwrap();
    let out = apply(&emu2, &configmap("p", "patch"), &[]).await;
    assert!(out.stderr.contains("validating webhook may not return response.patch"), "{}", out.stderr);
}

#[tokio::test]
async fn failure_policy_fail_and_ignore_with_the_webhook_down() {
    let (emu, hook) = with_hook("ValidatingWebhookConfiguration", "/validate", "Fail").await;
    hook.stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = apply(&emu, &configmap("a", "allow"), &[]).await;
    assert!(!out.success());
    assert!(out.stderr.contains("Error from server (InternalError)"), "{}", out.stderr);
    assert!(out.stderr.contains(r#"failed calling webhook "test.emulator.test""#), "{}", out.stderr);
    assert!(emu.get("v1", "ConfigMap", Some("default"), "a").is_none());

    emu.seed(webhook_config(
        "ValidatingWebhookConfiguration",
        "test",
        &hook.url("/validate"),
        &hook.ca_bundle(),
        "Ignore",
    ))
    .unwrap();
    let out = apply(&emu, &configmap("a", "allow"), &[]).await;
    assert!(out.success(), "{}", out.stderr);
    assert!(emu.get("v1", "ConfigMap", Some("default"), "a").is_some());
}

#[tokio::test]
async fn wrong_ca_uid_and_timeouts_are_call_failures() {
    let (emu, hook) = with_hook("ValidatingWebhookConfiguration", "/validate", "Fail").await;
    let out = apply(&emu, &configmap("u", "bad-uid"), &[]).await;
    assert!(out.stderr.contains("received invalid webhook response: expected response.uid="), "{}", out.stderr);
    let out = apply(&emu, &configmap("slow", "slow"), &[]).await;
    assert!(out.stderr.contains("context deadline exceeded"), "{}", out.stderr);
    assert!(hook.received().iter().any(|r| r["request"]["name"] == "slow"));

    let other = TestWebhook::start().await;
    let emu2 = Emulator::start().await.unwrap();
    emu2.seed(webhook_config(
        "ValidatingWebhookConfiguration",
        "ca",
        &hook.url("/validate"),
        &other.ca_bundle(),
        "Fail",
    ))
    .unwrap();
    let out = apply(&emu2, &configmap("x", "allow"), &[]).await;
    assert!(out.stderr.contains(r#"failed calling webhook "ca.emulator.test""#), "{}", out.stderr);
    assert!(!hook.received().iter().any(|r| r["request"]["name"] == "x"), "TLS failed before any request");
}

#[tokio::test]
async fn dry_run_update_and_delete_reach_the_webhook() {
    let (emu, hook) = with_hook("ValidatingWebhookConfiguration", "/validate", "Fail").await;
    let out = apply(&emu, &configmap("d", "allow"), &["--dry-run=server"]).await;
    assert!(out.success(), "{}", out.stderr);
    assert!(emu.get("v1", "ConfigMap", Some("default"), "d").is_none());
    assert_eq!(hook.received()[0]["request"]["dryRun"], true);

    assert!(apply(&emu, &configmap("d", "allow"), &[]).await.success());
    let out = apply(&emu, &configmap("d", "allow").replace("k: v", "k: w"), &[]).await;
    assert!(out.success(), "{}", out.stderr);
    let out = emu.kubectl(&["delete", "configmap", "d"]).await.unwrap();
    assert!(out.success(), "{}", out.stderr);
    let ops: Vec<String> =
        hook.received().iter().map(|r| r["request"]["operation"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(ops, ["CREATE", "CREATE", "UPDATE", "DELETE"]);
    let update = &hook.received()[2]["request"];
    assert_eq!(update["oldObject"]["data"]["k"], "v");
    assert_eq!(update["object"]["data"]["k"], "w");
    let delete = &hook.received()[3]["request"];
    assert!(delete["object"].is_null() && delete["oldObject"]["metadata"]["name"] == "d");
}

#[tokio::test]
async fn selectors_and_rules_decide_which_requests_are_sent() {
    let hook = TestWebhook::start().await;
    let emu = Emulator::start().await.unwrap();
    let mut cfg =
        webhook_config("ValidatingWebhookConfiguration", "sel", &hook.url("/validate"), &hook.ca_bundle(), "Fail");
    cfg["webhooks"][0]["namespaceSelector"] = json!({"matchLabels": {"guarded": "yes"}});
    cfg["webhooks"][0]["objectSelector"] = json!({"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]});
    emu.seed(cfg).unwrap();
    emu.seed_yaml("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: guarded\n  labels: {guarded: 'yes'}\n").unwrap();
    let deny_in = |ns: &str, extra_label: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: {ns}\n  labels: {{{extra_label}}}\n  \
             annotations:\n    emulator.test/verdict: deny\n"
        )
    };
    // Not in a guarded namespace: no call.
    assert!(apply(&emu, &deny_in("default", ""), &[]).await.success());
    // Guarded namespace but the object opts out.
    assert!(apply(&emu, &deny_in("guarded", "skip: 'y'"), &[]).await.success());
    assert!(hook.received().is_empty());
    // Guarded and selected: denied. Secrets are not in the rules.
    assert!(!apply(&emu, &deny_in("guarded", "other: 'y'").replace("c\n", "c2\n"), &[]).await.success());
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: guarded\n  annotations:\n    \
                  emulator.test/verdict: deny\n";
    assert!(apply(&emu, secret, &[]).await.success());
    assert_eq!(hook.received().len(), 1);
}
