//! Dynamic admission the way kube-apiserver does it: matching MutatingWebhookConfigurations (in name order,
//! patches applied one after another), then ValidatingWebhookConfigurations (called concurrently). Each call is
//! an `admission.k8s.io/v1` AdmissionReview POSTed over HTTPS, verified against the hook's `caBundle`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::resources::{ADMISSION_GROUP, MUTATING_RESOURCE, ResourceDef, VALIDATING_RESOURCE};
use crate::selector::LabelSelector;
use crate::store::{Inner, Key, labels_of};

pub type WebhookClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }

    fn options_kind(self) -> &'static str {
        match self {
            Operation::Create => "CreateOptions",
            Operation::Update => "UpdateOptions",
            Operation::Delete => "DeleteOptions",
        }
    }
}

/// What admission is asked about. `object` is rewritten by mutating hooks.
#[derive(Debug, Clone)]
pub struct Attributes {
    pub operation: Operation,
    pub def: ResourceDef,
    pub version: String,
    pub namespace: String,
    pub name: String,
    pub subresource: String,
    pub object: Option<Value>,
    pub old_object: Option<Value>,
    pub dry_run: bool,
    pub field_manager: Option<String>,
}

#[derive(Debug, Clone)]
struct Hook {
    name: String,
    url: Option<String>,
    ca_bundle: String,
    rules: Vec<Value>,
    namespace_selector: Option<Value>,
    object_selector: Option<Value>,
    fail_closed: bool,
    timeout: u64,
    side_effects: String,
}

fn hooks_of(config: &Value) -> Vec<Hook> {
    let mut out = Vec::new();
    for w in config.get("webhooks").and_then(Value::as_array).into_iter().flatten() {
        let s = |p: &str| w.pointer(p).and_then(Value::as_str).map(str::to_string);
        out.push(Hook {
            name: s("/name").unwrap_or_default(),
            url: s("/clientConfig/url"),
            ca_bundle: s("/clientConfig/caBundle").unwrap_or_default(),
            rules: w.get("rules").and_then(Value::as_array).cloned().unwrap_or_default(),
            namespace_selector: w.get("namespaceSelector").cloned(),
            object_selector: w.get("objectSelector").cloned(),
            fail_closed: s("/failurePolicy").as_deref() != Some("Ignore"),
            timeout: w.get("timeoutSeconds").and_then(Value::as_u64).unwrap_or(10).clamp(1, 30),
            side_effects: s("/sideEffects").unwrap_or_else(|| "Unknown".into()),
        });
    }
    out
}

fn strs(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

fn rule_matches(rule: &Value, a: &Attributes) -> bool {
    let any = |list: Vec<&str>, want: &str| list.iter().any(|x| *x == "*" || *x == want);
    let res = &a.def.plural;
    let sub = &a.subresource;
    let resource_ok = strs(rule.get("resources")).iter().any(|r| {
        *r == "*/*"
            || (sub.is_empty() && (*r == "*" || r == res))
            || (!sub.is_empty()
                && (*r == format!("{res}/{sub}") || *r == format!("{res}/*") || *r == format!("*/{sub}")))
    });
    let scope_ok = match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
        "Cluster" => !a.def.namespaced,
        "Namespaced" => a.def.namespaced,
        _ => true,
    };
    any(strs(rule.get("operations")), a.operation.as_str())
        && any(strs(rule.get("apiGroups")), &a.def.group)
        && any(strs(rule.get("apiVersions")), &a.version)
        && resource_ok
        && scope_ok
}

fn selector_matches(sel: Option<&Value>, labels: &[BTreeMap<String, String>]) -> Result<bool, String> {
    let sel = LabelSelector::from_object(sel)?;
    Ok(labels.iter().any(|l| sel.matches(l)))
}

