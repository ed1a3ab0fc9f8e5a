//! The Helm chart (deploy/helm/credential-webhook) with the real `helm` v3, built from its Go
//! module (tests/tools): `helm lint`; `helm template` renders the objects `kubectl kustomize`
//! renders (one install, two forms); and against a real kube-apiserver (`KubeCluster`, no kubelet:
//! no pod runs, so what is checked is what the API server accepts and stores): an install without
//! the cert-manager CRDs fails before creating anything, an install with them stores every object,
//! the ServiceAccount's effective permissions (`kubectl auth can-i`) are exactly the list in
//! support/permissions.rs, an upgrade applies new values, and `helm uninstall` leaves nothing of
//! ours (and never touches the kcm-system Namespace).
//!
//! Needs Go (the first run builds helm, about two minutes on two cores; later runs reuse
//! `target/tools/helm`) and kubectl; `HELM=/path/to/helm` skips the build.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/permissions.rs"]
mod permissions;
#[path = "support/tools.rs"]
mod tools;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use credential_core::yaml::parse_documents;
use credential_e2e::{ClusterOptions, KubeCluster};
use serde_json::Value;

use permissions::{ALSO_GRANTED, DISTRIBUTION_LEASE, ORPHANED_COPIES, needs};
use tools::{Run, repo_root, run, tool};

const RELEASE: &str = "credential-webhook";
const KCM: &str = "kcm-system";
const SA_USER: &str = "system:serviceaccount:kcm-system:credential-webhook";
const OUR_LABEL: &str = "app.kubernetes.io/name=credential-webhook";

fn chart() -> PathBuf {
    repo_root().join("deploy/helm/credential-webhook")
}

/// helm with its own config, cache and data directories (never the user's), and `kubeconfig`.
struct Helm {
    home: tempfile::TempDir,
    kubeconfig: Option<PathBuf>,
}

impl Helm {
    fn new(kubeconfig: Option<&Path>) -> Helm {
        Helm { home: tempfile::tempdir().unwrap(), kubeconfig: kubeconfig.map(Path::to_path_buf) }
    }
    fn run(&self, args: &[&str]) -> Run {
        let home = self.home.path();
        let (config, cache, data) = (home.join("config"), home.join("cache"), home.join("data"));
        let mut envs: Vec<(&str, &Path)> =
            vec![("HELM_CONFIG_HOME", &config), ("HELM_CACHE_HOME", &cache), ("HELM_DATA_HOME", &data)];
        if let Some(kc) = &self.kubeconfig {
            envs.push(("KUBECONFIG", kc));
        }
        run(&tool("helm"), args, &envs)
    }
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.ok, "helm {} failed:\n{}{}", args.join(" "), out.stdout, out.stderr);
        out.stdout
    }
    /// `helm template` of the chart into `namespace` with `--set` values.
    fn template(&self, namespace: &str, set: &[&str]) -> Objects {
        let chart = chart();
        let mut args = vec!["template", RELEASE, chart.to_str().unwrap(), "-n", namespace];
        for s in set {
            args.extend(["--set", s]);
        }
        Objects::parse(&self.ok(&args), &format!("helm template -n {namespace} {set:?}"))
    }
}

/// Objects keyed by `Kind namespace/name` (cluster-scoped: `Kind name`).
struct Objects {
    source: String,
    by_key: BTreeMap<String, Value>,
}

impl Objects {
    fn parse(text: &str, source: &str) -> Objects {
        let mut by_key = BTreeMap::new();
        for doc in parse_documents(text, source).unwrap_or_else(|e| panic!("{source}: {e}")) {
            if doc.is_null() {
                continue;
            }
            let key = key_of(&doc);
            assert!(by_key.insert(key.clone(), doc).is_none(), "{source}: {key} rendered twice");
        }
        Objects { source: source.to_string(), by_key }
    }
    fn get(&self, key: &str) -> &Value {
        self.by_key.get(key).unwrap_or_else(|| panic!("{}: no {key}; have {:?}", self.source, self.by_key.keys()))
    }
}

