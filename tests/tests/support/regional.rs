//! Real management and regional clusters (tests/kube-test-cluster, one apiserver process each) for the
//! distribution, webhook-distribution, fault and deploy suites: seeding objects the way an operator or
//! KCM would (namespaces first, `status` through the status subresource), reading them back, the
//! shipped ServiceAccount and RBAC with a real token, Regions whose kubeconfig Secret holds a regional
//! cluster's self-contained kubeconfig, and a TCP proxy that can wedge like a hung load balancer.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use credential_e2e::{ClusterOptions, KubeCluster};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Scope;
use serde_json::{Value, json};

use super::{SYS, b64};

/// The ServiceAccount of deploy/ that the webhook and the distributor run as.
pub use super::real::WEBHOOK_SA;
const SEED_MANAGER: &str = "e2e-seed";
/// The field manager KCM's controller writes Credential and Region status with.
const KCM_MANAGER: &str = "manager";

/// One real cluster with an admin client and a cache of the resources it serves.
pub struct Real {
    pub cluster: KubeCluster,
    pub admin: kube::Client,
    resources: Mutex<HashMap<(String, String), (ApiResource, bool)>>,
}

impl std::ops::Deref for Real {
    type Target = KubeCluster;
    fn deref(&self) -> &KubeCluster {
        &self.cluster
    }
}

fn gvk_of(api_version: &str, kind: &str) -> GroupVersionKind {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    GroupVersionKind::gvk(group, version, kind)
}

/// A real cluster named `name`: apiserver with the test CRDs, without the controller-manager unless
/// `controller_manager` (nothing in these suites deletes namespaces or relies on garbage collection).
pub async fn start(name: &str, controller_manager: bool) -> Real {
    let options = ClusterOptions { controller_manager, ..ClusterOptions::new(name) };
    let cluster = KubeCluster::start(options).await.unwrap();
    let admin = cluster.client().await.unwrap();
    let real = Real { cluster, admin, resources: Mutex::default() };
    real.ensure_namespace(SYS).await;
    real
}

impl Real {
    /// The API resource for `api_version`/`kind` and whether it is namespaced (discovery, cached).
    pub async fn resource(&self, api_version: &str, kind: &str) -> (ApiResource, bool) {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(found) = self.resources.lock().unwrap().get(&key) {
            return found.clone();
        }
        let (ar, caps) = kube::discovery::pinned_kind(&self.admin, &gvk_of(api_version, kind))
            .await
            .unwrap_or_else(|e| panic!("{kind}.{api_version} not served by {}: {e}", self.name()));
        let found = (ar, caps.scope == Scope::Namespaced);
        self.resources.lock().unwrap().insert(key, found.clone());
        found
    }

