//! Test support: certificates from `credential-webhook certs`, an in-process server on 127.0.0.1:0,
//! HTTPS clients (HTTP/1.1 and HTTP/2) that verify against the generated CA, and fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use credential_core::estate::{Cluster, MemoryEstate};
use credential_webhook::cache::ServingEstate;
use credential_webhook::metrics::Metrics;
use credential_webhook::server::{RunningServer, ServerBuilder, ServerConfig};
use credential_webhook::sink::AdmittedChangeSink;
use credential_webhook::tls::TlsFiles;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_credential-webhook");

/// Runs `credential-webhook certs --out dir --host localhost --host 127.0.0.1`.
pub fn make_certs(dir: &Path) {
    let out = std::process::Command::new(BIN)
        .args(["certs", "--out"])
        .arg(dir)
        .args(["--host", "localhost", "--host", "127.0.0.1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "certs failed: {}", String::from_utf8_lossy(&out.stderr));
    for f in ["ca.crt", "tls.crt", "tls.key"] {
        assert!(dir.join(f).is_file(), "{f} written");
    }
}

pub fn config(cert: PathBuf, key: PathBuf) -> ServerConfig {
    let mut cfg =
        ServerConfig::new(TlsFiles { cert_file: cert, key_file: key, poll_interval: Duration::from_millis(200) });
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.admin_listen = "127.0.0.1:0".parse().unwrap();
    cfg.shutdown_delay = Duration::ZERO;
    cfg.shutdown_timeout = Duration::from_secs(5);
    cfg
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub server: RunningServer,
    pub ca: PathBuf,
}

pub async fn start(estate: Arc<dyn ServingEstate>, sink: Option<Arc<dyn AdmittedChangeSink>>) -> Harness {
    start_with(estate, sink, |_| {}).await
}

pub async fn start_with(
    estate: Arc<dyn ServingEstate>,
    sink: Option<Arc<dyn AdmittedChangeSink>>,
    tweak: impl FnOnce(&mut ServerConfig),
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let mut cfg = config(dir.path().join("tls.crt"), dir.path().join("tls.key"));
    tweak(&mut cfg);
    let mut b = ServerBuilder::new(cfg, estate).metrics(Arc::new(Metrics::new()));
    if let Some(s) = sink {
        b = b.sink(s);
    }
    let server = b.start().await.unwrap();
    let ca = dir.path().join("ca.crt");
    Harness { dir, server, ca }
}

pub fn roots(ca: &Path) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    roots
}

pub fn client_config(ca: &Path) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(credential_webhook::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(ca))
        .with_no_client_auth()
}

pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    H1,
    H2,
}

/// An HTTPS client speaking only `proto` (ALPN), verifying the server against `ca`.
pub fn client(ca: &Path, proto: Proto) -> HttpsClient {
    let b = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(client_config(ca)).https_only();
    let conn = match proto {
        Proto::H1 => b.enable_http1().build(),
        Proto::H2 => b.enable_http2().build(),
    };
    let mut cb = Client::builder(TokioExecutor::new());
    if proto == Proto::H2 {
        cb.http2_only(true);
    }
    cb.build(conn)
}

pub struct Reply {
    pub status: u16,
    pub version: http::Version,
    pub content_type: String,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("reply is not JSON ({e}): {:?}", self.body))
    }
}

/// POSTs raw bytes to `https://localhost:<port><path>` as the API server does.
pub async fn post(client: &HttpsClient, port: u16, path: &str, body: impl Into<Bytes>) -> Reply {
    let req = http::Request::post(format!("https://localhost:{port}{path}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, */*")
        .body(Full::new(body.into()))
        .unwrap();
    let res = client.request(req).await.unwrap();
    let status = res.status().as_u16();
    let version = res.version();
    let content_type = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Reply { status, version, content_type, body }
}

/// Plain HTTP GET on the admin listener: (status, body).
pub async fn admin_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::get(format!("http://{addr}{path}")).body(Full::new(Bytes::new())).unwrap();
    let res = client.request(req).await.unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// The value of one metric sample (exact name with labels) in an exposition, if present.
pub fn metric(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.parse().ok()))
}

// --- AdmissionReviews as the API server sends them -----------------------------------------------------

