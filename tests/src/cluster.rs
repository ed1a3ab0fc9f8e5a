//! A real Kubernetes control plane for the end-to-end tests: kube-apiserver with embedded etcd and,
//! when asked, kube-controller-manager, run by our Go program `tests/kube-test-cluster` (upstream
//! modules, see its `main.go`). Each cluster is one or two child processes on 127.0.0.1 with
//! production settings (RBAC, ServiceAccount tokens, TLS, no alpha/beta APIs).
//!
//! The binary is built once per checkout into `target/kube-test-cluster/` (a file lock makes
//! parallel test binaries wait for one build); `KUBE_TEST_CLUSTER=/path/to/binary` skips the build.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::harness::{KubectlOutput, run_kubectl};

/// What can go wrong starting or driving a test cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("building kube-test-cluster ({command}) failed: {detail}")]
    Build { command: String, detail: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("kube-test-cluster {mode} did not become ready: {detail} (log: {log})")]
    NotReady { mode: &'static str, detail: String, log: String },
    #[error("kube client for {server}: {detail}")]
    Client { server: String, detail: String },
    #[error("kubectl {args}: exit {code:?}: {stderr}")]
    Kubectl { args: String, code: Option<i32>, stderr: String },
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"))
}

/// The kube-test-cluster binary, built if missing or older than its sources.
pub fn binary() -> Result<PathBuf, ClusterError> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_binary().map_err(|e| e.to_string()))
        .clone()
        .map_err(|detail| ClusterError::Build { command: "tests/kube-test-cluster/build.sh".into(), detail })
}

fn build_binary() -> Result<PathBuf, ClusterError> {
    if let Some(path) = std::env::var_os("KUBE_TEST_CLUSTER") {
        return Ok(PathBuf::from(path));
    }
    let src = repo_root().join("tests/kube-test-cluster");
    let out_dir = target_dir().join("kube-test-cluster");
    let out = out_dir.join("kube-test-cluster");
    let out_arg = out.display().to_string();
    crate::gobuild::build_if_stale(
        &src,
        &["main.go", "go.mod", "go.sum", "build.sh"],
        "build.sh",
        &[&out_arg],
        &out,
        &out_dir.join(".lock"),
    )
    .map_err(|detail| ClusterError::Build {
        command: format!("bash tests/kube-test-cluster/build.sh {out_arg}"),
        detail,
    })?;
    Ok(out)
}

/// The line kube-test-cluster prints once it serves.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadyLine {
    pub server: String,
    pub kubeconfig: PathBuf,
    pub ca: PathBuf,
    pub token: String,
    pub dir: PathBuf,
    pub version: String,
    pub pid: u32,
}

