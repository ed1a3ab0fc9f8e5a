//! `CredentialProviderConfig` (kubelet.config.k8s.io v1alpha1, v1beta1, v1) decoded strictly, the
//! way the kubelet's codec does (pkg/credentialprovider/plugin/config.go), and the directory form
//! of `--image-credential-provider-config` (1.34+). No file system access here: callers pass the
//! bytes and the directory listing in, so the same code serves the plugin, tests and the webhook.

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::duration::GoDuration;
use super::gofmt::quote;
use super::node::{self, Node};

/// API group of the config.
pub const CONFIG_GROUP: &str = "kubelet.config.k8s.io";
/// The only kind this loader accepts.
pub const CONFIG_KIND: &str = "CredentialProviderConfig";
/// Exec API (`providers[].apiVersion`) versions the kubelet speaks, sorted.
pub const EXEC_API_VERSIONS: [&str; 3] = [
    "credentialprovider.kubelet.k8s.io/v1",
    "credentialprovider.kubelet.k8s.io/v1alpha1",
    "credentialprovider.kubelet.k8s.io/v1beta1",
];
/// The exec API version that supports `tokenAttributes`.
pub const EXEC_API_V1: &str = "credentialprovider.kubelet.k8s.io/v1";
/// File extensions the kubelet reads from a config directory (case-sensitive).
pub const CONFIG_FILE_EXTENSIONS: [&str; 3] = [".json", ".yaml", ".yml"];
/// Largest config file we read. The kubelet has no limit; ours stops a hostile or mistaken path
/// (a log file, a disk image) from being loaded into memory. Real configs are a few KiB.
pub const MAX_CONFIG_FILE_BYTES: usize = 4 * 1024 * 1024;

/// Version of the config document (`kubelet.config.k8s.io/<version>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigVersion {
    V1Alpha1,
    V1Beta1,
    V1,
}

impl ConfigVersion {
    fn from_version(v: &str) -> Option<Self> {
        match v {
            "v1alpha1" => Some(ConfigVersion::V1Alpha1),
            "v1beta1" => Some(ConfigVersion::V1Beta1),
            "v1" => Some(ConfigVersion::V1),
            _ => None,
        }
    }

    /// Go package name of the version, as it appears in decoder type errors.
    fn package(self) -> &'static str {
        match self {
            ConfigVersion::V1Alpha1 => "v1alpha1",
            ConfigVersion::V1Beta1 => "v1beta1",
            ConfigVersion::V1 => "v1",
        }
    }

    pub fn api_version(self) -> String {
        format!("{CONFIG_GROUP}/{}", self.package())
    }
}

/// One `providers[]` entry. `env` values may be credentials: [`ExecEnvVar`]'s Debug hides them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CredentialProvider {
    pub name: String,
    pub match_images: Vec<String>,
    /// `None` when absent or `null` (the validator then says `Required value`).
    pub default_cache_duration: Option<GoDuration>,
    pub api_version: String,
    pub args: Vec<String>,
    pub env: Vec<ExecEnvVar>,
    /// Only decodable from a `v1` config.
    pub token_attributes: Option<TokenAttributes>,
    /// Path (as given) of the file that declared this provider.
    pub source: String,
    /// Position in its file's `providers` list (`providers[index]`), for messages.
    pub index: usize,
}

#[derive(Clone, PartialEq, Eq, Default)]
pub struct ExecEnvVar {
    pub name: String,
    pub value: String,
}

impl fmt::Debug for ExecEnvVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecEnvVar").field("name", &self.name).field("value", &"<redacted>").finish()
    }
}

/// `tokenAttributes` (KEP-4412, service-account tokens for credential providers).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenAttributes {
    pub service_account_token_audience: String,
    /// `Token` | `ServiceAccount`; required since 1.34.
    pub cache_type: String,
    /// `None` when absent (required: the validator flags it).
    pub require_service_account: Option<bool>,
    pub required_service_account_annotation_keys: Vec<String>,
    pub optional_service_account_annotation_keys: Vec<String>,
}

