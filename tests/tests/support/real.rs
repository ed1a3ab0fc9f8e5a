//! Fixtures for the suites that run on the real control plane (`credential_e2e::cluster`,
//! tests/kube-test-cluster): starting clusters (start time and apiserver RSS reported on stderr),
//! seeding objects as they would stand in a cluster (CRDs established first, `.status` through the
//! status subresource), the webhook with its shipped identity and configurations, the example estate,
//! reading objects back, and request counts from the apiserver's own `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use credential_e2e::cluster::{metric_sum, shipped_rbac_yaml, shipped_webhook_configurations};
use credential_e2e::{ClusterOptions, KubeCluster};
use serde_json::{Value, json};

use super::{LiveWebhook, SYS, start_live_webhook};

/// The shipped ServiceAccount of the webhook (deploy/base/serviceaccount.yaml).
pub const WEBHOOK_SA: &str = "credential-webhook";

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Starts a cluster named `name` (with kube-controller-manager and the test CRDs of tests/crds/ when
/// asked) and prints how long it took and the apiserver's resident memory.
pub async fn start_cluster(name: &str, controller_manager: bool, crds: bool) -> KubeCluster {
    let started = Instant::now();
    let c = KubeCluster::start(ClusterOptions { controller_manager, crds, ..ClusterOptions::new(name) })
        .await
        .unwrap_or_else(|e| panic!("cluster {name} did not start: {e}"));
    eprintln!(
        "kube-test-cluster {name}: ready in {:.2} s (controller-manager: {controller_manager}, CRDs: {crds}), \
         apiserver VmRSS {} kB",
        started.elapsed().as_secs_f64(),
        c.apiserver_rss_kib().map_or_else(|| "?".to_string(), |kb| kb.to_string()),
    );
    c
}

/// The documents of a YAML stream as JSON values (comments and empty documents dropped).
pub fn documents(yaml: &str) -> Vec<Value> {
    let mut docs = vec![String::new()];
    for line in yaml.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else if let Some(last) = docs.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    docs.iter().filter_map(|d| serde_saphyr::from_str::<Value>(d).ok()).filter(|v| v.get("kind").is_some()).collect()
}

fn stream(objects: &[&Value]) -> String {
    objects.iter().map(|o| format!("---\n{o}\n")).collect()
}

/// `kind.group` as kubectl names it (`region.k0rdent.mirantis.com`, `secret`).
pub fn resource_of(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or_default().to_lowercase();
    match object["apiVersion"].as_str().unwrap_or_default().split_once('/') {
        Some((group, _)) => format!("{kind}.{group}"),
        None => kind,
    }
}

/// Stores `objects` as a cluster would hold them: CRDs first (waited until Established), then
/// Namespaces, then the rest with `kubectl create` (no last-applied annotation), then each `.status`
/// the server ignored on create (CRDs with a status subresource) written through `/status`.
/// Server-set metadata (`generation`, `resourceVersion`, ...) is the server's.
pub async fn seed(c: &KubeCluster, objects: &[Value]) {
    let is = |o: &Value, kind: &str| o["kind"] == kind;
    let crds: Vec<&Value> = objects.iter().filter(|o| is(o, "CustomResourceDefinition")).collect();
    if !crds.is_empty() {
        c.kubectl_ok(&["create", "-f", "-"], Some(&stream(&crds))).await.unwrap();
        let names: Vec<String> =
            crds.iter().map(|o| format!("crd/{}", o["metadata"]["name"].as_str().unwrap())).collect();
        let mut args = vec!["wait", "--for=condition=Established", "--timeout=60s"];
        args.extend(names.iter().map(String::as_str));
        c.kubectl_ok(&args, None).await.unwrap();
    }
    let namespaces: Vec<&Value> = objects.iter().filter(|o| is(o, "Namespace")).collect();
    if !namespaces.is_empty() {
        c.apply(&stream(&namespaces)).await.unwrap();
    }
    let rest: Vec<&Value> =
        objects.iter().filter(|o| !is(o, "CustomResourceDefinition") && !is(o, "Namespace")).collect();
    if rest.is_empty() {
        return;
    }
    c.kubectl_ok(&["create", "-f", "-"], Some(&stream(&rest))).await.unwrap();
    let with_status: Vec<&Value> = rest.iter().copied().filter(|o| o.get("status").is_some()).collect();
    if with_status.is_empty() {
        return;
    }
    let stored = c.kubectl_ok(&["get", "-f", "-", "-o", "json"], Some(&stream(&with_status))).await.unwrap();
    let stored: Value = serde_json::from_str(&stored).unwrap();
    let stored = stored["items"].as_array().cloned().unwrap_or_else(|| vec![stored]);
    for (want, have) in with_status.iter().zip(&stored) {
        if want["status"] != have["status"] {
            write_status(c, want, &want["status"]).await;
        }
    }
}

/// Merges `status` into `object`'s status through the status subresource (as its controller would).
pub async fn write_status(c: &KubeCluster, object: &Value, status: &Value) {
    let resource = resource_of(object);
    let name = object["metadata"]["name"].as_str().unwrap();
    let patch = json!({ "status": status }).to_string();
    let mut args = vec!["patch", &resource, name, "--subresource=status", "--type=merge", "-p", &patch];
    if let Some(ns) = object["metadata"]["namespace"].as_str() {
        args.extend(["-n", ns]);
    }
    c.kubectl_ok(&args, None).await.unwrap();
}

/// Seeds the objects of the YAML stream `yaml`.
pub async fn seed_yaml(c: &KubeCluster, yaml: &str) {
    seed(c, &documents(yaml)).await;
}

/// The stored object (`kubectl get -o json`), `None` when the server says NotFound.
pub async fn get(c: &KubeCluster, resource: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
    let mut args = vec!["get", resource, name, "-o", "json"];
    if let Some(ns) = namespace {
        args.extend(["-n", ns]);
    }
    let out = c.kubectl(&args).await.unwrap();
    if out.success() {
        return Some(serde_json::from_str(&out.stdout).unwrap());
    }
    assert!(out.stderr.contains("NotFound"), "kubectl get {resource} {name}: {}", out.stderr);
    None
}

/// The objects of the top-level YAML files of `examples/estate/<sub>` (`""`: the management
/// cluster's; `regions/region1`: that Region's), files in name order.
pub fn example_objects(sub: &str) -> Vec<Value> {
    let dir = workspace().join("examples/estate").join(sub);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files.iter().flat_map(|f| documents(&std::fs::read_to_string(f).unwrap())).collect()
}

/// Sets `data.value` of the Secret `namespace/name` among `objects` to `kubeconfig` (base64).
pub fn set_kubeconfig_secret(objects: &mut [Value], namespace: &str, name: &str, kubeconfig: &str) {
    let secret = objects
        .iter_mut()
        .find(|o| o["kind"] == "Secret" && o["metadata"]["namespace"] == namespace && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no Secret {namespace}/{name}"));
    secret["data"]["value"] = super::b64(kubeconfig).into();
}

/// Namespace `kcm-system` (the install does not create it), the shipped ServiceAccount and RBAC,
/// and a real token of that ServiceAccount (TokenRequest).
pub async fn shipped_webhook_token(c: &KubeCluster) -> String {
    c.apply(&format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {SYS}}}\n")).await.unwrap();
    c.apply(&shipped_rbac_yaml().await.unwrap()).await.unwrap();
    c.service_account_token(SYS, WEBHOOK_SA).await.unwrap()
}

/// credential-webhook in live mode in-process, reading `c` with exactly the shipped RBAC (the
/// kubeconfig of a real token of its ServiceAccount). Not yet registered: see [`register_shipped_webhook`].
pub async fn start_shipped_webhook(c: &KubeCluster) -> LiveWebhook {
    let token = shipped_webhook_token(c).await;
    start_live_webhook(&c.kubeconfig_yaml_for_token(&token)).await
}

/// The shipped Validating/MutatingWebhookConfigurations, only `clientConfig` pointing at `hook`.
pub async fn register_shipped_webhook(c: &KubeCluster, hook: &LiveWebhook) {
    c.apply(&shipped_webhook_configurations(&hook.base_url(), &hook.ca_pem).await.unwrap()).await.unwrap();
}

/// Samples of `apiserver_request_total` as `(verb, resource[/subresource]) -> count`, for the API
/// groups our clients use (k0rdent, Cluster API identities, CRDs) and core Secrets. The rest is the
/// control plane's own housekeeping (leases, flow control, system namespaces, ...), which runs on a
/// timer and would make counts flaky. Discovery and other non-resource paths are not counted by
/// the apiserver at all.
pub async fn resource_requests(c: &KubeCluster) -> BTreeMap<(String, String), f64> {
    let text = c.metrics().await.unwrap();
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else { continue };
        let Some((labels, value)) = rest.split_once("} ") else { continue };
        let label = |name: &str| {
            labels
                .split("\",")
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        let (group, resource) = (label("group"), label("resource"));
        let ours = ["k0rdent.mirantis.com", "infrastructure.cluster.x-k8s.io", "apiextensions.k8s.io"]
            .contains(&group.as_str())
            || (group.is_empty() && resource == "secrets");
        if !ours {
            continue;
        }
        let subresource = label("subresource");
        let key = if subresource.is_empty() { resource } else { format!("{resource}/{subresource}") };
        *counts.entry((label("verb"), key)).or_insert(0.0) += value.trim().parse::<f64>().unwrap_or(0.0);
    }
    counts
}

/// What changed between two [`resource_requests`] samples (only non-zero differences).
pub fn requests_between(
    before: &BTreeMap<(String, String), f64>,
    after: &BTreeMap<(String, String), f64>,
) -> BTreeMap<(String, String), f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d != 0.0)
        .collect()
}

