//! AdmissionReview handling: decode, dispatch on `request.kind`, run the core rules or mutations,
//! and encode the reply. Transport-free, so tests and benchmarks can call it directly.
//!
//! Every reply is an `admission.k8s.io/v1` AdmissionReview with HTTP 200, even for input we cannot
//! read: a non-200 answer would make the API server apply the webhook's failurePolicy instead of
//! showing our message.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use credential_core::finding::{Finding, Severity};
use credential_core::gvk::Gvk;
use credential_core::rules::{AdmissionInput, Operation, ResourceKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use credential_core::estate::{Cluster, Estate};
use credential_core::rules::region::secret_keys_unknown;

use crate::cache::{LiveRead, ServingEstate, WithSecret};
use crate::metrics::{FindingLabels, Metrics, RequestLabels, WebhookLabels};
use crate::sink::{AdmittedChange, AdmittedChangeSink};

pub const ADMISSION_API_VERSION: &str = "admission.k8s.io/v1";
/// Warnings longer than this may be truncated by the API server; hints are only appended below it.
const WARNING_MAX: usize = 256;

/// Logs a decision at `debug` when it is routine (`quiet`: allowed, no findings, no patch), else at
/// `info`. A callsite's level is fixed, hence one macro expanding to both.
macro_rules! log_decision {
    ($quiet:expr, $($fields:tt)+) => {
        if $quiet {
            tracing::debug!($($fields)+)
        } else {
            tracing::info!($($fields)+)
        }
    };
}

/// Which endpoint a review came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Webhook {
    Validate,
    Mutate,
}

impl Webhook {
    pub fn as_str(&self) -> &'static str {
        match self {
            Webhook::Validate => "validate",
            Webhook::Mutate => "mutate",
        }
    }
}

// --- wire types -----------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewIn {
    api_version: Option<String>,
    kind: Option<String>,
    request: Option<RequestIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIn {
    uid: Option<String>,
    kind: Option<Gvk>,
    sub_resource: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
    operation: Option<String>,
    object: Option<Value>,
    old_object: Option<Value>,
    dry_run: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: ResponseOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// A `metav1.Status` as Go's `apierrors` builds it.
#[derive(Serialize)]
struct StatusOut {
    metadata: EmptyObject,
    status: &'static str,
    message: String,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<DetailsOut>,
    code: u16,
}

#[derive(Serialize)]
struct EmptyObject {}

#[derive(Serialize)]
struct DetailsOut {
    name: String,
    group: String,
    kind: String,
    causes: Vec<CauseOut>,
}

#[derive(Serialize)]
struct CauseOut {
    reason: &'static str,
    message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    field: String,
}

fn encode(uid: &str, response: ResponseOut<'_>) -> Vec<u8> {
    let review = ReviewOut {
        api_version: ADMISSION_API_VERSION,
        kind: "AdmissionReview",
        response: ResponseOut { uid, ..response },
    };
    // Serializing plain structs of strings cannot fail; fall back to a fixed denial if it ever did.
    serde_json::to_vec(&review).unwrap_or_else(|_| {
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"","allowed":false}}"#
            .to_vec()
    })
}

fn allowed() -> ResponseOut<'static> {
    ResponseOut { uid: "", allowed: true, status: None, patch_type: None, patch: None, warnings: Vec::new() }
}

fn bad_request(message: String) -> ResponseOut<'static> {
    ResponseOut {
        uid: "",
        allowed: false,
        status: Some(StatusOut {
            metadata: EmptyObject {},
            status: "Failure",
            message,
            reason: "BadRequest",
            details: None,
            code: 400,
        }),
        patch_type: None,
        patch: None,
        warnings: Vec::new(),
    }
}

