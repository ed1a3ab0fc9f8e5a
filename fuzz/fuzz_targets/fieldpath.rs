//! The ProviderInterface field-path language: parse, get, get_str, set, json_pointer.
//! Invariants: a parsed path re-joins to its input; what get finds, the JSON pointer and get_str
//! find too; after a successful set, get returns the value written.
#![no_main]

mod common;

use credential_core::fieldpath::FieldPath;
use libfuzzer_sys::arbitrary::{self, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn run(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let raw: String = if u.ratio(1, 2)? {
        u.arbitrary()?
    } else {
        let n = u.int_in_range(1..=5)?;
        (0..n).map(|_| u.choose(common::KEYS).map(|s| s.to_string())).collect::<arbitrary::Result<Vec<_>>>()?.join(".")
    };
    let Ok(path) = FieldPath::parse(&raw) else { return Ok(()) };
    assert_eq!(path.segments().join("."), raw);
    assert_eq!(path.as_str(), raw);
    let mut obj = common::value(u, 5)?;
    let got = path.get(&obj).cloned();
    // The pointer also indexes arrays (`/0`), which field paths never do; where get finds a value
    // through mappings, the pointer must find the same one.
    if let Some(g) = &got {
        assert_eq!(obj.pointer(&path.json_pointer()), Some(g), "pointer {}", path.json_pointer());
    }
    if let Ok(s) = path.get_str(&obj) {
        assert_eq!(got.as_ref().and_then(Value::as_str), Some(s));
    }
    let new = common::value(u, 2)?;
    if path.set(&mut obj, new.clone()).is_ok() {
        assert_eq!(path.get(&obj), Some(&new));
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
