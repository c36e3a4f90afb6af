//! Apply: carries out a plan's changes wave by wave, with bounded
//! concurrency per provider, recording each outcome as it lands.
//!
//! A failed change stops the run after its wave; what landed stays landed,
//! and the next run continues from live state. This module never decides
//! what to change: it executes what a plan says.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use meridian_provider::{ApplyRequest, Change, ProviderError};
use tokio::sync::Semaphore;

use crate::plan::Plan;
use crate::providers::Providers;

/// The outcome of one change.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The change.
    pub change: Change,
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

/// Applies a plan's changes wave by wave. When `stop` becomes true (a
/// shutdown signal), changes already in flight finish and nothing new starts.
pub async fn apply(
    plan: &Plan,
    providers: &Providers,
    progress: &dyn Progress,
    stop: &Arc<AtomicBool>,
) -> ApplyReport {
    let total = plan.changes.len();
    let mut waves: BTreeMap<u32, Vec<&Change>> = BTreeMap::new();
    for change in &plan.changes {
        waves.entry(change.wave).or_default().push(change);
    }
    let semaphores: BTreeMap<String, Arc<Semaphore>> = providers
        .concurrency
        .iter()
        .map(|(name, n)| (name.clone(), Arc::new(Semaphore::new(*n))))
        .collect();
    let mut report = ApplyReport::default();
    let mut started = 0usize;
    let mut failed = false;
    for (_, changes) in waves {
        if failed || stop.load(Ordering::SeqCst) {
            report.skipped += changes.len();
            continue;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for change in changes {
            if stop.load(Ordering::SeqCst) {
                report.skipped += 1;
                continue;
            }
            started += 1;
            progress.started(change, started, total);
            let provider = providers.get(&change.provider).cloned();
            let semaphore = semaphores.get(&change.provider).cloned();
            let change = change.clone();
            tasks.spawn(async move {
                let begun = Instant::now();
                let _permit = match &semaphore {
                    Some(s) => s.clone().acquire_owned().await.ok(),
                    None => None,
                };
                let error = match provider {
                    None => Some(ProviderError::stalled(
                        "apply",
                        "UnknownProvider",
                        format!("no provider named `{}`", change.provider),
                    )),
                    Some(provider) => provider
                        .apply(ApplyRequest {
                            change: change.clone(),
                        })
                        .await
                        .err(),
                };
                Outcome {
                    change,
                    elapsed: begun.elapsed(),
                    error,
                }
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let Ok(outcome) = joined else {
                failed = true;
                continue;
            };
            if outcome.error.is_some() {
                failed = true;
            }
            report.outcomes.push(outcome);
            progress.finished(
                report.outcomes.last().expect("just pushed"),
                report.outcomes.len(),
                total,
            );
        }
    }
    report
}
