//! Issue 13, must show: teardown in every order, and the webhook down, on real API servers
//! (tests/kube-test-cluster). The estate (support/lifecycle.rs): a management cluster with the
//! kube-controller-manager running and a regional cluster; identity Secrets, an AWS static and an
//! Azure identity, a Region with its kubeconfig Secret, regional Credentials in kcm-system and managed
//! (AccessManagement) Credentials in a tenant namespace with the documented opt-in grant; the webhook
//! in-process with the shipped RBAC (a real ServiceAccount token) and the shipped webhook
//! configurations, its admission sink feeding the distributor. Each teardown ends with nothing
//! `Terminating`, no copy that no Credential owns unless the orphaned-copies record lists its release as
//! given up, and no Secret data outside Secrets. Needs Go (to build the cluster once) and `kubectl`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use credential_core::Gvk;
use credential_e2e::{ClusterOptions, KubeCluster};
use serde_json::json;
use support::admission::{cached, kubectl, set_status, webhook_on};
use support::lifecycle::{API, CREDENTIALS, Estate, LIMIT, REGION, TENANT};
use support::{SYS, eventually_async};

/// (a) `kubectl delete -f` of the whole estate file: Region, its kubeconfig Secret, identities and
/// Credentials deleted in one go (releases that lost their Region are given up and recorded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_by_kubectl_delete_of_the_whole_estate_file() {
    let mut e = Estate::up("td-file").await;
    let out = e.delete_file(&[]).await;
    assert!(out.success(), "kubectl delete -f of the estate file: {}", out.stderr);
    e.assert_clean("delete -f of the estate file").await;
    for (ns, name) in CREDENTIALS {
        assert!(e.mgmt.absent(API, "Credential", Some(ns), name).await, "{ns}/{name} still there");
    }
    e.stop_webhook().await;
}

/// (b) The Region first (it has Credentials: a warning, not a denial), then the rest of the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_region_first_then_the_rest() {
    let mut e = Estate::up("td-region").await;
    let out = kubectl(&e.mgmt, &["delete", "region", REGION, "--wait=true", "--timeout=30s"], "").await;
    assert!(out.success(), "delete the Region: {}", out.stderr);
    let out = e.delete_file(&["--ignore-not-found"]).await;
    assert!(out.success(), "delete the rest: {}", out.stderr);
    e.assert_clean("Region first").await;
    e.stop_webhook().await;
}

/// (c) Deleting the tenant namespace that holds the managed Credentials (and a ClusterDeployment
/// using one of them): the namespace controller finishes it; the regional copies of the tenant's
/// Credentials are released, kcm-system's stay with their owners.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_by_deleting_the_tenant_namespace() {
    let mut e = Estate::up("td-ns").await;
    e.mgmt.kcm_reconciled(TENANT, "aws-region1-cred").await;
    let hook = e.webhook.as_ref().unwrap();
    cached(hook, &Gvk::credential(), Some(TENANT), "aws-region1-cred", "/status/ready", json!(true)).await;
    let cd = format!(
        "apiVersion: {API}\nkind: ClusterDeployment\nmetadata: {{name: dev, namespace: {TENANT}}}\n\
         spec: {{credential: aws-region1-cred, template: aws-standalone-cp-1-0-14}}\n"
    );
    let out = kubectl(&e.mgmt, &["apply", "-f", "-"], &cd).await;
    assert!(out.success(), "ClusterDeployment: {}", out.stderr);
    let out = kubectl(&e.mgmt, &["delete", "namespace", TENANT, "--wait=false"], "").await;
    assert!(out.success(), "{}", out.stderr);
    eventually_async("the tenant namespace is gone", LIMIT, || async {
        e.mgmt.absent("v1", "Namespace", None, TENANT).await.then_some(())
    })
    .await;
    e.assert_clean("tenant namespace deleted").await;
    for (ns, name) in CREDENTIALS.iter().filter(|(ns, _)| *ns == SYS) {
        assert!(e.mgmt.get(API, "Credential", Some(ns), name).await.is_some(), "{ns}/{name} went with the tenant");
    }
    e.stop_webhook().await;
}

/// (d) Uninstall of the webhook while Credentials exist, as docs/src/operator/install.md says:
/// distribution mode off until no Credential holds our finalizer (each Credential's copies recorded
/// in the orphaned-copies ConfigMap), then webhook and distributor stopped, the shipped webhook
/// configurations and RBAC deleted, then the estate deleted. Nothing may stay `Terminating`, and
/// every copy left in the region must be owned or recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_by_uninstalling_the_webhook_while_credentials_exist() {
    let mut e = Estate::up("td-uninstall").await;
    e.distribution_off_until_released().await;
    e.stop_webhook().await;
    e.uninstall_configurations_and_rbac().await;
    let out = e.delete_file(&[]).await;
    assert!(out.success(), "delete the estate after the uninstall: {}", out.stderr);
    e.assert_clean("after uninstall").await;
}

fn namespace(name: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n")
}

/// A Credential whose identity is a Secret of its own namespace, held by a controller's finalizer.
fn held_credential(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: {API}\nkind: Credential\nmetadata: {{name: {name}, namespace: {ns}, finalizers: [example.com/hold]}}\n\
         spec:\n  identityRef: {{apiVersion: v1, kind: Secret, name: {name}-identity, namespace: {ns}}}\n"
    )
}

async fn stopped_webhook_cluster(name: &str) -> (KubeCluster, support::LiveWebhook) {
    let c = KubeCluster::start(ClusterOptions::new(name)).await.unwrap();
    let hook = webhook_on(&c).await;
    (c, hook)
}

async fn stop(hook: support::LiveWebhook) {
    hook.server.shutdown();
    hook.server.wait().await;
    hook.stop.cancel();
}

