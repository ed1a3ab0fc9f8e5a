//! `kubectl credential lint -f PATH...`: the webhook's admission rules, offline, for CI.
//!
//! Every k0rdent object in the files is checked as a CREATE against the estate the files form
//! (minus the object itself, which does not exist yet when it is created), so a Credential and
//! the Region it names can be linted together. `-f -` reads standard input
//! (`kustomize build | kubectl credential lint -f -`); empty files and documents are skipped, as
//! `kubectl apply -f dir/` skips them. Each finding names its file, line and document.
//!
//! Outputs: text (`file:line: DENY ...`), json, yaml, JUnit XML and SARIF 2.1.0.
//! Exit status: 0 nothing denied (warnings allowed), 1 something denied, 2 usage or input error.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use credential_core::estate::{LoadOptions, LoadWarning, load_inputs_with_report};
use credential_core::finding::{Finding, Severity};
use credential_core::readiness::ObjectRef;
use credential_core::rules::AdmittedObject;
use credential_core::{AdmissionInput, Cluster, Estate, Gvk, Operation, ResourceKind};
use serde::Serialize;
use serde_json::{Value, json};

use super::{Exit, write_structured};
use crate::cli::{LintArgs, LintOutput};
use crate::error::CliError;
use crate::style::{Style, clean};

/// The name standard input gets in findings.
pub const STDIN_NAME: &str = "<stdin>";

/// Kinds KCM serves in k0rdent.mirantis.com; any other kind there is most likely a typo.
const KNOWN_K0RDENT_KINDS: &[&str] = &[
    "AccessManagement",
    "ClusterDeployment",
    "ClusterIPAM",
    "ClusterIPAMClaim",
    "ClusterTemplate",
    "ClusterTemplateChain",
    "Credential",
    "DataSource",
    "Management",
    "ManagementBackup",
    "MultiClusterService",
    "ProviderInterface",
    "ProviderTemplate",
    "Region",
    "Release",
    "ServiceSet",
    "ServiceTemplate",
    "ServiceTemplateChain",
    "StateManagementProvider",
];

/// Where an object was read.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Location {
    /// The file as given (`<stdin>` for `-f -`).
    pub file: String,
    /// 1-based line of the document; 0 when unknown.
    pub line: u64,
    /// 1-based index of the document in the file (non-empty documents only).
    pub document: usize,
}

#[derive(Debug, Serialize)]
pub struct LintFinding {
    pub code: String,
    pub severity: Severity,
    pub object: ObjectRef,
    pub field: String,
    pub message: String,
    pub hint: String,
    #[serde(flatten)]
    pub location: Location,
}

/// One object the rules ran on (JUnit test cases).
#[derive(Debug, Clone)]
pub struct Checked {
    pub object: ObjectRef,
    pub location: Location,
}

#[derive(Debug, Serialize)]
pub struct LintReport {
    pub findings: Vec<LintFinding>,
    /// Numbers for the summary line.
    pub summary: Summary,
    /// Objects the rules ran on.
    #[serde(skip)]
    pub checked: Vec<Checked>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub checked: usize,
    pub denied: usize,
    pub warned: usize,
}

pub fn run(args: &LintArgs, style: Style, out: &mut dyn Write) -> Result<Exit, CliError> {
    let opts =
        LoadOptions { system_namespace: args.system_namespace.clone(), skip_empty: true, ..LoadOptions::default() };
    let stdin_path = PathBuf::from(STDIN_NAME);
    let (files, texts) = inputs(&args.files, opts.max_file_bytes, &stdin_path)?;
    let (mut estate, load) = load_inputs_with_report(&files, &texts, &opts)?;
    // Manifests rarely carry CRDs, so "served-checks skipped" would be noise on every lint.
    for w in load.warnings.iter().filter(|w| !matches!(w, LoadWarning::NoCrds { .. })) {
        eprintln!("warning: {w}");
    }
    let locate = |kind: &str, display: &str| -> Location {
        match load.origins.get(&(Cluster::Management, format!("{kind} {display}"))) {
            Some((path, pos)) => Location { file: path.display().to_string(), line: pos.line, document: pos.index },
            None => Location { file: String::new(), line: 0, document: 0 },
        }
    };
    let report = lint(&mut estate, &locate);
    match args.output {
        LintOutput::Json => write_structured(out, &report, false)?,
        LintOutput::Yaml => write_structured(out, &report, true)?,
        LintOutput::Junit => out.write_all(junit(&report).as_bytes())?,
        LintOutput::Sarif => write_structured(out, &sarif(&report), false)?,
        LintOutput::Text => out.write_all(render(&report, style).as_bytes())?,
    }
    Ok(if report.summary.denied > 0 { Exit::Problems } else { Exit::Ok })
}

