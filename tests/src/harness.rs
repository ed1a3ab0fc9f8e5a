//! The API tests use: start/stop emulators, kubeconfigs, seeding, reading state, request counts, kubectl.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::{ApiError, EmulatorError};
use crate::resources::{CRD_GROUP, CRD_RESOURCE, ResourceDef};
use crate::store::{EventType, Inner, Key, Settings};

/// The data of one emulated cluster. It outlives a stopped emulator, so a test can bring the "cluster" back
/// with its objects: `let state = emu.stop().await; Emulator::start_on(port, state).await`.
#[derive(Clone)]
pub struct ClusterState(pub(crate) Arc<Inner>);

impl ClusterState {
    /// A fresh cluster: only the `default`, `kube-system`, `kube-public` and `kube-node-lease` namespaces.
    pub fn new() -> Self {
        ClusterState(Inner::new(Settings::default()))
    }

    pub fn with_settings(settings: Settings) -> Self {
        ClusterState(Inner::new(settings))
    }
}

impl Default for ClusterState {
    fn default() -> Self {
        Self::new()
    }
}

/// Options for [`Emulator::start`]; obtain with [`Emulator::builder`].
#[derive(Default)]
pub struct EmulatorBuilder {
    port: u16,
    state: Option<ClusterState>,
    context: Option<String>,
    settings: Option<Settings>,
    crds: bool,
    seeds: Vec<String>,
}

impl EmulatorBuilder {
    /// A fixed port on 127.0.0.1 (default 0: a free one).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    /// Serve existing state (e.g. from [`Emulator::stop`]).
    pub fn state(mut self, state: ClusterState) -> Self {
        self.state = Some(state);
        self
    }
    /// Context, cluster and user name in the kubeconfig (default `emulator-<port>`).
    pub fn context_name(mut self, name: impl Into<String>) -> Self {
        self.context = Some(name.into());
        self
    }
    /// Watch history size and bookmark interval (only for a fresh state).
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = Some(settings);
        self
    }
    /// Store the minimal k0rdent and CAPI identity CRDs ([`crate::crds`]) at start.
    pub fn crds(mut self, yes: bool) -> Self {
        self.crds = yes;
        self
    }
    /// Objects stored at start (see [`Emulator::seed_yaml`]).
    pub fn seed_yaml(mut self, yaml: impl Into<String>) -> Self {
        self.seeds.push(yaml.into());
        self
    }

    pub async fn start(self) -> Result<Emulator, EmulatorError> {
        let state = match (self.state, self.settings) {
            (Some(s), _) => s,
            (None, Some(settings)) => ClusterState::with_settings(settings),
            (None, None) => ClusterState::new(),
        };
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .map_err(|source| EmulatorError::Bind { port: self.port, source })?;
        let port = listener.local_addr().map_err(|source| EmulatorError::Bind { port: self.port, source })?.port();
        let dir = temp_dir(port)?;
        let context = self.context.unwrap_or_else(|| format!("emulator-{port}"));
        let mut emu = Emulator {
            port,
            state,
            token: CancellationToken::new(),
            task: None,
            context,
            kubeconfig: dir.join("kubeconfig"),
            dir,
        };
        write_file(&emu.kubeconfig, &emu.kubeconfig_yaml())?;
        if self.crds {
            emu.seed_yaml(&crate::crds::crds_yaml())?;
        }
        for s in &self.seeds {
            emu.seed_yaml(s)?;
        }
        emu.listen(listener);
        Ok(emu)
    }
}

static DIR_SEQ: AtomicU64 = AtomicU64::new(0);

