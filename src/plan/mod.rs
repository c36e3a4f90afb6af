//! Plans: a serializable value describing what apply would do.
//!
//! A plan records the desired state's digest, a fingerprint of the observed
//! state it was computed against, whether that observation was complete,
//! every policy violation, and the ordered changes. `apply` consumes only a
//! plan and refuses one that is stale, incomplete or blocked.

pub mod diff;
pub mod file;
pub mod guard;
pub mod held;
pub mod managed;
pub mod render;
pub mod schedule;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use std::collections::{BTreeMap, BTreeSet};

use meridian_provider::units::{self, ApiWrite, PlannedUnit};
use meridian_provider::{Action, Address, Change, Family, Observed};

use crate::desired::DesiredResources;
use crate::model::DesiredState;
pub use crate::observe::Gap;
use crate::observe::Observation;
use crate::policy::{self, Violation};

/// The version of the JSON plan format. Bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 2;

/// Counts of changes by action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Objects to create.
    pub create: usize,
    /// Objects to update.
    pub update: usize,
    /// Objects to delete.
    pub delete: usize,
    /// Live objects to adopt (written only when there are any).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub adopt: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Summary {
    /// Counts `changes`.
    pub fn of(changes: &[Change]) -> Self {
        let mut summary = Summary::default();
        for change in changes {
            match change.action {
                Action::Create => summary.create += 1,
                Action::Update => summary.update += 1,
                Action::Delete => summary.delete += 1,
                Action::Adopt => summary.adopt += 1,
            }
        }
        summary
    }

    /// Total number of changes.
    pub fn total(&self) -> usize {
        self.create + self.update + self.delete + self.adopt
    }

    /// `N to create, N to update, N to delete`, led by `N to adopt` when
    /// the plan adopts anything.
    pub fn counts(&self) -> String {
        let adopt = if self.adopt > 0 {
            format!("{} to adopt, ", self.adopt)
        } else {
            String::new()
        };
        format!(
            "{adopt}{} to create, {} to update, {} to delete",
            self.create, self.update, self.delete
        )
    }
}

/// What the plan was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSource {
    /// SHA-256 of the desired-state files.
    pub digest: String,
    /// Git revision, when the desired state came from Git.
    pub revision: Option<String>,
    /// Number of documents.
    pub documents: usize,
}

