//! Who writes the regional copies, and how a copy written by someone else is judged.
//!
//! KCM copies cluster identities into regional clusters itself since v1.5. The webhook therefore
//! runs its distribution in one of three [`Mode`]s (DESIGN.md, "Distribution: who writes the
//! copies"); [`ModeSetting::Auto`] picks one from the KCM version the management cluster
//! publishes ([`detect_kcm`]). In trigger mode KCM writes, the webhook makes it reconcile now by
//! changing [`labels::TRIGGER_ANNOTATION`] on the Credential to [`trigger_digest`], then verifies
//! the copies ([`verify_copy`], [`Verification`]). The plugin (`explain`, `plan`, `wait`) and the
//! webhook use these same functions.

use std::fmt;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::identity::{ObjectKey, Plan, PlannedCopy};
use crate::model::labels;
use crate::readiness::differences;

/// The first KCM release that copies cluster identities into regional clusters itself.
pub const KCM_DISTRIBUTES_SINCE: KcmVersion = KcmVersion { major: 1, minor: 5, patch: 0 };

/// The Lease the webhook replicas elect the distribution leader with, in the webhook's namespace
/// (the system namespace as shipped). The leader publishes the mode on it
/// ([`labels::MODE_ANNOTATION`]).
pub const DISTRIBUTION_LEASE: &str = "credential-guard-distribution";

/// ConfigMap, in the webhook's namespace, recording copies that may remain in a cluster with no
/// distributor left to release them (a release given up, an uninstall): one key per (cluster,
/// Credential) ([`orphan_key`]), an [`OrphanRecord`] as JSON each. Names only, never contents.
pub const ORPHANED_COPIES: &str = "credential-guard-orphaned-copies";

/// The Management object KCM runs the management cluster from (a singleton).
pub const MANAGEMENT_NAME: &str = "kcm";

/// Who writes the regional copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// KCM writes; we make it reconcile now and verify what it wrote.
    Trigger,
    /// We write (KCM < 1.5 has no regional distribution).
    Write,
    /// Admission only.
    Off,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Trigger, Mode::Write, Mode::Off];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Trigger => "trigger",
            Mode::Write => "write",
            Mode::Off => "off",
        }
    }

    /// Who copies and when, in one sentence (for `explain`, `plan` and the startup log).
    pub fn who_copies(self) -> &'static str {
        match self {
            Mode::Trigger => {
                "KCM copies the cluster identities; credential-guard makes KCM reconcile on every source change and verifies the copies"
            }
            Mode::Write => {
                "credential-guard copies the cluster identities on every source change (KCM before 1.5 does not copy them)"
            }
            Mode::Off => "nobody copies the cluster identities: credential-guard runs admission only",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the operator asked for: a [`Mode`], or `auto` (detect from KCM's version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ModeSetting {
    #[default]
    Auto,
    Fixed(Mode),
}

impl ModeSetting {
    /// Every accepted spelling, for help texts and errors.
    pub const VALUES: [&'static str; 4] = ["auto", "trigger", "write", "off"];
}

impl std::str::FromStr for ModeSetting {
    type Err = ModeError;
    fn from_str(s: &str) -> Result<Self, ModeError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(ModeSetting::Auto),
            "trigger" => Ok(ModeSetting::Fixed(Mode::Trigger)),
            "write" => Ok(ModeSetting::Fixed(Mode::Write)),
            "off" => Ok(ModeSetting::Fixed(Mode::Off)),
            _ => Err(ModeError::UnknownSetting(s.to_string())),
        }
    }
}

impl fmt::Display for ModeSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModeSetting::Auto => f.write_str("auto"),
            ModeSetting::Fixed(m) => m.fmt(f),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModeError {
    #[error("unknown distribution mode {0:?}: use one of auto, trigger, write, off")]
    UnknownSetting(String),
    #[error(
        "distribution mode write refused: KCM {version} (from {source_object}) copies cluster identities into regional clusters itself, and two writers of the same copies fight; use mode trigger (or auto), or force write mode with --force-write-mode if KCM's own distribution is disabled"
    )]
    WriteWithDistributingKcm { version: KcmVersion, source_object: String },
}

