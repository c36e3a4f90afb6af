//! The reconcile engine: build providers, observe, plan, apply.
//!
//! `plan` is observe + diff + policy; `apply` executes a plan wave by wave
//! with bounded concurrency per provider, recording each outcome as it lands.
//! A failed change stops the run after its wave; what landed stays landed,
//! and the next run continues from live state.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use meridian_provider::{
    ApplyRequest, CallCounter, Change, Family, ObserveRequest, Observed, Provider, ProviderError,
    RetryPolicy, RetryStats,
};
use meridian_sim::provider::SimProviderConfig;
use meridian_sim::{SimCloud, SimProvider, SimStore};
use tokio::sync::Semaphore;

use crate::desired::{self, DesiredResources};
use crate::model::DesiredState;
use crate::model::raw::ProviderType;
use crate::plan::{self, Gap, Plan, PlanSource, Summary};
use crate::policy;

/// Errors of the engine (as opposed to policy blocks or change failures).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A provider cannot be built.
    #[error("provider `{provider}`: {message}")]
    Provider {
        /// Provider name.
        provider: String,
        /// Why.
        message: String,
    },
    /// The simulated cloud's directory is unusable.
    #[error(transparent)]
    Sim(#[from] meridian_sim::StoreError),
}

/// How the engine runs.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Run every provider against the simulated cloud in this directory.
    pub sim_dir: Option<PathBuf>,
    /// Retry policy for cloud calls.
    pub retry: RetryPolicy,
}

/// The providers of a desired state, by name.
pub struct Providers {
    by_name: BTreeMap<String, Arc<dyn Provider>>,
    concurrency: BTreeMap<String, usize>,
    /// Retry counters shared by every provider.
    pub stats: RetryStats,
}

impl Providers {
    /// Builds one provider per `Provider` document: the simulated cloud for
    /// every provider under `--sim`, otherwise the real one for its type.
    pub async fn build(state: &DesiredState, options: &EngineOptions) -> Result<Self, EngineError> {
        let stats = RetryStats::default();
        let mut by_name: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
        let mut concurrency = BTreeMap::new();
        let cloud = match &options.sim_dir {
            Some(dir) => Some(SimCloud::new(SimStore::open(dir)?)),
            None => None,
        };
        for doc in &state.providers {
            let spec = &doc.doc.spec;
            let name = doc.name().to_owned();
            let owner = spec.owner.clone().unwrap_or_else(|| name.clone());
            concurrency.insert(
                name.clone(),
                spec.max_concurrency.unwrap_or(4).clamp(1, 32) as usize,
            );
            let provider: Arc<dyn Provider> = match (&cloud, spec.provider_type) {
                (Some(cloud), provider_type) => Arc::new(SimProvider::new(
                    SimProviderConfig {
                        name: name.clone(),
                        owner,
                        families: desired::provider_families(provider_type),
                        project: desired::project_of(state, &name),
                        retry: options.retry.clone(),
                        stats: stats.clone(),
                    },
                    cloud.clone(),
                )),
                (None, ProviderType::Aws) => Arc::new(
                    meridian_aws::AwsProvider::new(meridian_aws::AwsConfig {
                        name: name.clone(),
                        owner,
                        profile: spec.profile.clone(),
                        globalaccelerator_endpoint: spec
                            .endpoints
                            .as_ref()
                            .and_then(|e| e.globalaccelerator.clone()),
                        ec2_endpoint: spec.endpoints.as_ref().and_then(|e| e.ec2.clone()),
                        retry: options.retry.clone(),
                        stats: stats.clone(),
                    })
                    .await,
                ),
                (None, ProviderType::Sim) => {
                    return Err(EngineError::Provider { provider: name, message: "a provider of type sim runs against the embedded simulated cloud: pass --sim DIR or set MERIDIAN_SIM".to_owned() });
                }
                (None, ProviderType::Gcp) => {
                    let Some(project) = spec.project.clone() else {
                        return Err(EngineError::Provider {
                            provider: name,
                            message:
                                "a provider of type gcp needs `spec.project`, the GCP project id"
                                    .to_owned(),
                        });
                    };
                    let config = meridian_gcp::GcpConfig {
                        name: name.clone(),
                        owner,
                        project,
                        endpoint: spec.endpoints.as_ref().and_then(|e| e.compute.clone()),
                        retry: options.retry.clone(),
                        stats: stats.clone(),
                    };
                    match meridian_gcp::GcpProvider::new(config).await {
                        Ok(provider) => Arc::new(provider),
                        Err(error) => {
                            return Err(EngineError::Provider {
                                provider: name,
                                message: error.message,
                            });
                        }
                    }
                }
            };
            by_name.insert(name, provider);
        }
        Ok(Self {
            by_name,
            concurrency,
            stats,
        })
    }

    /// API calls made so far, by provider.
    pub fn calls(&self) -> BTreeMap<String, Vec<CallCounter>> {
        self.by_name
            .iter()
            .map(|(name, p)| (name.clone(), p.calls()))
            .collect()
    }

    fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.by_name.get(name)
    }

    /// Writes (`Some(until)`) or removes (`None`) the break-glass override
    /// marker on `address` through the provider named `provider`.
    pub async fn set_override(
        &self,
        provider: &str,
        address: &meridian_provider::Address,
        until: Option<String>,
    ) -> Result<(), ProviderError> {
        match self.get(provider) {
            Some(p) => p.set_override(address, until).await,
            None => Err(ProviderError::stalled(
                "SetOverride",
                "UnknownProvider",
                format!("no provider named `{provider}`"),
            )),
        }
    }
}

