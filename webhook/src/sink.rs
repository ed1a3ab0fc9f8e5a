//! The hook point for identity distribution.
//!
//! The validating webhook calls [`AdmittedChangeSink::admitted`] once for every admitted,
//! non-dry-run CREATE, UPDATE or DELETE of a Credential. The distribution engineer implements the
//! trait (typically: push the key onto a work queue and return) and passes it to
//! [`crate::server::ServerBuilder::sink`]. The default sink does nothing.
//!
//! Contract for implementers:
//! - `admitted` runs on the request path: it must not block or do I/O. Enqueue and return.
//! - "Admitted" is not "stored": another webhook or etcd may still reject the write, and the API
//!   server may retry a request (same or new uid). Treat the call as a hint to re-read the
//!   Credential from the API and reconcile, never as the new truth.
//! - The validating webhook sees the object after all mutations, so `object` carries our labels.

use std::sync::Arc;

use credential_core::rules::Operation;
use serde_json::Value;

/// One admitted change of a Credential.
#[derive(Debug, Clone)]
pub struct AdmittedChange {
    /// The AdmissionReview request uid (for log correlation).
    pub uid: String,
    pub operation: Operation,
    pub namespace: String,
    pub name: String,
    /// The new object (CREATE, UPDATE).
    pub object: Option<Arc<Value>>,
    /// The stored object (UPDATE, DELETE).
    pub old_object: Option<Arc<Value>>,
}

/// Receives admitted Credential changes.
pub trait AdmittedChangeSink: Send + Sync + 'static {
    fn admitted(&self, change: AdmittedChange);

    /// Whether changes are wanted at all; `false` spares the request path building them.
    fn enabled(&self) -> bool {
        true
    }
}

/// Does nothing: the webhook without distribution.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopSink;

impl AdmittedChangeSink for NoopSink {
    fn admitted(&self, _change: AdmittedChange) {}

    fn enabled(&self) -> bool {
        false
    }
}

/// Sends each change into an unbounded tokio channel (a ready-made sink for a worker task).
#[derive(Debug, Clone)]
pub struct ChannelSink(pub tokio::sync::mpsc::UnboundedSender<AdmittedChange>);

impl AdmittedChangeSink for ChannelSink {
    fn admitted(&self, change: AdmittedChange) {
        // A closed receiver means distribution stopped; admission must not fail because of it.
        let _ = self.0.send(change);
    }
}
