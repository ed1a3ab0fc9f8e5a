//! criterion microbenchmarks of credential-core's hot paths: each rule set, mutation (JSONPatch) and
//! identity planning, on the estate the load runs use (see BENCHMARKS.md).
//! Run with `cargo bench -p credential-core` (bench/run.sh runs it for the report).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use credential_core::estate::{Cluster, MemoryEstate};
use credential_core::rules::{AdmissionInput, AdmittedObject, Operation, ResourceKind};
use credential_core::{identity, mutate, rules};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::Value;

use credential_e2e::fixtures;

fn estate(credentials: usize, regions: usize) -> MemoryEstate {
    let mut e = MemoryEstate::new(fixtures::SYS);
    for f in fixtures::estate(credentials, regions, true) {
        let cluster = f.region().map_or(Cluster::Management, |r| Cluster::Region(r.to_string()));
        e.add_cluster(cluster.clone());
        for d in f.docs {
            assert!(e.insert(&cluster, d), "fixture object without kind or name in {}", f.path);
        }
    }
    e
}

/// The decoded `request` of each fixture review, by name.
fn requests() -> Vec<(&'static str, Value)> {
    fixtures::reviews()
        .into_iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            (r.name, v["request"].clone())
        })
        .collect()
}

/// A fixture request with its objects read as the webhook reads them.
struct Req {
    operation: Operation,
    kind: ResourceKind,
    namespace: Option<String>,
    name: String,
    object: Option<AdmittedObject<'static>>,
    old: Option<AdmittedObject<'static>>,
}

fn req(v: &Value) -> Req {
    let kind = match v["kind"]["kind"].as_str().unwrap() {
        "Credential" => ResourceKind::Credential,
        "Region" => ResourceKind::Region,
        "ProviderInterface" => ResourceKind::ProviderInterface,
        _ => ResourceKind::ClusterDeployment,
    };
    let admitted = |v: &Value| (!v.is_null()).then(|| AdmittedObject::from_value(v));
    Req {
        operation: Operation::parse(v["operation"].as_str().unwrap()).unwrap(),
        kind,
        namespace: v["namespace"].as_str().map(str::to_string),
        name: v["name"].as_str().unwrap().to_string(),
        object: admitted(&v["object"]),
        old: admitted(&v["oldObject"]),
    }
}

fn input(r: &Req) -> AdmissionInput<'_> {
    AdmissionInput {
        operation: r.operation,
        kind: r.kind,
        namespace: r.namespace.as_deref(),
        name: &r.name,
        object: r.object.as_ref(),
        old_object: r.old.as_ref(),
    }
}

fn cluster_deployment() -> Value {
    serde_json::json!({
        "apiVersion": fixtures::K0RDENT_AV, "kind": "ClusterDeployment",
        "metadata": {"name": "dev-1", "namespace": fixtures::SYS},
        "spec": {"template": "aws-standalone-cp-1-0-0", "credential": "cred-0", "config": {"region": "us-east-2"}}
    })
}

fn review_decoding(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    for r in fixtures::reviews() {
        g.bench_function(BenchmarkId::new("review-to-value", r.name), |b| {
            b.iter(|| serde_json::from_slice::<Value>(black_box(&r.body)).unwrap())
        });
    }
    g.finish();
}

fn rule_sets(c: &mut Criterion) {
    let reqs = requests();
    let cd = AdmittedObject::from_value(&cluster_deployment());
    for (credentials, regions) in [(10, 1), (10_000, 1_000)] {
        let e = estate(credentials, regions);
        let mut g = c.benchmark_group(format!("rules/{credentials}-credentials-{regions}-regions"));
        for (name, r) in reqs.iter().filter(|(n, _)| !n.ends_with("-mutate")) {
            let r = req(r);
            let inp = input(&r);
            g.bench_function(*name, |b| b.iter(|| rules::validate(black_box(&inp), &e)));
        }
        let cd_input = AdmissionInput {
            operation: Operation::Create,
            kind: ResourceKind::ClusterDeployment,
            namespace: Some(fixtures::SYS),
            name: "dev-1",
            object: Some(&cd),
            old_object: None,
        };
        g.bench_function("clusterdeployment-create", |b| b.iter(|| rules::validate(black_box(&cd_input), &e)));
        g.finish();
    }
}

fn mutation(c: &mut Criterion) {
    let e = estate(10, 1);
    let reqs = requests();
    let (_, r) = reqs.iter().find(|(n, _)| *n == "credential-create-mutate").unwrap();
    let r = req(r);
    let inp = input(&r);
    assert!(!mutate::mutate(&inp, &e).0.is_empty(), "the fixture must need a patch");
    let mut g = c.benchmark_group("mutate");
    g.bench_function("credential-create", |b| b.iter(|| mutate::mutate(black_box(&inp), &e)));
    g.bench_function("credential-create+encode", |b| {
        b.iter(|| serde_json::to_vec(&mutate::mutate(black_box(&inp), &e)).unwrap())
    });
    g.finish();
}

fn planning(c: &mut Criterion) {
    let mut g = c.benchmark_group("identity-plan");
    for (credentials, regions) in [(10, 1), (10_000, 1_000)] {
        let e = estate(credentials, regions);
        let cred = fixtures::credential("cred-0", Some("region-0"), "aws-id-0", "AWS static keys", true);
        let p = identity::plan(&cred, &e);
        assert!(p.objects().count() >= 2, "the plan copies the identity and its Secret: {p:?}");
        g.bench_function(BenchmarkId::new("regional-aws-static", format!("{credentials}-credentials")), |b| {
            b.iter(|| identity::plan(black_box(&cred), &e))
        });
    }
    g.finish();
}

criterion_group!(benches, review_decoding, rule_sets, mutation, planning);
criterion_main!(benches);
