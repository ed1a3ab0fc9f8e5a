//! Invariants of the manifests in deploy/, checked on what `kubectl kustomize` renders (so the
//! kustomize wiring is under test too, not only the source files) against the code: the kinds the
//! core admits, the routes and settings the webhook source defines, the API calls it makes.
//!
//! Needs `kubectl` (its built-in kustomize) on PATH, or `KUBECTL=/path/to/kubectl`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use credential_core::model::labels;
use credential_core::{K0RDENT_GROUP, ResourceKind, yaml::parse_documents};
use serde_json::Value;

#[path = "support/permissions.rs"]
mod permissions;
use permissions::needs;

const SA_NAME: &str = "credential-webhook";
/// The image the manifests run; its tag follows the workspace version.
const IMAGE_REPOSITORY: &str = "ghcr.io/k0rdent-credential-guard/credential-webhook";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The operator guide's page on RBAC (docs/).
const RBAC_PAGE: &str = "docs/src/operator/rbac.md";

fn kubectl() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_string())
}

/// One rendered kustomization: its directory relative to deploy/ and its objects.
struct Render {
    name: String,
    docs: Vec<Value>,
}

impl Render {
    fn all(&self, kind: &str) -> std::vec::IntoIter<&Value> {
        self.docs.iter().filter(|d| d["kind"] == kind).collect::<Vec<_>>().into_iter()
    }
    fn one(&self, kind: &str, name: &str) -> &Value {
        self.all(kind)
            .find(|d| d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{}: no {kind} {name}", self.name))
    }
    fn maybe(&self, kind: &str, name: &str) -> Option<&Value> {
        self.all(kind).find(|d| d["metadata"]["name"] == name)
    }
    fn deployment(&self) -> &Value {
        self.one("Deployment", "credential-webhook")
    }
    fn container(&self) -> &Value {
        let containers = self.deployment()["spec"]["template"]["spec"]["containers"].as_array().unwrap();
        containers.iter().find(|c| c["name"] == "webhook").expect("container webhook")
    }
    fn env(&self, name: &str) -> Option<String> {
        let env = self.container()["env"].as_array()?;
        env.iter().find(|e| e["name"] == name).and_then(|e| e["value"].as_str()).map(str::to_string)
    }
    /// The namespace the webhook runs in, as its ServiceAccount has it.
    fn namespace(&self) -> String {
        str_of(&self.one("ServiceAccount", SA_NAME)["metadata"]["namespace"]).to_string()
    }
    fn webhook_configs(&self) -> Vec<&Value> {
        self.docs
            .iter()
            .filter(|d| d["kind"] == "ValidatingWebhookConfiguration" || d["kind"] == "MutatingWebhookConfiguration")
            .collect()
    }
    fn is_installable(&self) -> bool {
        // base has no TLS source and overlays/other-namespace/namespaced is an intermediate layer
        // (not yet re-wired): neither is applied on its own.
        self.name != "deploy/base" && !self.name.ends_with("/namespaced")
    }
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("expected a string, found {v}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().map(|s| str_of(s).to_string()).collect()).unwrap_or_default()
}

/// Copies deploy/ (YAML only, no generated certs) into `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            if entry.file_name() != "certs" {
                copy_tree(&path, &target);
            }
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

fn kustomization_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            kustomization_dirs(&path, out);
        } else if path.file_name().is_some_and(|n| n == "kustomization.yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            // Components only render through the kustomizations that include them.
            if !text.lines().any(|l| l.trim() == "kind: Component") {
                out.push(path.parent().unwrap().to_path_buf());
            }
        }
    }
}

/// The dev-certs overlay's CA, written by [`renders`] (to compare with the injected caBundle).
static DEV_CA_PEM: OnceLock<String> = OnceLock::new();

/// Renders every kustomization once, from a copy of deploy/ with throw-away dev certificates.
fn renders() -> &'static [Render] {
    static RENDERS: OnceLock<Vec<Render>> = OnceLock::new();
    RENDERS.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let deploy = tmp.path().join("deploy");
        copy_tree(&repo_root().join("deploy"), &deploy);

        let certs = deploy.join("overlays/dev-certs/certs");
        std::fs::create_dir_all(&certs).unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["credential-webhook.kcm-system.svc".to_string()]).unwrap();
        std::fs::write(certs.join("ca.crt"), ca.cert.pem()).unwrap();
        std::fs::write(certs.join("tls.crt"), ca.cert.pem()).unwrap();
        std::fs::write(certs.join("tls.key"), ca.signing_key.serialize_pem()).unwrap();
        DEV_CA_PEM.set(ca.cert.pem()).unwrap();

        let mut dirs = Vec::new();
        kustomization_dirs(&deploy, &mut dirs);
        dirs.sort();
        let mut out = Vec::new();
        for dir in dirs {
            let name = dir.strip_prefix(tmp.path()).unwrap().display().to_string();
            let output = Command::new(kubectl()).arg("kustomize").arg(&dir).output().unwrap_or_else(|e| {
                panic!("cannot run `{} kustomize` ({e}): install kubectl or set KUBECTL", kubectl())
            });
            assert!(
                output.status.success(),
                "kubectl kustomize {name} failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let text = String::from_utf8(output.stdout).unwrap();
            let docs = parse_documents(&text, &name).unwrap();
            assert!(!docs.is_empty(), "{name} rendered no objects");
            out.push(Render { name, docs });
        }
        out
    })
}

fn installs() -> impl Iterator<Item = &'static Render> {
    renders().iter().filter(|r| r.is_installable())
}

fn render(name: &str) -> &'static Render {
    renders().iter().find(|r| r.name == name).unwrap_or_else(|| panic!("no kustomization {name}"))
}

