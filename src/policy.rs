//! Policies enforced before anything is applied.
//!
//! Data residency: a resource whose `meridian.dev/data-classification` label
//! is covered by a `DataResidencyPolicy` must not place an endpoint group or
//! backend in a blocked region, nor outside the allowed regions when the
//! policy lists any. A violation blocks `plan` and `apply` (exit 3).

use serde::{Deserialize, Serialize};

use crate::model::raw::DataResidencyPolicySpec;
use crate::model::regions::glob_matches;
use crate::model::validate::{CLASSIFICATION_LABEL, backend_group_region};
use crate::model::{DesiredState, Located};

/// One policy violation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// `Kind/name` of the policy.
    pub policy: String,
    /// `Kind/name` of the offending document.
    pub resource: String,
    /// Field path of the offending placement.
    pub path: String,
    /// The region.
    pub region: String,
    /// `file:line:col` of the placement.
    pub location: String,
    /// Human explanation.
    pub message: String,
}

fn verdict(policy: &Located<DataResidencyPolicySpec>, region: &str) -> Option<String> {
    let spec = &policy.doc.spec;
    if let Some(glob) = spec
        .blocked_regions
        .iter()
        .find(|g| glob_matches(g, region))
    {
        return Some(format!("{region} is blocked by `{glob}`"));
    }
    if !spec.allowed_regions.is_empty()
        && !spec.allowed_regions.iter().any(|g| glob_matches(g, region))
    {
        return Some(format!(
            "{region} is not among the allowed regions ({})",
            spec.allowed_regions.join(", ")
        ));
    }
    None
}

/// Every residency violation of the desired state.
pub fn residency_violations(state: &DesiredState) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut check = |labels: &std::collections::BTreeMap<String, String>,
                     resource: String,
                     placements: Vec<(String, String, String)>| {
        let Some(classification) = labels.get(CLASSIFICATION_LABEL) else {
            return;
        };
        for policy in &state.residency_policies {
            if !policy
                .doc
                .spec
                .data_classification
                .iter()
                .any(|c| c == classification)
            {
                continue;
            }
            for (path, region, location) in &placements {
                if let Some(why) = verdict(policy, region) {
                    out.push(Violation {
                        policy: format!("DataResidencyPolicy/{}", policy.name()),
                        resource: resource.clone(),
                        path: path.clone(),
                        region: region.clone(),
                        location: location.clone(),
                        message: format!("{resource} serves `{classification}` data in {region} ({path}), but DataResidencyPolicy/{} forbids it: {why}", policy.name()),
                    });
                }
            }
        }
    };
    for ga in &state.accelerators {
        let mut placements = Vec::new();
        for (li, listener) in ga.doc.spec.listeners.iter().enumerate() {
            for (gi, group) in listener.endpoint_groups.iter().enumerate() {
                let path = format!("spec.listeners[{li}].endpointGroups[{gi}].region");
                placements.push((
                    path.clone(),
                    group.region.clone(),
                    format!("{}:{}", ga.file, ga.at(&path)),
                ));
            }
        }
        check(
            &ga.doc.metadata.labels,
            format!("GlobalAccelerator/{}", ga.name()),
            placements,
        );
    }
    for bs in &state.backend_services {
        let mut placements = Vec::new();
        for (i, backend) in bs.doc.spec.backends.iter().enumerate() {
            if let Ok(region) = backend_group_region(&backend.group) {
                let path = format!("spec.backends[{i}].group");
                placements.push((
                    path.clone(),
                    region,
                    format!("{}:{}", bs.file, bs.at(&path)),
                ));
            }
        }
        check(
            &bs.doc.metadata.labels,
            format!("BackendService/{}", bs.name()),
            placements,
        );
    }
    out
}

/// Whether a change moves traffic: a dial, weight or scaler update, an
/// accelerator enabled or disabled, or an endpoint group, endpoint or backend
/// appearing or disappearing.
pub fn moves_traffic(change: &meridian_provider::Change) -> bool {
    use meridian_provider::{Action, Address};
    match change.action {
        Action::Update => change.fields.iter().any(|f| {
            matches!(
                f.path.as_str(),
                "trafficDial" | "weight" | "capacityScaler" | "enabled"
            )
        }),
        Action::Create | Action::Delete => matches!(
            change.address,
            Address::EndpointGroup { .. } | Address::Endpoint { .. } | Address::Backend { .. }
        ),
    }
}

/// Notes for traffic policies that select documents whose traffic moves in
/// this plan: progressive rollouts are not enforced by this release, and a
/// reader of the plan must not believe they are.
pub fn traffic_policy_notes(
    state: &DesiredState,
    changes: &[meridian_provider::Change],
) -> Vec<String> {
    use crate::model::raw::TrafficKind;
    use meridian_provider::Address;
    let mut notes = Vec::new();
    for policy in &state.traffic_policies {
        let selector = &policy.doc.spec.selector;
        let selects =
            |kind: TrafficKind, name: &str, labels: &std::collections::BTreeMap<String, String>| {
                selector.kind.is_none_or(|k| k == kind)
                    && (selector.names.is_empty() || selector.names.iter().any(|n| n == name))
                    && selector
                        .match_labels
                        .iter()
                        .all(|(k, v)| labels.get(k) == Some(v))
            };
        let mut moved = std::collections::BTreeSet::new();
        for change in changes.iter().filter(|c| moves_traffic(c)) {
            let (kind, name) = match &change.address {
                Address::EndpointGroup { accelerator, .. }
                | Address::Endpoint { accelerator, .. }
                | Address::Accelerator { accelerator } => {
                    (TrafficKind::GlobalAccelerator, accelerator)
                }
                Address::Backend { service, .. } => (TrafficKind::BackendService, service),
                _ => continue,
            };
            let labels = match kind {
                TrafficKind::GlobalAccelerator => state
                    .accelerators
                    .iter()
                    .find(|d| d.name() == name)
                    .map(|d| d.doc.metadata.labels.clone()),
                TrafficKind::BackendService => state
                    .backend_services
                    .iter()
                    .find(|d| d.name() == name)
                    .map(|d| d.doc.metadata.labels.clone()),
            }
            .unwrap_or_default();
            if selects(kind, name, &labels) {
                moved.insert(format!("{kind:?}/{name}"));
            }
        }
        if !moved.is_empty() {
            notes.push(format!(
                "TrafficPolicy/{} selects {} whose traffic moves in this plan; this release validates traffic policies but does not yet enforce steps, bake time, health gates or deny windows: the change lands in one step",
                policy.name(),
                moved.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    notes
}
