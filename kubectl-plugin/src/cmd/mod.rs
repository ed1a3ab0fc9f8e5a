//! One module per subcommand. Each returns the exit status on success; errors exit with 2.

pub mod explain;
pub mod lint;
pub mod plan;

use std::path::Path;

use credential_core::MemoryEstate;
use credential_core::estate::{LoadOptions, load_dir_with_report};

use crate::cli::EstateArgs;
use crate::error::CliError;

/// Exit statuses shared by every command (documented in the README section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Ready / nothing denied / no problems.
    Ok = 0,
    /// Not ready / something denied / problems found.
    Problems = 1,
}

/// Loads the estate named by `--from`; load warnings go to stderr so stdout stays parseable.
pub fn load_estate(args: &EstateArgs) -> Result<(MemoryEstate, String), CliError> {
    let Some(dir) = &args.from else { return Err(CliError::NoEstate) };
    if !dir.is_dir() {
        let message = if dir.exists() {
            "is not a directory: --from takes a directory of YAML files (use `lint -f` for single files)"
        } else {
            "does not exist: --from takes a directory of YAML files"
        };
        return Err(CliError::BadPath { path: dir.clone(), message: message.to_string() });
    }
    let opts = LoadOptions { system_namespace: args.system_namespace.clone(), ..LoadOptions::default() };
    let (estate, report) = load_dir_with_report(dir, &opts)?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    Ok((estate, display_dir(dir)))
}

/// The directory as the user wrote it, without a trailing slash.
fn display_dir(dir: &Path) -> String {
    let s = dir.display().to_string();
    let trimmed = s.trim_end_matches('/');
    if trimmed.is_empty() { s } else { trimmed.to_string() }
}

/// kubectl's NotFound error for a Credential, with where we looked and what exists there.
pub fn credential_not_found(name: &str, namespace: &str, dir: &str, available: &[String]) -> CliError {
    let hint = if available.is_empty() {
        format!("there are no Credentials in namespace {namespace} of {dir}")
    } else {
        let names: Vec<&str> = available.iter().map(|k| k.rsplit('/').next().unwrap_or(k)).take(20).collect();
        format!("Credentials in namespace {namespace}: {}", names.join(", "))
    };
    CliError::NotFound {
        message: format!(
            "Error (NotFound): credentials.k0rdent.mirantis.com \"{name}\" not found in namespace {namespace} of {dir}"
        ),
        hint: Some(hint),
    }
}
