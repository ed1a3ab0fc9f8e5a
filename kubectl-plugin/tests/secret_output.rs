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
        .filter_map(|c| c["credential"].as_str()?.strip_prefix("kcm-system/").map(String::from))
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
    for fmt in ["text", "json"] {
        for target in ["examples/estate", "examples/manifests"] {
            check(&["lint", "-f", target, "-o", fmt]);
            outputs += 1;
        }
    }
    assert!(outputs > 50, "{outputs}");
}
