//! The HTTP side: routing, CRUD, patches, watch, and the admission calls around every write.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admission::{self, Attributes, Operation};
use crate::discovery;
use crate::error::ApiError;
use crate::patch;
use crate::resources::ResourceDef;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Change, EventType, Inner, Key, labels_of, meta_mut};

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

const MAX_BODY: usize = 3 * 1024 * 1024;

/// Accepts connections until `token` is cancelled; cancelling also drops every open connection (and watch),
/// so a stopped emulator looks like an unreachable cluster.
pub async fn serve(listener: TcpListener, inner: Arc<Inner>, token: CancellationToken) {
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    loop {
        let accepted = tokio::select! {
            _ = token.cancelled() => break,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (inner, token, addr) = (inner.clone(), token.clone(), addr.clone());
        tokio::spawn(async move {
            let svc_token = token.clone();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (inner, token, addr) = (inner.clone(), svc_token.clone(), addr.clone());
                async move { Ok::<_, Infallible>(handle(inner, token, &addr, req).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = token.cancelled() => {}
            }
        });
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// Quotes a warning as kube-apiserver does in `Warning: 299 - "<text>"`.
fn warning_header(text: &str) -> Option<HeaderValue> {
    let mut q = String::from("299 - \"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                q.push('\\');
                q.push(c);
            }
            c if c.is_control() => q.push(' '),
            c => q.push(c),
        }
    }
    q.push('"');
    HeaderValue::from_bytes(q.as_bytes()).ok()
}

fn json_response(code: u16, v: &Value, warnings: &[String]) -> Response<Body> {
    let mut resp = Response::new(full(v.to_string()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for w in warnings {
        if let Some(h) = warning_header(w) {
            resp.headers_mut().append(http::header::WARNING, h);
        }
    }
    resp
}

fn error_response(e: &ApiError, warnings: &[String]) -> Response<Body> {
    json_response(e.code, &e.to_status(), warnings)
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What one request carries besides its path.
struct Ctx {
    query: BTreeMap<String, String>,
    user_agent: String,
    content_type: String,
    accept: String,
    warnings: Vec<String>,
}

impl Ctx {
    fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    fn flag(&self, k: &str) -> bool {
        matches!(self.q(k), Some("true" | "1"))
    }

    fn dry_run(&self) -> bool {
        self.q("dryRun") == Some("All")
    }

    /// `fieldManager`, or the user agent up to its first `/`, as the real server defaults it.
    fn manager(&self) -> String {
        match self.q("fieldManager") {
            Some(m) => m.to_string(),
            None => self.user_agent.split('/').next().unwrap_or("unknown").to_string(),
        }
    }
}

/// A resource request, once the path is understood.
#[derive(Debug, Clone)]
struct Target {
    def: ResourceDef,
    version: String,
    namespace: Option<String>,
    name: Option<String>,
    sub: String,
}

impl Target {
    fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or_default()
    }
    fn key(&self, name: &str) -> Key {
        Key::new(&self.def, self.ns(), name)
    }
    fn api_version(&self) -> String {
        self.def.api_version(&self.version)
    }
    fn counted_resource(&self) -> String {
        if self.sub.is_empty() { self.def.plural.clone() } else { format!("{}/{}", self.def.plural, self.sub) }
    }
    fn not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(&self.def.group, &self.def.plural, name)
    }
}

async fn handle(inner: Arc<Inner>, token: CancellationToken, addr: &str, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let query: BTreeMap<String, String> = parts
        .uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let header = |h: http::header::HeaderName| {
        parts.headers.get(h).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
    };
    let mut ctx = Ctx {
        query,
        user_agent: header(http::header::USER_AGENT),
        content_type: header(http::header::CONTENT_TYPE),
        accept: header(http::header::ACCEPT),
        warnings: Vec::new(),
    };
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error_response(&ApiError::new(413, "RequestEntityTooLarge", e.to_string()), &[]),
    };
    let path = parts.uri.path().to_string();
    tracing::debug!(method = %parts.method, %path, "request");
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let result = route(&inner, &token, addr, &parts.method, &segs, &mut ctx, &body).await;
    match result {
        Ok(resp) => resp,
        Err(e) => error_response(&e, &ctx.warnings),
    }
}

async fn route(
    inner: &Arc<Inner>,
    token: &CancellationToken,
    addr: &str,
    method: &Method,
    segs: &[&str],
    ctx: &mut Ctx,
    body: &Bytes,
) -> Result<Response<Body>, ApiError> {
    let defs = inner.lock().resources();
    let discovery_doc = match segs {
        ["version"] => Some(discovery::version()),
        ["api"] => Some(discovery::api_versions(addr)),
        ["apis"] => Some(discovery::group_list(&defs)),
        ["api", "v1"] => discovery::resource_list(&defs, "", "v1"),
        ["apis", g] => discovery::group(&defs, g),
        ["apis", g, v] => discovery::resource_list(&defs, g, v),
        ["openapi", "v3"] => Some(discovery::openapi_root(&defs)),
        ["openapi", "v3", "api", "v1"] => discovery::openapi_gv(&defs, "", "v1"),
        ["openapi", "v3", "apis", g, v] => discovery::openapi_gv(&defs, g, v),
        ["healthz" | "readyz" | "livez"] => {
            inner.count("get", &format!("/{}", segs.join("/")));
            return Ok(Response::new(full("ok")));
        }
        _ => None,
    };
    let is_discovery = matches!(segs, ["version"] | ["api"] | ["apis"] | ["api", "v1"] | ["apis", _] | ["apis", _, _])
        || segs.first() == Some(&"openapi");
    if is_discovery {
        inner.count("get", &format!("/{}", segs.join("/")));
        if *method != Method::GET {
            return Err(ApiError::method_not_allowed(method.as_str(), "discovery"));
        }
        return discovery_doc.map(|d| json_response(200, &d, &[])).ok_or_else(ApiError::not_found_path);
    }
    let (group, version, rest) = match segs {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => {
            inner.count("get", &format!("/{}", segs.join("/")));
            return Err(ApiError::not_found_path());
        }
    };
    let t = target(&defs, group, version, rest)?;
    let watch = ctx.flag("watch");
    let verb = match (method.as_str(), t.name.is_some()) {
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => {
            inner.count(&method.as_str().to_ascii_lowercase(), &t.counted_resource());
            return Err(ApiError::method_not_allowed(method.as_str(), &t.counted_resource()));
        }
    };
    inner.count(verb, &t.counted_resource());
    let name = t.name.clone().unwrap_or_default();
    match verb {
        "watch" => watch_response(inner, token, &t, ctx),
        "list" => list(inner, &t, ctx).map(|v| json_response(200, &v, &[])),
        "get" => {
            let obj = inner.lock().get(&t.key(&name)).cloned().ok_or_else(|| t.not_found(&name))?;
            let obj = as_version(obj, &t);
            let rv = str_at(&obj, "/metadata/resourceVersion").to_string();
            Ok(json_response(200, &render(inner, &t, ctx, vec![obj.clone()], &rv).unwrap_or(obj), &[]))
        }
        "create" => {
            let obj = decode(body, &ctx.content_type)?;
            let obj = create(inner, ctx, &t, obj, None).await?;
            Ok(json_response(201, &obj, &ctx.warnings))
        }
        "update" => {
            let obj = decode(body, &ctx.content_type)?;
            let obj = update(inner, ctx, &t, obj).await?;
            Ok(json_response(200, &obj, &ctx.warnings))
        }
        "patch" => {
            let (code, obj) = patch_object(inner, ctx, &t, body).await?;
            Ok(json_response(code, &obj, &ctx.warnings))
        }
        "delete" => {
            let opts = if body.is_empty() { json!({}) } else { decode(body, &ctx.content_type)? };
            let obj = delete(inner, ctx, &t, &name, &opts).await?;
            Ok(json_response(200, &obj, &ctx.warnings))
        }
        _ => {
            let list = delete_collection(inner, ctx, &t).await?;
            Ok(json_response(200, &list, &ctx.warnings))
        }
    }
}

fn target(defs: &[ResourceDef], group: &str, version: &str, rest: &[&str]) -> Result<Target, ApiError> {
    let find = |plural: &str| defs.iter().find(|d| d.group == group && d.plural == plural && d.serves(version));
    let (def, namespace, tail) = match rest {
        ["namespaces", ns, plural, tail @ ..] if find(plural).is_some_and(|d| d.namespaced) => {
            (find(plural), Some(ns.to_string()), tail)
        }
        [plural, tail @ ..] => (find(plural), None, tail),
        [] => (None, None, rest),
    };
    let def = def.cloned().ok_or_else(ApiError::not_found_path)?;
    let (name, sub) = match tail {
        [] => (None, String::new()),
        [n] => (Some(n.to_string()), String::new()),
        [n, "status"] if def.status_subresource => (Some(n.to_string()), "status".to_string()),
        _ => return Err(ApiError::not_found_path()),
    };
    if def.namespaced && namespace.is_none() && name.is_some() {
        return Err(ApiError::not_found_path());
    }
    Ok(Target { def, version: version.to_string(), namespace, name, sub })
}

fn decode(body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        return crate::protobuf::decode(body).map_err(|e| ApiError::new(415, "UnsupportedMediaType", e));
    }
    let parsed = match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(json_err) if content_type.contains("yaml") => std::str::from_utf8(body)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_saphyr::from_str::<Value>(s).map_err(|e| e.to_string()))
            .map_err(|e| format!("{json_err}; as YAML: {e}")),
        Err(e) => Err(e.to_string()),
    };
    parsed.map_err(|e| ApiError::bad_request(format!("the body of the request could not be decoded: {e}")))
}