/// A plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// JSON format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// meridian version that made the plan.
    pub meridian_version: String,
    /// What desired state it was made from.
    pub source: PlanSource,
    /// SHA-256 of the observed state (configuration and ids, not health).
    pub observed_fingerprint: String,
    /// Whether every provider family was observed.
    pub complete: bool,
    /// Whether the plan must not be applied (incomplete observation).
    pub errored: bool,
    /// Families that could not be observed; the plan proposes nothing there.
    pub gaps: Vec<Gap>,
    /// Policy violations; any violation blocks apply.
    pub violations: Vec<Violation>,
    /// Objects meridian cannot reconcile safely by itself, e.g. two live
    /// objects claiming one address; any conflict makes the plan `errored`.
    #[serde(default)]
    pub conflicts: Vec<String>,
    /// Things the reader should know, e.g. policies not enforced yet.
    #[serde(default)]
    pub notes: Vec<String>,
    /// The steps a traffic change is carried out in, when traffic moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<schedule::Schedule>,
    /// Counts by action.
    pub summary: Summary,
    /// Changes in execution order.
    pub changes: Vec<Change>,
    /// The changes as units of work: which changes one cloud API object's
    /// calls carry together, in which wave, with which API writes.
    #[serde(default)]
    pub units: Vec<PlannedUnit>,
    /// The API writes carrying out the plan takes, by operation: those of
    /// `units`, or of every step of a `schedule`.
    #[serde(default)]
    pub writes: Vec<ApiWrite>,
    /// Changes held back by active break-glass overrides: not applied, not
    /// counted in `summary`, shown so nobody mistakes them for done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overridden: Vec<held::Overridden>,
    /// Differences meridian reports but does not write: objects of
    /// documents whose `meridian.dev/management` is `observe`, and what a
    /// `traffic` document's objects differ by besides their levers. Not
    /// applied, not counted in `summary`; drift all the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unwritten: Vec<managed::Unwritten>,
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Whether a policy blocks the plan.
    pub fn is_blocked(&self) -> bool {
        !self.violations.is_empty()
    }

    /// Groups the changes into units of work, and the writes of the plan
    /// (of every step, when it has a schedule that carries changes).
    pub fn group_units(&mut self, live_members: &BTreeMap<Address, usize>) {
        self.units = units::group(&self.changes, live_members);
        self.count_writes();
    }

    /// Sums the API writes of the units (or of every step of the schedule).
    pub fn count_writes(&mut self) {
        self.writes = match &self.schedule {
            Some(schedule) if schedule.steps.iter().any(|s| !s.units.is_empty()) => {
                units::total_writes(
                    schedule
                        .steps
                        .iter()
                        .flat_map(|s| &s.units)
                        .flat_map(|u| &u.writes),
                )
            }
            _ => units::total_writes(self.units.iter().flat_map(|u| &u.writes)),
        };
    }

    /// The identity of what this plan executes (its changes and steps with
    /// their values), so a rollout knows which plan its recorded steps
    /// belong to.
    pub fn contract_id(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(serde_json::to_vec(&self.changes).unwrap_or_default());
        hasher.update([0]);
        hasher.update(serde_json::to_vec(&self.schedule).unwrap_or_default());
        format!("{:x}", hasher.finalize())[..16].to_owned()
    }

    /// The steps this plan is carried out in, each with its changes and
    /// units: the schedule's, when it has one that carries changes, or the
    /// whole plan as one step.
    pub fn steps(&self) -> Vec<(&[Change], &[PlannedUnit])> {
        match &self.schedule {
            Some(schedule) if schedule.steps.iter().any(|s| !s.changes.is_empty()) => schedule
                .steps
                .iter()
                .map(|s| (s.changes.as_slice(), s.units.as_slice()))
                .collect(),
            _ if self.changes.is_empty() => Vec::new(),
            _ => vec![(self.changes.as_slice(), self.units.as_slice())],
        }
    }

    /// The plan without its changes, units, writes and schedule: the frame
    /// a step of it is carried out in (cloning the whole plan per step
    /// would copy every object's values of every step).
    pub fn header(&self) -> Plan {
        Plan {
            format_version: self.format_version,
            meridian_version: self.meridian_version.clone(),
            source: self.source.clone(),
            observed_fingerprint: self.observed_fingerprint.clone(),
            complete: self.complete,
            errored: self.errored,
            gaps: self.gaps.clone(),
            violations: self.violations.clone(),
            conflicts: self.conflicts.clone(),
            notes: self.notes.clone(),
            schedule: None,
            summary: self.summary,
            changes: Vec::new(),
            units: Vec::new(),
            writes: Vec::new(),
            overridden: self.overridden.clone(),
            unwritten: self.unwritten.clone(),
        }
    }

    /// How many API writes the plan takes.
    pub fn write_count(&self) -> u32 {
        self.writes.iter().map(|w| w.count).sum()
    }
}

/// The fingerprint of an observation: configuration and cloud ids of every
/// observed object, in address order. Status and health are left out: they
/// move on their own and do not make a plan stale.
pub fn fingerprint(observed: &[(String, Observed)]) -> String {
    // The same bytes as a JSON object {resource, cloud_id, etag} (keys in
    // that order), written directly rather than through a value tree.
    #[derive(Serialize)]
    struct Hashed<'a> {
        resource: &'a meridian_provider::Resource,
        cloud_id: &'a Option<String>,
        etag: &'a Option<String>,
    }
    let mut entries: Vec<(&str, String, String)> = observed
        .iter()
        .map(|(provider, o)| {
            let value = serde_json::to_string(&Hashed {
                resource: &o.resource,
                cloud_id: &o.cloud_id,
                etag: &o.etag,
            })
            .unwrap_or_default();
            (provider.as_str(), o.address.to_string(), value)
        })
        .collect();
    entries.sort_unstable();
    let mut hasher = Sha256::new();
    for (provider, address, value) in entries {
        hasher.update(provider.as_bytes());
        hasher.update([0]);
        hasher.update(address.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    }
    format!("{:x}", hasher.finalize())
}