/// A decoded config; for a directory, the providers of every file concatenated in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CredentialProviderConfig {
    /// Each decoded file with its config version, in load order.
    pub files: Vec<(String, ConfigVersion)>,
    pub providers: Vec<CredentialProvider>,
}

/// Why a config could not be loaded, worded like the kubelet (readCredentialProviderConfig).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("credential provider config path is empty")]
    EmptyPath,
    #[error("unable to access path {}: {reason}", quote(path))]
    Access { path: String, reason: String },
    #[error("unable to read directory {}: {reason}", quote(path))]
    ReadDir { path: String, reason: String },
    #[error("no configuration files found in directory {}", quote(dir))]
    NoConfigFiles { dir: String },
    #[error("unable to read file {}: {reason}", quote(path))]
    ReadFile { path: String, reason: String },
    #[error(
        "unable to read file {}: it is larger than {limit} bytes, which no credential provider config \
         is; check the path",
        quote(path)
    )]
    TooLarge { path: String, limit: usize },
    #[error("error decoding config {}: {reason}", quote(path))]
    Decode { path: String, reason: String },
    #[error("duplicate provider name {} found in configuration file(s)", quote(name))]
    DuplicateProvider { name: String },
}

impl LoadError {
    /// True when the input could not be read at all (as opposed to being read and rejected).
    pub fn is_unreadable(&self) -> bool {
        matches!(
            self,
            LoadError::EmptyPath
                | LoadError::Access { .. }
                | LoadError::ReadDir { .. }
                | LoadError::ReadFile { .. }
                | LoadError::TooLarge { .. }
        )
    }
}

/// Decodes one config file. `path` is how the file is named in errors (the kubelet uses the path
/// it was given, or `dir/name` for directory entries).
pub fn decode_config(data: &[u8], path: &str) -> Result<CredentialProviderConfig, LoadError> {
    if data.len() > MAX_CONFIG_FILE_BYTES {
        return Err(LoadError::TooLarge { path: path.to_string(), limit: MAX_CONFIG_FILE_BYTES });
    }
    let (version, providers) =
        decode_document(data).map_err(|reason| LoadError::Decode { path: path.to_string(), reason })?;
    let providers = providers.into_iter().map(|p| CredentialProvider { source: path.to_string(), ..p }).collect();
    Ok(CredentialProviderConfig { files: vec![(path.to_string(), version)], providers })
}

/// The files the kubelet would read from directory `dir`: non-directory entries ending in `.json`,
/// `.yaml` or `.yml` (Go `filepath.Ext`, case-sensitive), joined to `dir`, sorted bytewise.
/// `entries` are `(file name, is_directory)` as `os.ReadDir` reports them (symlinks not followed).
pub fn config_files_in_dir(dir: &str, entries: &[(String, bool)]) -> Result<Vec<String>, LoadError> {
    let mut files: Vec<String> = entries
        .iter()
        .filter(|(name, is_dir)| !is_dir && CONFIG_FILE_EXTENSIONS.contains(&go_ext(name)))
        .map(|(name, _)| go_join(dir, name))
        .collect();
    if files.is_empty() {
        return Err(LoadError::NoConfigFiles { dir: dir.to_string() });
    }
    files.sort();
    Ok(files)
}

/// Decodes every `(path, contents)` in order and concatenates the providers; a provider name seen
/// twice anywhere (also within one file) is an error, before any validation runs.
pub fn decode_files(files: &[(String, Vec<u8>)]) -> Result<CredentialProviderConfig, LoadError> {
    let mut merged = CredentialProviderConfig::default();
    for (path, data) in files {
        let config = decode_config(data, path)?;
        merged.files.extend(config.files);
        merged.providers.extend(config.providers);
    }
    check_duplicate_names(&merged)?;
    Ok(merged)
}

