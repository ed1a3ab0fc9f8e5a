//! Errors of the distributor. Each carries a stable reason, used as the condition reason, the
//! Event reason and the `reason` label of the failure metric.

use credential_core::estate::Cluster;

#[derive(Debug, thiserror::Error)]
pub enum DistributionError {
    #[error("Region {region} does not exist in the management cluster; create it or fix spec.region")]
    RegionNotFound { region: String },

    /// The Region names no usable kubeconfig (Secret or key missing, not a kubeconfig).
    #[error("Region {region}: {detail}")]
    RegionKubeconfig { region: String, detail: String },

    #[error("{cluster} cannot be reached: {detail}")]
    Unreachable { cluster: Cluster, detail: String },

    /// An API request failed; `context` names the object and the action.
    #[error("{context}: {source}")]
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

    /// The stable reason (PascalCase, valid as a condition reason).
    pub fn reason(&self) -> &'static str {
        match self {
            DistributionError::RegionNotFound { .. } => "RegionNotFound",
            DistributionError::RegionKubeconfig { .. } => "RegionKubeconfigInvalid",
            DistributionError::Unreachable { .. } => "ClusterUnreachable",
            DistributionError::Api { source, .. } if is_connect_error(source) => "ClusterUnreachable",
            DistributionError::Api { .. } => "ApiError",
            DistributionError::Malformed { .. } => "MalformedObject",
            DistributionError::Lease { .. } => "LeaderElection",
        }
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
