//! The whole-life suites of issue 13 on real API servers (lifecycle_teardown.rs): an estate of a
//! management cluster (kube-controller-manager running) and a regional cluster, the webhook in-process
//! with the shipped RBAC (a real ServiceAccount token) and the shipped webhook configurations, its
//! admission sink feeding a distributor with a short release timeout; and the invariants every
//! teardown must end with (nothing `Terminating`, no unowned copy that the orphaned-copies record does
//! not list, no Secret data outside Secrets).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;
use std::time::Duration;

use credential_core::distribution::Mode;
use credential_core::identity::owners_of;
use credential_core::model::labels;
use credential_e2e::KubectlOutput;
use credential_e2e::cluster::{shipped_rbac_yaml, shipped_webhook_configurations};
use credential_webhook::distribution::{Backoff, DistributionConfig, Distributor, ModeHandle, ORPHANED_COPIES};
use serde_json::Value;

use super::regional::{self, Real};
use super::{LiveWebhook, PROVIDER_INTERFACE, SYS, b64, eventually_async, prepare_live_webhook};

pub const API: &str = "k0rdent.mirantis.com/v1beta1";
/// The tenant namespace AccessManagement places managed Credentials in.
pub const TENANT: &str = "team-a";
pub const REGION: &str = "region1";
/// Bound of every wait of these suites (two shared cores, debug builds, several apiservers at once).
pub const LIMIT: Duration = Duration::from_secs(60);
/// How long a release may keep failing before it is given up (the product default is 5 minutes).
pub const RELEASE_TIMEOUT: Duration = Duration::from_secs(8);

/// The Azure ProviderInterface (a namespaced identity whose Secret is found through name and
/// namespace paths), next to [`PROVIDER_INTERFACE`] (AWS static identities).
pub const AZURE_PROVIDER_INTERFACE: &str = r#"
apiVersion: k0rdent.mirantis.com/v1beta1
kind: ProviderInterface
metadata: {name: cluster-api-provider-azure}
spec:
  clusterIdentities:
  - {group: infrastructure.cluster.x-k8s.io, version: v1beta1, kind: AzureClusterIdentity,
     references: [{group: "", version: v1, kind: Secret, nameFieldPath: spec.clientSecret.name,
                   namespaceFieldPath: spec.clientSecret.namespace}]}
"#;

/// Every kind a teardown could leave `Terminating` in the management cluster.
const MANAGEMENT_KINDS: &str = "namespaces,secrets,configmaps,credentials.k0rdent.mirantis.com,\
regions.k0rdent.mirantis.com,clusterdeployments.k0rdent.mirantis.com,providerinterfaces.k0rdent.mirantis.com,\
awsclusterstaticidentities.infrastructure.cluster.x-k8s.io,azureclusteridentities.infrastructure.cluster.x-k8s.io";
/// The kinds distribution copies in this estate.
const COPY_KINDS: &str = "secrets,awsclusterstaticidentities.infrastructure.cluster.x-k8s.io,\
azureclusteridentities.infrastructure.cluster.x-k8s.io";

/// The Credentials of the estate file as `(namespace, name)`: two regional ones in kcm-system, and
/// three managed (AccessManagement) ones in the tenant namespace: regional AWS, regional Azure (its
/// namespaced identity and Secret land in the tenant namespace of the region), and Azure without a
/// Region (distributed inside the management cluster, into the tenant namespace).
pub const CREDENTIALS: [(&str, &str); 5] = [
    (SYS, "aws-region1-cred"),
    (SYS, "azure-region1-cred"),
    (TENANT, "aws-region1-cred"),
    (TENANT, "azure-region1-cred"),
    (TENANT, "azure-cred"),
];

pub struct Estate {
    pub mgmt: Real,
    pub region: Real,
    pub webhook: Option<LiveWebhook>,
    pub distributor: Option<Distributor>,
    /// What `kubectl apply -f` made the estate from (the teardown orders delete it).
    pub file: String,
    /// Secret data this test put into Secrets (plain text): never to be found anywhere else.
    pub secrets: Vec<String>,
}

/// A single distributor (no leader election) with short backoffs and timeouts for tests on real
/// clusters, giving up a failing release after `release_timeout`.
pub fn fast_distribution_config(instance: &str, release_timeout: Duration) -> DistributionConfig {
    DistributionConfig {
        workers: 4,
        leader_election: None,
        credential_backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(2)),
        cluster_backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(2)),
        cluster_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        reconcile_timeout: Duration::from_secs(20),
        release_timeout,
        instance: instance.to_string(),
        ..DistributionConfig::default()
    }
}

