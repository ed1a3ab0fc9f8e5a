//! The published documentation: README.md and the mdBook source in docs/. Every relative link
//! points at a file that exists (and at a heading that exists, when it names one), SUMMARY.md lists
//! every page, and the command-line and metrics references name exactly what the webhook defines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::CommandFactory;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn book_src() -> PathBuf {
    repo_root().join("docs/src")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `.md` file under `dir`, recursively, sorted.
fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The lines of a Markdown text that are prose: fenced code blocks left out (their `#` lines are
/// shell comments, their brackets are code).
fn prose_lines(text: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push(line);
        }
    }
    out
}

/// `line` without its inline code spans.
fn without_code_spans(line: &str) -> String {
    line.split('`').step_by(2).collect::<Vec<_>>().join(" ")
}

/// The targets of the inline links and images of a Markdown text, as written.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose_lines(text) {
        let line = without_code_spans(line);
        let mut rest = line.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            // A title after the target (`(path "title")`) is not part of it.
            let target = rest[..end].split_whitespace().next().unwrap_or("");
            out.push(target.to_string());
            rest = &rest[end..];
        }
    }
    out
}

/// The paths of mdBook `{{#include PATH}}` directives (a `:anchor` or line range suffix dropped).
fn include_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("{{#include ") {
        rest = &rest[i + "{{#include ".len()..];
        let end = rest.find("}}").expect("an unterminated {{#include");
        let path = rest[..end].trim();
        out.push(path.split(':').next().unwrap().to_string());
        rest = &rest[end..];
    }
    out
}

/// The anchors of a Markdown file's headings, as mdBook (and GitHub) derive them: the heading's
/// text lower-cased, spaces turned into `-`, punctuation other than `-` and `_` dropped, and
/// `-1`, `-2`... appended to repeats.
fn heading_anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in prose_lines(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if hashes == 0 || hashes > 6 || !line[hashes..].starts_with(' ') {
            continue;
        }
        let visible = line[hashes..].trim().replace('`', "");
        let base: String = visible
            .chars()
            .filter_map(|c| {
                if c.is_alphanumeric() || c == '_' || c == '-' {
                    Some(c.to_ascii_lowercase())
                } else if c.is_whitespace() {
                    Some('-')
                } else {
                    None
                }
            })
            .collect();
        let mut id = base.clone();
        let mut n = 0;
        while out.contains(&id) {
            n += 1;
            id = format!("{base}-{n}");
        }
        out.insert(id);
    }
    out
}

/// What is wrong with the relative links and includes of one Markdown file.
fn broken_links(file: &Path) -> Vec<String> {
    let text = read(file);
    let dir = file.parent().unwrap();
    let mut problems = Vec::new();
    let show = file.strip_prefix(repo_root()).unwrap().display().to_string();
    for target in link_targets(&text) {
        if target.is_empty() {
            problems.push(format!("{show}: empty link target"));
            continue;
        }
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((p, a)) => (p, Some(a)),
            None => (target.as_str(), None),
        };
        let resolved = if path.is_empty() { file.to_path_buf() } else { dir.join(path) };
        if !resolved.exists() {
            problems.push(format!("{show}: link to {target}: {} does not exist", resolved.display()));
            continue;
        }
        if let Some(anchor) = anchor
            && resolved.extension().is_some_and(|e| e == "md")
            && !heading_anchors(&read(&resolved)).contains(anchor)
        {
            problems.push(format!("{show}: link to {target}: no heading with anchor #{anchor}"));
        }
    }
    for path in include_paths(&text) {
        if !dir.join(&path).is_file() {
            problems.push(format!("{show}: {{{{#include {path}}}}}: no such file"));
        }
    }
    problems
}

#[test]
fn every_relative_link_points_at_an_existing_file() {
    let mut files = vec![repo_root().join("README.md")];
    files.extend(markdown_files(&book_src()));
    let problems: Vec<String> = files.iter().flat_map(|f| broken_links(f)).collect();
    assert!(problems.is_empty(), "broken links:\n{}", problems.join("\n"));
}

