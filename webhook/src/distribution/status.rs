//! State reported on the Credential: our own condition (server-side applied to the status
//! subresource with our field manager, so KCM's `CredentialReady` is never touched) and
//! Kubernetes Events. Only names appear here, never Secret contents.

use credential_core::model::labels;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
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

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// Publishes an events.k8s.io/v1 Event about a Credential. Failures are logged, never fatal:
/// events are best effort in Kubernetes.
pub async fn publish_event(
    client: &kube::Client,
    reporter_instance: &str,
    credential: &Value,
    type_: EventType,
    reason: &str,
    action: &str,
    note: &str,
) {
    let name = credential.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let namespace = credential.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
    let now = Timestamp::now();
    // Event names are object names: keep them under 253 characters whatever the Credential's.
    let prefix: String = name.chars().take(200).collect();
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!("{prefix}.{:x}", now.as_nanosecond())),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(now)),
        action: Some(action.to_string()),
        reason: Some(reason.to_string()),
        note: Some(truncate(note, 1000)),
        type_: Some(match type_ {
            EventType::Normal => "Normal".to_string(),
            EventType::Warning => "Warning".to_string(),
        }),
        reporting_controller: Some(format!("{}/distribution", labels::FIELD_MANAGER)),
        reporting_instance: Some(reporter_instance.to_string()),
        regarding: Some(ObjectReference {
            api_version: Some(credential_core::K0RDENT_API_VERSION.to_string()),
            kind: Some("Credential".to_string()),
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            uid: credential.pointer("/metadata/uid").and_then(Value::as_str).map(str::to_string),
            ..ObjectReference::default()
        }),
        ..Event::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        tracing::debug!(credential = %format!("{namespace}/{name}"), %reason, error = %e, "event not recorded");
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
