//! Go `time.ParseDuration` and `time.Duration.String`, which `defaultCacheDuration` goes through
//! (metav1.Duration). Accepting exactly what Go accepts matters: `"1d"` and `"10"` look plausible
//! but stop the kubelet from starting.

use std::fmt;

use super::gofmt::quote_bytes;

/// A Go `time.Duration`: signed nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration(pub i64);

const NANOSECOND: u64 = 1;
const MICROSECOND: u64 = 1_000 * NANOSECOND;
const MILLISECOND: u64 = 1_000 * MICROSECOND;
const SECOND: u64 = 1_000 * MILLISECOND;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const LIMIT: u64 = 1 << 63;

/// The `time:` error, worded like Go (the kubelet prints it inside the decode error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DurationError(String);

/// Go `time.quote`: like `%q` but non-ASCII bytes are always `\x`-escaped.
fn time_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        if (ch as u32) >= 0x80 || ch < ' ' {
            let mut buf = [0u8; 4];
            for b in ch.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            if ch == '"' || ch == '\\' {
                out.push('\\');
            }
            out.push(ch);
        }
    }
    out.push('"');
    out
}

fn invalid(orig: &str) -> DurationError {
    DurationError(format!("time: invalid duration {}", time_quote(orig)))
}

fn unit_of(u: &str) -> Option<u64> {
    Some(match u {
        "ns" => NANOSECOND,
        "us" | "\u{b5}s" | "\u{3bc}s" => MICROSECOND,
        "ms" => MILLISECOND,
        "s" => SECOND,
        "m" => MINUTE,
        "h" => HOUR,
        _ => return None,
    })
}

impl GoDuration {
    /// Go `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or `0`.
    pub fn parse(orig: &str) -> Result<GoDuration, DurationError> {
        let mut s = orig.as_bytes();
        let mut neg = false;
        if let Some(&c) = s.first()
            && (c == b'-' || c == b'+')
        {
            neg = c == b'-';
            s = &s[1..];
        }
        if s == b"0" {
            return Ok(GoDuration(0));
        }
        if s.is_empty() {
            return Err(invalid(orig));
        }
        let mut d: u64 = 0;
        while !s.is_empty() {
            if !(s[0] == b'.' || s[0].is_ascii_digit()) {
                return Err(invalid(orig));
            }
            // leadingInt
            let before = s.len();
            let mut v: u64 = 0;
            let mut i = 0;
            while i < s.len() && s[i].is_ascii_digit() {
                if v > LIMIT / 10 {
                    return Err(invalid(orig));
                }
                v = v * 10 + u64::from(s[i] - b'0');
                if v > LIMIT {
                    return Err(invalid(orig));
                }
                i += 1;
            }
            s = &s[i..];
            let pre = before != s.len();
            // leadingFraction
            let mut f: u64 = 0;
            let mut scale: f64 = 1.0;
            let mut post = false;
            if s.first() == Some(&b'.') {
                s = &s[1..];
                let mut i = 0;
                let mut overflow = false;
                while i < s.len() && s[i].is_ascii_digit() {
                    if !overflow {
                        if f > (LIMIT - 1) / 10 {
                            overflow = true;
                        } else {
                            let y = f * 10 + u64::from(s[i] - b'0');
                            if y > LIMIT {
                                overflow = true;
                            } else {
                                f = y;
                                scale *= 10.0;
                            }
                        }
                    }
                    i += 1;
                }
                post = i > 0;
                s = &s[i..];
            }
            if !pre && !post {
                return Err(invalid(orig));
            }
            let unit_len = s.iter().position(|&c| c == b'.' || c.is_ascii_digit()).unwrap_or(s.len());
            if unit_len == 0 {
                return Err(DurationError(format!("time: missing unit in duration {}", time_quote(orig))));
            }
            let unit_text = String::from_utf8_lossy(&s[..unit_len]).into_owned();
            s = &s[unit_len..];
            let Some(unit) = unit_of(&unit_text) else {
                return Err(DurationError(format!(
                    "time: unknown unit {} in duration {}",
                    time_quote(&unit_text),
                    time_quote(orig)
                )));
            };
            if v > LIMIT / unit {
                return Err(invalid(orig));
            }
            v *= unit;
            if f > 0 {
                // Go uses float64 here too (nanosecond-accurate for fractions of hours).
                v += (f as f64 * (unit as f64 / scale)) as u64;
                if v > LIMIT {
                    return Err(invalid(orig));
                }
            }
            // Go's uint64 addition wraps (both terms are at most 2^63); so does ours, no panic.
            d = d.wrapping_add(v);
            if d > LIMIT {
                return Err(invalid(orig));
            }
        }
        if neg {
            // d <= 2^63 here, so the negation fits.
            return Ok(GoDuration((d as i128).wrapping_neg() as i64));
        }
        if d > LIMIT - 1 {
            return Err(invalid(orig));
        }
        Ok(GoDuration(d as i64))
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }
}

