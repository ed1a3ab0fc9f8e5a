//! Strict decoding of CredentialProviderConfig, directory loading and duplicate names, with the
//! kubelet's messages; hostile input must give a clear error and never panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kubelet_providers::config::{MAX_CONFIG_FILE_BYTES, go_clean, go_join};
use kubelet_providers::{ConfigVersion, GoDuration, LoadError, config_files_in_dir, decode_config, decode_files};

const VALID_V1: &str = r#"
apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: ecr-credential-provider
    matchImages:
      - "*.dkr.ecr.*.amazonaws.com"
      - "*.dkr.ecr.*.amazonaws.com.cn"
    defaultCacheDuration: "12h"
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    args: ["get-credentials"]
    env:
      - name: AWS_PROFILE
        value: example_profile
    tokenAttributes:
      serviceAccountTokenAudience: sts.amazonaws.com
      cacheType: Token
      requireServiceAccount: true
      requiredServiceAccountAnnotationKeys: ["example.com/role"]
      optionalServiceAccountAnnotationKeys: ["example.com/region"]
"#;

fn decode_err(doc: &str) -> String {
    decode_config(doc.as_bytes(), "cfg.yaml").expect_err(doc).to_string()
}

/// A one-provider document of `version` with `extra` appended to the provider entry.
fn doc(version: &str, extra: &str) -> String {
    format!(
        "apiVersion: kubelet.config.k8s.io/{version}\nkind: CredentialProviderConfig\nproviders:\n  - name: p\n    \
         matchImages: [\"registry.io\"]\n    defaultCacheDuration: 1m\n    apiVersion: \
         credentialprovider.kubelet.k8s.io/v1\n{extra}"
    )
}

#[test]
fn decodes_every_field_of_v1() {
    let config = decode_config(VALID_V1.as_bytes(), "/etc/kubernetes/cp.yaml").unwrap();
    assert_eq!(config.files, vec![("/etc/kubernetes/cp.yaml".to_string(), ConfigVersion::V1)]);
    let p = &config.providers[0];
    assert_eq!(p.name, "ecr-credential-provider");
    assert_eq!(p.match_images, vec!["*.dkr.ecr.*.amazonaws.com", "*.dkr.ecr.*.amazonaws.com.cn"]);
    assert_eq!(p.default_cache_duration, Some(GoDuration(12 * 3600 * 1_000_000_000)));
    assert_eq!(p.api_version, "credentialprovider.kubelet.k8s.io/v1");
    assert_eq!(p.args, vec!["get-credentials"]);
    assert_eq!(p.env[0].name, "AWS_PROFILE");
    assert_eq!(p.env[0].value, "example_profile");
    assert_eq!(p.source, "/etc/kubernetes/cp.yaml");
    let t = p.token_attributes.as_ref().unwrap();
    assert_eq!(t.service_account_token_audience, "sts.amazonaws.com");
    assert_eq!(t.cache_type, "Token");
    assert_eq!(t.require_service_account, Some(true));
    assert_eq!(t.required_service_account_annotation_keys, vec!["example.com/role"]);
    assert_eq!(t.optional_service_account_annotation_keys, vec!["example.com/region"]);
    // Env values may be credentials: Debug output never shows them.
    assert!(!format!("{config:?}").contains("example_profile"));
}

#[test]
fn decodes_all_versions_in_yaml_and_json() {
    for (version, want) in
        [("v1alpha1", ConfigVersion::V1Alpha1), ("v1beta1", ConfigVersion::V1Beta1), ("v1", ConfigVersion::V1)]
    {
        let config = decode_config(doc(version, "").as_bytes(), "c.yaml").unwrap();
        assert_eq!(config.files[0].1, want);
        assert_eq!(config.providers[0].name, "p");
        let json = format!(
            r#"  {{"apiVersion":"kubelet.config.k8s.io/{version}","kind":"CredentialProviderConfig","providers":[{{"name":"j","matchImages":["x"],"defaultCacheDuration":"0","apiVersion":"credentialprovider.kubelet.k8s.io/v1beta1"}}]}}"#
        );
        let config = decode_config(json.as_bytes(), "c.json").unwrap();
        assert_eq!(config.providers[0].name, "j");
        assert_eq!(config.providers[0].default_cache_duration, Some(GoDuration(0)));
    }
    // Absent and null optional fields decode to their zero values.
    let config = decode_config(
        b"apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n- name: ~\n  defaultCacheDuration: null\n  matchImages: null\n",
        "c.yaml",
    )
    .unwrap();
    assert_eq!(config.providers[0].name, "");
    assert_eq!(config.providers[0].default_cache_duration, None);
    assert!(config.providers[0].match_images.is_empty());
    // providers may be missing or empty: that is a validation error, not a decode error.
    assert!(decode_config(b"apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\n", "c").is_ok());
}

