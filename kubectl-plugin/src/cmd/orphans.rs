//! `kubectl credential orphans`: the records of copies that may remain in a cluster with nobody
//! left to release them (ConfigMap `credential-guard-orphaned-copies` in the webhook's namespace,
//! written by the distributor when it gives a release up). One GET live.

use std::io::Write;

use credential_core::distribution::{ORPHANED_COPIES, OrphanRecord};
use credential_core::readiness::ObjectRef;
use credential_core::{Cluster, MemoryEstate};
use serde::Serialize;

use super::distribution::{configmap_gvk, orphans};
use super::{Exit, block_on, live, write_structured};
use crate::cli::{OrphansArgs, ReportOutput};
use crate::error::CliError;
use crate::style::clean;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct OrphansOutput {
    /// Where the records are kept.
    config_map: ObjectRef,
    records: Vec<OrphanRecord>,
    /// Entries that are not records, each with why.
    unreadable: Vec<String>,
}

pub fn run(args: &OrphansArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    let ns = args.estate.webhook_namespace().to_string();
    let estate = match &args.estate.from {
        Some(dir) => {
            let opts = credential_core::estate::LoadOptions {
                system_namespace: args.estate.system_namespace.clone(),
                ..Default::default()
            };
            credential_core::estate::load_dir_with_report(dir, &opts)?.0
        }
        None => block_on(read_live(args, &ns))??,
    };
    let (records, unreadable) = orphans(&estate, &ns);
    for why in &unreadable {
        eprintln!("warning: ConfigMap {ns}/{ORPHANED_COPIES}: {why}");
    }
    let config_map = ObjectRef::new(&configmap_gvk(), Some(&ns), ORPHANED_COPIES, &Cluster::Management);
    let exit = if records.is_empty() { Exit::Ok } else { Exit::Problems };
    match args.output {
        ReportOutput::Json | ReportOutput::Yaml => {
            let value = OrphansOutput { config_map, records, unreadable };
            write_structured(out, &value, args.output == ReportOutput::Yaml)?;
        }
        ReportOutput::Text if records.is_empty() => {
            eprintln!("No orphaned copies recorded (ConfigMap {ns}/{ORPHANED_COPIES}).");
        }
        ReportOutput::Text => {
            let header = ["CLUSTER", "CREDENTIAL", "OBJECTS", "SINCE", "REASON"];
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|r| {
                    vec![
                        clean(&r.cluster),
                        clean(&format!("{}/{}", r.credential.namespace, r.credential.name)),
                        clean(&r.objects.join(",")),
                        clean(&r.since),
                        clean(&r.reason),
                    ]
                })
                .collect();
            out.write_all(super::list::table(&header, &rows, args.no_headers).as_bytes())?;
        }
    }
    Ok(exit)
}

/// The records ConfigMap alone, in an estate (absent when it does not exist).
async fn read_live(args: &OrphansArgs, ns: &str) -> Result<MemoryEstate, CliError> {
    let conn = live::connect(&args.estate.connect).await?;
    let rest = &conn.rest;
    let kind = live::Kind::of(&configmap_gvk()).map_err(|e| e.into_cli(&rest.server))?;
    let mut estate = MemoryEstate::new(&args.estate.system_namespace);
    if let Some(cm) = rest.get_opt(&kind, Some(ns), ORPHANED_COPIES).await.map_err(|e| e.into_cli(&rest.server))? {
        estate.insert(&Cluster::Management, cm);
    }
    Ok(estate)
}
