//! Errors: `ApiError` is what the emulated API server answers (a `kind: Status` body); `EmulatorError` is what the
//! harness API returns to tests.

use serde_json::{Value, json};

/// An API error rendered as a Kubernetes `Status` object, the shape kubectl and kube-rs decode.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError { code, reason: reason.to_string(), message: message.into(), details: None }
    }

    /// `details` the way the real server fills them: `kind` is the resource (plural) for most errors.
    pub fn with_details(mut self, name: &str, group: &str, kind: &str) -> Self {
        let mut d = serde_json::Map::new();
        if !name.is_empty() {
            d.insert("name".into(), json!(name));
        }
        if !group.is_empty() {
            d.insert("group".into(), json!(group));
        }
        if !kind.is_empty() {
            d.insert("kind".into(), json!(kind));
        }
        self.details = Some(Value::Object(d));
        self
    }

    pub fn with_causes(mut self, causes: Vec<Value>) -> Self {
        let mut d = match self.details.take() {
            Some(Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        d.insert("causes".into(), Value::Array(causes));
        self.details = Some(Value::Object(d));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(500, "InternalError", format!("Internal error occurred: {message}"))
            .with_causes(vec![json!({ "message": message })])
    }

    /// `<resource>[.<group>] "<name>" not found`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{} \"{name}\" not found", qualified(group, resource)))
            .with_details(name, group, resource)
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", qualified(group, resource)))
            .with_details(name, group, resource)
    }

    /// The optimistic-concurrency failure (stale or mismatched resourceVersion).
    pub fn conflict(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your \
                 changes to the latest version and try again",
                qualified(group, resource)
            ),
        )
        .with_details(name, group, resource)
    }

    /// 422 Invalid: `<Kind> "<name>" is invalid: <field>: <detail>`; details.kind is the Kind here, as upstream.
    pub fn invalid(group: &str, kind: &str, name: &str, field: &str, detail: &str) -> Self {
        Self::new(422, "Invalid", format!("{kind} \"{name}\" is invalid: {field}: {detail}"))
            .with_details(name, group, kind)
            .with_causes(vec![json!({ "reason": "FieldValueInvalid", "message": detail, "field": field })])
    }

    pub fn not_found_path() -> Self {
        Self::new(404, "NotFound", "the server could not find the requested resource")
    }

    pub fn method_not_allowed(verb: &str, what: &str) -> Self {
        Self::new(405, "MethodNotAllowed", format!("{verb} is not supported on {what}"))
    }

    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        });
        if !self.reason.is_empty() {
            v["reason"] = json!(self.reason);
        }
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

/// `secrets` or `credentials.k0rdent.mirantis.com`, as upstream messages name a resource.
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") }
}

/// What the harness API returns to tests.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot bind the emulator to 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("cannot write the kubeconfig {path}: {source}")]
    Kubeconfig { path: String, source: std::io::Error },
    #[error("seed YAML is not valid: {0}; fix the YAML syntax of the seed text")]
    SeedYaml(String),
    #[error("seed document #{index} ({what}) was rejected: {error}")]
    SeedRejected { index: usize, what: String, error: ApiError },
    #[error("cannot read seed file {path}: {source}")]
    SeedFile { path: String, source: std::io::Error },
    #[error("cannot run {program}: {source}; install kubectl or set KUBECTL to its path")]
    Kubectl { program: String, source: std::io::Error },
    #[error("unknown resource {api_version} {kind_or_resource}: create its CustomResourceDefinition first")]
    UnknownResource { api_version: String, kind_or_resource: String },
}
