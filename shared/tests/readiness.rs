//! `readiness::explain` over the example estate: every example Credential gets the verdict and
//! root cause its README entry promises, and the failing check is the right one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use credential_core::estate::{LoadOptions, MemoryEstate, load_dir};
use credential_core::readiness::{Check, ExplainError, Report, Status, Verdict, explain};
use credential_core::{Cluster, Estate, Gvk};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/estate")
}

fn estate() -> MemoryEstate {
    load_dir(&examples(), &LoadOptions::default()).expect("the example estate loads")
}

fn report(name: &str) -> Report {
    explain("kcm-system", name, &estate()).unwrap()
}

fn check<'a>(r: &'a Report, name: &str) -> &'a Check {
    r.checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name} in {r:#?}"))
}

/// Statuses of the top-level checks, in order.
fn statuses(r: &Report) -> Vec<(&str, Status)> {
    r.checks.iter().map(|c| (c.name.as_str(), c.status)).collect()
}

fn first_fail(r: &Report) -> Option<&str> {
    r.checks.iter().find(|c| c.status == Status::Fail).map(|c| c.name.as_str())
}

#[test]
fn check_order_is_fixed() {
    let r = report("aws-region1-cred");
    let names: Vec<&str> = r.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Credential",
            "identityRef",
            "Region",
            "Regional cluster",
            "CRD",
            "ProviderInterface",
            "Identity",
            "Copies",
            "ClusterDeployments"
        ]
    );
}

#[test]
fn ready_credentials_pass_every_check() {
    for name in ["aws-region1-cred", "aws-role-region1-cred"] {
        let r = report(name);
        assert_eq!(r.verdict, Verdict::Ready, "{name}: {}", r.root_cause);
        assert!(r.root_cause.is_empty() && r.fix.is_empty());
        assert!(r.checks.iter().all(|c| c.status == Status::Pass), "{name}: {:?}", statuses(&r));
        assert!(check(&r, "Copies").summary.starts_with("2 of 2 objects present in region1"));
    }
    let role = report("aws-role-region1-cred");
    let identity = check(&role, "Identity");
    assert_eq!(identity.children.len(), 1);
    assert_eq!(identity.children[0].name, "AWSClusterControllerIdentity");
    assert!(identity.children[0].summary.contains("spec.sourceIdentityRef.name"));
}

#[test]
fn management_credential_needs_no_region_and_no_copies() {
    let r = report("azure-cred");
    assert_eq!(r.verdict, Verdict::Ready, "{}", r.root_cause);
    assert_eq!(check(&r, "Region").status, Status::Skip);
    assert_eq!(check(&r, "Copies").status, Status::Skip);
    let secret = &check(&r, "Identity").children[0];
    assert_eq!((secret.name.as_str(), secret.status), ("Secret", Status::Pass));
    assert!(secret.summary.starts_with("kcm-system/azure-cluster-identity-secret"));
}

#[test]
fn missing_region() {
    let r = report("aws-region9-cred");
    assert_eq!(r.verdict, Verdict::NotReady);
    assert_eq!(r.root_cause, "Region region9 does not exist");
    assert_eq!(first_fail(&r), Some("Region"));
    assert!(check(&r, "Region").evidence.iter().any(|e| e == "existing Regions: region1, region2"));
    // KCM's own message is quoted and translated.
    let cred = check(&r, "Credential");
    assert_eq!(cred.status, Status::Warn);
    assert!(cred.evidence.iter().any(|e| e == "means: Region region9 does not exist"), "{cred:?}");
}

#[test]
fn region_not_ready_even_though_kcm_says_ready() {
    let r = report("aws-region2-cred");
    assert_eq!(r.root_cause, "Region region2 is not Ready: Components not ready: [cluster-api-provider-azure]");
    assert_eq!(check(&r, "Credential").status, Status::Pass);
    assert_eq!(first_fail(&r), Some("Region"));
    // Only the Region is broken.
    assert_eq!(r.checks.iter().filter(|c| c.status == Status::Fail).count(), 1, "{:?}", statuses(&r));
}

