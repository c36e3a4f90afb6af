//! Observation: every provider lists what it owns, concurrently, into one
//! [`Observation`] of the live world with its gaps.
//!
//! A family that could not be observed is a gap, never an empty list: the
//! plan proposes nothing inside it. This module only reads.

use std::collections::{BTreeMap, BTreeSet};

use meridian_provider::{
    Address, Claim, Family, ObserveRequest, Observed, ProviderError, Unclaimed,
};
use serde::{Deserialize, Serialize};

use crate::desired::{self, DesiredResources};
use crate::providers::Providers;

/// Live objects by address.
pub type Live = BTreeMap<Address, Observed>;

/// A family of one provider that could not be observed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gap {
    /// Provider name.
    pub provider: String,
    /// The family.
    pub family: Family,
    /// Why.
    pub error: ProviderError,
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
    /// Claims (`meridian.dev/external-id`) that named nothing meridian may
    /// adopt, with their provider's name: the plan creates nothing there.
    pub unclaimed: Vec<(String, Unclaimed)>,
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
    let mut claims: BTreeMap<&str, Vec<Claim>> = BTreeMap::new();
    for (address, want) in desired {
        if let Some(id) = &want.external_id {
            claims
                .entry(want.provider.as_str())
                .or_default()
                .push(Claim {
                    address: address.clone(),
                    external_id: id.clone(),
                    listener_names: match &want.resource {
                        meridian_provider::Resource::Accelerator(spec) => {
                            spec.listener_names.clone()
                        }
                        _ => BTreeMap::new(),
                    },
                });
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    // Which provider each task observes, to name it when the task dies.
    let mut task_of = BTreeMap::new();
    for (name, provider) in &providers.by_name {
        let families = provider.families();
        let provider = provider.clone();
        let request = ObserveRequest {
            regions: regions.get(name).cloned().unwrap_or_default(),
            health,
            claims: claims.get(name.as_str()).cloned().unwrap_or_default(),
        };
        let task_name = name.clone();
        let handle = tasks.spawn(async move { (task_name, provider.observe(request).await) });
        task_of.insert(handle.id(), (name.clone(), families));
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
        let (name, response) = match joined {
            Ok(done) => done,
            Err(error) => {
                // A task that panicked (or was cancelled) observed nothing:
                // every family of its provider is a gap, never empty.
                if let Some((name, families)) = task_of.get(&error.id()) {
                    let why = if error.is_panic() {
                        "panicked"
                    } else {
                        "was cancelled"
                    };
                    tracing::error!(provider = %name, "observation {why}");
                    observation.gaps.extend(families.iter().map(|family| Gap {
                        provider: name.clone(),
                        family: *family,
                        error: ProviderError::transient(
                            "Observe",
                            "ObservationPanicked",
                            format!("observing {family} with provider `{name}` {why}; nothing is planned there (please report this with the log)"),
                        ),
                    }));
                }
                continue;
            }
        };
        observation
            .resources
            .extend(response.resources.into_iter().map(|o| (name.clone(), o)));
        observation
            .overrides
            .extend(response.overrides.into_iter().map(|o| (name.clone(), o)));
        observation
            .unclaimed
            .extend(response.unclaimed.into_iter().map(|u| (name.clone(), u)));
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

/// Live objects by address, and their providers.
pub fn live_of(observation: &Observation) -> (Live, BTreeMap<Address, String>) {
    let mut live = Live::new();
    let mut providers = BTreeMap::new();
    for (provider, observed) in &observation.resources {
        providers.insert(observed.address.clone(), provider.clone());
        live.insert(observed.address.clone(), observed.clone());
    }
    (live, providers)
}

/// How many members (endpoints, backends) each endpoint group and backend
/// service holds in `live`, for units of work.
pub fn member_counts(live: &Live) -> BTreeMap<Address, usize> {
    member_counts_of(live.keys())
}

/// [`member_counts`] over any list of live addresses.
pub fn member_counts_of<'a>(
    addresses: impl IntoIterator<Item = &'a Address>,
) -> BTreeMap<Address, usize> {
    let mut out = BTreeMap::new();
    for address in addresses {
        if matches!(address, Address::Endpoint { .. } | Address::Backend { .. })
            && let Some(parent) = address.parent()
        {
            *out.entry(parent).or_default() += 1;
        }
    }
    out
}
