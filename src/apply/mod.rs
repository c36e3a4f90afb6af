//! Apply: carries out a plan's changes wave by wave, with bounded
//! concurrency per provider, recording each outcome as it lands.
//!
//! A failed change stops the run after its wave; what landed stays landed,
//! and the next run continues from live state. This module never decides
//! what to change: it executes what a plan says.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use meridian_provider::units::{ApiWrite, PlannedUnit, UnitOfWork};
use meridian_provider::{Action, Address, ApplyRequest, CallCounter, Change, ProviderError};
use tokio::sync::Semaphore;

use crate::plan::Plan;
use crate::providers::Providers;

/// The outcome of one change: which object, what was done, how it went.
/// (Not the change itself: an apply of the whole fleet would hold every
/// object's values a second time.)
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The object changed.
    pub address: Address,
    /// What was done to it.
    pub action: Action,
    /// How long it took.
    pub elapsed: Duration,
    /// The error, when it failed.
    pub error: Option<ProviderError>,
}

/// The outcome of an apply.
#[derive(Debug, Clone, Default)]
pub struct ApplyReport {
    /// Outcomes in the order they landed.
    pub outcomes: Vec<Outcome>,
    /// Changes not attempted because an earlier wave failed or a stop was requested.
    pub skipped: usize,
    /// The write calls that succeeded, by operation (from the providers'
    /// counters).
    pub writes: Vec<ApiWrite>,
}

impl ApplyReport {
    /// Changes that failed.
    pub fn failures(&self) -> Vec<&Outcome> {
        self.outcomes.iter().filter(|o| o.error.is_some()).collect()
    }
}

/// Receives progress while a plan is applied.
pub trait Progress: Send + Sync {
    /// A change is starting.
    fn started(&self, change: &Change, index: usize, total: usize);
    /// A change has landed or failed.
    fn finished(&self, outcome: &Outcome, done: usize, total: usize);
}

/// A unit of work in flight: what its outcomes and audit lines name.
struct InFlight {
    object: Address,
    provider: String,
    names: Vec<(Address, Action)>,
    audited: Option<Vec<crate::audit::AuditChange>>,
}

/// Applies a plan's changes: its units of work, wave by wave.
pub async fn apply(
    plan: &Plan,
    providers: &Providers,
    progress: &dyn Progress,
    stop: &Arc<AtomicBool>,
) -> ApplyReport {
    execute(&plan.changes, &plan.units, providers, progress, stop).await
}

