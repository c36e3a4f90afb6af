//! `meridian whatif`: what a region outage would do to traffic.
//!
//! Simulates the loss of one or more regions with the traffic model of
//! [`crate::traffic`] and reports, per Global Accelerator listener and GCP
//! backend service: each region's expected share of new traffic before and
//! during the outage, capacity headroom where capacity is declared, the
//! failover paths, every data-residency violation along them, and the
//! listeners and services left with fewer serving regions than their traffic
//! policy requires.
//!
//! A pure function of the desired state and, optionally, live health: it
//! never changes anything and never needs a cloud. Rendering is separate
//! from computing; renderers never recompute.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use meridian_provider::{Address, Resource};
use serde::Serialize;

use crate::desired;
use crate::model::raw::{DataResidencyPolicySpec, TrafficKind};
use crate::model::regions::{self, glob_matches};
use crate::model::validate::CLASSIFICATION_LABEL;
use crate::model::{DesiredState, Located};
use crate::plan::render::Format;
use crate::traffic::{self, Route, Subject, SubjectKey, TrafficInput};

/// Version of the JSON document; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

/// Why a simulation cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhatifError {
    /// No region was given.
    #[error("name at least one region to take down: --region-down REGION")]
    NoRegion,
    /// A region neither cloud has.
    #[error(
        "unknown region `{region}`; give an AWS region ({}) or a Google Cloud region ({})",
        regions::AWS.join(", "),
        regions::GCP.join(", ")
    )]
    UnknownRegion {
        /// What was given.
        region: String,
    },
    /// A real region that nothing in the desired state uses.
    #[error(
        "no endpoint group or backend of the desired state is in `{region}`, so its outage changes nothing; regions in use: {}",
        .in_use.join(", ")
    )]
    RegionNotUsed {
        /// What was given.
        region: String,
        /// Regions with an endpoint group or backend.
        in_use: Vec<String>,
    },
}

/// Where the health before the outage comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthSource {
    /// Desired state only: every endpoint and backend is assumed healthy.
    AssumedHealthy,
    /// The live health observed in the (simulated) cloud.
    Live,
}

/// One region of a listener or backend service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionReport {
    /// Region.
    pub region: String,
    /// Whether the simulation takes it down.
    pub down: bool,
    /// Share of new traffic before the outage, 0.0-1.0.
    pub before: f64,
    /// Share of new traffic during the outage, 0.0-1.0.
    pub during: f64,
    /// Declared capacity in requests per second (`capacityRps` of the
    /// endpoint group; the RATE capacity of the region's backends).
    pub capacity_rps: Option<f64>,
    /// Capacity left during the outage (0 for a region that is down).
    pub capacity_during_rps: Option<f64>,
    /// Expected load before the outage: share × expected requests per second.
    pub load_before_rps: Option<f64>,
    /// Expected load during the outage.
    pub load_during_rps: Option<f64>,
    /// Capacity − load before the outage.
    pub headroom_before_rps: Option<f64>,
    /// Capacity − load during the outage; absent for a region that is down.
    pub headroom_during_rps: Option<f64>,
}

/// Traffic that leaves a region that cannot serve it during the outage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailoverPath {
    /// The region whose clients move.
    pub from: String,
    /// The region that takes them.
    pub to: String,
    /// Share of the subject's new traffic that moves, 0.0-1.0.
    pub share: f64,
    /// Great-circle distance between the two regions, for Global Accelerator.
    pub distance_km: Option<f64>,
    /// How the cloud picks `to`, for humans.
    pub how: String,
}

/// One listener or backend service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubjectReport {
    /// `GlobalAccelerator[api].listener[https]` or `BackendService[app]`.
    pub subject: String,
    /// The document it belongs to, `Kind/name`.
    pub document: String,
    /// Whether one of its regions is down.
    pub affected: bool,
    /// Expected peak requests per second, where declared.
    pub expected_rps: Option<u32>,
    /// Global Accelerator fails open during the outage (no group serves).
    pub fail_open: bool,
    /// Regions, in name order.
    pub regions: Vec<RegionReport>,
    /// Where the traffic of regions that cannot serve goes.
    pub failovers: Vec<FailoverPath>,
    /// Regions that receive traffic and can serve it, before the outage.
    pub serving_regions_before: usize,
    /// Regions that receive traffic and can serve it, during the outage.
    pub serving_regions_during: usize,
    /// The smallest number of serving regions allowed.
    pub min_serving_regions: u32,
    /// The traffic policy that sets it (none: the built-in minimum of 1).
    pub traffic_policy: Option<String>,
}

