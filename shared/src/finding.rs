//! What a rule says about an object.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Deny stops the write; Warn lets it through with a message kubectl prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Deny,
    Warn,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Deny => "deny",
            Severity::Warn => "warn",
        })
    }
}

/// A stable finding code, e.g. `CRED002`. Codes never change meaning once released: tests, `lint -o
/// json` and the webhook's metrics use them. The table of codes is shared/RULES.md (generated; docs/src/reference/finding-codes.md includes it).
pub type Code = &'static str;

/// One result of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub code: String,
    pub severity: Severity,
    /// JSON path of the offending field, e.g. `spec.region` (empty for the whole object).
    pub field: String,
    /// What is wrong, naming the objects involved.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl Finding {
    pub fn deny(code: Code, field: impl Into<String>, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Finding {
            code: code.to_string(),
            severity: Severity::Deny,
            field: field.into(),
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn warn(code: Code, field: impl Into<String>, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Finding {
            code: code.to_string(),
            severity: Severity::Warn,
            field: field.into(),
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn is_deny(&self) -> bool {
        self.severity == Severity::Deny
    }
}

/// True when any finding denies.
pub fn any_deny(findings: &[Finding]) -> bool {
    findings.iter().any(Finding::is_deny)
}
