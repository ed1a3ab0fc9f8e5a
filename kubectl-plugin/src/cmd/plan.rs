//! `kubectl credential plan NAME -n NS`: what cluster identity distribution would copy.

use std::io::Write;

use credential_core::identity::{self, ObjectKey, Plan, PlannedCopy};
use credential_core::{Cluster, Estate, Gvk};
use serde_json::Value;

use super::{Exit, credential_not_found, load_estate};
use crate::cli::{Output, PlanArgs};
use crate::error::CliError;
use crate::style::{Style, clean};

/// Placeholder for Secret values in JSON output: plans show what is copied, never the secrets.
const REDACTED: &str = "<redacted>";

pub fn run(args: &PlanArgs, style: Style, out: &mut dyn Write) -> Result<Exit, CliError> {
    let (estate, dir) = load_estate(&args.estate)?;
    let Some(cred) = estate.get(&Cluster::Management, &Gvk::credential(), Some(&args.namespace), &args.name) else {
        let available = estate
            .list(&Cluster::Management, &Gvk::credential(), Some(&args.namespace))
            .iter()
            .map(|c| credential_core::model::display_name(c))
            .collect::<Vec<_>>();
        return Err(credential_not_found(&args.name, &args.namespace, &dir, &available));
    };
    let plan = identity::plan(&cred, &estate);
    match args.output {
        Output::Json => {
            let mut value = serde_json::to_value(&plan)?;
            redact(&mut value);
            serde_json::to_writer_pretty(&mut *out, &value)?;
            writeln!(out)?;
        }
        Output::Text => out.write_all(render(&plan, style).as_bytes())?,
    }
    Ok(if plan.problems.is_empty() { Exit::Ok } else { Exit::Problems })
}

/// Replaces every value under `data`/`stringData` of planned objects.
fn redact(plan: &mut Value) {
    let Some(copies) = plan.get_mut("copies").and_then(Value::as_array_mut) else { return };
    for copy in copies {
        let Some(obj) = copy.get_mut("object").and_then(Value::as_object_mut) else { continue };
        for field in ["data", "stringData"] {
            if let Some(map) = obj.get_mut(field).and_then(Value::as_object_mut) {
                for v in map.values_mut() {
                    *v = Value::String(REDACTED.to_string());
                }
            }
        }
    }
}

fn key(k: &ObjectKey) -> String {
    clean(&match &k.namespace {
        Some(ns) => format!("{} {ns}/{}", k.gvk.kind, k.name),
        None => format!("{} {}", k.gvk.kind, k.name),
    })
}

fn cluster(c: &Cluster) -> String {
    match c {
        Cluster::Management => "management".to_string(),
        Cluster::Region(r) => r.clone(),
    }
}

pub fn render(plan: &Plan, style: Style) -> String {
    let mut s = String::new();
    let Some(target) = &plan.target_cluster else {
        s.push_str(&format!(
            "Credential {}: nothing to distribute (spec.region is not set and it is not an AccessManagement \
             copy)\n",
            plan.credential
        ));
        return s;
    };
    let pi = plan.provider_interface.as_deref().map(|p| format!(" (ProviderInterface {p})")).unwrap_or_default();
    let n = plan.copies.len();
    s.push_str(&format!(
        "{} -> {}{pi}: {n} object{} to copy\n",
        style.bold(&clean(&format!("Credential {}", plan.credential))),
        cluster(target),
        if n == 1 { "" } else { "s" }
    ));
    for (i, c) in plan.copies.iter().enumerate() {
        let missing = if c.object.is_none() { style.red("  (source missing)") } else { String::new() };
        let target_text = if c.target == c.source {
            format!("{} (same namespace/name)", cluster(target))
        } else {
            format!("{} {}", cluster(target), key(&c.target))
        };
        s.push_str(&format!("  {}. {} -> {target_text}{}{missing}\n", i + 1, key(&c.source), style.dim(&via(c))));
    }
    if !plan.in_place.is_empty() {
        s.push_str("Already in place (not copied):\n");
        for c in &plan.in_place {
            s.push_str(&format!("  - {}{}\n", key(&c.source), style.dim(&via(c))));
        }
    }
    if !plan.problems.is_empty() {
        s.push_str(&format!("{}\n", style.bold("Problems:")));
        for m in plan.problem_messages() {
            s.push_str(&format!("  - {}\n", clean(&m)));
        }
    }
    s
}

fn via(c: &PlannedCopy) -> String {
    c.via
        .as_ref()
        .map(|v| format!("  via {} of {}", clean(&v.name_field_path), key(&v.parent)))
        .unwrap_or_else(|| "  (the identity)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redaction_replaces_every_secret_value() {
        let mut v = json!({"copies": [
            {"object": {"kind": "Secret", "data": {"a": "c2VjcmV0"}, "stringData": {"b": "secret"}}},
            {"object": null}
        ]});
        redact(&mut v);
        let text = v.to_string();
        assert!(!text.contains("c2VjcmV0") && !text.contains("\"secret\""), "{text}");
        assert_eq!(v["copies"][0]["object"]["data"]["a"], REDACTED);
    }
}
