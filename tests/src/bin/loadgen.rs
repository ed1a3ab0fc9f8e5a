//! Load generator for the admission webhook (benchmark equipment, see BENCHMARKS.md and bench/run.sh).
//!
//! `loadgen run` replays realistic AdmissionReviews over TLS (rustls, ring) with keep-alive HTTP/1.1
//! or HTTP/2 on a fixed number of connections (and, for HTTP/2, concurrent streams per connection),
//! for a fixed duration or request count, and reports requests/s and latency percentiles.
//! `loadgen estate` writes an offline estate of a given size for `credential-webhook serve --estate`.
//! `loadgen wait` waits until a TLS server accepts connections.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;

use credential_e2e::fixtures;

#[derive(Parser)]
#[command(name = "loadgen", about = "Load generator for credential-webhook benchmarks (see BENCHMARKS.md)")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Replay AdmissionReviews against a running server and report throughput and latency.
    Run(RunArgs),
    /// Write an offline estate directory (for `credential-webhook serve --estate DIR`).
    Estate(EstateArgs),
    /// Wait until a TLS server at ADDR completes a handshake.
    Wait(WaitArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Proto {
    H1,
    H2,
}

impl Proto {
    fn as_str(self) -> &'static str {
        match self {
            Proto::H1 => "http1.1",
            Proto::H2 => "h2",
        }
    }
}

#[derive(clap::Args)]
struct Target {
    /// Server address (host:port).
    #[arg(long, default_value = "127.0.0.1:9443")]
    addr: SocketAddr,
    /// CA certificate (PEM) the server certificate is verified against.
    #[arg(long)]
    ca: PathBuf,
    /// Name checked against the server certificate.
    #[arg(long, default_value = "localhost")]
    server_name: String,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    target: Target,
    /// HTTP version (negotiated with ALPN).
    #[arg(long, value_enum, default_value_t = Proto::H1)]
    proto: Proto,
    /// TCP connections, all opened before measuring.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Concurrent requests per connection (HTTP/2 streams; HTTP/1.1 is always 1).
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// Measured time (e.g. 10s, 500ms); ignored with --requests.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Stop after this many measured requests instead of after --duration.
    #[arg(long)]
    requests: Option<u64>,
    /// Unmeasured load before measuring (fills caches, settles the allocator).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Reviews to replay (comma-separated names; see `--list-reviews`), round-robin; default all.
    #[arg(long, value_delimiter = ',')]
    reviews: Vec<String>,
    /// Print the review names and exit.
    #[arg(long)]
    list_reviews: bool,
    /// Runtime worker threads (1 = a single-threaded runtime, best when pinned to one core).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Label stored in the JSON result.
    #[arg(long, default_value = "")]
    label: String,
    /// Append the result as one JSON line to this file (`-` for stdout).
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args)]
struct EstateArgs {
    /// Directory to write (created; must be empty or missing).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 10)]
    credentials: usize,
    #[arg(long, default_value_t = 1)]
    regions: usize,
    /// Also write each identity's Secret (the webhook never caches them; `plan` reads them).
    #[arg(long)]
    identity_secrets: bool,
}

#[derive(clap::Args)]
struct WaitArgs {
    #[command(flatten)]
    target: Target,
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("{s:?} is not a duration (examples: 500ms, 10s)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{s:?} is not a valid duration"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Estate(a) => write_estate(&a),
        Cmd::Wait(a) => runtime(1)?.block_on(wait(a)),
        Cmd::Run(a) => {
            if a.list_reviews {
                for r in fixtures::reviews() {
                    println!("{}\t{}", r.name, r.path);
                }
                return Ok(());
            }
            runtime(a.threads)?.block_on(run(a))
        }
    }
}

fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?
    };
    Ok(rt)
}

