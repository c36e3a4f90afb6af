//! Exit codes, defined in one place.
//!
//! Scripts rely on these: 0 nothing to do or success, 1 error (including
//! invalid input), 2 changes pending or drift found, 3 blocked by a policy.

/// Nothing to do, or success.
pub const OK: u8 = 0;
/// An error, including invalid input.
pub const ERROR: u8 = 1;
/// Changes pending (`plan --detailed-exitcode`, `diff`) or drift found (`drift`).
pub const CHANGES: u8 = 2;
/// The change is blocked by a policy (data residency, traffic safety).
pub const BLOCKED: u8 = 3;
