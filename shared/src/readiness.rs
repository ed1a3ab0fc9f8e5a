//! The ordered readiness checks behind `kubectl credential explain`.
//!
//! [`explain`] walks a Credential's dependencies in a fixed order — the Credential and KCM's
//! condition, `identityRef`, the Region, the regional cluster, the identity CRD, the
//! ProviderInterface, the source identity and its references, the distributed copies, the
//! ClusterDeployments that use it — and returns a [`Report`]: a tree of [`Check`]s with evidence,
//! the verdict, the root cause (the first failing check, phrased for an operator) and what to do.
//!
//! Reference resolution is [`crate::identity::plan`]'s job; this module only reads its result.
//! Evidence names objects, fields and Secret keys, never Secret values.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::estate::{Cluster, Estate, Served};
use crate::gvk::{Gvk, builtin_scope};
use crate::identity::{self, ObjectKey, Plan, PlanProblem, PlannedCopy};
use crate::kubeconfig::region_kubeconfig_ref;
use crate::model::{self, Condition, Credential, Region, labels};

/// The overall answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    Ready,
    /// A definite failure was seen (by a check, or in KCM's own condition).
    NotReady,
    /// No definite failure, but something could not be checked from here (a regional API that is
    /// unreachable, forbidden or timed out).
    Unknown,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Warn,
    /// Not checked because it does not apply, or the offline estate says nothing about it.
    Skip,
    /// Could not be checked from here (the cluster holding the answer could not be read).
    Unknown,
}

/// One object a check looked at: the reference shape shared by explain, plan and lint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    /// Absent for cluster-scoped objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// `management`, or the name of the Region whose cluster holds the object.
    pub cluster: String,
}

impl ObjectRef {
    pub fn new(gvk: &Gvk, namespace: Option<&str>, name: &str, cluster: &Cluster) -> Self {
        ObjectRef {
            api_version: gvk.api_version(),
            kind: gvk.kind.clone(),
            namespace: namespace.filter(|n| !n.is_empty()).map(str::to_string),
            name: name.to_string(),
            cluster: cluster_name(cluster),
        }
    }

    pub fn from_key(key: &ObjectKey, cluster: &Cluster) -> Self {
        ObjectRef::new(&key.gvk, key.namespace.as_deref(), &key.name, cluster)
    }
}

/// One step of a fix: what to do, and the command that does it when there is one. Commands are
/// whole shell lines, meant to be pasted as they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FixStep {
    pub description: String,
    pub command: Option<String>,
}

impl FixStep {
    /// A step with no command (the operator decides how).
    pub fn say(description: impl Into<String>) -> Self {
        FixStep { description: description.into(), command: None }
    }

    /// A step done by one command.
    pub fn run(description: impl Into<String>, command: impl Into<String>) -> Self {
        FixStep { description: description.into(), command: Some(command.into()) }
    }
}

/// One node of the readiness tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable identifier of what is checked, for scripts: `credential`, `condition`,
    /// `identity-ref`, `region`, `regional-cluster`, `crd`, `provider-interface`, `identity`,
    /// `reference`, `copies`, `copy`, `cluster-deployments`.
    pub code: String,
    /// What is checked, for people: `Credential`, `identityRef`, `Region`, `Regional cluster`,
    /// `CRD`, `ProviderInterface`, `Identity` (children: its references), `Copies` (children: one
    /// per object), `ClusterDeployments`; a condition's type; a referenced object's kind.
    pub name: String,
    /// The outcome (`verdict` in JSON and YAML).
    #[serde(rename = "verdict")]
    pub status: Status,
    /// When what this check reads last changed (a condition's lastTransitionTime), as written.
    pub since: Option<String>,
    /// One line: what was found.
    pub summary: String,
    /// Further lines: quoted KCM messages and their meaning, names of related objects.
    pub evidence: Vec<String>,
    /// The objects this check read.
    pub objects: Vec<ObjectRef>,
    pub children: Vec<Check>,
}

impl Check {
    fn new(name: impl Into<String>, status: Status, summary: impl Into<String>) -> Self {
        let name = name.into();
        Check {
            code: code_of(&name).to_string(),
            name,
            status,
            since: None,
            summary: summary.into(),
            evidence: Vec::new(),
            objects: Vec::new(),
            children: Vec::new(),
        }
    }
    fn with_evidence(mut self, lines: impl IntoIterator<Item = String>) -> Self {
        self.evidence.extend(lines);
        self
    }
    fn with_code(mut self, code: &str) -> Self {
        self.code = code.to_string();
        self
    }
    fn with_object(mut self, object: ObjectRef) -> Self {
        self.objects.push(object);
        self
    }
}

/// The code of a top-level check, from its name.
fn code_of(name: &str) -> &'static str {
    match name {
        "Credential" => "credential",
        "identityRef" => "identity-ref",
        "Region" => "region",
        "Regional cluster" => "regional-cluster",
        "CRD" => "crd",
        "ProviderInterface" => "provider-interface",
        "Identity" => "identity",
        "Copies" => "copies",
        "ClusterDeployments" => "cluster-deployments",
        _ => "reference",
    }
}

/// The result of [`explain`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The Credential (namespace and name apart).
    pub credential: ObjectRef,
    pub verdict: Verdict,
    /// Why it is not ready (the first definite failure), or, when nothing failed, what could not be
    /// checked (the first unknown); empty when ready.
    pub root_cause: String,
    pub checks: Vec<Check>,
    /// What to do, in order; the last step is the command to run again. Empty when ready.
    pub fix: Vec<FixStep>,
}

/// How the estate was obtained, for wording only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Source {
    /// Live API access (the plugin with a kubeconfig, or the webhook's caches).
    #[default]
    Live,
    /// Offline files: the directory given to `--from`.
    Files { dir: String },
}

/// Options of [`explain_with`].
#[derive(Debug, Clone, Default)]
pub struct ExplainOptions {
    /// The command the fix tells the user to run again; `kubectl credential explain NAME -n NS`
    /// when `None`.
    pub rerun_command: Option<String>,
    pub source: Source,
    /// Regions whose cluster could not be reached, with the error (live mode). The estate does
    /// not know these clusters; the Regional cluster check names the error instead of guessing.
    pub unreachable_regions: std::collections::BTreeMap<String, String>,
    /// Regions whose kubeconfig Secret holds no kubeconfig at all (live mode), with the error: KCM
    /// cannot use it either, so this is a failure, not an unknown.
    pub invalid_kubeconfigs: std::collections::BTreeMap<String, String>,
}

/// Why no report could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    /// The Credential does not exist. `available` lists the Credentials of that namespace.
    #[error("credentials.k0rdent.mirantis.com \"{name}\" not found")]
    NotFound { namespace: String, name: String, available: Vec<String> },
}

/// Explains a Credential's readiness with default options.
pub fn explain(namespace: &str, name: &str, estate: &dyn Estate) -> Result<Report, ExplainError> {
    explain_with(namespace, name, estate, &ExplainOptions::default())
}

/// Explains a Credential's readiness.
pub fn explain_with(
    namespace: &str,
    name: &str,
    estate: &dyn Estate,
    opts: &ExplainOptions,
) -> Result<Report, ExplainError> {
    let Some(obj) = estate.get(&Cluster::Management, &Gvk::credential(), Some(namespace), name) else {
        let available = names(&estate.list(&Cluster::Management, &Gvk::credential(), Some(namespace)));
        return Err(ExplainError::NotFound { namespace: namespace.into(), name: name.into(), available });
    };
    let rerun =
        opts.rerun_command.clone().unwrap_or_else(|| format!("kubectl credential explain {name} -n {namespace}"));
    let mut ex = Explainer {
        estate,
        opts,
        namespace,
        name,
        checks: Vec::new(),
        cause: None,
        kcm_not_ready: None,
        unknown: None,
        region: None,
        region_cluster: None,
    };
    ex.run(&obj);
    Ok(ex.finish(&rerun))
}

/// The first failure (or unknown): root cause and fix steps.
struct Cause {
    text: String,
    fix: Vec<FixStep>,
}

/// The reference of a Credential, once known to be complete.
struct IdentityTarget {
    gvk: Gvk,
    namespace: Option<String>,
    name: String,
}

struct Explainer<'a> {
    estate: &'a dyn Estate,
    opts: &'a ExplainOptions,
    namespace: &'a str,
    name: &'a str,
    checks: Vec<Check>,
    cause: Option<Cause>,
    /// Set when KCM does not report the Credential Ready: (root cause, fix) to use when no check fails.
    kcm_not_ready: Option<Cause>,
    /// The first check that could not be made: the root cause when nothing failed.
    unknown: Option<Cause>,
    /// `spec.region`, when set.
    region: Option<String>,
    /// The regional cluster, when the Region exists and the estate holds its state.
    region_cluster: Option<Cluster>,
}

