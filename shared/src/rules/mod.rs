//! Admission rules: pure functions of (operation, object, old object, estate) -> findings.
//!
//! One module per kind. The webhook and `kubectl credential lint` call [`validate`].

use crate::estate::Estate;
use crate::finding::Finding;
use crate::gvk::Gvk;

pub mod cluster_deployment;
pub mod codes;
pub mod credential;
pub mod object;
pub mod provider_interface;
pub mod region;

pub use object::{AdmittedObject, JsonText};
pub(crate) mod support;

/// The admission operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    /// Parses the AdmissionReview spelling (`CREATE`, ...).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "CREATE" => Some(Operation::Create),
            "UPDATE" => Some(Operation::Update),
            "DELETE" => Some(Operation::Delete),
            "CONNECT" => Some(Operation::Connect),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// The kinds this project admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    Credential,
    Region,
    ProviderInterface,
    ClusterDeployment,
}

impl ResourceKind {
    /// Every kind the webhook admits (the deploy manifests' webhook rules are checked against it).
    pub const ALL: [ResourceKind; 4] = [
        ResourceKind::Credential,
        ResourceKind::Region,
        ResourceKind::ProviderInterface,
        ResourceKind::ClusterDeployment,
    ];

    /// The resource name (plural) used in webhook rules and RBAC.
    pub fn plural(&self) -> &'static str {
        crate::gvk::known_kind(&self.gvk()).map(|k| k.plural).unwrap_or_default()
    }

    /// Group+kind match (any version).
    pub fn from_gvk(gvk: &Gvk) -> Option<Self> {
        Self::from_group_kind(&gvk.group, &gvk.kind)
    }

    /// Group+kind match, from borrowed names.
    pub fn from_group_kind(group: &str, kind: &str) -> Option<Self> {
        if group != crate::K0RDENT_GROUP {
            return None;
        }
        match kind {
            "Credential" => Some(ResourceKind::Credential),
            "Region" => Some(ResourceKind::Region),
            "ProviderInterface" => Some(ResourceKind::ProviderInterface),
            "ClusterDeployment" => Some(ResourceKind::ClusterDeployment),
            _ => None,
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            ResourceKind::Credential => "Credential",
            ResourceKind::Region => "Region",
            ResourceKind::ProviderInterface => "ProviderInterface",
            ResourceKind::ClusterDeployment => "ClusterDeployment",
        }
    }
    pub fn gvk(&self) -> Gvk {
        Gvk::k0rdent(self.kind())
    }
}

/// One admission request, reduced to what rules read.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionInput<'a> {
    pub operation: Operation,
    pub kind: ResourceKind,
    /// Request namespace (`None` for cluster-scoped kinds).
    pub namespace: Option<&'a str>,
    /// Request name (for DELETE the object may be absent; the name is always here).
    pub name: &'a str,
    /// The new object (CREATE/UPDATE).
    pub object: Option<&'a AdmittedObject<'a>>,
    /// The stored object (UPDATE/DELETE).
    pub old_object: Option<&'a AdmittedObject<'a>>,
}

/// What a dry-run request gets instead of a denial that only says a referenced object is missing
/// ([`codes::MISSING_OBJECT`]): a warning, since GitOps tools dry-run every object of a stage before
/// applying any, so a sibling of the same apply does not exist yet. Other findings are unchanged.
pub fn lenient_for_dry_run(findings: Vec<Finding>) -> Vec<Finding> {
    findings
        .into_iter()
        .map(|mut f| {
            if f.is_deny() && codes::MISSING_OBJECT.contains(&f.code.as_str()) {
                f.severity = crate::finding::Severity::Warn;
                f.message.push_str(
                    " (dry run: warned, not denied, as the same apply may create it; a real write is denied \
                     while it is still missing)",
                );
            }
            f
        })
        .collect()
}

/// Runs every rule for the request's kind.
pub fn validate(input: &AdmissionInput<'_>, estate: &dyn Estate) -> Vec<Finding> {
    match input.kind {
        ResourceKind::Credential => credential::validate(input, estate),
        ResourceKind::Region => region::validate(input, estate),
        ResourceKind::ProviderInterface => provider_interface::validate(input, estate),
        ResourceKind::ClusterDeployment => cluster_deployment::validate(input, estate),
    }
}