/// A KCM release version (`1.5.0`; pre-release suffixes are ignored: 1.5.0-rc.1 already copies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct KcmVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl KcmVersion {
    /// Parses `1.5.0`, `v1.5.0`, `1.5.0-rc.1`, `1.5` and a Release name such as `kcm-1-5-0`.
    pub fn parse(s: &str) -> Option<KcmVersion> {
        let s = s.trim();
        let s = s.strip_prefix("kcm-").map(|rest| rest.replace('-', ".")).unwrap_or_else(|| s.to_string());
        let s = s.strip_prefix('v').unwrap_or(&s);
        let core = s.split(['-', '+']).next().unwrap_or_default();
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            Some(p) => p.parse().ok()?,
            None => 0,
        };
        Some(KcmVersion { major, minor, patch })
    }

    /// Whether this KCM copies cluster identities into regional clusters itself.
    pub fn distributes(self) -> bool {
        self >= KCM_DISTRIBUTES_SINCE
    }
}

impl fmt::Display for KcmVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What the management cluster says about KCM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum KcmDetection {
    /// The version, and the object it was read from (`Release kcm-1-5-0`, `Management kcm`).
    Found { version: KcmVersion, source: String },
    /// No Management `kcm`: KCM is not installed (or not yet).
    NotInstalled,
    /// KCM is there but its version cannot be read; says why.
    Unknown { reason: String },
}

/// Reads KCM's version from the Management `kcm` and the Release it names.
///
/// The authoritative fact is the Release in force: `Management.status.release` (what KCM has
/// rolled out; `spec.release` while the first rollout is pending), whose Release object carries
/// `spec.version`. When that Release cannot be read, its name (`kcm-1-5-0`) is parsed.
/// `release` is the Release object named by the Management, when it could be read.
pub fn detect_kcm(management: Option<&Value>, release: Option<&Value>) -> KcmDetection {
    let Some(management) = management else { return KcmDetection::NotInstalled };
    let Some(name) = release_name(management) else {
        return KcmDetection::Unknown {
            reason: format!(
                "Management {MANAGEMENT_NAME} names no Release (status.release and spec.release are empty)"
            ),
        };
    };
    let named = release.filter(|r| r.pointer("/metadata/name").and_then(Value::as_str) == Some(name));
    if let Some(v) = named.and_then(|r| r.pointer("/spec/version")).and_then(Value::as_str).and_then(KcmVersion::parse)
    {
        return KcmDetection::Found { version: v, source: format!("Release {name}") };
    }
    match KcmVersion::parse(name) {
        Some(version) => KcmDetection::Found { version, source: format!("the name of Release {name}") },
        None => KcmDetection::Unknown {
            reason: format!("Release {name} (named by Management {MANAGEMENT_NAME}) has no readable spec.version"),
        },
    }
}

/// The Release the Management is on: `status.release`, else `spec.release`.
pub fn release_name(management: &Value) -> Option<&str> {
    ["/status/release", "/spec/release"]
        .iter()
        .filter_map(|p| management.pointer(p).and_then(Value::as_str))
        .find(|s| !s.is_empty())
}

/// The mode in force and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub mode: Mode,
    /// One sentence: the setting and what detection found.
    pub reason: String,
}

/// Chooses the mode: a fixed setting wins (write is refused next to a distributing KCM unless
/// `force_write`); `auto` is trigger for KCM ≥ 1.5 and write otherwise (no KCM, an older KCM, or a
/// version that cannot be read: then we are the only possible writer and say so).
pub fn decide(setting: ModeSetting, kcm: &KcmDetection, force_write: bool) -> Result<Decision, ModeError> {
    let found = match kcm {
        KcmDetection::Found { version, source } => format!("KCM {version} (from {source})"),
        KcmDetection::NotInstalled => format!("no KCM found (no Management {MANAGEMENT_NAME})"),
        KcmDetection::Unknown { reason } => format!("KCM version unknown: {reason}"),
    };
    let distributing = match kcm {
        KcmDetection::Found { version, .. } if version.distributes() => Some(*version),
        _ => None,
    };
    match setting {
        ModeSetting::Fixed(Mode::Write) => match (distributing, kcm) {
            (Some(version), KcmDetection::Found { source, .. }) if !force_write => {
                Err(ModeError::WriteWithDistributingKcm { version, source_object: source.clone() })
            }
            (Some(_), _) => Ok(Decision {
                mode: Mode::Write,
                reason: format!(
                    "mode write forced although {found} copies cluster identities itself: two writers of the same copies"
                ),
            }),
            (None, _) => Ok(Decision { mode: Mode::Write, reason: format!("mode write set; {found}") }),
        },
        ModeSetting::Fixed(mode) => Ok(Decision { mode, reason: format!("mode {mode} set; {found}") }),
        ModeSetting::Auto => Ok(match distributing {
            Some(_) => {
                Decision { mode: Mode::Trigger, reason: format!("auto: {found} copies cluster identities itself") }
            }
            None => Decision {
                mode: Mode::Write,
                reason: format!("auto: {found}, which does not copy cluster identities into regional clusters"),
            },
        }),
    }
}

