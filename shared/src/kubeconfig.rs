//! The trust rule for kubeconfigs read from a Region's Secret.
//!
//! Whoever can write a Region's kubeconfig Secret (for a `spec.clusterDeployment` Region that is
//! `<cd>-kubeconfig` in a tenant namespace) must not be able to make the reader of that kubeconfig
//! run a command or read its local files. A kube client honours `users[].user.exec` and
//! `auth-provider` (they run commands), `tokenFile`, `client-certificate`, `client-key` and
//! `clusters[].cluster.certificate-authority` (they read local files: inside the webhook pod a
//! `tokenFile` of the ServiceAccount token plus an attacker's `server` leaks that token), and
//! `proxy-url` (it routes the traffic through a host the kubeconfig names). Such a kubeconfig is
//! rejected before any client is built. Only inline credentials stay allowed: `token`,
//! `username`/`password`, `client-certificate-data`, `client-key-data`,
//! `certificate-authority-data`.
//!
//! Callers parse with [`parse_untrusted`] and build their client from the value it returns, so
//! that exactly the checked document is used. Errors name the field path, never its value.

use serde_json::{Map, Value};

use crate::model::{self, Region};
use crate::yaml::{self, YamlError};

/// Where a Region's kubeconfig lives: a Secret and the data key holding the kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KubeconfigRef {
    pub namespace: String,
    pub name: String,
    pub key: String,
}

impl std::fmt::Display for KubeconfigRef {
    /// `Secret ns/name[key]`: names only, never a value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret {}/{}[{}]", self.namespace, self.name, self.key)
    }
}

/// Why a Region names no usable kubeconfig Secret; each message names the Region, the field and
/// the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeconfigRefError {
    #[error("Region {region} cannot be read: {detail}")]
    Invalid { region: String, detail: String },
    #[error("Region {region} has neither spec.kubeConfig nor spec.clusterDeployment; set exactly one")]
    NoSource { region: String },
    #[error("Region {region}: {field} is empty; {fix}")]
    Empty { region: String, field: &'static str, fix: &'static str },
}

impl KubeconfigRefError {
    /// The fix, as a step: both reference fields are immutable (KCM's CEL rules), so it is a
    /// recreate.
    pub fn fix(&self) -> String {
        match self {
            KubeconfigRefError::Invalid { region, .. } | KubeconfigRefError::NoSource { region } => format!(
                "recreate Region {region} with exactly one of spec.kubeConfig {{name, key}} or spec.clusterDeployment {{name, namespace}}"
            ),
            KubeconfigRefError::Empty { region, field, .. } => {
                format!("recreate Region {region} with {field} set (the reference is immutable)")
            }
        }
    }
}

/// The one answer to "where is this Region's kubeconfig", as KCM's `GetRegionalClient` reads it:
/// `spec.kubeConfig` is Secret `name` in the system namespace, data key `key` (KCM has no default
/// key: an empty one fails there too); `spec.clusterDeployment` is CAPI's Secret `<name>-kubeconfig`
/// in the ClusterDeployment's namespace, data key `value`.
pub fn region_kubeconfig_ref(region: &Region, system_namespace: &str) -> Result<KubeconfigRef, KubeconfigRefError> {
    let region_name = || region.metadata.name.clone().unwrap_or_else(|| "<unnamed>".into());
    let empty = |field, fix| KubeconfigRefError::Empty { region: region_name(), field, fix };
    let set = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
    let spec = region.spec.as_ref();
    if let Some(kc) = spec.and_then(|s| s.kube_config.as_ref()) {
        let name = set(&kc.name).ok_or_else(|| empty("spec.kubeConfig.name", "name the kubeconfig Secret"))?;
        let key = set(&kc.key).ok_or_else(|| {
            empty("spec.kubeConfig.key", "KCM reads the kubeconfig from that data key (often `value`); set it")
        })?;
        return Ok(KubeconfigRef { namespace: system_namespace.to_string(), name, key });
    }
    if let Some(cd) = spec.and_then(|s| s.cluster_deployment.as_ref()) {
        let name = set(&cd.name).ok_or_else(|| empty("spec.clusterDeployment.name", "name the ClusterDeployment"))?;
        let namespace = set(&cd.namespace)
            .ok_or_else(|| empty("spec.clusterDeployment.namespace", "set the ClusterDeployment's namespace"))?;
        return Ok(KubeconfigRef { namespace, name: format!("{name}-kubeconfig"), key: "value".to_string() });
    }
    Err(KubeconfigRefError::NoSource { region: region_name() })
}