/// A residency policy's verdict on one place classified traffic reaches
/// during the outage by failing over.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResidencyCheck {
    /// `Kind/name` of the classified document.
    pub resource: String,
    /// Its data classification.
    pub classification: String,
    /// The listener or backend service.
    pub subject: String,
    /// Where the traffic lands.
    pub region: String,
    /// How it gets there, e.g. `eu-central-1 down → spills to eu-west-1`.
    pub path: String,
    /// Policies covering the classification.
    pub policies: Vec<String>,
    /// Whether every policy allows the region.
    pub allowed: bool,
}

/// Classified traffic reaching a region its residency policy forbids.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResidencyViolation {
    /// `Kind/name` of the policy.
    pub policy: String,
    /// `Kind/name` of the classified document.
    pub resource: String,
    /// Its data classification.
    pub classification: String,
    /// The listener or backend service.
    pub subject: String,
    /// The forbidden region.
    pub region: String,
    /// Share of the subject's new traffic served there during the outage.
    pub share: f64,
    /// How the traffic gets there.
    pub paths: Vec<String>,
    /// Human explanation.
    pub message: String,
}

/// A listener or service left with too few serving regions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServingViolation {
    /// The listener or backend service.
    pub subject: String,
    /// Serving regions during the outage.
    pub serving_regions: Vec<String>,
    /// The minimum.
    pub min_serving_regions: u32,
    /// The traffic policy that sets the minimum, if any.
    pub traffic_policy: Option<String>,
    /// Human explanation.
    pub message: String,
}

/// A region whose expected load exceeds its declared capacity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityShortfall {
    /// The listener or backend service.
    pub subject: String,
    /// The region; absent when the shortfall is the service's as a whole.
    pub region: Option<String>,
    /// Declared capacity during the outage.
    pub capacity_rps: f64,
    /// Expected load during the outage.
    pub load_rps: f64,
    /// Human explanation.
    pub message: String,
}

/// The result of a simulation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// JSON format version.
    pub format_version: u32,
    /// The desired-state folder, as given.
    pub source: String,
    /// The regions taken down, in the order given.
    pub regions_down: Vec<String>,
    /// Where the health before the outage comes from.
    pub health: HealthSource,
    /// Every listener and backend service.
    pub subjects: Vec<SubjectReport>,
    /// Every place classified traffic fails over to, with the verdict.
    pub residency_checks: Vec<ResidencyCheck>,
    /// Classified traffic in a forbidden region during the outage.
    pub residency_violations: Vec<ResidencyViolation>,
    /// Listeners and services below their minimum serving regions.
    pub serving_violations: Vec<ServingViolation>,
    /// Regions short of declared capacity during the outage.
    pub capacity_shortfalls: Vec<CapacityShortfall>,
    /// Assumptions worth knowing.
    pub notes: Vec<String>,
}

impl Report {
    /// Whether a policy is violated: a residency violation, or a listener or
    /// service below its minimum serving regions.
    pub fn is_blocked(&self) -> bool {
        !self.residency_violations.is_empty() || !self.serving_violations.is_empty()
    }

    /// The exit code: 3 when a policy is violated, 2 when the only findings
    /// are capacity shortfalls, 0 when the outage is absorbed.
    pub fn exit_code(&self) -> u8 {
        if self.is_blocked() {
            crate::exit::BLOCKED
        } else if !self.capacity_shortfalls.is_empty() {
            crate::exit::CHANGES
        } else {
            crate::exit::OK
        }
    }
}

/// Checks the regions to take down: known to a cloud and used by the
/// desired state. Duplicates are dropped, order kept.
pub fn check_regions(state: &DesiredState, down: &[String]) -> Result<Vec<String>, WhatifError> {
    if down.is_empty() {
        return Err(WhatifError::NoRegion);
    }
    let in_use = regions_in_use(state);
    let mut out: Vec<String> = Vec::new();
    for region in down {
        if !regions::is_aws(region) && !regions::is_gcp(region) {
            return Err(WhatifError::UnknownRegion {
                region: region.clone(),
            });
        }
        if !in_use.contains(region) {
            return Err(WhatifError::RegionNotUsed {
                region: region.clone(),
                in_use: in_use.iter().cloned().collect(),
            });
        }
        if !out.contains(region) {
            out.push(region.clone());
        }
    }
    Ok(out)
}

/// Regions with an endpoint group or a backend.
pub fn regions_in_use(state: &DesiredState) -> BTreeSet<String> {
    desired::expand(state)
        .values()
        .filter_map(|d| match &d.resource {
            Resource::EndpointGroup(spec) => Some(spec.region.clone()),
            Resource::Backend(spec) => Some(spec.region.clone()),
            _ => None,
        })
        .collect()
}

