//! `check_files`: every error once with its file and provider, duplicates naming both places, and
//! lint warnings that are true (what they call "matches no image" really matches nothing the
//! author meant, and what their hints suggest does).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use kubelet_providers::lint::image_argument_warning;
use kubelet_providers::report::{CODES, Severity};
use kubelet_providers::{ConfigReport, ValidationOptions, check_files, matches, normalize_image};

fn provider(name: &str, match_images: &[&str]) -> String {
    format!(
        "- name: {name:?}\n  matchImages: {}\n  defaultCacheDuration: 1h\n  \
         apiVersion: credentialprovider.kubelet.k8s.io/v1\n",
        serde_json::to_string(match_images).unwrap()
    )
}

fn doc(providers: &[String]) -> Vec<u8> {
    format!("apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n{}", providers.concat())
        .into_bytes()
}

fn check(files: &[(&str, Vec<u8>)]) -> ConfigReport {
    let files: Vec<(String, Vec<u8>)> = files.iter().map(|(n, d)| (n.to_string(), d.clone())).collect();
    check_files(&files, &ValidationOptions::default())
}

/// The codes of the warnings for one matchImages entry.
fn warning_codes(entry: &str) -> Vec<&'static str> {
    check(&[("c.yaml", doc(&[provider("p", &[entry])]))]).warnings().map(|w| w.code).collect()
}

#[test]
fn entries_that_work_get_no_warning() {
    for entry in [
        "docker.io",
        "docker.io/library/nginx",
        "registry.example.com",
        "registry.example.com:5000/team",
        "registry:5000",
        "localhost",
        "localhost:5000",
        "*.dkr.ecr.*.amazonaws.com",
        "*.*",
        "registry-1.docker.io",
        "10.0.0.*:5000",
        "[::1]:5000",
        "MyRegistry",
    ] {
        assert_eq!(warning_codes(entry), Vec::<&str>::new(), "{entry}");
    }
}

/// (entry, code, a normalised image the author meant it to match, the fix the hint names)
const PITFALLS: &[(&str, &str, &str, &str)] = &[
    ("https://registry.example.com", "KCP101", "registry.example.com/app", "registry.example.com"),
    ("http://registry.example.com:5000", "KCP101", "registry.example.com:5000/app", "registry.example.com:5000"),
    ("*.docker.io", "KCP102", "nginx", "docker.io"),
    ("index.docker.io", "KCP102", "index.docker.io/myuser/app", "docker.io"),
    ("index.docker.io/myuser", "KCP102", "myuser/app", "docker.io/myuser"),
    ("nginx", "KCP103", "nginx:1.25", "docker.io/library/nginx"),
    ("myuser/app", "KCP103", "myuser/app:v1", "docker.io/myuser/app"),
    ("registry.example.com/team/app:v1", "KCP104", "registry.example.com/team/app:v1", "registry.example.com/team/app"),
    ("registry.example.com/app@sha256:abc", "KCP104", "registry.example.com/app", "registry.example.com/app"),
    ("registry.example.com/team/*", "KCP105", "registry.example.com/team/app", "registry.example.com/team/"),
    ("reg[.example.com", "KCP107", "reg1.example.com/app", ""),
    ("", "KCP108", "registry.example.com/app", ""),
];

#[test]
fn each_pitfall_is_named_and_its_claim_holds() {
    for (entry, code, meant, fix) in PITFALLS {
        let report = check(&[("c.yaml", doc(&[provider("p", &[entry])]))]);
        assert!(report.valid(), "{entry}: the kubelet accepts it: {:?}", report.kubelet_message);
        let warnings: Vec<_> = report.warnings().collect();
        assert_eq!(warnings.len(), 1, "{entry}: {warnings:?}");
        let w = warnings[0];
        assert_eq!(w.code, *code, "{entry}: {}", w.message);
        assert_eq!((w.file.as_str(), w.field.as_str()), ("c.yaml", "providers[0].matchImages[0]"));
        assert_eq!(w.provider.as_ref().map(|p| (p.name.as_str(), p.index)), Some(("p", 0)));
        // The entry really misses what was meant (the kubelet matches the normalised name).
        let image = normalize_image(meant).unwrap_or_else(|_| meant.to_string());
        assert!(!matches(entry, &image), "{entry} does match {image}");
        // And the fix the hint names does match it.
        if !fix.is_empty() {
            assert!(w.hint.contains(fix), "{entry}: hint {:?} lacks {fix}", w.hint);
            assert!(matches(fix, &image), "{entry}: the suggested {fix} does not match {image}");
        }
    }
}

