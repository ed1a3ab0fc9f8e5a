//! A TEST STAND-IN for KCM's Credential controller (KCM 1.5 and later), not KCM: just enough of
//! its cluster identity distribution (reference `k0rdent-kcm-behaviour.md`, section 4) to show
//! trigger mode end to end on real API servers. On every Credential event (KCM's controller
//! watches Credentials with no predicate, so an annotation change counts) it copies a regional
//! Credential's identity and its references into the Region's cluster the way KCM does:
//! the ProviderInterface entry of the regional cluster matched by exact apiVersion and kind; the
//! identity read from the management cluster (`<system namespace>/<name>` when identityRef has a
//! namespace, else cluster-scoped) and placed in the Credential's namespace when namespaced;
//! references one level deep (name by a dot-split path, namespace by `namespaceFieldPath` or the
//! system namespace, rewritten to the Credential's namespace when that path is set); then per
//! object a GET and a CREATE (namespace ensured first; labels replaced by `managed: "true"` and
//! `credential.<ns>.<name>: "true"`) or a full UPDATE of a managed object (labels: the existing
//! ones plus this Credential's; annotations: the source's, kept as KCM keeps them). Objects
//! without the managed label are left alone. Not modelled: release on deletion, the 15-minute
//! resync, AccessManagement, managed (non-regional) Credentials.
//!
//! It counts its own writes per (apiserver verb, resource) and its reads (GET and LIST of resources,
//! its watch aside) per cluster, verb and resource, so a test can tell them apart from anyone
//! else's in each apiserver's `apiserver_request_total`.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::regional::{CRED_AV, Real};

/// Writes by (apiserver verb as `apiserver_request_total` labels it, resource).
pub type Writes = BTreeMap<(String, String), f64>;

/// Reads by cluster (`management` or the Region's name), then (verb, resource).
type Reads = BTreeMap<String, Writes>;

/// What the stand-in's reads count under for the management cluster.
pub const MANAGEMENT: &str = "management";

pub struct KcmStandIn {
    task: tokio::task::JoinHandle<()>,
    writes: Arc<Mutex<Writes>>,
    reads: Arc<Mutex<Reads>>,
    /// Credential events handled (each one a full copy attempt).
    reconciles: Arc<Mutex<u64>>,
}

impl Drop for KcmStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Ctx {
    mgmt: kube::Client,
    regions: HashMap<String, kube::Client>,
    system_namespace: String,
    writes: Arc<Mutex<Writes>>,
    reads: Arc<Mutex<Reads>>,
}

impl KcmStandIn {
    /// Starts reconciling the Credentials of `mgmt` (admin client); `regions` maps a Region's name
    /// to an admin client of its cluster.
    pub fn start(mgmt: kube::Client, regions: HashMap<String, kube::Client>, system_namespace: &str) -> KcmStandIn {
        let writes: Arc<Mutex<Writes>> = Arc::default();
        let reconciles: Arc<Mutex<u64>> = Arc::default();
        let reads: Arc<Mutex<Reads>> = Arc::default();
        let ctx = Ctx {
            mgmt,
            regions,
            system_namespace: system_namespace.to_string(),
            writes: Arc::clone(&writes),
            reads: Arc::clone(&reads),
        };
        let count = Arc::clone(&reconciles);
        let task = tokio::spawn(async move {
            let ar = ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("k0rdent.mirantis.com", "v1beta1", "Credential"),
                "credentials",
            );
            let api: Api<DynamicObject> = Api::all_with(ctx.mgmt.clone(), &ar);
            let stream = watcher(api, watcher::Config::default());
            futures_util::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                let cred = match ev {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => serde_json::to_value(o).unwrap(),
                    _ => continue,
                };
                // KCM requeues a failed reconcile; a few quick retries stand in for that.
                for _ in 0..5 {
                    match ctx.reconcile(&cred).await {
                        Ok(()) => break,
                        Err(e) => {
                            eprintln!("KCM stand-in: {e}");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
                *count.lock().unwrap() += 1;
            }
        });
        KcmStandIn { task, writes, reads, reconciles }
    }

    /// Its writes so far, by (verb, resource).
    pub fn writes(&self) -> Writes {
        self.writes.lock().unwrap().clone()
    }

    /// Its resource reads (GET and LIST) so far.
    pub fn reads(&self) -> f64 {
        self.reads.lock().unwrap().values().flat_map(|r| r.values()).sum()
    }

    /// Its resource reads in one cluster (`MANAGEMENT` or a Region's name), by (verb, resource).
    pub fn reads_in(&self, cluster: &str) -> Writes {
        self.reads.lock().unwrap().get(cluster).cloned().unwrap_or_default()
    }

    pub fn reconciles(&self) -> u64 {
        *self.reconciles.lock().unwrap()
    }
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// A dot-split path (KCM's NestedString), no indexes.
fn nested<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    path.split('.').try_fold(v, |v, k| v.get(k)).and_then(Value::as_str)
}

fn set_nested(v: &mut Value, path: &str, value: &str) {
    let mut cur = v;
    let parts: Vec<&str> = path.split('.').collect();
    for k in &parts[..parts.len() - 1] {
        cur = &mut cur[*k];
    }
    cur[parts[parts.len() - 1]] = json!(value);
}

async fn resource(client: &kube::Client, api_version: &str, kind: &str) -> Result<(ApiResource, bool), String> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let (ar, caps) = kube::discovery::pinned_kind(client, &GroupVersionKind::gvk(group, version, kind))
        .await
        .map_err(|e| format!("discovery of {kind}: {e}"))?;
    Ok((ar, caps.scope == Scope::Namespaced))
}

