//! A Region and its kubeconfig Secret in ONE `kubectl apply -f` (k0rdent's documented flow), through
//! credential-webhook with live caches, on a real kube-apiserver (tests/kube-test-cluster) with the
//! shipped RBAC and webhook configurations. The Region's admission usually arrives before the
//! webhook's Secret cache has the Secret (or its key names): the webhook reads that one Secret live
//! instead of denying "does not exist" / "has no key". Needs Go (to build the cluster once) and
//! `kubectl` on PATH (or `KUBECTL`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use credential_webhook::cache::ServingEstate;
use support::real::{WAIT, get, register_shipped_webhook, start_cluster, start_shipped_webhook};
use support::{SYS, b64, eventually, kubeconfig_for};

const API: &str = "k0rdent.mirantis.com/v1beta1";

/// A Secret holding a kubeconfig under `key`, followed by a Region that reads key `value` of it.
fn secret_and_region(name: &str, key: &str) -> String {
    // The regional cluster need not be reachable for admission; the port is closed.
    let kubeconfig = kubeconfig_for("c", 9);
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}-kubeconfig, namespace: {SYS}}}\n\
         data: {{{key}: {kc}}}\n---\napiVersion: {API}\nkind: Region\nmetadata: {{name: {name}}}\n\
         spec:\n  kubeConfig: {{name: {name}-kubeconfig, key: value}}\n",
        kc = b64(&kubeconfig),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_and_region_in_one_apply() {
    let c = start_cluster("region-apply", false, true).await;
    let hook = start_shipped_webhook(&c).await;
    eventually("management caches synced", WAIT, || hook.index.synced()).await;
    register_shipped_webhook(&c, &hook).await;
    let apply = |yaml: String| {
        let c = &c;
        async move { c.kubectl_with(&["apply", "-f", "-"], Some(&yaml), Duration::from_secs(30)).await.unwrap() }
    };

    // 1. Secret and Region together: admitted, both stored.
    let out = apply(secret_and_region("east", "value")).await;
    assert!(out.success(), "Secret+Region in one apply must be admitted: {}", out.stderr);
    assert!(get(&c, "region", None, "east").await.is_some());

    // 2. The Secret lacks the key the Region names: denied with the key named, the Region not stored.
    let out = apply(secret_and_region("west", "kubeconfig")).await;
    assert!(!out.success(), "{}", out.stdout);
    assert!(out.stderr.contains("RGN007") && out.stderr.contains("kcm-system/west-kubeconfig"), "{}", out.stderr);
    assert!(!out.stderr.contains(&b64("apiVersion: ")), "no Secret data in the message: {}", out.stderr);
    assert!(get(&c, "region", None, "west").await.is_none());
    assert!(get(&c, "secret", Some(SYS), "west-kubeconfig").await.is_some());

    // 3. The Secret is fixed in the same apply as the Region is retried: admitted (the cached key
    //    names of the previous version must not decide).
    let out = apply(secret_and_region("west", "value")).await;
    assert!(out.success(), "{}", out.stderr);
    assert!(get(&c, "region", None, "west").await.is_some());

    // 4. No such Secret at all: denied as missing.
    let lone = format!(
        "apiVersion: {API}\nkind: Region\nmetadata: {{name: north}}\nspec:\n  kubeConfig: {{name: nope, key: value}}\n"
    );
    let out = apply(lone).await;
    assert!(!out.success() && out.stderr.contains("RGN006"), "{}", out.stderr);
    assert!(get(&c, "region", None, "north").await.is_none());

    hook.server.shutdown();
    hook.server.wait().await;
    hook.stop.cancel();
}
