//! Command-line interface (clap derive). One subcommand per module under `cmd/`.
//!
//! kubectl does not forward its global flags to plugins (`kubectl --context x credential` is an
//! error), so the connection flags (`--kubeconfig`, `--context`, `--cluster`, `--user`, `-n`,
//! `-A`) are the plugin's own and come after the plugin name, before or after the subcommand
//! (`kubectl credential -n team list`, as kubectl takes `kubectl -n team get`): see
//! [`hoist_global_flags`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::gotemplate::{GoTemplate, ParseError};
use crate::jsonpath::Template;

/// Explain k0rdent Credential readiness, list Credentials, lint manifests with the admission
/// webhook's rules, and preview cluster identity distribution.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-credential",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = "Examples:
  # Why is this Credential (not) ready? Root cause first, then the fix
  kubectl credential explain aws-cred -n kcm-system

  # Every Credential of every namespace, not ready first
  kubectl credential explain -A

  # List Credentials as kubectl get would
  kubectl credential list -A

  # Lint manifests in CI, with SARIF for code scanning
  kustomize build . | kubectl credential lint -f - -o sarif > credential-lint.sarif

Exit status: 0 ready / no problems, 1 not ready / denied / not found, 2 usage, input or API error
(list: 1, as kubectl get), 3 unknown (explain: something could not be checked from here)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// `--color`, on the commands that print colour (explain, plan, lint).
#[derive(Debug, Args, Clone, Copy)]
pub struct ColorArgs {
    /// When to use colour and tree glyphs: auto = only on a terminal and without NO_COLOR.
    #[arg(long, value_enum, default_value_t = ColorMode::Auto)]
    pub color: ColorMode,
}

/// Flags kubectl users put before the verb (`kubectl -n team get ...`): with a value, and without.
const GLOBAL_VALUE_FLAGS: &[&str] = &[
    "-n",
    "--namespace",
    "--kubeconfig",
    "--context",
    "--cluster",
    "--user",
    "--color",
    "--system-namespace",
    "--webhook-namespace",
];
const GLOBAL_SWITCHES: &[&str] = &["-A", "--all-namespaces"];

