//! The image string the kubelet matches against `matchImages`: distribution/reference
//! `ParseNormalizedNamed(image).Name()` (reference v0.6 grammar). Tags and digests are dropped,
//! Docker Hub names are fully qualified (`nginx` -> `docker.io/library/nginx`).

use super::gofmt::quote;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// An image reference the kubelet rejects with `InvalidImageName` before any provider runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("couldn't parse image name {}: {reason}", quote(image))]
pub struct ImageError {
    pub image: String,
    pub reason: String,
}

/// `ParseNormalizedNamed(image).Name()`: what the kubelet matches and sends to the plugin.
pub fn normalize_image(image: &str) -> Result<String, ImageError> {
    let fail = |reason: String| ImageError { image: image.to_string(), reason };
    if image.len() == 64 && image.bytes().all(|b| matches!(b, b'a'..=b'f' | b'0'..=b'9')) {
        return Err(fail(format!("invalid repository name ({image}), cannot specify 64-byte hexadecimal strings")));
    }
    let (domain, remainder) = split_docker_domain(image);
    let remote_name = remainder.split(':').next().unwrap_or_default();
    if remote_name.to_lowercase() != remote_name {
        return Err(fail(format!("invalid reference format: repository name ({remote_name}) must be lowercase")));
    }
    let parsed = parse_reference(&format!("{domain}/{remainder}")).map_err(fail)?;
    Ok(parsed.name)
}

/// reference `splitDockerDomain`: the first component is a registry if it has `.` or `:`, is
/// `localhost`, or has an uppercase letter.
fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" || first.to_lowercase() != first => {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
    }
    (domain, remainder)
}

/// A parsed reference: `name[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub name: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// reference `Parse`: matches `ReferenceRegexp`, checks the name length and the digest.
pub fn parse_reference(s: &str) -> Result<Reference, String> {
    let Some(reference) = match_reference(s) else {
        if s.is_empty() {
            return Err("repository name must have at least one component".into());
        }
        if match_reference(&s.to_lowercase()).is_some() {
            return Err("repository name must be lowercase".into());
        }
        return Err("invalid reference format".into());
    };
    if reference.name.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(format!("repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"));
    }
    if let Some(d) = &reference.digest {
        validate_digest(d)?;
    }
    Ok(reference)
}

/// Anchored `ReferenceRegexp` = name (`:` tag)? (`@` digest)?, decided without backtracking: a
/// tag never contains `/` or `:`, a digest never contains `@`.
fn match_reference(s: &str) -> Option<Reference> {
    let (before, digest) = match s.split_once('@') {
        Some((b, d)) => {
            if !is_digest_syntax(d) {
                return None;
            }
            (b, Some(d.to_string()))
        }
        None => (s, None),
    };
    let (name, tag) = match before.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => {
            if !is_tag(t) {
                return None;
            }
            (n, Some(t.to_string()))
        }
        _ => (before, None),
    };
    is_name(name).then(|| Reference { name: name.to_string(), tag, digest })
}

/// `NameRegexp`: optional `domainAndPort/`, then path components separated by `/`.
fn is_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    if parts.iter().all(|p| is_path_component(p)) {
        return true;
    }
    parts.len() >= 2 && is_domain_and_port(parts[0]) && parts[1..].iter().all(|p| is_path_component(p))
}

/// `pathComponent` = `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
fn is_path_component(p: &str) -> bool {
    let b = p.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &p[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `domainAndPort` = (domainName | `\[[a-fA-F0-9:]+\]`) (`:[0-9]+`)?.
fn is_domain_and_port(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return false;
        };
        let inner = &rest[..end];
        if inner.is_empty() || !inner.bytes().all(|c| c.is_ascii_hexdigit() || c == b':') {
            return false;
        }
        (&d[..end + 2], &rest[end + 1..])
    } else {
        match d.find(':') {
            Some(i) => (&d[..i], &d[i..]),
            None => (d, ""),
        }
    };
    if !port.is_empty() {
        let Some(digits) = port.strip_prefix(':') else {
            return false;
        };
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    host.starts_with('[') || host.split('.').all(is_domain_component)
}

/// `domainNameComponent` = `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn is_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
}

/// `tag` = `[\w][\w.-]{0,127}`.
fn is_tag(t: &str) -> bool {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let b = t.as_bytes();
    !b.is_empty() && b.len() <= 128 && word(b[0]) && b.iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

/// `digest` = `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}`.
fn is_digest_syntax(d: &str) -> bool {
    let Some((algo, hex)) = d.split_once(':') else {
        return false;
    };
    let algo_ok = algo.split(['-', '_', '+', '.']).all(|c| {
        let b = c.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
    });
    algo_ok && hex.len() >= 32 && hex.bytes().all(|c| c.is_ascii_hexdigit())
}

/// go-digest `Digest.Validate` for the algorithms the kubelet links in.
fn validate_digest(d: &str) -> Result<(), String> {
    let (algo, encoded) = d.split_once(':').unwrap_or((d, ""));
    let size = match algo {
        "sha256" => 32,
        "sha384" => 48,
        "sha512" => 64,
        _ => {
            let lower_syntax = algo
                .split(['.', '+', '_', '-'])
                .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
                && !encoded.is_empty()
                && encoded.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
            return Err(
                if lower_syntax { "unsupported digest algorithm" } else { "invalid checksum digest format" }.into()
            );
        }
    };
    if encoded.len() != size * 2 {
        return Err("invalid checksum digest length".into());
    }
    if !encoded.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err("invalid checksum digest format".into());
    }
    Ok(())
}

/// keyring.go `isDefaultRegistryMatch`: whether credentials stored for `index.docker.io` apply
/// to `image` when no other auth key matched.
pub fn is_default_registry_match(image: &str) -> bool {
    let (first, rest) = match image.split_once('/') {
        Some((f, r)) => (f, Some(r)),
        None => (image, None),
    };
    if first.is_empty() {
        return false;
    }
    if rest.is_none() || first == DEFAULT_DOMAIN || first == LEGACY_DEFAULT_DOMAIN {
        return true;
    }
    !first.contains(['.', ':'])
}