/// Objects are stored once; reading through another served version only rewrites `apiVersion`.
fn as_version(mut obj: Value, t: &Target) -> Value {
    obj["apiVersion"] = json!(t.api_version());
    obj["kind"] = json!(t.def.kind);
    obj
}

fn selectors(ctx: &Ctx, t: &Target) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(ctx.q("labelSelector").unwrap_or_default())?;
    let fields = FieldSelector::parse(ctx.q("fieldSelector").unwrap_or_default(), &t.def.group, &t.def.plural)?;
    Ok((labels, fields))
}

fn list(inner: &Inner, t: &Target, ctx: &Ctx) -> Result<Value, ApiError> {
    let (labels, fields) = selectors(ctx, t)?;
    let state = inner.lock();
    let items: Vec<Value> = state
        .list(&t.def, t.namespace.as_deref())
        .into_iter()
        .filter(|(_, o)| labels.matches(&labels_of(o)) && fields.matches(o))
        .map(|(_, o)| as_version(o.clone(), t))
        .collect();
    let rv = state.rv.to_string();
    drop(state);
    if let Some(table) = render(inner, t, ctx, items.clone(), &rv) {
        return Ok(table);
    }
    Ok(json!({
        "apiVersion": t.api_version(),
        "kind": t.def.list_kind(),
        "metadata": {"resourceVersion": rv},
        "items": items,
    }))
}