    pub async fn api(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Api<DynamicObject> {
        let (ar, namespaced) = self.resource(api_version, kind).await;
        match namespace {
            Some(ns) if namespaced => Api::namespaced_with(self.admin.clone(), ns, &ar),
            _ => Api::all_with(self.admin.clone(), &ar),
        }
    }

    /// Creates namespace `ns` unless it exists.
    pub async fn ensure_namespace(&self, ns: &str) {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.admin.clone());
        let obj = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("create namespace {ns} in {}: {e}", self.name()),
        }
    }

    /// Stores `obj` as an operator would: its namespace created first, the object server-side applied
    /// (forced, one field manager, so a second seed replaces what the first set), then any `status`
    /// written through the status subresource (as the owning controller would).
    pub async fn seed(&self, obj: Value) -> Value {
        let av = obj["apiVersion"].as_str().unwrap();
        let kind = obj["kind"].as_str().unwrap();
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
        if let Some(ns) = ns {
            self.ensure_namespace(ns).await;
        }
        let api = self.api(av, kind, ns).await;
        let mut body = obj.clone();
        let status = body.as_object_mut().unwrap().remove("status");
        let stored = api
            .patch(&name, &PatchParams::apply(SEED_MANAGER).force(), &Patch::Apply(&body))
            .await
            .unwrap_or_else(|e| panic!("seed {kind} {name} into {}: {e}", self.name()));
        let stored = match status {
            Some(status) => api
                .patch_status(
                    &name,
                    &PatchParams::apply(KCM_MANAGER).force(),
                    &Patch::Apply(&status_body(&obj, status)),
                )
                .await
                .unwrap_or_else(|e| panic!("status of {kind} {name} in {}: {e}", self.name())),
            None => stored,
        };
        serde_json::to_value(stored).unwrap()
    }

    /// Seeds every document of `yaml`.
    pub async fn seed_yaml(&self, yaml: &str) {
        for doc in credential_core::yaml::parse_documents(yaml, "seed").unwrap() {
            self.seed(doc).await;
        }
    }

    /// The stored object, if any.
    pub async fn get(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let api = self.api(api_version, kind, namespace).await;
        match api.get_opt(name).await {
            Ok(found) => found.map(|o| serde_json::to_value(o).unwrap()),
            // A paused, stopped or restarting apiserver: "not seen yet" to a poller.
            Err(_) => None,
        }
    }

    /// Whether the object is gone (a definite NotFound, not an unreachable server).
    pub async fn absent(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> bool {
        let api = self.api(api_version, kind, namespace).await;
        matches!(api.get_opt(name).await, Ok(None))
    }

    /// The stored objects of a kind (in `namespace`, or all), empty if the server does not answer.
    pub async fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let api = self.api(api_version, kind, namespace).await;
        api.list(&ListParams::default())
            .await
            .map(|l| l.items.into_iter().map(|o| serde_json::to_value(o).unwrap()).collect())
            .unwrap_or_default()
    }

    /// The shipped ServiceAccount and RBAC of deploy/ in this cluster, and a real token of it (TokenRequest).
    pub async fn shipped_webhook_token(&self) -> String {
        super::real::shipped_webhook_token(&self.cluster).await
    }

    /// A kube client holding a real token of the shipped ServiceAccount (installed with its RBAC).
    pub async fn shipped_webhook_client(&self) -> kube::Client {
        let token = self.shipped_webhook_token().await;
        self.client_for_token(&token).await.unwrap()
    }

    /// The documented grant for Secrets outside the system namespace (docs/src/operator/rbac.md):
    /// RoleBinding credential-webhook-secrets in `ns` to ClusterRole credential-webhook-system-secrets.
    pub async fn grant_secret_reads(&self, ns: &str) {
        self.bind(ns, "credential-webhook-secrets", "credential-webhook-system-secrets").await;
    }

    /// The documented opt-in grant for AccessManagement copies in `ns` (docs/src/operator/rbac.md).
    pub async fn grant_managed_copies(&self, ns: &str) {
        self.bind(ns, "credential-webhook-managed-copies", "credential-webhook-managed-copies").await;
    }

    /// RoleBinding `name` in `ns` of ClusterRole `role` to the shipped ServiceAccount.
    pub async fn bind(&self, ns: &str, name: &str, role: &str) {
        self.ensure_namespace(ns).await;
        self.apply(&format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: {name}, namespace: {ns}}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role}}}\n\
             subjects: [{{kind: ServiceAccount, name: {WEBHOOK_SA}, namespace: {SYS}}}]\n"
        ))
        .await
        .unwrap();
    }

    /// What KCM's controller does after a Credential is created: writes `status.ready` with its own
    /// field manager (so our condition is applied next to a status KCM owns, as in production).
    pub async fn kcm_reconciled(&self, ns: &str, name: &str) {
        let api = self.api(CRED_AV, "Credential", Some(ns)).await;
        let status = json!({"apiVersion": CRED_AV, "kind": "Credential",
            "metadata": {"name": name, "namespace": ns}, "status": {"ready": true}});
        api.patch_status(name, &PatchParams::apply(KCM_MANAGER).force(), &Patch::Apply(&status))
            .await
            .unwrap_or_else(|e| panic!("KCM status of Credential {ns}/{name}: {e}"));
    }

    /// Sum of `apiserver_request_total` for resource requests (not `/metrics`, discovery or health).
    pub async fn resource_requests(&self) -> f64 {
        let text = self.metrics().await.unwrap();
        resource_request_sum(&text)
    }
}