/// Moves the global flags written before the subcommand (`kubectl credential -n team list`) to
/// just after it, where clap reads them. A flag the subcommand does not take is then reported by
/// clap as usual. Anything else before the subcommand (`--help`, `--version`) stays in place.
pub fn hoist_global_flags(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let original = args.clone();
    let mut iter = args.into_iter();
    let mut out: Vec<std::ffi::OsString> = iter.next().into_iter().collect();
    let mut hoisted: Vec<std::ffi::OsString> = Vec::new();
    let mut kept: Vec<std::ffi::OsString> = Vec::new();
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy().into_owned();
        let flag = text.split_once('=').map_or(text.as_str(), |(f, _)| f);
        let attached_short = text.len() > 2 && text.starts_with("-n") && !text.starts_with("--");
        if GLOBAL_VALUE_FLAGS.contains(&flag) {
            let inline = text.contains('=') || attached_short;
            hoisted.push(arg);
            if !inline && let Some(value) = iter.next() {
                hoisted.push(value);
            }
        } else if attached_short || GLOBAL_SWITCHES.contains(&flag) {
            hoisted.push(arg);
        } else if text.starts_with('-') {
            kept.push(arg);
        } else {
            // The subcommand: the hoisted flags go right after it.
            out.extend(kept);
            out.push(arg);
            out.extend(hoisted);
            out.extend(iter);
            return out;
        }
    }
    // No subcommand: leave everything as written, so clap's error names what was typed.
    original
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Explain why a Credential is (not) ready: ordered checks, root cause and fix. Without NAME,
    /// one summary line per Credential of the namespace (-A: of every namespace), not-ready first.
    ///
    /// Exit status: 0 ready, 1 not ready or not found, 2 usage or API error, 3 unknown (a check
    /// could not be made from here, e.g. a regional API this machine cannot reach; nothing failed).
    #[command(after_help = "Examples:
  # Explain one Credential: verdict and root cause, the checks, the fix
  kubectl credential explain aws-cred -n kcm-system

  # The same from exported YAML files, without a cluster
  kubectl credential explain aws-cred --from ./estate

  # Summarise every Credential; the report as JSON for a script
  kubectl credential explain -A -o json

  # Explain every Credential a list prints
  kubectl credential list -o name | xargs -n1 kubectl credential explain")]
    Explain(ExplainArgs),
    /// List Credentials with their readiness, Region, identity and distribution status.
    ///
    /// Exit status: 0 listed (also when nothing matched), 1 error or a NAME not found (as kubectl
    /// get).
    #[command(
        visible_alias = "get",
        after_help = "Examples:
  # Credentials of the current namespace; of every namespace, with labels
  kubectl credential list
  kubectl credential get -A --show-labels

  # Regional Credentials, oldest first
  kubectl credential list -l k0rdent.mirantis.com/region=region1 --sort-by=.metadata.creationTimestamp

  # Names and readiness for a script
  kubectl credential list -o jsonpath='{range .items[*]}{.metadata.name}{\"\\t\"}{.status.ready}{\"\\n\"}{end}'
  kubectl credential list -o custom-columns=NAME:.metadata.name,REGION:.spec.region
  kubectl credential list -o go-template='{{range .items}}{{.metadata.name}}{{\"\\n\"}}{{end}}'

  # From exported YAML files
  kubectl credential list --from ./estate -A"
    )]
    List(ListArgs),
    /// Check manifests with the webhook's admission rules, as if they were created together.
    ///
    /// Exit status: 0 nothing denied (warnings allowed), 1 something denied, 2 usage or input error.
    #[command(after_help = "Examples:
  # Lint a directory of manifests (regions/<name>/ subdirectories are regional clusters)
  kubectl credential lint -f ./manifests

  # Lint what kustomize renders, from standard input
  kustomize build overlays/prod | kubectl credential lint -f -

  # Reports for CI: SARIF for code scanning, JUnit XML for test reports
  kubectl credential lint -f ./manifests -o sarif > credential-lint.sarif
  kubectl credential lint -f ./manifests -o junit > credential-lint.xml")]
    Lint(LintArgs),
    /// Show what cluster identity distribution would copy for a Credential, where, and what
    /// differs from what is there now. Writes nothing.
    ///
    /// Exit status: 0 no problems, 1 problems or not found, 2 usage or API error.
    #[command(after_help = "Examples:
  # What distribution would copy for a regional Credential, compared with the region
  kubectl credential plan aws-cred -n kcm-system

  # The plan as JSON (Secret values are never printed)
  kubectl credential plan aws-cred -n kcm-system -o json")]
    Plan(PlanArgs),
    /// Wait until Credentials are ready, or until every target cluster holds the current content
    /// of their cluster identities (kubectl wait's idiom).
    ///
    /// Exit status: 0 the condition is met for every Credential, 1 timed out (each lagging
    /// Credential, Region and object is named on stderr), not found, nothing selected or an API
    /// error (as kubectl wait), 2 usage.
    #[command(after_help = "Examples:
  # Rotate a source Secret, then wait until every region holds the new content
  kubectl -n kcm-system patch secret aws-credentials --type=merge -p '{\"stringData\":{\"SecretAccessKey\":\"...\"}}'
  kubectl credential wait aws-cred -n kcm-system --for=distributed --timeout=2m

  # Wait until KCM reports two Credentials ready (explain's verdict READY)
  kubectl credential wait aws-cred azure-cred -n kcm-system --for=ready

  # Every Credential of region1 (by label), or of the namespace, as they are when the command starts
  kubectl credential wait -l k0rdent.mirantis.com/region=region1 -n kcm-system --for=distributed
  kubectl credential wait --all -n kcm-system --for=ready")]
    Wait(WaitArgs),
    /// List the records of copies that may remain in a cluster with nobody left to release them
    /// (a release given up because the Region is gone or unreadable, an uninstall).
    ///
    /// Exit status: 0 no records, 1 records listed (something may remain to clean up), 2 usage or
    /// API error.
    #[command(after_help = "Examples:
  # What may remain where, and why
  kubectl credential orphans

  # The records as JSON, for a cleanup script
  kubectl credential orphans -o json")]
    Orphans(OrphansArgs),
    /// Validate kubelet CredentialProviderConfig files and show which image credential providers
    /// the kubelet runs for an image.
    #[command(after_help = "Examples:
  kubectl credential provider validate --config /etc/kubernetes/credential-providers.yaml
  kubectl credential provider match nginx:1.25 --config /etc/kubernetes/credential-providers.yaml")]
    Provider(crate::provider::ProviderArgs),
    /// Print a shell completion script (bash, zsh or fish) for the standalone binary.
    ///
    /// Under kubectl (1.26+), completion goes through `kubectl_complete-credential` instead: link it
    /// to this binary (see the README).
    #[command(after_help = "Examples:
  # bash: load completion for the standalone binary in this shell
  source <(kubectl-credential completion bash)

  # zsh
  kubectl-credential completion zsh > \"${fpath[1]}/_kubectl-credential\"")]
    Completion(CompletionArgs),
    /// Cobra-style completion protocol used by `kubectl_complete-credential`: the words typed so
    /// far, then the word being completed. Prints one candidate a line and `:<directive>`.
    #[command(name = "__complete", hide = true)]
    Complete(CompleteArgs),
}