fn temp_dir(port: u16) -> Result<PathBuf, EmulatorError> {
    let seq = DIR_SEQ.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("kube-emulator-{}-{port}-{seq}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|source| EmulatorError::Kubeconfig { path: dir.display().to_string(), source })?;
    Ok(dir)
}

fn write_file(path: &Path, text: &str) -> Result<(), EmulatorError> {
    std::fs::write(path, text).map_err(|source| EmulatorError::Kubeconfig { path: path.display().to_string(), source })
}

/// A running emulated API server on 127.0.0.1, served by a task of the current tokio runtime.
pub struct Emulator {
    port: u16,
    state: ClusterState,
    token: CancellationToken,
    task: Option<JoinHandle<()>>,
    context: String,
    kubeconfig: PathBuf,
    dir: PathBuf,
}

/// What a `kubectl` run printed.
#[derive(Debug, Clone)]
pub struct KubectlOutput {
    /// Exit code; `None` when kubectl was killed (timeout).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl KubectlOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl Emulator {
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }

    /// A fresh cluster on a free port.
    pub async fn start() -> Result<Emulator, EmulatorError> {
        Self::builder().start().await
    }

    /// Serves `state` on a given port (e.g. the port of an emulator that was stopped).
    pub async fn start_on(port: u16, state: ClusterState) -> Result<Emulator, EmulatorError> {
        Self::builder().port(port).state(state).start().await
    }

    fn listen(&mut self, listener: TcpListener) {
        self.token = CancellationToken::new();
        let (inner, token) = (self.state.0.clone(), self.token.clone());
        self.task = Some(tokio::spawn(crate::server::serve(listener, inner, token)));
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn context_name(&self) -> &str {
        &self.context
    }

    /// The cluster's data (shared, not a copy).
    pub fn state(&self) -> ClusterState {
        self.state.clone()
    }

    /// A kubeconfig written at start into this emulator's own temporary directory (removed on drop).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// kubectl's `--cache-dir` for [`Emulator::kubectl`]: per emulator, so discovery is never stale.
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.join("kubectl-cache")
    }

    /// kubeconfig text: server `http://127.0.0.1:<port>`, a dummy token, context [`Emulator::context_name`].
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig_yaml(&[self], &self.context)
    }

    /// Writes `<dir>/kubeconfig-<context>` and returns its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> Result<PathBuf, EmulatorError> {
        let path = dir.join(format!("kubeconfig-{}", self.context));
        write_file(&path, &self.kubeconfig_yaml())?;
        Ok(path)
    }

    /// Stops serving: the listener closes and every open connection and watch is dropped. The data is returned
    /// for [`Emulator::start_on`].
    pub async fn stop(mut self) -> ClusterState {
        self.halt().await;
        self.state.clone()
    }

    async fn halt(&mut self) {
        self.token.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Makes the cluster unreachable (connections refused, open watches cut) while keeping its data.
    pub async fn pause(&mut self) {
        self.halt().await;
    }

    /// Serves again on the same port after [`Emulator::pause`]. Retries the bind for up to 5 s.
    pub async fn resume(&mut self) -> Result<(), EmulatorError> {
        if self.task.is_some() {
            return Ok(());
        }
        let mut last = None;
        for _ in 0..50 {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => {
                    self.listen(l);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(EmulatorError::Bind {
            port: self.port,
            source: last.unwrap_or_else(|| std::io::Error::other("bind failed")),
        })
    }

    pub fn is_running(&self) -> bool {
        self.task.is_some()
    }

    /// Stores every object of a multi-document YAML text (a `kind: List` is expanded) without admission:
    /// Namespaces first, then CRDs, then the rest; missing namespaces are created. An existing object is
    /// replaced. `.status` is kept, so seeds can say e.g. a Region is Ready. Returns how many were stored.
    pub fn seed_yaml(&self, yaml: &str) -> Result<usize, EmulatorError> {
        // Seeds are trusted test input and may be large estates: lift the parser's anti-abuse limits.
        let mut budget = serde_saphyr::Budget::default();
        budget.max_documents = 10_000_000;
        budget.max_nodes = 100_000_000;
        budget.max_events = 500_000_000;
        let mut options = serde_saphyr::Options::default();
        options.budget = Some(budget);
        let docs: Vec<Value> = serde_saphyr::from_multiple_with_options::<Value>(yaml, options)
            .map_err(|e| EmulatorError::SeedYaml(e.to_string()))?;
        let mut objects = Vec::new();
        for d in docs {
            match d {
                Value::Null => {}
                Value::Object(_) if d.get("kind").and_then(Value::as_str) == Some("List") => {
                    objects.extend(d.get("items").and_then(Value::as_array).cloned().unwrap_or_default())
                }
                other => objects.push(other),
            }
        }
        let rank =
            |o: &Value| match (o.get("apiVersion").and_then(Value::as_str), o.get("kind").and_then(Value::as_str)) {
                (Some("v1"), Some("Namespace")) => 0,
                (_, Some("CustomResourceDefinition")) => 1,
                _ => 2,
            };
        let mut indexed: Vec<(usize, Value)> = objects.into_iter().enumerate().collect();
        indexed.sort_by_key(|(_, o)| rank(o));
        let n = indexed.len();
        for (index, obj) in indexed {
            self.seed_object(obj).map_err(|(what, error)| EmulatorError::SeedRejected { index, what, error })?;
        }
        Ok(n)
    }

    /// Stores one object like [`Emulator::seed_yaml`] does.
    pub fn seed(&self, obj: Value) -> Result<Value, EmulatorError> {
        self.seed_object(obj).map_err(|(what, error)| EmulatorError::SeedRejected { index: 0, what, error })
    }

    fn seed_object(&self, mut obj: Value) -> Result<Value, (String, ApiError)> {
        let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_string();
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
        let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        let what = format!("{av} {kind} {name}");
        let mut state = self.state.0.lock();
        let def = state.find_by_kind(&av, &kind).ok_or_else(|| {
            let msg = format!(
                "no resource serves kind \"{kind}\" in apiVersion \"{av}\": check apiVersion and kind, or seed its \
                 CustomResourceDefinition (e.g. Emulator::builder().crds(true))"
            );
            (what.clone(), ApiError::new(404, "NotFound", msg))
        })?;
        if name.is_empty() {
            return Err((what, ApiError::bad_request("metadata.name is required in a seed object")));
        }
        let ns = if def.namespaced {
            let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default").to_string();
            crate::store::meta_mut(&mut obj).insert("namespace".into(), json!(ns));
            let nsdef = state.find_by_kind("v1", "Namespace");
            if let Some(nsdef) = nsdef
                && state.get(&Key::new(&nsdef, "", &ns)).is_none()
            {
                let n = state.prepare_create(
                    &nsdef,
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                    true,
                );
                state.put(Key::new(&nsdef, "", &ns), n, EventType::Added);
            }
            ns
        } else {
            crate::store::meta_mut(&mut obj).remove("namespace");
            String::new()
        };
        let key = Key::new(&def, &ns, &name);
        let stored = match state.get(&key).cloned() {
            Some(old) => {
                let new = state.prepare_update(&def, &old, obj, false);
                let mut new = new;
                if let Some(s) = old.get("status").filter(|_| def.status_subresource) {
                    // A seed replaces the whole object, status included.
                    new["status"] = s.clone();
                }
                state.put(key, new, EventType::Modified)
            }
            None => {
                let new = state.prepare_create(&def, obj, true);
                state.put(key, new, EventType::Added)
            }
        };
        Ok(stored)
    }

    /// Stores the minimal k0rdent and CAPI identity CRDs.
    pub fn seed_crds(&self) -> Result<usize, EmulatorError> {
        self.seed_yaml(&crate::crds::crds_yaml())
    }

    fn resolve(&self, api_version: &str, kind: &str) -> Result<ResourceDef, EmulatorError> {
        self.state.0.lock().find_by_kind(api_version, kind).ok_or_else(|| EmulatorError::UnknownResource {
            api_version: api_version.into(),
            kind_or_resource: kind.into(),
        })
    }

    /// One stored object. `kind` is a Kind or a plural resource name (`"Secret"` or `"secrets"`);
    /// `namespace` is ignored for cluster-scoped kinds.
    pub fn get(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let def = self.resolve(api_version, kind).ok()?;
        self.state.0.lock().get(&Key::new(&def, namespace.unwrap_or_default(), name)).cloned()
    }

    /// Stored objects of a kind, in one namespace or all (`None`), ordered by namespace and name.
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let Ok(def) = self.resolve(api_version, kind) else { return vec![] };
        let ns = if def.namespaced { namespace } else { None };
        self.state.0.lock().list(&def, ns).into_iter().map(|(_, v)| v.clone()).collect()
    }

    /// Deletes without admission (finalizers still hold the object). `true` when it existed.
    pub fn remove(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> bool {
        let Ok(def) = self.resolve(api_version, kind) else { return false };
        self.state.0.lock().delete(&Key::new(&def, namespace.unwrap_or_default(), name)).is_some()
    }

    /// The cluster's current resourceVersion (it grows by one per write).
    pub fn resource_version(&self) -> u64 {
        self.state.0.lock().rv
    }

    /// Drops the watch history, as an etcd compaction: watches resuming from an older resourceVersion get
    /// 410 Gone.
    pub fn compact(&self) {
        self.state.0.lock().compact();
    }

    /// Requests served for a verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`) and resource (`secrets`, `credentials`, `credentials/status`). Discovery and other
    /// non-resource requests count as verb `get` with the path as resource (`/apis`, `/openapi/v3`).
    pub fn request_count(&self, verb: &str, resource: &str) -> u64 {
        let c = self.state.0.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.get(&(verb.to_string(), resource.to_string())).copied().unwrap_or(0)
    }

    /// Every counter, keyed by (verb, resource).
    pub fn request_counts(&self) -> BTreeMap<(String, String), u64> {
        self.state.0.counts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Requests to resources (discovery excluded).
    pub fn resource_request_total(&self) -> u64 {
        self.request_counts().iter().filter(|((_, r), _)| !r.starts_with('/')).map(|(_, n)| n).sum()
    }

    pub fn reset_request_counts(&self) {
        self.state.0.counts.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Runs `kubectl` (or `$KUBECTL`) against this emulator with its own kubeconfig and cache dir, killed after
    /// 30 s.
    pub async fn kubectl(&self, args: &[&str]) -> Result<KubectlOutput, EmulatorError> {
        self.kubectl_with(args, None, Duration::from_secs(30)).await
    }

    /// `kubectl` with text on stdin (e.g. `apply -f -`), killed after `timeout`.
    pub async fn kubectl_with(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<KubectlOutput, EmulatorError> {
        run_kubectl(&self.kubeconfig, &self.cache_dir(), args, stdin, timeout).await
    }

    /// Names of all resources served (for debugging).
    pub fn served_resources(&self) -> Vec<String> {
        self.state.0.lock().resources().iter().map(|d| crate::error::qualified(&d.group, &d.plural)).collect()
    }

    /// Whether a CRD of this name exists.
    pub fn has_crd(&self, name: &str) -> bool {
        self.state.0.lock().objects.keys().any(|k| k.group == CRD_GROUP && k.resource == CRD_RESOURCE && k.name == name)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.token.cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One kubeconfig naming several emulators (e.g. management and regional clusters), each under its context
/// name, with `current` as the current context.
pub fn kubeconfig_yaml(emulators: &[&Emulator], current: &str) -> String {
    let mut clusters = Vec::new();
    let mut contexts = Vec::new();
    let mut users = Vec::new();
    for e in emulators {
        let n = &e.context;
        clusters.push(json!({"name": n, "cluster": {"server": e.url()}}));
        contexts.push(json!({"name": n, "context": {"cluster": n, "user": n, "namespace": "default"}}));
        users.push(json!({"name": n, "user": {"token": "emulator-dummy-token"}}));
    }
    let cfg = json!({
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": clusters, "contexts": contexts, "users": users, "current-context": current,
    });
    // JSON is valid YAML, and every kubeconfig reader accepts it.
    serde_json::to_string_pretty(&cfg).unwrap_or_default()
}

/// Runs kubectl with a kubeconfig and cache dir; the child is killed when `timeout` passes.
pub async fn run_kubectl(
    kubeconfig: &Path,
    cache_dir: &Path,
    args: &[&str],
    stdin: Option<&str>,
    timeout: Duration,
) -> Result<KubectlOutput, EmulatorError> {
    use tokio::io::AsyncWriteExt as _;
    let program = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let mut cmd = tokio::process::Command::new(&program);
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache_dir)
        .args(args)
        .stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let spawn_err = |source| EmulatorError::Kubectl { program: program.clone(), source };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).await.map_err(spawn_err)?;
        drop(pipe);
    }
    // Read both pipes in the background so that what a killed kubectl printed (e.g. `get -w`) is kept.
    let reader = |pipe: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>| {
        tokio::spawn(async move {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = tokio::io::AsyncReadExt::read_to_end(&mut p, &mut buf).await;
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out_task = reader(child.stdout.take().map(|p| Box::new(p) as _));
    let err_task = reader(child.stderr.take().map(|p| Box::new(p) as _));
    let code = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status.map_err(spawn_err)?.code(),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    };
    let stdout = out_task.await.unwrap_or_default();
    let mut stderr = err_task.await.unwrap_or_default();
    if code.is_none() {
        stderr.push_str(&format!("\nkubectl {} was killed after {timeout:?}", args.join(" ")));
    }
    Ok(KubectlOutput { code, stdout, stderr })
}