/// One document of the estate file.
fn credential(ns: &str, name: &str, region: Option<&str>, identity: (&str, &str, &str), managed: bool) -> String {
    let (api_version, kind, id) = identity;
    let labels = if managed { format!("\n  labels: {{{}: \"true\"}}", labels::MANAGED) } else { String::new() };
    let region = region.map(|r| format!("  region: {r}\n")).unwrap_or_default();
    let id_ns = if kind == "AzureClusterIdentity" { format!(", namespace: {ns}") } else { String::new() };
    format!(
        "apiVersion: {API}\nkind: Credential\nmetadata:\n  name: {name}\n  namespace: {ns}{labels}\nspec:\n{region}  \
         identityRef: {{apiVersion: {api_version}, kind: {kind}, name: {id}{id_ns}}}\n"
    )
}

/// The estate file: tenant namespace, identity Secrets (data unique to `tag`), AWS static and Azure
/// identities, the Region with its kubeconfig Secret, and the five [`CREDENTIALS`], in the order an
/// operator writes them (what is referenced before what references it).
fn estate_file(tag: &str, regional_kubeconfig: &str) -> (String, Vec<String>) {
    let aws_key = format!("TEARDOWN-{tag}-AKIA-0001");
    let aws_secret = format!("TEARDOWN-{tag}-aws-secret-access-key");
    let azure_secret = format!("TEARDOWN-{tag}-azure-client-secret");
    let aws = ("infrastructure.cluster.x-k8s.io/v1beta2", "AWSClusterStaticIdentity", "aws-cluster-identity");
    let azure = ("infrastructure.cluster.x-k8s.io/v1beta1", "AzureClusterIdentity", "azure-cluster-identity");
    let docs = [
        format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {TENANT}}}\n"),
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: aws-cluster-identity-secret, namespace: {SYS}}}\n\
             data: {{AccessKeyID: {}, SecretAccessKey: {}}}\n",
            b64(&aws_key),
            b64(&aws_secret)
        ),
        format!(
            "apiVersion: {}\nkind: AWSClusterStaticIdentity\nmetadata: {{name: aws-cluster-identity}}\n\
             spec: {{secretRef: aws-cluster-identity-secret}}\n",
            aws.0
        ),
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: azure-cluster-identity-secret, namespace: {SYS}}}\n\
             data: {{clientSecret: {}}}\n",
            b64(&azure_secret)
        ),
        format!(
            "apiVersion: {}\nkind: AzureClusterIdentity\nmetadata: {{name: azure-cluster-identity, namespace: {SYS}}}\n\
             spec:\n  type: ServicePrincipal\n  clientID: 00000000-0000-0000-0000-000000000001\n  \
             tenantID: 00000000-0000-0000-0000-000000000002\n  \
             clientSecret: {{name: azure-cluster-identity-secret, namespace: {SYS}}}\n",
            azure.0
        ),
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {REGION}-kubeconfig, namespace: {SYS}}}\ndata: {{value: {}}}\n",
            b64(regional_kubeconfig)
        ),
        format!(
            "apiVersion: {API}\nkind: Region\nmetadata: {{name: {REGION}}}\nspec:\n  \
             kubeConfig: {{name: {REGION}-kubeconfig, key: value}}\n"
        ),
        credential(SYS, "aws-region1-cred", Some(REGION), aws, false),
        credential(SYS, "azure-region1-cred", Some(REGION), azure, false),
        credential(TENANT, "aws-region1-cred", Some(REGION), aws, true),
        credential(TENANT, "azure-region1-cred", Some(REGION), azure, true),
        credential(TENANT, "azure-cred", None, azure, true),
    ];
    (docs.join("---\n"), vec![aws_key, aws_secret, azure_secret])
}

/// kubectl with `args` and `stdin` (may be empty) against `c`, 30 s at most.
pub async fn kubectl(c: &Real, args: &[&str], stdin: &str) -> KubectlOutput {
    let stdin = (!stdin.is_empty()).then_some(stdin);
    c.kubectl_with(args, stdin, Duration::from_secs(30)).await.unwrap()
}

/// `kubectl get <kinds> -A -o json` (extra args appended): the items.
async fn items(c: &Real, kinds: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["get", kinds, "-A", "-o", "json"];
    args.extend(extra);
    let out = c.kubectl_ok(&args, None).await.unwrap();
    serde_json::from_str::<Value>(&out).unwrap()["items"].as_array().cloned().unwrap_or_default()
}

fn describe(o: &Value) -> String {
    let ns = o["metadata"]["namespace"].as_str().map(|n| format!("{n}/")).unwrap_or_default();
    format!("{} {ns}{}", o["kind"].as_str().unwrap_or("?"), o["metadata"]["name"].as_str().unwrap_or("?"))
}