fn api(client: &kube::Client, ar: &ApiResource, namespaced: bool, ns: &str) -> Api<DynamicObject> {
    if namespaced { Api::namespaced_with(client.clone(), ns, ar) } else { Api::all_with(client.clone(), ar) }
}

impl Ctx {
    fn read(&self, cluster: &str, verb: &str, resource: &str) {
        let mut reads = self.reads.lock().unwrap();
        *reads
            .entry(cluster.to_string())
            .or_default()
            .entry((verb.to_string(), resource.to_string()))
            .or_insert(0.0) += 1.0;
    }

    fn wrote(&self, verb: &str, resource: &str) {
        *self.writes.lock().unwrap().entry((verb.to_string(), resource.to_string())).or_insert(0.0) += 1.0;
    }

    async fn reconcile(&self, cred: &Value) -> Result<(), String> {
        let region = s(cred, "/spec/region");
        if region.is_empty() || cred.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok(());
        }
        let Some(rclient) = self.regions.get(region) else { return Ok(()) };
        let (cred_ns, cred_name) = (s(cred, "/metadata/namespace"), s(cred, "/metadata/name"));
        let iref = &cred["spec"]["identityRef"];
        let (id_av, id_kind, id_name) = (s(iref, "/apiVersion"), s(iref, "/kind"), s(iref, "/name"));
        // Step 1: the ProviderInterface entry in the regional cluster (exact apiVersion + kind).
        let pi_ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("k0rdent.mirantis.com", "v1beta1", "ProviderInterface"),
            "providerinterfaces",
        );
        self.read(region, "LIST", "providerinterfaces");
        let pis = Api::<DynamicObject>::all_with(rclient.clone(), &pi_ar)
            .list(&Default::default())
            .await
            .map_err(|e| format!("list ProviderInterfaces: {e}"))?;
        let entry = pis.items.iter().find_map(|pi| {
            let pi = serde_json::to_value(pi).unwrap();
            pi["spec"]["clusterIdentities"].as_array()?.iter().find_map(|ci| {
                let av = match s(ci, "/group") {
                    "" => s(ci, "/version").to_string(),
                    g => format!("{g}/{}", s(ci, "/version")),
                };
                (av == id_av && s(ci, "/kind") == id_kind).then(|| ci.clone())
            })
        });
        let Some(entry) = entry else { return Ok(()) };
        // Step 2: the identity from the management cluster.
        let (id_ar, id_namespaced) = resource(&self.mgmt, id_av, id_kind).await?;
        let src_ns = if s(iref, "/namespace").is_empty() { "" } else { self.system_namespace.as_str() };
        self.read(MANAGEMENT, "GET", &id_ar.plural);
        let identity = api(&self.mgmt, &id_ar, id_namespaced, src_ns)
            .get(id_name)
            .await
            .map_err(|e| format!("get ClusterIdentity {id_kind} {id_name}: {e}"))?;
        let mut identity = serde_json::to_value(identity).unwrap();
        if id_namespaced {
            identity["metadata"]["namespace"] = json!(cred_ns);
        }
        // Step 3: references, one level.
        let mut objects = Vec::new();
        for r in entry["references"].as_array().cloned().unwrap_or_default() {
            let name = nested(&identity, s(&r, "/nameFieldPath")).ok_or("reference name not found")?.to_string();
            let ns_path = s(&r, "/namespaceFieldPath");
            let src = if ns_path.is_empty() {
                self.system_namespace.clone()
            } else {
                nested(&identity, ns_path).unwrap_or_default().to_string()
            };
            let av = match s(&r, "/group") {
                "" => s(&r, "/version").to_string(),
                g => format!("{g}/{}", s(&r, "/version")),
            };
            let (ar, namespaced) = resource(&self.mgmt, &av, s(&r, "/kind")).await?;
            self.read(MANAGEMENT, "GET", &ar.plural);
            let obj =
                api(&self.mgmt, &ar, namespaced, &src).get(&name).await.map_err(|e| format!("get {name}: {e}"))?;
            let mut obj = serde_json::to_value(obj).unwrap();
            if !ns_path.is_empty() {
                set_nested(&mut identity, ns_path, cred_ns);
                obj["metadata"]["namespace"] = json!(cred_ns);
            }
            objects.push((av, s(&r, "/kind").to_string(), obj));
        }
        objects.push((id_av.to_string(), id_kind.to_string(), identity));
        // Step 4: GET, then CREATE or UPDATE, in the regional cluster.
        let label = format!("k0rdent.mirantis.com/credential.{cred_ns}.{cred_name}");
        for (av, kind, mut obj) in objects {
            let (ar, namespaced) = resource(rclient, &av, &kind).await?;
            let meta = obj["metadata"].as_object_mut().unwrap();
            for k in [
                "creationTimestamp",
                "finalizers",
                "managedFields",
                "ownerReferences",
                "resourceVersion",
                "selfLink",
                "uid",
            ] {
                meta.remove(k);
            }
            let name = s(&obj, "/metadata/name").to_string();
            let ns = s(&obj, "/metadata/namespace").to_string();
            if namespaced {
                self.ensure_namespace(region, rclient, &ns).await?;
            }
            let a = api(rclient, &ar, namespaced, &ns);
            self.read(region, "GET", &ar.plural);
            match a.get_opt(&name).await.map_err(|e| format!("get {kind} {name}: {e}"))? {
                None => {
                    obj["metadata"]["labels"] = json!({"k0rdent.mirantis.com/managed": "true", label.as_str(): "true"});
                    let o: DynamicObject = serde_json::from_value(obj).unwrap();
                    match a.create(&PostParams::default(), &o).await {
                        Ok(_) => self.wrote("POST", &ar.plural),
                        Err(kube::Error::Api(e)) if e.code == 409 => self.wrote("POST", &ar.plural),
                        Err(e) => return Err(format!("create {kind} {name}: {e}")),
                    }
                }
                Some(existing) => {
                    let existing = serde_json::to_value(existing).unwrap();
                    if s(&existing, "/metadata/labels/k0rdent.mirantis.com~1managed") != "true" {
                        continue; // not managed by KCM: left alone
                    }
                    let mut labels = existing["metadata"]["labels"].clone();
                    labels[label.as_str()] = json!("true");
                    obj["metadata"]["labels"] = labels;
                    obj["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"].clone();
                    let o: DynamicObject = serde_json::from_value(obj).unwrap();
                    a.replace(&name, &PostParams::default(), &o)
                        .await
                        .map_err(|e| format!("update {kind} {name}: {e}"))?;
                    self.wrote("PUT", &ar.plural);
                }
            }
        }
        Ok(())
    }

    async fn ensure_namespace(&self, region: &str, client: &kube::Client, ns: &str) -> Result<(), String> {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        self.read(region, "GET", "namespaces");
        if api.get_opt(ns).await.map_err(|e| e.to_string())?.is_some() {
            return Ok(());
        }
        let obj = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => self.wrote("POST", "namespaces"),
            Err(kube::Error::Api(e)) if e.code == 409 => self.wrote("POST", "namespaces"),
            Err(e) => return Err(format!("create namespace {ns}: {e}")),
        }
        Ok(())
    }
}

/// The Release for `version` and the Management `kcm` on it (rolled out: status.release too).
pub async fn set_kcm(mgmt: &Real, version: &str) {
    let release = format!("kcm-{}", version.replace('.', "-"));
    mgmt.seed(json!({"apiVersion": CRED_AV, "kind": "Release", "metadata": {"name": release},
        "spec": {"version": version, "kcm": {"template": format!("kcm-{release}")},
                 "capi": {"template": "cluster-api-1-0-0"}}}))
        .await;
    mgmt.seed(json!({"apiVersion": CRED_AV, "kind": "Management", "metadata": {"name": "kcm"},
        "spec": {"release": release}, "status": {"release": release}}))
        .await;
}
