//! Which providers the kubelet invokes for an image, and in which order the credentials they
//! return are tried (reference §7).

use std::collections::BTreeMap;

use serde::Serialize;

use super::config::CredentialProviderConfig;
use super::image::{ImageError, is_default_registry_match, normalize_image};
use super::url::{matches, parse_url};

/// One provider's verdict for an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderMatch {
    pub name: String,
    /// The kubelet executes this provider for the image.
    pub matched: bool,
    /// The first `matchImages` entry that matched (`null` when none did).
    #[serde(rename = "matchImage")]
    pub match_image: Option<String>,
}

/// Every provider of a config, in config order, for one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchReport {
    /// The image as given.
    pub image: String,
    /// The string the kubelet matches and sends to the plugin (`image` itself with `raw`).
    pub normalized: String,
    pub providers: Vec<ProviderMatch>,
}

impl MatchReport {
    /// Names of the providers the kubelet executes, in the order it executes them (config order;
    /// for a directory, file order).
    pub fn invoked(&self) -> Vec<&str> {
        self.providers.iter().filter(|p| p.matched).map(|p| p.name.as_str()).collect()
    }
}

/// Matches `image` against every provider. Unless `raw`, the image is first normalised as the
/// kubelet does (`nginx:1.25` -> `docker.io/library/nginx`); with `raw` it is matched verbatim,
/// which is what the `URLsMatchStr` primitive sees.
pub fn providers_for(config: &CredentialProviderConfig, image: &str, raw: bool) -> Result<MatchReport, ImageError> {
    let normalized = if raw { image.to_string() } else { normalize_image(image)? };
    let providers = config
        .providers
        .iter()
        .map(|p| {
            let hit = p.match_images.iter().find(|glob| matches(glob, &normalized)).cloned();
            ProviderMatch { name: p.name.clone(), matched: hit.is_some(), match_image: hit }
        })
        .collect();
    Ok(MatchReport { image: image.to_string(), normalized, providers })
}

/// One credential the kubelet would try, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialAttempt {
    pub provider: String,
    /// The `auth` key as the provider returned it.
    #[serde(rename = "authKey")]
    pub auth_key: String,
    /// The keyring index key it was stored under (scheme and `/v1`, `/v2` prefix removed).
    #[serde(rename = "keyringKey")]
    pub keyring_key: String,
}

/// The order in which the kubelet tries provider credentials for `image` (already normalised),
/// given the `auth` keys each invoked provider returned (`(provider, keys)` in config order).
///
/// All responses go into one `BasicDockerKeyring`: keys get `https://` unless they have a scheme,
/// unparseable keys are skipped, a leading `/v1/` or `/v2/` path is cut, and the index is sorted
/// reverse-lexicographically (longer keys before their prefixes). Every matching key contributes
/// its credentials in provider order; if none matches and the image is a Docker Hub image, keys
/// stored as `index.docker.io` are used. Pull secrets and the node's docker config are tried
/// before all of these; the first successful pull wins. Within one provider, two keys that map to
/// the same keyring key come out in Go map order, which is unspecified.
pub fn credential_attempt_order(image: &str, responses: &[(String, Vec<String>)]) -> Vec<CredentialAttempt> {
    let mut creds: BTreeMap<String, Vec<CredentialAttempt>> = BTreeMap::new();
    for (provider, keys) in responses {
        for loc in keys {
            let Some(key) = keyring_key(loc) else { continue };
            creds.entry(key.clone()).or_default().push(CredentialAttempt {
                provider: provider.clone(),
                auth_key: loc.clone(),
                keyring_key: key,
            });
        }
    }
    let mut out = Vec::new();
    for (key, attempts) in creds.iter().rev() {
        if matches(key, image) {
            out.extend(attempts.iter().cloned());
        }
    }
    if out.is_empty()
        && is_default_registry_match(image)
        && let Some(attempts) = creds.get("index.docker.io")
    {
        out.extend(attempts.iter().cloned());
    }
    out
}

/// `BasicDockerKeyring.Add`'s key for one `auth` entry; `None` when Go's url.Parse rejects it.
pub fn keyring_key(loc: &str) -> Option<String> {
    let (value, scheme) = if loc.starts_with("https://") {
        (loc.to_string(), "https")
    } else if loc.starts_with("http://") {
        (loc.to_string(), "http")
    } else {
        (format!("https://{loc}"), "https")
    };
    let parsed = parse_url(&value, scheme).ok()?;
    let host = String::from_utf8_lossy(&parsed.host).into_owned();
    let mut path: &[u8] = &parsed.path;
    if path.starts_with(b"/v2/") || path.starts_with(b"/v1/") {
        path = &path[3..];
    }
    if !path.is_empty() && path != b"/" { Some(format!("{host}{}", String::from_utf8_lossy(path))) } else { Some(host) }
}
