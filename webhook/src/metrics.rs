//! Prometheus metrics (prometheus-client, no global registry) served on the admin listener.

use std::sync::{Mutex, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Prefix of every metric name.
pub const PREFIX: &str = "credential_webhook";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `validate` or `mutate`.
    pub webhook: &'static str,
    /// The admitted kind (`Credential`, ...), `other` for kinds we do not handle, `unknown` when the
    /// review could not be read.
    pub kind: &'static str,
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT` or `unknown`.
    pub operation: &'static str,
    /// `allowed`, `denied`, `patched`, `ignored` (kind we do not handle) or `malformed`.
    pub decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub webhook: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabels {
    pub code: String,
    /// `deny` or `warn`.
    pub severity: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `management` or the Region name.
    pub cluster: String,
    /// The cached resource (`credentials`, `regions`, ...).
    pub resource: String,
}

/// Every metric of the webhook. Cheap to share behind an `Arc`.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<WebhookLabels, Histogram>,
    /// Handles into `requests` and `duration`, resolved once (see [`Metrics::count_request`]).
    hot: HotHandles,
    pub findings: Family<FindingLabels, Counter>,
    pub cache_synced: Family<CacheLabels, Gauge>,
    pub tls_not_after: Gauge<i64>,
    pub tls_reloads: Counter,
    pub tls_reload_failures: Counter,
    pub in_flight: Gauge<i64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "admission_requests",
            "AdmissionReviews answered, by webhook, kind, operation and decision",
            requests.clone(),
        );
        // 50 us .. ~1.6 s: decisions are in-memory, so the interesting range is sub-millisecond.
        let duration = Family::<WebhookLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
        });
        registry.register_with_unit(
            "admission_duration",
            "Time from the full request body to the reply, per webhook",
            prometheus_client::registry::Unit::Seconds,
            duration.clone(),
        );
        let findings = Family::<FindingLabels, Counter>::default();
        registry.register(
            "findings",
            "Rule findings reported in admission replies, by code and severity",
            findings.clone(),
        );
        let cache_synced = Family::<CacheLabels, Gauge>::default();
        registry.register(
            "cache_synced",
            "1 when the cache of a resource in a cluster finished its initial list, else 0",
            cache_synced.clone(),
        );
        let tls_not_after = Gauge::<i64>::default();
        registry.register(
            "tls_certificate_not_after_seconds",
            "Expiry (notAfter, Unix seconds) of the serving certificate in use",
            tls_not_after.clone(),
        );
        let tls_reloads = Counter::default();
        registry.register(
            "tls_reloads",
            "Serving certificate pairs loaded after a change on disk",
            tls_reloads.clone(),
        );
        let tls_reload_failures = Counter::default();
        registry.register(
            "tls_reload_failures",
            "Changed certificate pairs that failed to load (the previous pair stays in use)",
            tls_reload_failures.clone(),
        );
        let in_flight = Gauge::<i64>::default();
        registry.register("admission_in_flight", "Admission requests being handled now", in_flight.clone());
        let metrics = Metrics {
            registry: Mutex::new(registry),
            hot: HotHandles::new(&duration),
            requests,
            duration,
            findings,
            cache_synced,
            tls_not_after,
            tls_reloads,
            tls_reload_failures,
            in_flight,
        };
        metrics.zero_admission_series();
        metrics
    }

    /// Creates every admission series the registered webhooks can produce at 0, so the exposition
    /// holds them before the first request: `rate()`/`increase()` then see the first denial as a
    /// step from 0 (a series born at 1 is invisible to them) and dashboards have lines to draw.
    /// Rare outcomes (`ignored`, kinds we do not handle) are still created on first use.
    fn zero_admission_series(&self) {
        for labels in admission_series() {
            let _ = self.requests.get_or_create(&labels);
        }
        for webhook in ["validate", "mutate"] {
            let _ = self.duration.get_or_create(&WebhookLabels { webhook });
        }
    }

    /// Counts one answered AdmissionReview and its duration. A label set seen before costs two
    /// atomic updates: its counter handle is kept, not looked up again (hashing the labels under the
    /// family's lock each time cost more than the count).
    pub fn count_request(&self, labels: &RequestLabels, seconds: f64) {
        match self.hot.slot(labels) {
            Some(slot) => slot.get_or_init(|| self.requests.get_or_create(labels).clone()).inc(),
            None => self.requests.get_or_create(labels).inc(),
        };
        match labels.webhook {
            "validate" => self.hot.validate.observe(seconds),
            "mutate" => self.hot.mutate.observe(seconds),
            webhook => self.duration.get_or_create(&WebhookLabels { webhook }).observe(seconds),
        }
    }

    /// Sets the sync gauge of one cached resource.
    pub fn set_cache_synced(&self, cluster: &str, resource: &str, synced: bool) {
        self.cache_synced
            .get_or_create(&CacheLabels { cluster: cluster.to_string(), resource: resource.to_string() })
            .set(i64::from(synced));
    }

    /// Drops the sync gauges of a cluster that is no longer watched.
    pub fn forget_cluster(&self, cluster: &str, resources: &[&str]) {
        for r in resources {
            self.cache_synced.remove(&CacheLabels { cluster: cluster.to_string(), resource: (*r).to_string() });
        }
    }

    /// Registers further metrics (e.g. distribution's) into the served registry.
    pub fn register_with(&self, f: impl FnOnce(&mut Registry)) {
        f(&mut self.registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}

const HOT_WEBHOOKS: [&str; 2] = ["validate", "mutate"];
const HOT_KINDS: [&str; 6] = ["Credential", "Region", "ProviderInterface", "ClusterDeployment", "other", "unknown"];
const HOT_OPERATIONS: [&str; 5] = ["CREATE", "UPDATE", "DELETE", "CONNECT", "unknown"];
const HOT_DECISIONS: [&str; 6] = ["allowed", "denied", "patched", "ignored", "malformed", "unavailable"];

/// Counter handles by label set, filled on first use (so the exposition still shows only the series
/// that exist), and the two duration histograms.
struct HotHandles {
    requests: Box<[OnceLock<Counter>]>,
    validate: Histogram,
    mutate: Histogram,
}

impl HotHandles {
    fn new(duration: &Family<WebhookLabels, Histogram>) -> Self {
        let n = HOT_WEBHOOKS.len() * HOT_KINDS.len() * HOT_OPERATIONS.len() * HOT_DECISIONS.len();
        // One statement each: the family's read guard must be gone before the next get_or_create,
        // which may take the write lock.
        let validate = duration.get_or_create(&WebhookLabels { webhook: "validate" }).clone();
        let mutate = duration.get_or_create(&WebhookLabels { webhook: "mutate" }).clone();
        HotHandles { requests: (0..n).map(|_| OnceLock::new()).collect(), validate, mutate }
    }

    fn slot(&self, l: &RequestLabels) -> Option<&OnceLock<Counter>> {
        let at = |all: &[&str], v: &str| all.iter().position(|x| *x == v);
        let i = at(&HOT_WEBHOOKS, l.webhook)?;
        let i = i * HOT_KINDS.len() + at(&HOT_KINDS, l.kind)?;
        let i = i * HOT_OPERATIONS.len() + at(&HOT_OPERATIONS, l.operation)?;
        let i = i * HOT_DECISIONS.len() + at(&HOT_DECISIONS, l.decision)?;
        self.requests.get(i)
    }
}

/// The operations the shipped ValidatingWebhookConfiguration sends (deploy/base/webhooks.yaml).
pub const VALIDATED_OPERATIONS: [&str; 3] = ["CREATE", "UPDATE", "DELETE"];
/// The operations the shipped MutatingWebhookConfiguration sends, for Credentials only.
pub const MUTATED_OPERATIONS: [&str; 2] = ["CREATE", "UPDATE"];

/// Every (webhook, kind, operation, decision) a request through the shipped webhook
/// configurations can be counted under, plus the `malformed` series of each webhook.
pub fn admission_series() -> Vec<RequestLabels> {
    let mut out = Vec::new();
    for kind in credential_core::ResourceKind::ALL {
        for operation in VALIDATED_OPERATIONS {
            for decision in ["allowed", "denied", "unavailable"] {
                out.push(RequestLabels { webhook: "validate", kind: kind.kind(), operation, decision });
            }
        }
    }
    let credential = credential_core::ResourceKind::Credential.kind();
    for operation in MUTATED_OPERATIONS {
        for decision in ["allowed", "patched", "unavailable"] {
            out.push(RequestLabels { webhook: "mutate", kind: credential, operation, decision });
        }
    }
    for webhook in ["validate", "mutate"] {
        out.push(RequestLabels { webhook, kind: "unknown", operation: "unknown", decision: "malformed" });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_names_with_prefix_and_labels() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                webhook: "validate",
                kind: "Credential",
                operation: "CREATE",
                decision: "denied",
            })
            .inc();
        m.findings.get_or_create(&FindingLabels { code: "CRED002".into(), severity: "deny" }).inc();
        m.tls_not_after.set(1_900_000_000);
        m.duration.get_or_create(&WebhookLabels { webhook: "validate" }).observe(0.0003);
        m.set_cache_synced("management", "credentials", true);
        let text = m.encode();
        assert!(text.contains(
            "credential_webhook_admission_requests_total{webhook=\"validate\",kind=\"Credential\",operation=\"CREATE\",decision=\"denied\"} 1"
        ), "{text}");
        assert!(text.contains("credential_webhook_findings_total{code=\"CRED002\",severity=\"deny\"} 1"), "{text}");
        assert!(text.contains("credential_webhook_tls_certificate_not_after_seconds 1900000000"), "{text}");
        assert!(text.contains("credential_webhook_cache_synced{cluster=\"management\",resource=\"credentials\"} 1"));
        assert!(text.contains("# TYPE credential_webhook_admission_duration_seconds histogram"), "{text}");
        assert!(text.contains("credential_webhook_admission_duration_seconds_count{webhook=\"validate\"} 1"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn admission_series_exist_at_zero_before_any_request() {
        let text = Metrics::new().encode();
        let series = admission_series();
        // 4 kinds x 3 operations x 3 decisions + 2 x 3 mutate + 2 malformed.
        assert_eq!(series.len(), 44);
        for l in &series {
            let sample = format!(
                "credential_webhook_admission_requests_total{{webhook=\"{}\",kind=\"{}\",operation=\"{}\",decision=\"{}\"}} 0\n",
                l.webhook, l.kind, l.operation, l.decision
            );
            assert!(text.contains(&sample), "missing {sample}in\n{text}");
        }
        assert!(text.contains("credential_webhook_admission_duration_seconds_count{webhook=\"mutate\"} 0"), "{text}");
    }
}
