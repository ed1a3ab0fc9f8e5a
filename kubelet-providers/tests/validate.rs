//! `validateCredentialProviderConfig` with kubelet 1.34+ semantics (feature gate on): every rule,
//! its exact message and the emission order, on whole config documents.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kubelet_providers::validate::is_qualified_name;
use kubelet_providers::{
    CredentialProvider, CredentialProviderConfig, ValidationOptions, Verdict, decode_config, validate,
    validation_message, verdict,
};
use serde_json::{Value, json};

fn provider() -> Value {
    json!({
        "name": "test",
        "matchImages": ["registry.io"],
        "defaultCacheDuration": "10m",
        "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
    })
}

fn token_provider(attrs: Value) -> Value {
    let mut p = provider();
    p["tokenAttributes"] = attrs;
    p
}

fn config(providers: Vec<Value>) -> Value {
    json!({"apiVersion": "kubelet.config.k8s.io/v1", "kind": "CredentialProviderConfig", "providers": providers})
}

/// Errors for a whole document, rendered as the kubelet renders them.
fn errors_with(doc: &Value, options: ValidationOptions) -> Vec<String> {
    let bytes = serde_json::to_vec(doc).unwrap();
    let config = decode_config(&bytes, "c.json").unwrap();
    validate(&config, &options).iter().map(ToString::to_string).collect()
}

fn errors(doc: &Value) -> Vec<String> {
    errors_with(doc, ValidationOptions::default())
}

fn with(field: &str, value: Value) -> Value {
    let mut p = provider();
    if value.is_null() {
        p.as_object_mut().unwrap().remove(field);
    } else {
        p[field] = value;
    }
    config(vec![p])
}

const QNAME: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

#[test]
fn valid_configs_have_no_errors() {
    assert!(errors(&config(vec![provider()])).is_empty());
    for d in ["0", "0s", "1h30m", "12h", "1.5h", "-0"] {
        assert!(errors(&with("defaultCacheDuration", json!(d))).is_empty(), "{d}");
    }
    for name in ["foo\tbar", "", "a.b", "...", "foo\u{a0}bar"] {
        assert!(errors(&with("name", json!(name))).is_empty(), "{name:?} is not rejected by the kubelet");
    }
    for m in ["", "*", "https://x", "x/*", "registry.io:5000/path", "[::1]:5000"] {
        assert!(errors(&with("matchImages", json!([m]))).is_empty(), "{m:?}");
    }
    let good = token_provider(json!({
        "serviceAccountTokenAudience": "aud", "cacheType": "ServiceAccount", "requireServiceAccount": false,
        "optionalServiceAccountAnnotationKeys": ["Example.COM/Key", "plain-key"],
    }));
    assert!(errors(&config(vec![good])).is_empty());
}