#[test]
fn summary_lists_every_chapter() {
    let src = book_src();
    assert!(repo_root().join("docs/book.toml").is_file(), "docs/book.toml is missing");
    let summary = read(&src.join("SUMMARY.md"));
    let listed: BTreeSet<PathBuf> = link_targets(&summary).iter().map(|t| src.join(t)).collect();
    let pages: BTreeSet<PathBuf> =
        markdown_files(&src).into_iter().filter(|p| p.file_name().is_some_and(|n| n != "SUMMARY.md")).collect();
    let unlisted: Vec<_> = pages.difference(&listed).map(|p| p.display().to_string()).collect();
    assert!(unlisted.is_empty(), "pages SUMMARY.md does not list:\n{}", unlisted.join("\n"));
    // Listed but missing is a broken link, which the link test reports.
}

#[test]
fn the_link_checks_catch_what_they_exist_for() {
    let text = "[a](x.md) `[not](code.md)` ![img](i.png \"title\") [w](https://e.org)\n\
                ```sh\n[in](fence.md)\n```\n# A `b` (c)\n## A `b` (c)\n{{#include ../f.md:anchor}}\n";
    assert_eq!(link_targets(text), ["x.md", "i.png", "https://e.org"]);
    assert_eq!(include_paths(text), ["../f.md"]);
    let anchors = heading_anchors(text);
    assert!(anchors.contains("a-b-c") && anchors.contains("a-b-c-1"), "{anchors:?}");
    assert!(mentions_flag("`--listen` and --tls-cert-file", "listen"));
    assert!(!mentions_flag("--tls-cert-file", "tls-cert"));
}

/// The `credential-webhook` part of the command-line reference.
fn webhook_cli_reference() -> String {
    let text = read(&book_src().join("reference/cli.md"));
    let start = text.find("## `credential-webhook`").expect("cli.md has a `credential-webhook` section");
    text[start..].to_string()
}

/// Whether `text` names `--flag` itself, not a longer flag it is the start of.
fn mentions_flag(text: &str, flag: &str) -> bool {
    let needle = format!("--{flag}");
    text.match_indices(&needle)
        .any(|(i, _)| !text[i + needle.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-'))
}

#[test]
fn the_cli_reference_names_every_webhook_flag() {
    let reference = webhook_cli_reference();
    let cli = credential_webhook::cli::Cli::command();
    let mut flags: BTreeSet<String> = cli.get_arguments().filter_map(|a| a.get_long()).map(String::from).collect();
    for sub in cli.get_subcommands() {
        let heading = format!("### `credential-webhook {}", sub.get_name());
        assert!(reference.contains(&heading), "cli.md has no heading {heading}`");
        flags.extend(sub.get_arguments().filter_map(|a| a.get_long()).map(String::from));
    }
    flags.remove("help");
    flags.remove("version");
    for flag in &flags {
        assert!(mentions_flag(&reference, flag), "cli.md does not document --{flag}");
    }
    // And nothing the binary does not accept: the first cell of every flag row.
    for row in reference.lines().filter_map(|l| l.strip_prefix("| `--")) {
        let flag = row.split(['`', ' ']).next().unwrap();
        assert!(flags.contains(flag), "cli.md documents --{flag}, which credential-webhook does not have");
    }
}

/// Metric name -> type, as the webhook's exposition declares them (counters with `_total`).
fn registered_metrics() -> BTreeMap<String, String> {
    use credential_webhook::metrics::{FindingLabels, Metrics, RequestLabels, WebhookLabels};
    let metrics = Metrics::new();
    let distribution = credential_webhook::distribution::DistributionMetrics::default();
    metrics.register_with(|registry| distribution.register(registry));
    // A labelled family is encoded only once it has a sample: give one to each family whose label
    // type is public. (The distributor's failure family is not: its label type is private.)
    let request = RequestLabels { webhook: "validate", kind: "Credential", operation: "CREATE", decision: "allowed" };
    metrics.requests.get_or_create(&request).inc();
    metrics.duration.get_or_create(&WebhookLabels { webhook: "validate" }).observe(0.001);
    metrics.findings.get_or_create(&FindingLabels { code: "CRED001".into(), severity: "deny" }).inc();
    metrics.set_cache_synced("management", "credentials", true);
    // Name -> type as the exposition declares them. OpenMetrics names a counter family without
    // `_total`; its samples (and the reference) carry it.
    metrics
        .encode()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE credential_webhook_"))
        .map(|l| {
            let (name, kind) = l.split_once(' ').unwrap();
            let name = if kind == "counter" { format!("{name}_total") } else { name.to_string() };
            (name, kind.to_string())
        })
        .collect()
}

#[test]
fn the_metrics_reference_names_every_registered_metric() {
    let registered = registered_metrics();
    assert!(registered.len() > 10, "{registered:?}");
    let documented = documented_metrics();
    for (name, kind) in &registered {
        assert_eq!(documented.get(name), Some(kind), "metrics.md must list `{name}` as a {kind}");
    }
}

/// Name -> type as the metrics reference's tables give them (`| `name` | type | ...`).
fn documented_metrics() -> BTreeMap<String, String> {
    let reference = read(&book_src().join("reference/metrics.md"));
    reference
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|l| {
            let mut cells = l.split('|');
            let name = cells.next().unwrap().trim().trim_end_matches('`').to_string();
            let kind = cells.next().unwrap().split_whitespace().next().unwrap_or("").to_string();
            (name, kind)
        })
        .collect()
}

/// The `credential_webhook_*` metric names in a text, without the sample suffixes of histograms.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("credential_webhook_") {
        rest = &rest[i + "credential_webhook_".len()..];
        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        let name = &rest[..end];
        let name = ["_bucket", "_count", "_sum"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        out.insert(name.to_string());
        rest = &rest[end..];
    }
    out
}

