//! The objects beside the readiness checks (see [`crate::cmd::distribution`]): the webhook's
//! Lease, the orphan records, the Warning Events of one wanted Credential, and, when the Lease
//! does not tell the mode, KCM's Management and the Release it names.

use std::collections::BTreeMap;

use credential_core::Gvk;
use credential_core::distribution::{DISTRIBUTION_LEASE, MANAGEMENT_NAME, ORPHANED_COPIES, release_name};
use kube::api::ListParams;
use serde_json::Value;

use super::client::{Kind, Rest, RestError};
use super::estate::Wanted;
use crate::cmd::distribution::{self as d, EVENTS_READ, KCM_READ, LEASE_READ, ORPHANS_READ};

/// One object of a kind from the core's table; `None` when it does not exist.
async fn get_known(rest: &Rest, gvk: Gvk, namespace: Option<&str>, name: &str) -> Result<Option<Value>, RestError> {
    rest.get_opt(&Kind::of(&gvk)?, namespace, name).await
}

/// The side objects, and what could not be read keyed as in [`crate::cmd::distribution`]: never
/// fatal.
pub async fn read_extras(rest: &Rest, webhook_ns: &str, wanted: Wanted<'_>) -> (Vec<Value>, BTreeMap<String, String>) {
    let mut objects = Vec::new();
    let mut errors = BTreeMap::new();
    let events = async {
        let Wanted::One { namespace, name } = wanted else { return Ok(Vec::new()) };
        let selector = format!("involvedObject.kind=Credential,involvedObject.name={name},type=Warning");
        let params = ListParams::default().fields(&selector);
        rest.list(&Kind::of(&d::event_gvk())?, Some(namespace), &params).await.map(|l| l.0)
    };
    let (lease, orphans, events) = tokio::join!(
        get_known(rest, d::lease_gvk(), Some(webhook_ns), DISTRIBUTION_LEASE),
        get_known(rest, d::configmap_gvk(), Some(webhook_ns), ORPHANED_COPIES),
        events
    );
    let mut lease_tells = false;
    for (key, result) in [(LEASE_READ, lease), (ORPHANS_READ, orphans)] {
        match result {
            Ok(Some(o)) => {
                lease_tells |= key == LEASE_READ && d::lease_mode(&o).is_ok();
                objects.push(o);
            }
            Ok(None) => {}
            Err(e) => {
                errors.insert(key.to_string(), e.to_string());
            }
        }
    }
    match events {
        Ok(list) => objects.extend(list),
        Err(e) => {
            errors.insert(EVENTS_READ.to_string(), e.to_string());
        }
    }
    if !lease_tells {
        match get_known(rest, d::management_gvk(), None, MANAGEMENT_NAME).await {
            Ok(Some(m)) => {
                if let Some(release) = release_name(&m) {
                    // A Release that cannot be read leaves its name to parse (detect_kcm does).
                    if let Ok(Some(r)) = get_known(rest, d::release_gvk(), None, release).await {
                        objects.push(r);
                    }
                }
                objects.push(m);
            }
            Ok(None) => {}
            Err(e) => {
                errors.insert(KCM_READ.to_string(), e.to_string());
            }
        }
    }
    (objects, errors)
}
