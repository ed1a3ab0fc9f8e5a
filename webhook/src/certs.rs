//! Throwaway TLS material for local runs: a CA and a serving certificate signed by it.
//!
//! Never for production: in a cluster cert-manager issues the serving certificate (see deploy/).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("no --host given: name at least one DNS name or IP address the server is reached at")]
    NoHosts,
    #[error("host {host:?} is neither an IP address nor a valid DNS name: {message}")]
    BadHost { host: String, message: String },
    #[error("cannot generate certificate: {0}")]
    Generate(String),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

fn gen_err(e: rcgen::Error) -> CertsError {
    CertsError::Generate(e.to_string())
}

/// A throwaway certificate authority held in memory.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// A serving certificate (PEM, leaf only) and its PKCS#8 key (PEM).
#[derive(Debug, Clone)]
pub struct ServingPair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    /// A new CA named `credential-webhook local CA`, valid for ten years.
    pub fn new() -> Result<Self, CertsError> {
        let key = KeyPair::generate().map_err(gen_err)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "credential-webhook local CA");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let now = std::time::SystemTime::now();
        params.not_before = now.into();
        params.not_after = (now + std::time::Duration::from_secs(10 * 365 * 86_400)).into();
        let cert = params.self_signed(&key).map_err(gen_err)?;
        Ok(Ca { cert_pem: cert.pem(), issuer: Issuer::new(params, key) })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a serving certificate for `hosts` (DNS names or IP addresses), valid for one year.
    pub fn issue(&self, hosts: &[String]) -> Result<ServingPair, CertsError> {
        if hosts.is_empty() {
            return Err(CertsError::NoHosts);
        }
        let mut params = CertificateParams::default();
        for host in hosts {
            let san = match host.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => {
                    check_dns_name(host)?;
                    SanType::DnsName(host.clone().try_into().map_err(|e: rcgen::Error| CertsError::BadHost {
                        host: host.clone(),
                        message: e.to_string(),
                    })?)
                }
            };
            params.subject_alt_names.push(san);
        }
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, hosts[0].as_str());
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = std::time::SystemTime::now();
        params.not_before = (now - std::time::Duration::from_secs(60)).into();
        params.not_after = (now + std::time::Duration::from_secs(365 * 86_400)).into();
        let key = KeyPair::generate().map_err(gen_err)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(gen_err)?;
        Ok(ServingPair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

/// RFC 1123 names, optionally with a leading `*.` wildcard label.
fn check_dns_name(host: &str) -> Result<(), CertsError> {
    let bad = |message: &str| CertsError::BadHost { host: host.to_string(), message: message.to_string() };
    let name = host.strip_prefix("*.").unwrap_or(host);
    if name.is_empty() || name.len() > 253 {
        return Err(bad("a DNS name has 1 to 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("each dot-separated label has 1 to 63 characters"));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(bad("labels hold letters, digits and inner '-' only"));
        }
    }
    Ok(())
}

/// Files written by [`write_dir`].
#[derive(Debug, Clone)]
pub struct Written {
    pub ca_cert: PathBuf,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
}

/// Writes `ca.crt`, `tls.crt` and `tls.key` (mode 0600) for `hosts` into `out` (created if needed).
pub fn write_dir(out: &Path, hosts: &[String]) -> Result<Written, CertsError> {
    let ca = Ca::new()?;
    let pair = ca.issue(hosts)?;
    std::fs::create_dir_all(out).map_err(|source| CertsError::Write { path: out.to_path_buf(), source })?;
    let written = Written { ca_cert: out.join("ca.crt"), tls_cert: out.join("tls.crt"), tls_key: out.join("tls.key") };
    write_file(&written.ca_cert, ca.cert_pem().as_bytes(), 0o644)?;
    write_file(&written.tls_cert, pair.cert_pem.as_bytes(), 0o644)?;
    write_file(&written.tls_key, pair.key_pem.as_bytes(), 0o600)?;
    Ok(written)
}

fn write_file(path: &Path, content: &[u8], mode: u32) -> Result<(), CertsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| CertsError::Write { path: path.to_path_buf(), source };
    let mut f =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path).map_err(err)?;
    f.write_all(content).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_ca_and_pair_that_load_and_verify() {
        use rustls::client::danger::ServerCertVerifier;
        let dir = tempfile::tempdir().unwrap();
        let w = write_dir(dir.path(), &["localhost".into(), "127.0.0.1".into()]).unwrap();
        let cert = std::fs::read(&w.tls_cert).unwrap();
        let key = std::fs::read(&w.tls_key).unwrap();
        let pair = crate::tls::load_pair(&cert, &key, "written").unwrap();
        assert_eq!(pair.key.cert.len(), 1);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&w.tls_key).unwrap().permissions().mode() & 0o777, 0o600);
        // The leaf verifies against the CA for both the DNS name and the IP.
        let mut roots = rustls::RootCertStore::empty();
        use rustls_pki_types::pem::PemObject;
        for c in rustls_pki_types::CertificateDer::pem_file_iter(&w.ca_cert).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            crate::tls::provider(),
        )
        .build()
        .unwrap();
        let now = rustls_pki_types::UnixTime::now();
        for host in ["localhost", "127.0.0.1"] {
            let name = rustls_pki_types::ServerName::try_from(host).unwrap();
            verifier.verify_server_cert(&pair.key.cert[0], &[], &name, &[], now).unwrap();
        }
        let other = rustls_pki_types::ServerName::try_from("example.com").unwrap();
        assert!(verifier.verify_server_cert(&pair.key.cert[0], &[], &other, &[], now).is_err());
    }

    #[test]
    fn rejects_no_hosts_and_bad_names() {
        let ca = Ca::new().unwrap();
        assert!(matches!(ca.issue(&[]), Err(CertsError::NoHosts)));
        let err = ca.issue(&["bad name!".into()]).unwrap_err();
        assert!(err.to_string().contains("bad name!"), "{err}");
    }
}