/// A Table of `objects` when the client asked for one (kubectl's human-readable output), else `None`.
fn render(inner: &Inner, t: &Target, ctx: &Ctx, objects: Vec<Value>, rv: &str) -> Option<Value> {
    if !crate::table::wants_table(&ctx.accept) {
        return None;
    }
    let crd = if t.def.builtin {
        None
    } else {
        let key = Key {
            group: crate::resources::CRD_GROUP.into(),
            resource: crate::resources::CRD_RESOURCE.into(),
            namespace: String::new(),
            name: format!("{}.{}", t.def.plural, t.def.group),
        };
        inner.lock().get(&key).cloned()
    };
    let include = ctx.q("includeObject").unwrap_or("Metadata");
    Some(crate::table::table(&t.def, &t.version, crd.as_ref(), &objects, include, rv))
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

/// Checks apiVersion/kind/namespace of a request body against the URL and fills what is missing.
fn check_identity(t: &Target, obj: &mut Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request("the body of the request must be a JSON object"));
    }
    let av = str_at(obj, "/apiVersion");
    if !av.is_empty() && av != t.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            t.api_version()
        )));
    }
    let kind = str_at(obj, "/kind");
    if !kind.is_empty() && kind != t.def.kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            t.def.kind
        )));
    }
    obj["apiVersion"] = json!(t.api_version());
    obj["kind"] = json!(t.def.kind);
    if t.def.namespaced {
        let ns = str_at(obj, "/metadata/namespace");
        if !ns.is_empty() && ns != t.ns() {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta_mut(obj).insert("namespace".into(), json!(t.ns()));
    } else {
        meta_mut(obj).remove("namespace");
    }
    Ok(())
}

