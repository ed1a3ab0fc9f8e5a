//! `kubectl credential explain NAME -n NS`: the readiness tree of one Credential.

use std::io::Write;

use credential_core::distribution::{Mode, VerifyReason};
use credential_core::model::labels;
use credential_core::readiness::{
    self, Check, ExplainError, ExplainOptions, ObjectRef, Report, Source, Status, Verdict,
};
use credential_core::{Cluster, Estate, Gvk};
use serde::Serialize;
use serde_json::Value;

use super::distribution::ModeView;
use super::{Exit, Loaded, Scope, credential_not_found, load_estate, write_structured};
use crate::cli::{ExplainArgs, ReportOutput, WaitFor};
use crate::error::CliError;
use crate::style::{Style, clean};
use crate::term::{self, age, wrap};

pub fn run(args: &ExplainArgs, style: Style, out: &mut dyn Write) -> Result<Exit, CliError> {
    let name = args.name.as_deref().map(super::credential_name).transpose()?;
    if let (true, Some(name)) = (args.watch, &name) {
        // -w: wait for READY (or the timeout), then the report says where it stands.
        let names = [name.clone()];
        super::wait::until(&args.estate, args.namespace.as_deref(), &names, WaitFor::Ready, args.timeout, &mut |_| {
            Ok(())
        })?;
    }
    let scope = match (&name, args.all_namespaces) {
        (Some(name), _) => Scope::One(name),
        (None, true) => Scope::AllNamespaces,
        (None, false) => Scope::Namespace,
    };
    let loaded = load_estate(&args.estate, args.namespace.as_deref(), scope)?;
    let flags = loaded.rerun_flags(&args.estate);
    let opts = |namespace: &str, name: &str| ExplainOptions {
        rerun_command: Some(format!("kubectl credential explain {name} -n {namespace}{flags}")),
        source: loaded.source.clone(),
        unreachable_regions: loaded.unreachable.clone(),
        invalid_kubeconfigs: loaded.invalid.clone(),
    };
    let Some(name) = &name else {
        return summary(&loaded, args, &opts, style, out);
    };
    let namespace = loaded.namespace.as_str();
    let mut report = match readiness::explain_with(namespace, name, &loaded.estate, &opts(namespace, name)) {
        Ok(r) => r,
        Err(ExplainError::NotFound { namespace, name, available }) => {
            return Err(credential_not_found(&name, &namespace, "the estate", &available, &[]));
        }
    };
    let exit = Exit::of(report.verdict);
    let extras = match loaded.credentials.first() {
        Some(cred) => augment(&mut report, &loaded, cred),
        None => Extras::default(),
    };
    if args.show_only_failing {
        report.checks = only_failing(std::mem::take(&mut report.checks));
    }
    match args.output {
        ReportOutput::Json | ReportOutput::Yaml => {
            let value = Explained { report: &report, distribution: extras.mode, regional_server: extras.server };
            write_structured(out, &value, args.output == ReportOutput::Yaml)?;
        }
        ReportOutput::Text => out.write_all(render(&report, style, term::width(), term::now()).as_bytes())?,
    }
    Ok(exit)
}

/// `explain -o json|yaml`: the report, the distribution mode and the regional API server.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Explained<'a> {
    #[serde(flatten)]
    report: &'a Report,
    distribution: Option<ModeView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    regional_server: Option<RegionalServerView>,
}

/// The regional API server of a regional Credential.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct RegionalServerView {
    region: String,
    url: Option<String>,
    /// Its `/version`, or `UNKNOWN` when it did not answer.
    version: String,
}

/// What [`augment`] adds to the structured output.
#[derive(Debug, Default)]
struct Extras {
    mode: Option<ModeView>,
    server: Option<RegionalServerView>,
}

/// The checks that did not pass, with the rows above them (a passing parent of a failing child
/// stays, so the tree still reads).
pub fn only_failing(checks: Vec<Check>) -> Vec<Check> {
    checks
        .into_iter()
        .filter_map(|mut c| {
            c.children = only_failing(std::mem::take(&mut c.children));
            let failing = matches!(c.status, Status::Fail | Status::Warn | Status::Unknown);
            (failing || !c.children.is_empty()).then_some(c)
        })
        .collect()
}

