//! What the webhook's ServiceAccount needs in the management cluster, stated once (in
//! webhook/src/preflight.rs, re-exported here). Two tests hold
//! the installs to it: deploy_invariants.rs checks that the rendered RBAC grants each need (and
//! that webhook/src calls nothing else), helm_e2e.rs asks a real API server's authorizer
//! (`kubectl auth can-i --as system:serviceaccount:...`) after `helm install`.
//! Included with `#[path = "support/permissions.rs"] mod permissions;`.
#![allow(dead_code)]

// The list lives with the code (credential-webhook preflight asks the cluster's authorizer for it).
#[allow(unused_imports)]
pub use credential_webhook::preflight::{DISTRIBUTION_LEASE, ORPHANED_COPIES, needs};

/// Granted beyond [`needs`], each for a reason the code cannot show statically: identity kinds of
/// the other CAPI providers k0rdent ships ProviderInterfaces for (which kinds are used is read
/// from ProviderInterfaces at run time). (API group, resource, verbs), cluster-wide.
pub const ALSO_GRANTED: &[(&str, &str, &[&str])] = &[
    ("infrastructure.cluster.x-k8s.io", "awsclusterroleidentities", &["get", "list", "watch"]),
    ("infrastructure.cluster.x-k8s.io", "awsclustercontrolleridentities", &["get", "list", "watch"]),
    ("infrastructure.cluster.x-k8s.io", "azureclusteridentities", &["get", "list", "watch"]),
    ("infrastructure.cluster.x-k8s.io", "vsphereclusteridentities", &["get", "list", "watch"]),
    ("infrastructure.cluster.x-k8s.io", "openstackclusteridentities", &["get", "list", "watch"]),
];