fn attributes(
    ctx: &Ctx,
    t: &Target,
    op: Operation,
    name: &str,
    object: Option<Value>,
    old: Option<Value>,
) -> Attributes {
    Attributes {
        operation: op,
        def: t.def.clone(),
        version: t.version.clone(),
        namespace: t.ns().to_string(),
        name: name.to_string(),
        subresource: t.sub.clone(),
        object,
        old_object: old,
        dry_run: ctx.dry_run(),
        field_manager: Some(ctx.manager()),
    }
}

/// Create: mutating admission, server-set fields, validating admission, store (unless dry run).
/// `applied_by` is set for a server-side apply that creates the object (its managedFields are already set).
async fn create(
    inner: &Inner,
    ctx: &mut Ctx,
    t: &Target,
    mut obj: Value,
    applied_by: Option<&str>,
) -> Result<Value, ApiError> {
    if !t.sub.is_empty() {
        return Err(t.not_found(t.name.as_deref().unwrap_or_default()));
    }
    check_identity(t, &mut obj)?;
    let name = str_at(&obj, "/metadata/name").to_string();
    let generate = str_at(&obj, "/metadata/generateName").to_string();
    if name.is_empty() && generate.is_empty() {
        return Err(ApiError::invalid(
            &t.def.group,
            &t.def.kind,
            "",
            "metadata.name",
            "Required value: name or generateName is required",
        ));
    }
    {
        let state = inner.lock();
        state.check_namespace(&t.def, t.ns(), &name)?;
        if !name.is_empty() && state.get(&t.key(&name)).is_some() {
            return Err(ApiError::already_exists(&t.def.group, &t.def.plural, &name));
        }
    }
    let mut attrs = attributes(ctx, t, Operation::Create, &name, Some(obj), None);
    admission::mutate(inner, &mut attrs, &mut ctx.warnings).await?;
    let mut obj = attrs.object.take().unwrap_or(Value::Null);
    check_identity(t, &mut obj)?;
    let mut name = str_at(&obj, "/metadata/name").to_string();
    {
        let mut state = inner.lock();
        if name.is_empty() {
            name = format!("{generate}{}", state.random_suffix());
            meta_mut(&mut obj).insert("name".into(), json!(name));
        }
        let managed = obj.pointer("/metadata/managedFields").cloned();
        obj = state.prepare_create(&t.def, obj, false);
        match (applied_by, managed) {
            (Some(_), Some(mf)) => {
                meta_mut(&mut obj).insert("managedFields".into(), mf);
            }
            _ => patch::record_update(None, &mut obj, &ctx.manager(), &t.api_version(), ""),
        }
    }
    attrs.name = name.clone();
    attrs.object = Some(obj.clone());
    admission::validate(inner, &attrs, &mut ctx.warnings).await?;
    if ctx.dry_run() {
        return Ok(obj);
    }
    let mut state = inner.lock();
    state.check_namespace(&t.def, t.ns(), &name)?;
    let key = t.key(&name);
    if state.get(&key).is_some() {
        return Err(ApiError::already_exists(&t.def.group, &t.def.plural, &name));
    }
    Ok(state.put(key, obj, EventType::Added))
}

