//! AdmissionReview handling: decode, dispatch on `request.kind`, run the core rules or mutations,
//! and encode the reply. Transport-free, so tests and benchmarks can call it directly.
//!
//! Every reply is an `admission.k8s.io/v1` AdmissionReview with HTTP 200, even for input we cannot
//! read: a non-200 answer would make the API server apply the webhook's failurePolicy instead of
//! showing our message.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use credential_core::finding::{Finding, Severity};
use credential_core::gvk::Gvk;
use credential_core::model::{ClusterDeploymentRef, RegionSpec, SecretKeyReference};
use credential_core::rules::{AdmissionInput, AdmittedObject, Operation, ResourceKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use credential_core::estate::{Cluster, Estate};
use credential_core::rules::region::secret_keys_unknown;

use crate::cache::limit::LiveReadLimiter;
use crate::cache::{LiveRead, Overlay, ServingEstate};
use crate::metrics::{FindingLabels, Metrics, RequestLabels};
use crate::sink::{AdmittedChange, AdmittedChangeSink};

pub const ADMISSION_API_VERSION: &str = "admission.k8s.io/v1";
/// Warnings longer than this may be truncated by the API server; hints are only appended below it.
const WARNING_MAX: usize = 256;
/// Bytes reserved for a reply: an allow with a uid and a few warnings fits.
const REPLY_CAPACITY: usize = 512;
/// Live reads one admission request may cause (a ClusterDeployment: its Credential, then its Region).
pub const MAX_LIVE_READS: usize = 2;

/// Who a live read is made for (logs, rate limit).
struct ReadCtx<'a> {
    user: &'a str,
    uid: &'a str,
}

/// Logs a validation decision at `debug` when it is routine (`quiet`: allowed, no findings), else at
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

// The review as the API server sends it, decoded once: strings borrow from the body (`Cow` for the
// rare escaped one), the objects stay JSON text until a rule reads them ([`AdmittedObject`]), and
// members nothing reads (`resource`, `options`, `userInfo.groups`, ...) are skipped, not built.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewIn<'a> {
    #[serde(borrow)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    request: Option<RequestIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIn<'a> {
    #[serde(borrow)]
    uid: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kind: Option<GvkIn<'a>>,
    #[serde(borrow)]
    sub_resource: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow)]
    operation: Option<Cow<'a, str>>,
    #[serde(borrow)]
    object: Option<&'a RawValue>,
    #[serde(borrow)]
    old_object: Option<&'a RawValue>,
    dry_run: Option<bool>,
    #[serde(borrow)]
    user_info: Option<UserInfoIn<'a>>,
}

/// `request.kind` (a `metav1.GroupVersionKind`).
#[derive(Deserialize)]
struct GvkIn<'a> {
    #[serde(borrow, default)]
    group: Cow<'a, str>,
    #[serde(borrow, default)]
    version: Cow<'a, str>,
    #[serde(borrow, default)]
    kind: Cow<'a, str>,
}

impl GvkIn<'_> {
    fn to_gvk(&self) -> Gvk {
        Gvk::new(&*self.group, &*self.version, &*self.kind)
    }
}

#[derive(Deserialize)]
struct UserInfoIn<'a> {
    #[serde(borrow)]
    username: Option<Cow<'a, str>>,
}

impl RequestIn<'_> {
    /// `request.userInfo.username` (as the API server authenticated the caller), or "".
    fn user(&self) -> &str {
        self.user_info.as_ref().and_then(|u| u.username.as_deref()).unwrap_or_default()
    }

    fn sub_resource(&self) -> Option<&str> {
        self.sub_resource.as_deref().filter(|s| !s.is_empty())
    }
}

/// The objects of a request, each read once for every step that looks at it.
struct Objects<'a> {
    object: Option<AdmittedObject<'a>>,
    old: Option<AdmittedObject<'a>>,
}

/// Nesting serde_json refuses (its recursion limit, 128 levels, counted from the review's top).
const MAX_NESTING: usize = 128;

