//! Progressive traffic shifts.
//!
//! A change that moves traffic is carried out as a sequence of steps
//! ([`schedule`]): after each step meridian waits the bake time, checks the
//! health gates ([`gates`]), and only then computes the next step — from
//! live state, so a restart continues where the world is and never jumps to
//! the target. A failed gate rolls back to the last good values step by step
//! (or holds), marks the revision failed in the ledger, and the revision is
//! not tried again until a new commit or `meridian retry`.
//!
//! The ledger (`rollout.json` in the state directory) is the persisted half
//! of the rollout's position: the baseline (last good) lever values, each
//! step with its time and gate verdict, the failed revisions, and the last
//! move of every lever for the anti-flap rule. It is written before a step
//! is applied, so a crash mid-step bakes that step again rather than skipping
//! its bake.

pub mod gates;
pub mod invariants;
pub mod ledger;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meridian_provider::Address;

use crate::apply::{self, Progress};
use crate::desired::{DesiredResource, DesiredResources};
use crate::model::DesiredState;
use crate::model::raw::GateFailure;
use crate::observe::{self, Observation, live_of};
use crate::plan::Plan;
use crate::plan::held::without_held;
use crate::plan::managed;
use crate::plan::schedule::{self, Live, Move, Rules, lever, rules_for, subject_of, with_lever};
use crate::providers::Providers;
pub use ledger::{
    FailedRevision, GateState, LastMove, Ledger, LedgerBackend, LedgerStore, Rollout,
    RolloutStatus, StepRecord,
};

/// Milliseconds since the epoch.
pub fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn at(ms: u64) -> String {
    crate::clock::rfc3339(UNIX_EPOCH + Duration::from_millis(ms))
}

/// The lever values of a live world, by address text.
fn levers_of(live: &Live) -> BTreeMap<String, f64> {
    live.iter()
        .filter_map(|(a, o)| lever(&o.resource).map(|(_, v)| (a.to_string(), v)))
        .collect()
}

/// The target of a rollback: every live object as it is, its lever at the
/// baseline value (0 for objects the rollout created).
fn rollback_target(
    observation: &Observation,
    baseline: &BTreeMap<String, f64>,
) -> DesiredResources {
    observation
        .resources
        .iter()
        .map(|(provider, observed)| {
            let resource = match lever(&observed.resource) {
                Some(_) => with_lever(
                    &observed.resource,
                    baseline
                        .get(&observed.address.to_string())
                        .copied()
                        .unwrap_or(0.0),
                ),
                None => observed.resource.clone(),
            };
            (
                observed.address.clone(),
                DesiredResource {
                    provider: provider.clone(),
                    resource,
                    source: format!("{} (rollback)", observed.address),
                    external_id: None,
                },
            )
        })
        .collect()
}

/// The rules of the subjects that `moves` touch.
fn subjects(state: &DesiredState, moves: &[Move]) -> BTreeMap<String, Rules> {
    let mut out = BTreeMap::new();
    for m in moves {
        if let Some(subject) = subject_of(&m.address) {
            out.entry(subject)
                .or_insert_with(|| rules_for(state, &m.address));
        }
    }
    out
}

/// What to do next.
#[derive(Debug, Clone)]
pub enum Tick {
    /// Apply this step.
    Apply {
        /// The step's plan.
        plan: Box<Plan>,
        /// Its number.
        step: usize,
        /// Whether nothing follows it (no bake, no gate, target reached).
        last: bool,
        /// Whether it rolls back.
        rollback: bool,
        /// For a plan executed as confirmed: which of its steps this is.
        contract_step: Option<usize>,
    },
    /// A confirmed plan no longer fits the live world: nothing of it is
    /// written, and a new plan must be made.
    Stale {
        /// What changed.
        reason: String,
    },
    /// Nothing to do before `until`.
    Wait {
        /// When to look again.
        until: SystemTime,
        /// Why.
        reason: String,
        /// Whether the wait is a pause (a deny window) the command line
        /// should not sit through: it stops, and a later run continues.
        pause: bool,
    },
    /// Desired state is reached and its gates passed.
    Done,
    /// Something outside the revision keeps the rollout from deciding (a
    /// gate that cannot be evaluated): look again later, with backoff.
    Retry {
        /// Why.
        reason: String,
    },
    /// The revision failed its gates (rolled back or held).
    Failed {
        /// Why.
        reason: String,
    },
}

