//! The built `kubectl-credential` binary: exit codes, JSON shapes, text snapshots of `explain`
//! for every example Credential, and hostile input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Fake Secret values used in the examples (base64 prefix of `EXAMPLE-...`): must never be printed.
const SECRET_MARKERS: &[&str] = &["RVhBTVBMRS1", "EXAMPLE-NOT-A-SECRET", "EXAMPLE-ROTATED"];

const CREDENTIALS: &[(&str, i32)] = &[
    ("aws-region1-cred", 0),
    ("aws-role-region1-cred", 0),
    ("azure-cred", 0),
    ("aws-region9-cred", 1),
    ("aws-region2-cred", 1),
    ("azure-region1-cred", 1),
    ("gcp-region1-cred", 1),
    ("aws-missing-identity-cred", 1),
    ("aws-bad-path-cred", 1),
    ("aws-uncopied-cred", 1),
    ("aws-stale-cred", 1),
];

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Ages in the output are counted from this instant, so snapshots do not age.
const NOW: &str = "2025-10-01T12:00:00Z";

/// Runs the binary from the workspace root (so `examples/estate` reads as in the README), off a
/// terminal and without COLUMNS (prose wraps at 120 columns).
fn run(args: &[&str]) -> Output {
    run_env(args, &[])
}

/// [`run`] with extra environment variables.
fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-credential"));
    cmd.args(args)
        .current_dir(workspace())
        .env_remove("NO_COLOR")
        .env_remove("COLUMNS")
        .env_remove("RUST_BACKTRACE")
        .env("KUBECTL_CREDENTIAL_NOW", NOW);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited, not killed")
}

fn assert_no_secrets(text: &str) {
    for m in SECRET_MARKERS {
        assert!(!text.contains(m), "secret data {m} in output:\n{text}");
    }
}

#[test]
fn explain_text_for_every_example_credential() {
    for (name, expected) in CREDENTIALS {
        let o = run(&["explain", name, "-n", "kcm-system", "--from", "examples/estate"]);
        let out = stdout(&o);
        assert_eq!(code(&o), *expected, "{name}: stdout:\n{out}\nstderr:\n{}", stderr(&o));
        assert!(stderr(&o).is_empty(), "{name}: unexpected stderr: {}", stderr(&o));
        assert_no_secrets(&out);
        // Off a terminal: plain ASCII, no escape codes.
        assert!(out.is_ascii(), "{name}: non-ASCII output off a terminal:\n{out}");
        insta::assert_snapshot!(format!("explain_{name}"), out);
    }
}

/// Golden outputs at a narrow and a wide terminal: prose follows COLUMNS, commands never wrap.
#[test]
fn explain_text_follows_the_terminal_width() {
    for name in ["aws-uncopied-cred", "azure-region1-cred", "aws-region1-cred"] {
        for columns in [70usize, 200] {
            let o =
                run_env(&["explain", name, "--from", "examples/estate"], &[("COLUMNS", columns.to_string().as_str())]);
            let out = stdout(&o);
            let fix_at = out.find("\nFix:\n").map(|i| i + 1).unwrap_or(out.len());
            let (tree, fix) = out.split_at(fix_at);
            // Every tree line but the headline fits (a word longer than the column stands alone).
            for line in tree.lines().skip(1) {
                let longest_word = line.split(' ').map(|w| w.chars().count()).max().unwrap_or(0);
                assert!(
                    line.chars().count() <= columns || longest_word > columns / 3,
                    "{name} at {columns}: {line:?} too wide:\n{out}"
                );
            }
            // Each command is one line of its own, whole.
            for line in fix.lines().filter(|l| l.trim_start().starts_with("kubectl ")) {
                assert!(line.starts_with("       kubectl "), "{line:?}");
            }
            if columns == 70 {
                assert!(
                    fix.lines().any(|l| l.chars().count() > 70 && l.trim_start().starts_with("kubectl "))
                        || fix.is_empty(),
                    "{name}: a long command was wrapped:\n{fix}"
                );
            }
            insta::assert_snapshot!(format!("explain_{name}_{columns}cols"), out);
        }
    }
}

#[test]
fn explain_json_carries_the_same_tree() {
    for (name, expected) in CREDENTIALS {
        let o = run(&["explain", name, "--from", "examples/estate", "-o", "json"]);
        assert_eq!(code(&o), *expected, "{name}");
        let v: Value = serde_json::from_str(&stdout(&o)).expect("valid JSON");
        assert_eq!(v["credential"]["namespace"], "kcm-system");
        assert_eq!(v["credential"]["name"], *name);
        assert_eq!(v["credential"]["kind"], "Credential");
        let ready = *expected == 0;
        assert_eq!(v["verdict"], if ready { "Ready" } else { "NotReady" });
        assert_eq!(v["rootCause"].as_str().unwrap().is_empty(), ready);
        let checks = v["checks"].as_array().unwrap();
        // The core's nine checks, plus the Events and the Distribution mode.
        assert_eq!(checks.len(), 11);
        assert!(v["distribution"]["lease"]["name"] == "credential-guard-distribution", "{}", v["distribution"]);
        for c in checks {
            assert!(c["name"].is_string() && c["summary"].is_string() && c["code"].is_string());
            assert!(["pass", "fail", "warn", "skip", "unknown"].contains(&c["verdict"].as_str().unwrap()), "{c}");
            assert!(c["evidence"].is_array() && c["children"].is_array() && c["objects"].is_array());
            assert!(c["since"].is_null() || c["since"].is_string(), "{c}");
        }
        let fails = checks.iter().filter(|c| c["verdict"] == "fail").count();
        if ready {
            assert_eq!(fails, 0, "{name}");
        }
        // The text's first line is the JSON's verdict and root cause.
        let text = stdout(&run(&["explain", name, "--from", "examples/estate"]));
        let first = text.lines().next().unwrap();
        if !ready {
            assert!(first.ends_with(&format!("is NOT READY: {}", v["rootCause"].as_str().unwrap())), "{first}");
            let fix = v["fix"].as_array().unwrap();
            let last = fix.last().unwrap();
            assert_eq!(
                last["command"],
                format!("kubectl credential explain {name} -n kcm-system --from examples/estate"),
                "{fix:?}"
            );
            for step in fix {
                assert!(step["description"].is_string() && (step["command"].is_null() || step["command"].is_string()));
            }
        }
        assert_no_secrets(&stdout(&o));
    }
}

