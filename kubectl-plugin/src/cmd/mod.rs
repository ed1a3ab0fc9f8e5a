//! One module per subcommand. Each returns the exit status on success; errors exit with 2
//! (`list` with 1, as kubectl get).

pub mod complete;
pub mod distribution;
pub mod explain;
pub mod lint;
pub mod list;
pub mod live;
pub mod orphans;
pub mod plan;
pub mod wait;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use credential_core::estate::{LoadOptions, load_dir_with_report};
use credential_core::readiness::Source;
use credential_core::{Cluster, Estate, Gvk, MemoryEstate};
use serde_json::Value;

use crate::cli::EstateArgs;
use crate::error::CliError;

/// Exit statuses shared by every command (documented in the README section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Ready / nothing denied / no problems.
    Ok = 0,
    /// Not ready / something denied / problems found / not found.
    Problems = 1,
    /// Unknown: no definite failure, but something could not be checked from here.
    Unknown = 3,
}

impl Exit {
    /// The exit status of an explain verdict.
    pub fn of(verdict: credential_core::readiness::Verdict) -> Self {
        use credential_core::readiness::Verdict;
        match verdict {
            Verdict::Ready => Exit::Ok,
            Verdict::NotReady => Exit::Problems,
            Verdict::Unknown => Exit::Unknown,
        }
    }
}

/// Which Credentials a command looks at.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    One(&'a str),
    Namespace,
    AllNamespaces,
}

/// The estate a command works on, live or offline, and the Credentials asked for.
pub struct Loaded {
    pub estate: MemoryEstate,
    /// How the estate was read (for wording: `--from DIR` or live).
    pub source: Source,
    /// Regions whose cluster could not be read (live only), with the error.
    pub unreachable: BTreeMap<String, String>,
    /// Of those, the Regions whose kubeconfig Secret holds no kubeconfig (a definite failure).
    pub invalid: BTreeMap<String, String>,
    /// The namespace used: `-n`, else the context's (live) or kcm-system (offline).
    pub namespace: String,
    /// The Credentials in scope, ordered by namespace/name.
    pub credentials: Vec<Arc<Value>>,
    /// What could not be read besides the clusters (live only; see [`distribution`]).
    pub side_errors: BTreeMap<String, String>,
    /// The API server of each Region read, with its version (live only).
    pub servers: BTreeMap<String, live::RegionalServer>,
    /// The namespace of credential-guard's webhook (its Lease and orphan records).
    pub webhook_namespace: String,
}

impl Loaded {
    /// Why the estate holds nothing of `cluster` (a Region's API unreachable, no files for it).
    pub fn why_not_read(&self, cluster: &Cluster) -> String {
        match (cluster, &self.source) {
            (Cluster::Region(r), Source::Live) => format!(
                "regional API unreachable: {}",
                self.unreachable.get(r).map(String::as_str).unwrap_or("not read")
            ),
            (Cluster::Region(r), Source::Files { dir }) => {
                format!("no files under {}/regions/{r}/", dir.trim_end_matches('/'))
            }
            (Cluster::Management, _) => "the management cluster is not known".to_string(),
        }
    }

    /// What to add to a command line so it reads the same state again.
    pub fn rerun_flags(&self, args: &EstateArgs) -> String {
        match &self.source {
            Source::Files { dir } => format!(" --from {dir}"),
            Source::Live => {
                let mut s = String::new();
                if let Some(p) = &args.connect.kubeconfig {
                    s.push_str(&format!(" --kubeconfig {}", p.display()));
                }
                if let Some(c) = &args.connect.context {
                    s.push_str(&format!(" --context {c}"));
                }
                s
            }
        }
    }
}

/// A Credential name as given: `NAME`, `credential/NAME`, `credentials/NAME` or the output of
/// `-o name` (`credential.k0rdent.mirantis.com/NAME`), so that `list -o name | xargs ...` works.
pub fn credential_name(given: &str) -> Result<String, CliError> {
    let Some((kind, name)) = given.split_once('/') else { return Ok(given.to_string()) };
    let kind = kind.to_ascii_lowercase();
    let group = kind.split_once('.').map(|(_, g)| g);
    let resource = kind.split('.').next().unwrap_or_default();
    let group_ok = group.is_none_or(|g| g == credential_core::K0RDENT_GROUP || g == "v1beta1.k0rdent.mirantis.com");
    if matches!(resource, "credential" | "credentials") && group_ok && !name.is_empty() && !name.contains('/') {
        return Ok(name.to_string());
    }
    Err(CliError::Invalid(format!(
        "{given:?} is not a Credential: this command takes NAME, credential/NAME or credential.k0rdent.mirantis.com/NAME"
    )))
}