/// Adds what the core's checks do not read: the Warning Events, the distribution mode and who
/// copies next, orphan records, the regional server and its version, and each ClusterDeployment's
/// readiness.
fn augment(report: &mut Report, loaded: &Loaded, cred: &Value) -> Extras {
    let (namespace, name) = (report.credential.namespace.clone().unwrap_or_default(), report.credential.name.clone());
    let at = |checks: &[Check], code: &str| checks.iter().position(|c| c.code == code);

    let events = events_check(loaded, &namespace, &name);
    let after_credential = at(&report.checks, "credential").map_or(0, |i| i + 1);
    report.checks.insert(after_credential, events);

    let mode =
        super::distribution::mode(&loaded.estate, &loaded.webhook_namespace, &loaded.side_errors, &loaded.source);
    let plan = credential_core::identity::plan(cred, &loaded.estate);
    let row = distribution_check(&mode, &plan, cred);
    let before_copies = at(&report.checks, "copies").unwrap_or(report.checks.len());
    report.checks.insert(before_copies, row);

    let (records, _) = super::distribution::orphans(&loaded.estate, &loaded.webhook_namespace);
    let mine: Vec<_> =
        records.iter().filter(|r| r.credential.namespace == namespace && r.credential.name == name).collect();
    if !mine.is_empty() {
        let n = mine.len();
        let mut row = Check {
            code: "orphaned-copies".into(),
            name: "Orphaned copies".into(),
            status: Status::Warn,
            since: mine.iter().map(|r| r.since.clone()).max(),
            summary: format!(
                "{n} record{} of copies that may remain with nobody to release them (kubectl credential orphans)",
                if n == 1 { "" } else { "s" }
            ),
            evidence: mine.iter().map(|r| format!("{}: {} ({})", r.cluster, r.objects.join(", "), r.reason)).collect(),
            objects: vec![ObjectRef::new(
                &super::distribution::configmap_gvk(),
                Some(&loaded.webhook_namespace),
                credential_core::distribution::ORPHANED_COPIES,
                &Cluster::Management,
            )],
            children: vec![],
        };
        row.evidence.sort();
        let after_copies = at(&report.checks, "copies").map_or(report.checks.len(), |i| i + 1);
        report.checks.insert(after_copies, row);
    }

    let region = cred.pointer("/spec/region").and_then(Value::as_str).filter(|r| !r.is_empty());
    let server = region.filter(|_| loaded.source == Source::Live).map(|r| {
        let s = loaded.servers.get(r).cloned().unwrap_or_default();
        RegionalServerView {
            region: r.to_string(),
            url: s.url,
            version: s.version.unwrap_or_else(|| "UNKNOWN".to_string()),
        }
    });
    if let (Some(s), Some(i)) = (&server, at(&report.checks, "regional-cluster")) {
        let url = s.url.as_deref().unwrap_or("unknown (the Region's kubeconfig could not be read)");
        report.checks[i].evidence.push(format!("server {url}, version {}", s.version));
    }

    if let Some(i) = at(&report.checks, "cluster-deployments") {
        cluster_deployment_rows(&mut report.checks[i], loaded);
    }
    Extras { mode: Some(mode), server }
}

fn events_check(loaded: &Loaded, namespace: &str, name: &str) -> Check {
    let mut row = Check {
        code: "events".into(),
        name: "Events".into(),
        status: Status::Pass,
        since: None,
        summary: String::new(),
        evidence: vec![],
        objects: vec![],
        children: vec![],
    };
    if let Some(e) = loaded.side_errors.get(super::distribution::EVENTS_READ) {
        row.status = Status::Unknown;
        row.summary = format!("cannot read the Events of the Credential: {e}");
        return row;
    }
    let events = super::distribution::warning_events(&loaded.estate, namespace, name);
    let Some(last) = events.last() else {
        row.summary = "no Warning Events".to_string();
        return row;
    };
    row.status = Status::Warn;
    row.since = Some(last.last_seen.clone());
    row.summary = match events.len() {
        1 => format!("1 Warning Event: {}", last.reason),
        n => format!("last {n} Warning Events, the latest: {}", last.reason),
    };
    // Newest first, as an operator scans them.
    row.evidence = events
        .iter()
        .rev()
        .map(|e| {
            let times = if e.count > 1 { format!(" (x{})", e.count) } else { String::new() };
            format!("{}  {}{times}: {}", e.last_seen, e.reason, e.message)
        })
        .collect();
    row
}