fn check_duplicate_names(config: &CredentialProviderConfig) -> Result<(), LoadError> {
    match duplicate_names(&config.providers).first() {
        Some(&(_, again)) => Err(LoadError::DuplicateProvider { name: config.providers[again].name.clone() }),
        None => Ok(()),
    }
}

/// Every repeated provider name as `(first, again)` positions in `providers`, in the order the
/// repeats appear (the kubelet stops at the first).
pub fn duplicate_names(providers: &[CredentialProvider]) -> Vec<(usize, usize)> {
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    let mut repeats = Vec::new();
    for (i, p) in providers.iter().enumerate() {
        match first_seen.get(p.name.as_str()) {
            Some(&first) => repeats.push((first, i)),
            None => {
                first_seen.insert(p.name.as_str(), i);
            }
        }
    }
    repeats
}

/// Go `filepath.Ext`: the suffix from the last `.` of the final element.
fn go_ext(name: &str) -> &str {
    match name.rfind(['.', '/']) {
        Some(i) if name.as_bytes()[i] == b'.' => &name[i..],
        _ => "",
    }
}

/// Go `filepath.Join(dir, name)` (which also cleans the result).
pub fn go_join(dir: &str, name: &str) -> String {
    let joined = if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") };
    go_clean(&joined)
}

/// Go `filepath.Clean` on a `/`-separated path.
pub fn go_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            p => out.push(p),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

// ---- strict decoding -------------------------------------------------------------------------

/// Decoder state: Go's `encoding/json` keeps the first type error and goes on; the strict pass
/// collects unknown and duplicate fields in document order.
struct Decoder {
    pkg: &'static str,
    version: ConfigVersion,
    type_error: Option<String>,
    strict: Vec<String>,
}

impl Decoder {
    fn type_error(&mut self, found: &Node, strukt: &str, go_path: &str, go_type: &str) {
        if self.type_error.is_none() {
            self.type_error = Some(format!(
                "json: cannot unmarshal {} into Go struct field {strukt}.{go_path} of type {go_type}",
                found.go_kind()
            ));
        }
    }

    fn string(&mut self, node: &Node, strukt: &str, go_path: &str, go_type: &str) -> String {
        match node {
            Node::Null => String::new(),
            Node::String(s) => s.clone(),
            other => {
                self.type_error(other, strukt, go_path, go_type);
                String::new()
            }
        }
    }

    fn strings(&mut self, node: &Node, strukt: &str, go_path: &str) -> Vec<String> {
        match node {
            Node::Null => Vec::new(),
            Node::Seq(items) => items.iter().map(|i| self.string(i, strukt, go_path, "string")).collect(),
            other => {
                self.type_error(other, strukt, go_path, "[]string");
                Vec::new()
            }
        }
    }

    /// Walks a JSON object, reporting duplicate and unknown keys; `known` returns false for an
    /// unknown key. `json_path` is the strict-error path of the object (`providers[0]`).
    fn object<'n>(
        &mut self,
        entries: &'n [(String, Node)],
        json_path: &str,
        mut known: impl FnMut(&mut Self, &str, &'n Node) -> bool,
    ) {
        let mut seen = HashSet::new();
        for (key, value) in entries {
            let path = if json_path.is_empty() { key.clone() } else { format!("{json_path}.{key}") };
            if !seen.insert(key.as_str()) {
                self.strict.push(format!("duplicate field {}", quote(&path)));
            }
            if !known(self, key, value) {
                self.strict.push(format!("unknown field {}", quote(&path)));
            }
        }
    }

