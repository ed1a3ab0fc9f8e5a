//! Serving TLS: rustls (ring, TLS 1.2+, ALPN h2 + http/1.1) with a certificate resolver whose pair
//! is swapped in place when the files on disk change.
//!
//! Reloading polls the two files and compares their bytes. Polling (rather than inotify on the
//! files) survives kubelet's Secret-volume update, which swaps the `..data` symlink and never
//! writes the files the pod opened; it also works on filesystems without inotify.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{what}: no PEM CERTIFICATE block found (tls.crt must hold the serving certificate, then its chain)")]
    NoCertificate { what: String },
    #[error("{what}: bad PEM certificate: {message}")]
    BadCertificate { what: String, message: String },
    #[error(
        "{what}: no usable private key (expected PEM \"PRIVATE KEY\" (PKCS#8), \"RSA PRIVATE KEY\" (PKCS#1) \
         or \"EC PRIVATE KEY\" (SEC1)): {message}"
    )]
    BadKey { what: String, message: String },
    #[error("{what}: the private key does not belong to the first certificate in the chain: {message}")]
    KeyMismatch { what: String, message: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// A loaded serving pair.
#[derive(Debug, Clone)]
pub struct LoadedPair {
    pub key: Arc<CertifiedKey>,
    /// notAfter of the leaf certificate as Unix seconds (`None` if it could not be parsed).
    pub not_after: Option<i64>,
}

/// The crypto provider every TLS path of this crate uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM chain (leaf first) and a PEM private key (PKCS#1, PKCS#8 or SEC1) and checks they match.
/// `what` names the source in errors (e.g. the file paths).
pub fn load_pair(cert_pem: &[u8], key_pem: &[u8], what: &str) -> Result<LoadedPair, TlsError> {
    let mut chain = Vec::new();
    for c in CertificateDer::pem_slice_iter(cert_pem) {
        chain.push(c.map_err(|e| TlsError::BadCertificate { what: what.to_string(), message: e.to_string() })?);
    }
    let Some(leaf) = chain.first() else { return Err(TlsError::NoCertificate { what: what.to_string() }) };
    let not_after = not_after_unix(leaf.as_ref());
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| TlsError::BadKey { what: what.to_string(), message: e.to_string() })?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::BadKey { what: what.to_string(), message: e.to_string() })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => {}
        // ring keys always expose their public key; an "unknown" answer cannot prove a mismatch.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => return Err(TlsError::KeyMismatch { what: what.to_string(), message: e.to_string() }),
    }
    Ok(LoadedPair { key: Arc::new(certified), not_after })
}

/// Resolves every handshake to the current pair; swapping it is lock-free for readers.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl CertResolver {
    pub fn new(initial: Arc<CertifiedKey>) -> Self {
        CertResolver { current: ArcSwap::new(initial) }
    }
    pub fn set(&self, key: Arc<CertifiedKey>) {
        self.current.store(key);
    }
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// rustls server configuration: TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`, certificate from `resolver`.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Where the serving pair lives and how often to look for changes.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub poll_interval: Duration,
}

/// What one poll found.
#[derive(Debug)]
pub enum ReloadOutcome {
    Unchanged,
    Reloaded { not_after: Option<i64> },
    Failed(TlsError),
}

/// Watches the two files and swaps the resolver's pair when their content changes.
#[derive(Debug)]
pub struct CertReloader {
    files: TlsFiles,
    resolver: Arc<CertResolver>,
    /// Content of the pair last seen (loaded or failed), so one bad pair is reported once.
    last: (Vec<u8>, Vec<u8>),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })
}

impl CertReloader {
    /// Loads the pair once; fails when the files are missing or unusable (the server cannot start).
    pub fn load(files: TlsFiles) -> Result<(Self, LoadedPair), TlsError> {
        let cert = read(&files.cert_file)?;
        let key = read(&files.key_file)?;
        let pair = load_pair(&cert, &key, &describe(&files))?;
        let resolver = Arc::new(CertResolver::new(pair.key.clone()));
        Ok((CertReloader { files, resolver, last: (cert, key) }, pair))
    }

    pub fn resolver(&self) -> Arc<CertResolver> {
        self.resolver.clone()
    }

