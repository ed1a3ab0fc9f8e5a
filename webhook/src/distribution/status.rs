//! State reported on the Credential: our own condition (server-side applied to the status
//! subresource with our field manager, so KCM's `CredentialReady` is never touched) and
//! Kubernetes Events through kube-runtime's `Recorder`. Only names appear here, never Secret
//! contents.

use credential_core::model::labels;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, Recorder, Reporter};
use serde_json::{Value, json};

use super::error::DistributionError;

/// Our condition as we want it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredCondition {
    pub ok: bool,
    pub reason: String,
    pub message: String,
}

/// Condition messages are capped well below the API's 32 KiB.
const MAX_MESSAGE: usize = 4096;

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// The condition entry to write, or `None` when the Credential already carries it.
pub fn condition_entry(credential: &Value, desired: &DesiredCondition) -> Option<Value> {
    let status = if desired.ok { "True" } else { "False" };
    let message = truncate(&desired.message, MAX_MESSAGE);
    let generation = credential.pointer("/metadata/generation").and_then(Value::as_i64);
    let current = credential.pointer("/status/conditions").and_then(Value::as_array).and_then(|cs| {
        cs.iter().find(|c| c.get("type").and_then(Value::as_str) == Some(labels::DISTRIBUTED_CONDITION))
    });
    let field = |c: &Value, k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
    if let Some(c) = current
        && field(c, "status").as_deref() == Some(status)
        && field(c, "reason").as_deref() == Some(desired.reason.as_str())
        && field(c, "message").as_deref() == Some(message.as_str())
        && c.get("observedGeneration").and_then(Value::as_i64) == generation
    {
        return None;
    }
    // The transition time moves only when the status does.
    let transition = current
        .filter(|c| field(c, "status").as_deref() == Some(status))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| serde_json::to_value(Time(now_seconds())).unwrap_or(Value::Null));
    let mut entry = json!({
        "type": labels::DISTRIBUTED_CONDITION,
        "status": status,
        "reason": desired.reason,
        "message": message,
        "lastTransitionTime": transition,
    });
    if let Some(g) = generation {
        entry["observedGeneration"] = json!(g);
    }
    Some(entry)
}

fn now_seconds() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

/// Applies our condition when it differs from what the Credential carries. Returns whether a
/// write happened.
pub async fn apply_condition(
    api: &Api<DynamicObject>,
    credential: &Value,
    desired: &DesiredCondition,
) -> Result<bool, DistributionError> {
    let Some(entry) = condition_entry(credential, desired) else { return Ok(false) };
    let name = credential.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let namespace = credential.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
    let body = json!({
        "apiVersion": credential_core::K0RDENT_API_VERSION,
        "kind": "Credential",
        "metadata": {"name": name, "namespace": namespace},
        "status": {"conditions": [entry]},
    });
    api.patch_status(name, &PatchParams::apply(labels::FIELD_MANAGER).force(), &Patch::Apply(&body)).await.map_err(
        |e| {
            DistributionError::api(
                format!("set condition {} on Credential {namespace}/{name}", labels::DISTRIBUTED_CONDITION),
                e,
            )
        },
    )?;
    Ok(true)
}

pub use kube::runtime::events::EventType;

/// Event notes are capped below the API's 1 KiB.
const MAX_NOTE: usize = 1000;

/// Where the distributor's Events come from: the controller name and this replica.
pub fn recorder(client: kube::Client, instance: &str) -> Recorder {
    let reporter = Reporter {
        controller: format!("{}/distribution", labels::FIELD_MANAGER),
        instance: Some(instance.to_string()),
    };
    Recorder::new(client, reporter)
}

/// The reference to a Credential an Event is about.
fn regarding(credential: &Value) -> ObjectReference {
    let meta = |f: &str| credential.pointer(&format!("/metadata/{f}")).and_then(Value::as_str).map(str::to_string);
    ObjectReference {
        api_version: Some(credential_core::K0RDENT_API_VERSION.to_string()),
        kind: Some("Credential".to_string()),
        name: meta("name"),
        namespace: meta("namespace"),
        uid: meta("uid"),
        ..ObjectReference::default()
    }
}

/// The reference to a copy (in the target cluster the note names) an Event is also about.
pub fn copy_reference(copy: &credential_core::identity::ObjectKey) -> ObjectReference {
    ObjectReference {
        api_version: Some(copy.gvk.api_version()),
        kind: Some(copy.gvk.kind.clone()),
        name: Some(copy.name.clone()),
        namespace: copy.namespace.clone(),
        ..ObjectReference::default()
    }
}

/// Publishes an events.k8s.io/v1 Event about a Credential through kube-runtime's [`Recorder`].
/// `related`: the object the Event is also about (a copy), which also keeps Events about
/// different copies apart: the Recorder counts a repeat of the same reason, action and objects
/// within minutes into the first Event's series. Failures are logged, never fatal: events are
/// best effort in Kubernetes.
pub async fn publish_event(
    recorder: &Recorder,
    credential: &Value,
    type_: EventType,
    reason: &str,
    action: &str,
    note: &str,
    related: Option<ObjectReference>,
) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(truncate(note, MAX_NOTE)),
        action: action.to_string(),
        secondary: related,
    };
    let about = regarding(credential);
    if let Err(e) = recorder.publish(&event, &about).await {
        let credential = format!("{}/{}", about.namespace.unwrap_or_default(), about.name.unwrap_or_default());
        tracing::debug!(%credential, %reason, error = %e, "event not recorded");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(ok: bool, reason: &str, message: &str) -> DesiredCondition {
        DesiredCondition { ok, reason: reason.into(), message: message.into() }
    }

    #[test]
    fn unchanged_condition_is_not_rewritten() {
        let cred = json!({"metadata": {"generation": 3}, "status": {"conditions": [
            {"type": "CredentialReady", "status": "True"},
            {"type": labels::DISTRIBUTED_CONDITION, "status": "True", "reason": "Distributed",
             "message": "m", "observedGeneration": 3, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        assert!(condition_entry(&cred, &desired(true, "Distributed", "m")).is_none());
        let changed = condition_entry(&cred, &desired(true, "Distributed", "m2")).unwrap();
        assert_eq!(changed["lastTransitionTime"], "2026-01-01T00:00:00Z", "same status keeps the transition time");
        let flipped = condition_entry(&cred, &desired(false, "ClusterUnreachable", "down")).unwrap();
        assert_eq!(flipped["status"], "False");
        assert_ne!(flipped["lastTransitionTime"], "2026-01-01T00:00:00Z");
        assert_eq!(flipped["observedGeneration"], 3);
        assert_eq!(flipped["type"], labels::DISTRIBUTED_CONDITION);
    }

    #[test]
    fn new_generation_rewrites_and_long_messages_are_capped() {
        let cred = json!({"metadata": {"generation": 4}, "status": {"conditions": [
            {"type": labels::DISTRIBUTED_CONDITION, "status": "True", "reason": "Distributed",
             "message": "m", "observedGeneration": 3}]}});
        assert!(condition_entry(&cred, &desired(true, "Distributed", "m")).is_some());
        let long = "é".repeat(10_000);
        let e = condition_entry(&json!({}), &desired(false, "X", &long)).unwrap();
        assert!(e["message"].as_str().unwrap().len() <= MAX_MESSAGE + 3);
        let t = e["lastTransitionTime"].as_str().unwrap();
        assert!(t.ends_with('Z') && !t.contains('.'), "metav1.Time has whole seconds: {t}");
    }
}