#[test]
fn dropped_url_parts_are_named_with_what_is_matched_instead() {
    for (entry, effective) in [
        ("reg?stry.example.com", "reg"),
        ("registry.example.com/team#x", "registry.example.com/team"),
        ("robot@registry.example.com", "registry.example.com"),
    ] {
        let report = check(&[("c.yaml", doc(&[provider("p", &[entry])]))]);
        let w: Vec<_> = report.warnings().collect();
        assert_eq!(w.len(), 1, "{entry}: {w:?}");
        assert_eq!(w[0].code, "KCP106");
        assert!(w[0].message.ends_with(&format!("matches this entry as \"{effective}\"")), "{}", w[0].message);
        for image in ["reg/x", "registry.example.com/team/app", "registry.example.com/app"] {
            assert_eq!(matches(entry, image), matches(effective, image), "{entry} vs {image}");
        }
    }
}

#[test]
fn star_alone_matches_only_localhost_and_the_warning_says_so() {
    let w: Vec<_> = check(&[("c.yaml", doc(&[provider("p", &["*"])]))]).warnings().cloned().collect();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].code, "KCP103");
    assert!(w[0].message.contains("matches only localhost/..."), "{}", w[0].message);
    assert!(matches("*", &normalize_image("localhost/app").unwrap()));
    for image in ["nginx", "quay.io/x/y", "registry:5000/app"] {
        assert!(!matches("*", &normalize_image(image).unwrap()), "{image}");
    }
    // A one-label glob that cannot even match localhost matches nothing.
    assert!(warning_codes("reg*").contains(&"KCP103"));
}

#[test]
fn star_dot_docker_io_matches_only_other_docker_io_hosts() {
    let w: Vec<_> = check(&[("c.yaml", doc(&[provider("p", &["*.docker.io"])]))]).warnings().cloned().collect();
    assert!(w[0].message.contains("registry-1.docker.io"), "{}", w[0].message);
    assert!(matches("*.docker.io", &normalize_image("registry-1.docker.io/library/nginx").unwrap()));
    for image in ["nginx", "docker.io/library/nginx", "index.docker.io/library/nginx", "myuser/app"] {
        assert!(!matches("*.docker.io", &normalize_image(image).unwrap()), "{image}");
    }
}

#[test]
fn registry_port_is_a_host_in_match_images_and_a_tag_in_an_image() {
    // In matchImages `registry:5000` is host `registry`, port 5000: it matches images on it.
    assert!(matches("registry:5000", &normalize_image("registry:5000/app:v1").unwrap()));
    // As an image, `registry:5000` is Docker Hub's `registry` with tag 5000.
    assert_eq!(normalize_image("registry:5000").unwrap(), "docker.io/library/registry");
    let w = image_argument_warning("registry:5000").unwrap();
    assert_eq!(w.code, "KCP201");
    assert_eq!(w.severity, Severity::Warning);
    assert!(w.message.contains("docker.io/library/registry with tag 5000"), "{}", w.message);
    assert!(w.hint.contains("registry:5000/app"), "{}", w.hint);
    for fine in ["registry:5000/app", "nginx:1.25", "nginx", "registry.example.com:5000/x"] {
        assert_eq!(image_argument_warning(fine), None, "{fine}");
    }
}

#[test]
fn empty_name_is_accepted_but_warned() {
    let report = check(&[("c.yaml", doc(&[provider("", &["registry.example.com"])]))]);
    assert!(report.valid());
    let codes: Vec<_> = report.warnings().map(|w| (w.code, w.field.as_str())).collect();
    assert_eq!(codes, vec![("KCP109", "providers[0].name")]);
}

