//! No Secret value in the plugin's output, whatever the command, output format or colour mode: every
//! example Credential through explain/plan in every format, the explain summary, and lint in every
//! format (`list` reads live clusters only: tests/tests/plugin_e2e.rs checks it against the emulator), on the example estate whose Secrets hold fake values (`EXAMPLE-...`, base64 `RVhBTVBMRS...`).
//! The plugin has no log verbosity flag: stdout and stderr are everything it prints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

/// Clear text and base64 forms of the fake Secret values in examples/estate.
const SECRET_MARKERS: &[&str] = &["EXAMPLE-", "RVhBTVBMRS"];

fn run(args: &[&str]) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_kubectl-credential"))
        .args(args)
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    (o.status.code().unwrap_or(-1), text)
}

fn check(args: &[&str]) -> String {
    let (code, text) = run(args);
    assert!((0..=1).contains(&code), "{args:?} exited {code}:\n{text}");
    for m in SECRET_MARKERS {
        assert!(!text.contains(m), "{args:?} printed Secret data ({m}):\n{text}");
    }
    text
}

#[test]
fn no_command_format_or_colour_prints_secret_values() {
    // The example estate really holds the markers (else this test proves nothing).
    let estate = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/estate/identities-aws.yaml"),
    )
    .unwrap();
    assert!(estate.contains("RVhBTVBMRS"), "fixture changed: no fake Secret data left");

    // The summary (explain without a name) lists every Credential of the namespace.
    let summary: serde_json::Value =
        serde_json::from_str(&check(&["explain", "-n", "kcm-system", "--from", "examples/estate", "-o", "json"]))
            .unwrap();
    let names: Vec<String> = summary["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["credential"]["namespace"] == "kcm-system")
        .filter_map(|c| c["credential"]["name"].as_str().map(String::from))
        .collect();
    assert!(names.len() >= 5, "{names:?}");
    for fmt in ["text", "yaml"] {
        check(&["explain", "-n", "kcm-system", "--from", "examples/estate", "-o", fmt]);
    }
    let mut outputs = 0;
    for name in &names {
        for fmt in ["text", "json", "yaml"] {
            for color in ["never", "always"] {
                let explain = ["explain", name, "-n", "kcm-system", "--from", "examples/estate", "-o", fmt];
                check(&[&explain[..], &["--color", color]].concat());
                outputs += 1;
            }
            check(&["plan", name, "-n", "kcm-system", "--from", "examples/estate", "-o", fmt]);
            outputs += 1;
        }
    }
    for fmt in ["text", "json", "yaml", "junit", "sarif"] {
        for target in ["examples/estate", "examples/manifests"] {
            check(&["lint", "-f", target, "-o", fmt]);
            outputs += 1;
        }
    }
    assert!(outputs > 50, "{outputs}");
}

/// A managed (AccessManagement) Credential: its references keep their place in the management
/// cluster, so the plan lists them as in place, not as copies. Their Secret values must be
/// redacted all the same (they once were printed in full by `plan -o json|yaml`).
#[test]
fn managed_credentials_print_no_secret_values() {
    const VALUE: &str = "TUFOQUdFRC1TRUNSRVQtVkFMVUU="; // base64 of MANAGED-SECRET-VALUE
    const CLEAR: &str = "MANAGED-SECRET-VALUE";
    let dir = tempfile::tempdir().unwrap();
    let pi = credential_e2e::manifests::AWS_PROVIDER_INTERFACE.trim();
    let estate = format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: kcm-system}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: team-a}}
---
{pi}
  - {{group: "", version: v1, kind: Secret}}
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSClusterStaticIdentity
metadata: {{name: aws-identity}}
spec: {{secretRef: aws-identity-secret}}
---
apiVersion: v1
kind: Secret
metadata: {{name: aws-identity-secret, namespace: kcm-system}}
type: Opaque
data: {{AccessKeyID: {VALUE}}}
stringData: {{SecretAccessKey: {CLEAR}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: plain-identity, namespace: kcm-system}}
type: Opaque
data: {{token: {VALUE}}}
---
apiVersion: k0rdent.mirantis.com/v1beta1
kind: Credential
metadata:
  name: aws-managed
  namespace: team-a
  labels: {{k0rdent.mirantis.com/managed: "true"}}
spec:
  identityRef: {{apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSClusterStaticIdentity, name: aws-identity}}
---
apiVersion: k0rdent.mirantis.com/v1beta1
kind: Credential
metadata:
  name: secret-managed
  namespace: team-a
  labels: {{k0rdent.mirantis.com/managed: "true"}}
spec:
  identityRef: {{apiVersion: v1, kind: Secret, name: plain-identity, namespace: kcm-system}}
"#
    );
    std::fs::write(dir.path().join("estate.yaml"), estate).unwrap();
    let from = dir.path().to_str().unwrap();
    for (name, in_place_secret) in [("aws-managed", "aws-identity-secret"), ("secret-managed", "plain-identity")] {
        for fmt in ["json", "yaml", "text"] {
            for cmd in ["plan", "explain"] {
                let (code, text) = run(&[cmd, name, "-n", "team-a", "--from", from, "-o", fmt]);
                assert!((0..=1).contains(&code), "{cmd} {name} -o {fmt} exited {code}:\n{text}");
                assert!(
                    !text.contains(VALUE) && !text.contains(CLEAR),
                    "{cmd} {name} -o {fmt} printed Secret data:\n{text}"
                );
            }
        }
        // The Secret really is in the plan (else the checks above prove nothing), keys kept.
        let o = Command::new(env!("CARGO_BIN_EXE_kubectl-credential"))
            .args(["plan", name, "-n", "team-a", "--from", from, "-o", "json"])
            .env("KUBECONFIG", "/nonexistent")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        let plan: serde_json::Value = serde_json::from_str(&text).unwrap();
        let all: Vec<&serde_json::Value> =
            ["inPlace", "copies"].iter().flat_map(|f| plan[f].as_array().unwrap().iter()).collect();
        let secret = all
            .iter()
            .find(|c| c["source"]["name"] == in_place_secret)
            .unwrap_or_else(|| panic!("{in_place_secret} not planned:\n{text}"));
        assert!(secret["object"]["data"].as_object().is_some_and(|d| d.values().all(|v| v == "<redacted>")), "{text}");
    }
}
