//! `kubectl credential explain NAME -n NS`: the readiness tree of one Credential.

use std::io::Write;

use credential_core::readiness::{self, Check, ExplainError, ExplainOptions, Report, Verdict};
use serde::Serialize;

use super::{Exit, Loaded, Scope, credential_not_found, load_estate, write_structured};
use crate::cli::{ExplainArgs, ReportOutput};
use crate::error::CliError;
use crate::style::{Style, clean};
use crate::term::{self, age, wrap};

pub fn run(args: &ExplainArgs, style: Style, out: &mut dyn Write) -> Result<Exit, CliError> {
    let name = args.name.as_deref().map(super::credential_name).transpose()?;
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
    let report = match readiness::explain_with(namespace, name, &loaded.estate, &opts(namespace, name)) {
        Ok(r) => r,
        Err(ExplainError::NotFound { namespace, name, available }) => {
            return Err(credential_not_found(&name, &namespace, "the estate", &available, &[]));
        }
    };
    match args.output {
        ReportOutput::Json => write_structured(out, &report, false)?,
        ReportOutput::Yaml => write_structured(out, &report, true)?,
        ReportOutput::Text => out.write_all(render(&report, style, term::width(), term::now()).as_bytes())?,
    }
    Ok(Exit::of(report.verdict))
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
