//! Real `kubectl` (on PATH, or `$KUBECTL`) driving the emulator. Every test has its own emulator (free port),
//! kubeconfig and kubectl cache dir, and bounds every wait.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use credential_e2e::{Emulator, KubectlOutput};
use serde_json::Value;

async fn kubectl(emu: &Emulator, args: &[&str]) -> KubectlOutput {
    emu.kubectl(args).await.expect("kubectl runs")
}

async fn apply(emu: &Emulator, yaml: &str, extra: &[&str]) -> KubectlOutput {
    let mut args = vec!["apply", "-f", "-"];
    args.extend_from_slice(extra);
    emu.kubectl_with(&args, Some(yaml), Duration::from_secs(30)).await.expect("kubectl runs")
}

fn ok(out: &KubectlOutput) {
    assert!(out.success(), "kubectl failed: {:?}\nstdout: {}\nstderr: {}", out.code, out.stdout, out.stderr);
}

const CREDENTIAL: &str = "apiVersion: k0rdent.mirantis.com/v1beta1
kind: Credential
metadata:
  name: aws-cred
  namespace: kcm-system
spec:
  identityRef:
    apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
    kind: AWSClusterStaticIdentity
    name: aws-identity
  description: first
";

#[tokio::test]
async fn client_side_apply_get_and_delete() {
    let emu = Emulator::builder().crds(true).start().await.unwrap();
    ok(&kubectl(&emu, &["create", "namespace", "kcm-system"]).await);
    let out = apply(&emu, CREDENTIAL, &[]).await;
    ok(&out);
    assert!(out.stdout.contains("credential.k0rdent.mirantis.com/aws-cred created"), "{}", out.stdout);
    assert_eq!(apply(&emu, CREDENTIAL, &[]).await.stdout.trim(), "credential.k0rdent.mirantis.com/aws-cred unchanged");

    let out = apply(&emu, &CREDENTIAL.replace("first", "second"), &[]).await;
    ok(&out);
    assert!(out.stdout.contains("configured"), "{}", out.stdout);
    let stored = emu.get("k0rdent.mirantis.com/v1beta1", "Credential", Some("kcm-system"), "aws-cred").unwrap();
    assert_eq!(stored["spec"]["description"], "second");
    assert_eq!(stored["metadata"]["generation"], 2);
    // kubectl sends a JSON merge patch for custom resources.
    assert_eq!(emu.request_count("patch", "credentials"), 1);

    let out = kubectl(&emu, &["get", "cred", "aws-cred", "-n", "kcm-system", "-o", "yaml"]).await;
    ok(&out);
    assert!(out.stdout.contains("kind: Credential") && out.stdout.contains("description: second"), "{}", out.stdout);

    let out = kubectl(&emu, &["get", "credential", "missing", "-n", "kcm-system"]).await;
    assert!(!out.success());
    assert!(
        out.stderr.contains(r#"Error from server (NotFound): credentials.k0rdent.mirantis.com "missing" not found"#),
        "{}",
        out.stderr
    );

    let out = kubectl(&emu, &["delete", "credential", "aws-cred", "-n", "kcm-system", "--timeout=10s"]).await;
    ok(&out);
    assert!(out.stdout.contains("deleted"), "{}", out.stdout);
    assert!(emu.get("k0rdent.mirantis.com/v1beta1", "Credential", Some("kcm-system"), "aws-cred").is_none());
}

#[tokio::test]
async fn builtin_kinds_use_strategic_merge_patch() {
    let emu = Emulator::start().await.unwrap();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  labels: {a: '1'}\ndata:\n  x: '1'\n  y: '2'\n";
    ok(&apply(&emu, cm, &[]).await);
    // Dropping a key from the manifest removes it (kubectl computes the three-way patch with $retainKeys etc.).
    let out = apply(&emu, &cm.replace("  y: '2'\n", ""), &[]).await;
    ok(&out);
    let stored = emu.get("v1", "ConfigMap", Some("default"), "cfg").unwrap();
    assert_eq!(stored["data"], serde_json::json!({"x": "1"}));
    assert_eq!(emu.request_count("patch", "configmaps"), 1);
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  token: abc\n";
    ok(&apply(&emu, secret, &[]).await);
    let stored = emu.get("v1", "Secret", Some("default"), "s").unwrap();
    assert_eq!(stored["data"]["token"], "YWJj");
    assert!(stored.get("stringData").is_none());
}

#[tokio::test]
async fn server_side_apply_conflicts_and_force() {
    let emu = Emulator::start().await.unwrap();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\ndata:\n  key: one\n";
    let out = apply(&emu, cm, &["--server-side"]).await;
    ok(&out);
    assert!(out.stdout.contains("configmap/owned serverside-applied"), "{}", out.stdout);
    let stored = emu.get("v1", "ConfigMap", Some("default"), "owned").unwrap();
    assert_eq!(stored["metadata"]["managedFields"][0]["manager"], "kubectl");
    assert_eq!(stored["metadata"]["managedFields"][0]["operation"], "Apply");

    let other = cm.replace("one", "two");
    let out = apply(&emu, &other, &["--server-side", "--field-manager", "other-team"]).await;
    assert!(!out.success());
    assert!(out.stderr.contains(r#"conflict with "kubectl""#) && out.stderr.contains(".data.key"), "{}", out.stderr);
    assert_eq!(emu.get("v1", "ConfigMap", Some("default"), "owned").unwrap()["data"]["key"], "one");

    let out = apply(&emu, &other, &["--server-side", "--field-manager", "other-team", "--force-conflicts"]).await;
    ok(&out);
    let stored = emu.get("v1", "ConfigMap", Some("default"), "owned").unwrap();
    assert_eq!(stored["data"]["key"], "two");
    let managers: Vec<&str> =
        stored["metadata"]["managedFields"].as_array().unwrap().iter().filter_map(|e| e["manager"].as_str()).collect();
    assert_eq!(managers, vec!["other-team"], "ownership moved to the forcing manager");
}

#[tokio::test]
async fn get_watch_streams_changes_until_the_request_timeout() {
    let emu = Emulator::start().await.unwrap();
    ok(&apply(&emu, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: before\n", &[]).await);
    let watch = emu.kubectl_with(
        &["get", "configmaps", "-w", "-o", "name", "--request-timeout=4s"],
        None,
        Duration::from_secs(15),
    );
    let writer = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        ok(&apply(&emu, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: during\n", &[]).await);
    };
    let (out, ()) = tokio::join!(watch, writer);
    let out = out.unwrap();
    assert!(out.code.is_some(), "the watch ended by its own timeout, not by the kill: {}", out.stderr);
    assert!(out.stdout.contains("configmap/before"), "{}", out.stdout);
    assert!(out.stdout.contains("configmap/during"), "{}", out.stdout);
    assert_eq!(emu.request_count("watch", "configmaps"), 1);
}

#[tokio::test]
async fn wait_for_crd_established_then_use_the_new_kind() {
    let emu = Emulator::start().await.unwrap();
    let crd = credential_e2e::crds::CRD_FILES.iter().find(|(f, _)| f.contains("regions")).unwrap().1;
    ok(&apply(&emu, crd, &[]).await);
    let out =
        kubectl(&emu, &["wait", "--for", "condition=established", "crd/regions.k0rdent.mirantis.com", "--timeout=10s"])
            .await;
    ok(&out);
    assert!(out.stdout.contains("condition met"), "{}", out.stdout);
    let region = "apiVersion: k0rdent.mirantis.com/v1beta1\nkind: Region\nmetadata:\n  name: eu\nspec: {}\nstatus:\n  ready: true\n";
    ok(&apply(&emu, region, &[]).await);
    let stored = emu.get("k0rdent.mirantis.com/v1beta1", "Region", None, "eu").unwrap();
    assert!(stored.get("status").is_none(), "status subresource: a main-resource create drops .status");
    let out = kubectl(&emu, &["get", "rgn", "-o", "name"]).await;
    assert_eq!(out.stdout.trim(), "region.k0rdent.mirantis.com/eu");

    // Deleting the CRD removes its objects and the kind.
    ok(&kubectl(&emu, &["delete", "crd", "regions.k0rdent.mirantis.com", "--timeout=10s"]).await);
    assert!(emu.list("k0rdent.mirantis.com/v1beta1", "Region", None).is_empty());
    let out = kubectl(&emu, &["get", "regions.k0rdent.mirantis.com"]).await;
    assert!(!out.success());
}

#[tokio::test]
async fn server_dry_run_stores_nothing() {
    let emu = Emulator::builder().crds(true).start().await.unwrap();
    let rv = emu.resource_version();
    let out = apply(&emu, &CREDENTIAL.replace("kcm-system", "default"), &["--dry-run=server"]).await;
    ok(&out);
    assert!(out.stdout.contains("created (server dry run)"), "{}", out.stdout);
    assert!(emu.get("k0rdent.mirantis.com/v1beta1", "Credential", Some("default"), "aws-cred").is_none());
    assert_eq!(emu.resource_version(), rv, "a dry run writes nothing");
    let out = kubectl(&emu, &["delete", "namespace", "default", "--dry-run=server"]).await;
    ok(&out);
    assert!(emu.get("v1", "Namespace", None, "default").is_some());
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let emu = Emulator::start().await.unwrap();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [emulator.test/hold]\n";
    ok(&apply(&emu, cm, &[]).await);
    ok(&kubectl(&emu, &["delete", "configmap", "held", "--wait=false"]).await);
    let stored = emu.get("v1", "ConfigMap", Some("default"), "held").unwrap();
    assert!(stored["metadata"]["deletionTimestamp"].is_string());
    let out =
        kubectl(&emu, &["patch", "configmap", "held", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#])
            .await;
    ok(&out);
    assert!(emu.get("v1", "ConfigMap", Some("default"), "held").is_none());

    // Deleting a namespace deletes what is inside it.
    ok(&kubectl(&emu, &["create", "namespace", "doomed"]).await);
    ok(&kubectl(&emu, &["create", "configmap", "inside", "-n", "doomed"]).await);
    ok(&kubectl(&emu, &["delete", "namespace", "doomed", "--timeout=10s"]).await);
    assert!(emu.get("v1", "Namespace", None, "doomed").is_none());
    assert!(emu.list("v1", "ConfigMap", Some("doomed")).is_empty());
    let out = kubectl(&emu, &["create", "configmap", "x", "-n", "doomed"]).await;
    assert!(out.stderr.contains(r#"namespaces "doomed" not found"#), "{}", out.stderr);
}

#[tokio::test]
async fn selectors_through_kubectl() {
    let emu = Emulator::builder()
        .seed_yaml(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: n1, labels: {tier: web}}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: n2, labels: {tier: db}}\n",
        )
        .start()
        .await
        .unwrap();
    let out = kubectl(&emu, &["get", "cm", "-A", "-l", "tier in (web,cache)", "-o", "name"]).await;
    assert_eq!(out.stdout.trim(), "configmap/a");
    let out = kubectl(&emu, &["get", "cm", "-A", "--field-selector", "metadata.namespace=n2", "-o", "name"]).await;
    assert_eq!(out.stdout.trim(), "configmap/b");
    let out = kubectl(&emu, &["get", "cm", "-A", "-o", "json"]).await;
    let list: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn several_clusters_in_one_kubeconfig() {
    let mgmt = Emulator::builder().context_name("mgmt").start().await.unwrap();
    let region = Emulator::builder().context_name("region-eu").start().await.unwrap();
    region.seed_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: only-in-region}\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, credential_e2e::kubeconfig_yaml(&[&mgmt, &region], "mgmt")).unwrap();
    let cache = dir.path().join("cache");
    let run = |ctx: &'static str| {
        let (path, cache) = (path.clone(), cache.clone());
        async move {
            credential_e2e::run_kubectl(
                &path,
                &cache,
                &["--context", ctx, "get", "cm", "-o", "name"],
                None,
                Duration::from_secs(20),
            )
            .await
            .unwrap()
        }
    };
    assert_eq!(run("region-eu").await.stdout.trim(), "configmap/only-in-region");
    assert_eq!(run("mgmt").await.stdout.trim(), "");
    assert_eq!(mgmt.request_count("list", "configmaps"), 1);
    assert_eq!(region.request_count("list", "configmaps"), 1);
}

#[tokio::test]
async fn the_binary_prints_a_kubeconfig_and_serves_seeds() {
    use tokio::io::AsyncBufReadExt as _;
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.yaml");
    std::fs::write(&seed, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: seeded, namespace: demo}\n").unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-emulator"))
        .args(["--port", "0", "--crds", "--seed"])
        .arg(&seed)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let path = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await.unwrap().unwrap().unwrap();
    let out = credential_e2e::run_kubectl(
        std::path::Path::new(&path),
        &dir.path().join("cache"),
        &["get", "cm,crd", "-A", "-o", "name"],
        None,
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert!(out.success(), "{}", out.stderr);
    assert!(out.stdout.contains("configmap/seeded"), "{}", out.stdout);
    assert!(out.stdout.contains("customresourcedefinition.apiextensions.k8s.io/credentials.k0rdent.mirantis.com"));
    child.kill().await.unwrap();
}

#[tokio::test]
async fn get_prints_server_side_columns() {
    let emu = Emulator::start().await.unwrap();
    let crd = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Detail, type: string, jsonPath: .spec.detail, priority: 1}
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#;
    ok(&apply(&emu, crd, &[]).await);
    ok(&apply(
        &emu,
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3, detail: hi}\n",
        &[],
    )
    .await);
    let status = r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#;
    ok(&kubectl(&emu, &["patch", "widget", "w1", "--subresource=status", "--type=merge", "-p", status]).await);
    let out = kubectl(&emu, &["get", "widgets"]).await;
    ok(&out);
    let lines: Vec<Vec<&str>> = out.stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines, vec![vec!["NAME", "READY", "SIZE"], vec!["w1", "True", "3"]], "{}", out.stdout);
    let out = kubectl(&emu, &["get", "widgets", "-o", "wide"]).await;
    assert!(out.stdout.contains("DETAIL") && out.stdout.contains("hi"), "{}", out.stdout);
    ok(&kubectl(&emu, &["create", "configmap", "c", "--from-literal=a=1", "--from-literal=b=2"]).await);
    let out = kubectl(&emu, &["get", "configmap", "c"]).await;
    let row: Vec<&str> = out.stdout.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    assert_eq!(row[..2], ["c", "2"], "{}", out.stdout);
}