fn key_of(doc: &Value) -> String {
    let kind = doc["kind"].as_str().unwrap_or("?");
    let name = doc["metadata"]["name"].as_str().unwrap_or("?");
    match doc["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

fn kustomize(dir: &str) -> Objects {
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let out = run(Path::new(&kubectl), &["kustomize", repo_root().join(dir).to_str().unwrap()], &[]);
    assert!(out.ok, "kubectl kustomize {dir}: {}", out.stderr);
    Objects::parse(&out.stdout, &format!("kubectl kustomize {dir}"))
}

/// Every JSON path where `a` and `b` differ, with both values.
fn differences(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()).collect::<BTreeSet<_>>() {
                differences(
                    &format!("{path}.{k}"),
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differences(&format!("{path}[{i}]"), p, q, out);
            }
        }
        _ if a != b => out.push(format!("{path}: {a} vs {b}")),
        _ => {}
    }
}

/// Asserts both renders hold the same objects, field for field; names what differs and where.
fn assert_same_objects(helm: &Objects, kustomize: &Objects, fix: &str) {
    let (h, k): (BTreeSet<_>, BTreeSet<_>) = (helm.by_key.keys().collect(), kustomize.by_key.keys().collect());
    assert_eq!(
        h,
        k,
        "{} and {} render different objects (only in helm: {:?}; only in kustomize: {:?}); {fix}",
        helm.source,
        kustomize.source,
        h.difference(&k).collect::<Vec<_>>(),
        k.difference(&h).collect::<Vec<_>>()
    );
    let mut diffs = Vec::new();
    for (key, object) in &helm.by_key {
        let mut d = Vec::new();
        differences("", object, &kustomize.by_key[key], &mut d);
        diffs.extend(d.into_iter().map(|d| format!("{key} {d} (helm vs kustomize)")));
    }
    assert!(diffs.is_empty(), "{} differs from {}; {fix}:\n{}", helm.source, kustomize.source, diffs.join("\n"));
}

const SAME_SOURCE_FIX: &str = "change deploy/base (or components/) and the chart's templates together";

#[test]
fn chart_version_and_image_follow_the_workspace_version() {
    let chart_yaml = std::fs::read_to_string(chart().join("Chart.yaml")).unwrap();
    let meta = &parse_documents(&chart_yaml, "Chart.yaml").unwrap()[0];
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(meta["apiVersion"], "v2", "Chart.yaml apiVersion: Helm 3 charts are v2");
    assert_eq!(meta["version"], version, "Chart.yaml version: set it to the workspace version (Cargo.toml)");
    assert_eq!(meta["appVersion"], version, "Chart.yaml appVersion: set it to the workspace version (Cargo.toml)");
}

#[test]
fn helm_lint_is_clean_and_the_schema_rejects_bad_values() {
    let helm = Helm::new(None);
    let chart = chart();
    let chart = chart.to_str().unwrap();
    let out = helm.ok(&["lint", "--strict", chart]);
    let findings: Vec<&str> = out.lines().filter(|l| l.contains("[WARNING]") || l.contains("[ERROR]")).collect();
    assert!(findings.is_empty(), "helm lint --strict {chart}: fix these findings:\n{}", findings.join("\n"));
    assert!(out.contains("1 chart(s) linted, 0 chart(s) failed"), "helm lint: {out}");

    // values.schema.json bites: each of these is refused before anything renders.
    for (set, field) in [
        ("replicas=0", "replicas"),
        ("logFormat=xml", "logFormat"),
        ("distribution=maybe", "distribution"),
        ("distribution.mode=both", "distribution/mode"),
        ("systemNamespace=KCM_System", "systemNamespace"),
        ("extraLabels.app\\.kubernetes\\.io/name=other", "app.kubernetes.io/name"),
        ("replica=3", "replica"),
    ] {
        let out = helm.run(&["template", RELEASE, chart, "-n", KCM, "--set", set]);
        assert!(!out.ok, "values.schema.json accepted --set {set}: tighten the schema for {field}");
        assert!(out.stderr.contains(field), "--set {set}: the schema error should name {field}: {}", out.stderr);
    }
}