#[test]
fn provider_not_enabled_in_region() {
    let r = report("azure-region1-cred");
    assert_eq!(r.root_cause, "provider Azure is not enabled in Region region1");
    assert_eq!(first_fail(&r), Some("CRD"));
    let crd = check(&r, "CRD");
    assert_eq!(crd.summary, "azureclusteridentities.infrastructure.cluster.x-k8s.io not served in region1");
    assert_eq!(crd.evidence, ["(served in management)"]);
    let cred = check(&r, "Credential");
    assert!(
        cred.evidence.iter().any(|e| e.starts_with(
            "means: infrastructure.cluster.x-k8s.io/v1beta1 is not served in Region region1: the provider"
        )),
        "{cred:?}"
    );
    assert!(r.fix[0].description.contains("spec.providers: cluster-api-provider-azure"), "{:?}", r.fix);
    assert_eq!(r.fix[0].command.as_deref(), Some("kubectl edit region region1"));
    // Enabling the provider is followed by the re-run, not by a wait for a Ready the Region already has.
    assert_eq!(r.fix.len(), 2, "{:?}", r.fix);
    assert!(r.fix.iter().all(|f| !f.description.contains("wait")), "{:?}", r.fix);
    // The ClusterDeployment that uses it is flagged as blocked.
    let cds = check(&r, "ClusterDeployments");
    assert_eq!(cds.status, Status::Warn);
    assert_eq!(cds.evidence, ["kcm-system/azure-apps"]);
}

#[test]
fn no_provider_interface_entry_in_region() {
    let r = report("gcp-region1-cred");
    assert_eq!(
        r.root_cause,
        "no ProviderInterface in Region region1 declares v1 Secret: identity distribution will not happen"
    );
    assert_eq!(first_fail(&r), Some("ProviderInterface"));
    assert_eq!(check(&r, "CRD").status, Status::Pass, "Secret is built in");
    assert_eq!(check(&r, "Copies").status, Status::Skip);
    assert!(r.fix[0].description.contains("cluster-api-provider-gcp"), "{:?}", r.fix);
}

#[test]
fn identity_missing() {
    let r = report("aws-missing-identity-cred");
    assert_eq!(
        r.root_cause,
        "identity AWSClusterStaticIdentity aws-cluster-identity-prod does not exist in the management cluster"
    );
    assert_eq!(first_fail(&r), Some("Identity"));
    assert_eq!(check(&r, "Credential").summary, "READY=false  no CredentialReady condition");
    assert_eq!(check(&r, "Copies").status, Status::Skip);
}

#[test]
fn reference_path_not_resolving() {
    let r = report("aws-bad-path-cred");
    assert_eq!(
        r.root_cause,
        "AWSClusterStaticIdentity aws-identity-bad-path does not name its Secret: field spec.secretRef is not set"
    );
    assert_eq!(first_fail(&r), Some("Identity"));
    let child = &check(&r, "Identity").children[0];
    assert_eq!((child.name.as_str(), child.status), ("Secret", Status::Fail));
}

#[test]
fn copies_missing_in_region() {
    let r = report("aws-uncopied-cred");
    assert!(r.root_cause.starts_with("2 of 2 identity objects are missing in Region region1"), "{}", r.root_cause);
    assert_eq!(first_fail(&r), Some("Copies"));
    let copies = check(&r, "Copies");
    assert_eq!(copies.summary, "0 of 2 objects present in region1");
    assert!(copies.children.iter().all(|c| c.status == Status::Fail && c.summary.ends_with("missing")));
}

#[test]
fn copies_stale_in_region_never_print_values() {
    let r = report("aws-stale-cred");
    assert_eq!(
        r.root_cause,
        "the copy of Secret kcm-system/aws-rotated-identity-secret in Region region1 is stale: data differs (keys: \
         SecretAccessKey)"
    );
    assert_eq!(first_fail(&r), Some("Copies"));
    let json = serde_json::to_string(&r).unwrap();
    for value in ["RVhBTVBMRS1", "EXAMPLE-"] {
        assert!(!json.contains(value), "secret data in the report: {json}");
    }
}