fn write_estate(a: &EstateArgs) -> anyhow::Result<()> {
    if a.out.exists() && std::fs::read_dir(&a.out)?.next().is_some() {
        bail!("--out {}: directory is not empty; give a new or empty directory", a.out.display());
    }
    let mut objects = 0;
    for f in fixtures::estate(a.credentials, a.regions, a.identity_secrets) {
        let path = a.out.join(&f.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        objects += f.docs.len();
        std::fs::write(&path, f.yaml()).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "wrote {objects} objects ({} Credentials, {} Regions) to {}",
        a.credentials,
        a.regions.max(1),
        a.out.display()
    );
    Ok(())
}

fn tls_connector(ca: &Path, proto: Proto) -> anyhow::Result<tokio_rustls::TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca).with_context(|| format!("--ca {}: cannot read", ca.display()))?;
    for c in certs {
        let c = c.with_context(|| format!("--ca {}: not a PEM certificate", ca.display()))?;
        roots.add(c).with_context(|| format!("--ca {}: unusable certificate", ca.display()))?;
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![match proto {
        Proto::H1 => b"http/1.1".to_vec(),
        Proto::H2 => b"h2".to_vec(),
    }];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn connect(t: &Target, connector: &tokio_rustls::TlsConnector) -> anyhow::Result<Tls> {
    let tcp = TcpStream::connect(t.addr).await.with_context(|| format!("cannot connect to {}", t.addr))?;
    // Same as the servers: small request frames must not wait for ACKs.
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(t.server_name.clone()).context("--server-name is not a valid DNS name or IP")?;
    let tls = connector.connect(name, tcp).await.with_context(|| format!("TLS handshake with {} failed", t.addr))?;
    Ok(tls)
}

async fn wait(a: WaitArgs) -> anyhow::Result<()> {
    let connector = tls_connector(&a.target.ca, Proto::H1)?;
    let deadline = Instant::now() + a.timeout;
    loop {
        match connect(&a.target, &connector).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!("still failing after {:?}", a.timeout)));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// One request ready to send: path, body and the uid the answer must echo.
struct Prepared {
    name: &'static str,
    path: &'static str,
    uri: http::Uri,
    uid: Vec<u8>,
    body: Bytes,
}

/// Latency samples of one worker: (review index, nanoseconds).
type Samples = Vec<(u8, u64)>;

struct Shared {
    reviews: Vec<Prepared>,
    authority: String,
    measure_from: Instant,
    deadline: Option<Instant>,
    /// Measured requests left to start (with --requests).
    budget: Option<AtomicU64>,
    stop: AtomicBool,
    errors: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Shared {
    /// Whether another request should start now.
    fn go(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if let Some(d) = self.deadline
            && now >= d
        {
            return false;
        }
        if let Some(b) = &self.budget
            && now >= self.measure_from
        {
            // Take one from the budget; stop everyone when it is spent.
            if b.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_err() {
                self.stop.store(true, Ordering::Relaxed);
                return false;
            }
        }
        true
    }

    fn error(&self, e: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock()
            && first.is_none()
        {
            *first = Some(e);
        }
        // Keep going: a failing server shows up as errors in the report, never as a hang.
    }
}

fn request(shared: &Shared, proto: Proto, i: usize) -> anyhow::Result<http::Request<Full<Bytes>>> {
    let r = &shared.reviews[i];
    // HTTP/1.1 sends origin-form plus Host; HTTP/2 needs the full URI for :scheme and :authority.
    let b = match proto {
        Proto::H1 => http::Request::post(r.path).header(http::header::HOST, shared.authority.as_str()),
        Proto::H2 => http::Request::post(r.uri.clone()),
    };
    Ok(b.header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, */*")
        .body(Full::new(r.body.clone()))?)
}

/// Checks the answer: HTTP 200 and an AdmissionReview echoing the request uid.
async fn check(res: http::Response<hyper::body::Incoming>, uid: &[u8]) -> Result<(), String> {
    let status = res.status();
    let body = res.into_body().collect().await.map_err(|e| format!("reading the response: {e}"))?.to_bytes();
    if status != http::StatusCode::OK {
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])));
    }
    if !body.windows(uid.len()).any(|w| w == uid) {
        return Err(format!(
            "response does not echo the uid: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ));
    }
    Ok(())
}

async fn run(a: RunArgs) -> anyhow::Result<()> {
    let all = fixtures::reviews();
    let chosen: Vec<fixtures::Review> = if a.reviews.is_empty() {
        all
    } else {
        let names: Vec<&str> = all.iter().map(|r| r.name).collect();
        for n in &a.reviews {
            if !names.contains(&n.as_str()) {
                bail!("--reviews: unknown review {n:?}; known: {}", names.join(", "));
            }
        }
        all.into_iter().filter(|r| a.reviews.iter().any(|n| n == r.name)).collect()
    };
    if a.connections == 0 || a.streams == 0 {
        bail!("--connections and --streams must be at least 1");
    }
    let streams = if a.proto == Proto::H1 { 1 } else { a.streams };
    let authority = format!("{}:{}", a.target.server_name, a.target.addr.port());
    let mut reviews = Vec::new();
    for r in chosen {
        let uri: http::Uri = format!("https://{authority}{}", r.path).parse()?;
        reviews.push(Prepared {
            name: r.name,
            path: r.path,
            uri,
            uid: format!("\"{}\"", r.uid).into_bytes(),
            body: Bytes::from(r.body),
        });
    }
    let connector = tls_connector(&a.target.ca, a.proto)?;

    // Open every connection first: handshakes are not part of the measurement.
    let mut h1 = Vec::new();
    let mut h2 = Vec::new();
    for _ in 0..a.connections {
        let tls = connect(&a.target, &connector).await?;
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let io = TokioIo::new(tls);
        match a.proto {
            Proto::H1 => {
                if alpn.as_deref().is_some_and(|p| p != b"http/1.1") {
                    bail!(
                        "server negotiated {:?} instead of http/1.1",
                        alpn.map(|p| String::from_utf8_lossy(&p).into_owned())
                    );
                }
                let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
                tokio::spawn(conn);
                h1.push(sender);
            }
            Proto::H2 => {
                if alpn.as_deref() != Some(b"h2") {
                    bail!("server did not negotiate h2 (ALPN)");
                }
                let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                    .initial_stream_window_size(1 << 20)
                    .initial_connection_window_size(4 << 20)
                    .handshake(io)
                    .await?;
                tokio::spawn(conn);
                h2.push(sender);
            }
        }
    }

    let started = Instant::now();
    let measure_from = started + a.warmup;
    let shared = Arc::new(Shared {
        reviews,
        authority,
        measure_from,
        deadline: if a.requests.is_some() { None } else { Some(measure_from + a.duration) },
        budget: a.requests.map(AtomicU64::new),
        stop: AtomicBool::new(false),
        errors: AtomicU64::new(0),
        first_error: std::sync::Mutex::new(None),
    });

    let mut tasks = tokio::task::JoinSet::new();
    let mut w = 0usize;
    // One request loop per connection (HTTP/1.1) or stream (HTTP/2); hyper's two senders share no
    // trait, hence a macro rather than a generic function.
    macro_rules! spawn_worker {
        ($sender:expr, $proto:expr) => {{
            let shared = shared.clone();
            let mut sender = $sender;
            let offset = w;
            w += 1;
            tasks.spawn(async move {
                let mut samples = Samples::new();
                let n = shared.reviews.len();
                let mut i = offset % n;
                while shared.go() {
                    if let Err(e) = sender.ready().await {
                        shared.error(format!("connection closed: {e}"));
                        break;
                    }
                    let req = match request(&shared, $proto, i) {
                        Ok(r) => r,
                        Err(e) => {
                            shared.error(e.to_string());
                            break;
                        }
                    };
                    let t0 = Instant::now();
                    let outcome = match sender.send_request(req).await {
                        Ok(res) => check(res, &shared.reviews[i].uid).await,
                        Err(e) => Err(format!("request failed: {e}")),
                    };
                    record(&shared, &mut samples, i, t0, outcome);
                    i = (i + 1) % n;
                }
                samples
            });
        }};
    }
    for sender in h1 {
        spawn_worker!(sender, Proto::H1);
    }
    for sender in h2 {
        for _ in 0..streams {
            spawn_worker!(sender.clone(), Proto::H2);
        }
    }
    let mut samples: Samples = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        samples.extend(joined.context("a load worker panicked")?);
    }
    let ended = Instant::now();
    let measured = ended.saturating_duration_since(measure_from).max(Duration::from_nanos(1));

    let errors = shared.errors.load(Ordering::Relaxed);
    let mut all: Vec<u64> = samples.iter().map(|s| s.1).collect();
    all.sort_unstable();
    let mut per_review = serde_json::Map::new();
    for (idx, r) in shared.reviews.iter().enumerate() {
        let mut v: Vec<u64> = samples.iter().filter(|s| usize::from(s.0) == idx).map(|s| s.1).collect();
        v.sort_unstable();
        per_review.insert(r.name.to_string(), summary(&v));
    }
    let rps = all.len() as f64 / measured.as_secs_f64();
    let result = json!({
        "label": a.label,
        "proto": a.proto.as_str(),
        "connections": a.connections,
        "streams_per_connection": streams,
        "concurrency": a.connections * streams,
        "measured_s": measured.as_secs_f64(),
        "requests": all.len(),
        "errors": errors,
        "rps": rps,
        "latency_us": summary(&all),
        "per_review": per_review,
    });
    let lat = &result["latency_us"];
    eprintln!(
        "{:<24} {:>7} conns={:<3} streams={:<3} {:>9.0} req/s  p50 {:>7.1}µs  p90 {:>7.1}µs  p99 {:>7.1}µs  max {:>8.1}µs  errors {}",
        a.label,
        a.proto.as_str(),
        a.connections,
        streams,
        rps,
        lat["p50"].as_f64().unwrap_or_default(),
        lat["p90"].as_f64().unwrap_or_default(),
        lat["p99"].as_f64().unwrap_or_default(),
        lat["max"].as_f64().unwrap_or_default(),
        errors
    );
    if let Some(path) = &a.json {
        let line = format!("{result}\n");
        if path.as_os_str() == "-" {
            print!("{line}");
        } else {
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("--json {}: cannot open", path.display()))?;
            f.write_all(line.as_bytes()).with_context(|| format!("--json {}: cannot write", path.display()))?;
        }
    }
    if errors > 0 {
        let first = shared.first_error.lock().ok().and_then(|f| f.clone()).unwrap_or_default();
        bail!("{errors} requests failed; first: {first}");
    }
    if all.is_empty() {
        bail!("no request completed in the measured window");
    }
    Ok(())
}

fn record(shared: &Shared, samples: &mut Samples, i: usize, t0: Instant, outcome: Result<(), String>) {
    match outcome {
        Ok(()) => {
            if t0 >= shared.measure_from {
                let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
                samples.push((u8::try_from(i).unwrap_or(u8::MAX), ns));
            }
        }
        Err(e) => shared.error(format!("{}: {e}", shared.reviews[i].name)),
    }
}

/// Percentiles in microseconds of sorted nanosecond samples (nearest-rank).
fn summary(sorted: &[u64]) -> Value {
    if sorted.is_empty() {
        return json!({"count": 0});
    }
    let pct = |p: f64| {
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
    };
    let mean = sorted.iter().map(|&n| n as f64).sum::<f64>() / sorted.len() as f64 / 1000.0;
    json!({
        "count": sorted.len(),
        "mean": mean,
        "p50": pct(50.0),
        "p90": pct(90.0),
        "p99": pct(99.0),
        "max": sorted[sorted.len() - 1] as f64 / 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        let s = summary(&v);
        assert_eq!(s["p50"], 50.0);
        assert_eq!(s["p99"], 99.0);
        assert_eq!(s["max"], 100.0);
        assert_eq!(summary(&[])["count"], 0);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn fixtures_are_valid_reviews() {
        let reviews = fixtures::reviews();
        assert_eq!(reviews.len(), 5);
        for r in &reviews {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["request"]["uid"], r.uid.as_str(), "{}", r.name);
            assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
        }
        let files = fixtures::estate(3, 2, false);
        let regional: Vec<_> = files.iter().filter_map(|f| f.region()).collect();
        assert_eq!(regional, ["region-0", "region-1"]);
        let creds = files.iter().find(|f| f.path == "credentials-000.yaml").unwrap();
        assert_eq!(creds.docs.len(), 3);
        assert_eq!(creds.docs[2]["spec"]["region"], "region-0");
        assert!(creds.docs[0]["metadata"].get("managedFields").is_none(), "cached objects are trimmed");
        let big = fixtures::estate(2500, 1, false);
        let chunks: Vec<usize> =
            big.iter().filter(|f| f.path.starts_with("credentials-")).map(|f| f.docs.len()).collect();
        assert_eq!(chunks, [1000, 1000, 500]);
    }
}