/// [`region_kubeconfig_ref`] of a Region as JSON.
pub fn region_kubeconfig_ref_of(region: &Value, system_namespace: &str) -> Result<KubeconfigRef, KubeconfigRefError> {
    let typed: Region = model::from_value("Region", region)
        .map_err(|e| KubeconfigRefError::Invalid { region: model::display_name(region), detail: e.to_string() })?;
    region_kubeconfig_ref(&typed, system_namespace)
}

/// Fields of `users[].user` a Secret-supplied kubeconfig must not set, and why.
pub const FORBIDDEN_USER_FIELDS: &[(&str, &str)] = &[
    ("exec", "runs a local command"),
    ("auth-provider", "runs a local command or an auth plugin"),
    ("tokenFile", "reads a local file"),
    ("client-certificate", "reads a local file"),
    ("client-key", "reads a local file"),
];

/// Fields of `clusters[].cluster` a Secret-supplied kubeconfig must not set, and why.
pub const FORBIDDEN_CLUSTER_FIELDS: &[(&str, &str)] = &[
    ("certificate-authority", "reads a local file"),
    ("proxy-url", "routes the connection through a proxy the kubeconfig names"),
];

/// Why a kubeconfig from a Secret is not used. Never carries a value from the kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UntrustedKubeconfig {
    /// Not YAML, or not a mapping (the message names a line, never the text).
    #[error("not a valid kubeconfig: {0}")]
    Syntax(#[from] YamlError),
    /// Zero or several YAML documents: a kube client would merge several, hiding what is used.
    #[error("holds {0} YAML documents; a Region kubeconfig must be exactly one document")]
    DocumentCount(usize),
    /// A list or entry of the wrong type: it cannot be checked, so it is not used.
    #[error("{field} is {found}, expected {expected}")]
    Shape { field: String, found: &'static str, expected: &'static str },
    /// A field that makes the reader run a command, read a local file or use a proxy.
    #[error(
        "{field} is set; it {why}, which a kubeconfig from a Secret may not do: use inline credentials \
         (token, client-certificate-data, client-key-data, certificate-authority-data) and no proxy-url"
    )]
    Forbidden { field: String, why: &'static str },
}

/// Parses `text` (one YAML or JSON document) and checks it with [`check_untrusted`]. `source`
/// names the input in syntax errors (e.g. `Secret kcm-system/region1-kubeconfig[value]`).
/// Returns the checked document: build the client from it, not from a second parse.
pub fn parse_untrusted(text: &str, source: &str) -> Result<Value, UntrustedKubeconfig> {
    let mut docs = yaml::parse_documents(text, source)?;
    if docs.len() != 1 {
        return Err(UntrustedKubeconfig::DocumentCount(docs.len()));
    }
    let doc = docs.remove(0);
    check_untrusted(&doc)?;
    Ok(doc)
}

/// Rejects a kubeconfig that runs commands, reads local files or names a proxy (see the module
/// documentation). The first problem found is returned, its field path like `users[0].user.exec`.
pub fn check_untrusted(kubeconfig: &Value) -> Result<(), UntrustedKubeconfig> {
    let Some(root) = kubeconfig.as_object() else {
        return Err(shape("the kubeconfig", kubeconfig, "a mapping"));
    };
    check_entries(root, "users", "user", FORBIDDEN_USER_FIELDS)?;
    check_entries(root, "clusters", "cluster", FORBIDDEN_CLUSTER_FIELDS)
}

