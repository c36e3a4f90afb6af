//! The traffic model: where new traffic goes, per region.
//!
//! Used by PR previews (each region's expected share of new traffic before
//! and after a change) and by `meridian whatif` (before and during a region
//! outage). The model is deliberately simple and documented
//! (docs/traffic-model.md), so a reviewer can check it by hand:
//!
//! * Global Accelerator listener — clients are assumed evenly spread over the
//!   listener's regions. A serving region's endpoint group admits its traffic
//!   dial's share of its own clients; the rest spills to the other serving
//!   groups in proportion to their dials (and stays if no other group can
//!   take it). A group with no healthy endpoint of non-zero weight serves
//!   nothing: its clients fail over to the nearest serving group (great-circle
//!   distance between region locations; ties split evenly), whatever that
//!   group's dial — Global Accelerator ignores dials when it fails over, so a
//!   standby at dial 0 takes traffic. When no group serves, Global
//!   Accelerator fails open: every group is treated as serving.
//! * GCP backend service — each healthy backend receives traffic in proportion
//!   to its effective capacity: capacity scaler × declared capacity (max rate,
//!   rate per endpoint, connections or utilisation; 1 when none is declared).
//!
//! The model never talks to a cloud and never changes anything: it is a pure
//! function of configuration and health.

use std::collections::BTreeMap;
use std::fmt;

use meridian_provider::{Address, BackendSpec, Resource};
use serde::Serialize;