/// Regions that receive new traffic and can serve it: for a listener, a
/// healthy endpoint group that takes traffic by its dial (above 0) or by
/// failover — a group at dial 0 that keeps its own clients only because no
/// other group can take them is not serving by design; for a backend
/// service, a region with effective capacity. Under fail-open no region
/// can serve, whatever it receives.
pub fn serving_regions(subject: &Subject) -> Vec<String> {
    match subject {
        Subject::Listener(groups) => {
            let routing = traffic::route_listener(groups);
            let serving: BTreeSet<String> = routing
                .flows
                .iter()
                .filter(|f| {
                    f.share > 1e-12
                        && groups.get(&f.to).is_some_and(|g| {
                            g.serving && (g.dial > 0.0 || f.route == Route::Failover)
                        })
                })
                .map(|f| f.to.clone())
                .collect();
            serving.into_iter().collect()
        }
        Subject::Service(capacities) => capacities
            .iter()
            .filter(|(_, c)| **c > 0.0)
            .map(|(r, _)| r.clone())
            .collect(),
    }
}

/// The region a traffic object is in, for taking it down.
fn region_of(address: &Address, resource: &Resource) -> Option<String> {
    match (address, resource) {
        (Address::Endpoint { region, .. }, _) => Some(region.clone()),
        (_, Resource::Backend(spec)) => Some(spec.region.clone()),
        _ => None,
    }
}

fn is_down(down: &[String], region: &str) -> bool {
    down.iter().any(|d| d == region)
}

/// Why `policy` forbids `region`, or `None` when it allows it (the same
/// rule as the plan-time check: blocked globs first, then allowed globs).
pub(crate) fn verdict(policy: &Located<DataResidencyPolicySpec>, region: &str) -> Option<String> {
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

/// The document's data classification and the residency policies covering it.
pub(crate) fn classification<'a>(
    state: &'a DesiredState,
    labels: &BTreeMap<String, String>,
) -> Option<(String, Vec<&'a Located<DataResidencyPolicySpec>>)> {
    let classification = labels.get(CLASSIFICATION_LABEL)?;
    let policies: Vec<_> = state
        .residency_policies
        .iter()
        .filter(|p| {
            p.doc
                .spec
                .data_classification
                .iter()
                .any(|c| c == classification)
        })
        .collect();
    (!policies.is_empty()).then(|| (classification.clone(), policies))
}

/// The minimum serving regions for a document and the policy that sets
/// it, by the one rule that selects a document's traffic policy
/// ([`crate::policy::rules::rules_for_document`]), as plan and rollout use.
pub(crate) fn min_serving(
    state: &DesiredState,
    kind: TrafficKind,
    name: &str,
) -> (u32, Option<String>) {
    let rules = crate::policy::rules::rules_for_document(state, kind, name);
    (rules.min_serving_regions, rules.policy)
}

/// The parts of one document a subject needs.
struct DocumentInfo<'a> {
    name: String,
    kind: TrafficKind,
    labels: &'a BTreeMap<String, String>,
    expected_rps: Option<u32>,
    /// Endpoint-group `capacityRps` by region (listeners only).
    group_capacity: BTreeMap<String, u32>,
}

fn document_info<'a>(state: &'a DesiredState, key: &SubjectKey) -> Option<DocumentInfo<'a>> {
    match key {
        SubjectKey::Listener {
            accelerator,
            listener,
        } => {
            let ga = state
                .accelerators
                .iter()
                .find(|a| a.name() == accelerator)?;
            let doc = ga.doc.spec.listeners.iter().find(|l| &l.name == listener)?;
            Some(DocumentInfo {
                name: ga.name().to_owned(),
                kind: TrafficKind::GlobalAccelerator,
                labels: &ga.doc.metadata.labels,
                expected_rps: doc.expected_rps,
                group_capacity: doc
                    .endpoint_groups
                    .iter()
                    .filter_map(|g| g.capacity_rps.map(|c| (g.region.clone(), c)))
                    .collect(),
            })
        }
        SubjectKey::Service { name } => {
            let bs = state.backend_services.iter().find(|b| b.name() == name)?;
            Some(DocumentInfo {
                name: bs.name().to_owned(),
                kind: TrafficKind::BackendService,
                labels: &bs.doc.metadata.labels,
                expected_rps: bs.doc.spec.expected_rps,
                group_capacity: BTreeMap::new(),
            })
        }
    }
}

