//! Live mode: the plugin's reads of real clusters.
//!
//! - [`connect`]: kubeconfig handling like kubectl, the management cluster's connection;
//! - [`client`]: one cluster's client on kube's `Api<DynamicObject>` and pinned discovery, with
//!   kubectl's wording for failures;
//! - [`estate`]: what `explain`, `plan` and `wait` read, phase by phase, into a
//!   `MemoryEstate`, with [`reader`] (discovery and GETs by key in one cluster), [`region`] (a
//!   Region's kubeconfig and cluster) and [`extras`] (the distribution's side objects).

mod client;
mod connect;
mod estate;
mod extras;
mod reader;
mod region;

pub use client::{Kind, Rest};
pub use connect::connect;
pub use estate::{Wanted, load};
pub use region::RegionalServer;