    /// Reads the files; loads and installs the pair when the content changed.
    pub fn poll(&mut self) -> ReloadOutcome {
        let (cert, key) = match (read(&self.files.cert_file), read(&self.files.key_file)) {
            (Ok(c), Ok(k)) => (c, k),
            // Mid-swap a file may be briefly missing; the old pair stays, the next poll retries.
            (Err(e), _) | (_, Err(e)) => return ReloadOutcome::Failed(e),
        };
        if cert == self.last.0 && key == self.last.1 {
            return ReloadOutcome::Unchanged;
        }
        let result = load_pair(&cert, &key, &describe(&self.files));
        self.last = (cert, key);
        match result {
            Ok(pair) => {
                self.resolver.set(pair.key);
                ReloadOutcome::Reloaded { not_after: pair.not_after }
            }
            Err(e) => ReloadOutcome::Failed(e),
        }
    }

    /// Polls until `stop` is cancelled, logging and counting every reload and failure.
    pub async fn run(mut self, metrics: Arc<Metrics>, stop: CancellationToken) {
        // interval() panics on zero; the CLI refuses 0, this guards programmatic callers.
        let mut tick = tokio::time::interval(self.files.poll_interval.max(Duration::from_millis(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut read_failing = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            // File reads are small; a blocking read on the runtime is cheaper than spawn_blocking here.
            match self.poll() {
                ReloadOutcome::Unchanged => read_failing = false,
                ReloadOutcome::Reloaded { not_after } => {
                    read_failing = false;
                    metrics.tls_reloads.inc();
                    if let Some(t) = not_after {
                        metrics.tls_not_after.set(t);
                    }
                    let leaf = self.resolver.current().cert.first().map(|c| summarize(c.as_ref())).unwrap_or_default();
                    tracing::info!(cert_file = %self.files.cert_file.display(), subject = %leaf.subject,
                        alt_names = ?leaf.alt_names, not_after = %leaf.not_after_rfc3339(),
                        "serving certificate reloaded");
                }
                ReloadOutcome::Failed(e @ TlsError::Read { .. }) => {
                    // Count an unreadable file once per outage, not once per poll.
                    if !read_failing {
                        metrics.tls_reload_failures.inc();
                        tracing::warn!(error = %e, "cannot read the serving certificate files; still serving the previous pair");
                    }
                    read_failing = true;
                }
                ReloadOutcome::Failed(e) => {
                    read_failing = false;
                    metrics.tls_reload_failures.inc();
                    tracing::error!(error = %e, "new serving certificate pair rejected; still serving the previous pair");
                }
            }
        }
    }
}

fn describe(files: &TlsFiles) -> String {
    format!("{} + {}", files.cert_file.display(), files.key_file.display())
}

// --- minimal DER reading: just enough to find a certificate's notAfter --------------------------

/// Splits one DER TLV off `input`: (tag, content, rest).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// notAfter of an X.509 certificate (DER) as Unix seconds.
pub fn not_after_unix(der: &[u8]) -> Option<i64> {
    let (0x30, cert, _) = tlv(der)? else { return None };
    let (0x30, tbs, _) = tlv(cert)? else { return None };
    let (tag, _, mut rest) = tlv(tbs)?;
    // Optional [0] EXPLICIT version, then serialNumber.
    if tag == 0xa0 {
        rest = tlv(rest)?.2;
    }
    let rest = tlv(rest)?.2; // signature AlgorithmIdentifier
    let rest = tlv(rest)?.2; // issuer
    let (0x30, validity, _) = tlv(rest)? else { return None };
    let (_, _, after) = tlv(validity)?; // skip notBefore
    let (tag, time, _) = tlv(after)?;
    let s = std::str::from_utf8(time).ok()?;
    let digits = s.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            // UTCTime: YY 50..99 means 19YY (RFC 5280).
            let yy: i64 = digits.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, digits.get(2..)?)
        }
        0x18 => (digits.get(..4)?.parse().ok()?, digits.get(4..)?),
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day, hour, min, sec) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec)
}

/// What the startup log and the reload log say about a serving certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertSummary {
    /// The subject as `CN=...,O=...` (empty when the certificate has none: cert-manager's
    /// certificates often name the server only in subjectAltName).
    pub subject: String,
    /// subjectAltName DNS names and IP addresses.
    pub alt_names: Vec<String>,
    /// notAfter as Unix seconds.
    pub not_after: Option<i64>,
}

impl CertSummary {
    /// notAfter as RFC 3339 (`2031-07-04T00:00:00Z`), or `unknown`.
    pub fn not_after_rfc3339(&self) -> String {
        self.not_after.map_or_else(|| "unknown".to_string(), rfc3339)
    }
}

