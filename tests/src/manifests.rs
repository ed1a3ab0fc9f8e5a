//! Manifests the tests of every crate build their estates from, as YAML text (what `kubectl
//! apply -f` and the offline loader read), so one fixture is written once.

/// The AWS ProviderInterface as KCM ships it: static identities referencing their Secret.
pub const AWS_PROVIDER_INTERFACE: &str = r#"
apiVersion: k0rdent.mirantis.com/v1beta1
kind: ProviderInterface
metadata: {name: cluster-api-provider-aws}
spec:
  clusterIdentities:
  - group: infrastructure.cluster.x-k8s.io
    version: v1beta2
    kind: AWSClusterStaticIdentity
    references:
    - {group: "", version: v1, kind: Secret, nameFieldPath: spec.secretRef}
"#;

/// A YAML stream of the given documents.
pub fn stream<S: AsRef<str>>(docs: &[S]) -> String {
    docs.iter().map(|d| d.as_ref().trim_matches('\n')).collect::<Vec<_>>().join("\n---\n") + "\n"
}

pub fn namespace(name: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n")
}

/// A cluster-scoped AWSClusterStaticIdentity naming its Secret (in the system namespace).
pub fn aws_static_identity(name: &str, secret: &str) -> String {
    format!(
        "apiVersion: infrastructure.cluster.x-k8s.io/v1beta2\nkind: AWSClusterStaticIdentity\n\
         metadata: {{name: {name}}}\nspec: {{secretRef: {secret}}}\n"
    )
}

/// Secret `<region>-kubeconfig` in `kcm-system` holding `kubeconfig_b64` under key `value`.
pub fn kubeconfig_secret(region: &str, kubeconfig_b64: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {region}-kubeconfig, namespace: kcm-system}}\n\
         data: {{value: {kubeconfig_b64}}}\n"
    )
}

/// Region `name` reading [`kubeconfig_secret`]; `ready` adds KCM's Ready status.
pub fn region(name: &str, ready: bool) -> String {
    let status = if ready {
        "status:\n  ready: true\n  conditions: [{type: Ready, status: \"True\", reason: Succeeded, message: ok, \
         lastTransitionTime: \"2026-01-01T00:00:00Z\"}]\n"
    } else {
        ""
    };
    format!(
        "apiVersion: k0rdent.mirantis.com/v1beta1\nkind: Region\nmetadata: {{name: {name}}}\n\
         spec:\n  kubeConfig: {{name: {name}-kubeconfig, key: value}}\n{status}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builder_is_yaml_of_the_object_it_names() {
        let text = stream(&[
            namespace("team"),
            AWS_PROVIDER_INTERFACE.to_string(),
            aws_static_identity("aws-id", "aws-secret"),
            kubeconfig_secret("r1", "eA=="),
            region("r1", true),
            region("r2", false),
        ]);
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
        let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["Namespace", "ProviderInterface", "AWSClusterStaticIdentity", "Secret", "Region", "Region"]);
        assert_eq!(docs[3]["metadata"]["name"], "r1-kubeconfig");
        assert_eq!(docs[4]["spec"]["kubeConfig"]["name"], "r1-kubeconfig");
        assert_eq!(docs[4]["status"]["conditions"][0]["status"], "True");
        assert!(docs[5].get("status").is_none());
    }
}