#[test]
fn explain_colour_and_glyphs_on_request() {
    let o = run(&["--color", "always", "explain", "azure-region1-cred", "--from", "examples/estate"]);
    let out = stdout(&o);
    assert_eq!(code(&o), 1);
    assert!(out.contains("\x1b[1;31mNOT READY\x1b[0m"), "{out}");
    assert!(out.contains("├── ") && out.contains("└── ") && out.contains('✗') && out.contains('✓'), "{out}");
}

#[test]
fn explain_unknown_credential_is_a_kubectl_style_not_found() {
    let o = run(&["explain", "nope", "-n", "kcm-system", "--from", "examples/estate"]);
    assert_eq!(code(&o), 1, "NotFound exits 1, as kubectl");
    assert!(stdout(&o).is_empty());
    let err = stderr(&o);
    assert!(
        err.starts_with(
            "Error (NotFound): credentials.k0rdent.mirantis.com \"nope\" not found in namespace kcm-system of \
             examples/estate\n"
        ),
        "{err}"
    );
    assert!(err.contains("Credentials in namespace kcm-system: aws-bad-path-cred, "), "{err}");
    // In another namespace: say where, and the flag to add.
    let o = run(&["explain", "aws-region1-cred", "-n", "other", "--from", "examples/estate"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).ends_with("\nfound in kcm-system: add -n kcm-system\n"), "{}", stderr(&o));
    let o = run(&["explain", "nope", "-n", "other", "--from", "examples/estate"]);
    assert!(stderr(&o).contains("there are no Credentials in namespace other"), "{}", stderr(&o));
    assert_eq!(code(&run(&["plan", "aws-region1-cred", "-n", "other", "--from", "examples/estate"])), 1);
}