/// All Rust source of the webhook crate, concatenated (the code the manifests must match).
fn webhook_source() -> &'static str {
    static SRC: OnceLock<String> = OnceLock::new();
    SRC.get_or_init(|| {
        fn walk(dir: &Path, out: &mut String) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push_str(&std::fs::read_to_string(&path).unwrap());
                    out.push('\n');
                }
            }
        }
        let mut s = String::new();
        walk(&repo_root().join("webhook/src"), &mut s);
        s
    })
}

/// `8s`, `500ms`, `1m` (the server's duration syntax) in seconds.
fn seconds(s: &str) -> f64 {
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().unwrap_or_else(|_| panic!("bad duration {s:?}"));
    match unit {
        "ms" => v / 1000.0,
        "" | "s" => v,
        "m" => v * 60.0,
        _ => panic!("bad duration unit in {s:?}"),
    }
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in {addr:?}"))
}

/// Resolves a Service targetPort / probe port (number or container port name) to a number.
fn container_port(render: &Render, port: &Value) -> u16 {
    if let Some(n) = port.as_u64() {
        return n as u16;
    }
    let name = str_of(port);
    let ports = render.container()["ports"].as_array().unwrap();
    let p =
        ports.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{}: no container port {name}", render.name));
    p["containerPort"].as_u64().unwrap() as u16
}

#[test]
fn every_kustomization_renders_and_the_expected_ones_exist() {
    let names: BTreeSet<&str> = renders().iter().map(|r| r.name.as_str()).collect();
    for expected in ["deploy", "deploy/base", "deploy/overlays/dev-certs", "deploy/overlays/other-namespace"] {
        assert!(names.contains(expected), "missing kustomization {expected}; have {names:?}");
    }
}

#[test]
fn webhook_rules_name_only_kinds_and_operations_the_server_handles() {
    let handled: BTreeSet<&str> = ResourceKind::ALL.iter().map(|k| k.plural()).collect();
    let mut saw = 0;
    for r in installs() {
        let configs = r.webhook_configs();
        assert_eq!(configs.len(), 2, "{}: expected one validating and one mutating configuration", r.name);
        for cfg in configs {
            let validating = cfg["kind"] == "ValidatingWebhookConfiguration";
            for wh in cfg["webhooks"].as_array().unwrap() {
                let what = format!("{} {} {}", r.name, cfg["kind"], wh["name"]);
                let mut covered: BTreeSet<(String, String)> = BTreeSet::new();
                for rule in wh["rules"].as_array().unwrap() {
                    assert_eq!(strings(&rule["apiGroups"]), vec![K0RDENT_GROUP.to_string()], "{what}: apiGroups");
                    for res in strings(&rule["resources"]) {
                        assert!(
                            handled.contains(res.as_str()),
                            "{what}: resource {res} is not a kind the server handles"
                        );
                        for op in strings(&rule["operations"]) {
                            assert!(["CREATE", "UPDATE", "DELETE"].contains(&op.as_str()), "{what}: operation {op}");
                            covered.insert((res.clone(), op));
                        }
                    }
                }
                let expected: BTreeSet<(String, String)> = if validating {
                    handled
                        .iter()
                        .flat_map(|r| ["CREATE", "UPDATE", "DELETE"].map(|o| (r.to_string(), o.to_string())))
                        .collect()
                } else {
                    ["CREATE", "UPDATE"].map(|o| ("credentials".to_string(), o.to_string())).into_iter().collect()
                };
                assert_eq!(covered, expected, "{what}: rules");

                assert_eq!(strings(&wh["admissionReviewVersions"]), vec!["v1"], "{what}");
                assert_eq!(wh["matchPolicy"], "Equivalent", "{what}");
                assert_eq!(wh["sideEffects"], "NoneOnDryRun", "{what}");
                assert_eq!(wh["failurePolicy"], if validating { "Fail" } else { "Ignore" }, "{what}");
                let timeout = wh["timeoutSeconds"].as_u64().unwrap() as f64;
                // Above the server's own request budget, so the server answers first; within the
                // API server's maximum (30 s).
                let budget = seconds(&r.env("CREDENTIAL_WEBHOOK_REQUEST_TIMEOUT").expect("request timeout set"));
                assert!(
                    timeout > budget && timeout <= 30.0,
                    "{what}: timeoutSeconds {timeout} vs request timeout {budget}"
                );
                // No namespace exemption (Credentials live in the webhook's namespace); only the
                // webhook's own ServiceAccount is exempted.
                assert!(wh.get("namespaceSelector").is_none_or(|s| s == &serde_json::json!({})), "{what}");
                let user = format!("system:serviceaccount:{}:{SA_NAME}", r.namespace());
                let conditions = wh["matchConditions"].as_array().unwrap();
                assert_eq!(
                    conditions.len(),
                    3,
                    "{what}: the webhook's ServiceAccount exemption, the namespace controller's, the spec-change filter"
                );
                assert_eq!(
                    str_of(&conditions[0]["expression"]),
                    format!("request.userInfo.username != '{user}'"),
                    "{what}: matchCondition must exempt exactly the webhook's ServiceAccount"
                );

                let svc = &wh["clientConfig"]["service"];
                assert_eq!(svc["path"], if validating { "/validate" } else { "/mutate" }, "{what}");
                assert_eq!(svc["port"], 443, "{what}");
                assert_eq!(svc["name"], "credential-webhook", "{what}");
                assert_eq!(str_of(&svc["namespace"]), r.namespace(), "{what}: service namespace");
                let service = r.one("Service", "credential-webhook");
                assert!(service["spec"]["ports"].as_array().unwrap().iter().any(|p| p["port"] == 443), "{what}");
                saw += 1;
            }
        }
    }
    assert!(saw >= 6, "expected webhooks in at least three installable renders, saw {saw}");
}

