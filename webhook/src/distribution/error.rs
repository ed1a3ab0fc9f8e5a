//! Errors of the distributor. Each carries a stable reason, used as the condition reason, the
//! Event reason and the `reason` label of the failure metric.

use credential_core::estate::Cluster;

use super::reason::Reason;

#[derive(Debug, thiserror::Error)]
pub enum DistributionError {
    #[error("Region {region} does not exist in the management cluster; create it or fix spec.region")]
    RegionNotFound { region: String },

    /// The Region names no usable kubeconfig (Secret or key missing, not a kubeconfig).
    #[error("Region {region}: {detail}")]
    RegionKubeconfig { region: String, detail: String },

    /// The Region's reference to its kubeconfig is unusable (the core's message names the Region).
    #[error(transparent)]
    RegionKubeconfigRef(#[from] credential_core::kubeconfig::KubeconfigRefError),

    #[error("{cluster} cannot be reached: {detail}")]
    Unreachable { cluster: Cluster, detail: String },

    /// An API request failed; `context` names the object and the action.
    #[error("{context}: {}", readable(source))]
    Api {
        context: String,
        #[source]
        source: kube::Error,
    },

    /// An object read from the API is not what its kind promises.
    #[error("{object}: {detail}")]
    Malformed { object: String, detail: String },

    /// Leader election could not run.
    #[error("leader election on Lease {lease}: {detail}")]
    Lease { lease: String, detail: String },
}

impl DistributionError {
    pub(crate) fn api(context: impl Into<String>, source: kube::Error) -> Self {
        DistributionError::Api { context: context.into(), source }
    }

    /// The stable reason (the condition reason, Event reason and metric label).
    pub fn reason(&self) -> Reason {
        match self {
            DistributionError::RegionNotFound { .. } => Reason::RegionNotFound,
            DistributionError::RegionKubeconfig { .. } | DistributionError::RegionKubeconfigRef(_) => {
                Reason::RegionKubeconfigInvalid
            }
            DistributionError::Unreachable { .. } => Reason::ClusterUnreachable,
            DistributionError::Api { source, .. } if is_connect_error(source) => Reason::ClusterUnreachable,
            DistributionError::Api { source, .. } if status_code(source) == Some(403) => Reason::Forbidden,
            DistributionError::Api { .. } => Reason::ApiError,
            DistributionError::Malformed { .. } => Reason::MalformedObject,
            DistributionError::Lease { .. } => Reason::LeaderElection,
        }
    }
}

/// A kube error as an operator reads it: the server's message, reason and HTTP code (kube's own
/// Display appends a Rust `Debug` dump of the Status), with the fix for a 403. Never the body of
/// a response that failed to decode (it could be a Secret).
pub fn readable(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) if status.code == 403 => format!(
            "{} (Forbidden, HTTP 403): the credential-webhook ServiceAccount lacks this grant; add it as \
             docs/src/operator/rbac.md describes",
            status.message
        ),
        kube::Error::Api(status) => {
            let reason = if status.reason.is_empty() { "Failure" } else { status.reason.as_str() };
            format!("{} ({reason}, HTTP {})", status.message, status.code)
        }
        kube::Error::SerdeError(_) => "the response could not be decoded".to_string(),
        other => other.to_string(),
    }
}

/// HTTP status of an API error, if the server answered.
pub(crate) fn status_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

pub(crate) fn is_not_found(err: &kube::Error) -> bool {
    status_code(err) == Some(404)
}

pub(crate) fn is_conflict(err: &kube::Error) -> bool {
    status_code(err) == Some(409)
}

/// The server was not reached (or did not answer): retry the cluster later.
pub(crate) fn is_connect_error(err: &kube::Error) -> bool {
    matches!(err, kube::Error::HyperError(_) | kube::Error::Service(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        let status: kube::core::Status =
            serde_json::from_value(serde_json::json!({"code": code, "reason": reason, "message": message}))
                .unwrap_or_default();
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn api_errors_read_as_message_reason_and_code_never_as_debug_dumps() {
        let e =
            DistributionError::api("read Secret kcm-system/x", api_error(404, "NotFound", "secrets \"x\" not found"));
        assert_eq!(e.to_string(), "read Secret kcm-system/x: secrets \"x\" not found (NotFound, HTTP 404)");
        let forbidden =
            DistributionError::api("read Secret team/x", api_error(403, "Forbidden", "secrets is forbidden"));
        let text = forbidden.to_string();
        assert!(text.contains("HTTP 403") && text.contains("grant") && !text.contains("Status {"), "{text}");
        assert_eq!(forbidden.reason(), Reason::Forbidden);
    }
}