/// The value of [`labels::TRIGGER_ANNOTATION`] for a plan: changes exactly when a source object
/// changes (uid or resourceVersion) or the plan's shape does (which objects go where).
///
/// Built from object identities and resourceVersions, never from contents: no function of a
/// Secret's bytes is ever published (a content hash of a short secret can be brute-forced). A
/// metadata-only change of a source therefore triggers one extra reconcile, which is harmless.
/// `versions` gives `(uid, resourceVersion)` of each source object by its key.
pub fn trigger_digest(plan: &Plan, versions: &dyn Fn(&ObjectKey) -> Option<(String, String)>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(plan.credential.as_bytes());
    hasher.update([0]);
    for copy in &plan.copies {
        let (uid, rv) = versions(&copy.source).unwrap_or_default();
        for part in [copy.source.to_string(), copy.source.gvk.to_string(), copy.target.to_string(), uid, rv] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
    }
    let digest = hasher.finalize();
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// Whether a Credential needs a trigger: its annotation differs from `digest`.
pub fn needs_trigger(credential: &Value, digest: &str) -> bool {
    credential.pointer("/metadata/annotations").and_then(|a| a.get(labels::TRIGGER_ANNOTATION)).and_then(Value::as_str)
        != Some(digest)
}

/// How one planned copy stands in its target cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum CopyState {
    /// Same content as the source.
    InSync,
    /// Content differs: which fields and keys (never a value).
    Drifted { differences: Vec<String> },
    /// Not in the target cluster.
    Missing,
}

/// Judges a copy someone else (KCM) wrote: content only, since KCM's labels and annotations are
/// its own. `actual` is the object in the target cluster.
pub fn verify_copy(planned: &PlannedCopy, actual: Option<&Value>) -> CopyState {
    let (Some(desired), Some(actual)) = (planned.object.as_ref(), actual) else {
        return CopyState::Missing;
    };
    let d = differences(desired, actual);
    if d.content.is_empty() { CopyState::InSync } else { CopyState::Drifted { differences: d.content } }
}

/// Defects of KCM's copies we can see (reference `k0rdent-kcm-behaviour.md`, step 4): each a
/// sentence naming the copy, never a value.
pub fn kcm_copy_defects(target: &ObjectKey, actual: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let annotations = actual.pointer("/metadata/annotations").and_then(Value::as_object);
    if annotations.is_some_and(|a| a.contains_key(labels::LAST_APPLIED)) {
        out.push(format!(
            "{target} carries annotation {} copied from its source (for a Secret it holds the data in clear text): remove it from the source, or apply the source server-side",
            labels::LAST_APPLIED
        ));
    }
    out
}

/// KCM's label on the copies it writes for one Credential: `k0rdent.mirantis.com/credential.<ns>.<name>`.
pub fn kcm_credential_label(namespace: &str, name: &str) -> String {
    format!("{}.{namespace}.{name}", labels::CREDENTIAL_PREFIX)
}

/// The labels KCM puts on a copy it writes for one Credential, in place of the source's (reference
/// `k0rdent-kcm-behaviour.md`, step 4): what `plan` shows in trigger mode.
pub fn kcm_copy_labels(namespace: &str, name: &str) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert(labels::MANAGED.to_string(), Value::String("true".into()));
    m.insert(kcm_credential_label(namespace, name), Value::String("true".into()));
    m
}

