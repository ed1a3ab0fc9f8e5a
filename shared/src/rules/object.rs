//! One object of an admission request as the API server sent it: its JSON text, read once into the
//! parts rules look at (`metadata`, `spec` as text) and on demand into the typed model of its kind.
//!
//! Why not a `serde_json::Value`: building a tree of maps and strings for the whole object (managed
//! fields, last-applied annotation and all) cost more than every rule together, while the rules read
//! a few fields. A `Value` is still built, once, where a rule needs one: when a typed read fails (the
//! finding then names the field exactly as before). Mutation reads members as text ([`JsonText`]).

use std::borrow::Cow;
use std::ops::Range;
use std::sync::OnceLock;

use serde::de::{DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::finding::{Code, Finding};
use crate::rules::support::parse;

/// An object of an AdmissionReview (`request.object` or `request.oldObject`).
#[derive(Debug)]
pub struct AdmittedObject<'a> {
    text: Cow<'a, str>,
    /// Where `metadata` and `spec` are in `text` (each when present, `null` too); `None` when the
    /// text is not an object with at most one of each, so the accessors read the `Value` instead and
    /// say what they always said about such input.
    head: OnceLock<Option<Head>>,
    value: OnceLock<Value>,
}

/// Where `metadata` and `spec` are in the text.
#[derive(Debug)]
struct Head {
    metadata: Option<Range<usize>>,
    spec: Option<Range<usize>>,
}

/// The `metadata` and `spec` members of an object as serde reads them (refused when repeated).
#[derive(Deserialize)]
struct HeadMembers<'t> {
    #[serde(borrow, default, deserialize_with = "present")]
    metadata: Option<&'t RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    spec: Option<&'t RawValue>,
}

impl<'a> AdmittedObject<'a> {
    /// The object whose JSON text is `raw` (borrowed from the request body).
    pub fn from_raw(raw: &'a RawValue) -> Self {
        Self::from_text(Cow::Borrowed(raw.get()), OnceLock::new())
    }