/// Hooks of one kind of configuration that apply to the request, in configuration-name order.
fn matching(inner: &Inner, resource: &str, a: &Attributes) -> Result<Vec<Hook>, ApiError> {
    // The real server never calls webhooks about webhook configurations (it could lock itself out).
    if a.def.group == ADMISSION_GROUP {
        return Ok(vec![]);
    }
    let state = inner.lock();
    let first =
        Key { group: ADMISSION_GROUP.into(), resource: resource.into(), namespace: String::new(), name: String::new() };
    let configs: Vec<Value> = state
        .objects
        .range(first..)
        .take_while(|(k, _)| k.group == ADMISSION_GROUP && k.resource == resource)
        .map(|(_, v)| v.clone())
        .collect();
    let ns_labels = if a.def.group.is_empty() && a.def.plural == "namespaces" {
        None
    } else if a.def.namespaced {
        Some(state.namespace_labels(&a.namespace))
    } else {
        None
    };
    drop(state);
    let object_labels: Vec<BTreeMap<String, String>> =
        [a.object.as_ref(), a.old_object.as_ref()].into_iter().flatten().map(labels_of).collect();
    let mut out = Vec::new();
    for cfg in &configs {
        for hook in hooks_of(cfg) {
            if !hook.rules.iter().any(|r| rule_matches(r, a)) {
                continue;
            }
            let bad = |e: String| ApiError::internal(format!("failed calling webhook \"{}\": {e}", hook.name));
            // namespaceSelector: a namespace object is matched by its own labels; cluster-scoped objects always.
            let ns_ok = match (&ns_labels, a.def.plural == "namespaces" && a.def.group.is_empty()) {
                (Some(l), _) => {
                    selector_matches(hook.namespace_selector.as_ref(), std::slice::from_ref(l)).map_err(bad)?
                }
                (None, true) => selector_matches(hook.namespace_selector.as_ref(), &object_labels).map_err(bad)?,
                (None, false) => true,
            };
            let obj_ok = object_labels.is_empty()
                || selector_matches(hook.object_selector.as_ref(), &object_labels).map_err(bad)?;
            if ns_ok && obj_ok {
                out.push(hook);
            }
        }
    }
    Ok(out)
}

fn review(a: &Attributes, uid: &str) -> Value {
    let gvk = json!({"group": a.def.group, "version": a.version, "kind": a.def.kind});
    let gvr = json!({"group": a.def.group, "version": a.version, "resource": a.def.plural});
    let mut options = json!({"apiVersion": "meta.k8s.io/v1", "kind": a.operation.options_kind()});
    if let Some(fm) = &a.field_manager
        && a.operation != Operation::Delete
    {
        options["fieldManager"] = json!(fm);
    }
    if a.dry_run {
        options["dryRun"] = json!(["All"]);
    }
    let mut req = json!({
        "uid": uid,
        "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
        "name": a.name,
        "operation": a.operation.as_str(),
        "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
        "object": a.object.clone().unwrap_or(Value::Null),
        "oldObject": a.old_object.clone().unwrap_or(Value::Null),
        "dryRun": a.dry_run,
        "options": options,
    });
    if a.def.namespaced {
        req["namespace"] = json!(a.namespace);
    }
    if !a.subresource.is_empty() {
        req["subResource"] = json!(a.subresource);
        req["requestSubResource"] = json!(a.subresource);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
}

fn client_for(inner: &Inner, ca_bundle: &str) -> Result<WebhookClient, String> {
    let mut clients = inner.webhook_clients.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = clients.get(ca_bundle) {
        return Ok(c.clone());
    }
    let mut roots = rustls::RootCertStore::empty();
    let pem = base64::engine::general_purpose::STANDARD
        .decode(ca_bundle.trim())
        .map_err(|e| format!("caBundle is not valid base64: {e}"))?;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("caBundle holds no valid PEM certificate: {e}"))?;
        roots.add(cert).map_err(|e| format!("caBundle certificate rejected: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_only().enable_http1().build();
    let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(90)).build(https);
    clients.insert(ca_bundle.to_string(), client.clone());
    Ok(client)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        s.push_str(": ");
        s.push_str(&src.to_string());
        cur = src.source();
    }
    s
}