/// Checks every `list[i].inner` mapping of `root` for the forbidden fields.
fn check_entries(
    root: &Map<String, Value>,
    list: &str,
    inner: &str,
    forbidden: &[(&str, &'static str)],
) -> Result<(), UntrustedKubeconfig> {
    let entries = match root.get(list) {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(entries)) => entries,
        Some(other) => return Err(shape(list, other, "a list")),
    };
    for (i, entry) in entries.iter().enumerate() {
        let Some(entry) = entry.as_object() else {
            return Err(shape(&format!("{list}[{i}]"), entry, "a mapping"));
        };
        let fields = match entry.get(inner) {
            None | Some(Value::Null) => continue,
            Some(Value::Object(fields)) => fields,
            Some(other) => return Err(shape(&format!("{list}[{i}].{inner}"), other, "a mapping")),
        };
        // Presence alone is rejected, even with an empty or null value: what a client does with
        // an empty path or command is not something to rely on.
        if let Some((field, why)) = forbidden.iter().find(|(f, _)| fields.contains_key(*f)) {
            return Err(UntrustedKubeconfig::Forbidden { field: format!("{list}[{i}].{inner}.{field}"), why });
        }
    }
    Ok(())
}

fn shape(field: &str, found: &Value, expected: &'static str) -> UntrustedKubeconfig {
    UntrustedKubeconfig::Shape { field: field.to_string(), found: yaml::type_name(found), expected }
}

#[cfg(test)]
mod tests {
    #[test]
    fn region_kubeconfig_ref_of_both_forms_and_every_gap() {
        use super::{KubeconfigRef, region_kubeconfig_ref_of};
        use serde_json::json;
        let r = |spec: Value| json!({"metadata": {"name": "eu"}, "spec": spec});
        assert_eq!(
            region_kubeconfig_ref_of(&r(json!({"kubeConfig": {"name": "eu-kc", "key": "cfg"}})), "kcm-system"),
            Ok(KubeconfigRef { namespace: "kcm-system".into(), name: "eu-kc".into(), key: "cfg".into() })
        );
        let cd = region_kubeconfig_ref_of(&r(json!({"clusterDeployment": {"name": "eu", "namespace": "t"}})), "x");
        assert_eq!(cd.map(|k| k.to_string()), Ok("Secret t/eu-kubeconfig[value]".to_string()));
        let no_key = region_kubeconfig_ref_of(&r(json!({"kubeConfig": {"name": "eu-kc"}})), "kcm-system");
        let msg = no_key.unwrap_err().to_string();
        assert!(msg.starts_with("Region eu: spec.kubeConfig.key is empty;"), "{msg}");
        let no_ns = region_kubeconfig_ref_of(&r(json!({"clusterDeployment": {"name": "eu"}})), "kcm-system");
        assert!(no_ns.unwrap_err().to_string().contains("spec.clusterDeployment.namespace is empty"));
        let none = region_kubeconfig_ref_of(&r(json!({})), "kcm-system").unwrap_err().to_string();
        assert!(none.contains("neither spec.kubeConfig nor spec.clusterDeployment"), "{none}");
        let bad = region_kubeconfig_ref_of(&r(json!({"kubeConfig": "x"})), "kcm-system").unwrap_err().to_string();
        assert!(bad.starts_with("Region eu cannot be read"), "{bad}");
    }

    use super::*;
    use serde_json::json;

    const MARK: &str = "SECRET-MARK-4711";

    fn with_user(user: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "k", "cluster": {"server": "https://10.0.0.1:6443"}}],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        })
    }

    fn with_cluster(cluster: Value) -> Value {
        json!({
            "clusters": [{"name": "ok", "cluster": {"server": "https://a"}}, {"name": "k", "cluster": cluster}],
            "users": [{"name": "u", "user": {"token": MARK}}],
        })
    }

    #[test]
    fn rejects_each_forbidden_field_naming_the_path_not_the_value() {
        let cases = [
            (
                with_user(json!({"exec": {"command": MARK, "apiVersion": "client.authentication.k8s.io/v1"}})),
                "users[0].user.exec",
                "command",
            ),
            (
                with_user(json!({"auth-provider": {"name": "gcp", "config": {"cmd-path": MARK}}})),
                "users[0].user.auth-provider",
                "command",
            ),
            (with_user(json!({"tokenFile": MARK})), "users[0].user.tokenFile", "local file"),
            (
                with_user(json!({"client-certificate": MARK, "client-key-data": "a2V5"})),
                "users[0].user.client-certificate",
                "local file",
            ),
            (
                with_user(json!({"client-certificate-data": "Y2VydA==", "client-key": MARK})),
                "users[0].user.client-key",
                "local file",
            ),
            (with_user(json!({"token": "t", "exec": null})), "users[0].user.exec", "command"),
            (with_user(json!({"tokenFile": ""})), "users[0].user.tokenFile", "local file"),
            (
                with_cluster(json!({"server": "https://b", "certificate-authority": MARK})),
                "clusters[1].cluster.certificate-authority",
                "local file",
            ),
            (with_cluster(json!({"server": "https://b", "proxy-url": MARK})), "clusters[1].cluster.proxy-url", "proxy"),
        ];
        for (kubeconfig, path, why) in cases {
            let err = check_untrusted(&kubeconfig).expect_err(path);
            let msg = err.to_string();
            assert!(matches!(&err, UntrustedKubeconfig::Forbidden { field, .. } if field == path), "{path}: {err:?}");
            assert!(msg.starts_with(&format!("{path} is set; it ")), "{msg}");
            assert!(msg.contains(why), "{path}: {msg}");
            assert!(!msg.contains(MARK), "value leaked: {msg}");
        }
    }

    #[test]
    fn a_later_user_is_checked_too() {
        let mut kc = with_user(json!({"token": "t"}));
        kc["users"].as_array_mut().unwrap().push(json!({"name": "other", "user": {"exec": {"command": "x"}}}));
        let err = check_untrusted(&kc).unwrap_err();
        assert_eq!(
            err,
            UntrustedKubeconfig::Forbidden { field: "users[1].user.exec".into(), why: "runs a local command" }
        );
    }

    #[test]
    fn accepts_inline_credentials() {
        let cases = [
            with_user(json!({"token": MARK})),
            with_user(json!({"username": "admin", "password": MARK})),
            with_user(json!({"client-certificate-data": "Y2VydA==", "client-key-data": MARK, "as": "someone"})),
            with_user(json!({})),
            with_user(Value::Null),
            with_cluster(json!({
                "server": "https://b", "certificate-authority-data": "Y2E=", "tls-server-name": "b",
                "insecure-skip-tls-verify": false,
            })),
            json!({"apiVersion": "v1", "kind": "Config"}),
            json!({"users": null, "clusters": []}),
            // Unknown spellings are ignored by kube clients, so they are harmless here.
            with_user(json!({"token": "t", "Exec": {"command": "x"}, "token-file": "/x"})),
        ];
        for kubeconfig in cases {
            assert_eq!(check_untrusted(&kubeconfig), Ok(()), "{kubeconfig}");
        }
    }

    #[test]
    fn rejects_shapes_it_cannot_check() {
        let cases = [
            (json!("text"), "the kubeconfig is a string, expected a mapping"),
            (json!({"users": {"u": {}}}), "users is a mapping, expected a list"),
            (json!({"users": [MARK]}), "users[0] is a string, expected a mapping"),
            (json!({"users": [{"name": "u", "user": [MARK]}]}), "users[0].user is a sequence, expected a mapping"),
            (
                json!({"clusters": [{"name": "k", "cluster": MARK}]}),
                "clusters[0].cluster is a string, expected a mapping",
            ),
        ];
        for (kubeconfig, want) in cases {
            let msg = check_untrusted(&kubeconfig).unwrap_err().to_string();
            assert_eq!(msg, want);
            assert!(!msg.contains(MARK));
        }
    }

    #[test]
    fn parse_untrusted_returns_the_checked_document() {
        let text = "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster:\n    server: https://a\n\
                    users:\n- name: u\n  user:\n    token: abc\n";
        let doc = parse_untrusted(text, "Secret ns/s[value]").unwrap();
        assert_eq!(doc.pointer("/users/0/user/token"), Some(&json!("abc")));
    }

    #[test]
    fn parse_untrusted_rejects_exec_syntax_errors_and_several_documents() {
        let exec = format!("users:\n- name: u\n  user:\n    exec:\n      command: {MARK}\n");
        let err = parse_untrusted(&exec, "Secret ns/s[value]").unwrap_err();
        assert!(matches!(&err, UntrustedKubeconfig::Forbidden { field, .. } if field == "users[0].user.exec"));
        assert!(!err.to_string().contains(MARK));

        // A second document would be merged by a kube client: it is refused, not checked twice.
        let two = "clusters: []\n---\nusers:\n- name: u\n  user:\n    token: t\n";
        assert_eq!(parse_untrusted(two, "s").unwrap_err(), UntrustedKubeconfig::DocumentCount(2));
        assert_eq!(parse_untrusted("", "s").unwrap_err(), UntrustedKubeconfig::DocumentCount(0));

        let bad = format!("users: [\n  {MARK}: {{\n");
        let err = parse_untrusted(&bad, "Secret ns/s[value]").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, UntrustedKubeconfig::Syntax(_)), "{msg}");
        assert!(msg.contains("Secret ns/s[value]") && !msg.contains(MARK), "{msg}");

        let scalar = parse_untrusted(MARK, "s").unwrap_err().to_string();
        assert!(!scalar.contains(MARK), "{scalar}");
    }
}
