//! Every rule set over arbitrary objects: `rules::validate` and `mutate::mutate` for each kind and
//! operation, against the example estate with the old object stored in it.
//! Invariants: no panic; every finding has a code and a message; a mutation patch applies to the
//! object and re-running the mutation on the patched object adds nothing (idempotent).
#![no_main]

mod common;

use credential_core::estate::Cluster;
use credential_core::rules::{AdmissionInput, Operation, ResourceKind};
use libfuzzer_sys::arbitrary::{self, Unstructured};
use libfuzzer_sys::fuzz_target;

const OPS: [Operation; 4] = [Operation::Create, Operation::Update, Operation::Delete, Operation::Connect];

fn run(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let kind = *u.choose(&ResourceKind::ALL)?;
    let op = *u.choose(&OPS)?;
    let api_version = credential_core::K0RDENT_API_VERSION;
    let object = if u.ratio(5, 6)? { Some(common::k8s_object(u, api_version, kind.kind())?) } else { None };
    let old = if u.ratio(1, 2)? { Some(common::k8s_object(u, api_version, kind.kind())?) } else { None };
    let mut estate = common::example_estate().clone();
    // Arbitrary stored objects (the old one, and a few of any kind) reach the cross-object checks.
    if let Some(o) = &old {
        estate.insert(&Cluster::Management, o.clone());
    }
    for _ in 0..u.int_in_range(0..=3)? {
        let kinds = ["Credential", "Region", "ProviderInterface", "ClusterDeployment"];
        let kind = *u.choose(&kinds)?;
        let stored = common::k8s_object(u, api_version, kind)?;
        let cluster = if u.arbitrary()? { Cluster::Management } else { Cluster::Region("region1".into()) };
        estate.insert(&cluster, stored);
    }
    let name_owned = object
        .as_ref()
        .or(old.as_ref())
        .and_then(|o| o.pointer("/metadata/name"))
        .and_then(|n| n.as_str())
        .unwrap_or_default()
        .to_string();
    let ns_owned =
        object.as_ref().and_then(|o| o.pointer("/metadata/namespace")).and_then(|n| n.as_str()).map(String::from);
    let input = AdmissionInput {
        operation: op,
        kind,
        namespace: ns_owned.as_deref(),
        name: &name_owned,
        object: object.as_ref(),
        old_object: old.as_ref(),
    };
    for f in credential_core::rules::validate(&input, &estate) {
        assert!(!f.code.is_empty() && !f.message.is_empty(), "{f:?}");
    }
    let patch = credential_core::mutate::mutate(&input, &estate);
    if let Some(obj) = &object {
        let mut patched = obj.clone();
        json_patch::patch(&mut patched, &patch).unwrap_or_else(|e| panic!("patch {patch:?} does not apply: {e}"));
        let again = AdmissionInput { object: Some(&patched), ..input };
        let second = credential_core::mutate::mutate(&again, &estate);
        assert!(second.0.is_empty(), "not idempotent: {patch:?} then {second:?} on {obj}");
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