/// How long a new object may stay unhealthy before its rollout fails.
const HEALTH_WAIT: Duration = Duration::from_secs(600);

/// Decides the next action of the rollout of `revision` from live state and
/// the ledger, updating the ledger (the caller saves it before acting).
#[allow(clippy::too_many_arguments)]
pub async fn tick(
    state: &DesiredState,
    desired: &DesiredResources,
    observation: &Observation,
    revision: &str,
    now: SystemTime,
    deny_window_override: Option<&str>,
    contract: Option<&Plan>,
    ledger: &mut Ledger,
) -> Tick {
    let now_ms = millis(now);
    if let Some(failed) = ledger.failed.get(revision) {
        return Tick::Failed {
            reason: format!(
                "revision {} failed its gates at {}: {}; it is not tried again until a new commit or `meridian retry`",
                short(revision),
                failed.at,
                failed.reason
            ),
        };
    }
    let (live, live_providers) = live_of(observation);
    let fresh = !matches!(&ledger.current, Some(r) if r.revision == revision && r.status != RolloutStatus::Complete);
    if fresh {
        let mut baseline = levers_of(&live);
        // A rollout superseded before it finished: its baseline is the last
        // known good, not the half-way values now live.
        if let Some(previous) = &ledger.current
            && matches!(
                previous.status,
                RolloutStatus::InProgress | RolloutStatus::RollingBack
            )
        {
            for (address, value) in &previous.baseline {
                if baseline.contains_key(address) {
                    baseline.insert(address.clone(), *value);
                }
            }
        }
        // A step of the superseded rollout still baking keeps baking, and
        // its gates are still checked, before anything else moves: a new
        // commit never skips a bake.
        let inherited: Vec<StepRecord> = ledger
            .current
            .as_ref()
            .filter(|p| {
                matches!(
                    p.status,
                    RolloutStatus::InProgress | RolloutStatus::RollingBack
                )
            })
            .and_then(|p| p.steps.last())
            .filter(|s| matches!(s.gate, GateState::Pending | GateState::BakeOnly))
            .cloned()
            .into_iter()
            .collect();
        let baseline_health = ledger
            .current
            .as_ref()
            .filter(|_| !inherited.is_empty())
            .map(|p| p.baseline_health.clone())
            .unwrap_or_else(|| gates::baseline(&live));
        ledger.current = Some(Rollout {
            revision: revision.to_owned(),
            started_at: at(now_ms),
            started_ms: now_ms,
            status: RolloutStatus::InProgress,
            baseline,
            baseline_health,
            steps: inherited,
            failure: None,
            deny_window_override: deny_window_override.map(str::to_owned),
            plan: None,
            plan_steps_done: 0,
        });
    }
    let Some(rollout) = ledger.current.as_mut() else {
        return Tick::Done;
    };
    if rollout.deny_window_override.is_none() {
        rollout.deny_window_override = deny_window_override.map(str::to_owned);
    }
    // The last step's bake and gates.
    let mut failed_now: Option<(String, GateFailure)> = None;
    if let Some(last) = rollout.steps.last_mut()
        && matches!(last.gate, GateState::Pending | GateState::BakeOnly)
    {
        let ready = last.landed_ms.unwrap_or(last.at_ms) + last.bake_seconds * 1000;
        if now_ms < ready {
            return Tick::Wait {
                until: UNIX_EPOCH + Duration::from_millis(ready),
                reason: format!(
                    "step {} is baking until {}{}",
                    last.number,
                    at(ready),
                    if last.gate == GateState::Pending {
                        "; its gates are checked then"
                    } else {
                        ""
                    }
                ),
                pause: false,
            };
        }
        if last.gate == GateState::BakeOnly {
            last.gate = GateState::None;
        } else {
            let checked = subjects(state, &last.moves);
            let mut failures = gates::health_failures(&checked, &live, &rollout.baseline_health);
            let prometheus = gates::prometheus_failures(&checked).await;
            failures.extend(prometheus.failures);
            if failures.is_empty() && !prometheus.unreachable.is_empty() {
                // No evidence either way: the step neither passes nor
                // rolls back until the gate can be evaluated.
                return Tick::Retry {
                    reason: format!(
                        "the gates of step {} cannot be evaluated: {}",
                        last.number,
                        prometheus.unreachable.join("; ")
                    ),
                };
            }
            if failures.is_empty() {
                last.gate = GateState::Passed;
                tracing::info!(step = last.number, "gates passed");
            } else {
                last.gate = GateState::Failed;
                let action = if checked
                    .values()
                    .any(|r| r.on_gate_failure == GateFailure::Hold)
                {
                    GateFailure::Hold
                } else {
                    GateFailure::Rollback
                };
                failed_now = Some((
                    format!("step {}: {}", last.number, failures.join("; ")),
                    action,
                ));
            }
        }
    }
    if let Some((reason, action)) = failed_now {
        tracing::warn!(%reason, "a gate failed");
        rollout.failure = Some(reason.clone());
        ledger.failed.insert(
            revision.to_owned(),
            FailedRevision {
                at: at(now_ms),
                reason: reason.clone(),
            },
        );
        for m in rollout.steps.iter().flat_map(|s| &s.moves) {
            if let Some(last) = ledger.moves.get_mut(&m.address.to_string()) {
                last.gate_failed = true;
            }
        }
        match action {
            GateFailure::Hold => {
                rollout.status = RolloutStatus::Failed;
                return Tick::Failed {
                    reason: format!("{reason}; holding where it is (onGateFailure: hold)"),
                };
            }
            GateFailure::Rollback => rollout.status = RolloutStatus::RollingBack,
        }
    }
    if rollout.status == RolloutStatus::Failed {
        return Tick::Failed {
            reason: rollout
                .failure
                .clone()
                .unwrap_or_else(|| "the rollout failed".to_owned()),
        };
    }
    let rolling_back = rollout.status == RolloutStatus::RollingBack;
    // What this step moves, whether it is the last, its plan, and (for a
    // plan executed as confirmed) which of the plan's steps it is.
    let (moves, step_last, plan, contract_step) = match contract {
        Some(contract) if !rolling_back => {
            let id = contract.contract_id();
            if rollout.plan.as_deref() != Some(id.as_str()) {
                rollout.plan = Some(id);
                rollout.plan_steps_done = 0;
            }
            let steps = contract.steps();
            let index = rollout.plan_steps_done;
            let Some((changes, units)) = steps.get(index) else {
                rollout.status = RolloutStatus::Complete;
                return Tick::Done;
            };
            if let Some(reason) = stale(changes, &live, observation, now) {
                return Tick::Stale { reason };
            }
            let moves: Vec<Move> = match &contract.schedule {
                Some(schedule) if schedule.steps.len() == steps.len() => {
                    schedule.steps[index].moves.clone()
                }
                _ => moves_of(changes, &live),
            };
            // A new object raised from 0 carries traffic only once healthy.
            let unhealthy: Vec<String> = moves
                .iter()
                .filter(|m| m.from == 0.0 && m.to > 0.0)
                .filter(|m| {
                    live.get(&m.address).is_some_and(|o| {
                        matches!(o.health.as_deref(), Some("initial") | Some("unhealthy"))
                    })
                })
                .map(|m| m.address.to_string())
                .collect();
            if !unhealthy.is_empty() {
                return wait_for_health(rollout, &mut ledger.failed, revision, &unhealthy, now);
            }
            let mut plan = contract.header();
            // What an earlier run of this plan already landed (a plan
            // applied again, or resumed after an interruption or a failure)
            // is not written again: a create repeated would make a second
            // object. The rest is written as the plan shows it.
            let pending: Vec<meridian_provider::Change> = changes
                .iter()
                .filter(|c| {
                    // Done when the live object is what the change writes,
                    // and, for an adoption, carries meridian's marker.
                    match live.get(&c.address) {
                        Some(o) => Some(&o.resource) != c.after.as_ref() || !o.owned,
                        // Gone: done for a delete, pending for the rest.
                        None => c.after.is_some(),
                    }
                })
                .cloned()
                .collect();
            let whole = pending.len() == changes.len();
            plan.changes = pending;
            if whole {
                plan.units = units.to_vec();
                plan.count_writes();
            } else {
                plan.group_units(&observe::member_counts(&live));
            }
            plan.summary = crate::plan::Summary::of(&plan.changes);
            (moves, index + 1 == steps.len(), plan, Some(index))
        }
        _ => {
            let target = if rolling_back {
                rollback_target(observation, &rollout.baseline)
            } else {
                managed::writable(
                    state,
                    without_held(desired, observation, now),
                    &live,
                    &live_providers,
                )
                .into_owned()
            };
            let step = schedule::step(state, &target, &live, &rollout.baseline);
            let plan =
                crate::plan::make(state, &step.desired, observation, Some(revision.to_owned()));
            if plan.changes.is_empty() {
                if !step.waiting_for_health.is_empty() {
                    let names: Vec<String> = step
                        .waiting_for_health
                        .iter()
                        .map(ToString::to_string)
                        .collect();
                    return wait_for_health(rollout, &mut ledger.failed, revision, &names, now);
                }
                if !step.last && !rolling_back {
                    return Tick::Failed {
                        reason: "the rollout cannot make progress: every remaining step waits on another (please report this with the plan)".to_owned(),
                    };
                }
                if rolling_back {
                    rollout.status = RolloutStatus::Failed;
                    return Tick::Failed {
                        reason: format!(
                            "{}; traffic levers rolled back to their last good values",
                            rollout.failure.clone().unwrap_or_default()
                        ),
                    };
                }
                rollout.status = RolloutStatus::Complete;
                return Tick::Done;
            }
            (step.moves.clone(), step.last, plan, None)
        }
    };
    if !rolling_back && !moves.is_empty() && rollout.deny_window_override.is_none() {
        for (subject, rules) in subjects(state, &moves) {
            if let Some((end, window)) = invariants::active_window(&rules.deny_windows, now) {
                return Tick::Wait {
                    until: end,
                    reason: format!(
                        "{subject}: paused by the deny window {window} of {} until {}",
                        rules.source(),
                        crate::clock::rfc3339(end)
                    ),
                    pause: true,
                };
            }
        }
    }
    if !rolling_back {
        // Anti-flap: a lever is not moved back within its hold unless a
        // gate failed. The command line refuses such a plan up front (exit
        // 3); here the rollout waits the hold out.
        for m in &moves {
            let Some(last) = ledger.moves.get(&m.address.to_string()) else {
                continue;
            };
            let direction = if m.to > m.from { 1 } else { -1 };
            let hold = rules_for(state, &m.address).flap_hold;
            let until = last.at_ms + u64::try_from(hold.as_millis()).unwrap_or(0);
            if direction != last.direction && !last.gate_failed && now_ms < until {
                return Tick::Wait {
                    until: UNIX_EPOCH + Duration::from_millis(until),
                    reason: format!(
                        "anti-flap: {} {} moved the other way at {}; held until {}",
                        m.address,
                        m.lever.field(),
                        at(last.at_ms),
                        at(until)
                    ),
                    pause: true,
                };
            }
        }
    }
    let moved = subjects(state, &moves);
    let bake = moved.values().map(|r| r.bake.as_secs()).max().unwrap_or(0);
    let gated = !rolling_back
        && moved
            .values()
            .any(|r| r.gate.is_some() || !r.bake.is_zero());
    let number = rollout.steps.len() + 1;
    rollout.steps.push(StepRecord {
        number,
        rollback: rolling_back,
        at: at(now_ms),
        at_ms: now_ms,
        landed_ms: None,
        moves: moves.clone(),
        bake_seconds: bake,
        gate: if gated {
            GateState::Pending
        } else if rolling_back && bake > 0 && !step_last {
            GateState::BakeOnly
        } else {
            GateState::None
        },
    });
    for m in &moves {
        ledger.moves.insert(
            m.address.to_string(),
            LastMove {
                direction: if m.to > m.from { 1 } else { -1 },
                at_ms: now_ms,
                gate_failed: rolling_back,
            },
        );
    }
    Tick::Apply {
        plan: Box::new(plan),
        step: number,
        last: step_last && !gated,
        rollback: rolling_back,
        contract_step,
    }
}