/// Go `fmtFrac`: the fraction of v/10^prec without trailing zeros, written into `buf` backwards.
fn fmt_frac(buf: &mut Vec<u8>, mut v: u64, prec: usize) -> u64 {
    let mut print = false;
    for _ in 0..prec {
        let digit = v % 10;
        print = print || digit != 0;
        if print {
            buf.push(b'0' + digit as u8);
        }
        v /= 10;
    }
    if print {
        buf.push(b'.');
    }
    v
}

fn fmt_int(buf: &mut Vec<u8>, mut v: u64) {
    if v == 0 {
        buf.push(b'0');
        return;
    }
    while v > 0 {
        buf.push(b'0' + (v % 10) as u8);
        v /= 10;
    }
}

impl fmt::Display for GoDuration {
    /// Go `Duration.String`: `1h30m0s`, `-1m0s`, `1.5s`, `2ms`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let neg = self.0 < 0;
        let mut u = self.0.unsigned_abs();
        // Built backwards, reversed at the end (as Go fills its buffer from the right).
        let mut rev: Vec<u8> = Vec::with_capacity(32);
        if u < SECOND {
            rev.push(b's');
            if u == 0 {
                return f.write_str("0s");
            }
            let prec = if u < MICROSECOND {
                rev.push(b'n');
                0
            } else if u < MILLISECOND {
                // "µ" is two bytes; pushed reversed.
                rev.extend_from_slice(&[0xB5, 0xC2]);
                3
            } else {
                rev.push(b'm');
                6
            };
            u = fmt_frac(&mut rev, u, prec);
            fmt_int(&mut rev, u);
        } else {
            rev.push(b's');
            u = fmt_frac(&mut rev, u, 9);
            fmt_int(&mut rev, u % 60);
            u /= 60;
            if u > 0 {
                rev.push(b'm');
                fmt_int(&mut rev, u % 60);
                u /= 60;
                if u > 0 {
                    rev.push(b'h');
                    fmt_int(&mut rev, u);
                }
            }
        }
        if neg {
            rev.push(b'-');
        }
        rev.reverse();
        f.write_str(&String::from_utf8_lossy(&rev))
    }
}

/// `%q` of a duration string, for callers that need the quoted form.
pub fn quoted(d: GoDuration) -> String {
    quote_bytes(d.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_go_parses() {
        let ok: &[(&str, i64)] = &[
            ("0", 0),
            ("-0", 0),
            ("+0", 0),
            ("0s", 0),
            ("10m", 600_000_000_000),
            ("12h", 43_200_000_000_000),
            ("1h30m", 5_400_000_000_000),
            ("1.5h", 5_400_000_000_000),
            (".5s", 500_000_000),
            ("5.s", 5_000_000_000),
            ("-1m", -60_000_000_000),
            ("1h1m1s1ms1us1ns", 3_661_001_001_001),
            ("1\u{b5}s", 1_000),
            ("1\u{3bc}s", 1_000),
            ("9223372036854775807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            // Go wraps the uint64 sum 2^63 + 2^63 to 0 and accepts it.
            ("9223372036854775808ns9223372036854775808ns", 0),
        ];
        for (s, want) in ok {
            assert_eq!(GoDuration::parse(s), Ok(GoDuration(*want)), "{s}");
        }
    }

    #[test]
    fn rejects_with_go_messages() {
        let bad: &[(&str, &str)] = &[
            ("1d", r#"time: unknown unit "d" in duration "1d""#),
            ("10", r#"time: missing unit in duration "10""#),
            ("", r#"time: invalid duration """#),
            ("-", r#"time: invalid duration "-""#),
            (".s", r#"time: invalid duration ".s""#),
            ("1h ", r#"time: unknown unit "h " in duration "1h ""#),
            (" 1h", r#"time: invalid duration " 1h""#),
            ("1H", r#"time: unknown unit "H" in duration "1H""#),
            ("9223372036854775808ns", r#"time: invalid duration "9223372036854775808ns""#),
            ("3000000h", r#"time: invalid duration "3000000h""#),
            ("1é", r#"time: unknown unit "\xc3\xa9" in duration "1\xc3\xa9""#),
        ];
        for (s, want) in bad {
            assert_eq!(GoDuration::parse(s).map_err(|e| e.to_string()), Err(want.to_string()), "{s:?}");
        }
    }

    #[test]
    fn formats_like_go() {
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1\u{b5}s"),
            (2_200_000, "2.2ms"),
            (1_500_000_000, "1.5s"),
            (60_000_000_000, "1m0s"),
            (-60_000_000_000, "-1m0s"),
            (5_400_000_000_000, "1h30m0s"),
            (43_200_000_000_000, "12h0m0s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for (d, want) in cases {
            assert_eq!(GoDuration(*d).to_string(), *want);
        }
        assert_eq!(quoted(GoDuration(-60_000_000_000)), r#""-1m0s""#);
    }
}
