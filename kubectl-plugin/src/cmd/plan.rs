//! `kubectl credential plan NAME -n NS`: what cluster identity distribution would copy.

use std::io::Write;

use credential_core::distribution::{self, CopyState, Mode};
use credential_core::identity::{self, ObjectKey, Plan, PlannedCopy};
use credential_core::model::labels;
use credential_core::readiness::{self, ObjectRef};
use credential_core::{Cluster, Estate, Gvk};
use serde::Serialize;
use serde_json::Value;

use super::distribution::ModeView;
use super::{Exit, Loaded, Scope, load_estate, write_structured};
use crate::cli::{PlanArgs, ReportOutput};
use crate::error::CliError;
use crate::style::{Style, clean};
use credential_core::distribution::{kcm_copy_labels, kcm_credential_label};

/// What applying a planned copy would do to the target cluster as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Not there: it would be created.
    Create,
    /// There, managed by distribution, different from the source: it would be updated.
    Update,
    /// There and identical.
    Unchanged,
    /// There without the managed marker: distribution would not overwrite it.
    Conflict,
}

/// One planned copy compared with the target cluster.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub target: ObjectRef,
    pub action: Action,
    /// Fields and keys that differ (never values).
    pub differences: Vec<String>,
}

/// The comparison with the target cluster, or why it could not be made.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Changes {
    pub compared: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_compared_because: Option<String>,
    pub changes: Vec<Change>,
}

pub fn run(args: &PlanArgs, style: Style, out: &mut dyn Write) -> Result<Exit, CliError> {
    let name = super::credential_name(&args.name)?;
    let loaded = load_estate(&args.estate, args.namespace.as_deref(), Scope::One(&name))?;
    let Some(cred) = loaded.credentials.first() else {
        return Err(super::credential_not_found(&name, &loaded.namespace, "the estate", &[], &[]));
    };
    let plan = identity::plan(cred, &loaded.estate);
    let mode =
        super::distribution::mode(&loaded.estate, &loaded.webhook_namespace, &loaded.side_errors, &loaded.source);
    let trigger = mode.mode == Some(Mode::Trigger);
    let changes = changes(&plan, &loaded, trigger);
    match args.output {
        ReportOutput::Json | ReportOutput::Yaml => {
            let value = structured(&plan, changes, &loaded.namespace, &name, mode);
            write_structured(out, &value, args.output == ReportOutput::Yaml)?;
        }
        ReportOutput::Text => out.write_all(render(&plan, &changes, &mode, style).as_bytes())?,
    }
    Ok(if plan.problems.is_empty() { Exit::Ok } else { Exit::Problems })
}

/// Compares every planned copy with what the target cluster holds now. In trigger mode KCM writes
/// the copies with its own labels and overwrites whatever is there: content alone is compared
/// ([`distribution::verify_copy`]), and there is no conflict.
fn changes(plan: &Plan, loaded: &Loaded, trigger: bool) -> Changes {
    let Some(target) = &plan.target_cluster else { return Changes::default() };
    if !loaded.estate.knows_cluster(target) {
        let why = loaded.why_not_read(target);
        return Changes { compared: false, not_compared_because: Some(why), changes: Vec::new() };
    }
    let mut out = Vec::new();
    for copy in &plan.copies {
        let Some(desired) = &copy.object else { continue };
        let t = &copy.target;
        let actual = loaded.estate.get(target, &t.gvk, t.namespace.as_deref(), &t.name);
        let action = match actual {
            _ if trigger => match distribution::verify_copy(copy, actual.as_deref()) {
                CopyState::Missing => (Action::Create, Vec::new()),
                CopyState::Drifted { differences } => (Action::Update, differences),
                CopyState::InSync => (Action::Unchanged, Vec::new()),
            },
            None => (Action::Create, Vec::new()),
            Some(actual) => {
                // The distributor's own comparison: "unchanged" here means it writes nothing.
                let diffs = readiness::differences(desired, &actual).all();
                if !identity::is_managed(&actual) {
                    (Action::Conflict, diffs)
                } else if diffs.is_empty() {
                    (Action::Unchanged, diffs)
                } else {
                    (Action::Update, diffs)
                }
            }
        };
        out.push(Change { target: ObjectRef::from_key(t, target), action: action.0, differences: action.1 });
    }
    Changes { compared: true, not_compared_because: None, changes: out }
}

