//! `kubectl-credential provider validate|match` as built, on the fixture configs in
//! examples/kubelet/: messages (each error once, with file and provider), warning codes in every
//! output format, and exit codes (warnings never change them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

struct Run {
    stdout: String,
    stderr: String,
    code: i32,
}

/// Runs the binary from the workspace root, so fixture paths read as in the docs.
fn run(args: &[&str]) -> Run {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let o = Command::new(env!("CARGO_BIN_EXE_kubectl-credential"))
        .args(args)
        .current_dir(root)
        .env_remove("COLUMNS")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the binary runs");
    Run {
        stdout: String::from_utf8(o.stdout).expect("utf-8"),
        stderr: String::from_utf8(o.stderr).expect("utf-8"),
        code: o.status.code().expect("exited"),
    }
}

fn validate(path: &str, output: &str) -> Run {
    run(&["provider", "validate", "--config", path, "-o", output])
}

fn json(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", r.stdout))
}

fn codes(v: &Value, key: &str) -> Vec<String> {
    v[key].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_string()).collect()
}

const PITFALLS: &str = "examples/kubelet/warnings/pitfalls.yaml";

#[test]
fn pitfalls_warn_with_codes_and_exit_zero() {
    let text = validate(PITFALLS, "text");
    assert_eq!(text.code, 0, "{}{}", text.stdout, text.stderr);
    assert!(text.stdout.starts_with(&format!("{PITFALLS}: valid (2 providers), 7 warnings\n")), "{}", text.stdout);
    for line in [
        format!("{PITFALLS}: WARN  provider \"dockerhub-provider\"  providers[0].matchImages[1]  [KCP102]"),
        format!("{PITFALLS}: WARN  provider \"dockerhub-provider\"  providers[0].matchImages[2]  [KCP102]"),
        format!("{PITFALLS}: WARN  provider \"dockerhub-provider\"  providers[0].matchImages[3]  [KCP103]"),
        format!("{PITFALLS}: WARN  provider \"private-registry-provider\"  providers[1].matchImages[0]  [KCP101]"),
        format!("{PITFALLS}: WARN  provider \"private-registry-provider\"  providers[1].matchImages[1]  [KCP104]"),
        format!("{PITFALLS}: WARN  provider \"private-registry-provider\"  providers[1].matchImages[2]  [KCP105]"),
        format!("{PITFALLS}: WARN  provider \"private-registry-provider\"  providers[1].matchImages[4]  [KCP103]"),
    ] {
        assert!(text.stdout.lines().any(|l| l == line), "missing {line:?} in:\n{}", text.stdout);
    }
    assert!(text.stdout.contains("    \"*.docker.io\" does not match Docker Hub images"), "{}", text.stdout);
    assert!(text.stdout.contains("    hint: to cover Docker Hub use docker.io"), "{}", text.stdout);
    // `registry:5000` in matchImages is a host and port, which works: no warning for entry [3].
    assert!(!text.stdout.contains("providers[1].matchImages[3]"), "{}", text.stdout);

    let j = json(&validate(PITFALLS, "json"));
    assert_eq!(j["valid"], true);
    assert_eq!(j["errors"], serde_json::json!([]));
    assert_eq!(codes(&j, "warnings"), ["KCP102", "KCP102", "KCP103", "KCP101", "KCP104", "KCP105", "KCP103"]);
    assert_eq!(j["warnings"][3]["provider"]["name"], "private-registry-provider");
    assert_eq!(j["warnings"][3]["provider"]["index"], 1);
    assert_eq!(j["warnings"][3]["severity"], "warning");
    assert_eq!(j["warnings"][3]["file"], PITFALLS);

    let y = validate(PITFALLS, "yaml");
    assert_eq!(y.code, 0);
    let from_yaml: Value = serde_saphyr::from_str(&y.stdout).unwrap();
    assert_eq!(from_yaml, j, "yaml and json carry the same report");
}

