//! credential-webhook: the admission webhook for k0rdent Credentials, Regions, ProviderInterfaces
//! and ClusterDeployments.
//!
//! A library with a thin `main`, so tests and benchmarks start the server in-process:
//! [`server::ServerBuilder`] with a [`server::ServerConfig`] (port 0 works) returns a
//! [`server::RunningServer`] holding the bound addresses.

pub mod admission;
pub mod cache;
pub mod certs;
pub mod cli;
pub mod distribution;
pub mod informer;
pub mod live;
pub mod logjson;
pub mod metrics;
pub mod preflight;
pub mod server;
pub mod sink;
pub mod tls;

pub use admission::{Admission, Webhook};
pub use cache::ServingEstate;
pub use server::{RunningServer, ServerBuilder, ServerConfig};
pub use sink::{AdmittedChange, AdmittedChangeSink, NoopSink};