/// Reads subject, subjectAltName and notAfter of an X.509 certificate (DER); fields that cannot be
/// read are left empty (the certificate was already accepted by rustls: this only describes it).
pub fn summarize(der: &[u8]) -> CertSummary {
    let mut out = CertSummary { not_after: not_after_unix(der), ..Default::default() };
    let Some((0x30, cert, _)) = tlv(der) else { return out };
    let Some((0x30, tbs, _)) = tlv(cert) else { return out };
    let mut fields = Vec::new();
    let mut rest = tbs;
    while let Some((tag, content, next)) = tlv(rest) {
        fields.push((tag, content));
        rest = next;
    }
    // Skip the optional [0] version: serial, signature, issuer, validity, subject, spki, then
    // optional [1] [2] unique IDs and [3] extensions.
    let body = if fields.first().is_some_and(|f| f.0 == 0xa0) { &fields[1..] } else { &fields[..] };
    if let Some((0x30, subject)) = body.get(4) {
        out.subject = name_text(subject);
    }
    if let Some((_, extensions)) = body.iter().skip(6).find(|f| f.0 == 0xa3) {
        out.alt_names = alt_names(extensions).unwrap_or_default();
    }
    out
}

/// `CN=a,O=b` of an X.501 Name (RDNSequence content).
fn name_text(mut rdns: &[u8]) -> String {
    let mut parts = Vec::new();
    while let Some((_, set, next)) = tlv(rdns) {
        let mut set = set;
        while let Some((_, atv, next_atv)) = tlv(set) {
            if let Some((0x06, oid, value)) = tlv(atv)
                && let Some((_, value, _)) = tlv(value)
            {
                let label = match oid {
                    [0x55, 0x04, 0x03] => "CN".to_string(),
                    [0x55, 0x04, 0x06] => "C".to_string(),
                    [0x55, 0x04, 0x07] => "L".to_string(),
                    [0x55, 0x04, 0x08] => "ST".to_string(),
                    [0x55, 0x04, 0x0a] => "O".to_string(),
                    [0x55, 0x04, 0x0b] => "OU".to_string(),
                    other => oid_text(other),
                };
                parts.push(format!("{label}={}", String::from_utf8_lossy(value)));
            }
            set = next_atv;
        }
        rdns = next;
    }
    parts.join(",")
}

/// Dotted form of a DER OBJECT IDENTIFIER's content.
fn oid_text(oid: &[u8]) -> String {
    let Some((&first, rest)) = oid.split_first() else { return String::new() };
    let mut arcs = vec![u64::from(first / 40), u64::from(first % 40)];
    let mut acc = 0u64;
    for &b in rest {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(acc);
            acc = 0;
        }
    }
    arcs.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// DNS names and IP addresses of the subjectAltName extension in `[3] Extensions`.
fn alt_names(explicit: &[u8]) -> Option<Vec<String>> {
    let (0x30, mut exts, _) = tlv(explicit)? else { return None };
    while let Some((_, ext, next)) = tlv(exts) {
        exts = next;
        let (0x06, oid, rest) = tlv(ext)? else { continue };
        if oid != [0x55, 0x1d, 0x11] {
            continue;
        }
        let (tag, mut value, rest) = tlv(rest)?;
        if tag == 0x01 {
            value = tlv(rest)?.1; // critical flag, then the OCTET STRING
        }
        let (0x30, mut names, _) = tlv(value)? else { return None };
        let mut out = Vec::new();
        while let Some((tag, name, next)) = tlv(names) {
            match (tag, name.len()) {
                (0x82, _) => out.push(String::from_utf8_lossy(name).into_owned()),
                (0x87, 4) => out.push(std::net::Ipv4Addr::new(name[0], name[1], name[2], name[3]).to_string()),
                (0x87, 16) => {
                    let octets: [u8; 16] = name.try_into().ok()?;
                    out.push(std::net::Ipv6Addr::from(octets).to_string());
                }
                _ => {}
            }
            names = next;
        }
        return Some(out);
    }
    None
}