fn distribution_check(mode: &ModeView, plan: &credential_core::identity::Plan, cred: &Value) -> Check {
    let mut row = Check {
        code: "distribution".into(),
        name: "Distribution".into(),
        status: Status::Pass,
        since: None,
        summary: String::new(),
        evidence: vec![],
        objects: vec![mode.lease.clone()],
        children: vec![],
    };
    let Some(target) = &plan.target_cluster else {
        row.status = Status::Skip;
        row.summary = format!("none needed (mode {})", mode.headline());
        return row;
    };
    match (mode.mode, &mode.auto_would_choose) {
        (Some(m), _) => {
            row.summary = format!("mode {m}: {}", mode.who_copies.unwrap_or_default());
            if !mode.reason.is_empty() {
                row.evidence.push(format!("published by the distribution leader: {}", mode.reason));
            }
            if m == Mode::Off {
                row.status = Status::Warn;
                row.evidence.push(format!("nothing copies into {target}: KCM before 1.5, or a KCM whose distribution is off, leaves the copies to be made by hand"));
            }
            if m == Mode::Trigger {
                trigger_evidence(&mut row, cred, target);
            }
        }
        (None, auto) => {
            row.status = Status::Warn;
            row.summary = format!("mode unknown: {}", mode.reason);
            if let Some(d) = auto {
                let why = d.reason.strip_prefix("auto: ").unwrap_or(&d.reason);
                row.evidence.push(format!("auto would choose {}: {why}", d.mode));
            }
        }
    }
    row
}

/// Trigger mode: our verification condition (InSync, Drifted, Missing, NotVerifiable) and the
/// sources-digest annotation that makes KCM reconcile.
fn trigger_evidence(row: &mut Check, cred: &Value, target: &Cluster) {
    let condition = cred.pointer("/status/conditions").and_then(Value::as_array).and_then(|cs| {
        cs.iter().find(|c| c.get("type").and_then(Value::as_str) == Some(labels::DISTRIBUTED_CONDITION))
    });
    let s = |c: &Value, f: &str| c.get(f).and_then(Value::as_str).unwrap_or_default().to_string();
    match condition {
        Some(c) => {
            let reason = s(c, "reason");
            row.since = c.get("lastTransitionTime").and_then(Value::as_str).map(str::to_string);
            if reason != VerifyReason::InSync.as_str() {
                row.status = Status::Warn;
            }
            row.evidence.push(format!(
                "KCM's copies in {target}: {reason} (condition {}): {}",
                labels::DISTRIBUTED_CONDITION,
                s(c, "message")
            ));
        }
        None => {
            row.status = Status::Warn;
            row.evidence.push(format!(
                "KCM's copies in {target} are not verified yet (no condition {})",
                labels::DISTRIBUTED_CONDITION
            ));
        }
    }
    match cred.pointer("/metadata/annotations").and_then(|a| a.get(labels::TRIGGER_ANNOTATION)).and_then(Value::as_str) {
        Some(d) => row.evidence.push(format!(
            "last trigger: annotation {}={d} (KCM reconciles when it changes)",
            labels::TRIGGER_ANNOTATION
        )),
        None => row.evidence.push(format!(
            "not triggered yet: no annotation {} (KCM copies on its own next reconcile, at the latest its 15-minute resync)",
            labels::TRIGGER_ANNOTATION
        )),
    }
}

