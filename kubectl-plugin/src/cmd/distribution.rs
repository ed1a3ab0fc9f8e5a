//! What `explain`, `plan`, `wait` and `orphans` show about distribution beyond the readiness
//! checks: the mode in force (published by the webhook's distribution leader on its Lease, or,
//! when that cannot be read, what `auto` would choose from KCM's Management and Release), the
//! Credential's Warning Events, and the records of orphaned copies. Read from the estate, so live
//! and `--from` mode answer alike (live mode puts these objects into the estate, see
//! [`super::live`], its side objects).

use std::collections::BTreeMap;

use credential_core::distribution::{
    self, DISTRIBUTION_LEASE, Decision, KcmDetection, MANAGEMENT_NAME, Mode, ModeSetting, ORPHANED_COPIES, OrphanRecord,
};
use credential_core::model::labels;
use credential_core::readiness::{ObjectRef, Source};
use credential_core::{Cluster, Estate, Gvk};
use serde::Serialize;
use serde_json::Value;

pub fn lease_gvk() -> Gvk {
    Gvk::new("coordination.k8s.io", "v1", "Lease")
}

pub fn configmap_gvk() -> Gvk {
    Gvk::new("", "v1", "ConfigMap")
}

pub fn event_gvk() -> Gvk {
    Gvk::new("", "v1", "Event")
}

pub fn management_gvk() -> Gvk {
    Gvk::k0rdent("Management")
}

pub fn release_gvk() -> Gvk {
    Gvk::k0rdent("Release")
}

/// Keys of [`super::Loaded::side_errors`]: what could not be read, for the rows that need it.
pub const LEASE_READ: &str = "lease";
pub const ORPHANS_READ: &str = "orphans";
pub const EVENTS_READ: &str = "events";
pub const KCM_READ: &str = "kcm";

/// The mode published on the Lease, or why the Lease does not tell it.
pub fn lease_mode(lease: &Value) -> Result<(Mode, String), String> {
    let annotations = lease.pointer("/metadata/annotations");
    let get = |k: &str| annotations.and_then(|a| a.get(k)).and_then(Value::as_str);
    let Some(value) = get(labels::MODE_ANNOTATION) else {
        return Err(format!("it has no annotation {}", labels::MODE_ANNOTATION));
    };
    match value.parse::<ModeSetting>() {
        Ok(ModeSetting::Fixed(mode)) => Ok((mode, get(labels::MODE_REASON_ANNOTATION).unwrap_or_default().to_string())),
        _ => Err(format!("its annotation {} holds {value:?}, not trigger, write or off", labels::MODE_ANNOTATION)),
    }
}

/// The distribution mode as far as it can be told from here.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModeView {
    /// The mode in force; `None` when the webhook's Lease does not tell it.
    pub mode: Option<Mode>,
    /// The leader's sentence (why this mode), or why the mode is unknown.
    pub reason: String,
    /// Who copies the cluster identities and when (`None` when the mode is unknown).
    pub who_copies: Option<&'static str>,
    /// The Lease the mode is published on.
    pub lease: ObjectRef,
    /// When the mode is unknown: what `auto` would choose from what KCM publishes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_would_choose: Option<Decision>,
}

impl ModeView {
    /// One line: `trigger`, or `unknown (auto would choose write)`.
    pub fn headline(&self) -> String {
        match (&self.mode, &self.auto_would_choose) {
            (Some(m), _) => m.to_string(),
            (None, Some(d)) => format!("unknown (auto would choose {})", d.mode),
            (None, None) => "unknown".to_string(),
        }
    }
}

/// Reads the mode from the Lease in `webhook_ns`; when it does not tell, detects KCM as `auto` does.
pub fn mode(
    estate: &dyn Estate,
    webhook_ns: &str,
    side_errors: &BTreeMap<String, String>,
    source: &Source,
) -> ModeView {
    let mgmt = Cluster::Management;
    let lease_ref = ObjectRef::new(&lease_gvk(), Some(webhook_ns), DISTRIBUTION_LEASE, &mgmt);
    let where_ = format!("Lease {webhook_ns}/{DISTRIBUTION_LEASE}");
    let why = match estate.get(&mgmt, &lease_gvk(), Some(webhook_ns), DISTRIBUTION_LEASE) {
        Some(lease) => match lease_mode(&lease) {
            Ok((mode, reason)) => {
                return ModeView {
                    mode: Some(mode),
                    reason,
                    who_copies: Some(mode.who_copies()),
                    lease: lease_ref,
                    auto_would_choose: None,
                };
            }
            Err(e) => format!("{where_} does not tell the mode: {e}"),
        },
        None => match (side_errors.get(LEASE_READ), source) {
            (Some(e), _) => format!("cannot read {where_}: {e}"),
            (None, Source::Files { dir }) => format!("{where_} is not in the files under {dir}"),
            (None, Source::Live) => format!(
                "{where_} does not exist: credential-guard's distribution is not running there (another namespace: \
                 --webhook-namespace)"
            ),
        },
    };
    let kcm = match side_errors.get(KCM_READ) {
        Some(e) => KcmDetection::Unknown { reason: format!("cannot read Management {MANAGEMENT_NAME}: {e}") },
        None => {
            let management = estate.get(&mgmt, &management_gvk(), None, MANAGEMENT_NAME);
            let release = management
                .as_deref()
                .and_then(distribution::release_name)
                .and_then(|name| estate.get(&mgmt, &release_gvk(), None, name));
            distribution::detect_kcm(management.as_deref(), release.as_deref())
        }
    };
    ModeView {
        mode: None,
        reason: why,
        who_copies: None,
        lease: lease_ref,
        auto_would_choose: distribution::decide(ModeSetting::Auto, &kcm, false).ok(),
    }
}

