//! Lint-level warnings for configs the kubelet accepts but that do not do what their author meant:
//! `matchImages` entries that can never match an image (reference §5, §6), or match far less than
//! they seem to, and an `IMAGE` argument of `provider match` that the image parser reads otherwise.
//! Every warning has a stable code from [`super::report`]'s table.

use super::config::CredentialProvider;
use super::gofmt::quote;
use super::image::normalize_image;
use super::report::{
    ConfigFinding, KCP_BAD_GLOB, KCP_DOCKER_HUB_ALIAS, KCP_DROPPED_PARTS, KCP_EMPTY_MATCH_IMAGE, KCP_EMPTY_NAME,
    KCP_IMAGE_ARG_PORT, KCP_ONE_LABEL_HOST, KCP_PATH_GLOB, KCP_SCHEME, KCP_TAG_IN_MATCH_IMAGE,
};
use super::url::{SchemelessUrl, glob_match, parse_schemeless_url, split_url};

/// Characters that make a host label a glob (Go `filepath.Match`).
const GLOB_CHARS: [char; 3] = ['*', '[', '\\'];

/// Warnings for one provider, in field order.
pub fn provider_warnings(p: &CredentialProvider) -> Vec<ConfigFinding> {
    let mut out = Vec::new();
    if p.name.is_empty() {
        out.push(ConfigFinding::warning(
            KCP_EMPTY_NAME,
            p,
            format!("providers[{}].name", p.index),
            "the provider name is empty: the kubelet's validation accepts it, but registering the provider then \
             fails because no plugin binary can be named \"\" in --image-credential-provider-bin-dir, and the \
             kubelet does not start"
                .to_string(),
            "set name to the file name of the plugin binary (e.g. ecr-credential-provider)".to_string(),
        ));
    }
    for (j, entry) in p.match_images.iter().enumerate() {
        let field = format!("providers[{}].matchImages[{j}]", p.index);
        if let Some((message, hint, code)) = match_image_warning(entry) {
            out.push(ConfigFinding::warning(code, p, field, format!("{} {message}", quote(entry)), hint));
        }
    }
    out
}

/// The first pitfall of one `matchImages` entry: (message after the quoted entry, hint, code).
/// Entries the kubelet rejects (validation errors) get none.
fn match_image_warning(entry: &str) -> Option<(String, String, &'static str)> {
    if entry.is_empty() {
        return Some((
            "is empty: the kubelet accepts it, but it matches no image".into(),
            "remove the entry or write a registry host".into(),
            KCP_EMPTY_MATCH_IMAGE,
        ));
    }
    let url = parse_schemeless_url(entry).ok()?;
    if let Some((scheme, rest)) = entry.split_once("://") {
        return Some((
            format!(
                "has a scheme, which the kubelet does not strip: it puts https:// in front of every entry and \
                 reads this one as host {} with path {}, so it matches no image",
                quote(&String::from_utf8_lossy(&url.host)),
                quote(&String::from_utf8_lossy(&url.path)),
            ),
            format!("drop {scheme}://: write {rest}"),
            KCP_SCHEME,
        ));
    }
    if let Some(w) = dropped_parts(entry, &url) {
        return Some(w);
    }
    let (labels, port) = split_url(&url);
    let labels: Vec<String> = labels.iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect();
    if let Some(bad) = labels.iter().find(|l| glob_match(l.as_bytes(), b"").is_err()) {
        return Some((
            format!(
                "has the host label pattern {}, which is not a valid glob (filepath.Match syntax error): the kubelet \
                 treats it as no match, so this entry matches no image",
                quote(bad)
            ),
            "close the [ ] class or escape the character".into(),
            KCP_BAD_GLOB,
        ));
    }
    let path = String::from_utf8_lossy(&url.path).into_owned();
    let host = String::from_utf8_lossy(&url.host).into_owned();
    if port.is_empty() {
        if let Some(w) = docker_hub_alias(&labels, &path) {
            return Some(w);
        }
        if let [label] = labels.as_slice()
            && let Some(w) = one_label_host(label, &path)
        {
            return Some(w);
        }
    }
    if let Some(cut) = path.find(['*', '[']) {
        let prefix = &path[..cut];
        return Some((
            format!(
                "has a glob in its path: globs work only in host labels; the path is compared as a plain \
                 prefix, so {} is a literal character there and this entry matches no image",
                quote(&path[cut..cut + 1])
            ),
            format!(
                "write the prefix without the glob: {host}{prefix} (a prefix is not segment aware: {host}/team \
                 also matches {host}/teamx)"
            ),
            KCP_PATH_GLOB,
        ));
    }
    if let Some(cut) = path.find([':', '@']) {
        return Some((
            "has a tag or digest: the kubelet matches image names without tag or digest (registry.example.com/app \
             for registry.example.com/app:v1), so this entry matches no image"
                .into(),
            format!("drop the tag or digest: {host}{}", &path[..cut]),
            KCP_TAG_IN_MATCH_IMAGE,
        ));
    }
    None
}