/// A child process that goes away with its owner (stdin closes, so it exits cleanly even if we are
/// killed; `Drop` also kills it).
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn spawn(mode: &'static str, args: &[String], log: PathBuf) -> Result<(Daemon, ReadyLine), ClusterError> {
        let bin = binary()?;
        let log_file = std::fs::File::create(&log).map_err(io(format!("create {}", log.display())))?;
        let mut child = Command::new(&bin)
            .arg(mode)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(io(format!("start {}", bin.display())))?;
        let stdout = child.stdout.take();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            if let Some(out) = stdout {
                let mut reader = BufReader::new(out);
                let _ = reader.read_line(&mut line);
                let _ = tx.send(line);
                // Keep draining so the child never blocks on a full pipe.
                let mut sink = String::new();
                while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                    sink.clear();
                }
            }
        });
        let mut daemon = Daemon { child, log };
        let not_ready = |daemon: &Daemon, detail: String| ClusterError::NotReady {
            mode,
            detail,
            log: daemon.log.display().to_string(),
        };
        let line = match rx.recv_timeout(Duration::from_secs(180)) {
            Ok(line) if !line.trim().is_empty() => line,
            Ok(_) | Err(_) => {
                let status = daemon.child.try_wait().ok().flatten();
                let tail = std::fs::read_to_string(&daemon.log).unwrap_or_default();
                let tail: String =
                    tail.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
                return Err(not_ready(&daemon, format!("exit status {status:?}; last log lines:\n{tail}")));
            }
        };
        let ready: ReadyLine = serde_json::from_str(line.trim())
            .map_err(|e| not_ready(&daemon, format!("bad ready line {line:?}: {e}")))?;
        daemon.log = daemon.log.clone();
        Ok((daemon, ready))
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status();
    }

    /// SIGTERM, then wait up to 30 s for a clean exit (the apiserver drains), then SIGKILL.
    fn terminate(&mut self) {
        self.signal("TERM");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to start a [`KubeCluster`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Name used for kubeconfig contexts and log files.
    pub name: String,
    /// Also run kube-controller-manager (namespace deletion, garbage collection, ServiceAccounts).
    pub controller_manager: bool,
    /// Install the test CRDs (`tests/crds/`) and wait until they are established.
    pub crds: bool,
}

impl ClusterOptions {
    pub fn new(name: &str) -> Self {
        ClusterOptions { name: name.to_string(), controller_manager: true, crds: true }
    }
}

/// A running real cluster (apiserver + etcd, optionally controller-manager).
pub struct KubeCluster {
    options: ClusterOptions,
    ready: ReadyLine,
    apiserver: Mutex<Option<Daemon>>,
    controller_manager: Mutex<Option<Daemon>>,
    /// Holds etcd data, certificates and the kubeconfig; removed on drop.
    _dir: tempfile::TempDir,
    cache_dir: PathBuf,
}

fn log_path(name: &str, mode: &str) -> Result<PathBuf, ClusterError> {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = target_dir().join("kube-test-cluster").join("logs");
    std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(dir.join(format!("{name}-{mode}-{}-{n}.log", std::process::id())))
}

impl KubeCluster {
    /// Starts a cluster with `options` (blocking work runs off the async runtime).
    pub async fn start(options: ClusterOptions) -> Result<KubeCluster, ClusterError> {
        // Ports are picked free and bound a moment later: with several clusters starting at once
        // another process can take one in between. A fresh directory and fresh ports fix that.
        let mut attempt = 0;
        let cluster = loop {
            let opts = options.clone();
            let started = tokio::task::spawn_blocking(move || KubeCluster::start_blocking(opts))
                .await
                .map_err(|e| ClusterError::NotReady { mode: "apiserver", detail: e.to_string(), log: String::new() })?;
            match started {
                Err(ClusterError::NotReady { detail, .. })
                    if attempt < 2 && detail.contains("address already in use") =>
                {
                    attempt += 1;
                }
                other => break other?,
            }
        };
        if options.crds {
            cluster.install_crds().await?;
        }
        Ok(cluster)
    }

    fn start_blocking(options: ClusterOptions) -> Result<KubeCluster, ClusterError> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("kube-test-cluster-{}-", options.name))
            .tempdir()
            .map_err(io("create cluster dir"))?;
        let cache_dir = dir.path().join("kubectl-cache");
        let (apiserver, ready) = Daemon::spawn(
            "apiserver",
            &["--dir".into(), dir.path().join("state").display().to_string()],
            log_path(&options.name, "apiserver")?,
        )?;
        let cluster = KubeCluster {
            options,
            ready,
            apiserver: Mutex::new(Some(apiserver)),
            controller_manager: Mutex::new(None),
            _dir: dir,
            cache_dir,
        };
        if cluster.options.controller_manager {
            cluster.start_controller_manager()?;
        }
        Ok(cluster)
    }

    fn start_controller_manager(&self) -> Result<(), ClusterError> {
        let (daemon, _) = Daemon::spawn(
            "controller-manager",
            &["--dir".into(), self.ready.dir.display().to_string()],
            log_path(&self.options.name, "controller-manager")?,
        )?;
        *self.controller_manager.lock().unwrap_or_else(|e| e.into_inner()) = Some(daemon);
        Ok(())
    }

    async fn install_crds(&self) -> Result<(), ClusterError> {
        self.kubectl_ok(&["apply", "-f", "-"], Some(&crate::crds_yaml())).await?;
        // `kubectl wait` fails ("accessor error") on a CRD read before its first status: ask again.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.kubectl_ok(&["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"], None).await
            {
                Err(ClusterError::Kubectl { stderr, .. })
                    if stderr.contains("accessor error") && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other.map(drop),
            }
        }
    }

    pub fn name(&self) -> &str {
        &self.options.name
    }
    /// `https://127.0.0.1:PORT`.
    pub fn server(&self) -> &str {
        &self.ready.server
    }
    /// The pid of the kube-apiserver process (of its latest start), for `/proc` readings.
    pub fn apiserver_pid(&self) -> Option<u32> {
        self.apiserver.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|d| d.child.id())
    }

    /// Resident memory of the kube-apiserver process (with its embedded etcd), in KiB.
    pub fn apiserver_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.apiserver_pid()?)).ok()?;
        status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()
    }

    /// The server version the apiserver reports (stamped at build, e.g. `v1.37.2`).
    pub fn version(&self) -> &str {
        &self.ready.version
    }
    /// An admin kubeconfig (token in `system:masters`) for real kubectl and kube-rs.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.ready.kubeconfig
    }
    pub fn ca_path(&self) -> &Path {
        &self.ready.ca
    }
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(&self.ready.ca).unwrap_or_default()
    }
    pub fn admin_token(&self) -> &str {
        &self.ready.token
    }
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// A self-contained kubeconfig (CA inline) for `token`, its cluster and context named after this cluster.
    pub fn kubeconfig_yaml_for_token(&self, token: &str) -> String {
        use base64::Engine as _;
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem());
        let name = &self.options.name;
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
             users:\n- name: {name}\n  user:\n    token: {token}\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n\
             current-context: {name}\n",
            server = self.ready.server
        )
    }

    /// The admin kubeconfig as self-contained YAML.
    pub fn kubeconfig_yaml(&self) -> String {
        self.kubeconfig_yaml_for_token(&self.ready.token)
    }

    /// A kube client with admin rights.
    pub async fn client(&self) -> Result<kube::Client, ClusterError> {
        self.client_for_token(&self.ready.token).await
    }

    /// A kube client that authenticates with `token` (e.g. a ServiceAccount token).
    pub async fn client_for_token(&self, token: &str) -> Result<kube::Client, ClusterError> {
        let err = |detail: String| ClusterError::Client { server: self.ready.server.clone(), detail };
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml_for_token(token))
            .map_err(|e| err(e.to_string()))?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.map_err(|e| err(e.to_string()))?;
        kube::Client::try_from(config).map_err(|e| err(e.to_string()))
    }

    /// Runs real kubectl with the admin kubeconfig; killed after 60 s.
    pub async fn kubectl(&self, args: &[&str]) -> Result<KubectlOutput, ClusterError> {
        self.kubectl_with(args, None, Duration::from_secs(60)).await
    }

    pub async fn kubectl_with(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<KubectlOutput, ClusterError> {
        run_kubectl(&self.ready.kubeconfig, &self.cache_dir, args, stdin, timeout)
            .await
            .map_err(|e| ClusterError::Kubectl { args: args.join(" "), code: None, stderr: e.to_string() })
    }

    /// kubectl that must succeed; its stdout.
    pub async fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> Result<String, ClusterError> {
        let out = self.kubectl_with(args, stdin, Duration::from_secs(90)).await?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(ClusterError::Kubectl { args: args.join(" "), code: out.code, stderr: out.stderr })
        }
    }

    /// `kubectl apply -f -` of `yaml` (must succeed).
    pub async fn apply(&self, yaml: &str) -> Result<String, ClusterError> {
        self.kubectl_ok(&["apply", "-f", "-"], Some(yaml)).await
    }

    /// A real ServiceAccount token from the TokenRequest API (`kubectl create token`), valid 1 h.
    pub async fn service_account_token(&self, namespace: &str, name: &str) -> Result<String, ClusterError> {
        let out = self.kubectl_ok(&["create", "token", name, "-n", namespace, "--duration=1h"], None).await?;
        Ok(out.trim().to_string())
    }

    /// The apiserver's own Prometheus metrics text.
    pub async fn metrics(&self) -> Result<String, ClusterError> {
        let client = self.client().await?;
        let req = http::Request::get("/metrics")
            .body(Vec::new())
            .map_err(|e| ClusterError::Client { server: self.ready.server.clone(), detail: e.to_string() })?;
        Ok(client.request_text(req).await?)
    }

    /// Sum of the apiserver's `apiserver_request_total` samples whose labels include every `(name, value)`
    /// of `labels` (e.g. `[("verb", "WATCH"), ("resource", "secrets")]`).
    pub async fn request_total(&self, labels: &[(&str, &str)]) -> Result<f64, ClusterError> {
        Ok(metric_sum(&self.metrics().await?, "apiserver_request_total", labels))
    }

    /// Freezes the apiserver (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        if let Some(d) = self.apiserver.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            d.signal("STOP");
        }
    }

    /// Thaws a paused apiserver (SIGCONT).
    pub fn resume(&self) {
        if let Some(d) = self.apiserver.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            d.signal("CONT");
        }
    }

    /// Stops the apiserver (SIGTERM, clean shutdown); etcd data stays for [`KubeCluster::restart`].
    pub async fn stop(&self) {
        let daemon = self.apiserver.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut d) = daemon {
            let _ = tokio::task::spawn_blocking(move || d.terminate()).await;
        }
    }

    /// Kills the apiserver with SIGKILL (no drain), keeping its etcd data.
    pub async fn kill(&self) {
        let daemon = self.apiserver.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(daemon);
    }

    /// Starts the apiserver again on the same etcd data, port, CA and tokens.
    pub async fn restart(&self) -> Result<(), ClusterError> {
        self.stop().await;
        let args = vec!["--dir".to_string(), self.ready.dir.display().to_string()];
        let log = log_path(&self.options.name, "apiserver")?;
        let (daemon, _) = tokio::task::spawn_blocking(move || Daemon::spawn("apiserver", &args, log))
            .await
            .map_err(|e| ClusterError::NotReady { mode: "apiserver", detail: e.to_string(), log: String::new() })??;
        *self.apiserver.lock().unwrap_or_else(|e| e.into_inner()) = Some(daemon);
        Ok(())
    }

    /// Whether the apiserver process is up (not stopped or killed).
    pub fn is_running(&self) -> bool {
        self.apiserver.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}