/// POSTs the review; `Err` is the text after `failed calling webhook "<name>": `.
async fn call(inner: &Inner, hook: &Hook, body: &Value) -> Result<Value, String> {
    let Some(url) = &hook.url else {
        return Err("failed to call webhook: clientConfig.service is not reachable from the API emulator; use \
                    clientConfig.url"
            .into());
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let full = format!("{url}{sep}timeout={}s", hook.timeout);
    let client = client_for(inner, &hook.ca_bundle).map_err(|e| format!("failed to call webhook: {e}"))?;
    let req = http::Request::post(&full)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, */*")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| format!("failed to call webhook: Post \"{full}\": {e}"))?;
    let exchange = async {
        let resp = client.request(req).await.map_err(|e| error_chain(&e))?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(|e| error_chain(&e))?.to_bytes();
        Ok::<_, String>((status, bytes))
    };
    let (status, bytes) = match tokio::time::timeout(Duration::from_secs(hook.timeout), exchange).await {
        Err(_) => return Err(format!("failed to call webhook: Post \"{full}\": context deadline exceeded")),
        Ok(Err(e)) => return Err(format!("failed to call webhook: Post \"{full}\": {e}")),
        Ok(Ok(r)) => r,
    };
    if !status.is_success() {
        let text = String::from_utf8_lossy(&bytes);
        let text: String = text.chars().take(200).collect();
        return Err(format!(
            "failed to call webhook: an error on the server (\"{text}\") has prevented the request from succeeding"
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("received invalid webhook response: {e}"))
}

/// What a hook answered, once checked.
#[derive(Debug)]
struct Reply {
    allowed: bool,
    status: Value,
    patch: Option<Vec<u8>>,
    warnings: Vec<String>,
}

fn verify(reply: &Value, uid: &str, mutating: bool) -> Result<Reply, String> {
    let invalid = |m: String| format!("received invalid webhook response: {m}");
    let av = reply.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = reply.get("kind").and_then(Value::as_str).unwrap_or_default();
    let Some(resp) = reply.get("response").filter(|r| r.is_object()) else {
        return Err(invalid("webhook response was absent".into()));
    };
    let got_uid = resp.get("uid").and_then(Value::as_str).unwrap_or_default();
    if got_uid != uid {
        return Err(invalid(format!("expected response.uid=\"{uid}\", got \"{got_uid}\"")));
    }
    if av != "admission.k8s.io/v1" || kind != "AdmissionReview" {
        return Err(invalid(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {av}, Kind={kind}"
        )));
    }
    // Go's []byte takes a base64 string, and its JSON decoder also accepts an array of numbers.
    let patch = match resp.get("patch") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| invalid(format!("response.patch is not valid base64: {e}")))?,
        ),
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|n| n.as_u64().and_then(|n| u8::try_from(n).ok()))
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| invalid("response.patch is an array with values outside 0..255".into()))?,
        ),
        Some(_) => return Err(invalid("response.patch must be a base64 string".into())),
    };
    let patch = patch.filter(|p| !p.is_empty());
    if patch.is_some() && resp.get("patchType").and_then(Value::as_str) != Some("JSONPatch") {
        return Err(invalid("webhook returned response.patch but not response.patchType: \"JSONPatch\"".into()));
    }
    if !mutating && patch.is_some() {
        return Err(invalid("validating webhook may not return response.patch".into()));
    }
    Ok(Reply {
        allowed: resp.get("allowed").and_then(Value::as_bool).unwrap_or(false),
        status: resp.get("status").cloned().unwrap_or(Value::Null),
        patch,
        warnings: strs(resp.get("warnings")).into_iter().map(str::to_string).collect(),
    })
}

/// The error a denial turns into: `admission webhook "<name>" denied the request: <message>`.
fn denial(hook: &str, status: &Value) -> ApiError {
    let denied = format!("admission webhook \"{hook}\" denied the request");
    let message = status.get("message").and_then(Value::as_str).unwrap_or_default();
    let reason = status.get("reason").and_then(Value::as_str).unwrap_or_default();
    let code = status.get("code").and_then(Value::as_u64).unwrap_or(0);
    let code = u16::try_from(code).ok().filter(|c| (400..=599).contains(c)).unwrap_or(403);
    let message = if !message.is_empty() {
        format!("{denied}: {message}")
    } else if !reason.is_empty() {
        format!("{denied}: {reason}")
    } else {
        format!("{denied} without explanation")
    };
    let mut err = ApiError::new(code, reason, message);
    if let Some(d) = status.get("details").filter(|d| d.is_object()) {
        err.details = Some(d.clone());
    }
    err
}

fn call_failed(hook: &Hook, reason: String) -> ApiError {
    ApiError::internal(format!("failed calling webhook \"{}\": {reason}", hook.name))
}

async fn invoke(inner: &Inner, hook: &Hook, a: &Attributes, mutating: bool) -> Result<Reply, String> {
    let uid = {
        let mut st = inner.lock();
        st.new_uid()
    };
    let body = review(a, &uid);
    let reply = call(inner, hook, &body).await?;
    verify(&reply, &uid, mutating)
}

/// Mutating phase: hooks in order, each sees the previous one's patch. Warnings from every hook are pushed to
/// `warnings`, also when the request is then denied.
pub async fn mutate(inner: &Inner, a: &mut Attributes, warnings: &mut Vec<String>) -> Result<(), ApiError> {
    {
        for hook in matching(inner, MUTATING_RESOURCE, a)? {
            check_dry_run(&hook, a)?;
            match invoke(inner, &hook, a, true).await {
                Err(e) if hook.fail_closed => return Err(call_failed(&hook, e)),
                Err(e) => tracing::warn!(webhook = %hook.name, error = %e, "webhook failed, failurePolicy Ignore"),
                Ok(reply) => {
                    warnings.extend(reply.warnings);
                    if !reply.allowed {
                        return Err(denial(&hook.name, &reply.status));
                    }
                    if let (Some(patch), Some(obj)) = (reply.patch, a.object.as_mut()) {
                        let patch: Value = serde_json::from_slice(&patch)
                            .map_err(|e| call_failed(&hook, format!("received invalid webhook response: {e}")))?;
                        crate::patch::json_patch(obj, &patch).map_err(|e| {
                            ApiError::internal(format!("JSON patch from webhook \"{}\" failed: {e}", hook.name))
                        })?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Validating phase: all matching hooks are called concurrently; the first denial (in hook order) wins.
pub async fn validate(inner: &Inner, a: &Attributes, warnings: &mut Vec<String>) -> Result<(), ApiError> {
    let hooks = matching(inner, VALIDATING_RESOURCE, a)?;
    for hook in &hooks {
        check_dry_run(hook, a)?;
    }
    let results = futures_util::future::join_all(hooks.iter().map(|h| invoke(inner, h, a, false))).await;
    let mut first_error = None;
    for (hook, result) in hooks.iter().zip(results) {
        let err = match result {
            Err(e) if hook.fail_closed => Some(call_failed(hook, e)),
            Err(e) => {
                tracing::warn!(webhook = %hook.name, error = %e, "webhook failed, failurePolicy Ignore");
                None
            }
            Ok(reply) => {
                warnings.extend(reply.warnings);
                (!reply.allowed).then(|| denial(&hook.name, &reply.status))
            }
        };
        if first_error.is_none() {
            first_error = err;
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn check_dry_run(hook: &Hook, a: &Attributes) -> Result<(), ApiError> {
    if a.dry_run && !matches!(hook.side_effects.as_str(), "None" | "NoneOnDryRun") {
        return Err(ApiError::bad_request(format!("admission webhook \"{}\" does not support dry run", hook.name)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_accepts_patch_as_base64_or_byte_array() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(b"[]x");
        let r = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "response": {"uid": "u", "allowed": true, "patch": b64, "patchType": "JSONPatch"}});
        assert_eq!(verify(&r, "u", true).unwrap().patch.unwrap(), b"[]x");
        let r = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "response": {"uid": "u", "allowed": true, "patch": [91, 93], "patchType": "JSONPatch"}});
        assert_eq!(verify(&r, "u", true).unwrap().patch.unwrap(), b"[]");
        assert!(verify(&r, "u", false).unwrap_err().contains("validating webhook may not return response.patch"));
        assert!(verify(&r, "other", true).unwrap_err().contains("expected response.uid=\"other\", got \"u\""));
    }

    #[test]
    fn denial_defaults_to_403_and_names_the_hook() {
        let e = denial("v.example.com", &json!({"message": "no"}));
        assert_eq!(e.code, 403);
        assert_eq!(e.message, "admission webhook \"v.example.com\" denied the request: no");
        let e = denial("v", &json!({"code": 422, "reason": "Invalid"}));
        assert_eq!((e.code, e.message.as_str()), (422, "admission webhook \"v\" denied the request: Invalid"));
    }
}