impl Estate {
    /// Management (with kube-controller-manager) and regional clusters named after `name`, the
    /// ProviderInterfaces in both, the shipped RBAC and the opt-in grant for managed copies in the
    /// tenant namespace, the webhook (shipped identity and configurations) feeding the distributor;
    /// then the estate file applied through the webhook and every Credential `Distributed`.
    pub async fn up(name: &str) -> Estate {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (mgmt_name, region_name) = (format!("{name}-mgmt"), format!("{name}-r1"));
        let (mgmt, region) = tokio::join!(regional::start(&mgmt_name, true), regional::start(&region_name, false));
        let pis = format!("{PROVIDER_INTERFACE}---\n{AZURE_PROVIDER_INTERFACE}");
        region.apply(&pis).await.unwrap();
        mgmt.apply(&pis).await.unwrap();
        let token = mgmt.shipped_webhook_token().await;
        // The documented opt-in grant (docs/src/operator/rbac.md) in the namespace AccessManagement
        // places managed Credentials in.
        mgmt.grant_managed_copies(TENANT).await;

        let live = prepare_live_webhook(&mgmt.kubeconfig_yaml_for_token(&token)).await;
        let distributor =
            Distributor::start(fast_distribution_config("teardown", RELEASE_TIMEOUT), live.client.clone());
        let webhook = live.serve(Some(Arc::new(distributor.handle()))).await;
        super::admission::register(&mgmt, &webhook).await;

        let (file, secrets) = estate_file(name, &region.kubeconfig_yaml());
        let mut secrets = secrets;
        secrets.push(region.admin_token().to_string());
        let out = kubectl(&mgmt, &["apply", "-f", "-"], &file).await;
        assert!(out.success(), "the estate file applies through the webhook: {}", out.stderr);
        let region_object = mgmt.get(API, "Region", None, REGION).await.unwrap();
        let ready = serde_json::json!({"ready": true, "conditions": [{"type": "Ready", "status": "True",
            "reason": "AllComponentsHealthy", "message": "All components are successfully installed",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        super::real::write_status(&mgmt, &region_object, &ready).await;
        let estate = Estate { mgmt, region, webhook: Some(webhook), distributor: Some(distributor), file, secrets };
        for (ns, name) in CREDENTIALS {
            estate.wait_distributed(ns, name).await;
        }
        estate.assert_no_secret_data_outside_secrets().await;
        estate
    }

    /// Waits until our condition on `ns/name` is True.
    pub async fn wait_distributed(&self, ns: &str, name: &str) {
        eventually_async(&format!("Credential {ns}/{name} Distributed"), LIMIT, || async {
            let c = self.mgmt.get(API, "Credential", Some(ns), name).await?;
            c["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == labels::DISTRIBUTED_CONDITION && c["status"] == "True")
                .then_some(())
        })
        .await;
    }

    /// Stops admission and distribution in-process (nothing answers at the webhook's URL any more).
    pub async fn stop_webhook(&mut self) {
        if let Some(hook) = self.webhook.take() {
            hook.server.shutdown();
            hook.server.wait().await;
            hook.stop.cancel();
        }
        if let Some(d) = self.distributor.take() {
            d.shutdown().await;
        }
    }

    /// The shipped webhook configurations and RBAC deleted (the webhook must be stopped first).
    pub async fn uninstall_configurations_and_rbac(&self) {
        let configs = shipped_webhook_configurations("https://127.0.0.1:1", "unused").await.unwrap();
        for yaml in [configs, shipped_rbac_yaml().await.unwrap()] {
            let out = kubectl(&self.mgmt, &["delete", "--ignore-not-found", "-f", "-"], &yaml).await;
            assert!(out.success(), "uninstall: {}", out.stderr);
        }
    }

    /// Step 1 of the documented uninstall (docs/src/operator/install.md, "Uninstall"): distribution
    /// mode off (what `helm upgrade --set distribution.mode=off` rolls out: the distributor restarts
    /// in mode off), then wait until no Credential holds our finalizer. Admission keeps serving.
    pub async fn distribution_off_until_released(&mut self) {
        if let Some(d) = self.distributor.take() {
            d.shutdown().await;
        }
        let token = self.mgmt.shipped_webhook_token().await;
        let client = self.mgmt.client_for_token(&token).await.unwrap();
        let config = DistributionConfig {
            mode: ModeHandle::fixed(Mode::Off, "mode off set"),
            ..fast_distribution_config("uninstall", RELEASE_TIMEOUT)
        };
        let off = Distributor::start(config, client);
        eventually_async("no Credential holds our finalizer", LIMIT, || async {
            let held: Vec<String> = items(&self.mgmt, "credentials.k0rdent.mirantis.com", &[])
                .await
                .iter()
                .filter(|c| {
                    c["metadata"]["finalizers"]
                        .as_array()
                        .is_some_and(|f| f.iter().any(|f| f == labels::DISTRIBUTION_FINALIZER))
                })
                .map(describe)
                .collect();
            held.is_empty().then_some(())
        })
        .await;
        self.distributor = Some(off);
    }

    /// `kubectl delete -f` of the whole estate file (`extra` appended), without waiting for finalizers.
    pub async fn delete_file(&self, extra: &[&str]) -> KubectlOutput {
        let mut args = vec!["delete", "-f", "-", "--wait=false"];
        args.extend(extra);
        kubectl(&self.mgmt, &args, &self.file).await
    }

    /// Objects of the management cluster with a deletionTimestamp.
    async fn terminating(&self) -> Vec<String> {
        items(&self.mgmt, MANAGEMENT_KINDS, &[])
            .await
            .iter()
            .filter(|o| o.pointer("/metadata/deletionTimestamp").is_some())
            .map(describe)
            .collect()
    }

    /// The data of the orphaned-copies record (empty when there is none).
    async fn orphan_record(&self) -> serde_json::Map<String, Value> {
        self.mgmt
            .get("v1", "ConfigMap", Some(SYS), ORPHANED_COPIES)
            .await
            .and_then(|c| c["data"].as_object().cloned())
            .unwrap_or_default()
    }

    /// Copies (labelled managed) in `cluster` (`management` or `region.<name>` as the record keys
    /// them) none of whose owners exists and whose release no record entry gives up.
    async fn unaccounted_copies(&self, c: &Real, cluster: &str) -> Vec<String> {
        let record = self.orphan_record().await;
        let selector = format!("{}=true", labels::MANAGED);
        let mut found = Vec::new();
        for copy in items(c, COPY_KINDS, &["-l", &selector]).await {
            let owners = owners_of(&copy);
            let mut accounted = false;
            for owner in &owners {
                let (ns, name) = owner.split_once('/').unwrap();
                let exists = self.mgmt.get(API, "Credential", Some(ns), name).await.is_some();
                if exists || record.contains_key(&format!("{cluster}.{ns}.{name}")) {
                    accounted = true;
                    break;
                }
            }
            if !accounted {
                found.push(format!("{} in {cluster} (owners {owners:?})", describe(&copy)));
            }
        }
        found
    }

    /// Every text the product writes that a person or tool reads without Secret access: Events in
    /// both clusters, Credential condition messages, the orphaned-copies record.
    async fn readable_texts(&self) -> Vec<(String, String)> {
        let mut texts = Vec::new();
        for (cluster, c) in [("management", &self.mgmt), ("region", &self.region)] {
            for e in items(c, "events", &[]).await {
                texts.push((format!("Event {} in {cluster}", describe(&e)), e.to_string()));
            }
        }
        for c in items(&self.mgmt, "credentials.k0rdent.mirantis.com", &[]).await {
            for cond in c["status"]["conditions"].as_array().into_iter().flatten() {
                texts.push((format!("condition {} of {}", cond["type"], describe(&c)), cond.to_string()));
            }
        }
        texts.push((format!("ConfigMap {ORPHANED_COPIES}"), Value::Object(self.orphan_record().await).to_string()));
        texts
    }

    /// No Secret value this test created, plain or base64, outside a Secret's data.
    pub async fn assert_no_secret_data_outside_secrets(&self) {
        let values: Vec<String> = self.secrets.iter().flat_map(|s| [s.clone(), b64(s)]).collect();
        for (what, text) in self.readable_texts().await {
            for v in &values {
                assert!(!text.contains(v.as_str()), "Secret data in {what}: {text}");
            }
        }
    }

    /// What every teardown ends with, within [`LIMIT`]: nothing `Terminating` in the management
    /// cluster, no copy (regional, or a managed copy in the management cluster) that no existing
    /// Credential owns unless the orphaned-copies record gives up its release, no Secret data outside
    /// Secrets.
    pub async fn assert_clean(&self, order: &str) {
        let start = std::time::Instant::now();
        loop {
            let mut problems: Vec<String> =
                self.terminating().await.into_iter().map(|o| format!("{o} Terminating")).collect();
            problems.extend(self.unaccounted_copies(&self.region, &format!("region.{REGION}")).await);
            problems.extend(self.unaccounted_copies(&self.mgmt, "management").await);
            if problems.is_empty() {
                break;
            }
            if start.elapsed() > LIMIT {
                let record = self.orphan_record().await;
                panic!("{order}: not settled within {LIMIT:?}: {problems:#?}\n{ORPHANED_COPIES}: {record:#?}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.assert_no_secret_data_outside_secrets().await;
    }
}