/// Computes a plan from desired state and an observation.
pub fn make(
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
    let mut changes = diff::diff(desired, &observation.resources, &gaps);
    let mut conflicts = duplicates(&observation.resources);
    conflicts.extend(observation.unsupported.iter().cloned());
    // A document pinned to a live object that cannot be adopted creates
    // nothing in its place: that would lose what the pin names.
    for (provider, unclaimed) in &observation.unclaimed {
        let root = unclaimed.address.clone();
        changes.retain(|c| {
            !(c.provider == *provider
                && (c.address == root || c.address.ancestors().contains(&root)))
        });
        conflicts.push(format!(
            "{provider}: {} is pinned by meridian.dev/external-id to `{}`, which cannot be adopted: {}; nothing is created in its place",
            unclaimed.address, unclaimed.external_id, unclaimed.reason
        ));
    }
    let (changes, unwritten) = managed::partition(state, changes);
    let mut notes = Vec::new();
    if !unwritten.is_empty() {
        notes.push(format!(
            "{} difference(s) are reported, not written: their documents' `meridian.dev/management` is observe or traffic (`meridian drift` lists them)",
            unwritten.len()
        ));
    }
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
        format_version: FORMAT_VERSION,
        meridian_version: env!("CARGO_PKG_VERSION").to_owned(),
        source: PlanSource {
            digest: state.digest.clone(),
            revision,
            documents: state.document_count(),
        },
        observed_fingerprint: fingerprint(&observation.resources),
        complete: observation.gaps.is_empty(),
        errored: !observation.gaps.is_empty() || !conflicts.is_empty(),
        gaps: observation.gaps.clone(),
        violations: {
            let mut violations = policy::residency_violations(state);
            violations.extend(guard::check(state, &changes, &observation.resources));
            violations
        },
        conflicts,
        notes,
        schedule: None,
        summary: Summary::of(&changes),
        changes,
        units: Vec::new(),
        writes: Vec::new(),
        overridden: Vec::new(),
        unwritten,
    };
    // Last, so every other part of the plan sees what diff computed.
    held::hold(
        &mut plan,
        &observation.overrides,
        std::time::SystemTime::now(),
    );
    plan.group_units(&crate::observe::member_counts_of(
        observation.resources.iter().map(|(_, o)| &o.address),
    ));
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

/// A plan holding `changes`, for unit tests; built from JSON so fields
/// other modules add to `Plan` (all defaulted) need no mention.
#[cfg(test)]
pub(crate) fn test_plan(changes: Vec<Change>) -> Plan {
    serde_json::from_value(serde_json::json!({
        "format_version": FORMAT_VERSION,
        "meridian_version": "test",
        "source": {"digest": "d", "revision": null, "documents": 1},
        "observed_fingerprint": "f",
        "complete": true,
        "errored": false,
        "gaps": [],
        "violations": [],
        "summary": Summary::of(&changes),
        "changes": changes,
    }))
    .expect("a plan")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use meridian_provider::{ApplyRequest, ApplyResponse, CallCounter, ObserveResponse, Provider};

    use super::*;
    use crate::desired;
    use crate::model::{self, SourceFile};
    use crate::observe::observe;
    use crate::providers::Providers;
    use meridian_provider::{Family, ObserveRequest};

    /// A provider whose observation panics.
    struct Panicking {
        name: String,
    }

    #[async_trait]
    impl Provider for Panicking {
        fn name(&self) -> &str {
            &self.name
        }
        fn families(&self) -> Vec<Family> {
            vec![Family::GlobalAccelerator, Family::TransitGateway]
        }
        async fn observe(&self, _request: ObserveRequest) -> ObserveResponse {
            panic!("a bug in the provider");
        }
        async fn apply(&self, _request: ApplyRequest) -> ApplyResponse {
            unreachable!("nothing is applied in this test")
        }
        fn calls(&self) -> Vec<CallCounter> {
            Vec::new()
        }
    }

    fn example() -> crate::model::DesiredState {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("desired-state");
        let files: Vec<SourceFile> = model::read_dir_relative(&dir).expect("example");
        model::load(&files).expect("valid")
    }

    #[tokio::test]
    async fn an_observation_that_panics_is_a_gap_and_nothing_is_planned_there() {
        let state = example();
        let desired = desired::expand(&state);
        let aws: Vec<String> = state
            .providers
            .iter()
            .filter(|p| p.doc.spec.provider_type == crate::model::raw::ProviderType::Aws)
            .map(|p| p.name().to_owned())
            .collect();
        assert!(!aws.is_empty(), "the example has an aws provider");
        let providers = Providers::from_instances(
            aws.iter()
                .map(|name| Arc::new(Panicking { name: name.clone() }) as Arc<dyn Provider>)
                .collect(),
        );
        let observation = observe(&providers, &desired).await;
        assert!(observation.resources.is_empty());
        for name in &aws {
            for family in [Family::GlobalAccelerator, Family::TransitGateway] {
                let gap = observation
                    .gaps
                    .iter()
                    .find(|g| &g.provider == name && g.family == family)
                    .unwrap_or_else(|| panic!("a {family} gap for {name}: {:?}", observation.gaps));
                assert!(
                    gap.error.message.contains("panicked"),
                    "{}",
                    gap.error.message
                );
            }
        }
        let plan = make(&state, &desired, &observation, None);
        let creates_there: Vec<String> = plan
            .changes
            .iter()
            .filter(|c| aws.contains(&c.provider))
            .map(|c| c.address.to_string())
            .collect();
        assert!(
            creates_there.is_empty(),
            "nothing is planned where the observation died: {creates_there:?}"
        );
        assert!(!plan.complete, "the plan says it is incomplete");
    }
}