/// The answer while the caches have not finished their initial list (readiness is false then too).
fn not_synced() -> ResponseOut<'static> {
    ResponseOut {
        uid: "",
        allowed: false,
        status: Some(StatusOut {
            metadata: EmptyObject {},
            status: "Failure",
            message: "credential-webhook has not loaded the cluster state yet (caches not synced); retry in a few \
                      seconds"
                .to_string(),
            reason: "ServiceUnavailable",
            details: None,
            code: 503,
        }),
        patch_type: None,
        patch: None,
        warnings: Vec::new(),
    }
}

// --- messages ------------------------------------------------------------------------------------

/// `[CODE] message (fix: hint)` — the text of one denying finding.
pub fn deny_text(f: &Finding) -> String {
    if f.hint.is_empty() {
        format!("[{}] {}", f.code, f.message)
    } else {
        format!("[{}] {} (fix: {})", f.code, f.message, f.hint)
    }
}

/// `[CODE] message`, plus the hint when the whole stays short enough for `kubectl` to print intact.
pub fn warning_text(f: &Finding) -> String {
    let short = format!("[{}] {}", f.code, f.message);
    let long = format!("{short} (fix: {})", f.hint);
    if !f.hint.is_empty() && long.len() <= WARNING_MAX { long } else { short }
}

/// Go's `apierrors.NewInvalid` message: `<Kind>.<group> "<name>" is invalid: <field>: <msg>` (a
/// bracketed, comma-separated list when there are several).
pub fn invalid_message(kind: &Gvk, name: &str, denials: &[&Finding]) -> String {
    let parts: Vec<String> = denials
        .iter()
        .map(|f| if f.field.is_empty() { deny_text(f) } else { format!("{}: {}", f.field, deny_text(f)) })
        .collect();
    let all = if parts.len() == 1 { parts.concat() } else { format!("[{}]", parts.join(", ")) };
    format!("{}.{} {:?} is invalid: {}", kind.kind, kind.group, name, all)
}

// --- lenient uid extraction ----------------------------------------------------------------------

/// Finds `request.uid` in a body that does not decode (truncated, wrong types elsewhere): a tolerant
/// scan that tracks nesting, so only the `uid` key directly inside the top-level `request` counts
/// (not `request.object.metadata.uid`), whatever the key order. `None` if it is not there intact.
pub fn lenient_uid(body: &[u8]) -> Option<String> {
    let mut depth = 0usize;
    // Depth of the `request` object once entered.
    let mut in_request = false;
    // The last string read at an object-key position, with the depth it was read at.
    let mut last_key: Option<(usize, usize, usize)> = None; // (depth, start, end) of the raw string
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < body.len() && body[i] != b'"' {
                    i += if body[i] == b'\\' { 2 } else { 1 };
                }
                if i >= body.len() {
                    return None;
                }
                let raw = &body[start..=i];
                // A string followed by ':' is a key.
                let after = body[i + 1..].trim_ascii_start();
                if after.first() == Some(&b':') {
                    last_key = Some((depth, start, i + 1));
                } else if let Some((d, ks, ke)) = last_key.take()
                    && in_request
                    && d == 2
                    && &body[ks..ke] == b"\"uid\""
                {
                    return serde_json::from_slice::<String>(raw).ok().filter(|s| !s.is_empty());
                }
            }
            b'{' | b'[' => {
                if body[i] == b'{'
                    && depth == 1
                    && let Some((1, ks, ke)) = last_key
                    && &body[ks..ke] == b"\"request\""
                {
                    in_request = true;
                }
                depth += 1;
                last_key = None;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth <= 1 && in_request {
                    // Left the request object without finding a uid.
                    return None;
                }
                last_key = None;
            }
            b',' => last_key = None,
            _ => {}
        }
        i += 1;
    }
    None
}

// --- the handler -----------------------------------------------------------------------------------

/// Answers AdmissionReviews from the estate; shared by every connection.
pub struct Admission {
    estate: Arc<dyn ServingEstate>,
    sink: Arc<dyn AdmittedChangeSink>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission").finish_non_exhaustive()
    }
}

/// The decision for metrics and logs.
struct Decision {
    kind: &'static str,
    operation: &'static str,
    decision: &'static str,
}