/// Why a step of a confirmed plan no longer fits the live world, if it
/// does not: an object it changes is neither as the plan saw it nor
/// already as it wants it, or a break-glass override now covers it.
fn stale(
    changes: &[meridian_provider::Change],
    live: &Live,
    observation: &Observation,
    now: SystemTime,
) -> Option<String> {
    let active: Vec<&Address> = observation
        .overrides
        .iter()
        .filter(|(_, o)| crate::plan::held::is_active(o, now))
        .map(|(_, o)| &o.address)
        .collect();
    let mut why = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for change in changes {
        // An object changed twice in one step (drained, then deleted) is
        // checked against what the first change expects; the second
        // expects what the first leaves, and its own write checks that.
        if !seen.insert(&change.address) {
            continue;
        }
        let have = live.get(&change.address).map(|o| &o.resource);
        if have != change.before.as_ref() && have != change.after.as_ref() {
            let detail = match (change.before.as_ref(), have) {
                (Some(_), Some(_)) => {
                    crate::plan::diff::field_changes(change.before.as_ref(), have)
                        .iter()
                        .map(|f| {
                            format!(
                                "{} is {} (the plan saw {})",
                                f.path,
                                crate::plan::render::show_value(f.after.as_ref()),
                                crate::plan::render::show_value(f.before.as_ref())
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                }
                (None, Some(_)) => "it exists now (the plan saw none)".to_owned(),
                (Some(_), None) => "it is gone (the plan saw it)".to_owned(),
                (None, None) => String::new(),
            };
            why.push(format!(
                "{} changed since the plan was made: {detail}",
                change.address
            ));
        }
        if let Some(marker) = crate::plan::held::marker_object(&change.address)
            && active.contains(&&marker)
            && crate::plan::held::holds(change)
        {
            why.push(format!(
                "{} is now under a break-glass override on {marker}",
                change.address
            ));
        }
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// The lever moves of a step's changes.
/// The lever moves of a step of changes, as [`schedule::step`] counts them:
/// an update of a lever, or a new object whose parent already serves. A new
/// object under a new parent carries no traffic yet when it lands.
fn moves_of(changes: &[meridian_provider::Change], live: &Live) -> Vec<Move> {
    changes
        .iter()
        .filter(|c| c.action != meridian_provider::Action::Delete)
        .filter(|c| {
            c.action == meridian_provider::Action::Update || schedule::parent_live(&c.address, live)
        })
        .filter_map(|c| {
            let (kind, to) = lever(c.after.as_ref()?)?;
            let from = c.before.as_ref().and_then(lever).map_or(0.0, |(_, v)| v);
            ((from - to).abs() > 1e-9).then(|| Move {
                address: c.address.clone(),
                lever: kind,
                from,
                to,
            })
        })
        .collect()
}

/// New objects that must become healthy before they get traffic: wait (look
/// again in 5 s), or fail the revision once [`HEALTH_WAIT`] has passed since
/// the step that made them landed.
fn wait_for_health(
    rollout: &mut Rollout,
    failed: &mut BTreeMap<String, FailedRevision>,
    revision: &str,
    unhealthy: &[String],
    now: SystemTime,
) -> Tick {
    let now_ms = millis(now);
    // The wait runs from when the last step's writes landed (the new
    // objects were made then), or from the rollout's start before any.
    let since = rollout
        .steps
        .last()
        .and_then(|s| s.landed_ms)
        .unwrap_or(rollout.started_ms)
        .max(rollout.started_ms);
    let waited = Duration::from_millis(now_ms.saturating_sub(since));
    if waited > HEALTH_WAIT {
        let reason = format!(
            "{} did not become healthy within {} s of their step",
            unhealthy.join(", "),
            HEALTH_WAIT.as_secs()
        );
        rollout.failure = Some(reason.clone());
        rollout.status = RolloutStatus::Failed;
        failed.insert(
            revision.to_owned(),
            FailedRevision {
                at: at(now_ms),
                reason: reason.clone(),
            },
        );
        return Tick::Failed { reason };
    }
    Tick::Wait {
        until: now + Duration::from_secs(5),
        reason: format!(
            "waiting for {} to become healthy before giving it traffic",
            unhealthy.join(", ")
        ),
        pause: false,
    }
}

fn short(revision: &str) -> &str {
    revision.get(..12).unwrap_or(revision)
}

/// How a rollout run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    /// Desired state reached.
    Done,
    /// The revision failed its gates (rolled back or held).
    Failed(String),
    /// A change failed to apply; what landed stays.
    ApplyFailed(Vec<String>),
    /// Nothing to do before this time (only without `wait`).
    Waiting(SystemTime, String),
    /// Stopped by a signal between steps.
    Interrupted,
    /// Something outside the revision keeps the rollout from deciding (only
    /// without `wait`): retry later, with backoff.
    Retry(String),
    /// The confirmed plan no longer fits the live world; nothing of the
    /// step was written.
    Stale(String),
}

/// Events of a rollout run, for the console or the daemon's log.
pub trait RolloutEvents: Send + Sync {
    /// A step starts.
    fn step(&self, number: usize, rollback: bool, plan: &Plan);
    /// Waiting.
    fn waiting(&self, reason: &str);
}

/// Options of a rollout run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Sleep through bakes (the CLI) or return [`RunEnd::Waiting`] (the daemon).
    pub wait: bool,
    /// A recorded deny-window override.
    pub deny_window_override: Option<String>,
    /// Conflicts (objects changed since observed) tolerated in a row before
    /// giving up; 0 for a saved plan, which must apply as approved.
    pub max_conflicts: u32,
    /// The plan to carry out as confirmed: its steps with their values and
    /// nothing else, each checked against live state first (the command
    /// line). Without one, each step is computed from live state (the
    /// daemon's level-triggered reconcile).
    pub contract: Option<Plan>,
}

/// Whether observation must include the health that costs extra calls.
pub fn needs_health(state: &DesiredState) -> bool {
    state.traffic_policies.iter().any(|p| {
        p.doc
            .spec
            .health_gate
            .as_ref()
            .is_some_and(|g| g.min_healthy_fraction.is_some())
    })
}

/// Runs the rollout of `revision` step by step until it is done, fails,
/// must wait (without `wait`), or `stop` is set.
///
/// `observed` is an observation the caller has just made (with the health
/// [`needs_health`] asks for): the first step runs on it instead of
/// observing again, so that a reconcile reads the fleet once. Every later
/// step observes afresh, and every write still compares the object with
/// what the plan saw before it writes (the providers' compare-before-write),
/// so a change made in between is a conflict, never overwritten.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    state: &DesiredState,
    desired: &DesiredResources,
    revision: &str,
    providers: &Providers,
    store: &LedgerStore,
    progress: &dyn Progress,
    events: &dyn RolloutEvents,
    stop: &Arc<AtomicBool>,
    options: &RunOptions,
    mut observed: Option<Observation>,
) -> anyhow::Result<(RunEnd, Vec<apply::Outcome>)> {
    let _lock = store.lock()?;
    let health = needs_health(state);
    let mut outcomes = Vec::new();
    let mut conflicts = 0u32;
    let mut retries = 0u32;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok((RunEnd::Interrupted, outcomes));
        }
        let observation = match observed.take() {
            Some(observation) => observation,
            None => observe::observe_with(providers, desired, health).await,
        };
        if !observation.gaps.is_empty() {
            let gaps = observation
                .gaps
                .iter()
                .map(|g| format!("{} of {}: {}", g.family, g.provider, g.error))
                .collect();
            return Ok((RunEnd::ApplyFailed(gaps), outcomes));
        }
        let mut ledger = store.load()?;
        let next = tick(
            state,
            desired,
            &observation,
            revision,
            SystemTime::now(),
            options.deny_window_override.as_deref(),
            options.contract.as_ref(),
            &mut ledger,
        )
        .await;
        store.save(&ledger)?;
        match next {
            Tick::Done => return Ok((RunEnd::Done, outcomes)),
            Tick::Failed { reason } => return Ok((RunEnd::Failed(reason), outcomes)),
            Tick::Retry { reason } => {
                events.waiting(&format!("{reason}; retrying"));
                if !options.wait {
                    return Ok((RunEnd::Retry(reason), outcomes));
                }
                retries += 1;
                let delay =
                    Duration::from_secs(5u64 << retries.min(4)).min(Duration::from_secs(60));
                let until = SystemTime::now() + delay;
                while SystemTime::now() < until {
                    if stop.load(Ordering::SeqCst) {
                        return Ok((RunEnd::Interrupted, outcomes));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            Tick::Wait {
                until,
                reason,
                pause,
            } => {
                events.waiting(&reason);
                if !options.wait || pause {
                    return Ok((RunEnd::Waiting(until, reason), outcomes));
                }
                while SystemTime::now() < until {
                    if stop.load(Ordering::SeqCst) {
                        return Ok((RunEnd::Interrupted, outcomes));
                    }
                    let left = until
                        .duration_since(SystemTime::now())
                        .unwrap_or_default()
                        .min(Duration::from_millis(200));
                    tokio::time::sleep(left).await;
                }
            }
            Tick::Stale { reason } => return Ok((RunEnd::Stale(reason), outcomes)),
            Tick::Apply {
                plan,
                step,
                last,
                rollback,
                contract_step,
            } => {
                if plan.is_blocked() || plan.errored {
                    let why = plan
                        .violations
                        .iter()
                        .map(|v| v.message.clone())
                        .chain(plan.conflicts.iter().cloned())
                        .collect();
                    return Ok((RunEnd::ApplyFailed(why), outcomes));
                }
                events.step(step, rollback, &plan);
                if let Some(audit) = &providers.audit {
                    audit.step(step, rollback);
                }
                let report = apply::apply(&plan, providers, progress, stop).await;
                let failures: Vec<String> = report
                    .failures()
                    .iter()
                    .filter_map(|f| {
                        f.error
                            .as_ref()
                            .map(|e| format!("{} {}: {e}", f.action.symbol(), f.address))
                    })
                    .collect();
                let only_conflicts = !failures.is_empty()
                    && report
                        .failures()
                        .iter()
                        .all(|f| f.error.as_ref().is_some_and(|e| e.is_conflict()));
                let landed = report.outcomes.iter().any(|o| o.error.is_none());
                let skipped = report.skipped;
                outcomes.extend(report.outcomes);
                if only_conflicts && conflicts < options.max_conflicts {
                    // Observe again and compute the step again from live.
                    conflicts += 1;
                    for failure in &failures {
                        events.waiting(&format!(
                            "conflict: {failure}; observing again and re-planning this step"
                        ));
                    }
                    // Nothing of the step landed: forget it and plan it
                    // again. If part of it landed, it stays recorded and is
                    // baked and gated like any step before the next.
                    let mut ledger = store.load()?;
                    if let Some(current) = ledger.current.as_mut()
                        && current.steps.last().is_some_and(|s| s.number == step)
                    {
                        if landed {
                            if let Some(record) = current.steps.last_mut() {
                                record.landed_ms = Some(millis(SystemTime::now()));
                            }
                        } else {
                            current.steps.pop();
                        }
                    }
                    store.save(&ledger)?;
                    continue;
                }
                if !failures.is_empty() {
                    return Ok((RunEnd::ApplyFailed(failures), outcomes));
                }
                conflicts = 0;
                if skipped > 0 {
                    return Ok((RunEnd::Interrupted, outcomes));
                }
                // The bake counts from when the step's writes landed.
                let mut ledger = store.load()?;
                if let Some(record) = ledger
                    .current
                    .as_mut()
                    .and_then(|c| c.steps.iter_mut().find(|s| s.number == step))
                {
                    record.landed_ms = Some(millis(SystemTime::now()));
                }
                if let (Some(index), Some(current)) = (contract_step, ledger.current.as_mut()) {
                    current.plan_steps_done = index + 1;
                }
                store.save(&ledger)?;
                if last {
                    let mut ledger = store.load()?;
                    let mut failure = None;
                    if let Some(current) = ledger.current.as_mut() {
                        if rollback {
                            current.status = RolloutStatus::Failed;
                            failure = Some(format!(
                                "{}; traffic levers rolled back to their last good values",
                                current.failure.clone().unwrap_or_default()
                            ));
                        } else {
                            current.status = RolloutStatus::Complete;
                        }
                    }
                    store.save(&ledger)?;
                    return Ok((failure.map_or(RunEnd::Done, RunEnd::Failed), outcomes));
                }
            }
        }
    }
}

/// Adds the step schedule and the invariant violations (serving regions at
/// every step, no silent all-zero) to a plan; deny windows and anti-flap
/// holds are left to the rollout, which waits them out (the daemon).
pub fn annotate_invariants(
    plan: &mut Plan,
    state: &DesiredState,
    desired: &DesiredResources,
    observation: &Observation,
) {
    let (live, providers) = live_of(observation);
    let held = managed::writable(
        state,
        without_held(desired, observation, SystemTime::now()),
        &live,
        &providers,
    );
    let desired = &held;
    let schedule = schedule::schedule(state, desired, &live, &providers);
    if schedule.steps.iter().any(|s| !s.moves.is_empty()) {
        plan.schedule = Some(schedule);
        plan.count_writes();
    }
    plan.violations
        .extend(invariants::schedule_violations(state, desired, &live));
}

/// Adds what progressive delivery knows to a plan: the step schedule, and
/// the invariant, deny-window and anti-flap violations (the CLI: a plan
/// inside a deny window or reversing a recent move is blocked, exit 3).
pub fn annotate(
    plan: &mut Plan,
    state: &DesiredState,
    desired: &DesiredResources,
    observation: &Observation,
    ledger: &Ledger,
    now: SystemTime,
    deny_window_override: Option<&str>,
) {
    let (live, providers) = live_of(observation);
    let held = managed::writable(
        state,
        without_held(desired, observation, now),
        &live,
        &providers,
    );
    let desired = &held;
    let schedule = schedule::schedule(state, desired, &live, &providers);
    if schedule.steps.iter().any(|s| !s.moves.is_empty()) {
        if let Some(first) = schedule.steps.first() {
            plan.violations.extend(invariants::flap_violations(
                state,
                &first.moves,
                &ledger.moves,
                now,
            ));
        }
        plan.schedule = Some(schedule);
        plan.count_writes();
    }
    plan.violations
        .extend(invariants::schedule_violations(state, desired, &live));
    let moving = invariants::moving_subjects(state, desired, &live);
    let windows = invariants::window_violations(state, &moving, now);
    match deny_window_override {
        Some(reason) if !windows.is_empty() => plan.notes.push(format!(
            "deny window overridden on the command line ({reason}); recorded in the rollout ledger: {}",
            windows
                .iter()
                .map(|w| w.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        )),
        _ => plan.violations.extend(windows),
    }
}

/// The ledger for humans: the current rollout, its steps, failed revisions.
pub fn ledger_text(ledger: &Ledger) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    match &ledger.current {
        None => {
            let _ = writeln!(out, "rollout: none");
        }
        Some(rollout) => {
            let _ = writeln!(
                out,
                "rollout of {}: {:?} (started {})",
                short(&rollout.revision),
                rollout.status,
                rollout.started_at
            );
            for step in &rollout.steps {
                let moves: Vec<String> = step
                    .moves
                    .iter()
                    .map(|m| {
                        format!(
                            "{} {} {} → {}",
                            m.address,
                            m.lever.field(),
                            m.lever.show(m.from),
                            m.lever.show(m.to)
                        )
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "  {} {} at {}: {}; gate {:?}",
                    if step.rollback {
                        "rollback step"
                    } else {
                        "step"
                    },
                    step.number,
                    step.at,
                    if moves.is_empty() {
                        "(no lever moves)".to_owned()
                    } else {
                        moves.join(", ")
                    },
                    step.gate
                );
            }
            if let Some(failure) = &rollout.failure {
                let _ = writeln!(out, "  failure: {failure}");
            }
            if let Some(reason) = &rollout.deny_window_override {
                let _ = writeln!(out, "  deny window overridden: {reason}");
            }
        }
    }
    for (revision, failed) in &ledger.failed {
        let _ = writeln!(
            out,
            "failed revision {}: at {}: {} (not retried until a new commit or `meridian retry`)",
            short(revision),
            failed.at,
            failed.reason
        );
    }
    out
}

/// Whether a violation comes from the rollout checks (invariants, windows,
/// anti-flap) rather than from a data-residency policy.
pub fn is_rollout_violation(violation: &crate::policy::Violation) -> bool {
    !violation.policy.starts_with("DataResidencyPolicy/")
        && violation.policy != crate::plan::guard::GUARD
}
