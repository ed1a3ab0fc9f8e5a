//! The ordered readiness checks behind `explain` (to be filled in).