impl Admission {
    pub fn new(estate: Arc<dyn ServingEstate>, sink: Arc<dyn AdmittedChangeSink>, metrics: Arc<Metrics>) -> Self {
        Admission { estate, sink, metrics }
    }

    pub fn estate(&self) -> &Arc<dyn ServingEstate> {
        &self.estate
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Answers one AdmissionReview body (always a reply body to send with HTTP 200).
    pub fn review(&self, webhook: Webhook, body: &[u8]) -> Vec<u8> {
        let started = Instant::now();
        let (reply, d) = self.decide(webhook, body);
        self.record(webhook, &d, started);
        reply
    }

    /// Like [`review`](Self::review), except that a Region write whose kubeconfig Secret the cache
    /// lacks, has not read the key names of, or shows without the key is decided with one live read
    /// of that Secret: the cache lags a `kubectl apply` of a Secret and its Region together, and a
    /// wrong "does not exist" would be a false denial. Everything else is decided from the cache.
    pub async fn review_async(&self, webhook: Webhook, body: &[u8]) -> Vec<u8> {
        let started = Instant::now();
        let (reply, d) = match serde_json::from_slice::<ReviewIn>(body) {
            Ok(review) => {
                let live = self.read_region_secret(webhook, &review).await;
                let base: &dyn Estate = &*self.estate;
                let overlay = live.map(|(name, secret)| WithSecret::new(base, base.system_namespace(), &name, secret));
                self.decide_review(webhook, review, overlay.as_ref().map(|o| o as &dyn Estate))
            }
            Err(e) => self.undecodable(webhook, body, &e),
        };
        self.record(webhook, &d, started);
        reply
    }

    /// For a Region CREATE/UPDATE that will check its kubeConfig Secret and the cache cannot confirm
    /// it: the live read of that Secret, as (name, the Secret or `None` when absent). `None` when no
    /// read is needed or it was not possible (the decision then uses the cache).
    async fn read_region_secret(&self, webhook: Webhook, review: &ReviewIn) -> Option<(String, Option<Value>)> {
        let req = review.request.as_ref()?;
        let operation = req.operation.as_deref().and_then(Operation::parse)?;
        if webhook != Webhook::Validate
            || !matches!(operation, Operation::Create | Operation::Update)
            || req.kind.as_ref().and_then(ResourceKind::from_gvk) != Some(ResourceKind::Region)
            || req.sub_resource.as_deref().is_some_and(|s| !s.is_empty())
            || !self.estate.synced()
        {
            return None;
        }
        let kube_config = req.object.as_ref()?.pointer("/spec/kubeConfig")?;
        // An unchanged reference is not re-checked on UPDATE.
        if operation == Operation::Update
            && req.old_object.as_ref().and_then(|o| o.pointer("/spec/kubeConfig")) == Some(kube_config)
        {
            return None;
        }
        let name = kube_config.get("name").and_then(Value::as_str).filter(|s| !s.is_empty())?;
        let key = kube_config.get("key").and_then(Value::as_str).filter(|s| !s.is_empty());
        let sys = self.estate.system_namespace();
        let confirmed = self.estate.get(&Cluster::Management, &Gvk::secret(), Some(sys), name).is_some_and(|s| {
            let has = |field: &str| {
                s.get(field).and_then(Value::as_object).is_some_and(|m| key.is_none_or(|k| m.contains_key(k)))
            };
            !secret_keys_unknown(&s) && (has("data") || has("stringData") || key.is_none())
        });
        if confirmed {
            return None;
        }
        let read = self.estate.read_secret(sys, name).await;
        let outcome = match &read {
            LiveRead::Found(_) => "found",
            LiveRead::Absent => "absent",
            LiveRead::Unavailable => "unavailable (deciding on the cache)",
        };
        tracing::info!(
            namespace = sys,
            secret = name,
            outcome,
            "Region write: kubeconfig Secret read live (the cache could not confirm it)"
        );
        match read {
            LiveRead::Found(secret) => Some((name.to_string(), Some(secret))),
            LiveRead::Absent => Some((name.to_string(), None)),
            LiveRead::Unavailable => None,
        }
    }

    /// The reply to a body larger than `limit` bytes, of which `prefix` was read.
    pub fn oversized(&self, webhook: Webhook, prefix: &[u8], limit: usize) -> Vec<u8> {
        let started = Instant::now();
        let uid = lenient_uid(prefix).unwrap_or_default();
        tracing::warn!(webhook = webhook.as_str(), uid = %uid, limit, "AdmissionReview body too large; denied");
        let reply = encode(
            &uid,
            bad_request(format!(
                "AdmissionReview body exceeds the webhook's limit of {limit} bytes; raise --max-body-bytes if objects \
                 this large are expected"
            )),
        );
        self.record(webhook, &Decision { kind: "unknown", operation: "unknown", decision: "malformed" }, started);
        reply
    }

    /// The reply when the request could not be read (`prefix` is what arrived, for the uid).
    pub fn unreadable(&self, webhook: Webhook, prefix: &[u8], message: String) -> Vec<u8> {
        let started = Instant::now();
        let uid = lenient_uid(prefix).unwrap_or_default();
        let (reply, d) = self.malformed(webhook, &uid, message);
        self.record(webhook, &d, started);
        reply
    }

    fn record(&self, webhook: Webhook, d: &Decision, started: Instant) {
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                webhook: webhook.as_str(),
                kind: d.kind,
                operation: d.operation,
                decision: d.decision,
            })
            .inc();
        self.metrics
            .duration
            .get_or_create(&WebhookLabels { webhook: webhook.as_str() })
            .observe(started.elapsed().as_secs_f64());
    }

    fn malformed(&self, webhook: Webhook, uid: &str, message: String) -> (Vec<u8>, Decision) {
        tracing::warn!(webhook = webhook.as_str(), uid = %uid, reason = %message, "malformed AdmissionReview; denied");
        (encode(uid, bad_request(message)), Decision { kind: "unknown", operation: "unknown", decision: "malformed" })
    }

    fn undecodable(&self, webhook: Webhook, body: &[u8], e: &serde_json::Error) -> (Vec<u8>, Decision) {
        let uid = lenient_uid(body).unwrap_or_default();
        self.malformed(webhook, &uid, format!("cannot decode the AdmissionReview: {e}"))
    }

    fn decide(&self, webhook: Webhook, body: &[u8]) -> (Vec<u8>, Decision) {
        match serde_json::from_slice(body) {
            Ok(review) => self.decide_review(webhook, review, None),
            Err(e) => self.undecodable(webhook, body, &e),
        }
    }

    /// Decides on the cached estate, or on `live` (the cache plus a live read) when given.
    fn decide_review(&self, webhook: Webhook, review: ReviewIn, live: Option<&dyn Estate>) -> (Vec<u8>, Decision) {
        let uid = review.request.as_ref().and_then(|r| r.uid.clone()).unwrap_or_default();
        if review.kind.as_deref() != Some("AdmissionReview") {
            let got = review.kind.as_deref().unwrap_or("<none>");
            return self.malformed(webhook, &uid, format!("expected kind AdmissionReview, got {got}"));
        }
        if review.api_version.as_deref() != Some(ADMISSION_API_VERSION) {
            let got = review.api_version.as_deref().unwrap_or("<none>");
            return self.malformed(
                webhook,
                &uid,
                format!(
                    "unsupported AdmissionReview apiVersion {got}: this webhook speaks {ADMISSION_API_VERSION} \
                     (set admissionReviewVersions: [v1] in the webhook configuration)"
                ),
            );
        }
        let Some(req) = review.request else {
            return self.malformed(webhook, &uid, "the AdmissionReview has no request".to_string());
        };
        if uid.is_empty() {
            return self.malformed(webhook, "", "request.uid is missing".to_string());
        }
        let Some(gvk) = req.kind.clone() else {
            return self.malformed(webhook, &uid, "request.kind is missing".to_string());
        };
        let Some(operation) = req.operation.as_deref().and_then(Operation::parse) else {
            let got = req.operation.as_deref().unwrap_or("<none>");
            return self.malformed(
                webhook,
                &uid,
                format!("request.operation {got:?} is not one of CREATE, UPDATE, DELETE, CONNECT"),
            );
        };
        let namespace = req.namespace.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
        let name = request_name(&req);
        let dry_run = req.dry_run.unwrap_or(false);
        let span_fields = (uid.as_str(), gvk.kind.as_str(), namespace.as_deref().unwrap_or(""), name.as_str());

        let Some(kind) = ResourceKind::from_gvk(&gvk) else {
            tracing::debug!(
                webhook = webhook.as_str(),
                uid = span_fields.0,
                kind = span_fields.1,
                namespace = span_fields.2,
                name = span_fields.3,
                operation = operation.as_str(),
                allowed = true,
                "kind not handled by this webhook; allowed without checks"
            );
            return (
                encode(&uid, allowed()),
                Decision { kind: "other", operation: operation.as_str(), decision: "ignored" },
            );
        };
        if req.sub_resource.as_deref().is_some_and(|s| !s.is_empty()) || operation == Operation::Connect {
            tracing::debug!(
                webhook = webhook.as_str(),
                uid = span_fields.0,
                kind = span_fields.1,
                namespace = span_fields.2,
                name = span_fields.3,
                operation = operation.as_str(),
                sub_resource = req.sub_resource.as_deref().unwrap_or(""),
                allowed = true,
                "subresource or CONNECT request; allowed without checks"
            );
            return (
                encode(&uid, allowed()),
                Decision { kind: kind.kind(), operation: operation.as_str(), decision: "ignored" },
            );
        }
        if !self.estate.synced() {
            // Validating on half-loaded caches would deny valid objects and allow unsafe deletes, so
            // validation refuses. Mutation fails open (as its failurePolicy does): no patch beats a
            // patch computed from a partial state, and validation still judges the object.
            let reply = match webhook {
                Webhook::Validate => not_synced(),
                Webhook::Mutate => allowed(),
            };
            tracing::warn!(webhook = webhook.as_str(), uid = %uid, kind = span_fields.1, allowed = reply.allowed,
                "cluster state not loaded yet (caches not synced)");
            return (
                encode(&uid, reply),
                Decision { kind: kind.kind(), operation: operation.as_str(), decision: "unavailable" },
            );
        }
        if matches!(operation, Operation::Create | Operation::Update) && req.object.is_none() {
            return self.malformed(webhook, &uid, format!("request.object is missing for {}", operation.as_str()));
        }
        let input = AdmissionInput {
            operation,
            kind,
            namespace: namespace.as_deref(),
            name: &name,
            object: req.object.as_ref(),
            old_object: req.old_object.as_ref(),
        };
        let estate: &dyn Estate = live.unwrap_or(&*self.estate);

        match webhook {
            Webhook::Mutate => {
                let patch = if matches!(operation, Operation::Create | Operation::Update) {
                    credential_core::mutate::mutate(&input, estate)
                } else {
                    json_patch::Patch(Vec::new())
                };
                let ops = patch.0.len();
                let mut response = allowed();
                if ops > 0 {
                    match serde_json::to_vec(&patch) {
                        Ok(bytes) => {
                            response.patch_type = Some("JSONPatch");
                            response.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
                        }
                        Err(e) => {
                            tracing::error!(uid = %uid, error = %e, "cannot encode the patch; allowing unpatched")
                        }
                    }
                }
                // Routine decisions log at debug: at info, the line costs ~10% of the webhook's CPU.
                log_decision!(
                    ops == 0,
                    webhook = "mutate",
                    uid = span_fields.0,
                    kind = span_fields.1,
                    namespace = span_fields.2,
                    name = span_fields.3,
                    operation = operation.as_str(),
                    dry_run,
                    allowed = true,
                    patch_ops = ops,
                    "admission"
                );
                let decision = if ops > 0 { "patched" } else { "allowed" };
                (encode(&uid, response), Decision { kind: kind.kind(), operation: operation.as_str(), decision })
            }
            Webhook::Validate => {
                let findings = credential_core::rules::validate(&input, estate);
                for f in &findings {
                    let severity = match f.severity {
                        Severity::Deny => "deny",
                        Severity::Warn => "warn",
                    };
                    self.metrics.findings.get_or_create(&FindingLabels { code: f.code.clone(), severity }).inc();
                }
                let denials: Vec<&Finding> = findings.iter().filter(|f| f.is_deny()).collect();
                let warnings: Vec<String> = findings.iter().filter(|f| !f.is_deny()).map(warning_text).collect();
                let codes: Vec<&str> = findings.iter().map(|f| f.code.as_str()).collect();
                let allowed_now = denials.is_empty();
                log_decision!(findings.is_empty(), webhook = "validate", uid = span_fields.0, kind = span_fields.1,
                    namespace = span_fields.2, name = span_fields.3, operation = operation.as_str(), dry_run,
                    allowed = allowed_now, findings = ?codes, "admission");
                let mut response = allowed();
                response.warnings = warnings;
                if !allowed_now {
                    response.allowed = false;
                    response.status = Some(StatusOut {
                        metadata: EmptyObject {},
                        status: "Failure",
                        message: invalid_message(&gvk, &name, &denials),
                        reason: "Invalid",
                        details: Some(DetailsOut {
                            name: name.clone(),
                            group: gvk.group.clone(),
                            kind: gvk.kind.clone(),
                            causes: denials
                                .iter()
                                .map(|f| CauseOut {
                                    reason: "FieldValueInvalid",
                                    message: deny_text(f),
                                    field: f.field.clone(),
                                })
                                .collect(),
                        }),
                        code: 422,
                    });
                }
                let reply = encode(&uid, response);
                let decision = if allowed_now { "allowed" } else { "denied" };
                if allowed_now
                    && !dry_run
                    && kind == ResourceKind::Credential
                    && matches!(operation, Operation::Create | Operation::Update | Operation::Delete)
                {
                    self.sink.admitted(AdmittedChange {
                        uid: uid.clone(),
                        operation,
                        namespace: namespace.clone().unwrap_or_default(),
                        name: name.clone(),
                        object: req.object.map(Arc::new),
                        old_object: req.old_object.map(Arc::new),
                    });
                }
                (reply, Decision { kind: kind.kind(), operation: operation.as_str(), decision })
            }
        }
    }
}