/// Why a commit did not happen.
enum CommitError {
    /// The object changed since it was read (retry for unpinned patches).
    Stale,
    Api(ApiError),
}

impl From<ApiError> for CommitError {
    fn from(e: ApiError) -> Self {
        CommitError::Api(e)
    }
}

/// The shared tail of update, patch and apply: server-set fields, ownership, admission, store.
async fn commit_update(
    inner: &Inner,
    ctx: &mut Ctx,
    t: &Target,
    old: &Value,
    mut new: Value,
    applied: bool,
) -> Result<Value, CommitError> {
    let name = str_at(old, "/metadata/name").to_string();
    check_identity(t, &mut new)?;
    meta_mut(&mut new).insert("name".into(), json!(name));
    let status_write = t.sub == "status";
    let manager = ctx.manager();
    let prepare = |inner: &Inner, new: Value| {
        let mut state = inner.lock();
        let mut new = state.prepare_update(&t.def, old, new, status_write);
        if !applied {
            patch::record_update(Some(old), &mut new, &manager, &t.api_version(), &t.sub);
        }
        new
    };
    new = prepare(inner, new);
    let mut attrs = attributes(ctx, t, Operation::Update, &name, Some(new), Some(old.clone()));
    admission::mutate(inner, &mut attrs, &mut ctx.warnings).await?;
    let mut new = attrs.object.take().unwrap_or(Value::Null);
    check_identity(t, &mut new)?;
    new = prepare(inner, new);
    attrs.object = Some(new.clone());
    admission::validate(inner, &attrs, &mut ctx.warnings).await?;
    let old_rv = str_at(old, "/metadata/resourceVersion");
    if ctx.dry_run() {
        return Ok(new);
    }
    let mut state = inner.lock();
    let key = t.key(&name);
    let current = state.get(&key).ok_or_else(|| t.not_found(&name))?;
    if str_at(current, "/metadata/resourceVersion") != old_rv {
        return Err(CommitError::Stale);
    }
    if without_volatile(current) == without_volatile(&new) {
        // A no-op write keeps the resourceVersion, as on a real server.
        return Ok(current.clone());
    }
    Ok(state.put(key, new, EventType::Modified))
}

/// The object without fields that change on every write, to detect no-op updates.
fn without_volatile(v: &Value) -> Value {
    let mut v = v.clone();
    let m = meta_mut(&mut v);
    m.remove("resourceVersion");
    m.remove("managedFields");
    v
}

async fn update(inner: &Inner, ctx: &mut Ctx, t: &Target, obj: Value) -> Result<Value, ApiError> {
    let name = t.name.clone().unwrap_or_default();
    let body_name = str_at(&obj, "/metadata/name");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let old = inner.lock().get(&t.key(&name)).cloned().ok_or_else(|| t.not_found(&name))?;
    let want_rv = str_at(&obj, "/metadata/resourceVersion");
    if !want_rv.is_empty() && want_rv != str_at(&old, "/metadata/resourceVersion") {
        return Err(ApiError::conflict(&t.def.group, &t.def.plural, &name));
    }
    match commit_update(inner, ctx, t, &old, obj, false).await {
        Ok(v) => Ok(v),
        Err(CommitError::Stale) => Err(ApiError::conflict(&t.def.group, &t.def.plural, &name)),
        Err(CommitError::Api(e)) => Err(e),
    }
}

