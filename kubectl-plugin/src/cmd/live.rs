//! Live mode: kubeconfig handling like kubectl, and reading what `explain` and `plan` need from
//! the management cluster and the Regions' clusters into a [`MemoryEstate`], so the same
//! readiness and planning code runs live and offline.
//!
//! Reads are few and concurrent: one round trip for the Credentials, Regions, ProviderInterfaces
//! and ClusterDeployments; then, at the same time, API discovery in the management cluster and,
//! per Region, its kubeconfig Secret, ProviderInterfaces and discovery; then the identities and
//! their references (one round per reference level); then the copies in each target cluster.
//! Discovery answers "is this kind served here" without listing CRDs (large, often forbidden):
//! each discovered custom kind is recorded as a minimal CRD object in the estate.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use credential_core::gvk::builtin_scope;
use credential_core::identity::{self, ObjectKey, PlanProblem};
use credential_core::kubeconfig::{UntrustedKubeconfig, parse_untrusted};
use credential_core::model;
use credential_core::{Cluster, Estate, Gvk, MemoryEstate};
use futures_util::{StreamExt, stream};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

use crate::cli::ConnectArgs;
use crate::error::CliError;

/// Time to wait for a TCP/TLS connection: an unreachable region must not stall `explain`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time to wait for a response.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Server-side length of one watch request (`timeoutSeconds`): the server ends it, we restart it.
pub const WATCH_SECONDS: u64 = 1800;
/// Read timeout of watches: an idle watch gets no bytes for minutes (bookmarks are rare), so
/// [`READ_TIMEOUT`] would kill it; past the server's own end only a dead connection is silent.
const WATCH_READ_TIMEOUT: Duration = Duration::from_secs(WATCH_SECONDS + 60);
/// Requests in flight at once per phase.
const CONCURRENCY: usize = 16;

/// A client for one cluster and the server it talks to (for messages).
#[derive(Clone)]
pub struct Rest {
    client: kube::Client,
    /// The client for watches (long read timeout), built on first use.
    watch_client: std::sync::Arc<tokio::sync::OnceCell<kube::Client>>,
    config: kube::Config,
    pub server: String,
}

/// The management cluster connection and the context's namespace.
pub struct Connection {
    pub rest: Rest,
    /// The namespace of the kubeconfig context (`default` when it names none), as kubectl uses it.
    pub namespace: String,
}

/// Reads the kubeconfig as kubectl does and connects to the management cluster.
pub async fn connect(args: &ConnectArgs) -> Result<Connection, CliError> {
    let opts =
        KubeConfigOptions { context: args.context.clone(), cluster: args.cluster.clone(), user: args.user.clone() };
    let kubeconfig = match &args.kubeconfig {
        Some(path) => Some(Kubeconfig::read_from(path).map_err(|e| {
            CliError::Kubeconfig(format!("cannot read kubeconfig {}: {}", path.display(), error_text(&e)))
        })?),
        None => read_default_kubeconfig()?,
    };
    if let Some(kc) = &kubeconfig {
        names_exist(kc, args)?;
    }
    let config = match kubeconfig {
        Some(kc) => kube::Config::from_custom_kubeconfig(kc, &opts)
            .await
            .map_err(|e| CliError::Kubeconfig(format!("invalid configuration: {}", error_text(&e))))?,
        None => kube::Config::incluster().map_err(|_| {
            CliError::Kubeconfig(
                "no kubeconfig found: set KUBECONFIG, pass --kubeconfig PATH or create ~/.kube/config (or read an \
                 offline estate with --from DIR)"
                    .to_string(),
            )
        })?,
    };
    let namespace = config.default_namespace.clone();
    Ok(Connection { rest: Rest::new(config)?, namespace })
}

/// `--context`, `--cluster` and `--user` name entries of the kubeconfig: kubectl's errors when not.
fn names_exist(kc: &Kubeconfig, args: &ConnectArgs) -> Result<(), CliError> {
    if let Some(c) = &args.context
        && !kc.contexts.iter().any(|x| &x.name == c)
    {
        return Err(CliError::Kubeconfig(format!(
            "Error in configuration: context was not found for specified context: {c}"
        )));
    }
    if let Some(c) = &args.cluster
        && !kc.clusters.iter().any(|x| &x.name == c)
    {
        return Err(CliError::Kubeconfig(format!("no server found for cluster \"{c}\"")));
    }
    if let Some(u) = &args.user
        && !kc.auth_infos.iter().any(|x| &x.name == u)
    {
        return Err(CliError::Kubeconfig(format!("auth info \"{u}\" does not exist")));
    }
    Ok(())
}

