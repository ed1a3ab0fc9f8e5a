//! Go formatting the kubelet's messages depend on: `strconv.Quote` (`%q`), apimachinery
//! `field.Error` rendering and `utilerrors.Aggregate` joining. Reproduced so that our messages are
//! byte-for-byte what an operator sees in the kubelet log.

use std::fmt;

/// Go `strconv.Quote` over raw bytes (hosts and paths decoded from `%XX` may not be UTF-8).
pub fn quote_bytes(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut i = 0;
    while i < s.len() {
        let (rune, width) = decode_rune(&s[i..]);
        match rune {
            None => {
                out.push_str(&format!("\\x{:02x}", s[i]));
            }
            Some(c) => push_quoted_char(&mut out, c),
        }
        i += width;
    }
    out.push('"');
    out
}

/// Go `strconv.Quote` for a UTF-8 string.
pub fn quote(s: &str) -> String {
    quote_bytes(s.as_bytes())
}

fn push_quoted_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        c if is_go_print(c) => out.push(c),
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

/// Approximates Go `unicode.IsPrint`: graphic characters plus ASCII space. Rust's std has no
/// general-category tables, so the non-printable set is the control, separator, format and
/// private-use ranges that realistically show up in configuration files.
fn is_go_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c as u32,
        0xAD | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x2064 | 0xFEFF | 0xFFF9..=0xFFFB
        | 0xE000..=0xF8FF | 0xFFFE | 0xFFFF)
}

/// Decodes one UTF-8 scalar like Go `utf8.DecodeRune`: `None` with width 1 for an invalid byte.
pub(crate) fn decode_rune(s: &[u8]) -> (Option<char>, usize) {
    let Some(&first) = s.first() else {
        return (None, 0);
    };
    let width = match first {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return (None, 1),
    };
    if s.len() < width {
        return (None, 1);
    }
    match std::str::from_utf8(&s[..width]) {
        Ok(text) => (text.chars().next(), width),
        Err(_) => (None, 1),
    }
}

/// The apimachinery `field.ErrorType`s the kubelet's validator emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// `PATH: Required value[: detail]`
    Required,
    /// `PATH: Invalid value: VALUE: detail` (VALUE already rendered, e.g. `"x"` or `["a","b"]`)
    Invalid { value: String },
    /// `PATH: Duplicate value: VALUE`
    Duplicate { value: String },
    /// `PATH: Unsupported value: VALUE: supported values: "a", "b"`
    Unsupported { value: String, supported: Vec<String> },
    /// `PATH: Forbidden: detail`
    Forbidden,
}

/// One validation error, rendered exactly like apimachinery's `field.Error.Error()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Field path without indexes, e.g. `providers.matchImages` (that is what the kubelet prints).
    pub field: String,
    pub kind: FieldErrorKind,
    pub detail: String,
}

impl FieldError {
    pub fn required(field: &str, detail: &str) -> Self {
        FieldError { field: field.to_string(), kind: FieldErrorKind::Required, detail: detail.to_string() }
    }

    /// `value` is a Go string: it is rendered `%q`-quoted.
    pub fn invalid(field: &str, value: &str, detail: &str) -> Self {
        FieldError {
            field: field.to_string(),
            kind: FieldErrorKind::Invalid { value: quote(value) },
            detail: detail.into(),
        }
    }

    /// `rendered` is the value already rendered (JSON for non-string values since Kubernetes 1.34).
    pub fn invalid_rendered(field: &str, rendered: String, detail: &str) -> Self {
        FieldError {
            field: field.to_string(),
            kind: FieldErrorKind::Invalid { value: rendered },
            detail: detail.into(),
        }
    }

    pub fn duplicate(field: &str, value: &str) -> Self {
        FieldError {
            field: field.to_string(),
            kind: FieldErrorKind::Duplicate { value: quote(value) },
            detail: String::new(),
        }
    }

    pub fn unsupported(field: &str, value: &str, supported: &[&str]) -> Self {
        FieldError {
            field: field.to_string(),
            kind: FieldErrorKind::Unsupported {
                value: quote(value),
                supported: supported.iter().map(|s| s.to_string()).collect(),
            },
            detail: String::new(),
        }
    }