#[test]
fn admission_paths_and_probe_paths_are_routes_of_the_server() {
    let src = webhook_source();
    let r = render("deploy");
    let c = r.container();
    let mut paths = vec![
        str_of(&c["readinessProbe"]["httpGet"]["path"]).to_string(),
        str_of(&c["livenessProbe"]["httpGet"]["path"]).to_string(),
    ];
    for cfg in r.webhook_configs() {
        for wh in cfg["webhooks"].as_array().unwrap() {
            paths.push(str_of(&wh["clientConfig"]["service"]["path"]).to_string());
        }
    }
    for path in paths {
        assert!(src.contains(&format!("\"{path}\"")), "webhook/src defines no route {path:?}");
    }
}

#[test]
fn service_probe_and_listener_ports_agree() {
    for r in installs() {
        let c = r.container();
        let service = r.one("Service", "credential-webhook");
        let ports = service["spec"]["ports"].as_array().unwrap();
        let https = ports.iter().find(|p| p["port"] == 443).unwrap();
        let listen = r.env("CREDENTIAL_WEBHOOK_LISTEN").expect("CREDENTIAL_WEBHOOK_LISTEN");
        let admin = r.env("CREDENTIAL_WEBHOOK_ADMIN_LISTEN").expect("CREDENTIAL_WEBHOOK_ADMIN_LISTEN");
        assert_eq!(container_port(r, &https["targetPort"]), port_of(&listen), "{}: Service 443 -> listener", r.name);
        assert_eq!(port_of(&listen), 9443, "{}", r.name);
        for probe in ["readinessProbe", "livenessProbe"] {
            assert_eq!(container_port(r, &c[probe]["httpGet"]["port"]), port_of(&admin), "{}: {probe} port", r.name);
        }
        // The admission port is never the admin port: probes must not depend on TLS.
        assert_ne!(port_of(&listen), port_of(&admin));
        // The Service selects the Deployment's pods.
        let labels = &r.deployment()["spec"]["template"]["metadata"]["labels"];
        for (k, v) in service["spec"]["selector"].as_object().unwrap() {
            assert_eq!(&labels[k], v, "{}: Service selector {k}", r.name);
        }
        // NetworkPolicy admits the admission port.
        let np = r.one("NetworkPolicy", "credential-webhook");
        let admitted: Vec<u16> = np["spec"]["ingress"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|i| i["ports"].as_array().unwrap().iter().map(|p| container_port(r, &p["port"])))
            .collect();
        assert!(admitted.contains(&port_of(&listen)), "{}: NetworkPolicy must admit {listen}", r.name);
    }
}

#[test]
fn every_env_setting_is_one_the_server_reads() {
    // The server names every variable it reads literally (`env = "CREDENTIAL_WEBHOOK_..."` in its
    // clap arguments, `std::env::var("POD_NAMESPACE")`); one it does not read would be ignored.
    let src = webhook_source();
    for r in installs() {
        for e in r.container()["env"].as_array().unwrap() {
            let name = str_of(&e["name"]);
            assert!(src.contains(&format!("\"{name}\"")), "{}: env {name} is read by nothing in webhook/src", r.name);
        }
        // The Lease namespace follows the pod, so it is where the leader-election Role grants it.
        let pod_ns = r.container()["env"].as_array().unwrap().iter().find(|e| e["name"] == "POD_NAMESPACE").cloned();
        let pod_ns = pod_ns.unwrap_or_else(|| panic!("{}: POD_NAMESPACE (the Lease namespace) is not set", r.name));
        assert_eq!(pod_ns["valueFrom"]["fieldRef"]["fieldPath"], "metadata.namespace", "{}", r.name);
    }
}

#[test]
fn pods_are_hardened_and_highly_available() {
    for r in installs() {
        let d = r.deployment();
        let pod = &d["spec"]["template"]["spec"];
        let c = r.container();
        let n = &r.name;
        assert!(d["spec"]["replicas"].as_u64().unwrap() >= 2, "{n}: replicas");
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{n}");
        assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault", "{n}");
        assert!(pod["securityContext"]["runAsUser"].as_u64().unwrap() > 0, "{n}");
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true, "{n}");
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false, "{n}");
        assert_eq!(strings(&c["securityContext"]["capabilities"]["drop"]), vec!["ALL"], "{n}");
        assert!(c["securityContext"]["capabilities"].get("add").is_none(), "{n}");
        for k in ["cpu", "memory"] {
            assert!(c["resources"]["requests"].get(k).is_some(), "{n}: requests.{k}");
        }
        assert!(c["resources"]["limits"].get("memory").is_some(), "{n}: limits.memory");
        // distroless: no exec hooks, the kubelet's sleep action.
        let pre_stop = &c["lifecycle"]["preStop"];
        assert!(pre_stop.get("exec").is_none(), "{n}: preStop exec cannot run in a distroless image");
        let sleep = pre_stop["sleep"]["seconds"].as_u64().unwrap() as f64;
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30) as f64;
        let delay = seconds(&r.env("CREDENTIAL_WEBHOOK_SHUTDOWN_DELAY").expect("shutdown delay set"));
        let drain = seconds(&r.env("CREDENTIAL_WEBHOOK_SHUTDOWN_TIMEOUT").expect("shutdown timeout set"));
        assert!(sleep > 0.0, "{n}: preStop sleep");
        assert!(
            sleep + delay + drain < grace,
            "{n}: preStop {sleep}s + shutdown delay {delay}s + drain {drain}s must fit in the {grace}s grace period"
        );
        let anti = &pod["affinity"]["podAntiAffinity"];
        assert!(anti.is_object() && !anti.as_object().unwrap().is_empty(), "{n}: pod anti-affinity");
        let image = str_of(&c["image"]);
        assert_eq!(image, format!("{IMAGE_REPOSITORY}:{}", env!("CARGO_PKG_VERSION")), "{n}: image tag");

        let pdb = r.one("PodDisruptionBudget", "credential-webhook");
        let labels = &d["spec"]["template"]["metadata"]["labels"];
        for (k, v) in pdb["spec"]["selector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(&labels[k], v, "{n}: PDB selector {k}");
        }
        let min = pdb["spec"]["minAvailable"].as_u64().unwrap();
        assert!(min >= 1 && min < d["spec"]["replicas"].as_u64().unwrap(), "{n}: PDB must allow one eviction");
    }
    let containerfile = std::fs::read_to_string(repo_root().join("Containerfile")).unwrap();
    let tag = format!("{IMAGE_REPOSITORY}:{}", env!("CARGO_PKG_VERSION"));
    assert!(containerfile.contains(&tag), "Containerfile must name the image {tag}");
    assert!(containerfile.contains("nonroot"), "Containerfile must use a nonroot distroless base");
}

