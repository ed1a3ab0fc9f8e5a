//! Prometheus metrics of the distributor. The handles are cheap clones sharing one value, so
//! [`DistributionMetrics::register`] can put them into the server's registry at any time.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label set of the failure counter: a stable reason (the condition reason).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// Label set of the mode gauge: `trigger`, `write` or `off`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabel {
    pub mode: String,
}

/// Label set of the drift counter: the copied object's kind.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Debug, Clone)]
pub struct DistributionMetrics {
    /// 1 for the distribution mode in force, 0 for the others.
    pub mode: Family<ModeLabel, Gauge>,
    /// Trigger mode: Credentials annotated so that KCM reconciles them now.
    pub triggers: Counter,
    /// Trigger mode: seconds from a source change being seen to the Credential's trigger.
    pub trigger_delay_seconds: Histogram,
    /// Trigger mode: seconds from a trigger to every copy of the Credential verified in sync.
    pub sync_after_trigger_seconds: Histogram,
    /// Trigger mode: copies found differing from their sources, by kind (counted when the
    /// Credential's verdict changes to Drifted).
    pub drift: Family<KindLabel, Counter>,
    /// Credentials handed over from write mode: our finalizer and copies record removed (to KCM in
    /// trigger mode, to the orphaned-copies record in off mode).
    pub handovers: Counter,
    /// Credentials waiting in the controller's queue (triggered, or a retry scheduled).
    pub queue_depth: Gauge,
    /// Seconds one Credential's convergence took (successful or not).
    pub convergence_seconds: Histogram,
    /// Copies written (created or changed) in a target cluster.
    pub copies_applied: Counter,
    /// Objects left untouched because they exist in the target without our managed marker.
    pub conflicts: Counter,
    /// Failed convergences, by reason.
    pub failures: Family<ReasonLabel, Counter>,
    /// Copies deleted because no Credential owns them any more.
    pub copies_deleted: Counter,
    /// Metadata watches on source objects the API server refuses (403): changes there are
    /// noticed only at the resync until RBAC grants list/watch.
    pub forbidden_watches: Gauge,
    /// Releases given up after the release timeout (or with the Region gone): the finalizer was
    /// removed and copies may remain (recorded in the orphaned-copies ConfigMap).
    pub releases_abandoned: Counter,
}

impl Default for DistributionMetrics {
    fn default() -> Self {
        let mode: Family<ModeLabel, Gauge> = Family::default();
        for m in credential_core::distribution::Mode::ALL {
            mode.get_or_create(&ModeLabel { mode: m.as_str().to_string() }).set(0);
        }
        DistributionMetrics {
            mode,
            triggers: Counter::default(),
            // 1 ms .. ~16 s
            trigger_delay_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            // 10 ms .. ~160 s
            sync_after_trigger_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 15)),
            drift: Family::default(),
            handovers: Counter::default(),
            queue_depth: Gauge::default(),
            // 1 ms .. ~16 s
            convergence_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            copies_applied: Counter::default(),
            conflicts: Counter::default(),
            failures: Family::default(),
            copies_deleted: Counter::default(),
            forbidden_watches: Gauge::default(),
            releases_abandoned: Counter::default(),
        }
    }
}

impl DistributionMetrics {
    /// Registers every metric under the `distribution_` prefix (inside the webhook's registry:
    /// `credential_webhook_distribution_*`).
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("distribution");
        sub.register("mode", "1 for the distribution mode in force (trigger, write or off)", self.mode.clone());
        sub.register(
            "triggers",
            "Credentials annotated so that KCM copies their identities now",
            self.triggers.clone(),
        );
        sub.register(
            "trigger_delay_seconds",
            "Time from a source identity or Secret change to the Credential's trigger",
            self.trigger_delay_seconds.clone(),
        );
        sub.register(
            "sync_after_trigger_seconds",
            "Time from a trigger to every copy verified in sync with its source",
            self.sync_after_trigger_seconds.clone(),
        );
        sub.register("drift", "Copies found differing from their sources, by kind", self.drift.clone());
        sub.register(
            "handovers",
            "Credentials released from write mode (finalizer and copies record removed)",
            self.handovers.clone(),
        );
        sub.register("queue_depth", "Credentials waiting in the distribution queue", self.queue_depth.clone());
        sub.register(
            "convergence_seconds",
            "Time to converge one Credential's cluster identities",
            self.convergence_seconds.clone(),
        );
        sub.register("copies_applied", "Copies created or updated in a target cluster", self.copies_applied.clone());
        sub.register(
            "conflicts",
            "Objects not written because they exist in the target without the managed label",
            self.conflicts.clone(),
        );
        sub.register("failures", "Failed Credential convergences by reason", self.failures.clone());
        sub.register(
            "copies_deleted",
            "Copies deleted after their last owner released them",
            self.copies_deleted.clone(),
        );
        sub.register(
            "forbidden_watches",
            "Source watches refused with 403 (changes there are noticed only at the resync)",
            self.forbidden_watches.clone(),
        );
        sub.register(
            "releases_abandoned",
            "Deleting Credentials let go after the release timeout or with their Region gone (copies may remain)",
            self.releases_abandoned.clone(),
        );
    }

    /// (count, sum in seconds) of the convergence histogram, for benchmark reports.
    pub fn convergence_totals(&self) -> (f64, f64) {
        let mut reg = Registry::default();
        reg.register("c", "", self.convergence_seconds.clone());
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &reg).is_err() {
            return (0.0, 0.0);
        }
        let stat = |name: &str| {
            text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(0.0)
        };
        (stat("c_count "), stat("c_sum "))
    }

    /// Sets the mode gauge: 1 for `mode`, 0 for the others.
    pub fn set_mode(&self, mode: credential_core::distribution::Mode) {
        for m in credential_core::distribution::Mode::ALL {
            self.mode.get_or_create(&ModeLabel { mode: m.as_str().to_string() }).set(i64::from(m == mode));
        }
    }

    pub(crate) fn drifted(&self, kind: &str) {
        self.drift.get_or_create(&KindLabel { kind: kind.to_string() }).inc();
    }

    pub(crate) fn failed(&self, reason: &str) {
        self.failures.get_or_create(&ReasonLabel { reason: reason.to_string() }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_and_encodes_every_metric() {
        let m = DistributionMetrics::default();
        let mut reg = Registry::default();
        m.register(&mut reg);
        m.copies_applied.inc();
        m.failed("ClusterUnreachable");
        m.convergence_seconds.observe(0.01);
        m.queue_depth.set(3);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        assert!(out.contains("distribution_copies_applied_total 1"), "{out}");
        assert!(out.contains("distribution_failures_total{reason=\"ClusterUnreachable\"} 1"), "{out}");
        assert!(out.contains("distribution_queue_depth 3"), "{out}");
        assert!(out.contains("distribution_convergence_seconds_count 1"), "{out}");
        assert!(out.contains("distribution_conflicts_total 0"), "{out}");
        assert!(out.contains("distribution_mode{mode=\"trigger\"} 0"), "every mode is a series from the start: {out}");
        m.set_mode(credential_core::distribution::Mode::Trigger);
        m.drifted("Secret");
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        assert!(out.contains("distribution_mode{mode=\"trigger\"} 1"), "{out}");
        assert!(out.contains("distribution_mode{mode=\"write\"} 0"), "{out}");
        assert!(out.contains("distribution_drift_total{kind=\"Secret\"} 1"), "{out}");
        m.convergence_seconds.observe(0.03);
        let (count, sum) = m.convergence_totals();
        assert_eq!(count, 2.0);
        assert!((sum - 0.04).abs() < 1e-9, "{sum}");
    }
}
