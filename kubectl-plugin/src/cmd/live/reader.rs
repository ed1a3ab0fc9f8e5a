//! One cluster being read for an estate: which kinds it serves (the core's table, else discovery
//! of just the group/versions asked for) and GETs of objects by key, concurrently.
//!
//! Discovery answers "is this kind served here" without listing CRDs (large, often forbidden):
//! each discovered custom kind is recorded as a minimal CRD object in the estate.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use credential_core::Gvk;
use credential_core::gvk::builtin_scope;
use credential_core::identity::ObjectKey;
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};

use super::client::{Kind, Rest, RestError};

/// Requests in flight at once per phase.
const CONCURRENCY: usize = 16;

/// The kinds a group/version serves (`None`: the group/version is not served).
type Discovered = Option<Vec<Kind>>;

pub struct Reader {
    pub rest: Rest,
    /// group/version -> kinds served there.
    discovered: HashMap<String, Discovered>,
}

impl Reader {
    pub fn new(rest: Rest) -> Self {
        Reader { rest, discovered: HashMap::new() }
    }

    /// Plural and scope of a kind: the core's table first (one source per fact), else discovery.
    fn kind(&self, gvk: &Gvk) -> Option<Kind> {
        if let Some(k) = Kind::known(gvk) {
            return Some(k);
        }
        let kinds = self.discovered.get(&gvk.api_version())?.as_ref()?;
        kinds.iter().find(|k| k.resource.kind == gvk.kind).cloned()
    }

    /// Discovers the group/versions not seen yet, concurrently.
    pub async fn discover(&mut self, gvs: impl IntoIterator<Item = String>) -> Result<(), RestError> {
        let todo: BTreeSet<String> = gvs.into_iter().filter(|gv| !self.discovered.contains_key(gv)).collect();
        let rest = &self.rest;
        let results: Vec<(String, Result<Discovered, RestError>)> = stream::iter(todo)
            .map(|gv| async move {
                let res = rest.discover(&gv).await;
                (gv, res)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (gv, res) in results {
            self.discovered.insert(gv, res?);
        }
        Ok(())
    }

    /// Minimal CRD objects for every discovered custom kind: what the estate needs for
    /// served/namespaced checks and the CRD's name.
    pub fn crd_objects(&self) -> Vec<Value> {
        let mut crds: BTreeMap<(String, String), (Kind, BTreeSet<String>)> = BTreeMap::new();
        for kinds in self.discovered.values() {
            for k in kinds.iter().flatten() {
                let r = &k.resource;
                if r.group.is_empty() || builtin_scope(&Gvk::new(&r.group, &r.version, &r.kind)).is_some() {
                    continue;
                }
                let entry =
                    crds.entry((r.group.clone(), r.kind.clone())).or_insert_with(|| (k.clone(), BTreeSet::new()));
                entry.1.insert(r.version.clone());
            }
        }
        crds.into_iter()
            .map(|((group, kind), (k, versions))| {
                let plural = &k.resource.plural;
                json!({
                    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                    "metadata": {"name": format!("{plural}.{group}")},
                    "spec": {
                        "group": group, "names": {"kind": kind, "plural": plural},
                        "scope": if k.namespaced { "Namespaced" } else { "Cluster" },
                        "versions": versions.iter().map(|v| json!({"name": v, "served": true})).collect::<Vec<_>>(),
                    }
                })
            })
            .collect()
    }

    /// GETs objects by key (discovering their group/versions first); missing ones are skipped.
    pub async fn fetch(&mut self, keys: &BTreeSet<ObjectKey>) -> Result<Vec<Value>, RestError> {
        self.discover(keys.iter().filter(|k| Kind::known(&k.gvk).is_none()).map(|k| k.gvk.api_version())).await?;
        let gets: Vec<(Kind, &ObjectKey)> = keys.iter().filter_map(|k| Some((self.kind(&k.gvk)?, k))).collect();
        let rest = &self.rest;
        let results: Vec<Result<Option<Value>, RestError>> = stream::iter(gets)
            .map(|(kind, key)| async move { rest.get_opt(&kind, key.namespace.as_deref(), &key.name).await })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut out = Vec::new();
        for r in results {
            out.extend(r?);
        }
        Ok(out)
    }
}
