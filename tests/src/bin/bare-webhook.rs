//! The ceiling for webhook benchmarks (benchmark equipment, see BENCHMARKS.md): a bare axum server on
//! the webhook's stack — tokio-rustls with ring, TLS 1.3/1.2, ALPN `h2` then `http/1.1`, TCP_NODELAY,
//! hyper-util's auto (HTTP/1.1 + HTTP/2) connection builder — that parses each AdmissionReview and
//! returns a constant "allowed" answer echoing the request uid. No rules, no cache, no metrics, no logs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clap::Parser;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use serde_json::Value;

#[derive(Parser)]
#[command(name = "bare-webhook", about = "Constant-answer AdmissionReview server: the benchmark ceiling")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9443")]
    listen: SocketAddr,
    /// Serving certificate (PEM, leaf first).
    #[arg(long)]
    tls_cert_file: PathBuf,
    /// Private key (PEM).
    #[arg(long)]
    tls_key_file: PathBuf,
}

/// What the webhook also has to decode before any rule runs.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Decoded for the cost, like the webhook does; only the uid is used.
struct ReviewIn {
    api_version: Option<String>,
    kind: Option<String>,
    request: Option<RequestIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct RequestIn {
    uid: Option<String>,
    kind: Option<Value>,
    name: Option<String>,
    namespace: Option<String>,
    operation: Option<String>,
    object: Option<Value>,
    old_object: Option<Value>,
    dry_run: Option<bool>,
}

async fn review(body: Bytes) -> Response {
    let (uid, allowed) = match serde_json::from_slice::<ReviewIn>(&body) {
        Ok(r) => (r.request.and_then(|r| r.uid).unwrap_or_default(), true),
        Err(_) => (String::new(), false),
    };
    let uid = serde_json::to_string(&uid).unwrap_or_else(|_| "\"\"".to_string());
    let reply = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{{"uid":{uid},"allowed":{allowed}}}}}"#
    );
    let mut res = reply.into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&args.tls_cert_file)
        .with_context(|| format!("--tls-cert-file {}: cannot read", args.tls_cert_file.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("--tls-cert-file {}: not PEM certificates", args.tls_cert_file.display()))?;
    let key = PrivateKeyDer::from_pem_file(&args.tls_key_file)
        .with_context(|| format!("--tls-key-file {}: no PEM private key", args.tls_key_file.display()))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and key do not form a usable pair")?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

    let router = Router::new().route("/validate", post(review)).route("/mutate", post(review));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(256);
    let builder = Arc::new(builder);

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!("bare-webhook serving on {}", listener.local_addr()?);
    loop {
        let (tcp, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(_) => continue,
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
        });
    }
}
