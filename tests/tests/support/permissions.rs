//! What the webhook's ServiceAccount needs in the management cluster, stated once. Two tests hold
//! the installs to it: deploy_invariants.rs checks that the rendered RBAC grants each need (and
//! that webhook/src calls nothing else), helm_e2e.rs asks a real API server's authorizer
//! (`kubectl auth can-i --as system:serviceaccount:...`) after `helm install`.
//! Included with `#[path = "support/permissions.rs"] mod permissions;`.
#![allow(dead_code)]

use credential_core::{K0RDENT_GROUP, ResourceKind};

/// The only Lease the code reads and renews (get/update are limited to this name).
pub const DISTRIBUTION_LEASE: &str = "credential-guard-distribution";

/// The only ConfigMap the code reads and changes (the orphaned-copies record).
pub const ORPHANED_COPIES: &str = credential_webhook::distribution::ORPHANED_COPIES;

/// (namespace or None for cluster-wide, API group, resource, verb). Reads: the estate the rules
/// and explain evaluate; writes: only what distribution needs (our condition, our finalizer,
/// Events, the leader Lease).
pub fn needs(webhook_ns: &str, system_ns: &str) -> Vec<(Option<String>, &'static str, &'static str, &'static str)> {
    let mut v = Vec::new();
    for kind in ResourceKind::ALL {
        for verb in ["get", "list", "watch"] {
            v.push((None, K0RDENT_GROUP, kind.plural(), verb));
        }
    }
    for verb in ["get", "list", "watch"] {
        v.push((None, "apiextensions.k8s.io", "customresourcedefinitions", verb));
        v.push((Some(system_ns.to_string()), "", "secrets", verb));
        v.push((None, "infrastructure.cluster.x-k8s.io", "awsclusterstaticidentities", verb));
    }
    // The orphaned-copies record (server-side apply of one ConfigMap in the system namespace).
    for verb in ["create", "get", "patch"] {
        v.push((Some(system_ns.to_string()), "", "configmaps", verb));
    }
    v.push((None, K0RDENT_GROUP, "credentials/status", "patch"));
    v.push((None, K0RDENT_GROUP, "credentials", "patch"));
    for verb in ["create", "patch"] {
        v.push((None, "events.k8s.io", "events", verb));
    }
    for verb in ["get", "create", "update"] {
        v.push((Some(webhook_ns.to_string()), "coordination.k8s.io", "leases", verb));
    }
    v
}

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
