//! The kubelet's `validateCredentialProviderConfig` (1.34+ wording, feature gate
//! `KubeletServiceAccountTokenForCredentialProviders` on unless told otherwise), in emission order.

use std::collections::{BTreeSet, HashSet};

use super::config::{CredentialProviderConfig, EXEC_API_V1, EXEC_API_VERSIONS, TokenAttributes};
use super::gofmt::{FieldError, aggregate};
use super::url::parse_schemeless_url;

/// Knobs that change what the kubelet accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationOptions {
    /// Feature gate `KubeletServiceAccountTokenForCredentialProviders` (beta, on by default in 1.34).
    pub service_account_token_gate: bool,
}

impl Default for ValidationOptions {
    fn default() -> Self {
        ValidationOptions { service_account_token_gate: true }
    }
}

/// Supported `tokenAttributes.cacheType` values, sorted as the kubelet prints them.
pub const CACHE_TYPES: [&str; 2] = ["ServiceAccount", "Token"];

/// Every validation error, in the order the kubelet emits them.
pub fn validate(config: &CredentialProviderConfig, options: &ValidationOptions) -> Vec<FieldError> {
    validate_located(config, options).into_iter().map(|e| e.error).collect()
}

/// A validation error with where it comes from, which the kubelet's message leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedError {
    /// Position in `config.providers` (`None` for the config-level `providers` error).
    pub provider: Option<usize>,
    /// The field with indexes, within the provider's file: `providers[1].matchImages[0]`.
    pub path: String,
    pub error: FieldError,
}

/// [`validate`], each error with its provider and indexed field path.
pub fn validate_located(config: &CredentialProviderConfig, options: &ValidationOptions) -> Vec<LocatedError> {
    let mut out = Vec::new();
    if config.providers.is_empty() {
        let error = FieldError::required("providers", "at least 1 item in plugins is required");
        out.push(LocatedError { provider: None, path: "providers".into(), error });
    }
    let mut seen_names = HashSet::new();
    for (i, p) in config.providers.iter().enumerate() {
        // (error, index of the list item it is about, e.g. which matchImages entry)
        let mut errs: Vec<(FieldError, Option<usize>)> = Vec::new();
        let name = p.name.as_str();
        if name.contains('/') {
            errs.push((FieldError::invalid("providers.name", name, "provider name cannot contain '/'"), None));
        }
        if name.contains(' ') {
            errs.push((FieldError::invalid("providers.name", name, "provider name cannot contain spaces"), None));
        }
        if name == "." {
            errs.push((FieldError::invalid("providers.name", name, "provider name cannot be '.'"), None));
        }
        if name == ".." {
            errs.push((FieldError::invalid("providers.name", name, "provider name cannot be '..'"), None));
        }
        if !seen_names.insert(name) {
            errs.push((FieldError::duplicate("providers.name", name), None));
        }
        if p.api_version.is_empty() {
            errs.push((FieldError::required("providers.apiVersion", ""), None));
        } else if !EXEC_API_VERSIONS.contains(&p.api_version.as_str()) {
            errs.push((FieldError::unsupported("providers.apiVersion", &p.api_version, &EXEC_API_VERSIONS), None));
        }
        if p.match_images.is_empty() {
            errs.push((
                FieldError::required("providers.matchImages", "at least 1 item in matchImages is required"),
                None,
            ));
        }
        for (j, image) in p.match_images.iter().enumerate() {
            if let Err(e) = parse_schemeless_url(image) {
                let detail = format!("match image is invalid: {e}");
                errs.push((FieldError::invalid("providers.matchImages", image, &detail), Some(j)));
            }
        }
        match p.default_cache_duration {
            None => errs.push((FieldError::required("providers.defaultCacheDuration", ""), None)),
            Some(d) if d.is_negative() => errs.push((
                FieldError::invalid(
                    "providers.defaultCacheDuration",
                    &d.to_string(),
                    "must be greater than or equal to 0",
                ),
                None,
            )),
            Some(_) => {}
        }
        if let Some(t) = &p.token_attributes {
            validate_token_attributes(t, &p.api_version, options, &mut errs);
        }
        out.extend(errs.into_iter().map(|(error, item)| LocatedError {
            provider: Some(i),
            path: indexed_path(&error.field, p.index, item),
            error,
        }));
    }
    out
}

/// `providers.matchImages` of provider 1, entry 0 -> `providers[1].matchImages[0]`.
fn indexed_path(field: &str, provider_index: usize, item: Option<usize>) -> String {
    let rest = field.strip_prefix("providers").unwrap_or(field);
    let mut path = format!("providers[{provider_index}]{rest}");
    if let Some(j) = item {
        path.push_str(&format!("[{j}]"));
    }
    path
}

