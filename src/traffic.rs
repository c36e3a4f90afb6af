//! The traffic model: where new traffic goes, per region.
//!
//! Used by PR previews to show each region's expected share of new traffic
//! before and after a change. The model is deliberately simple and
//! documented (docs/traffic-model.md), so a reviewer can check it by hand:
//!
//! * Global Accelerator listener — clients are assumed evenly spread over the
//!   listener's regions. A region's endpoint group admits its traffic dial's
//!   share of its own clients; the rest spills to the other serving groups in
//!   proportion to their dials (and stays if no other group can take it). A group with no healthy endpoint of non-zero
//!   weight serves nothing and its clients spill to the serving groups evenly
//!   (Global Accelerator ignores dials during failover). When no group is
//!   healthy, Global Accelerator fails open: every group is treated as healthy.
//! * GCP backend service — each healthy backend receives traffic in proportion
//!   to its effective capacity: capacity scaler × declared capacity (max rate,
//!   rate per endpoint, connections or utilisation; 1 when none is declared).

use std::collections::BTreeMap;

use meridian_provider::{Address, Resource};
use serde::Serialize;

/// One object's configuration with its health, as the model needs it.
#[derive(Debug, Clone)]
pub struct TrafficInput {
    /// Configuration.
    pub resource: Resource,
    /// `healthy`, `unhealthy`, … ; `None` when unknown (treated as healthy).
    pub health: Option<String>,
}

/// Expected share of new traffic per region for one listener or backend service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shares {
    /// `GlobalAccelerator[api].listener[https]` or `BackendService[app]`.
    pub subject: String,
    /// Region → share, 0.0-1.0; sums to 1 unless nothing serves.
    pub regions: BTreeMap<String, f64>,
}

fn healthy(health: &Option<String>) -> bool {
    health.as_deref().is_none_or(|h| h != "unhealthy")
}

struct Group {
    dial: f64,
    serving: bool,
}

fn listener_shares(groups: &BTreeMap<String, Group>) -> BTreeMap<String, f64> {
    let mut shares: BTreeMap<String, f64> = groups.keys().map(|r| (r.clone(), 0.0)).collect();
    if groups.is_empty() {
        return shares;
    }
    let fail_open = !groups.values().any(|g| g.serving);
    let serving = |g: &Group| fail_open || g.serving;
    let demand = 1.0 / groups.len() as f64;
    for (region, group) in groups {
        // Where this region's clients go that its own group does not take:
        // the other serving groups (by dial when the dial turned them away,
        // evenly when the group is down); back to itself if nobody else can.
        let others: Vec<(&String, &Group)> = groups
            .iter()
            .filter(|(r, g)| *r != region && serving(g) && g.dial > 0.0)
            .collect();
        let (kept, spill) = if serving(group) {
            let admitted = demand * group.dial / 100.0;
            (admitted, demand - admitted)
        } else {
            (0.0, demand)
        };
        *shares.entry(region.clone()).or_default() += kept;
        if others.is_empty() {
            *shares.entry(region.clone()).or_default() += spill;
            continue;
        }
        if serving(group) {
            let total: f64 = others.iter().map(|(_, g)| g.dial).sum();
            for (other, g) in &others {
                *shares.entry((*other).clone()).or_default() += spill * g.dial / total;
            }
        } else {
            for (other, _) in &others {
                *shares.entry((*other).clone()).or_default() += spill / others.len() as f64;
            }
        }
    }
    shares
}

