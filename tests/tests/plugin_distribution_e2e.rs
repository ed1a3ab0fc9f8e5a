//! `kubectl credential wait`, the distribution mode in `explain` and `plan`, orphan records, Warning
//! Events, the regional server and the ClusterDeployments' readiness, through the real kubectl on
//! the example estate served by real kube-apiservers (support::plugin).
//!
//! No webhook runs here: the tests write what credential-guard's distribution leader publishes (the
//! Lease with the mode annotations, the orphan records, our condition and trigger annotation) and
//! play KCM's part by hand where a copy must change, so each output is checked against a known state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use credential_core::distribution::{DISTRIBUTION_LEASE, Mode, ORPHANED_COPIES, OrphanOwner, OrphanRecord};
use credential_core::model::labels;
use serde_json::{Value, json};
use support::plugin::{Estate, SYS};
use support::real::{get, seed_yaml};

/// The Lease credential-guard's distribution leader publishes the mode on.
fn lease(mode: &str, reason: &str) -> String {
    format!(
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: {DISTRIBUTION_LEASE}\n  namespace: {SYS}\n  \
         annotations:\n    {}: {mode}\n    {}: \"{reason}\"\nspec: {{holderIdentity: credential-webhook-0}}\n",
        labels::MODE_ANNOTATION,
        labels::MODE_REASON_ANNOTATION
    )
}

