//! The live estate: what `explain`, `plan` and `wait` need from the management
//! cluster and the Regions' clusters, read into a [`MemoryEstate`] so the same readiness and
//! planning code runs live and offline.
//!
//! Reads are few and concurrent: one round trip for the Credentials, Regions, ProviderInterfaces
//! and ClusterDeployments; then, at the same time, discovery in the management cluster and, per
//! Region, its kubeconfig Secret, ProviderInterfaces and discovery (see [`super::region`]), and the
//! side objects (see [`super::extras`]); then the identities and their references (one round per
//! reference level); then the copies in each target cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use credential_core::identity::{self, ObjectKey, PlanProblem};
use credential_core::model;
use credential_core::{Cluster, Estate, Gvk, MemoryEstate};
use kube::api::ListParams;
use serde_json::Value;

use super::client::{Kind, Rest, RestError};
use super::connect::Connection;
use super::extras::read_extras;
use super::reader::Reader;
use super::region::{RegionalServer, kubeconfig_ref, read_region};
use crate::error::CliError;

/// Which Credentials to read.
#[derive(Debug, Clone, Copy)]
pub enum Wanted<'a> {
    One { namespace: &'a str, name: &'a str },
    Namespace(&'a str),
    All,
}

/// What live mode read.
pub struct LiveEstate {
    pub estate: MemoryEstate,
    /// What could not be read besides the clusters (the webhook's Lease, the orphan records, the
    /// Events, KCM's Management), keyed as in [`super::distribution`], with the error.
    pub side_errors: BTreeMap<String, String>,
    /// The API server of each Region read, with its version.
    pub servers: BTreeMap<String, RegionalServer>,
    /// Regions whose cluster could not be read, with the error.
    pub unreachable: BTreeMap<String, String>,
    /// Of those, the Regions whose kubeconfig Secret holds no kubeconfig (a definite failure).
    pub invalid: BTreeMap<String, String>,
    /// The Credentials asked for, ordered by namespace/name.
    pub credentials: Vec<Arc<Value>>,
}

/// Objects read per cluster, inserted into the final estate together.
#[derive(Default)]
struct Parts {
    objects: BTreeMap<Cluster, Vec<Value>>,
}

impl Parts {
    fn add(&mut self, cluster: &Cluster, objs: impl IntoIterator<Item = Value>) {
        self.objects.entry(cluster.clone()).or_default().extend(objs);
    }

    fn estate(&self, system_namespace: &str, skip: &BTreeMap<String, String>) -> MemoryEstate {
        let mut e = MemoryEstate::new(system_namespace);
        for (cluster, objs) in &self.objects {
            if let Cluster::Region(r) = cluster
                && skip.contains_key(r)
            {
                continue;
            }
            e.add_cluster(cluster.clone());
            for o in objs {
                e.insert(cluster, o.clone());
            }
        }
        e
    }
}

/// Every group/version a ProviderInterface names (identities and references).
pub fn pi_gvs(pi: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let gv = |e: &Value| {
        let g = e.get("group").and_then(Value::as_str).unwrap_or_default();
        let v = e.get("version").and_then(Value::as_str).unwrap_or_default();
        if v.is_empty() { None } else { Some(if g.is_empty() { v.to_string() } else { format!("{g}/{v}") }) }
    };
    for entry in pi.pointer("/spec/clusterIdentities").and_then(Value::as_array).into_iter().flatten() {
        out.extend(gv(entry));
        for r in entry.get("references").and_then(Value::as_array).into_iter().flatten() {
            out.extend(gv(r));
        }
    }
    out.retain(|g| g != "v1");
    out
}

fn identity_gv(cred: &Value) -> Option<String> {
    let av = cred.pointer("/spec/identityRef/apiVersion").and_then(Value::as_str).filter(|s| !s.is_empty())?;
    (av != "v1").then(|| av.to_string())
}