/// `request.name`, else the object's name, else its `generateName` (CREATE may carry only that).
fn request_name(req: &RequestIn) -> String {
    if let Some(n) = req.name.as_deref().filter(|s| !s.is_empty()) {
        return n.to_string();
    }
    let meta = req.object.as_ref().or(req.old_object.as_ref()).and_then(|o| o.get("metadata"));
    meta.and_then(|m| m.get("name").or_else(|| m.get("generateName")))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use credential_core::MemoryEstate;
    use credential_core::estate::Served;
    use futures_util::future::BoxFuture;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A synced estate whose live read answers `live` and counts the reads.
    struct LiveEstate {
        base: MemoryEstate,
        live: LiveRead,
        reads: AtomicUsize,
    }

    impl Estate for LiveEstate {
        fn system_namespace(&self) -> &str {
            self.base.system_namespace()
        }
        fn knows_cluster(&self, c: &Cluster) -> bool {
            self.base.knows_cluster(c)
        }
        fn get(&self, c: &Cluster, g: &Gvk, ns: Option<&str>, n: &str) -> Option<Arc<Value>> {
            self.base.get(c, g, ns, n)
        }
        fn list(&self, c: &Cluster, g: &Gvk, ns: Option<&str>) -> Vec<Arc<Value>> {
            self.base.list(c, g, ns)
        }
        fn served(&self, c: &Cluster, g: &Gvk) -> Served {
            self.base.served(c, g)
        }
        fn namespaced(&self, c: &Cluster, g: &Gvk) -> Option<bool> {
            self.base.namespaced(c, g)
        }
        fn credentials_in_region(&self, region: &str) -> Vec<Arc<Value>> {
            self.base.credentials_in_region(region)
        }
        fn credentials_using_identity_kind(&self, api_version: &str, kind: &str) -> Vec<Arc<Value>> {
            self.base.credentials_using_identity_kind(api_version, kind)
        }
        fn cluster_deployments_using(&self, namespace: &str, credential: &str) -> Vec<Arc<Value>> {
            self.base.cluster_deployments_using(namespace, credential)
        }
        fn regions_on_cluster_deployment(&self, namespace: &str, name: &str) -> Vec<Arc<Value>> {
            self.base.regions_on_cluster_deployment(namespace, name)
        }
    }

    impl ServingEstate for LiveEstate {
        fn synced(&self) -> bool {
            true
        }
        fn read_secret<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, LiveRead> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let live = self.live.clone();
            Box::pin(async move { live })
        }
    }

    fn region_review(op: &str, key: &str, old_key: Option<&str>) -> Vec<u8> {
        let region = |key: &str| {
            json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Region", "metadata": {"name": "r9"},
                   "spec": {"kubeConfig": {"name": "r9-kubeconfig", "key": key}}})
        };
        json!({"apiVersion": ADMISSION_API_VERSION, "kind": "AdmissionReview", "request": {
            "uid": "u1", "kind": {"group": "k0rdent.mirantis.com", "version": "v1beta1", "kind": "Region"},
            "name": "r9", "operation": op, "object": region(key), "oldObject": old_key.map(region)}})
        .to_string()
        .into_bytes()
    }

    /// (allowed, reply text, live reads made)
    async fn decide(cached: Option<Value>, live: LiveRead, body: &[u8]) -> (bool, String, usize) {
        let mut base = MemoryEstate::new("kcm-system");
        if let Some(c) = cached {
            base.insert(&Cluster::Management, c);
        }
        let estate = Arc::new(LiveEstate { base, live, reads: AtomicUsize::new(0) });
        let admission = Admission::new(estate.clone(), Arc::new(crate::sink::NoopSink), Arc::new(Metrics::new()));
        let reply: Value = serde_json::from_slice(&admission.review_async(Webhook::Validate, body).await).unwrap();
        let allowed = reply["response"]["allowed"].as_bool().unwrap();
        (allowed, reply.to_string(), estate.reads.load(Ordering::SeqCst))
    }

    fn secret(keys: &[&str], unknown: bool) -> Value {
        let mut s = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"namespace": "kcm-system", "name": "r9-kubeconfig"},
            "data": keys.iter().map(|k| (k.to_string(), json!(""))).collect::<serde_json::Map<_, _>>()});
        if unknown {
            s["metadata"]["annotations"] =
                json!({credential_core::rules::region::SECRET_KEYS_UNKNOWN_ANNOTATION: "true"});
            s.as_object_mut().unwrap().remove("data");
        }
        s
    }

    #[tokio::test]
    async fn region_writes_confirm_their_secret_live_when_the_cache_cannot() {
        let create = region_review("CREATE", "value", None);
        // Not cached yet (applied together with the Region): the live read decides.
        let (ok, _, reads) = decide(None, LiveRead::Found(secret(&["value"], false)), &create).await;
        assert!(ok && reads == 1);
        let (ok, text, _) = decide(None, LiveRead::Found(secret(&["other"], false)), &create).await;
        assert!(!ok && text.contains("RGN007"), "{text}");
        let (ok, text, _) = decide(None, LiveRead::Absent, &create).await;
        assert!(!ok && text.contains("RGN006"), "{text}");
        // Cached with unknown key names: read live; if the read fails, the check is skipped, not denied.
        let (ok, _, reads) = decide(Some(secret(&[], true)), LiveRead::Found(secret(&["value"], false)), &create).await;
        assert!(ok && reads == 1);
        let (ok, _, reads) = decide(Some(secret(&[], true)), LiveRead::Unavailable, &create).await;
        assert!(ok && reads == 1);
        // Cached without the key (maybe stale): confirmed live before denying.
        let (ok, _, reads) =
            decide(Some(secret(&["x"], false)), LiveRead::Found(secret(&["value"], false)), &create).await;
        assert!(ok && reads == 1);
        // Cached and confirmed: no read.
        let (ok, _, reads) = decide(Some(secret(&["value"], false)), LiveRead::Unavailable, &create).await;
        assert!(ok && reads == 0);
        // UPDATE leaving kubeConfig as it is: not re-checked, no read.
        let (ok, _, reads) = decide(None, LiveRead::Absent, &region_review("UPDATE", "value", Some("value"))).await;
        assert!(ok && reads == 0);
        // The synchronous path never reads.
        let estate = Arc::new(LiveEstate {
            base: MemoryEstate::new("kcm-system"),
            live: LiveRead::Found(secret(&["value"], false)),
            reads: AtomicUsize::new(0),
        });
        let admission = Admission::new(estate.clone(), Arc::new(crate::sink::NoopSink), Arc::new(Metrics::new()));
        let reply = String::from_utf8(admission.review(Webhook::Validate, &create)).unwrap();
        assert!(reply.contains("RGN006") && estate.reads.load(Ordering::SeqCst) == 0, "{reply}");
    }

    #[test]
    fn lenient_uid_finds_request_uid_in_truncated_body() {
        let body = br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid" : "abc-\"1\"","kind":{"gro"#;
        assert_eq!(lenient_uid(body).as_deref(), Some("abc-\"1\""));
        assert_eq!(lenient_uid(br#"{"request":{"uid":"abc"#), None);
        assert_eq!(lenient_uid(br#"{"uid":"x"}"#), None);
        assert_eq!(lenient_uid(br#"{"request":{"uid":5}}"#), None);
        // Key order does not matter; nested uids do not count.
        let sorted = br#"{"request":{"dryRun":false,"object":{"metadata":{"uid":"obj"}},"uid":"req"},"kind":"Adm"#;
        assert_eq!(lenient_uid(sorted).as_deref(), Some("req"));
        let nested_only = br#"{"request":{"object":{"metadata":{"uid":"obj"}},"operation":"CREATE"#;
        assert_eq!(lenient_uid(nested_only), None);
        assert_eq!(lenient_uid(br#"{"other":{"uid":"x"},"request":{"uid":"y"}}"#).as_deref(), Some("y"));
    }

    #[test]
    fn invalid_message_matches_go_shape() {
        let a = Finding::deny("CRED002", "spec.region", "Region \"r1\" does not exist", "create it");
        let b = Finding::deny("CRED001", "", "whole object bad", "");
        let gvk = Gvk::credential();
        assert_eq!(
            invalid_message(&gvk, "c1", &[&a]),
            "Credential.k0rdent.mirantis.com \"c1\" is invalid: spec.region: [CRED002] Region \"r1\" does not exist (fix: create it)"
        );
        assert_eq!(
            invalid_message(&gvk, "c1", &[&a, &b]),
            "Credential.k0rdent.mirantis.com \"c1\" is invalid: [spec.region: [CRED002] Region \"r1\" does not exist (fix: create it), [CRED001] whole object bad]"
        );
    }

    #[test]
    fn warning_drops_hint_when_too_long() {
        let f = Finding::warn("CRED004", "spec.region", "Region r1 is not Ready", "wait");
        assert_eq!(warning_text(&f), "[CRED004] Region r1 is not Ready (fix: wait)");
        let f = Finding::warn("CRED004", "", "m", "h".repeat(300));
        assert_eq!(warning_text(&f), "[CRED004] m");
    }
}