/// How to reach the management cluster (as kubectl: `KUBECONFIG` merge, current context).
#[derive(Debug, Args, Clone, Default)]
pub struct ConnectArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, merged, or ~/.kube/config).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    /// The kubeconfig cluster to use.
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,

    /// The kubeconfig user to use.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

/// Where cluster state comes from: a live cluster through the kubeconfig (default), or an
/// offline estate directory (`--from`).
#[derive(Debug, Args, Clone)]
pub struct EstateArgs {
    /// Read cluster state from this directory instead of a live cluster: files directly under it
    /// are the management cluster, files under DIR/regions/<name>/ that Region's cluster.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["kubeconfig", "context", "cluster", "user"])]
    pub from: Option<PathBuf>,

    /// The namespace KCM runs in (where Region kubeconfig Secrets live).
    #[arg(long, value_name = "NAMESPACE", default_value = credential_core::DEFAULT_SYSTEM_NAMESPACE)]
    pub system_namespace: String,

    /// The namespace credential-guard's webhook runs in, where its distribution leader publishes
    /// the distribution mode (Lease credential-guard-distribution) and records orphaned copies
    /// (default: the system namespace).
    #[arg(long, value_name = "NAMESPACE")]
    pub webhook_namespace: Option<String>,

    #[command(flatten)]
    pub connect: ConnectArgs,
}

impl EstateArgs {
    /// `--webhook-namespace`, else the system namespace (where deploy/ installs the webhook).
    pub fn webhook_namespace(&self) -> &str {
        self.webhook_namespace.as_deref().unwrap_or(&self.system_namespace)
    }
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Name of the Credential; without it, every Credential of the namespace is summarised.
    pub name: Option<String>,

    /// Namespace of the Credential (default: the context's namespace; kcm-system with --from).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,

    /// Summarise the Credentials of every namespace (wins over -n, as in kubectl).
    #[arg(short = 'A', long, conflicts_with = "name")]
    pub all_namespaces: bool,

    #[command(flatten)]
    pub estate: EstateArgs,

    /// Output format: text (the tree), or the same report as json or yaml.
    #[arg(short = 'o', long, value_enum, default_value_t = ReportOutput::Text)]
    pub output: ReportOutput,

    /// Show only the checks that did not pass (failed, warned or unknown) and the rows above them;
    /// without NAME, only the Credentials that are not ready.
    #[arg(long)]
    pub show_only_failing: bool,

    /// Wait until the Credential is READY (as `wait --for=ready`), then print the report.
    #[arg(short = 'w', long, requires = "name")]
    pub watch: bool,

    /// With --watch: how long to wait (kubectl durations: 30s, 5m, 1h30m).
    #[arg(long, value_name = "DURATION", default_value = "30s", requires = "watch", value_parser = parse_duration)]
    pub timeout: std::time::Duration,

    #[command(flatten)]
    pub color: ColorArgs,
}