/// Files to read, and streams already read (name, text).
type Inputs = (Vec<PathBuf>, Vec<(PathBuf, String)>);

/// The files to read, and standard input (read once, capped) when `-` is among them.
fn inputs(given: &[PathBuf], max_bytes: u64, stdin_path: &Path) -> Result<Inputs, CliError> {
    let mut files = Vec::new();
    let mut texts = Vec::new();
    for f in given {
        if f.as_os_str() != "-" {
            files.push(f.clone());
            continue;
        }
        if !texts.is_empty() {
            return Err(CliError::Invalid("-f - can be given only once (standard input is read once)".into()));
        }
        let mut buf = Vec::new();
        std::io::stdin().lock().take(max_bytes.saturating_add(1)).read_to_end(&mut buf)?;
        if buf.len() as u64 > max_bytes {
            return Err(CliError::Invalid(format!(
                "{STDIN_NAME}: over the {max_bytes}-byte limit for one input: split it"
            )));
        }
        let text = String::from_utf8(buf)
            .map_err(|_| CliError::Invalid(format!("{STDIN_NAME}: is not UTF-8 text (YAML or JSON expected)")))?;
        texts.push((stdin_path.to_path_buf(), text));
    }
    Ok((files, texts))
}

/// Runs the rules on every k0rdent object of the management cluster; `locate` says where an
/// object (kind, `ns/name`) was read.
pub fn lint(estate: &mut credential_core::MemoryEstate, locate: &dyn Fn(&str, &str) -> Location) -> LintReport {
    let mut findings = Vec::new();
    let mut checked = Vec::new();
    let mgmt = Cluster::Management;
    for obj in estate.all(&mgmt) {
        let Some(gvk) = Gvk::of(&obj) else { continue };
        let meta = obj.get("metadata");
        let text = |f: &str| meta.and_then(|m| m.get(f)).and_then(Value::as_str).map(str::to_string);
        let (Some(name), namespace) = (text("name"), text("namespace")) else { continue };
        let object = ObjectRef::new(&gvk, namespace.as_deref(), &name, &mgmt);
        let location = locate(&gvk.kind, &credential_core::model::display_name(&obj));
        let finding = |f: Finding| LintFinding {
            code: f.code,
            severity: f.severity,
            object: object.clone(),
            field: f.field,
            message: f.message,
            hint: f.hint,
            location: location.clone(),
        };
        if gvk.group == credential_core::K0RDENT_GROUP {
            findings.extend(unknown_api(&gvk).into_iter().map(finding));
        }
        let Some(kind) = ResourceKind::from_gvk(&gvk) else { continue };
        checked.push(Checked { object: object.clone(), location: location.clone() });
        // The object does not exist yet when it is created.
        let removed = estate.remove(&mgmt, &gvk, namespace.as_deref(), &name);
        let admitted = AdmittedObject::from_value(&obj);
        let input = AdmissionInput {
            operation: Operation::Create,
            kind,
            namespace: namespace.as_deref(),
            name: &name,
            object: Some(&admitted),
            old_object: None,
        };
        let found: Vec<Finding> = credential_core::rules::validate(&input, &*estate as &dyn Estate);
        if removed {
            estate.insert(&mgmt, (*obj).clone());
        }
        findings.extend(found.into_iter().map(finding));
    }
    findings.sort_by(|a, b| {
        (&a.location.file, a.location.line, a.location.document).cmp(&(
            &b.location.file,
            b.location.line,
            b.location.document,
        ))
    });
    let summary = Summary {
        checked: checked.len(),
        denied: objects_with(&findings, Severity::Deny),
        warned: objects_with(&findings, Severity::Warn),
    };
    LintReport { findings, summary, checked }
}