/// RATE capacity in requests per second of a backend service's regions
/// in `world`: capacity scaler × `maxRate` (or `maxRatePerEndpoint`, counted
/// once per group), over healthy backends. A region with a healthy backend
/// in another balancing mode has no rate capacity (`None`).
fn rate_capacity(
    world: &BTreeMap<Address, TrafficInput>,
    service: &str,
) -> BTreeMap<String, Option<f64>> {
    let mut out: BTreeMap<String, Option<f64>> = BTreeMap::new();
    for (address, input) in world {
        let (Address::Backend { service: s, .. }, Resource::Backend(spec)) =
            (address, &input.resource)
        else {
            continue;
        };
        if s != service {
            continue;
        }
        let entry = out.entry(spec.region.clone()).or_insert(Some(0.0));
        if !traffic::healthy(&input.health) {
            continue;
        }
        let rate = spec.max_rate.map(f64::from).or(spec.max_rate_per_endpoint);
        match (spec.balancing_mode.as_str(), rate, entry.as_mut()) {
            ("RATE", Some(rate), Some(total)) => *total += spec.capacity_scaler * rate,
            _ => *entry = None,
        }
    }
    out
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

fn rps(value: f64) -> String {
    let rounded = value.round();
    let negative = rounded < 0.0;
    let digits = format!("{:.0}", rounded.abs());
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{}{grouped} rps", if negative { "-" } else { "" })
}

fn km(value: f64) -> String {
    rps(value).replace(" rps", " km")
}

/// Runs the simulation. `health` is the live health by address (`None`:
/// every endpoint and backend is assumed healthy before the outage); `down`
/// must have passed [`check_regions`].
pub fn simulate(
    state: &DesiredState,
    source: &str,
    down: &[String],
    health: Option<&BTreeMap<Address, Option<String>>>,
) -> Report {
    let resources = desired::expand(state);
    let before: BTreeMap<Address, TrafficInput> = resources
        .iter()
        .map(|(address, d)| {
            (
                address.clone(),
                TrafficInput {
                    resource: d.resource.clone(),
                    health: health.and_then(|h| h.get(address).cloned().flatten()),
                },
            )
        })
        .collect();
    let during: BTreeMap<Address, TrafficInput> = before
        .iter()
        .map(|(address, input)| {
            let mut input = input.clone();
            if region_of(address, &input.resource).is_some_and(|r| is_down(down, &r)) {
                input.health = Some("unhealthy".to_owned());
            }
            (address.clone(), input)
        })
        .collect();
    let subjects_before = traffic::subjects(&before);
    let subjects_during = traffic::subjects(&during);
    let mut report = Report {
        format_version: FORMAT_VERSION,
        source: source.to_owned(),
        regions_down: down.to_vec(),
        health: if health.is_some() {
            HealthSource::Live
        } else {
            HealthSource::AssumedHealthy
        },
        subjects: Vec::new(),
        residency_checks: Vec::new(),
        residency_violations: Vec::new(),
        serving_violations: Vec::new(),
        capacity_shortfalls: Vec::new(),
        notes: Vec::new(),
    };
    let mut per_endpoint_noted = false;
    for (key, subject_during) in &subjects_during {
        let Some(subject_before) = subjects_before.get(key) else {
            continue;
        };
        let Some(info) = document_info(state, key) else {
            continue;
        };
        let subject = key.to_string();
        let document = match info.kind {
            TrafficKind::GlobalAccelerator => format!("GlobalAccelerator/{}", info.name),
            TrafficKind::BackendService => format!("BackendService/{}", info.name),
        };
        let shares_before = subject_before.shares();
        let shares_during = subject_during.shares();
        let (min_serving_regions, traffic_policy) = min_serving(state, info.kind, &info.name);
        let serving_before = serving_regions(subject_before);
        let serving_during = serving_regions(subject_during);

        // Capacity, by region.
        let (capacity_before, capacity_during): (
            BTreeMap<String, Option<f64>>,
            BTreeMap<String, Option<f64>>,
        ) = match key {
            SubjectKey::Listener { .. } => {
                let declared: BTreeMap<String, Option<f64>> = shares_before
                    .keys()
                    .map(|r| (r.clone(), info.group_capacity.get(r).map(|c| f64::from(*c))))
                    .collect();
                let during_capacity = declared
                    .iter()
                    .map(|(r, c)| (r.clone(), c.map(|c| if is_down(down, r) { 0.0 } else { c })))
                    .collect();
                (declared, during_capacity)
            }
            SubjectKey::Service { name } => {
                let uses_per_endpoint = resources.iter().any(|(a, d)| {
                    matches!((a, &d.resource), (Address::Backend { service, .. }, Resource::Backend(spec)) if service == name && spec.max_rate.is_none() && spec.max_rate_per_endpoint.is_some())
                });
                if uses_per_endpoint && !per_endpoint_noted {
                    per_endpoint_noted = true;
                    report.notes.push("`maxRatePerEndpoint` counts once per backend group: the number of endpoints in a network endpoint group is not known offline, so RATE capacities are per group.".to_owned());
                }
                (rate_capacity(&before, name), rate_capacity(&during, name))
            }
        };
        let expected = info.expected_rps.map(f64::from);
        let mut regions_report = Vec::new();
        for (region, before_share) in &shares_before {
            let during_share = shares_during.get(region).copied().unwrap_or(0.0);
            let region_down = is_down(down, region);
            let capacity = capacity_before.get(region).copied().flatten();
            let capacity_during = capacity_during.get(region).copied().flatten();
            let load_before = expected.map(|e| e * before_share);
            let load_during = expected.map(|e| e * during_share);
            let headroom_before = capacity.zip(load_before).map(|(c, l)| c - l);
            let headroom_during = if region_down {
                None
            } else {
                capacity_during.zip(load_during).map(|(c, l)| c - l)
            };
            if let (Some(h), Some(c), Some(l)) = (headroom_during, capacity_during, load_during)
                && h < -0.5
                && matches!(key, SubjectKey::Listener { .. })
            {
                report.capacity_shortfalls.push(CapacityShortfall {
                    subject: subject.clone(),
                    region: Some(region.clone()),
                    capacity_rps: c,
                    load_rps: l,
                    message: format!(
                        "{subject}: {region} would take {} of new traffic ({}) against a declared capacity of {}: short by {}",
                        percent(during_share),
                        rps(l),
                        rps(c),
                        rps(-h)
                    ),
                });
            }
            regions_report.push(RegionReport {
                region: region.clone(),
                down: region_down,
                before: *before_share,
                during: during_share,
                capacity_rps: capacity,
                capacity_during_rps: capacity_during,
                load_before_rps: load_before,
                load_during_rps: load_during,
                headroom_before_rps: headroom_before,
                headroom_during_rps: headroom_during,
            });
        }
        if let (SubjectKey::Service { .. }, Some(e)) = (key, expected) {
            let total: Option<f64> = capacity_during
                .iter()
                .filter(|(r, _)| !is_down(down, r))
                .map(|(_, c)| *c)
                .sum();
            if let Some(total) = total
                && total < e - 0.5
            {
                report.capacity_shortfalls.push(CapacityShortfall {
                    subject: subject.clone(),
                    region: None,
                    capacity_rps: total,
                    load_rps: e,
                    message: format!(
                        "{subject}: the surviving backends declare {} of RATE capacity (capacity scaler × max rate) against an expected {}: short by {}",
                        rps(total),
                        rps(e),
                        rps(e - total)
                    ),
                });
            }
        }

        // Failover paths and the routes classified traffic takes.
        let mut failovers = Vec::new();
        // (region, path) pairs where traffic lands during the outage.
        // (region, path, moved, client region when the model knows it).
        let mut landings: Vec<(String, String, bool, Option<String>, f64)> = Vec::new();
        let mut fail_open = false;
        match subject_during {
            Subject::Listener(groups) => {
                let routing = traffic::route_listener(groups);
                fail_open = routing.fail_open;
                for flow in routing.flows.iter().filter(|f| f.share > 1e-9) {
                    let cause = if is_down(down, &flow.from) {
                        "down"
                    } else {
                        "unhealthy"
                    };
                    let path = if routing.fail_open {
                        format!(
                            "no endpoint group can serve → Global Accelerator fails open: {}'s clients go to {}",
                            flow.from, flow.to
                        )
                    } else {
                        match flow.route {
                            Route::Own => format!("{}'s own clients", flow.to),
                            Route::Dial => format!(
                                "{} trafficDial {} → spills to {} by dial",
                                flow.from,
                                groups.get(&flow.from).map_or(0.0, |g| g.dial),
                                flow.to
                            ),
                            Route::Failover => format!(
                                "{} {cause} → spills to {} (nearest serving endpoint group; trafficDial {} ignored)",
                                flow.from,
                                flow.to,
                                groups.get(&flow.to).map_or(0.0, |g| g.dial)
                            ),
                        }
                    };
                    let moved = routing.fail_open || flow.route == Route::Failover;
                    if flow.route == Route::Failover {
                        failovers.push(FailoverPath {
                            from: flow.from.clone(),
                            to: flow.to.clone(),
                            share: flow.share,
                            distance_km: traffic::distance_km(&flow.from, &flow.to),
                            how: "nearest serving endpoint group, its trafficDial ignored"
                                .to_owned(),
                        });
                    }
                    landings.push((
                        flow.to.clone(),
                        path,
                        moved,
                        Some(flow.from.clone()),
                        flow.share,
                    ));
                }
            }
            Subject::Service(capacities) => {
                let survivors: f64 = capacities.values().sum();
                let lost: Vec<(&String, f64)> = shares_before
                    .iter()
                    .filter(|(r, share)| {
                        **share > 0.0 && capacities.get(*r).copied().unwrap_or(0.0) <= 0.0
                    })
                    .map(|(r, share)| (r, *share))
                    .collect();
                for (region, share) in &shares_during {
                    if *share <= 0.0 {
                        continue;
                    }
                    let capacity = capacities.get(region).copied().unwrap_or(0.0);
                    if survivors > 0.0 {
                        for (from, lost_share) in &lost {
                            let cause = if is_down(down, from) {
                                "down"
                            } else {
                                "unhealthy"
                            };
                            let moved = lost_share * capacity / survivors;
                            failovers.push(FailoverPath {
                                from: (*from).clone(),
                                to: region.clone(),
                                share: moved,
                                distance_km: None,
                                how: "in proportion to the surviving backends' effective capacity"
                                    .to_owned(),
                            });
                            landings.push((
                                region.clone(),
                                format!("{from} {cause} → spills to {region} (by capacity)"),
                                true,
                                None,
                                moved,
                            ));
                        }
                    }
                    landings.push((
                        region.clone(),
                        format!("{region}'s own share"),
                        false,
                        None,
                        *share,
                    ));
                }
            }
        }
        failovers.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));

        // Residency along the paths.
        if let Some((classification, policies)) = classification(state, info.labels) {
            let mut by_region: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
            let mut checked: BTreeSet<(String, String)> = BTreeSet::new();
            // The traffic of a client-scoped policy's own clients, per
            // (region, policy): its share, not the region's whole share.
            let mut client_share: BTreeMap<(String, String), f64> = BTreeMap::new();
            for (region, path, moved, client, flow_share) in &landings {
                // A client-scoped policy only speaks of its own clients'
                // traffic (Global Accelerator flows know their clients).
                let applicable: Vec<_> = policies
                    .iter()
                    .filter(|p| {
                        p.doc.spec.client_regions.is_empty()
                            || client
                                .as_deref()
                                .is_some_and(|c| crate::policy::client_scoped(p, c))
                    })
                    .collect();
                if applicable.is_empty() {
                    continue;
                }
                let verdicts: Vec<(String, Option<String>)> = applicable
                    .iter()
                    .map(|p| {
                        (
                            format!("DataResidencyPolicy/{}", p.name()),
                            verdict(p, region),
                        )
                    })
                    .collect();
                if *moved && checked.insert((region.clone(), path.clone())) {
                    report.residency_checks.push(ResidencyCheck {
                        resource: document.clone(),
                        classification: classification.clone(),
                        subject: subject.clone(),
                        region: region.clone(),
                        path: path.clone(),
                        policies: verdicts.iter().map(|(p, _)| p.clone()).collect(),
                        allowed: verdicts.iter().all(|(_, v)| v.is_none()),
                    });
                }
                for (policy, why) in verdicts {
                    if why.is_some() {
                        let scoped = applicable.iter().any(|p| {
                            format!("DataResidencyPolicy/{}", p.name()) == policy
                                && !p.doc.spec.client_regions.is_empty()
                        });
                        if scoped {
                            *client_share
                                .entry((region.clone(), policy.clone()))
                                .or_default() += flow_share;
                        }
                        let paths = by_region.entry((region.clone(), policy)).or_default();
                        if !paths.contains(path) {
                            paths.push(path.clone());
                        }
                    }
                }
            }
            for ((region, policy), paths) in by_region {
                let share = client_share
                    .get(&(region.clone(), policy.clone()))
                    .copied()
                    .unwrap_or_else(|| shares_during.get(&region).copied().unwrap_or(0.0));
                let why = policies
                    .iter()
                    .find(|p| format!("DataResidencyPolicy/{}", p.name()) == policy)
                    .and_then(|p| verdict(p, &region))
                    .unwrap_or_default();
                report.residency_violations.push(ResidencyViolation {
                    message: format!(
                        "{document} would serve `{classification}` data in {region} during the outage ({} of {subject}'s new traffic): {}; {policy} forbids it: {why}",
                        percent(share),
                        paths.join("; ")
                    ),
                    policy,
                    resource: document.clone(),
                    classification: classification.clone(),
                    subject: subject.clone(),
                    region,
                    share,
                    paths,
                });
            }
        }

        if serving_during.len() < min_serving_regions as usize
            && serving_during.len() < serving_before.len()
        {
            let required = match &traffic_policy {
                Some(policy) => format!("{policy} requires at least {min_serving_regions}"),
                None => "traffic must never drop to zero serving regions".to_owned(),
            };
            report.serving_violations.push(ServingViolation {
                subject: subject.clone(),
                serving_regions: serving_during.clone(),
                min_serving_regions,
                traffic_policy: traffic_policy.clone(),
                message: format!(
                    "{subject} keeps {} serving region(s) during the outage{}; {required}",
                    serving_during.len(),
                    if serving_during.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", serving_during.join(", "))
                    }
                ),
            });
        }
        if fail_open {
            report.notes.push(format!(
                "{subject}: no endpoint group can serve during the outage, so Global Accelerator fails open and sends clients to endpoints that are down; the shares show where connections are attempted, not where they succeed"
            ));
        }
        report.subjects.push(SubjectReport {
            affected: regions_report.iter().any(|r| r.down),
            subject,
            document,
            expected_rps: info.expected_rps,
            fail_open,
            regions: regions_report,
            failovers,
            serving_regions_before: serving_before.len(),
            serving_regions_during: serving_during.len(),
            min_serving_regions,
            traffic_policy,
        });
    }
    report
}

