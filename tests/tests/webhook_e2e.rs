//! credential-webhook end to end with real kubectl on real kube-apiservers (tests/kube-test-cluster):
//! a management cluster and the regional cluster of Region r1 as separate processes, the webhook
//! reading both through its live caches (the management one with a real token of its shipped
//! ServiceAccount and RBAC, the regional one through a client built from r1's kubeconfig Secret), and
//! the shipped Validating/Mutating webhook configurations pointing at it. Needs Go (to build the
//! cluster once) and `kubectl` on PATH (or `KUBECTL`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use credential_core::estate::{Cluster, Estate};
use credential_core::gvk::Gvk;
use credential_e2e::manifests;
use credential_webhook::cache::ServingEstate;
use serde_json::json;
use support::real::{
    WAIT, documents, get, register_shipped_webhook, seed, seed_yaml, start_cluster, start_shipped_webhook,
};
use support::{b64, eventually, unreachable_kubeconfig};

const API: &str = "k0rdent.mirantis.com/v1beta1";

/// Only the k0rdent CRDs: the regional cluster does not run the AWS provider.
fn k0rdent_crds_yaml() -> String {
    credential_e2e::crds::CRD_FILES
        .iter()
        .filter(|(f, _)| f.starts_with("k0rdent.mirantis.com_"))
        .map(|(_, y)| format!("---\n{y}"))
        .collect()
}

fn management_seed(regional_kubeconfig: &str) -> String {
    let own = format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: aws-secret, namespace: kcm-system}}
data: {{AccessKeyID: QUtJQQ==, SecretAccessKey: c2VjcmV0}}
---
apiVersion: {API}
kind: Credential
metadata: {{name: used, namespace: team}}
spec:
  identityRef: {{apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSClusterStaticIdentity, name: aws-id}}
