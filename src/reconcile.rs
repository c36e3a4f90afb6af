//! One reconcile, as `meridian apply` and the daemon both run it: build the
//! providers of a desired state, observe the live world, plan, and add what
//! progressive delivery knows (the step schedule and the invariants; on the
//! command line also deny windows and anti-flap holds). Carrying the plan
//! out is [`crate::rollout::run`], shared in the same way.

use std::time::SystemTime;

use crate::desired::{self, DesiredResources};
use crate::model::DesiredState;
use crate::observe::{self, Observation};
use crate::plan::{self, Plan};
use crate::providers::{ProviderOptions, Providers, ProvidersError};
use crate::rollout::{self, Ledger, LedgerStore, RolloutStatus};

/// How the checks that depend on the moment treat a plan.
#[derive(Debug, Clone, Copy)]
pub enum Checks<'a> {
    /// The command line: a plan inside a deny window or reversing a recent
    /// move is blocked (exit 3), unless the window is overridden with a
    /// reason.
    Blocking {
        /// `--override-deny-window REASON`.
        deny_window_override: Option<&'a str>,
    },
    /// The daemon: deny windows and anti-flap holds are waited out by the
    /// rollout, not reported as violations.
    Waiting,
}

/// What the caller of [`prepare`] will do with the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Show it (`plan`): observe without the health that costs extra calls.
    Show,
    /// Carry it out: observe with the health the rollout's gates need, so
    /// that the rollout's first step runs on this observation instead of
    /// taking a second one (one observation per reconcile).
    Apply,
}

/// A planned reconcile, ready to run.
pub struct Prepared {
    /// The providers of the desired state.
    pub providers: Providers,
    /// The desired resources.
    pub desired: DesiredResources,
    /// What was observed; with [`Intent::Apply`], with the health the
    /// rollout needs, ready to hand to [`crate::rollout::run`].
    pub observation: Observation,
    /// The plan, with its schedule and violations.
    pub plan: Plan,
    /// The rollout ledger as it was read.
    pub ledger: Ledger,
    /// Whether a rollout of this desired state is under way: its gates
    /// govern (and roll back), so the invariants are not checked again.
    pub running: bool,
}

/// Why a reconcile could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// A provider could not be built (credentials, network, setup):
    /// nothing the desired state can fix.
    #[error(transparent)]
    Providers(#[from] ProvidersError),
    /// The rollout ledger could not be read.
    #[error("{0:#}")]
    Ledger(anyhow::Error),
}

/// Builds the providers, observes, plans and checks. `rollout_key` names
/// the desired state in the ledger (the CLI: its digest; the daemon: the
/// Git revision); `revision` is recorded in the plan's source.
pub async fn prepare(
    state: &DesiredState,
    options: &ProviderOptions,
    store: &LedgerStore,
    rollout_key: &str,
    revision: Option<String>,
    checks: Checks<'_>,
    intent: Intent,
) -> Result<Prepared, PrepareError> {
    let providers = Providers::build(state, options).await?;
    let desired = desired::expand(state);
    let health = intent == Intent::Apply && rollout::needs_health(state);
    let observation = observe::observe_with(&providers, &desired, health).await;
    let mut plan = plan::make(state, &desired, &observation, revision);
    let ledger = store.load().map_err(PrepareError::Ledger)?;
    let running = ledger.current.as_ref().is_some_and(|r| {
        r.revision == rollout_key
            && matches!(
                r.status,
                RolloutStatus::InProgress | RolloutStatus::RollingBack
            )
    });
    match checks {
        Checks::Waiting => {
            if !running {
                rollout::annotate_invariants(&mut plan, state, &desired, &observation);
            }
        }
        Checks::Blocking {
            deny_window_override,
        } => {
            rollout::annotate(
                &mut plan,
                state,
                &desired,
                &observation,
                &ledger,
                SystemTime::now(),
                deny_window_override,
            );
            if running {
                plan.violations
                    .retain(|v| !rollout::is_rollout_violation(v));
            }
        }
    }
    Ok(Prepared {
        providers,
        desired,
        observation,
        plan,
        ledger,
        running,
    })
}