async fn patch_object(inner: &Inner, ctx: &mut Ctx, t: &Target, body: &Bytes) -> Result<(u16, Value), ApiError> {
    let name = t.name.clone().unwrap_or_default();
    let ct = ctx.content_type.split(';').next().unwrap_or_default().trim().to_string();
    let is_apply = ct == "application/apply-patch+yaml";
    let patch_body = decode(body, if is_apply { "yaml" } else { "json" })?;
    if is_apply && ctx.q("fieldManager").is_none() {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "PatchOptions.meta.k8s.io",
            "",
            "fieldManager",
            "Required value: is required for apply patch",
        ));
    }
    if !is_apply && ct != "application/json-patch+json" && !patch_body.is_object() {
        return Err(ApiError::bad_request(format!("a {ct} body must be a JSON object")));
    }
    for attempt in 0..5 {
        let old = inner.lock().get(&t.key(&name)).cloned();
        let Some(old) = old else {
            if is_apply && t.sub.is_empty() {
                let mut applied = patch_body.clone();
                check_identity(t, &mut applied)?;
                let obj = patch::server_side_apply(None, &applied, &ctx.manager(), false, &t.api_version(), "")
                    .map_err(|c| apply_conflict(t, &name, &c))?;
                return create(inner, ctx, t, obj, Some(&ctx.manager())).await.map(|o| (201, o));
            }
            return Err(t.not_found(&name));
        };
        let mut new = old.clone();
        match ct.as_str() {
            "application/merge-patch+json" => patch::merge_patch(&mut new, &patch_body),
            "application/json-patch+json" => patch::json_patch(&mut new, &patch_body).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?,
            "application/strategic-merge-patch+json" if t.def.builtin => patch::strategic_merge(&mut new, &patch_body),
            "application/apply-patch+yaml" => {
                let mut applied = patch_body.clone();
                check_identity(t, &mut applied)?;
                if t.sub == "status" {
                    // Through /status only .status is applied.
                    let status = applied.get("status").cloned();
                    applied = json!({"apiVersion": applied["apiVersion"], "kind": applied["kind"], "metadata": applied["metadata"]});
                    if let Some(s) = status {
                        applied["status"] = s;
                    }
                } else if t.def.status_subresource
                    && let Value::Object(m) = &mut applied
                {
                    m.remove("status");
                }
                new = patch::server_side_apply(
                    Some(&old),
                    &applied,
                    &ctx.manager(),
                    ctx.flag("force"),
                    &t.api_version(),
                    &t.sub,
                )
                .map_err(|c| apply_conflict(t, &name, &c))?;
            }
            _ => {
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the body of the request was in an unknown format - accepted media types include: \
                         application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml{}",
                        if t.def.builtin { ", application/strategic-merge-patch+json" } else { "" }
                    ),
                ));
            }
        }
        // A resourceVersion inside the patch is a precondition.
        let pinned = str_at(&patch_body, "/metadata/resourceVersion");
        let old_rv = str_at(&old, "/metadata/resourceVersion");
        if !pinned.is_empty() && pinned != old_rv {
            return Err(ApiError::conflict(&t.def.group, &t.def.plural, &name));
        }
        meta_mut(&mut new).insert("resourceVersion".into(), json!(old_rv));
        match commit_update(inner, ctx, t, &old, new, is_apply).await {
            Ok(v) => return Ok((200, v)),
            Err(CommitError::Stale) if pinned.is_empty() && attempt < 4 => {
                ctx.warnings.clear();
                continue;
            }
            Err(CommitError::Stale) => return Err(ApiError::conflict(&t.def.group, &t.def.plural, &name)),
            Err(CommitError::Api(e)) => return Err(e),
        }
    }
    Err(ApiError::conflict(&t.def.group, &t.def.plural, &name))
}

fn apply_conflict(t: &Target, name: &str, conflicts: &[patch::Conflict]) -> ApiError {
    let causes = conflicts
        .iter()
        .map(|c| {
            json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\" using {}", c.manager, c.api_version),
                   "field": c.field})
        })
        .collect();
    ApiError::new(409, "Conflict", patch::conflict_message(conflicts))
        .with_details(name, &t.def.group, &t.def.plural)
        .with_causes(causes)
}