/// What every provider observed.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Every observed object with its provider's name.
    pub resources: Vec<(String, Observed)>,
    /// Families that could not be observed.
    pub gaps: Vec<Gap>,
    /// Desired objects whose provider does not manage their family.
    pub unsupported: Vec<String>,
    /// Break-glass override markers on live objects, with their provider's name.
    pub overrides: Vec<(String, meridian_provider::LiveOverride)>,
}

/// Observes every provider concurrently, without the health that costs
/// extra calls.
pub async fn observe(providers: &Providers, desired: &DesiredResources) -> Observation {
    observe_with(providers, desired, false).await
}

/// Observes every provider concurrently; with `health`, also the health
/// that costs extra calls (GCP backends).
pub async fn observe_with(
    providers: &Providers,
    desired: &DesiredResources,
    health: bool,
) -> Observation {
    let regions = desired::regions_by_provider(desired);
    let mut tasks = tokio::task::JoinSet::new();
    for (name, provider) in &providers.by_name {
        let provider = provider.clone();
        let name = name.clone();
        let request = ObserveRequest {
            families: Vec::new(),
            regions: regions.get(&name).cloned().unwrap_or_default(),
            health,
        };
        tasks.spawn(async move { (name, provider.observe(request).await) });
    }
    let mut observation = Observation::default();
    let mut unsupported = BTreeSet::new();
    for (address, want) in desired {
        if let Some(provider) = providers.by_name.get(&want.provider)
            && !provider.families().contains(&address.family())
        {
            unsupported.insert(format!("{} ({}) is managed by provider `{}`, which does not support {} in this release; run with --sim DIR, or move it to a provider that does", want.source, address.family(), want.provider, address.family()));
        }
    }
    observation.unsupported = unsupported.into_iter().collect();
    while let Some(joined) = tasks.join_next().await {
        let Ok((name, response)) = joined else {
            continue;
        };
        observation
            .resources
            .extend(response.resources.into_iter().map(|o| (name.clone(), o)));
        observation
            .overrides
            .extend(response.overrides.into_iter().map(|o| (name.clone(), o)));
        observation
            .gaps
            .extend(response.gaps.into_iter().map(|g| Gap {
                provider: name.clone(),
                family: g.family,
                error: g.error,
            }));
    }
    observation
        .resources
        .sort_by(|a, b| (&a.0, &a.1.address).cmp(&(&b.0, &b.1.address)));
    observation
        .gaps
        .sort_by(|a, b| (&a.provider, a.family).cmp(&(&b.provider, b.family)));
    observation
}

/// Computes a plan from desired state and an observation.
pub fn make_plan(
    state: &DesiredState,
    desired: &DesiredResources,
    observation: &Observation,
    revision: Option<String>,
) -> Plan {
    let gaps: BTreeSet<(String, Family)> = observation
        .gaps
        .iter()
        .map(|g| (g.provider.clone(), g.family))
        .collect();
    let changes = plan::diff::diff(desired, &observation.resources, &gaps);
    let mut conflicts = duplicates(&observation.resources);
    conflicts.extend(observation.unsupported.iter().cloned());
    let mut notes = Vec::new();
    for provider in state.providers.iter().filter(|p| {
        p.doc.spec.owner.is_none()
            && changes
                .iter()
                .any(|c| c.provider == p.name() && c.action == meridian_provider::Action::Delete)
    }) {
        notes.push(format!(
            "Provider/{} has no `owner`: its ownership scope is its name, so another repository with a provider of the same name in the same account manages the same objects; set a unique `owner` before relying on deletes",
            provider.name()
        ));
    }
    let mut plan = Plan {
        format_version: plan::FORMAT_VERSION,
        meridian_version: env!("CARGO_PKG_VERSION").to_owned(),
        source: PlanSource {
            digest: state.digest.clone(),
            revision,
            documents: state.document_count(),
        },
        observed_fingerprint: plan::fingerprint(&observation.resources),
        complete: observation.gaps.is_empty(),
        errored: !observation.gaps.is_empty() || !conflicts.is_empty(),
        gaps: observation.gaps.clone(),
        violations: policy::residency_violations(state),
        conflicts,
        notes,
        schedule: None,
        summary: Summary::of(&changes),
        changes,
        overridden: Vec::new(),
    };
    // Last, so every other part of the plan sees what diff computed.
    crate::overrides::hold(
        &mut plan,
        &observation.overrides,
        std::time::SystemTime::now(),
    );
    plan
}

/// Live objects that claim the same address (for example a copy created by
/// hand with meridian's tags). meridian will not guess which one to keep.
fn duplicates(observed: &[(String, meridian_provider::Observed)]) -> Vec<String> {
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (provider, o) in observed {
        seen.entry(format!("{provider}: {}", o.address))
            .or_default()
            .push(o.cloud_id.clone().unwrap_or_else(|| "(no id)".to_owned()));
    }
    seen.into_iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(address, ids)| format!("{address} exists {} times in the cloud ({}); delete the extra copies or remove meridian's tags from them, then re-run", ids.len(), ids.join(", ")))
        .collect()
}

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
