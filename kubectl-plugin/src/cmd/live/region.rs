//! A Region's cluster: its kubeconfig Secret in the management cluster (checked as untrusted
//! before any client is built), then, at once, its ProviderInterfaces, the discovery of the
//! group/versions its Credentials need, and its server version.

use std::collections::BTreeSet;

use base64::Engine as _;
use credential_core::Gvk;
use credential_core::kubeconfig::{UntrustedKubeconfig, parse_untrusted};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;

use super::client::{Kind, Rest, error_text};
use super::estate::pi_gvs;
use super::reader::Reader;

/// What one regional cluster gave in the first phase.
pub struct RegionRead {
    pub region: String,
    /// The kubeconfig Secret (values redacted), when it exists.
    pub secret: Option<Value>,
    /// The cluster's reader and its ProviderInterfaces, or why they could not be read.
    pub result: Result<(Reader, Vec<Value>), String>,
    /// The Secret holds no kubeconfig: nobody, KCM included, can use it.
    pub invalid: bool,
    /// The regional API server and its version, as far as they could be learnt.
    pub server: RegionalServer,
}

/// A regional API server: its URL (from the Region's kubeconfig) and version (its `/version`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionalServer {
    /// `None` when the Region's kubeconfig could not be read.
    pub url: Option<String>,
    /// `gitVersion` of `/version`; `None` when the server did not answer (UNKNOWN).
    pub version: Option<String>,
}

impl RegionRead {
    /// The Region's cluster could not be read: why, and the Secret if it was.
    fn failed(region: String, secret: Option<Value>, why: String) -> Self {
        RegionRead { region, secret, result: Err(why), invalid: false, server: RegionalServer::default() }
    }
}

/// Reads one Region's kubeconfig Secret, then its ProviderInterfaces and discovery.
pub async fn read_region(
    mgmt: &Rest,
    region: String,
    kubeconfig: Option<(String, String, String)>,
    gvs: BTreeSet<String>,
) -> RegionRead {
    let Some((ns, name, key)) = kubeconfig else {
        let why = "the Region names no kubeconfig (neither spec.kubeConfig nor spec.clusterDeployment)";
        return RegionRead::failed(region, None, why.to_string());
    };
    let secret = match Kind::of(&Gvk::secret()) {
        Ok(kind) => mgmt.get_opt(&kind, Some(&ns), &name).await,
        Err(e) => Err(e),
    };
    let secret = match secret {
        Ok(Some(s)) => s,
        Ok(None) => return RegionRead::failed(region, None, format!("kubeconfig Secret {ns}/{name} not found")),
        Err(e) => return RegionRead::failed(region, None, format!("cannot read Secret {ns}/{name}: {e}")),
    };
    let text = secret_value(&secret, &key);
    let secret = Some(redacted(secret));
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return RegionRead::failed(region, secret, format!("Secret {ns}/{name} has no kubeconfig under {key:?}"));
    };
    let where_ = format!("Secret {ns}/{name}[{key}]");
    let mut invalid = false;
    // Checked before any client exists: whoever writes this Secret must not get a command run or
    // a file read on the operator's machine. The client is built from the checked value. Errors
    // say where, never what (the document holds credentials).
    let config = match parse_untrusted(&text, &where_) {
        Ok(checked) => match serde_json::from_value::<Kubeconfig>(checked) {
            Ok(kc) => kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("kubeconfig in {where_}: {}", error_text(&e))),
            Err(_) => {
                invalid = true;
                Err(format!("{where_} does not hold a valid kubeconfig"))
            }
        },
        Err(UntrustedKubeconfig::Syntax(_)) => {
            invalid = true;
            Err(format!("{where_} does not hold a valid kubeconfig"))
        }
        Err(e) => Err(format!("kubeconfig in {where_} is rejected: {e}")),
    };
    let rest = config.and_then(|c| Rest::new(c).map_err(|e| e.to_string()));
    let rest = match rest {
        Ok(rest) => rest,
        Err(why) => return RegionRead { invalid, ..RegionRead::failed(region, secret, why) },
    };
    let mut server = RegionalServer { url: Some(rest.server.clone()), version: None };
    let result = read_cluster(rest, gvs, &mut server).await;
    RegionRead { region, secret, result, invalid, server }
}

/// The regional cluster itself: ProviderInterfaces, discovery and version at once, then the
/// discovery of the reference kinds those ProviderInterfaces name (so that plans and copies are
/// read without another round trip later).
async fn read_cluster(
    rest: Rest,
    gvs: BTreeSet<String>,
    server: &mut RegionalServer,
) -> Result<(Reader, Vec<Value>), String> {
    let url = rest.server.clone();
    let mut reader = Reader::new(rest.clone());
    let pis = async {
        match Kind::of(&Gvk::provider_interface()) {
            Ok(kind) => rest.list_if_served(&kind, None).await,
            Err(e) => Err(e),
        }
    };
    let (pis, disc, version) = tokio::join!(pis, reader.discover(gvs), rest.version());
    server.version = version.ok();
    disc.map_err(|e| format!("{url}: {e}"))?;
    let pis = pis.map_err(|e| format!("{url}: {e}"))?;
    let ref_gvs: BTreeSet<String> = pis.iter().flat_map(pi_gvs).collect();
    reader.discover(ref_gvs).await.map_err(|e| format!("{url}: {e}"))?;
    Ok((reader, pis))
}

/// The kubeconfig Secret a Region names: (namespace, name, key), the core's one answer.
pub fn kubeconfig_ref(region: &Value, system_namespace: &str) -> Option<(String, String, String)> {
    credential_core::kubeconfig::region_kubeconfig_ref_of(region, system_namespace)
        .ok()
        .map(|r| (r.namespace, r.name, r.key))
}

/// Secret values are not kept: readiness only asks whether the key holds something.
fn redacted(mut secret: Value) -> Value {
    for field in ["data", "stringData"] {
        if let Some(map) = secret.get_mut(field).and_then(Value::as_object_mut) {
            for v in map.values_mut() {
                if v.as_str().is_some_and(|s| !s.is_empty()) {
                    *v = Value::String("<redacted>".to_string());
                }
            }
        }
    }
    if let Some(meta) = secret.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("annotations");
        meta.remove("managedFields");
    }
    secret
}

/// The value under `key` of a Secret, decoded (`data` is base64, `stringData` plain).
fn secret_value(secret: &Value, key: &str) -> Option<String> {
    if let Some(s) = secret.pointer("/stringData").and_then(|d| d.get(key)).and_then(Value::as_str) {
        return Some(s.to_string());
    }
    let b64 = secret.pointer("/data").and_then(|d| d.get(key)).and_then(Value::as_str)?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_values_are_redacted_but_keys_kept() {
        let s = redacted(json!({"kind": "Secret", "metadata": {"annotations": {"a": "b"}}, "data": {"value": "eA=="}}));
        assert_eq!(s["data"]["value"], "<redacted>");
        assert!(s["metadata"].get("annotations").is_none());
    }

    #[test]
    fn secret_values_are_decoded_from_data_or_taken_from_string_data() {
        let s = json!({"data": {"a": "Zm9v", "bad": "Z!"}, "stringData": {"b": "plain"}});
        assert_eq!(secret_value(&s, "a").as_deref(), Some("foo"));
        assert_eq!(secret_value(&s, "b").as_deref(), Some("plain"));
        assert_eq!(secret_value(&s, "bad"), None);
        assert_eq!(secret_value(&s, "missing"), None);
    }
}