/// Renders a report.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(report).unwrap_or_default();
            text.push('\n');
            text
        }
        Format::Markdown => markdown(report),
        Format::Text => text(report),
    }
}

fn headline(report: &Report) -> String {
    let mut parts = Vec::new();
    let residency = report.residency_violations.len();
    let serving = report.serving_violations.len();
    let capacity = report.capacity_shortfalls.len();
    parts.push(if residency == 0 {
        "no residency violation".to_owned()
    } else {
        format!("⛔ {residency} residency violation(s)")
    });
    parts.push(if serving == 0 {
        "every listener and service keeps its minimum serving regions".to_owned()
    } else {
        format!("⛔ {serving} listener(s)/service(s) below their minimum serving regions")
    });
    parts.push(if capacity == 0 {
        "no declared capacity exceeded".to_owned()
    } else {
        format!("⚠️ {capacity} capacity shortfall(s)")
    });
    format!(
        "{} down: {}",
        report.regions_down.join(" + "),
        parts.join(" · ")
    )
}

fn opt_rps(value: Option<f64>) -> String {
    value.map_or("—".to_owned(), rps)
}

fn headroom(value: Option<f64>) -> String {
    match value {
        Some(h) if h < -0.5 => format!("⚠️ {}", rps(h)),
        other => opt_rps(other),
    }
}