#[test]
fn each_rule_message() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (config(vec![]), vec!["providers: Required value: at least 1 item in plugins is required"]),
        (
            json!({"apiVersion": "kubelet.config.k8s.io/v1", "kind": "CredentialProviderConfig"}),
            vec!["providers: Required value: at least 1 item in plugins is required"],
        ),
        (
            with("name", json!("foo/../bar")),
            vec![r#"providers.name: Invalid value: "foo/../bar": provider name cannot contain '/'"#],
        ),
        (
            with("name", json!("foo bar")),
            vec![r#"providers.name: Invalid value: "foo bar": provider name cannot contain spaces"#],
        ),
        (with("name", json!(".")), vec![r#"providers.name: Invalid value: ".": provider name cannot be '.'"#]),
        (with("name", json!("..")), vec![r#"providers.name: Invalid value: "..": provider name cannot be '..'"#]),
        (
            with("name", json!("a b/c")),
            vec![
                r#"providers.name: Invalid value: "a b/c": provider name cannot contain '/'"#,
                r#"providers.name: Invalid value: "a b/c": provider name cannot contain spaces"#,
            ],
        ),
        (with("apiVersion", Value::Null), vec!["providers.apiVersion: Required value"]),
        (with("apiVersion", json!("")), vec!["providers.apiVersion: Required value"]),
        (
            with("apiVersion", json!("credentialprovider.kubelet.k8s.io/v1alpha0")),
            vec![
                r#"providers.apiVersion: Unsupported value: "credentialprovider.kubelet.k8s.io/v1alpha0": supported values: "credentialprovider.kubelet.k8s.io/v1", "credentialprovider.kubelet.k8s.io/v1alpha1", "credentialprovider.kubelet.k8s.io/v1beta1""#,
            ],
        ),
        (
            with("matchImages", Value::Null),
            vec!["providers.matchImages: Required value: at least 1 item in matchImages is required"],
        ),
        (
            with("matchImages", json!([])),
            vec!["providers.matchImages: Required value: at least 1 item in matchImages is required"],
        ),
        (
            with("matchImages", json!(["%invalid%"])),
            vec![
                r#"providers.matchImages: Invalid value: "%invalid%": match image is invalid: parse "https://%invalid%": invalid URL escape "%in""#,
            ],
        ),
        (
            with("matchImages", json!(["registry.io:*", "ok.io", "my registry.io", "[::1", "reg%zz.io"])),
            vec![
                r#"providers.matchImages: Invalid value: "registry.io:*": match image is invalid: parse "https://registry.io:*": invalid port ":*" after host"#,
                r#"providers.matchImages: Invalid value: "my registry.io": match image is invalid: parse "https://my registry.io": invalid character " " in host name"#,
                r#"providers.matchImages: Invalid value: "[::1": match image is invalid: parse "https://[::1": missing ']' in host"#,
                r#"providers.matchImages: Invalid value: "reg%zz.io": match image is invalid: parse "https://reg%zz.io": invalid URL escape "%zz""#,
            ],
        ),
        (with("defaultCacheDuration", Value::Null), vec!["providers.defaultCacheDuration: Required value"]),
        (
            with("defaultCacheDuration", json!("-1m")),
            vec![r#"providers.defaultCacheDuration: Invalid value: "-1m0s": must be greater than or equal to 0"#],
        ),
        (
            with("defaultCacheDuration", json!("-1.5h")),
            vec![r#"providers.defaultCacheDuration: Invalid value: "-1h30m0s": must be greater than or equal to 0"#],
        ),
        (
            with("defaultCacheDuration", json!("-1ns")),
            vec![r#"providers.defaultCacheDuration: Invalid value: "-1ns": must be greater than or equal to 0"#],
        ),
    ];
    for (doc, want) in &cases {
        assert_eq!(errors(doc), *want, "doc {doc}");
    }
}

#[test]
fn token_attribute_rules() {
    let base = || json!({"serviceAccountTokenAudience": "aud", "cacheType": "Token", "requireServiceAccount": true});
    let set = |k: &str, v: Value| {
        let mut a = base();
        if v.is_null() {
            a.as_object_mut().unwrap().remove(k);
        } else {
            a[k] = v;
        }
        config(vec![token_provider(a)])
    };
    let cases: Vec<(Value, Vec<String>)> = vec![
        (set("serviceAccountTokenAudience", json!("")),
         vec!["providers.tokenAttributes.serviceAccountTokenAudience: Required value".into()]),
        (set("serviceAccountTokenAudience", Value::Null),
         vec!["providers.tokenAttributes.serviceAccountTokenAudience: Required value".into()]),
        (set("requireServiceAccount", Value::Null),
         vec!["providers.tokenAttributes.requireServiceAccount: Required value".into()]),
        (set("cacheType", Value::Null), vec![
            "providers.tokenAttributes.cacheType: Required value: cacheType is required to be set when tokenAttributes is specified. Supported values are: ServiceAccount, Token".into(),
        ]),
        (set("cacheType", json!("invalid-cache-type")), vec![
            r#"providers.tokenAttributes.cacheType: Unsupported value: "invalid-cache-type": supported values: "ServiceAccount", "Token""#.into(),
        ]),
        (set("cacheType", json!("token")), vec![
            r#"providers.tokenAttributes.cacheType: Unsupported value: "token": supported values: "ServiceAccount", "Token""#.into(),
        ]),
        ({
            let mut a = base();
            a["requireServiceAccount"] = json!(false);
            a["requiredServiceAccountAnnotationKeys"] = json!(["example.com/k"]);
            config(vec![token_provider(a)])
        }, vec!["providers.tokenAttributes.requiredServiceAccountAnnotationKeys: Forbidden: requireServiceAccount cannot be false when requiredServiceAccountAnnotationKeys is set".into()]),
        (set("requiredServiceAccountAnnotationKeys", json!(["k!", "a/b/c", "/x", "k", "k"])), vec![
            format!(r#"providers.tokenAttributes.requiredServiceAccountAnnotationKeys: Invalid value: "k!": name part {QNAME}"#),
            format!(r#"providers.tokenAttributes.requiredServiceAccountAnnotationKeys: Invalid value: "a/b/c": a qualified name {QNAME} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"#),
            r#"providers.tokenAttributes.requiredServiceAccountAnnotationKeys: Invalid value: "/x": prefix part must be non-empty"#.into(),
            r#"providers.tokenAttributes.requiredServiceAccountAnnotationKeys: Duplicate value: "k""#.into(),
        ]),
        (set("optionalServiceAccountAnnotationKeys", json!(["b", "B"])), vec![]),
        (set("optionalServiceAccountAnnotationKeys", json!(["b", "b"])), vec![
            r#"providers.tokenAttributes.optionalServiceAccountAnnotationKeys: Duplicate value: "b""#.into(),
        ]),
        ({
            let mut a = base();
            a["requiredServiceAccountAnnotationKeys"] = json!(["z", "a", "m"]);
            a["optionalServiceAccountAnnotationKeys"] = json!(["m", "z"]);
            config(vec![token_provider(a)])
        }, vec![r#"providers.tokenAttributes: Invalid value: ["m","z"]: annotation keys cannot be both required and optional"#.into()]),
        ({
            let mut a = base();
            a["requiredServiceAccountAnnotationKeys"] = json!(["a<b&c"]);
            a["optionalServiceAccountAnnotationKeys"] = json!(["a<b&c"]);
            config(vec![token_provider(a)])
        }, vec![
            format!(r#"providers.tokenAttributes.requiredServiceAccountAnnotationKeys: Invalid value: "a<b&c": name part {QNAME}"#),
            format!(r#"providers.tokenAttributes.optionalServiceAccountAnnotationKeys: Invalid value: "a<b&c": name part {QNAME}"#),
            r#"providers.tokenAttributes: Invalid value: ["a\u003cb\u0026c"]: annotation keys cannot be both required and optional"#.into(),
        ]),
    ];
    for (doc, want) in &cases {
        assert_eq!(errors(doc), *want, "doc {doc}");
    }

    // tokenAttributes with a pre-v1 exec API.
    let mut p = token_provider(base());
    p["apiVersion"] = json!("credentialprovider.kubelet.k8s.io/v1beta1");
    assert_eq!(
        errors(&config(vec![p])),
        vec![
            "providers.tokenAttributes: Forbidden: tokenAttributes is only supported for credentialprovider.kubelet.k8s.io/v1 API version"
        ]
    );
}

#[test]
fn token_attribute_errors_come_in_kubelet_order() {
    // Everything wrong at once, gate off: a..h in order, the other checks still run.
    let mut p = token_provider(json!({
        "requireServiceAccount": false,
        "requiredServiceAccountAnnotationKeys": ["k"],
        "optionalServiceAccountAnnotationKeys": ["k"],
        "cacheType": "Pod",
    }));
    p["apiVersion"] = json!("credentialprovider.kubelet.k8s.io/v1alpha1");
    let got = errors_with(&config(vec![p]), ValidationOptions { service_account_token_gate: false });
    assert_eq!(
        got,
        vec![
            "providers.tokenAttributes: Forbidden: tokenAttributes is not supported when KubeletServiceAccountTokenForCredentialProviders feature gate is disabled",
            "providers.tokenAttributes.serviceAccountTokenAudience: Required value",
            "providers.tokenAttributes: Forbidden: tokenAttributes is only supported for credentialprovider.kubelet.k8s.io/v1 API version",
            "providers.tokenAttributes.requiredServiceAccountAnnotationKeys: Forbidden: requireServiceAccount cannot be false when requiredServiceAccountAnnotationKeys is set",
            r#"providers.tokenAttributes: Invalid value: ["k"]: annotation keys cannot be both required and optional"#,
            r#"providers.tokenAttributes.cacheType: Unsupported value: "Pod": supported values: "ServiceAccount", "Token""#,
        ]
    );
}

#[test]
fn provider_rules_come_in_kubelet_order_and_messages_join() {
    let bad = json!({
        "name": "a b",
        "matchImages": ["%zz"],
        "defaultCacheDuration": "-1s",
        "apiVersion": "v1",
        "tokenAttributes": {"serviceAccountTokenAudience": "x", "cacheType": "Token", "requireServiceAccount": true},
    });
    let also_bad = json!({"name": "second"});
    let got = errors(&config(vec![bad, also_bad]));
    let want = vec![
        r#"providers.name: Invalid value: "a b": provider name cannot contain spaces"#,
        r#"providers.apiVersion: Unsupported value: "v1": supported values: "credentialprovider.kubelet.k8s.io/v1", "credentialprovider.kubelet.k8s.io/v1alpha1", "credentialprovider.kubelet.k8s.io/v1beta1""#,
        r#"providers.matchImages: Invalid value: "%zz": match image is invalid: parse "https://%zz": invalid URL escape "%zz""#,
        r#"providers.defaultCacheDuration: Invalid value: "-1s": must be greater than or equal to 0"#,
        "providers.tokenAttributes: Forbidden: tokenAttributes is only supported for credentialprovider.kubelet.k8s.io/v1 API version",
        "providers.apiVersion: Required value",
        "providers.matchImages: Required value: at least 1 item in matchImages is required",
        "providers.defaultCacheDuration: Required value",
    ];
    assert_eq!(got, want);

    // The one-line kubelet message: [e1, e2], repeats collapsed, single error without brackets.
    let two_missing = config(vec![
        json!({"name": "a", "matchImages": ["x"], "defaultCacheDuration": "1s"}),
        json!({"name": "b", "matchImages": ["x"], "defaultCacheDuration": "1s"}),
    ]);
    let bytes = serde_json::to_vec(&two_missing).unwrap();
    match verdict(decode_config(&bytes, "c.json"), &ValidationOptions::default()) {
        Verdict::Invalid { errors, message } => {
            assert_eq!(errors, vec!["providers.apiVersion: Required value"]);
            assert_eq!(message, "failed to validate credential provider config: providers.apiVersion: Required value");
        }
        Verdict::Valid(_) => panic!("expected invalid"),
    }
    let c = decode_config(&serde_json::to_vec(&with("name", json!("a b/c"))).unwrap(), "c").unwrap();
    assert_eq!(
        validation_message(&validate(&c, &ValidationOptions::default())),
        r#"failed to validate credential provider config: [providers.name: Invalid value: "a b/c": provider name cannot contain '/', providers.name: Invalid value: "a b/c": provider name cannot contain spaces]"#
    );
}

#[test]
fn duplicate_names_in_the_validator() {
    // Only reachable without the 1.34 loader (which rejects duplicates first); kept for callers
    // that build configs themselves.
    let p = CredentialProvider {
        name: "foobar".into(),
        match_images: vec!["x".into()],
        default_cache_duration: Some(kubelet_providers::GoDuration(0)),
        api_version: "credentialprovider.kubelet.k8s.io/v1".into(),
        ..Default::default()
    };
    let built = CredentialProviderConfig { files: vec![], providers: vec![p.clone(), p] };
    let got: Vec<String> = validate(&built, &ValidationOptions::default()).iter().map(ToString::to_string).collect();
    assert_eq!(got, vec![r#"providers.name: Duplicate value: "foobar""#]);
    // Through the loader the wording differs; both contain "uplicate".
    let doc = serde_json::to_vec(&config(vec![provider(), provider()])).unwrap();
    let loaded = kubelet_providers::decode_files(&[("dup.json".into(), doc)]);
    match verdict(loaded, &ValidationOptions::default()) {
        Verdict::Invalid { message, errors } => {
            assert_eq!(message, r#"duplicate provider name "test" found in configuration file(s)"#);
            assert_eq!(errors, vec![message.clone()]);
            assert!(message.contains("uplicate"));
        }
        Verdict::Valid(_) => panic!("duplicate accepted"),
    }
}

#[test]
fn qualified_names() {
    assert!(is_qualified_name("example.com/key").is_empty());
    assert!(is_qualified_name("key").is_empty());
    assert!(is_qualified_name("a-b_c.d").is_empty());
    assert_eq!(is_qualified_name(&"a".repeat(64)), vec!["name part must be no more than 63 characters"]);
    assert!(is_qualified_name(&"a".repeat(63)).is_empty());
    assert_eq!(is_qualified_name("x/"), vec!["name part must be non-empty".to_string(), format!("name part {QNAME}")]);
    assert_eq!(
        is_qualified_name("exa_mple.com/key"),
        vec![
            "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        ]
    );
    assert_eq!(
        is_qualified_name(&format!("{}/k", "a".repeat(254)))[0],
        "prefix part must be no more than 253 characters"
    );
}
