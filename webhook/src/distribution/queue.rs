//! The distribution work queue: one entry per Credential key, deduplicated, with delayed
//! (rate-limited) re-adds and capped exponential backoff.
//!
//! Semantics follow client-go's workqueue: a key is never handed to two workers at once; a key
//! added while a worker holds it is marked dirty and handed out again once the worker is done.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Capped exponential backoff: `base * 2^(failures-1)`, at most `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff { base, cap }
    }

    /// Delay before the next attempt after `failures` consecutive failures (0 = no delay).
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let shift = (failures - 1).min(30);
        self.base.saturating_mul(1u32 << shift).min(self.cap)
    }
}

struct Inner<K> {
    ready: VecDeque<K>,
    /// Keys in `ready`.
    queued: HashSet<K>,
    /// Keys a worker holds.
    active: HashSet<K>,
    /// Keys added while active: re-queued on `done`.
    dirty: HashSet<K>,
    /// Earliest pending delayed add per key.
    delayed: HashMap<K, Instant>,
    closed: bool,
}

/// A deduplicating work queue shared by the workers.
pub struct WorkQueue<K> {
    inner: Mutex<Inner<K>>,
    notify: Notify,
}

impl<K: Clone + Eq + Hash + Send + Sync + 'static> WorkQueue<K> {
    pub fn new() -> Arc<Self> {
        Arc::new(WorkQueue {
            inner: Mutex::new(Inner {
                ready: VecDeque::new(),
                queued: HashSet::new(),
                active: HashSet::new(),
                dirty: HashSet::new(),
                delayed: HashMap::new(),
                closed: false,
            }),
            notify: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner<K>> {
        // A poisoned lock only means a worker panicked while holding it; the sets stay consistent
        // (every mutation is a single insert/remove), so keep going.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a key now. Returns `true` if it was not already waiting.
    pub fn add(&self, key: K) -> bool {
        let mut inner = self.lock();
        if inner.closed || inner.queued.contains(&key) {
            return false;
        }
        if inner.active.contains(&key) {
            return inner.dirty.insert(key);
        }
        inner.queued.insert(key.clone());
        inner.ready.push_back(key);
        drop(inner);
        self.notify.notify_one();
        true
    }

    /// Adds a key after `delay`. A later delayed add of the same key is dropped while an earlier
    /// one is pending, so retries never pile up.
    pub fn add_after(self: &Arc<Self>, key: K, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let due = Instant::now() + delay;
        {
            let mut inner = self.lock();
            if inner.closed {
                return;
            }
            match inner.delayed.get(&key) {
                Some(existing) if *existing <= due => return,
                _ => {
                    inner.delayed.insert(key.clone(), due);
                }
            }
        }
        let queue = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep_until(due).await;
            let fire = {
                let mut inner = queue.lock();
                if inner.delayed.get(&key) == Some(&due) {
                    inner.delayed.remove(&key);
                    true
                } else {
                    false
                }
            };
            if fire {
                queue.add(key);
            }
        });
    }

    /// Waits for the next key; `None` once the queue is closed.
    pub async fn next(&self) -> Option<K> {
        loop {
            let notified = self.notify.notified();
            {
                let mut inner = self.lock();
                if inner.closed {
                    return None;
                }
                if let Some(key) = inner.ready.pop_front() {
                    inner.queued.remove(&key);
                    inner.active.insert(key.clone());
                    let more = !inner.ready.is_empty();
                    drop(inner);
                    if more {
                        // Wake another worker: `notify_one` stores a single permit only.
                        self.notify.notify_one();
                    }
                    return Some(key);
                }
            }
            notified.await;
        }
    }

    /// A worker finished a key: hands it out again if it was added meanwhile.
    pub fn done(&self, key: &K) {
        let mut inner = self.lock();
        inner.active.remove(key);
        if inner.dirty.remove(key) && !inner.closed && inner.queued.insert(key.clone()) {
            inner.ready.push_back(key.clone());
            drop(inner);
            self.notify.notify_one();
        }
    }

    /// Keys waiting (ready now or delayed) — the queue-depth metric.
    pub fn depth(&self) -> usize {
        let inner = self.lock();
        inner.ready.len() + inner.dirty.len() + inner.delayed.keys().filter(|k| !inner.queued.contains(*k)).count()
    }

    /// Keys ready now or held by a worker (excluding delayed retries).
    pub fn busy(&self) -> usize {
        let inner = self.lock();
        inner.ready.len() + inner.active.len()
    }

    /// Stops handing out keys; waiting workers return `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(b.delay(0), Duration::ZERO);
        assert_eq!(b.delay(1), Duration::from_millis(100));
        assert_eq!(b.delay(2), Duration::from_millis(200));
        assert_eq!(b.delay(4), Duration::from_millis(800));
        assert_eq!(b.delay(5), Duration::from_secs(1));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn dedups_waiting_keys() {
        let q = WorkQueue::new();
        assert!(q.add("a"));
        assert!(!q.add("a"));
        assert!(q.add("b"));
        assert_eq!(q.depth(), 2);
        assert_eq!(q.next().await, Some("a"));
        assert_eq!(q.next().await, Some("b"));
        assert_eq!(q.depth(), 0);
    }

    #[tokio::test]
    async fn key_added_while_active_is_redelivered_after_done() {
        let q = WorkQueue::new();
        q.add("a");
        let k = q.next().await;
        assert_eq!(k, Some("a"));
        // Not handed to a second worker while active.
        assert!(q.add("a"));
        assert!(!q.add("a"));
        let second = tokio::time::timeout(Duration::from_millis(20), q.next()).await;
        assert!(second.is_err(), "active key must not be handed out twice");
        q.done(&"a");
        assert_eq!(q.next().await, Some("a"));
        q.done(&"a");
        assert_eq!(q.depth(), 0);
    }

    #[tokio::test]
    async fn delayed_adds_fire_once_at_the_earliest_deadline() {
        let q = WorkQueue::new();
        q.add_after("a", Duration::from_millis(150));
        q.add_after("a", Duration::from_millis(400)); // later: dropped
        q.add_after("a", Duration::from_millis(40)); // earlier: replaces
        assert_eq!(q.depth(), 1);
        let start = Instant::now();
        assert_eq!(q.next().await, Some("a"));
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(40) && waited < Duration::from_millis(150), "{waited:?}");
        q.done(&"a");
        let again = tokio::time::timeout(Duration::from_millis(500), q.next()).await;
        assert!(again.is_err(), "superseded delayed adds must not fire");
    }

    #[tokio::test]
    async fn close_releases_waiting_workers() {
        let q: Arc<WorkQueue<&str>> = WorkQueue::new();
        let q2 = Arc::clone(&q);
        let waiter = tokio::spawn(async move { q2.next().await });
        tokio::task::yield_now().await;
        q.close();
        assert_eq!(waiter.await.ok().flatten(), None);
        assert!(!q.add("x"));
    }
}