#[test]
fn errors_are_reported_once_naming_provider_and_file() {
    let path = "examples/kubelet/invalid/bad-values.yaml";
    let r = validate(path, "text");
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.starts_with(&format!("{path}: INVALID: the kubelet would refuse to start (5 errors)\n")),
        "{}",
        r.stdout
    );
    for message in [
        r#"providers.name: Invalid value: "my provider": provider name cannot contain spaces"#,
        r#"providers.matchImages: Invalid value: "registry.example.com:*": match image is invalid"#,
        r#"providers.matchImages: Invalid value: "%invalid%": match image is invalid"#,
        r#"providers.defaultCacheDuration: Invalid value: "-1m0s": must be greater than or equal to 0"#,
        r#"providers.apiVersion: Unsupported value: "credentialprovider.kubelet.k8s.io/v1alpha0""#,
    ] {
        assert_eq!(r.stdout.matches(message).count(), 1, "{message:?} not exactly once in:\n{}", r.stdout);
    }
    let head = format!("{path}: ERROR  provider \"my provider\"  providers[0].matchImages[0]  [KCP004]");
    assert!(r.stdout.lines().any(|l| l == head), "{}", r.stdout);

    let j = json(&validate(path, "json"));
    assert_eq!(j["valid"], false);
    assert_eq!(codes(&j, "errors"), ["KCP004"; 5]);
    for e in j["errors"].as_array().unwrap() {
        assert_eq!(e["provider"]["name"], "my provider");
        assert_eq!(e["provider"]["index"], 0);
        assert_eq!(e["file"], path);
    }
    assert!(j["kubeletMessage"].as_str().unwrap().starts_with("failed to validate credential provider config: ["));
}

#[test]
fn directory_duplicates_name_both_files() {
    let dir = "examples/kubelet/invalid/duplicate.d";
    let r = validate(dir, "text");
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains(&format!(r#"providers[0] of "{dir}/a.yaml" and providers[0] of "{dir}/b.yml""#)),
        "{}",
        r.stdout
    );
    assert_eq!(r.stdout.matches("duplicate provider name").count(), 1, "{}", r.stdout);
    let j = json(&validate(dir, "json"));
    assert_eq!(codes(&j, "errors"), ["KCP003"]);
    assert_eq!(j["errors"][0]["file"], format!("{dir}/b.yml"));
    assert_eq!(j["errors"][0]["firstDeclared"]["file"], format!("{dir}/a.yaml"));
    assert_eq!(j["errors"][0]["provider"]["name"], "ecr-credential-provider");
}

#[test]
fn decode_errors_and_unreadable_paths_keep_their_exit_codes() {
    let j = json(&validate("examples/kubelet/invalid/unknown-field.yaml", "json"));
    assert_eq!(codes(&j, "errors"), ["KCP002"]);
    assert_eq!(j["errors"][0]["field"], "providers[0].matchImage");
    assert!(j["errors"][0]["hint"].as_str().unwrap().contains("camelCase"));
    let r = validate("examples/kubelet/does-not-exist.yaml", "json");
    assert_eq!(r.code, 2);
    assert_eq!(codes(&json(&r), "errors"), ["KCP000"]);
    let r = validate("examples/kubelet/does-not-exist.yaml", "text");
    assert_eq!((r.code, r.stdout.as_str()), (2, ""));
    assert!(r.stderr.starts_with("error: unable to access path"), "{}", r.stderr);
    assert_eq!(validate("examples/kubelet/valid/config.d", "text").code, 0);
}

#[test]
fn match_warns_about_host_port_images_and_config_pitfalls() {
    let r = run(&["provider", "match", "registry:5000", "--config", PITFALLS]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("normalized: docker.io/library/registry\n"), "{}", r.stdout);
    // Warnings go to stderr, the image's first.
    let first = r.stderr.lines().next().unwrap();
    assert_eq!(first, "WARN  IMAGE  [KCP201]");
    assert!(r.stderr.contains(r#""registry:5000" is read as the image docker.io/library/registry with tag 5000"#));
    assert!(r.stderr.contains("[KCP102]"), "{}", r.stderr);

    let r = run(&["provider", "match", "registry:5000/app:v1", "--config", PITFALLS, "-o", "json"]);
    assert_eq!(r.code, 0);
    let j = json(&r);
    assert_eq!(j["normalized"], "registry:5000/app");
    assert_eq!(j["providers"][1]["matchImage"], "registry:5000");
    assert_eq!(codes(&j, "warnings").len(), 7, "no KCP201 for an image with a path");

    // Docker Hub: only the right entry matches, whatever the image spelling.
    for image in ["nginx", "index.docker.io/library/nginx:1.25", "docker.io/nginx"] {
        let j = json(&run(&["provider", "match", image, "--config", PITFALLS, "-o", "json"]));
        assert_eq!(j["providers"][0]["matchImage"], "docker.io", "{image}");
    }
}