/// Unix seconds as RFC 3339 in UTC, e.g. `2031-07-04T00:00:00Z`.
pub fn rfc3339(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(hosts: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(hosts.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2038, 1, 19), 24_855);
    }

    #[test]
    fn summarizes_subject_alt_names_and_expiry() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![
            "credential-webhook.kcm-system.svc".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])
        .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, "credential-webhook");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "credential-guard");
        params.not_after = rcgen::date_time_ymd(2031, 7, 4);
        let cert = params.self_signed(&key).unwrap();
        let s = summarize(cert.der());
        assert_eq!(s.subject, "CN=credential-webhook,O=credential-guard");
        assert_eq!(s.alt_names, ["credential-webhook.kcm-system.svc", "127.0.0.1", "::1"]);
        assert_eq!(s.not_after_rfc3339(), "2031-07-04T00:00:00Z");
        // No subject at all (as cert-manager issues when only dnsNames are set).
        params.distinguished_name = rcgen::DistinguishedName::new();
        let s = summarize(params.self_signed(&key).unwrap().der());
        assert_eq!(s.subject, "");
        assert_eq!(s.alt_names.len(), 3);
        assert_eq!(summarize(b"junk"), CertSummary::default());
        assert_eq!(oid_text(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]), "1.2.840.113549");
    }

    #[test]
    fn rfc3339_inverts_civil_days() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400 + 3661), "2000-02-29T01:01:01Z");
        for days in [-1000, 0, 11_017, 24_855, 40_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn reads_not_after_from_rcgen_cert() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 4);
        let cert = params.self_signed(&key).unwrap();
        // 2031-07-04T00:00:00Z
        assert_eq!(not_after_unix(cert.der()), Some(1_940_889_600));
        params.not_after = rcgen::date_time_ymd(2061, 1, 2); // GeneralizedTime from 2050 on
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(not_after_unix(cert.der()), Some(days_from_civil(2061, 1, 2) * 86_400));
        assert_eq!(not_after_unix(b"\x30\x03\x02\x01"), None);
    }

    #[test]
    fn loads_chain_and_pkcs8_key() {
        let (cert, key) = pair(&["localhost"]);
        let (ca, _) = pair(&["ca"]);
        let chain = format!("{cert}{ca}");
        let loaded = load_pair(chain.as_bytes(), key.as_bytes(), "test").unwrap();
        assert_eq!(loaded.key.cert.len(), 2);
        assert!(loaded.not_after.is_some());
    }

    /// Extracts the SEC1 `ECPrivateKey` that ring's PKCS#8 document wraps, as cert-manager writes
    /// ECDSA keys with `encoding: PKCS1`.
    fn pkcs8_to_sec1_pem(pkcs8_pem: &str) -> String {
        let der = PrivateKeyDer::from_pem_slice(pkcs8_pem.as_bytes()).unwrap();
        let (_, info, _) = tlv(der.secret_der()).unwrap();
        let rest = tlv(info).unwrap().2; // version
        let rest = tlv(rest).unwrap().2; // algorithm
        let (tag, sec1, _) = tlv(rest).unwrap();
        assert_eq!(tag, 0x04);
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(sec1);
        let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
        format!("-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n", lines.join("\n"))
    }

    #[test]
    fn loads_sec1_key() {
        let (cert, key) = pair(&["localhost"]);
        let sec1 = pkcs8_to_sec1_pem(&key);
        assert!(load_pair(cert.as_bytes(), sec1.as_bytes(), "sec1").is_ok());
    }

    #[test]
    fn rejects_mismatch_missing_cert_and_garbage_key() {
        let (cert, _) = pair(&["localhost"]);
        let (_, other_key) = pair(&["localhost"]);
        let err = load_pair(cert.as_bytes(), other_key.as_bytes(), "a + b").unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        assert!(err.to_string().starts_with("a + b: the private key does not belong"), "{err}");
        let err = load_pair(b"", other_key.as_bytes(), "x").unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }));
        let err = load_pair(cert.as_bytes(), b"not a key", "x").unwrap_err();
        assert!(matches!(err, TlsError::BadKey { .. }));
    }

    #[test]
    fn reloader_swaps_on_change_and_keeps_old_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert_file: dir.path().join("tls.crt"),
            key_file: dir.path().join("tls.key"),
            poll_interval: Duration::from_secs(1),
        };
        let (c1, k1) = pair(&["one"]);
        std::fs::write(&files.cert_file, &c1).unwrap();
        std::fs::write(&files.key_file, &k1).unwrap();
        let (mut r, _) = CertReloader::load(files.clone()).unwrap();
        let first = r.resolver().current();
        assert!(matches!(r.poll(), ReloadOutcome::Unchanged));
        let (c2, k2) = pair(&["two"]);
        std::fs::write(&files.cert_file, &c2).unwrap();
        std::fs::write(&files.key_file, &k2).unwrap();
        assert!(matches!(r.poll(), ReloadOutcome::Reloaded { .. }));
        let second = r.resolver().current();
        assert_ne!(first.cert[0], second.cert[0]);
        // Broken: cert of a third pair with the second key.
        let (c3, _) = pair(&["three"]);
        std::fs::write(&files.cert_file, &c3).unwrap();
        assert!(matches!(r.poll(), ReloadOutcome::Failed(TlsError::KeyMismatch { .. })));
        assert_eq!(r.resolver().current().cert[0], second.cert[0]);
        // The same bad content is not reported again.
        assert!(matches!(r.poll(), ReloadOutcome::Unchanged));
    }
}
