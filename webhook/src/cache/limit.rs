//! Bounds on the live reads admission makes on behalf of a request.
//!
//! A Region, Credential or ClusterDeployment review can make the webhook read an object the cache
//! lacks (the kubeconfig Secret a Region names, a Region a Credential names). Anyone who can send
//! reviews could otherwise turn the admission port into an amplifier of API reads and an oracle of
//! what exists. So each read needs a token from the bucket of the requesting user
//! (`request.userInfo.username`, as the API server authenticated it) and from a global bucket (a
//! caller who reaches the port directly can forge the user), and at most [`MAX_IN_FLIGHT`] reads run
//! at once. A refused read is counted in `credential_webhook_live_reads_total{outcome="refused"}` and
//! the decision is made on the cache, as for a read that failed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Reads per user: a burst of this many, then [`PER_USER_PER_SECOND`].
pub const PER_USER_BURST: f64 = 20.0;
pub const PER_USER_PER_SECOND: f64 = 2.0;
/// Reads of all users together: a burst of this many, then [`GLOBAL_PER_SECOND`].
pub const GLOBAL_BURST: f64 = 100.0;
pub const GLOBAL_PER_SECOND: f64 = 20.0;
/// Live reads running at once.
pub const MAX_IN_FLIGHT: usize = 8;
/// Users tracked at once; beyond it, users whose bucket is full again are forgotten first.
pub const MAX_USERS: usize = 4096;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LiveReadLabels {
    /// The kind read (`Secret`, `Region`, `Credential`, `ClusterDeployment`).
    pub kind: &'static str,
    /// `found`, `absent`, `unavailable` (failed or timed out) or `refused` (rate limit).
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Bucket { tokens: burst, at: now }
    }

    fn refill(&mut self, burst: f64, per_second: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(burst);
        self.at = now;
    }
}

#[derive(Debug)]
struct Buckets {
    global: Bucket,
    users: HashMap<String, Bucket>,
}

/// Why a live read was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The requesting user used up its reads.
    User,
    /// All users together used up the reads.
    Global,
    /// [`MAX_IN_FLIGHT`] reads are running, or too many users are tracked.
    Busy,
}

impl Refused {
    pub fn as_str(&self) -> &'static str {
        match self {
            Refused::User => "the requesting user's live-read rate limit is used up",
            Refused::Global => "the webhook's live-read rate limit is used up",
            Refused::Busy => "too many live reads at once",
        }
    }
}

/// Token buckets per user and global, plus a bound on reads in flight.
#[derive(Debug)]
pub struct LiveReadLimiter {
    buckets: Mutex<Buckets>,
    in_flight: Arc<Semaphore>,
    per_user: (f64, f64),
    global: (f64, f64),
    /// `credential_webhook_live_reads_total` by kind and outcome.
    pub reads: Family<LiveReadLabels, Counter>,
}

impl Default for LiveReadLimiter {
    fn default() -> Self {
        Self::new((PER_USER_BURST, PER_USER_PER_SECOND), (GLOBAL_BURST, GLOBAL_PER_SECOND), MAX_IN_FLIGHT)
    }
}

impl LiveReadLimiter {
    /// `per_user` and `global`: (burst, reads per second).
    pub fn new(per_user: (f64, f64), global: (f64, f64), max_in_flight: usize) -> Self {
        let now = Instant::now();
        LiveReadLimiter {
            buckets: Mutex::new(Buckets { global: Bucket::full(global.0, now), users: HashMap::new() }),
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            per_user,
            global,
            reads: Family::default(),
        }
    }

    /// A permit for one live read on behalf of `user` at `now`, or why not. The permit bounds the
    /// reads in flight; drop it when the read is done.
    pub fn admit(&self, user: &str, now: Instant) -> Result<OwnedSemaphorePermit, Refused> {
        let permit = self.in_flight.clone().try_acquire_owned().map_err(|_| Refused::Busy)?;
        let mut b = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (user_burst, user_rate) = self.per_user;
        if !b.users.contains_key(user) && b.users.len() >= MAX_USERS {
            b.users.retain(|_, bucket| {
                bucket.refill(user_burst, user_rate, now);
                bucket.tokens < user_burst
            });
            if b.users.len() >= MAX_USERS {
                return Err(Refused::Busy);
            }
        }
        b.global.refill(self.global.0, self.global.1, now);
        let bucket = b.users.entry(user.to_string()).or_insert_with(|| Bucket::full(user_burst, now));
        bucket.refill(user_burst, user_rate, now);
        if bucket.tokens < 1.0 {
            return Err(Refused::User);
        }
        if b.global.tokens < 1.0 {
            return Err(Refused::Global);
        }
        if let Some(bucket) = b.users.get_mut(user) {
            bucket.tokens -= 1.0;
        }
        b.global.tokens -= 1.0;
        Ok(permit)
    }

    /// Counts one live read (or refusal) of `kind`.
    pub fn count(&self, kind: &'static str, outcome: &'static str) {
        self.reads.get_or_create(&LiveReadLabels { kind, outcome }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_per_user_and_global_refill_over_time() {
        let l = LiveReadLimiter::new((2.0, 1.0), (3.0, 1.0), 8);
        let t0 = Instant::now();
        assert!(l.admit("alice", t0).is_ok());
        assert!(l.admit("alice", t0).is_ok());
        assert_eq!(l.admit("alice", t0).unwrap_err(), Refused::User, "alice's burst is 2");
        // Another user has its own bucket, but the global one has a single token left.
        assert!(l.admit("bob", t0).is_ok());
        assert_eq!(l.admit("bob", t0).unwrap_err(), Refused::Global);
        // One second later: one token each again.
        let t1 = t0 + Duration::from_secs(1);
        assert!(l.admit("alice", t1).is_ok());
        assert_eq!(l.admit("alice", t1).unwrap_err(), Refused::User);
    }

    #[test]
    fn reads_in_flight_are_bounded() {
        let l = LiveReadLimiter::new((100.0, 1.0), (100.0, 1.0), 2);
        let now = Instant::now();
        let a = l.admit("u", now).unwrap();
        let _b = l.admit("u", now).unwrap();
        assert_eq!(l.admit("u", now).unwrap_err(), Refused::Busy);
        drop(a);
        assert!(l.admit("u", now).is_ok());
    }

    #[test]
    fn counts_outcomes_by_kind() {
        let l = LiveReadLimiter::default();
        l.count("Region", "refused");
        l.count("Region", "refused");
        assert_eq!(l.reads.get_or_create(&LiveReadLabels { kind: "Region", outcome: "refused" }).get(), 2);
    }
}
