//! Command-line interface (clap derive). One subcommand per module under `cmd/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Explain k0rdent Credential readiness, lint manifests with the admission webhook's rules, and
/// preview cluster identity distribution.
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
    /// Explain why a Credential is (not) ready: ordered checks, root cause and fix.
    ///
    /// Exit status: 0 ready, 1 not ready, 2 error (e.g. the Credential does not exist).
    Explain(ExplainArgs),
    /// Check manifests with the webhook's admission rules, as if they were created together.
    ///
    /// Exit status: 0 nothing denied, 1 something denied, 2 usage or input error.
    Lint(LintArgs),
    /// Show what cluster identity distribution would copy for a Credential, and what blocks it.
    ///
    /// Exit status: 0 no problems, 1 problems, 2 error.
    Plan(PlanArgs),
    /// Validate kubelet CredentialProviderConfig files and show which image credential providers
    /// the kubelet runs for an image.
    Provider(crate::provider::ProviderArgs),
}

/// Where cluster state comes from. Live access (`--kubeconfig`, `--context`) is reserved for the
/// next step; today every command reads an offline estate.
#[derive(Debug, Args, Clone)]
pub struct EstateArgs {
    /// Read cluster state from this directory instead of a live cluster: files directly under it
    /// are the management cluster, files under DIR/regions/<name>/ that Region's cluster.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,

    /// The namespace KCM runs in.
    #[arg(long, value_name = "NAMESPACE", default_value = credential_core::DEFAULT_SYSTEM_NAMESPACE)]
    pub system_namespace: String,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Name of the Credential.
    pub name: String,

    /// Namespace of the Credential.
    #[arg(short = 'n', long, default_value = credential_core::DEFAULT_SYSTEM_NAMESPACE)]
    pub namespace: String,

    #[command(flatten)]
    pub estate: EstateArgs,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Manifest file or directory (repeatable). Directories are read recursively; their
    /// regions/<name>/ subdirectories are regional clusters.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub files: Vec<PathBuf>,

    /// The namespace KCM runs in.
    #[arg(long, value_name = "NAMESPACE", default_value = credential_core::DEFAULT_SYSTEM_NAMESPACE)]
    pub system_namespace: String,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Name of the Credential.
    pub name: String,

    /// Namespace of the Credential.
    #[arg(short = 'n', long, default_value = credential_core::DEFAULT_SYSTEM_NAMESPACE)]
    pub namespace: String,

    #[command(flatten)]
    pub estate: EstateArgs,

    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorMode {
    Auto,
    Always,
    Never,
}