/// A kind KCM does not serve in its group, or a version this tool does not know: a warning.
fn unknown_api(gvk: &Gvk) -> Option<Finding> {
    if !KNOWN_K0RDENT_KINDS.contains(&gvk.kind.as_str()) {
        return Some(Finding {
            code: "LINT001".into(),
            severity: Severity::Warn,
            field: "kind".into(),
            message: format!("{} is not a kind of {} (a typo?)", gvk.kind, credential_core::K0RDENT_GROUP),
            hint: format!("k0rdent kinds: {}", KNOWN_K0RDENT_KINDS.join(", ")),
        });
    }
    if gvk.api_version() != credential_core::K0RDENT_API_VERSION {
        return Some(Finding {
            code: "LINT002".into(),
            severity: Severity::Warn,
            field: "apiVersion".into(),
            message: format!("{} is not the served version of {}", gvk.api_version(), credential_core::K0RDENT_GROUP),
            hint: format!("use apiVersion: {}", credential_core::K0RDENT_API_VERSION),
        });
    }
    None
}

fn where_(l: &Location) -> String {
    match (l.file.as_str(), l.line) {
        ("", _) => String::new(),
        (f, 0) => format!("{}: ", clean(f)),
        (f, line) => format!("{}:{line}: ", clean(f)),
    }
}

pub fn render(report: &LintReport, style: Style) -> String {
    let mut s = String::new();
    for f in &report.findings {
        let mark = match (f.severity, style.glyphs) {
            (Severity::Deny, true) => style.red("✗ deny"),
            (Severity::Warn, true) => style.yellow("! warn"),
            (Severity::Deny, false) => "DENY".to_string(),
            (Severity::Warn, false) => "WARN".to_string(),
        };
        let object = match &f.object.namespace {
            Some(ns) => format!("{} {ns}/{}", f.object.kind, f.object.name),
            None => format!("{} {}", f.object.kind, f.object.name),
        };
        let field = if f.field.is_empty() { String::new() } else { format!("  {}", f.field) };
        let document =
            if f.location.document > 0 { format!("  (document {})", f.location.document) } else { String::new() };
        s.push_str(&format!(
            "{}{mark}  {}{}  [{}]{document}\n",
            where_(&f.location),
            style.bold(&clean(&object)),
            clean(&field),
            f.code
        ));
        s.push_str(&format!("    {}\n", clean(&f.message)));
        if !f.hint.is_empty() {
            s.push_str(&format!("    {}\n", style.dim(&format!("hint: {}", clean(&f.hint)))));
        }
    }
    let Summary { checked, denied, warned } = report.summary;
    let objects = if checked == 1 { "object" } else { "objects" };
    if report.findings.is_empty() {
        s.push_str(&format!("{checked} k0rdent {objects} checked: no problems found\n"));
    } else {
        s.push_str(&format!("{checked} k0rdent {objects} checked: {denied} denied, {warned} with warnings\n"));
    }
    s
}

fn objects_with(findings: &[LintFinding], severity: Severity) -> usize {
    let mut keys: Vec<&ObjectRef> = findings.iter().filter(|f| f.severity == severity).map(|f| &f.object).collect();
    keys.sort();
    keys.dedup();
    keys.len()
}

