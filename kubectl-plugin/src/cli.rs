//! Command-line interface (clap derive). One subcommand per module under `cmd/`.
//!
//! kubectl does not forward its global flags to plugins (`kubectl --context x credential` is an
//! error), so the connection flags (`--kubeconfig`, `--context`, `--cluster`, `--user`, `-n`,
//! `-A`) are the plugin's own and come after the plugin name.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Explain k0rdent Credential readiness, list Credentials, lint manifests with the admission
/// webhook's rules, and preview cluster identity distribution.
#[derive(Debug, Parser)]
#[command(name = "kubectl-credential", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// When to use colour and tree glyphs: auto = only on a terminal and without NO_COLOR.
    #[arg(long, global = true, value_enum, default_value_t = ColorMode::Auto)]
    pub color: ColorMode,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Explain why a Credential is (not) ready: ordered checks, root cause and fix. Without NAME,
    /// one summary line per Credential of the namespace (-A: of every namespace), not-ready first.
    ///
    /// Exit status: 0 ready, 1 not ready, 2 error (e.g. the Credential does not exist).
    Explain(ExplainArgs),
    /// List Credentials with their readiness, Region, identity and distribution status.
    ///
    /// Exit status: 0 listed (also when nothing matched), 1 error (as kubectl get).
    #[command(visible_alias = "get")]
    List(ListArgs),
    /// Check manifests with the webhook's admission rules, as if they were created together.
    ///
    /// Exit status: 0 nothing denied, 1 something denied, 2 usage or input error.
    Lint(LintArgs),
    /// Show what cluster identity distribution would copy for a Credential, where, and what
    /// differs from what is there now. Writes nothing.
    ///
    /// Exit status: 0 no problems, 1 problems, 2 error.
    Plan(PlanArgs),
    /// Validate kubelet CredentialProviderConfig files and show which image credential providers
    /// the kubelet runs for an image.
    Provider(crate::provider::ProviderArgs),
    /// Print a shell completion script (bash, zsh or fish) for the standalone binary.
    ///
    /// Under kubectl (1.26+), completion goes through `kubectl_complete-credential` instead: link it
    /// to this binary (see the README).
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

    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Name of the Credential; without it, every Credential of the namespace is summarised.
    pub name: Option<String>,

    /// Namespace of the Credential (default: the context's namespace; kcm-system with --from).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,

    /// Summarise the Credentials of every namespace.
    #[arg(short = 'A', long, conflicts_with_all = ["name", "namespace"])]
    pub all_namespaces: bool,

    #[command(flatten)]
    pub estate: EstateArgs,

    #[arg(short = 'o', long, value_enum, default_value_t = ReportOutput::Text)]
    pub output: ReportOutput,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Names of Credentials to show (default: all of the namespace).
    pub names: Vec<String>,

    /// Namespace (default: the context's namespace).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,

    /// List the Credentials of every namespace (NAMESPACE column first).
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,

    /// Label selector, e.g. `-l k0rdent.mirantis.com/region=region1`.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Output format: a table by default; wide adds columns; json/yaml print the objects (a List
    /// when several); name prints `credential.k0rdent.mirantis.com/<name>`.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<ListOutput>,

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

    #[arg(short = 'o', long, value_enum, default_value_t = ReportOutput::Text)]
    pub output: ReportOutput,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
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

/// Output of lint and provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListOutput {
    Wide,
    Json,
    Yaml,
    Name,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorMode {
    Auto,
    Always,
    Never,
}
