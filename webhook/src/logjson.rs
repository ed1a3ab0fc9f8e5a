//! The JSON log line format (`--log-format json`): one object per line, shaped like
//! tracing-subscriber's own (`timestamp`, `level`, `fields`, `target`), except that a field whose
//! value is JSON array text (what [`crate::admission::json_list`] writes, e.g. the finding codes of a
//! decision) is written as a JSON array, not as a string holding one.
//!
//! The line is written straight from the event's fields (members in name order, strings escaped as
//! serde_json escapes them), byte for byte what building a `serde_json::Value` of it and printing that
//! gave, at a fraction of the cost: a decision line is written on the request's thread.

use std::fmt::{self, Write as _};
use std::ops::Range;

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter; see the module documentation.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLines;

/// The fields of one event, each value already as JSON text in `out`.
struct Fields {
    out: String,
    entries: Vec<(&'static str, Range<usize>)>,
    /// Scratch for text that is checked or escaped before it goes to `out`.
    raw: String,
}

impl Fields {
    fn push(&mut self, field: &Field, write: impl FnOnce(&mut String)) {
        let start = self.out.len();
        write(&mut self.out);
        self.entries.push((field.name(), start..self.out.len()));
    }

    /// Text is a string, unless it is JSON array text: then the array (printed compact).
    fn text(&mut self, field: &Field, text: &str) {
        let array = (text.starts_with('[') && text.ends_with(']'))
            .then(|| serde_json::from_str::<Value>(text).ok())
            .flatten()
            .filter(Value::is_array);
        self.push(field, |out| match array {
            Some(array) => {
                let _ = write!(out, "{array}");
            }
            None => {
                let _ = escape_into(out, text);
            }
        });
    }

    fn debug_text(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut raw = std::mem::take(&mut self.raw);
        raw.clear();
        let _ = write!(raw, "{value:?}");
        self.text(field, &raw);
        self.raw = raw;
    }

    /// `{"a":..,"b":..}`: members in name order, the last of a repeated name (what a map of them
    /// printed).
    fn write_object(&mut self, line: &mut impl fmt::Write) -> fmt::Result {
        self.entries.sort_by(|a, b| a.0.cmp(b.0));
        line.write_char('{')?;
        let mut first = true;
        for (i, (name, range)) in self.entries.iter().enumerate() {
            if self.entries.get(i + 1).is_some_and(|next| next.0 == *name) {
                continue;
            }
            if !first {
                line.write_char(',')?;
            }
            first = false;
            escape_into(line, name)?;
            line.write_char(':')?;
            line.write_str(&self.out[range.clone()])?;
        }
        line.write_char('}')
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, |out| {
            let _ = write!(out, "{}", Value::from(value));
        });
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, |out| {
            let _ = write!(out, "{value}");
        });
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, |out| {
            let _ = write!(out, "{value}");
        });
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, |out| out.push_str(if value { "true" } else { "false" }));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let text = value.to_string();
        self.push(field, |out| {
            let _ = escape_into(out, &text);
        });
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.debug_text(field, value);
    }
}