status: {{ready: true}}
---
apiVersion: {API}
kind: ClusterDeployment
metadata: {{name: prod-cluster, namespace: team}}
spec: {{credential: used, template: aws-standalone-cp-1-0-0}}
"#
    );
    manifests::stream(&[
        manifests::namespace("kcm-system"),
        manifests::namespace("team"),
        manifests::aws_static_identity("aws-id", "aws-secret"),
        manifests::AWS_PROVIDER_INTERFACE.to_string(),
        manifests::kubeconfig_secret("r1", &b64(regional_kubeconfig)),
        manifests::region("r1", true),
        manifests::kubeconfig_secret("down", &b64(&unreachable_kubeconfig())),
        manifests::region("down", false),
        own,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_through_the_webhook_with_live_management_and_regional_caches() {
    let region = start_cluster("r1", false, false).await;
    seed_yaml(&region, &k0rdent_crds_yaml()).await;
    let mgmt = start_cluster("mgmt", false, true).await;
    seed(&mgmt, &documents(&management_seed(&region.kubeconfig_yaml()))).await;

    let hook = start_shipped_webhook(&mgmt).await;
    let (index, metrics) = (hook.index.clone(), hook.metrics.clone());

    // Ready once the management caches synced, although Region "down" cannot be reached.
    eventually("management caches synced", WAIT, || index.synced()).await;
    eventually("regional cache of r1", WAIT, || index.knows_cluster(&Cluster::Region("r1".into()))).await;
    assert!(!index.knows_cluster(&Cluster::Region("down".into())), "an unreachable region stays unknown");
    // The kubeconfig Secret is cached by key name only.
    let secret = index.get(&Cluster::Management, &Gvk::secret(), Some("kcm-system"), "r1-kubeconfig").unwrap();
    assert_eq!(secret["data"], json!({"value": ""}), "{secret}");
    eventually("identity objects cached", WAIT, || {
        index
            .get(
                &Cluster::Management,
                &Gvk::new("infrastructure.cluster.x-k8s.io", "v1beta2", "AWSClusterStaticIdentity"),
                None,
                "aws-id",
            )
            .is_some()
    })
    .await;
    let m = metrics.encode();
    assert!(
        m.contains("credential_webhook_cache_synced{cluster=\"r1\",resource=\"customresourcedefinitions\"} 1"),
        "{m}"
    );

    register_shipped_webhook(&mgmt, &hook).await;
    let apply = |yaml: String| {
        let mgmt = &mgmt;
        async move { mgmt.kubectl_with(&["apply", "-f", "-"], Some(&yaml), Duration::from_secs(30)).await.unwrap() }
    };

    // 1. A regional Credential: admitted with warnings kubectl prints (the AWS provider is not enabled in r1),
    //    and stored with the labels the mutating webhook adds.
    let regional = format!(
        "apiVersion: {API}\nkind: Credential\nmetadata: {{name: aws-r1, namespace: team}}\nspec:\n  region: r1\n  \
         identityRef: {{apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSClusterStaticIdentity, name: aws-id}}\n"
    );
    let out = apply(regional.clone()).await;
    assert!(out.success(), "{}", out.stderr);
    assert!(out.stderr.contains("Warning: [CRED012]") && out.stderr.contains("r1"), "{}", out.stderr);
    let stored = get(&mgmt, "credential", Some("team"), "aws-r1").await.unwrap();
    assert_eq!(stored["metadata"]["labels"]["k0rdent.mirantis.com/component"], "kcm", "{stored}");
    assert_eq!(stored["metadata"]["labels"]["k0rdent.mirantis.com/region"], "r1", "{stored}");

    // 2. Broken Credentials are refused with our message, and nothing is stored.
    let no_name = format!(
        "apiVersion: {API}\nkind: Credential\nmetadata: {{name: broken, namespace: team}}\nspec:\n  \
         identityRef: {{apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSClusterStaticIdentity}}\n"
    );
    let out = apply(no_name).await;
    assert!(!out.success());
    assert!(out.stderr.contains("CRED002") && out.stderr.contains("spec.identityRef"), "{}", out.stderr);
    assert!(get(&mgmt, "credential", Some("team"), "broken").await.is_none());
    // Moving a Credential to another Region: on a real server the CRD's own CEL rule (KCM's
    // `self == oldSelf` on spec.region) refuses it before the validating webhook is asked, so the
    // message is the CRD's, not our CRED005.
    let moved = regional.replace("region: r1", "region: down");
    let out = apply(moved).await;
    assert!(!out.success() && out.stderr.contains("Region is immutable"), "region is immutable: {}", out.stderr);
    let stored = get(&mgmt, "credential", Some("team"), "aws-r1").await.unwrap();
    assert_eq!(stored["spec"]["region"], "r1");

    // 3. A Region naming a key its kubeconfig Secret does not have (known from the cached key names).
    let bad_key = format!(
        "apiVersion: {API}\nkind: Region\nmetadata: {{name: r2}}\nspec:\n  kubeConfig: {{name: r1-kubeconfig, key: kubeconfig}}\n"
    );
    let out = apply(bad_key).await;
    assert!(!out.success() && out.stderr.contains("RGN007"), "{}", out.stderr);

    // 4. Deleting a Credential a ClusterDeployment uses is refused, naming the ClusterDeployment.
    let out = mgmt.kubectl(&["delete", "credential", "used", "-n", "team"]).await.unwrap();
    assert!(!out.success());
    assert!(out.stderr.contains("CRED016") && out.stderr.contains("prod-cluster"), "{}", out.stderr);
    assert!(get(&mgmt, "credential", Some("team"), "used").await.is_some());

    // 5. The cache follows writes: the admitted Credential becomes visible to later decisions.
    eventually("new Credential cached", Duration::from_secs(10), || {
        index.get(&Cluster::Management, &Gvk::credential(), Some("team"), "aws-r1").is_some()
    })
    .await;

    hook.server.shutdown();
    hook.server.wait().await;
    hook.stop.cancel();
}
