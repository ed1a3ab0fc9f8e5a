//! `credential-webhook preflight` against a real kube-apiserver (tests/kube-test-cluster): on a
//! cluster without cert-manager it fails naming both missing CRDs (and the ServiceAccount's missing
//! permissions); once cert-manager's CRDs, the shipped RBAC, the serving Secret, the webhook
//! configurations with its CA and a reachable Region are there, every check passes (exit 0); a
//! caBundle that does not hold the serving certificate's CA, and a Region whose cluster does not
//! answer, fail again with the fix.
//!
//! Needs Go (to build the cluster once) and `kubectl` on PATH (or `KUBECTL`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use credential_e2e::cluster::{shipped_rbac_yaml, shipped_webhook_configurations};
use credential_e2e::{ClusterOptions, KubeCluster};
use credential_webhook::preflight::{
    CHECK_CERT_MANAGER, CHECK_K0RDENT, CHECK_RBAC, CHECK_REGIONS, CHECK_WEBHOOKS, PreflightOptions, Report, Status, run,
};

const KCM: &str = "kcm-system";

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn options() -> PreflightOptions {
    PreflightOptions {
        namespace: KCM.into(),
        system_namespace: KCM.into(),
        service_account: "credential-webhook".into(),
        region_timeout: Duration::from_secs(3),
    }
}

async fn preflight(cluster: &KubeCluster) -> Report {
    let report = run(cluster.client().await.unwrap(), &options()).await;
    eprintln!("{}", report.render());
    report
}

fn status(report: &Report, check: &str) -> Status {
    report.check(check).unwrap_or_else(|| panic!("no check {check:?} in\n{}", report.render())).status
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The Secret cert-manager would write for the serving Certificate: the pair and its CA.
fn serving_secret(ca_pem: &str, cert_pem: &str, key_pem: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: credential-webhook-tls, namespace: {KCM}}}\ntype: kubernetes.io/tls\n\
         data: {{ca.crt: {}, tls.crt: {}, tls.key: {}}}\n",
        b64(ca_pem),
        b64(cert_pem),
        b64(key_pem)
    )
}