/// Approximate location (latitude, longitude in degrees) of every AWS and
/// Google Cloud region meridian knows: the metropolitan area the provider
/// names for the region. Good to a few hundred kilometres, which is all
/// "nearest region" needs; it is not a latency map.
pub const REGION_COORDINATES: &[(&str, f64, f64)] = &[
    // AWS
    ("af-south-1", -33.92, 18.42),      // Cape Town
    ("ap-east-1", 22.32, 114.17),       // Hong Kong
    ("ap-east-2", 25.03, 121.57),       // Taipei
    ("ap-northeast-1", 35.68, 139.69),  // Tokyo
    ("ap-northeast-2", 37.57, 126.98),  // Seoul
    ("ap-northeast-3", 34.69, 135.50),  // Osaka
    ("ap-south-1", 19.08, 72.88),       // Mumbai
    ("ap-south-2", 17.39, 78.49),       // Hyderabad
    ("ap-southeast-1", 1.35, 103.82),   // Singapore
    ("ap-southeast-2", -33.87, 151.21), // Sydney
    ("ap-southeast-3", -6.21, 106.85),  // Jakarta
    ("ap-southeast-4", -37.81, 144.96), // Melbourne
    ("ap-southeast-5", 3.15, 101.69),   // Malaysia (Kuala Lumpur)
    ("ap-southeast-6", -36.85, 174.76), // New Zealand (Auckland)
    ("ap-southeast-7", 13.76, 100.50),  // Thailand (Bangkok)
    ("ca-central-1", 45.50, -73.57),    // Montréal
    ("ca-west-1", 51.05, -114.07),      // Calgary
    ("cn-north-1", 39.90, 116.41),      // Beijing
    ("cn-northwest-1", 38.49, 106.23),  // Ningxia
    ("eu-central-1", 50.11, 8.68),      // Frankfurt
    ("eu-central-2", 47.37, 8.54),      // Zurich
    ("eu-north-1", 59.33, 18.07),       // Stockholm
    ("eu-south-1", 45.46, 9.19),        // Milan
    ("eu-south-2", 41.65, -0.88),       // Spain (Aragón)
    ("eu-west-1", 53.35, -6.26),        // Ireland
    ("eu-west-2", 51.51, -0.13),        // London
    ("eu-west-3", 48.86, 2.35),         // Paris
    ("il-central-1", 32.09, 34.78),     // Tel Aviv
    ("me-central-1", 25.20, 55.27),     // UAE
    ("me-south-1", 26.23, 50.59),       // Bahrain
    ("mx-central-1", 20.59, -100.39),   // Mexico (Querétaro)
    ("sa-east-1", -23.55, -46.63),      // São Paulo
    ("us-east-1", 39.04, -77.49),       // N. Virginia
    ("us-east-2", 39.96, -83.00),       // Ohio
    ("us-gov-east-1", 39.96, -83.00),   // GovCloud (US-East), Ohio
    ("us-gov-west-1", 45.60, -121.18),  // GovCloud (US-West), Pacific Northwest
    ("us-west-1", 37.77, -122.42),      // N. California
    ("us-west-2", 45.84, -119.70),      // Oregon
    // Google Cloud
    ("africa-south1", -26.20, 28.05),           // Johannesburg
    ("asia-east1", 24.05, 120.52),              // Changhua County, Taiwan
    ("asia-east2", 22.32, 114.17),              // Hong Kong
    ("asia-northeast1", 35.68, 139.69),         // Tokyo
    ("asia-northeast2", 34.69, 135.50),         // Osaka
    ("asia-northeast3", 37.57, 126.98),         // Seoul
    ("asia-south1", 19.08, 72.88),              // Mumbai
    ("asia-south2", 28.61, 77.21),              // Delhi
    ("asia-southeast1", 1.34, 103.71),          // Jurong West, Singapore
    ("asia-southeast2", -6.21, 106.85),         // Jakarta
    ("australia-southeast1", -33.87, 151.21),   // Sydney
    ("australia-southeast2", -37.81, 144.96),   // Melbourne
    ("europe-central2", 52.23, 21.01),          // Warsaw
    ("europe-north1", 60.57, 27.20),            // Hamina
    ("europe-north2", 59.33, 18.07),            // Stockholm
    ("europe-southwest1", 40.42, -3.70),        // Madrid
    ("europe-west1", 50.45, 3.82),              // St. Ghislain, Belgium
    ("europe-west10", 52.52, 13.40),            // Berlin
    ("europe-west12", 45.07, 7.69),             // Turin
    ("europe-west2", 51.51, -0.13),             // London
    ("europe-west3", 50.11, 8.68),              // Frankfurt
    ("europe-west4", 53.44, 6.83),              // Eemshaven, Netherlands
    ("europe-west6", 47.37, 8.54),              // Zurich
    ("europe-west8", 45.46, 9.19),              // Milan
    ("europe-west9", 48.86, 2.35),              // Paris
    ("me-central1", 25.29, 51.53),              // Doha
    ("me-central2", 26.42, 50.09),              // Dammam
    ("me-west1", 32.09, 34.78),                 // Tel Aviv
    ("northamerica-northeast1", 45.50, -73.57), // Montréal
    ("northamerica-northeast2", 43.65, -79.38), // Toronto
    ("northamerica-south1", 20.59, -100.39),    // Querétaro
    ("southamerica-east1", -23.53, -46.79),     // Osasco (São Paulo)
    ("southamerica-west1", -33.45, -70.67),     // Santiago
    ("us-central1", 41.26, -95.86),             // Council Bluffs, Iowa
    ("us-east1", 33.20, -80.01),                // Moncks Corner, South Carolina
    ("us-east4", 39.04, -77.49),                // Ashburn, Virginia
    ("us-east5", 39.96, -83.00),                // Columbus, Ohio
    ("us-south1", 32.78, -96.80),               // Dallas
    ("us-west1", 45.59, -121.18),               // The Dalles, Oregon
    ("us-west2", 34.05, -118.24),               // Los Angeles
    ("us-west3", 40.76, -111.89),               // Salt Lake City
    ("us-west4", 36.17, -115.14),               // Las Vegas
];

/// The approximate location of a region, `(latitude, longitude)` in degrees.
pub fn coordinates(region: &str) -> Option<(f64, f64)> {
    REGION_COORDINATES
        .iter()
        .find(|(name, _, _)| *name == region)
        .map(|(_, lat, lon)| (*lat, *lon))
}