/// `apiserver_request_total` summed over samples that name a resource.
pub fn resource_request_sum(text: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{") && !l.contains("resource=\"\""))
        .filter(|l| l.contains("resource=\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// `apiserver_request_total` per (verb, resource) for resource requests, summed over other labels.
pub fn requests_by_verb_resource(text: &str) -> std::collections::BTreeMap<(String, String), f64> {
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        let label = |name: &str| -> Option<String> {
            let start = line.find(&format!("{name}=\""))? + name.len() + 2;
            Some(line[start..].split('"').next()?.to_string())
        };
        let (Some(verb), Some(resource)) = (label("verb"), label("resource")) else { continue };
        if resource.is_empty() {
            continue;
        }
        let Some(value) = line.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()) else { continue };
        *out.entry((verb, resource)).or_insert(0.0) += value;
    }
    out
}

fn status_body(obj: &Value, status: Value) -> Value {
    let mut metadata = json!({"name": obj["metadata"]["name"]});
    if let Some(ns) = obj.pointer("/metadata/namespace") {
        metadata["namespace"] = ns.clone();
    }
    json!({"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": metadata, "status": status})
}

pub const CRED_AV: &str = "k0rdent.mirantis.com/v1beta1";

/// Region `name` (Ready, as KCM reports it) whose kubeconfig Secret holds `kubeconfig`.
pub async fn register_region(mgmt: &Real, name: &str, kubeconfig: &str) {
    mgmt.seed(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("{name}-kubeconfig"), "namespace": SYS},
        "data": {"value": b64(kubeconfig)}}))
        .await;
    mgmt.seed(json!({"apiVersion": CRED_AV, "kind": "Region", "metadata": {"name": name},
        "spec": {"kubeConfig": {"name": format!("{name}-kubeconfig"), "key": "value"}},
        "status": {"ready": true, "conditions": [{"type": "Ready", "status": "True", "reason": "AllComponentsHealthy",
            "message": "All components are successfully installed", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}))
        .await;
}

/// A kubeconfig for `cluster` (its admin token) whose server is `url` instead (e.g. a proxy in front).
pub fn kubeconfig_via(cluster: &KubeCluster, url: &str) -> String {
    cluster.kubeconfig_yaml().replace(cluster.server(), url)
}

/// A kube client for `kubeconfig_yaml`.
pub async fn client_from(kubeconfig_yaml: &str) -> kube::Client {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig_yaml).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
    kube::Client::try_from(cfg).unwrap()
}

/// The port of `https://127.0.0.1:PORT`.
pub fn port_of(cluster: &KubeCluster) -> u16 {
    cluster.server().rsplit(':').next().unwrap().trim_end_matches('/').parse().unwrap()
}

/// A TCP proxy that can wedge, like a hung load balancer: while stalled it still accepts connections but
/// forwards nothing in either direction, on new and already open connections. Requests get no answer and
/// open watches go quiet without closing. TLS passes through untouched (the certificate is for 127.0.0.1).
pub struct StallProxy {
    port: u16,
    stalled: Arc<AtomicBool>,
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl StallProxy {
    pub async fn start(upstream: u16) -> StallProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stalled = Arc::new(AtomicBool::new(false));
        let tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (st, ts) = (Arc::clone(&stalled), Arc::clone(&tasks));
        let accept = tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let st = Arc::clone(&st);
                let conn = tokio::spawn(async move {
                    if st.load(Ordering::SeqCst) {
                        // Accepted, never answered: the socket stays open until the proxy goes.
                        return hold_open(down).await;
                    }
                    let Ok(up) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else { return };
                    let ((dr, dw), (ur, uw)) = (down.into_split(), up.into_split());
                    tokio::join!(pump(dr, uw, &st), pump(ur, dw, &st));
                });
                ts.lock().unwrap().push(conn.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        StallProxy { port, stalled, tasks }
    }

    /// `https://127.0.0.1:PORT` (the proxied server speaks TLS).
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }

    /// New connections work again (the wedged ones stay wedged, as after a real outage).
    pub fn resume(&self) {
        self.stalled.store(false, Ordering::SeqCst);
    }
}

async fn hold_open(_socket: tokio::net::TcpStream) {
    std::future::pending::<()>().await;
}

async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, stalled: &AtomicBool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if stalled.load(Ordering::SeqCst) {
            std::future::pending::<()>().await; // swallowed: the other side waits forever
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// How long the polls of these suites wait (real servers, debug builds, two shared cores).
pub const WAIT: Duration = Duration::from_secs(45);