#[test]
fn every_error_once_with_its_provider_and_file() {
    // Two providers with the same two mistakes: the kubelet's line collapses the identical
    // messages; the report names each provider once per mistake.
    let bad = |name: &str| {
        format!("- name: {name}\n  matchImages: ['x.io:*']\n  apiVersion: credentialprovider.kubelet.k8s.io/v1\n")
    };
    let report = check(&[("c.yaml", doc(&[bad("one"), provider("fine", &["ok.io"]), bad("two")]))]);
    assert!(!report.valid());
    let msg = report.kubelet_message.clone().unwrap();
    assert_eq!(msg.matches("providers.defaultCacheDuration: Required value").count(), 1, "{msg}");
    let errors: Vec<_> = report
        .errors()
        .map(|e| (e.code, e.provider.as_ref().unwrap().name.as_str(), e.field.as_str(), e.file.as_str()))
        .collect();
    assert_eq!(
        errors,
        vec![
            ("KCP004", "one", "providers[0].matchImages[0]", "c.yaml"),
            ("KCP004", "one", "providers[0].defaultCacheDuration", "c.yaml"),
            ("KCP004", "two", "providers[2].matchImages[0]", "c.yaml"),
            ("KCP004", "two", "providers[2].defaultCacheDuration", "c.yaml"),
        ]
    );
    let texts: BTreeSet<String> = report.errors().map(|e| format!("{}{}", e.field, e.message)).collect();
    assert_eq!(texts.len(), 4, "no finding is repeated");
    assert!(report.errors().next().unwrap().hint.contains("no port globs"));
}

#[test]
fn duplicates_name_both_files_and_every_repeat() {
    let report = check(&[
        ("d/10-a.yaml", doc(&[provider("ecr", &["a.io"]), provider("gcr", &["b.io"])])),
        ("d/20-b.yaml", doc(&[provider("gcr", &["c.io"])])),
        ("d/30-c.yaml", doc(&[provider("x", &["d.io"]), provider("ecr", &["e.io"])])),
    ]);
    assert_eq!(
        report.kubelet_message.as_deref(),
        Some(r#"duplicate provider name "gcr" found in configuration file(s)"#)
    );
    let dups: Vec<_> = report
        .errors()
        .map(|e| {
            let first = e.first_declared.as_ref().unwrap();
            (e.code, e.file.as_str(), e.field.as_str(), first.file.as_str(), first.index)
        })
        .collect();
    assert_eq!(
        dups,
        vec![
            ("KCP003", "d/20-b.yaml", "providers[0].name", "d/10-a.yaml", 1),
            ("KCP003", "d/30-c.yaml", "providers[1].name", "d/10-a.yaml", 0),
        ]
    );
    let first = report.errors().next().unwrap();
    assert!(
        first.message.contains(r#"providers[1] of "d/10-a.yaml" and providers[0] of "d/20-b.yaml""#),
        "{}",
        first.message
    );
}

#[test]
fn every_file_is_reported_not_only_the_first_that_fails() {
    let report = check(&[
        ("d/a.yaml", b"apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nbogus: 1\n".to_vec()),
        ("d/b.yaml", doc(&[provider("b/c", &["b.io"])])),
    ]);
    // The kubelet stops at the first file.
    assert!(report.kubelet_message.as_deref().unwrap().starts_with(r#"error decoding config "d/a.yaml""#));
    let errors: Vec<_> = report.errors().map(|e| (e.code, e.file.as_str())).collect();
    assert_eq!(errors, vec![("KCP002", "d/a.yaml"), ("KCP004", "d/b.yaml")]);
    // The config-level "no providers" is not claimed while a file did not decode.
    let report = check(&[("d/a.yaml", b"{".to_vec())]);
    assert_eq!(report.errors().count(), 1);
}

#[test]
fn valid_exactly_when_no_error() {
    for files in [
        vec![("c.yaml", doc(&[provider("p", &["*.docker.io"])]))],
        vec![("c.yaml", doc(&[]))],
        vec![("c.yaml", doc(&[provider("p", &["x.io"]), provider("p", &["y.io"])]))],
    ] {
        let report = check(&files);
        assert_eq!(report.valid(), report.errors().next().is_none(), "{report:?}");
    }
}

#[test]
fn the_user_guide_lists_every_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src/user/kubelet-providers.md");
    let text = std::fs::read_to_string(&path).unwrap();
    for (code, severity, _) in CODES {
        let word = match severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        assert!(text.contains(&format!("| {code} | {word} |")), "{} lacks the row for {code} ({word})", path.display());
    }
    let mut seen = BTreeSet::new();
    assert!(CODES.iter().all(|(c, ..)| seen.insert(*c)), "codes are unique");
}