/// Great-circle distance between two regions' locations in kilometres
/// (haversine on a sphere of radius 6371 km); `None` for an unknown region.
pub fn distance_km(a: &str, b: &str) -> Option<f64> {
    let (lat1, lon1) = coordinates(a)?;
    let (lat2, lon2) = coordinates(b)?;
    let (phi1, phi2) = (lat1.to_radians(), lat2.to_radians());
    let d_phi = (lat2 - lat1).to_radians();
    let d_lambda = (lon2 - lon1).to_radians();
    let h = (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
    Some(2.0 * 6371.0 * h.sqrt().min(1.0).asin())
}

/// Candidates closer than this to the nearest one count as equally near.
const TIE_KM: f64 = 1.0;

/// The candidates nearest to `from`: one region, or several equally near
/// ones. A region without known coordinates counts as infinitely far; when
/// no distance is known at all, every candidate is "nearest".
pub fn nearest<'a>(from: &str, candidates: &[&'a str]) -> Vec<&'a str> {
    let distance = |c: &str| distance_km(from, c).unwrap_or(f64::INFINITY);
    let best = candidates
        .iter()
        .map(|c| distance(c))
        .fold(f64::INFINITY, f64::min);
    candidates
        .iter()
        .copied()
        .filter(|c| {
            let d = distance(c);
            (best.is_infinite() && d.is_infinite()) || d - best <= TIE_KM
        })
        .collect()
}

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

/// Whether a health string counts as healthy (unknown does).
pub fn healthy(health: &Option<String>) -> bool {
    health.as_deref().is_none_or(|h| h != "unhealthy")
}

/// An endpoint group as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupState {
    /// Traffic dial, 0-100.
    pub dial: f64,
    /// Whether at least one endpoint has a non-zero weight and is healthy.
    pub serving: bool,
}

/// How the clients of one region reach the region that serves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// Admitted by their own region's group (its dial's share, or all of it
    /// when no other group can take the rest).
    Own,
    /// Turned away by their own group's dial; spread over the other serving
    /// groups in proportion to their dials.
    Dial,
    /// Their own group serves nothing; failed over to the nearest serving
    /// group, whatever its dial.
    Failover,
}

/// A part of a listener's new traffic: the clients of `from`, served in `to`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flow {
    /// The clients' region (the region whose endpoint group is nearest to them).
    pub from: String,
    /// The region that serves them.
    pub to: String,
    /// Share of the listener's new traffic, 0.0-1.0.
    pub share: f64,
    /// Why it goes there.
    pub route: Route,
}

/// Where a listener's new traffic goes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListenerRouting {
    /// Every non-empty flow, by client region, then route, then target.
    pub flows: Vec<Flow>,
    /// No group serves: Global Accelerator fails open and every group is
    /// treated as serving (traffic reaches unhealthy endpoints).
    pub fail_open: bool,
}

impl ListenerRouting {
    /// Each region's share of the listener's new traffic; every region of
    /// `groups` appears, with 0 when it receives nothing.
    pub fn shares(&self, groups: &BTreeMap<String, GroupState>) -> BTreeMap<String, f64> {
        let mut shares: BTreeMap<String, f64> = groups.keys().map(|r| (r.clone(), 0.0)).collect();
        for flow in &self.flows {
            *shares.entry(flow.to.clone()).or_default() += flow.share;
        }
        shares
    }
}

/// Routes a listener's new traffic over its endpoint groups (by region).
pub fn route_listener(groups: &BTreeMap<String, GroupState>) -> ListenerRouting {
    let mut flows: BTreeMap<(String, Route, String), f64> = BTreeMap::new();
    let fail_open = !groups.is_empty() && !groups.values().any(|g| g.serving);
    let serving = |g: &GroupState| fail_open || g.serving;
    let demand = if groups.is_empty() {
        0.0
    } else {
        1.0 / groups.len() as f64
    };
    let mut add = |from: &str, route: Route, to: &str, share: f64| {
        if share > 0.0 {
            *flows
                .entry((from.to_owned(), route, to.to_owned()))
                .or_default() += share;
        }
    };
    for (region, group) in groups {
        if serving(group) {
            // Turned away by the dial: to the other serving groups, by dial;
            // back to itself if nobody else can take it.
            let admitted = demand * group.dial / 100.0;
            add(region, Route::Own, region, admitted);
            let spill = demand - admitted;
            let others: Vec<(&String, &GroupState)> = groups
                .iter()
                .filter(|(r, g)| *r != region && serving(g) && g.dial > 0.0)
                .collect();
            let total: f64 = others.iter().map(|(_, g)| g.dial).sum();
            if others.is_empty() || total <= 0.0 {
                add(region, Route::Own, region, spill);
            } else {
                for (other, g) in others {
                    add(region, Route::Dial, other, spill * g.dial / total);
                }
            }
        } else {
            // Failover ignores dials: the nearest serving group, even at 0.
            let candidates: Vec<&str> = groups
                .iter()
                .filter(|(r, g)| *r != region && serving(g))
                .map(|(r, _)| r.as_str())
                .collect();
            let nearest = nearest(region, &candidates);
            for target in &nearest {
                add(
                    region,
                    Route::Failover,
                    target,
                    demand / nearest.len() as f64,
                );
            }
        }
    }
    ListenerRouting {
        flows: flows
            .into_iter()
            .map(|((from, route, to), share)| Flow {
                from,
                to,
                share,
                route,
            })
            .collect(),
        fail_open,
    }
}