/// The review, or the error of a body the review's types would have refused: objects kept as text
/// are skipped without serde_json's recursion limit, so one nested deeper than a `Value` can hold
/// is decoded again as a `Value` for the error it always got.
fn decode(body: &[u8]) -> Result<ReviewIn<'_>, serde_json::Error> {
    let review: ReviewIn<'_> = serde_json::from_slice(body)?;
    let req = review.request.as_ref();
    let objects = req.into_iter().flat_map(|r| [r.object, r.old_object]).flatten();
    if objects.into_iter().any(|o| nesting_may_exceed(o.get(), MAX_NESTING - 2))
        && let Err(e) = serde_json::from_slice::<Value>(body)
    {
        return Err(e);
    }
    Ok(review)
}

/// Whether `text` may nest deeper than `limit`: counting brackets (a vectorised search, stopped
/// past `limit`) is cheap and almost always settles it; only text with that many brackets is walked.
fn nesting_may_exceed(text: &str, limit: usize) -> bool {
    let brackets = memchr::memchr2_iter(b'{', b'[', text.as_bytes()).take(limit + 1).count();
    if brackets <= limit {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for b in text.bytes() {
        match (in_string, b) {
            (true, _) if escaped => escaped = false,
            (true, b'\\') => escaped = true,
            (true, b'"') => in_string = false,
            (true, _) => {}
            (false, b'"') => in_string = true,
            (false, b'{' | b'[') => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            (false, b'}' | b']') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

impl<'a> Objects<'a> {
    fn of(review: &ReviewIn<'a>) -> Self {
        let req = review.request.as_ref();
        Objects {
            object: req.and_then(|r| r.object).map(AdmittedObject::from_raw),
            old: req.and_then(|r| r.old_object).map(AdmittedObject::from_raw),
        }
    }
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
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
    // Room for a routine answer at once (no regrowth); a denial's message grows it.
    let mut out = Vec::with_capacity(REPLY_CAPACITY);
    // Serializing plain structs of strings cannot fail; fall back to a fixed denial if it ever did.
    match serde_json::to_writer(&mut out, &review) {
        Ok(()) => out,
        Err(_) => {
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"","allowed":false}}"#
                .to_vec()
        }
    }
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

/// Go's `apierrors.NewForbidden` message for a DELETE: `<resource>.<group> "<name>" is forbidden:
/// <why>`, the denials joined by `; ` (each names the objects that still use this one).
pub fn forbidden_message(resource: &str, group: &str, name: &str, denials: &[&Finding]) -> String {
    let why: Vec<String> = denials.iter().map(|f| deny_text(f)).collect();
    format!("{resource}.{group} {name:?} is forbidden: {}", why.join("; "))
}

/// The `Status` of a denial: 403 Forbidden naming the users for DELETE (what KCM's own webhooks
/// answer), else 422 Invalid with one cause per finding and its field.
fn denial_status(operation: Operation, kind: ResourceKind, gvk: &Gvk, name: &str, denials: &[&Finding]) -> StatusOut {
    if operation == Operation::Delete {
        return StatusOut {
            metadata: EmptyObject {},
            status: "Failure",
            message: forbidden_message(kind.plural(), &gvk.group, name, denials),
            reason: "Forbidden",
            details: Some(DetailsOut {
                name: name.to_string(),
                group: gvk.group.clone(),
                kind: kind.plural().to_string(),
                causes: Vec::new(),
            }),
            code: 403,
        };
    }
    StatusOut {
        metadata: EmptyObject {},
        status: "Failure",
        message: invalid_message(gvk, name, denials),
        reason: "Invalid",
        details: Some(DetailsOut {
            name: name.to_string(),
            group: gvk.group.clone(),
            kind: gvk.kind.clone(),
            causes: denials
                .iter()
                .map(|f| CauseOut { reason: "FieldValueInvalid", message: deny_text(f), field: f.field.clone() })
                .collect(),
        }),
        code: 422,
    }
}

/// A list as JSON array text (`["CRED004","CRED010"]`): the JSON log format writes such a field as
/// an array, the text format as is.
pub fn json_list(items: &[&str]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_string())
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
    limiter: Arc<LiveReadLimiter>,
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
        Self::with_limiter(estate, sink, metrics, Arc::new(LiveReadLimiter::default()))
    }

    /// Like [`new`](Self::new) with the bounds on live reads given (tests use small ones).
    pub fn with_limiter(
        estate: Arc<dyn ServingEstate>,
        sink: Arc<dyn AdmittedChangeSink>,
        metrics: Arc<Metrics>,
        limiter: Arc<LiveReadLimiter>,
    ) -> Self {
        let reads = limiter.reads.clone();
        metrics.register_with(|r| {
            r.register(
                "live_reads",
                "Live reads admission made because the cache could not confirm an object, by kind and outcome \
                 (refused: rate limit of the requesting user or of the webhook, or too many at once)",
                reads,
            )
        });
        Admission { estate, sink, metrics, limiter }
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

    /// Like [`review`](Self::review), except that an object the decision would deny for as missing
    /// (or, for a Region's kubeconfig Secret, lacking the key or with key names not loaded) is
    /// confirmed with a live read first: the cache lags a `kubectl apply` of several objects that name
    /// each other, and a wrong "does not exist" would be a false denial. The reads are bounded: at most
    /// [`MAX_LIVE_READS`] per request, each within a short timeout, rate-limited per requesting user
    /// and in total ([`LiveReadLimiter`]). Everything else is decided from the cache.
    pub async fn review_async(&self, webhook: Webhook, body: &[u8]) -> Vec<u8> {
        let started = Instant::now();
        let (reply, d) = match decode(body) {
            Ok(review) => {
                let objects = Objects::of(&review);
                let base: &(dyn Estate + Sync) = &*self.estate;
                let overlay = self.live_overlay(webhook, &review, &objects, Overlay::new(base)).await;
                let live = (!overlay.is_empty()).then_some(&overlay as &dyn Estate);
                self.decide_review(webhook, &review, &objects, live)
            }
            Err(e) => self.undecodable(webhook, body, &e),
        };
        self.record(webhook, &d, started);
        reply
    }

    /// The live reads a validating CREATE/UPDATE needs, added to `overlay`: the objects it names that
    /// the cache cannot confirm. Reads that fail, time out or are refused add nothing (the decision
    /// then uses the cache).
    async fn live_overlay<'a>(
        &self,
        webhook: Webhook,
        review: &ReviewIn<'_>,
        objects: &Objects<'_>,
        mut overlay: Overlay<'a>,
    ) -> Overlay<'a> {
        let Some(req) = review.request.as_ref() else { return overlay };
        let Some(operation) = req.operation.as_deref().and_then(Operation::parse) else { return overlay };
        let Some(kind) = req.kind.as_ref().and_then(|k| ResourceKind::from_group_kind(&k.group, &k.kind)) else {
            return overlay;
        };
        if webhook != Webhook::Validate
            || !matches!(operation, Operation::Create | Operation::Update)
            || req.sub_resource().is_some()
            || !self.estate.synced()
        {
            return overlay;
        }
        let Some(object) = objects.object.as_ref() else { return overlay };
        let old = objects.old.as_ref();
        let mut budget = MAX_LIVE_READS;
        let ctx = ReadCtx { user: req.user(), uid: req.uid.as_deref().unwrap_or_default() };
        match kind {
            ResourceKind::Region => {
                let spec: RegionSpec = object.spec().unwrap_or_default();
                let old_spec: Option<RegionSpec> = old.and_then(AdmittedObject::spec);
                // An unchanged reference is not re-checked on UPDATE.
                let create = operation == Operation::Create;
                let kube_config_changed = create || old_spec.as_ref().is_none_or(|o| o.kube_config != spec.kube_config);
                let cd_changed =
                    create || old_spec.as_ref().is_none_or(|o| o.cluster_deployment != spec.cluster_deployment);
                if kube_config_changed
                    && let Some(kube_config) = &spec.kube_config
                    && let Some((name, secret)) = self.read_region_secret(kube_config, &ctx, &mut budget).await
                {
                    overlay = overlay.with_secret(self.estate.system_namespace(), &name, secret);
                }
                if cd_changed
                    && let Some(ClusterDeploymentRef { namespace: Some(ns), name: Some(name) }) =
                        &spec.cluster_deployment
                    && !ns.is_empty()
                    && !name.is_empty()
                {
                    overlay =
                        self.confirm(overlay, &Gvk::cluster_deployment(), Some(ns), name, &ctx, &mut budget).await;
                }
            }
            ResourceKind::Credential => {
                // A vanished Region is judged only on CREATE (spec.region is immutable).
                if operation == Operation::Create
                    && let Some(region) = object.str_at(&["spec", "region"])
                {
                    overlay = self.confirm(overlay, &Gvk::region(), None, &region, &ctx, &mut budget).await;
                }
            }
            ResourceKind::ClusterDeployment => {
                let object_ns = object.str_at(&["metadata", "namespace"]);
                let ns = req.namespace.as_deref().or(object_ns.as_deref());
                let credential = object.str_at(&["spec", "credential"]);
                let changed =
                    operation == Operation::Create || old.and_then(|o| o.str_at(&["spec", "credential"])) != credential;
                if changed && let (Some(ns), Some(cred)) = (ns, credential.as_deref()) {
                    overlay = self.confirm(overlay, &Gvk::credential(), Some(ns), cred, &ctx, &mut budget).await;
                    let region = overlay
                        .get(&Cluster::Management, &Gvk::credential(), Some(ns), cred)
                        .and_then(|c| c.pointer("/spec/region").and_then(Value::as_str).map(str::to_string))
                        .filter(|r| !r.is_empty());
                    if let Some(region) = region {
                        overlay = self.confirm(overlay, &Gvk::region(), None, &region, &ctx, &mut budget).await;
                    }
                }
            }
            ResourceKind::ProviderInterface => {}
        }
        overlay
    }

    /// Adds the live state of one management object to `overlay` when the cache lacks it.
    async fn confirm<'a>(
        &self,
        overlay: Overlay<'a>,
        gvk: &Gvk,
        namespace: Option<&str>,
        name: &str,
        ctx: &ReadCtx<'_>,
        budget: &mut usize,
    ) -> Overlay<'a> {
        if overlay.get(&Cluster::Management, gvk, namespace, name).is_some() {
            return overlay;
        }
        let kind = match ResourceKind::from_gvk(gvk) {
            Some(k) => k.kind(),
            None => return overlay,
        };
        let at = namespace.map_or_else(|| name.to_string(), |ns| format!("{ns}/{name}"));
        match self.limited_read(kind, &at, ctx, budget, || self.estate.read_object(gvk, namespace, name)).await {
            LiveRead::Found(obj) => overlay.with(gvk, namespace, name, Some(obj)),
            LiveRead::Absent => overlay.with(gvk, namespace, name, None),
            LiveRead::Unavailable => overlay,
        }
    }

    /// Runs one live read if the budget of the request and the rate limits allow it; logs and counts it.
    async fn limited_read<'b>(
        &self,
        kind: &'static str,
        at: &str,
        ctx: &ReadCtx<'_>,
        budget: &mut usize,
        read: impl FnOnce() -> futures_util::future::BoxFuture<'b, LiveRead>,
    ) -> LiveRead {
        if *budget == 0 {
            return LiveRead::Unavailable;
        }
        *budget -= 1;
        let permit = match self.limiter.admit(ctx.user, Instant::now()) {
            Ok(p) => p,
            Err(why) => {
                self.limiter.count(kind, "refused");
                tracing::warn!(
                    uid = ctx.uid,
                    user = ctx.user,
                    kind,
                    object = at,
                    reason = why.as_str(),
                    "live read refused; deciding on the cache"
                );
                return LiveRead::Unavailable;
            }
        };
        let result = read().await;
        drop(permit);
        let outcome = match &result {
            LiveRead::Found(_) => "found",
            LiveRead::Absent => "absent",
            LiveRead::Unavailable => "unavailable",
        };
        self.limiter.count(kind, outcome);
        tracing::info!(
            uid = ctx.uid,
            user = ctx.user,
            kind,
            object = at,
            outcome,
            "object read live (the cache could not confirm it)"
        );
        result
    }

    /// For a Region whose kubeConfig Secret the cache cannot confirm (absent, key names not loaded,
    /// or without the key): the live read of that Secret, as (name, the Secret or `None` when absent).
    /// `None` when no read is needed or it was not possible (the decision then uses the cache). Only
    /// the Secret's key names are kept, and the finding names only the key the Region asks for.
    async fn read_region_secret(
        &self,
        kube_config: &SecretKeyReference,
        ctx: &ReadCtx<'_>,
        budget: &mut usize,
    ) -> Option<(String, Option<Value>)> {
        let name = kube_config.name.as_deref().filter(|s| !s.is_empty())?;
        let key = kube_config.key.as_deref().filter(|s| !s.is_empty());
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
        let at = format!("{sys}/{name}");
        match self.limited_read("Secret", &at, ctx, budget, || self.estate.read_secret(sys, name)).await {
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
        let labels =
            RequestLabels { webhook: webhook.as_str(), kind: d.kind, operation: d.operation, decision: d.decision };
        self.metrics.count_request(&labels, started.elapsed().as_secs_f64());
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
        match decode(body) {
            Ok(review) => self.decide_review(webhook, &review, &Objects::of(&review), None),
            Err(e) => self.undecodable(webhook, body, &e),
        }
    }

    /// Decides on the cached estate, or on `live` (the cache plus a live read) when given.
    fn decide_review(
        &self,
        webhook: Webhook,
        review: &ReviewIn<'_>,
        objects: &Objects<'_>,
        live: Option<&dyn Estate>,
    ) -> (Vec<u8>, Decision) {
        let uid = review.request.as_ref().and_then(|r| r.uid.as_deref()).unwrap_or_default();
        if review.kind.as_deref() != Some("AdmissionReview") {
            let got = review.kind.as_deref().unwrap_or("<none>");
            return self.malformed(webhook, uid, format!("expected kind AdmissionReview, got {got}"));
        }
        if review.api_version.as_deref() != Some(ADMISSION_API_VERSION) {
            let got = review.api_version.as_deref().unwrap_or("<none>");
            return self.malformed(
                webhook,
                uid,
                format!(
                    "unsupported AdmissionReview apiVersion {got}: this webhook speaks {ADMISSION_API_VERSION} \
                     (set admissionReviewVersions: [v1] in the webhook configuration)"
                ),
            );
        }
        let Some(req) = review.request.as_ref() else {
            return self.malformed(webhook, uid, "the AdmissionReview has no request".to_string());
        };
        if uid.is_empty() {
            return self.malformed(webhook, "", "request.uid is missing".to_string());
        }
        let Some(gvk) = req.kind.as_ref() else {
            return self.malformed(webhook, uid, "request.kind is missing".to_string());
        };
        let Some(operation) = req.operation.as_deref().and_then(Operation::parse) else {
            let got = req.operation.as_deref().unwrap_or("<none>");
            return self.malformed(
                webhook,
                uid,
                format!("request.operation {got:?} is not one of CREATE, UPDATE, DELETE, CONNECT"),
            );
        };
        let namespace = req.namespace.as_deref().filter(|s| !s.is_empty());
        let name = request_name(req, objects);
        let dry_run = req.dry_run.unwrap_or(false);
        let user = req.user();
        let (kind_name, ns_field) = (&*gvk.kind, namespace.unwrap_or(""));

        let Some(kind) = ResourceKind::from_group_kind(&gvk.group, &gvk.kind) else {
            tracing::debug!(
                webhook = webhook.as_str(),
                uid,
                kind = kind_name,
                namespace = ns_field,
                name = &*name,
                operation = operation.as_str(),
                allowed = true,
                "kind not handled by this webhook; allowed without checks"
            );
            return (
                encode(uid, allowed()),
                Decision { kind: "other", operation: operation.as_str(), decision: "ignored" },
            );
        };
        if req.sub_resource().is_some() || operation == Operation::Connect {
            tracing::debug!(
                webhook = webhook.as_str(),
                uid,
                kind = kind_name,
                namespace = ns_field,
                name = &*name,
                operation = operation.as_str(),
                sub_resource = req.sub_resource().unwrap_or(""),
                allowed = true,
                "subresource or CONNECT request; allowed without checks"
            );
            return (
                encode(uid, allowed()),
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
            tracing::warn!(
                webhook = webhook.as_str(),
                uid,
                kind = kind_name,
                allowed = reply.allowed,
                "cluster state not loaded yet (caches not synced)"
            );
            return (
                encode(uid, reply),
                Decision { kind: kind.kind(), operation: operation.as_str(), decision: "unavailable" },
            );
        }
        if matches!(operation, Operation::Create | Operation::Update) && objects.object.is_none() {
            return self.malformed(webhook, uid, format!("request.object is missing for {}", operation.as_str()));
        }
        let input = AdmissionInput {
            operation,
            kind,
            namespace,
            name: &name,
            object: objects.object.as_ref(),
            old_object: objects.old.as_ref(),
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
                            tracing::error!(uid, error = %e, "cannot encode the patch; allowing unpatched")
                        }
                    }
                }
                // Mutations log at debug, patched or not: the patch is routine defaulting (labels, the
                // identity's namespace), the apiserver's audit log records every mutating webhook's
                // patch, and `admission_requests_total{decision="patched"}` counts them. A written line
                // costs ~19k instructions and a writer-thread wakeup (bench/analysis.md).
                tracing::debug!(
                    webhook = "mutate",
                    uid,
                    user,
                    kind = kind_name,
                    namespace = ns_field,
                    name = &*name,
                    operation = operation.as_str(),
                    dry_run,
                    allowed = true,
                    patch_ops = ops,
                    "admission"
                );
                let decision = if ops > 0 { "patched" } else { "allowed" };
                (encode(uid, response), Decision { kind: kind.kind(), operation: operation.as_str(), decision })
            }
            Webhook::Validate => {
                let mut findings = credential_core::rules::validate(&input, estate);
                if dry_run {
                    findings = credential_core::rules::lenient_for_dry_run(findings);
                }
                for f in &findings {
                    let severity = match f.severity {
                        Severity::Deny => "deny",
                        Severity::Warn => "warn",
                    };
                    self.metrics.findings.get_or_create(&FindingLabels { code: f.code.clone(), severity }).inc();
                }
                let allowed_now = !findings.iter().any(Finding::is_deny);
                // Field values are built only when the line is written (tracing checks the level first).
                log_decision!(
                    findings.is_empty(),
                    webhook = "validate",
                    uid,
                    user,
                    kind = kind_name,
                    namespace = ns_field,
                    name = &*name,
                    operation = operation.as_str(),
                    dry_run,
                    allowed = allowed_now,
                    findings = json_list(&findings.iter().map(|f| f.code.as_str()).collect::<Vec<_>>()).as_str(),
                    "admission"
                );
                let mut response = allowed();
                response.warnings = findings.iter().filter(|f| !f.is_deny()).map(warning_text).collect();
                if !allowed_now {
                    let denials: Vec<&Finding> = findings.iter().filter(|f| f.is_deny()).collect();
                    response.allowed = false;
                    response.status = Some(denial_status(operation, kind, &gvk.to_gvk(), &name, &denials));
                }
                let reply = encode(uid, response);
                let decision = if allowed_now { "allowed" } else { "denied" };
                if allowed_now
                    && !dry_run
                    && kind == ResourceKind::Credential
                    && matches!(operation, Operation::Create | Operation::Update | Operation::Delete)
                    && self.sink.enabled()
                {
                    let whole = |o: Option<&AdmittedObject<'_>>| o.map(|o| Arc::new(o.to_value()));
                    self.sink.admitted(AdmittedChange {
                        uid: uid.to_string(),
                        operation,
                        namespace: namespace.unwrap_or_default().to_string(),
                        name: name.into_owned(),
                        object: whole(objects.object.as_ref()),
                        old_object: whole(objects.old.as_ref()),
                    });
                }
                (reply, Decision { kind: kind.kind(), operation: operation.as_str(), decision })
            }
        }
    }
}