/// JUnit XML: one test case per checked object, a `<failure>` per denial; warnings go to the
/// case's `<system-out>` (JUnit has no warning state).
pub fn junit(report: &LintReport) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let failures = report.checked.iter().filter(|c| denials(report, &c.object).next().is_some()).count();
    s.push_str(&format!(
        "<testsuites name=\"kubectl credential lint\" tests=\"{}\" failures=\"{failures}\" errors=\"0\">\n",
        report.checked.len()
    ));
    s.push_str(&format!(
        "  <testsuite name=\"k0rdent admission rules\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\">\n",
        report.checked.len()
    ));
    // Findings on objects no rule set checks (unknown kinds) get a case of their own.
    let mut cases: Vec<Checked> = report.checked.clone();
    for f in &report.findings {
        if !cases.iter().any(|c| c.object == f.object) {
            cases.push(Checked { object: f.object.clone(), location: f.location.clone() });
        }
    }
    for c in &cases {
        let name = match &c.object.namespace {
            Some(ns) => format!("{} {ns}/{}", c.object.kind, c.object.name),
            None => format!("{} {}", c.object.kind, c.object.name),
        };
        let classname = if c.location.file.is_empty() { "manifests".to_string() } else { c.location.file.clone() };
        s.push_str(&format!(
            "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\" line=\"{}\">\n",
            xml(&name),
            xml(&classname),
            xml(&c.location.file),
            c.location.line
        ));
        for f in denials(report, &c.object) {
            s.push_str(&format!(
                "      <failure type=\"{}\" message=\"{}\">{}{}: {}\nhint: {}</failure>\n",
                xml(&f.code),
                xml(&f.message),
                xml(&where_(&f.location)),
                xml(&f.field),
                xml(&f.message),
                xml(&f.hint)
            ));
        }
        let warnings: Vec<String> = report
            .findings
            .iter()
            .filter(|f| f.object == c.object && f.severity == Severity::Warn)
            .map(|f| format!("{}WARN [{}] {}: {}", where_(&f.location), f.code, f.field, f.message))
            .collect();
        if !warnings.is_empty() {
            s.push_str(&format!("      <system-out>{}</system-out>\n", xml(&warnings.join("\n"))));
        }
        s.push_str("    </testcase>\n");
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}

fn denials<'a>(report: &'a LintReport, object: &'a ObjectRef) -> impl Iterator<Item = &'a LintFinding> {
    report.findings.iter().filter(move |f| &f.object == object && f.severity == Severity::Deny)
}

/// Text for XML attributes and content: the five entities, control characters dropped.
fn xml(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&apos;"),
            '\n' | '\t' => s.push(c),
            c if c.is_control() => s.push(' '),
            c => s.push(c),
        }
    }
    s
}

/// SARIF 2.1.0 (what code scanning reads): one rule per finding code, one result per finding
/// with its file and line.
pub fn sarif(report: &LintReport) -> Value {
    let mut rules: Vec<&str> = report.findings.iter().map(|f| f.code.as_str()).collect();
    rules.sort_unstable();
    rules.dedup();
    let rule_objects: Vec<Value> = rules
        .iter()
        .map(|code| {
            let first = report.findings.iter().find(|f| f.code == *code);
            json!({
                "id": code,
                "shortDescription": {"text": first.map(|f| f.message.as_str()).unwrap_or_default()},
                "help": {"text": first.map(|f| f.hint.as_str()).unwrap_or_default()},
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let object = match &f.object.namespace {
                Some(ns) => format!("{} {ns}/{}", f.object.kind, f.object.name),
                None => format!("{} {}", f.object.kind, f.object.name),
            };
            let mut location = json!({"physicalLocation": {"artifactLocation": {"uri": sarif_uri(&f.location.file)}}});
            if f.location.line > 0 {
                location["physicalLocation"]["region"] = json!({"startLine": f.location.line});
            }
            json!({
                "ruleId": f.code,
                "ruleIndex": rules.iter().position(|r| *r == f.code).unwrap_or_default(),
                "level": if f.severity == Severity::Deny { "error" } else { "warning" },
                "message": {"text": format!("{object}: {} ({}). hint: {}", f.message, f.field, f.hint)},
                "locations": [location],
                "properties": {"object": f.object, "document": f.location.document},
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "kubectl-credential",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rule_objects,
            }},
            "results": results,
        }],
    })
}

/// A relative URI for a path as given (SARIF wants `/` and no `./`).
fn sarif_uri(file: &str) -> String {
    let f = file.replace('\\', "/");
    f.strip_prefix("./").unwrap_or(&f).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escapes_markup_and_drops_control_characters() {
        assert_eq!(xml("a<b>&\"c'\x1b"), "a&lt;b&gt;&amp;&quot;c&apos; ");
    }

    #[test]
    fn unknown_kinds_and_versions_of_the_group_warn() {
        let typo = unknown_api(&Gvk::k0rdent("Credentail")).map(|f| (f.code, f.severity));
        assert_eq!(typo, Some(("LINT001".to_string(), Severity::Warn)));
        let old = unknown_api(&Gvk::new(credential_core::K0RDENT_GROUP, "v1alpha1", "Credential"));
        assert_eq!(old.map(|f| f.code), Some("LINT002".to_string()));
        assert!(unknown_api(&Gvk::credential()).is_none());
    }
}