#[test]
fn every_not_ready_report_ends_with_the_rerun_command() {
    let estate = estate();
    for cred in estate.list(&Cluster::Management, &Gvk::credential(), Some("kcm-system")) {
        let name = cred["metadata"]["name"].as_str().unwrap();
        let r = explain("kcm-system", name, &estate).unwrap();
        if r.verdict == Verdict::NotReady {
            assert!(!r.root_cause.is_empty());
            let last = r.fix.last().unwrap();
            assert_eq!(last.command, Some(format!("kubectl credential explain {name} -n kcm-system")));
            assert!(r.fix.len() >= 2, "{name}: a fix says what to do before re-running: {:?}", r.fix);
            for step in &r.fix {
                // Commands are whole lines: no prose glued on, nothing to wrap inside.
                let cmd = step.command.as_deref().unwrap_or("kubectl (none)");
                assert!(cmd.starts_with("kubectl ") || cmd.starts_with("mkdir "), "{name}: {step:?}");
                assert!(!cmd.contains('\n') && !step.description.contains("kubectl "), "{name}: {step:?}");
            }
        }
    }
}

#[test]
fn unknown_credential_lists_the_namespace() {
    let err = explain("kcm-system", "nope", &estate()).unwrap_err();
    let ExplainError::NotFound { available, .. } = err;
    assert_eq!(available.len(), 11);
    assert!(available.contains(&"kcm-system/aws-region1-cred".to_string()));
}

#[test]
fn json_shape() {
    let v = serde_json::to_value(report("azure-region1-cred")).unwrap();
    assert_eq!(v["verdict"], "NotReady");
    assert_eq!(v["rootCause"], "provider Azure is not enabled in Region region1");
    assert_eq!(
        v["credential"],
        serde_json::json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Credential",
                           "namespace": "kcm-system", "name": "azure-region1-cred", "cluster": "management"})
    );
    let crd = &v["checks"][4];
    assert_eq!((crd["name"].as_str(), crd["verdict"].as_str()), (Some("CRD"), Some("fail")));
    assert_eq!(crd["code"], "crd");
    assert!(crd["children"].is_array() && crd["evidence"].is_array());
    // Every check, at every depth, carries code, verdict, since and objects of one shape.
    fn walk(c: &serde_json::Value, seen: &mut usize) {
        *seen += 1;
        assert!(c["code"].is_string() && c["verdict"].is_string(), "{c}");
        assert!(c.get("since").is_some_and(|s| s.is_null() || s.is_string()), "{c}");
        for o in c["objects"].as_array().unwrap() {
            let keys: Vec<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
            for k in ["apiVersion", "kind", "name", "cluster"] {
                assert!(keys.contains(&k), "{o}");
            }
            assert!(keys.iter().all(|k| ["apiVersion", "kind", "namespace", "name", "cluster"].contains(k)), "{o}");
        }
        for child in c["children"].as_array().unwrap() {
            walk(child, seen);
        }
    }
    let mut seen = 0;
    for c in v["checks"].as_array().unwrap() {
        walk(c, &mut seen);
    }
    assert!(seen > 9, "children were walked too");
    let region = &v["checks"][2];
    let kinds: Vec<&str> = region["objects"].as_array().unwrap().iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Region", "Secret"]);
    for step in v["fix"].as_array().unwrap() {
        assert!(step["description"].is_string() && step.get("command").is_some(), "{step}");
    }
}

#[test]
fn unknown_regional_state_skips_served_checks_instead_of_guessing() {
    // Without region1's CRDs the estate cannot tell what region1 serves.
    let estate = estate();
    let region1 = Cluster::Region("region1".into());
    let mut fresh = MemoryEstate::default();
    for cluster in estate.clusters() {
        fresh.add_cluster(cluster.clone());
        for obj in estate.all(&cluster) {
            if cluster == region1 && Gvk::of(&obj) == Some(Gvk::crd()) {
                continue;
            }
            fresh.insert(&cluster, (*obj).clone());
        }
    }
    let r = explain("kcm-system", "azure-region1-cred", &fresh).unwrap();
    let crd = check(&r, "CRD");
    assert_eq!(crd.status, Status::Pass, "{crd:?}");
    assert!(crd.evidence.iter().any(|e| e.starts_with("not checked in region1")), "{crd:?}");
    // The next failing check becomes the root cause.
    assert_eq!(first_fail(&r), Some("ProviderInterface"));
}

/// The example estate with one object replaced (or added) in a cluster.
fn estate_with(cluster: &Cluster, obj: serde_json::Value) -> MemoryEstate {
    let mut e = estate();
    assert!(e.insert(cluster, obj));
    e
}