#[test]
fn explain_needs_an_estate() {
    // Without --from the plugin goes live; with no kubeconfig anywhere that is a clear error.
    let home = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_kubectl-credential"))
        .args(["explain", "x"])
        .env("HOME", home.path())
        .env("KUBECONFIG", home.path().join("missing"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).starts_with("error: no kubeconfig found: set KUBECONFIG"), "{}", stderr(&o));
    assert!(stderr(&o).contains("--from DIR"), "{}", stderr(&o));
    let o = run(&["explain", "x", "--kubeconfig", "does/not/exist"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).starts_with("error: cannot read kubeconfig does/not/exist"), "{}", stderr(&o));
    // --from and live flags exclude each other.
    assert_eq!(code(&run(&["explain", "x", "--from", "examples/estate", "--context", "c"])), 2);
    let o = run(&["explain", "x", "--from", "does/not/exist"]);
    assert_eq!(code(&o), 2);
    assert_eq!(stderr(&o), "error: does/not/exist: does not exist: --from takes a directory of YAML files\n");
    let o = run(&["explain", "x", "--from", "examples/README.md"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("is not a directory"), "{}", stderr(&o));
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let o = run(&[]);
    assert_eq!(code(&o), 2);
    // The binary is named kubectl-credential, so usage reads like the kubectl plugin.
    assert!(stderr(&o).contains("Usage: kubectl credential <COMMAND>"), "{}", stderr(&o));
    assert_eq!(code(&run(&["explain"])), 2);
    assert_eq!(code(&run(&["lint"])), 2);
    assert_eq!(code(&run(&["explain", "x", "-o", "xml", "--from", "examples/estate"])), 2);
    let o = run(&["--help"]);
    assert_eq!(code(&o), 0);
    for sub in ["explain", "lint", "plan"] {
        assert!(stdout(&o).contains(sub), "{}", stdout(&o));
    }
}

#[test]
fn lint_bad_manifests_exit_1_with_json_findings() {
    let cases: &[(&str, &[&str])] = &[
        ("examples/manifests/credential-unknown-region.yaml", &["CRED004"]),
        ("examples/manifests/credential-incomplete-identity-ref.yaml", &["CRED002"]),
        ("examples/manifests/region-two-clusters.yaml", &["RGN003"]),
        ("examples/manifests/providerinterface-mistakes.yaml", &["PI004", "PI006"]),
    ];
    for (file, codes) in cases {
        let o = run(&["lint", "-f", file, "-o", "json"]);
        assert_eq!(code(&o), 1, "{file}: {}", stderr(&o));
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        let findings = v["findings"].as_array().unwrap();
        for c in *codes {
            let f = findings.iter().find(|f| f["code"] == *c).unwrap_or_else(|| panic!("{file}: no {c} in {v}"));
            assert_eq!(f["severity"], "deny");
            for key in ["field", "message", "hint"] {
                assert!(f[key].is_string(), "{f}");
            }
            let obj = &f["object"];
            assert_eq!(obj["apiVersion"], "k0rdent.mirantis.com/v1beta1");
            assert!(obj["kind"].is_string() && obj["name"].is_string(), "{obj}");
        }
        for f in findings {
            // Every finding names its file, line and document.
            assert_eq!(f["file"], *file, "{f}");
            assert!(f["line"].as_u64().unwrap() >= 1 && f["document"].as_u64().unwrap() >= 1, "{f}");
        }
        // Text form: one `file:line: DENY` line per denial, summary last.
        let text = stdout(&run(&["lint", "-f", file]));
        assert!(text.lines().any(|l| l.starts_with(&format!("{file}:")) && l.contains(": DENY  ")), "{text}");
        assert!(text.trim_end().lines().last().unwrap().contains("denied"), "{text}");
    }
}

#[test]
fn lint_clean_manifests_exit_0() {
    let o = run(&["lint", "-f", "examples/manifests/ok", "-o", "json"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v, serde_json::json!({"findings": [], "summary": {"checked": 3, "denied": 0, "warned": 0}}));
    let text = stdout(&run(&["lint", "-f", "examples/manifests/ok"]));
    assert_eq!(text, "3 k0rdent objects checked: no problems found\n");
}

#[test]
fn lint_several_files_form_one_estate() {
    // The Credential alone is denied (its Region is unknown); with a file defining the Region it is not.
    let dir = tempfile::tempdir().unwrap();
    let region = dir.path().join("region.yaml");
    std::fs::write(
        &region,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: eu-west-kubeconfig, namespace: kcm-system}\n\
         data: {value: eA==}\n---\napiVersion: k0rdent.mirantis.com/v1beta1\nkind: Region\nmetadata: {name: eu-west}\n\
         spec: {kubeConfig: {name: eu-west-kubeconfig, key: value}}\n",
    )
    .unwrap();
    let cred = workspace().join("examples/manifests/credential-unknown-region.yaml");
    let o = run(&["lint", "-f", cred.to_str().unwrap(), "-f", region.to_str().unwrap(), "-o", "json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let codes: Vec<&str> = v["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
    assert!(!codes.contains(&"CRED004"), "{codes:?}");
}

#[test]
fn lint_example_estate_finds_the_broken_credentials() {
    let o = run(&["lint", "-f", "examples/estate", "-o", "json"]);
    assert_eq!(code(&o), 1);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let has = |code: &str, name: &str| {
        v["findings"].as_array().unwrap().iter().any(|f| f["code"] == code && f["object"]["name"] == name)
    };
    assert!(has("CRED004", "aws-region9-cred"), "{v}");
    assert!(has("CRED010", "aws-missing-identity-cred"), "{v}");
    assert_no_secrets(&stdout(&o));
}

#[test]
fn plan_lists_copies_without_secret_values() {
    let o = run(&["plan", "aws-region1-cred", "--from", "examples/estate", "-o", "json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert_no_secrets(&out);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["targetCluster"], "region1");
    assert_eq!(v["providerInterface"], "cluster-api-provider-aws");
    let copies = v["copies"].as_array().unwrap();
    assert_eq!(copies.len(), 2);
    let secret = copies.iter().find(|c| c["source"]["kind"] == "Secret").unwrap();
    assert_eq!(secret["object"]["data"]["SecretAccessKey"], "<redacted>");
    // One object-reference shape across explain, plan and lint.
    assert_eq!(
        secret["target"],
        serde_json::json!({"apiVersion": "v1", "kind": "Secret", "namespace": "kcm-system",
                           "name": "aws-cluster-identity-secret", "cluster": "region1"})
    );
    assert_eq!(secret["source"]["cluster"], "management");
    assert_eq!(v["credential"]["name"], "aws-region1-cred");
    assert_eq!(v["credential"]["namespace"], "kcm-system");

    let o = run(&["plan", "aws-region1-cred", "--from", "examples/estate"]);
    let text = stdout(&o);
    assert!(text.starts_with("Credential kcm-system/aws-region1-cred -> region1 (ProviderInterface cluster-api-provider-aws): 2 objects to copy\n"), "{text}");
    insta::assert_snapshot!("plan_aws-region1-cred", text);

    let o = run(&["plan", "gcp-region1-cred", "--from", "examples/estate"]);
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains("Problems:\n  - no ProviderInterface in region region1 declares v1 Secret"),
        "{}",
        stdout(&o)
    );

    let o = run(&["plan", "azure-cred", "--from", "examples/estate"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("nothing to distribute"), "{}", stdout(&o));

    assert_eq!(code(&run(&["plan", "nope", "--from", "examples/estate"])), 1);
}

/// Hostile input: every case exits 2 with a message naming the input, never a panic.
#[test]
fn hostile_input_exits_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, content: &[u8]| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    };
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        bomb.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
    }
    let huge = {
        let p = dir.path().join("huge.yaml");
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(17 << 20).unwrap(); // over the 16 MiB cap, sparse
        p
    };
    let cases: Vec<(&str, PathBuf)> = vec![
        ("not YAML", write("garbage.yaml", b"apiVersion: v1\nkind: [unclosed\n  : : :\n")),
        ("binary", write("binary.yaml", &[0xff, 0xfe, 0x00, 0x01, 0x80, 0x9f])),
        ("scalar document", write("scalar.yaml", b"just a string\n")),
        ("alias bomb", write("bomb.yaml", bomb.as_bytes())),
        ("deep nesting", write("deep.yaml", format!("{}{}", "[".repeat(5000), "]".repeat(5000)).as_bytes())),
        ("no kind", write("nokind.yaml", b"apiVersion: v1\nmetadata: {name: x}\n")),
        ("no name", write("noname.yaml", b"apiVersion: v1\nkind: Secret\nmetadata: {namespace: x}\n")),
        ("bad JSON", write("bad.json", b"{\"apiVersion\": \"v1\", ")),
        ("huge file", huge),
        ("missing path", dir.path().join("does-not-exist.yaml")),
    ];
    for (what, path) in &cases {
        let o = run(&["lint", "-f", path.to_str().unwrap()]);
        let err = stderr(&o);
        assert_eq!(code(&o), 2, "{what}: stdout {} stderr {err}", stdout(&o));
        assert!(!err.contains("panicked"), "{what}: {err}");
        let file = path.file_name().unwrap().to_str().unwrap();
        assert!(err.starts_with("error: ") && err.contains(file), "{what}: message does not name {file}: {err}");
        assert!(err.lines().count() <= 3, "{what}: message too long: {err}");
    }
    // The same files as an offline estate for explain.
    let estate = dir.path().join("estate");
    std::fs::create_dir(&estate).unwrap();
    std::fs::write(estate.join("bomb.yaml"), bomb.as_bytes()).unwrap();
    let o = run(&["explain", "x", "--from", estate.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("bomb.yaml") && !stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[test]
fn secret_values_in_bad_manifests_are_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let p: &Path = &dir.path().join("secret.yaml");
    std::fs::write(p, "apiVersion: v1\nkind: Secret\ndata:\n  password: c3VwZXJzZWNyZXQ=\n   broken: [\n").unwrap();
    let o = run(&["lint", "-f", p.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert!(!stderr(&o).contains("c3VwZXJzZWNyZXQ"), "{}", stderr(&o));
}

#[test]
fn provider_commands_are_wired() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("config.yaml");
    std::fs::write(
        &good,
        "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n- name: ecr\n  \
         matchImages: ['*.dkr.ecr.*.amazonaws.com']\n  defaultCacheDuration: 12h\n  \
         apiVersion: credentialprovider.kubelet.k8s.io/v1\n",
    )
    .unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\n").unwrap();
    let (good, bad) = (good.to_str().unwrap(), bad.to_str().unwrap());

    let o = run(&["provider", "validate", "--config", good, "-o", "json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(serde_json::from_str::<Value>(&stdout(&o)).unwrap()["valid"], true);
    assert_eq!(code(&run(&["provider", "validate", "--config", bad])), 1);
    assert_eq!(code(&run(&["provider", "validate", "--config", "does/not/exist"])), 2);

    let o = run(&[
        "provider",
        "match",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:v1",
        "--config",
        good,
        "-o",
        "json",
    ]);
    assert_eq!(code(&o), 0);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["providers"][0]["matched"], true);
}

#[test]
fn control_characters_from_objects_never_reach_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cred.yaml"),
        "apiVersion: k0rdent.mirantis.com/v1beta1\nkind: Credential\nmetadata: {name: c, namespace: kcm-system}\n\
         spec: {identityRef: {apiVersion: v1, kind: Secret, name: s, namespace: kcm-system}}\n\
         status:\n  ready: false\n  conditions:\n  - type: CredentialReady\n    status: \"False\"\n    \
         message: \"boom\\e[2J\\e]0;pwned\\anext line\\nthird\"\n",
    )
    .unwrap();
    let o = run(&["explain", "c", "--from", dir.path().to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
    assert!(out.contains("boom [2J ]0;pwned next line third"), "{out}");
}

#[test]
fn explain_without_name_summarises_offline_too() {
    let o = run(&["explain", "--from", "examples/estate"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), CREDENTIALS.len() + 1, "{out}");
    // One token per verdict: the second column splits on whitespace like any kubectl table.
    let verdicts: Vec<&str> = lines[1..].iter().map(|l| l.split_whitespace().nth(1).unwrap()).collect();
    assert_eq!(verdicts.iter().filter(|v| **v == "NotReady").count(), 8, "{out}");
    assert_eq!(verdicts[8..], ["Ready", "Ready", "Ready"], "{out}");
    let o = run(&["explain", "-A", "--from", "examples/estate", "-o", "yaml"]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).starts_with("credentials:\n"), "{}", stdout(&o));
    // A name and -A exclude each other.
    assert_eq!(code(&run(&["explain", "x", "-A", "--from", "examples/estate"])), 2);
}

#[test]
fn explain_yaml_carries_the_same_tree() {
    let o = run(&["explain", "aws-stale-cred", "--from", "examples/estate", "-o", "yaml"]);
    assert_eq!(code(&o), 1);
    let out = stdout(&o);
    assert!(out.contains("verdict: NotReady") && out.contains("rootCause: ") && out.contains("name: Copies"), "{out}");
    assert_no_secrets(&out);
}

#[test]
fn plan_compares_with_the_regional_files() {
    let o = run(&["plan", "aws-stale-cred", "--from", "examples/estate", "-o", "json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["current"]["compared"], true);
    let changes = v["current"]["changes"].as_array().unwrap();
    let secret = changes.iter().find(|c| c["target"]["kind"] == "Secret").unwrap();
    assert_eq!(secret["action"], "update");
    assert_eq!(secret["differences"][0], "data differs (keys: SecretAccessKey)");
    assert_no_secrets(&stdout(&o));
    let o = run(&["plan", "aws-uncopied-cred", "--from", "examples/estate"]);
    assert!(stdout(&o).contains("Compared with region1: 2 to create, 0 to update"), "{}", stdout(&o));
}

#[test]
fn completion_scripts_and_protocol() {
    for shell in ["bash", "zsh", "fish"] {
        let o = run(&["completion", shell]);
        assert_eq!(code(&o), 0, "{shell}");
        assert!(stdout(&o).contains("kubectl-credential"), "{shell}");
        assert!(stdout(&o).contains("explain"), "{shell}");
    }
    assert_eq!(code(&run(&["completion", "tcsh"])), 2);
    let o = run(&["__complete", "pl"]);
    assert_eq!(
        stdout(&o),
        "plan\tShow what cluster identity distribution would copy for a Credential, where, and what differs from \
         what is there now\n:4\n"
    );
    // kubectl runs `kubectl_complete-credential`: the same binary under that name.
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("kubectl_complete-credential");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kubectl-credential"), &link).unwrap();
    let o = Command::new(&link).args(["explain", "--from", "examples/estate", "-o", ""]).output().unwrap();
    assert_eq!(code(&o), 0);
    assert_eq!(stdout(&o), "text\njson\nyaml\n:4\n");
}

/// The krew manifest template, once release automation filled it in, is a valid Plugin manifest.
#[test]
fn krew_manifest_template_is_a_plugin_manifest() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("krew/credential.yaml");
    let template = std::fs::read_to_string(&path).unwrap();
    let filled: String = template
        .lines()
        .map(|l| {
            if let Some(indent) = l.find("{{addURIAndSha") {
                let pad = " ".repeat(indent);
                format!("{pad}uri: https://example.invalid/a.tar.gz\n{pad}sha256: \"{}\"", "0".repeat(64))
            } else {
                l.replace("{{ .TagName }}", "v0.1.0")
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let v: Value = serde_saphyr::from_str(&filled).unwrap();
    assert_eq!(v["apiVersion"], "krew.googlecontainertools.github.com/v1alpha2");
    assert_eq!(v["kind"], "Plugin");
    assert_eq!(v["metadata"]["name"], path.file_stem().unwrap().to_str().unwrap());
    assert_eq!(v["spec"]["version"], "v0.1.0");
    for key in ["homepage", "shortDescription", "description", "caveats"] {
        assert!(v["spec"][key].is_string(), "{key}");
    }
    let platforms = v["spec"]["platforms"].as_array().unwrap();
    assert!(platforms.len() >= 4);
    for p in platforms {
        assert!(p["selector"]["matchLabels"]["os"].is_string() && p["uri"].is_string() && p["sha256"].is_string());
        let bin = p["bin"].as_str().unwrap();
        assert!(bin.starts_with("kubectl-credential"), "{bin}");
        assert!(p["files"].as_array().unwrap().iter().any(|f| f["from"] == bin), "{p}");
    }
}

/// Runs the binary with `input` on standard input.
fn run_stdin(args: &[&str], input: &str) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-credential"))
        .args(args)
        .current_dir(workspace())
        .env_remove("COLUMNS")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

const TYPO_AND_UNKNOWN_REGION: &str = "# kustomize output\n---\n---\napiVersion: k0rdent.mirantis.com/v1beta1\n\
    kind: Credentail\nmetadata: {name: typo, namespace: kcm-system}\n---\n\
    apiVersion: k0rdent.mirantis.com/v1beta1\nkind: Credential\nmetadata: {name: c, namespace: kcm-system}\n\
    spec: {region: nowhere, identityRef: {apiVersion: v1, kind: Secret, name: s, namespace: kcm-system}}\n";

#[test]
fn lint_reads_stdin_and_names_file_line_and_document() {
    let o = run_stdin(&["lint", "-f", "-", "-o", "json"], TYPO_AND_UNKNOWN_REGION);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let findings = v["findings"].as_array().unwrap();
    let typo = findings.iter().find(|f| f["code"] == "LINT001").expect("unknown kind warns");
    assert_eq!(typo["severity"], "warn");
    assert_eq!(
        (typo["file"].as_str(), typo["line"].as_u64(), typo["document"].as_u64()),
        (Some("<stdin>"), Some(4), Some(1))
    );
    let region = findings.iter().find(|f| f["code"] == "CRED004").unwrap();
    assert_eq!((region["line"].as_u64(), region["document"].as_u64()), (Some(8), Some(2)));
    assert_eq!(region["object"]["namespace"], "kcm-system");
    assert_eq!(region["object"]["cluster"], "management");
    assert_eq!(v["summary"], serde_json::json!({"checked": 1, "denied": 1, "warned": 2}));
    let o = run_stdin(&["lint", "-f", "-"], TYPO_AND_UNKNOWN_REGION);
    assert!(
        stdout(&o).contains("<stdin>:8: DENY  Credential kcm-system/c  spec.region  [CRED004]  (document 2)\n"),
        "{}",
        stdout(&o)
    );
    // Empty documents and files are skipped, as kubectl apply -f dir/ does; empty stdin too.
    let o = run_stdin(&["lint", "-f", "-"], "");
    assert_eq!(
        (code(&o), stdout(&o).as_str()),
        (0, "0 k0rdent objects checked: no problems found\n"),
        "{}",
        stderr(&o)
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.yaml"), "").unwrap();
    std::fs::write(dir.path().join("comments.yaml"), "# nothing\n---\n").unwrap();
    let o = run(&["lint", "-f", dir.path().to_str().unwrap(), "-f", "examples/manifests/ok"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // yaml carries the same.
    let o = run_stdin(&["lint", "-f", "-", "-o", "yaml"], TYPO_AND_UNKNOWN_REGION);
    assert!(stdout(&o).contains("code: CRED004") && stdout(&o).contains("document: 2"), "{}", stdout(&o));
}

#[test]
fn lint_writes_junit_and_sarif_for_ci() {
    let o = run_stdin(&["lint", "-f", "-", "-o", "junit"], TYPO_AND_UNKNOWN_REGION);
    assert_eq!(code(&o), 1);
    let xml = stdout(&o);
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites "), "{xml}");
    assert!(xml.contains("tests=\"1\" failures=\"1\""), "{xml}");
    assert!(
        xml.contains(
            "<testcase name=\"Credential kcm-system/c\" classname=\"&lt;stdin&gt;\" file=\"&lt;stdin&gt;\" line=\"8\">"
        ),
        "{xml}"
    );
    assert!(
        xml.contains(
            "<failure type=\"CRED004\" message=\"Credential kcm-system/c: spec.region names Region &quot;nowhere&quot;"
        ),
        "{xml}"
    );
    assert!(xml.contains("<system-out>&lt;stdin&gt;:4: WARN [LINT001] kind: Credentail is not a kind"), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), xml.matches("</testcase>").count());

    let o = run(&["lint", "-f", "examples/manifests/credential-unknown-region.yaml", "-o", "sarif"]);
    assert_eq!(code(&o), 1);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let run0 = &v["runs"][0];
    assert_eq!(run0["tool"]["driver"]["name"], "kubectl-credential");
    let results = run0["results"].as_array().unwrap();
    let deny = results.iter().find(|r| r["ruleId"] == "CRED004").unwrap();
    assert_eq!(deny["level"], "error");
    let loc = &deny["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], "examples/manifests/credential-unknown-region.yaml");
    assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1);
    let rules: Vec<&str> =
        run0["tool"]["driver"]["rules"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(rules.contains(&"CRED004"), "{rules:?}");
    assert_eq!(results[deny["ruleIndex"].as_u64().unwrap() as usize]["ruleId"], "CRED004".to_string().as_str());
    // Clean input: exit 0, no results.
    let o = run(&["lint", "-f", "examples/manifests/ok", "-o", "sarif"]);
    assert_eq!(code(&o), 0);
    assert_eq!(serde_json::from_str::<Value>(&stdout(&o)).unwrap()["runs"][0]["results"], serde_json::json!([]));
}

#[test]
fn list_from_a_directory_matches_kubectl_get_conventions() {
    let list = |args: &[&str]| run(&[&["list", "--from", "examples/estate"], args].concat());
    // Table: kcm-system by default, READY as the Credential says.
    let o = list(&[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("NAME "), "{out}");
    assert_eq!(out.lines().count(), CREDENTIALS.len() + 1, "{out}");
    // -A wins over -n (kubectl does the same), NAMESPACE first.
    let o = list(&["-A", "-n", "nowhere"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).starts_with("NAMESPACE "), "{}", stdout(&o));
    // --show-labels adds LABELS last; --sort-by orders by a JSONPath.
    let o = list(&["--show-labels", "--sort-by", ".spec.region", "--no-headers"]);
    let lines: Vec<&str> =
        stdout(&o).lines().map(str::to_string).collect::<Vec<_>>().leak().iter().map(String::as_str).collect();
    assert!(
        lines[0].starts_with("azure-cred ") && lines[0].ends_with("k0rdent.mirantis.com/component=kcm"),
        "{lines:?}"
    );
    assert!(lines.last().unwrap().starts_with("aws-region9-cred "), "{lines:?}");
    // -o name, jsonpath, custom-columns.
    let names = stdout(&list(&["-o", "name"]));
    assert!(names.lines().all(|l| l.starts_with("credential.k0rdent.mirantis.com/")), "{names}");
    let o = list(&["-o", "jsonpath={range .items[*]}{.metadata.name}={.status.ready}{\"\\n\"}{end}"]);
    assert!(stdout(&o).contains("aws-region1-cred=true\naws-region2-cred=true\n"), "{}", stdout(&o));
    let o = list(&["azure-cred", "-o", "jsonpath={.spec.identityRef.kind}"]);
    assert_eq!(stdout(&o), "AzureClusterIdentity");
    let o = list(&["-o", "custom-columns=NAME:.metadata.name,REGION:.spec.region", "aws-region9-cred", "azure-cred"]);
    assert_eq!(stdout(&o), "NAME               REGION\naws-region9-cred   region9\nazure-cred         <none>\n");
    // -l selects by label offline too.
    let o = list(&["-l", "k0rdent.mirantis.com/component=kcm", "-o", "name"]);
    assert_eq!(stdout(&o).lines().count(), CREDENTIALS.len());
    assert_eq!(stdout(&list(&["-l", "k0rdent.mirantis.com/component!=kcm", "-o", "name"])), "");
    // The output of -o name is accepted as names, by list and explain alike.
    let first = names.lines().next().unwrap();
    let o = run(&["explain", first, "--from", "examples/estate"]);
    assert!(stdout(&o).starts_with("Credential kcm-system/aws-bad-path-cred is NOT READY"), "{}", stdout(&o));
    assert_eq!(code(&list(&[first, "credential/azure-cred", "-o", "name"])), 0);
    assert_eq!(code(&run(&["explain", "region/x", "--from", "examples/estate"])), 2);
    // NAME with -l is an error; a NAME not found prints kubectl's line and exits 1.
    let o = list(&["azure-cred", "-l", "a=b"]);
    assert_eq!((code(&o), stderr(&o).as_str()), (1, "error: name cannot be provided when a selector is specified\n"));
    let o = list(&["nope", "azure-cred"]);
    assert_eq!(code(&o), 1);
    assert_eq!(stderr(&o), "Error from server (NotFound): credentials.k0rdent.mirantis.com \"nope\" not found\n");
    assert!(stdout(&o).contains("azure-cred "), "{}", stdout(&o));
    // go-template: Go's text/template over the List, as kubectl (the engine is checked against Go's
    // own in the plugin's unit tests; kubectl itself in tests/tests/plugin_kubectl_grade_e2e.rs).
    let o = list(&["-o", "go-template={{range .items}}{{.metadata.name}}={{.status.ready}}{{\"\\n\"}}{{end}}"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("aws-region1-cred=true\naws-region2-cred=true\n"), "{}", stdout(&o));
    let o =
        list(&["azure-cred", "-o", "template={{.spec.identityRef}} {{.metadata.missing}} {{len .status.conditions}}"]);
    assert_eq!(
        stdout(&o),
        "map[apiVersion:infrastructure.cluster.x-k8s.io/v1beta1 kind:AzureClusterIdentity \
         name:azure-cluster-identity namespace:kcm-system] <no value> 1"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.tmpl");
    std::fs::write(&file, "{{range .items}}{{if not .status.ready}}{{.metadata.name}}\n{{end}}{{end}}").unwrap();
    let o = list(&["-o", &format!("go-template-file={}", file.display())]);
    assert!(stdout(&o).starts_with("aws-bad-path-cred\naws-missing-identity-cred\n"), "{}", stdout(&o));
    // kubectl's errors: exit 1; a failed execution keeps what was written and prints its debugging
    // text to stdout.
    let o = list(&["azure-cred", "-o", "go-template=x{{.metadata.name.x}}"]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).starts_with("xError executing template: template: output:1:12: "), "{}", stdout(&o));
    assert_eq!(
        stderr(&o),
        "error: error executing template \"x{{.metadata.name.x}}\": template: output:1:12: executing \"output\" at \
         <.metadata.name.x>: can't evaluate field x in type interface {}\n"
    );
    let o = list(&["-o", "go-template={{.x"]);
    assert_eq!(
        (code(&o), stderr(&o).as_str()),
        (1, "error: error parsing template {{.x, template: output:1: unclosed action\n")
    );
    let o = list(&["-o", "go-template-file=/nonexistent.tmpl"]);
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o),
        "error: error reading --template /nonexistent.tmpl, open /nonexistent.tmpl: no such file or directory\n"
    );
    // What is not reproduced is refused (exit 2), naming it and the formats that do the job.
    for t in ["go-template={{define \"x\"}}{{end}}", "go-template={{printf \"%x\" 1}}", "template={{range 3}}{{end}}"] {
        let o = list(&["-o", t]);
        assert_eq!((code(&o), stdout(&o).as_str()), (2, ""), "{t}");
        assert!(stderr(&o).contains("is not supported") && stderr(&o).contains("-o custom-columns="), "{}", stderr(&o));
    }
    // Any other unknown format gets the list of those it has.
    let o = list(&["-o", "toml"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains(
            "allowed formats are: wide,json,yaml,name,jsonpath=,custom-columns=,go-template=,go-template-file=,\
             template=,templatefile="
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn list_shows_none_when_kcm_wrote_no_status() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.yaml"),
        "apiVersion: k0rdent.mirantis.com/v1beta1\nkind: Credential\nmetadata: {name: fresh, namespace: kcm-system}\n\
         spec: {identityRef: {apiVersion: v1, kind: Secret, name: s, namespace: kcm-system}}\n",
    )
    .unwrap();
    let o = run(&["list", "--from", dir.path().to_str().unwrap(), "--no-headers"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let cells: Vec<String> = stdout(&o).split_whitespace().map(str::to_string).collect();
    assert_eq!(cells[..2], ["fresh".to_string(), "<none>".to_string()], "{}", stdout(&o));
}

#[test]
fn every_help_has_examples_and_errors_carry_no_backtrace() {
    for args in [
        vec!["--help"],
        vec!["explain", "--help"],
        vec!["list", "--help"],
        vec!["get", "--help"],
        vec!["lint", "--help"],
        vec!["plan", "--help"],
        vec!["provider", "--help"],
        vec!["provider", "validate", "--help"],
        vec!["provider", "match", "--help"],
        vec!["completion", "--help"],
    ] {
        let o = run(&args);
        assert_eq!(code(&o), 0, "{args:?}");
        let help = stdout(&o);
        let examples = help.find("\nExamples:\n").unwrap_or_else(|| panic!("{args:?}: no Examples:\n{help}"));
        assert!(help[examples..].contains("  kubectl"), "{args:?}: {help}");
        // Every flag has a description: no option line stands alone before the next one.
        let lines: Vec<&str> = help.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if l.trim_start().starts_with('-') && l.trim_end().ends_with('>') || l.trim() == "-o, --output" {
                let next = lines.get(i + 1).map(|n| n.trim()).unwrap_or_default();
                assert!(!next.is_empty() && !next.starts_with('-'), "{args:?}: {l:?} has no description:\n{help}");
            }
        }
    }
    // Ordinary errors: one message, no backtrace, whatever RUST_BACKTRACE says.
    for args in [
        vec!["explain", "x", "--from", "does/not/exist"],
        vec!["lint", "-f", "does/not/exist.yaml"],
        vec!["explain", "nope", "--from", "examples/estate"],
    ] {
        let o = run_env(&args, &[("RUST_BACKTRACE", "full")]);
        assert!((1..=2).contains(&code(&o)), "{args:?}");
        let err = stderr(&o);
        assert!(!err.contains("backtrace") && !err.contains("panicked") && err.lines().count() <= 2, "{args:?}: {err}");
    }
}

#[test]
fn no_color_is_honoured_and_summary_verdicts_are_coloured_tokens() {
    // Colour only on request; NO_COLOR leaves --color auto plain (and this is not a terminal).
    let o = run_env(&["explain", "azure-region1-cred", "--from", "examples/estate"], &[("NO_COLOR", "1")]);
    assert!(!stdout(&o).contains('\x1b'), "{}", stdout(&o));
    let o = run(&["--color", "always", "explain", "--from", "examples/estate"]);
    assert!(stdout(&o).contains("\x1b[1;31mNotReady\x1b[0m"), "{}", stdout(&o));
}

#[test]
fn explain_shows_our_condition_ages_stale_conditions_and_finalizers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cred.yaml"),
        "apiVersion: k0rdent.mirantis.com/v1beta1\nkind: Credential\n\
         metadata: {name: c, namespace: kcm-system, generation: 3, deletionTimestamp: \"2025-10-01T11:00:00Z\",\n\
           finalizers: [k0rdent.mirantis.com/credential]}\n\
         spec: {identityRef: {apiVersion: v1, kind: Secret, name: s, namespace: kcm-system}}\n\
         status:\n  ready: true\n  conditions:\n\
         \x20 - {type: CredentialReady, status: \"True\", reason: Succeeded, observedGeneration: 2, lastTransitionTime: \"2025-09-30T12:00:00Z\"}\n\
         \x20 - {type: ClusterIdentitiesDistributed, status: \"False\", reason: TargetUnreachable, message: region1 unreachable, lastTransitionTime: \"2025-10-01T11:55:00Z\"}\n\
         ---\napiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: kcm-system}\ndata: {k: eA==}\n",
    )
    .unwrap();
    let o = run(&["explain", "c", "--from", dir.path().to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(code(&o), 1, "{out}{}", stderr(&o));
    assert!(
        out.starts_with("Credential kcm-system/c is NOT READY: Credential kcm-system/c is being deleted\n"),
        "{out}"
    );
    assert!(out.contains("[FAIL] Credential "), "{out}");
    assert!(out.contains("held by finalizer k0rdent.mirantis.com/credential: KCM removes it"), "{out}");
    // Each condition row: status, reason, since when (age from KUBECTL_CREDENTIAL_NOW).
    assert!(
        out.contains("[warn] CredentialReady               True (Succeeded)  since 2025-09-30T12:00:00Z (24h ago)"),
        "{out}"
    );
    assert!(out.contains("stale: observedGeneration 2 < generation 3"), "{out}");
    assert!(
        out.contains(
            "[warn] ClusterIdentitiesDistributed  False (TargetUnreachable)  since 2025-10-01T11:55:00Z (5m ago)"
        ),
        "{out}"
    );
    assert!(out.contains("\"region1 unreachable\""), "{out}");
    let v: Value =
        serde_json::from_str(&stdout(&run(&["explain", "c", "--from", dir.path().to_str().unwrap(), "-o", "json"])))
            .unwrap();
    let rows = v["checks"][0]["children"].as_array().unwrap();
    assert_eq!(rows[1]["code"], "condition");
    assert_eq!(rows[1]["name"], "ClusterIdentitiesDistributed");
    assert_eq!(rows[1]["since"], "2025-10-01T11:55:00Z");
}

#[test]
fn wait_all_and_selector_pick_the_credentials_of_the_namespace_once() {
    let ready: Vec<&str> = CREDENTIALS.iter().filter(|(_, code)| *code == 0).map(|(name, _)| *name).collect();
    let not_ready = CREDENTIALS.len() - ready.len();
    let base = ["wait", "--from", "examples/estate", "--for=ready", "--timeout=0"];
    // --all: every Credential of kcm-system, the ready ones met, the others timed out (exit 1).
    let all = run(&[&base[..], &["--all"]].concat());
    assert_eq!(code(&all), 1, "{}", stderr(&all));
    let mut met: Vec<String> =
        ready.iter().map(|n| format!("credential.k0rdent.mirantis.com/{n} condition met")).collect();
    met.sort();
    // In name order, as kubectl wait visits what it listed.
    assert_eq!(stdout(&all).lines().collect::<Vec<_>>(), met);
    assert_eq!(stderr(&all).matches("error: timed out waiting for the condition on credentials/").count(), not_ready);
    // -l: only the matching ones (every example Credential carries KCM's component label).
    let labelled = run(&[&base[..], &["-l", "k0rdent.mirantis.com/component=kcm,!nope"]].concat());
    assert_eq!((code(&labelled), stdout(&labelled)), (code(&all), stdout(&all)));
    let none = run(&[&base[..], &["-l", "k0rdent.mirantis.com/component=other"]].concat());
    assert_eq!((code(&none), stderr(&none).as_str()), (1, "error: no matching resources found\n"));
    let empty_ns = run(&[&base[..], &["--all", "-n", "nowhere"]].concat());
    assert_eq!((code(&empty_ns), stderr(&empty_ns).as_str()), (1, "error: no matching resources found\n"));
    // kubectl's refusals when names and a selection are mixed.
    for (extra, message) in [
        (&["aws-region1-cred", "--all"][..], "error: name cannot be provided when --all is specified\n"),
        (&["aws-region1-cred", "-l", "a=b"][..], "error: name cannot be provided when a selector is specified\n"),
        (&["--all", "-l", "a=b"][..], "error: setting 'all' parameter but found a non empty selector.\n"),
    ] {
        let o = run(&[&base[..], extra].concat());
        assert_eq!((code(&o), stderr(&o).as_str()), (1, message), "{extra:?}");
    }
    // Neither names nor a selection: a usage error.
    assert_eq!(code(&run(&base)), 2);
}
