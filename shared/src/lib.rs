//! credential-core: the pure domain of credential-guard.
//!
//! Everything here is a function of its inputs: no network, no clock, no global state. The
//! webhook and the kubectl plugin feed it cluster state through the [`estate::Estate`] trait.

pub mod distribution;
pub mod estate;
pub mod fieldpath;
pub mod finding;
pub mod gvk;
pub mod identity;
pub mod kubeconfig;
pub mod model;
pub mod mutate;
pub mod readiness;
pub mod rules;
pub mod yaml;

pub use estate::{Cluster, Estate, MemoryEstate, Served};
pub use finding::{Code, Finding, Severity};
pub use gvk::Gvk;
pub use rules::{AdmissionInput, Operation, ResourceKind};

/// The namespace KCM runs in unless configured otherwise.
pub const DEFAULT_SYSTEM_NAMESPACE: &str = "kcm-system";
/// The API group of every k0rdent kind this project reads.
pub const K0RDENT_GROUP: &str = "k0rdent.mirantis.com";
/// The only served version of the k0rdent kinds.
pub const K0RDENT_VERSION: &str = "v1beta1";
/// apiVersion string of the k0rdent kinds.
pub const K0RDENT_API_VERSION: &str = "k0rdent.mirantis.com/v1beta1";