    fn providers(&mut self, node: &Node) -> Vec<CredentialProvider> {
        let pkg = self.pkg;
        match node {
            Node::Null => Vec::new(),
            Node::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Node::Map(entries) => self.provider(entries, i),
                    Node::Null => CredentialProvider { index: i, ..CredentialProvider::default() },
                    other => {
                        let t = format!("{pkg}.CredentialProvider");
                        self.type_error(other, "CredentialProviderConfig", "providers", &t);
                        CredentialProvider::default()
                    }
                })
                .collect(),
            other => {
                let t = format!("[]{pkg}.CredentialProvider");
                self.type_error(other, "CredentialProviderConfig", "providers", &t);
                Vec::new()
            }
        }
    }

    fn provider(&mut self, entries: &[(String, Node)], index: usize) -> CredentialProvider {
        const S: &str = "CredentialProvider";
        let mut p = CredentialProvider { index, ..CredentialProvider::default() };
        let json_path = format!("providers[{index}]");
        let allow_token_attributes = self.version == ConfigVersion::V1;
        self.object(entries, &json_path, |d, key, value| {
            match key {
                "name" => p.name = d.string(value, S, "providers.name", "string"),
                "matchImages" => p.match_images = d.strings(value, S, "providers.matchImages"),
                "defaultCacheDuration" => p.default_cache_duration = d.duration(value),
                "apiVersion" => p.api_version = d.string(value, S, "providers.apiVersion", "string"),
                "args" => p.args = d.strings(value, S, "providers.args"),
                "env" => p.env = d.env(value, &json_path),
                "tokenAttributes" if allow_token_attributes => {
                    p.token_attributes = d.token_attributes(value, &json_path);
                }
                _ => return false,
            }
            true
        });
        p
    }

    /// metav1.Duration: its UnmarshalJSON reads a JSON string, then `time.ParseDuration`.
    fn duration(&mut self, node: &Node) -> Option<GoDuration> {
        let text = match node {
            Node::Null => return None,
            Node::String(s) => s,
            other => {
                if self.type_error.is_none() {
                    self.type_error =
                        Some(format!("json: cannot unmarshal {} into Go value of type string", other.go_kind()));
                }
                return None;
            }
        };
        match GoDuration::parse(text) {
            Ok(d) => Some(d),
            Err(e) => {
                if self.type_error.is_none() {
                    self.type_error = Some(e.to_string());
                }
                None
            }
        }
    }

    fn env(&mut self, node: &Node, provider_path: &str) -> Vec<ExecEnvVar> {
        let t = format!("{}.ExecEnvVar", self.pkg);
        match node {
            Node::Null => Vec::new(),
            Node::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Node::Map(entries) => {
                        const S: &str = "ExecEnvVar";
                        let mut var = ExecEnvVar::default();
                        self.object(entries, &format!("{provider_path}.env[{i}]"), |d, key, value| {
                            match key {
                                "name" => var.name = d.string(value, S, "providers.env.name", "string"),
                                "value" => var.value = d.string(value, S, "providers.env.value", "string"),
                                _ => return false,
                            }
                            true
                        });
                        var
                    }
                    Node::Null => ExecEnvVar::default(),
                    other => {
                        self.type_error(other, "CredentialProvider", "providers.env", &t);
                        ExecEnvVar::default()
                    }
                })
                .collect(),
            other => {
                self.type_error(other, "CredentialProvider", "providers.env", &format!("[]{t}"));
                Vec::new()
            }
        }
    }

    fn token_attributes(&mut self, node: &Node, provider_path: &str) -> Option<TokenAttributes> {
        const S: &str = "ServiceAccountTokenAttributes";
        let entries = match node {
            Node::Null => return None,
            Node::Map(entries) => entries,
            other => {
                let t = "v1.ServiceAccountTokenAttributes";
                self.type_error(other, "CredentialProvider", "providers.tokenAttributes", t);
                return None;
            }
        };
        let mut t = TokenAttributes::default();
        let base = "providers.tokenAttributes";
        self.object(entries, &format!("{provider_path}.tokenAttributes"), |d, key, value| {
            match key {
                "serviceAccountTokenAudience" => {
                    t.service_account_token_audience =
                        d.string(value, S, &format!("{base}.serviceAccountTokenAudience"), "string");
                }
                "cacheType" => {
                    t.cache_type = d.string(value, S, &format!("{base}.cacheType"), "v1.ServiceAccountTokenCacheType");
                }
                "requireServiceAccount" => match value {
                    Node::Null => t.require_service_account = None,
                    Node::Bool(b) => t.require_service_account = Some(*b),
                    other => d.type_error(other, S, &format!("{base}.requireServiceAccount"), "bool"),
                },
                "requiredServiceAccountAnnotationKeys" => {
                    t.required_service_account_annotation_keys =
                        d.strings(value, S, &format!("{base}.requiredServiceAccountAnnotationKeys"));
                }
                "optionalServiceAccountAnnotationKeys" => {
                    t.optional_service_account_annotation_keys =
                        d.strings(value, S, &format!("{base}.optionalServiceAccountAnnotationKeys"));
                }
                _ => return false,
            }
            true
        });
        Some(t)
    }
}