#[test]
fn helm_template_renders_the_objects_kustomize_renders() {
    let helm = Helm::new(None);
    // The default install: release namespace kcm-system, default values.
    assert_same_objects(&helm.template(KCM, &[]), &kustomize("deploy"), SAME_SOURCE_FIX);
    // Another namespace for the webhook, KCM's namespace unchanged: the other-namespace example.
    assert_same_objects(
        &helm.template("credential-guard", &[]),
        &kustomize("deploy/overlays/other-namespace"),
        SAME_SOURCE_FIX,
    );
}

#[test]
fn values_reach_the_objects_they_name() {
    let helm = Helm::new(None);
    let objects = helm.template(
        "guard",
        &[
            "systemNamespace=kcm",
            "replicas=3",
            "distribution=false",
            "logLevel=credential_webhook=debug",
            "logFormat=text",
            "priorityClassName=",
            "image.repository=registry.example/cw",
            "image.tag=9.9.9",
            "resources.requests.cpu=1",
            "extraLabels.team=platform",
            "serviceMonitor.enabled=true",
            "networkPolicy.enabled=false",
        ],
    );
    let d = objects.get("Deployment guard/credential-webhook");
    let pod = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let env = |name: &str| {
        c["env"].as_array().unwrap().iter().find(|e| e["name"] == name).map(|e| e["value"].clone()).unwrap_or_default()
    };
    assert_eq!(d["spec"]["replicas"], 3, "replicas");
    // The boolean of charts before the modes still works: false is mode off.
    assert_eq!(env("CREDENTIAL_WEBHOOK_DISTRIBUTION_MODE"), "off", "distribution=false (deprecated form)");
    assert_eq!(env("CREDENTIAL_WEBHOOK_FORCE_WRITE_MODE"), Value::Null, "forceWriteMode is off unless set");
    assert_eq!(env("CREDENTIAL_WEBHOOK_SYSTEM_NAMESPACE"), "kcm", "systemNamespace");
    assert_eq!(env("CREDENTIAL_WEBHOOK_LOG_LEVEL"), "credential_webhook=debug", "logLevel");
    assert_eq!(env("CREDENTIAL_WEBHOOK_LOG_FORMAT"), "text", "logFormat");
    assert!(pod.get("priorityClassName").is_none(), "priorityClassName= must drop the field: {pod}");
    assert_eq!(c["image"], "registry.example/cw:9.9.9", "image");
    assert_eq!(c["resources"]["requests"]["cpu"], 1, "resources");
    assert!(objects.by_key.keys().all(|k| !k.starts_with("NetworkPolicy ")), "networkPolicy.enabled=false");
    let sm = objects.get("ServiceMonitor guard/credential-webhook");
    assert_eq!(sm["spec"]["namespaceSelector"]["matchNames"][0], "guard", "ServiceMonitor namespace");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics", "ServiceMonitor port: the Service's metrics port");
    for (key, o) in &objects.by_key {
        assert_eq!(o["metadata"]["labels"]["team"], "platform", "{key}: extraLabels");
        assert_eq!(o["metadata"]["labels"]["app.kubernetes.io/name"], "credential-webhook", "{key}: name label");
    }
    assert_eq!(d["spec"]["template"]["metadata"]["labels"]["team"], "platform", "extraLabels on the pod template");
    assert_eq!(d["spec"]["selector"]["matchLabels"].as_object().unwrap().len(), 1, "extraLabels stay out of selectors");
    // Secrets are granted in the system namespace, everything else follows the release namespace.
    assert!(objects.by_key.contains_key("RoleBinding kcm/credential-webhook-system-secrets"), "Secrets RoleBinding");
    let vwc = objects.get("ValidatingWebhookConfiguration credential-webhook");
    assert_eq!(vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"], "guard/credential-webhook-serving");
    assert_eq!(vwc["webhooks"][0]["clientConfig"]["service"]["namespace"], "guard");
    let cond = vwc["webhooks"][0]["matchConditions"][0]["expression"].as_str().unwrap();
    assert!(cond.contains("system:serviceaccount:guard:credential-webhook"), "exempted ServiceAccount: {cond}");
    // No namespace is ever rendered, whatever the values.
    assert!(objects.by_key.keys().all(|k| !k.starts_with("Namespace ")), "the chart must not render a Namespace");

    // distribution.mode and forceWriteMode reach their variables.
    let objects = helm.template("guard", &["distribution.mode=trigger", "distribution.forceWriteMode=true"]);
    let d = objects.get("Deployment guard/credential-webhook");
    let env = |name: &str| {
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        c["env"].as_array().unwrap().iter().find(|e| e["name"] == name).map(|e| e["value"].clone()).unwrap_or_default()
    };
    assert_eq!(env("CREDENTIAL_WEBHOOK_DISTRIBUTION_MODE"), "trigger", "distribution.mode");
    assert_eq!(env("CREDENTIAL_WEBHOOK_FORCE_WRITE_MODE"), "true", "distribution.forceWriteMode");
}

/// Polls `check` (an error string while not yet true) for up to 60 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match check().await {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("{what}: still not true after 60 s: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// `kubectl get <kind> <name>` of every rendered object that still exists, plus anything labelled ours.
async fn ours_left(cluster: &KubeCluster, rendered: &Objects) -> Vec<String> {
    let mut left = Vec::new();
    for (key, o) in &rendered.by_key {
        let kind = format!("{}.{}", o["kind"].as_str().unwrap().to_lowercase(), group_of(o));
        let kind = kind.trim_end_matches('.').to_string();
        let name = o["metadata"]["name"].as_str().unwrap();
        let mut args = vec!["get", kind.as_str(), name, "--ignore-not-found", "-o", "name"];
        if let Some(ns) = o["metadata"]["namespace"].as_str() {
            args.extend(["-n", ns]);
        }
        let out = cluster.kubectl(&args).await.unwrap();
        // A kind the server does not serve (cert-manager's, before its CRDs) holds nothing.
        if out.stderr.contains("the server doesn't have a resource type") {
            continue;
        }
        assert!(out.success(), "kubectl {}: {}", args.join(" "), out.stderr);
        if !out.stdout.trim().is_empty() {
            left.push(key.clone());
        }
    }
    let labelled = cluster
        .kubectl_ok(
            &["get", "all,secrets,configmaps,leases,roles,rolebindings", "-A", "-l", OUR_LABEL, "-o", "name"],
            None,
        )
        .await
        .unwrap();
    left.extend(labelled.lines().filter(|l| !l.is_empty()).map(str::to_string));
    let cluster_scoped = cluster
        .kubectl_ok(
            &[
                "get",
                "clusterroles,clusterrolebindings,validatingwebhookconfigurations,mutatingwebhookconfigurations",
                "-l",
                OUR_LABEL,
                "-o",
                "name",
            ],
            None,
        )
        .await
        .unwrap();
    left.extend(cluster_scoped.lines().filter(|l| !l.is_empty()).map(str::to_string));
    left
}

fn group_of(o: &Value) -> &str {
    o["apiVersion"].as_str().unwrap().rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// Whether every field of `rendered` is in `stored` with the same value (the API server adds
/// defaults, Helm its ownership labels and annotations); the paths that are not.
fn not_stored(path: &str, rendered: &Value, stored: &Value, out: &mut Vec<String>) {
    match (rendered, stored) {
        (Value::Object(r), Value::Object(s)) => {
            for (k, v) in r {
                not_stored(&format!("{path}.{k}"), v, s.get(k).unwrap_or(&Value::Null), out);
            }
        }
        (Value::Array(r), Value::Array(s)) if r.len() == s.len() => {
            for (i, (p, q)) in r.iter().zip(s).enumerate() {
                not_stored(&format!("{path}[{i}]"), p, q, out);
            }
        }
        _ if rendered != stored => out.push(format!("{path}: rendered {rendered}, stored {stored}")),
        _ => {}
    }
}

/// `kubectl auth can-i` as the webhook's ServiceAccount: true for "yes".
async fn can_i(cluster: &KubeCluster, verb: &str, resource: &str, scope: Option<&str>) -> bool {
    let mut args = vec!["auth", "can-i", verb];
    let (res, sub) = match resource.split_once('/') {
        // leases/NAME and configmaps/NAME name an object (the Lease, the orphaned-copies record);
        // otherwise what follows the slash is a subresource.
        Some((r, s)) if !s.contains('.') && !["leases", "configmaps"].iter().any(|n| resource.starts_with(n)) => {
            (r.to_string(), Some(s))
        }
        _ => (resource.to_string(), None),
    };
    args.push(&res);
    let sub_flag = sub.map(|s| format!("--subresource={s}"));
    if let Some(f) = &sub_flag {
        args.push(f);
    }
    match scope {
        Some(ns) => args.extend(["-n", ns]),
        None => args.push("-A"),
    }
    args.extend(["--as", SA_USER]);
    let out = cluster.kubectl(&args).await.unwrap();
    match out.stdout.trim() {
        "yes" => true,
        "no" => false,
        other => panic!("kubectl {}: unexpected answer {other:?}: {}", args.join(" "), out.stderr),
    }
}

/// `resource.group` as kubectl and `auth can-i --list` spell it.
fn qualified(group: &str, resource: &str) -> String {
    match (group, resource.split_once('/')) {
        ("", _) => resource.to_string(),
        (_, Some((res, sub))) => format!("{res}.{group}/{sub}"),
        (_, None) => format!("{resource}.{group}"),
    }
}

/// (resource, resourceName, verb) rows of `kubectl auth can-i --list -n namespace --as user`.
async fn effective(cluster: &KubeCluster, namespace: &str, user: &str) -> BTreeSet<(String, String, String)> {
    let out = cluster
        .kubectl_ok(&["auth", "can-i", "--list", "-n", namespace, "--as", user, "--no-headers"], None)
        .await
        .unwrap();
    let mut rows = BTreeSet::new();
    for line in out.lines() {
        // `RESOURCE   [NON-RESOURCE URLS]   [RESOURCE NAMES]   [VERBS]`; non-resource rows start blank.
        let brackets: Vec<&str> = line.split('[').skip(1).map(|s| s.split(']').next().unwrap_or("")).collect();
        let resource = line.split_whitespace().next().unwrap_or("");
        if line.starts_with(char::is_whitespace) || resource.starts_with('[') || brackets.len() != 3 {
            continue;
        }
        let names: Vec<&str> = brackets[1].split_whitespace().collect();
        for verb in brackets[2].split_whitespace() {
            if names.is_empty() {
                rows.insert((resource.to_string(), String::new(), verb.to_string()));
            }
            for n in &names {
                rows.insert((resource.to_string(), n.to_string(), verb.to_string()));
            }
        }
    }
    rows
}

/// What permissions.rs says the ServiceAccount holds in `namespace` (cluster-wide grants included),
/// as `auth can-i --list` rows.
fn expected_rows(namespace: &str) -> BTreeSet<(String, String, String)> {
    let mut rows = BTreeSet::new();
    for (scope, group, res, verb) in needs(KCM, KCM) {
        if scope.as_deref().is_some_and(|s| s != namespace) {
            continue;
        }
        let name = match (res, verb) {
            ("leases", v) if v != "create" => DISTRIBUTION_LEASE,
            ("configmaps", v) if v != "create" => ORPHANED_COPIES,
            _ => "",
        };
        rows.insert((qualified(group, res), name.to_string(), verb.to_string()));
    }
    for (group, res, verbs) in ALSO_GRANTED {
        for verb in *verbs {
            rows.insert((qualified(group, res), String::new(), verb.to_string()));
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_and_uninstall_on_a_real_apiserver() {
    let cluster = KubeCluster::start(ClusterOptions::new("helm")).await.unwrap();
    let helm = Helm::new(Some(cluster.kubeconfig_path()));
    let chart = chart();
    let chart = chart.to_str().unwrap();
    let rendered = helm.template(KCM, &[]);
    // KCM's namespace exists before us (KCM creates it); we never create it.
    cluster.kubectl_ok(&["create", "namespace", KCM], None).await.unwrap();

    // 1. No cert-manager: the install fails while rendering, naming both CRDs, and creates nothing.
    let out = helm.run(&["install", RELEASE, chart, "-n", KCM]);
    assert!(!out.ok, "helm install without cert-manager CRDs must fail:\n{}", out.stdout);
    for crd in ["certificates.cert-manager.io", "issuers.cert-manager.io"] {
        assert!(out.stderr.contains(crd), "the failure must name the missing CRD {crd}: {}", out.stderr);
    }
    let left = ours_left(&cluster, &rendered).await;
    assert!(left.is_empty(), "a failed install left objects behind (no webhook configuration may exist): {left:?}");
    let releases = helm.ok(&["list", "-a", "-q", "-n", KCM]);
    assert!(releases.trim().is_empty(), "a failed install left a release record: {releases}");

    // 2. cert-manager's CRDs (no controller: nothing is issued). A missing namespace still fails early.
    for f in ["cert-manager.io_certificates.yaml", "cert-manager.io_issuers.yaml"] {
        let crd = std::fs::read_to_string(repo_root().join("tests/crds-cert-manager").join(f)).unwrap();
        cluster.apply(&crd).await.unwrap();
    }
    cluster
        .kubectl_ok(
            &[
                "wait",
                "--for=condition=Established",
                "crd/certificates.cert-manager.io",
                "crd/issuers.cert-manager.io",
                "--timeout=60s",
            ],
            None,
        )
        .await
        .unwrap();
    let out = helm.run(&["install", RELEASE, chart, "-n", "not-created"]);
    assert!(
        !out.ok && out.stderr.contains("namespace not-created does not exist"),
        "missing namespace: {}",
        out.stderr
    );
    let out = helm.run(&["install", RELEASE, chart, "-n", KCM, "--set", "systemNamespace=kcm-elsewhere"]);
    assert!(
        !out.ok && out.stderr.contains("systemNamespace kcm-elsewhere does not exist"),
        "missing system namespace: {}",
        out.stderr
    );
    assert!(ours_left(&cluster, &rendered).await.is_empty(), "a failed install left objects behind");

    // 3. The install stores every object as rendered, owned by the release.
    helm.ok(&["install", RELEASE, chart, "-n", KCM]);
    let mut problems = Vec::new();
    for (key, o) in &rendered.by_key {
        let kind = format!("{}.{}", o["kind"].as_str().unwrap().to_lowercase(), group_of(o));
        let mut args = vec!["get", kind.trim_end_matches('.'), o["metadata"]["name"].as_str().unwrap(), "-o", "json"];
        if let Some(ns) = o["metadata"]["namespace"].as_str() {
            args.extend(["-n", ns]);
        }
        let out = cluster.kubectl(&args).await.unwrap();
        if !out.success() {
            problems.push(format!("{key}: not stored: {}", out.stderr.trim()));
            continue;
        }
        let stored: Value = serde_json::from_str(&out.stdout).unwrap();
        not_stored(key, o, &stored, &mut problems);
        if stored["metadata"]["annotations"]["meta.helm.sh/release-name"] != RELEASE {
            problems.push(format!("{key}: not owned by the release (meta.helm.sh/release-name)"));
        }
    }
    assert!(problems.is_empty(), "helm install did not store what the chart renders:\n{}", problems.join("\n"));
    let webhooks = cluster
        .kubectl_ok(&["get", "validatingwebhookconfigurations,mutatingwebhookconfigurations", "-o", "name"], None)
        .await
        .unwrap();
    assert!(
        webhooks.contains("validatingwebhookconfiguration.admissionregistration.k8s.io/credential-webhook"),
        "{webhooks}"
    );

    // 4. Effective permissions of the ServiceAccount: every need granted, and nothing beyond
    //    permissions.rs (rows a ServiceAccount without bindings also has are the cluster's defaults).
    for (scope, group, res, verb) in needs(KCM, KCM) {
        let resource = if res == "leases" && verb != "create" {
            format!("{}/{DISTRIBUTION_LEASE}", qualified(group, res))
        } else if res == "configmaps" && verb != "create" {
            format!("{}/{ORPHANED_COPIES}", qualified(group, res))
        } else {
            qualified(group, res)
        };
        assert!(
            can_i(&cluster, verb, &resource, scope.as_deref()).await,
            "kubectl auth can-i {verb} {resource} ({}) --as {SA_USER}: no; the chart's RBAC (templates/rbac.yaml) must grant it",
            scope.as_deref().unwrap_or("cluster-wide")
        );
    }
    for (verb, resource, scope) in [
        ("get", "secrets", None),
        ("list", "secrets", Some("default")),
        ("create", "secrets", Some(KCM)),
        ("delete", "secrets", Some(KCM)),
        ("create", "credentials.k0rdent.mirantis.com", None),
        ("update", "credentials.k0rdent.mirantis.com", None),
        ("delete", "credentials.k0rdent.mirantis.com", None),
        ("patch", "regions.k0rdent.mirantis.com", None),
        ("get", "leases.coordination.k8s.io/someone-elses-lease", Some(KCM)),
        ("create", "leases.coordination.k8s.io", Some("default")),
        ("create", "pods", Some(KCM)),
        ("delete", "validatingwebhookconfigurations.admissionregistration.k8s.io", None),
    ] {
        assert!(
            !can_i(&cluster, verb, resource, scope).await,
            "kubectl auth can-i {verb} {resource} ({}) --as {SA_USER}: yes, but the webhook must not have it; narrow templates/rbac.yaml",
            scope.unwrap_or("cluster-wide")
        );
    }
    for namespace in [KCM, "default"] {
        let baseline = effective(&cluster, namespace, "system:serviceaccount:kcm-system:no-bindings").await;
        let ours: BTreeSet<_> = effective(&cluster, namespace, SA_USER).await.difference(&baseline).cloned().collect();
        let expected: BTreeSet<_> = expected_rows(namespace).difference(&baseline).cloned().collect();
        assert!(!ours.is_empty(), "kubectl auth can-i --list parsed nothing for {SA_USER}");
        let granted_not_listed: Vec<_> = ours.difference(&expected).collect();
        let listed_not_granted: Vec<_> = expected.difference(&ours).collect();
        assert!(
            granted_not_listed.is_empty() && listed_not_granted.is_empty(),
            "in namespace {namespace}, {SA_USER} may (resource, name, verb) {granted_not_listed:?} which \
             tests/tests/support/permissions.rs does not list, and may not {listed_not_granted:?} which it lists: \
             change the chart's RBAC (templates/rbac.yaml, deploy/base/rbac.yaml) or the list, with the reason"
        );
    }

    // 5. An upgrade applies new values in place.
    helm.ok(&["upgrade", RELEASE, chart, "-n", KCM, "--set", "logLevel=debug", "--set", "distribution=false"]);
    let env = cluster
        .kubectl_ok(
            &[
                "get",
                "deployment",
                "credential-webhook",
                "-n",
                KCM,
                "-o",
                "jsonpath={.spec.template.spec.containers[0].env}",
            ],
            None,
        )
        .await
        .unwrap();
    let env: Value = serde_json::from_str(&env).unwrap();
    let value = |n: &str| env.as_array().unwrap().iter().find(|e| e["name"] == n).map(|e| e["value"].clone());
    assert_eq!(value("CREDENTIAL_WEBHOOK_LOG_LEVEL"), Some("debug".into()), "helm upgrade --set logLevel=debug");
    assert_eq!(
        value("CREDENTIAL_WEBHOOK_DISTRIBUTION_MODE"),
        Some("off".into()),
        "helm upgrade --set distribution=false (the boolean of earlier charts) is mode off"
    );

    // 6. Uninstall leaves nothing of ours (ReplicaSets and Pods go with the garbage collector), no
    //    release record, and KCM's namespace untouched.
    helm.ok(&["uninstall", RELEASE, "-n", KCM]);
    eventually("helm uninstall removed every object of ours", || async {
        let left = ours_left(&cluster, &rendered).await;
        if left.is_empty() { Ok(()) } else { Err(format!("{left:?}")) }
    })
    .await;
    let releases = helm.ok(&["list", "-a", "-q", "-n", KCM]);
    assert!(releases.trim().is_empty(), "helm uninstall left a release record: {releases}");
    let phase = cluster.kubectl_ok(&["get", "namespace", KCM, "-o", "jsonpath={.status.phase}"], None).await.unwrap();
    assert_eq!(phase, "Active", "helm uninstall must leave KCM's namespace alone");
}