/// An AdmissionReview body as the API server writes it: Go's field order (`uid` first in `request`).
#[allow(clippy::too_many_arguments)]
pub fn review(
    uid: &str,
    op: &str,
    kind: (&str, &str, &str),
    ns: Option<&str>,
    name: &str,
    object: Value,
    old: Value,
    dry_run: bool,
) -> String {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Review<'a> {
        kind: &'a str,
        api_version: &'a str,
        request: Request<'a>,
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Request<'a> {
        uid: &'a str,
        kind: Value,
        resource: Value,
        request_kind: Value,
        request_resource: Value,
        name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<&'a str>,
        operation: &'a str,
        user_info: Value,
        object: Value,
        old_object: Value,
        dry_run: bool,
        options: Value,
    }
    let (group, version, k) = kind;
    let plural = format!("{}s", k.to_lowercase());
    let options_kind = match op {
        "CREATE" => "CreateOptions",
        "UPDATE" => "UpdateOptions",
        _ => "DeleteOptions",
    };
    serde_json::to_string(&Review {
        kind: "AdmissionReview",
        api_version: "admission.k8s.io/v1",
        request: Request {
            uid,
            kind: json!({"group": group, "version": version, "kind": k}),
            resource: json!({"group": group, "version": version, "resource": plural}),
            request_kind: json!({"group": group, "version": version, "kind": k}),
            request_resource: json!({"group": group, "version": version, "resource": plural}),
            name,
            namespace: ns,
            operation: op,
            user_info: json!({"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]}),
            object,
            old_object: old,
            dry_run,
            options: json!({"apiVersion": "meta.k8s.io/v1", "kind": options_kind}),
        },
    })
    .unwrap()
}

pub const K0: &str = "k0rdent.mirantis.com";
pub const ID_API: &str = "infrastructure.cluster.x-k8s.io/v1beta2";
pub const ID_KIND: &str = "AWSClusterStaticIdentity";

pub fn credential(ns: &str, name: &str, region: Option<&str>) -> Value {
    let mut spec = json!({"identityRef": {"apiVersion": ID_API, "kind": ID_KIND, "name": "aws-id"}});
    if let Some(r) = region {
        spec["region"] = json!(r);
    }
    json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Credential",
           "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}")}, "spec": spec})
}

fn crd(group: &str, kind: &str, plural: &str, version: &str, scope: &str) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": format!("{plural}.{group}")},
           "spec": {"group": group, "scope": scope, "names": {"kind": kind, "plural": plural},
                    "versions": [{"name": version, "served": true, "storage": true}]}})
}

/// A small estate: Region r1 (Ready) and r2 (not Ready) with kubeconfig Secrets, the AWS identity
/// CRD, identity object and ProviderInterface in management and both regions, and Credential
/// `used` in namespace `team` that ClusterDeployment `cd1` uses.
pub fn estate() -> MemoryEstate {
    let mut e = MemoryEstate::new("kcm-system");
    let m = Cluster::Management;
    let pi = json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "ProviderInterface",
        "metadata": {"name": "aws"},
        "spec": {"clusterIdentities": [{"group": "infrastructure.cluster.x-k8s.io", "version": "v1beta2",
            "kind": ID_KIND, "references": [{"group": "", "version": "v1", "kind": "Secret",
            "nameFieldPath": "spec.secretRef"}]}]}});
    for c in [m.clone(), Cluster::Region("r1".into()), Cluster::Region("r2".into())] {
        e.add_cluster(c.clone());
        e.insert(
            &c,
            crd("infrastructure.cluster.x-k8s.io", ID_KIND, "awsclusterstaticidentities", "v1beta2", "Cluster"),
        );
        e.insert(&c, crd(K0, "Credential", "credentials", "v1beta1", "Namespaced"));
        e.insert(&c, pi.clone());
    }
    for (r, ready) in [("r1", "True"), ("r2", "False")] {
        e.insert(&m, json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Region",
            "metadata": {"name": r},
            "spec": {"kubeConfig": {"name": format!("{r}-kubeconfig"), "key": "value"}},
            "status": {"ready": ready == "True", "conditions": [{"type": "Ready", "status": ready, "reason": "Test"}]}}));
        e.insert(
            &m,
            json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("{r}-kubeconfig"), "namespace": "kcm-system"}, "data": {"value": ""}}),
        );
    }
    e.insert(
        &m,
        json!({"apiVersion": ID_API, "kind": ID_KIND, "metadata": {"name": "aws-id"},
        "spec": {"secretRef": "aws-secret"}}),
    );
    e.insert(
        &m,
        json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "aws-secret", "namespace": "kcm-system"}, "data": {"AccessKeyID": ""}}),
    );
    let mut used = credential("team", "used", None);
    used["status"] = json!({"ready": true});
    e.insert(&m, used);
    e.insert(
        &m,
        json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "ClusterDeployment",
        "metadata": {"name": "cd1", "namespace": "team"}, "spec": {"credential": "used", "template": "t"}}),
    );
    e
}
