//! The Go values a kubectl template sees, and how Go's fmt and encoding/json print them.
//!
//! kubectl hands its template the object decoded into `map[string]interface{}`: objects are maps,
//! arrays `[]interface{}`, numbers int64 when they are whole (float64 otherwise), null a nil
//! interface. A value read out of a map or slice keeps the static type `interface {}` ("boxed")
//! until a pipeline ends, which shows in Go's error messages, so it is tracked here too.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// A Go value. `Invalid` is Go's zero reflect.Value (a missing map key); `Nil` a nil interface{}.
#[derive(Debug, Clone)]
pub enum Val<'a> {
    Invalid,
    Nil,
    Bool(bool),
    /// Go's `int`: template literals and what `len` returns.
    Int(i64),
    /// A whole number of the data.
    Int64(i64),
    /// A byte: what `index` returns for a string.
    Uint8(u8),
    Float(f64),
    Str(Cow<'a, str>),
    Map(&'a Map<String, Value>),
    Slice(&'a [Value]),
}

/// A value and whether its static type is `interface {}`.
#[derive(Debug, Clone)]
pub struct V<'a> {
    pub val: Val<'a>,
    pub boxed: bool,
}

impl<'a> V<'a> {
    pub fn plain(val: Val<'a>) -> Self {
        V { val, boxed: false }
    }

    pub fn invalid() -> Self {
        V::plain(Val::Invalid)
    }

    /// An element of the data, as read out of a map or slice (an `interface {}`).
    pub fn of_json(v: &'a Value) -> Self {
        V { val: Val::of_json(v), boxed: true }
    }

    /// Go's indirectInterface: the concrete value in an interface (a nil one is no value).
    pub fn unboxed(self) -> Self {
        match self.val {
            Val::Nil => V::invalid(),
            val => V::plain(val),
        }
    }

    /// The value's Go type, as Go's error messages name it.
    pub fn type_name(&self) -> &'static str {
        if self.boxed { "interface {}" } else { self.val.type_name() }
    }
}

impl<'a> Val<'a> {
    /// A JSON value as kubectl's decoder makes it: whole numbers that Go's encoder writes without an
    /// exponent and that fit int64 are int64 (kubectl encodes and decodes the object before its
    /// printer sees it), every other number float64.
    pub fn of_json(v: &'a Value) -> Self {
        match v {
            Value::Null => Val::Nil,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Val::Int64(i),
                (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.223_372_036_854_775e18 => Val::Int64(f as i64),
                (None, Some(f)) => Val::Float(f),
                (None, None) => Val::Invalid,
            },
            Value::String(s) => Val::Str(Cow::Borrowed(s)),
            Value::Array(a) => Val::Slice(a),
            Value::Object(m) => Val::Map(m),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Invalid => "<invalid reflect.Value>",
            Val::Nil => "interface {}",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Int64(_) => "int64",
            Val::Uint8(_) => "uint8",
            Val::Float(_) => "float64",
            Val::Str(_) => "string",
            Val::Map(_) => "map[string]interface {}",
            Val::Slice(_) => "[]interface {}",
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Val::Int(i) | Val::Int64(i) => Some(*i),
            Val::Uint8(b) => Some(i64::from(*b)),
            _ => None,
        }
    }
}

/// Something Go does that this engine does not reproduce: named, never approximated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

type FResult = Result<(), Unsupported>;

/// Flags, width and precision of one printf verb (the subset accepted).
#[derive(Debug, Clone, Copy, Default)]
pub struct Spec {
    pub minus: bool,
    pub zero: bool,
    pub width: Option<usize>,
    pub prec: Option<usize>,
}

fn pad(out: &mut String, s: &str, spec: &Spec) {
    let fill = spec.width.unwrap_or(0).saturating_sub(s.chars().count());
    if spec.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', fill));
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(s);
    }
}

/// A map's keys in the order Go prints and encodes them (byte order).
pub fn sorted_keys(m: &Map<String, Value>) -> Vec<&String> {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    keys
}

/// Go's `%v` of the value alone (fmt.Sprint of one operand).
pub fn sprint_one(v: &Val) -> String {
    let mut out = String::new();
    // %v with no flags never refuses.
    let _ = print_arg(&mut out, v, 'v', &Spec::default());
    out
}

/// Go's fmt.Sprint: operands printed with %v, a space between two operands when neither is a
/// string.
pub fn sprint(args: &[Val]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Val::Str(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        out.push_str(&sprint_one(a));
        prev_string = is_string;
    }
    out
}