/// `text` as a JSON string, escaped exactly as serde_json escapes it (`"`, `\`, and control
/// characters: the short forms where JSON has one, else `\u00xx`).
fn escape_into(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.write_str(&text[start..i])?;
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.write_str("\\u00")?;
            out.write_char(char::from(HEX[usize::from(b >> 4)]))?;
            out.write_char(char::from(HEX[usize::from(b & 0xf)]))?;
        } else {
            out.write_str(short)?;
        }
        start = i + 1;
    }
    out.write_str(&text[start..])?;
    out.write_char('"')
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut fields =
            Fields { out: String::with_capacity(256), entries: Vec::with_capacity(16), raw: String::new() };
        event.record(&mut fields);
        let meta = event.metadata();
        // The members of the line in name order: fields, level, target, timestamp.
        writer.write_str("{\"fields\":")?;
        fields.write_object(&mut writer)?;
        writer.write_str(",\"level\":")?;
        escape_into(&mut writer, meta.level().as_str())?;
        writer.write_str(",\"target\":")?;
        escape_into(&mut writer, meta.target())?;
        writer.write_str(",\"timestamp\":")?;
        let mut timestamp = std::mem::take(&mut fields.raw);
        timestamp.clear();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        escape_into(&mut writer, &timestamp)?;
        writer.write_str("}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The formatter before lines were written directly: a `serde_json::Value` of the line, printed.
    struct ValueLines;

    struct ValueFields(serde_json::Map<String, Value>);

    impl ValueFields {
        fn text(&mut self, field: &Field, text: String) {
            let value = if text.starts_with('[') && text.ends_with(']') {
                match serde_json::from_str::<Value>(&text) {
                    Ok(array @ Value::Array(_)) => array,
                    _ => Value::String(text),
                }
            } else {
                Value::String(text)
            };
            self.0.insert(field.name().to_string(), value);
        }
    }

    impl Visit for ValueFields {
        fn record_f64(&mut self, field: &Field, value: f64) {
            self.0.insert(field.name().to_string(), Value::from(value));
        }
        fn record_i64(&mut self, field: &Field, value: i64) {
            self.0.insert(field.name().to_string(), Value::from(value));
        }
        fn record_u64(&mut self, field: &Field, value: u64) {
            self.0.insert(field.name().to_string(), Value::from(value));
        }
        fn record_bool(&mut self, field: &Field, value: bool) {
            self.0.insert(field.name().to_string(), Value::from(value));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.text(field, value.to_string());
        }
        fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
            self.0.insert(field.name().to_string(), Value::String(value.to_string()));
        }
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.text(field, format!("{value:?}"));
        }
    }

    impl<S, N> FormatEvent<S, N> for ValueLines
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        fn format_event(&self, _: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
            let mut fields = ValueFields(serde_json::Map::new());
            event.record(&mut fields);
            let meta = event.metadata();
            let line = serde_json::json!({
                "timestamp": "T",
                "level": meta.level().as_str(),
                "fields": Value::Object(fields.0),
                "target": meta.target(),
            });
            writeln!(writer, "{line}")
        }
    }

    /// Lines of `log` through `format`, with the timestamp replaced by `T`.
    fn lines<F>(format: F, log: impl Fn()) -> Vec<String>
    where
        F: FormatEvent<tracing_subscriber::Registry, tracing_subscriber::fmt::format::DefaultFields>
            + Send
            + Sync
            + 'static,
    {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(format)
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| match l.find(",\"timestamp\":") {
                Some(i) => format!("{},\"timestamp\":\"T\"}}", &l[..i]),
                None => l.to_string(),
            })
            .collect()
    }

    #[test]
    fn lines_are_byte_for_byte_what_the_value_printed() {
        let log = || {
            let error = std::io::Error::other("disk \"full\"\n");
            tracing::info!(
                webhook = "validate",
                uid = "a1b2",
                user = "system:serviceaccount:kcm-system:kcm \"quoted\" \\ back\tslash",
                name = "ünïcödé ✓",
                control = "\u{1}\u{8}\u{c}\u{1f}\u{7f}\r",
                findings = crate::admission::json_list(&["CRED004", "RGN014"]).as_str(),
                empty = crate::admission::json_list(&[]).as_str(),
                nested = "[{\"b\": 1, \"a\": [2, 3]}]",
                not_json = "[not json]",
                object_text = "{\"a\":1}",
                allowed = false,
                patch_ops = 3usize,
                negative = -7i64,
                ratio = 0.25f64,
                whole = 3.0f64,
                nan = f64::NAN,
                error = &error as &(dyn std::error::Error + 'static),
                debug = ?vec!["x", "y"],
                display = %"shown",
                "admission"
            );
            tracing::warn!(target: "other::target", zeta = 1u64, alpha = 2u64, "with {} args", 2);
            tracing::debug!("");
            tracing::error!(message = "a message field", uid = "u");
        };
        let want = lines(ValueLines, log);
        assert_eq!(want.len(), 4, "{want:?}");
        assert_eq!(lines(JsonLines, log), want);
    }

    #[test]
    fn list_fields_are_arrays_and_the_rest_keeps_its_type() {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt().event_format(JsonLines).with_writer(move || writer.clone()).finish();
        tracing::subscriber::with_default(subscriber, || {
            let codes = crate::admission::json_list(&["CRED004", "CRED010"]);
            tracing::info!(
                user = "alice",
                findings = codes.as_str(),
                allowed = false,
                n = 3u64,
                note = "[not json",
                "admission"
            );
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(text.trim()).unwrap();
        let f = &line["fields"];
        assert_eq!(f["findings"], serde_json::json!(["CRED004", "CRED010"]), "{line}");
        assert_eq!(
            (f["user"].as_str(), f["allowed"].as_bool(), f["n"].as_u64()),
            (Some("alice"), Some(false), Some(3))
        );
        assert_eq!(f["note"], "[not json");
        assert_eq!(f["message"], "admission");
        assert_eq!(line["level"], "INFO");
    }
}
