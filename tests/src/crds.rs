//! Minimal CRDs for the k0rdent kinds and the CAPI identity kinds, for seeding an emulator.

use serde_json::Value;

/// `(file name, YAML)` of every CRD under `tests/crds/`.
pub const CRD_FILES: &[(&str, &str)] = &[
    ("k0rdent.mirantis.com_credentials.yaml", include_str!("../crds/k0rdent.mirantis.com_credentials.yaml")),
    ("k0rdent.mirantis.com_regions.yaml", include_str!("../crds/k0rdent.mirantis.com_regions.yaml")),
    (
        "k0rdent.mirantis.com_providerinterfaces.yaml",
        include_str!("../crds/k0rdent.mirantis.com_providerinterfaces.yaml"),
    ),
    (
        "k0rdent.mirantis.com_clusterdeployments.yaml",
        include_str!("../crds/k0rdent.mirantis.com_clusterdeployments.yaml"),
    ),
    ("k0rdent.mirantis.com_managements.yaml", include_str!("../crds/k0rdent.mirantis.com_managements.yaml")),
    ("k0rdent.mirantis.com_releases.yaml", include_str!("../crds/k0rdent.mirantis.com_releases.yaml")),
    (
        "infrastructure.cluster.x-k8s.io_awsclusterstaticidentities.yaml",
        include_str!("../crds/infrastructure.cluster.x-k8s.io_awsclusterstaticidentities.yaml"),
    ),
    (
        "infrastructure.cluster.x-k8s.io_awsclusterroleidentities.yaml",
        include_str!("../crds/infrastructure.cluster.x-k8s.io_awsclusterroleidentities.yaml"),
    ),
    (
        "infrastructure.cluster.x-k8s.io_awsclustercontrolleridentities.yaml",
        include_str!("../crds/infrastructure.cluster.x-k8s.io_awsclustercontrolleridentities.yaml"),
    ),
    (
        "infrastructure.cluster.x-k8s.io_azureclusteridentities.yaml",
        include_str!("../crds/infrastructure.cluster.x-k8s.io_azureclusteridentities.yaml"),
    ),
];

/// All CRDs as one multi-document YAML text (for `Emulator::seed_yaml` or `kubectl apply -f -`).
pub fn crds_yaml() -> String {
    CRD_FILES.iter().map(|(_, y)| format!("---\n{y}")).collect()
}

/// All CRDs as JSON objects. The files are part of this crate and checked by a unit test, so a file that does
/// not parse is a bug here; it is left out rather than panicking a caller.
pub fn crds() -> Vec<Value> {
    CRD_FILES.iter().filter_map(|(_, y)| serde_saphyr::from_str::<Value>(y).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_crd_file_parses_and_defines_a_resource() {
        assert_eq!(crds().len(), CRD_FILES.len());
        for crd in crds() {
            let def = crate::resources::from_crd(&crd).unwrap();
            assert!(!def.kind.is_empty());
        }
        let kinds: Vec<String> = crds().iter().filter_map(crate::resources::from_crd).map(|d| d.kind).collect();
        for k in
            ["Credential", "Region", "ProviderInterface", "ClusterDeployment", "Management", "AzureClusterIdentity"]
        {
            assert!(kinds.contains(&k.to_string()), "{k} missing");
        }
    }
}
