//! `URLsMatchStr` (matchImages matching) and Go `url.Parse` edge cases, on already-normalised
//! image strings, as the kubelet's keyring.go does them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kubelet_providers::url::{glob_match, parse_schemeless_url, split_host_port};
use kubelet_providers::{matches, urls_match_str};

fn check(table: &[(&str, &str, bool)]) {
    let mut failures = Vec::new();
    for (glob, target, want) in table {
        let got = matches(glob, target);
        if got != *want {
            failures.push(format!("matches({glob:?}, {target:?}) = {got}, want {want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn upstream_keyring_table() {
    check(&[
        ("*.kubernetes.io", "prefix.kubernetes.io", true),
        ("prefix.*.io", "prefix.kubernetes.io", true),
        ("prefix.kubernetes.*", "prefix.kubernetes.io", true),
        ("*-good.kubernetes.io", "prefix-good.kubernetes.io", true),
        ("*.kubernetes.io/blah", "prefix.kubernetes.io/blah", true),
        ("prefix.*.io/foo", "prefix.kubernetes.io/foo/bar", true),
        ("*.kubernetes.io:1111/blah", "prefix.kubernetes.io:1111/blah", true),
        ("prefix.*.io:1111/foo", "prefix.kubernetes.io:1111/foo/bar", true),
        ("*.kubernetes.io", "kubernetes.io", false),
        ("*.*.kubernetes.io", "prefix.kubernetes.io", false),
        ("*.*.kubernetes.io", "kubernetes.io", false),
        ("kubernetes.io", "kubernetes.com", false),
        ("k*.io", "quay.io", false),
        ("*.kubernetes.io:1234/blah", "prefix.kubernetes.io:1111/blah", false),
        ("prefix.*.io/foo", "prefix.kubernetes.io:1111/foo/bar", false),
    ]);
}

#[test]
fn ports_compare_as_strings() {
    check(&[
        ("registry.io:5000", "registry.io:5000/app", true),
        ("registry.io:5000", "registry.io/app", false),
        ("registry.io", "registry.io:5000/app", false),
        ("registry.io:8080", "registry.io:08080/app", false),
        ("registry.io:08080", "registry.io:08080/app", true),
        // An empty port after ':' splits to port "", which equals "no port".
        ("registry.io:", "registry.io/app", true),
        ("registry.io", "registry.io:/app", true),
        // No glob in ports: the pattern does not even parse.
        ("registry.io:*", "registry.io:5000/app", false),
        ("localhost:5000", "localhost:5000/app", true),
        ("*:5000", "localhost:5000/app", true),
        ("*", "localhost:5000/app", false),
    ]);
}

#[test]
fn paths_are_plain_byte_prefixes() {
    check(&[
        ("registry.io", "registry.io/anything/at/all", true),
        ("registry.io/team", "registry.io/team/app", true),
        ("registry.io/team", "registry.io/team", true),
        // Not segment aware.
        ("registry.io/team", "registry.io/teamz/app", true),
        ("registry.io/x/pong", "registry.io/x/pongz", true),
        ("registry.io/team/", "registry.io/team", false),
        ("registry.io/", "registry.io", false),
        // Globs are not expanded in paths.
        ("registry.io/x/*", "registry.io/x/app", false),
        ("registry.io/x/*", "registry.io/x/*", true),
        ("registry.io/Team", "registry.io/team/app", false),
        // The path is compared percent-decoded.
        ("registry.io/a%2Fb", "registry.io/a/b/c", true),
        ("registry.io/a%20b", "registry.io/a b", true),
        ("registry.io/app", "registry.io/ap", false),
    ]);
}

#[test]
fn globs_apply_per_host_label() {
    check(&[
        ("*.k8s.io", "registry.k8s.io/pause", true),
        ("*.io", "registry.k8s.io/pause", false),
        ("*.k8s.io", "k8s.io/pause", false),
        ("app*.k8s.io", "apps.k8s.io", true),
        ("app*.k8s.io", "app.k8s.io", true),
        ("app*.k8s.io", "myapp.k8s.io", false),
        ("*app.k8s.io", "myapp.k8s.io", true),
        ("a*b*c.io", "axxbyyc.io", true),
        ("a*b*c.io", "axxbyyd.io", false),
        ("**.io", "x.io", true),
        ("*", "localhost/x", true),
        ("*", "docker.io/library/nginx", false),
        ("*.*", "docker.io/library/nginx", true),
        ("*.*.*", "docker.io/library/nginx", false),
        ("Registry.io", "registry.io", false),
        ("docker.io", "docker.io/library/nginx", true),
        ("index.docker.io", "docker.io/library/nginx", false),
        ("*.docker.io", "docker.io/library/nginx", false),
        ("nginx", "docker.io/library/nginx", false),
        // IPv4 hosts are dotted labels like any other.
        ("10.0.0.*:5000", "10.0.0.1:5000/x", true),
        ("10.0.0.*", "10.0.0.1:5000/x", false),
        ("10.*.*.*:5000", "10.1.2.3:5000/x", true),
    ]);
}

#[test]
fn character_classes_in_labels() {
    check(&[
        ("reg[0-9].io", "reg1.io", true),
        ("reg[0-9].io", "regx.io", false),
        // '^' is not a valid host character for url.Parse: a negated class never parses.
        ("reg[^0-9].io", "regx.io", false),
        ("reg[^0-9].io", "reg1.io", false),
        // '!' is a literal inside a class in Go, not a negation.
        ("reg[!0-9].io", "reg!.io", true),
        ("reg[!0-9].io", "reg1.io", true),
        ("reg[!0-9].io", "regx.io", false),
        ("reg[abc].io", "regb.io", true),
        ("reg[a-cx-z].io", "regy.io", true),
        ("reg[a-cx-z].io", "regm.io", false),
        // Malformed classes are ErrBadPattern: never a match.
        ("reg[.io", "reg[.io", false),
        ("reg[a-].io", "rega.io", false),
        ("reg[].io", "reg].io", false),
        ("reg[]a].io", "rega.io", false),
        // A class at the start of the host looks like an IPv6 literal and fails to parse.
        ("[a-z]eg.io", "reg.io", false),
    ]);
    // The glob primitive itself.
    assert_eq!(glob_match(b"reg[^0-9]", b"regx"), Ok(true));
    assert_eq!(glob_match(b"reg[^0-9]", b"reg1"), Ok(false));
    assert_eq!(glob_match(b"reg[", b"reg1"), Err(kubelet_providers::url::BadPattern));
    assert_eq!(glob_match(b"a*", b"abc"), Ok(true));
    assert_eq!(glob_match(b"a*", b"a/c"), Ok(false));
    assert_eq!(glob_match(b"a?c", b"abc"), Ok(true));
    assert_eq!(glob_match(b"a?c", b"a/c"), Ok(false));
    assert_eq!(glob_match(b"a\\*c", b"a*c"), Ok(true));
    assert_eq!(glob_match(b"a\\", b"a"), Err(kubelet_providers::url::BadPattern));
    assert_eq!(glob_match(b"[\xc3\xa9]", "é".as_bytes()), Ok(true));
    // A pattern that fails to match early is still checked to its end.
    assert_eq!(glob_match(b"x[", b"y"), Err(kubelet_providers::url::BadPattern));
    assert!(urls_match_str("reg[.io", "reg1.io").is_err());
}

#[test]
fn ipv6_literals() {
    check(&[
        ("[::1]:5000", "[::1]:5000/app", true),
        ("[::1]:5000", "[::1]:5001/app", false),
        ("[::1]:5000", "[::1]/app", false),
        // Without a port the brackets stay part of the single label, where filepath.Match reads
        // them as a character class: "[::1]" matches the one-character host "1" or ":", not itself.
        ("[::1]", "[::1]/app", false),
        ("[::1]", "1/app", true),
        ("[::1]", "[::1]:5000/app", false),
        ("[::1]:5000", "[::2]:5000/app", false),
        ("[fe80::1%25en0]:5000", "[fe80::1%25en0]:5000/x", true),
        ("[::1", "[::1/app", false),
    ]);
    assert_eq!(split_host_port(b"[::1]:5000"), Some((&b"::1"[..], &b"5000"[..])));
    assert_eq!(split_host_port(b"[::1]"), None);
    assert_eq!(split_host_port(b"a:1:2"), None);
    assert_eq!(split_host_port(b"host:"), Some((&b"host"[..], &b""[..])));
    assert_eq!(split_host_port(b"host"), None);
    assert_eq!(split_host_port(b"x[y]:1"), None);
}

#[test]
fn schemes_userinfo_query_fragment() {
    check(&[
        // A scheme is never stripped: "https:" becomes the host.
        ("https://registry.io", "registry.io/app", false),
        ("https://registry.io", "https://registry.io/app", true),
        ("http://registry.io", "registry.io", false),
        // Userinfo is dropped on both sides.
        ("user@registry.io", "registry.io/app", true),
        ("user:pass@registry.io", "registry.io/app", true),
        ("a@b@registry.io", "registry.io/app", true),
        ("registry.io", "user@registry.io/app", true),
        ("us er@registry.io", "registry.io/app", false),
        // '?' starts a query, '#' a fragment: both are dropped.
        ("registry.io?x", "registry.io/app", true),
        ("registry.io/app?tag", "registry.io/app", true),
        ("registry.io#frag", "registry.io/app", true),
        ("registry.io/app#x", "registry.io/apple", true),
        ("reg?.io", "reg/anything", true),
        ("reg?.io", "regx.io", false),
        ("registry.io?", "registry.io/a", true),
        ("registry.io/a?b?c", "registry.io/a", true),
        ("registry.io#%zz", "registry.io/a", false),
    ]);
}

#[test]
fn parse_errors_are_worded_like_go() {
    let cases: &[(&str, &str)] = &[
        ("%invalid%", r#"parse "https://%invalid%": invalid URL escape "%in""#),
        ("registry.io:*", r#"parse "https://registry.io:*": invalid port ":*" after host"#),
        ("registry.io:80a", r#"parse "https://registry.io:80a": invalid port ":80a" after host"#),
        ("my registry.io", r#"parse "https://my registry.io": invalid character " " in host name"#),
        ("reg^.io", r#"parse "https://reg^.io": invalid character "^" in host name"#),
        ("reg{.io", r#"parse "https://reg{.io": invalid character "{" in host name"#),
        ("reg|.io", r#"parse "https://reg|.io": invalid character "|" in host name"#),
        ("reg\\.io", r#"parse "https://reg\\.io": invalid character "\\" in host name"#),
        ("[::1", r#"parse "https://[::1": missing ']' in host"#),
        ("[::1]x", r#"parse "https://[::1]x": invalid port "x" after host"#),
        ("registry.io/%zz", r#"parse "https://registry.io/%zz": invalid URL escape "%zz""#),
        ("registry.io/%4", r#"parse "https://registry.io/%4": invalid URL escape "%4""#),
        ("reg%41.io", r#"parse "https://reg%41.io": invalid URL escape "%41""#),
        ("registry.io#%zz", r#"parse "https://registry.io#%zz": invalid URL escape "%zz""#),
        ("a\tb", r#"parse "https://a\tb": net/url: invalid control character in URL"#),
        ("us er@registry.io", r#"parse "https://us er@registry.io": net/url: invalid userinfo"#),
        ("u%zz@registry.io", r#"parse "https://u%zz@registry.io": invalid URL escape "%zz""#),
    ];
    for (input, want) in cases {
        let got = parse_schemeless_url(input).map(|_| ()).map_err(|e| e.to_string());
        assert_eq!(got, Err(want.to_string()), "input {input:?}");
    }
    for ok in ["", "*", "https://x", "x/*", "reg%C3%A9.io", "[::1]:5000", "registry.io:", "*.*.io/a b", "a?%zz"] {
        assert!(parse_schemeless_url(ok).is_ok(), "{ok:?} should parse");
    }
    let u = parse_schemeless_url("user@reg%C3%A9.io:5000/a%2Fb?q#f").unwrap();
    assert_eq!(u.host, "regé.io:5000".as_bytes());
    assert_eq!(u.path, b"/a/b");
}