/// Go's fmt.Sprintln: operands printed with %v, always separated by a space, then a newline.
pub fn sprintln(args: &[Val]) -> String {
    let parts: Vec<String> = args.iter().map(sprint_one).collect();
    format!("{}\n", parts.join(" "))
}

/// Go's fmt.Sprintf for the verbs %v %s %d %q %t and %%, with the `-` flag, widths, precision for
/// strings and `0` padding of integers; any other verb or flag is refused.
pub fn sprintf(format: &str, args: &[Val]) -> Result<String, Unsupported> {
    let mut out = String::new();
    let mut arg = 0;
    let mut rest = format;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        let mut spec = Spec::default();
        let mut chars = rest.char_indices().peekable();
        let mut used = 0;
        while let Some(&(i, c)) = chars.peek() {
            match c {
                '-' => {
                    spec.minus = true;
                    spec.zero = false;
                }
                '0' => spec.zero = !spec.minus,
                '#' | '+' | ' ' => return Err(Unsupported(format!("the printf flag {c:?}"))),
                _ => break,
            }
            used = i + 1;
            chars.next();
        }
        rest = &rest[used..];
        if rest.starts_with('[') || rest.starts_with('*') {
            return Err(Unsupported("printf argument indexes and * widths".into()));
        }
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            spec.width = rest[..digits].parse().ok();
            rest = &rest[digits..];
        }
        if rest.len() > 1 && rest.starts_with('.') {
            rest = &rest[1..];
            if rest.starts_with('[') || rest.starts_with('*') {
                return Err(Unsupported("printf argument indexes and * precisions".into()));
            }
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            spec.prec = Some(rest[..digits].parse().unwrap_or(0));
            rest = &rest[digits..];
        }
        let Some(verb) = rest.chars().next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        rest = &rest[verb.len_utf8()..];
        if verb == '%' {
            out.push('%');
            continue;
        }
        if arg >= args.len() {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        }
        if !"vsdqt".contains(verb) {
            return Err(Unsupported(format!("the printf verb %{verb} (supported: %v %s %d %q %t)")));
        }
        if spec.zero && spec.width.is_some() && !(verb == 'd' || verb == 'v') {
            return Err(Unsupported(format!("the printf flag '0' with %{verb}")));
        }
        print_arg(&mut out, &args[arg], verb, &spec)?;
        arg += 1;
    }
    out.push_str(rest);
    if arg < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[arg..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            match a {
                Val::Nil | Val::Invalid => out.push_str("<nil>"),
                a => {
                    out.push_str(a.type_name());
                    out.push('=');
                    print_arg(&mut out, a, 'v', &Spec::default())?;
                }
            }
        }
        out.push(')');
    }
    Ok(out)
}

/// One operand with one verb, as Go's printArg/printValue.
fn print_arg(out: &mut String, v: &Val, verb: char, spec: &Spec) -> FResult {
    match v {
        Val::Invalid | Val::Nil => match verb {
            'v' => pad(out, "<nil>", spec),
            _ => out.push_str(&format!("%!{verb}(<nil>)")),
        },
        Val::Bool(b) => match verb {
            't' | 'v' => pad(out, if *b { "true" } else { "false" }, spec),
            _ => bad_verb(out, v, verb, spec)?,
        },
        Val::Int(_) | Val::Int64(_) | Val::Uint8(_) => match verb {
            'd' | 'v' => print_int(out, v.as_int().unwrap_or_default(), spec),
            'q' => return Err(Unsupported("%q of a number".into())),
            _ => bad_verb(out, v, verb, spec)?,
        },
        Val::Float(f) => match verb {
            'v' => {
                if spec.zero {
                    return Err(Unsupported("the printf flag '0' with a float".into()));
                }
                pad(out, &format_g(*f), spec)
            }
            _ => bad_verb(out, v, verb, spec)?,
        },
        Val::Str(s) => match verb {
            'v' | 's' => {
                if spec.zero {
                    return Err(Unsupported("the printf flag '0' with a string".into()));
                }
                pad(out, truncate(s, spec), spec)
            }
            'q' => pad(out, &go_quote(truncate(s, spec)), spec),
            _ => bad_verb(out, v, verb, spec)?,
        },
        Val::Map(m) => {
            out.push_str("map[");
            for (i, k) in sorted_keys(m).into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                print_arg(out, &Val::Str(Cow::Borrowed(k)), verb, spec)?;
                out.push(':');
                print_elem(out, &m[k], verb, spec)?;
            }
            out.push(']');
        }
        Val::Slice(items) => {
            out.push('[');
            for (i, e) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                print_elem(out, e, verb, spec)?;
            }
            out.push(']');
        }
    }
    Ok(())
}