/// `KUBECONFIG` (a path list, merged; missing files skipped as kubectl does) or `~/.kube/config`.
fn read_default_kubeconfig() -> Result<Option<Kubeconfig>, CliError> {
    let read = |p: &std::path::Path| {
        Kubeconfig::read_from(p)
            .map_err(|e| CliError::Kubeconfig(format!("cannot read kubeconfig {}: {}", p.display(), error_text(&e))))
    };
    if let Some(value) = std::env::var_os("KUBECONFIG") {
        let paths: Vec<_> = std::env::split_paths(&value).filter(|p| !p.as_os_str().is_empty() && p.exists()).collect();
        if !paths.is_empty() {
            let mut merged = Kubeconfig::default();
            for p in &paths {
                merged = merged.merge(read(p)?).map_err(|e| CliError::Kubeconfig(error_text(&e)))?;
            }
            return Ok(Some(merged));
        }
    }
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    match home.map(|h| h.join(".kube").join("config")).filter(|p| p.exists()) {
        Some(p) => read(&p).map(Some),
        None => Ok(None),
    }
}

/// Why a request failed.
#[derive(Debug, Clone)]
pub enum RestError {
    /// The server answered with a Status.
    Status { code: u16, reason: String, message: String },
    /// No answer: connection refused, timeout, TLS, authentication plugin...
    Transport(String),
}

impl std::fmt::Display for RestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestError::Status { code, reason, message } => write!(f, "{message} ({reason}, {code})"),
            RestError::Transport(e) => f.write_str(e),
        }
    }
}

impl RestError {
    fn from_kube(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) => {
                RestError::Status { code: s.code, reason: s.reason.clone(), message: s.message.clone() }
            }
            other => RestError::Transport(error_text(&other)),
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, RestError::Status { code: 404, .. })
    }

    /// kubectl's wording for an error from the management cluster.
    pub fn into_cli(self, server: &str) -> CliError {
        match self {
            RestError::Status { reason, message, .. } => CliError::Server {
                reason: if reason.is_empty() { "Unknown".to_string() } else { reason },
                message,
                hint: None,
            },
            RestError::Transport(error) => CliError::Connect { server: server.to_string(), error },
        }
    }
}

/// The innermost useful text of an error chain ("connection refused", "deadline has elapsed").
pub fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        // Wrappers repeat their source ("ServiceError: client error (Connect)"): keep what is new.
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    let useful: Vec<&String> = parts
        .iter()
        .filter(|p| !p.starts_with("ServiceError") && !p.starts_with("HyperError") && !p.starts_with("client error"))
        .collect();
    match useful.last() {
        Some(last) => last.to_string(),
        None => parts.last().cloned().unwrap_or_default(),
    }
}

impl Rest {
    fn new(mut config: kube::Config) -> Result<Self, CliError> {
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        config.read_timeout = Some(READ_TIMEOUT);
        let server = config.cluster_url.to_string().trim_end_matches('/').to_string();
        let client = Self::client_for(config.clone(), &server)?;
        Ok(Rest { client, watch_client: Default::default(), config, server })
    }

    fn client_for(config: kube::Config, server: &str) -> Result<kube::Client, CliError> {
        kube::Client::try_from(config)
            .map_err(|e| CliError::Kubeconfig(format!("cannot create a client for {server}: {}", error_text(&e))))
    }

