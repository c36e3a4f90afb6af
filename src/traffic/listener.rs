//! Global Accelerator: where a listener's new traffic goes.
//!
//! Each client population goes to its closest endpoint group (GA-1), which
//! keeps its traffic dial's share of them and sends the rest to the next
//! closest group with a dial above 0 (GA-2). A part whose group does not
//! serve — no healthy endpoint with a weight above 0 — fails over to the
//! closest serving group among the population's three closest, whatever
//! that group's dial (GA-3); when none of the three serves, Global
//! Accelerator fails open to the closest group (GA-4). Endpoint weights split
//! a group's share between its endpoints (GA-5). `docs/traffic-model.md`
//! quotes the documentation behind each rule.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::clients::Clients;
use super::rules::Rule;
use super::{Flow, Route, Routing, by_distance, merge_flows};

/// Shares below this are rounding noise.
const EPS: f64 = 1e-12;

/// How many of a client's closest endpoint groups failover tries (GA-3).
pub const FAILOVER_CANDIDATES: usize = 3;

/// An endpoint as the model sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Endpoint {
    /// Endpoint id (ARN or allocation).
    pub id: String,
    /// Weight, 0-255.
    pub weight: u8,
    /// Whether it passes its health checks (unknown counts as healthy).
    pub healthy: bool,
}

/// An endpoint group as the model sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// Traffic dial, 0-100.
    pub dial: f64,
    /// Endpoints.
    pub endpoints: Vec<Endpoint>,
    /// Declared capacity in requests per second (`capacityRps`).
    pub capacity_rps: Option<f64>,
}

impl Group {
    /// A group serves when at least one endpoint is healthy with a weight
    /// above 0 (the failover page's definition).
    pub fn serving(&self) -> bool {
        self.endpoints.iter().any(|e| e.healthy && e.weight > 0)
    }
}

/// A listener as the model sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listener {
    /// Endpoint groups by region.
    pub groups: BTreeMap<String, Group>,
    /// Where the clients are.
    pub clients: Clients,
    /// Declared expected peak requests per second (`expectedRps`).
    pub expected_rps: Option<f64>,
}

/// One endpoint's share of a listener's new traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointShare {
    /// The group's region.
    pub region: String,
    /// Endpoint id.
    pub id: String,
    /// Its weight.
    pub weight: u8,
    /// Share of the listener's new traffic, 0.0-1.0.
    pub share: f64,
}

/// Routes a listener's new traffic.
///
/// For each client population: the dial picks the *original* group of each
/// part of it — the closest group keeps its dial's share, the rest goes to
/// the next closest group with a dial above 0, health aside (AWS: "Global
/// Accelerator considers account traffic dial settings when it chooses the
/// original endpoint group"). A part whose original group does not serve
/// fails over to the closest serving group among the population's three
/// closest, dials ignored — possibly a drained group at dial 0 — and fails
/// open to the closest group when none of the three serves.
pub fn route(listener: &Listener) -> Routing {
    let groups = &listener.groups;
    let mut flows = Vec::new();
    let mut rules = BTreeSet::new();
    if listener.clients.is_default() {
        rules.insert(Rule::AssumeClients);
    }
    if groups.is_empty() {
        return Routing::new(flows, listener.clients.clone(), rules, Vec::new());
    }
    let regions: Vec<&String> = groups.keys().collect();
    for population in &listener.clients.populations {
        let order = by_distance(&population.location, &regions);
        let closest = order[0];
        let group = &groups[closest];
        // The original groups, by dial: (group, share, route that got it there).
        let mut originals: Vec<(&String, f64, Route)> = Vec::new();
        let kept = population.share * group.dial / 100.0;
        originals.push((closest, kept, Route::Proximity));
        let rest = population.share - kept;
        if rest > EPS {
            match order[1..].iter().find(|r| groups[r.as_str()].dial > 0.0) {
                Some(next) => {
                    rules.insert(Rule::GaDial);
                    originals.push((next, rest, Route::Dial));
                }
                None => {
                    rules.insert(Rule::AssumeResidual);
                    originals.push((closest, rest, Route::Residual));
                }
            }
        }
        for (original, share, route) in originals {
            if share <= EPS {
                continue;
            }
            let via = (route == Route::Dial).then(|| closest.clone());
            if groups[original.as_str()].serving() {
                if route == Route::Proximity {
                    rules.insert(Rule::GaProximity);
                }
                flows.push(Flow {
                    from: population.location.clone(),
                    to: original.clone(),
                    share,
                    route,
                    via,
                    rule: route.default_rule(),
                });
                continue;
            }
            let target = order
                .iter()
                .take(FAILOVER_CANDIDATES)
                .find(|r| groups[r.as_str()].serving());
            let (to, route) = match target {
                Some(target) => {
                    rules.insert(Rule::GaFailover);
                    (*target, Route::Failover)
                }
                None => {
                    rules.insert(Rule::GaFailOpen);
                    (closest, Route::FailOpen)
                }
            };
            flows.push(Flow {
                from: population.location.clone(),
                to: to.clone(),
                share,
                route,
                via: (route == Route::Failover).then(|| original.clone()),
                rule: route.default_rule(),
            });
        }
    }
    let flows = merge_flows(flows);
    // GA-5 when some group serving traffic splits it between endpoints.
    if flows.iter().any(|f| {
        f.route != Route::FailOpen
            && groups.get(&f.to).is_some_and(|g| {
                g.endpoints
                    .iter()
                    .filter(|e| e.healthy && e.weight > 0)
                    .count()
                    > 1
            })
    }) {
        rules.insert(Rule::GaWeights);
    }
    Routing::new(flows, listener.clients.clone(), rules, Vec::new())
}