/// An element of a map or slice: an interface, `<nil>` when nil whatever the verb.
fn print_elem(out: &mut String, e: &Value, verb: char, spec: &Spec) -> FResult {
    match Val::of_json(e) {
        Val::Nil => {
            pad(out, "<nil>", spec);
            Ok(())
        }
        v => print_arg(out, &v, verb, spec),
    }
}

/// `%!d(string=abc)`: a verb that does not fit the operand's type.
fn bad_verb(out: &mut String, v: &Val, verb: char, spec: &Spec) -> FResult {
    out.push_str(&format!("%!{verb}({}=", v.type_name()));
    print_arg(out, v, 'v', spec)?;
    out.push(')');
    Ok(())
}

fn truncate<'s>(s: &'s str, spec: &Spec) -> &'s str {
    match spec.prec {
        Some(p) => s.char_indices().nth(p).map_or(s, |(i, _)| &s[..i]),
        None => s,
    }
}

fn print_int(out: &mut String, i: i64, spec: &Spec) {
    let digits = i.unsigned_abs().to_string();
    let sign = if i < 0 { "-" } else { "" };
    let width = spec.width.unwrap_or(0);
    if spec.zero && !spec.minus && width > 0 {
        let zeros = width.saturating_sub(sign.len() + digits.len());
        out.push_str(sign);
        out.extend(std::iter::repeat_n('0', zeros));
        out.push_str(&digits);
    } else {
        pad(out, &format!("{sign}{digits}"), spec);
    }
}

/// The shortest digits that read back as `f`, and the decimal point's place: 1.5 is ("15", 1).
fn shortest_digits(f: f64) -> (String, i32) {
    let e = format!("{:e}", f.abs());
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exp.parse::<i32>().unwrap_or(0) + 1)
}

fn exponent(exp: i32, min_digits: usize) -> String {
    let sign = if exp < 0 { '-' } else { '+' };
    format!("e{sign}{:0min_digits$}", exp.abs())
}

fn fixed(digits: &str, dp: i32) -> String {
    if dp <= 0 {
        return format!("0.{}{digits}", "0".repeat(dp.unsigned_abs() as usize));
    }
    let dp = dp as usize;
    if digits.len() <= dp {
        format!("{digits}{}", "0".repeat(dp - digits.len()))
    } else {
        format!("{}.{}", &digits[..dp], &digits[dp..])
    }
}

fn scientific(digits: &str, dp: i32, min_exp_digits: usize) -> String {
    let (first, rest) = digits.split_at(1);
    let dot = if rest.is_empty() { String::new() } else { format!(".{rest}") };
    format!("{first}{dot}{}", exponent(dp - 1, min_exp_digits))
}

/// Go's `%v` of a float64 (`%g` with the shortest precision): 1.5, 1e+06, 1.234567e+06, 1e-05.
pub fn format_g(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let (digits, dp) = shortest_digits(f);
    let sign = if f < 0.0 { "-" } else { "" };
    let exp = dp - 1;
    let body = if !(-4..6).contains(&exp) { scientific(&digits, dp, 2) } else { fixed(&digits, dp) };
    format!("{sign}{body}")
}

/// encoding/json's float64: fixed notation, or an exponent below 1e-6 and from 1e21.
fn json_float(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let (digits, dp) = shortest_digits(f);
    let sign = if f < 0.0 { "-" } else { "" };
    let abs = f.abs();
    let body = if !(1e-6..1e21).contains(&abs) { scientific(&digits, dp, 1) } else { fixed(&digits, dp) };
    format!("{sign}{body}")
}

/// Whether Go's strconv.IsPrint holds. Outside ASCII, Rust's printable set is the same (letters,
/// marks, numbers, punctuation, symbols; no separators or controls); combining marks are only
/// escaped by Rust at the start of a string, hence the leading letter.
pub fn go_printable(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    let probe = format!("a{c}");
    probe.escape_debug().to_string() == probe
}

/// Go's strconv.Quote.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if go_printable(c) => out.push(c),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// encoding/json's Marshal of the data: keys sorted, compact, `<`, `>`, `&`, U+2028 and U+2029
/// escaped.
pub fn go_json(v: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, v);
    out
}

fn write_json(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(_) => match Val::of_json(v) {
            Val::Int64(i) => out.push_str(&i.to_string()),
            Val::Float(f) => out.push_str(&json_float(f)),
            _ => out.push_str("null"),
        },
        Value::String(s) => json_string(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, e);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, k) in sorted_keys(m).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(out, k);
                out.push(':');
                write_json(out, &m[k]);
            }
            out.push('}');
        }
    }
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '<' || c == '>' || c == '&' => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
