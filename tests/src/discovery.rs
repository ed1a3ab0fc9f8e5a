//! Version, legacy discovery and the OpenAPI v3 documents kubectl reads before `apply`.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Value, json};

use crate::resources::{ResourceDef, version_priority};

pub const GIT_VERSION: &str = "v1.33.0-emulator";

pub fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": GIT_VERSION, "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub fn api_versions(addr: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}]})
}

const VERBS: [&str; 8] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// `APIResourceList` for one group/version.
pub fn resource_list(defs: &[ResourceDef], group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for d in defs.iter().filter(|d| d.group == group && d.serves(version)) {
        let mut r = json!({
            "name": d.plural, "singularName": d.singular, "namespaced": d.namespaced, "kind": d.kind, "verbs": VERBS,
        });
        if !d.short_names.is_empty() {
            r["shortNames"] = json!(d.short_names);
        }
        if !d.categories.is_empty() {
            r["categories"] = json!(d.categories);
        }
        resources.push(r);
        if d.status_subresource {
            resources
                .push(json!({"name": format!("{}/status", d.plural), "singularName": "", "namespaced": d.namespaced,
                                  "kind": d.kind, "verbs": ["get", "patch", "update"]}));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
}

/// Versions served per named group, preferred first.
fn groups(defs: &[ResourceDef]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in defs.iter().filter(|d| !d.group.is_empty()) {
        let vs = out.entry(d.group.clone()).or_default();
        for v in &d.versions {
            if !vs.contains(v) {
                vs.push(v.clone());
            }
        }
    }
    for vs in out.values_mut() {
        vs.sort_by_key(|v| version_priority(v));
    }
    out
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v})).collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

pub fn group_list(defs: &[ResourceDef]) -> Value {
    let groups: Vec<Value> = groups(defs).iter().map(|(g, vs)| group_json(g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(defs: &[ResourceDef], name: &str) -> Option<Value> {
    let gs = groups(defs);
    let vs = gs.get(name)?;
    let mut g = group_json(name, vs);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

/// The per-group-version OpenAPI v3 document: one path per resource whose `patch` operation carries the GVK and
/// a `fieldValidation` parameter, which is what makes kubectl trust the server with validation.
pub fn openapi_gv(defs: &[ResourceDef], group: &str, version: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    let prefix = if group.is_empty() { "/api/v1".to_string() } else { format!("/apis/{group}/{version}") };
    let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
    for d in defs.iter().filter(|d| d.group == group && d.serves(version)) {
        let gvk = json!({"group": group, "version": version, "kind": d.kind});
        let ns = if d.namespaced { "/namespaces/{namespace}" } else { "" };
        let schema = json!({"schema": {"type": "object"}});
        let patch = json!({
            "tags": [format!("{group}_{version}")],
            "operationId": format!("patch{}", d.kind),
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation"),
                           {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}],
            "requestBody": {"content": {
                "application/json-patch+json": schema, "application/merge-patch+json": schema,
                "application/apply-patch+yaml": schema,
            }},
            "responses": {"200": {"description": "OK", "content": {"application/json": schema}}},
        });
        let mut params = vec![json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}})];
        if d.namespaced {
            params.push(json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}}));
        }
        paths.insert(format!("{prefix}{ns}/{}/{{name}}", d.plural), json!({"patch": patch, "parameters": params}));
        let create = json!({
            "x-kubernetes-action": "post", "x-kubernetes-group-version-kind": gvk,
            "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation")],
            "responses": {"201": {"description": "Created"}},
        });
        paths.insert(format!("{prefix}{ns}/{}", d.plural), json!({"post": create}));
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

/// `/openapi/v3`: one entry per group-version; the hash changes whenever the document does, so kubectl's
/// disk cache never serves a stale one.
pub fn openapi_root(defs: &[ResourceDef]) -> Value {
    let mut gvs: Vec<(String, String)> = Vec::new();
    for d in defs {
        for v in &d.versions {
            if !gvs.contains(&(d.group.clone(), v.clone())) {
                gvs.push((d.group.clone(), v.clone()));
            }
        }
    }
    let mut paths = serde_json::Map::new();
    for (g, v) in gvs {
        let Some(doc) = openapi_gv(defs, &g, &v) else { continue };
        let mut h = DefaultHasher::new();
        doc.to_string().hash(&mut h);
        let key = if g.is_empty() { "api/v1".to_string() } else { format!("apis/{g}/{v}") };
        let url = format!("/openapi/v3/{key}?hash={:016X}", h.finish());
        paths.insert(key, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}
