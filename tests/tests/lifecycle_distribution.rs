//! Whole-life correctness of distribution (issue 13) on real API servers: a management and a
//! regional kube-apiserver (tests/kube-test-cluster), the distributor running in-process with the
//! shipped RBAC through a real ServiceAccount token. Each test is one defect of the issue.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use credential_core::model::labels;
use credential_e2e::cluster::shipped_rbac_yaml;
use credential_e2e::{ClusterOptions, KubeCluster};
use credential_webhook::distribution::{Distributor, ORPHANED_COPIES};
use serde_json::Value;
use support::lifecycle::{AZURE_PROVIDER_INTERFACE, fast_distribution_config};
use support::{SYS, b64, eventually_async};

const API: &str = "k0rdent.mirantis.com/v1beta1";
const INFRA: &str = "infrastructure.cluster.x-k8s.io";
const WAIT: Duration = Duration::from_secs(60);

/// ProviderInterfaces of the regional cluster besides Azure's ([`AZURE_PROVIDER_INTERFACE`]): AWS
/// (static identity -> Secret; role identity -> controller identity) and a Secret used directly as
/// the identity (as GCP and Docker declare it).
const REGIONAL_PIS: &str = r#"
apiVersion: k0rdent.mirantis.com/v1beta1
kind: ProviderInterface
metadata: {name: cluster-api-provider-aws}
spec:
  clusterIdentities:
  - {group: infrastructure.cluster.x-k8s.io, version: v1beta2, kind: AWSClusterStaticIdentity,
     references: [{group: "", version: v1, kind: Secret, nameFieldPath: spec.secretRef}]}
  - {group: infrastructure.cluster.x-k8s.io, version: v1beta2, kind: AWSClusterRoleIdentity,
     references: [{group: infrastructure.cluster.x-k8s.io, version: v1beta2, kind: AWSClusterControllerIdentity,
                   nameFieldPath: spec.sourceIdentityRef.name}]}
  - {group: infrastructure.cluster.x-k8s.io, version: v1beta2, kind: AWSClusterControllerIdentity}
---
apiVersion: k0rdent.mirantis.com/v1beta1
kind: ProviderInterface
metadata: {name: cluster-api-provider-gcp}
spec:
  clusterIdentities:
  - {group: "", version: v1, kind: Secret}
"#;

/// A management and a regional cluster, Region `r1` pointing at the regional one, and the
/// distributor running as the shipped ServiceAccount.
struct Estate {
    mgmt: KubeCluster,
    region: KubeCluster,
    distributor: Option<Distributor>,
}

fn region_yaml(region: &KubeCluster) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: r1-kubeconfig, namespace: {SYS}}}\ndata: {{value: {}}}\n---\n\
         apiVersion: {API}\nkind: Region\nmetadata: {{name: r1}}\nspec:\n  kubeConfig: {{name: r1-kubeconfig, key: value}}\n",
        b64(&region.kubeconfig_yaml())
    )
}

async fn estate(name: &str) -> Estate {
    let (mgmt, region) = tokio::join!(
        KubeCluster::start(ClusterOptions {
            controller_manager: false,
            ..ClusterOptions::new(&format!("{name}-mgmt"))
        }),
        KubeCluster::start(ClusterOptions { controller_manager: false, ..ClusterOptions::new(&format!("{name}-r1")) }),
    );
    let (mgmt, region) = (mgmt.unwrap(), region.unwrap());
    mgmt.apply(&format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {SYS}}}\n")).await.unwrap();
    mgmt.apply(&shipped_rbac_yaml().await.unwrap()).await.unwrap();
    mgmt.apply(&region_yaml(&region)).await.unwrap();
    region.apply(&format!("{REGIONAL_PIS}---\n{AZURE_PROVIDER_INTERFACE}")).await.unwrap();
    let token = mgmt.service_account_token(SYS, "credential-webhook").await.unwrap();
    let client = mgmt.client_for_token(&token).await.unwrap();
    let distributor = Distributor::start(fast_distribution_config("lifecycle", Duration::from_secs(10)), client);
    Estate { mgmt, region, distributor: Some(distributor) }
}

