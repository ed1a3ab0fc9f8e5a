//! A Kubernetes API emulator for end-to-end tests of credential-guard (test equipment, not product code).
//!
//! It serves what `kubectl` and kube-rs need: version and discovery, OpenAPI v3 for `kubectl apply`, CRUD with
//! resourceVersions, patches and server-side apply, watches, finalizers, dry run, CRDs, and admission webhooks
//! called over HTTPS as kube-apiserver calls them. See `tests/README.md` for what it does not emulate.
#![allow(clippy::result_large_err)]

pub mod admission;
pub mod cluster;
pub mod crds;
pub mod discovery;
pub mod error;
pub mod fixtures;
pub mod gobuild;
mod harness;
pub mod manifests;
pub mod patch;
mod protobuf;
pub mod resources;
pub mod selector;
mod server;
pub mod store;
pub mod table;

pub use cluster::{ClusterError, ClusterOptions, KubeCluster};
pub use crds::{crds, crds_yaml};
pub use error::{ApiError, EmulatorError};
pub use harness::{ClusterState, Emulator, EmulatorBuilder, KubectlOutput, kubeconfig_yaml, run_kubectl};
pub use store::Settings;