    /// An object already held as a `Value` (offline lint, tests).
    pub fn from_value(value: &Value) -> AdmittedObject<'static> {
        AdmittedObject::from_text(Cow::Owned(value.to_string()), OnceLock::from(value.clone()))
    }

    fn from_text(text: Cow<'a, str>, value: OnceLock<Value>) -> Self {
        AdmittedObject { text, head: OnceLock::new(), value }
    }

    /// Whether the text is a JSON object (serde reads a struct from an array too).
    fn is_object(&self) -> bool {
        self.text.trim_start().starts_with('{')
    }

    /// Where `metadata` and `spec` are, found on first use (a typed read alone does not need it).
    fn head(&self) -> Option<&Head> {
        let text = &*self.text;
        let read = || {
            let m = serde_json::from_str::<HeadMembers<'_>>(text).ok()?;
            Some(Head { metadata: m.metadata.map(|r| range_in(text, r)), spec: m.spec.map(|r| range_in(text, r)) })
        };
        // The scan settles the usual object; serde reads the rest (escaped or repeated member names).
        self.head.get_or_init(|| if self.is_object() { scan_head(text).unwrap_or_else(read) } else { None }).as_ref()
    }

    /// The JSON text as sent.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The whole object as a `Value`, built on first use.
    pub fn value(&self) -> &Value {
        self.value.get_or_init(|| parse_value(&self.text))
    }

    /// A `Value` of the object to keep: a copy of the one built already, else parsed from the text
    /// without keeping one here.
    pub fn to_value(&self) -> Value {
        match self.value.get() {
            Some(v) => v.clone(),
            None => parse_value(&self.text),
        }
    }

    /// The object as a `Value`, consuming it (no copy when it was built already).
    pub fn into_value(self) -> Value {
        match self.value.into_inner() {
            Some(v) => v,
            None => parse_value(&self.text),
        }
    }

    /// Reads the typed model of the object; on failure a deny finding naming the offending field,
    /// exactly as [`parse`] words it for the `Value`.
    pub fn parse<T: DeserializeOwned>(&self, kind: &str, code: Code) -> Result<T, Finding> {
        if self.is_object()
            && let Ok(t) = serde_json::from_str::<T>(&self.text)
        {
            return Ok(t);
        }
        parse(self.value(), kind, code)
    }

    /// Reads the typed `spec`, `None` when absent, null or not of that shape.
    pub fn spec<T: DeserializeOwned>(&self) -> Option<T> {
        match self.parts() {
            Some((_, spec)) => serde_json::from_str(spec?).ok(),
            None => self.value().get("spec").and_then(|s| T::deserialize(s).ok()),
        }
    }

    /// The non-empty string at `path` (object members only, like a JSON pointer without indexes).
    pub fn str_at(&self, path: &[&str]) -> Option<Cow<'_, str>> {
        self.at(path)?.as_str().filter(|s| !s.is_empty())
    }

    /// The value at `path` (object members only, like a JSON pointer without indexes) as JSON text,
    /// `None` when a member on the way is absent or not an object; what `Value::pointer` finds, a
    /// `null` too, without building a `Value`.
    pub fn at(&self, path: &[&str]) -> Option<JsonText<'_>> {
        let whole = JsonText(&self.text);
        let Some((first, rest)) = path.split_first() else { return Some(whole) };
        // `metadata` and `spec` are located once per object; other members are looked up in the text
        // (which also answers as the `Value` does when the head could not be read: last duplicate wins,
        // no members in a non-object).
        let mut v = match (self.parts(), *first) {
            (Some((metadata, _)), "metadata") => JsonText(metadata?),
            (Some((_, spec)), "spec") => JsonText(spec?),
            _ => whole.get(first)?,
        };
        for key in rest {
            v = v.get(key)?;
        }
        Some(v)
    }

    /// Whether `metadata.deletionTimestamp` is set (the object is being deleted).
    pub fn is_deleting(&self) -> bool {
        self.at(&["metadata", "deletionTimestamp"]).is_some_and(JsonText::is_set)
    }

    /// Whether `spec` is the same in both objects (absent on both counts as the same).
    pub fn same_spec(&self, other: &AdmittedObject<'_>) -> bool {
        match (self.parts(), other.parts()) {
            // Equal text is an equal value; different text may still be one (key order, spacing), so
            // the two specs (not the whole objects) are compared as values.
            (Some((_, Some(a))), Some((_, Some(b)))) => {
                a == b || serde_json::from_str::<Value>(a).ok() == serde_json::from_str::<Value>(b).ok()
            }
            // Absent on both is the same; absent on one only is not. Unreadable heads ask the `Value`.
            (Some((_, a)), Some((_, b))) => a.is_none() && b.is_none(),
            _ => self.value().get("spec") == other.value().get("spec"),
        }
    }

    /// `(metadata, spec)` texts, or `None` when the object's members could not be located.
    fn parts(&self) -> Option<(Option<&str>, Option<&str>)> {
        let head = self.head()?;
        let part = |r: &Option<Range<usize>>| r.clone().map(|r| &self.text[r]);
        Some((part(&head.metadata), part(&head.spec)))
    }
}

/// The JSON text of one value inside an [`AdmittedObject`] (see [`AdmittedObject::at`]): members and
/// strings read straight from the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonText<'t>(&'t str);

impl<'t> JsonText<'t> {
    /// Member `key` (the last one if repeated, as a `Value` keeps); `None` when absent or this is not
    /// an object.
    pub fn get(self, key: &str) -> Option<JsonText<'t>> {
        member(self.0, key).map(JsonText)
    }

    /// Members `keys`, in one walk over this object (see [`JsonText::get`]); all `None` when this is
    /// not an object.
    pub fn get_many<const N: usize>(self, keys: [&str; N]) -> [Option<JsonText<'t>>; N] {
        members(self.0, keys).unwrap_or([None; N]).map(|m| m.map(JsonText))
    }

    /// Whether this is set as a timestamp is (neither `null` nor empty): `metadata.deletionTimestamp`.
    pub fn is_set(self) -> bool {
        !matches!(self.0, "null" | "\"\"")
    }

    pub fn is_object(self) -> bool {
        self.0.trim_start().starts_with('{')
    }

    /// The string this is, `None` when it is not a string (borrowed unless it has escapes).
    pub fn as_str(self) -> Option<Cow<'t, str>> {
        match serde_json::from_str::<&str>(self.0) {
            Ok(s) => Some(Cow::Borrowed(s)),
            Err(_) => serde_json::from_str::<String>(self.0).ok().map(Cow::Owned),
        }
    }

    /// The JSON text as sent.
    pub fn text(self) -> &'t str {
        self.0
    }
}

