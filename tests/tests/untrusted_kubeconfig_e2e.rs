//! A Region's kubeconfig Secret is written by whoever may write that Secret (for a
//! `spec.clusterDeployment` Region, a tenant namespace). `kubectl credential explain` runs on an
//! operator's machine: a kubeconfig from such a Secret must never make it run a command or read a
//! local file. Here one Region's kubeconfig has an `exec` plugin (a script that would leave a marker
//! file) and another's a `tokenFile`; both point at a live regional kube-apiserver
//! (tests/kube-test-cluster) whose own metrics must show no request. Needs Go (to build the cluster
//! once) and `kubectl` on PATH.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::PermissionsExt as _;

use support::real::{
    documents, example_objects, plugin_binary, refused_requests, requests_between, resource_requests, seed,
    start_cluster,
};

/// A Region (Ready), its Credential, and the kubeconfig Secret `secret_ns/secret_name[value]`.
fn region_yaml(name: &str, spec: &str, secret_ns: &str, secret_name: &str, kubeconfig: &str) -> String {
    let b64 = support::b64(kubeconfig);
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {secret_name}, namespace: {secret_ns}}}\ndata: {{value: {b64}}}\n\
         ---\napiVersion: k0rdent.mirantis.com/v1beta1\nkind: Region\nmetadata: {{name: {name}}}\nspec: {spec}\n\
         status: {{conditions: [{{type: Ready, status: \"True\"}}]}}\n---\n\
         apiVersion: k0rdent.mirantis.com/v1beta1\nkind: Credential\nmetadata: {{name: {name}-cred, namespace: kcm-system}}\n\
         spec: {{region: {name}, identityRef: {{apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: \
         AWSClusterStaticIdentity, name: aws-cluster-identity}}}}\n---\n"
    )
}

/// A kubeconfig for `server` whose only user is `user` (a YAML flow mapping).
fn kubeconfig(server: &str, user: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: r\nclusters: [{{name: r, cluster: {{server: \"{server}\"}}}}]\n\
         contexts: [{{name: r, context: {{cluster: r, user: r}}}}]\nusers: [{{name: r, user: {user}}}]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_kubeconfig_with_exec_or_token_file_is_rejected_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("exec-plugin-ran");
    let script = dir.path().join("exec-plugin.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ntouch '{}'\necho '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\
             \"status\":{{\"token\":\"t\"}}}}'\n",
            marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let token_file = dir.path().join("operator-token");
    std::fs::write(&token_file, "OPERATOR-LOCAL-TOKEN").unwrap();

    let regional = start_cluster("regional", false, false).await;
    let mgmt = start_cluster("mgmt", false, false).await;
    let exec_user = format!(
        "{{exec: {{apiVersion: client.authentication.k8s.io/v1, command: \"{}\", interactiveMode: Never}}}}",
        script.display()
    );
    let token_user = format!("{{tokenFile: \"{}\"}}", token_file.display());
    let seeds = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: tenant}}\n---\n{}{}",
        region_yaml(
            "exec-region",
            "{kubeConfig: {name: exec-region-kubeconfig, key: value}}",
            "kcm-system",
            "exec-region-kubeconfig",
            &kubeconfig(regional.server(), &exec_user),
        ),
        // Through a ClusterDeployment: its `<cd>-kubeconfig` Secret lives in the tenant's namespace.
        region_yaml(
            "file-region",
            "{clusterDeployment: {name: cd1, namespace: tenant}}",
            "tenant",
            "cd1-kubeconfig",
            &kubeconfig(regional.server(), &token_user),
        ),
    );
    // The management objects of the example estate (with their own CRDs), then the two Regions.
    let mut objects = example_objects("");
    objects.extend(documents(&seeds));
    seed(&mgmt, &objects).await;
    let (requests_before, refused_before) = (resource_requests(&regional).await, refused_requests(&regional).await);

    let bin = plugin_binary();
    let explain = |cred: &str| {
        let out = std::process::Command::new(bin)
            .args(["explain", cred, "-n", "kcm-system", "--kubeconfig"])
            .arg(mgmt.kubeconfig_path())
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8_lossy(&out.stderr).into_owned())
    };

    // The rejected kubeconfig is a check that could not be made from here (UNKNOWN), shown on the
    // regional-cluster row with the reason; the verdict is NOT READY because KCM marked the
    // Credential not ready (a definite failure outranks an unknown). Text unwrapped for matching.
    let unwrapped = |s: &str| {
        // Words only: the tree's `|` and `|--` marks at the start of wrapped lines are left out.
        s.split_whitespace().filter(|w| !w.chars().all(|c| c == '|' || c == '-')).collect::<Vec<_>>().join(" ")
    };
    let (code, stdout, stderr) = explain("exec-region-cred");
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("Credential kcm-system/exec-region-cred is NOT READY:"), "{stdout}");
    assert!(
        unwrapped(&stdout).contains(
            "kubeconfig in Secret kcm-system/exec-region-kubeconfig[value] is rejected: users[0].user.exec is set; \
             it runs a local command"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("[??]   Regional cluster    exec-region: not checked"), "{stdout}");
    let (code, stdout2, stderr2) = explain("file-region-cred");
    assert_eq!(code, Some(1), "{stdout2}\n{stderr2}");
    assert!(
        unwrapped(&stdout2).contains(
            "kubeconfig in Secret tenant/cd1-kubeconfig[value] is rejected: users[0].user.tokenFile is set; it reads \
             a local file"
        ),
        "{stdout2}"
    );

    // Nothing ran, nothing was read, nothing was sent.
    assert!(!marker.exists(), "the exec plugin of a Secret's kubeconfig ran on the operator's machine");
    // The regional apiserver's own counters: no request on the resources a client of ours reads,
    // and no refused one (a token from the exec plugin or the file would fail authentication).
    let sent = requests_between(&requests_before, &resource_requests(&regional).await);
    assert!(sent.is_empty(), "the regional apiserver served requests: {sent:?}");
    assert_eq!(refused_requests(&regional).await, refused_before, "the regional apiserver refused requests");
    for text in [&stdout, &stderr, &stdout2, &stderr2] {
        assert!(!text.contains(&*script.to_string_lossy()), "the command is shown: {text}");
        assert!(!text.contains(&*token_file.to_string_lossy()) && !text.contains("OPERATOR-LOCAL-TOKEN"), "{text}");
    }

    // The script does leave its marker when run: its absence above is the check's doing.
    assert!(std::process::Command::new(&script).status().unwrap().success());
    assert!(marker.exists());
}
