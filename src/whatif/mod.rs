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
use crate::traffic::{self, Flow, Route, Subject, SubjectKey, TrafficInput};

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
    /// The region that cannot serve them any more (their closest).
    pub from: String,
    /// The clients' location.
    pub clients: String,
    /// The region that takes them.
    pub to: String,
    /// Share of the subject's new traffic that moves, 0.0-1.0.
    pub share: f64,
    /// Great-circle distance between the clients and `to`.
    pub distance_km: Option<f64>,
    /// Why `from` lost the traffic and the rule that picks `to`.
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
    /// Some of its traffic fails open during the outage (GA-4).
    pub fail_open: bool,
    /// Share of its new traffic that fails open during the outage.
    pub fail_open_share: f64,
    /// Regions, in name order.
    pub regions: Vec<RegionReport>,
    /// Each endpoint's share during the outage (listeners; GA-5).
    pub endpoints: Vec<traffic::listener::EndpointShare>,
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
    /// The rules and assumptions the prediction during the outage rests on
    /// (serialised as `GA-1`, …).
    pub rules: Vec<traffic::Rule>,
    /// The clients it starts from.
    pub clients: String,
    /// Details of the assumptions.
    pub assumptions: Vec<String>,
}

/// Traffic that fails open: no serving endpoint group among its clients'
/// three closest, so Global Accelerator sends it to endpoints that cannot
/// serve it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailOpen {
    /// The listener.
    pub subject: String,
    /// The clients' location.
    pub clients: String,
    /// Where the connections are attempted.
    pub region: String,
    /// Share of the listener's new traffic.
    pub share: f64,
    /// Human explanation.
    pub message: String,
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
    /// Traffic that fails open during the outage.
    pub fail_open: Vec<FailOpen>,
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
    /// are capacity shortfalls or fail-open traffic, 0 when the outage is
    /// absorbed.
    pub fn exit_code(&self) -> u8 {
        if self.is_blocked() {
            crate::exit::BLOCKED
        } else if !self.capacity_shortfalls.is_empty() || !self.fail_open.is_empty() {
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
}

fn document_info<'a>(state: &'a DesiredState, key: &SubjectKey) -> Option<DocumentInfo<'a>> {
    match key {
        SubjectKey::Listener { accelerator, .. } => {
            let ga = state.accelerator(accelerator)?;
            Some(DocumentInfo {
                name: ga.name().to_owned(),
                kind: TrafficKind::GlobalAccelerator,
                labels: &ga.doc.metadata.labels,
            })
        }
        SubjectKey::Service { name } => {
            let bs = state.backend_service(name)?;
            Some(DocumentInfo {
                name: bs.name().to_owned(),
                kind: TrafficKind::BackendService,
                labels: &bs.doc.metadata.labels,
            })
        }
    }
}

/// Declared capacity of each region of a subject, in requests per second:
/// an endpoint group's `capacityRps`; a service region's capacity scaler ×
/// target capacity over the backends that can serve (`None` when one has
/// no capacity in requests per second).
fn capacities(subject: &Subject) -> BTreeMap<String, Option<f64>> {
    match subject {
        Subject::Listener(l) => l
            .groups
            .iter()
            .map(|(r, g)| {
                (
                    r.clone(),
                    g.capacity_rps.map(|c| if g.serving() { c } else { 0.0 }),
                )
            })
            .collect(),
        Subject::Service(s) => s
            .regions()
            .into_iter()
            .map(|r| {
                let c = s.region_capacity(&r);
                (r, c)
            })
            .collect(),
    }
}

/// Whether a region can serve the subject (a serving group; a backend that
/// can serve).
fn can_serve(subject: &Subject, region: &str) -> bool {
    match subject {
        Subject::Listener(l) => l.groups.get(region).is_some_and(traffic::Group::serving),
        Subject::Service(s) => s.serving_regions().iter().any(|r| r == region),
    }
}

/// Why a region does not serve (or serves less) during the outage.
fn cause(subject: &Subject, region: &str, down: &[String]) -> &'static str {
    if is_down(down, region) {
        return "down";
    }
    match subject {
        Subject::Listener(l) => match l.groups.get(region) {
            Some(g) if g.serving() => "full or dialled down",
            _ => "unhealthy",
        },
        Subject::Service(s) => {
            let backends: Vec<_> = s.backends.iter().filter(|b| b.region == region).collect();
            if backends.iter().any(|b| b.can_serve()) {
                "full"
            } else if backends.iter().all(|b| b.healthy) {
                "drained (capacityScaler 0)"
            } else {
                "unhealthy"
            }
        }
    }
}