/// How a listener's flows split between endpoints: by weight among the
/// group's healthy endpoints with a weight above 0 (GA-5); traffic that
/// fails open goes to "a random endpoint" of the group, so evenly over all.
pub fn endpoint_shares(listener: &Listener, routing: &Routing) -> Vec<EndpointShare> {
    let mut out: BTreeMap<(String, String), (u8, f64)> = BTreeMap::new();
    for (region, group) in &listener.groups {
        for e in &group.endpoints {
            out.insert((region.clone(), e.id.clone()), (e.weight, 0.0));
        }
    }
    for flow in &routing.flows {
        let Some(group) = listener.groups.get(&flow.to) else {
            continue;
        };
        if flow.route == Route::FailOpen {
            let n = group.endpoints.len().max(1) as f64;
            for e in &group.endpoints {
                if let Some(entry) = out.get_mut(&(flow.to.clone(), e.id.clone())) {
                    entry.1 += flow.share / n;
                }
            }
            continue;
        }
        let total: f64 = group
            .endpoints
            .iter()
            .filter(|e| e.healthy && e.weight > 0)
            .map(|e| f64::from(e.weight))
            .sum();
        if total <= 0.0 {
            continue;
        }
        for e in group.endpoints.iter().filter(|e| e.healthy && e.weight > 0) {
            if let Some(entry) = out.get_mut(&(flow.to.clone(), e.id.clone())) {
                entry.1 += flow.share * f64::from(e.weight) / total;
            }
        }
    }
    out.into_iter()
        .map(|((region, id), (weight, share))| EndpointShare {
            region,
            id,
            weight,
            share,
        })
        .collect()
}

/// Regions that serve the listener: a group that serves (a healthy endpoint
/// with a weight above 0) and either admits traffic by its dial (above 0)
/// or takes failover traffic in this prediction (a standby woken at dial 0).
/// The same rule as the rollout's invariants, plus the failover standby.
pub fn serving_regions(listener: &Listener, routing: &Routing) -> Vec<String> {
    let mut serving: BTreeSet<String> = listener
        .groups
        .iter()
        .filter(|(_, g)| g.serving() && g.dial > 0.0)
        .map(|(r, _)| r.clone())
        .collect();
    serving.extend(
        routing
            .flows
            .iter()
            .filter(|f| {
                f.share > EPS
                    && f.route == Route::Failover
                    && listener.groups.get(&f.to).is_some_and(Group::serving)
            })
            .map(|f| f.to.clone()),
    );
    serving.into_iter().collect()
}
