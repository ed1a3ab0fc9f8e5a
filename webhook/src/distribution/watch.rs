//! A small wrapper over kube's watcher: one task per watched collection, a callback per event,
//! and a capped exponential backoff between failed attempts (so an unreachable regional cluster
//! is retried, at most `cap` apart, for as long as the watch lives).

use std::fmt::Debug;

use futures_util::StreamExt;
use kube::Api;
use kube::runtime::utils::Backoff as KubeBackoff;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch_fn};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use super::error::status_code;
use super::queue::Backoff;

/// What a watch reports.
#[derive(Debug)]
pub enum WatchItem<K> {
    /// Added or modified; `initial` during a (re)list.
    Apply {
        obj: K,
        initial: bool,
    },
    Delete(K),
    /// A (re)list begins.
    Init,
    /// A (re)list is complete: the collection is known.
    InitDone,
    /// The watch failed and will be retried after a backoff.
    Error(WatchFailure),
}

/// Why a watch attempt failed.
#[derive(Debug, Clone)]
pub struct WatchFailure {
    pub message: String,
    /// The API server refused it (403): RBAC does not grant list/watch there. Retrying is still
    /// right (a RoleBinding may be added), but it deserves one clear warning, not a log line a minute.
    pub forbidden: bool,
}

impl std::fmt::Display for WatchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl WatchFailure {
    pub fn of(e: &watcher::Error) -> Self {
        let code = match e {
            watcher::Error::InitialListFailed(k)
            | watcher::Error::WatchStartFailed(k)
            | watcher::Error::WatchFailed(k) => status_code(k),
            watcher::Error::WatchError(status) => Some(status.code),
            watcher::Error::NoResourceVersion => None,
        };
        WatchFailure { message: e.to_string(), forbidden: code == Some(403) }
    }
}

struct WatchBackoff {
    policy: Backoff,
    failures: u32,
}

impl Iterator for WatchBackoff {
    type Item = std::time::Duration;
    fn next(&mut self) -> Option<Self::Item> {
        self.failures = self.failures.saturating_add(1);
        Some(self.policy.delay(self.failures))
    }
}

impl KubeBackoff for WatchBackoff {
    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Spawns a task that watches `api` and calls `on` for every event until aborted.
pub fn spawn_watch<K, F>(api: Api<K>, config: watcher::Config, backoff: Backoff, mut on: F) -> JoinHandle<()>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    F: FnMut(WatchItem<K>) + Send + 'static,
{
    tokio::spawn(async move {
        let stream = watch_fn(api, config).backoff(WatchBackoff { policy: backoff, failures: 0 });
        futures_util::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            let item = match ev {
                Ok(Event::Apply(obj)) => WatchItem::Apply { obj, initial: false },
                Ok(Event::InitApply(obj)) => WatchItem::Apply { obj, initial: true },
                Ok(Event::Delete(obj)) => WatchItem::Delete(obj),
                Ok(Event::Init) => WatchItem::Init,
                Ok(Event::InitDone) => WatchItem::InitDone,
                Err(e) => WatchItem::Error(WatchFailure::of(&e)),
            };
            on(item);
        }
    })
}
