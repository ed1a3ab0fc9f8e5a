//! Image normalisation (distribution/reference `ParseNormalizedNamed`), provider selection and the
//! order in which provider credentials are tried.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kubelet_providers::image::is_default_registry_match;
use kubelet_providers::matching::keyring_key;
use kubelet_providers::{ProviderMatch, credential_attempt_order, decode_config, normalize_image, providers_for};

const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn docker_hub_normalisation_table() {
    let cases: Vec<(String, &str)> = vec![
        ("nginx".into(), "docker.io/library/nginx"),
        ("nginx:1.25".into(), "docker.io/library/nginx"),
        (format!("nginx@{SHA}"), "docker.io/library/nginx"),
        (format!("nginx:1.25@{SHA}"), "docker.io/library/nginx"),
        ("library/nginx".into(), "docker.io/library/nginx"),
        ("docker.io/nginx".into(), "docker.io/library/nginx"),
        ("index.docker.io/nginx".into(), "docker.io/library/nginx"),
        ("docker.io/library/nginx:latest".into(), "docker.io/library/nginx"),
        ("myuser/app:v1".into(), "docker.io/myuser/app"),
        ("index.docker.io/myuser/app".into(), "docker.io/myuser/app"),
        ("myhost/app".into(), "docker.io/myhost/app"),
        ("localhost/app".into(), "localhost/app"),
        ("localhost:5000/app:v1".into(), "localhost:5000/app"),
        ("registry.example.com:5000/team/app:v1".into(), "registry.example.com:5000/team/app"),
        ("registry.k8s.io/pause:3.9".into(), "registry.k8s.io/pause"),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1".into(),
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/app",
        ),
        ("[::1]:5000/app:v1".into(), "[::1]:5000/app"),
        ("localhost".into(), "docker.io/library/localhost"),
        // No '/': "5000" is a tag, not a port.
        ("localhost:5000".into(), "docker.io/library/localhost"),
        // Newer reference library: an uppercase first component is a registry.
        ("Myhost/app".into(), "Myhost/app"),
        ("UPPER:5000/x".into(), "UPPER:5000/x"),
        ("a.b/c__d/e-f--g/h.i_j:Tag_1.0-x".into(), "a.b/c__d/e-f--g/h.i_j"),
    ];
    for (image, want) in &cases {
        assert_eq!(normalize_image(image).as_deref(), Ok(*want), "image {image:?}");
    }
}

#[test]
fn invalid_references_fail_like_the_kubelet() {
    let long = format!("registry.io/{}", "a".repeat(250));
    let cases: Vec<(String, &str)> = vec![
        ("Nginx".into(), "invalid reference format: repository name (library/Nginx) must be lowercase"),
        ("registry.io/Team/app".into(), "invalid reference format: repository name (Team/app) must be lowercase"),
        (
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
            "invalid repository name (0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef), cannot specify 64-byte hexadecimal strings",
        ),
        ("".into(), "invalid reference format"),
        ("nginx:".into(), "invalid reference format"),
        ("a/b//c".into(), "invalid reference format"),
        ("-nginx".into(), "invalid reference format"),
        ("nginx@sha256:abc".into(), "invalid reference format"),
        (format!("nginx:{}", "t".repeat(129)), "invalid reference format"),
        (format!("nginx@sha256:{}", "a".repeat(32)), "invalid checksum digest length"),
        (format!("nginx@md5:{}", "a".repeat(32)), "unsupported digest algorithm"),
        (format!("nginx@sha256:{}", "A".repeat(64)), "invalid checksum digest format"),
        (long, "repository name must not be more than 255 characters"),
    ];
    for (image, reason) in &cases {
        let err = normalize_image(image).expect_err(image);
        assert_eq!(err.reason, *reason, "image {image:?}");
        assert!(err.to_string().starts_with("couldn't parse image name \""), "{err}");
    }
    assert!(normalize_image(&format!("nginx:{}", "t".repeat(128))).is_ok());
}

#[test]
fn default_registry_detection() {
    for (image, want) in [
        ("ubuntu", true),
        ("library/ubuntu", true),
        ("docker.io/library/ubuntu", true),
        ("index.docker.io/library/ubuntu", true),
        ("myhost/app", true),
        ("registry.io/app", false),
        ("localhost:5000/app", false),
        // Kubernetes only checks '.' and ':', unlike Docker.
        ("localhost/app", true),
        ("", false),
        ("/app", false),
    ] {
        assert_eq!(is_default_registry_match(image), want, "{image:?}");
    }
}

const CONFIG: &str = r#"
apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: hub
    matchImages: ["docker.io"]
    defaultCacheDuration: 1h
    apiVersion: credentialprovider.kubelet.k8s.io/v1
  - name: wrong-hub
    matchImages: ["*.docker.io", "index.docker.io", "nginx"]
    defaultCacheDuration: 1h
    apiVersion: credentialprovider.kubelet.k8s.io/v1
  - name: catch-all
    matchImages: ["*", "*.*", "*.*.*"]
    defaultCacheDuration: 1h
    apiVersion: credentialprovider.kubelet.k8s.io/v1
  - name: ecr
    matchImages: ["*.dkr.ecr.*.amazonaws.com", "*.dkr.ecr.*.amazonaws.com.cn"]
    defaultCacheDuration: 12h
    apiVersion: credentialprovider.kubelet.k8s.io/v1
