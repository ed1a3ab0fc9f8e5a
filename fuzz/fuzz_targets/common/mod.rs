//! Shared by the fuzz targets: a structured JSON generator biased towards the fields our rules
//! read (plain byte-level JSON rarely gets past the parser), and the example estate.
#![allow(dead_code)]

use std::sync::OnceLock;

use credential_core::estate::{Cluster, LoadOptions, MemoryEstate};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use serde_json::{Map, Value};

/// Keys the rules, mutations, plans and readiness checks look at.
pub const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "labels",
    "annotations",
    "uid",
    "resourceVersion",
    "deletionTimestamp",
    "finalizers",
    "spec",
    "status",
    "identityRef",
    "region",
    "kubeConfig",
    "key",
    "clusterDeployment",
    "clusterIdentities",
    "references",
    "group",
    "version",
    "nameFieldPath",
    "namespaceFieldPath",
    "credential",
    "template",
    "ready",
    "conditions",
    "type",
    "reason",
    "message",
    "clusterGVKs",
    "clusterIdentityKinds",
    "secretRef",
    "data",
    "stringData",
    "items",
    "scope",
    "names",
    "plural",
    "versions",
    "served",
    "storage",
    "providers",
    "k0rdent.mirantis.com/region",
    "k0rdent.mirantis.com/component",
    "k0rdent.mirantis.com/managed",
];

/// String values that steer into interesting branches.
pub const STRINGS: &[&str] = &[
    "",
    "k0rdent.mirantis.com/v1beta1",
    "k0rdent.mirantis.com",
    "v1beta1",
    "Credential",
    "Region",
    "ProviderInterface",
    "ClusterDeployment",
    "v1",
    "Secret",
    "infrastructure.cluster.x-k8s.io/v1beta2",
    "infrastructure.cluster.x-k8s.io",
    "v1beta2",
    "AWSClusterStaticIdentity",
    "AzureClusterIdentity",
    "AWSClusterRoleIdentity",
    "kcm-system",
    "default",
    "region1",
    "region2",
    "True",
    "False",
    "Unknown",
    "Ready",
    "spec.secretRef",
    "spec.clientSecret.name",
    "spec.clientSecret.namespace",
    "spec.sourceIdentityRef.name",
    ".spec",
    "spec..name",
    "spec.",
    "aws-cluster-identity",
    "aws-cluster-identity-cred",
    "kubeconfig",
    "value",
    "apiextensions.k8s.io/v1",
    "CustomResourceDefinition",
    "Namespaced",
    "Cluster",
    "kcm",
    "a-very-long-name-that-goes-past-the-sixty-three-character-label-value-limit-of-kubernetes",
    "ü/~0~1\u{0}\"\\",
    "2026-01-01T00:00:00Z",
];

fn string(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(3, 4)? { Ok(u.choose(STRINGS)?.to_string()) } else { Ok(<&str>::arbitrary_take(u)?.to_string()) }
}

/// Short-hand so the generator reads like the grammar.
trait TakeStr<'a>: Sized {
    fn arbitrary_take(u: &mut Unstructured<'a>) -> Result<Self>;
}
impl<'a> TakeStr<'a> for &'a str {
    fn arbitrary_take(u: &mut Unstructured<'a>) -> Result<Self> {
        let len = u.int_in_range(0..=24)?;
        let bytes = u.bytes(len.min(u.len()))?;
        Ok(std::str::from_utf8(bytes).unwrap_or("\u{fffd}"))
    }
}

fn key(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(7, 8)? { Ok(u.choose(KEYS)?.to_string()) } else { string(u) }
}

/// Any JSON value, at most `depth` levels deep, mappings keyed mostly by [`KEYS`].
pub fn value(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
    let pick = if depth == 0 { u.int_in_range(0..=4)? } else { u.int_in_range(0..=7)? };
    Ok(match pick {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.arbitrary::<i64>()?),
        3 | 4 => Value::String(string(u)?),
        5 => {
            let n = u.int_in_range(0..=3)?;
            Value::Array((0..n).map(|_| value(u, depth - 1)).collect::<Result<_>>()?)
        }
        _ => object(u, depth - 1)?,
    })
}

/// A mapping of up to six members.
pub fn object(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
    let n = u.int_in_range(0..=6)?;
    let mut m = Map::new();
    for _ in 0..n {
        m.insert(key(u)?, value(u, depth)?);
    }
    Ok(Value::Object(m))
}

/// A Kubernetes-shaped object: usually the right apiVersion/kind and a name, then anything.
pub fn k8s_object(u: &mut Unstructured<'_>, api_version: &str, kind: &str) -> Result<Value> {
    let mut obj = object(u, 4)?;
    let Some(m) = obj.as_object_mut() else { return Ok(obj) };
    if u.ratio(7, 8)? {
        m.insert("apiVersion".into(), Value::from(api_version));
        m.insert("kind".into(), Value::from(kind));
    }
    if u.ratio(7, 8)? {
        let mut meta = match m.remove("metadata") {
            Some(Value::Object(meta)) => meta,
            _ => Map::new(),
        };
        meta.insert("name".into(), Value::String(string(u)?));
        if u.ratio(1, 2)? {
            meta.insert("namespace".into(), Value::String(string(u)?));
        }
        m.insert("metadata".into(), Value::Object(meta));
    }
    Ok(obj)
}

/// The example estate (management + region1 + region2), loaded once.
pub fn example_estate() -> &'static MemoryEstate {
    static ESTATE: OnceLock<MemoryEstate> = OnceLock::new();
    ESTATE.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/estate");
        match credential_core::estate::load_dir(&dir, &LoadOptions::default()) {
            Ok(e) => e,
            // Fuzzing against an empty estate still exercises the rules; say why coverage is lower.
            Err(e) => {
                eprintln!("example estate not loaded ({e}); fuzzing against an empty estate");
                let mut e = MemoryEstate::default();
                e.add_cluster(Cluster::Region("region1".into()));
                e
            }
        }
    })
}
