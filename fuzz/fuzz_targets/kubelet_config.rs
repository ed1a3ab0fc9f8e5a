//! CredentialProviderConfig decoding: `decode_config` on arbitrary bytes (YAML or JSON), the
//! directory form (`decode_files` over two files split from the input), then validation.
//! Invariants: no panic; an error names the file it came from; validation of a decoded config
//! yields a verdict whose message is non-empty when invalid.
#![no_main]

use kubelet_providers::{ValidationOptions, Verdict, decode_config, decode_files, verdict};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let loaded = decode_config(data, "/etc/kubernetes/fuzz.yaml");
    if let Err(e) = &loaded {
        let msg = e.to_string();
        assert!(msg.contains("/etc/kubernetes/fuzz.yaml"), "error does not name the file: {msg}");
    }
    for gate in [true, false] {
        let opts = ValidationOptions { service_account_token_gate: gate };
        if let Verdict::Invalid { errors, message } = verdict(loaded.clone(), &opts) {
            assert!(!errors.is_empty() && !message.is_empty());
        }
    }
    // The 1.34 directory form: split at the first NUL into two files.
    if let Some(i) = data.iter().position(|&b| b == 0) {
        let files =
            vec![("d/10-a.yaml".to_string(), data[..i].to_vec()), ("d/20-b.json".to_string(), data[i + 1..].to_vec())];
        let _ = verdict(decode_files(&files), &ValidationOptions::default());
    }
});