/// How a flow reaches its region, for humans.
fn path_of(subject: &Subject, flow: &Flow, down: &[String]) -> String {
    let cause = |region: &str| cause(subject, region, down);
    let dial = |region: &str| match subject {
        Subject::Listener(l) => l.groups.get(region).map_or(0.0, |g| g.dial),
        Subject::Service(_) => 0.0,
    };
    let via = flow.via.as_deref().unwrap_or("");
    let clients = &flow.from;
    match flow.route {
        Route::Proximity => format!(
            "clients at {clients}: {} is their closest endpoint group",
            flow.to
        ),
        Route::Dial => format!(
            "{via} trafficDial {} turns clients at {clients} away → next closest group with a dial above 0: {}",
            dial(via),
            flow.to
        ),
        Route::Failover => format!(
            "{via} {} → clients at {clients} fail over to {} (closest serving endpoint group among their three closest{})",
            cause(via),
            flow.to,
            if dial(&flow.to) < 100.0 {
                format!("; trafficDial {} ignored", dial(&flow.to))
            } else {
                String::new()
            }
        ),
        Route::FailOpen => format!(
            "no serving endpoint group among the three closest to clients at {clients} → Global Accelerator fails open to {}, which cannot serve",
            flow.to
        ),
        Route::Residual => format!(
            "every dial turns clients at {clients} away → assumed to stay in {} (A-2)",
            flow.to
        ),
        Route::Closest if !via.is_empty() && !can_serve(subject, via) => format!(
            "{via} {} → clients at {clients} go to {} (closest region with capacity)",
            cause(via),
            flow.to
        ),
        Route::Closest => format!(
            "clients at {clients}: {} is their closest region with capacity",
            flow.to
        ),
        Route::Overflow => format!(
            "closer regions full → clients at {clients} overflow to {}",
            flow.to
        ),
        Route::Spray => format!("clients at {clients} sprayed to {} by capacity", flow.to),
        Route::Excess => format!(
            "every region at capacity → clients at {clients} spread to {} by capacity (A-5)",
            flow.to
        ),
    }
}

