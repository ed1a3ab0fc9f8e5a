//! The offline estate loader: `yaml::parse_documents` (and the JSON form) on arbitrary text, each
//! document inserted into a MemoryEstate (management, or a region picked by the input), then the
//! readers that walk it: `explain` for every Credential and `identity::plan`.
//! Invariants: no panic; an insert that reports success makes the object readable by get.
#![no_main]

use credential_core::estate::{Cluster, Estate, MemoryEstate};
use credential_core::gvk::Gvk;
use credential_core::yaml;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let docs = match yaml::parse_documents(text, "fuzz.yaml") {
        Ok(d) => d,
        Err(_) => match yaml::parse_json_documents(text, "fuzz.json") {
            Ok(d) => d.into_iter().map(|d| d.value).collect(),
            Err(_) => return,
        },
    };
    let mut estate = MemoryEstate::default();
    for (i, doc) in docs.into_iter().enumerate() {
        let cluster = if i % 3 == 2 { Cluster::Region("region1".into()) } else { Cluster::Management };
        let key = Gvk::of(&doc).zip(doc.pointer("/metadata/name").and_then(Value::as_str).map(String::from));
        let ns = doc.pointer("/metadata/namespace").and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from);
        if estate.insert(&cluster, doc) {
            let (gvk, name) = key.expect("an inserted object has a kind and a name");
            assert!(estate.get(&cluster, &gvk, ns.as_deref(), &name).is_some(), "{gvk:?} {ns:?}/{name}");
        }
    }
    for cred in estate.list(&Cluster::Management, &Gvk::credential(), None) {
        let ns = cred.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
        let name = cred.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        let _ = credential_core::readiness::explain(ns, name, &estate);
        let _ = credential_core::identity::plan(&cred, &estate);
    }
});