/// `?` (query), `#` (fragment) and `user@` are cut off by the URL parser.
fn dropped_parts(entry: &str, url: &SchemelessUrl) -> Option<(String, String, &'static str)> {
    let authority = entry.split('/').next().unwrap_or_default();
    let what = if entry.contains('?') {
        "`?` starts a URL query"
    } else if entry.contains('#') {
        "`#` starts a URL fragment"
    } else if authority.contains('@') {
        "`user@` is URL user information"
    } else {
        return None;
    };
    Some((
        format!(
            "is parsed as a URL, where {what}: the kubelet drops that part and matches this entry as {}",
            quote(&url.to_string())
        ),
        format!("write {url} if that is what you meant; globs are `*` and `[a-z]` in host labels"),
        KCP_DROPPED_PARTS,
    ))
}

/// Docker Hub images are matched as `docker.io/...`: `index.docker.io` is rewritten before matching,
/// and `*.docker.io` needs a three-label host.
fn docker_hub_alias(labels: &[String], path: &str) -> Option<(String, String, &'static str)> {
    let [first, docker, io] = labels else { return None };
    if docker != "docker" || io != "io" {
        return None;
    }
    let hint = format!("to cover Docker Hub use docker.io{path} (nginx is matched as docker.io/library/nginx)");
    if first == "index" {
        return Some((
            "never matches: the kubelet rewrites index.docker.io to docker.io before matching (index.docker.io/x/app \
             and x/app both become docker.io/x/app)"
                .into(),
            hint,
            KCP_DOCKER_HUB_ALIAS,
        ));
    }
    if first.contains(GLOB_CHARS) {
        return Some((
            format!(
                "does not match Docker Hub images: the kubelet matches them as docker.io/... (nginx, docker.io/nginx and \
                 index.docker.io/nginx all become docker.io/library/nginx), whose host has two labels, while this \
                 pattern needs exactly three ({} is one whole label); it matches only images written with another \
                 host under docker.io, such as registry-1.docker.io/...",
                quote(first)
            ),
            hint,
            KCP_DOCKER_HUB_ALIAS,
        ));
    }
    None
}

/// One host label and no port: after normalisation only `localhost` (or an upper-case or IPv6
/// registry) has that shape; `nginx` and `myuser/app` are Docker Hub names.
fn one_label_host(label: &str, path: &str) -> Option<(String, String, &'static str)> {
    if label == "localhost" || label.starts_with('[') || label.chars().any(|c| c.is_ascii_uppercase()) {
        return None;
    }
    if glob_match(label.as_bytes(), b"localhost") == Ok(true) {
        return Some((
            format!(
                "has one host label and no port, so it matches only localhost/... images: every other image \
                 the kubelet matches has a host with a dot or a port (nginx is matched as docker.io/library/nginx), \
                 and {} never spans a dot",
                quote(label)
            ),
            "to match more registries list one entry per shape (`*.*`, `*.*.*`, `*.*:5000`, ...) or, better, name \
             the registries"
                .into(),
            KCP_ONE_LABEL_HOST,
        ));
    }
    if label.contains(GLOB_CHARS) {
        return Some((
            "has one host label and no port: after normalisation only localhost/... images have that shape, and \
             this pattern does not match localhost, so it matches no image"
                .into(),
            "write the registry's full host name (with its dots and port)".into(),
            KCP_ONE_LABEL_HOST,
        ));
    }
    let docker_name = if path.is_empty() { format!("library/{label}") } else { format!("{label}{path}") };
    let meant = normalize_image(&format!("{label}{path}")).unwrap_or_else(|_| format!("docker.io/{docker_name}"));
    Some((
        format!(
            "is read as a registry host named {}, not as an image: the kubelet matches normalised names, whose host \
             has a dot or a port or is localhost ({label}{path} becomes {meant}), so this entry matches no image",
            quote(label)
        ),
        format!("for that Docker Hub repository write {meant}; for a registry write its full host name"),
        KCP_ONE_LABEL_HOST,
    ))
}

/// A warning about the `IMAGE` argument of `provider match` (not for `--raw`): `registry:5000` is
/// an image named `registry` with tag `5000`, not a registry host and port.
pub fn image_argument_warning(image: &str) -> Option<ConfigFinding> {
    if image.contains('/') {
        return None;
    }
    let (name, tag) = image.rsplit_once(':')?;
    if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let normalized = normalize_image(image).ok()?;
    Some(ConfigFinding {
        message: format!(
            "{} is read as the image {normalized} with tag {tag}, not as the registry {name} on port {tag}: a \
             registry is only recognised before a `/`",
            quote(image)
        ),
        hint: format!("to ask about a registry, name an image on it: {image}/app"),
        ..ConfigFinding::bare(KCP_IMAGE_ARG_PORT, "IMAGE")
    })
}
