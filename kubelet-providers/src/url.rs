//! The kubelet's `matchImages` matcher (pkg/credentialprovider/keyring.go `URLsMatchStr`) with the
//! pieces of Go it stands on: `net/url.Parse` (as of Go 1.19-1.24), `net.SplitHostPort` and
//! `path/filepath.Match`. Everything works on bytes because `%XX` escapes can decode to non-UTF-8.

use std::fmt;

use super::gofmt::{decode_rune, quote, quote_bytes};

/// A `url.Parse` failure, rendered like Go's `*url.Error`: `parse "https://x": reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parse {}: {reason}", quote(url))]
pub struct UrlError {
    /// The URL string Go reports (the fragment is cut off unless the fragment itself is bad).
    pub url: String,
    pub reason: String,
}

/// The parts of a parsed schemeless URL the matcher uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemelessUrl {
    /// `URL.Host`: host and optional `:port`, unescaped; userinfo removed.
    pub host: Vec<u8>,
    /// `URL.Path`: percent-decoded.
    pub path: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Host,
    Zone,
    Path,
    UserPassword,
    Fragment,
}

fn is_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}

fn unhex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Go `shouldEscape`, restricted to the modes parsing uses.
fn should_escape(c: u8, mode: Mode) -> bool {
    if c.is_ascii_alphanumeric() {
        return false;
    }
    if matches!(mode, Mode::Host | Mode::Zone)
        && matches!(
            c,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
                | b'<'
                | b'>'
                | b'"'
        )
    {
        return false;
    }
    match c {
        b'-' | b'_' | b'.' | b'~' => return false,
        b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'?' | b'@' => match mode {
            Mode::Path => return c == b'?',
            Mode::UserPassword => return matches!(c, b'@' | b'/' | b'?' | b':'),
            Mode::Fragment => return false,
            Mode::Host | Mode::Zone => {}
        },
        _ => {}
    }
    if mode == Mode::Fragment && matches!(c, b'!' | b'(' | b')' | b'*') {
        return false;
    }
    true
}

/// Go `unescape`: validates `%XX` escapes (and host characters) and decodes them.
fn unescape(s: &[u8], mode: Mode) -> Result<Vec<u8>, String> {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                if i + 2 >= s.len() || !is_hex(s[i + 1]) || !is_hex(s[i + 2]) {
                    let end = (i + 3).min(s.len());
                    return Err(format!("invalid URL escape {}", quote_bytes(&s[i..end])));
                }
                // RFC 3986: in a host, %-encoding is only for non-ASCII bytes (and %25 in zones).
                if mode == Mode::Host && unhex(s[i + 1]) < 8 && &s[i..i + 3] != b"%25" {
                    return Err(format!("invalid URL escape {}", quote_bytes(&s[i..i + 3])));
                }
                if mode == Mode::Zone {
                    let v = (unhex(s[i + 1]) << 4) | unhex(s[i + 2]);
                    if &s[i..i + 3] != b"%25" && v != b' ' && should_escape(v, Mode::Host) {
                        return Err(format!("invalid URL escape {}", quote_bytes(&s[i..i + 3])));
                    }
                }
                i += 3;
            }
            c => {
                if matches!(mode, Mode::Host | Mode::Zone) && c < 0x80 && should_escape(c, mode) {
                    return Err(format!("invalid character {} in host name", quote_bytes(&s[i..i + 1])));
                }
                i += 1;
            }
        }
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            out.push((unhex(s[i + 1]) << 4) | unhex(s[i + 2]));
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn valid_optional_port(port: &[u8]) -> bool {
    match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

fn rfind(s: &[u8], c: u8) -> Option<usize> {
    s.iter().rposition(|&b| b == c)
}

fn find(s: &[u8], c: u8) -> Option<usize> {
    s.iter().position(|&b| b == c)
}

fn find_sub(s: &[u8], sub: &[u8]) -> Option<usize> {
    s.windows(sub.len()).position(|w| w == sub)
}

/// Go `parseHost` (before the Go 1.25.2 / 1.24.8 bracket tightening).
fn parse_host(host: &[u8]) -> Result<Vec<u8>, String> {
    if host.first() == Some(&b'[') {
        let Some(i) = rfind(host, b']') else {
            return Err("missing ']' in host".into());
        };
        let colon_port = &host[i + 1..];
        if !valid_optional_port(colon_port) {
            return Err(format!("invalid port {} after host", quote_bytes(colon_port)));
        }
        if let Some(zone) = find_sub(&host[..i], b"%25") {
            let mut out = unescape(&host[..zone], Mode::Host)?;
            out.extend(unescape(&host[zone..i], Mode::Zone)?);
            out.extend(unescape(&host[i..], Mode::Host)?);
            return Ok(out);
        }
    } else if let Some(i) = rfind(host, b':') {
        let colon_port = &host[i..];
        if !valid_optional_port(colon_port) {
            return Err(format!("invalid port {} after host", quote_bytes(colon_port)));
        }
    }
    unescape(host, Mode::Host)
}

fn valid_userinfo(s: &[u8]) -> bool {
    // Go iterates runes; any non-ASCII rune is invalid, so a byte check is equivalent.
    s.iter().all(|&c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b':'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'%'
                    | b'@'
            )
    })
}

