//! GCP global backend services: where a service's new traffic goes.
//!
//! The load-balancing scheme and the service load-balancing policy choose
//! the algorithm. With `EXTERNAL_MANAGED` and no policy, or with
//! `WATERFALL_BY_REGION` (and, between regions, `SPRAY_TO_REGION` and
//! `WATERFALL_BY_ZONE`), each client population fills its closest region
//! with capacity up to the region's target capacity × capacity scaler, then
//! overflows to the next closest (GCP-1). The classic `EXTERNAL` scheme sends
//! each request to the closest region with capacity (GCP-2).
//! `SPRAY_TO_WORLD` spreads all traffic over every backend in proportion to
//! capacity (GCP-3). A backend's capacity is counted in its own balancing
//! mode's unit and only compared where that unit is requests per second.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::model::raw::LoadBalancingAlgorithm;

use super::clients::Clients;
use super::rules::Rule;
use super::{Flow, Route, Routing, by_distance, merge_flows};

/// Loads below this many requests per second, or shares below 1e-12, are noise.
const EPS: f64 = 1e-9;

/// A backend as the model sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backend {
    /// The group's relative path.
    pub group: String,
    /// Its region.
    pub region: String,
    /// Whether it is healthy (unknown counts as healthy).
    pub healthy: bool,
    /// Capacity scaler, 0.0-1.0.
    pub scaler: f64,
    /// Balancing mode.
    pub mode: String,
    /// Target capacity in requests per second at scaler 1, where known:
    /// RATE `maxRate`, or `maxRatePerEndpoint` × `endpointCount`;
    /// UTILIZATION `capacityRps` × `maxUtilization` (default 0.8);
    /// CONNECTION `capacityRps`.
    pub capacity_rps: Option<f64>,
    /// Why the capacity is unknown, for the assumptions list.
    pub unknown_because: Option<String>,
}

impl Backend {
    /// Whether the backend takes traffic: healthy with a scaler above 0 (a
    /// capacity of 0 fills at once and overflows).
    pub fn can_serve(&self) -> bool {
        self.healthy && self.scaler > 0.0
    }

    /// Capacity scaler × target capacity, where known.
    pub fn effective_rps(&self) -> Option<f64> {
        self.capacity_rps.map(|c| c * self.scaler)
    }
}

/// Which algorithm routes the service (from its scheme and policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Algorithm {
    /// Classic `EXTERNAL`: closest region with capacity.
    Classic,
    /// A service load-balancing policy's algorithm (or its default).
    Policy(LoadBalancingAlgorithm),
}

impl Algorithm {
    /// From the scheme's API spelling and the declared policy algorithm.
    pub fn of(scheme: &str, declared: Option<LoadBalancingAlgorithm>) -> Algorithm {
        if scheme == "EXTERNAL" {
            Algorithm::Classic
        } else {
            Algorithm::Policy(declared.unwrap_or(LoadBalancingAlgorithm::WaterfallByRegion))
        }
    }

    /// The rule that routes traffic between regions.
    pub fn rule(self) -> Rule {
        match self {
            Algorithm::Classic => Rule::GcpClassic,
            Algorithm::Policy(LoadBalancingAlgorithm::SprayToWorld) => Rule::GcpSpray,
            Algorithm::Policy(_) => Rule::GcpWaterfall,
        }
    }

    /// For humans.
    pub fn describe(self) -> String {
        match self {
            Algorithm::Classic => "classic EXTERNAL scheme".to_owned(),
            Algorithm::Policy(a) => format!("EXTERNAL_MANAGED, {}", a.as_str()),
        }
    }
}

/// A backend service as the model sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    /// How it routes between regions.
    pub algorithm: Algorithm,
    /// Backends, in group order.
    pub backends: Vec<Backend>,
    /// Declared expected peak requests per second (`expectedRps`).
    pub expected_rps: Option<f64>,
    /// Where the clients are.
    pub clients: Clients,
}

impl Service {
    /// Every region with a backend.
    pub fn regions(&self) -> BTreeSet<String> {
        self.backends.iter().map(|b| b.region.clone()).collect()
    }

    /// Regions with a backend that can serve.
    pub fn serving_regions(&self) -> Vec<String> {
        let out: BTreeSet<String> = self
            .backends
            .iter()
            .filter(|b| b.can_serve())
            .map(|b| b.region.clone())
            .collect();
        out.into_iter().collect()
    }

    /// The region's capacity in requests per second (capacity scaler ×
    /// target capacity over its backends that can serve); `None` when a
    /// backend that can serve has no known capacity, or none can serve and
    /// none declares one.
    pub fn region_capacity(&self, region: &str) -> Option<f64> {
        let mut total = 0.0;
        let mut any = false;
        for b in self.backends.iter().filter(|b| b.region == region) {
            if b.can_serve() {
                total += b.effective_rps()?;
                any = true;
            } else if b.capacity_rps.is_some() {
                any = true;
            }
        }
        any.then_some(total)
    }
}