/// The objects `kubectl kustomize deploy/` renders, as JSON values (the shipped install, not a copy).
pub async fn shipped_objects() -> Result<Vec<serde_json::Value>, ClusterError> {
    let deploy = repo_root().join("deploy");
    let deploy = deploy.to_string_lossy();
    let out = tokio::process::Command::new(std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()))
        .args(["kustomize", deploy.as_ref()])
        .output()
        .await
        .map_err(io("run kubectl kustomize deploy"))?;
    if !out.status.success() {
        return Err(ClusterError::Kubectl {
            args: format!("kustomize {deploy}"),
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .split("\n---\n")
        .filter_map(|doc| serde_saphyr::from_str::<serde_json::Value>(doc).ok())
        .filter(|v| v.is_object())
        .collect())
}

fn to_yaml_stream(objects: &[serde_json::Value]) -> String {
    // JSON documents are YAML documents.
    objects.iter().map(|o| format!("---\n{o}\n")).collect()
}

/// The shipped ServiceAccount and RBAC objects (every kind kubectl's `auth` would evaluate), as YAML.
pub async fn shipped_rbac_yaml() -> Result<String, ClusterError> {
    let kinds = ["ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"];
    let objects: Vec<_> = shipped_objects()
        .await?
        .into_iter()
        .filter(|o| kinds.contains(&o["kind"].as_str().unwrap_or_default()))
        .collect();
    Ok(to_yaml_stream(&objects))
}

/// The shipped Mutating/ValidatingWebhookConfigurations with only `clientConfig` rewritten to
/// `base_url` + the shipped service path and `ca_pem` (the apiserver refuses loopback Endpoints, so a
/// Service cannot reach a webhook on 127.0.0.1). Rules, matchConditions, failurePolicy, timeouts and
/// sideEffects stay as shipped.
pub async fn shipped_webhook_configurations(base_url: &str, ca_pem: &str) -> Result<String, ClusterError> {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let kinds = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"];
    let mut objects: Vec<_> = shipped_objects()
        .await?
        .into_iter()
        .filter(|o| kinds.contains(&o["kind"].as_str().unwrap_or_default()))
        .collect();
    for object in &mut objects {
        // cert-manager's CA injection has no cert-manager here: the caBundle is set directly.
        if let Some(annotations) = object.pointer_mut("/metadata/annotations").and_then(|a| a.as_object_mut()) {
            annotations.remove("cert-manager.io/inject-ca-from");
        }
        for hook in object["webhooks"].as_array_mut().into_iter().flatten() {
            let path = hook.pointer("/clientConfig/service/path").and_then(|p| p.as_str()).unwrap_or("/").to_string();
            hook["clientConfig"] = serde_json::json!({"url": format!("{base_url}{path}"), "caBundle": ca});
        }
    }
    Ok(to_yaml_stream(&objects))
}

/// Sum of the samples of `metric` in Prometheus text `text` whose labels include all of `labels`.
pub fn metric_sum(text: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(metric)?;
            let (label_text, value) = match rest.strip_prefix('{') {
                Some(r) => {
                    let (inner, after) = r.split_once('}')?;
                    (inner, after.trim())
                }
                None if rest.starts_with(' ') => ("", rest.trim()),
                None => return None,
            };
            let pairs = parse_labels(label_text);
            let matches = labels.iter().all(|(k, v)| pairs.iter().any(|(pk, pv)| pk == k && pv == v));
            matches.then(|| value.split_whitespace().next()?.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// `a="x",b="y"` into pairs (values unescaped for `\"` and `\\`).
fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(n);
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        pairs.push((key.trim_start_matches(',').trim().to_string(), value));
        rest = &after[end..];
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::metric_sum;

    #[test]
    fn metric_sum_adds_matching_samples_only() {
        let text = "# HELP x\n\
            apiserver_request_total{code=\"200\",resource=\"secrets\",verb=\"WATCH\"} 3\n\
            apiserver_request_total{code=\"200\",resource=\"secrets\",verb=\"GET\"} 5\n\
            apiserver_request_total{code=\"403\",resource=\"secrets\",verb=\"GET\"} 2\n\
            apiserver_request_total{subresource=\"secrets\",verb=\"GET\"} 50\n\
            apiserver_request_total_other{resource=\"secrets\",verb=\"GET\"} 100\n";
        assert_eq!(metric_sum(text, "apiserver_request_total", &[("resource", "secrets"), ("verb", "GET")]), 7.0);
        assert_eq!(metric_sum(text, "apiserver_request_total", &[("verb", "WATCH")]), 3.0);
        assert_eq!(metric_sum(text, "apiserver_request_total", &[("verb", "PATCH")]), 0.0);
    }
}