fn percent(share: f64) -> String {
    // `+ 0.0` turns the -0.0 an empty sum gives into 0.0.
    format!("{:.1}%", share * 100.0 + 0.0)
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
    let declared = traffic::declarations(state);
    let mut subjects_before = traffic::subjects(&before, &declared);
    let mut subjects_during = traffic::subjects(&during, &declared);
    traffic::align_default_clients(&mut subjects_before, &mut subjects_during);
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
        fail_open: Vec::new(),
        notes: Vec::new(),
    };
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
        let routing_before = subject_before.route();
        let routing_during = subject_during.route();
        let mut regions = subject_before.regions();
        regions.extend(subject_during.regions());
        let shares_before = routing_before.shares(&regions);
        let shares_during = routing_during.shares(&regions);
        let (min_serving_regions, traffic_policy) = min_serving(state, info.kind, &info.name);
        let serving_before = subject_before.serving_regions();
        let serving_during = subject_during.serving_regions();
        let capacity_before = capacities(subject_before);
        let capacity_during = capacities(subject_during);
        let expected = subject_during.expected_rps();
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
                        "{subject}: the surviving backends' capacity (capacity scaler × target capacity) is {} against an expected {}: short by {}; every region runs over its target",
                        rps(total),
                        rps(e),
                        rps(e - total)
                    ),
                });
            }
        }

        // Failover paths: per client population, the share each region lost
        // during the outage, paired in proportion with the share each other
        // region gained (fail-open traffic is reported on its own).
        let served = |routing: &traffic::Routing| {
            let mut out: BTreeMap<(String, String), f64> = BTreeMap::new();
            for f in routing.flows.iter().filter(|f| f.route != Route::FailOpen) {
                *out.entry((f.from.clone(), f.to.clone())).or_default() += f.share;
            }
            out
        };
        let (served_before, served_during) = (served(&routing_before), served(&routing_during));
        let mut failovers = Vec::new();
        let populations: BTreeSet<&String> = served_before
            .keys()
            .chain(served_during.keys())
            .map(|(c, _)| c)
            .collect();
        for clients in populations {
            let delta = |region: &String| {
                served_during
                    .get(&(clients.clone(), region.clone()))
                    .copied()
                    .unwrap_or(0.0)
                    - served_before
                        .get(&(clients.clone(), region.clone()))
                        .copied()
                        .unwrap_or(0.0)
            };
            let losses: Vec<(&String, f64)> = regions
                .iter()
                .map(|r| (r, -delta(r)))
                .filter(|(_, d)| *d > 1e-9)
                .collect();
            let gains: Vec<(&String, f64)> = regions
                .iter()
                .map(|r| (r, delta(r)))
                .filter(|(_, d)| *d > 1e-9)
                .collect();
            let total_loss: f64 = losses.iter().map(|(_, d)| d).sum();
            let total_gain: f64 = gains.iter().map(|(_, d)| d).sum();
            let denominator = total_loss.max(total_gain);
            for (from, loss) in &losses {
                for (to, gain) in &gains {
                    let rule = routing_during
                        .flows
                        .iter()
                        .filter(|f| &f.from == clients && &f.to == *to)
                        .max_by(|a, b| a.share.total_cmp(&b.share))
                        .map(|f| f.rule);
                    failovers.push(FailoverPath {
                        from: (*from).clone(),
                        clients: clients.clone(),
                        to: (*to).clone(),
                        share: loss * gain / denominator,
                        distance_km: traffic::distance_km(clients, to),
                        how: format!(
                            "{} {}{}",
                            from,
                            cause(subject_during, from, down),
                            rule.map(|r| format!(": {}", r.label())).unwrap_or_default()
                        ),
                    });
                }
            }
        }
        failovers.sort_by(|a, b| (&a.from, &a.clients, &a.to).cmp(&(&b.from, &b.clients, &b.to)));
        // Where classified traffic lands: (region, path, moved by the
        // outage, client location, share).
        let mut landings: Vec<(String, String, bool, String, f64)> = Vec::new();
        let mut fail_open: BTreeMap<(String, String), f64> = BTreeMap::new();
        for flow in routing_during.flows.iter().filter(|f| f.share > 1e-9) {
            let path = path_of(subject_during, flow, down);
            if flow.route == Route::FailOpen {
                *fail_open
                    .entry((flow.from.clone(), flow.to.clone()))
                    .or_default() += flow.share;
            }
            let key = (flow.from.clone(), flow.to.clone());
            let moved = flow.route == Route::FailOpen
                || served_during.get(&key).copied().unwrap_or(0.0)
                    > served_before.get(&key).copied().unwrap_or(0.0) + 1e-9;
            landings.push((flow.to.clone(), path, moved, flow.from.clone(), flow.share));
        }
        for ((clients, region), share) in &fail_open {
            report.fail_open.push(FailOpen {
                subject: subject.clone(),
                clients: clients.clone(),
                region: region.clone(),
                share: *share,
                message: format!(
                    "{subject}: clients at {clients} ({} of new traffic) have no serving endpoint group among their three closest; Global Accelerator fails open and sends them to {region}, which cannot serve them (GA-4)",
                    percent(*share)
                ),
            });
        }

        // Residency along the paths.
        if let Some((classification, policies)) = classification(state, info.labels) {
            let mut by_region: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
            let mut checked: BTreeSet<(String, String)> = BTreeSet::new();
            // The traffic of a client-scoped policy's own clients, per
            // (region, policy): its share, not the region's whole share.
            let mut client_share: BTreeMap<(String, String), f64> = BTreeMap::new();
            for (region, path, moved, client, flow_share) in &landings {
                let applicable: Vec<_> = policies
                    .iter()
                    .filter(|p| {
                        p.doc.spec.client_regions.is_empty()
                            || crate::policy::client_scoped(p, client)
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
        let endpoints = match subject_during {
            Subject::Listener(l) => traffic::listener::endpoint_shares(l, &routing_during),
            Subject::Service(_) => Vec::new(),
        };
        report.subjects.push(SubjectReport {
            affected: regions_report.iter().any(|r| r.down),
            subject,
            document,
            expected_rps: expected.map(|e| e.round() as u32),
            fail_open: routing_during.fail_open_share() > 1e-9,
            fail_open_share: routing_during.fail_open_share(),
            regions: regions_report,
            endpoints,
            failovers,
            serving_regions_before: serving_before.len(),
            serving_regions_during: serving_during.len(),
            min_serving_regions,
            traffic_policy,
            rules: routing_during.rules.clone(),
            clients: routing_during.clients.describe(),
            assumptions: routing_during.notes.clone(),
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
    if !report.fail_open.is_empty() {
        parts.push(format!(
            "⚠️ {} client population(s) fail open",
            report.fail_open.len()
        ));
    }
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
        "`{}`: {} → {}, clients at {} ({}{distance}): {} of new traffic",
        subject.subject,
        path.from,
        path.to,
        path.clients,
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
    for f in &report.fail_open {
        let _ = writeln!(out, "- ⚠️ {}", f.message);
    }
    if report.exit_code() != crate::exit::OK {
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
    let _ = writeln!(
        out,
        "\n**How these shares were predicted** (rules: `docs/traffic-model.md`)\n"
    );
    for subject in &report.subjects {
        let _ = writeln!(
            out,
            "- {}",
            traffic::rules::basis(
                &subject.subject,
                &subject.rules,
                &subject.clients,
                &subject.assumptions
            )
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
                "    failover: {} → {}, clients at {} ({}{distance}): {}",
                path.from,
                path.to,
                path.clients,
                path.how,
                percent(path.share)
            );
        }
        let _ = writeln!(
            out,
            "    rules: {}",
            subject
                .rules
                .iter()
                .map(|r| r.label())
                .collect::<Vec<_>>()
                .join("; ")
        );
        let _ = writeln!(out, "    {}", subject.clients);
        for assumption in &subject.assumptions {
            let _ = writeln!(out, "    assumed: {assumption}");
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
    if report.exit_code() != crate::exit::OK {
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
    for f in &report.fail_open {
        let _ = writeln!(out, "  fail-open: {}", f.message);
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