    /// GET a path as JSON.
    pub async fn get_json(&self, path: &str) -> Result<Value, RestError> {
        let req = http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| RestError::Transport(format!("invalid request path {path}: {e}")))?;
        self.client.request::<Value>(req).await.map_err(RestError::from_kube)
    }

    /// One object; `None` when it does not exist.
    pub async fn get(&self, path: &str) -> Result<Option<Value>, RestError> {
        match self.get_json(path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A collection: its items (with apiVersion and kind filled in, as list items of built-in kinds
    /// lack them) and the list's resourceVersion.
    pub async fn list(&self, gvk: &Gvk, path: &str) -> Result<(Vec<Value>, String), RestError> {
        let mut list = self.get_json(path).await?;
        let rv = list.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or_default().to_string();
        let items = match list.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        let items = items
            .into_iter()
            .map(|mut o| {
                if let Some(m) = o.as_object_mut() {
                    m.entry("apiVersion").or_insert_with(|| Value::String(gvk.api_version()));
                    m.entry("kind").or_insert_with(|| Value::String(gvk.kind.clone()));
                }
                o
            })
            .collect();
        Ok((items, rv))
    }

    /// A collection whose resource may not be served (an older KCM without Regions): empty then.
    async fn list_if_served(&self, gvk: &Gvk, path: &str) -> Result<Vec<Value>, RestError> {
        match self.list(gvk, path).await {
            Ok((items, _)) => Ok(items),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The client for watch requests: same connection settings, but a read timeout longer than a
    /// watch's `timeoutSeconds` (see [`WATCH_READ_TIMEOUT`]).
    pub async fn watch_client(&self) -> Result<&kube::Client, CliError> {
        self.watch_client.get_or_try_init(|| async { Self::client_for(watch_config(&self.config), &self.server) }).await
    }
}

/// `config` for watch requests: the connect timeout stays, the read timeout outlasts a watch.
fn watch_config(config: &kube::Config) -> kube::Config {
    let mut config = config.clone();
    config.read_timeout = Some(WATCH_READ_TIMEOUT);
    config
}

/// Percent-encodes a path segment or query value (names come from the command line).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The REST path of a collection (`name: None`) or an object.
pub fn path(gvk: &Gvk, plural: &str, namespace: Option<&str>, name: Option<&str>) -> String {
    let mut p = if gvk.group.is_empty() {
        format!("/api/{}", gvk.version)
    } else {
        format!("/apis/{}/{}", gvk.group, gvk.version)
    };
    if let Some(ns) = namespace {
        p.push_str(&format!("/namespaces/{}", encode(ns)));
    }
    p.push('/');
    p.push_str(plural);
    if let Some(n) = name {
        p.push('/');
        p.push_str(&encode(n));
    }
    p
}

/// Plural and scope of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Resource {
    plural: String,
    namespaced: bool,
}

/// The kinds this plugin always reads: no discovery needed.
fn well_known(gvk: &Gvk) -> Option<Resource> {
    credential_core::gvk::known_kind(gvk).map(|k| Resource { plural: k.plural.to_string(), namespaced: k.namespaced })
}

/// The collection path of the Credentials of a namespace (`None`: all).
pub fn credentials_path(namespace: Option<&str>) -> String {
    path(&Gvk::credential(), "credentials", namespace, None)
}

/// The kinds a group/version serves (`None`: the group/version is not served).
type Discovered = Option<Vec<(String, Resource)>>;

/// One cluster being read: its client and what discovery found.
struct Reader {
    rest: Rest,
    /// group/version -> kinds served there (`None`: the group/version is not served).
    discovered: HashMap<String, Discovered>,
}

impl Reader {
    fn new(rest: Rest) -> Self {
        Reader { rest, discovered: HashMap::new() }
    }

    fn resource(&self, gvk: &Gvk) -> Option<Resource> {
        if let Some(r) = well_known(gvk) {
            return Some(r);
        }
        let kinds = self.discovered.get(&gvk.api_version())?.as_ref()?;
        kinds.iter().find(|(k, _)| *k == gvk.kind).map(|(_, r)| r.clone())
    }

    /// Discovers the group/versions not seen yet, concurrently.
    async fn discover(&mut self, gvs: impl IntoIterator<Item = String>) -> Result<(), RestError> {
        let todo: BTreeSet<String> = gvs.into_iter().filter(|gv| !self.discovered.contains_key(gv)).collect();
        let client = self.rest.client.clone();
        let results: Vec<(String, Result<Discovered, RestError>)> = stream::iter(todo)
            .map(|gv| {
                let client = client.clone();
                async move {
                    let res = if gv.contains('/') {
                        client.list_api_group_resources(&gv).await
                    } else {
                        client.list_core_api_resources(&gv).await
                    };
                    let res = match res.map_err(RestError::from_kube) {
                        Ok(list) => Ok(Some(
                            list.resources
                                .into_iter()
                                .filter(|r| !r.name.contains('/'))
                                .map(|r| (r.kind, Resource { plural: r.name, namespaced: r.namespaced }))
                                .collect(),
                        )),
                        Err(e) if e.is_not_found() => Ok(None),
                        Err(e) => Err(e),
                    };
                    (gv, res)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (gv, res) in results {
            self.discovered.insert(gv, res?);
        }
        Ok(())
    }

    /// Minimal CRD objects for every discovered custom kind: what the estate needs for
    /// served/namespaced checks and the CRD's name.
    fn crd_objects(&self) -> Vec<Value> {
        let mut crds: BTreeMap<(String, String), (Resource, BTreeSet<String>)> = BTreeMap::new();
        for (gv, kinds) in &self.discovered {
            let Some((group, version)) = gv.split_once('/') else { continue };
            for (kind, res) in kinds.iter().flatten() {
                if builtin_scope(&Gvk::new(group, version, kind)).is_some() {
                    continue;
                }
                let entry =
                    crds.entry((group.to_string(), kind.clone())).or_insert_with(|| (res.clone(), BTreeSet::new()));
                entry.1.insert(version.to_string());
            }
        }
        crds.into_iter()
            .map(|((group, kind), (res, versions))| {
                json!({
                    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                    "metadata": {"name": format!("{}.{group}", res.plural)},
                    "spec": {
                        "group": group, "names": {"kind": kind, "plural": res.plural},
                        "scope": if res.namespaced { "Namespaced" } else { "Cluster" },
                        "versions": versions.iter().map(|v| json!({"name": v, "served": true})).collect::<Vec<_>>(),
                    }
                })
            })
            .collect()
    }

    /// GETs objects by key (discovering their group/versions first); missing ones are skipped.
    async fn fetch(&mut self, keys: &BTreeSet<ObjectKey>) -> Result<Vec<Value>, RestError> {
        self.discover(keys.iter().filter(|k| well_known(&k.gvk).is_none()).map(|k| k.gvk.api_version())).await?;
        let paths: Vec<String> = keys
            .iter()
            .filter_map(|k| {
                let res = self.resource(&k.gvk)?;
                let ns = if res.namespaced { k.namespace.as_deref() } else { None };
                if res.namespaced && ns.is_none() {
                    return None;
                }
                Some(path(&k.gvk, &res.plural, ns, Some(&k.name)))
            })
            .collect();
        let rest = self.rest.clone();
        let results: Vec<Result<Option<Value>, RestError>> = stream::iter(paths)
            .map(|p| {
                let rest = rest.clone();
                async move { rest.get(&p).await }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut out = Vec::new();
        for r in results {
            if let Some(v) = r? {
                out.push(v);
            }
        }
        Ok(out)
    }
}

/// Which Credentials to read.
#[derive(Debug, Clone, Copy)]
pub enum Wanted<'a> {
    One { namespace: &'a str, name: &'a str },
    Namespace(&'a str),
    All,
}

/// What live mode read.
pub struct LiveEstate {
    pub estate: MemoryEstate,
    /// What could not be read besides the clusters (the webhook's Lease, the orphan records, the
    /// Events, KCM's Management), keyed as in [`super::distribution`], with the error.
    pub side_errors: BTreeMap<String, String>,
    /// The API server of each Region read, with its version.
    pub servers: BTreeMap<String, RegionalServer>,
    /// Regions whose cluster could not be read, with the error.
    pub unreachable: BTreeMap<String, String>,
    /// Of those, the Regions whose kubeconfig Secret holds no kubeconfig (a definite failure).
    pub invalid: BTreeMap<String, String>,
    /// The Credentials asked for, ordered by namespace/name.
    pub credentials: Vec<Arc<Value>>,
}

/// Objects read per cluster, inserted into the final estate together.
#[derive(Default)]
struct Parts {
    objects: BTreeMap<Cluster, Vec<Value>>,
}

impl Parts {
    fn add(&mut self, cluster: &Cluster, objs: impl IntoIterator<Item = Value>) {
        self.objects.entry(cluster.clone()).or_default().extend(objs);
    }

    fn estate(&self, system_namespace: &str, skip: &BTreeMap<String, String>) -> MemoryEstate {
        let mut e = MemoryEstate::new(system_namespace);
        for (cluster, objs) in &self.objects {
            if let Cluster::Region(r) = cluster
                && skip.contains_key(r)
            {
                continue;
            }
            e.add_cluster(cluster.clone());
            for o in objs {
                e.insert(cluster, o.clone());
            }
        }
        e
    }
}

/// The kubeconfig Secret a Region names: (namespace, name, key), the core's one answer.
fn kubeconfig_ref(region: &Value, system_namespace: &str) -> Option<(String, String, String)> {
    credential_core::kubeconfig::region_kubeconfig_ref_of(region, system_namespace)
        .ok()
        .map(|r| (r.namespace, r.name, r.key))
}

/// Secret values are not kept: readiness only asks whether the key holds something.
fn redacted(mut secret: Value) -> Value {
    for field in ["data", "stringData"] {
        if let Some(map) = secret.get_mut(field).and_then(Value::as_object_mut) {
            for v in map.values_mut() {
                if v.as_str().is_some_and(|s| !s.is_empty()) {
                    *v = Value::String("<redacted>".to_string());
                }
            }
        }
    }
    if let Some(meta) = secret.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("annotations");
        meta.remove("managedFields");
    }
    secret
}

/// The value under `key` of a Secret, decoded (`data` is base64, `stringData` plain).
fn secret_value(secret: &Value, key: &str) -> Option<String> {
    if let Some(s) = secret.pointer("/stringData").and_then(|d| d.get(key)).and_then(Value::as_str) {
        return Some(s.to_string());
    }
    let b64 = secret.pointer("/data").and_then(|d| d.get(key)).and_then(Value::as_str)?;
    let bytes = base64_decode(b64)?;
    String::from_utf8(bytes).ok()
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// What one regional cluster gave in the first phase.
struct RegionRead {
    region: String,
    /// The kubeconfig Secret (values redacted), when it exists.
    secret: Option<Value>,
    result: Result<(Reader, Vec<Value>), String>,
    /// The Secret holds no kubeconfig: nobody, KCM included, can use it.
    invalid: bool,
    /// The regional API server and its version, as far as they could be learnt.
    server: RegionalServer,
}

/// A regional API server: its URL (from the Region's kubeconfig) and version (its `/version`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionalServer {
    /// `None` when the Region's kubeconfig could not be read.
    pub url: Option<String>,
    /// `gitVersion` of `/version`; `None` when the server did not answer (UNKNOWN).
    pub version: Option<String>,
}

/// Reads one Region's kubeconfig Secret, then its ProviderInterfaces and discovery.
async fn read_region(
    mgmt: &Rest,
    region: String,
    kubeconfig: Option<(String, String, String)>,
    gvs: BTreeSet<String>,
) -> RegionRead {
    let Some((ns, name, key)) = kubeconfig else {
        return RegionRead {
            region,
            secret: None,
            result: Err("the Region names no kubeconfig (neither spec.kubeConfig nor spec.clusterDeployment)".into()),
            invalid: false,
            server: RegionalServer::default(),
        };
    };
    let secret = match mgmt.get(&path(&Gvk::secret(), "secrets", Some(&ns), Some(&name))).await {
        Ok(s) => s,
        Err(e) => {
            return RegionRead {
                region,
                secret: None,
                result: Err(format!("cannot read Secret {ns}/{name}: {e}")),
                invalid: false,
                server: RegionalServer::default(),
            };
        }
    };
    let Some(secret) = secret else {
        return RegionRead {
            region,
            secret: None,
            result: Err(format!("kubeconfig Secret {ns}/{name} not found")),
            invalid: false,
            server: RegionalServer::default(),
        };
    };
    let text = secret_value(&secret, &key);
    let secret = Some(redacted(secret));
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return RegionRead {
            region,
            secret,
            result: Err(format!("Secret {ns}/{name} has no kubeconfig under {key:?}")),
            invalid: false,
            server: RegionalServer::default(),
        };
    };
    let invalid = std::cell::Cell::new(false);
    let server = std::cell::RefCell::new(RegionalServer::default());
    let result = async {
        // Checked before any client exists: whoever writes this Secret must not get a command run
        // or a file read on the operator's machine. The client is built from the checked value.
        // Errors say where, never what (the document holds credentials).
        let checked = parse_untrusted(&text, &format!("Secret {ns}/{name}[{key}]")).map_err(|e| match e {
            UntrustedKubeconfig::Syntax(_) => {
                invalid.set(true);
                format!("Secret {ns}/{name}[{key}] does not hold a valid kubeconfig")
            }
            e => format!("kubeconfig in Secret {ns}/{name}[{key}] is rejected: {e}"),
        })?;
        let kc: Kubeconfig = serde_json::from_value(checked).map_err(|_| {
            invalid.set(true);
            format!("Secret {ns}/{name}[{key}] does not hold a valid kubeconfig")
        })?;
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .map_err(|e| format!("kubeconfig in Secret {ns}/{name}[{key}]: {}", error_text(&e)))?;
        let rest = Rest::new(config).map_err(|e| e.to_string())?;
        server.borrow_mut().url = Some(rest.server.clone());
        let mut reader = Reader::new(rest);
        let pi_path = path(&Gvk::provider_interface(), "providerinterfaces", None, None);
        let server_url = reader.rest.server.clone();
        let (pis, disc, version) = {
            let rest = reader.rest.clone();
            let version_rest = reader.rest.clone();
            let list = async move { rest.list_if_served(&Gvk::provider_interface(), &pi_path).await };
            // `/version` is not a resource request: it costs the regional apiserver nothing it counts.
            let version = async move { version_rest.get_json("/version").await };
            tokio::join!(list, reader.discover(gvs), version)
        };
        server.borrow_mut().version =
            version.ok().and_then(|v| v.get("gitVersion").and_then(Value::as_str).map(str::to_string));
        let server = server_url;
        disc.map_err(|e| format!("{server}: {e}"))?;
        let pis = pis.map_err(|e| format!("{server}: {e}"))?;
        // Reference kinds the regional ProviderInterfaces name: discovered now, so that plans
        // and copies can be read without another round trip later.
        let ref_gvs: BTreeSet<String> = pis.iter().flat_map(pi_gvs).collect();
        reader.discover(ref_gvs).await.map_err(|e| format!("{server}: {e}"))?;
        Ok((reader, pis))
    }
    .await;
    RegionRead { region, secret, result, invalid: invalid.get(), server: server.into_inner() }
}

/// Every group/version a ProviderInterface names (identities and references).
fn pi_gvs(pi: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let gv = |e: &Value| {
        let g = e.get("group").and_then(Value::as_str).unwrap_or_default();
        let v = e.get("version").and_then(Value::as_str).unwrap_or_default();
        if v.is_empty() { None } else { Some(if g.is_empty() { v.to_string() } else { format!("{g}/{v}") }) }
    };
    for entry in pi.pointer("/spec/clusterIdentities").and_then(Value::as_array).into_iter().flatten() {
        out.extend(gv(entry));
        for r in entry.get("references").and_then(Value::as_array).into_iter().flatten() {
            out.extend(gv(r));
        }
    }
    out.retain(|g| g != "v1");
    out
}

fn identity_gv(cred: &Value) -> Option<String> {
    let av = cred.pointer("/spec/identityRef/apiVersion").and_then(Value::as_str).filter(|s| !s.is_empty())?;
    (av != "v1").then(|| av.to_string())
}

/// The objects beside the readiness checks (see [`super::distribution`]): the webhook's Lease, the
/// orphan records, the Warning Events of one wanted Credential, and, when the Lease does not tell
/// the mode, KCM's Management and the Release it names. What cannot be read is recorded, never fatal.
pub async fn read_extras(rest: &Rest, webhook_ns: &str, wanted: Wanted<'_>) -> (Vec<Value>, BTreeMap<String, String>) {
    use super::distribution::{self as d, EVENTS_READ, KCM_READ, LEASE_READ, ORPHANS_READ};
    let mut objects = Vec::new();
    let mut errors = BTreeMap::new();
    let lease_path =
        path(&d::lease_gvk(), "leases", Some(webhook_ns), Some(credential_core::distribution::DISTRIBUTION_LEASE));
    let orphans_path =
        path(&d::configmap_gvk(), "configmaps", Some(webhook_ns), Some(credential_core::distribution::ORPHANED_COPIES));
    let events = async {
        let Wanted::One { namespace, name } = wanted else { return Ok(Vec::new()) };
        let selector = format!("involvedObject.kind=Credential,involvedObject.name={name},type=Warning");
        let p =
            format!("{}?fieldSelector={}", path(&d::event_gvk(), "events", Some(namespace), None), encode(&selector));
        rest.list(&d::event_gvk(), &p).await.map(|l| l.0)
    };
    let (lease, orphans, events) = tokio::join!(rest.get(&lease_path), rest.get(&orphans_path), events);
    let mut lease_tells = false;
    for (key, result) in [(LEASE_READ, lease), (ORPHANS_READ, orphans)] {
        match result {
            Ok(Some(o)) => {
                lease_tells |= key == LEASE_READ && d::lease_mode(&o).is_ok();
                objects.push(o);
            }
            Ok(None) => {}
            Err(e) => {
                errors.insert(key.to_string(), e.to_string());
            }
        }
    }
    match events {
        Ok(list) => objects.extend(list),
        Err(e) => {
            errors.insert(EVENTS_READ.to_string(), e.to_string());
        }
    }
    if !lease_tells {
        let management_path =
            path(&d::management_gvk(), "managements", None, Some(credential_core::distribution::MANAGEMENT_NAME));
        match rest.get(&management_path).await {
            Ok(Some(m)) => {
                if let Some(release) = credential_core::distribution::release_name(&m) {
                    // A Release that cannot be read leaves its name to parse (detect_kcm does).
                    if let Ok(Some(r)) = rest.get(&path(&d::release_gvk(), "releases", None, Some(release))).await {
                        objects.push(r);
                    }
                }
                objects.push(m);
            }
            Ok(None) => {}
            Err(e) => {
                errors.insert(KCM_READ.to_string(), e.to_string());
            }
        }
    }
    (objects, errors)
}

/// Reads everything `explain`/`plan` look at for the wanted Credentials.
pub async fn load(
    conn: &Connection,
    system_namespace: &str,
    webhook_ns: &str,
    wanted: Wanted<'_>,
) -> Result<LiveEstate, CliError> {
    let rest = &conn.rest;
    let server = rest.server.clone();
    let mgmt = Cluster::Management;
    let k0 = |kind: &str, plural: &str, ns: Option<&str>| path(&Gvk::k0rdent(kind), plural, ns, None);

    // Phase 1: the Credentials and the objects every check reads, in one round trip.
    let creds = async {
        match wanted {
            Wanted::One { namespace, name } => rest
                .get_json(&path(&Gvk::credential(), "credentials", Some(namespace), Some(name)))
                .await
                .map(|c| vec![c]),
            Wanted::Namespace(ns) => rest.list(&Gvk::credential(), &credentials_path(Some(ns))).await.map(|l| l.0),
            Wanted::All => rest.list(&Gvk::credential(), &credentials_path(None)).await.map(|l| l.0),
        }
    };
    let cd_ns = match wanted {
        Wanted::One { namespace, .. } | Wanted::Namespace(namespace) => Some(namespace),
        Wanted::All => None,
    };
    let (region_gvk, pi_gvk, cd_gvk) = (Gvk::region(), Gvk::provider_interface(), Gvk::cluster_deployment());
    let (region_path, pi_path, cd_path) = (
        k0("Region", "regions", None),
        k0("ProviderInterface", "providerinterfaces", None),
        k0("ClusterDeployment", "clusterdeployments", cd_ns),
    );
    let (creds, regions, pis, cds) = tokio::join!(
        creds,
        rest.list_if_served(&region_gvk, &region_path),
        rest.list_if_served(&pi_gvk, &pi_path),
        rest.list_if_served(&cd_gvk, &cd_path),
    );
    let creds = match creds {
        Ok(c) => c,
        Err(e) if e.is_not_found() => {
            if let Wanted::One { namespace, name } = wanted {
                return Err(not_found(rest, e, namespace, name).await);
            }
            return Err(CliError::Invalid(format!(
                "the server doesn't have a resource type \"credentials\" (is k0rdent installed in the cluster at \
                 {server}?)"
            )));
        }
        Err(e) => return Err(e.into_cli(&server)),
    };
    let (regions, pis, cds) = (
        regions.map_err(|e| e.into_cli(&server))?,
        pis.map_err(|e| e.into_cli(&server))?,
        cds.map_err(|e| e.into_cli(&server))?,
    );

    let mut parts = Parts::default();
    parts.add(&mgmt, creds.iter().cloned());
    parts.add(&mgmt, regions.iter().cloned());
    parts.add(&mgmt, pis.iter().cloned());
    parts.add(&mgmt, cds);

    // Phase 2: management discovery, and every Region's cluster, at the same time.
    let mut mgmt_reader = Reader::new(rest.clone());
    let mut mgmt_gvs: BTreeSet<String> = [credential_core::K0RDENT_API_VERSION.to_string()].into();
    mgmt_gvs.extend(creds.iter().filter_map(identity_gv));
    mgmt_gvs.extend(pis.iter().flat_map(pi_gvs));
    let mut by_region: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in &creds {
        if let Some(r) = c.pointer("/spec/region").and_then(Value::as_str).filter(|r| !r.is_empty()) {
            let gvs = by_region.entry(r.to_string()).or_default();
            gvs.insert(credential_core::K0RDENT_API_VERSION.to_string());
            gvs.extend(identity_gv(c));
        }
    }
    let region_reads = by_region.into_iter().filter_map(|(region, gvs)| {
        let obj = regions.iter().find(|r| r.pointer("/metadata/name").and_then(Value::as_str) == Some(&region))?;
        let kc = kubeconfig_ref(obj, system_namespace);
        Some(read_region(rest, region, kc, gvs))
    });
    let (disc, region_reads, (extras, side_errors)) = tokio::join!(
        mgmt_reader.discover(mgmt_gvs),
        futures_util::future::join_all(region_reads),
        read_extras(rest, webhook_ns, wanted)
    );
    disc.map_err(|e| e.into_cli(&server))?;
    parts.add(&mgmt, extras);

    let mut unreachable = BTreeMap::new();
    let mut invalid = BTreeMap::new();
    let mut servers = BTreeMap::new();
    let mut readers: BTreeMap<Cluster, Reader> = BTreeMap::new();
    for read in region_reads {
        parts.add(&mgmt, read.secret);
        servers.insert(read.region.clone(), read.server);
        let cluster = Cluster::Region(read.region.clone());
        match read.result {
            Ok((reader, pis)) => {
                parts.add(&cluster, pis);
                readers.insert(cluster, reader);
            }
            Err(e) => {
                if read.invalid {
                    invalid.insert(read.region.clone(), e.clone());
                }
                unreachable.insert(read.region, e);
            }
        }
    }
    let crds = |parts: &mut Parts, mgmt_reader: &Reader, readers: &BTreeMap<Cluster, Reader>| {
        parts.objects.entry(Cluster::Management).or_default().extend(mgmt_reader.crd_objects());
        for (c, r) in readers {
            parts.objects.entry(c.clone()).or_default().extend(r.crd_objects());
        }
    };
    crds(&mut parts, &mgmt_reader, &readers);

    // Phase 3: identities and their references in the management cluster, one round per level.
    let mut fetched: BTreeSet<ObjectKey> = BTreeSet::new();
    for _ in 0..=identity::MAX_DEPTH + 1 {
        let estate = parts.estate(system_namespace, &unreachable);
        let mut want = BTreeSet::new();
        for cred in &creds {
            want.extend(identity_key(cred, &estate));
            let plans = [identity::plan(cred, &estate), identity::plan_for_target(cred, &estate, mgmt.clone())];
            for plan in &plans {
                want.extend(plan.objects().filter(|c| c.object.is_none()).map(|c| c.source.clone()));
                for p in &plan.problems {
                    if let PlanProblem::SourceMissing { key } = p {
                        want.insert(key.clone());
                    }
                }
            }
        }
        want.retain(|k| !fetched.contains(k));
        if want.is_empty() {
            break;
        }
        let objs = mgmt_reader.fetch(&want).await.map_err(|e| e.into_cli(&server))?;
        parts.add(&mgmt, objs);
        fetched.extend(want);
    }

    // Phase 4: the copies where distribution puts them, per target cluster concurrently.
    let estate = parts.estate(system_namespace, &unreachable);
    let mut targets: BTreeMap<Cluster, BTreeSet<ObjectKey>> = BTreeMap::new();
    for cred in &creds {
        let plan = identity::plan(cred, &estate);
        if let Some(t) = &plan.target_cluster {
            targets.entry(t.clone()).or_default().extend(plan.copies.iter().map(|c| c.target.clone()));
        }
    }
    let mgmt_targets = targets.remove(&mgmt).unwrap_or_default();
    let regional = readers.iter_mut().filter_map(|(c, r)| {
        let keys = targets.remove(c)?;
        Some(async move { (c.clone(), r.fetch(&keys).await) })
    });
    let (mgmt_copies, regional) =
        tokio::join!(mgmt_reader.fetch(&mgmt_targets), futures_util::future::join_all(regional));
    parts.add(&mgmt, mgmt_copies.map_err(|e| e.into_cli(&server))?);
    for (cluster, res) in regional {
        match (res, &cluster) {
            (Ok(objs), _) => parts.add(&cluster, objs),
            (Err(e), Cluster::Region(r)) => {
                unreachable.insert(r.clone(), e.to_string());
            }
            (Err(_), Cluster::Management) => {}
        }
    }
    crds(&mut parts, &mgmt_reader, &readers);

    let estate = parts.estate(system_namespace, &unreachable);
    let mut credentials: Vec<Arc<Value>> = creds.into_iter().map(Arc::new).collect();
    credentials.sort_by_key(|c| model::display_name(c));
    Ok(LiveEstate { estate, side_errors, servers, unreachable, invalid, credentials })
}

/// The identity object itself, where readiness looks for it (also when no ProviderInterface
/// declares it, so that plans resolve nothing).
fn identity_key(cred: &Value, estate: &MemoryEstate) -> Option<ObjectKey> {
    let iref = cred.pointer("/spec/identityRef")?;
    let s = |f: &str| iref.get(f).and_then(Value::as_str).filter(|s| !s.is_empty());
    let gvk = Gvk::from_api_version(s("apiVersion")?, s("kind")?);
    let name = s("name")?;
    let cred_ns = cred.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default");
    let namespace = match estate.namespaced(&Cluster::Management, &gvk)? {
        false => None,
        true => Some(s("namespace").unwrap_or(cred_ns).to_string()),
    };
    Some(ObjectKey::new(gvk, namespace, name))
}

/// kubectl's NotFound, plus where a Credential of that name does exist ("found in kcm-system: add
/// -n kcm-system") or else the Credentials that exist in the namespace.
async fn not_found(rest: &Rest, e: RestError, namespace: &str, name: &str) -> CliError {
    let RestError::Status { reason, message, .. } = e else { return e.into_cli(&rest.server) };
    let elsewhere: Vec<String> = match rest.list(&Gvk::credential(), &credentials_path(None)).await {
        Ok((items, _)) => items
            .iter()
            .filter(|c| c.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
            .filter_map(|c| c.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string))
            .collect(),
        Err(_) => Vec::new(),
    };
    if let Some(first) = elsewhere.first() {
        let hint = Some(format!("found in {}: add -n {first}", elsewhere.join(", ")));
        return CliError::Server { reason, message, hint };
    }
    let hint = match rest.list(&Gvk::credential(), &credentials_path(Some(namespace))).await {
        Ok((items, _)) if items.is_empty() => Some(format!("there are no Credentials in namespace {namespace}")),
        Ok((items, _)) => {
            let names: Vec<&str> =
                items.iter().filter_map(|c| c.pointer("/metadata/name").and_then(Value::as_str)).take(20).collect();
            Some(format!("Credentials in namespace {namespace}: {}", names.join(", ")))
        }
        Err(_) => None,
    };
    CliError::Server { reason, message, hint }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_built_and_encoded() {
        assert_eq!(
            path(&Gvk::credential(), "credentials", Some("kcm-system"), Some("a/b c")),
            "/apis/k0rdent.mirantis.com/v1beta1/namespaces/kcm-system/credentials/a%2Fb%20c"
        );
        assert_eq!(path(&Gvk::secret(), "secrets", None, None), "/api/v1/secrets");
    }

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(base64_decode("Zm9v").unwrap(), b"foo");
        assert_eq!(base64_decode("Zm8=").unwrap(), b"fo");
        assert_eq!(base64_decode("Zg").unwrap(), b"f");
        assert!(base64_decode("Z!").is_none());
    }

    #[test]
    fn secret_values_are_redacted_but_keys_kept() {
        let s = redacted(json!({"kind": "Secret", "metadata": {"annotations": {"a": "b"}}, "data": {"value": "eA=="}}));
        assert_eq!(s["data"]["value"], "<redacted>");
        assert!(s["metadata"].get("annotations").is_none());
    }

    #[tokio::test]
    async fn watches_outlast_the_server_timeout_and_gets_do_not() {
        let mut config = kube::Config::new("https://127.0.0.1:1".parse().unwrap());
        config.read_timeout = Some(READ_TIMEOUT);
        let watch = watch_config(&config);
        // An idle watch sees no bytes until a bookmark or the server's end: the socket must wait longer.
        assert!(watch.read_timeout.unwrap() > Duration::from_secs(WATCH_SECONDS));
        assert_eq!(config.read_timeout, Some(READ_TIMEOUT));
        let rest = Rest::new(config).unwrap();
        assert!(rest.watch_client.get().is_none(), "built on first watch only");
    }
}
