//! `kubectl credential lint -f PATH...`: the webhook's admission rules, offline.
//!
//! Every k0rdent object in the files is checked as a CREATE against the estate the files form
//! (minus the object itself, which does not exist yet when it is created), so a Credential and
//! the Region it names can be linted together.

use std::io::Write;

use credential_core::estate::{LoadOptions, LoadWarning, load_files_with_report};
use credential_core::finding::{Finding, Severity};
use credential_core::{AdmissionInput, Cluster, Estate, Gvk, Operation, ResourceKind};
use serde::Serialize;
use serde_json::Value;

use super::Exit;
use crate::cli::{LintArgs, Output};
use crate::error::CliError;
use crate::style::{Style, clean};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

#[derive(Debug, Serialize)]
pub struct LintFinding {
    pub code: String,
    pub severity: Severity,
    pub object: ObjectRef,
    pub field: String,
    pub message: String,
    pub hint: String,
}

#[derive(Debug, Serialize)]
pub struct LintReport {
    pub findings: Vec<LintFinding>,
    /// Objects the rules ran on (not in the JSON contract: text summary only).
    #[serde(skip)]
    pub checked: usize,
}

pub fn run(args: &LintArgs, style: Style, out: &mut dyn Write) -> Result<Exit, CliError> {
    let opts = LoadOptions { system_namespace: args.system_namespace.clone(), ..LoadOptions::default() };
    let (mut estate, load) = load_files_with_report(&args.files, &opts)?;
    // Manifests rarely carry CRDs, so "served-checks skipped" would be noise on every lint.
    for w in load.warnings.iter().filter(|w| !matches!(w, LoadWarning::NoCrds { .. })) {
        eprintln!("warning: {w}");
    }
    let report = lint(&mut estate);
    match args.output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)?;
        }
        Output::Text => out.write_all(render(&report, style).as_bytes())?,
    }
    let denied = report.findings.iter().any(|f| f.severity == Severity::Deny);
    Ok(if denied { Exit::Problems } else { Exit::Ok })
}

/// Runs the rules on every k0rdent object of the management cluster.
pub fn lint(estate: &mut credential_core::MemoryEstate) -> LintReport {
    let mut findings = Vec::new();
    let mut checked = 0;
    let mgmt = Cluster::Management;
    for obj in estate.all(&mgmt) {
        let Some(gvk) = Gvk::of(&obj) else { continue };
        let Some(kind) = ResourceKind::from_gvk(&gvk) else { continue };
        let meta = obj.get("metadata");
        let text = |f: &str| meta.and_then(|m| m.get(f)).and_then(Value::as_str).map(str::to_string);
        let (Some(name), namespace) = (text("name"), text("namespace")) else { continue };
        checked += 1;
        // The object does not exist yet when it is created.
        let removed = estate.remove(&mgmt, &gvk, namespace.as_deref(), &name);
        let input = AdmissionInput {
            operation: Operation::Create,
            kind,
            namespace: namespace.as_deref(),
            name: &name,
            object: Some(&obj),
            old_object: None,
        };
        let found: Vec<Finding> = credential_core::rules::validate(&input, &*estate as &dyn Estate);
        if removed.is_some() {
            estate.insert(&mgmt, (*obj).clone());
        }
        for f in found {
            findings.push(LintFinding {
                code: f.code,
                severity: f.severity,
                object: ObjectRef {
                    api_version: gvk.api_version(),
                    kind: gvk.kind.clone(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                },
                field: f.field,
                message: f.message,
                hint: f.hint,
            });
        }
    }
    LintReport { findings, checked }
}

pub fn render(report: &LintReport, style: Style) -> String {
    let mut s = String::new();
    for f in &report.findings {
        let (mark, width) = match (f.severity, style.glyphs) {
            (Severity::Deny, true) => (style.red("✗ deny"), 6),
            (Severity::Warn, true) => (style.yellow("! warn"), 6),
            (Severity::Deny, false) => ("DENY".to_string(), 4),
            (Severity::Warn, false) => ("WARN".to_string(), 4),
        };
        let object = match &f.object.namespace {
            Some(ns) => format!("{} {ns}/{}", f.object.kind, f.object.name),
            None => format!("{} {}", f.object.kind, f.object.name),
        };
        let field = if f.field.is_empty() { String::new() } else { format!("  {}", f.field) };
        s.push_str(&format!("{mark}  {}{}  [{}]\n", style.bold(&clean(&object)), clean(&field), f.code));
        let indent = " ".repeat(width + 2);
        s.push_str(&format!("{indent}{}\n", clean(&f.message)));
        if !f.hint.is_empty() {
            s.push_str(&format!("{indent}{}\n", style.dim(&format!("hint: {}", clean(&f.hint)))));
        }
    }
    let denied = objects_with(report, Severity::Deny);
    let warned = objects_with(report, Severity::Warn);
    let objects = if report.checked == 1 { "object" } else { "objects" };
    if report.findings.is_empty() {
        s.push_str(&format!("{} k0rdent {objects} checked: no problems found\n", report.checked));
    } else {
        s.push_str(&format!("{} k0rdent {objects} checked: {denied} denied, {warned} with warnings\n", report.checked));
    }
    s
}

fn objects_with(report: &LintReport, severity: Severity) -> usize {
    let mut keys: Vec<(&str, Option<&str>, &str)> = report
        .findings
        .iter()
        .filter(|f| f.severity == severity)
        .map(|f| (f.object.kind.as_str(), f.object.namespace.as_deref(), f.object.name.as_str()))
        .collect();
    keys.sort();
    keys.dedup();
    keys.len()
}
