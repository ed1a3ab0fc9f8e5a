//! The JSON log line format (`--log-format json`): one object per line, shaped like
//! tracing-subscriber's own (`timestamp`, `level`, `fields`, `target`), except that a field whose
//! value is JSON array text (what [`crate::admission::json_list`] writes, e.g. the finding codes of a
//! decision) is written as a JSON array, not as a string holding one.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter; see the module documentation.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLines;

struct Fields(Map<String, Value>);

impl Fields {
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

impl Visit for Fields {
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

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let meta = event.metadata();
        let line = serde_json::json!({
            "timestamp": timestamp,
            "level": meta.level().as_str(),
            "fields": Value::Object(fields.0),
            "target": meta.target(),
        });
        writeln!(writer, "{line}")
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
