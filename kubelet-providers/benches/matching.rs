//! criterion microbenchmarks of the kubelet image credential provider rules: decoding a config and
//! finding the providers an image runs (see BENCHMARKS.md). Run with
//! `cargo bench -p kubelet-providers` (bench/run.sh runs it for the report).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const KUBELET_CONFIG: &str = r#"
apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
- name: ecr-credential-provider
  apiVersion: credentialprovider.kubelet.k8s.io/v1
  defaultCacheDuration: 12h
  matchImages:
  - "*.dkr.ecr.*.amazonaws.com"
  - "*.dkr.ecr.*.amazonaws.com.cn"
  - "*.dkr.ecr-fips.*.amazonaws.com"
- name: acr-credential-provider
  apiVersion: credentialprovider.kubelet.k8s.io/v1
  defaultCacheDuration: 10m
  matchImages:
  - "*.azurecr.io"
  - "*.azurecr.cn"
  - "*.azurecr.de"
  - "*.azurecr.us"
- name: gcr-credential-provider
  apiVersion: credentialprovider.kubelet.k8s.io/v1
  defaultCacheDuration: 1m
  matchImages:
  - "gcr.io"
  - "*.gcr.io"
  - "*.pkg.dev"
  - "registry.example.com:5000/team-*"
"#;

fn image_matching(c: &mut Criterion) {
    let config =
        kubelet_providers::decode_config(KUBELET_CONFIG.as_bytes(), "/etc/kubernetes/credential-providers.yaml")
            .unwrap();
    let mut g = c.benchmark_group("kubelet");
    g.bench_function("decode-config", |b| {
        b.iter(|| {
            kubelet_providers::decode_config(black_box(KUBELET_CONFIG.as_bytes()), "/etc/kubernetes/cp.yaml").unwrap()
        })
    });
    for image in [
        "nginx:1.25",
        "123456789012.dkr.ecr.us-east-2.amazonaws.com/team/app:v1",
        "europe-west1-docker.pkg.dev/proj/repo/img@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ] {
        let report = kubelet_providers::providers_for(&config, image, false).unwrap();
        assert_eq!(report.providers.len(), 3);
        g.bench_function(BenchmarkId::new("providers-for", image.split('/').next().unwrap_or(image)), |b| {
            b.iter(|| kubelet_providers::providers_for(&config, black_box(image), false).unwrap())
        });
    }
    g.bench_function("normalize-image", |b| {
        b.iter(|| kubelet_providers::normalize_image(black_box("nginx:1.25")).unwrap())
    });
    g.finish();
}

criterion_group!(benches, image_matching);
criterion_main!(benches);
