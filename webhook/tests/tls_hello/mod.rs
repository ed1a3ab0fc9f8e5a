//! Hand-built TLS ClientHello records, for clients rustls cannot be (TLS 1.0/1.1, legacy suites).
#![allow(dead_code)]

/// Cipher suites a TLS 1.0/1.1-era client offers: ECDHE/RSA key exchange with AES-CBC-SHA,
/// 3DES and RC4, and RSA key exchange with AES-GCM (no forward secrecy).
pub const LEGACY_SUITES: &[u16] = &[0xc013, 0xc014, 0xc009, 0xc00a, 0x002f, 0x0035, 0x000a, 0x0005, 0x009c, 0x009d];
/// TLS 1.2 ECDHE + AEAD suites (ECDSA and RSA certificates).
pub const MODERN_TLS12_SUITES: &[u16] = &[0xc02b, 0xc02c, 0xcca9, 0xc02f, 0xc030, 0xcca8];

/// A ClientHello record: `legacy` is the ClientHello version; a non-empty `supported` adds a
/// supported_versions extension listing those versions. Always sends SNI `localhost`, x25519 and
/// P-256, uncompressed points, ECDSA/RSA-PSS/RSA signature algorithms and extended master secret.
pub fn client_hello(legacy: u16, supported: &[u16], suites: &[u16]) -> Vec<u8> {
    fn u16be(v: usize) -> [u8; 2] {
        (v as u16).to_be_bytes()
    }
    let mut ext = Vec::new();
    let host = b"localhost";
    let mut sni = Vec::new();
    sni.extend(u16be(host.len() + 3));
    sni.push(0);
    sni.extend(u16be(host.len()));
    sni.extend(host);
    ext.extend([0, 0]);
    ext.extend(u16be(sni.len()));
    ext.extend(&sni);
    ext.extend([0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]); // supported_groups
    ext.extend([0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]); // ec_point_formats
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256
    ext.extend([0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01]);
    ext.extend([0x00, 0x17, 0x00, 0x00]); // extended_master_secret
    if !supported.is_empty() {
        ext.extend([0x00, 0x2b]);
        ext.extend(u16be(supported.len() * 2 + 1));
        ext.push((supported.len() * 2) as u8);
        for v in supported {
            ext.extend(v.to_be_bytes());
        }
    }
    let mut body = Vec::new();
    body.extend(legacy.to_be_bytes());
    body.extend([0x5a; 32]); // random
    body.push(0); // no session id
    body.extend(u16be(suites.len() * 2));
    for s in suites {
        body.extend(s.to_be_bytes());
    }
    body.extend([1, 0]); // compression: null only
    body.extend(u16be(ext.len()));
    body.extend(&ext);
    let mut hs = vec![1, (body.len() >> 16) as u8, (body.len() >> 8) as u8, body.len() as u8];
    hs.extend(&body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend(u16be(hs.len()));
    rec.extend(&hs);
    rec
}

/// Sends `hello` on a fresh connection and returns everything the server sent until it closed
/// (or 5 s passed).
pub async fn exchange(addr: std::net::SocketAddr, hello: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(hello).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    // A ServerHello is followed by more flights; stop once the first record is complete.
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
        if out.len() >= 5 && out.len() >= 5 + u16::from_be_bytes([out[3], out[4]]) as usize && out[0] == 0x16 {
            break;
        }
    }
    out
}

/// The cipher suite a ServerHello record selected (`None` if `out` does not start with one).
pub fn server_hello_suite(out: &[u8]) -> Option<u16> {
    // record(5) type(1) len(3) version(2) random(32) session_id_len(1) session_id suite(2)
    if out.len() < 44 || out[0] != 0x16 || out[5] != 2 {
        return None;
    }
    let sid = out[43] as usize;
    let at = 44 + sid;
    (out.len() >= at + 2).then(|| u16::from_be_bytes([out[at], out[at + 1]]))
}
