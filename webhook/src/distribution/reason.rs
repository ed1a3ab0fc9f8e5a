//! The reasons of condition `ClusterIdentitiesDistributed`, in one place: what the distributor sets
//! in write and off mode, the plan problems and the errors. Trigger mode's verdicts are the core's
//! `credential_core::distribution::VerifyReason`. Each is also the reason of the Warning Event and
//! the `reason` label of the failure metric; docs/src/operator/distribution.md lists them all.

use credential_core::identity::PlanProblem;

/// A condition reason (PascalCase, stable: operators and alerts match on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Every planned copy is in place.
    Distributed,
    /// Mode off: nobody copies this Credential's identities now.
    DistributionOff,
    /// A deleting Credential's copies are not released yet.
    ReleasePending,
    /// The copy's kind is not served in the target cluster.
    KindNotServed,
    /// The target holds an object of that name without our label and with other content.
    Conflict,
    InvalidCredential,
    IdentityRefIncomplete,
    NoProviderInterface,
    TargetUnknown,
    SourceMissing,
    ReferenceNotResolved,
    ReferenceCycle,
    ReferenceTooDeep,
    RegionNotFound,
    RegionKubeconfigInvalid,
    ClusterUnreachable,
    Forbidden,
    ApiError,
    MalformedObject,
    LeaderElection,
}

impl Reason {
    pub const ALL: [Reason; 20] = [
        Reason::Distributed,
        Reason::DistributionOff,
        Reason::ReleasePending,
        Reason::KindNotServed,
        Reason::Conflict,
        Reason::InvalidCredential,
        Reason::IdentityRefIncomplete,
        Reason::NoProviderInterface,
        Reason::TargetUnknown,
        Reason::SourceMissing,
        Reason::ReferenceNotResolved,
        Reason::ReferenceCycle,
        Reason::ReferenceTooDeep,
        Reason::RegionNotFound,
        Reason::RegionKubeconfigInvalid,
        Reason::ClusterUnreachable,
        Reason::Forbidden,
        Reason::ApiError,
        Reason::MalformedObject,
        Reason::LeaderElection,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Distributed => "Distributed",
            Reason::DistributionOff => "DistributionOff",
            Reason::ReleasePending => "ReleasePending",
            Reason::KindNotServed => "KindNotServed",
            Reason::Conflict => "Conflict",
            Reason::InvalidCredential => "InvalidCredential",
            Reason::IdentityRefIncomplete => "IdentityRefIncomplete",
            Reason::NoProviderInterface => "NoProviderInterface",
            Reason::TargetUnknown => "TargetUnknown",
            Reason::SourceMissing => "SourceMissing",
            Reason::ReferenceNotResolved => "ReferenceNotResolved",
            Reason::ReferenceCycle => "ReferenceCycle",
            Reason::ReferenceTooDeep => "ReferenceTooDeep",
            Reason::RegionNotFound => "RegionNotFound",
            Reason::RegionKubeconfigInvalid => "RegionKubeconfigInvalid",
            Reason::ClusterUnreachable => "ClusterUnreachable",
            Reason::Forbidden => "Forbidden",
            Reason::ApiError => "ApiError",
            Reason::MalformedObject => "MalformedObject",
            Reason::LeaderElection => "LeaderElection",
        }
    }

    /// The reason for a plan problem.
    pub fn of_problem(p: &PlanProblem) -> Reason {
        match p {
            PlanProblem::InvalidCredential { .. } => Reason::InvalidCredential,
            PlanProblem::IncompleteIdentityRef { .. } => Reason::IdentityRefIncomplete,
            PlanProblem::NoProviderInterface { .. } => Reason::NoProviderInterface,
            PlanProblem::TargetUnknown => Reason::TargetUnknown,
            PlanProblem::SourceMissing { .. } => Reason::SourceMissing,
            PlanProblem::PathNotResolved { .. } => Reason::ReferenceNotResolved,
            PlanProblem::Cycle { .. } => Reason::ReferenceCycle,
            PlanProblem::TooDeep { .. } => Reason::ReferenceTooDeep,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reasons of the Events the distributor publishes besides a failing condition's (whose
/// Warning Event carries the condition [`Reason`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventReason {
    /// A copy was written (Normal).
    Copied,
    /// Copies were released (Normal).
    Released,
    /// A release was given up after `--release-timeout` (Warning).
    ReleaseAbandoned,
    /// Our finalizer and copies record left the Credential: KCM took over, or mode off (Normal).
    HandedOver,
    /// Trigger mode: a copy differs from its source (Warning).
    Drifted,
    /// Trigger mode: a copy is missing after KCM had its trigger (Warning).
    Missing,
    /// Trigger mode: a copy KCM wrote has a defect (Warning).
    KcmCopyDefect,
}

impl EventReason {
    pub const ALL: [EventReason; 7] = [
        EventReason::Copied,
        EventReason::Released,
        EventReason::ReleaseAbandoned,
        EventReason::HandedOver,
        EventReason::Drifted,
        EventReason::Missing,
        EventReason::KcmCopyDefect,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventReason::Copied => "Copied",
            EventReason::Released => "Released",
            EventReason::ReleaseAbandoned => "ReleaseAbandoned",
            EventReason::HandedOver => "HandedOver",
            EventReason::Drifted => "Drifted",
            EventReason::Missing => "Missing",
            EventReason::KcmCopyDefect => "KcmCopyDefect",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_guide_names_every_event_reason() {
        const PAGE: &str = include_str!("../../../docs/src/operator/distribution.md");
        for r in EventReason::ALL {
            assert!(
                PAGE.contains(&format!("`{}`", r.as_str())),
                "Event {} not in docs/src/operator/distribution.md",
                r.as_str()
            );
        }
    }

    #[test]
    fn all_lists_each_reason_once() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert!(!Reason::ALL[i + 1..].contains(r), "{r} twice");
            assert!(r.as_str().chars().next().is_some_and(char::is_uppercase), "{r}");
        }
    }
}