impl Explainer<'_> {
    /// Records the root cause unless an earlier check already failed.
    fn fail(&mut self, text: impl Into<String>, fix: Vec<FixStep>) {
        if self.cause.is_none() {
            self.cause = Some(Cause { text: text.into(), fix });
        }
    }

    /// Records what could not be checked, unless something else already could not be.
    fn unknown(&mut self, text: impl Into<String>, fix: Vec<FixStep>) {
        if self.unknown.is_none() {
            self.unknown = Some(Cause { text: text.into(), fix });
        }
    }

    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// `kubectl edit credential NAME -n NS`.
    fn edit_credential(&self) -> String {
        format!("kubectl edit credential {} -n {}", self.name, self.namespace)
    }

    fn credential_ref(&self) -> ObjectRef {
        ObjectRef::new(&Gvk::credential(), Some(self.namespace), self.name, &Cluster::Management)
    }

    /// Live mode and the regional cluster could not be read: what it holds is unknown, not missing.
    fn region_unreadable(&self) -> bool {
        self.opts.source == Source::Live
            && self.region_cluster.is_none()
            && self.region.as_ref().is_some_and(|r| self.opts.unreachable_regions.contains_key(r))
    }

    fn run(&mut self, obj: &Arc<Value>) {
        let cred = match model::from_value::<Credential>("Credential", obj) {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("Credential {} cannot be read: {}", self.key(), e.source);
                self.checks
                    .push(Check::new("Credential", Status::Fail, msg.clone()).with_object(self.credential_ref()));
                self.fail(msg, vec![FixStep::run("fix the Credential's fields", self.edit_credential())]);
                return;
            }
        };
        self.region = cred.region().map(str::to_string);
        self.check_credential(&cred);
        let target = self.check_identity_ref(&cred);
        if let Some(region) = self.region.clone() {
            self.check_region(&region);
        } else {
            self.checks.push(Check::new(
                "Region",
                Status::Skip,
                "none: spec.region is not set, the identity is used in the management cluster",
            ));
            self.checks.push(Check::new("Regional cluster", Status::Skip, "none: the Credential is not regional"));
        }
        let Some(target) = target else {
            for name in ["CRD", "ProviderInterface", "Identity", "Copies"] {
                self.checks.push(Check::new(name, Status::Skip, "not checked: spec.identityRef is incomplete"));
            }
            self.check_cluster_deployments();
            return;
        };
        self.check_crd(&target);
        let plan = identity::plan(obj, self.estate);
        self.check_provider_interface(&target, &plan);
        let refs_plan = self.reference_plan(obj, &plan);
        self.check_identity(&target, &refs_plan);
        self.check_copies(&plan);
        self.check_cluster_deployments();
    }

    fn finish(mut self, rerun: &str) -> Report {
        // A definite failure (ours, then KCM's) outranks what could not be checked.
        let (verdict, cause) = match (self.cause.take().or(self.kcm_not_ready.take()), self.unknown.take()) {
            (Some(c), _) => (Verdict::NotReady, Some(c)),
            (None, Some(u)) => (Verdict::Unknown, Some(u)),
            (None, None) => (Verdict::Ready, None),
        };
        if verdict == Verdict::NotReady
            && let Some(cds) = self.checks.iter_mut().find(|c| c.name == "ClusterDeployments" && !c.evidence.is_empty())
        {
            cds.status = Status::Warn;
            cds.summary = format!("{} (blocked until the Credential is ready)", cds.summary);
        }
        let (root_cause, fix) = match cause {
            Some(Cause { text, mut fix }) => {
                fix.push(FixStep::run("then run explain again", rerun));
                (text, fix)
            }
            None => (String::new(), Vec::new()),
        };
        Report { credential: self.credential_ref(), verdict, root_cause, checks: self.checks, fix }
    }

    // ---- 1. the Credential and KCM's condition -------------------------------------------------

    fn check_credential(&mut self, cred: &Credential) {
        let ready = cred.status.as_ref().is_some_and(|s| s.ready);
        let cond = cred.condition(labels::CREDENTIAL_READY_CONDITION);
        let generation = cred.metadata.generation.unwrap_or(0);
        let mut summary = format!("READY={ready}");
        let mut evidence = Vec::new();
        let mut stale = false;
        match cond {
            Some(c) => {
                summary.push_str(&format!("  {}", condition_text(labels::CREDENTIAL_READY_CONDITION, c)));
                if let Some(og) = c.observed_generation.filter(|og| *og < generation) {
                    stale = true;
                    evidence.push(format!(
                        "the condition is stale: observedGeneration {og} < generation {generation} (KCM has not \
                         reconciled the latest spec)"
                    ));
                }
            }
            None => summary.push_str("  no CredentialReady condition"),
        }
        let cond_true = cond.is_some_and(|c| c.status == "True");
        // A stale condition speaks for an older spec: a warning, even when it says ready.
        let mut status = if ready && cond_true && !stale { Status::Pass } else { Status::Warn };
        if !(ready && cond_true) {
            let meaning = cond.and_then(|c| c.message.as_deref()).and_then(|m| self.translate(m));
            let text = match (&meaning, cond) {
                (Some(m), _) => format!("KCM reports it not ready: {m}"),
                (None, Some(c)) => format!(
                    "KCM reports it not ready: {}",
                    c.message.as_deref().filter(|m| !m.is_empty()).unwrap_or("(no message)")
                ),
                (None, None) => "KCM has not marked it ready yet (no CredentialReady condition)".to_string(),
            };
            if let Some(m) = &meaning {
                evidence.push(format!("means: {m}"));
            }
            if cond.is_none() {
                evidence.push(
                    "KCM sets CredentialReady after distributing the identity; distribution errors leave it unset"
                        .to_string(),
                );
            }
            self.kcm_not_ready = Some(Cause {
                text,
                fix: vec![FixStep::run(
                    "wait for KCM to reconcile the Credential (it retries with backoff and every 15 minutes), or \
                     read its events",
                    format!("kubectl describe credential {} -n {}", self.name, self.namespace),
                )],
            });
        }
        if let Some(ts) = &cred.metadata.deletion_timestamp {
            status = Status::Fail;
            evidence.push(format!("deletionTimestamp {ts}"));
            let mut fix =
                vec![FixStep::say("create a new Credential for new ClusterDeployments; this one is going away")];
            if cred.metadata.finalizers.is_empty() {
                evidence.push("no finalizers: it disappears as soon as the API server processes the deletion".into());
            }
            for f in &cred.metadata.finalizers {
                let who = match f.as_str() {
                    "k0rdent.mirantis.com/credential" => {
                        "KCM removes it after releasing the cluster identities (it stays while their release fails)"
                    }
                    labels::DISTRIBUTION_FINALIZER => "credential-guard removes it after deleting the copies",
                    _ => "its controller removes it when done",
                };
                evidence.push(format!("held by finalizer {f}: {who}"));
            }
            if !cred.metadata.finalizers.is_empty() {
                fix.push(FixStep::run(
                    "see why the finalizer stays (events of the Credential)",
                    format!("kubectl describe credential {} -n {}", self.name, self.namespace),
                ));
            }
            self.fail(format!("Credential {} is being deleted", self.key()), fix);
        }
        let mut check = Check::new("Credential", status, summary).with_object(self.credential_ref());
        check.since = cond.and_then(|c| c.last_transition_time.clone());
        if let Some(msg) = cond.and_then(|c| c.message.as_deref()).filter(|_| !cond_true) {
            check.evidence.push(format!("KCM: \"{}\"", one_line(msg)));
        }
        check.evidence.extend(evidence);
        // One row per condition (KCM's and ours), with when it last changed.
        let conditions = cred.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
        for c in conditions {
            let cond_stale = c.observed_generation.is_some_and(|og| og < generation);
            let status = match c.status.as_str() {
                "True" if !cond_stale => Status::Pass,
                _ => Status::Warn,
            };
            let text = match c.reason.as_deref().filter(|r| !r.is_empty()) {
                Some(r) => format!("{} ({r})", c.status),
                None => c.status.clone(),
            };
            let mut row = Check::new(c.type_.clone(), status, text).with_code("condition");
            row.since = c.last_transition_time.clone();
            // CredentialReady's message is quoted above already.
            if let Some(m) = c.message.as_deref().filter(|m| !m.is_empty())
                && (c.type_ != labels::CREDENTIAL_READY_CONDITION || cond_true)
            {
                row.evidence.push(format!("\"{}\"", one_line(m)));
            }
            if cond_stale {
                row.evidence.push(format!(
                    "stale: observedGeneration {} < generation {generation}",
                    c.observed_generation.unwrap_or_default()
                ));
            }
            check.children.push(row);
        }
        self.checks.push(check);
    }

    /// Translates a KCM condition message into what it means for an operator.
    fn translate(&self, msg: &str) -> Option<String> {
        let where_kcm_looks = match &self.region {
            Some(r) => format!("Region {r}"),
            None => "the management cluster".to_string(),
        };
        if let Some(rest) = msg.split("no matches for ").nth(1) {
            let gv: String = rest.chars().take_while(|c| !matches!(c, ',' | ' ' | '"')).collect();
            let gv = gv.trim_start_matches("kind");
            return Some(format!(
                "{gv} is not served in {where_kcm_looks}: the provider of that API is not enabled there (or \
                 failed to install)"
            ));
        }
        if let Some(rest) = msg.strip_prefix("regions.k0rdent.mirantis.com \"") {
            let region = rest.split('"').next().unwrap_or_default();
            return Some(format!("Region {region} does not exist"));
        }
        if let Some(region) = msg.strip_prefix("region ").and_then(|r| r.strip_suffix(" is deleted")) {
            return Some(format!("Region {region} is being deleted"));
        }
        if msg.contains("ClusterIdentity object of Kind=") && msg.ends_with("not found") {
            let what = msg.split("Kind=").nth(1).and_then(|s| s.split(" not found").next()).unwrap_or_default();
            let (kind, key) = what.split_once(' ').unwrap_or((what, ""));
            let key = key.trim_start_matches('/');
            return Some(format!("the identity {kind} {key} does not exist in {where_kcm_looks}"));
        }
        if msg.contains("kubeconfig from Secret") && msg.contains("is empty") {
            return Some("the Region's kubeconfig Secret has no data under its key".to_string());
        }
        if msg.starts_with("failed to get Management") {
            return Some("KCM's Management object is missing or unreadable".to_string());
        }
        None
    }

    // ---- 2. identityRef ------------------------------------------------------------------------

    fn check_identity_ref(&mut self, cred: &Credential) -> Option<IdentityTarget> {
        let r = cred.identity_ref();
        let get = |f: Option<&String>| f.map(|s| s.as_str()).filter(|s| !s.is_empty()).map(str::to_string);
        let (av, kind, name, ns) = match r {
            Some(r) => {
                (get(r.api_version.as_ref()), get(r.kind.as_ref()), get(r.name.as_ref()), get(r.namespace.as_ref()))
            }
            None => (None, None, None, None),
        };
        let missing: Vec<&str> = [("apiVersion", &av), ("kind", &kind), ("name", &name)]
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(f, _)| *f)
            .collect();
        if !missing.is_empty() {
            let summary = if r.is_none() {
                "spec.identityRef is not set".to_string()
            } else {
                format!("spec.identityRef has no {}", missing.join(", "))
            };
            self.checks.push(Check::new("identityRef", Status::Fail, summary.clone()));
            self.fail(
                format!("{summary}: KCM cannot find the identity"),
                vec![FixStep::run(
                    "set spec.identityRef.{apiVersion,kind,name} to the cluster identity object",
                    self.edit_credential(),
                )],
            );
            return None;
        }
        let (av, kind, name) = (av.unwrap_or_default(), kind.unwrap_or_default(), name.unwrap_or_default());
        let gvk = Gvk::from_api_version(&av, &kind);
        let mut check = Check::new(
            "identityRef",
            Status::Pass,
            format!("{av} {kind} {}", ns.as_ref().map(|n| format!("{n}/{name}")).unwrap_or_else(|| name.clone())),
        );
        match (self.estate.namespaced(&Cluster::Management, &gvk), &ns) {
            (Some(true), None) => {
                check.status = Status::Warn;
                check.evidence.push(format!(
                    "{kind} is namespaced but identityRef.namespace is not set: namespace {} is assumed (set it: KCM \
                     reads a namespaced identity without namespace as cluster-scoped)",
                    self.namespace
                ));
            }
            (Some(false), Some(n)) => {
                check.evidence.push(format!("{kind} is cluster-scoped: identityRef.namespace {n} is ignored"));
            }
            _ => {}
        }
        // Where the source is read, as identity::plan reads it: a namespaced identity without
        // identityRef.namespace lives in the Credential's namespace.
        let namespace = match self.estate.namespaced(&Cluster::Management, &gvk) {
            Some(false) => None,
            Some(true) => ns.or_else(|| Some(self.namespace.to_string())),
            None => ns,
        };
        check.objects.push(ObjectRef::new(&gvk, namespace.as_deref(), &name, &Cluster::Management));
        self.checks.push(check);
        Some(IdentityTarget { gvk, namespace, name })
    }

    // ---- 3./4. Region and regional cluster ------------------------------------------------------

    fn check_region(&mut self, region: &str) {
        let mgmt = Cluster::Management;
        let Some(obj) = self.estate.get(&mgmt, &Gvk::region(), None, region) else {
            let existing = names(&self.estate.list(&mgmt, &Gvk::region(), None));
            let mut check = Check::new("Region", Status::Fail, format!("{region} does not exist"))
                .with_object(ObjectRef::new(&Gvk::region(), None, region, &mgmt));
            check.evidence.push(if existing.is_empty() {
                "no Regions exist".to_string()
            } else {
                format!("existing Regions: {}", existing.join(", "))
            });
            self.checks.push(check);
            self.checks.push(Check::new("Regional cluster", Status::Skip, "not checked: the Region does not exist"));
            self.fail(
                format!("Region {region} does not exist"),
                vec![FixStep::say(format!(
                    "create Region {region}, or create a new Credential whose spec.region names an existing \
                     Region (spec.region cannot be changed)"
                ))],
            );
            return;
        };
        let rgn: Region = model::from_value("Region", &obj).unwrap_or_default();
        let mut problems: Vec<(String, Vec<FixStep>)> = Vec::new();
        let mut evidence = Vec::new();
        if let Some(ts) = &rgn.metadata.deletion_timestamp {
            evidence.push(format!("deletionTimestamp {ts}"));
            problems.push((
                format!("Region {region} is being deleted"),
                vec![FixStep::say(format!("create a new Credential in another Region; Region {region} is going away"))],
            ));
        }
        let ready_text = match rgn.ready_condition() {
            Some(c) => {
                if c.status != "True" {
                    let why = c.message.as_deref().filter(|m| !m.is_empty()).or(c.reason.as_deref()).unwrap_or("");
                    evidence.push(format!("Ready={} ({}) {:?}", c.status, c.reason.as_deref().unwrap_or(""), why));
                    problems.push((
                        format!("Region {region} is not Ready: {why}"),
                        vec![FixStep::run(
                            format!(
                                "see which components fail (status.components) and wait for Region {region} to \
                                 become Ready"
                            ),
                            format!("kubectl get region {region} -o yaml"),
                        )],
                    ));
                }
                format!("Ready={}", c.status)
            }
            None => {
                problems.push((
                    format!("Region {region} has no Ready condition yet"),
                    vec![FixStep::run(
                        format!("wait for KCM to reconcile Region {region}, or read its events"),
                        format!("kubectl describe region {region}"),
                    )],
                ));
                "no Ready condition".to_string()
            }
        };
        let (kubeconfig, secret) = self.check_kubeconfig(region, &rgn, &mut problems);
        let status = if problems.is_empty() { Status::Pass } else { Status::Fail };
        let mut check = Check::new("Region", status, format!("{region}  {ready_text}  {kubeconfig}"))
            .with_evidence(evidence)
            .with_object(ObjectRef::new(&Gvk::region(), None, region, &mgmt));
        check.objects.extend(secret);
        check.since = rgn.ready_condition().and_then(|c| c.last_transition_time.clone());
        self.checks.push(check);
        if let Some((text, fix)) = problems.into_iter().next() {
            self.fail(text, fix);
        }
        let cluster = Cluster::Region(region.to_string());
        if self.estate.knows_cluster(&cluster) {
            let how = match &self.opts.source {
                Source::Files { dir } => format!("files under {}", regional_dir(dir, region)),
                Source::Live => "reachable".to_string(),
            };
            self.checks.push(Check::new("Regional cluster", Status::Pass, format!("{region}: {how}")));
            self.region_cluster = Some(cluster);
        } else {
            let (summary, fix) = match &self.opts.source {
                Source::Files { dir } => (
                    format!("{region}: no files under {}", regional_dir(dir, region)),
                    FixStep::run(
                        format!(
                            "export the regional cluster's objects into {} (plus its identity kinds), with the \
                             Region's kubeconfig",
                            regional_dir(dir, region)
                        ),
                        format!(
                            "mkdir -p {dir} && kubectl --kubeconfig {region}.kubeconfig get \
                             crd,providerinterfaces,secrets -A -o yaml > {dir}objects.yaml",
                            dir = regional_dir(dir, region)
                        ),
                    ),
                ),
                Source::Live if self.opts.invalid_kubeconfigs.contains_key(region) => {
                    let error = self.opts.invalid_kubeconfigs.get(region).map(String::as_str).unwrap_or_default();
                    let summary = format!("{region}: {error}");
                    self.checks.push(Check::new("Regional cluster", Status::Fail, summary));
                    self.fail(
                        format!("Region {region}: {error}"),
                        vec![FixStep::say(format!(
                            "put the regional cluster's kubeconfig into the kubeconfig Secret of Region {region}"
                        ))],
                    );
                    return;
                }
                Source::Live => {
                    let error = self.opts.unreachable_regions.get(region).map(String::as_str).unwrap_or("not read");
                    // Not a failure: KCM may reach what this machine cannot (a private Region).
                    let summary = format!("{region}: not checked, regional API unreachable from here: {error}");
                    let fix = FixStep::say(format!(
                        "run explain where the API server of Region {region} is reachable, or check that the \
                         kubeconfig Secret of Region {region} is valid"
                    ));
                    self.checks.push(Check::new("Regional cluster", Status::Unknown, summary));
                    self.unknown(
                        format!("Region {region}: the regional API is unreachable from here ({error})"),
                        vec![fix],
                    );
                    return;
                }
            };
            self.checks.push(Check::new("Regional cluster", Status::Fail, summary.clone()));
            self.fail(format!("the regional cluster of Region {region} is unknown ({summary})"), vec![fix]);
        }
    }

    /// Checks the Region's kubeconfig Secret; returns the summary fragment and the Secret.
    fn check_kubeconfig(
        &self,
        region: &str,
        rgn: &Region,
        problems: &mut Vec<(String, Vec<FixStep>)>,
    ) -> (String, Option<ObjectRef>) {
        let (ns, secret, key) = match region_kubeconfig_ref(rgn, self.estate.system_namespace()) {
            Ok(r) => (r.namespace, r.name, r.key),
            Err(e) => {
                problems.push((e.to_string(), vec![FixStep::say(e.fix())]));
                return ("no usable kubeconfig reference".to_string(), None);
            }
        };
        let label = format!("kubeconfig Secret {ns}/{secret}[{key}]");
        let object = Some(ObjectRef::new(&Gvk::secret(), Some(&ns), &secret, &Cluster::Management));
        match self.estate.get(&Cluster::Management, &Gvk::secret(), Some(&ns), &secret) {
            None => problems.push((
                format!("the kubeconfig Secret {ns}/{secret} of Region {region} does not exist"),
                vec![FixStep::say(format!(
                    "create Secret {ns}/{secret} with the regional cluster's kubeconfig under key {key:?}"
                ))],
            )),
            Some(s) if !secret_has_key(&s, &key) => problems.push((
                format!("the kubeconfig Secret {ns}/{secret} of Region {region} has no data under key {key:?}"),
                vec![FixStep::say(format!(
                    "put the regional cluster's kubeconfig into Secret {ns}/{secret} under key {key:?}"
                ))],
            )),
            Some(_) => return (label, object),
        }
        (format!("{label} (missing)"), object)
    }

    // ---- 5. CRD --------------------------------------------------------------------------------

    fn check_crd(&mut self, t: &IdentityTarget) {
        let gvk = &t.gvk;
        if builtin_scope(gvk).is_some() {
            self.checks.push(Check::new("CRD", Status::Pass, format!("{gvk} is built in (served everywhere)")));
            return;
        }
        let mut clusters = vec![Cluster::Management];
        let mut skipped_region = None;
        if let Some(r) = &self.region {
            match &self.region_cluster {
                Some(c) => clusters.push(c.clone()),
                None => skipped_region = Some(r.clone()),
            }
        }
        let mut served_in = Vec::new();
        let mut unknown_in = Vec::new();
        let mut evidence = Vec::new();
        let mut failure: Option<(String, String, Vec<FixStep>)> = None; // (summary, cause, fix)
        let mut crd_name = default_crd_name(gvk);
        let mut objects = Vec::new();
        for c in &clusters {
            let crd = find_crd(self.estate, c, gvk);
            if let Some((n, _)) = &crd {
                crd_name = n.clone();
                objects.push(ObjectRef::new(&Gvk::crd(), None, n, c));
            }
            match self.estate.served(c, gvk) {
                Served::Yes => served_in.push(cluster_name(c)),
                Served::Unknown => unknown_in.push(cluster_name(c)),
                Served::No => {
                    if failure.is_some() {
                        evidence.push(format!("not served in {} either", cluster_name(c)));
                        continue;
                    }
                    failure = Some(match crd {
                        Some((name, versions)) if !versions.is_empty() => (
                            format!(
                                "{name} serves {} in {}, not {}",
                                versions.join(", "),
                                cluster_name(c),
                                gvk.version
                            ),
                            format!(
                                "{} {} is not served at {} in {} (served: {})",
                                gvk.group,
                                gvk.kind,
                                gvk.version,
                                where_(c),
                                versions.join(", ")
                            ),
                            vec![FixStep::run(
                                format!(
                                    "set spec.identityRef.apiVersion to a served version, e.g. {}/{}",
                                    gvk.group,
                                    versions.last().map(String::as_str).unwrap_or_default()
                                ),
                                self.edit_credential(),
                            )],
                        ),
                        _ => {
                            let provider = self.provider_of(gvk);
                            (
                                format!("{crd_name} not served in {}", cluster_name(c)),
                                match (&provider, c) {
                                    (Some(p), Cluster::Region(r)) => {
                                        format!("provider {} is not enabled in Region {r}", p.display)
                                    }
                                    (Some(p), Cluster::Management) => {
                                        format!("provider {} is not enabled in the management cluster", p.display)
                                    }
                                    (None, _) => format!("{gvk} is not served in {}", where_(c)),
                                },
                                enable_provider_fix(&provider, gvk, c),
                            )
                        }
                    });
                }
            }
        }
        let unreadable = skipped_region.is_some() && self.region_unreadable();
        let status = if failure.is_some() {
            Status::Fail
        } else if unreadable {
            Status::Unknown
        } else if served_in.is_empty() {
            Status::Skip
        } else {
            Status::Pass
        };
        let summary = match &failure {
            Some((s, _, _)) => {
                if !served_in.is_empty() {
                    evidence.insert(0, format!("(served in {})", served_in.join(" and ")));
                }
                s.clone()
            }
            None if served_in.is_empty() => {
                format!("{crd_name}: not checked (no CRDs known for {})", unknown_in.join(", "))
            }
            None => format!("{crd_name} {} served in {}", gvk.version, served_in.join(" and ")),
        };
        if failure.is_none() && !unknown_in.is_empty() && !served_in.is_empty() {
            evidence.push(format!("not checked in {}: no CRDs known for it", unknown_in.join(", ")));
        }
        if let Some(r) = skipped_region {
            evidence.push(if unreadable {
                format!("not checked in {r}: its API is unreachable from here")
            } else {
                format!("not checked in {r}: its cluster is unknown")
            });
        }
        let mut check = Check::new("CRD", status, summary).with_evidence(evidence);
        check.objects = objects;
        self.checks.push(check);
        if let Some((_, cause, fix)) = failure {
            self.fail(cause, fix);
        }
    }

    /// The provider (from the management cluster's ProviderInterfaces) that declares this kind.
    fn provider_of(&self, gvk: &Gvk) -> Option<Provider> {
        let pis = self.estate.list(&Cluster::Management, &Gvk::provider_interface(), None);
        pis.iter()
            .find(|pi| pi_entries(pi).iter().any(|e| e.same_group_kind(gvk)))
            .map(|pi| Provider::from_pi_name(&object_name(pi)))
    }

    // ---- 6. ProviderInterface ------------------------------------------------------------------

    fn check_provider_interface(&mut self, t: &IdentityTarget, plan: &Plan) {
        let gvk = &t.gvk;
        let target = plan.target_cluster.clone().unwrap_or(Cluster::Management);
        let distributed = plan.target_cluster.is_some();
        if distributed && plan.problems.iter().any(|p| matches!(p, PlanProblem::TargetUnknown)) {
            let (status, why) = if self.region_unreadable() {
                (Status::Unknown, "its API is unreachable from here")
            } else {
                (Status::Skip, "its cluster is unknown")
            };
            self.checks.push(Check::new(
                "ProviderInterface",
                status,
                format!("not checked in {}: {why}", cluster_name(&target)),
            ));
            return;
        }
        let pis = self.estate.list(&target, &Gvk::provider_interface(), None);
        let exact = pis.iter().find(|pi| pi_entries(pi).iter().any(|e| e == gvk));
        let kind_only = pis
            .iter()
            .find_map(|pi| pi_entries(pi).into_iter().find(|e| e.same_group_kind(gvk)).map(|e| (object_name(pi), e)));
        let in_target = cluster_name(&target);
        let mut evidence = Vec::new();
        let declared: Vec<String> = pis.iter().map(|pi| object_name(pi)).collect();
        if let Some(pi) = exact.map(|pi| object_name(pi)).or(plan.provider_interface.clone()) {
            let refs = pis
                .iter()
                .find(|p| object_name(p) == pi)
                .and_then(|p| pi_entry_refs(p, gvk))
                .map(|n| format!(", {n} reference{}", if n == 1 { "" } else { "s" }))
                .unwrap_or_default();
            self.checks.push(
                Check::new(
                    "ProviderInterface",
                    Status::Pass,
                    format!("{pi} ({in_target}) declares {} {}{refs}", gvk.kind, gvk.version),
                )
                .with_object(ObjectRef::new(&Gvk::provider_interface(), None, &pi, &target)),
            );
            return;
        }
        let consequence = if distributed {
            "identity distribution will not happen"
        } else {
            "KCM rejects ClusterDeployments that use this Credential"
        };
        if let Some((pi, declared_gvk)) = kind_only {
            if !distributed {
                // KCM's ClusterDeployment webhook matches on kind only: nothing breaks here.
                self.checks.push(
                    Check::new(
                        "ProviderInterface",
                        Status::Pass,
                        format!("{pi} in {in_target} declares {} (kind match)", gvk.kind),
                    )
                    .with_object(ObjectRef::new(&Gvk::provider_interface(), None, &pi, &target))
                    .with_evidence([format!(
                        "it declares version {}, identityRef uses {}: matters only if the Credential is distributed",
                        declared_gvk.version, gvk.version
                    )]),
                );
                return;
            }
            let summary = format!(
                "{pi} in {in_target} declares {} only at {}, identityRef uses {}: {consequence}",
                gvk.kind,
                declared_gvk.api_version(),
                gvk.api_version()
            );
            self.checks.push(Check::new("ProviderInterface", Status::Fail, summary).with_object(ObjectRef::new(
                &Gvk::provider_interface(),
                None,
                &pi,
                &target,
            )));
            self.fail(
                format!(
                    "ProviderInterface {pi} in {} declares {} at {}, not {}: {consequence}",
                    where_(&target),
                    gvk.kind,
                    declared_gvk.api_version(),
                    gvk.api_version()
                ),
                vec![FixStep::run(
                    format!("set spec.identityRef.apiVersion to {}", declared_gvk.api_version()),
                    self.edit_credential(),
                )],
            );
            return;
        }
        evidence.push(if declared.is_empty() {
            format!("no ProviderInterfaces in {in_target}")
        } else {
            format!("ProviderInterfaces in {in_target}: {}", declared.join(", "))
        });
        let mgmt_declaring: Vec<String> = self
            .estate
            .list(&Cluster::Management, &Gvk::provider_interface(), None)
            .iter()
            .filter(|pi| pi_entries(pi).iter().any(|e| e == gvk))
            .map(|pi| object_name(pi))
            .collect();
        if target != Cluster::Management && !mgmt_declaring.is_empty() {
            evidence.push(format!("in the management cluster it is declared by {}", mgmt_declaring.join(", ")));
        }
        self.checks.push(
            Check::new(
                "ProviderInterface",
                Status::Fail,
                format!("none in {in_target} declares {} {}: {consequence}", gvk.kind, gvk.version),
            )
            .with_evidence(evidence),
        );
        let fix = match (&target, mgmt_declaring.first()) {
            (Cluster::Region(r), Some(_)) => vec![FixStep::run(
                format!(
                    "enable a provider that declares it on Region {r} (spec.providers: {}), or add a \
                     clusterIdentities entry for {gvk} to a ProviderInterface in {r}",
                    mgmt_declaring.join(" or ")
                ),
                format!("kubectl edit region {r}"),
            )],
            (Cluster::Region(r), None) => {
                vec![FixStep::say(format!(
                    "add a clusterIdentities entry for {gvk} to a ProviderInterface in Region {r}"
                ))]
            }
            (Cluster::Management, _) => {
                vec![FixStep::say(format!(
                    "add a clusterIdentities entry for {gvk} to the provider's ProviderInterface"
                ))]
            }
        };
        self.fail(format!("no ProviderInterface in {} declares {gvk}: {consequence}", where_(&target)), fix);
    }

    /// The plan whose copies show the identity's references. A distributed Credential's own plan
    /// when it resolved anything; otherwise the plan distribution would make in the management
    /// cluster (so references are shown even when distribution is off or cannot happen).
    fn reference_plan(&self, obj: &Value, plan: &Plan) -> (Plan, bool) {
        if plan.target_cluster.is_some() && plan.objects().next().is_some() {
            return (plan.clone(), false);
        }
        (identity::plan_for_target(obj, self.estate, Cluster::Management), self.region.is_some())
    }

    // ---- 7. source identity and its references -------------------------------------------------

    fn check_identity(&mut self, t: &IdentityTarget, refs: &(Plan, bool)) {
        let (plan, via_management) = refs;
        let key = ObjectKey { gvk: t.gvk.clone(), namespace: t.namespace.clone(), name: t.name.clone() };
        let label = format!("{} {}", t.gvk.kind, key_name(&key));
        if self.estate.get(&Cluster::Management, &t.gvk, t.namespace.as_deref(), &t.name).is_none() {
            let others = names(&self.estate.list(&Cluster::Management, &t.gvk, None));
            let mut check = Check::new("Identity", Status::Fail, format!("{label} does not exist in management"))
                .with_object(ObjectRef::from_key(&key, &Cluster::Management));
            if !others.is_empty() {
                check.evidence.push(format!("existing {} objects: {}", t.gvk.kind, others.join(", ")));
            }
            self.checks.push(check);
            self.fail(
                format!("identity {label} does not exist in the management cluster"),
                vec![FixStep::run(
                    format!("create {label} in the management cluster, or point spec.identityRef at an existing one"),
                    self.edit_credential(),
                )],
            );
            return;
        }
        let mut check = Check::new("Identity", Status::Pass, format!("{label} (management)"))
            .with_object(ObjectRef::from_key(&key, &Cluster::Management));
        let mut causes = Vec::new();
        check.children = self.reference_children(plan, &key, &mut causes);
        if *via_management && !check.children.is_empty() {
            check.evidence.push("references resolved with the management cluster's ProviderInterfaces".to_string());
        }
        for p in &plan.problems {
            match p {
                PlanProblem::Cycle { chain } => {
                    let text = format!(
                        "reference cycle: {}",
                        chain
                            .iter()
                            .map(|k| format!("{} {}", k.gvk.kind, key_name(k)))
                            .collect::<Vec<_>>()
                            .join(" -> ")
                    );
                    check.children.push(Check::new("Reference", Status::Fail, text.clone()));
                    causes.push((text, vec![FixStep::say("break the cycle in the identities' references")]));
                }
                PlanProblem::TooDeep { at } => {
                    let text = format!(
                        "references nest deeper than {} levels at {} {}",
                        identity::MAX_DEPTH,
                        at.gvk.kind,
                        key_name(at)
                    );
                    check.children.push(Check::new("Reference", Status::Fail, text.clone()));
                    causes.push((text, vec![FixStep::say("shorten the chain of identity references")]));
                }
                _ => {}
            }
        }
        if check.children.iter().any(|c| c.status == Status::Fail) {
            check.status = Status::Fail;
        }
        self.checks.push(check);
        if let Some((text, fix)) = causes.into_iter().next() {
            self.fail(text, fix);
        }
    }

    /// The references reached from `parent`, as checks (recursively).
    fn reference_children(
        &self,
        plan: &Plan,
        parent: &ObjectKey,
        causes: &mut Vec<(String, Vec<FixStep>)>,
    ) -> Vec<Check> {
        let mut out = Vec::new();
        for p in &plan.problems {
            if let PlanProblem::PathNotResolved { object, path, detail } = p
                && same_key(object, parent)
            {
                let kind = reference_kind(self.estate, plan, &object.gvk, path);
                let owner = format!("{} {}", object.gvk.kind, key_name(object));
                // identity::plan's detail reads "<what> (<field> "<path>") does not resolve: <why>".
                let why = detail.rsplit("does not resolve: ").next().unwrap_or(detail);
                out.push(
                    Check::new(kind.clone().unwrap_or_else(|| "Reference".into()), Status::Fail, why.to_string())
                        .with_code("reference")
                        .with_evidence([format!("the ProviderInterface reads the name at {path}")])
                        .with_object(ObjectRef::from_key(object, &Cluster::Management)),
                );
                causes.push((
                    match &kind {
                        Some(k) => format!("{owner} does not name its {k}: {why}"),
                        None => format!("{owner}: reference path {path} does not resolve: {why}"),
                    },
                    vec![FixStep::run(
                        format!("set {path} on {owner}"),
                        format!(
                            "kubectl edit {} {}{}",
                            resource_name(&object.gvk),
                            object.name,
                            object.namespace.as_ref().map(|n| format!(" -n {n}")).unwrap_or_default()
                        ),
                    )],
                ));
            }
        }
        for copy in plan.objects().filter(|c| c.via.as_ref().is_some_and(|v| same_key(&v.parent, parent))) {
            let Some(via) = &copy.via else { continue };
            let src = &copy.source;
            let name = src.gvk.kind.clone();
            let mut check = if copy.object.is_some() {
                Check::new(name, Status::Pass, format!("{}  via {}", key_name(src), via.name_field_path))
                    .with_code("reference")
                    .with_object(ObjectRef::from_key(src, &Cluster::Management))
            } else {
                let owner = format!("{} {}", via.parent.gvk.kind, key_name(&via.parent));
                causes.push((
                    format!(
                        "{} {} (named by {} of {owner}) does not exist in the management cluster",
                        src.gvk.kind,
                        key_name(src),
                        via.name_field_path
                    ),
                    vec![FixStep::say(format!(
                        "create {} {} in the management cluster, or correct {} of {owner}",
                        src.gvk.kind,
                        key_name(src),
                        via.name_field_path
                    ))],
                ));
                Check::new(
                    name,
                    Status::Fail,
                    format!("{} does not exist (named by {})", key_name(src), via.name_field_path),
                )
                .with_code("reference")
                .with_object(ObjectRef::from_key(src, &Cluster::Management))
            };
            if let Some(nsp) = &via.namespace_field_path {
                check.evidence.push(format!("namespace from {nsp}"));
            }
            check.children = self.reference_children(plan, src, causes);
            if check.children.iter().any(|c| c.status == Status::Fail) {
                check.status = Status::Fail;
            }
            out.push(check);
        }
        out
    }

    // ---- 8. copies -----------------------------------------------------------------------------

    fn check_copies(&mut self, plan: &Plan) {
        let Some(target) = plan.target_cluster.clone() else {
            self.checks.push(Check::new(
                "Copies",
                Status::Skip,
                "none needed: the Credential is neither regional nor distributed by AccessManagement",
            ));
            return;
        };
        let where_to = cluster_name(&target);
        if !self.estate.knows_cluster(&target) {
            let check = if self.region_unreadable() {
                Check::new(
                    "Copies",
                    Status::Unknown,
                    format!("not checked: the API of {where_to} is unreachable from here"),
                )
            } else {
                Check::new("Copies", Status::Skip, format!("not checked: {where_to} is unknown"))
            };
            self.checks.push(check);
            return;
        }
        let copies: Vec<&PlannedCopy> =
            plan.copies.iter().filter(|c| !(target == Cluster::Management && same_key(&c.source, &c.target))).collect();
        if copies.is_empty() {
            let summary = if plan.problems.is_empty() {
                "nothing to copy".to_string()
            } else {
                "not checked: distribution cannot plan the copies (see above)".to_string()
            };
            let status = if plan.problems.is_empty() { Status::Pass } else { Status::Skip };
            self.checks.push(Check::new("Copies", status, summary));
            return;
        }
        let mut children = Vec::new();
        let (mut present, mut missing, mut stale, mut expected) = (Vec::new(), Vec::new(), Vec::new(), 0usize);
        for copy in &copies {
            let t = &copy.target;
            let label = format!("{} {}", t.gvk.kind, key_name(t));
            let Some(desired) = &copy.object else {
                children.push(
                    Check::new(
                        t.gvk.kind.clone(),
                        Status::Skip,
                        format!("{} not checked: source missing", key_name(t)),
                    )
                    .with_code("copy")
                    .with_object(ObjectRef::from_key(t, &target)),
                );
                continue;
            };
            expected += 1;
            let Some(actual) = self.estate.get(&target, &t.gvk, t.namespace.as_deref(), &t.name) else {
                children.push(
                    Check::new(t.gvk.kind.clone(), Status::Fail, format!("{} missing", key_name(t)))
                        .with_code("copy")
                        .with_object(ObjectRef::from_key(t, &target)),
                );
                missing.push(label);
                continue;
            };
            present.push(label.clone());
            let diffs = differences(desired, &actual);
            let managed = actual
                .get("metadata")
                .and_then(|m| m.get("labels"))
                .and_then(|l| l.get(labels::MANAGED))
                .and_then(Value::as_str)
                == Some("true");
            let check = match (diffs.content.is_empty(), managed) {
                (true, true) if diffs.metadata.is_empty() => {
                    Check::new(t.gvk.kind.clone(), Status::Pass, format!("{} identical", key_name(t)))
                }
                // Usable as is; only what distribution records on it lags (it writes on its next pass).
                (true, true) => Check::new(
                    t.gvk.kind.clone(),
                    Status::Warn,
                    format!(
                        "{} identical; distribution will update its metadata: {}",
                        key_name(t),
                        diffs.metadata.join("; ")
                    ),
                ),
                (true, false) => Check::new(
                    t.gvk.kind.clone(),
                    Status::Warn,
                    format!("{} identical, but not marked managed: distribution will not update it", key_name(t)),
                ),
                (false, m) => {
                    let diffs = diffs.all().join("; ");
                    let check = Check::new(
                        t.gvk.kind.clone(),
                        Status::Fail,
                        format!(
                            "{} {}: {diffs}",
                            key_name(t),
                            if m { "stale" } else { "differs and is not managed (conflict)" },
                        ),
                    );
                    stale.push((label.clone(), diffs, m));
                    check
                }
            };
            children.push(check.with_code("copy").with_object(ObjectRef::from_key(t, &target)));
        }
        if expected == 0 {
            self.checks.push(Check::new("Copies", Status::Skip, "not checked: the objects to copy do not exist"));
            return;
        }
        let summary = if missing.is_empty() && stale.is_empty() {
            format!("{} of {expected} objects present in {where_to} and identical to the source", present.len())
        } else if stale.is_empty() {
            format!("{} of {expected} objects present in {where_to}", present.len())
        } else {
            format!("{} of {expected} objects present in {where_to}, {} stale", present.len(), stale.len())
        };
        let status = if missing.is_empty() && stale.is_empty() {
            if children.iter().any(|c| c.status == Status::Warn) { Status::Warn } else { Status::Pass }
        } else {
            Status::Fail
        };
        let mut check = Check::new("Copies", status, summary);
        check.children = children;
        self.checks.push(check);
        let retrigger = FixStep::run(
            "touch the Credential so that credential-guard distributes it again (it does on every admitted update)",
            format!(
                "kubectl annotate credential {} -n {} credential-guard.k0rdent.mirantis.com/resync=\"$(date +%s)\" \
                 --overwrite",
                self.name, self.namespace
            ),
        );
        let from = match &self.opts.source {
            Source::Files { dir } => format!(" --from {dir}"),
            Source::Live => String::new(),
        };
        let preview = FixStep::run(
            "preview what is copied",
            format!("kubectl credential plan {} -n {}{from}", self.name, self.namespace),
        );
        if !missing.is_empty() {
            self.fail(
                format!(
                    "{} of {expected} identity objects are missing in {} ({})",
                    missing.len(),
                    where_(&target),
                    missing.join(", ")
                ),
                vec![retrigger, preview],
            );
        } else if let Some((label, diffs, managed)) = stale.into_iter().next() {
            let fix = if managed {
                vec![retrigger, preview]
            } else {
                vec![FixStep::say(format!(
                    "{label} in {where_to} was not created by distribution: delete it there (distribution then \
                     recreates it) or mark it k0rdent.mirantis.com/managed=true"
                ))]
            };
            self.fail(format!("the copy of {label} in {} is stale: {diffs}", where_(&target)), fix);
        }
    }

    // ---- 9. ClusterDeployments -----------------------------------------------------------------

    fn check_cluster_deployments(&mut self) {
        let users: Vec<String> = self
            .estate
            .list(&Cluster::Management, &Gvk::cluster_deployment(), Some(self.namespace))
            .iter()
            .filter(|cd| cd.get("spec").and_then(|s| s.get("credential")).and_then(Value::as_str) == Some(self.name))
            .map(|cd| object_name(cd))
            .collect();
        let objects = users
            .iter()
            .map(|u| ObjectRef::new(&Gvk::cluster_deployment(), Some(self.namespace), u, &Cluster::Management))
            .collect();
        let mut check = if users.is_empty() {
            Check::new("ClusterDeployments", Status::Pass, "none use it")
        } else {
            Check::new(
                "ClusterDeployments",
                Status::Pass,
                format!("{} use{} it", users.len(), if users.len() == 1 { "s" } else { "" }),
            )
        };
        check.evidence = users.iter().map(|u| format!("{}/{u}", self.namespace)).collect();
        check.objects = objects;
        self.checks.push(check);
    }
}

