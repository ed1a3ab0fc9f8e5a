//! Errors that end a command with exit status 2. Messages name the file, document and field,
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
    /// A command needs cluster state and none was given.
    #[error(
        "no cluster state given: pass --from DIR to read an offline estate (live access through a kubeconfig \
         is not available in this version)"
    )]
    NoEstate,
    /// `--from` names something that is not a directory.
    #[error("{}: {message}", path.display())]
    BadPath { path: PathBuf, message: String },
    /// Writing the output failed (e.g. a closed pipe).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    #[error("cannot encode JSON output: {0}")]
    Json(#[from] serde_json::Error),
}

impl CliError {
    /// A second line to print after the error, telling what to do.
    pub fn hint(&self) -> Option<&str> {
        match self {
            CliError::NotFound { hint, .. } => hint.as_deref(),
            _ => None,
        }
    }
}
