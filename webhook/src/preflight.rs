//! `credential-webhook preflight`: checks a management cluster before (and after) installing the
//! webhook, and says what is wrong and how to fix it. Read-only: it lists, gets and asks the
//! authorizer (SubjectAccessReview), never writes an object. It runs with the operator's
//! credentials (a kubeconfig), never as the webhook's ServiceAccount, so its reads are not among
//! the ServiceAccount's [`needs`].
//!
//! Checks, in order: cert-manager's CRDs; k0rdent's CRDs; the webhook configurations (registered,
//! caBundle injected, and the same CA as the serving certificate's Secret when that is readable);
//! the ServiceAccount's effective permissions against [`needs`], the one list of what the code
//! calls; and that each Region's cluster answers with the kubeconfig its Secret holds.

use std::collections::BTreeSet;
use std::time::Duration;

use credential_core::{K0RDENT_GROUP, ResourceKind};
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::discovery::ApiResource;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::Value;

/// The only Lease the code reads and renews (get/update are limited to this name in the RBAC), and
/// the only ConfigMap it reads and changes (the orphaned-copies record): named in the core, where
/// the plugin reads them too.
pub use credential_core::distribution::{DISTRIBUTION_LEASE, ORPHANED_COPIES};

/// The CRDs cert-manager must have installed: the install creates an Issuer and a Certificate.
pub const CERT_MANAGER_CRDS: [&str; 2] = ["certificates.cert-manager.io", "issuers.cert-manager.io"];

/// Name of both webhook configurations, of the Secret cert-manager writes the serving pair into
/// and of the ServiceAccount, as deploy/ and the chart install them.
pub const WEBHOOK_NAME: &str = "credential-webhook";
pub const SERVING_SECRET: &str = "credential-webhook-tls";

/// What the webhook's ServiceAccount needs in the management cluster: (namespace, or None for
/// cluster-wide; API group; resource; verb). Reads: the estate the rules and explain evaluate;
/// writes: only what distribution needs (our condition, our finalizer, Events, the leader Lease,
/// the orphaned-copies record). The tests hold the shipped RBAC to exactly this list
/// (tests/tests/deploy_invariants.rs, helm_e2e.rs) and preflight asks the cluster's authorizer.
pub fn needs(webhook_ns: &str, system_ns: &str) -> Vec<(Option<String>, &'static str, &'static str, &'static str)> {
    let mut v = Vec::new();
    for kind in ResourceKind::ALL {
        for verb in ["get", "list", "watch"] {
            v.push((None, K0RDENT_GROUP, kind.plural(), verb));
        }
    }
    for verb in ["get", "list", "watch"] {
        // KCM's version (Management `kcm`, the Release it names) decides the distribution mode.
        v.push((None, K0RDENT_GROUP, "managements", verb));
        v.push((None, K0RDENT_GROUP, "releases", verb));
        v.push((None, "apiextensions.k8s.io", "customresourcedefinitions", verb));
        v.push((Some(system_ns.to_string()), "", "secrets", verb));
        v.push((None, "infrastructure.cluster.x-k8s.io", "awsclusterstaticidentities", verb));
    }
    // The orphaned-copies record (one ConfigMap in the system namespace: merge patch, created on first use).
    for verb in ["create", "get", "patch"] {
        v.push((Some(system_ns.to_string()), "", "configmaps", verb));
    }
    v.push((None, K0RDENT_GROUP, "credentials/status", "patch"));
    v.push((None, K0RDENT_GROUP, "credentials", "patch"));
    for verb in ["create", "patch"] {
        v.push((None, "events.k8s.io", "events", verb));
    }
    for verb in ["get", "create", "update"] {
        v.push((Some(webhook_ns.to_string()), "coordination.k8s.io", "leases", verb));
    }
    v
}

/// The object name a need is limited to in the shipped RBAC (`resourceNames`), if any: create
/// cannot be limited by name, every other verb on leases and configmaps is.
pub fn need_resource_name(resource: &str, verb: &str) -> Option<&'static str> {
    match (resource, verb) {
        (_, "create") => None,
        ("leases", _) => Some(DISTRIBUTION_LEASE),
        ("configmaps", _) => Some(ORPHANED_COPIES),
        _ => None,
    }
}