#[test]
fn the_example_alerts_and_dashboard_parse_and_name_registered_metrics() {
    let dir = book_src().join("operator/monitoring");
    let registered = registered_metrics();
    let rule_text = read(&dir.join("prometheusrule.yaml"));
    let docs = credential_core::yaml::parse_documents(&rule_text, "prometheusrule.yaml").unwrap();
    assert_eq!(docs.len(), 1);
    let rule = &docs[0];
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["kind"], "PrometheusRule");
    let rules: Vec<&serde_json::Value> =
        rule["spec"]["groups"].as_array().unwrap().iter().flat_map(|g| g["rules"].as_array().unwrap()).collect();
    let alerts: BTreeSet<&str> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
    for needed in [
        "CredentialWebhookCertificateExpiresSoon",
        "CredentialWebhookDistributionFailing",
        "CredentialWebhookCacheNotSynced",
        "CredentialWebhookRejectionsSpike",
    ] {
        assert!(alerts.contains(needed), "prometheusrule.yaml has no alert {needed}");
    }
    for r in &rules {
        assert!(r["expr"].as_str().is_some_and(|e| !e.trim().is_empty()), "{r}: no expr");
        assert!(r["labels"]["severity"].is_string(), "{r}: no severity");
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&read(&dir.join("grafana-dashboard.json"))).expect("grafana-dashboard.json is JSON");
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 6 && panels.iter().all(|p| p["targets"].as_array().is_some_and(|t| !t.is_empty())));
    // Every metric either file names is one the webhook registers (or, for the families encoded
    // only once they have a sample, one the reference documents: the test above ties the two).
    let mut known = registered;
    known.extend(documented_metrics());
    let mut named = metric_names(&rule_text);
    named.extend(metric_names(&dashboard.to_string()));
    assert!(named.len() >= 8, "{named:?}");
    let unknown: Vec<&String> = named.iter().filter(|n| !known.contains_key(*n)).collect();
    assert!(unknown.is_empty(), "the examples name metrics the webhook does not register: {unknown:?}");
    assert_eq!(
        metric_names("credential_webhook_admission_duration_seconds_bucket{le}"),
        ["admission_duration_seconds".to_string()].into()
    );
}