/// A provider, named after its ProviderInterface (`cluster-api-provider-aws` -> `AWS`).
struct Provider {
    /// The ProviderInterface name, which is also the name to put in `spec.providers`.
    pi: String,
    display: String,
}

impl Provider {
    fn from_pi_name(pi: &str) -> Self {
        let short = pi.strip_prefix("cluster-api-provider-").unwrap_or(pi);
        let display = match short {
            "aws" => "AWS".to_string(),
            "azure" => "Azure".to_string(),
            "gcp" => "GCP".to_string(),
            "vsphere" => "vSphere".to_string(),
            "openstack" => "OpenStack".to_string(),
            "docker" => "Docker".to_string(),
            "kubevirt" => "KubeVirt".to_string(),
            "k0smotron" => "k0smotron".to_string(),
            other => other.to_string(),
        };
        Provider { pi: pi.to_string(), display }
    }
}

/// Enabling the provider: the Region (or Management) reconciles it, and the command run again
/// shows when it is served; no step waits for a Ready the Region may already have.
fn enable_provider_fix(provider: &Option<Provider>, gvk: &Gvk, cluster: &Cluster) -> Vec<FixStep> {
    match (provider, cluster) {
        (Some(p), Cluster::Region(r)) => vec![FixStep::run(
            format!("enable the {} provider on Region {r} (spec.providers: {})", p.display, p.pi),
            format!("kubectl edit region {r}"),
        )],
        (Some(p), Cluster::Management) => vec![FixStep::run(
            format!("enable the {} provider in the management cluster (spec.providers: {})", p.display, p.pi),
            "kubectl edit management kcm",
        )],
        (None, c) => vec![FixStep::say(format!("install the CAPI provider that serves {gvk} in {}", where_(c)))],
    }
}