impl Estate {
    async fn get(&self, cluster: &KubeCluster, kind: &str, ns: Option<&str>, name: &str) -> Option<Value> {
        let mut args = vec!["get", kind, name, "-o", "json"];
        if let Some(ns) = ns {
            args.extend(["-n", ns]);
        }
        let out = cluster.kubectl(&args).await.unwrap();
        out.success().then(|| serde_json::from_str(&out.stdout).unwrap())
    }

    async fn credential(&self, ns: &str, name: &str) -> Option<Value> {
        self.get(&self.mgmt, "credentials.k0rdent.mirantis.com", Some(ns), name).await
    }

    /// Our condition once its status and reason are as wanted.
    async fn wait_condition(&self, ns: &str, name: &str, status: &str, reason: Option<&str>) -> Value {
        eventually_async(
            &format!("{ns}/{name} {} {status} {reason:?}", labels::DISTRIBUTED_CONDITION),
            WAIT,
            || async {
                let c = self.credential(ns, name).await?;
                let cond = c["status"]["conditions"]
                    .as_array()?
                    .iter()
                    .find(|c| c["type"] == labels::DISTRIBUTED_CONDITION)?
                    .clone();
                (cond["status"] == status && reason.is_none_or(|r| cond["reason"] == r)).then_some(cond)
            },
        )
        .await
    }

    /// The AWS static identity with its Secret and Credential kcm-system/aws, distributed.
    async fn distributed_aws_credential(&self) {
        self.mgmt.apply(&aws_static(true)).await.unwrap();
        self.mgmt
            .apply(&credential_yaml(
                SYS,
                "aws",
                (&format!("{INFRA}/v1beta2"), "AWSClusterStaticIdentity", "aws-id"),
                "",
            ))
            .await
            .unwrap();
        self.wait_condition(SYS, "aws", "True", Some("Distributed")).await;
    }

    async fn stop(mut self) {
        if let Some(d) = self.distributor.take() {
            d.shutdown().await;
        }
    }
}

fn has_finalizer(credential: &Value) -> bool {
    credential["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f == labels::DISTRIBUTION_FINALIZER))
}

fn aws_static(secret_data: bool) -> String {
    let secret = if secret_data {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: aws-secret, namespace: {SYS}}}\ndata: {{AccessKeyID: {}}}\n---\n",
            b64("AKIAEXAMPLE")
        )
    } else {
        String::new()
    };
    format!(
        "{secret}apiVersion: {INFRA}/v1beta2\nkind: AWSClusterStaticIdentity\nmetadata: {{name: aws-id}}\nspec: {{secretRef: aws-secret}}\n"
    )
}

fn credential_yaml(ns: &str, name: &str, identity: (&str, &str, &str), extra_labels: &str) -> String {
    let (api_version, kind, id_name) = identity;
    format!(
        "apiVersion: {API}\nkind: Credential\nmetadata: {{name: {name}, namespace: {ns}, labels: {{{extra_labels}}}}}\n\
         spec:\n  region: r1\n  identityRef: {{apiVersion: {api_version}, kind: {kind}, name: {id_name}, namespace: {ns}}}\n"
    )
}

fn no_debug_dump(text: &str) {
    assert!(
        !text.contains("Status {") && !text.contains("ApiError:") && !text.contains("Some("),
        "Debug dump in: {text}"
    );
}

