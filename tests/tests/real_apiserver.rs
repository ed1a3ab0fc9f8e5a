//! What only a real kube-apiserver can show (tests/kube-test-cluster: kube-apiserver, etcd and
//! kube-controller-manager from the upstream modules): namespace deletion held by a finalizer, RBAC
//! exactly as shipped, server-side apply merging conditions per type, the shipped matchConditions,
//! and CRD schema/CEL rules judged before any webhook. Needs Go (to build the cluster once) and
//! `kubectl` on PATH.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use credential_core::model::labels;
use credential_e2e::cluster::metric_sum;
use credential_e2e::{ClusterOptions, KubeCluster};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use support::real::{WEBHOOK_SA, register_shipped_webhook, shipped_webhook_token, start_shipped_webhook};
use support::{SYS, eventually_async};

const API: &str = "k0rdent.mirantis.com/v1beta1";

fn credential_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("k0rdent.mirantis.com", "v1beta1", "Credential"))
}

fn credential(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": API, "kind": "Credential",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"identityRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2",
                                 "kind": "AWSClusterStaticIdentity", "name": "aws-id"}}
    })
}

async fn cluster(name: &str) -> KubeCluster {
    KubeCluster::start(ClusterOptions::new(name)).await.unwrap()
}

/// The shipped ServiceAccount and RBAC in kcm-system, and a kube client holding a real token of it.
async fn shipped_webhook_identity(c: &KubeCluster) -> kube::Client {
    c.client_for_token(&shipped_webhook_token(c).await).await.unwrap()
}

#[tokio::test]
async fn kubectl_version_shows_the_real_server_version() {
    let c = KubeCluster::start(ClusterOptions { controller_manager: false, crds: false, ..ClusterOptions::new("ver") })
        .await
        .unwrap();
    let out = c.kubectl_ok(&["version", "-o", "json"], None).await.unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let server = v["serverVersion"]["gitVersion"].as_str().unwrap();
    assert_eq!(server, c.version());
    assert!(server.starts_with("v1.") && !server.contains("master") && server != "v0.0.0", "{server}");
    assert_eq!(v["serverVersion"]["major"], "1");
}

#[tokio::test]
async fn namespace_stays_terminating_while_our_finalizer_holds_a_credential() {
    let c = cluster("nsdel").await;
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n").await.unwrap();
    let mut cred = credential("team-a", "held");
    cred["metadata"]["finalizers"] = json!([labels::DISTRIBUTION_FINALIZER]);
    c.apply(&cred.to_string()).await.unwrap();

    c.kubectl_ok(&["delete", "namespace", "team-a", "--wait=false"], None).await.unwrap();
    // The namespace controller empties what it can, then reports what holds it.
    let ns = eventually_async("namespace reports the finalizer that holds it", Duration::from_secs(60), || async {
        let out = c.kubectl_ok(&["get", "namespace", "team-a", "-o", "json"], None).await.ok()?;
        let ns: Value = serde_json::from_str(&out).ok()?;
        let holds = ns["status"]["conditions"].as_array()?.iter().any(|cond| {
            cond["type"] == "NamespaceFinalizersRemaining"
                && cond["status"] == "True"
                && cond["message"].as_str().unwrap_or_default().contains(labels::DISTRIBUTION_FINALIZER)
        });
        holds.then_some(ns)
    })
    .await;
    assert_eq!(ns["status"]["phase"], "Terminating");
    let out = c.kubectl_ok(&["get", "credential", "held", "-n", "team-a", "-o", "json"], None).await.unwrap();
    let held: Value = serde_json::from_str(&out).unwrap();
    assert!(held["metadata"]["deletionTimestamp"].is_string(), "the Credential is being deleted: {held}");

    // Removing the finalizer lets the namespace go.
    c.kubectl_ok(
        &[
            "patch",
            "credential",
            "held",
            "-n",
            "team-a",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ],
        None,
    )
    .await
    .unwrap();
    eventually_async("namespace deleted", Duration::from_secs(60), || async {
        let out = c.kubectl(&["get", "namespace", "team-a"]).await.ok()?;
        out.stderr.contains("NotFound").then_some(())
    })
    .await;
}