/// Reads everything `explain`/`plan` look at for the wanted Credentials.
pub async fn load(
    conn: &Connection,
    system_namespace: &str,
    webhook_ns: &str,
    wanted: Wanted<'_>,
) -> Result<LiveEstate, CliError> {
    let rest = &conn.rest;
    let server = rest.server.clone();
    let mgmt = Cluster::Management;
    let known = |gvk: Gvk| Kind::of(&gvk).map_err(|e| e.into_cli(&server));
    let (cred_kind, region_kind, pi_kind, cd_kind) = (
        known(Gvk::credential())?,
        known(Gvk::region())?,
        known(Gvk::provider_interface())?,
        known(Gvk::cluster_deployment())?,
    );

    // Phase 1: the Credentials and the objects every check reads, in one round trip.
    let creds = async {
        match wanted {
            Wanted::One { namespace, name } => rest.get(&cred_kind, Some(namespace), name).await.map(|c| vec![c]),
            Wanted::Namespace(ns) => rest.list(&cred_kind, Some(ns), &ListParams::default()).await.map(|l| l.0),
            Wanted::All => rest.list(&cred_kind, None, &ListParams::default()).await.map(|l| l.0),
        }
    };
    let cd_ns = match wanted {
        Wanted::One { namespace, .. } | Wanted::Namespace(namespace) => Some(namespace),
        Wanted::All => None,
    };
    let (creds, regions, pis, cds) = tokio::join!(
        creds,
        rest.list_if_served(&region_kind, None),
        rest.list_if_served(&pi_kind, None),
        rest.list_if_served(&cd_kind, cd_ns),
    );
    let creds = match creds {
        Ok(c) => c,
        Err(e) if e.is_not_found() => {
            if let Wanted::One { namespace, name } = wanted {
                return Err(not_found(rest, &cred_kind, e, namespace, name).await);
            }
            return Err(CliError::Invalid(format!(
                "the server doesn't have a resource type \"credentials\" (is k0rdent installed in the cluster at \
                 {server}?)"
            )));
        }
        Err(e) => return Err(e.into_cli(&server)),
    };
    let (regions, pis, cds) = (
        regions.map_err(|e| e.into_cli(&server))?,
        pis.map_err(|e| e.into_cli(&server))?,
        cds.map_err(|e| e.into_cli(&server))?,
    );

    let mut parts = Parts::default();
    parts.add(&mgmt, creds.iter().cloned());
    parts.add(&mgmt, regions.iter().cloned());
    parts.add(&mgmt, pis.iter().cloned());
    parts.add(&mgmt, cds);

    // Phase 2: management discovery, and every Region's cluster, at the same time.
    let mut mgmt_reader = Reader::new(rest.clone());
    let mut mgmt_gvs: BTreeSet<String> = [credential_core::K0RDENT_API_VERSION.to_string()].into();
    mgmt_gvs.extend(creds.iter().filter_map(identity_gv));
    mgmt_gvs.extend(pis.iter().flat_map(pi_gvs));
    let mut by_region: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in &creds {
        if let Some(r) = c.pointer("/spec/region").and_then(Value::as_str).filter(|r| !r.is_empty()) {
            let gvs = by_region.entry(r.to_string()).or_default();
            gvs.insert(credential_core::K0RDENT_API_VERSION.to_string());
            gvs.extend(identity_gv(c));
        }
    }
    let region_reads = by_region.into_iter().filter_map(|(region, gvs)| {
        let obj = regions.iter().find(|r| r.pointer("/metadata/name").and_then(Value::as_str) == Some(&region))?;
        let kc = kubeconfig_ref(obj, system_namespace);
        Some(read_region(rest, region, kc, gvs))
    });
    let (disc, region_reads, (extras, side_errors)) = tokio::join!(
        mgmt_reader.discover(mgmt_gvs),
        futures_util::future::join_all(region_reads),
        read_extras(rest, webhook_ns, wanted)
    );
    disc.map_err(|e| e.into_cli(&server))?;
    parts.add(&mgmt, extras);

    let mut unreachable = BTreeMap::new();
    let mut invalid = BTreeMap::new();
    let mut servers = BTreeMap::new();
    let mut readers: BTreeMap<Cluster, Reader> = BTreeMap::new();
    for read in region_reads {
        parts.add(&mgmt, read.secret);
        servers.insert(read.region.clone(), read.server);
        let cluster = Cluster::Region(read.region.clone());
        match read.result {
            Ok((reader, pis)) => {
                parts.add(&cluster, pis);
                readers.insert(cluster, reader);
            }
            Err(e) => {
                if read.invalid {
                    invalid.insert(read.region.clone(), e.clone());
                }
                unreachable.insert(read.region, e);
            }
        }
    }
    let crds = |parts: &mut Parts, mgmt_reader: &Reader, readers: &BTreeMap<Cluster, Reader>| {
        parts.objects.entry(Cluster::Management).or_default().extend(mgmt_reader.crd_objects());
        for (c, r) in readers {
            parts.objects.entry(c.clone()).or_default().extend(r.crd_objects());
        }
    };
    crds(&mut parts, &mgmt_reader, &readers);

    // Phase 3: identities and their references in the management cluster, one round per level.
    let mut fetched: BTreeSet<ObjectKey> = BTreeSet::new();
    for _ in 0..=identity::MAX_DEPTH + 1 {
        let estate = parts.estate(system_namespace, &unreachable);
        let mut want = BTreeSet::new();
        for cred in &creds {
            want.extend(identity_key(cred, &estate));
            let plans = [identity::plan(cred, &estate), identity::plan_for_target(cred, &estate, mgmt.clone())];
            for plan in &plans {
                want.extend(plan.objects().filter(|c| c.object.is_none()).map(|c| c.source.clone()));
                for p in &plan.problems {
                    if let PlanProblem::SourceMissing { key } = p {
                        want.insert(key.clone());
                    }
                }
            }
        }
        want.retain(|k| !fetched.contains(k));
        if want.is_empty() {
            break;
        }
        let objs = mgmt_reader.fetch(&want).await.map_err(|e| e.into_cli(&server))?;
        parts.add(&mgmt, objs);
        fetched.extend(want);
    }

    // Phase 4: the copies where distribution puts them, per target cluster concurrently.
    let estate = parts.estate(system_namespace, &unreachable);
    let mut targets: BTreeMap<Cluster, BTreeSet<ObjectKey>> = BTreeMap::new();
    for cred in &creds {
        let plan = identity::plan(cred, &estate);
        if let Some(t) = &plan.target_cluster {
            targets.entry(t.clone()).or_default().extend(plan.copies.iter().map(|c| c.target.clone()));
        }
    }
    let mgmt_targets = targets.remove(&mgmt).unwrap_or_default();
    let regional = readers.iter_mut().filter_map(|(c, r)| {
        let keys = targets.remove(c)?;
        Some(async move { (c.clone(), r.fetch(&keys).await) })
    });
    let (mgmt_copies, regional) =
        tokio::join!(mgmt_reader.fetch(&mgmt_targets), futures_util::future::join_all(regional));
    parts.add(&mgmt, mgmt_copies.map_err(|e| e.into_cli(&server))?);
    for (cluster, res) in regional {
        match (res, &cluster) {
            (Ok(objs), _) => parts.add(&cluster, objs),
            (Err(e), Cluster::Region(r)) => {
                unreachable.insert(r.clone(), e.to_string());
            }
            (Err(_), Cluster::Management) => {}
        }
    }
    crds(&mut parts, &mgmt_reader, &readers);

    let estate = parts.estate(system_namespace, &unreachable);
    let mut credentials: Vec<Arc<Value>> = creds.into_iter().map(Arc::new).collect();
    credentials.sort_by_key(|c| model::display_name(c));
    Ok(LiveEstate { estate, side_errors, servers, unreachable, invalid, credentials })
}