/// Where `metadata` and `spec` are in `text` (see [`scan_members`]); `None` when serde must say.
fn scan_head(text: &str) -> Option<Option<Head>> {
    let [metadata, spec] = scan_members(text, ["metadata", "spec"], true)?;
    Some(Some(Head { metadata, spec }))
}

/// Where each of `keys` is among the top-level members of `text`, JSON already read as valid (the
/// review was decoded, or the text printed from a `Value`): a scan that skips strings with a
/// vectorised search, several times faster than serde walking the same text. A repeated name
/// counts its last value, or with `refuse_repeats` (what a derived struct does) leaves the answer
/// to serde. `None` when the scan cannot be sure of serde's answer: not an object, a member name
/// with an escape, a repeat refused.
fn scan_members<const N: usize>(
    text: &str,
    keys: [&str; N],
    refuse_repeats: bool,
) -> Option<[Option<Range<usize>>; N]> {
    let b = text.as_bytes();
    let mut found = [const { None }; N];
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return Some(found);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(b, i)?;
        let key = &b[i + 1..key_end - 1];
        if key.contains(&b'\\') {
            return None;
        }
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_ws(b, i + 1);
        let end = value_end(b, start)?;
        if let Some(k) = keys.iter().position(|k| k.as_bytes() == key) {
            if refuse_repeats && found[k].is_some() {
                return None;
            }
            found[k] = Some(start..end);
        }
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return Some(found),
            _ => return None,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The index after the string that opens at `b[start]` (a `"`).
fn string_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        i += memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        if b[i] == b'"' {
            return Some(i + 1);
        }
        i += 2; // an escape: `\` and the character it escapes
    }
}

