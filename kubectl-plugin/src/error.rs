//! Errors that end a command with exit status 2 (1 for `list`, as kubectl get). Messages name the file, document and field,
//! and never quote object values.

use std::path::PathBuf;

use credential_core::estate::LoadError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The offline estate or a manifest could not be read.
    #[error("{0}")]
    Load(#[from] LoadError),
    /// The object asked for does not exist (kubectl's wording, plus where we looked).
    #[error("{message}")]
    NotFound { message: String, hint: Option<String> },
    /// The kubeconfig could not be read or names no usable context.
    #[error("{0}")]
    Kubeconfig(String),
    /// A request that cannot be made as asked (kubectl's wording where it has one).
    #[error("{0}")]
    Invalid(String),
    /// Something kubectl does that this plugin does not reproduce (a usage error: exit 2 in every
    /// command).
    #[error("{0}")]
    Unsupported(String),
    /// The API server answered with an error Status: kubectl's wording,
    /// `Error from server (NotFound): credentials.k0rdent.mirantis.com "x" not found`.
    #[error("Error from server ({reason}): {message}")]
    Server { reason: String, message: String, hint: Option<String> },
    /// The API server could not be reached.
    #[error("Unable to connect to the server {server}: {error}")]
    Connect { server: String, error: String },
    /// `--from` names something that is not a directory.
    #[error("{}: {message}", path.display())]
    BadPath { path: PathBuf, message: String },
    /// Writing the output failed (e.g. a closed pipe).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    #[error("cannot encode JSON output: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot encode YAML output: {0}")]
    Yaml(String),
}

impl CliError {
    /// The object asked for does not exist (exit status 1, as kubectl).
    pub fn is_not_found(&self) -> bool {
        match self {
            CliError::NotFound { .. } => true,
            CliError::Server { reason, .. } => reason == "NotFound",
            _ => false,
        }
    }

    /// A usage error (exit status 2 in every command, `list` too).
    pub fn is_usage(&self) -> bool {
        matches!(self, CliError::Unsupported(_))
    }

    /// A second line to print after the error, telling what to do.
    pub fn hint(&self) -> Option<&str> {
        match self {
            CliError::NotFound { hint, .. } => hint.as_deref(),
            CliError::Server { hint, .. } => hint.as_deref(),
            _ => None,
        }
    }
}