async fn delete(inner: &Inner, ctx: &mut Ctx, t: &Target, name: &str, opts: &Value) -> Result<Value, ApiError> {
    if !t.sub.is_empty() {
        return Err(ApiError::method_not_allowed("DELETE", &t.counted_resource()));
    }
    let old = inner.lock().get(&t.key(name)).cloned().ok_or_else(|| t.not_found(name))?;
    let pre_rv = str_at(opts, "/preconditions/resourceVersion");
    let pre_uid = str_at(opts, "/preconditions/uid");
    if (!pre_rv.is_empty() && pre_rv != str_at(&old, "/metadata/resourceVersion"))
        || (!pre_uid.is_empty() && pre_uid != str_at(&old, "/metadata/uid"))
    {
        return Err(ApiError::conflict(&t.def.group, &t.def.plural, name));
    }
    let dry_run = ctx.dry_run()
        || opts.get("dryRun").and_then(Value::as_array).is_some_and(|a| a.iter().any(|v| v.as_str() == Some("All")));
    let mut attrs = attributes(ctx, t, Operation::Delete, name, None, Some(old.clone()));
    attrs.dry_run = dry_run;
    admission::mutate(inner, &mut attrs, &mut ctx.warnings).await?;
    admission::validate(inner, &attrs, &mut ctx.warnings).await?;
    if dry_run {
        return Ok(old);
    }
    let mut state = inner.lock();
    let (obj, _gone) = state.delete(&t.key(name)).ok_or_else(|| t.not_found(name))?;
    Ok(obj)
}

async fn delete_collection(inner: &Inner, ctx: &mut Ctx, t: &Target) -> Result<Value, ApiError> {
    let (labels, fields) = selectors(ctx, t)?;
    let names: Vec<(Option<String>, String)> = inner
        .lock()
        .list(&t.def, t.namespace.as_deref())
        .into_iter()
        .filter(|(_, o)| labels.matches(&labels_of(o)) && fields.matches(o))
        .map(|(k, _)| ((!k.namespace.is_empty()).then(|| k.namespace.clone()), k.name.clone()))
        .collect();
    let mut items = Vec::new();
    for (ns, name) in names {
        let one = Target { namespace: ns.or_else(|| t.namespace.clone()), name: Some(name.clone()), ..t.clone() };
        items.push(delete(inner, ctx, &one, &name, &json!({})).await?);
    }
    Ok(json!({"apiVersion": t.api_version(), "kind": t.def.list_kind(), "metadata": {}, "items": items}))
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn bookmark(t: &Target, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line("BOOKMARK", &json!({"apiVersion": t.api_version(), "kind": t.def.kind, "metadata": meta}))
}

fn gone(message: String) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
           "reason": "Expired", "code": 410})
}