#[tokio::test]
async fn kcm_credential_ready_survives_our_condition_and_ours_survives_kcm() {
    let c = cluster("ssa").await;
    let webhook_client = shipped_webhook_identity(&c).await;
    c.apply(&credential(SYS, "aws").to_string()).await.unwrap();
    // KCM's controller writes its condition with its own field manager.
    let kcm_status = |status: &str| {
        json!({"status": {"ready": status == "True", "conditions": [{
            "type": labels::CREDENTIAL_READY_CONDITION, "status": status, "reason": "Succeeded",
            "message": "Credential is ready", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
        .to_string()
    };
    c.kubectl_ok(
        &[
            "patch",
            "credential",
            "aws",
            "-n",
            SYS,
            "--subresource=status",
            "--type=merge",
            "--field-manager=manager",
            "-p",
            &kcm_status("True"),
        ],
        None,
    )
    .await
    .unwrap();

    // The product's own status write, with the shipped RBAC.
    let api: Api<DynamicObject> = Api::namespaced_with(webhook_client, SYS, &credential_resource());
    let current = serde_json::to_value(api.get("aws").await.unwrap()).unwrap();
    let desired = credential_webhook::distribution::DesiredCondition {
        ok: true,
        reason: "Distributed".into(),
        message: "1 object copied to region r1".into(),
    };
    assert!(credential_webhook::distribution::apply_condition(&api, &current, &desired).await.unwrap());

    let types = |obj: &Value| -> Vec<(String, String)> {
        obj["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| (c["type"].as_str().unwrap().to_string(), c["status"].as_str().unwrap().to_string()))
            .collect()
    };
    let after: Value = serde_json::to_value(api.get("aws").await.unwrap()).unwrap();
    let conds = types(&after);
    assert!(conds.contains(&(labels::CREDENTIAL_READY_CONDITION.into(), "True".into())), "{conds:?}");
    assert!(conds.contains(&(labels::DISTRIBUTED_CONDITION.into(), "True".into())), "{conds:?}");
    assert_eq!(after["status"]["ready"], true, "KCM's ready flag untouched");

    // KCM updates its condition the way controller-runtime does (GET, change its entry, PUT
    // /status); our entry stays, and our next apply changes only ours.
    let admin: Api<DynamicObject> = Api::namespaced_with(c.client().await.unwrap(), SYS, &credential_resource());
    let mut stored = admin.get("aws").await.unwrap();
    for cond in stored.data["status"]["conditions"].as_array_mut().unwrap() {
        if cond["type"] == labels::CREDENTIAL_READY_CONDITION {
            cond["status"] = json!("False");
            cond["reason"] = json!("Failed");
        }
    }
    admin.replace_status("aws", &PostParams::default(), &stored).await.unwrap();
    let current: Value = serde_json::to_value(api.get("aws").await.unwrap()).unwrap();
    let changed = credential_webhook::distribution::DesiredCondition { message: "2 objects copied".into(), ..desired };
    assert!(credential_webhook::distribution::apply_condition(&api, &current, &changed).await.unwrap());
    let restored: Value = serde_json::to_value(api.get("aws").await.unwrap()).unwrap();
    let conds = types(&restored);
    assert!(conds.contains(&(labels::CREDENTIAL_READY_CONDITION.into(), "False".into())), "{conds:?}");
    assert!(conds.contains(&(labels::DISTRIBUTED_CONDITION.into(), "True".into())), "{conds:?}");
    let managers: Vec<String> = restored["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["subresource"] == "status")
        .map(|m| m["manager"].as_str().unwrap().to_string())
        .collect();
    assert!(managers.contains(&labels::FIELD_MANAGER.to_string()), "{managers:?}");
}

#[tokio::test]
async fn writes_the_shipped_rbac_does_not_grant_are_forbidden() {
    let c =
        KubeCluster::start(ClusterOptions { controller_manager: false, ..ClusterOptions::new("rbac") }).await.unwrap();
    let client = shipped_webhook_identity(&c).await;
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-b}\n").await.unwrap();
    c.apply(&credential(SYS, "aws").to_string()).await.unwrap();

    // Granted: reading Credentials, Secrets in the system namespace.
    let creds: Api<DynamicObject> = Api::all_with(client.clone(), &credential_resource());
    assert_eq!(creds.list(&Default::default()).await.unwrap().items.len(), 1);
    let sys_secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), SYS);
    sys_secrets.list(&Default::default()).await.unwrap();

    let forbidden = |r: Result<(), kube::Error>, what: &str| match r {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    };
    // Not granted: creating Secrets, reading Secrets elsewhere, replacing a Credential, deleting one.
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(json!({"metadata": {"name": "planted", "namespace": SYS}})).unwrap();
    forbidden(sys_secrets.create(&PostParams::default(), &secret).await.map(drop), "create Secret in kcm-system");
    let other: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), "team-b");
    forbidden(other.list(&Default::default()).await.map(drop), "list Secrets in team-b");
    let ns_creds: Api<DynamicObject> = Api::namespaced_with(client.clone(), SYS, &credential_resource());
    let mut stored = ns_creds.get("aws").await.unwrap();
    stored.data["spec"]["description"] = json!("changed");
    forbidden(ns_creds.replace("aws", &PostParams::default(), &stored).await.map(drop), "update Credential");
    forbidden(ns_creds.delete("aws", &Default::default()).await.map(drop), "delete Credential");
    // ...and the same answers from kubectl's own RBAC evaluation.
    let user = format!("system:serviceaccount:{SYS}:{WEBHOOK_SA}");
    for (verb, resource, ns, want) in [
        ("create", "secrets", SYS, "no"),
        ("get", "secrets", SYS, "yes"),
        ("get", "secrets", "team-b", "no"),
        ("patch", "credentials.k0rdent.mirantis.com/status", SYS, "yes"),
        ("delete", "credentials.k0rdent.mirantis.com", SYS, "no"),
    ] {
        let out = c.kubectl(&["auth", "can-i", verb, resource, "-n", ns, "--as", &user]).await.unwrap();
        assert_eq!(out.stdout.trim(), want, "can-i {verb} {resource} -n {ns}: {}", out.stderr);
    }
}

/// The webhook running live against the cluster with the shipped identity and configurations.
async fn webhook_on(c: &KubeCluster) -> support::LiveWebhook {
    let hook = start_shipped_webhook(c).await;
    register_shipped_webhook(c, &hook).await;
    hook
}

/// How often the apiserver called our validating webhook for `resource` and `operation`.
async fn validating_calls(c: &KubeCluster, operation: &str) -> f64 {
    let text = c.metrics().await.unwrap();
    metric_sum(
        &text,
        "apiserver_admission_webhook_request_total",
        &[("name", "validate.credential-guard.k0rdent.mirantis.com"), ("operation", operation), ("type", "validating")],
    )
}

#[tokio::test]
async fn metadata_only_updates_skip_the_webhook_and_cel_refuses_before_it() {
    let c =
        KubeCluster::start(ClusterOptions { controller_manager: false, ..ClusterOptions::new("match") }).await.unwrap();
    let hook = webhook_on(&c).await;
    // The Credential goes through the webhook (CREATE is always judged); wait until the caches
    // synced and the webhook answers.
    eventually_async("webhook admits a Credential", Duration::from_secs(60), || async {
        c.kubectl_with(&["apply", "-f", "-"], Some(&credential(SYS, "aws").to_string()), Duration::from_secs(20))
            .await
            .ok()
            .filter(|o| o.success())
    })
    .await;
    let updates_before = validating_calls(&c, "UPDATE").await;

    // Label, annotation and finalizer updates: no call.
    c.kubectl_ok(&["label", "credential", "aws", "-n", SYS, "team=a"], None).await.unwrap();
    c.kubectl_ok(&["annotate", "credential", "aws", "-n", SYS, "note=x"], None).await.unwrap();
    c.kubectl_ok(
        &[
            "patch",
            "credential",
            "aws",
            "-n",
            SYS,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
        ],
        None,
    )
    .await
    .unwrap();
    assert_eq!(validating_calls(&c, "UPDATE").await, updates_before, "metadata-only updates called the webhook");
    let exclusions = metric_sum(
        &c.metrics().await.unwrap(),
        "apiserver_admission_match_condition_exclusions_total",
        &[("name", "validate.credential-guard.k0rdent.mirantis.com")],
    );
    assert!(exclusions >= 3.0, "the apiserver counts the skipped calls: {exclusions}");

    // A spec change is judged.
    c.kubectl_ok(
        &["patch", "credential", "aws", "-n", SYS, "--type=merge", "-p", r#"{"spec":{"description":"d"}}"#],
        None,
    )
    .await
    .unwrap();
    assert_eq!(validating_calls(&c, "UPDATE").await, updates_before + 1.0, "a spec change must be judged");

    // CEL rules and schema patterns of the CRDs refuse before the webhook is asked.
    let creates_before = validating_calls(&c, "CREATE").await;
    let both = format!(
        "apiVersion: {API}\nkind: Region\nmetadata: {{name: both}}\nspec:\n  kubeConfig: {{name: k}}\n  clusterDeployment: {{name: cd, namespace: {SYS}}}\n"
    );
    let out = c.kubectl_with(&["apply", "-f", "-"], Some(&both), Duration::from_secs(20)).await.unwrap();
    assert!(
        !out.success() && out.stderr.contains("exactly one of kubeConfig or clusterDeployment must be set"),
        "{}",
        out.stderr
    );
    let dotted = format!(
        "apiVersion: {API}\nkind: ProviderInterface\nmetadata: {{name: dotted}}\nspec:\n  clusterIdentities:\n  - {{group: g, version: v1, kind: K, references: [{{group: '', version: v1, kind: Secret, nameFieldPath: .spec.x}}]}}\n"
    );
    let out = c.kubectl_with(&["apply", "-f", "-"], Some(&dotted), Duration::from_secs(20)).await.unwrap();
    assert!(!out.success() && out.stderr.contains("nameFieldPath"), "{}", out.stderr);
    let moved = c
        .kubectl_with(
            &["patch", "credential", "aws", "-n", SYS, "--type=merge", "-p", r#"{"spec":{"region":"r9"}}"#],
            None,
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    // Adding a region passes KCM's transition rule (the CEL hole the webhook closes): it is judged.
    assert!(!moved.success(), "{}", moved.stdout);
    assert_eq!(validating_calls(&c, "CREATE").await, creates_before, "the webhook saw objects the schema refused");
    drop(hook);
}
