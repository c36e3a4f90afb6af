//! AWS provider (placeholder while the crate builds).