/// The Credentials (`namespace/name`) a copy names through KCM's per-Credential labels, sorted. A
/// namespace never holds a dot, so the first dot after the prefix separates it from the name.
pub fn kcm_owners_of(obj: &Value) -> Vec<String> {
    let prefix = format!("{}.", labels::CREDENTIAL_PREFIX);
    let mut owners: Vec<String> = obj
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|l| l.keys())
        .filter_map(|k| k.strip_prefix(&prefix)?.split_once('.'))
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
        .map(|(ns, name)| format!("{ns}/{name}"))
        .collect();
    owners.sort();
    owners.dedup();
    owners
}

/// Whether KCM has taken a copy over for a Credential: the copy carries KCM's label for it (KCM's
/// update of a managed copy adds that label and keeps the other metadata, our owners annotation
/// included).
pub fn kcm_adopted(copy: &Value, namespace: &str, name: &str) -> bool {
    copy.pointer("/metadata/labels").and_then(|l| l.get(kcm_credential_label(namespace, name))).and_then(Value::as_str)
        == Some("true")
}

/// KCM puts a namespaced identity's copy into the Credential's own namespace, while
/// ClusterDeployments read it from `spec.identityRef.namespace` (reference, step 4, "effective
/// namespace invariant"). When the two differ, the copy sits where nothing reads it: a sentence
/// saying so, or `None`.
pub fn kcm_namespace_defect(credential: &Value, plan: &Plan) -> Option<String> {
    let own = credential.pointer("/metadata/namespace").and_then(Value::as_str)?;
    let wanted = credential.pointer("/spec/identityRef/namespace").and_then(Value::as_str).filter(|n| !n.is_empty())?;
    let identity = plan.copies.iter().find(|c| c.depth == 0 && c.target.namespace.is_some())?;
    (wanted != own).then(|| {
        format!(
            "KCM copies {} into namespace {own} (the Credential's), but ClusterDeployments read it from namespace \
             {wanted} (spec.identityRef.namespace): set spec.identityRef.namespace to {own}",
            identity.target
        )
    })
}

/// The Credential an [`OrphanRecord`] is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct OrphanOwner {
    pub namespace: String,
    pub name: String,
}

/// One entry of [`ORPHANED_COPIES`]: what may remain where, and why nobody released it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct OrphanRecord {
    pub credential: OrphanOwner,
    /// The cluster as [`crate::Cluster`] displays it (`region eu`).
    pub cluster: String,
    /// `Kind namespace/name` of each object that may remain.
    pub objects: Vec<String>,
    /// Why it was not released (a sentence).
    pub reason: String,
    /// When it was recorded (RFC 3339), as the writer's clock said.
    pub since: String,
}

/// The ConfigMap key of the record for a Credential's copies in `cluster` (a valid ConfigMap key:
/// `region.<name>.<namespace>.<credential>` or `management.<namespace>.<credential>`).
pub fn orphan_key(cluster: &crate::Cluster, namespace: &str, name: &str) -> String {
    match cluster {
        crate::Cluster::Management => format!("management.{namespace}.{name}"),
        crate::Cluster::Region(r) => format!("region.{r}.{namespace}.{name}"),
    }
}

/// Reads the records of an [`ORPHANED_COPIES`] ConfigMap's `data`, sorted by key; an entry that is
/// not a record is returned as the key and why, so a reader can say which one is broken.
pub fn orphan_records(data: &serde_json::Map<String, Value>) -> Vec<Result<(String, OrphanRecord), (String, String)>> {
    let mut keys: Vec<&String> = data.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let raw = data.get(k).and_then(Value::as_str).unwrap_or_default();
            serde_json::from_str::<OrphanRecord>(raw)
                .map(|r| (k.clone(), r))
                .map_err(|e| (k.clone(), format!("entry {k} is not a record of orphaned copies: {e}")))
        })
        .collect()
}

/// The condition reasons of [`labels::DISTRIBUTED_CONDITION`] in trigger mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum VerifyReason {
    InSync,
    Drifted,
    Missing,
    NotVerifiable,
}

impl VerifyReason {
    pub const ALL: [VerifyReason; 4] =
        [VerifyReason::InSync, VerifyReason::Drifted, VerifyReason::Missing, VerifyReason::NotVerifiable];

    pub fn as_str(self) -> &'static str {
        match self {
            VerifyReason::InSync => "InSync",
            VerifyReason::Drifted => "Drifted",
            VerifyReason::Missing => "Missing",
            VerifyReason::NotVerifiable => "NotVerifiable",
        }
    }
}