fn validate_token_attributes(
    t: &TokenAttributes,
    exec_api_version: &str,
    options: &ValidationOptions,
    errs: &mut Vec<(FieldError, Option<usize>)>,
) {
    const F: &str = "providers.tokenAttributes";
    if !options.service_account_token_gate {
        errs.push((
            FieldError::forbidden(
                F,
                "tokenAttributes is not supported when KubeletServiceAccountTokenForCredentialProviders feature \
                 gate is disabled",
            ),
            None,
        ));
    }
    if t.service_account_token_audience.is_empty() {
        errs.push((FieldError::required(&format!("{F}.serviceAccountTokenAudience"), ""), None));
    }
    if t.require_service_account.is_none() {
        errs.push((FieldError::required(&format!("{F}.requireServiceAccount"), ""), None));
    }
    if exec_api_version != EXEC_API_V1 {
        errs.push((
            FieldError::forbidden(F, &format!("tokenAttributes is only supported for {EXEC_API_V1} API version")),
            None,
        ));
    }
    if t.require_service_account == Some(false) && !t.required_service_account_annotation_keys.is_empty() {
        errs.push((
            FieldError::forbidden(
                &format!("{F}.requiredServiceAccountAnnotationKeys"),
                "requireServiceAccount cannot be false when requiredServiceAccountAnnotationKeys is set",
            ),
            None,
        ));
    }
    annotation_keys(
        &format!("{F}.requiredServiceAccountAnnotationKeys"),
        &t.required_service_account_annotation_keys,
        errs,
    );
    annotation_keys(
        &format!("{F}.optionalServiceAccountAnnotationKeys"),
        &t.optional_service_account_annotation_keys,
        errs,
    );
    let required: BTreeSet<&str> = t.required_service_account_annotation_keys.iter().map(String::as_str).collect();
    let optional: BTreeSet<&str> = t.optional_service_account_annotation_keys.iter().map(String::as_str).collect();
    let both: Vec<&str> = required.intersection(&optional).copied().collect();
    if !both.is_empty() {
        // Since 1.34 non-string values render as JSON.
        let rendered = go_json_escape(&serde_json::to_string(&both).unwrap_or_default());
        errs.push((
            FieldError::invalid_rendered(F, rendered, "annotation keys cannot be both required and optional"),
            None,
        ));
    }
    if t.cache_type.is_empty() {
        errs.push((
            FieldError::required(
                &format!("{F}.cacheType"),
                &format!(
                    "cacheType is required to be set when tokenAttributes is specified. Supported values are: {}",
                    CACHE_TYPES.join(", ")
                ),
            ),
            None,
        ));
    } else if !CACHE_TYPES.contains(&t.cache_type.as_str()) {
        errs.push((FieldError::unsupported(&format!("{F}.cacheType"), &t.cache_type, &CACHE_TYPES), None));
    }
}

/// Go's `json.Marshal` escapes HTML-significant characters and the JS line separators, which
/// serde_json leaves alone.
fn go_json_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

fn annotation_keys(field: &str, keys: &[String], errs: &mut Vec<(FieldError, Option<usize>)>) {
    let mut seen = HashSet::new();
    for (j, k) in keys.iter().enumerate() {
        // Annotation keys are qualified names compared case-insensitively.
        for msg in is_qualified_name(&k.to_lowercase()) {
            errs.push((FieldError::invalid(field, k, &msg), Some(j)));
        }
        if !seen.insert(k.as_str()) {
            errs.push((FieldError::duplicate(field, k), Some(j)));
        }
    }
}

/// The kubelet's whole validation failure message:
/// `failed to validate credential provider config: [e1, e2]`.
pub fn validation_message(errs: &[FieldError]) -> String {
    format!("failed to validate credential provider config: {}", aggregate(errs))
}

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
     characters, '-' or '.', and must start and end with an alphanumeric character";

/// apimachinery `RegexError` (note the double spaces its loop produces between examples).
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{e}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

fn is_qualified_name_part(name: &str) -> bool {
    let b = name.as_bytes();
    let edge = |c: u8| c.is_ascii_alphanumeric();
    !b.is_empty()
        && edge(b[0])
        && edge(b[b.len() - 1])
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_dns1123_subdomain(value: &str) -> bool {
    value.split('.').all(|label| {
        let b = label.as_bytes();
        let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        !b.is_empty() && alnum(b[0]) && alnum(b[b.len() - 1]) && b.iter().all(|&c| alnum(c) || c == b'-')
    })
}

/// apimachinery `validation.IsQualifiedName`: messages for each problem (empty when valid).
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > 253 {
                    errs.push("prefix part must be no more than 253 characters".to_string());
                }
                if !is_dns1123_subdomain(prefix) {
                    errs.push(format!(
                        "prefix part {}",
                        regex_error(DNS1123_SUBDOMAIN_ERR, DNS1123_SUBDOMAIN_FMT, &["example.com"])
                    ));
                }
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    if !is_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
        ));
    }
    errs
}
