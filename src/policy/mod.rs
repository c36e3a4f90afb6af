//! Policies enforced before anything is applied.
//!
//! Data residency: a resource whose `meridian.dev/data-classification` label
//! is covered by a `DataResidencyPolicy` must not place an endpoint group or
//! backend in a blocked region, nor outside the allowed regions when the
//! policy lists any. A violation blocks `plan` and `apply` (exit 3).

pub mod rules;

use serde::{Deserialize, Serialize};

use crate::model::raw::DataResidencyPolicySpec;
use crate::model::regions::glob_matches;
use crate::model::validate::CLASSIFICATION_LABEL;
use crate::model::{DesiredState, Located};
use meridian_provider::regions::backend_group_region;

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
    /// Whether the violation comes from the live world's health rather
    /// than from the documents: it goes away by itself when health returns,
    /// so the daemon retries the revision instead of marking it failed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transient: bool,
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

/// Whether the clients of `region` are in a client-scoped policy's scope.
pub fn client_scoped(policy: &Located<DataResidencyPolicySpec>, region: &str) -> bool {
    policy
        .doc
        .spec
        .client_regions
        .iter()
        .any(|g| glob_matches(g, region))
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
            // A client-scoped policy governs where its clients are served,
            // not where groups are placed: checked on the routing below.
            if !policy.doc.spec.client_regions.is_empty() {
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
                        transient: false,
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
    // Client-scoped policies: in normal operation (every endpoint healthy),
    // the traffic of the scoped clients must be served in allowed regions,
    // by the traffic model's routing from the declared (or default) clients.
    if state
        .residency_policies
        .iter()
        .all(|p| p.doc.spec.client_regions.is_empty())
    {
        return out;
    }
    let world: std::collections::BTreeMap<_, _> = crate::desired::expand(state)
        .into_iter()
        .map(|(address, d)| {
            (
                address,
                crate::traffic::TrafficInput {
                    resource: d.resource,
                    health: None,
                },
            )
        })
        .collect();
    let subjects = crate::traffic::subjects(&world, &crate::traffic::declarations(state));
    for (key, subject) in &subjects {
        let (labels, resource, path, location, what) = match key {
            crate::traffic::SubjectKey::Listener {
                accelerator,
                listener,
            } => {
                let Some(ga) = state.accelerator(accelerator) else {
                    continue;
                };
                let Some(li) = ga
                    .doc
                    .spec
                    .listeners
                    .iter()
                    .position(|l| &l.name == listener)
                else {
                    continue;
                };
                let path = format!("spec.listeners[{li}]");
                (
                    &ga.doc.metadata.labels,
                    format!("GlobalAccelerator/{}", ga.name()),
                    path.clone(),
                    format!("{}:{}", ga.file, ga.at(&path)),
                    format!("listener `{listener}`"),
                )
            }
            crate::traffic::SubjectKey::Service { name } => {
                let Some(bs) = state.backend_service(name) else {
                    continue;
                };
                (
                    &bs.doc.metadata.labels,
                    format!("BackendService/{}", bs.name()),
                    "spec.backends".to_owned(),
                    format!("{}:{}", bs.file, bs.at("spec.backends")),
                    "service".to_owned(),
                )
            }
        };
        let Some(classification) = labels.get(CLASSIFICATION_LABEL) else {
            continue;
        };
        let routing = subject.route();
        for policy in state.residency_policies.iter().filter(|p| {
            !p.doc.spec.client_regions.is_empty()
                && p.doc
                    .spec
                    .data_classification
                    .iter()
                    .any(|c| c == classification)
        }) {
            // One violation per forbidden region, with the clients it serves there.
            let mut forbidden: std::collections::BTreeMap<String, (f64, Vec<String>, String)> =
                std::collections::BTreeMap::new();
            for flow in &routing.flows {
                if flow.share <= 1e-9 || !client_scoped(policy, &flow.from) {
                    continue;
                }
                if let Some(why) = verdict(policy, &flow.to) {
                    let entry = forbidden
                        .entry(flow.to.clone())
                        .or_insert_with(|| (0.0, Vec::new(), why));
                    entry.0 += flow.share;
                    if !entry.1.contains(&flow.from) {
                        entry.1.push(flow.from.clone());
                    }
                }
            }
            for (region, (share, clients, why)) in forbidden {
                out.push(Violation {
                    policy: format!("DataResidencyPolicy/{}", policy.name()),
                    resource: resource.clone(),
                    path: path.clone(),
                    region: region.clone(),
                    location: location.clone(),
                    message: format!(
                        "{resource} {what} serves {:.1}% of its new traffic — clients at {} — in {region}, but DataResidencyPolicy/{} keeps the `{classification}` traffic of clients in {} in its allowed regions: {why} ({}; {})",
                        share * 100.0,
                        clients.join(", "),
                        policy.name(),
                        policy.doc.spec.client_regions.join(", "),
                        routing.rule_labels().join("; "),
                        routing.clients.describe()
                    ),
                    transient: false,
                });
            }
        }
    }
    out
}

/// Whether a change moves traffic: a dial, weight or scaler update, an
/// accelerator enabled or disabled, or an endpoint group, endpoint or backend
/// appearing or disappearing.
pub fn moves_traffic(change: &meridian_provider::Change) -> bool {
    use meridian_provider::{Action, Address};
    match change.action {
        Action::Update | Action::Adopt => change.fields.iter().any(|f| {
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
