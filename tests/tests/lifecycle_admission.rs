//! Issue 13, the admission side, on the real apiserver (tests/kube-test-cluster): the webhook runs
//! in-process with the shipped RBAC through a real ServiceAccount token, called through the shipped
//! webhook configurations. One test per item: GitOps dry runs (4), ProviderInterface updates (6),
//! DELETE denials (7), ClusterDeployment parity (8), identities the cache does not cover (12),
//! decision logs (11) and the bounds on live reads (14). Needs Go (to build the cluster once) and
//! `kubectl` on PATH.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex, OnceLock};

use credential_core::Gvk;
use credential_e2e::cluster::metric_sum;
use credential_e2e::{ClusterOptions, KubeCluster};
use serde_json::{Value, json};
use support::SYS;
use support::admission::{API, cached, kubectl, post_review, register, set_status, webhook_on, webhook_unregistered};

async fn cluster(name: &str) -> KubeCluster {
    KubeCluster::start(ClusterOptions { controller_manager: false, ..ClusterOptions::new(name) }).await.unwrap()
}

fn namespace(name: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n")
}

/// A Credential whose identity is a Secret of its own namespace.
fn credential(ns: &str, name: &str, region: Option<&str>) -> String {
    let region = region.map(|r| format!("  region: {r}\n")).unwrap_or_default();
    format!(
        "apiVersion: {API}\nkind: Credential\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{region}  \
         identityRef: {{apiVersion: v1, kind: Secret, name: {name}-identity, namespace: {ns}}}\n"
    )
}

/// A kubeconfig Secret in kcm-system (for an API server nobody serves) and the Region using it.
fn region_with_secret(name: &str) -> String {
    let kubeconfig = support::unreachable_kubeconfig().replace('\n', "\n    ");
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}-kubeconfig, namespace: {SYS}}}\nstringData:\n  value: |\n    \
         {kubeconfig}\n---\napiVersion: {API}\nkind: Region\nmetadata: {{name: {name}}}\nspec:\n  kubeConfig: {{name: \
         {name}-kubeconfig, key: value}}\n"
    )
}

fn cluster_deployment(ns: &str, name: &str, credential: &str) -> String {
    format!(
        "apiVersion: {API}\nkind: ClusterDeployment\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: \
         {{credential: {credential}, template: aws-standalone}}\n"
    )
}

/// Item 4: Flux dry-runs a whole stage before applying any of it; a missing sibling is a warning on
/// the dry run, and the real apply of the same file succeeds (each write confirming its siblings
/// with a live read while the cache lags).
#[tokio::test]
async fn gitops_dry_run_of_secret_region_and_credential_succeeds_and_so_does_the_real_apply() {
    let c = cluster("adm-gitops").await;
    let _hook = webhook_on(&c).await;
    let stage = format!("{}---\n{}", region_with_secret("r1"), credential(SYS, "r1-cred", Some("r1")));

    let dry = kubectl(&c, &["apply", "--server-side", "--dry-run=server", "-f", "-"], &stage).await;
    assert!(dry.success(), "the dry run of the stage must pass: {}", dry.stderr);
    for code in ["RGN006", "CRED004"] {
        assert!(dry.stderr.contains(code) && dry.stderr.contains("dry run"), "warning {code}: {}", dry.stderr);
    }
    let got = kubectl(&c, &["get", "region", "r1", "--ignore-not-found", "-o", "name"], "").await;
    assert_eq!(got.stdout.trim(), "", "a dry run creates nothing");

    let real = kubectl(&c, &["apply", "--server-side", "-f", "-"], &stage).await;
    assert!(real.success(), "the real apply of the same file must pass: {}", real.stderr);
    let got = kubectl(&c, &["get", "credential", "r1-cred", "-n", SYS, "-o", "jsonpath={.spec.region}"], "").await;
    assert_eq!(got.stdout, "r1", "{}", got.stderr);

    // A real write naming a Region that exists nowhere is still denied (confirmed live).
    let lost = kubectl(&c, &["apply", "--server-side", "-f", "-"], &credential(SYS, "lost", Some("nowhere"))).await;
    assert!(!lost.success() && lost.stderr.contains("CRED004") && lost.stderr.contains("nowhere"), "{}", lost.stderr);
}

fn kubectl_patch_args(json_patch: &str) -> Vec<String> {
    ["patch", "providerinterface", "third-party", "--type=json", "-p", json_patch].map(String::from).to_vec()
}