/// The index after the value that starts at `b[start]`.
fn value_end(b: &[u8], start: usize) -> Option<usize> {
    match b.get(start)? {
        b'"' => string_end(b, start),
        b'{' | b'[' => {
            let (mut depth, mut i) = (0usize, start);
            loop {
                match b.get(i)? {
                    b'"' => {
                        i = string_end(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        // A number, `true`, `false` or `null`: up to the next delimiter.
        _ => {
            let len = b[start..].iter().position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'));
            Some(start + len.unwrap_or(b.len() - start))
        }
    }
}

/// Reads a member that is there, `null` too (an `Option` field alone would read `null` as absent).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(d).map(Some)
}

fn parse_value(text: &str) -> Value {
    // The text was read as JSON already (the review decoded), so this does not fail; `Null` if it did.
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Where `part` (a slice of `text`) starts and ends in `text`.
fn range_in(text: &str, part: &RawValue) -> Range<usize> {
    let start = part.get().as_ptr() as usize - text.as_ptr() as usize;
    start..start + part.get().len()
}

/// The JSON text of member `key` of the object `text` (the last one if repeated, as a `Value` keeps),
/// `None` when absent or `text` is not an object.
fn member<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    let [found] = members(text, [key])?;
    found
}

/// The JSON text of each of `keys` in the object `text`, found in one walk over it (as [`member`]
/// finds each); `None` when `text` is not an object.
fn members<'t, const N: usize>(text: &'t str, keys: [&str; N]) -> Option<[Option<&'t str>; N]> {
    match scan_members(text, keys, false) {
        Some(found) => Some(found.map(|r| r.map(|r| &text[r]))),
        None => members_by_serde(text, keys),
    }
}

/// [`members`] as serde reads them (escaped member names, text that is not an object).
fn members_by_serde<'t, const N: usize>(text: &'t str, keys: [&str; N]) -> Option<[Option<&'t str>; N]> {
    struct Members<'k, const N: usize>([&'k str; N]);
    impl<'de, const N: usize> Visitor<'de> for Members<'_, N> {
        type Value = [Option<&'de str>; N];
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = [None; N];
            while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                match self.0.iter().position(|want| *want == k) {
                    Some(i) => found[i] = Some(map.next_value::<&'de RawValue>()?.get()),
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(found)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    (&mut de).deserialize_map(Members(keys)).ok()
}

/// A member name, borrowed from the text unless it has escapes (serde's own `Cow<str>` always copies).
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Credential;
    use serde_json::json;

    fn raw(v: &Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(v).unwrap()
    }

    #[test]
    fn reads_members_without_a_value() {
        let v = json!({"metadata": {"name": "c", "deletionTimestamp": "2026-01-01T00:00:00Z"},
                       "spec": {"region": "r\"1", "identityRef": {"kind": "Secret"}}});
        let r = raw(&v);
        let o = AdmittedObject::from_raw(&r);
        assert_eq!(o.str_at(&["spec", "region"]).as_deref(), Some("r\"1"));
        assert_eq!(o.str_at(&["spec", "identityRef", "kind"]).as_deref(), Some("Secret"));
        assert_eq!(o.str_at(&["spec", "missing"]), None);
        assert!(o.is_deleting());
        assert!(o.value.get().is_none(), "no Value built for member reads");
        let c: Credential = o.parse("Credential", "X").unwrap();
        assert_eq!(c.region(), Some("r\"1"));
    }

    #[test]
    fn answers_as_the_value_does() {
        for v in [
            json!({"metadata": {"deletionTimestamp": null}}),
            json!({"metadata": {"deletionTimestamp": ""}}),
            json!({"metadata": {"deletionTimestamp": 5}}),
            json!({"metadata": 5, "spec": {"region": ""}}),
            json!({"metadata": null, "spec": null}),
            json!({}),
            json!([1, 2]),
            json!("text"),
        ] {
            let r = raw(&v);
            let o = AdmittedObject::from_raw(&r);
            assert_eq!(o.is_deleting(), crate::rules::support::is_deleting(&v), "{v}");
            let want = v.pointer("/spec/region").and_then(Value::as_str).filter(|s| !s.is_empty());
            assert_eq!(o.str_at(&["spec", "region"]).as_deref(), want, "{v}");
            for path in [&["metadata"][..], &["spec"], &["spec", "region"], &["metadata", "deletionTimestamp"]] {
                let pointer = format!("/{}", path.join("/"));
                let got = o.at(path).map(|t| serde_json::from_str::<Value>(t.text()).unwrap());
                assert_eq!(got.as_ref(), v.pointer(&pointer), "{v} at {pointer}");
            }
            let typed = o.parse::<Credential>("Credential", "X").map_err(|f| f.message);
            assert_eq!(typed, parse::<Credential>(&v, "Credential", "X").map_err(|f| f.message), "{v}");
        }
    }

    #[test]
    fn the_scan_finds_what_serde_finds() {
        // What serde reads, (metadata, spec) texts; None when it refuses.
        fn by_serde(text: &str) -> Option<(Option<&str>, Option<&str>)> {
            let m = serde_json::from_str::<HeadMembers<'_>>(text).ok()?;
            Some((m.metadata.map(RawValue::get), m.spec.map(RawValue::get)))
        }
        let texts = [
            r#"{}"#,
            r#" { } "#,
            r#"{"metadata":{"name":"c"},"spec":{"region":"r"}}"#,
            "{ \"kind\" : \"Credential\" ,\n\t\"metadata\" :\r {\"a\": [1, {\"b\": \"}]\"}]} , \"spec\": null }",
            r#"{"spec":"text with \" quote and \\ and }{ ][","metadata":5,"status":{"x":[[],{}]}}"#,
            r#"{"metadata":{"annotations":{"last":"{\"spec\":{\"a\":1}}\n"}},"spec":[true,false,null,-1.5e3]}"#,
            r#"{"n":-0.5,"t":true,"f":false,"z":null,"spec":12,"metadata":"m"}"#,
            r#"{"spec":{},"spec":{}}"#,
            r#"{"metadata":1,"meta\u0064ata":2}"#,
            r#"{"sp\u0065c":{"a":1}}"#,
            r#"{"a\\":1,"spec":2}"#,
            r#"{"\"":"x","spec":"\\"}"#,
        ];
        for text in texts {
            serde_json::from_str::<Value>(text).unwrap();
            let want = by_serde(text);
            if let Some(Some(head)) = scan_head(text) {
                let got = (head.metadata.map(|r| &text[r]), head.spec.map(|r| &text[r]));
                assert_eq!(Some(got), want, "{text}");
            }
            let o = AdmittedObject::from_text(Cow::Borrowed(text), OnceLock::new());
            assert_eq!(o.parts(), want, "{text}");
        }
        // Members of any object: the last of a repeated name, as the Value keeps.
        for text in
            texts.iter().chain(&[r#"{"a":1,"a":{"b":2},"c":"\u0061"}"#, r#"{"\u0061":1,"a":2}"#, "[1]", "\"a\""])
        {
            let keys = ["a", "metadata", "spec", "c"];
            assert_eq!(members(text, keys), members_by_serde(text, keys), "{text}");
        }
        assert_eq!(members(r#"{"a":1,"a":{"b":2}}"#, ["a"]), Some([Some(r#"{"b":2}"#)]));
        // The usual object is settled by the scan alone; escaped or repeated names go to serde.
        assert!(matches!(scan_head(texts[3]), Some(Some(_))));
        assert!(scan_head(texts[7]).is_none() && scan_head(texts[8]).is_none());
        // The fixtures' objects, as the API server sends them.
        for review in stored_like_objects() {
            let text = review.to_string();
            let Some(Some(head)) = scan_head(&text) else { panic!("not scanned: {text}") };
            let got = (head.metadata.map(|r| &text[r]), head.spec.map(|r| &text[r]));
            assert_eq!(Some(got), by_serde(&text), "{text}");
        }
    }

    /// Objects shaped like a stored Credential (managed fields, last-applied annotation, status).
    fn stored_like_objects() -> Vec<Value> {
        vec![
            json!({"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "Credential",
                "metadata": {"name": "c", "namespace": "kcm-system",
                    "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                        "{\"apiVersion\":\"k0rdent.mirantis.com/v1beta1\",\"spec\":{\"region\":\"r\"}}\n"},
                    "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {".": {}, "f:region": {}}}}]},
                "spec": {"region": "r", "identityRef": {"kind": "Secret", "name": "s"}},
                "status": {"ready": true, "conditions": [{"type": "Ready", "status": "True"}]}}),
            json!({"spec": {"clusterIdentities": [{"group": "g", "version": "v", "kind": "K"}]}, "metadata": {}}),
        ]
    }

    #[test]
    fn same_spec_compares_values_not_text() {
        let a = raw(&json!({"spec": {"a": 1, "b": [1, 2]}}));
        let b = AdmittedObject::from_value(&json!({"spec": {"b": [1, 2], "a": 1}}));
        let c = raw(&json!({"spec": {"a": 2}}));
        let none = raw(&json!({"metadata": {}}));
        let (a, c, none) =
            (AdmittedObject::from_raw(&a), AdmittedObject::from_raw(&c), AdmittedObject::from_raw(&none));
        assert!(a.same_spec(&b) && b.same_spec(&a));
        assert!(!a.same_spec(&c) && !a.same_spec(&none));
        assert!(none.same_spec(&none));
        let spaced = RawValue::from_string(r#"{"spec": {"a" : 1, "b":[1,2]}}"#.to_string()).unwrap();
        assert!(AdmittedObject::from_raw(&spaced).same_spec(&a));
    }
}
