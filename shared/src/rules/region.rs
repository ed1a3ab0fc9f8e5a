//! Rules for this kind (to be filled in).

use crate::estate::Estate;
use crate::finding::Finding;
use crate::rules::AdmissionInput;

pub fn validate(input: &AdmissionInput<'_>, estate: &dyn Estate) -> Vec<Finding> {
    let _ = (input, estate);
    Vec::new()
}
