//! A fixed loop of AdmissionReviews through `Admission::review` (no timing, no criterion): the
//! workload for instruction and allocation counts, which unlike times do not depend on what else
//! runs on the machine. bench/profile.sh runs it under `valgrind --tool=callgrind` and `--tool=dhat`.
//!
//! `review_loop [REVIEW] [N]`: REVIEW is a fixture name (tests/src/fixtures.rs `reviews()`) or `all`
//! (default), N the rounds (default 1000). The estate is the load runs' small one (10 Credentials,
//! 1 Region).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use credential_core::estate::{Cluster, MemoryEstate};
use credential_webhook::admission::{Admission, Webhook};
use credential_webhook::metrics::Metrics;
use credential_webhook::sink::NoopSink;

use credential_e2e::fixtures;

fn main() {
    // `cargo bench` passes `--bench`; only the positional arguments count.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let which = args.first().map_or("all", String::as_str);
    let rounds: usize = args.get(1).map_or(1000, |n| n.parse().expect("N is a number"));
    let mut estate = MemoryEstate::new(fixtures::SYS);
    for f in fixtures::estate(10, 1, false) {
        let cluster = f.region().map_or(Cluster::Management, |r| Cluster::Region(r.to_string()));
        estate.add_cluster(cluster.clone());
        for d in f.docs {
            assert!(estate.insert(&cluster, d), "fixture object without kind or name in {}", f.path);
        }
    }
    let admission = Admission::new(Arc::new(estate), Arc::new(NoopSink), Arc::new(Metrics::new()));
    let reviews: Vec<_> = fixtures::reviews().into_iter().filter(|r| which == "all" || r.name == which).collect();
    assert!(!reviews.is_empty(), "no fixture review named {which}");
    let mut bytes = 0;
    for _ in 0..rounds {
        for r in &reviews {
            let webhook = if r.path == "/mutate" { Webhook::Mutate } else { Webhook::Validate };
            bytes += black_box(admission.review(webhook, black_box(&r.body))).len();
        }
    }
    println!("{} reviews, {bytes} reply bytes", rounds * reviews.len());
}