/// One child row per ClusterDeployment that uses the Credential, with its Ready condition.
fn cluster_deployment_rows(check: &mut Check, loaded: &Loaded) {
    let gvk = Gvk::cluster_deployment();
    for o in &check.objects {
        let cd = loaded.estate.get(&Cluster::Management, &gvk, o.namespace.as_deref(), &o.name);
        let ready = cd.as_deref().and_then(|cd| {
            cd.pointer("/status/conditions")
                .and_then(Value::as_array)?
                .iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
                .cloned()
        });
        let s = |c: &Value, f: &str| c.get(f).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        let key = format!("{}/{}", o.namespace.as_deref().unwrap_or_default(), o.name);
        let (status, summary, since) = match &ready {
            Some(c) if s(c, "status").as_deref() == Some("True") => {
                (Status::Pass, format!("{key}  Ready=True"), s(c, "lastTransitionTime"))
            }
            Some(c) => {
                let why = s(c, "message").or_else(|| s(c, "reason")).unwrap_or_default();
                let st = s(c, "status").unwrap_or_else(|| "Unknown".into());
                (Status::Warn, format!("{key}  Ready={st}: {why}"), s(c, "lastTransitionTime"))
            }
            None => (Status::Warn, format!("{key}  no Ready condition yet"), None),
        };
        check.children.push(Check {
            code: "cluster-deployment".into(),
            name: "ClusterDeployment".into(),
            status,
            since,
            summary,
            evidence: vec![],
            objects: vec![o.clone()],
            children: vec![],
        });
    }
    // The rows name them now.
    check.evidence.clear();
}

/// `explain` without NAME: every report, not-ready first.
#[derive(Debug, Serialize)]
struct Summary {
    credentials: Vec<Report>,
}