/// Routes a backend service's new traffic.
pub fn route(service: &Service) -> Routing {
    let mut rules = BTreeSet::new();
    let mut notes = Vec::new();
    if service.clients.is_default() {
        rules.insert(Rule::AssumeClients);
    }
    let all_regions: Vec<String> = service.regions().into_iter().collect();
    let all_refs: Vec<&String> = all_regions.iter().collect();
    let candidates: Vec<String> = service.serving_regions();
    if candidates.is_empty() {
        return Routing::new(Vec::new(), service.clients.clone(), rules, notes);
    }
    let candidate_refs: Vec<&String> = candidates.iter().collect();
    // Capacity per candidate region: None = unknown (never fills, A-3).
    let capacity: BTreeMap<&String, Option<f64>> = candidates
        .iter()
        .map(|r| (r, service.region_capacity(r)))
        .collect();
    let spraying = service.algorithm.rule() == Rule::GcpSpray;
    for b in service.backends.iter().filter(|b| b.can_serve()) {
        if b.capacity_rps.is_none() {
            rules.insert(if spraying {
                Rule::AssumeEqualCapacity
            } else {
                Rule::AssumeUnknownCapacity
            });
            if let Some(why) = &b.unknown_because {
                notes.push(format!("{}: {why}", b.group));
            }
        }
    }
    // Relative weights for spraying and for load above every capacity:
    // capacity where every serving backend declares one, otherwise each
    // backend's capacity scaler alone (A-6; load above every capacity only
    // arises when every capacity is known).
    let weights: BTreeMap<&String, f64> = if capacity.values().all(Option::is_some) {
        capacity
            .iter()
            .map(|(r, c)| (*r, c.unwrap_or(0.0)))
            .collect()
    } else {
        candidates
            .iter()
            .map(|r| {
                (
                    r,
                    service
                        .backends
                        .iter()
                        .filter(|b| &b.region == r && b.can_serve())
                        .map(|b| b.scaler)
                        .sum(),
                )
            })
            .collect()
    };
    let total_weight: f64 = weights.values().sum();
    let mut flows = Vec::new();
    let rule = service.algorithm.rule();
    rules.insert(rule);
    if matches!(
        service.algorithm,
        Algorithm::Policy(
            LoadBalancingAlgorithm::SprayToRegion | LoadBalancingAlgorithm::WaterfallByZone
        )
    ) {
        notes.push(format!(
            "{}: routes between regions as WATERFALL_BY_REGION does; it differs only inside a region, below the model's resolution",
            service.algorithm.describe()
        ));
    }
    let closest_of = |location: &str| by_distance(location, &all_refs)[0].clone();
    if rule == Rule::GcpSpray {
        for population in &service.clients.populations {
            for (region, w) in &weights {
                let share = population.share * w / total_weight.max(f64::MIN_POSITIVE);
                if share > EPS {
                    flows.push(Flow {
                        from: population.location.clone(),
                        to: (*region).clone(),
                        share,
                        route: Route::Spray,
                        via: None,
                        rule,
                    });
                }
            }
        }
        return Routing::new(merge_flows(flows), service.clients.clone(), rules, notes);
    }
    let Some(expected) = service.expected_rps.filter(|e| *e > 0.0) else {
        // No load declared: every region is assumed under capacity, so each
        // population stays in its closest region with capacity.
        rules.insert(Rule::AssumeUnderCapacity);
        for population in &service.clients.populations {
            let to = by_distance(&population.location, &candidate_refs)[0].clone();
            let closest = closest_of(&population.location);
            flows.push(Flow {
                from: population.location.clone(),
                to: to.clone(),
                share: population.share,
                route: Route::Closest,
                via: (closest != to).then_some(closest),
                rule,
            });
        }
        return Routing::new(merge_flows(flows), service.clients.clone(), rules, notes);
    };
    // Waterfall: fill the closest region with room, then overflow.
    struct Pending<'a> {
        location: &'a str,
        load: f64,
        order: Vec<&'a String>,
        pos: usize,
    }
    let mut remaining: BTreeMap<&String, f64> = capacity
        .iter()
        .map(|(r, c)| (*r, c.unwrap_or(f64::INFINITY)))
        .collect();
    let mut pending: Vec<Pending> = service
        .clients
        .populations
        .iter()
        .map(|p| Pending {
            location: &p.location,
            load: p.share * expected,
            order: by_distance(&p.location, &candidate_refs),
            pos: 0,
        })
        .collect();
    loop {
        for p in &mut pending {
            while p.pos < p.order.len() && remaining[p.order[p.pos]] <= EPS {
                p.pos += 1;
            }
        }
        let mut demand: BTreeMap<&String, f64> = BTreeMap::new();
        for p in pending
            .iter()
            .filter(|p| p.load > EPS && p.pos < p.order.len())
        {
            *demand.entry(p.order[p.pos]).or_default() += p.load;
        }
        if demand.is_empty() {
            break;
        }
        for (region, wanted) in demand {
            let room = remaining[region];
            let taken = wanted.min(room);
            let ratio = taken / wanted;
            for p in pending
                .iter_mut()
                .filter(|p| p.load > EPS && p.pos < p.order.len() && p.order[p.pos] == region)
            {
                let got = p.load * ratio;
                p.load -= got;
                let closest = closest_of(p.location);
                flows.push(Flow {
                    from: p.location.to_owned(),
                    to: region.clone(),
                    share: got / expected,
                    route: if p.pos == 0 {
                        Route::Closest
                    } else {
                        Route::Overflow
                    },
                    via: (&closest != region).then_some(closest),
                    rule,
                });
            }
            if let Some(r) = remaining.get_mut(region) {
                *r = (room - taken).max(0.0);
            }
        }
    }
    // Load above every region's capacity (every capacity is known here).
    for p in pending.iter().filter(|p| p.load > EPS) {
        rules.insert(Rule::AssumeExcess);
        for (region, w) in &weights {
            let share = p.load / expected * w / total_weight.max(f64::MIN_POSITIVE);
            if share > EPS {
                flows.push(Flow {
                    from: p.location.to_owned(),
                    to: (*region).clone(),
                    share,
                    route: Route::Excess,
                    via: None,
                    rule: Rule::AssumeExcess,
                });
            }
        }
    }
    Routing::new(merge_flows(flows), service.clients.clone(), rules, notes)
}