/// What to check and as whom.
#[derive(Debug, Clone)]
pub struct PreflightOptions {
    /// Namespace the webhook runs in (its ServiceAccount, Secret, Lease).
    pub namespace: String,
    /// KCM's namespace (Region kubeconfig Secrets).
    pub system_namespace: String,
    pub service_account: String,
    /// Budget for each regional cluster to answer.
    pub region_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Pass,
    /// Could not be checked, or worth a look; does not fail the preflight.
    Warn,
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    /// What to do, for Warn and Fail.
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: &str, detail: impl Into<String>) -> Self {
        Check { name: name.into(), status: Status::Pass, detail: detail.into(), fix: None }
    }
    fn warn(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check { name: name.into(), status: Status::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }
    fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check { name: name.into(), status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// Every check's outcome, in order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn failures(&self) -> usize {
        self.checks.iter().filter(|c| c.status == Status::Fail).count()
    }

    /// 0 when nothing failed (warnings allowed), else 1.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.failures() > 0)
    }

    /// The check named `name` (tests, callers that want one answer).
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// One line per check (`[FAIL] name: detail`), the fix indented below, and a verdict.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!("[{}] {}: {}\n", c.status.label(), c.name, c.detail));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("       fix: {fix}\n"));
            }
        }
        match self.failures() {
            0 => out.push_str("preflight passed\n"),
            n => out.push_str(&format!("preflight failed: {n} problem(s) above; fix them and run it again\n")),
        }
        out
    }
}

pub const CHECK_CERT_MANAGER: &str = "cert-manager CRDs";
pub const CHECK_K0RDENT: &str = "k0rdent CRDs";
pub const CHECK_WEBHOOKS: &str = "webhook configurations";
pub const CHECK_RBAC: &str = "ServiceAccount permissions";
pub const CHECK_REGIONS: &str = "regional clusters";

/// Runs every check against the cluster `client` talks to.
pub async fn run(client: kube::Client, opts: &PreflightOptions) -> Report {
    let mut report = Report::default();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    // The first call also tells whether the API server answers at all.
    let (present, missing) = match crd_presence(&crds, &CERT_MANAGER_CRDS).await {
        Ok(p) => p,
        Err(e) => {
            report.checks.push(Check::fail(
                "management API server",
                format!("cannot read CustomResourceDefinitions: {e}"),
                "check the kubeconfig (--kubeconfig, $KUBECONFIG) and that the caller may get \
                 customresourcedefinitions",
            ));
            return report;
        }
    };
    report.checks.push(if missing.is_empty() {
        Check::pass(CHECK_CERT_MANAGER, format!("{} established", present.join(", ")))
    } else {
        Check::fail(
            CHECK_CERT_MANAGER,
            format!("missing or not established: {}", missing.join(", ")),
            "install cert-manager (CRDs and controller) before the webhook, e.g. `helm install cert-manager \
             oci://quay.io/jetstack/charts/cert-manager -n cert-manager --create-namespace --set crds.enabled=true`; \
             without it the serving certificate is never issued and the caBundle never injected",
        )
    });

    let k0rdent: Vec<String> = ResourceKind::ALL.iter().map(|k| format!("{}.{K0RDENT_GROUP}", k.plural())).collect();
    let k0rdent_refs: Vec<&str> = k0rdent.iter().map(String::as_str).collect();
    let regions_served = match crd_presence(&crds, &k0rdent_refs).await {
        Ok((present, missing)) if missing.is_empty() => {
            report.checks.push(Check::pass(CHECK_K0RDENT, format!("{} established", present.join(", "))));
            true
        }
        Ok((_, missing)) => {
            report.checks.push(Check::fail(
                CHECK_K0RDENT,
                format!("missing or not established: {}", missing.join(", ")),
                "install k0rdent (KCM) first: the webhook's caches list these kinds and it is never Ready without them",
            ));
            !missing.iter().any(|m| m.starts_with("regions."))
        }
        Err(e) => {
            report.checks.push(Check::fail(CHECK_K0RDENT, format!("cannot read: {e}"), "see the check above"));
            false
        }
    };

    report.checks.push(webhook_configurations(&client, opts).await);
    report.checks.push(permissions(&client, opts).await);
    if regions_served {
        report.checks.extend(regions(&client, opts).await);
    }
    report
}