/// `kind.group` as kubectl takes it (`secret` for the core group).
fn resource_name(gvk: &Gvk) -> String {
    let kind = gvk.kind.to_lowercase();
    if gvk.group.is_empty() { kind } else { format!("{kind}.{}", gvk.group) }
}

fn cluster_name(c: &Cluster) -> String {
    match c {
        Cluster::Management => "management".to_string(),
        Cluster::Region(r) => r.clone(),
    }
}

/// "Region r" or "the management cluster", for sentences.
fn where_(c: &Cluster) -> String {
    match c {
        Cluster::Management => "the management cluster".to_string(),
        Cluster::Region(r) => format!("Region {r}"),
    }
}

fn regional_dir(dir: &str, region: &str) -> String {
    format!("{}/regions/{region}/", dir.trim_end_matches('/'))
}

/// Multi-line (errors.Join) messages as one line, so the tree stays readable.
fn one_line(msg: &str) -> String {
    msg.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn condition_text(type_: &str, c: &Condition) -> String {
    match c.reason.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => format!("{type_}={} ({r})", c.status),
        None => format!("{type_}={}", c.status),
    }
}

fn object_name(v: &Value) -> String {
    v.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn names(objs: &[Arc<Value>]) -> Vec<String> {
    objs.iter().map(|o| model::display_name(o)).collect()
}

fn key_name(k: &ObjectKey) -> String {
    match &k.namespace {
        Some(ns) => format!("{ns}/{}", k.name),
        None => k.name.clone(),
    }
}

/// Same object, ignoring the version (the estate is version-insensitive too).
fn same_key(a: &ObjectKey, b: &ObjectKey) -> bool {
    a.gvk.same_group_kind(&b.gvk) && a.namespace == b.namespace && a.name == b.name
}

/// The identity GVKs a ProviderInterface declares.
fn pi_entries(pi: &Value) -> Vec<Gvk> {
    pi.get("spec")
        .and_then(|s| s.get("clusterIdentities"))
        .and_then(Value::as_array)
        .map(|a| a.iter().map(entry_gvk).collect())
        .unwrap_or_default()
}

fn entry_gvk(e: &Value) -> Gvk {
    let s = |f: &str| e.get(f).and_then(Value::as_str).unwrap_or_default().to_string();
    Gvk::new(s("group"), s("version"), s("kind"))
}

/// Number of references of the entry for exactly `gvk`.
fn pi_entry_refs(pi: &Value, gvk: &Gvk) -> Option<usize> {
    let entries = pi.get("spec")?.get("clusterIdentities")?.as_array()?;
    let entry = entries.iter().find(|e| entry_gvk(e) == *gvk)?;
    Some(entry.get("references").and_then(Value::as_array).map(Vec::len).unwrap_or(0))
}

/// The kind a reference path points at, from the ProviderInterface the plan used.
fn reference_kind(estate: &dyn Estate, plan: &Plan, parent: &Gvk, path: &str) -> Option<String> {
    let cluster = plan.target_cluster.clone().unwrap_or(Cluster::Management);
    let pis = estate.list(&cluster, &Gvk::provider_interface(), None);
    let pi = match &plan.provider_interface {
        Some(n) => pis.into_iter().filter(|p| object_name(p) == *n).collect::<Vec<_>>(),
        None => pis,
    };
    pi.iter().find_map(|p| {
        let entries = p.get("spec")?.get("clusterIdentities")?.as_array()?;
        let entry = entries.iter().find(|e| entry_gvk(e).same_group_kind(parent))?;
        let refs = entry.get("references")?.as_array()?;
        refs.iter()
            .find(|r| r.get("nameFieldPath").and_then(Value::as_str) == Some(path))
            .and_then(|r| r.get("kind")?.as_str().map(str::to_string))
    })
}

/// The CRD serving group+kind in a cluster: (name, served versions).
fn find_crd(estate: &dyn Estate, cluster: &Cluster, gvk: &Gvk) -> Option<(String, Vec<String>)> {
    estate.list(cluster, &Gvk::crd(), None).into_iter().find_map(|crd| {
        let spec = crd.get("spec")?;
        let group = spec.get("group")?.as_str()?;
        let kind = spec.get("names")?.get("kind")?.as_str()?;
        if group != gvk.group || kind != gvk.kind {
            return None;
        }
        let versions = spec
            .get("versions")
            .and_then(Value::as_array)
            .map(|vs| {
                vs.iter()
                    .filter(|v| v.get("served").and_then(Value::as_bool) == Some(true))
                    .filter_map(|v| v.get("name")?.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Some((object_name(&crd), versions))
    })
}

/// `<kind>s.<group>`: what a CRD for the kind is usually called, when none is loaded.
fn default_crd_name(gvk: &Gvk) -> String {
    let lower = gvk.kind.to_lowercase();
    let plural = if lower.ends_with('y') {
        format!("{}ies", &lower[..lower.len() - 1])
    } else if lower.ends_with('s') {
        format!("{lower}es")
    } else {
        format!("{lower}s")
    };
    format!("{plural}.{}", gvk.group)
}

fn secret_has_key(secret: &Value, key: &str) -> bool {
    ["data", "stringData"]
        .iter()
        .any(|f| secret.get(*f).and_then(|d| d.get(key)).and_then(Value::as_str).is_some_and(|v| !v.is_empty()))
}

/// Top-level fields that are not a copy's content: what the object is, server state, and metadata
/// (whose labels and owners are compared on their own).
const NOT_CONTENT: &[&str] = &["apiVersion", "kind", "metadata", "status"];

/// What differs between a planned copy and the object in the target cluster, by field, key and
/// owner name (never a value). See [`differences`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyDifferences {
    /// The object's content: what the copy exists for (a stale copy is not usable as is).
    pub content: Vec<String>,
    /// What distribution records on the copy: the labels it sets and the owners annotation.
    pub metadata: Vec<String>,
}

impl CopyDifferences {
    /// Nothing differs: the distributor writes nothing, `plan` says "unchanged".
    pub fn is_empty(&self) -> bool {
        self.content.is_empty() && self.metadata.is_empty()
    }

    /// Every difference, content first.
    pub fn all(&self) -> Vec<String> {
        self.content.iter().chain(&self.metadata).cloned().collect()
    }
}

/// What differs between the copy distribution writes (`desired`: the sanitised source, as
/// [`identity::sanitize`] makes it) and the object in the target cluster (`actual`). The one
/// comparison of the distributor (writes nothing when empty), `plan` (unchanged/update) and
/// `explain` (identical/stale).
///
/// Compared:
/// - content: every top-level field except apiVersion/kind/metadata/status, on both sides (a field
///   only the target has differs too: applying removes it); Secrets with `stringData` folded into
///   `data`, as the API server stores them;
/// - metadata: the labels `desired` sets, except the managed label (whether the target is ours is
///   a conflict, reported by the callers, not a difference); and the owners annotation, which must
///   already list every owner `desired` names (other owners of a shared copy are kept).
pub fn differences(desired: &Value, actual: &Value) -> CopyDifferences {
    let mut out = CopyDifferences::default();
    let (d, a) = (normalised(desired), normalised(actual));
    let empty = serde_json::Map::new();
    let (dm, am) = (d.as_object().unwrap_or(&empty), a.as_object().unwrap_or(&empty));
    let mut fields: Vec<&String> = dm.keys().chain(am.keys()).filter(|k| !NOT_CONTENT.contains(&k.as_str())).collect();
    fields.sort();
    fields.dedup();
    for field in fields {
        let (dv, av) = (dm.get(field), am.get(field));
        if dv == av {
            continue;
        }
        // Keys on either side that differ; a map only one side has counts all its keys.
        let changed: Option<Vec<&String>> = match (dv, av) {
            (Some(Value::Object(x)), Some(Value::Object(y))) => {
                Some(x.keys().chain(y.keys()).filter(|k| x.get(*k) != y.get(*k)).collect())
            }
            (Some(Value::Object(x)), None) | (None, Some(Value::Object(x))) => Some(x.keys().collect()),
            _ => None,
        };
        match changed {
            Some(mut k) if !k.is_empty() => {
                k.sort();
                k.dedup();
                let k: Vec<&str> = k.into_iter().map(String::as_str).collect();
                out.content.push(format!("{field} differs (keys: {})", k.join(", ")));
            }
            _ => out.content.push(format!("{field} differs")),
        }
    }
    let label = |obj: &Value, k: &str| obj.pointer("/metadata/labels").and_then(|l| l.get(k)).cloned();
    let mut labels_changed: Vec<&str> = desired
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|l| {
            l.iter()
                .filter(|(k, v)| k.as_str() != labels::MANAGED && label(actual, k).as_ref() != Some(*v))
                .map(|(k, _)| k.as_str())
                .collect()
        })
        .unwrap_or_default();
    if !labels_changed.is_empty() {
        labels_changed.sort_unstable();
        out.metadata.push(format!("labels differ (keys: {})", labels_changed.join(", ")));
    }
    let have = identity::owners_of(actual);
    let lacking: Vec<String> = identity::owners_of(desired).into_iter().filter(|o| !have.contains(o)).collect();
    if !lacking.is_empty() {
        out.metadata.push(format!("owners annotation lacks {}", lacking.join(", ")));
    }
    out
}

fn normalised(obj: &Value) -> Value {
    let mut o = obj.clone();
    let Some(map) = o.as_object_mut() else { return o };
    if let Some(Value::Object(sd)) = map.remove("stringData") {
        let data = map.entry("data").or_insert_with(|| Value::Object(Default::default()));
        if let Some(data) = data.as_object_mut() {
            for (k, v) in sd {
                if let Some(s) = v.as_str() {
                    data.insert(k, Value::String(base64_encode(s.as_bytes())));
                }
            }
        }
    }
    if map.get("data").is_some_and(|d| d.as_object().is_some_and(|m| m.is_empty())) {
        map.remove("data");
    }
    o
}

/// Standard base64 with padding (what Secret `data` holds); small enough not to need a crate.
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estate::MemoryEstate;
    use serde_json::json;

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"EXAMPLE-NOT-A-SECRET"), "RVhBTVBMRS1OT1QtQS1TRUNSRVQ=");
    }

    #[test]
    fn string_data_compares_equal_to_data() {
        let a = json!({"kind": "Secret", "stringData": {"k": "foo"}});
        let b = json!({"kind": "Secret", "data": {"k": "Zm9v"}});
        assert!(differences(&a, &b).is_empty());
        let c = json!({"kind": "Secret", "data": {"k": "YmFy", "x": "eA=="}});
        let d = differences(&a, &c).all();
        assert_eq!(d, vec!["data differs (keys: k, x)".to_string()]);
        assert!(!d[0].contains("Zm9v") && !d[0].contains("YmFy"), "values leaked: {d:?}");
    }

    #[test]
    fn differences_cover_every_field_the_distributor_applies_by_name_only() {
        let owner = |o: &str| json!({labels::OWNERS_ANNOTATION: o});
        let desired = json!({"kind": "Secret", "metadata": {"labels": {labels::MANAGED: "true", "team": "a"},
            "annotations": owner("ns/c")}, "type": "Opaque", "data": {"k": "c2VjcmV0"}});
        let mut actual = desired.clone();
        actual["metadata"]["labels"]["extra"] = json!("kept");
        actual["metadata"]["annotations"] = owner("ns/b\nns/c");
        actual["metadata"]["resourceVersion"] = json!("9");
        actual["status"] = json!({"x": 1});
        assert!(differences(&desired, &actual).is_empty(), "{:?}", differences(&desired, &actual));
        actual["type"] = json!("kubernetes.io/tls");
        actual["binaryData"] = json!({"blob": "c2VjcmV0"});
        actual["metadata"]["labels"]["team"] = json!("b");
        actual["metadata"]["annotations"] = owner("ns/b");
        let d = differences(&desired, &actual);
        assert_eq!(d.content, vec!["binaryData differs (keys: blob)".to_string(), "type differs".to_string()]);
        assert_eq!(
            d.metadata,
            vec!["labels differ (keys: team)".to_string(), "owners annotation lacks ns/c".to_string()]
        );
        assert!(!d.all().concat().contains("c2VjcmV0"), "values leaked: {d:?}");
        // Whether the target is ours is a conflict for the callers, not a difference.
        let mut unmanaged = desired.clone();
        unmanaged["metadata"]["labels"][labels::MANAGED] = json!("false");
        assert!(differences(&desired, &unmanaged).is_empty());
    }

    fn cred(region: Option<&str>, message: Option<&str>) -> Value {
        let mut c = json!({
            "apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Credential",
            "metadata": {"name": "c", "namespace": "kcm-system"},
            "spec": {"identityRef": {"apiVersion": "v1", "kind": "Secret", "name": "s", "namespace": "kcm-system"}},
            "status": {"ready": message.is_none()}
        });
        if let Some(r) = region {
            c["spec"]["region"] = json!(r);
        }
        if let Some(m) = message {
            c["status"]["conditions"] =
                json!([{"type": "CredentialReady", "status": "False", "reason": "Failed", "message": m}]);
        }
        c
    }

    #[test]
    fn missing_credential_is_an_error_listing_the_namespace() {
        let mut e = MemoryEstate::default();
        e.insert(&Cluster::Management, cred(None, None));
        let err = explain("kcm-system", "nope", &e).unwrap_err();
        assert_eq!(err.to_string(), "credentials.k0rdent.mirantis.com \"nope\" not found");
        let ExplainError::NotFound { available, .. } = err;
        assert_eq!(available, vec!["kcm-system/c".to_string()]);
    }

    #[test]
    fn deleted_region_is_the_root_cause() {
        let mut e = MemoryEstate::default();
        e.insert(&Cluster::Management, cred(Some("r1"), Some("region r1 is deleted")));
        e.insert(
            &Cluster::Management,
            json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Region",
                   "metadata": {"name": "r1", "deletionTimestamp": "2025-01-01T00:00:00Z"},
                   "spec": {"kubeConfig": {"name": "k", "key": "value"}},
                   "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        e.insert(
            &Cluster::Management,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k", "namespace": "kcm-system"},
                   "data": {"value": "eA=="}}),
        );
        e.add_cluster(Cluster::Region("r1".into()));
        let r = explain("kcm-system", "c", &e).unwrap();
        assert_eq!(r.verdict, Verdict::NotReady);
        assert_eq!(r.root_cause, "Region r1 is being deleted");
        let credential = &r.checks[0];
        assert!(credential.evidence.iter().any(|l| l == "means: Region r1 is being deleted"), "{credential:?}");
        assert_eq!(r.fix.last().unwrap().command.as_deref(), Some("kubectl credential explain c -n kcm-system"));
    }

    #[test]
    fn kcm_messages_are_translated() {
        let mut e = MemoryEstate::default();
        e.insert(&Cluster::Management, cred(Some("region1"), None));
        let opts = ExplainOptions::default();
        let ex = Explainer {
            estate: &e,
            opts: &opts,
            namespace: "ns",
            name: "n",
            checks: vec![],
            cause: None,
            kcm_not_ready: None,
            unknown: None,
            region: Some("region1".into()),
            region_cluster: None,
        };
        let t = |m: &str| ex.translate(m).unwrap_or_default();
        assert_eq!(
            t("failed to get ClusterIdentity object of Kind=AWSClusterStaticIdentity /x: unable to retrieve the \
               complete list of server APIs: infrastructure.cluster.x-k8s.io/v1beta2: no matches for \
               infrastructure.cluster.x-k8s.io/v1beta2, Resource="),
            "infrastructure.cluster.x-k8s.io/v1beta2 is not served in Region region1: the provider of that API is \
             not enabled there (or failed to install)"
        );
        assert_eq!(
            t("ClusterIdentity object of Kind=Secret ns1/s not found"),
            "the identity Secret ns1/s does not exist in Region region1"
        );
        assert_eq!(
            t("ClusterIdentity object of Kind=AWSClusterStaticIdentity /aws-x not found"),
            "the identity AWSClusterStaticIdentity aws-x does not exist in Region region1"
        );
        assert_eq!(t("regions.k0rdent.mirantis.com \"rgn1\" not found"), "Region rgn1 does not exist");
        assert_eq!(ex.translate("something else"), None);
    }

    #[test]
    fn incomplete_identity_ref_fails_and_skips_identity_checks() {
        let mut e = MemoryEstate::default();
        let mut c = cred(None, None);
        c["spec"]["identityRef"] = json!({"name": "x"});
        e.insert(&Cluster::Management, c);
        let r = explain("kcm-system", "c", &e).unwrap();
        assert_eq!(r.verdict, Verdict::NotReady);
        assert!(r.root_cause.starts_with("spec.identityRef has no apiVersion, kind"), "{}", r.root_cause);
        let crd = r.checks.iter().find(|c| c.name == "CRD").unwrap();
        assert_eq!(crd.status, Status::Skip);
    }

    /// A Region whose cluster this machine cannot read, with its kubeconfig Secret.
    fn regional_estate(cred: Value) -> MemoryEstate {
        let mut e = MemoryEstate::default();
        e.insert(&Cluster::Management, cred);
        e.insert(
            &Cluster::Management,
            json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Region", "metadata": {"name": "r1"},
                   "spec": {"kubeConfig": {"name": "k", "key": "value"}},
                   "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        e.insert(
            &Cluster::Management,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k", "namespace": "kcm-system"},
                   "stringData": {"value": "x"}}),
        );
        e
    }

    fn unreachable(region: &str, error: &str) -> ExplainOptions {
        let mut opts = ExplainOptions::default();
        opts.unreachable_regions.insert(region.into(), error.into());
        opts
    }

    #[test]
    fn unreachable_region_is_unknown_not_a_failure() {
        let mut c = cred(Some("r1"), None);
        c["status"]["conditions"] = json!([{"type": "CredentialReady", "status": "True", "reason": "Succeeded"}]);
        let mut e = regional_estate(c);
        e.insert(
            &Cluster::Management,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "kcm-system"},
                   "data": {"k": "eA=="}}),
        );
        let r = explain_with("kcm-system", "c", &e, &unreachable("r1", "connection refused")).unwrap();
        assert_eq!(r.verdict, Verdict::Unknown, "{r:#?}");
        assert_eq!(r.root_cause, "Region r1: the regional API is unreachable from here (connection refused)");
        let rc = r.checks.iter().find(|c| c.name == "Regional cluster").unwrap();
        assert_eq!(
            (rc.status, rc.summary.as_str()),
            (Status::Unknown, "r1: not checked, regional API unreachable from here: connection refused")
        );
        let copies = r.checks.iter().find(|c| c.name == "Copies").unwrap();
        assert_eq!(copies.status, Status::Unknown);
        assert!(r.checks.iter().all(|c| c.status != Status::Fail), "{r:#?}");
        // The last step runs explain again; no step waits for anything.
        assert_eq!(r.fix.last().unwrap().command.as_deref(), Some("kubectl credential explain c -n kcm-system"));
        assert!(r.fix.iter().all(|f| !f.description.contains("wait")), "{:?}", r.fix);
    }

    #[test]
    fn a_definite_failure_outranks_an_unreachable_region() {
        // The identity Secret does not exist: that is the root cause, not the unreachable Region.
        let e = regional_estate(cred(Some("r1"), None));
        let r = explain_with("kcm-system", "c", &e, &unreachable("r1", "403 Forbidden")).unwrap();
        assert_eq!(r.verdict, Verdict::NotReady);
        assert_eq!(r.root_cause, "identity Secret kcm-system/s does not exist in the management cluster");
        let rc = r.checks.iter().find(|c| c.name == "Regional cluster").unwrap();
        assert_eq!(rc.status, Status::Unknown);
        // KCM's own "not ready" is definite too.
        let e = regional_estate(cred(Some("r1"), Some("something failed")));
        let r = explain_with("kcm-system", "c", &e, &unreachable("r1", "timeout")).unwrap();
        assert_eq!(r.verdict, Verdict::NotReady);
    }

    #[test]
    fn a_kubeconfig_secret_without_a_kubeconfig_is_a_failure_not_unknown() {
        let mut c = cred(Some("r1"), None);
        c["status"]["conditions"] = json!([{"type": "CredentialReady", "status": "True"}]);
        let e = regional_estate(c);
        let mut opts = unreachable("r1", "Secret kcm-system/k[value] does not hold a valid kubeconfig");
        opts.invalid_kubeconfigs
            .insert("r1".into(), "Secret kcm-system/k[value] does not hold a valid kubeconfig".into());
        let r = explain_with("kcm-system", "c", &e, &opts).unwrap();
        assert_eq!(r.verdict, Verdict::NotReady);
        assert_eq!(r.root_cause, "Region r1: Secret kcm-system/k[value] does not hold a valid kubeconfig");
        let rc = r.checks.iter().find(|c| c.name == "Regional cluster").unwrap();
        assert_eq!(rc.status, Status::Fail);
    }

    #[test]
    fn conditions_are_rows_with_since_and_stale_ones_warn() {
        let mut c = cred(None, None);
        c["metadata"]["generation"] = json!(3);
        c["status"]["conditions"] = json!([
            {"type": "CredentialReady", "status": "True", "reason": "Succeeded", "observedGeneration": 2,
             "lastTransitionTime": "2025-01-01T00:00:00Z"},
            {"type": "ClusterIdentitiesDistributed", "status": "True", "reason": "Distributed",
             "message": "2 objects in r1", "lastTransitionTime": "2025-01-02T00:00:00Z"}
        ]);
        let mut e = MemoryEstate::default();
        e.insert(&Cluster::Management, c);
        let r = explain("kcm-system", "c", &e).unwrap();
        let credential = &r.checks[0];
        assert_eq!(credential.status, Status::Warn, "a stale condition is a warning: {credential:#?}");
        assert_eq!(credential.since.as_deref(), Some("2025-01-01T00:00:00Z"));
        let rows: Vec<(&str, &str, Status, Option<&str>)> = credential
            .children
            .iter()
            .map(|c| (c.code.as_str(), c.name.as_str(), c.status, c.since.as_deref()))
            .collect();
        assert_eq!(
            rows,
            [
                ("condition", "CredentialReady", Status::Warn, Some("2025-01-01T00:00:00Z")),
                ("condition", "ClusterIdentitiesDistributed", Status::Pass, Some("2025-01-02T00:00:00Z")),
            ]
        );
        assert_eq!(credential.children[1].evidence, ["\"2 objects in r1\""]);
        assert_eq!(
            credential.objects,
            [ObjectRef {
                api_version: "k0rdent.mirantis.com/v1beta1".into(),
                kind: "Credential".into(),
                namespace: Some("kcm-system".into()),
                name: "c".into(),
                cluster: "management".into(),
            }]
        );
        assert_eq!(r.credential, credential.objects[0]);
    }

    #[test]
    fn a_deleting_credential_names_the_finalizers_that_hold_it() {
        let mut c = cred(None, None);
        c["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        c["metadata"]["finalizers"] = json!(["k0rdent.mirantis.com/credential", labels::DISTRIBUTION_FINALIZER]);
        let mut e = MemoryEstate::default();
        e.insert(&Cluster::Management, c);
        let r = explain("kcm-system", "c", &e).unwrap();
        assert_eq!(r.root_cause, "Credential kcm-system/c is being deleted");
        let ev = &r.checks[0].evidence;
        assert!(ev.iter().any(|l| l.starts_with("held by finalizer k0rdent.mirantis.com/credential: KCM")), "{ev:?}");
        assert!(
            ev.iter().any(|l| l.starts_with(&format!("held by finalizer {}", labels::DISTRIBUTION_FINALIZER))),
            "{ev:?}"
        );
        assert!(r.fix.iter().any(|f| f.command.as_deref() == Some("kubectl describe credential c -n kcm-system")));
    }

    #[test]
    fn unknown_regional_cluster_is_named_with_the_offline_directory() {
        let mut e = MemoryEstate::default();
        e.insert(&Cluster::Management, cred(Some("r1"), None));
        e.insert(
            &Cluster::Management,
            json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Region", "metadata": {"name": "r1"},
                   "spec": {"kubeConfig": {"name": "k", "key": "value"}},
                   "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        e.insert(
            &Cluster::Management,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k", "namespace": "kcm-system"},
                   "stringData": {"value": "x"}}),
        );
        let opts = ExplainOptions {
            rerun_command: None,
            source: Source::Files { dir: "est/".into() },
            ..ExplainOptions::default()
        };
        let r = explain_with("kcm-system", "c", &e, &opts).unwrap();
        assert_eq!(r.root_cause, "the regional cluster of Region r1 is unknown (r1: no files under est/regions/r1/)");
    }
}