/// What `wait --for` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WaitFor {
    /// explain's verdict is READY.
    Ready,
    /// Every target cluster holds the current content of every planned copy (any distribution mode).
    Distributed,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Names of the Credentials (`credential/NAME` and the output of `-o name` are accepted too);
    /// or `--all`, or `-l`.
    #[arg(required_unless_present_any = ["all", "selector"])]
    pub names: Vec<String>,

    /// Wait for every Credential of the namespace (those that exist when the command starts).
    #[arg(long)]
    pub all: bool,

    /// Wait for the Credentials of the namespace that match a label selector (those that exist when
    /// the command starts), e.g. `-l k0rdent.mirantis.com/region=region1`.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Namespace of the Credentials (default: the context's namespace; kcm-system with --from).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,

    /// The condition to wait for.
    #[arg(long = "for", value_enum, value_name = "CONDITION")]
    pub for_: WaitFor,

    /// How long to wait before giving up (kubectl durations: 30s, 5m, 1h30m; 0 checks once).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,

    #[command(flatten)]
    pub estate: EstateArgs,
}

#[derive(Debug, Args)]
pub struct OrphansArgs {
    #[command(flatten)]
    pub estate: EstateArgs,

    /// Output format: a table, or the records as json or yaml.
    #[arg(short = 'o', long, value_enum, default_value_t = ReportOutput::Text)]
    pub output: ReportOutput,

    /// Do not print the header line of the table.
    #[arg(long)]
    pub no_headers: bool,
}

/// A kubectl duration: `30s`, `5m`, `1h30m`, `500ms`, a bare number of seconds; `0` checks once.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration {s:?}: use e.g. 30s, 5m or 1h30m");
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    let mut total = std::time::Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').ok_or_else(bad)?;
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit_end = rest[digits..].find(|c: char| c.is_ascii_digit()).map_or(rest.len(), |i| digits + i);
        let unit = match &rest[digits..unit_end] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += std::time::Duration::from_secs_f64(number * unit);
        rest = &rest[unit_end..];
    }
    Ok(total)
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Names of Credentials to show (default: all of the namespace); `credential/NAME` and the
    /// output of `-o name` are accepted too.
    pub names: Vec<String>,

    /// Namespace (default: the context's namespace; kcm-system with --from).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,

    /// List the Credentials of every namespace (NAMESPACE column first); wins over -n.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    /// Label selector, e.g. `-l k0rdent.mirantis.com/region=region1` (=, ==, !=, in, notin, !key).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Output format: a table by default; wide adds columns; json|yaml print the objects (a List
    /// when several); name prints `credential.k0rdent.mirantis.com/<name>`;
    /// jsonpath=TEMPLATE, custom-columns=HEADER:PATH,..., go-template=TEMPLATE (template=) and
    /// go-template-file=PATH (templatefile=) as kubectl.
    #[arg(short = 'o', long, value_name = "FORMAT", value_parser = ListFormatParser)]
    pub output: Option<ListFormat>,

    /// Sort by a JSONPath expression, e.g. `--sort-by=.metadata.creationTimestamp`.
    #[arg(long, value_name = "JSONPATH")]
    pub sort_by: Option<String>,

    /// Add a LABELS column (the Credential's labels, k=v,...).
    #[arg(long)]
    pub show_labels: bool,

    /// Read the Credentials from this directory of YAML files instead of a live cluster.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["kubeconfig", "context", "cluster", "user", "watch"])]
    pub from: Option<PathBuf>,

    /// Do not print the header line of the table.
    #[arg(long)]
    pub no_headers: bool,

    /// After listing, watch for changes and print a line per change.
    #[arg(short = 'w', long)]
    pub watch: bool,

    /// Keep metadata.managedFields in -o json|yaml.
    #[arg(long)]
    pub show_managed_fields: bool,

    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Manifest file or directory (repeatable); `-` reads standard input. Directories are read
    /// recursively; their regions/<name>/ subdirectories are regional clusters. Empty files and
    /// documents are skipped.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub files: Vec<PathBuf>,

    /// The namespace KCM runs in.
    #[arg(long, value_name = "NAMESPACE", default_value = credential_core::DEFAULT_SYSTEM_NAMESPACE)]
    pub system_namespace: String,

    /// Output format: text (`file:line: DENY ...`), json or yaml (findings and a summary), junit
    /// (JUnit XML, one test case per object) or sarif (SARIF 2.1.0 for code scanning).
    #[arg(short = 'o', long, value_enum, default_value_t = LintOutput::Text)]
    pub output: LintOutput,

    #[command(flatten)]
    pub color: ColorArgs,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Name of the Credential.
    pub name: String,

    /// Namespace of the Credential (default: the context's namespace; kcm-system with --from).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,

    #[command(flatten)]
    pub estate: EstateArgs,

    /// Output format: text, or the plan as json or yaml (Secret values redacted).
    #[arg(short = 'o', long, value_enum, default_value_t = ReportOutput::Text)]
    pub output: ReportOutput,

    #[command(flatten)]
    pub color: ColorArgs,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to print the script for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