#[test]
fn kind_only_provider_interface_match_names_the_versions() {
    let mut pi = (*estate()
        .get(&Cluster::Region("region1".into()), &Gvk::provider_interface(), None, "cluster-api-provider-aws")
        .unwrap())
    .clone();
    pi["spec"]["clusterIdentities"][0]["version"] = "v1beta1".into();
    let e = estate_with(&Cluster::Region("region1".into()), pi);
    let r = explain("kcm-system", "aws-region1-cred", &e).unwrap();
    assert_eq!(first_fail(&r), Some("ProviderInterface"));
    assert_eq!(
        r.root_cause,
        "ProviderInterface cluster-api-provider-aws in Region region1 declares AWSClusterStaticIdentity at \
         infrastructure.cluster.x-k8s.io/v1beta1, not infrastructure.cluster.x-k8s.io/v1beta2: identity \
         distribution will not happen"
    );
    assert_eq!(r.fix[0].description, "set spec.identityRef.apiVersion to infrastructure.cluster.x-k8s.io/v1beta1");
}

#[test]
fn kcm_not_ready_with_every_check_passing_is_still_not_ready() {
    let mut cred =
        (*estate().get(&Cluster::Management, &Gvk::credential(), Some("kcm-system"), "aws-region1-cred").unwrap())
            .clone();
    cred["status"] = serde_json::json!({"ready": false, "conditions": [{"type": "CredentialReady", "status": "False",
        "reason": "Failed", "message": "some transient error"}]});
    let r = explain("kcm-system", "aws-region1-cred", &estate_with(&Cluster::Management, cred)).unwrap();
    assert_eq!(r.verdict, Verdict::NotReady);
    assert_eq!(first_fail(&r), None);
    assert_eq!(r.root_cause, "KCM reports it not ready: some transient error");
    assert!(r.fix[0].description.starts_with("wait for KCM to reconcile the Credential"), "{:?}", r.fix);
    assert_eq!(r.fix[0].command.as_deref(), Some("kubectl describe credential aws-region1-cred -n kcm-system"));
}

#[test]
fn copies_lacking_only_this_owner_warn_and_stay_ready() {
    let region1 = Cluster::Region("region1".into());
    let mut copy =
        (*estate().get(&region1, &Gvk::secret(), Some("kcm-system"), "aws-cluster-identity-secret").unwrap()).clone();
    copy["metadata"]["annotations"][credential_core::model::labels::OWNERS_ANNOTATION] =
        serde_json::json!("kcm-system/someone-else");
    let r = explain("kcm-system", "aws-region1-cred", &estate_with(&region1, copy)).unwrap();
    assert_eq!(r.verdict, Verdict::Ready, "{}", r.root_cause);
    let copies = check(&r, "Copies");
    assert_eq!(copies.status, Status::Warn);
    let secret = copies.children.iter().find(|c| c.summary.contains("aws-cluster-identity-secret")).unwrap();
    assert!(secret.summary.ends_with("owners annotation lacks kcm-system/aws-region1-cred"), "{copies:?}");
}

#[test]
fn unmanaged_copies_warn_when_identical_and_conflict_when_different() {
    let region1 = Cluster::Region("region1".into());
    let secret = |name: &str| (*estate().get(&region1, &Gvk::secret(), Some("kcm-system"), name).unwrap()).clone();
    let mut same = secret("aws-cluster-identity-secret");
    // Not managed, otherwise what distribution writes: identical.
    same["metadata"]["labels"].as_object_mut().unwrap().remove(credential_core::model::labels::MANAGED);
    let r = explain("kcm-system", "aws-region1-cred", &estate_with(&region1, same)).unwrap();
    assert_eq!(r.verdict, Verdict::Ready, "{}", r.root_cause);
    let copies = check(&r, "Copies");
    assert_eq!(copies.status, Status::Warn);
    assert!(copies.children[0].summary.contains("not marked managed"), "{copies:?}");

    let mut other = secret("aws-rotated-identity-secret");
    other["metadata"]["labels"].as_object_mut().unwrap().remove(credential_core::model::labels::MANAGED);
    let r = explain("kcm-system", "aws-stale-cred", &estate_with(&region1, other)).unwrap();
    assert!(r.root_cause.ends_with("is stale: data differs (keys: SecretAccessKey)"), "{}", r.root_cause);
    assert!(check(&r, "Copies").children[0].summary.contains("conflict"), "{:?}", check(&r, "Copies"));
    assert!(r.fix[0].description.contains("was not created by distribution"), "{:?}", r.fix);
}
