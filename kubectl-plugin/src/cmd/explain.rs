//! `kubectl credential explain NAME -n NS`: the readiness tree of one Credential.

use std::io::Write;

use credential_core::readiness::{self, Check, ExplainError, ExplainOptions, Report, Verdict};
use serde::Serialize;

use super::{Exit, Loaded, Scope, credential_not_found, load_estate, write_structured};
use crate::cli::{ExplainArgs, ReportOutput};
use crate::error::CliError;
use crate::style::{Style, clean};

pub fn run(args: &ExplainArgs, style: Style, out: &mut dyn Write) -> Result<Exit, CliError> {
    let scope = match (&args.name, args.all_namespaces) {
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
    };
    let Some(name) = &args.name else {
        return summary(&loaded, args, &opts, style, out);
    };
    let namespace = loaded.namespace.as_str();
    let report = match readiness::explain_with(namespace, name, &loaded.estate, &opts(namespace, name)) {
        Ok(r) => r,
        Err(ExplainError::NotFound { namespace, name, available }) => {
            return Err(credential_not_found(&name, &namespace, "the estate", &available));
        }
    };
    match args.output {
        ReportOutput::Json => write_structured(out, &report, false)?,
        ReportOutput::Yaml => write_structured(out, &report, true)?,
        ReportOutput::Text => out.write_all(render(&report, style).as_bytes())?,
    }
    Ok(if report.verdict == Verdict::Ready { Exit::Ok } else { Exit::Problems })
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
    // Not ready first; then by namespace/name (the load order).
    reports.sort_by_key(|(_, _, r)| r.verdict == Verdict::Ready);
    let exit = if reports.iter().all(|(_, _, r)| r.verdict == Verdict::Ready) { Exit::Ok } else { Exit::Problems };
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
            let mut paint: Vec<bool> = Vec::new();
            for (namespace, name, r) in &reports {
                let ready = r.verdict == Verdict::Ready;
                let mut row = vec![
                    clean(name),
                    if ready { "READY".to_string() } else { "NOT READY".to_string() },
                    if ready { String::new() } else { clean(&r.root_cause) },
                ];
                if args.all_namespaces {
                    row.insert(0, clean(namespace));
                }
                rows.push(row);
                paint.push(!ready);
            }
            let text = super::list::table(&header, &rows, false);
            for (i, line) in text.lines().enumerate() {
                // Colour after alignment, so escape codes do not count as width.
                let line = match i.checked_sub(1).map(|r| paint[r]) {
                    Some(true) if style.color => line.replacen("NOT READY", &style.red("NOT READY"), 1),
                    Some(false) if style.color => line.replacen("READY", &style.green("READY"), 1),
                    _ => line.to_string(),
                };
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(exit)
}

/// The text form: verdict line, tree of checks, fix lines.
pub fn render(report: &Report, style: Style) -> String {
    let mut s = String::new();
    let head = format!("Credential {}", clean(&report.credential));
    match report.verdict {
        Verdict::Ready => s.push_str(&format!("{} is {}\n", style.bold(&head), style.green("READY"))),
        Verdict::NotReady => s.push_str(&format!(
            "{} is {}: {}\n",
            style.bold(&head),
            style.red("NOT READY"),
            style.bold(&clean(&report.root_cause))
        )),
    }
    tree(&mut s, &report.checks, "", style);
    if !report.fix.is_empty() {
        s.push_str(&format!("{}\n", style.bold("Fix:")));
        for line in &report.fix {
            let mut wrapped = wrap(&clean(line), WIDTH - 4).into_iter();
            s.push_str(&format!("  - {}\n", wrapped.next().unwrap_or_default()));
            for more in wrapped {
                s.push_str(&format!("    {more}\n"));
            }
        }
    }
    s
}

/// Lines are wrapped to this many columns (continuations align under the summary).
const WIDTH: usize = 120;
/// Narrowest text column kept when the tree is deep.
const MIN_TEXT: usize = 40;

fn tree(s: &mut String, checks: &[Check], prefix: &str, style: Style) {
    let (branch, last_branch, cont, last_cont) = style.tree();
    let width = checks.iter().map(|c| c.name.chars().count()).max().unwrap_or(0);
    for (i, c) in checks.iter().enumerate() {
        let last = i + 1 == checks.len();
        let (b, k) = if last { (last_branch, last_cont) } else { (branch, cont) };
        let pad = width - c.name.chars().count();
        // Continuation lines sit under the summary; the child rail runs through them.
        let column = style.mark_width() + 1 + width + 2;
        let text_width = WIDTH.saturating_sub(prefix.chars().count() + 4 + column).max(MIN_TEXT);
        let rail = if c.children.is_empty() { ' ' } else { cont.chars().next().unwrap_or(' ') };
        let under = format!("{prefix}{k}{rail}{}", " ".repeat(column - 1));
        let mut summary = wrap(&clean(&c.summary), text_width).into_iter();
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
        tree(s, &c.children, &child_prefix, style);
    }
}

/// Greedy word wrap; a word longer than `width` gets a line of its own.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        } else if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use credential_core::readiness::Status;

    fn check(name: &str, status: Status, summary: &str) -> Check {
        Check { name: name.into(), status, summary: summary.into(), evidence: vec![], children: vec![] }
    }

    #[test]
    fn wrap_breaks_on_spaces_and_keeps_long_words() {
        assert_eq!(wrap("aa bb cc", 5), vec!["aa bb", "cc"]);
        assert_eq!(wrap("averyveryverylongword x", 5), vec!["averyveryverylongword", "x"]);
        assert_eq!(wrap("", 5), vec![""]);
    }

    #[test]
    fn tree_aligns_names_and_draws_rails_through_evidence() {
        let mut parent = check("Identity", Status::Fail, "X x (management)");
        parent.evidence.push("note".into());
        parent.children.push(check("Secret", Status::Fail, "ns/s does not exist"));
        let report = Report {
            credential: "ns/c".into(),
            verdict: Verdict::NotReady,
            root_cause: "because".into(),
            checks: vec![check("Credential", Status::Pass, "READY=true"), parent],
            fix: vec!["do it".into(), "Then run `x` again.".into()],
        };
        let text = render(&report, Style::plain());
        let expected = "\
Credential ns/c is NOT READY: because
|-- [ok]   Credential  READY=true
`-- [FAIL] Identity    X x (management)
    |                  note
    `-- [FAIL] Secret  ns/s does not exist
Fix:
  - do it
  - Then run `x` again.
";
        assert_eq!(text, expected);
        let fancy = render(&report, Style { glyphs: true, color: false });
        assert!(
            fancy.contains("└── ✗ Identity    X x (management)\n    │             note\n    └── ✗ Secret"),
            "{fancy}"
        );
    }
}