/// Go `parseAuthority`: returns the host; userinfo is validated and dropped.
fn parse_authority(authority: &[u8]) -> Result<Vec<u8>, String> {
    let at = rfind(authority, b'@');
    let host = parse_host(match at {
        Some(i) => &authority[i + 1..],
        None => authority,
    })?;
    if let Some(i) = at {
        let userinfo = &authority[..i];
        if !valid_userinfo(userinfo) {
            return Err("net/url: invalid userinfo".into());
        }
        match find(userinfo, b':') {
            None => {
                unescape(userinfo, Mode::UserPassword)?;
            }
            Some(c) => {
                unescape(&userinfo[..c], Mode::UserPassword)?;
                unescape(&userinfo[c + 1..], Mode::UserPassword)?;
            }
        }
    }
    Ok(host)
}

/// keyring.go `ParseSchemelessURL`: Go `url.Parse("https://" + s)` with the scheme dropped. A
/// scheme in `s` is never stripped: `https://x` parses with host `https:`.
pub fn parse_schemeless_url(s: &str) -> Result<SchemelessUrl, UrlError> {
    parse_url(&format!("https://{s}"), "https")
}

/// Go `url.Parse` for a string known to start with `<scheme>://` (`http` or `https`).
pub(crate) fn parse_url(raw: &str, scheme: &str) -> Result<SchemelessUrl, UrlError> {
    let (u, frag) = match raw.find('#') {
        Some(i) => (&raw[..i], &raw[i + 1..]),
        None => (raw, ""),
    };
    let err = |url: &str, reason: String| UrlError { url: url.to_string(), reason };
    if u.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(err(u, "net/url: invalid control character in URL".into()));
    }
    // Everything after "<scheme>:"; the scheme itself is always valid here.
    let mut rest = &u.as_bytes()[scheme.len() + 1..];
    let question_marks = rest.iter().filter(|&&b| b == b'?').count();
    if rest.last() == Some(&b'?') && question_marks == 1 {
        rest = &rest[..rest.len() - 1];
    } else if let Some(q) = find(rest, b'?') {
        rest = &rest[..q];
    }
    // rest starts with "//": an authority follows.
    let mut authority = &rest[2..];
    let mut path: &[u8] = b"";
    if let Some(i) = find(authority, b'/') {
        path = &authority[i..];
        authority = &authority[..i];
    }
    let host = parse_authority(authority).map_err(|r| err(u, r))?;
    let path = unescape(path, Mode::Path).map_err(|r| err(u, r))?;
    if !frag.is_empty() {
        unescape(frag.as_bytes(), Mode::Fragment).map_err(|r| err(raw, r))?;
    }
    Ok(SchemelessUrl { host, path })
}

/// Go `net.SplitHostPort`; `None` where Go returns an error.
pub fn split_host_port(hostport: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = rfind(hostport, b':')?;
    let (host, j, k);
    if hostport.first() == Some(&b'[') {
        let end = find(hostport, b']')?;
        if end + 1 == hostport.len() || end + 1 != i {
            return None;
        }
        host = &hostport[1..end];
        j = 1;
        k = end + 1;
    } else {
        host = &hostport[..i];
        if find(host, b':').is_some() {
            return None;
        }
        j = 0;
        k = 0;
    }
    if find(&hostport[j..], b'[').is_some() || find(&hostport[k..], b']').is_some() {
        return None;
    }
    Some((host, &hostport[i + 1..]))
}

/// keyring.go `SplitURL`: host labels and port (`""` when the host has none or is malformed).
pub fn split_url(url: &SchemelessUrl) -> (Vec<&[u8]>, &[u8]) {
    let (host, port) = split_host_port(&url.host).unwrap_or((&url.host, b""));
    (host.split(|&b| b == b'.').collect(), port)
}

/// `filepath.ErrBadPattern`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern")]
pub struct BadPattern;