/// Item 13: an identity whose referenced Secret does not exist is not half-copied (KCM copies
/// nothing then, neither do we), and no finalizer holds the Credential while nothing was written.
/// Once the Secret exists, both copies arrive and only then the finalizer.
#[tokio::test]
async fn nothing_copied_and_no_finalizer_until_the_whole_identity_resolves() {
    let e = estate("half").await;
    e.mgmt.apply(&aws_static(false)).await.unwrap();
    e.mgmt
        .apply(&credential_yaml(SYS, "aws", (&format!("{INFRA}/v1beta2"), "AWSClusterStaticIdentity", "aws-id"), ""))
        .await
        .unwrap();
    let cond = e.wait_condition(SYS, "aws", "False", Some("SourceMissing")).await;
    let message = cond["message"].as_str().unwrap();
    assert!(message.starts_with("nothing copied") && message.contains("aws-secret"), "{message}");
    no_debug_dump(message);
    assert!(!has_finalizer(&e.credential(SYS, "aws").await.unwrap()), "finalizer before anything was written");
    assert!(
        e.get(&e.region, "awsclusterstaticidentities.infrastructure.cluster.x-k8s.io", None, "aws-id").await.is_none(),
        "the identity was copied without its Secret"
    );

    // Deleting it now is immediate: nothing holds it.
    e.mgmt.kubectl_ok(&["delete", "credential", "aws", "-n", SYS, "--wait=true", "--timeout=20s"], None).await.unwrap();

    // The whole identity: copies, then the finalizer.
    e.distributed_aws_credential().await;
    assert!(has_finalizer(&e.credential(SYS, "aws").await.unwrap()));
    let copy = e.get(&e.region, "secret", Some(SYS), "aws-secret").await.expect("Secret copied");
    assert_eq!(copy["data"]["AccessKeyID"], b64("AKIAEXAMPLE"));
    e.stop().await;
}

/// Item 1: `kubectl delete -f` of the very file that created Secret, Region and Credential ends
/// with no Credential left Terminating; what may remain in the regional cluster is recorded
/// (ConfigMap, Warning Event) when it could not be released.
#[tokio::test]
async fn deleting_region_and_credential_together_leaves_nothing_terminating() {
    let e = estate("together").await;
    let file = format!(
        "{}---\n{}---\n{}",
        aws_static(true),
        region_yaml(&e.region).replace("name: r1-kubeconfig", "name: r2-kubeconfig").replace("name: r1}", "name: r2}"),
        credential_yaml(SYS, "aws", (&format!("{INFRA}/v1beta2"), "AWSClusterStaticIdentity", "aws-id"), "")
            .replace("region: r1", "region: r2")
    );
    e.mgmt.apply(&file).await.unwrap();
    e.wait_condition(SYS, "aws", "True", Some("Distributed")).await;
    assert!(has_finalizer(&e.credential(SYS, "aws").await.unwrap()));

    let out = e
        .mgmt
        .kubectl_with(&["delete", "-f", "-", "--wait=false"], Some(&file), Duration::from_secs(30))
        .await
        .unwrap();
    assert!(out.success(), "{}", out.stderr);
    eventually_async("the Credential is gone", WAIT, || async {
        e.credential(SYS, "aws").await.is_none().then_some(())
    })
    .await;
    // Either the copies were released while the region was still reachable, or what may remain
    // is recorded: never both missing.
    let copy_left = e.get(&e.region, "secret", Some(SYS), "aws-secret").await.is_some();
    let record = e.get(&e.mgmt, "configmap", Some(SYS), ORPHANED_COPIES).await;
    if copy_left {
        let record = record.expect("a copy remains in the region but no record says so");
        let entry: Value = serde_json::from_str(record["data"]["region.r2.kcm-system.aws"].as_str().unwrap()).unwrap();
        assert_eq!(entry["credential"]["name"], "aws");
        assert!(entry["objects"].to_string().contains("aws-secret"), "{entry}");
        let events = e.mgmt.kubectl_ok(&["get", "events", "-n", SYS, "-o", "json"], None).await.unwrap();
        assert!(events.contains("ReleaseAbandoned"), "no Warning Event says the release was given up");
    }
    e.stop().await;
}