impl fmt::Display for VerifyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict over all copies of one Credential, worst first: NotVerifiable (the plan has
/// problems, or a target could not be read), then Drifted, Missing, InSync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub reason: VerifyReason,
    /// A readable message naming each copy that is not in sync (never a value).
    pub message: String,
}

/// Summarises copy states. `unreadable` says why the target cluster could not be read (then
/// nothing is verifiable).
pub fn verification(plan: &Plan, states: &[(ObjectKey, CopyState)], unreadable: Option<&str>) -> Verification {
    let cluster = plan.target_cluster.as_ref().map(ToString::to_string).unwrap_or_else(|| "the target cluster".into());
    if let Some(why) = unreadable {
        return Verification {
            reason: VerifyReason::NotVerifiable,
            message: format!("cannot read the copies in {cluster}: {why}"),
        };
    }
    let problems = plan.problem_messages();
    if !problems.is_empty() {
        return Verification {
            reason: VerifyReason::NotVerifiable,
            message: format!("cannot tell what KCM must copy: {}", problems.join("; ")),
        };
    }
    let drifted: Vec<String> = states
        .iter()
        .filter_map(|(k, s)| match s {
            CopyState::Drifted { differences } => Some(format!("{k}: {}", differences.join(", "))),
            _ => None,
        })
        .collect();
    let missing: Vec<String> =
        states.iter().filter(|(_, s)| *s == CopyState::Missing).map(|(k, _)| k.to_string()).collect();
    if !drifted.is_empty() {
        let mut message = format!("copies in {cluster} differ from their sources: {}", drifted.join("; "));
        if !missing.is_empty() {
            message.push_str(&format!("; missing: {}", missing.join(", ")));
        }
        return Verification { reason: VerifyReason::Drifted, message };
    }
    if !missing.is_empty() {
        return Verification {
            reason: VerifyReason::Missing,
            message: format!("not yet copied into {cluster}: {}", missing.join(", ")),
        };
    }
    Verification {
        reason: VerifyReason::InSync,
        message: match states.len() {
            1 => format!("the copy in {cluster} matches its source"),
            n => format!("{n} copies in {cluster} match their sources"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estate::Cluster;
    use crate::gvk::Gvk;
    use serde_json::json;

    fn management(status: Option<&str>, spec: &str) -> Value {
        let mut m = json!({"metadata": {"name": "kcm"}, "spec": {"release": spec}});
        if let Some(s) = status {
            m["status"] = json!({"release": s});
        }
        m
    }

    fn release(name: &str, version: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"version": version}})
    }

    #[test]
    fn orphan_records_round_trip_and_name_broken_entries() {
        let rec = OrphanRecord {
            credential: OrphanOwner { namespace: "team".into(), name: "aws".into() },
            cluster: Cluster::Region("eu".into()).to_string(),
            objects: vec!["Secret kcm-system/aws".into()],
            reason: "the Region is gone".into(),
            since: "2026-12-01T00:00:00Z".into(),
        };
        let key = orphan_key(&Cluster::Region("eu".into()), "team", "aws");
        assert_eq!(key, "region.eu.team.aws");
        let mut data = serde_json::Map::new();
        data.insert(key.clone(), Value::String(serde_json::to_string(&rec).unwrap()));
        data.insert("junk".into(), Value::String("{".into()));
        let got = orphan_records(&data);
        assert!(matches!(&got[0], Err((k, why)) if k == "junk" && why.contains("entry junk")));
        assert_eq!(got[1], Ok((key, rec)));
    }

    #[test]
    fn versions_parse_from_release_versions_and_names() {
        assert_eq!(KcmVersion::parse("1.5.0"), Some(KcmVersion { major: 1, minor: 5, patch: 0 }));
        assert_eq!(KcmVersion::parse("v1.6.2-rc.1"), Some(KcmVersion { major: 1, minor: 6, patch: 2 }));
        assert_eq!(KcmVersion::parse("kcm-1-4-1"), Some(KcmVersion { major: 1, minor: 4, patch: 1 }));
        assert_eq!(KcmVersion::parse("1.5"), Some(KcmVersion { major: 1, minor: 5, patch: 0 }));
        assert_eq!(KcmVersion::parse("latest"), None);
        assert!(KcmVersion::parse("1.5.0").is_some_and(KcmVersion::distributes));
        assert!(KcmVersion::parse("1.4.9").is_some_and(|v| !v.distributes()));
        assert!(KcmVersion::parse("2.0.0").is_some_and(KcmVersion::distributes));
    }

    #[test]
    fn detection_prefers_the_rolled_out_release_and_its_version() {
        let m = management(Some("kcm-1-5-0"), "kcm-1-6-0");
        let found = detect_kcm(Some(&m), Some(&release("kcm-1-5-0", "1.5.0")));
        assert_eq!(
            found,
            KcmDetection::Found { version: KcmVersion::parse("1.5.0").unwrap(), source: "Release kcm-1-5-0".into() }
        );
        // A Release of another name is not the one in force: fall back to the name in force.
        let by_name = detect_kcm(Some(&m), Some(&release("kcm-1-6-0", "1.6.0")));
        assert!(matches!(by_name, KcmDetection::Found { version, .. } if version.minor == 5));
        // First rollout pending: spec.release.
        let pending = detect_kcm(Some(&management(None, "kcm-1-4-0")), None);
        assert!(matches!(pending, KcmDetection::Found { version, .. } if version.minor == 4));
        assert_eq!(detect_kcm(None, None), KcmDetection::NotInstalled);
        let odd = detect_kcm(Some(&management(Some("my-release"), "my-release")), None);
        assert!(matches!(odd, KcmDetection::Unknown { ref reason } if reason.contains("my-release")), "{odd:?}");
    }

    #[test]
    fn auto_triggers_a_distributing_kcm_and_writes_otherwise() {
        let new =
            KcmDetection::Found { version: KcmVersion::parse("1.5.1").unwrap(), source: "Release kcm-1-5-1".into() };
        let old =
            KcmDetection::Found { version: KcmVersion::parse("1.4.0").unwrap(), source: "Release kcm-1-4-0".into() };
        assert_eq!(decide(ModeSetting::Auto, &new, false).unwrap().mode, Mode::Trigger);
        assert_eq!(decide(ModeSetting::Auto, &old, false).unwrap().mode, Mode::Write);
        assert_eq!(decide(ModeSetting::Auto, &KcmDetection::NotInstalled, false).unwrap().mode, Mode::Write);
        let err = decide(ModeSetting::Fixed(Mode::Write), &new, false).unwrap_err();
        assert!(err.to_string().contains("KCM 1.5.1") && err.to_string().contains("--force-write-mode"), "{err}");
        let forced = decide(ModeSetting::Fixed(Mode::Write), &new, true).unwrap();
        assert_eq!(forced.mode, Mode::Write);
        assert!(forced.reason.contains("two writers"));
        assert_eq!(decide(ModeSetting::Fixed(Mode::Write), &old, false).unwrap().mode, Mode::Write);
        assert_eq!(decide(ModeSetting::Fixed(Mode::Off), &new, false).unwrap().mode, Mode::Off);
        assert_eq!("Trigger".parse::<ModeSetting>().unwrap(), ModeSetting::Fixed(Mode::Trigger));
        assert!("both".parse::<ModeSetting>().unwrap_err().to_string().contains("auto, trigger, write, off"));
    }

    fn secret_key(ns: &str, name: &str) -> ObjectKey {
        ObjectKey::new(Gvk::new("", "v1", "Secret"), Some(ns.into()), name)
    }

    fn plan_with(data: &str) -> Plan {
        let key = secret_key("kcm-system", "aws");
        Plan {
            credential: "team/aws".into(),
            target_cluster: Some(Cluster::Region("eu".into())),
            provider_interface: Some("aws".into()),
            copies: vec![PlannedCopy {
                source: key.clone(),
                target: key,
                via: None,
                depth: 0,
                object: Some(json!({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": "aws", "namespace": "kcm-system"}, "data": {"k": data}})),
            }],
            in_place: vec![],
            problems: vec![],
        }
    }

    #[test]
    fn the_trigger_digest_follows_source_versions_not_contents() {
        let rv = |v: &'static str| move |_: &ObjectKey| Some(("uid-1".to_string(), v.to_string()));
        let a = trigger_digest(&plan_with("c2VjcmV0"), &rv("10"));
        assert_eq!(a, trigger_digest(&plan_with("b3RoZXI="), &rv("10")), "contents never enter the digest");
        assert_ne!(a, trigger_digest(&plan_with("c2VjcmV0"), &rv("11")));
        assert_eq!(a.len(), 24);
        let cred = json!({"metadata": {"annotations": {labels::TRIGGER_ANNOTATION: a.clone()}}});
        assert!(!needs_trigger(&cred, &a));
        assert!(needs_trigger(&cred, "other"));
        assert!(needs_trigger(&json!({}), &a));
    }

    #[test]
    fn kcm_labels_name_owners_and_adoption() {
        let label = kcm_credential_label("team", "aws.eu");
        assert_eq!(label, "k0rdent.mirantis.com/credential.team.aws.eu");
        let copy = json!({"metadata": {"labels": {labels::MANAGED: "true", label.as_str(): "true",
            "k0rdent.mirantis.com/credential.kcm-system.gcp": "true", "k0rdent.mirantis.com/credentialx": "y"}}});
        assert_eq!(kcm_owners_of(&copy), ["kcm-system/gcp", "team/aws.eu"]);
        assert!(kcm_adopted(&copy, "team", "aws.eu"));
        assert!(!kcm_adopted(&copy, "team", "aws"));
        assert!(kcm_owners_of(&json!({})).is_empty());
    }

    #[test]
    fn a_namespaced_identity_copied_where_cluster_deployments_do_not_read_it_is_a_defect() {
        let mut plan = plan_with("c2VjcmV0");
        plan.copies[0].target.namespace = Some("team".into());
        let cred = |idns: &str| {
            json!({"metadata": {"namespace": "team", "name": "aws"},
            "spec": {"identityRef": {"name": "aws", "namespace": idns}}})
        };
        let defect = kcm_namespace_defect(&cred("kcm-system"), &plan).unwrap();
        assert!(defect.contains("namespace team") && defect.contains("from namespace kcm-system"), "{defect}");
        assert_eq!(kcm_namespace_defect(&cred("team"), &plan), None);
        assert_eq!(kcm_namespace_defect(&cred(""), &plan), None);
        plan.copies[0].target.namespace = None;
        assert_eq!(
            kcm_namespace_defect(&cred("kcm-system"), &plan),
            None,
            "cluster-scoped identities have no namespace"
        );
    }

    #[test]
    fn verification_names_what_differs_but_never_a_value() {
        let plan = plan_with("c2VjcmV0");
        let copy = &plan.copies[0];
        // KCM's copy: its own labels and annotations, same content.
        let kcm = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "aws", "namespace": "kcm-system",
            "labels": {"k0rdent.mirantis.com/managed": "true", "k0rdent.mirantis.com/credential.team.aws": "true"},
            "annotations": {labels::LAST_APPLIED: "{\"data\":{\"k\":\"c2VjcmV0\"}}"}}, "data": {"k": "c2VjcmV0"}});
        assert_eq!(verify_copy(copy, Some(&kcm)), CopyState::InSync);
        let defects = kcm_copy_defects(&copy.target, &kcm);
        assert_eq!(defects.len(), 1);
        assert!(!defects[0].contains("c2VjcmV0"));
        let mut stale = kcm.clone();
        stale["data"]["k"] = json!("b2xk");
        let state = verify_copy(copy, Some(&stale));
        assert_eq!(state, CopyState::Drifted { differences: vec!["data differs (keys: k)".into()] });
        assert_eq!(verify_copy(copy, None), CopyState::Missing);
        let v = verification(&plan, &[(copy.target.clone(), state)], None);
        assert_eq!(v.reason, VerifyReason::Drifted);
        assert!(v.message.contains("Secret kcm-system/aws: data differs (keys: k)"), "{}", v.message);
        assert!(!v.message.contains("b2xk") && !v.message.contains("c2VjcmV0"));
        let m = verification(&plan, &[(copy.target.clone(), CopyState::Missing)], None);
        assert_eq!(m.reason, VerifyReason::Missing);
        let ok = verification(&plan, &[(copy.target.clone(), CopyState::InSync)], None);
        assert_eq!(
            (ok.reason, ok.message.as_str()),
            (VerifyReason::InSync, "the copy in region eu matches its source")
        );
        let down = verification(&plan, &[], Some("connection refused"));
        assert_eq!(down.reason, VerifyReason::NotVerifiable);
    }
}
