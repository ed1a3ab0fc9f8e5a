//! The sample configs in examples/kubelet/ say what they are: valid ones load and validate,
//! invalid ones fail with the documented kubelet message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use kubelet_providers::{
    ValidationOptions, Verdict, config_files_in_dir, decode_files, normalize_image, providers_for, verdict,
};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kubelet")
}

/// Loads a file or directory as the kubelet does (the plugin's reader, minus the size cap).
fn check(rel: &str) -> Verdict {
    let path = examples().join(rel);
    let label = path.to_string_lossy().into_owned();
    let files = if path.is_dir() {
        let listing: Vec<(String, bool)> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name().to_string_lossy().into_owned(), e.file_type().unwrap().is_dir())
            })
            .collect();
        config_files_in_dir(&label, &listing).unwrap()
    } else {
        vec![label]
    };
    let contents: Vec<(String, Vec<u8>)> = files.into_iter().map(|f| (f.clone(), std::fs::read(&f).unwrap())).collect();
    verdict(decode_files(&contents), &ValidationOptions::default())
}

fn invalid(rel: &str) -> (Vec<String>, String) {
    match check(rel) {
        Verdict::Invalid { errors, message } => (errors, message),
        Verdict::Valid(_) => panic!("{rel} should be invalid"),
    }
}

#[test]
fn valid_examples() {
    let Verdict::Valid(single) = check("valid/credential-provider-config.yaml") else { panic!("single file invalid") };
    let names: Vec<&str> = single.providers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["ecr-credential-provider", "private-registry-provider", "dockerhub-mirror-provider"]);
    let report = providers_for(&single, "nginx:1.25", false).unwrap();
    assert_eq!(report.invoked(), vec!["dockerhub-mirror-provider"]);
    let report = providers_for(&single, "registry.example.com:5000/team/app:v1", false).unwrap();
    assert_eq!(report.invoked(), vec!["private-registry-provider"]);
    assert_eq!(normalize_image("registry.example.com:5000/team/app:v1").unwrap(), "registry.example.com:5000/team/app");

    let Verdict::Valid(dir) = check("valid/config.d") else { panic!("directory invalid") };
    let names: Vec<&str> = dir.providers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["ecr-credential-provider", "gcr-credential-provider"]);
    assert_eq!(dir.files.len(), 2, "NOTES.txt must be ignored");
    let report = providers_for(&dir, "europe-west1-docker.pkg.dev/proj/repo/app", false).unwrap();
    assert_eq!(report.invoked(), vec!["gcr-credential-provider"]);
}

#[test]
fn invalid_examples() {
    let (_, msg) = invalid("invalid/unknown-field.yaml");
    assert!(msg.ends_with(r#"strict decoding error: unknown field "providers[0].matchImage""#), "{msg}");
    let (_, msg) = invalid("invalid/token-attributes-v1beta1.yaml");
    assert!(msg.ends_with(r#"strict decoding error: unknown field "providers[0].tokenAttributes""#), "{msg}");
    let (_, msg) = invalid("invalid/bad-duration.yaml");
    assert!(msg.ends_with(r#"time: unknown unit "d" in duration "1d""#), "{msg}");
    let (_, msg) = invalid("invalid/duplicate.d");
    assert_eq!(msg, r#"duplicate provider name "ecr-credential-provider" found in configuration file(s)"#);
    let (errors, _) = invalid("invalid/missing-cache-type.yaml");
    assert_eq!(
        errors,
        vec![
            "providers.tokenAttributes.cacheType: Required value: cacheType is required to be set when tokenAttributes is specified. Supported values are: ServiceAccount, Token"
        ]
    );
    let (errors, msg) = invalid("invalid/bad-values.yaml");
    assert_eq!(
        errors,
        vec![
            r#"providers.name: Invalid value: "my provider": provider name cannot contain spaces"#,
            r#"providers.apiVersion: Unsupported value: "credentialprovider.kubelet.k8s.io/v1alpha0": supported values: "credentialprovider.kubelet.k8s.io/v1", "credentialprovider.kubelet.k8s.io/v1alpha1", "credentialprovider.kubelet.k8s.io/v1beta1""#,
            r#"providers.matchImages: Invalid value: "registry.example.com:*": match image is invalid: parse "https://registry.example.com:*": invalid port ":*" after host"#,
            r#"providers.matchImages: Invalid value: "%invalid%": match image is invalid: parse "https://%invalid%": invalid URL escape "%in""#,
            r#"providers.defaultCacheDuration: Invalid value: "-1m0s": must be greater than or equal to 0"#,
        ]
    );
    assert!(msg.starts_with("failed to validate credential provider config: [providers.name:"), "{msg}");
}