/// Item 1: a release that cannot reach its regional cluster gives up after the release timeout,
/// with the record, instead of holding the Credential forever.
#[tokio::test]
async fn release_against_an_unreachable_region_is_bounded() {
    let e = estate("bounded").await;
    e.distributed_aws_credential().await;
    e.region.stop().await;
    e.mgmt.kubectl_ok(&["delete", "credential", "aws", "-n", SYS, "--wait=false"], None).await.unwrap();
    let cond = e.wait_condition(SYS, "aws", "False", Some("ReleasePending")).await;
    no_debug_dump(cond["message"].as_str().unwrap());
    // release_timeout is 10 s in this test.
    eventually_async("the Credential is let go", WAIT, || async {
        e.credential(SYS, "aws").await.is_none().then_some(())
    })
    .await;
    let record = e.get(&e.mgmt, "configmap", Some(SYS), ORPHANED_COPIES).await.expect("orphaned-copies record");
    let entry = record["data"]["region.r1.kcm-system.aws"].as_str().expect("entry for the Credential");
    assert!(entry.contains("Secret kcm-system/aws-secret"), "{entry}");
    assert!(!entry.contains(&b64("AKIAEXAMPLE")) && !entry.contains("AKIAEXAMPLE"), "Secret data in the record");
    e.stop().await;
}

/// Items 2 and 11: with the shipped RBAC, a Secret identity in a tenant namespace cannot be read
/// (403). The condition says so readably (the grant to add), nothing holds the Credential, and it
/// deletes at once.
#[tokio::test]
async fn a_forbidden_read_is_a_clear_condition_never_a_stuck_object() {
    let e = estate("forbidden").await;
    e.mgmt.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-g}\n").await.unwrap();
    e.mgmt
        .apply(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: gcp-sa, namespace: team-g}}\ndata: {{credentials: {}}}\n",
            b64("{}")
        ))
        .await
        .unwrap();
    e.mgmt.apply(&credential_yaml("team-g", "gcp", ("v1", "Secret", "gcp-sa"), "")).await.unwrap();
    let cond = e.wait_condition("team-g", "gcp", "False", Some("Forbidden")).await;
    let message = cond["message"].as_str().unwrap();
    assert!(message.contains("gcp-sa") && message.contains("HTTP 403") && message.contains("grant"), "{message}");
    no_debug_dump(message);
    assert!(!has_finalizer(&e.credential("team-g", "gcp").await.unwrap()));
    e.mgmt
        .kubectl_ok(&["delete", "credential", "gcp", "-n", "team-g", "--wait=true", "--timeout=20s"], None)
        .await
        .unwrap();
    e.stop().await;
}

/// Item 3: an AccessManagement copy of a regional Credential (managed, in tenant namespace
/// team-a) gets its namespaced identity and the Secret it names in team-a of the region, the
/// identity pointing at the Secret there, as KCM writes it.
#[tokio::test]
async fn access_management_copy_lands_in_its_own_namespace_in_the_region() {
    let e = estate("amcopy").await;
    e.mgmt.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n").await.unwrap();
    e.mgmt
        .apply(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: azure-secret, namespace: {SYS}}}\ndata: {{clientSecret: {}}}\n---\n\
             apiVersion: {INFRA}/v1beta1\nkind: AzureClusterIdentity\nmetadata: {{name: azure-id, namespace: {SYS}}}\n\
             spec: {{clientSecret: {{name: azure-secret, namespace: {SYS}}}}}\n",
            b64("s3cr3t")
        ))
        .await
        .unwrap();
    e.mgmt
        .apply(&credential_yaml(
            "team-a",
            "azure",
            (&format!("{INFRA}/v1beta1"), "AzureClusterIdentity", "azure-id"),
            &format!("\"{}\": \"true\"", labels::MANAGED),
        ))
        .await
        .unwrap();
    e.wait_condition("team-a", "azure", "True", Some("Distributed")).await;
    let id = e
        .get(&e.region, "azureclusteridentities.infrastructure.cluster.x-k8s.io", Some("team-a"), "azure-id")
        .await
        .expect("identity in team-a of the region");
    assert_eq!(id["spec"]["clientSecret"]["namespace"], "team-a");
    assert!(e.get(&e.region, "secret", Some("team-a"), "azure-secret").await.is_some(), "Secret in team-a");
    assert!(
        e.get(&e.region, "azureclusteridentities.infrastructure.cluster.x-k8s.io", Some(SYS), "azure-id")
            .await
            .is_none(),
        "identity at the source's place"
    );
    e.stop().await;
}

