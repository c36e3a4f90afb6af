//! meridian: GitOps for global traffic.
//!
//! The library behind the `meridian` binary: the desired-state model, the
//! expansion of documents into managed resources, the pure diff into a
//! [`plan::Plan`], its renderers, and the engine that applies a plan through
//! provider plugins. Exit codes live in [`exit`]; nothing here prints to
//! stdout except the renderers' callers in `main`.

pub mod clock;
pub mod daemon;
pub mod desired;
pub mod engine;
pub mod exit;
pub mod failover;
pub mod metrics;
pub mod model;
pub mod overrides;
pub mod plan;
pub mod policy;
pub mod preview;
pub mod rollout;
pub mod simcli;
pub mod source;
pub mod status;
pub mod traffic;
pub mod webhook;
pub mod whatif;
pub mod yaml;