/// `request.name`, else the object's name, else its `generateName` (CREATE may carry only that).
fn request_name<'a>(req: &'a RequestIn<'_>, objects: &'a Objects<'_>) -> Cow<'a, str> {
    if let Some(n) = req.name.as_deref().filter(|s| !s.is_empty()) {
        return Cow::Borrowed(n);
    }
    let meta = objects.object.as_ref().or(objects.old.as_ref()).and_then(|o| o.at(&["metadata"]));
    let name = meta.and_then(|m| m.get("name").or_else(|| m.get("generateName"))).and_then(|n| n.as_str());
    name.unwrap_or_default()
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
        /// What `read_object` answers (Credentials, Regions, ClusterDeployments).
        objects: LiveRead,
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
        fn credentials_in_region(&self, region: &str) -> Vec<(String, String)> {
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
        fn read_object<'a>(&'a self, _: &'a Gvk, _: Option<&'a str>, _: &'a str) -> BoxFuture<'a, LiveRead> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let live = self.objects.clone();
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
        let estate = Arc::new(LiveEstate { base, live, reads: AtomicUsize::new(0), objects: LiveRead::Unavailable });
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
            objects: LiveRead::Unavailable,
        });
        let admission = Admission::new(estate.clone(), Arc::new(crate::sink::NoopSink), Arc::new(Metrics::new()));
        let reply = String::from_utf8(admission.review(Webhook::Validate, &create)).unwrap();
        assert!(reply.contains("RGN006") && estate.reads.load(Ordering::SeqCst) == 0, "{reply}");
    }

    fn review(kind: &str, op: &str, dry_run: bool, object: Option<Value>, old: Option<Value>) -> Vec<u8> {
        let meta = object.as_ref().or(old.as_ref()).map(|o| o["metadata"].clone()).unwrap_or_default();
        json!({"apiVersion": ADMISSION_API_VERSION, "kind": "AdmissionReview", "request": {
            "uid": "u2", "kind": {"group": "k0rdent.mirantis.com", "version": "v1beta1", "kind": kind},
            "name": meta["name"], "namespace": meta["namespace"], "operation": op, "dryRun": dry_run,
            "userInfo": {"username": "alice"}, "object": object, "oldObject": old}})
        .to_string()
        .into_bytes()
    }

    fn cred(ns: &str, name: &str, region: Option<&str>) -> Value {
        let mut c = json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Credential",
            "metadata": {"namespace": ns, "name": name},
            "spec": {"identityRef": {"apiVersion": "v1", "kind": "Secret", "name": "s", "namespace": ns}}});
        if let Some(r) = region {
            c["spec"]["region"] = json!(r);
        }
        c
    }

    fn region_obj(name: &str) -> Value {
        json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Region", "metadata": {"name": name},
               "spec": {"kubeConfig": {"name": "k", "key": "value"}}})
    }

    /// (reply, live reads made) for `body` on an estate holding `objects`, whose live object reads answer `live`.
    async fn decide_with(objects: Vec<Value>, live: LiveRead, body: &[u8], limiter: LiveReadLimiter) -> (Value, usize) {
        let mut base = MemoryEstate::new("kcm-system");
        for o in objects {
            base.insert(&Cluster::Management, o);
        }
        let estate =
            Arc::new(LiveEstate { base, live: LiveRead::Unavailable, reads: AtomicUsize::new(0), objects: live });
        let metrics = Arc::new(Metrics::new());
        let admission =
            Admission::with_limiter(estate.clone(), Arc::new(crate::sink::NoopSink), metrics, Arc::new(limiter));
        let reply: Value = serde_json::from_slice(&admission.review_async(Webhook::Validate, body).await).unwrap();
        (reply, estate.reads.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn dry_run_warns_for_a_missing_region_and_a_real_write_confirms_live() {
        let create = |dry| review("Credential", "CREATE", dry, Some(cred("kcm-system", "c", Some("r1"))), None);
        let lim = LiveReadLimiter::default;
        // Dry run: a warning naming the Region, allowed.
        let (reply, _) = decide_with(vec![], LiveRead::Absent, &create(true), lim()).await;
        assert_eq!(reply["response"]["allowed"], true, "{reply}");
        let warnings = reply["response"]["warnings"].to_string();
        assert!(warnings.contains("CRED004") && warnings.contains("dry run"), "{warnings}");
        // Real write, the Region absent live too: denied after one read.
        let (reply, reads) = decide_with(vec![], LiveRead::Absent, &create(false), lim()).await;
        assert_eq!(reply["response"]["allowed"], false, "{reply}");
        assert_eq!(reply["response"]["status"]["code"], 422);
        assert!(reply.to_string().contains("CRED004") && reads == 1, "{reply}");
        // Real write, the cache lags but the Region exists: allowed.
        let (reply, reads) = decide_with(vec![], LiveRead::Found(region_obj("r1")), &create(false), lim()).await;
        assert!(reply["response"]["allowed"] == true && reads == 1, "{reply}");
        // Cached: no read.
        let (reply, reads) = decide_with(vec![region_obj("r1")], LiveRead::Absent, &create(false), lim()).await;
        assert!(reply["response"]["allowed"] == true && reads == 0, "{reply}");
    }

    #[tokio::test]
    async fn cluster_deployment_of_a_credential_whose_region_is_missing_is_denied() {
        let mut c = cred("team", "c", Some("gone"));
        c["status"] = json!({"ready": true});
        let cd = json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "ClusterDeployment",
            "metadata": {"namespace": "team", "name": "cd"}, "spec": {"credential": "c", "template": "t"}});
        let body = review("ClusterDeployment", "CREATE", false, Some(cd.clone()), None);
        let (reply, reads) = decide_with(vec![c.clone()], LiveRead::Absent, &body, LiveReadLimiter::default()).await;
        assert_eq!(reply["response"]["allowed"], false, "{reply}");
        assert!(reply.to_string().contains("CD009") && reads == 1, "confirmed live: {reply}");
        // The Region exists live (the cache lags): allowed.
        let (reply, _) =
            decide_with(vec![c], LiveRead::Found(region_obj("gone")), &body, LiveReadLimiter::default()).await;
        assert_eq!(reply["response"]["allowed"], true, "{reply}");
    }

    #[tokio::test]
    async fn delete_denials_are_forbidden_and_name_the_users() {
        let cd = json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "ClusterDeployment",
            "metadata": {"namespace": "team", "name": "prod-1"}, "spec": {"credential": "c"}});
        let body = review("Credential", "DELETE", false, None, Some(cred("team", "c", None)));
        let (reply, _) = decide_with(vec![cd], LiveRead::Absent, &body, LiveReadLimiter::default()).await;
        let status = &reply["response"]["status"];
        assert_eq!(reply["response"]["allowed"], false, "{reply}");
        assert_eq!((status["code"].as_u64(), status["reason"].as_str()), (Some(403), Some("Forbidden")), "{status}");
        let message = status["message"].as_str().unwrap();
        assert!(
            message.starts_with("credentials.k0rdent.mirantis.com \"c\" is forbidden: [CRED016]")
                && message.contains("prod-1"),
            "{message}"
        );
        assert!(status["details"].get("causes").is_none(), "no empty-field causes: {status}");
        // A CREATE denial stays 422 Invalid with field causes.
        let body = review("Credential", "CREATE", false, Some(cred("team", "c", Some("nope"))), None);
        let (reply, _) = decide_with(vec![], LiveRead::Absent, &body, LiveReadLimiter::default()).await;
        let status = &reply["response"]["status"];
        assert_eq!((status["code"].as_u64(), status["reason"].as_str()), (Some(422), Some("Invalid")), "{status}");
        assert_eq!(status["details"]["causes"][0]["field"], "spec.region");
    }

    #[tokio::test]
    async fn live_reads_are_rate_limited_per_user_and_counted() {
        let body = review("Credential", "CREATE", false, Some(cred("kcm-system", "c", Some("r1"))), None);
        let mut base = MemoryEstate::new("kcm-system");
        base.insert(&Cluster::Management, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}));
        let estate = Arc::new(LiveEstate {
            base,
            live: LiveRead::Unavailable,
            reads: AtomicUsize::new(0),
            objects: LiveRead::Found(region_obj("r1")),
        });
        let metrics = Arc::new(Metrics::new());
        let limiter = Arc::new(LiveReadLimiter::new((1.0, 0.001), (100.0, 1.0), 8));
        let admission =
            Admission::with_limiter(estate.clone(), Arc::new(crate::sink::NoopSink), metrics.clone(), limiter);
        let answer = |b: Vec<u8>| serde_json::from_slice::<Value>(&b).unwrap()["response"]["allowed"].clone();
        assert_eq!(answer(admission.review_async(Webhook::Validate, &body).await), true, "first read confirms");
        // alice's burst is used up: no read, decided on the cache (the Region is not there: denied).
        assert_eq!(answer(admission.review_async(Webhook::Validate, &body).await), false);
        assert_eq!(estate.reads.load(Ordering::SeqCst), 1);
        let text = metrics.encode();
        assert!(text.contains(r#"credential_webhook_live_reads_total{kind="Region",outcome="refused"} 1"#), "{text}");
        assert!(text.contains(r#"credential_webhook_live_reads_total{kind="Region",outcome="found"} 1"#), "{text}");
    }

    #[test]
    fn nesting_is_measured_outside_strings() {
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert!(!nesting_may_exceed(&deep(126), 126) && nesting_may_exceed(&deep(127), 126));
        // Brackets inside strings (escaped quotes too) do not nest.
        let quoted = format!(r#"{{"a":"\"{}"}}"#, "[".repeat(300));
        assert!(!nesting_may_exceed(&quoted, 126));
        // Many brackets side by side are not deep.
        assert!(!nesting_may_exceed(&"[1],".repeat(300), 126));
    }

    #[test]
    fn lists_are_json_array_text() {
        assert_eq!(json_list(&["CRED004", "CRED010"]), r#"["CRED004","CRED010"]"#);
        assert_eq!(json_list(&[]), "[]");
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