/// The write verbs of `apiserver_request_total`.
pub const WRITE_VERBS: &[&str] = &["POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"];

/// Requests the apiserver refused before any handler: failed or erroring authentications (a wrong or
/// leaked token) and requests no authorizer allowed (anonymous or unprivileged). The control plane's
/// own traffic produces neither, so any change is a client's doing.
pub async fn refused_requests(c: &KubeCluster) -> f64 {
    let text = c.metrics().await.unwrap();
    ["failure", "error"].iter().map(|r| metric_sum(&text, "authentication_attempts", &[("result", r)])).sum::<f64>()
        + ["denied", "no-opinion"]
            .iter()
            .map(|r| metric_sum(&text, "authorization_attempts_total", &[("result", r)]))
            .sum::<f64>()
}

/// How many watches of `resource` the apiserver is serving now.
pub async fn open_watches(c: &KubeCluster, resource: &str) -> f64 {
    metric_sum(
        &c.metrics().await.unwrap(),
        "apiserver_longrunning_requests",
        &[("verb", "WATCH"), ("resource", resource)],
    )
}

/// `target/<profile>/kubectl-credential` beside this test's executable, built when missing or older
/// than its sources (`cargo test --workspace` has built it already; `cargo build -p` alone would
/// resolve features for the plugin and compile a second copy of its dependencies).
pub fn plugin_binary() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/<test>-<hash> -> target/<profile>/kubectl-credential
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        let bin = profile_dir.join("kubectl-credential");
        if bin.exists() && newest_plugin_source() <= modified(&bin) {
            return bin;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-q", "-p", "kubectl-credential", "--bin", "kubectl-credential"]).current_dir(workspace());
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        assert!(cmd.status().expect("cargo runs").success(), "cargo build -p kubectl-credential failed");
        assert!(bin.exists(), "{} missing after the build", bin.display());
        bin
    })
}

fn modified(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p).and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH)
}

fn newest_plugin_source() -> std::time::SystemTime {
    let mut newest = std::time::UNIX_EPOCH;
    let mut stack: Vec<PathBuf> = [
        "kubectl-plugin/src",
        "kubectl-plugin/Cargo.toml",
        "shared/src",
        "shared/Cargo.toml",
        "Cargo.lock",
        "Cargo.toml",
    ]
    .iter()
    .map(|p| workspace().join(p))
    .collect();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            newest = newest.max(modified(&p));
        }
    }
    newest
}

/// Bound for [`super::eventually_async`] waits on a real cluster.
pub const WAIT: Duration = Duration::from_secs(30);