#[test]
fn strict_decoding_errors_use_kubelet_wording() {
    let cases: Vec<(String, &str)> = vec![
        (
            doc("v1", "    unknownField: x\n"),
            r#"error decoding config "cfg.yaml": strict decoding error: unknown field "providers[0].unknownField""#,
        ),
        (
            doc("v1alpha1", "    tokenAttributes: {serviceAccountTokenAudience: a}\n"),
            r#"error decoding config "cfg.yaml": strict decoding error: unknown field "providers[0].tokenAttributes""#,
        ),
        (
            doc("v1beta1", "    tokenAttributes: {serviceAccountTokenAudience: a}\n"),
            r#"error decoding config "cfg.yaml": strict decoding error: unknown field "providers[0].tokenAttributes""#,
        ),
        // Field names are case-sensitive.
        (
            doc("v1", "    Name: x\n"),
            r#"error decoding config "cfg.yaml": strict decoding error: unknown field "providers[0].Name""#,
        ),
        (
            format!("{}metadata: {{name: x}}\n", doc("v1", "")),
            r#"error decoding config "cfg.yaml": strict decoding error: unknown field "metadata""#,
        ),
        (
            doc("v1", "    env: [{name: A, value: b, secret: c}]\n"),
            r#"error decoding config "cfg.yaml": strict decoding error: unknown field "providers[0].env[0].secret""#,
        ),
        (
            doc("v1", "    tokenAttributes: {cacheType: Token, audience: x}\n"),
            r#"error decoding config "cfg.yaml": strict decoding error: unknown field "providers[0].tokenAttributes.audience""#,
        ),
        // Several strict errors are reported together, in document order; duplicates too.
        (
            format!("extra: 1\n{}    bogus: 2\n    name: q\n", doc("v1", "")),
            r#"error decoding config "cfg.yaml": strict decoding error: unknown field "extra", unknown field "providers[0].bogus", duplicate field "providers[0].name""#,
        ),
        (
            "apiVersion: kubelet.config.k8s.io/v1alpha1\nkind: WrongKind\n".into(),
            r#"error decoding config "cfg.yaml": no kind "WrongKind" is registered for version "kubelet.config.k8s.io/v1alpha1""#,
        ),
        (
            "apiVersion: foobar/v1alpha1\nkind: CredentialProviderConfig\n".into(),
            r#"error decoding config "cfg.yaml": no kind "CredentialProviderConfig" is registered for version "foobar/v1alpha1""#,
        ),
        (
            "apiVersion: kubelet.config.k8s.io/v2\nkind: CredentialProviderConfig\n".into(),
            r#"error decoding config "cfg.yaml": no kind "CredentialProviderConfig" is registered for version "kubelet.config.k8s.io/v2""#,
        ),
        (
            "apiVersion: v1\nkind: CredentialProviderConfig\n".into(),
            r#"error decoding config "cfg.yaml": no kind "CredentialProviderConfig" is registered for version "v1""#,
        ),
        (
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n".into(),
            r#"error decoding config "cfg.yaml": failed to decode "KubeletConfiguration" (wrong Kind)"#,
        ),
        (
            "apiVersion: a/b/c\nkind: CredentialProviderConfig\n".into(),
            r#"error decoding config "cfg.yaml": unexpected GroupVersion string: a/b/c"#,
        ),
        // Type errors come from Go's encoding/json and win over strict errors.
        (
            doc("v1", "    args: \"x\"\n    bogus: 1\n"),
            r#"error decoding config "cfg.yaml": json: cannot unmarshal string into Go struct field CredentialProvider.providers.args of type []string"#,
        ),
        (
            doc("v1", "    env: [{name: 1}]\n"),
            r#"error decoding config "cfg.yaml": json: cannot unmarshal number into Go struct field ExecEnvVar.providers.env.name of type string"#,
        ),
        (
            doc("v1", "    tokenAttributes: {requireServiceAccount: \"yes\"}\n"),
            r#"error decoding config "cfg.yaml": json: cannot unmarshal string into Go struct field ServiceAccountTokenAttributes.providers.tokenAttributes.requireServiceAccount of type bool"#,
        ),
        (
            "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders: {}\n".into(),
            r#"error decoding config "cfg.yaml": json: cannot unmarshal object into Go struct field CredentialProviderConfig.providers of type []v1.CredentialProvider"#,
        ),
        (
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: CredentialProviderConfig\nproviders: [x]\n".into(),
            r#"error decoding config "cfg.yaml": json: cannot unmarshal string into Go struct field CredentialProviderConfig.providers of type v1beta1.CredentialProvider"#,
        ),
        (
            "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n- matchImages: [[a]]\n"
                .into(),
            r#"error decoding config "cfg.yaml": json: cannot unmarshal array into Go struct field CredentialProvider.providers.matchImages of type string"#,
        ),
        // defaultCacheDuration goes through time.ParseDuration.
        (
            doc("v1", "").replace("1m", "1d"),
            r#"error decoding config "cfg.yaml": time: unknown unit "d" in duration "1d""#,
        ),
        (
            doc("v1", "").replace("1m", "\"10\""),
            r#"error decoding config "cfg.yaml": time: missing unit in duration "10""#,
        ),
        (
            doc("v1", "").replace("1m", "10"),
            r#"error decoding config "cfg.yaml": json: cannot unmarshal number into Go value of type string"#,
        ),
        (doc("v1", "").replace("1m", "\"\""), r#"error decoding config "cfg.yaml": time: invalid duration """#),
        (
            "".into(),
            r#"error decoding config "cfg.yaml": Object 'Kind' is missing in the document (expected kind: CredentialProviderConfig)"#,
        ),
        (
            "kind: CredentialProviderConfig\n".into(),
            r#"error decoding config "cfg.yaml": Object 'apiVersion' is missing in the document (expected apiVersion: kubelet.config.k8s.io/v1)"#,
        ),
        (
            "- a\n- b\n".into(),
            r#"error decoding config "cfg.yaml": couldn't get version/kind; json parse error: json: cannot unmarshal array into an object with apiVersion and kind"#,
        ),
        (
            "kind: 5\n".into(),
            r#"error decoding config "cfg.yaml": couldn't get version/kind; json parse error: json: cannot unmarshal number into Go struct field .kind of type string"#,
        ),
    ];
    for (input, want) in &cases {
        assert_eq!(decode_err(input), *want, "input:\n{input}");
    }
}

#[test]
fn json_duplicates_and_yaml_duplicates_are_strict_errors() {
    let json = r#"{"apiVersion":"kubelet.config.k8s.io/v1","kind":"CredentialProviderConfig","providers":[{"name":"a","name":"b"}]}"#;
    assert_eq!(
        decode_err(json),
        r#"error decoding config "cfg.yaml": strict decoding error: duplicate field "providers[0].name""#
    );
    let yaml = "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nkind: CredentialProviderConfig\n";
    assert_eq!(decode_err(yaml), r#"error decoding config "cfg.yaml": strict decoding error: duplicate field "kind""#);
}

#[test]
fn hostile_input_gives_clear_errors() {
    // Binary garbage.
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let err = decode_config(&garbage, "garbage.yaml").unwrap_err();
    assert!(matches!(err, LoadError::Decode { .. }), "{err}");
    assert!(err.to_string().starts_with(r#"error decoding config "garbage.yaml": "#), "{err}");
    for junk in [&b"\x00\x01\x02"[..], b"{", b"{\"a\": [}", b"\t- :\n  - : :", b"key: [unclosed", b"\xef\xbb\xbf{}"] {
        assert!(decode_config(junk, "j").is_err(), "{junk:?}");
    }
    // Huge file.
    let huge = vec![b'#'; MAX_CONFIG_FILE_BYTES + 1];
    let err = decode_config(&huge, "big.yaml").unwrap_err();
    assert_eq!(err, LoadError::TooLarge { path: "big.yaml".into(), limit: MAX_CONFIG_FILE_BYTES });
    assert!(err.is_unreadable());
    // Deep nesting, YAML flow and block style, and JSON.
    let deep_flow = format!("providers: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(decode_err(&deep_flow).contains("error converting YAML to JSON"));
    let deep_block: String = (0..2_000).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
    assert!(decode_err(&deep_block).contains("error converting YAML to JSON"));
    let deep_json = format!("{{\"a\":{}1{}}}", "[".repeat(50_000), "]".repeat(50_000));
    assert!(decode_err(&deep_json).contains("invalid JSON"));
    // Alias bomb.
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        bomb.push_str(&format!(
            "{}: &{} [*{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}]\n",
            (b'a' + i) as char,
            (b'a' + i) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char
        ));
    }
    assert!(decode_err(&bomb).contains("error converting YAML to JSON"));
    // Errors never quote file contents (env values can be credentials).
    let secret = doc("v1", "    env: [{name: TOKEN, value: s3cr3t-value}]\n    oops: [\n");
    assert!(!decode_err(&secret).contains("s3cr3t"));
}

#[test]
fn first_yaml_document_only() {
    let two = format!("{}---\nthis is: [not, read\n", doc("v1", ""));
    // serde-saphyr parses the whole stream, so a broken later document is still an error; a
    // well-formed one is ignored as the kubelet does.
    assert!(decode_config(two.as_bytes(), "c").is_err());
    let two = format!("{}---\nkind: Other\n", doc("v1", ""));
    assert_eq!(decode_config(two.as_bytes(), "c").unwrap().providers.len(), 1);
}

#[test]
fn directory_listing_like_kubelet_1_34() {
    let entries: Vec<(String, bool)> = [
        ("b.yaml", false),
        ("a.json", false),
        ("c.YAML", false),
        ("d.txt", false),
        ("README.md", false),
        ("sub.yaml", true),
        ("e.yml", false),
        (".yaml", false),
        ("noext", false),
        ("x.yaml.bak", false),
    ]
    .iter()
    .map(|(n, d)| (n.to_string(), *d))
    .collect();
    assert_eq!(
        config_files_in_dir("/etc/kubernetes/cp.d/", &entries).unwrap(),
        vec![
            "/etc/kubernetes/cp.d/.yaml",
            "/etc/kubernetes/cp.d/a.json",
            "/etc/kubernetes/cp.d/b.yaml",
            "/etc/kubernetes/cp.d/e.yml"
        ]
    );
    let none: Vec<(String, bool)> = vec![("notes.txt".into(), false), ("d.json".into(), true)];
    assert_eq!(
        config_files_in_dir("/etc/cp.d", &none).unwrap_err().to_string(),
        r#"no configuration files found in directory "/etc/cp.d""#
    );
    assert_eq!(go_join("./conf", "a.yaml"), "conf/a.yaml");
    assert_eq!(go_join("conf/", "a.yaml"), "conf/a.yaml");
    assert_eq!(go_join("/a/../b", "c.yaml"), "/b/c.yaml");
    assert_eq!(go_clean("../x/./y//"), "../x/y");
    assert_eq!(go_clean(""), ".");
}

#[test]
fn files_merge_in_order_and_duplicate_names_are_rejected() {
    let a = doc("v1alpha1", "").replace("name: p", "name: first");
    let b = doc("v1", "").replace("name: p", "name: second");
    let merged =
        decode_files(&[("d/a.yaml".into(), a.clone().into_bytes()), ("d/b.yaml".into(), b.clone().into_bytes())])
            .unwrap();
    let names: Vec<&str> = merged.providers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["first", "second"]);
    assert_eq!(merged.providers[1].source, "d/b.yaml");
    assert_eq!(
        merged.files,
        vec![("d/a.yaml".into(), ConfigVersion::V1Alpha1), ("d/b.yaml".into(), ConfigVersion::V1)]
    );

    let err = decode_files(&[("d/a.yaml".into(), a.clone().into_bytes()), ("d/c.yaml".into(), a.clone().into_bytes())])
        .unwrap_err();
    assert_eq!(err.to_string(), r#"duplicate provider name "first" found in configuration file(s)"#);
    assert!(!err.is_unreadable());

    let within = format!("{a}  - name: first\n    matchImages: [x]\n");
    let err = decode_files(&[("one.yaml".into(), within.into_bytes())]).unwrap_err();
    assert_eq!(err, LoadError::DuplicateProvider { name: "first".into() });

    // A decode error names the file it came from.
    let err = decode_files(&[("d/a.yaml".into(), a.into_bytes()), ("d/z.json".into(), b"{".to_vec())]).unwrap_err();
    assert!(err.to_string().starts_with(r#"error decoding config "d/z.json": "#), "{err}");
}