/// KCM's Management and Release CRDs (not among the examples), a Management `kcm` on `release`, and
/// that Release with `version`.
fn kcm_objects(release: &str, version: &str) -> String {
    let crd = |kind: &str, plural: &str| {
        format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: {plural}.k0rdent.mirantis.com}}\n\
             spec:\n  group: k0rdent.mirantis.com\n  scope: Cluster\n  names: {{kind: {kind}, plural: {plural}, singular: {}, listKind: {kind}List}}\n  \
             versions:\n  - name: v1beta1\n    served: true\n    storage: true\n    subresources: {{status: {{}}}}\n    \
             schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}\n---\n",
            kind.to_lowercase()
        )
    };
    format!(
        "{}{}apiVersion: k0rdent.mirantis.com/v1beta1\nkind: Management\nmetadata: {{name: kcm}}\nspec: {{release: {release}}}\n\
         status: {{release: {release}}}\n---\napiVersion: k0rdent.mirantis.com/v1beta1\nkind: Release\nmetadata: {{name: {release}}}\n\
         spec: {{version: {version}}}\n",
        crd("Management", "managements"),
        crd("Release", "releases")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_distributed_follows_a_rotation_and_names_what_lags() {
    let estate = Estate::start().await;
    // In sync: met at once, kubectl wait's line.
    let run = estate.kubectl(&["credential", "wait", "aws-region1-cred", "--for=distributed", "--timeout=20s"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "credential.k0rdent.mirantis.com/aws-region1-cred condition met\n");

    // A stale copy: timeout, exit 1, the Region, the object and which keys differ; never a value.
    let run = estate.kubectl(&["credential", "wait", "aws-stale-cred", "--for=distributed", "--timeout=1s"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.starts_with("error: timed out waiting for the condition on credentials/aws-stale-cred\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "copies in region region1 differ from their sources: Secret kcm-system/aws-rotated-identity-secret: data \
             differs (keys: SecretAccessKey)"
        ),
        "{}",
        run.stderr
    );
    estate.assert_no_secrets(&run.stderr);

    // A rotation: the source Secret changes; until the region holds the new content, wait lags.
    estate
        .mgmt
        .kubectl_ok(
            &[
                "patch",
                "secret",
                "aws-cluster-identity-secret",
                "-n",
                SYS,
                "--type=merge",
                "-p",
                r#"{"stringData":{"SecretAccessKey":"EXAMPLE-ROTATED-1"}}"#,
            ],
            None,
        )
        .await
        .unwrap();
    let run = estate.kubectl(&["credential", "wait", "aws-region1-cred", "--for=distributed", "--timeout=1s"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("Secret kcm-system/aws-cluster-identity-secret: data differs (keys: SecretAccessKey)"));
    // Waiting while the copy is brought up to date (KCM's part, played here: GET the source, UPDATE
    // the regional copy with its content) ends with the condition met.
    // A name that does not exist fails at once with kubectl's NotFound, exit 1.
    let run = estate.kubectl(&["credential", "wait", "credential/aws-region1-cred", "nope", "--for=distributed"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.starts_with("Error from server (NotFound)"), "{}", run.stderr);
    // Waiting while the copy is brought up to date (KCM's part, played here: GET the source, UPDATE
    // the regional copy with its content) ends with the condition met.
    let dir = estate.dir.path().to_path_buf();
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let waiting = tokio::process::Command::new(std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()))
        .args(["credential", "wait", "aws-region1-cred", "-n", SYS, "--for=distributed", "--timeout=60s"])
        .env("PATH", &path)
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .kill_on_drop(true)
        .output();
    let waiting = tokio::spawn(waiting);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let source = get(&estate.mgmt, "secret", Some(SYS), "aws-cluster-identity-secret").await.unwrap();
    let patch = json!({"data": source["data"]}).to_string();
    estate.regions[0]
        .kubectl_ok(&["patch", "secret", "aws-cluster-identity-secret", "-n", SYS, "--type=merge", "-p", &patch], None)
        .await
        .unwrap();
    let out = waiting.await.unwrap().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "credential.k0rdent.mirantis.com/aws-region1-cred condition met\n"
    );

    // --for=ready: explain's verdict; several names; a definite failure is named.
    let run = estate.kubectl(&["credential", "wait", "azure-cred", "aws-region1-cred", "--for", "ready"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout.lines().count(), 2, "{}", run.stdout);
    let run = estate.kubectl(&["credential", "wait", "aws-region9-cred", "--for=ready", "--timeout=0"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("  NOT READY: Region region9 does not exist\n"), "{}", run.stderr);
    // -l: the server selects, once; names in order. --all: every Credential of the namespace.
    let label = estate.kubectl(&["label", "credential", "azure-cred", "aws-region1-cred", "team=a"]).await;
    assert_eq!(label.code, 0, "{label:?}");
    let run = estate.kubectl(&["credential", "wait", "-l", "team=a", "--for=ready", "--timeout=10s"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        "credential.k0rdent.mirantis.com/aws-region1-cred condition met\n\
         credential.k0rdent.mirantis.com/azure-cred condition met\n"
    );
    let run = estate.kubectl(&["credential", "wait", "-l", "team=b", "--for=ready"]).await;
    assert_eq!((run.code, run.stderr.as_str()), (1, "error: no matching resources found\n"), "{run:?}");
    let run = estate.kubectl(&["credential", "wait", "--all", "--for=ready", "--timeout=0"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("credential.k0rdent.mirantis.com/azure-cred condition met\n"), "{}", run.stdout);
    assert!(
        run.stderr.contains("error: timed out waiting for the condition on credentials/aws-region9-cred\n"),
        "{}",
        run.stderr
    );
    // explain -w waits for READY, then prints the report.
    let run = estate.kubectl(&["credential", "explain", "aws-region1-cred", "-w", "--timeout=10s"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("Credential kcm-system/aws-region1-cred is READY\n"), "{}", run.stdout);

    // The region goes away: UNKNOWN, said as such.
    estate.regions[0].stop().await;
    let run = estate.kubectl(&["credential", "wait", "aws-region1-cred", "--for=distributed", "--timeout=0"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("  UNKNOWN: region region1: regional API unreachable: "), "{}", run.stderr);
    // A usage error: --for takes ready or distributed.
    let run = estate.kubectl(&["credential", "wait", "x", "--for=condition=Ready"]).await;
    assert_eq!(run.code, 2, "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_and_plan_say_who_copies_and_what_else_an_operator_looks_for() {
    let estate = Estate::start().await;
    // No Lease: the mode is unknown; what auto would choose comes from KCM's Management and Release.
    seed_yaml(&estate.mgmt, &kcm_objects("kcm-1-5-0", "1.5.0")).await;
    let run = estate.kubectl(&["credential", "explain", "aws-region1-cred"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains(&format!(
            "[warn] Distribution        mode unknown: Lease {SYS}/{DISTRIBUTION_LEASE} does not exist"
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("auto would choose trigger: KCM 1.5.0 (from Release kcm-1-5-0) copies cluster identities"),
        "{}",
        run.stdout
    );

    // The leader publishes trigger mode; our condition says Drifted; the Credential carries the trigger.
    seed_yaml(
        &estate.mgmt,
        &lease("trigger", "auto: KCM 1.5.0 (from Release kcm-1-5-0) copies cluster identities itself"),
    )
    .await;
    estate
        .mgmt
        .kubectl_ok(
            &[
                "annotate",
                "credential",
                "aws-stale-cred",
                "-n",
                SYS,
                &format!("{}=0123456789abcdef01234567", labels::TRIGGER_ANNOTATION),
            ],
            None,
        )
        .await
        .unwrap();
    let status = json!({"status": {"conditions": [
        {"type": "CredentialReady", "status": "True", "reason": "Succeeded", "message": "Credential is ready", "lastTransitionTime": "2025-09-26T11:15:57Z"},
        {"type": labels::DISTRIBUTED_CONDITION, "status": "False", "reason": "Drifted", "lastTransitionTime": "2025-10-01T11:00:00Z",
         "message": "copies in region region1 differ from their sources: Secret kcm-system/aws-rotated-identity-secret: data differs (keys: SecretAccessKey)"}]}});
    estate
        .mgmt
        .kubectl_ok(
            &["patch", "credential", "aws-stale-cred", "-n", SYS, "--type=merge", "-p", &status.to_string()],
            None,
        )
        .await
        .unwrap();
    // A Warning Event of the Credential, and an orphan record for it.
    seed_yaml(
        &estate.mgmt,
        &format!(
            "apiVersion: v1\nkind: Event\nmetadata: {{name: aws-stale-cred.1, namespace: {SYS}}}\n\
             involvedObject: {{apiVersion: k0rdent.mirantis.com/v1beta1, kind: Credential, name: aws-stale-cred, namespace: {SYS}}}\n\
             type: Warning\nreason: CopyDrifted\nmessage: \"the copy of Secret kcm-system/aws-rotated-identity-secret in region1 differs\"\n\
             count: 3\nfirstTimestamp: \"2025-10-01T10:00:00Z\"\nlastTimestamp: \"2025-10-01T11:00:00Z\"\nsource: {{component: credential-guard}}\n"
        ),
    )
    .await;
    let record = OrphanRecord {
        credential: OrphanOwner { namespace: SYS.into(), name: "aws-stale-cred".into() },
        cluster: "region region9".into(),
        objects: vec!["Secret kcm-system/aws-rotated-identity-secret".into()],
        reason: "Region region9 was deleted before the copies were released".into(),
        since: "2025-10-01T09:00:00Z".into(),
    };
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ORPHANED_COPIES, "namespace": SYS},
        "data": {format!("region.region9.{SYS}.aws-stale-cred"): serde_json::to_string(&record).unwrap()}});
    seed_yaml(&estate.mgmt, &cm.to_string()).await;

    let run = estate.kubectl(&["credential", "explain", "aws-stale-cred"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let text = &run.stdout;
    assert!(text.contains("[warn] Distribution        mode trigger: KCM copies the cluster identities;"), "{text}");
    assert!(
        text.contains("KCM's copies in region region1: Drifted (condition ClusterIdentitiesDistributed)"),
        "{text}"
    );
    assert!(
        text.contains("credential-guard.k0rdent.mirantis.com/sources-digest=0123456789abcdef01234567 (KCM"),
        "{text}"
    );
    assert!(
        text.contains("[warn] Events              1 Warning Event: CopyDrifted  since 2025-10-01T11:00:00Z (60m ago)"),
        "{text}"
    );
    assert!(text.contains("2025-10-01T11:00:00Z  CopyDrifted (x3): the copy of Secret"), "{text}");
    assert!(
        text.contains("[warn] Orphaned copies     1 record of copies that may remain with nobody to release them"),
        "{text}"
    );
    estate.assert_no_secrets(text);
    // The same as JSON: the mode, the regional server and its version, rows with codes.
    let run = estate.kubectl(&["credential", "explain", "aws-stale-cred", "-o", "json"]).await;
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["distribution"]["mode"], "trigger");
    assert_eq!(v["distribution"]["whoCopies"], Mode::Trigger.who_copies());
    assert_eq!(v["regionalServer"]["url"], estate.regions[0].server());
    assert!(v["regionalServer"]["version"].as_str().unwrap().starts_with("v1."), "{}", v["regionalServer"]);
    let codes: Vec<&str> = v["checks"].as_array().unwrap().iter().map(|c| c["code"].as_str().unwrap()).collect();
    assert_eq!(
        codes,
        [
            "credential",
            "events",
            "identity-ref",
            "region",
            "regional-cluster",
            "crd",
            "provider-interface",
            "identity",
            "distribution",
            "copies",
            "orphaned-copies",
            "cluster-deployments"
        ]
    );
    // --show-only-failing: what passed is gone, the failures and warnings stay.
    let run = estate.kubectl(&["credential", "explain", "aws-stale-cred", "--show-only-failing"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(!run.stdout.contains("identityRef") && !run.stdout.contains("[ok]   Region"), "{}", run.stdout);
    assert!(run.stdout.contains("[FAIL] Copies") && run.stdout.contains("Fix:"), "{}", run.stdout);
    let run = estate.kubectl(&["credential", "explain", "--show-only-failing"]).await;
    assert!(!run.stdout.lines().any(|l| l.split_whitespace().nth(1) == Some("Ready")), "{}", run.stdout);

    // A ClusterDeployment's readiness.
    estate
        .mgmt
        .kubectl_ok(
            &["patch", "clusterdeployment", "aws-prod-eu", "-n", SYS, "--type=merge", "-p",
              r#"{"status":{"conditions":[{"type":"Ready","status":"False","reason":"Provisioning","message":"waiting for the control plane","lastTransitionTime":"2025-10-01T11:30:00Z"}]}}"#],
            None,
        )
        .await
        .unwrap();
    let run = estate.kubectl(&["credential", "explain", "aws-region1-cred"]).await;
    assert!(
        run.stdout
            .contains("[warn] ClusterDeployment  kcm-system/aws-prod-eu  Ready=False: waiting for the control plane"),
        "{}",
        run.stdout
    );

    // orphans: kubectl conventions (a table; -o json), exit 1 while records exist.
    let run = estate.kubectl(&["credential", "orphans"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["CLUSTER", "CREDENTIAL", "OBJECTS", "SINCE", "REASON"]
    );
    assert!(
        lines[1]
            .starts_with("region region9   kcm-system/aws-stale-cred   Secret kcm-system/aws-rotated-identity-secret"),
        "{}",
        run.stdout
    );
    let run = estate.kubectl(&["credential", "orphans", "-o", "json"]).await;
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["records"][0], serde_json::to_value(&record).unwrap());
    let run = estate.kubectl(&["credential", "orphans", "--webhook-namespace", "elsewhere"]).await;
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{run:?}");
    assert!(run.stderr.starts_with("No orphaned copies recorded"), "{}", run.stderr);

    // plan in trigger mode: KCM writes these copies, with its labels.
    let run = estate.kubectl(&["credential", "plan", "aws-uncopied-cred"]).await;
    assert!(
        run.stdout.contains(
            "Distribution mode trigger: KCM writes these copies on its next reconcile, which credential-guard triggers"
        ),
        "{}",
        run.stdout
    );
    let run = estate.kubectl(&["credential", "plan", "aws-uncopied-cred", "-o", "json"]).await;
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["writer"], "kcm");
    assert_eq!(
        v["copies"][0]["object"]["metadata"]["labels"],
        json!({"k0rdent.mirantis.com/managed": "true", format!("k0rdent.mirantis.com/credential.{SYS}.aws-uncopied-cred"): "true"})
    );
    estate.assert_no_secrets(&run.stdout);
    // write mode: credential-guard writes.
    estate.mgmt.apply(&lease("write", "mode write set")).await.unwrap();
    let run = estate.kubectl(&["credential", "plan", "aws-uncopied-cred"]).await;
    assert!(
        run.stdout.contains("Distribution mode write: credential-guard writes these copies on every source change"),
        "{}",
        run.stdout
    );
}
