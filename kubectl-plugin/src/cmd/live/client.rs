//! One cluster's client: kube's `Api<DynamicObject>` for reads and watches, pinned
//! `kube::discovery` for the kinds outside the core's table, and kubectl's wording for failures.
//! Objects come back as JSON values, the form the core's estate holds.

use std::time::Duration;

use credential_core::Gvk;
use credential_core::gvk::{KnownKind, known_kind};
use futures_util::{Stream, TryStreamExt};
use kube::Resource as _;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, ObjectList, WatchEvent, WatchParams};
use kube::discovery::{self, Scope};
use serde_json::{Map, Value};

use crate::error::CliError;

/// Time to wait for a TCP/TLS connection: an unreachable region must not stall `explain`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time to wait for a response.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Server-side length of one watch request (`timeoutSeconds`): the server ends it, we restart it.
pub const WATCH_SECONDS: u32 = 1800;
/// Read timeout of watches: an idle watch gets no bytes for minutes (bookmarks are rare), so
/// [`READ_TIMEOUT`] would kill it; past the server's own end only a dead connection is silent.
const WATCH_READ_TIMEOUT: Duration = Duration::from_secs(WATCH_SECONDS as u64 + 60);

/// A client for one cluster and the server it talks to (for messages).
#[derive(Clone)]
pub struct Rest {
    client: kube::Client,
    /// The client for watches (long read timeout), built on first use.
    watch_client: std::sync::Arc<tokio::sync::OnceCell<kube::Client>>,
    config: kube::Config,
    pub server: String,
}

/// Where a kind's objects are served: kube's `ApiResource` (path segments) and the scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    pub resource: ApiResource,
    pub namespaced: bool,
}

impl Kind {
    /// A kind of the core's table ([`credential_core::gvk::KNOWN_KINDS`]): no discovery needed.
    pub fn known(gvk: &Gvk) -> Option<Kind> {
        known_kind(gvk).map(Kind::from_table)
    }

    /// Like [`Kind::known`], for the kinds this plugin always reads: one not in the table is a
    /// fault of this program, reported as a failed request rather than a panic.
    pub fn of(gvk: &Gvk) -> Result<Kind, RestError> {
        Kind::known(gvk).ok_or_else(|| RestError::UnknownKind(format!("{} {}", gvk.api_version(), gvk.kind)))
    }

    fn from_table(k: &KnownKind) -> Kind {
        let gvk = Gvk::new(k.group, k.version, k.kind);
        let resource = ApiResource {
            group: k.group.to_string(),
            version: k.version.to_string(),
            api_version: gvk.api_version(),
            kind: k.kind.to_string(),
            plural: k.plural.to_string(),
        };
        Kind { resource, namespaced: k.namespaced }
    }

    /// The Credentials: listed and watched by most commands.
    pub fn credential() -> Result<Kind, RestError> {
        Kind::of(&Gvk::credential())
    }

    /// kubectl's name of the resource in messages (`credentials.k0rdent.mirantis.com`).
    fn resource_name(&self) -> String {
        match self.resource.group.as_str() {
            "" => self.resource.plural.clone(),
            g => format!("{}.{g}", self.resource.plural),
        }
    }
}

/// Why a request failed.
#[derive(Debug, Clone)]
pub enum RestError {
    /// The server answered with a Status.
    Status { code: u16, reason: String, message: String },
    /// No answer: connection refused, timeout, TLS, authentication plugin...
    Transport(String),
    /// A kind this program reads without discovery is missing from the core's kinds table (a
    /// fault of this program, not of the cluster).
    UnknownKind(String),
}

impl std::fmt::Display for RestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestError::Status { code, reason, message } => write!(f, "{message} ({reason}, {code})"),
            RestError::Transport(e) => f.write_str(e),
            RestError::UnknownKind(kind) => {
                write!(f, "{kind} has no plural and scope in credential_core::gvk::KNOWN_KINDS (a bug of this plugin)")
            }
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

    /// The server's NotFound, as it words it.
    fn not_found(kind: &Kind, name: &str) -> Self {
        RestError::Status {
            code: 404,
            reason: "NotFound".to_string(),
            message: format!("{} \"{name}\" not found", kind.resource_name()),
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
            unknown @ RestError::UnknownKind(_) => CliError::Invalid(unknown.to_string()),
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

/// Whether `s` can name an object or namespace. kube puts names into request paths as they are;
/// one with a `/`, `%`, `?`, `#` or a space would address another path (or none), and no such
/// object can exist (the API server accepts only DNS names for every kind read here).
fn is_path_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':' | b'~'))
}

/// A list item with `apiVersion` and `kind` (list items of built-in kinds lack them).
fn with_kind(mut obj: Value, kind: &Kind) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.entry("apiVersion").or_insert_with(|| Value::String(kind.resource.api_version.clone()));
        m.entry("kind").or_insert_with(|| Value::String(kind.resource.kind.clone()));
    }
    obj
}