/// (established, missing or not established) among `names`.
async fn crd_presence(
    api: &Api<CustomResourceDefinition>,
    names: &[&str],
) -> Result<(Vec<String>, Vec<String>), kube::Error> {
    let (mut present, mut missing) = (Vec::new(), Vec::new());
    for name in names {
        let established = api.get_opt(name).await?.is_some_and(|crd| {
            crd.status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
        if established { present.push(name.to_string()) } else { missing.push(name.to_string()) }
    }
    Ok((present, missing))
}

/// Certificates of a PEM bundle, as DER.
fn pem_certs(pem: &[u8]) -> Vec<Vec<u8>> {
    CertificateDer::pem_slice_iter(pem).filter_map(Result::ok).map(|c| c.as_ref().to_vec()).collect()
}

async fn webhook_configurations(client: &kube::Client, opts: &PreflightOptions) -> Check {
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    // (configuration, webhook name, caBundle bytes)
    let mut bundles: Vec<(String, String, Vec<u8>)> = Vec::new();
    let mut absent = Vec::new();
    // (name, caBundle) of each webhook of each configuration, `None` when it is not registered.
    let validating = validating.get_opt(WEBHOOK_NAME).await.map(|c| {
        c.map(|c| c.webhooks.unwrap_or_default().into_iter().map(|w| (w.name, w.client_config.ca_bundle)).collect())
    });
    let mutating = mutating.get_opt(WEBHOOK_NAME).await.map(|c| {
        c.map(|c| c.webhooks.unwrap_or_default().into_iter().map(|w| (w.name, w.client_config.ca_bundle)).collect())
    });
    for (kind, got) in [("ValidatingWebhookConfiguration", validating), ("MutatingWebhookConfiguration", mutating)] {
        let hooks: Vec<(String, Option<k8s_openapi::ByteString>)> = match got {
            Ok(Some(hooks)) => hooks,
            Ok(None) => {
                absent.push(kind);
                continue;
            }
            Err(e) => {
                return Check::warn(CHECK_WEBHOOKS, format!("cannot read {kind}: {e}"), "run as a user who may get it");
            }
        };
        bundles
            .extend(hooks.into_iter().map(|(name, ca)| (kind.to_string(), name, ca.map(|b| b.0).unwrap_or_default())));
    }
    if !absent.is_empty() {
        return Check::warn(
            CHECK_WEBHOOKS,
            format!("{} {WEBHOOK_NAME} not registered (not installed yet?)", absent.join(" and ")),
            "install with `helm install` or `kubectl apply -k deploy/` once the checks above pass, then run preflight again",
        );
    }
    let empty: Vec<String> = bundles.iter().filter(|b| b.2.is_empty()).map(|b| format!("{} ({})", b.1, b.0)).collect();
    let inject = format!(
        "cert-manager's cainjector fills it from the annotation cert-manager.io/inject-ca-from; check \
         `kubectl -n {ns} get certificate` (Ready) and that cert-manager's cainjector runs",
        ns = opts.namespace
    );
    if !empty.is_empty() {
        return Check::fail(CHECK_WEBHOOKS, format!("caBundle not injected in {}", empty.join(", ")), inject);
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &opts.namespace);
    let secret = match secrets.get_opt(SERVING_SECRET).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Check::fail(
                CHECK_WEBHOOKS,
                format!(
                    "caBundle injected, but Secret {}/{SERVING_SECRET} (the serving pair) does not exist",
                    opts.namespace
                ),
                format!("the Certificate has not been issued: `kubectl -n {} describe certificate`", opts.namespace),
            );
        }
        Err(e) => {
            return Check::warn(
                CHECK_WEBHOOKS,
                format!(
                    "caBundle injected in {} webhooks; serving certificate not compared (Secret {}/{SERVING_SECRET}: {e})",
                    bundles.len(),
                    opts.namespace
                ),
                "run as a user who may read that Secret to compare the CAs",
            );
        }
    };
    let data = secret.data.unwrap_or_default();
    // cert-manager writes the issuing CA as ca.crt; without it the chain's last certificate.
    let ca = match data.get("ca.crt").map(|b| pem_certs(&b.0)).filter(|c| !c.is_empty()) {
        Some(ca) => ca,
        None => data.get("tls.crt").map(|b| pem_certs(&b.0)).and_then(|c| c.last().cloned()).into_iter().collect(),
    };
    if ca.is_empty() {
        return Check::fail(
            CHECK_WEBHOOKS,
            format!("Secret {}/{SERVING_SECRET} holds no CA certificate (ca.crt or tls.crt)", opts.namespace),
            "let cert-manager re-issue it: `kubectl -n NS delete secret credential-webhook-tls`",
        );
    }
    let mismatched: Vec<String> = bundles
        .iter()
        .filter(|(_, _, bundle)| {
            let trusted: BTreeSet<Vec<u8>> = pem_certs(bundle).into_iter().collect();
            !ca.iter().any(|c| trusted.contains(c))
        })
        .map(|b| format!("{} ({})", b.1, b.0))
        .collect();
    if mismatched.is_empty() {
        Check::pass(
            CHECK_WEBHOOKS,
            format!(
                "{} webhooks registered; caBundle holds the CA of Secret {}/{SERVING_SECRET}",
                bundles.len(),
                opts.namespace
            ),
        )
    } else {
        Check::fail(
            CHECK_WEBHOOKS,
            format!(
                "caBundle of {} does not hold the CA that issued Secret {}/{SERVING_SECRET}: the API server would refuse the webhook's certificate",
                mismatched.join(", "),
                opts.namespace
            ),
            inject,
        )
    }
}