/// The records of [`ORPHANED_COPIES`] in `webhook_ns`, and the entries that are not records.
pub fn orphans(estate: &dyn Estate, webhook_ns: &str) -> (Vec<OrphanRecord>, Vec<String>) {
    let Some(cm) = estate.get(&Cluster::Management, &configmap_gvk(), Some(webhook_ns), ORPHANED_COPIES) else {
        return (Vec::new(), Vec::new());
    };
    let Some(data) = cm.get("data").and_then(Value::as_object) else { return (Vec::new(), Vec::new()) };
    let mut records = Vec::new();
    let mut broken = Vec::new();
    for r in distribution::orphan_records(data) {
        match r {
            Ok((_, rec)) => records.push(rec),
            Err((_, why)) => broken.push(why),
        }
    }
    (records, broken)
}

/// One Warning Event of a Credential, as `kubectl describe` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub reason: String,
    pub message: String,
    pub count: u64,
    /// The last time it was seen (lastTimestamp, eventTime or creationTimestamp).
    pub last_seen: String,
}

/// How many Warning Events explain shows.
pub const EVENTS_SHOWN: usize = 5;

/// The last Warning Events of the Credential `namespace/name`, oldest first.
pub fn warning_events(estate: &dyn Estate, namespace: &str, name: &str) -> Vec<EventView> {
    let mut events: Vec<EventView> = estate
        .list(&Cluster::Management, &event_gvk(), Some(namespace))
        .iter()
        .filter(|e| e.get("type").and_then(Value::as_str) == Some("Warning"))
        .filter(|e| {
            let io = |f: &str| e.pointer(&format!("/involvedObject/{f}")).and_then(Value::as_str);
            io("kind") == Some("Credential") && io("name") == Some(name)
        })
        .map(|e| {
            let s = |p: &str| e.pointer(p).and_then(Value::as_str).filter(|s| !s.is_empty());
            EventView {
                reason: s("/reason").unwrap_or_default().to_string(),
                message: s("/message").unwrap_or_default().to_string(),
                count: e.get("count").and_then(Value::as_u64).unwrap_or(1),
                last_seen: s("/lastTimestamp")
                    .or_else(|| s("/eventTime"))
                    .or_else(|| s("/metadata/creationTimestamp"))
                    .unwrap_or_default()
                    .to_string(),
            }
        })
        .collect();
    // RFC 3339 timestamps in UTC sort as text.
    events.sort_by(|a, b| a.last_seen.cmp(&b.last_seen));
    let skip = events.len().saturating_sub(EVENTS_SHOWN);
    events.split_off(skip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use credential_core::MemoryEstate;
    use serde_json::json;

    fn estate(objects: Vec<Value>) -> MemoryEstate {
        let mut e = MemoryEstate::new("kcm-system");
        for o in objects {
            e.insert(&Cluster::Management, o);
        }
        e
    }

    fn lease(annotations: Value) -> Value {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": DISTRIBUTION_LEASE, "namespace": "kcm-system", "annotations": annotations}})
    }

    #[test]
    fn the_published_mode_wins_and_auto_is_shown_only_when_it_is_unknown() {
        let published = estate(vec![lease(json!({labels::MODE_ANNOTATION: "trigger",
            labels::MODE_REASON_ANNOTATION: "auto: KCM 1.5.0 copies"}))]);
        let v = mode(&published, "kcm-system", &BTreeMap::new(), &Source::Live);
        assert_eq!((v.mode, v.reason.as_str()), (Some(Mode::Trigger), "auto: KCM 1.5.0 copies"));
        assert!(v.auto_would_choose.is_none());

        let management = json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Management",
            "metadata": {"name": "kcm"}, "spec": {"release": "kcm-1-4-0"}});
        let v = mode(&estate(vec![management.clone()]), "kcm-system", &BTreeMap::new(), &Source::Live);
        assert_eq!(v.mode, None);
        assert!(v.reason.contains("does not exist"), "{}", v.reason);
        assert_eq!(v.auto_would_choose.as_ref().map(|d| d.mode), Some(Mode::Write));
        assert_eq!(v.headline(), "unknown (auto would choose write)");

        let odd = estate(vec![lease(json!({labels::MODE_ANNOTATION: "sometimes"})), management]);
        let v = mode(&odd, "kcm-system", &BTreeMap::new(), &Source::Live);
        assert!(v.mode.is_none() && v.reason.contains("\"sometimes\""), "{}", v.reason);
        let forbidden = BTreeMap::from([(LEASE_READ.to_string(), "forbidden (Forbidden, 403)".to_string())]);
        let v = mode(&estate(vec![]), "kcm-system", &forbidden, &Source::Live);
        assert!(v.reason.starts_with("cannot read Lease kcm-system/credential-guard-distribution: forbidden"));
    }

    #[test]
    fn only_the_last_warning_events_of_the_credential_are_kept() {
        let event = |n: usize, kind: &str, name: &str, ty: &str| {
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": format!("e{n}"), "namespace": "ns"},
                "involvedObject": {"kind": kind, "name": name}, "type": ty, "reason": format!("R{n}"),
                "message": "m", "lastTimestamp": format!("2030-01-01T00:00:{n:02}Z")})
        };
        let mut objects: Vec<Value> = (0..8).map(|n| event(n, "Credential", "c", "Warning")).collect();
        objects.push(event(20, "Credential", "c", "Normal"));
        objects.push(event(21, "Credential", "other", "Warning"));
        objects.push(event(22, "Region", "c", "Warning"));
        let got = warning_events(&estate(objects), "ns", "c");
        let reasons: Vec<&str> = got.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, ["R3", "R4", "R5", "R6", "R7"]);
    }
}
