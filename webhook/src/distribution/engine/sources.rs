//! Watch handlers: what the shared watches tell the distributor (Credentials, Regions, source
//! objects) and the metadata watches on source objects a plan used, with refused (403) watches
//! reported once.

use super::*;

impl Engine {
    /// A Credential event from the management cluster.
    pub fn on_credential(&self, value: &Value, deleted: bool) {
        let meta = |f: &str| value.pointer(&format!("/metadata/{f}")).and_then(Value::as_str);
        let Some(name) = meta("name").map(str::to_string) else { return };
        let key = CredentialKey { namespace: meta("namespace").unwrap_or_default().to_string(), name };
        if deleted {
            lock(&self.seen).remove(&key);
            // Its reconcile forgets it (and takes its key out of the controller's store).
            if lock(&self.last_plans).contains_key(&key) || lock(&self.keys).knows(&key) {
                self.enqueue(key);
            }
            return;
        }
        let seen = Seen::of(value);
        let ours = seen.ours;
        let relevant = seen.target.is_some() || ours || lock(&self.last_plans).contains_key(&key);
        let changed = lock(&self.seen).insert(key.clone(), seen.clone()) != Some(seen);
        if relevant && changed {
            self.enqueue(key);
        }
    }

    /// A Region event from the management cluster.
    pub fn on_region(&self, value: &Value, deleted: bool, initial: bool) {
        let Some(name) = value.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string) else { return };
        let now = RegionSeen::of(value);
        let previous = {
            let mut regions = lock(&self.regions_seen);
            if deleted { regions.remove(&name) } else { regions.insert(name.clone(), now) }
        };
        let cluster = Cluster::Region(name.clone());
        let spec_changed = previous.map(|p| p.spec) != Some(now.spec);
        let became_ready = now.ready && !previous.is_some_and(|p| p.ready);
        if deleted || (spec_changed && previous.is_some()) {
            let Some(me) = self.me.upgrade() else { return };
            tokio::spawn(async move {
                me.drop_region(&name).await;
                me.cluster_ok(&cluster);
                me.enqueue_cluster(&cluster);
            });
        } else if (previous.is_none() && !initial) || became_ready {
            self.cluster_ok(&cluster);
            self.enqueue_cluster(&cluster);
        }
    }

    /// A metadata event of a source kind (or of any Secret) in the management cluster.
    pub fn on_source(&self, gvk: &Gvk, object: &Value, deleted: bool) {
        let meta = |f: &str| object.pointer(&format!("/metadata/{f}")).and_then(Value::as_str);
        let Some(name) = meta("name") else { return };
        let namespace = meta("namespace").filter(|n| !n.is_empty());
        let rv = meta("resourceVersion").unwrap_or_default().to_string();
        let key = source_key(gvk, namespace, name);
        let users = self.credentials_using(&key);
        if !users.is_empty() {
            let unchanged = {
                let mut versions = lock(&self.source_versions);
                if deleted {
                    versions.remove(&key);
                    false
                } else {
                    versions.insert(key.clone(), rv.clone()).as_deref() == Some(rv.as_str())
                }
            };
            if !unchanged {
                let trigger = self.config.mode.mode() == Mode::Trigger;
                for k in users {
                    if trigger {
                        lock(&self.changed_at).entry(k.clone()).or_insert_with(Instant::now);
                    }
                    self.enqueue(k);
                }
            }
        }
        if gvk.same_group_kind(&Gvk::secret())
            && let Some(ns) = namespace
        {
            let stale: Vec<String> = lock(&self.kubeconfigs)
                .get(&(ns.to_string(), name.to_string()))
                .map(|list| {
                    list.iter()
                        .filter(|(_, built)| deleted || built.as_deref() != Some(rv.as_str()))
                        .map(|(r, _)| r.clone())
                        .collect()
                })
                .unwrap_or_default();
            if !stale.is_empty()
                && let Some(me) = self.me.upgrade()
            {
                tokio::spawn(async move {
                    for region in stale {
                        // The kubeconfig changed: rebuild the client on next use.
                        me.drop_region(&region).await;
                        let cluster = Cluster::Region(region);
                        me.cluster_ok(&cluster);
                        me.enqueue_cluster(&cluster);
                    }
                });
            }
        }
    }

    /// The metadata-only watch that covers the management objects of `gvk` at `namespace` (see
    /// [`watch_key`] for the scope).
    fn source_watch_spec(&self, gvk: &Gvk, namespace: Option<&str>) -> Option<(WatchKey, WatchSpec)> {
        let wkey = watch_key(gvk, namespace)?;
        let (ar, _) = self.mgmt_conn.cached_resource(gvk)?;
        // Only non-core kinds are watched cluster-wide (see `watch_key`).
        let mut spec = WatchSpec::new(&ar, None, Trim::Meta);
        if let Some(ns) = &wkey.2 {
            spec = spec.in_namespace(ns);
        }
        Some((wkey, spec))
    }

    /// Starts a metadata-only watch on the management objects of `gvk` at `namespace` (see
    /// [`watch_key`] for the scope), once per scope.
    pub fn ensure_source_watch(&self, gvk: &Gvk, namespace: Option<&str>) {
        let Some((wkey, spec)) = self.source_watch_spec(gvk, namespace) else { return };
        if lock(&self.source_watches).contains_key(&wkey) {
            return;
        }
        let weak = self.me.clone();
        let (gvk, key) = (gvk.clone(), wkey.clone());
        let subscription = self.informers.management.subscribe(
            &spec,
            Box::new(move |event| {
                let Some(engine) = weak.upgrade() else { return };
                match event {
                    Event::Listed(objects) => {
                        engine.source_watch_ok(&key);
                        for o in *objects {
                            engine.on_source(&gvk, o, false);
                        }
                    }
                    Event::Applied(o) => engine.on_source(&gvk, o, false),
                    Event::Deleted(o) => engine.on_source(&gvk, o, true),
                    Event::Failed(e) => engine.source_watch_failed(&key, e),
                }
            }),
        );
        // Raced with another worker: the second subscription goes (it shares the one watch).
        lock(&self.source_watches).entry(wkey).or_insert(subscription);
    }

    /// A source watch failed (it retries with backoff). A 403 is reported once, at warn, with
    /// the grant that fixes it; the Credentials it concerns are re-checked so their condition
    /// says so too. The resync keeps reconciling them meanwhile.
    pub(super) fn source_watch_failed(&self, key: &WatchKey, e: &WatchFailure) {
        if !e.forbidden() {
            tracing::debug!(kind = %key.1, namespace = ?key.2, error = %e, "source watch retrying");
            return;
        }
        let newly = {
            let mut forbidden = lock(&self.forbidden);
            let newly = forbidden.insert(key.clone());
            self.metrics.forbidden_watches.set(forbidden.len() as i64);
            newly
        };
        if newly {
            tracing::warn!(
                kind = %key.1,
                namespace = key.2.as_deref().unwrap_or("<all>"),
                resync = ?self.config.resync_period,
                "{}",
                forbidden_hint(key)
            );
            self.enqueue_watched_by(key);
        }
    }

    /// A source watch listed its objects: if it had been refused, it is allowed now.
    pub(super) fn source_watch_ok(&self, key: &WatchKey) {
        let was = {
            let mut forbidden = lock(&self.forbidden);
            let was = forbidden.remove(key);
            self.metrics.forbidden_watches.set(forbidden.len() as i64);
            was
        };
        if was {
            tracing::info!(kind = %key.1, namespace = key.2.as_deref().unwrap_or("<all>"), "source watch allowed now");
            self.enqueue_watched_by(key);
        }
    }

    /// Credentials whose last plan used an object in the scope of `key`.
    pub(super) fn enqueue_watched_by(&self, key: &WatchKey) {
        let users: BTreeSet<CredentialKey> = lock(&self.index)
            .iter()
            .filter(|((g, k, ns, _), _)| watch_key_of(g, k, ns.as_deref()).as_ref() == Some(key))
            .flat_map(|(_, users)| users.iter().cloned())
            .collect();
        for k in users {
            self.enqueue(k);
        }
    }

    /// Hints for the refused watches among `sources` (empty when every one is watched).
    pub(super) fn unwatched(&self, sources: &[SourceKey]) -> Vec<String> {
        let forbidden = lock(&self.forbidden);
        if forbidden.is_empty() {
            return Vec::new();
        }
        let keys: BTreeSet<WatchKey> = sources
            .iter()
            .filter_map(|(g, k, ns, _)| watch_key_of(g, k, ns.as_deref()))
            .filter(|k| forbidden.contains(k))
            .collect();
        keys.iter().map(forbidden_hint).collect()
    }
}

