//! Kubeconfig handling like kubectl: the file list, the context, cluster and user flags and their
//! errors, and the connection to the management cluster.

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::client::{Rest, error_text};
use crate::cli::ConnectArgs;
use crate::error::CliError;

/// The management cluster connection and the context's namespace.
pub struct Connection {
    pub rest: Rest,
    /// The namespace of the kubeconfig context (`default` when it names none), as kubectl uses it.
    pub namespace: String,
}

/// Reads the kubeconfig as kubectl does and connects to the management cluster.
pub async fn connect(args: &ConnectArgs) -> Result<Connection, CliError> {
    let opts =
        KubeConfigOptions { context: args.context.clone(), cluster: args.cluster.clone(), user: args.user.clone() };
    let kubeconfig = match &args.kubeconfig {
        Some(path) => Some(Kubeconfig::read_from(path).map_err(|e| {
            CliError::Kubeconfig(format!("cannot read kubeconfig {}: {}", path.display(), error_text(&e)))
        })?),
        None => read_default_kubeconfig()?,
    };
    if let Some(kc) = &kubeconfig {
        names_exist(kc, args)?;
    }
    let config = match kubeconfig {
        Some(kc) => kube::Config::from_custom_kubeconfig(kc, &opts)
            .await
            .map_err(|e| CliError::Kubeconfig(format!("invalid configuration: {}", error_text(&e))))?,
        None => kube::Config::incluster().map_err(|_| {
            CliError::Kubeconfig(
                "no kubeconfig found: set KUBECONFIG, pass --kubeconfig PATH or create ~/.kube/config (or read an \
                 offline estate with --from DIR)"
                    .to_string(),
            )
        })?,
    };
    let namespace = config.default_namespace.clone();
    Ok(Connection { rest: Rest::new(config)?, namespace })
}

/// `--context`, `--cluster` and `--user` name entries of the kubeconfig: kubectl's errors when not.
fn names_exist(kc: &Kubeconfig, args: &ConnectArgs) -> Result<(), CliError> {
    if let Some(c) = &args.context
        && !kc.contexts.iter().any(|x| &x.name == c)
    {
        return Err(CliError::Kubeconfig(format!(
            "Error in configuration: context was not found for specified context: {c}"
        )));
    }
    if let Some(c) = &args.cluster
        && !kc.clusters.iter().any(|x| &x.name == c)
    {
        return Err(CliError::Kubeconfig(format!("no server found for cluster \"{c}\"")));
    }
    if let Some(u) = &args.user
        && !kc.auth_infos.iter().any(|x| &x.name == u)
    {
        return Err(CliError::Kubeconfig(format!("auth info \"{u}\" does not exist")));
    }
    Ok(())
}

/// `KUBECONFIG` (a path list, merged; missing files skipped as kubectl does) or `~/.kube/config`.
fn read_default_kubeconfig() -> Result<Option<Kubeconfig>, CliError> {
    let read = |p: &std::path::Path| {
        Kubeconfig::read_from(p)
            .map_err(|e| CliError::Kubeconfig(format!("cannot read kubeconfig {}: {}", p.display(), error_text(&e))))
    };
    if let Some(value) = std::env::var_os("KUBECONFIG") {
        let paths: Vec<_> = std::env::split_paths(&value).filter(|p| !p.as_os_str().is_empty() && p.exists()).collect();
        if !paths.is_empty() {
            let mut merged = Kubeconfig::default();
            for p in &paths {
                merged = merged.merge(read(p)?).map_err(|e| CliError::Kubeconfig(error_text(&e)))?;
            }
            return Ok(Some(merged));
        }
    }
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    match home.map(|h| h.join(".kube").join("config")).filter(|p| p.exists()) {
        Some(p) => read(&p).map(Some),
        None => Ok(None),
    }
}
