//! What `kubectl credential provider validate` reports about a config: every problem once, each
//! naming its file and provider (name and position), errors (the kubelet refuses the config) and
//! lint-level warnings (it accepts the config, which does not do what it seems to), with stable codes.
//!
//! The kubelet itself stops at the first file that fails to decode and logs one aggregated line;
//! the report goes on through every file so one run shows everything to fix, and keeps the
//! kubelet's line in [`ConfigReport::kubelet_message`].

use serde::Serialize;

use super::config::{CredentialProvider, CredentialProviderConfig, LoadError, decode_config, duplicate_names};
use super::gofmt::{FieldErrorKind, quote};
use super::lint::provider_warnings;
use super::validate::{ValidationOptions, validate_located};
use super::{Verdict, decode_files, verdict};

// Errors: the kubelet refuses to start (KCP000: we could not even read the path).
pub const KCP_UNREADABLE: &str = "KCP000";
pub const KCP_NO_CONFIG_FILES: &str = "KCP001";
pub const KCP_DECODE: &str = "KCP002";
pub const KCP_DUPLICATE_NAME: &str = "KCP003";
pub const KCP_INVALID: &str = "KCP004";
// Warnings: the kubelet accepts the config.
pub const KCP_SCHEME: &str = "KCP101";
pub const KCP_DOCKER_HUB_ALIAS: &str = "KCP102";
pub const KCP_ONE_LABEL_HOST: &str = "KCP103";
pub const KCP_TAG_IN_MATCH_IMAGE: &str = "KCP104";
pub const KCP_PATH_GLOB: &str = "KCP105";
pub const KCP_DROPPED_PARTS: &str = "KCP106";
pub const KCP_BAD_GLOB: &str = "KCP107";
pub const KCP_EMPTY_MATCH_IMAGE: &str = "KCP108";
pub const KCP_EMPTY_NAME: &str = "KCP109";
pub const KCP_IMAGE_ARG_PORT: &str = "KCP201";

/// Every code with its severity and when it fires, in documentation order (the user guide's
/// table; a test keeps the two in step).
pub const CODES: &[(&str, Severity, &str)] = &[
    (KCP_UNREADABLE, Severity::Error, "the config path cannot be read (exit status 2)"),
    (KCP_NO_CONFIG_FILES, Severity::Error, "a config directory holds no *.json, *.yaml or *.yml file"),
    (
        KCP_DECODE,
        Severity::Error,
        "a file is not a CredentialProviderConfig the kubelet can decode (syntax, kind, apiVersion, unknown or duplicate field, wrong type, bad duration)",
    ),
    (KCP_DUPLICATE_NAME, Severity::Error, "two providers have the same name (both places are named)"),
    (KCP_INVALID, Severity::Error, "the kubelet's validation rejects a field (its message, verbatim)"),
    (
        KCP_SCHEME,
        Severity::Warning,
        "a matchImages entry has a scheme (`https://registry.example.com`): it matches no image",
    ),
    (
        KCP_DOCKER_HUB_ALIAS,
        Severity::Warning,
        "`index.docker.io` or `*.docker.io` in matchImages: never matches Docker Hub images, which are matched as `docker.io/...`",
    ),
    (
        KCP_ONE_LABEL_HOST,
        Severity::Warning,
        "one host label and no port (`nginx`, `myuser/app`, `*`): matches no image, or only `localhost/...`",
    ),
    (
        KCP_TAG_IN_MATCH_IMAGE,
        Severity::Warning,
        "a tag or digest in matchImages (`registry.example.com/app:v1`): matches no image",
    ),
    (
        KCP_PATH_GLOB,
        Severity::Warning,
        "a glob in the path (`registry.example.com/team/*`): the path is a plain prefix, so it matches no image",
    ),
    (
        KCP_DROPPED_PARTS,
        Severity::Warning,
        "`?`, `#` or `user@` in matchImages: the URL parser drops part of the entry",
    ),
    (KCP_BAD_GLOB, Severity::Warning, "a malformed glob in a host label (`reg[.io`): matches no image"),
    (KCP_EMPTY_MATCH_IMAGE, Severity::Warning, "an empty matchImages entry: matches no image"),
    (KCP_EMPTY_NAME, Severity::Warning, "an empty provider name: validation passes, registering the plugin fails"),
    (
        KCP_IMAGE_ARG_PORT,
        Severity::Warning,
        "`provider match registry:5000`: IMAGE is read as an image with tag 5000, not a registry and port",
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The kubelet refuses the config.
    Error,
    /// The kubelet accepts it; it does not do what it seems to.
    Warning,
}

/// A provider, as a finding names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderRef {
    pub name: String,
    /// Position in its file's `providers` list.
    pub index: usize,
    pub file: String,
}