/// A Region whose kubeconfig Secret holds `kubeconfig`.
fn region(name: &str, kubeconfig: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}-kubeconfig, namespace: {KCM}}}\ndata: {{value: {}}}\n---\n\
         apiVersion: k0rdent.mirantis.com/v1beta1\nkind: Region\nmetadata: {{name: {name}}}\n\
         spec: {{kubeConfig: {{name: {name}-kubeconfig, key: value}}}}\n",
        b64(kubeconfig)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_reports_what_is_missing_and_passes_on_a_complete_cluster() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = KubeCluster::start(ClusterOptions { crds: true, ..ClusterOptions::new("preflight") }).await.unwrap();
    cluster.kubectl_ok(&["create", "namespace", KCM], None).await.unwrap();

    // 1. Nothing installed beyond k0rdent's CRDs: cert-manager's CRDs are named, the ServiceAccount
    //    has none of its permissions, the webhook is not registered yet (a warning), exit 1.
    let report = preflight(&cluster).await;
    assert_eq!(report.exit_code(), 1);
    let cm = report.check(CHECK_CERT_MANAGER).unwrap();
    assert_eq!(cm.status, Status::Fail);
    for crd in ["certificates.cert-manager.io", "issuers.cert-manager.io"] {
        assert!(cm.detail.contains(crd), "the failure must name {crd}: {}", cm.detail);
    }
    assert!(cm.fix.as_deref().unwrap().contains("install cert-manager"), "{:?}", cm.fix);
    assert_eq!(status(&report, CHECK_K0RDENT), Status::Pass);
    assert_eq!(status(&report, CHECK_WEBHOOKS), Status::Warn);
    let rbac = report.check(CHECK_RBAC).unwrap();
    assert_eq!(rbac.status, Status::Fail, "{}", rbac.detail);
    let all = credential_webhook::preflight::needs(KCM, KCM).len();
    assert!(rbac.detail.contains(&format!("has none of the {all} permissions")), "{}", rbac.detail);
    assert!(report.render().contains("[FAIL] cert-manager CRDs: missing or not established"), "{}", report.render());

    // 2. Everything in place: cert-manager's CRDs, the shipped RBAC, the serving Secret (as
    //    cert-manager writes it), a Region whose cluster answers (this one), and the shipped webhook
    //    configurations with the CA injected (a URL instead of the Service: no pod runs here).
    let cert_manager = repo_root().join("tests/crds-cert-manager");
    let cert_manager = cert_manager.to_str().unwrap();
    cluster.kubectl_ok(&["apply", "-f", cert_manager], None).await.unwrap();
    cluster
        .kubectl_ok(&["wait", "--for=condition=Established", "--timeout=60s", "-f", cert_manager], None)
        .await
        .unwrap();
    cluster.apply(&shipped_rbac_yaml().await.unwrap()).await.unwrap();
    let ca = credential_webhook::certs::Ca::new().unwrap();
    let pair = ca.issue(&["credential-webhook.kcm-system.svc".to_string()]).unwrap();
    cluster.apply(&serving_secret(ca.cert_pem(), &pair.cert_pem, &pair.key_pem)).await.unwrap();
    cluster.apply(&region("near", &cluster.kubeconfig_yaml())).await.unwrap();
    // Registered last: with failurePolicy Fail and nothing serving, later Region writes would be refused.
    cluster.apply(&shipped_webhook_configurations("https://127.0.0.1:1", ca.cert_pem()).await.unwrap()).await.unwrap();

    let report = preflight(&cluster).await;
    assert_eq!(report.exit_code(), 0, "all good must pass:\n{}", report.render());
    assert!(report.checks.iter().all(|c| c.status == Status::Pass), "{}", report.render());
    assert!(report.check(&format!("{CHECK_REGIONS}: Region near")).unwrap().detail.contains("answers"));
    assert!(report.render().ends_with("preflight passed\n"));

    // 3. The serving certificate re-issued by another CA, caBundle not updated: refused, with the fix.
    let other = credential_webhook::certs::Ca::new().unwrap();
    let pair = other.issue(&["credential-webhook.kcm-system.svc".to_string()]).unwrap();
    cluster.apply(&serving_secret(other.cert_pem(), &pair.cert_pem, &pair.key_pem)).await.unwrap();
    let report = preflight(&cluster).await;
    assert_eq!(report.exit_code(), 1);
    let wh = report.check(CHECK_WEBHOOKS).unwrap();
    assert_eq!(wh.status, Status::Fail);
    assert!(wh.detail.contains("does not hold the CA"), "{}", wh.detail);
    assert!(wh.fix.as_deref().unwrap().contains("cainjector"), "{:?}", wh.fix);

    // 4. A Region whose API server does not answer is named, with the address.
    cluster
        .kubectl_ok(
            &["delete", "validatingwebhookconfiguration,mutatingwebhookconfiguration", "credential-webhook"],
            None,
        )
        .await
        .unwrap();
    let dead = cluster.kubeconfig_yaml().replace(cluster.server(), "https://127.0.0.1:1");
    cluster.apply(&region("far", &dead)).await.unwrap();
    let report = preflight(&cluster).await;
    assert_eq!(report.exit_code(), 1);
    let far = report.check(&format!("{CHECK_REGIONS}: Region far")).unwrap();
    assert_eq!(far.status, Status::Fail);
    assert!(far.detail.contains("https://127.0.0.1:1"), "{}", far.detail);
    assert_eq!(status(&report, &format!("{CHECK_REGIONS}: Region near")), Status::Pass);
    assert_eq!(status(&report, CHECK_CERT_MANAGER), Status::Pass);
    assert_eq!(status(&report, CHECK_RBAC), Status::Pass);

    // 5. One permission taken away is named precisely.
    cluster
        .kubectl_ok(&["delete", "rolebinding", "-n", KCM, "-l", "app.kubernetes.io/name=credential-webhook"], None)
        .await
        .unwrap();
    let report = preflight(&cluster).await;
    let rbac = report.check(CHECK_RBAC).unwrap();
    assert_eq!(rbac.status, Status::Fail);
    assert!(
        rbac.detail.contains("may not: ") && rbac.detail.contains("leases.coordination.k8s.io in kcm-system"),
        "{}",
        rbac.detail
    );
}