fn summary(
    loaded: &Loaded,
    args: &ExplainArgs,
    opts: &dyn Fn(&str, &str) -> ExplainOptions,
    style: Style,
    out: &mut dyn Write,
) -> Result<Exit, CliError> {
    let mut reports = Vec::new();
    for cred in &loaded.credentials {
        let meta = |f: &str| cred.pointer(&format!("/metadata/{f}")).and_then(serde_json::Value::as_str).unwrap_or("");
        let (namespace, name) = (meta("namespace"), meta("name"));
        if let Ok(r) = readiness::explain_with(namespace, name, &loaded.estate, &opts(namespace, name)) {
            reports.push((namespace.to_string(), name.to_string(), r));
        }
    }
    if reports.is_empty() && args.output == ReportOutput::Text {
        if args.all_namespaces {
            eprintln!("No resources found");
        } else {
            eprintln!("No resources found in {} namespace.", loaded.namespace);
        }
        return Ok(Exit::Ok);
    }
    // Not ready first, then unknown; then by namespace/name (the load order).
    reports.sort_by_key(|(_, _, r)| verdict_rank(r.verdict));
    if args.show_only_failing {
        reports.retain(|(_, _, r)| r.verdict != Verdict::Ready);
    }
    let exit = reports.iter().map(|(_, _, r)| Exit::of(r.verdict)).max_by_key(|e| exit_rank(*e)).unwrap_or(Exit::Ok);
    match args.output {
        ReportOutput::Json | ReportOutput::Yaml => {
            let s = Summary { credentials: reports.into_iter().map(|(_, _, r)| r).collect() };
            write_structured(out, &s, args.output == ReportOutput::Yaml)?;
        }
        ReportOutput::Text => {
            let mut header = vec!["NAME", "VERDICT", "ROOT CAUSE"];
            if args.all_namespaces {
                header.insert(0, "NAMESPACE");
            }
            let mut rows: Vec<Vec<String>> = Vec::new();
            let mut verdicts: Vec<Verdict> = Vec::new();
            for (namespace, name, r) in &reports {
                // One token per verdict, as kubectl's STATUS columns: awk and sort see one field.
                let mut row = vec![clean(name), verdict_word(r.verdict).to_string(), clean(&r.root_cause)];
                if args.all_namespaces {
                    row.insert(0, clean(namespace));
                }
                rows.push(row);
                verdicts.push(r.verdict);
            }
            let text = super::list::table(&header, &rows, false);
            for (i, line) in text.lines().enumerate() {
                // Colour after alignment, so escape codes do not count as width.
                let line = match i.checked_sub(1).and_then(|r| verdicts.get(r)) {
                    Some(v) if style.color => {
                        let word = verdict_word(*v);
                        let painted = match v {
                            Verdict::Ready => style.green(word),
                            Verdict::NotReady => style.red(word),
                            Verdict::Unknown => style.yellow(word),
                        };
                        // The verdict column follows NAME (and NAMESPACE): replace that cell only.
                        let at = line.find(&format!(" {word} ")).or_else(|| line.find(&format!(" {word}")));
                        match at {
                            Some(at) => format!("{} {painted}{}", &line[..at], &line[at + 1 + word.len()..]),
                            None => line.to_string(),
                        }
                    }
                    _ => line.to_string(),
                };
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(exit)
}

/// The verdict as one table token.
pub fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Ready => "Ready",
        Verdict::NotReady => "NotReady",
        Verdict::Unknown => "Unknown",
    }
}

fn verdict_rank(v: Verdict) -> u8 {
    match v {
        Verdict::NotReady => 0,
        Verdict::Unknown => 1,
        Verdict::Ready => 2,
    }
}

/// Several Credentials: not ready outranks unknown outranks ready.
fn exit_rank(e: Exit) -> u8 {
    match e {
        Exit::Ok => 0,
        Exit::Unknown => 1,
        Exit::Problems => 2,
    }
}

/// The text form: verdict line, tree of checks, fix steps. Prose wraps at `width` columns;
/// commands are never wrapped and stand on lines of their own, ready to paste.
pub fn render(report: &Report, style: Style, width: usize, now: jiff::Timestamp) -> String {
    let mut s = String::new();
    let credential = &report.credential;
    let head = format!(
        "Credential {}/{}",
        clean(credential.namespace.as_deref().unwrap_or_default()),
        clean(&credential.name)
    );
    match report.verdict {
        Verdict::Ready => s.push_str(&format!("{} is {}\n", style.bold(&head), style.green("READY"))),
        Verdict::NotReady => s.push_str(&format!(
            "{} is {}: {}\n",
            style.bold(&head),
            style.red("NOT READY"),
            style.bold(&clean(&report.root_cause))
        )),
        Verdict::Unknown => s.push_str(&format!(
            "{} is {}: {}\n",
            style.bold(&head),
            style.yellow("UNKNOWN"),
            style.bold(&clean(&report.root_cause))
        )),
    }
    tree(&mut s, &report.checks, "", style, width, now);
    if !report.fix.is_empty() {
        s.push_str(&format!("{}\n", style.bold("Fix:")));
        let digits = report.fix.len().to_string().len();
        for (i, step) in report.fix.iter().enumerate() {
            let number = format!("{:>digits$}. ", i + 1);
            let indent = " ".repeat(2 + number.len());
            let text = match &step.command {
                Some(_) => format!("{}:", clean(&step.description)),
                None => clean(&step.description),
            };
            let mut lines = wrap(&text, width.saturating_sub(indent.len()).max(MIN_TEXT)).into_iter();
            s.push_str(&format!("  {number}{}\n", lines.next().unwrap_or_default()));
            for more in lines {
                s.push_str(&format!("{indent}{more}\n"));
            }
            if let Some(cmd) = &step.command {
                s.push_str(&format!("{indent}  {}\n", clean(cmd)));
            }
        }
    }
    s
}

/// Narrowest text column kept when the tree is deep.
const MIN_TEXT: usize = 30;

fn tree(s: &mut String, checks: &[Check], prefix: &str, style: Style, width: usize, now: jiff::Timestamp) {
    let (branch, last_branch, cont, last_cont) = style.tree();
    let name_width = checks.iter().map(|c| c.name.chars().count()).max().unwrap_or(0);
    for (i, c) in checks.iter().enumerate() {
        let last = i + 1 == checks.len();
        let (b, k) = if last { (last_branch, last_cont) } else { (branch, cont) };
        let pad = name_width - c.name.chars().count();
        // Continuation lines sit under the summary; the child rail runs through them.
        let column = style.mark_width() + 1 + name_width + 2;
        let text_width = width.saturating_sub(prefix.chars().count() + 4 + column).max(MIN_TEXT);
        let rail = if c.children.is_empty() { ' ' } else { cont.chars().next().unwrap_or(' ') };
        let under = format!("{prefix}{k}{rail}{}", " ".repeat(column - 1));
        let mut text = clean(&c.summary);
        // The Credential's own rows carry the time of each condition.
        if c.code != "credential"
            && let Some(since) = &c.since
        {
            match age(since, now) {
                Some(age) => text.push_str(&format!("  since {} ({age} ago)", clean(since))),
                None => text.push_str(&format!("  since {}", clean(since))),
            }
        }
        let mut summary = wrap(&text, text_width).into_iter();
        let first = summary.next().unwrap_or_default();
        s.push_str(&format!("{prefix}{b}{} {}{}  {first}\n", style.mark(c.status), c.name, " ".repeat(pad)));
        for line in summary {
            s.push_str(&format!("{under}{line}\n"));
        }
        for e in &c.evidence {
            for line in wrap(&clean(e), text_width) {
                s.push_str(&format!("{under}{}\n", style.dim(&line)));
            }
        }
        let child_prefix = format!("{prefix}{k}");
        tree(s, &c.children, &child_prefix, style, width, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credential_core::Cluster;
    use credential_core::Gvk;
    use credential_core::readiness::{FixStep, ObjectRef, Status};

    fn check(name: &str, status: Status, summary: &str) -> Check {
        Check {
            code: "x".into(),
            name: name.into(),
            status,
            since: None,
            summary: summary.into(),
            evidence: vec![],
            objects: vec![],
            children: vec![],
        }
    }

    fn now() -> jiff::Timestamp {
        "2025-01-06T03:00:00Z".parse().unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }

    fn report(checks: Vec<Check>, fix: Vec<FixStep>) -> Report {
        Report {
            credential: ObjectRef::new(&Gvk::credential(), Some("ns"), "c", &Cluster::Management),
            verdict: Verdict::NotReady,
            root_cause: "because".into(),
            checks,
            fix,
        }
    }

    #[test]
    fn tree_aligns_names_and_draws_rails_through_evidence() {
        let mut parent = check("Identity", Status::Fail, "X x (management)");
        parent.evidence.push("note".into());
        parent.children.push(check("Secret", Status::Fail, "ns/s does not exist"));
        let mut cond = check("Ready", Status::Pass, "True");
        cond.since = Some("2025-01-01T00:00:00Z".into());
        let report = report(
            vec![check("Credential", Status::Pass, "READY=true"), cond, parent],
            vec![FixStep::say("do it"), FixStep::run("then run explain again", "kubectl x")],
        );
        let text = render(&report, Style::plain(), 120, now());
        let expected = "\
Credential ns/c is NOT READY: because
|-- [ok]   Credential  READY=true
|-- [ok]   Ready       True  since 2025-01-01T00:00:00Z (5d3h ago)
`-- [FAIL] Identity    X x (management)
    |                  note
    `-- [FAIL] Secret  ns/s does not exist
Fix:
  1. do it
  2. then run explain again:
       kubectl x
";
        assert_eq!(text, expected);
        let fancy = render(&report, Style { glyphs: true, color: false }, 120, now());
        assert!(
            fancy.contains("└── ✗ Identity    X x (management)\n    │             note\n    └── ✗ Secret"),
            "{fancy}"
        );
    }

    #[test]
    fn commands_are_never_wrapped_and_prose_is() {
        let long_cmd = format!("kubectl annotate credential c -n ns {}=x --overwrite", "a".repeat(80));
        let report = report(
            vec![],
            vec![FixStep::run("touch the Credential so that distribution runs again for every Region", &long_cmd)],
        );
        let text = render(&report, Style::plain(), 40, now());
        assert!(text.lines().any(|l| l.trim() == long_cmd), "{text}");
        for line in text.lines().filter(|l| !l.contains("kubectl") && !l.starts_with("Credential")) {
            assert!(line.chars().count() <= 40, "{line:?} wider than 40:\n{text}");
        }
        let unknown = Report { verdict: Verdict::Unknown, ..report };
        assert!(render(&unknown, Style::plain(), 80, now()).starts_with("Credential ns/c is UNKNOWN: because\n"));
    }
}
