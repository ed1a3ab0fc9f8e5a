//! Image reference parsing and matching as the kubelet does it: normalize_image, parse_reference,
//! URL globs (`matches`, `urls_match_str`) and `providers_for` over a decoded config.
//! Invariants: no panic; normalising is idempotent; a normalised name parses as a reference with
//! that name and no tag or digest; a provider reported as matched names a glob that matches.
#![no_main]

use kubelet_providers::image::parse_reference;
use kubelet_providers::{decode_config, matches, normalize_image, providers_for, urls_match_str};
use libfuzzer_sys::arbitrary::{self, Unstructured};
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n\
- name: ecr\n  matchImages: ['*.dkr.ecr.*.amazonaws.com', '*.dkr.ecr.*.amazonaws.com.cn']\n  defaultCacheDuration: 12h\n  apiVersion: credentialprovider.kubelet.k8s.io/v1\n\
- name: gcr\n  matchImages: ['gcr.io', '*.gcr.io', '*.pkg.dev', 'docker.io/library/*', 'localhost:5000/a/*']\n  defaultCacheDuration: 1m\n  apiVersion: credentialprovider.kubelet.k8s.io/v1\n";

fn run(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let image: &str = u.arbitrary()?;
    let glob: &str = u.arbitrary()?;
    if let Ok(n) = normalize_image(image) {
        assert_eq!(normalize_image(&n).as_deref(), Ok(n.as_str()), "normalising {image:?} twice");
        let r = parse_reference(&n).unwrap_or_else(|e| panic!("{n:?} from {image:?} does not parse: {e}"));
        assert_eq!((r.name.as_str(), r.tag, r.digest), (n.as_str(), None, None));
    }
    let _ = parse_reference(image);
    let _ = matches(glob, image);
    let _ = urls_match_str(glob, image);
    if let Ok(config) = decode_config(CONFIG.as_bytes(), "fuzz.yaml") {
        for raw in [false, true] {
            if let Ok(report) = providers_for(&config, image, raw) {
                for p in report.providers.iter().filter(|p| p.matched) {
                    let glob = p.match_image.as_deref().unwrap_or_default();
                    assert!(matches(glob, &report.normalized), "{glob:?} vs {:?}", report.normalized);
                }
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