/// Item 6: an update of a stored ProviderInterface that a stricter rule than KCM's schema dislikes
/// (a trailing dot in a field path) goes through with a warning; what an update introduces is denied.
#[tokio::test]
async fn provider_interface_updates_deny_only_what_they_introduce() {
    let c = cluster("adm-pi").await;
    let hook = webhook_unregistered(&c).await;
    let entry = |kind: &str, path: &str| {
        json!({"group": "example.io", "version": "v1", "kind": kind,
               "references": [{"group": "", "version": "v1", "kind": "Secret", "nameFieldPath": path}]})
    };
    let pi = json!({"apiVersion": API, "kind": "ProviderInterface", "metadata": {"name": "third-party"},
                    "spec": {"clusterIdentities": [entry("KindA", "spec.secretRef.")]}});
    // Stored before the webhook judged it (an existing third-party ProviderInterface).
    c.apply(&pi.to_string()).await.unwrap();
    register(&c, &hook).await;

    let add = |e: Value| json!([{"op": "add", "path": "/spec/clusterIdentities/-", "value": e}]).to_string();
    let patch = |p: &str| kubectl_patch_args(p);
    let fine = add(entry("KindB", "spec.secretRef.name"));
    let out = kubectl(&c, &patch(&fine).iter().map(String::as_str).collect::<Vec<_>>(), "").await;
    assert!(out.success(), "the update introduces nothing wrong: {}", out.stderr);
    assert!(out.stderr.contains("PI004") && out.stderr.contains("already so before this update"), "{}", out.stderr);

    let worse = add(entry("KindC", "spec..c"));
    let out = kubectl(&c, &patch(&worse).iter().map(String::as_str).collect::<Vec<_>>(), "").await;
    assert!(!out.success(), "a new bad path is denied: {}", out.stdout);
    assert!(out.stderr.contains("spec.clusterIdentities[2].references[0].nameFieldPath"), "{}", out.stderr);

    // The same content as a new object is denied.
    let copy =
        json!({"apiVersion": API, "kind": "ProviderInterface", "metadata": {"name": "copy"}, "spec": pi["spec"]});
    let out = kubectl(&c, &["apply", "-f", "-"], &copy.to_string()).await;
    assert!(!out.success() && out.stderr.contains("PI004"), "{}", out.stderr);
}

/// Item 7: a DELETE denial is 403 Forbidden naming the users (as KCM's webhooks answer), not
/// "is invalid" with an empty field; a CREATE denial stays 422 Invalid with its field.
#[tokio::test]
async fn delete_denials_are_forbidden_and_name_the_users() {
    let c = cluster("adm-delete").await;
    let hook = webhook_on(&c).await;
    c.apply(&namespace("team")).await.unwrap();
    c.apply(&credential("team", "used", None)).await.unwrap();
    set_status(&c, "credential", Some("team"), "used", json!({"ready": true})).await;
    cached(&hook, &Gvk::credential(), Some("team"), "used", "/status/ready", json!(true)).await;
    c.apply(&cluster_deployment("team", "prod-1", "used")).await.unwrap();
    cached(&hook, &Gvk::cluster_deployment(), Some("team"), "prod-1", "/spec/credential", json!("used")).await;

    let out = kubectl(&c, &["delete", "credential", "used", "-n", "team", "--wait=false"], "").await;
    assert!(!out.success(), "{}", out.stdout);
    assert!(out.stderr.contains("Error from server (Forbidden)"), "{}", out.stderr);
    assert!(out.stderr.contains("CRED016") && out.stderr.contains("prod-1"), "names the user: {}", out.stderr);
    assert!(!out.stderr.contains("is invalid"), "{}", out.stderr);

    let out = kubectl(&c, &["apply", "-f", "-"], &credential("team", "lost", Some("nowhere"))).await;
    assert!(
        !out.success() && out.stderr.contains("is invalid") && out.stderr.contains("spec.region"),
        "{}",
        out.stderr
    );
}

/// Item 8: a ClusterDeployment whose Credential names a Region that does not exist is denied (as
/// KCM's own webhook does); once the Region exists, it is allowed.
#[tokio::test]
async fn cluster_deployment_of_a_credential_whose_region_does_not_exist_is_denied() {
    let c = cluster("adm-cd").await;
    let hook = webhook_unregistered(&c).await;
    c.apply(&namespace("team")).await.unwrap();
    // Made before the webhook judged it: a Credential of a Region that never existed.
    c.apply(&credential("team", "lost", Some("gone"))).await.unwrap();
    set_status(&c, "credential", Some("team"), "lost", json!({"ready": true})).await;
    register(&c, &hook).await;
    cached(&hook, &Gvk::credential(), Some("team"), "lost", "/status/ready", json!(true)).await;

    let out = kubectl(&c, &["apply", "-f", "-"], &cluster_deployment("team", "cl", "lost")).await;
    assert!(!out.success(), "{}", out.stdout);
    assert!(out.stderr.contains("CD009") && out.stderr.contains("\"gone\""), "{}", out.stderr);

    let region = kubectl(&c, &["apply", "--server-side", "-f", "-"], &region_with_secret("gone")).await;
    assert!(region.success(), "{}", region.stderr);
    let out = kubectl(&c, &["apply", "-f", "-"], &cluster_deployment("team", "cl", "lost")).await;
    assert!(out.success(), "the Region exists now (confirmed live if the cache lags): {}", out.stderr);
}