#[derive(Debug, Args)]
pub struct CompleteArgs {
    /// The words after `kubectl credential`, the last one being completed ("" for a new word).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub words: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// Output of lint: for people, for scripts, and the report formats CI systems read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintOutput {
    Text,
    Json,
    Yaml,
    Junit,
    Sarif,
}

/// Output of explain and plan: the text, or the same information as JSON or YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportOutput {
    Text,
    Json,
    Yaml,
}

/// Output of list, as kubectl get.
#[derive(Debug, Clone, PartialEq)]
pub enum ListFormat {
    Wide,
    Json,
    Yaml,
    Name,
    JsonPath(Template),
    /// (header, path) per column.
    CustomColumns(Vec<(String, Template)>),
    /// The template, or kubectl's error for it (a template Go rejects, a file that cannot be read):
    /// reported when the command runs, with kubectl's words and exit status.
    GoTemplate(Result<GoTemplate, String>),
}

/// Every `-o` list takes, for errors and completion.
pub const LIST_FORMATS: &[&str] = &[
    "wide",
    "json",
    "yaml",
    "name",
    "jsonpath=",
    "custom-columns=",
    "go-template=",
    "go-template-file=",
    "template=",
    "templatefile=",
];

/// Why a template is refused: what was not reproduced, and what to use instead.
pub fn go_template_refusal(what: &str) -> String {
    format!(
        "go-template: {what} is not supported by kubectl credential, which prints exactly what kubectl \
         prints or refuses: use -o jsonpath=TEMPLATE (e.g. -o jsonpath='{{range .items[*]}}{{.metadata.name}}{{\"\\n\"}}{{end}}') \
         or -o custom-columns=HEADER:PATH,..., or pipe -o json into a template tool"
    )
}

/// `-o go-template=TEXT` and `-o go-template-file=PATH` (and kubectl's aliases `template=`,
/// `templatefile=`): the template, kubectl's error to report when the command runs, or a refusal.
fn parse_go_template(format: &str, arg: Option<&str>) -> Result<ListFormat, String> {
    let Some(value) = arg.filter(|a| !a.is_empty()) else {
        return Ok(ListFormat::GoTemplate(Err("template format specified but no template given".to_string())));
    };
    let text = if matches!(format, "go-template-file" | "templatefile") {
        match std::fs::read_to_string(value) {
            Ok(text) => text,
            // Go's os error wording, as kubectl prints it.
            Err(e) => {
                let reason = match e.kind() {
                    std::io::ErrorKind::NotFound => format!("open {value}: no such file or directory"),
                    std::io::ErrorKind::PermissionDenied => format!("open {value}: permission denied"),
                    std::io::ErrorKind::IsADirectory => format!("read {value}: is a directory"),
                    _ => format!("open {value}: {e}"),
                };
                return Ok(ListFormat::GoTemplate(Err(format!("error reading --template {value}, {reason}"))));
            }
        }
    } else {
        value.to_string()
    };
    match GoTemplate::parse(&text) {
        Ok(t) => Ok(ListFormat::GoTemplate(Ok(t))),
        Err(ParseError::Go(e)) => Ok(ListFormat::GoTemplate(Err(format!("error parsing template {text}, {e}")))),
        Err(ParseError::Unsupported(what)) => Err(go_template_refusal(&what)),
    }
}

/// Parses `-o` of list, and names the plain formats for help and completion.
#[derive(Debug, Clone, Copy)]
struct ListFormatParser;