fn region_label(region: &RegionReport) -> String {
    if region.down {
        format!("{} (down)", region.region)
    } else {
        region.region.clone()
    }
}

fn arrow(region: &RegionReport) -> &'static str {
    let delta = region.during - region.before;
    if delta >= 0.005 {
        " ▲"
    } else if delta <= -0.005 {
        " ▼"
    } else {
        ""
    }
}

fn failover_line(subject: &SubjectReport, path: &FailoverPath) -> String {
    let distance = path
        .distance_km
        .map(|d| format!(", {}", km(d)))
        .unwrap_or_default();
    format!(
        "`{}`: {} → {} ({}{distance}): {} of new traffic",
        subject.subject,
        path.from,
        path.to,
        path.how,
        percent(path.share)
    )
}

fn serving_line(subject: &SubjectReport) -> String {
    format!(
        "`{}`: {} → {} serving region(s), minimum {} ({})",
        subject.subject,
        subject.serving_regions_before,
        subject.serving_regions_during,
        subject.min_serving_regions,
        subject
            .traffic_policy
            .as_deref()
            .unwrap_or("no traffic policy: never zero")
    )
}

fn health_note(report: &Report) -> &'static str {
    match report.health {
        HealthSource::AssumedHealthy => {
            "every endpoint and backend assumed healthy before the outage"
        }
        HealthSource::Live => "live health before the outage",
    }
}

fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "**meridian whatif** {}\n", headline(report));
    for v in &report.residency_violations {
        let _ = writeln!(out, "- ⛔ {}", v.message);
    }
    for v in &report.serving_violations {
        let _ = writeln!(out, "- ⛔ {}", v.message);
    }
    for s in &report.capacity_shortfalls {
        let _ = writeln!(out, "- ⚠️ {}", s.message);
    }
    if report.is_blocked() || !report.capacity_shortfalls.is_empty() {
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "**Expected share of new traffic per region**\n\n| listener / service | region | before | during | capacity | headroom before | headroom during |\n|---|---|---:|---:|---:|---:|---:|"
    );
    for subject in &report.subjects {
        for region in &subject.regions {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {}{} | {} | {} | {} |",
                subject.subject,
                region_label(region),
                percent(region.before),
                percent(region.during),
                arrow(region),
                opt_rps(region.capacity_rps),
                headroom(region.headroom_before_rps),
                headroom(region.headroom_during_rps),
            );
        }
    }
    let _ = writeln!(out);
    let failovers: Vec<String> = report
        .subjects
        .iter()
        .flat_map(|s| s.failovers.iter().map(move |p| failover_line(s, p)))
        .collect();
    let _ = writeln!(out, "**Failover paths**\n");
    if failovers.is_empty() {
        let _ = writeln!(out, "No traffic fails over.");
    }
    for line in failovers {
        let _ = writeln!(out, "- {line}");
    }
    let _ = writeln!(out, "\n**Serving regions** (before → during)\n");
    for subject in report.subjects.iter().filter(|s| s.affected) {
        let ok = if report
            .serving_violations
            .iter()
            .any(|v| v.subject == subject.subject)
        {
            "⛔"
        } else {
            "✅"
        };
        let _ = writeln!(out, "- {ok} {}", serving_line(subject));
    }
    if !report.subjects.iter().any(|s| s.affected) {
        let _ = writeln!(out, "No listener or service has a region down.");
    }
    let _ = writeln!(out, "\n**Data residency along the failover paths**\n");
    if report.residency_checks.is_empty() && report.residency_violations.is_empty() {
        let _ = writeln!(out, "No traffic covered by a residency policy fails over.");
    }
    for check in &report.residency_checks {
        let _ = writeln!(
            out,
            "- {} `{}` ({}) {}: {}: {} by {}",
            if check.allowed { "✅" } else { "⛔" },
            check.resource,
            check.classification,
            check.subject,
            check.path,
            if check.allowed {
                "allowed"
            } else {
                "forbidden"
            },
            check.policies.join(", ")
        );
    }
    let _ = writeln!(out);
    for note in &report.notes {
        let _ = writeln!(out, "<sub>note: {note}</sub><br>");
    }
    let _ = writeln!(
        out,
        "<sub>meridian whatif · `{}` · {} · format {FORMAT_VERSION}</sub>",
        report.source,
        health_note(report)
    );
    out
}