/// Item 12: a Secret identity outside kcm-system is not cached, so it is reported as not checked,
/// never as missing; in kcm-system (cached) a missing one is reported as missing.
#[tokio::test]
async fn identities_the_cache_does_not_cover_are_not_called_missing() {
    let c = cluster("adm-cover").await;
    let _hook = webhook_on(&c).await;
    c.apply(&namespace("team")).await.unwrap();
    let out = kubectl(&c, &["apply", "-f", "-"], &credential("team", "gcp", None)).await;
    assert!(out.success(), "{}", out.stderr);
    assert!(out.stderr.contains("CRED018") && out.stderr.contains("could not check"), "{}", out.stderr);
    assert!(!out.stderr.contains("CRED010"), "no false 'does not exist': {}", out.stderr);

    let out = kubectl(&c, &["apply", "-f", "-"], &credential(SYS, "sys", None)).await;
    assert!(out.success() && out.stderr.contains("CRED010"), "{}", out.stderr);
    assert!(!out.stderr.contains("CRED018"), "{}", out.stderr);
}

/// The JSON log lines of this test binary (the webhook's own formatter), for item 11.
fn json_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        #[derive(Clone)]
        struct W(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for W {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let w = W(buf.clone());
        let _ = tracing_subscriber::fmt()
            .event_format(credential_webhook::logjson::JsonLines)
            .with_env_filter(tracing_subscriber::EnvFilter::new("credential_webhook::admission=info"))
            .with_writer(move || w.clone())
            .try_init();
        buf
    })
    .clone()
}

/// Item 11: the decision log line of a denied request names the requesting user, and its finding
/// codes are a JSON array.
#[tokio::test]
async fn decision_logs_name_the_user_and_list_codes_as_arrays() {
    let logs = json_logs();
    let c = cluster("adm-logs").await;
    let _hook = webhook_on(&c).await;
    let out = kubectl(&c, &["apply", "-f", "-"], &credential(SYS, "logged", Some("nowhere"))).await;
    assert!(!out.success(), "{}", out.stdout);
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["name"] == "logged" && l["fields"]["allowed"] == false)
        .unwrap_or_else(|| panic!("no decision line for Credential logged in:\n{text}"));
    let fields = &line["fields"];
    let user = fields["user"].as_str().unwrap_or_default();
    assert!(!user.is_empty() && !user.starts_with("system:serviceaccount"), "the kubectl user: {line}");
    let codes = fields["findings"].as_array().unwrap_or_else(|| panic!("findings is not an array: {line}"));
    assert!(codes.contains(&json!("CRED004")), "{line}");
}

/// Item 14: reviews posted straight to the admission port (bypassing the API server) cannot make the
/// webhook read Secrets without bound: live reads are rate-limited per user and counted, and a reply
/// never lists a Secret's keys.
#[tokio::test]
async fn forged_region_reviews_are_rate_limited_and_never_list_secret_keys() {
    let c = cluster("adm-oracle").await;
    let hook = webhook_on(&c).await;
    c.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: db, namespace: {SYS}}}\nstringData: {{password: p, token: t}}\n"
    ))
    .await
    .unwrap();
    let review = |i: usize, secret: &str, user: &str| {
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": format!("forged-{i}"), "kind": {"group": "k0rdent.mirantis.com", "version": "v1beta1", "kind": "Region"},
            "resource": {"group": "k0rdent.mirantis.com", "version": "v1beta1", "resource": "regions"},
            "name": format!("r{i}"), "operation": "CREATE", "userInfo": {"username": user},
            "object": {"apiVersion": API, "kind": "Region", "metadata": {"name": format!("r{i}")},
                       "spec": {"kubeConfig": {"name": secret, "key": "value"}}}}})
    };
    // A named Secret that exists without the key: the answer names only the key asked for.
    let reply = post_review(&hook, "/validate", &review(0, "db", "mallory")).await;
    let text = reply.to_string();
    assert!(reply["response"]["allowed"] == false && text.contains("RGN007"), "{text}");
    assert!(!text.contains("password") && !text.contains("token"), "keys leaked: {text}");

    for i in 1..40 {
        let reply = post_review(&hook, "/validate", &review(i, &format!("probe-{i}"), "mallory")).await;
        assert_eq!(reply["response"]["allowed"], false, "{reply}");
    }
    let metrics = hook.metrics.encode();
    let count = |outcome: &str| {
        metric_sum(&metrics, "credential_webhook_live_reads_total", &[("kind", "Secret"), ("outcome", outcome)])
    };
    assert!(count("refused") >= 10.0, "reads beyond mallory's burst are refused:\n{metrics}");
    assert!(count("absent") + count("found") <= 25.0, "reads are bounded:\n{metrics}");
    // Another user is not starved by mallory.
    let reply = post_review(&hook, "/validate", &review(99, "probe-99", "bob")).await;
    assert!(reply.to_string().contains("RGN006"), "{reply}");
    let after = hook.metrics.encode();
    let absent =
        metric_sum(&after, "credential_webhook_live_reads_total", &[("kind", "Secret"), ("outcome", "absent")]);
    assert_eq!(absent, count("absent") + 1.0, "bob's read was made:\n{after}");
    drop(c);
}