/// `plan -o json|yaml`: objects named with the reference shape explain and lint use.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanOutput {
    credential: ObjectRef,
    /// The mode in force and who writes the copies.
    distribution: ModeView,
    /// Who writes these copies: `kcm` (trigger mode), `credential-guard` (write mode), `nobody`
    /// (off), `unknown`.
    writer: &'static str,
    target_cluster: Option<String>,
    provider_interface: Option<String>,
    copies: Vec<CopyOutput>,
    in_place: Vec<CopyOutput>,
    problems: Vec<ProblemOutput>,
    current: Changes,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CopyOutput {
    source: ObjectRef,
    target: ObjectRef,
    via: Option<ViaOutput>,
    depth: usize,
    /// The object to apply, Secret values redacted.
    object: Option<Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ViaOutput {
    parent: ObjectRef,
    name_field_path: String,
    namespace_field_path: Option<String>,
}

#[derive(Debug, Serialize)]
struct ProblemOutput {
    message: String,
    #[serde(flatten)]
    detail: identity::PlanProblem,
}

fn structured(plan: &Plan, current: Changes, namespace: &str, name: &str, mode: ModeView) -> PlanOutput {
    // The core redacts copies and in-place objects alike: plans never print Secret values.
    let mut plan = plan.redacted();
    if mode.mode == Some(Mode::Trigger) {
        // What KCM writes: its two labels in place of the source's, annotations kept.
        for c in &mut plan.copies {
            if let Some(meta) = c.object.as_mut().and_then(|o| o.get_mut("metadata")).and_then(Value::as_object_mut) {
                meta.insert("labels".into(), Value::Object(kcm_copy_labels(namespace, name)));
            }
        }
    }
    let mgmt = Cluster::Management;
    let target = plan.target_cluster.clone().unwrap_or(Cluster::Management);
    let copy = |c: &PlannedCopy| CopyOutput {
        source: ObjectRef::from_key(&c.source, &mgmt),
        target: ObjectRef::from_key(&c.target, &target),
        via: c.via.as_ref().map(|v| ViaOutput {
            parent: ObjectRef::from_key(&v.parent, &mgmt),
            name_field_path: v.name_field_path.clone(),
            namespace_field_path: v.namespace_field_path.clone(),
        }),
        depth: c.depth,
        object: c.object.clone(),
    };
    let messages = plan.problem_messages();
    PlanOutput {
        credential: ObjectRef::new(&Gvk::credential(), Some(namespace), name, &mgmt),
        writer: writer(&mode),
        distribution: mode,
        target_cluster: plan.target_cluster.as_ref().map(cluster),
        provider_interface: plan.provider_interface.clone(),
        copies: plan.copies.iter().map(copy).collect(),
        in_place: plan.in_place.iter().map(copy).collect(),
        problems: plan
            .problems
            .iter()
            .zip(messages)
            .map(|(p, message)| ProblemOutput { message, detail: p.clone() })
            .collect(),
        current,
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

fn writer(mode: &ModeView) -> &'static str {
    match mode.mode {
        Some(Mode::Trigger) => "kcm",
        Some(Mode::Write) => "credential-guard",
        Some(Mode::Off) => "nobody",
        None => "unknown",
    }
}

/// Who writes the copies below, and when.
fn mode_line(mode: &ModeView, credential: &str) -> String {
    let (ns, name) = credential.split_once('/').unwrap_or(("", credential));
    match mode.mode {
        Some(Mode::Trigger) => format!(
            "Distribution mode trigger: KCM writes these copies on its next reconcile, which credential-guard \
             triggers; KCM replaces their labels with {}=true and {}=true and keeps their annotations",
            labels::MANAGED,
            kcm_credential_label(ns, name)
        ),
        Some(Mode::Write) => {
            "Distribution mode write: credential-guard writes these copies on every source change".to_string()
        }
        Some(Mode::Off) => "Distribution mode off: nobody writes these copies (admission only)".to_string(),
        None => format!("Distribution mode {}: {}", mode.headline(), mode.reason),
    }
}

pub fn render(plan: &Plan, changes: &Changes, mode: &ModeView, style: Style) -> String {
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
    s.push_str(&format!("{}\n", clean(&mode_line(mode, &plan.credential))));
    for (i, c) in plan.copies.iter().enumerate() {
        let missing = if c.object.is_none() { style.red("  (source missing)") } else { String::new() };
        let target_text = if c.target == c.source {
            format!("{} (same namespace/name)", cluster(target))
        } else {
            format!("{} {}", cluster(target), key(&c.target))
        };
        let target_ref = ObjectRef::from_key(&c.target, target);
        let now = changes.changes.iter().find(|ch| ch.target == target_ref).map(|ch| action_text(ch, style));
        s.push_str(&format!(
            "  {}. {} -> {target_text}{}{missing}{}\n",
            i + 1,
            key(&c.source),
            style.dim(&via(c)),
            now.map(|t| format!("  [{t}]")).unwrap_or_default()
        ));
    }
    if changes.compared && !changes.changes.is_empty() {
        let count = |a: Action| changes.changes.iter().filter(|c| c.action == a).count();
        s.push_str(&format!(
            "Compared with {}: {} to create, {} to update, {} unchanged, {} in conflict\n",
            cluster(target),
            count(Action::Create),
            count(Action::Update),
            count(Action::Unchanged),
            count(Action::Conflict)
        ));
    } else if let Some(why) = &changes.not_compared_because {
        s.push_str(&format!("Not compared with {}: {}\n", cluster(target), clean(why)));
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

fn action_text(c: &Change, style: Style) -> String {
    let diffs = clean(&c.differences.join("; "));
    match c.action {
        Action::Create => style.yellow("create"),
        Action::Update => format!("{}: {diffs}", style.yellow("update")),
        Action::Unchanged => style.green("unchanged"),
        Action::Conflict => {
            let what = "conflict: exists without the managed label, distribution will not overwrite it";
            if diffs.is_empty() { style.red(what) } else { format!("{}; {diffs}", style.red(what)) }
        }
    }
}

fn via(c: &PlannedCopy) -> String {
    c.via
        .as_ref()
        .map(|v| format!("  via {} of {}", clean(&v.name_field_path), key(&v.parent)))
        .unwrap_or_else(|| "  (the identity)".to_string())
}