"#;

fn pm(name: &str, hit: Option<&str>) -> ProviderMatch {
    ProviderMatch { name: name.into(), matched: hit.is_some(), match_image: hit.map(str::to_string) }
}

#[test]
fn providers_for_reports_every_provider_in_config_order() {
    let config = decode_config(CONFIG.as_bytes(), "config.yaml").unwrap();
    let report = providers_for(&config, "nginx:1.25", false).unwrap();
    assert_eq!(report.image, "nginx:1.25");
    assert_eq!(report.normalized, "docker.io/library/nginx");
    assert_eq!(
        report.providers,
        vec![pm("hub", Some("docker.io")), pm("wrong-hub", None), pm("catch-all", Some("*.*")), pm("ecr", None)]
    );
    assert_eq!(report.invoked(), vec!["hub", "catch-all"]);

    let ecr = providers_for(&config, "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:v1", false).unwrap();
    assert_eq!(ecr.invoked(), vec!["ecr"]);
    assert_eq!(ecr.providers[3].match_image.as_deref(), Some("*.dkr.ecr.*.amazonaws.com"));

    // Raw mode matches the string verbatim: "nginx" is a one-label host.
    let raw = providers_for(&config, "nginx", true).unwrap();
    assert_eq!(raw.normalized, "nginx");
    assert_eq!(raw.invoked(), vec!["wrong-hub", "catch-all"]);
    assert_eq!(raw.providers[1].match_image.as_deref(), Some("nginx"));
    assert_eq!(raw.providers[2].match_image.as_deref(), Some("*"));

    // Invalid images fail before any provider is consulted; raw mode does not normalise.
    assert!(providers_for(&config, "Nginx", false).is_err());
    assert!(providers_for(&config, "Nginx", true).is_ok());

    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["providers"][1], serde_json::json!({"name": "wrong-hub", "matched": false, "matchImage": null}));
    assert_eq!(json["providers"][0]["matchImage"], "docker.io");
}

#[test]
fn keyring_keys_follow_basic_docker_keyring_add() {
    for (loc, want) in [
        ("registry.io", Some("registry.io")),
        ("https://registry.io", Some("registry.io")),
        ("http://registry.io/", Some("registry.io")),
        ("https://index.docker.io/v1/", Some("index.docker.io")),
        ("registry.io/v2/foo", Some("registry.io/foo")),
        ("registry.io/v1/", Some("registry.io")),
        ("registry.io/team", Some("registry.io/team")),
        ("*.registry.io:5000/x", Some("*.registry.io:5000/x")),
        ("%zz", None),
        ("registry.io:port", None),
    ] {
        assert_eq!(keyring_key(loc).as_deref(), want, "{loc:?}");
    }
}

fn order(image: &str, responses: &[(&str, &[&str])]) -> Vec<(String, String)> {
    let responses: Vec<(String, Vec<String>)> =
        responses.iter().map(|(p, keys)| (p.to_string(), keys.iter().map(|k| k.to_string()).collect())).collect();
    credential_attempt_order(image, &responses).into_iter().map(|a| (a.provider, a.auth_key)).collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn credentials_are_tried_most_specific_key_first_then_in_provider_order() {
    let got = order(
        "registry.io/team/app",
        &[
            ("p1", &["registry.io"]),
            ("p2", &["registry.io/team", "https://registry.io/v2/"]),
            ("p3", &["registry.io", "other.io"]),
        ],
    );
    assert_eq!(
        got,
        pairs(&[
            ("p2", "registry.io/team"),
            ("p1", "registry.io"),
            ("p2", "https://registry.io/v2/"),
            ("p3", "registry.io"),
        ])
    );
    // Reverse lexicographic: letters sort after '*', so the literal key comes first.
    let got = order("registry.io/app", &[("glob", &["*.io"]), ("exact", &["registry.io"])]);
    assert_eq!(got, pairs(&[("exact", "registry.io"), ("glob", "*.io")]));
    // A provider can run yet contribute nothing when its keys do not match the image.
    assert!(order("registry.io/app", &[("p", &["other.io", "%zz"])]).is_empty());
}

#[test]
fn docker_hub_falls_back_to_index_docker_io_credentials() {
    let got = order("docker.io/library/nginx", &[("hub", &["https://index.docker.io/v1/"])]);
    assert_eq!(got, pairs(&[("hub", "https://index.docker.io/v1/")]));
    // Not for other registries, and not when another key matched.
    assert!(order("registry.io/app", &[("hub", &["index.docker.io"])]).is_empty());
    let got = order("docker.io/library/nginx", &[("a", &["index.docker.io"]), ("b", &["docker.io"])]);
    assert_eq!(got, pairs(&[("b", "docker.io")]));
}