async fn permissions(client: &kube::Client, opts: &PreflightOptions) -> Check {
    let user = format!("system:serviceaccount:{}:{}", opts.namespace, opts.service_account);
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let mut denied = Vec::new();
    let all = needs(&opts.namespace, &opts.system_namespace);
    for (namespace, group, resource, verb) in &all {
        let (resource_name, subresource) = match resource.split_once('/') {
            Some((r, s)) => (r, Some(s.to_string())),
            None => (*resource, None),
        };
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.clone()),
                groups: Some(vec![
                    "system:serviceaccounts".into(),
                    format!("system:serviceaccounts:{}", opts.namespace),
                    "system:authenticated".into(),
                ]),
                resource_attributes: Some(ResourceAttributes {
                    group: Some((*group).to_string()),
                    resource: Some(resource_name.to_string()),
                    subresource,
                    verb: Some((*verb).to_string()),
                    namespace: namespace.clone(),
                    name: need_resource_name(resource_name, verb).map(str::to_string),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &review).await {
            Ok(answer) if answer.status.as_ref().is_some_and(|s| s.allowed) => {}
            Ok(_) => denied.push(format!(
                "{verb} {resource}{}{}",
                if group.is_empty() { String::new() } else { format!(".{group}") },
                namespace.as_ref().map(|n| format!(" in {n}")).unwrap_or_default()
            )),
            Err(e) => {
                return Check::warn(
                    CHECK_RBAC,
                    format!("cannot ask the authorizer (create subjectaccessreviews): {e}"),
                    format!(
                        "run preflight as a cluster admin, or check by hand: `kubectl auth can-i --list --as {user}`"
                    ),
                );
            }
        }
    }
    if denied.is_empty() {
        Check::pass(CHECK_RBAC, format!("{user} may do all {} things the webhook does", all.len()))
    } else {
        let detail = if denied.len() == all.len() {
            format!("{user} has none of the {} permissions the webhook needs (RBAC not applied yet?)", all.len())
        } else {
            format!("{user} may not: {}", denied.join("; "))
        };
        Check::fail(
            CHECK_RBAC,
            detail,
            "apply the shipped RBAC (deploy/base/rbac.yaml, or the chart's) for this namespace; \
             docs/src/operator/rbac.md says why each permission is needed",
        )
    }
}