/// The identity object itself, where readiness looks for it (also when no ProviderInterface
/// declares it, so that plans resolve nothing).
fn identity_key(cred: &Value, estate: &MemoryEstate) -> Option<ObjectKey> {
    let iref = cred.pointer("/spec/identityRef")?;
    let s = |f: &str| iref.get(f).and_then(Value::as_str).filter(|s| !s.is_empty());
    let gvk = Gvk::from_api_version(s("apiVersion")?, s("kind")?);
    let name = s("name")?;
    let cred_ns = cred.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default");
    let namespace = match estate.namespaced(&Cluster::Management, &gvk)? {
        false => None,
        true => Some(s("namespace").unwrap_or(cred_ns).to_string()),
    };
    Some(ObjectKey::new(gvk, namespace, name))
}

/// kubectl's NotFound, plus where a Credential of that name does exist ("found in kcm-system: add
/// -n kcm-system") or else the Credentials that exist in the namespace.
async fn not_found(rest: &Rest, cred_kind: &Kind, e: RestError, namespace: &str, name: &str) -> CliError {
    let RestError::Status { reason, message, .. } = e else { return e.into_cli(&rest.server) };
    let elsewhere: Vec<String> = match rest.list(cred_kind, None, &ListParams::default()).await {
        Ok((items, _)) => items
            .iter()
            .filter(|c| c.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
            .filter_map(|c| c.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string))
            .collect(),
        Err(_) => Vec::new(),
    };
    if let Some(first) = elsewhere.first() {
        let hint = Some(format!("found in {}: add -n {first}", elsewhere.join(", ")));
        return CliError::Server { reason, message, hint };
    }
    let hint = match rest.list(cred_kind, Some(namespace), &ListParams::default()).await {
        Ok((items, _)) if items.is_empty() => Some(format!("there are no Credentials in namespace {namespace}")),
        Ok((items, _)) => {
            let names: Vec<&str> =
                items.iter().filter_map(|c| c.pointer("/metadata/name").and_then(Value::as_str)).take(20).collect();
            Some(format!("Credentials in namespace {namespace}: {}", names.join(", ")))
        }
        Err(_) => None,
    };
    CliError::Server { reason, message, hint }
}