fn refused_by_failure_policy(out: &credential_e2e::KubectlOutput, what: &str) {
    assert!(!out.success(), "{what} went through with the webhook down: {}", out.stdout);
    assert!(
        out.stderr.contains("failed calling webhook \"validate.credential-guard.k0rdent.mirantis.com\""),
        "{what}: {}",
        out.stderr
    );
}

/// Webhook down (shipped configurations registered, nothing answers at the URL): label, annotation
/// and finalizer updates of Credentials and ClusterDeployments complete (the shipped matchConditions
/// send only UPDATEs that change what the rules read), a Terminating Credential goes once its
/// controller removes its finalizer, a ClusterDeployment change outside spec.credential goes through;
/// a spec change, a ClusterDeployment's credential change and a CREATE are refused by failurePolicy
/// Fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_down_metadata_updates_complete_and_spec_changes_are_refused() {
    let (c, hook) = stopped_webhook_cluster("down-meta").await;
    let ns = "team-b";
    let cd = format!(
        "apiVersion: {API}\nkind: ClusterDeployment\nmetadata: {{name: dev, namespace: {ns}}}\n\
         spec: {{credential: held, template: aws-standalone-cp-1-0-14}}\n"
    );
    let setup = format!("{}---\n{}---\n{}", namespace(ns), held_credential(ns, "held"), held_credential(ns, "doomed"));
    let out = kubectl(&c, &["apply", "-f", "-"], &setup).await;
    assert!(out.success(), "{}", out.stderr);
    set_status(&c, "credential", Some(ns), "held", json!({"ready": true})).await;
    cached(&hook, &Gvk::credential(), Some(ns), "held", "/status/ready", json!(true)).await;
    let out = kubectl(&c, &["apply", "-f", "-"], &cd).await;
    assert!(out.success(), "{}", out.stderr);
    // Deleted while the webhook judged it: Terminating, held by its controller's finalizer.
    let out = kubectl(&c, &["delete", "credential", "doomed", "-n", ns, "--wait=false"], "").await;
    assert!(out.success(), "{}", out.stderr);
    stop(hook).await;

    let ok = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let c = &c;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = kubectl(c, &args, "").await;
            assert!(out.success(), "kubectl {args:?} with the webhook down: {}", out.stderr);
        }
    };
    ok(&["label", "credential", "held", "-n", ns, "team=b"]).await;
    ok(&["annotate", "credential", "held", "-n", ns, "example.com/note=x"]).await;
    ok(&[
        "patch",
        "credential",
        "held",
        "-n",
        ns,
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/metadata/finalizers/-","value":"example.com/second"}]"#,
    ])
    .await;
    ok(&["label", "clusterdeployment", "dev", "-n", ns, "team=b"]).await;
    ok(&[
        "patch",
        "clusterdeployment",
        "dev",
        "-n",
        ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"template":"aws-standalone-cp-1-0-15"}}"#,
    ])
    .await;
    // The controller lets go of the Terminating Credential: it is gone.
    ok(&[
        "patch",
        "credential",
        "doomed",
        "-n",
        ns,
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers/0"}]"#,
    ])
    .await;
    eventually_async("the released Credential is gone", Duration::from_secs(20), || async {
        let out = kubectl(&c, &["get", "credential", "doomed", "-n", ns, "--ignore-not-found", "-o", "name"], "").await;
        (out.success() && out.stdout.trim().is_empty()).then_some(())
    })
    .await;

    for (resource, name, patch, what) in [
        ("credential", "held", r#"{"spec":{"description":"changed"}}"#, "a Credential spec change"),
        ("clusterdeployment", "dev", r#"{"spec":{"credential":"other"}}"#, "a ClusterDeployment credential change"),
    ] {
        let out = kubectl(&c, &["patch", resource, name, "-n", ns, "--type=merge", "-p", patch], "").await;
        refused_by_failure_policy(&out, what);
    }
    let create = kubectl(&c, &["apply", "-f", "-"], &held_credential(ns, "new")).await;
    refused_by_failure_policy(&create, "a CREATE");
    let stored = kubectl(&c, &["get", "credential", "held", "-n", ns, "-o", "json"], "").await;
    let stored: serde_json::Value = serde_json::from_str(&stored.stdout).unwrap();
    assert_eq!(stored["metadata"]["labels"]["team"], "b", "{stored}");
    assert!(stored["spec"].get("description").is_none(), "{stored}");
}

/// Webhook down: deleting a namespace that holds Credentials completes (the namespace controller's
/// DELETEs of its contents are not held by a webhook nobody serves).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_down_namespace_deletion_completes() {
    let (c, hook) = stopped_webhook_cluster("down-ns").await;
    let ns = "team-c";
    let out = kubectl(&c, &["apply", "-f", "-"], &format!("{}---\n{}", namespace(ns), held_credential(ns, "c1"))).await;
    assert!(out.success(), "{}", out.stderr);
    // Its controller removes the finalizer while the namespace goes (as KCM would).
    kubectl(
        &c,
        &[
            "patch",
            "credential",
            "c1",
            "-n",
            ns,
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers/0"}]"#,
        ],
        "",
    )
    .await;
    stop(hook).await;
    let out = kubectl(&c, &["delete", "namespace", ns, "--wait=false"], "").await;
    assert!(out.success(), "{}", out.stderr);
    let start = std::time::Instant::now();
    loop {
        let out = kubectl(&c, &["get", "namespace", ns, "--ignore-not-found", "-o", "json"], "").await;
        if out.success() && out.stdout.trim().is_empty() {
            break;
        }
        if start.elapsed() > LIMIT {
            let conditions: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
            panic!("namespace {ns} not gone within {LIMIT:?}: {:#}", conditions["status"]["conditions"]);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
