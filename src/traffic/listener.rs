//! Global Accelerator: where a listener's new traffic goes.
//!
//! Each client population goes to its closest endpoint group (GA-1). A group
//! that serves keeps its traffic dial's share of them and sends the rest to
//! the next closest group that serves with a dial above 0 (GA-2). A group
//! that does not serve — no healthy endpoint with a weight above 0 — fails
//! its clients over to the closest serving group among their three closest,
//! whatever that group's dial (GA-3); when none of the three serves, Global
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
        let mut push = |to: &str, share: f64, route: Route, via: Option<&str>| {
            if share > EPS {
                flows.push(Flow {
                    from: population.location.clone(),
                    to: to.to_owned(),
                    share,
                    route,
                    via: via.map(str::to_owned),
                    rule: route.default_rule(),
                });
            }
        };
        if group.serving() {
            rules.insert(Rule::GaProximity);
            let kept = population.share * group.dial / 100.0;
            push(closest, kept, Route::Proximity, None);
            let rest = population.share - kept;
            if rest > EPS {
                rules.insert(Rule::GaDial);
                let next = order[1..]
                    .iter()
                    .find(|r| groups[r.as_str()].serving() && groups[r.as_str()].dial > 0.0);
                match next {
                    Some(next) => push(next, rest, Route::Dial, Some(closest)),
                    None => {
                        rules.insert(Rule::AssumeResidual);
                        push(closest, rest, Route::Residual, None);
                    }
                }
            }
        } else {
            let target = order
                .iter()
                .take(FAILOVER_CANDIDATES)
                .find(|r| groups[r.as_str()].serving());
            match target {
                Some(target) => {
                    rules.insert(Rule::GaFailover);
                    push(target, population.share, Route::Failover, Some(closest));
                }
                None => {
                    rules.insert(Rule::GaFailOpen);
                    push(closest, population.share, Route::FailOpen, None);
                }
            }
        }
    }
    let flows = merge_flows(flows);
    let routing = Routing::new(flows, listener.clients.clone(), rules, Vec::new());
    let split = endpoint_shares(listener, &routing)
        .iter()
        .filter(|e| e.share > EPS)
        .count()
        > routing
            .flows
            .iter()
            .map(|f| &f.to)
            .collect::<BTreeSet<_>>()
            .len();
    if split {
        let mut routing = routing;
        routing.rules.push(Rule::GaWeights);
        routing.rules.sort();
        return routing;
    }
    routing
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

/// Regions that serve by design: a serving group that receives clients by
/// proximity, by another group's dial or by failover. Traffic that stays
/// only because every dial turns it away, or that fails open, does
/// not make a region serving.
pub fn serving_regions(listener: &Listener, routing: &Routing) -> Vec<String> {
    let serving: BTreeSet<String> = routing
        .flows
        .iter()
        .filter(|f| {
            f.share > EPS
                && matches!(f.route, Route::Proximity | Route::Dial | Route::Failover)
                && listener.groups.get(&f.to).is_some_and(Group::serving)
        })
        .map(|f| f.to.clone())
        .collect();
    serving.into_iter().collect()
}