fn watch_response(
    inner: &Arc<Inner>,
    token: &CancellationToken,
    t: &Target,
    ctx: &Ctx,
) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(ctx, t)?;
    let bookmarks = ctx.flag("allowWatchBookmarks");
    let send_initial = ctx.flag("sendInitialEvents");
    // `timeoutSeconds`, or client-go's `timeout` (a Go duration) when a client sets a request timeout.
    let timeout = ctx
        .q("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .or_else(|| ctx.q("timeout").and_then(go_duration))
        .unwrap_or(Duration::from_secs(1800));
    let rv_param = ctx.q("resourceVersion").unwrap_or("0");
    // What a change looks like to this watch: objects entering or leaving the selection are ADDED/DELETED.
    let classify = {
        let (t, labels, fields) = (t.clone(), labels.clone(), fields.clone());
        move |c: &Change| -> Option<&'static str> {
            if c.key.group != t.def.group
                || c.key.resource != t.def.plural
                || t.namespace.as_deref().is_some_and(|ns| c.key.namespace != ns)
            {
                return None;
            }
            let selected = |o: &Value| labels.matches(&labels_of(o)) && fields.matches(o);
            match (c.kind, c.previous.as_ref().map(selected), selected(&c.object)) {
                (EventType::Modified, Some(false), true) => Some("ADDED"),
                (EventType::Modified, Some(true), false) => Some("DELETED"),
                (_, _, true) => Some(c.kind.as_str()),
                _ => None,
            }
        }
    };
    // kubectl's `get -w` asks for Tables: every event then carries a one-row Table.
    let wants_table = crate::table::wants_table(&ctx.accept);
    let render_event = {
        let (inner, t) = (inner.clone(), t.clone());
        let ctx_like = Ctx {
            query: ctx.query.clone(),
            user_agent: String::new(),
            content_type: String::new(),
            accept: ctx.accept.clone(),
            warnings: Vec::new(),
        };
        move |kind: &str, obj: Value| -> Bytes {
            let obj = as_version(obj, &t);
            if !wants_table {
                return event_line(kind, &obj);
            }
            let rv = str_at(&obj, "/metadata/resourceVersion").to_string();
            let rendered = render(&inner, &t, &ctx_like, vec![obj.clone()], &rv).unwrap_or(obj);
            event_line(kind, &rendered)
        }
    };
    let (mut rx, baseline, initial, initial_end) = {
        let state = inner.lock();
        let rx = state.subscribe();
        let mut initial: Vec<(&'static str, Value)> = Vec::new();
        let mut objects = Vec::new();
        let mut initial_end = None;
        if send_initial || rv_param == "0" {
            for (_, o) in state.list(&t.def, t.namespace.as_deref()) {
                if labels.matches(&labels_of(o)) && fields.matches(o) {
                    objects.push(o.clone());
                }
            }
            initial.extend(objects.into_iter().map(|o| ("ADDED", o)));
            if send_initial && bookmarks {
                initial_end = Some(bookmark(t, state.rv, true));
            }
        } else {
            let rv: u64 = rv_param.parse().map_err(|_| {
                ApiError::bad_request(format!("resourceVersion: Invalid value: \"{rv_param}\": must be an integer"))
            })?;
            let Some(changes) = state.changes_since(rv) else {
                let msg = format!("too old resource version: {rv} ({})", state.compacted + 1);
                return Ok(json_response(410, &gone(msg), &[]));
            };
            for c in &changes {
                if let Some(kind) = classify(c) {
                    initial.push((kind, c.object.clone()));
                }
            }
        }
        (rx, state.rv, initial, initial_end)
    };
    // Rendering may read the store (CRD printer columns): done after the lock is released.
    let mut initial: Vec<Bytes> = initial.into_iter().map(|(k, o)| render_event(k, o)).collect();
    initial.extend(initial_end);
    let (tx, out) = tokio::sync::mpsc::channel::<Bytes>(256);
    let (inner, token, t) = (inner.clone(), token.clone(), t.clone());
    let interval = inner.settings.bookmark_interval;
    tokio::spawn(async move {
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            let line = tokio::select! {
                _ = token.cancelled() => return,
                _ = &mut deadline => return,
                // The client went away: stop following changes for it.
                _ = tx.closed() => return,
                _ = tick.tick(), if bookmarks => {
                    let rv = inner.lock().rv;
                    bookmark(&t, rv, false)
                }
                ev = rx.recv() => match ev {
                    Ok(c) if c.rv > baseline => match classify(&c) {
                        Some(kind) => render_event(kind, c.object.clone()),
                        None => continue,
                    },
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx.send(event_line("ERROR", &gone("too old resource version: the watch fell behind".into()))).await;
                        return;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            };
            if tx.send(line).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(out, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

/// Parses a Go duration such as `30s`, `1m0s` or `500ms`.
fn go_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let n_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..n_len].parse().ok()?;
        rest = &rest[n_len..];
        let u_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..u_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += n * unit;
        rest = &rest[u_len..];
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_and_percent_decoding() {
        assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(go_duration("x"), None);
        assert_eq!(percent_decode("a%3Db%2Cc+d%"), "a=b,c d%");
    }
}