impl clap::builder::TypedValueParser for ListFormatParser {
    type Value = ListFormat;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<ListFormat, clap::Error> {
        let text = value.to_str().ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidUtf8).with_cmd(cmd))?;
        parse_list_format(text).map_err(|e| {
            let arg = arg.map(|a| a.to_string()).unwrap_or_else(|| "--output".to_string());
            clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("invalid value '{text}' for '{arg}': {e}\n"))
                .with_cmd(cmd)
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        let plain = ["wide", "json", "yaml", "name"].into_iter().map(clap::builder::PossibleValue::new);
        let with_arg = LIST_FORMATS[4..].iter().map(|v| clap::builder::PossibleValue::new(v).hide(true));
        Some(Box::new(plain.chain(with_arg)))
    }
}

fn parse_list_format(s: &str) -> Result<ListFormat, String> {
    let unsupported = || {
        format!(
            "unable to match a printer suitable for the output format {s:?}, allowed formats are: {}",
            LIST_FORMATS.join(",")
        )
    };
    let (name, arg) = match s.split_once('=') {
        Some((n, a)) => (n, Some(a)),
        None => (s, None),
    };
    match (name, arg) {
        ("wide", None) => Ok(ListFormat::Wide),
        ("json", None) => Ok(ListFormat::Json),
        ("yaml", None) => Ok(ListFormat::Yaml),
        ("name", None) => Ok(ListFormat::Name),
        ("jsonpath", Some(t)) => Template::parse(t).map(ListFormat::JsonPath).map_err(|e| e.to_string()),
        ("go-template" | "go-template-file" | "template" | "templatefile", arg) => parse_go_template(name, arg),
        ("custom-columns", Some(spec)) => {
            let mut columns = Vec::new();
            for col in spec.split(',').filter(|c| !c.is_empty()) {
                let (h, p) = col.split_once(':').ok_or_else(|| {
                    format!("custom-columns format specified, but no path for column {col:?}: HEADER:PATH")
                })?;
                columns.push((h.to_string(), Template::parse(p).map_err(|e| e.to_string())?));
            }
            if columns.is_empty() {
                return Err("custom-columns format specified but no custom columns given".to_string());
            }
            Ok(ListFormat::CustomColumns(columns))
        }
        _ => Err(unsupported()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorMode {
    Auto,
    Always,
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hoisted(args: &[&str]) -> Vec<String> {
        let args = args.iter().map(std::ffi::OsString::from).collect();
        hoist_global_flags(args).into_iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn global_flags_before_the_subcommand_move_after_it() {
        assert_eq!(hoisted(&["k", "-n", "team", "list", "x"]), ["k", "list", "-n", "team", "x"]);
        assert_eq!(
            hoisted(&["k", "--context=c", "-A", "-nteam", "--color", "never", "explain"]),
            ["k", "explain", "--context=c", "-A", "-nteam", "--color", "never"]
        );
        // Without a subcommand nothing moves (clap names what was typed).
        assert_eq!(hoisted(&["k", "-n", "team"]), ["k", "-n", "team"]);
        assert_eq!(hoisted(&["k", "--help"]), ["k", "--help"]);
    }

    #[test]
    fn go_templates_parse_and_what_is_not_reproduced_is_refused_naming_the_alternatives() {
        for f in ["go-template={{.metadata.name}}", "template={{range .items}}{{.metadata.name}}{{end}}"] {
            assert!(matches!(parse_list_format(f), Ok(ListFormat::GoTemplate(Ok(_)))), "{f}");
        }
        for f in ["go-template={{define \"x\"}}{{end}}", "template={{slice .x 1}}"] {
            let e = parse_list_format(f).unwrap_err();
            assert!(e.contains("-o jsonpath=TEMPLATE") && e.contains("custom-columns"), "{e}");
        }
        // What kubectl rejects is reported when the command runs, in kubectl's words.
        let failed = |f: &str| match parse_list_format(f) {
            Ok(ListFormat::GoTemplate(Err(e))) => e,
            other => panic!("{f}: {other:?}"),
        };
        assert_eq!(failed("go-template="), "template format specified but no template given");
        assert_eq!(failed("template={{.x"), "error parsing template {{.x, template: output:1: unclosed action");
        assert_eq!(
            failed("go-template-file=/nonexistent/t.tmpl"),
            "error reading --template /nonexistent/t.tmpl, open /nonexistent/t.tmpl: no such file or directory"
        );
    }

    #[test]
    fn durations_read_like_kubectl() {
        use std::time::Duration;
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("soon").is_err() && parse_duration("").is_err() && parse_duration("5x").is_err());
    }
}