/// Go `path/filepath.Match` with `/` as separator (the kubelet runs on Linux here).
pub fn glob_match(mut pattern: &[u8], mut name: &[u8]) -> Result<bool, BadPattern> {
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            return Ok(find(name, b'/').is_none());
        }
        let res = match_chunk(chunk, name);
        if let Ok(Some(t)) = res
            && (t.is_empty() || !pattern.is_empty())
        {
            name = t;
            continue;
        }
        res?;
        if star {
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                if let Some(t) = match_chunk(chunk, &name[i + 1..])? {
                    if pattern.is_empty() && !t.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = t;
                    continue 'pattern;
                }
                i += 1;
            }
        }
        // Before returning false, check that the rest of the pattern is well formed.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            match_chunk(chunk, b"")?;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

fn scan_chunk(mut pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut star = false;
    while pattern.first() == Some(&b'*') {
        pattern = &pattern[1..];
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            // An escaped character is skipped; a trailing `\\` is caught by match_chunk.
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &pattern[..i], &pattern[i..])
}

/// Go `matchChunk`: `Ok(Some(rest))` on a match, `Ok(None)` on a mismatch; the pattern is
/// checked to the end even after a mismatch so that malformed patterns always error.
fn match_chunk<'a>(mut chunk: &[u8], mut s: &'a [u8]) -> Result<Option<&'a [u8]>, BadPattern> {
    let mut failed = false;
    while !chunk.is_empty() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match chunk[0] {
            b'[' => {
                let mut r: u32 = 0;
                if !failed {
                    let (c, n) = decode_rune(s);
                    r = c.map_or(0xFFFD, u32::from);
                    s = &s[n..];
                }
                chunk = &chunk[1..];
                let mut negated = false;
                if chunk.first() == Some(&b'^') {
                    negated = true;
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut nrange = 0;
                loop {
                    if chunk.first() == Some(&b']') && nrange > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = get_esc(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if chunk[0] == b'-' {
                        let (h, rest) = get_esc(&chunk[1..])?;
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    nrange += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if s[0] == b'/' {
                        failed = true;
                    }
                    let (_, n) = decode_rune(s);
                    s = &s[n..];
                }
                chunk = &chunk[1..];
            }
            c => {
                let literal = if c == b'\\' {
                    chunk = &chunk[1..];
                    match chunk.first() {
                        Some(&l) => l,
                        None => return Err(BadPattern),
                    }
                } else {
                    c
                };
                if !failed {
                    if literal != s[0] {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    if failed { Ok(None) } else { Ok(Some(s)) }
}

/// Go `getEsc`: one (possibly escaped) rune of a character class; the chunk must go on after it.
fn get_esc(mut chunk: &[u8]) -> Result<(u32, &[u8]), BadPattern> {
    match chunk.first() {
        None | Some(b'-') | Some(b']') => return Err(BadPattern),
        Some(b'\\') => {
            chunk = &chunk[1..];
            if chunk.is_empty() {
                return Err(BadPattern);
            }
        }
        Some(_) => {}
    }
    let (c, n) = decode_rune(chunk);
    let Some(c) = c else {
        return Err(BadPattern);
    };
    let rest = &chunk[n..];
    if rest.is_empty() {
        return Err(BadPattern);
    }
    Ok((u32::from(c), rest))
}

/// Why [`urls_match_str`] returned an error (the kubelet treats it as "no match").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    #[error("{0}")]
    Url(#[from] UrlError),
    #[error("host label pattern {}: {BadPattern}", quote_bytes(.0))]
    BadPattern(Vec<u8>),
}

/// keyring.go `URLsMatchStr(glob, target)`: port equal as strings, same number of host labels,
/// byte prefix on the decoded path, then `filepath.Match` per label.
pub fn urls_match_str(glob: &str, target: &str) -> Result<bool, MatchError> {
    let glob_url = parse_schemeless_url(glob)?;
    let target_url = parse_schemeless_url(target)?;
    urls_match(&glob_url, &target_url)
}

/// keyring.go `URLsMatch` on parsed URLs.
pub fn urls_match(glob: &SchemelessUrl, target: &SchemelessUrl) -> Result<bool, MatchError> {
    let (glob_parts, glob_port) = split_url(glob);
    let (target_parts, target_port) = split_url(target);
    if glob_port != target_port || glob_parts.len() != target_parts.len() || !target.path.starts_with(&glob.path) {
        return Ok(false);
    }
    for (g, t) in glob_parts.iter().zip(&target_parts) {
        if !glob_match(g, t).map_err(|_| MatchError::BadPattern(g.to_vec()))? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `urls_match_str` with errors counted as "no match", which is what the kubelet does.
pub fn matches(glob: &str, target: &str) -> bool {
    urls_match_str(glob, target).unwrap_or(false)
}

impl fmt::Display for SchemelessUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", String::from_utf8_lossy(&self.host), String::from_utf8_lossy(&self.path))
    }
}