/// Item 9: CAPA creates its own unmanaged `default` AWSClusterControllerIdentity; one equal in
/// content is success (present, not managed by us), one that differs is a Conflict.
#[tokio::test]
async fn an_unmanaged_identical_object_is_success_and_a_different_one_a_conflict() {
    let e = estate("capa").await;
    let controller = |allowed: &str| {
        format!(
            "apiVersion: {INFRA}/v1beta2\nkind: AWSClusterControllerIdentity\nmetadata: {{name: default}}\n\
             spec: {{allowedNamespaces: {{{allowed}}}}}\n"
        )
    };
    e.region.apply(&controller("")).await.unwrap();
    e.mgmt.apply(&controller("")).await.unwrap();
    e.mgmt
        .apply(&format!(
            "apiVersion: {INFRA}/v1beta2\nkind: AWSClusterRoleIdentity\nmetadata: {{name: role}}\n\
             spec: {{roleARN: arn:aws:iam::1:role/x, sourceIdentityRef: {{kind: AWSClusterControllerIdentity, name: default}}}}\n"
        ))
        .await
        .unwrap();
    e.mgmt
        .apply(&credential_yaml(SYS, "role", (&format!("{INFRA}/v1beta2"), "AWSClusterRoleIdentity", "role"), ""))
        .await
        .unwrap();
    let cond = e.wait_condition(SYS, "role", "True", Some("Distributed")).await;
    assert!(cond["message"].as_str().unwrap().contains("present, not managed by us"), "{cond}");
    let theirs = e
        .get(&e.region, "awsclustercontrolleridentities.infrastructure.cluster.x-k8s.io", None, "default")
        .await
        .unwrap();
    assert!(theirs["metadata"]["labels"].get(labels::MANAGED).is_none(), "CAPA's object was taken over");

    // Content that differs is a conflict, reported once per change, and left untouched.
    e.region.apply(&controller("list: {namespaceList: [other]}")).await.unwrap();
    e.mgmt
        .kubectl_ok(
            &["patch", "credential", "role", "-n", SYS, "--type=merge", "-p", r#"{"spec":{"description":"x"}}"#],
            None,
        )
        .await
        .unwrap();
    let cond = e.wait_condition(SYS, "role", "False", Some("Conflict")).await;
    assert!(cond["message"].as_str().unwrap().contains("AWSClusterControllerIdentity default"), "{cond}");
    e.stop().await;
}

/// Item 10: the copies are watched in the region (one label-selected watch per kind): a copy
/// deleted or edited there is repaired within seconds, not at the 10-minute resync.
#[tokio::test]
async fn a_regional_copy_deleted_or_edited_is_repaired_within_seconds() {
    let e = estate("repair").await;
    e.distributed_aws_credential().await;
    let repaired = Duration::from_secs(20);

    e.region.kubectl_ok(&["delete", "secret", "aws-secret", "-n", SYS], None).await.unwrap();
    eventually_async("the deleted copy is back", repaired, || async {
        e.get(&e.region, "secret", Some(SYS), "aws-secret")
            .await
            .filter(|s| s["data"]["AccessKeyID"] == b64("AKIAEXAMPLE"))
    })
    .await;

    let tampered = format!(r#"{{"data":{{"AccessKeyID":"{}"}}}}"#, b64("tampered"));
    e.region
        .kubectl_ok(&["patch", "secret", "aws-secret", "-n", SYS, "--type=merge", "-p", &tampered], None)
        .await
        .unwrap();
    eventually_async("the edited copy is restored", repaired, || async {
        e.get(&e.region, "secret", Some(SYS), "aws-secret")
            .await
            .filter(|s| s["data"]["AccessKeyID"] == b64("AKIAEXAMPLE"))
    })
    .await;
    e.stop().await;
}