/// Go `schema.ParseGroupVersion`.
fn parse_group_version(gv: &str) -> Result<(&str, &str), String> {
    if gv.is_empty() || gv == "/" {
        return Ok(("", ""));
    }
    match gv.matches('/').count() {
        0 => Ok(("", gv)),
        1 => Ok(gv.split_once('/').unwrap_or(("", gv))),
        _ => Err(format!("unexpected GroupVersion string: {gv}")),
    }
}

/// Decodes one document: the codec's Interpret step (apiVersion/kind), the scheme lookup, the
/// typed decode (first type error wins) and then the strict errors.
fn decode_document(data: &[u8]) -> Result<(ConfigVersion, Vec<CredentialProvider>), String> {
    let root = node::parse(data)?;
    let entries: &[(String, Node)] = match &root {
        Node::Map(entries) => entries,
        Node::Null => &[],
        other => {
            return Err(format!(
                "couldn't get version/kind; json parse error: json: cannot unmarshal {} into an object with \
                 apiVersion and kind",
                other.go_kind()
            ));
        }
    };
    // Last occurrence wins, as in Go's encoding/json.
    let mut api_version = String::new();
    let mut kind = String::new();
    for (key, value) in entries {
        let target = match key.as_str() {
            "apiVersion" => &mut api_version,
            "kind" => &mut kind,
            _ => continue,
        };
        match value {
            Node::Null => {}
            Node::String(s) => *target = s.clone(),
            other => {
                return Err(format!(
                    "couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go struct field \
                     .{key} of type string",
                    other.go_kind()
                ));
            }
        }
    }
    let (group, version) = parse_group_version(&api_version)?;
    if kind.is_empty() {
        return Err(format!("Object 'Kind' is missing in the document (expected kind: {CONFIG_KIND})"));
    }
    if version.is_empty() {
        return Err(format!("Object 'apiVersion' is missing in the document (expected apiVersion: {CONFIG_GROUP}/v1)"));
    }
    let registered = if group == CONFIG_GROUP { ConfigVersion::from_version(version) } else { None };
    let Some(config_version) = registered.filter(|_| kind == CONFIG_KIND) else {
        // The kubelet's scheme also knows KubeletConfiguration and SerializedNodeConfigSource in
        // v1beta1; decoding those succeeds and config.go then rejects the kind.
        if group == CONFIG_GROUP
            && version == "v1beta1"
            && matches!(kind.as_str(), "KubeletConfiguration" | "SerializedNodeConfigSource")
        {
            return Err(format!("failed to decode {} (wrong Kind)", quote(&kind)));
        }
        let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
        return Err(format!("no kind {} is registered for version {}", quote(&kind), quote(&gv)));
    };
    let mut d =
        Decoder { pkg: config_version.package(), version: config_version, type_error: None, strict: Vec::new() };
    let mut providers = Vec::new();
    d.object(entries, "", |d, key, value| {
        match key {
            "apiVersion" | "kind" => {}
            "providers" => providers = d.providers(value),
            _ => return false,
        }
        true
    });
    if let Some(err) = d.type_error {
        return Err(err);
    }
    if !d.strict.is_empty() {
        return Err(format!("strict decoding error: {}", d.strict.join(", ")));
    }
    Ok((config_version, providers))
}
