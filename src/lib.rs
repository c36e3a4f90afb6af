//! meridian: GitOps for global traffic.
//!
//! The library behind the `meridian` binary. One reconcile flows down the
//! modules in this order, each using only the ones above it in the list:
//!
//! - [`model`]: raw documents → validated desired state, with positions;
//! - [`desired`]: documents → desired resources by address;
//! - [`providers`] and [`observe`]: the provider plugins, and one
//!   observation of the live world with its gaps;
//! - [`policy`] and [`traffic`]: residency, traffic-policy selection, and
//!   where traffic goes;
//! - [`plan`]: the pure diff, held changes, the step schedule, the plan
//!   value and its renderers;
//! - [`apply`]: executes a plan's changes;
//! - [`rollout`]: steps, bakes, gates, rollback and the ledger;
//! - [`reconcile`]: the one pipeline `apply` and the daemon both call
//!   (providers → observe → plan → checks);
//! - [`daemon`]: the reconcile loop, webhooks, status and metrics.
//!
//! Beside the pipeline: [`source`] (Git snapshots), [`preview`] (pull
//! request previews), [`whatif`] and [`failover`] (outage analysis and
//! drains), [`audit`] (the trail of every write), [`clock`] and [`exit`]. Nothing here prints to stdout except the
//! renderers' callers in the binary.

pub mod apply;
pub mod audit;
pub mod clock;
pub mod daemon;
pub mod desired;
pub mod exit;
pub mod failover;
pub mod import;
pub mod model;
pub mod observe;
pub mod plan;
pub mod policy;
pub mod preview;
pub mod providers;
pub mod reconcile;
pub mod rollout;
pub mod source;
pub mod traffic;
pub mod whatif;