/// How a plan reads its sources in the management cluster.
pub(super) enum Reads<'a> {
    /// Every object from the API: write mode and releases write what they read.
    Api,
    /// Trigger mode (a regional target): what the source watches hold stands in for a GET (see
    /// [`Engine::held_source`]); Secrets and ConfigMaps are read whole only when listed in `content`.
    Watched { content: &'a HashSet<SourceKey> },
}

/// A plan, the versions of the sources it read, and the sources it knows by metadata only.
pub(super) struct Planned {
    pub plan: Plan,
    pub versions: SourceVersions,
    /// Secrets and ConfigMaps the plan holds as the watch's metadata (uid, resourceVersion,
    /// labels): enough for the trigger digest, not for judging their copies.
    pub partial: HashSet<SourceKey>,
}

/// A source object answered from memory.
pub(super) struct HeldSource {
    pub object: Arc<Value>,
    /// Metadata only (see [`Planned::partial`]).
    pub partial: bool,
}

/// `(uid, resourceVersion)` of an object.
pub(super) fn version_of(obj: &Value) -> (Option<&str>, Option<&str>) {
    let field = |f: &str| obj.pointer(&format!("/metadata/{f}")).and_then(Value::as_str);
    (field("uid"), field("resourceVersion"))
}

impl Engine {
    /// A source object from memory instead of a GET, when its metadata watch has listed and holds
    /// it: the watch's own metadata for a Secret or ConfigMap whose content is not needed now (their
    /// contents are never kept between reconciles), or the object last read whole when the watch
    /// still holds that uid and resourceVersion (other kinds: identities). `None`: ask the API (not
    /// covered by a watch, not listed yet, refused, absent there, or changed since it was read).
    ///
    /// Why a version from the watch is safe for the digest: the digest and any verdict are computed
    /// from the same objects (a GET in the same reconcile replaces the watch's metadata, so its
    /// newer version is the one in the digest), so InSync is only ever said of copies that match
    /// exactly the versions the digest names. A watch that lags behind the API has the newer
    /// version on its way: that event changes the stored resourceVersion and enqueues every
    /// Credential whose plan used the object (`on_source`), which then triggers and verifies again.
    pub(super) fn held_source(
        &self,
        gvk: &Gvk,
        namespace: Option<&str>,
        name: &str,
        content: &HashSet<SourceKey>,
    ) -> Option<HeldSource> {
        let (_, spec) = self.source_watch_spec(gvk, namespace)?;
        let meta = self.informers.management.get(&spec, namespace, name)??;
        let key = source_key(gvk, namespace, name);
        if gvk.group.is_empty() {
            return (!content.contains(&key)).then_some(HeldSource { object: meta, partial: true });
        }
        let kept = lock(&self.source_objects).get(&key).cloned()?;
        (version_of(&kept) == version_of(&meta)).then_some(HeldSource { object: kept, partial: false })
    }

    /// Keeps a source read whole for [`Engine::held_source`]: objects of non-core kinds only
    /// (identities), trimmed like the watch stores; Secrets and ConfigMaps never.
    pub(super) fn keep_source(&self, gvk: &Gvk, namespace: Option<&str>, name: &str, found: Option<&Arc<Value>>) {
        if gvk.group.is_empty() {
            return;
        }
        let key = source_key(gvk, namespace, name);
        let mut kept = lock(&self.source_objects);
        match found {
            Some(o) => kept.insert(key, Arc::new(crate::informer::watches::strip_common(Value::clone(o)))),
            None => kept.remove(&key),
        };
    }
}