/// Each region's share of a listener's new traffic.
pub fn listener_shares(groups: &BTreeMap<String, GroupState>) -> BTreeMap<String, f64> {
    route_listener(groups).shares(groups)
}

/// A backend's declared capacity in its balancing mode's unit (max rate,
/// rate per endpoint, connections or utilisation; 1 when none is declared),
/// before the capacity scaler.
pub fn declared_capacity(spec: &BackendSpec) -> f64 {
    spec.max_rate
        .map(f64::from)
        .or(spec.max_rate_per_endpoint)
        .or(spec.max_connections.map(f64::from))
        .or(spec.max_utilization)
        .unwrap_or(1.0)
}

/// Each region's share of a backend service's new traffic, from the
/// regions' effective capacities (0 everywhere when nothing can serve).
pub fn service_shares(capacities: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let total: f64 = capacities.values().sum();
    capacities
        .iter()
        .map(|(r, c)| (r.clone(), if total > 0.0 { c / total } else { 0.0 }))
        .collect()
}

/// A listener or backend service, the unit the model routes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SubjectKey {
    /// A Global Accelerator listener.
    Listener {
        /// Accelerator name.
        accelerator: String,
        /// Listener name.
        listener: String,
    },
    /// A GCP backend service.
    Service {
        /// Backend service name.
        name: String,
    },
}

impl fmt::Display for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectKey::Listener {
                accelerator,
                listener,
            } => write!(f, "GlobalAccelerator[{accelerator}].listener[{listener}]"),
            SubjectKey::Service { name } => write!(f, "BackendService[{name}]"),
        }
    }
}

/// What the model needs of one listener or backend service.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    /// Endpoint groups by region.
    Listener(BTreeMap<String, GroupState>),
    /// Effective capacity by region: the sum over the region's healthy
    /// backends of capacity scaler × declared capacity.
    Service(BTreeMap<String, f64>),
}

impl Subject {
    /// Each region's share of the subject's new traffic.
    pub fn shares(&self) -> BTreeMap<String, f64> {
        match self {
            Subject::Listener(groups) => listener_shares(groups),
            Subject::Service(capacities) => service_shares(capacities),
        }
    }
}

/// Every listener and backend service of `world`, as the model sees them.
pub fn subjects(world: &BTreeMap<Address, TrafficInput>) -> BTreeMap<SubjectKey, Subject> {
    let mut out: BTreeMap<SubjectKey, Subject> = BTreeMap::new();
    for (address, input) in world {
        match (address, &input.resource) {
            (
                Address::Listener {
                    accelerator,
                    listener,
                },
                _,
            ) => {
                out.entry(SubjectKey::Listener {
                    accelerator: accelerator.clone(),
                    listener: listener.clone(),
                })
                .or_insert_with(|| Subject::Listener(BTreeMap::new()));
            }
            (
                Address::EndpointGroup {
                    accelerator,
                    listener,
                    region,
                },
                Resource::EndpointGroup(spec),
            ) => {
                let serving = world.iter().any(|(a, i)| {
                    a.parent().as_ref() == Some(address)
                        && matches!(&i.resource, Resource::Endpoint(e) if e.weight > 0)
                        && healthy(&i.health)
                });
                let subject = out
                    .entry(SubjectKey::Listener {
                        accelerator: accelerator.clone(),
                        listener: listener.clone(),
                    })
                    .or_insert_with(|| Subject::Listener(BTreeMap::new()));
                if let Subject::Listener(groups) = subject {
                    groups.insert(
                        region.clone(),
                        GroupState {
                            dial: f64::from(spec.traffic_dial),
                            serving,
                        },
                    );
                }
            }
            (Address::BackendService { name }, _) => {
                out.entry(SubjectKey::Service { name: name.clone() })
                    .or_insert_with(|| Subject::Service(BTreeMap::new()));
            }
            (Address::Backend { service, .. }, Resource::Backend(spec)) => {
                let effective = if healthy(&input.health) {
                    spec.capacity_scaler * declared_capacity(spec)
                } else {
                    0.0
                };
                let subject = out
                    .entry(SubjectKey::Service {
                        name: service.clone(),
                    })
                    .or_insert_with(|| Subject::Service(BTreeMap::new()));
                if let Subject::Service(capacities) = subject {
                    *capacities.entry(spec.region.clone()).or_default() += effective;
                }
            }
            _ => {}
        }
    }
    out
}