#[test]
fn tls_secret_is_mounted_as_a_directory_and_matches_its_issuer() {
    for r in installs() {
        let n = &r.name;
        let pod = &r.deployment()["spec"]["template"]["spec"];
        let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "tls").expect("tls volume");
        let secret_name = str_of(&volume["secret"]["secretName"]).to_string();
        let mount = r.container()["volumeMounts"].as_array().unwrap().iter().find(|m| m["name"] == "tls").unwrap();
        assert!(mount.get("subPath").is_none() && mount.get("subPathExpr").is_none(), "{n}: subPath breaks rotation");
        let dir = str_of(&mount["mountPath"]);
        for (env, file) in
            [("CREDENTIAL_WEBHOOK_TLS_CERT_FILE", "tls.crt"), ("CREDENTIAL_WEBHOOK_TLS_KEY_FILE", "tls.key")]
        {
            assert_eq!(r.env(env).unwrap(), format!("{dir}/{file}"), "{n}: {env}");
        }
        let host = format!("credential-webhook.{}.svc", r.namespace());

        if let Some(cert) = r.maybe("Certificate", "credential-webhook-serving") {
            // cert-manager renders.
            assert_eq!(str_of(&cert["spec"]["secretName"]), secret_name, "{n}: Certificate secret vs volume");
            assert!(strings(&cert["spec"]["dnsNames"]).contains(&host), "{n}: dnsNames must include {host}");
            assert_eq!(cert["spec"]["privateKey"]["encoding"], "PKCS8", "{n}");
            assert_eq!(cert["spec"]["privateKey"]["rotationPolicy"], "Always", "{n}");
            assert!(cert["spec"]["renewBefore"].is_string() && cert["spec"]["duration"].is_string(), "{n}");
            // Issuer chain: serving <- CA issuer <- CA certificate <- self-signed issuer.
            let ca_issuer = r.one("Issuer", str_of(&cert["spec"]["issuerRef"]["name"]));
            let ca_secret = str_of(&ca_issuer["spec"]["ca"]["secretName"]);
            let ca_cert = r.all("Certificate").find(|c| c["spec"]["secretName"] == ca_secret).expect("CA Certificate");
            assert_eq!(ca_cert["spec"]["isCA"], true, "{n}");
            let root = r.one("Issuer", str_of(&ca_cert["spec"]["issuerRef"]["name"]));
            assert!(root["spec"]["selfSigned"].is_object(), "{n}: root issuer must be selfSigned");
            let inject = format!("{}/credential-webhook-serving", r.namespace());
            for cfg in r.webhook_configs() {
                assert_eq!(str_of(&cfg["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]), inject, "{n}");
            }
        } else {
            // dev-certs: a generated Secret and caBundle from the same files.
            assert_eq!(n, "deploy/overlays/dev-certs", "{n}: no TLS source");
            let secret =
                r.all("Secret").find(|s| s["metadata"]["name"] == secret_name.as_str()).expect("generated Secret");
            assert_eq!(secret["type"], "kubernetes.io/tls", "{n}");
            let ca_b64 = str_of(&secret["data"]["ca.crt"]).replace('\n', "");
            use base64::Engine as _;
            let ca = base64::engine::general_purpose::STANDARD.decode(&ca_b64).unwrap();
            assert_eq!(String::from_utf8(ca).unwrap(), *DEV_CA_PEM.get().unwrap(), "{n}: Secret ca.crt");
            for cfg in r.webhook_configs() {
                for wh in cfg["webhooks"].as_array().unwrap() {
                    let bundle = str_of(&wh["clientConfig"]["caBundle"]).replace('\n', "");
                    assert_eq!(bundle, ca_b64, "{n}: caBundle must be the generated CA");
                }
            }
        }
    }
}

#[test]
fn every_namespace_reference_follows_the_install_namespace() {
    for r in installs() {
        let n = &r.name;
        let ns = r.namespace();
        let system = r.env("CREDENTIAL_WEBHOOK_SYSTEM_NAMESPACE").unwrap();
        for d in &r.docs {
            let kind = str_of(&d["kind"]);
            let name = str_of(&d["metadata"]["name"]);
            if let Some(obj_ns) = d["metadata"]["namespace"].as_str() {
                let expected = if name == "credential-webhook-system-secrets" { &system } else { &ns };
                assert_eq!(obj_ns, expected, "{n}: {kind} {name} namespace");
            }
            if kind.ends_with("Binding") {
                for s in d["subjects"].as_array().unwrap() {
                    assert_eq!(s["name"], SA_NAME, "{n}: {kind} {name}");
                    assert_eq!(str_of(&s["namespace"]), ns, "{n}: {kind} {name} subject namespace");
                }
            }
            // Every object we own is found by the uninstall selector.
            assert_eq!(
                d["metadata"]["labels"]["app.kubernetes.io/name"], "credential-webhook",
                "{n}: {kind} {name} label"
            );
        }
    }
    assert_eq!(render("deploy").namespace(), "kcm-system");
    let other = render("deploy/overlays/other-namespace");
    assert_ne!(other.namespace(), "kcm-system", "the other-namespace example must move the webhook");
    assert_eq!(other.env("CREDENTIAL_WEBHOOK_SYSTEM_NAMESPACE").unwrap(), "kcm-system");
}

/// No install creates, and so owns, a Namespace: the webhook's namespace exists before the install
/// (kcm-system is KCM's; another one is the user's), and an owned Namespace would be deleted with
/// everything in it by `kubectl delete -k`, Flux or Argo CD pruning.
#[test]
fn no_render_creates_a_namespace_least_of_all_kcm_system() {
    for r in renders() {
        let kcm: Vec<_> = r.all("Namespace").filter(|d| d["metadata"]["name"] == "kcm-system").collect();
        assert!(
            kcm.is_empty(),
            "{}: renders Namespace kcm-system, which belongs to KCM: remove the Namespace object from the \
             kustomization (pruning or uninstalling would delete KCM's namespace)",
            r.name
        );
        let names: Vec<&str> = r.all("Namespace").map(|d| str_of(&d["metadata"]["name"])).collect();
        assert!(
            names.is_empty(),
            "{}: renders Namespace {names:?}: installs create no Namespace; document `kubectl create namespace` \
             as a step before the install instead",
            r.name
        );
    }
}

/// (apiGroup, resource) -> verbs granted, with where (cluster-wide or one namespace).
#[derive(Debug, Default)]
struct Grants {
    cluster: BTreeMap<(String, String), BTreeSet<String>>,
    namespaced: BTreeMap<(String, String, String), BTreeSet<String>>,
}

impl Grants {
    fn of(r: &Render) -> Grants {
        let mut g = Grants::default();
        let rules_of =
            |kind: &str, name: &str| -> Vec<Value> { r.one(kind, name)["rules"].as_array().unwrap().clone() };
        for b in r.all("ClusterRoleBinding").chain(r.all("RoleBinding")) {
            let role = rules_of(str_of(&b["roleRef"]["kind"]), str_of(&b["roleRef"]["name"]));
            let scope = b["metadata"]["namespace"].as_str().map(str::to_string);
            for rule in role {
                for group in strings(&rule["apiGroups"]) {
                    for res in strings(&rule["resources"]) {
                        let verbs: BTreeSet<String> = strings(&rule["verbs"]).into_iter().collect();
                        match &scope {
                            None => g.cluster.entry((group.clone(), res.clone())).or_default().extend(verbs),
                            Some(ns) => {
                                g.namespaced.entry((ns.clone(), group.clone(), res.clone())).or_default().extend(verbs)
                            }
                        }
                    }
                }
            }
        }
        g
    }
    fn allows(&self, ns: Option<&str>, group: &str, res: &str, verb: &str) -> bool {
        let key = (group.to_string(), res.to_string());
        self.cluster.get(&key).is_some_and(|v| v.contains(verb))
            || ns.is_some_and(|ns| {
                self.namespaced.get(&(ns.to_string(), key.0.clone(), key.1.clone())).is_some_and(|v| v.contains(verb))
            })
    }
}

/// Typed API uses in webhook/src, mapped to the (group, resource) they need read access to.
const TYPED_APIS: &[(&str, &str, &str)] = &[
    ("Secret", "", "secrets"),
    ("Lease", "coordination.k8s.io", "leases"),
    ("CustomResourceDefinition", "apiextensions.k8s.io", "customresourcedefinitions"),
    ("Event", "events.k8s.io", "events"),
    ("ConfigMap", "", "configmaps"),
    ("Namespace", "", "namespaces"),
];

#[test]
fn rbac_covers_what_the_code_calls_and_nothing_broader() {
    let src = webhook_source();
    for r in installs() {
        let n = &r.name;
        let ns = r.namespace();
        let system = r.env("CREDENTIAL_WEBHOOK_SYSTEM_NAMESPACE").unwrap();
        let g = Grants::of(r);

        for (scope, group, res, verb) in needs(&ns, &system) {
            assert!(g.allows(scope.as_deref(), group, res, verb), "{n}: RBAC lacks {verb} {group}/{res} in {scope:?}");
        }

        // Derived from the code: every typed Api the webhook builds for the management cluster.
        for (ty, group, res) in TYPED_APIS {
            let used = [format!("Api<{ty}>"), format!("Api::<{ty}>"), format!("PartialObjectMeta<{ty}>")]
                .iter()
                .any(|p| src.contains(p.as_str()));
            if used && *res != "events" {
                let scope = if *res == "secrets" { Some(system.as_str()) } else { Some(ns.as_str()) };
                assert!(g.allows(scope, group, res, "get"), "{n}: webhook/src uses Api<{ty}> but RBAC grants no get");
            }
        }

        // Lease reads and renewals are limited to the Lease the code uses.
        let lease_role = r.one("Role", "credential-webhook-leader-election");
        for rule in lease_role["rules"].as_array().unwrap() {
            let verbs = strings(&rule["verbs"]);
            if verbs.iter().any(|v| v != "create") {
                let names = strings(&rule["resourceNames"]);
                assert!(!names.is_empty(), "{n}: get/update on leases must name the Lease");
                for lease in names {
                    // The name lives in the core (the plugin reads the Lease too); the webhook uses it.
                    assert!(
                        lease == credential_core::distribution::DISTRIBUTION_LEASE
                            && src.contains("DISTRIBUTION_LEASE"),
                        "{n}: Lease {lease} is not the one webhook/src uses"
                    );
                }
            }
        }

        // Nothing broader: no wildcards, Secrets never cluster-wide, writes only from the list.
        let writes: BTreeSet<(&str, &str, &str)> = [
            (K0RDENT_GROUP, "credentials/status", "patch"),
            (K0RDENT_GROUP, "credentials", "patch"),
            ("events.k8s.io", "events", "create"),
            ("events.k8s.io", "events", "patch"),
            ("coordination.k8s.io", "leases", "create"),
            ("coordination.k8s.io", "leases", "update"),
            ("", "configmaps", "create"),
            ("", "configmaps", "patch"),
        ]
        .into_iter()
        .collect();
        let all = g
            .cluster
            .iter()
            .map(|((gr, res), v)| (None, gr, res, v))
            .chain(g.namespaced.iter().map(|((s, gr, res), v)| (Some(s), gr, res, v)));
        for (scope, group, res, verbs) in all {
            assert!(group != "*" && res != "*" && !res.ends_with("/*"), "{n}: wildcard resource {group}/{res}");
            for verb in verbs {
                assert_ne!(verb, "*", "{n}: wildcard verb on {group}/{res}");
                if !["get", "list", "watch"].contains(&verb.as_str()) {
                    assert!(
                        writes.contains(&(group.as_str(), res.as_str(), verb.as_str())),
                        "{n}: unexpected write {verb} {group}/{res}"
                    );
                }
            }
            if res == "secrets" {
                assert_eq!(
                    scope.map(String::as_str),
                    Some(system.as_str()),
                    "{n}: Secrets only in the system namespace"
                );
            }
            if res == "configmaps" {
                assert_eq!(
                    scope.map(String::as_str),
                    Some(system.as_str()),
                    "{n}: ConfigMaps (the orphaned-copies record) only in the system namespace"
                );
                assert!(
                    src.contains("credential-guard-orphaned-copies"),
                    "{n}: the ConfigMap granted is the one webhook/src writes"
                );
            }
            if res == "leases" {
                assert_eq!(scope.map(String::as_str), Some(ns.as_str()), "{n}: Leases only in the webhook namespace");
            }
            // No escalation paths.
            for forbidden in ["roles", "clusterroles", "rolebindings", "clusterrolebindings", "serviceaccounts/token"] {
                assert_ne!(res, forbidden, "{n}");
            }
        }
    }
}

// ---- cluster-wide API access, derived from the source ---------------------------------------

/// The CAPI identity kinds the ClusterRole enumerates (those k0rdent ships ProviderInterfaces for).
const IDENTITY_KINDS: &[&str] = &[
    "awsclusterstaticidentities",
    "awsclusterroleidentities",
    "awsclustercontrolleridentities",
    "azureclusteridentities",
    "vsphereclusteridentities",
    "openstackclusteridentities",
];
/// Of those, the namespaced ones (managed copies in the management cluster may write them).
const NAMESPACED_IDENTITY_KINDS: &[&str] = &["azureclusteridentities"];
const INFRA: &str = "infrastructure.cluster.x-k8s.io";

/// One cluster-wide API the webhook builds: where (file under webhook/src), the ApiResource
/// expression passed to `Api::all_with` (or `Api<T>` for a typed `Api::all`), what it reaches in the
/// management cluster with the webhook's ServiceAccount and with which verbs.
struct ClusterWide {
    file: &'static str,
    expr: &'static str,
    /// (apiGroup, resource); the pseudo-resource "<identity kinds>" stands for [`IDENTITY_KINDS`].
    resources: &'static [(&'static str, &'static str)],
    verbs: &'static [&'static str],
    /// Text that must be in the same file: the guard that keeps this call off the management
    /// cluster, when `resources` is empty.
    guard: Option<&'static str>,
}

/// The table a new cluster-wide call must be added to: the scan fails on any call not listed, and
/// each entry is checked against the ClusterRole. Keep `expr` names telling (`region_ar`, not `ar`).
const CLUSTER_WIDE: &[ClusterWide] = &[
    // The one watch layer (webhook/src/informer/): every watch of the process goes through it.
    // Cluster-wide in the management cluster: the admission index's fixed kinds (credentials,
    // regions, providerinterfaces, clusterdeployments, CRDs; its Secrets watch has the system
    // namespace), the identity kinds (index and distributor: core kinds only ever per namespace,
    // see the distributor's `watch_key`), Management and Release (the mode control). Copy watches
    // are cluster-wide only in regional clusters (regional kubeconfig).
    ClusterWide {
        file: "informer/watches.rs",
        expr: "ar",
        resources: &[
            (K0RDENT_GROUP, "credentials"),
            (K0RDENT_GROUP, "regions"),
            (K0RDENT_GROUP, "providerinterfaces"),
            (K0RDENT_GROUP, "clusterdeployments"),
            (K0RDENT_GROUP, "managements"),
            (K0RDENT_GROUP, "releases"),
            ("apiextensions.k8s.io", "customresourcedefinitions"),
            (INFRA, "<identity kinds>"),
        ],
        verbs: &["list", "watch"],
        guard: None,
    },
    // Admission's live confirmation that a referenced Region, ClusterDeployment or Credential is
    // really missing before a real write is denied (one GET by name).
    ClusterWide {
        file: "cache/secrets.rs",
        expr: "k0rdent_ar",
        resources: &[(K0RDENT_GROUP, "regions"), (K0RDENT_GROUP, "credentials"), (K0RDENT_GROUP, "clusterdeployments")],
        verbs: &["get"],
        guard: None,
    },
    // A Region the shared watch has not listed yet, read by name.
    ClusterWide {
        file: "distribution/engine/connections.rs",
        expr: "region_ar",
        resources: &[(K0RDENT_GROUP, "regions")],
        verbs: &["get"],
        guard: None,
    },
    // KCM's version for the distribution mode: Management `kcm` and the Release it names (one GET
    // each per change).
    ClusterWide {
        file: "distribution/mode.rs",
        expr: "management_ar",
        resources: &[(K0RDENT_GROUP, "managements")],
        verbs: &["get"],
        guard: None,
    },
    ClusterWide {
        file: "distribution/mode.rs",
        expr: "release_ar",
        resources: &[(K0RDENT_GROUP, "releases")],
        verbs: &["get"],
        guard: None,
    },
    // Namespaces are created only in regional clusters.
    ClusterWide {
        file: "distribution/cluster.rs",
        expr: "namespace_ar",
        resources: &[],
        verbs: &[],
        guard: Some("if self.cluster == Cluster::Management"),
    },
    // `ClusterConn::api` for cluster-scoped kinds: sources read by name in the management cluster
    // (cluster-scoped identities); copies written only in regional clusters (managed copies in the
    // management cluster are namespaced, and a cluster-scoped source is its own copy there).
    ClusterWide {
        file: "distribution/cluster.rs",
        expr: "ar",
        resources: &[(INFRA, "<identity kinds>")],
        verbs: &["get"],
        guard: None,
    },
    // `credential-webhook preflight` runs with the operator's kubeconfig, not as the ServiceAccount:
    // nothing to grant it.
    ClusterWide {
        file: "preflight.rs",
        expr: "Api<CustomResourceDefinition>",
        resources: &[],
        verbs: &[],
        guard: Some(PREFLIGHT_GUARD),
    },
    ClusterWide {
        file: "preflight.rs",
        expr: "Api<ValidatingWebhookConfiguration>",
        resources: &[],
        verbs: &[],
        guard: Some(PREFLIGHT_GUARD),
    },
    ClusterWide {
        file: "preflight.rs",
        expr: "Api<MutatingWebhookConfiguration>",
        resources: &[],
        verbs: &[],
        guard: Some(PREFLIGHT_GUARD),
    },
    ClusterWide {
        file: "preflight.rs",
        expr: "Api<SubjectAccessReview>",
        resources: &[],
        verbs: &[],
        guard: Some(PREFLIGHT_GUARD),
    },
    ClusterWide { file: "preflight.rs", expr: "region_ar", resources: &[], verbs: &[], guard: Some(PREFLIGHT_GUARD) },
];

/// What preflight.rs says of itself: it is not the ServiceAccount's code.
const PREFLIGHT_GUARD: &str = "never as the webhook's ServiceAccount";

/// One `Api::all_with(client, <expr>)` / `Api::<T>::all(client)` call found in the source.
#[derive(Debug)]
struct CallSite {
    file: String,
    line: usize,
    expr: String,
}

/// The arguments of the call whose `(` is at `open`, split at top-level commas.
fn call_args(text: &str, open: usize) -> Vec<String> {
    let mut depth = 0;
    let mut args = vec![String::new()];
    for c in text[open..].chars() {
        match c {
            '(' | '[' | '{' | '<' if depth > 0 || c == '(' => {
                depth += 1;
                if depth == 1 {
                    continue;
                }
            }
            ')' | ']' | '}' | '>' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => {
                args.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = args.last_mut() {
            last.push(c);
        }
    }
    args.into_iter().map(|a| a.trim().trim_start_matches('&').trim().to_string()).filter(|a| !a.is_empty()).collect()
}

/// Every cluster-wide Api construction in `(file, text)` pairs, test modules and comments excluded.
fn cluster_wide_calls(files: &[(String, String)]) -> Vec<CallSite> {
    let mut out = Vec::new();
    for (file, text) in files {
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
        let mut offset = 0;
        for (n, line) in code.lines().enumerate() {
            let start = offset;
            offset += line.len() + 1;
            if line.trim_start().starts_with("//") {
                continue;
            }
            for (pat, typed) in [("::all_with(", false), ("::all(", true)] {
                let mut from = 0;
                while let Some(i) = line[from..].find(pat) {
                    let at = from + i;
                    from = at + pat.len();
                    let before = &line[..at];
                    if !(before.ends_with("Api") || before.ends_with('>')) {
                        continue;
                    }
                    let expr = if typed {
                        // `Api::<T>::all(..)` or `let api: Api<T> = Api::all(..)`: the type is the resource.
                        let ty = line.split("Api<").nth(1).or_else(|| line.split("Api::<").nth(1)).unwrap_or("?");
                        format!("Api<{}>", ty.split('>').next().unwrap_or("?"))
                    } else {
                        call_args(code, start + at + pat.len() - 1).get(1).cloned().unwrap_or_default()
                    };
                    out.push(CallSite { file: file.clone(), line: n + 1, expr });
                }
            }
        }
    }
    out
}

/// What is wrong with these call sites against [`CLUSTER_WIDE`] (empty: nothing).
fn cluster_wide_violations(calls: &[CallSite], files: &[(String, String)]) -> Vec<String> {
    let mut v = Vec::new();
    for c in calls {
        let at = format!("webhook/src/{}:{}", c.file, c.line);
        if c.expr.to_lowercase().contains("secret") {
            v.push(format!("{at}: Secrets accessed cluster-wide ({}); RBAC grants them per namespace only", c.expr));
            continue;
        }
        if !CLUSTER_WIDE.iter().any(|e| e.file == c.file && e.expr == c.expr) {
            v.push(format!(
                "{at}: cluster-wide access through `{}` is not in CLUSTER_WIDE (deploy_invariants.rs): check that the \
                 ClusterRole grants it (or make it namespaced) and add it",
                c.expr
            ));
        }
    }
    for e in CLUSTER_WIDE {
        if !calls.iter().any(|c| c.file == e.file && c.expr == e.expr) {
            v.push(format!("CLUSTER_WIDE lists {} `{}`, which webhook/src no longer has: remove it", e.file, e.expr));
        }
        if e.resources.iter().any(|(_, r)| *r == "secrets") {
            v.push(format!("CLUSTER_WIDE maps {} `{}` to secrets: never cluster-wide", e.file, e.expr));
        }
        if let Some(guard) = e.guard {
            let text = files.iter().find(|(f, _)| f == e.file).map(|(_, t)| t.as_str()).unwrap_or_default();
            if !text.contains(guard) {
                v.push(format!("{}: the guard `{guard}` that keeps `{}` in its scope is gone", e.file, e.expr));
            }
        }
    }
    v
}

/// webhook/src/**/*.rs as (path under webhook/src, text).
fn webhook_files() -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let root = repo_root().join("webhook/src");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

#[test]
fn every_cluster_wide_access_is_granted_and_secrets_never_are() {
    let files = webhook_files();
    let calls = cluster_wide_calls(&files);
    assert!(calls.len() >= CLUSTER_WIDE.len(), "the scan found too little: {calls:?}");
    let violations = cluster_wide_violations(&calls, &files);
    assert!(violations.is_empty(), "{}", violations.join("\n"));

    for r in installs() {
        let g = Grants::of(r);
        for e in CLUSTER_WIDE {
            for (group, res) in e.resources {
                let resources: Vec<&str> = if *res == "<identity kinds>" { IDENTITY_KINDS.to_vec() } else { vec![res] };
                for res in resources {
                    for verb in e.verbs {
                        assert!(
                            g.cluster.get(&(group.to_string(), res.to_string())).is_some_and(|v| v.contains(*verb)),
                            "{}: webhook/src/{} uses `{}` cluster-wide but no ClusterRole bound cluster-wide grants \
                             {verb} {group}/{res}",
                            r.name,
                            e.file,
                            e.expr
                        );
                    }
                }
            }
        }
        assert!(!g.cluster.keys().any(|(_, res)| res == "secrets"), "{}: Secrets granted cluster-wide", r.name);
    }

    // Typed Secret APIs are namespaced; the dynamic Secret watch of distribution is per namespace.
    for (file, text) in &files {
        for (n, line) in text.lines().enumerate() {
            if line.contains("Api<Secret>") || line.contains("Api::<Secret>") {
                assert!(line.contains("Api::namespaced("), "webhook/src/{file}:{}: {line}", n + 1);
            }
        }
    }
}

/// The opt-in role for managed copies in the management cluster: shipped, bound by nothing (the
/// operator binds it per namespace), writes only Secrets and the namespaced identity kinds.
#[test]
fn managed_copies_role_is_opt_in_and_narrow() {
    const ROLE: &str = "credential-webhook-managed-copies";
    for r in installs() {
        let role = r.one("ClusterRole", ROLE);
        for b in r.all("ClusterRoleBinding").chain(r.all("RoleBinding")) {
            assert_ne!(str_of(&b["roleRef"]["name"]), ROLE, "{}: {ROLE} must stay unbound (opt-in)", r.name);
        }
        for rule in role["rules"].as_array().unwrap() {
            let group = strings(&rule["apiGroups"]);
            for res in strings(&rule["resources"]) {
                let ok = (group == [""] && res == "secrets")
                    || (group == [INFRA] && NAMESPACED_IDENTITY_KINDS.contains(&res.as_str()));
                assert!(ok, "{}: {ROLE} grants {group:?}/{res}", r.name);
            }
            for verb in strings(&rule["verbs"]) {
                assert!(
                    ["get", "create", "patch", "delete"].contains(&verb.as_str()),
                    "{}: {ROLE} verb {verb}",
                    r.name
                );
            }
        }
    }
    let page = std::fs::read_to_string(repo_root().join(RBAC_PAGE)).unwrap();
    assert!(page.contains(ROLE), "{RBAC_PAGE} must tell when to bind {ROLE}");
}

/// The scan catches the bug it exists for: a metadata watch on Secrets across all namespaces (what
/// distribution once did), an unlisted cluster-wide call, and a typed one.
#[test]
fn the_cluster_wide_scan_flags_secret_watches_and_unlisted_calls() {
    let bad = |src: &str| {
        let files = vec![("distribution/mod.rs".to_string(), src.to_string())];
        let calls = cluster_wide_calls(&files);
        cluster_wide_violations(&calls, &files)
    };
    let v = bad("let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(mgmt.clone(), &secret_ar);\n");
    assert!(v.iter().any(|m| m.contains("mod.rs:1: Secrets accessed cluster-wide")), "{v:?}");
    let v = bad("let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(mgmt.clone(), &ar);\n");
    assert!(v.iter().any(|m| m.contains("mod.rs:1: cluster-wide access through `ar` is not in CLUSTER_WIDE")), "{v:?}");
    let v = bad("    let secrets: Api<Secret> = Api::all(client.clone());\n");
    assert!(v.iter().any(|m| m.contains("Secrets accessed cluster-wide (Api<Secret>)")), "{v:?}");
    let v = bad("let a = Api::<Lease>::all(c);\n// Api::all_with(c, &ar) in a comment\n");
    assert!(v.iter().any(|m| m.contains("`Api<Lease>` is not in CLUSTER_WIDE")), "{v:?}");
    assert!(!v.iter().any(|m| m.contains("mod.rs:2")), "comments are not code: {v:?}");
    // Multi-line calls and nested expressions.
    let v = bad("Api::all_with(\n    mgmt.clone(),\n    &known(&Gvk::secret()).0,\n)");
    assert!(v.iter().any(|m| m.contains("Secrets accessed cluster-wide")), "{v:?}");
}

#[test]
fn operator_guide_uses_the_names_the_code_uses() {
    // Each page must hold what an operator reading it needs: the uninstall loop removes exactly the
    // finalizer distribution adds; the other names are the ones an operator greps for.
    let pages: [(&str, &[&str]); 3] = [
        (
            "docs/src/operator/install.md",
            &[
                labels::DISTRIBUTION_FINALIZER,
                labels::MANAGED,
                "kubectl apply -k deploy/",
                "kubectl delete validatingwebhookconfiguration credential-webhook",
                "kubectl delete -k deploy/",
            ],
        ),
        (RBAC_PAGE, &[labels::DISTRIBUTED_CONDITION]),
        (
            "docs/src/operator/webhook-down.md",
            &[labels::COMPONENT, labels::REGION, "kubectl delete validatingwebhookconfiguration credential-webhook"],
        ),
    ];
    for (page, names) in pages {
        let text = std::fs::read_to_string(repo_root().join(page)).unwrap();
        for name in names {
            assert!(text.contains(name), "{page} must name `{name}`");
        }
    }
}