/// Carries out `units` (of `changes`) wave by wave: every unit of a wave
/// lands before the next wave starts; within a wave, units run concurrently
/// up to each provider's `maxConcurrency`. A failed change stops the run
/// after its wave. When `stop` becomes true (a shutdown signal), units
/// already in flight finish and nothing new starts. A provider task that
/// panics fails every change of its unit; nothing else is lost.
pub async fn execute(
    changes: &[Change],
    units: &[PlannedUnit],
    providers: &Providers,
    progress: &dyn Progress,
    stop: &Arc<AtomicBool>,
) -> ApplyReport {
    let total = changes.len();
    let calls_before = providers.calls();
    let mut waves: BTreeMap<u32, Vec<&PlannedUnit>> = BTreeMap::new();
    for unit in units {
        waves.entry(unit.wave).or_default().push(unit);
    }
    let semaphores: BTreeMap<String, Arc<Semaphore>> = providers
        .concurrency
        .iter()
        .map(|(name, n)| (name.clone(), Arc::new(Semaphore::new(*n))))
        .collect();
    let mut report = ApplyReport::default();
    let mut started = 0usize;
    let mut failed = false;
    for (_, wave) in waves {
        if failed || stop.load(Ordering::SeqCst) {
            report.skipped += wave.iter().map(|u| u.changes.len()).sum::<usize>();
            continue;
        }
        let mut tasks = tokio::task::JoinSet::new();
        // What each task writes, to name its changes in the outcomes; the
        // unit itself moves into the task (one copy of a wave's changes).
        let mut in_flight: HashMap<tokio::task::Id, InFlight> = HashMap::new();
        for planned in wave {
            if stop.load(Ordering::SeqCst) {
                report.skipped += planned.changes.len();
                continue;
            }
            let unit = UnitOfWork {
                object: planned.object.clone(),
                changes: planned
                    .changes
                    .iter()
                    .filter_map(|i| changes.get(*i).cloned())
                    .collect(),
                members_after: planned.members_after,
            };
            for change in &unit.changes {
                started += 1;
                progress.started(change, started, total);
            }
            let names: Vec<(Address, Action)> = unit
                .changes
                .iter()
                .map(|c| (c.address.clone(), c.action))
                .collect();
            // What the audit trail says of this unit's calls (only when a
            // trail is kept: the fields are a second copy).
            let audited: Option<Vec<crate::audit::AuditChange>> =
                providers.audit.as_ref().map(|_| {
                    unit.changes
                        .iter()
                        .map(|c| crate::audit::AuditChange::of(&c.address, c.action, &c.fields))
                        .collect()
                });
            let recording = audited.is_some();
            let provider = providers.get(&planned.provider).cloned();
            let fence = providers.fence.clone();
            let semaphore = semaphores.get(&planned.provider).cloned();
            let name = planned.provider.clone();
            let object = unit.object.clone();
            let handle = tasks.spawn(async move {
                let begun = Instant::now();
                let _permit = match &semaphore {
                    Some(s) => s.clone().acquire_owned().await.ok(),
                    None => None,
                };
                // Fenced: a replica that lost its leadership writes nothing.
                let count = unit.changes.len();
                if let Some(fence) = &fence
                    && let Err(why) = fence.check().await
                {
                    let error = ProviderError::stalled("Fence", "LeadershipLost", why);
                    return (vec![Some(error); count], begun.elapsed(), Vec::new());
                }
                let write = async {
                    match provider {
                        None => vec![
                            Some(ProviderError::stalled(
                                "apply",
                                "UnknownProvider",
                                format!("no provider named `{name}`"),
                            ));
                            count
                        ],
                        Some(provider) => provider.apply(ApplyRequest { unit }).await.results,
                    }
                };
                // A unit outliving the leadership it started under is
                // cancelled: none of its later calls is made.
                let fenced = async {
                    match &fence {
                        None => write.await,
                        Some(fence) => tokio::select! {
                            results = write => results,
                            () = fence.lost() => vec![
                                Some(ProviderError::stalled(
                                    "Fence",
                                    "LeadershipLost",
                                    "leadership was lost while this unit ran; its remaining calls were not made",
                                ));
                                count
                            ],
                        },
                    }
                };
                // The calls are recorded around the cancellation: those a
                // cancelled unit made before it stopped are kept.
                let (results, calls) = if recording {
                    meridian_provider::journal::recording(fenced).await
                } else {
                    (fenced.await, Vec::new())
                };
                (results, begun.elapsed(), calls)
            });
            in_flight.insert(
                handle.id(),
                InFlight {
                    object,
                    provider: planned.provider.clone(),
                    names,
                    audited,
                },
            );
        }
        while let Some(joined) = tasks.join_next_with_id().await {
            let (id, results, elapsed, calls) = match joined {
                Ok((id, (results, elapsed, calls))) => (id, results, elapsed, calls),
                Err(error) => {
                    let id = error.id();
                    let object = in_flight
                        .get(&id)
                        .map(|f| f.object.to_string())
                        .unwrap_or_default();
                    let why = ProviderError::stalled(
                        "apply",
                        "ProviderPanicked",
                        format!(
                            "the provider task writing {object} stopped unexpectedly ({error}); what landed stays, and the next run continues from live state"
                        ),
                    );
                    let n = in_flight.get(&id).map_or(0, |f| f.names.len());
                    (id, vec![Some(why); n], Duration::ZERO, Vec::new())
                }
            };
            let Some(InFlight {
                object,
                provider,
                names,
                audited,
            }) = in_flight.remove(&id)
            else {
                continue;
            };
            if let (Some(audit), Some(changes)) = (&providers.audit, &audited)
                && let Err(error) = audit.record(&provider, &object, changes, &calls).await
            {
                tracing::error!(%error, trail = %audit.describe(), "cannot append to the audit trail");
            }
            for (index, (address, action)) in names.into_iter().enumerate() {
                let error = results.get(index).cloned().unwrap_or_else(|| {
                    Some(ProviderError::stalled(
                        "apply",
                        "MissingResult",
                        "the provider reported no result for this change",
                    ))
                });
                if error.is_some() {
                    failed = true;
                }
                report.outcomes.push(Outcome {
                    address,
                    action,
                    elapsed,
                    error,
                });
                progress.finished(
                    report.outcomes.last().expect("just pushed"),
                    report.outcomes.len(),
                    total,
                );
            }
        }
    }
    report.writes = writes_between(&calls_before, &providers.calls());
    report
}

/// The successful write calls made between two readings of the providers'
/// counters, by operation.
fn writes_between(
    before: &BTreeMap<String, Vec<CallCounter>>,
    after: &BTreeMap<String, Vec<CallCounter>>,
) -> Vec<ApiWrite> {
    let count = |calls: &BTreeMap<String, Vec<CallCounter>>| {
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for counter in calls.values().flatten().filter(|c| c.write) {
            *out.entry(counter.operation.clone()).or_default() += counter.ok;
        }
        out
    };
    let (before, after) = (count(before), count(after));
    after
        .into_iter()
        .filter_map(|(operation, n)| {
            let made = n.saturating_sub(before.get(&operation).copied().unwrap_or(0));
            (made > 0).then(|| ApiWrite {
                operation,
                count: u32::try_from(made).unwrap_or(u32::MAX),
            })
        })
        .collect()
}