/// An object as the estate holds it: the server's JSON, `apiVersion` and `kind` filled in as for
/// list items.
fn into_value(obj: DynamicObject, kind: &Kind) -> Value {
    let DynamicObject { types, metadata, data } = obj;
    let mut map = match data {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let (api_version, kind_name) = match types {
        Some(t) if !t.api_version.is_empty() && !t.kind.is_empty() => (t.api_version, t.kind),
        _ => (kind.resource.api_version.clone(), kind.resource.kind.clone()),
    };
    map.insert("apiVersion".to_string(), Value::String(api_version));
    map.insert("kind".to_string(), Value::String(kind_name));
    // ObjectMeta serializes only what it holds: the server's metadata, field for field.
    map.insert("metadata".to_string(), serde_json::to_value(metadata).unwrap_or_default());
    Value::Object(map)
}

impl Rest {
    pub fn new(mut config: kube::Config) -> Result<Self, CliError> {
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

    /// The `Api` of a kind: in one namespace, or all namespaces and cluster-scoped kinds.
    fn api(client: kube::Client, kind: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace.filter(|_| kind.namespaced) {
            Some(ns) => Api::namespaced_with(client, ns, &kind.resource),
            None => Api::all_with(client, &kind.resource),
        }
    }

    /// One object; the server's error (NotFound included) when it cannot be read.
    pub async fn get(&self, kind: &Kind, namespace: Option<&str>, name: &str) -> Result<Value, RestError> {
        let namespace = namespace.filter(|_| kind.namespaced);
        let addressable = is_path_segment(name) && namespace.is_none_or(is_path_segment);
        if !addressable || (kind.namespaced && namespace.is_none()) {
            return Err(RestError::not_found(kind, name));
        }
        let api = Self::api(self.client.clone(), kind, namespace);
        api.get(name).await.map(|o| into_value(o, kind)).map_err(RestError::from_kube)
    }

    /// One object; `None` when it does not exist.
    pub async fn get_opt(&self, kind: &Kind, namespace: Option<&str>, name: &str) -> Result<Option<Value>, RestError> {
        match self.get(kind, namespace, name).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A collection (`namespace: None`: all namespaces): its items and the list's resourceVersion.
    /// kube's request for the `Api` of the kind, its items decoded straight into values: as
    /// `DynamicObject`s (flattened fields, then back to a value) `list -A` over 5,000 Credentials
    /// ran a fifth more instructions (BENCHMARKS.md, "Plugin latency").
    pub async fn list(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> Result<(Vec<Value>, String), RestError> {
        if namespace.is_some_and(|ns| !is_path_segment(ns)) {
            return Ok((Vec::new(), String::new()));
        }
        let url = DynamicObject::url_path(&kind.resource, namespace.filter(|_| kind.namespaced));
        let request = kube::core::Request::new(url)
            .list(params)
            .map_err(|e| RestError::Transport(format!("cannot build the request: {e}")))?;
        let list: ObjectList<Value> = self.client.request(request).await.map_err(RestError::from_kube)?;
        let rv = list.metadata.resource_version.unwrap_or_default();
        Ok((list.items.into_iter().map(|o| with_kind(o, kind)).collect(), rv))
    }

    /// A collection whose resource may not be served (an older KCM without Regions): empty then.
    pub async fn list_if_served(&self, kind: &Kind, namespace: Option<&str>) -> Result<Vec<Value>, RestError> {
        match self.list(kind, namespace, &ListParams::default()).await {
            Ok((items, _)) => Ok(items),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The server's `gitVersion` (`/version` is not a resource request: it costs the server
    /// nothing it counts).
    pub async fn version(&self) -> Result<String, RestError> {
        self.client.apiserver_version().await.map(|i| i.git_version).map_err(RestError::from_kube)
    }

    /// The kinds one group/version serves (discovery of that group/version alone); `None` when
    /// the group/version is not served.
    pub async fn discover(&self, group_version: &str) -> Result<Option<Vec<Kind>>, RestError> {
        let gv = match group_version.split_once('/') {
            Some((g, v)) => kube::core::GroupVersion::gv(g, v),
            None => kube::core::GroupVersion::gv("", group_version),
        };
        match discovery::pinned_group(&self.client, &gv).await {
            Ok(group) => Ok(Some(
                group
                    .versioned_resources(&gv.version)
                    .into_iter()
                    .map(|(resource, caps)| Kind { resource, namespaced: caps.scope == Scope::Namespaced })
                    .collect(),
            )),
            Err(e) => match RestError::from_kube(e) {
                e if e.is_not_found() => Ok(None),
                e => Err(e),
            },
        }
    }

    /// Watches a collection from `resource_version` until the server ends the request. Runs on
    /// the watch client: the read timeout of gets would end an idle watch after seconds.
    pub async fn watch(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        label_selector: Option<&str>,
        resource_version: &str,
    ) -> Result<impl Stream<Item = Result<WatchEvent<Value>, RestError>> + use<>, CliError> {
        let client = self.watch_client().await?.clone();
        let mut params = WatchParams { timeout: Some(WATCH_SECONDS), ..WatchParams::default() };
        if let Some(sel) = label_selector {
            params = params.labels(sel);
        }
        let stream = Self::api(client, kind, namespace)
            .watch(&params, resource_version)
            .await
            .map_err(|e| RestError::Transport(error_text(&e)).into_cli(&self.server))?;
        let kind = kind.clone();
        Ok(stream.map_err(|e| RestError::Transport(error_text(&e))).map_ok(move |event| match event {
            WatchEvent::Added(o) => WatchEvent::Added(into_value(o, &kind)),
            WatchEvent::Modified(o) => WatchEvent::Modified(into_value(o, &kind)),
            WatchEvent::Deleted(o) => WatchEvent::Deleted(into_value(o, &kind)),
            WatchEvent::Bookmark(b) => WatchEvent::Bookmark(b),
            WatchEvent::Error(s) => WatchEvent::Error(s),
        }))
    }

    /// The client for watch requests: same connection settings, but a read timeout longer than a
    /// watch's `timeoutSeconds` (see [`WATCH_READ_TIMEOUT`]).
    async fn watch_client(&self) -> Result<&kube::Client, CliError> {
        self.watch_client.get_or_try_init(|| async { Self::client_for(watch_config(&self.config), &self.server) }).await
    }
}

/// `config` for watch requests: the connect timeout stays, the read timeout outlasts a watch.
fn watch_config(config: &kube::Config) -> kube::Config {
    let mut config = config.clone();
    config.read_timeout = Some(WATCH_READ_TIMEOUT);
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_kinds_come_from_the_core_table() {
        let cred = Kind::credential().unwrap();
        assert_eq!(cred.resource.plural, "credentials");
        assert!(cred.namespaced);
        assert_eq!(cred.resource.api_version, credential_core::K0RDENT_API_VERSION);
        assert_eq!(cred.resource_name(), "credentials.k0rdent.mirantis.com");
        let secret = Kind::of(&Gvk::secret()).unwrap();
        assert_eq!((secret.resource.api_version.as_str(), secret.resource_name().as_str()), ("v1", "secrets"));
        let unknown = Kind::of(&Gvk::new("example.com", "v1", "Thing")).unwrap_err();
        assert!(unknown.to_string().contains("example.com/v1 Thing"), "{unknown}");
    }

    #[test]
    fn names_that_would_change_the_path_are_not_requested() {
        for ok in ["aws-cred", "a.b", "system:admin"] {
            assert!(is_path_segment(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "x%2F", "a?watch=true", "a#b"] {
            assert!(!is_path_segment(bad), "{bad}");
        }
    }

    #[test]
    fn list_items_get_their_kind_when_they_lack_it() {
        let kind = Kind::of(&Gvk::secret()).unwrap();
        let item = with_kind(serde_json::json!({"metadata": {"name": "s"}}), &kind);
        assert_eq!((item["apiVersion"].as_str(), item["kind"].as_str()), (Some("v1"), Some("Secret")));
        let cred = serde_json::json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Credential"});
        assert_eq!(with_kind(cred.clone(), &kind), cred, "kept when present");
    }

    #[test]
    fn objects_get_their_kind_and_keep_their_metadata() {
        let kind = Kind::of(&Gvk::secret()).unwrap();
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s", "namespace": "ns", "resourceVersion": "7", "labels": {"a": "b"}},
            "data": {"k": "dg=="}, "type": "Opaque"
        }))
        .unwrap();
        let v = into_value(obj, &kind);
        assert_eq!(
            v,
            serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "s", "namespace": "ns", "resourceVersion": "7", "labels": {"a": "b"}},
                "data": {"k": "dg=="}, "type": "Opaque"
            })
        );
    }

    #[tokio::test]
    async fn watches_outlast_the_server_timeout_and_gets_do_not() {
        let mut config = kube::Config::new("https://127.0.0.1:1".parse().unwrap());
        config.read_timeout = Some(READ_TIMEOUT);
        let watch = watch_config(&config);
        // An idle watch sees no bytes until a bookmark or the server's end: the socket must wait longer.
        assert!(watch.read_timeout.unwrap() > Duration::from_secs(u64::from(WATCH_SECONDS)));
        assert_eq!(config.read_timeout, Some(READ_TIMEOUT));
        let rest = Rest::new(config).unwrap();
        assert!(rest.watch_client.get().is_none(), "built on first watch only");
    }
}