/// Runs a future to completion on a small runtime: live commands are I/O-bound and short.
pub fn block_on<F: std::future::Future>(fut: F) -> Result<F::Output, CliError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(rt.block_on(fut))
}

/// Loads the estate: offline from `--from DIR`, else live through the kubeconfig. Load warnings
/// go to stderr so stdout stays parseable.
pub fn load_estate(args: &EstateArgs, namespace: Option<&str>, scope: Scope<'_>) -> Result<Loaded, CliError> {
    let Some(dir) = &args.from else {
        return block_on(load_live(args, namespace, scope))?;
    };
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
    let dir = display_dir(dir);
    let namespace = namespace.unwrap_or(credential_core::DEFAULT_SYSTEM_NAMESPACE).to_string();
    let list_ns = |ns: Option<&str>| estate.list(&Cluster::Management, &Gvk::credential(), ns);
    let credentials = match scope {
        Scope::One(name) => match estate.get(&Cluster::Management, &Gvk::credential(), Some(&namespace), name) {
            Some(c) => vec![c],
            None => {
                let available: Vec<String> =
                    list_ns(Some(&namespace)).iter().map(|c| credential_core::model::display_name(c)).collect();
                let elsewhere: Vec<String> = list_ns(None)
                    .iter()
                    .filter(|c| c.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
                    .filter_map(|c| c.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string))
                    .collect();
                return Err(credential_not_found(name, &namespace, &dir, &available, &elsewhere));
            }
        },
        Scope::Namespace => list_ns(Some(&namespace)),
        Scope::AllNamespaces => list_ns(None),
    };
    Ok(Loaded {
        estate,
        source: Source::Files { dir },
        unreachable: BTreeMap::new(),
        invalid: BTreeMap::new(),
        namespace,
        credentials,
        side_errors: BTreeMap::new(),
        servers: BTreeMap::new(),
        webhook_namespace: args.webhook_namespace().to_string(),
    })
}

async fn load_live(args: &EstateArgs, namespace: Option<&str>, scope: Scope<'_>) -> Result<Loaded, CliError> {
    let conn = live::connect(&args.connect).await?;
    let namespace = namespace.map(str::to_string).unwrap_or_else(|| conn.namespace.clone());
    let wanted = match scope {
        Scope::One(name) => live::Wanted::One { namespace: &namespace, name },
        Scope::Namespace => live::Wanted::Namespace(&namespace),
        Scope::AllNamespaces => live::Wanted::All,
    };
    let live = live::load(&conn, &args.system_namespace, args.webhook_namespace(), wanted).await?;
    Ok(Loaded {
        estate: live.estate,
        source: Source::Live,
        unreachable: live.unreachable,
        invalid: live.invalid,
        namespace,
        credentials: live.credentials,
        side_errors: live.side_errors,
        servers: live.servers,
        webhook_namespace: args.webhook_namespace().to_string(),
    })
}

/// The directory as the user wrote it, without a trailing slash.
fn display_dir(dir: &Path) -> String {
    let s = dir.display().to_string();
    let trimmed = s.trim_end_matches('/');
    if trimmed.is_empty() { s } else { trimmed.to_string() }
}

/// kubectl's NotFound error for a Credential, with where we looked and what exists there. When a
/// Credential of that name exists in other namespaces, the hint names them and the flag to add.
pub fn credential_not_found(
    name: &str,
    namespace: &str,
    dir: &str,
    available: &[String],
    elsewhere: &[String],
) -> CliError {
    let hint = if let Some(first) = elsewhere.first() {
        format!("found in {}: add -n {first}", elsewhere.join(", "))
    } else if available.is_empty() {
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

/// Writes a value as JSON or YAML.
pub fn write_structured(
    out: &mut dyn std::io::Write,
    value: &impl serde::Serialize,
    yaml: bool,
) -> Result<(), CliError> {
    if yaml {
        let text = serde_saphyr::to_string(value).map_err(|e| CliError::Yaml(e.to_string()))?;
        out.write_all(text.as_bytes())?;
    } else {
        serde_json::to_writer_pretty(&mut *out, value)?;
        writeln!(out)?;
    }
    Ok(())
}