async fn regions(client: &kube::Client, opts: &PreflightOptions) -> Vec<Check> {
    let region_ar = ApiResource {
        group: K0RDENT_GROUP.into(),
        version: credential_core::K0RDENT_VERSION.into(),
        api_version: credential_core::K0RDENT_API_VERSION.into(),
        kind: ResourceKind::Region.kind().into(),
        plural: ResourceKind::Region.plural().into(),
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &region_ar);
    let list = match api.list(&ListParams::default()).await {
        Ok(l) => l,
        Err(e) => {
            return vec![Check::warn(CHECK_REGIONS, format!("cannot list Regions: {e}"), "run as a user who may")];
        }
    };
    if list.items.is_empty() {
        return vec![Check::pass(CHECK_REGIONS, "no Regions: nothing to reach")];
    }
    let mut out = Vec::new();
    for item in list.items {
        let name = item.metadata.name.clone().unwrap_or_default();
        let value = serde_json::to_value(&item).unwrap_or_default();
        let check = format!("{CHECK_REGIONS}: Region {name}");
        out.push(match region_reachable(client, &value, opts).await {
            Ok(version) => Check::pass(&check, format!("answers (Kubernetes {version})")),
            Err((detail, fix)) => Check::fail(&check, detail, fix),
        });
    }
    out
}

/// The regional API server's version, or (what is wrong, fix).
async fn region_reachable(
    client: &kube::Client,
    region: &Value,
    opts: &PreflightOptions,
) -> Result<String, (String, String)> {
    let source = match credential_core::kubeconfig::region_kubeconfig_ref_of(region, &opts.system_namespace) {
        Ok(r) => r,
        Err(e) => return Err((e.to_string(), e.fix())),
    };
    let (ns, secret, key) = (source.namespace.clone(), source.name.clone(), source.key.clone());
    let fix_secret = format!("create Secret {ns}/{secret} with key {key:?} holding the regional cluster's kubeconfig");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let found = secrets
        .get_opt(&secret)
        .await
        .map_err(|e| (format!("cannot read kubeconfig Secret {ns}/{secret}: {e}"), fix_secret.clone()))?
        .ok_or_else(|| (format!("kubeconfig Secret {ns}/{secret} does not exist"), fix_secret.clone()))?;
    let bytes = found
        .data
        .unwrap_or_default()
        .remove(&key)
        .ok_or_else(|| (format!("kubeconfig Secret {ns}/{secret} has no key {key:?}"), fix_secret.clone()))?;
    let bad = |why: String| (why, fix_secret.clone());
    let text =
        String::from_utf8(bytes.0).map_err(|_| bad(format!("key {key:?} of Secret {ns}/{secret} is not text")))?;
    // The webhook's own check and client configuration (crate::informer::clients): no exec, no
    // files, no proxy. Errors never quote the text.
    let mut config = crate::informer::clients::checked_config(&text, &source).await.map_err(|e| bad(e.to_string()))?;
    config.connect_timeout = Some(opts.region_timeout);
    config.read_timeout = Some(opts.region_timeout);
    let server = config.cluster_url.to_string();
    let regional = kube::Client::try_from(config).map_err(|e| bad(format!("no client: {e}")))?;
    let unreachable = |e: String| {
        (
            format!("{server} (from Secret {ns}/{secret}) does not answer: {e}"),
            "check the address and CA in the kubeconfig, and that this cluster's network reaches the regional \
             API server (firewall, NetworkPolicy egress)"
                .to_string(),
        )
    };
    match tokio::time::timeout(opts.region_timeout, regional.apiserver_version()).await {
        Ok(Ok(info)) => Ok(info.git_version),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!("no answer within {:?}", opts.region_timeout))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_renders_fixes_and_exit_code() {
        let mut r = Report::default();
        r.checks.push(Check::pass("a", "fine"));
        r.checks.push(Check::warn("b", "unknown", "look"));
        assert_eq!(r.exit_code(), 0);
        assert!(r.render().ends_with("preflight passed\n"));
        r.checks.push(Check::fail("c", "broken", "repair it"));
        assert_eq!(r.exit_code(), 1);
        let text = r.render();
        assert!(text.contains("[FAIL] c: broken\n       fix: repair it\n"), "{text}");
        assert!(text.contains("1 problem(s)"), "{text}");
    }

    #[test]
    fn needs_name_the_lease_and_the_record() {
        let n = needs("guard", "kcm");
        assert!(n.contains(&(Some("guard".into()), "coordination.k8s.io", "leases", "update")));
        assert_eq!(need_resource_name("leases", "get"), Some(DISTRIBUTION_LEASE));
        assert_eq!(need_resource_name("leases", "create"), None);
        assert_eq!(need_resource_name("secrets", "get"), None);
    }
}