impl ProviderRef {
    pub fn of(p: &CredentialProvider) -> Self {
        ProviderRef { name: p.name.clone(), index: p.index, file: p.source.clone() }
    }
}

/// One error or warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigFinding {
    pub code: &'static str,
    pub severity: Severity,
    /// The file (for a directory, the file inside it); empty when about no single file.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderRef>,
    /// Indexed field path within the file, e.g. `providers[1].matchImages[0]`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
    /// Errors: the kubelet's words. Warnings: what happens instead of what was meant.
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hint: String,
    /// For a duplicate name: the provider declared first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_declared: Option<ProviderRef>,
}

impl ConfigFinding {
    /// A finding with only its code and field set (the severity follows from the code).
    pub fn bare(code: &'static str, field: &str) -> Self {
        let severity = CODES.iter().find(|(c, ..)| *c == code).map_or(Severity::Error, |(_, s, _)| *s);
        ConfigFinding {
            code,
            severity,
            file: String::new(),
            provider: None,
            field: field.to_string(),
            message: String::new(),
            hint: String::new(),
            first_declared: None,
        }
    }

    /// A warning about provider `p`.
    pub fn warning(code: &'static str, p: &CredentialProvider, field: String, message: String, hint: String) -> Self {
        ConfigFinding {
            file: p.source.clone(),
            provider: Some(ProviderRef::of(p)),
            message,
            hint,
            ..ConfigFinding::bare(code, &field)
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The result of checking a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigReport {
    /// The providers of every file that decoded, in load order.
    pub config: CredentialProviderConfig,
    /// The one line the kubelet logs when it refuses the config; `None` when it accepts it.
    pub kubelet_message: Option<String>,
    /// Errors (the kubelet's order: decoding, duplicates, validation), then warnings.
    pub findings: Vec<ConfigFinding>,
}

impl ConfigReport {
    pub fn valid(&self) -> bool {
        self.kubelet_message.is_none()
    }

    pub fn errors(&self) -> impl Iterator<Item = &ConfigFinding> {
        self.findings.iter().filter(|f| f.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &ConfigFinding> {
        self.findings.iter().filter(|f| !f.is_error())
    }

    /// A config whose files could not even be listed (`no configuration files found`).
    pub fn from_load_error(e: &LoadError) -> Self {
        let file = match e {
            LoadError::NoConfigFiles { dir } => dir.clone(),
            LoadError::Access { path, .. }
            | LoadError::ReadDir { path, .. }
            | LoadError::ReadFile { path, .. }
            | LoadError::TooLarge { path, .. }
            | LoadError::Decode { path, .. } => path.clone(),
            LoadError::EmptyPath | LoadError::DuplicateProvider { .. } => String::new(),
        };
        let code = if matches!(e, LoadError::NoConfigFiles { .. }) { KCP_NO_CONFIG_FILES } else { KCP_DECODE };
        ConfigReport {
            config: CredentialProviderConfig::default(),
            kubelet_message: Some(e.to_string()),
            findings: vec![ConfigFinding { file, message: e.to_string(), ..ConfigFinding::bare(code, "") }],
        }
    }
}

/// Checks the `(path, contents)` of every config file, in the kubelet's load order.
pub fn check_files(files: &[(String, Vec<u8>)], options: &ValidationOptions) -> ConfigReport {
    let kubelet_message = match verdict(decode_files(files), options) {
        Verdict::Valid(_) => None,
        Verdict::Invalid { message, .. } => Some(message),
    };
    let mut findings = Vec::new();
    let mut config = CredentialProviderConfig::default();
    let mut all_decoded = true;
    for (path, data) in files {
        match decode_config(data, path) {
            Ok(c) => {
                config.files.extend(c.files);
                config.providers.extend(c.providers);
            }
            Err(e) => {
                all_decoded = false;
                let message = e.to_string();
                findings.push(ConfigFinding {
                    file: path.clone(),
                    field: strict_error_field(&message).to_string(),
                    hint: decode_hint(&message),
                    message,
                    ..ConfigFinding::bare(KCP_DECODE, "")
                });
            }
        }
    }
    for (first, again) in duplicate_names(&config.providers) {
        let (a, b) = (&config.providers[first], &config.providers[again]);
        let dup = LoadError::DuplicateProvider { name: b.name.clone() };
        findings.push(ConfigFinding {
            file: b.source.clone(),
            provider: Some(ProviderRef::of(b)),
            message: format!(
                "{dup}: providers[{}] of {} and providers[{}] of {}",
                a.index,
                quote(&a.source),
                b.index,
                quote(&b.source)
            ),
            hint: format!(
                "each provider name is the file name of its plugin binary and must be unique across all files: \
                 rename or remove one of the two {}",
                quote(&b.name)
            ),
            first_declared: Some(ProviderRef::of(a)),
            ..ConfigFinding::bare(KCP_DUPLICATE_NAME, &format!("providers[{}].name", b.index))
        });
    }
    for e in validate_located(&config, options) {
        // Duplicates are reported above with both places; with files that did not decode the
        // provider list is incomplete, so "no providers" would be wrong.
        let duplicate = matches!(e.error.kind, FieldErrorKind::Duplicate { .. }) && e.error.field == "providers.name";
        if duplicate || (e.provider.is_none() && !all_decoded) {
            continue;
        }
        let p = e.provider.map(|i| &config.providers[i]);
        let message = e.error.to_string();
        findings.push(ConfigFinding {
            file: p.map(|p| p.source.clone()).unwrap_or_else(|| files.first().map(|f| f.0.clone()).unwrap_or_default()),
            provider: p.map(ProviderRef::of),
            hint: validation_hint(&message),
            message,
            ..ConfigFinding::bare(KCP_INVALID, &e.path)
        });
    }
    for p in &config.providers {
        findings.extend(provider_warnings(p));
    }
    ConfigReport { config, kubelet_message, findings }
}

/// The field a strict decoding error names first (`unknown field "providers[0].matchImage"`).
fn strict_error_field(message: &str) -> &str {
    ["unknown field \"", "duplicate field \""]
        .iter()
        .filter_map(|m| message.find(m).map(|i| &message[i + m.len()..]))
        .min_by_key(|rest| message.len() - rest.len())
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
}

/// What to do about a decoding error, where the message alone does not say.
fn decode_hint(message: &str) -> String {
    if message.contains("unknown field") && message.contains("tokenAttributes") {
        "tokenAttributes exists only in kubelet.config.k8s.io/v1 configs: change the file's apiVersion".into()
    } else if message.contains("unknown field") {
        "field names are case-sensitive camelCase (name, matchImages, defaultCacheDuration, apiVersion, args, env, \
         tokenAttributes)"
            .into()
    } else if message.contains("in duration") {
        "defaultCacheDuration is a Go duration: 30s, 10m, 12h, 1h30m (no d for days)".into()
    } else {
        String::new()
    }
}

/// What to do about a validation error, where the kubelet's message alone does not say.
fn validation_hint(message: &str) -> String {
    if message.starts_with("providers.matchImages: Invalid value") && message.contains("invalid port") {
        "matchImages entries are registry hosts with an optional port and path, matched against image names \
         without tags: a port must be digits (no port globs: list each port), and an image tag (nginx:1.25) does \
         not belong here"
            .into()
    } else if message.starts_with("providers.tokenAttributes.cacheType") {
        "set tokenAttributes.cacheType to Token or ServiceAccount (required since kubelet 1.34)".into()
    } else if message.starts_with("providers.apiVersion") {
        "use the exec API version the plugin speaks, usually credentialprovider.kubelet.k8s.io/v1".into()
    } else {
        String::new()
    }
}