fn text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "meridian whatif: {}\n({}; source {})",
        headline(report),
        health_note(report),
        report.source
    );
    for subject in &report.subjects {
        let expected = subject
            .expected_rps
            .map(|e| format!(", expected {}", rps(f64::from(e))))
            .unwrap_or_default();
        let _ = writeln!(out, "\n  {}{expected}", subject.subject);
        let _ = writeln!(
            out,
            "    {:<26} {:>7} {:>7}   {:>12} {:>16} {:>16}",
            "region", "before", "during", "capacity", "headroom before", "headroom during"
        );
        for region in &subject.regions {
            let _ = writeln!(
                out,
                "    {:<26} {:>7} {:>7}{:<2} {:>12} {:>16} {:>16}{}",
                region_label(region),
                percent(region.before),
                percent(region.during),
                arrow(region),
                opt_rps(region.capacity_rps),
                opt_rps(region.headroom_before_rps),
                opt_rps(region.headroom_during_rps),
                if region.headroom_during_rps.is_some_and(|h| h < -0.5) {
                    "  !"
                } else {
                    ""
                }
            );
        }
        for path in &subject.failovers {
            let distance = path
                .distance_km
                .map(|d| format!(", {}", km(d)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    failover: {} → {} ({}{distance}): {}",
                path.from,
                path.to,
                path.how,
                percent(path.share)
            );
        }
        if subject.affected {
            let _ = writeln!(
                out,
                "    serving regions: {} → {}, minimum {} ({})",
                subject.serving_regions_before,
                subject.serving_regions_during,
                subject.min_serving_regions,
                subject
                    .traffic_policy
                    .as_deref()
                    .unwrap_or("no traffic policy: never zero")
            );
        }
    }
    if !report.residency_checks.is_empty() {
        let _ = writeln!(out, "\nData residency along the failover paths:");
        for check in &report.residency_checks {
            let _ = writeln!(
                out,
                "  {} {} ({}) {}: {} [{}]",
                if check.allowed {
                    "ok       "
                } else {
                    "FORBIDDEN"
                },
                check.resource,
                check.classification,
                check.subject,
                check.path,
                check.policies.join(", ")
            );
        }
    }
    if report.is_blocked() || !report.capacity_shortfalls.is_empty() {
        let _ = writeln!(out, "\nFindings:");
    }
    for v in &report.residency_violations {
        let _ = writeln!(out, "  residency: {}", v.message);
    }
    for v in &report.serving_violations {
        let _ = writeln!(out, "  serving regions: {}", v.message);
    }
    for s in &report.capacity_shortfalls {
        let _ = writeln!(out, "  capacity: {}", s.message);
    }
    for note in &report.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_rates_are_grouped_by_thousands() {
        assert_eq!(rps(11_500.0), "11,500 rps");
        assert_eq!(rps(-1_000.4), "-1,000 rps");
        assert_eq!(rps(999.6), "1,000 rps");
        assert_eq!(rps(0.0), "0 rps");
        assert_eq!(km(6_525.2), "6,525 km");
    }
}