/// Computes the shares of every listener and backend service in `world`.
pub fn shares(world: &BTreeMap<Address, TrafficInput>) -> Vec<Shares> {
    let mut listeners: BTreeMap<String, BTreeMap<String, Group>> = BTreeMap::new();
    let mut services: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for (address, input) in world {
        match (address, &input.resource) {
            (
                Address::Listener {
                    accelerator,
                    listener,
                },
                _,
            ) => {
                listeners
                    .entry(format!(
                        "GlobalAccelerator[{accelerator}].listener[{listener}]"
                    ))
                    .or_default();
            }
            (
                Address::EndpointGroup {
                    accelerator,
                    listener,
                    region,
                },
                Resource::EndpointGroup(spec),
            ) => {
                let subject = format!("GlobalAccelerator[{accelerator}].listener[{listener}]");
                let serving = world.iter().any(|(a, i)| {
                    a.parent().as_ref() == Some(address)
                        && matches!(&i.resource, Resource::Endpoint(e) if e.weight > 0)
                        && healthy(&i.health)
                });
                listeners.entry(subject).or_default().insert(
                    region.clone(),
                    Group {
                        dial: f64::from(spec.traffic_dial),
                        serving,
                    },
                );
            }
            (Address::BackendService { name }, _) => {
                services
                    .entry(format!("BackendService[{name}]"))
                    .or_default();
            }
            (Address::Backend { service, .. }, Resource::Backend(spec)) => {
                let capacity = spec
                    .max_rate
                    .map(f64::from)
                    .or(spec.max_rate_per_endpoint)
                    .or(spec.max_connections.map(f64::from))
                    .or(spec.max_utilization)
                    .unwrap_or(1.0);
                let effective = if healthy(&input.health) {
                    spec.capacity_scaler * capacity
                } else {
                    0.0
                };
                *services
                    .entry(format!("BackendService[{service}]"))
                    .or_default()
                    .entry(spec.region.clone())
                    .or_default() += effective;
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (subject, groups) in listeners {
        out.push(Shares {
            subject,
            regions: listener_shares(&groups),
        });
    }
    for (subject, capacities) in services {
        let total: f64 = capacities.values().sum();
        let regions = capacities
            .into_iter()
            .map(|(r, c)| (r, if total > 0.0 { c / total } else { 0.0 }))
            .collect();
        out.push(Shares { subject, regions });
    }
    out
}

/// One region's share before and after a change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionImpact {
    /// Region.
    pub region: String,
    /// Share now (0.0-1.0), `None` when the region does not serve it now.
    pub before: Option<f64>,
    /// Share after the change.
    pub after: Option<f64>,
}

/// The traffic impact of a change on one listener or backend service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Impact {
    /// The listener or backend service.
    pub subject: String,
    /// Per region, in region order.
    pub regions: Vec<RegionImpact>,
}

impl Impact {
    /// Whether any region's share moves by at least half a percentage point.
    pub fn changed(&self) -> bool {
        self.regions
            .iter()
            .any(|r| (r.before.unwrap_or(0.0) - r.after.unwrap_or(0.0)).abs() >= 0.005)
    }
}

/// Pairs the shares before and after.
pub fn impact(before: &[Shares], after: &[Shares]) -> Vec<Impact> {
    let mut subjects: BTreeMap<&str, (Option<&Shares>, Option<&Shares>)> = BTreeMap::new();
    for s in before {
        subjects.entry(&s.subject).or_default().0 = Some(s);
    }
    for s in after {
        subjects.entry(&s.subject).or_default().1 = Some(s);
    }
    subjects
        .into_iter()
        .map(|(subject, (b, a))| {
            let mut regions: Vec<&String> = b
                .iter()
                .chain(a.iter())
                .flat_map(|s| s.regions.keys())
                .collect();
            regions.sort();
            regions.dedup();
            Impact {
                subject: subject.to_owned(),
                regions: regions
                    .into_iter()
                    .map(|region| RegionImpact {
                        region: region.clone(),
                        before: b.and_then(|s| s.regions.get(region).copied()),
                        after: a.and_then(|s| s.regions.get(region).copied()),
                    })
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(spec: &[(&str, f64, bool)]) -> BTreeMap<String, Group> {
        spec.iter()
            .map(|(r, d, s)| {
                (
                    r.to_string(),
                    Group {
                        dial: *d,
                        serving: *s,
                    },
                )
            })
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn a_half_dial_spills_to_the_other_regions_by_their_dials() {
        // 3 regions, 1/3 of clients each; ap admits half of its third (1/6),
        // the other 1/6 splits evenly between us and eu (dials 100/100).
        let shares = listener_shares(&groups(&[
            ("ap", 50.0, true),
            ("eu", 100.0, true),
            ("us", 100.0, true),
        ]));
        assert!(close(shares["ap"], 1.0 / 6.0), "{shares:?}");
        assert!(close(shares["eu"], 1.0 / 3.0 + 1.0 / 12.0), "{shares:?}");
        assert!(close(shares.values().sum::<f64>(), 1.0));
        // Dials weigh the spill: eu at 20 takes a sixth of what us at 100 takes.
        let shares = listener_shares(&groups(&[
            ("ap", 0.0, true),
            ("eu", 20.0, true),
            ("us", 100.0, true),
        ]));
        assert!(close(shares["ap"], 0.0), "{shares:?}");
        assert!(close(shares.values().sum::<f64>(), 1.0), "{shares:?}");
        assert!(shares["us"] > shares["eu"] * 3.0, "{shares:?}");
    }

    #[test]
    fn an_unhealthy_region_spills_evenly_ignoring_dials() {
        let shares = listener_shares(&groups(&[
            ("ap", 100.0, true),
            ("eu", 100.0, true),
            ("us", 100.0, false),
        ]));
        assert!(close(shares["us"], 0.0));
        assert!(
            close(shares["eu"], 0.5) && close(shares["ap"], 0.5),
            "{shares:?}"
        );
    }

    #[test]
    fn no_healthy_region_fails_open() {
        let shares = listener_shares(&groups(&[("eu", 100.0, false), ("us", 100.0, false)]));
        assert!(
            close(shares["eu"], 0.5) && close(shares["us"], 0.5),
            "{shares:?}"
        );
    }
}