    pub fn forbidden(field: &str, detail: &str) -> Self {
        FieldError { field: field.to_string(), kind: FieldErrorKind::Forbidden, detail: detail.to_string() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.field)?;
        let detail = match &self.kind {
            FieldErrorKind::Required => {
                f.write_str("Required value")?;
                self.detail.clone()
            }
            FieldErrorKind::Forbidden => {
                f.write_str("Forbidden")?;
                self.detail.clone()
            }
            FieldErrorKind::Invalid { value } => {
                write!(f, "Invalid value: {value}")?;
                self.detail.clone()
            }
            FieldErrorKind::Duplicate { value } => {
                write!(f, "Duplicate value: {value}")?;
                self.detail.clone()
            }
            FieldErrorKind::Unsupported { value, supported } => {
                write!(f, "Unsupported value: {value}")?;
                if supported.is_empty() {
                    String::new()
                } else {
                    let quoted: Vec<String> = supported.iter().map(|s| quote(s)).collect();
                    format!("supported values: {}", quoted.join(", "))
                }
            }
        };
        if !detail.is_empty() {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

/// `utilerrors.NewAggregate(errs).Error()`: identical messages collapse, one message is printed
/// bare, several are joined as `[e1, e2]`.
pub fn aggregate<T: fmt::Display>(errs: &[T]) -> String {
    let msgs = dedup_messages(errs);
    match msgs.len() {
        0 => String::new(),
        1 => msgs.into_iter().next().unwrap_or_default(),
        _ => format!("[{}]", msgs.join(", ")),
    }
}

/// Messages in emission order with exact repeats removed (what the aggregate prints).
pub fn dedup_messages<T: fmt::Display>(errs: &[T]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for e in errs {
        let msg = e.to_string();
        if seen.insert(msg.clone()) {
            out.push(msg);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_go_strconv_quote() {
        let cases: &[(&[u8], &str)] = &[
            (b"foo/../bar", r#""foo/../bar""#),
            (b"a\"b\\c", r#""a\"b\\c""#),
            (b"tab\there\n", r#""tab\there\n""#),
            (b"\x00\x1b\x7f", r#""\x00\x1b\x7f""#),
            (b"\xff\xfe", r#""\xff\xfe""#),
            ("caf\u{e9}".as_bytes(), "\"caf\u{e9}\""),
            ("\u{a0}\u{feff}".as_bytes(), r#""\u00a0\ufeff""#),
            (b"%in", r#""%in""#),
        ];
        for (input, want) in cases {
            assert_eq!(quote_bytes(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn field_errors_render_like_apimachinery() {
        let cases = [
            (
                FieldError::required("providers", "at least 1 item in plugins is required"),
                "providers: Required value: at least 1 item in plugins is required",
            ),
            (FieldError::required("providers.apiVersion", ""), "providers.apiVersion: Required value"),
            (
                FieldError::invalid("providers.name", "foo/../bar", "provider name cannot contain '/'"),
                r#"providers.name: Invalid value: "foo/../bar": provider name cannot contain '/'"#,
            ),
            (FieldError::duplicate("providers.name", "foobar"), r#"providers.name: Duplicate value: "foobar""#),
            (
                FieldError::unsupported("providers.tokenAttributes.cacheType", "x", &["ServiceAccount", "Token"]),
                r#"providers.tokenAttributes.cacheType: Unsupported value: "x": supported values: "ServiceAccount", "Token""#,
            ),
            (FieldError::forbidden("providers.tokenAttributes", "nope"), "providers.tokenAttributes: Forbidden: nope"),
            (
                FieldError::invalid_rendered("providers.tokenAttributes", r#"["k"]"#.into(), "d"),
                r#"providers.tokenAttributes: Invalid value: ["k"]: d"#,
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn aggregate_joins_and_deduplicates() {
        let a = FieldError::required("a", "");
        let b = FieldError::required("b", "");
        assert_eq!(aggregate::<FieldError>(&[]), "");
        assert_eq!(aggregate(std::slice::from_ref(&a)), "a: Required value");
        assert_eq!(aggregate(&[a.clone(), a.clone()]), "a: Required value");
        assert_eq!(aggregate(&[a.clone(), b.clone(), a]), "[a: Required value, b: Required value]");
    }
}
