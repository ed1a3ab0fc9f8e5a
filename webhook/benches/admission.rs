//! criterion microbenchmarks of the webhook's transport-free path: one AdmissionReview body in, the
//! reply body out (decode, rules or mutation, encode, metrics), for each review the load runs replay,
//! at the smallest and largest estate of the scale sweep (see BENCHMARKS.md).
//! Run with `cargo bench -p credential-webhook` (bench/run.sh runs it for the report).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use credential_core::estate::{Cluster, MemoryEstate};
use credential_webhook::admission::{Admission, Webhook};
use credential_webhook::metrics::Metrics;
use credential_webhook::sink::NoopSink;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

use credential_e2e::fixtures;

fn estate(credentials: usize, regions: usize) -> MemoryEstate {
    let mut e = MemoryEstate::new(fixtures::SYS);
    for f in fixtures::estate(credentials, regions, false) {
        let cluster = f.region().map_or(Cluster::Management, |r| Cluster::Region(r.to_string()));
        e.add_cluster(cluster.clone());
        for d in f.docs {
            assert!(e.insert(&cluster, d), "fixture object without kind or name in {}", f.path);
        }
    }
    e
}

fn review(c: &mut Criterion) {
    for (credentials, regions) in [(10, 1), (10_000, 1_000)] {
        let admission =
            Admission::new(Arc::new(estate(credentials, regions)), Arc::new(NoopSink), Arc::new(Metrics::new()));
        let mut g = c.benchmark_group(format!("admission/{credentials}-credentials-{regions}-regions"));
        for r in fixtures::reviews() {
            let webhook = if r.path == "/mutate" { Webhook::Mutate } else { Webhook::Validate };
            let reply = admission.review(webhook, &r.body);
            let text = String::from_utf8_lossy(&reply);
            assert!(text.contains(&r.uid) && text.contains("\"allowed\":true"), "{}: {text}", r.name);
            g.bench_function(BenchmarkId::from_parameter(r.name), |b| {
                b.iter(|| admission.review(webhook, black_box(&r.body)))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, review);
criterion_main!(benches);
