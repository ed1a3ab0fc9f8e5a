//! Arbitrary input through every kubelet entry point: errors are fine, panics are not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kubelet_providers::url::{glob_match, parse_schemeless_url};
use kubelet_providers::{GoDuration, decode_config, normalize_image, urls_match_str};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A short string biased towards the characters the parsers care about.
    fn text(&mut self) -> String {
        const ALPHABET: &[&str] = &[
            "a",
            "z",
            "0",
            "9",
            ".",
            ":",
            "/",
            "@",
            "?",
            "#",
            "%",
            "%2",
            "%25",
            "%zz",
            "[",
            "]",
            "^",
            "!",
            "-",
            "*",
            "\\",
            " ",
            "\t",
            "é",
            "\u{0}",
            "_",
            "__",
            "localhost",
            "docker.io",
            "sha256:",
            "h",
            "m",
            "s",
            "ns",
            "µs",
            "+",
            "{",
            "}",
            "|",
            "A",
            "Z",
        ];
        let len = (self.next() % 24) as usize;
        (0..len).map(|_| ALPHABET[(self.next() % ALPHABET.len() as u64) as usize]).collect()
    }
}

#[test]
fn strings_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..40_000 {
        let a = rng.text();
        let b = rng.text();
        let _ = parse_schemeless_url(&a);
        let _ = urls_match_str(&a, &b);
        let _ = glob_match(a.as_bytes(), b.as_bytes());
        let _ = normalize_image(&a);
        let _ = GoDuration::parse(&a);
    }
}

#[test]
fn documents_never_panic() {
    let mut rng = Rng(42);
    let pieces: &[&[u8]] = &[
        b"apiVersion: kubelet.config.k8s.io/v1\n",
        b"kind: CredentialProviderConfig\n",
        b"providers:\n",
        b"- ",
        b"  ",
        b"name: ",
        b"matchImages: ",
        b"[",
        b"]",
        b"{",
        b"}",
        b",",
        b"\"",
        b"'",
        b"&a ",
        b"*a",
        b"!!binary ",
        b"defaultCacheDuration: ",
        b"tokenAttributes: ",
        b"null",
        b"true",
        b"1.5",
        b"-1m",
        b"\n",
        b"\xff",
        b"\x00",
        b"---\n",
        b"<<: ",
        b"? ",
        b"|\n",
        b"#",
    ];
    for _ in 0..5_000 {
        let n = (rng.next() % 40) as usize;
        let doc: Vec<u8> =
            (0..n).flat_map(|_| pieces[(rng.next() % pieces.len() as u64) as usize].iter().copied()).collect();
        let _ = decode_config(&doc, "fuzz.yaml");
    }
}