/// Computes the shares of every listener and backend service in `world`.
pub fn shares(world: &BTreeMap<Address, TrafficInput>) -> Vec<Shares> {
    subjects(world)
        .into_iter()
        .map(|(key, subject)| Shares {
            subject: key.to_string(),
            regions: subject.shares(),
        })
        .collect()
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

    fn groups(spec: &[(&str, f64, bool)]) -> BTreeMap<String, GroupState> {
        spec.iter()
            .map(|(r, d, s)| {
                (
                    r.to_string(),
                    GroupState {
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
    fn an_unhealthy_region_fails_over_to_the_nearest_serving_group_ignoring_dials() {
        // us-east-1 serves nothing; its third goes to the nearest serving
        // group, eu-central-1 (about 6,500 km; Singapore is about 15,600 km).
        let shares = listener_shares(&groups(&[
            ("ap-southeast-1", 100.0, true),
            ("eu-central-1", 100.0, true),
            ("us-east-1", 100.0, false),
        ]));
        assert!(close(shares["us-east-1"], 0.0), "{shares:?}");
        assert!(close(shares["eu-central-1"], 2.0 / 3.0), "{shares:?}");
        assert!(close(shares["ap-southeast-1"], 1.0 / 3.0), "{shares:?}");
        // A standby at dial 0 is still the nearest: it takes the whole third.
        let routing = route_listener(&groups(&[
            ("ca-central-1", 0.0, true),
            ("us-east-1", 100.0, false),
            ("us-west-2", 100.0, true),
        ]));
        assert!(
            routing.flows.contains(&Flow {
                from: "us-east-1".into(),
                to: "ca-central-1".into(),
                share: 1.0 / 3.0,
                route: Route::Failover,
            }),
            "{routing:?}"
        );
    }

    #[test]
    fn equally_near_groups_split_a_failover_evenly() {
        // eu-west-2 (London) and europe-west2 share a location in the table;
        // names stand in for any two equally near regions.
        assert_eq!(
            nearest("eu-west-1", &["us-east-1", "eu-west-2", "europe-west2"]),
            vec!["eu-west-2", "europe-west2"]
        );
        assert_eq!(nearest("mars-1", &["a", "b"]), vec!["a", "b"]);
    }

    #[test]
    fn no_healthy_region_fails_open() {
        let routing = route_listener(&groups(&[("eu", 100.0, false), ("us", 100.0, false)]));
        assert!(routing.fail_open);
        let shares = listener_shares(&groups(&[("eu", 100.0, false), ("us", 100.0, false)]));
        assert!(
            close(shares["eu"], 0.5) && close(shares["us"], 0.5),
            "{shares:?}"
        );
    }

    #[test]
    fn distances_are_great_circle_kilometres() {
        let frankfurt_virginia = distance_km("eu-central-1", "us-east-1").expect("known");
        assert!(
            (6_400.0..6_700.0).contains(&frankfurt_virginia),
            "{frankfurt_virginia}"
        );
        assert_eq!(distance_km("us-east-1", "us-east-1"), Some(0.0));
        assert_eq!(distance_km("us-east-1", "mars-1"), None);
    }

    #[test]
    fn every_known_region_has_a_location() {
        for region in crate::model::regions::AWS
            .iter()
            .chain(crate::model::regions::GCP)
        {
            assert!(coordinates(region).is_some(), "{region} has no coordinates");
        }
        assert_eq!(
            REGION_COORDINATES.len(),
            crate::model::regions::AWS.len() + crate::model::regions::GCP.len(),
            "no stale entries"
        );
    }
}
