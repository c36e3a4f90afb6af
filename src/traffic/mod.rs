//! The traffic model: where new traffic goes, per region, and why.
//!
//! Used by PR previews (each region's expected share of new traffic before
//! and after a change), by `meridian whatif` (before and during a region
//! outage), by `meridian failover` (whether a drain is safe) and by the
//! plan-time residency check of client-scoped policies. It follows the
//! clouds' documented routing, rule by rule (`docs/traffic-model.md` quotes
//! the sentence behind each), from a declared or default client population:
//!
//! * [`listener`] — Global Accelerator: proximity, traffic dials, failover
//!   among the three closest groups, fail-open, endpoint weights;
//! * [`service`] — GCP backend services: waterfall by region, the classic
//!   scheme, spray to world, capacity in each balancing mode's own unit;
//! * [`clients`] — where the clients are;
//! * [`rules`] — the rules and assumptions each prediction names.
//!
//! The model never talks to a cloud and never changes anything: it is a pure
//! function of configuration, declarations and health.

pub mod clients;
pub mod listener;
pub mod rules;
pub mod service;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use meridian_provider::regions::parse_backend_group;
use meridian_provider::{Address, BackendSpec, Resource};
use serde::Serialize;

use crate::model::DesiredState;
use crate::model::raw::{LoadBalancingAlgorithm, TrafficKind};

pub use clients::{Clients, Population};
pub use listener::{Endpoint, Group, Listener};
pub use rules::Rule;
pub use service::{Algorithm, Backend, Service};

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

/// The regions of `candidates` from closest to farthest from `from`, ties
/// broken by name. A region without known coordinates counts as infinitely
/// far; when no distance is known, the order is by name.
pub fn by_distance<'a>(from: &str, candidates: &[&'a String]) -> Vec<&'a String> {
    let mut out: Vec<(f64, &String)> = candidates
        .iter()
        .map(|c| (distance_km(from, c).unwrap_or(f64::INFINITY), *c))
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    out.into_iter().map(|(_, c)| c).collect()
}

/// One object's configuration with its health, as the model needs it.
#[derive(Debug, Clone)]
pub struct TrafficInput {
    /// Configuration.
    pub resource: Resource,
    /// `healthy`, `unhealthy`, … ; `None` when unknown (treated as healthy).
    pub health: Option<String>,
}

/// Whether a health string counts as healthy (unknown does).
pub fn healthy(health: &Option<String>) -> bool {
    health.as_deref().is_none_or(|h| h != "unhealthy")
}

/// How a part of the traffic reaches the region that serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// GA-1: kept by the clients' closest endpoint group (its dial's share).
    Proximity,
    /// GA-2: turned away by the dial of `via`, the clients' closest group;
    /// served by the next closest group with a dial above 0.
    Dial,
    /// GA-3: `via`, the clients' closest group, serves nothing; the closest
    /// serving group among their three closest takes them, dial ignored.
    Failover,
    /// GA-4: none of the three closest groups serves; sent to the closest
    /// group's endpoints anyway.
    FailOpen,
    /// turned away by every dial; assumed to stay with the closest
    /// serving group.
    Residual,
    /// GCP-1/2: the clients' closest region with capacity (`via`: their
    /// closest region, when it cannot serve).
    Closest,
    /// GCP-1/2: the closer regions are full; overflow to the next closest.
    Overflow,
    /// GCP-3: sprayed over every backend in proportion to capacity.
    Spray,
    /// above every region's capacity; spread in proportion to capacity.
    Excess,
}

impl Route {
    /// The rule a route follows by default (GCP routes take the service's).
    pub fn default_rule(self) -> Rule {
        match self {
            Route::Proximity => Rule::GaProximity,
            Route::Dial => Rule::GaDial,
            Route::Failover => Rule::GaFailover,
            Route::FailOpen => Rule::GaFailOpen,
            Route::Residual => Rule::AssumeResidual,
            Route::Closest | Route::Overflow => Rule::GcpWaterfall,
            Route::Spray => Rule::GcpSpray,
            Route::Excess => Rule::AssumeExcess,
        }
    }

    /// Whether this traffic left the place it would normally be served
    /// because something could not serve it (failover, overflow, fail-open).
    pub fn moved(self) -> bool {
        matches!(
            self,
            Route::Failover | Route::FailOpen | Route::Overflow | Route::Excess
        )
    }
}

/// A part of the new traffic: the clients at `from`, served in `to`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flow {
    /// The clients' location.
    pub from: String,
    /// The region that serves them.
    pub to: String,
    /// Share of the subject's new traffic, 0.0-1.0.
    pub share: f64,
    /// How it gets there.
    pub route: Route,
    /// The region the clients reached first and that sent them on, if any.
    pub via: Option<String>,
    /// The rule that sends it there.
    pub rule: Rule,
}

/// What makes two flows the same: clients, route, target, `via`.
type FlowKey = (String, Route, String, Option<String>);

/// Sums flows with the same clients, target, route and `via`.
pub(crate) fn merge_flows(flows: Vec<Flow>) -> Vec<Flow> {
    let mut merged: BTreeMap<FlowKey, (f64, Rule)> = BTreeMap::new();
    for f in flows {
        merged
            .entry((f.from, f.route, f.to, f.via))
            .or_insert((0.0, f.rule))
            .0 += f.share;
    }
    merged
        .into_iter()
        .map(|((from, route, to, via), (share, rule))| Flow {
            from,
            to,
            share,
            route,
            via,
            rule,
        })
        .collect()
}

/// Where one listener's or service's new traffic goes, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Routing {
    /// Every non-empty flow, by client location, route, target.
    pub flows: Vec<Flow>,
    /// The clients the prediction starts from.
    pub clients: Clients,
    /// The rules and assumptions it rests on, in order.
    pub rules: Vec<Rule>,
    /// Details of the assumptions (which backend's capacity is unknown, …).
    pub notes: Vec<String>,
}

impl Routing {
    pub(crate) fn new(
        flows: Vec<Flow>,
        clients: Clients,
        rules: std::collections::BTreeSet<Rule>,
        notes: Vec<String>,
    ) -> Routing {
        Routing {
            flows,
            clients,
            rules: rules.into_iter().collect(),
            notes,
        }
    }

    /// Each region's share; every region of `regions` appears.
    pub fn shares<'a>(
        &self,
        regions: impl IntoIterator<Item = &'a String>,
    ) -> BTreeMap<String, f64> {
        let mut shares: BTreeMap<String, f64> =
            regions.into_iter().map(|r| (r.clone(), 0.0)).collect();
        for flow in &self.flows {
            *shares.entry(flow.to.clone()).or_default() += flow.share;
        }
        shares
    }

    /// Share of the traffic that fails open (GA-4): sent to endpoints that
    /// cannot serve it.
    pub fn fail_open_share(&self) -> f64 {
        self.flows
            .iter()
            .filter(|f| f.route == Route::FailOpen)
            .map(|f| f.share)
            .sum::<f64>()
            + 0.0
    }

    /// `GA-1 closest endpoint group; GA-2 …`.
    pub fn rule_labels(&self) -> Vec<String> {
        self.rules.iter().map(|r| r.label()).collect()
    }
}

/// Expected share of new traffic per region for one listener or backend service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shares {
    /// `GlobalAccelerator[api].listener[https]` or `BackendService[app]`.
    pub subject: String,
    /// Region → share, 0.0-1.0; sums to 1 unless nothing serves.
    pub regions: BTreeMap<String, f64>,
    /// The rules the prediction rests on (serialised as `GA-1`, …).
    pub rules: Vec<Rule>,
    /// The clients it starts from, for humans.
    pub clients: String,
    /// Details of the assumptions.
    pub notes: Vec<String>,
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
    /// A Global Accelerator listener.
    Listener(Listener),
    /// A GCP backend service.
    Service(Service),
}

impl Subject {
    /// Routes the subject's new traffic.
    pub fn route(&self) -> Routing {
        match self {
            Subject::Listener(l) => listener::route(l),
            Subject::Service(s) => service::route(s),
        }
    }

    /// Every region the subject has a group or backend in.
    pub fn regions(&self) -> BTreeSet<String> {
        match self {
            Subject::Listener(l) => l.groups.keys().cloned().collect(),
            Subject::Service(s) => s.regions(),
        }
    }

    /// Each region's share of the subject's new traffic.
    pub fn shares(&self) -> BTreeMap<String, f64> {
        self.route().shares(&self.regions())
    }

    /// Regions that serve by design (see [`listener::serving_regions`];
    /// for a service, regions with a backend that can serve).
    pub fn serving_regions(&self) -> Vec<String> {
        match self {
            Subject::Listener(l) => listener::serving_regions(l, &listener::route(l)),
            Subject::Service(s) => s.serving_regions(),
        }
    }

    /// The clients the subject's routing starts from.
    pub fn clients(&self) -> &Clients {
        match self {
            Subject::Listener(l) => &l.clients,
            Subject::Service(s) => &s.clients,
        }
    }

    fn clients_mut(&mut self) -> &mut Clients {
        match self {
            Subject::Listener(l) => &mut l.clients,
            Subject::Service(s) => &mut s.clients,
        }
    }

    /// Declared expected peak requests per second.
    pub fn expected_rps(&self) -> Option<f64> {
        match self {
            Subject::Listener(l) => l.expected_rps,
            Subject::Service(s) => s.expected_rps,
        }
    }
}

/// What the desired state declares about one subject for the model alone
/// (meridian's own fields, never sent to a cloud).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Declared {
    /// `clients`, normalised, with where they were declared.
    pub clients: Option<Clients>,
    /// `expectedRps`.
    pub expected_rps: Option<f64>,
    /// Endpoint groups' `capacityRps` by region.
    pub group_capacity: BTreeMap<String, f64>,
    /// The service load-balancing policy's algorithm.
    pub algorithm: Option<LoadBalancingAlgorithm>,
    /// Backends' `endpointCount` and `capacityRps`, by group path.
    pub backends: BTreeMap<String, (Option<u32>, Option<u32>)>,
}

/// Declarations of every listener and backend service of a desired state.
pub type Declarations = BTreeMap<SubjectKey, Declared>;

/// The first `ClientPopulation`, in name order, whose selector selects the
/// document — the same rule that picks a document's traffic policy.
fn shared_clients(
    state: &DesiredState,
    kind: TrafficKind,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Option<Clients> {
    let mut populations: Vec<_> = state.client_populations.iter().collect();
    populations.sort_by(|a, b| a.name().cmp(b.name()));
    populations
        .into_iter()
        .find(|p| p.doc.spec.selector.selects(kind, name, labels))
        .map(|p| {
            Clients::declared(
                &p.doc.spec.clients,
                format!("ClientPopulation/{} spec.clients", p.name()),
            )
        })
}

/// Reads the model's declarations from the desired state. A listener's
/// clients are its own `clients`, else its accelerator's, else those of the
/// first `ClientPopulation` that selects the accelerator; a service's, its
/// own, else a `ClientPopulation`'s.
pub fn declarations(state: &DesiredState) -> Declarations {
    let mut out = Declarations::new();
    for ga in &state.accelerators {
        let spec = &ga.doc.spec;
        for (li, listener) in spec.listeners.iter().enumerate() {
            let clients = match (&listener.clients, &spec.clients) {
                (Some(c), _) => Some(Clients::declared(
                    c,
                    format!(
                        "GlobalAccelerator/{} spec.listeners[{li}].clients",
                        ga.name()
                    ),
                )),
                (None, Some(c)) => Some(Clients::declared(
                    c,
                    format!("GlobalAccelerator/{} spec.clients", ga.name()),
                )),
                (None, None) => shared_clients(
                    state,
                    TrafficKind::GlobalAccelerator,
                    ga.name(),
                    &ga.doc.metadata.labels,
                ),
            };
            out.insert(
                SubjectKey::Listener {
                    accelerator: ga.name().to_owned(),
                    listener: listener.name.clone(),
                },
                Declared {
                    clients,
                    expected_rps: listener.expected_rps.map(f64::from),
                    group_capacity: listener
                        .endpoint_groups
                        .iter()
                        .filter_map(|g| g.capacity_rps.map(|c| (g.region.clone(), f64::from(c))))
                        .collect(),
                    ..Declared::default()
                },
            );
        }
    }
    for bs in &state.backend_services {
        let spec = &bs.doc.spec;
        out.insert(
            SubjectKey::Service {
                name: bs.name().to_owned(),
            },
            Declared {
                clients: spec
                    .clients
                    .as_ref()
                    .map(|c| {
                        Clients::declared(c, format!("BackendService/{} spec.clients", bs.name()))
                    })
                    .or_else(|| {
                        shared_clients(
                            state,
                            TrafficKind::BackendService,
                            bs.name(),
                            &bs.doc.metadata.labels,
                        )
                    }),
                expected_rps: spec.expected_rps.map(f64::from),
                algorithm: spec.load_balancing_algorithm,
                backends: spec
                    .backends
                    .iter()
                    .map(|b| {
                        let path = parse_backend_group(&b.group)
                            .map(|g| g.path)
                            .unwrap_or_else(|_| b.group.clone());
                        (path, (b.endpoint_count, b.capacity_rps))
                    })
                    .collect(),
                ..Declared::default()
            },
        );
    }
    out
}

/// A backend's target capacity in requests per second at capacity scaler
/// 1, from its own balancing mode, or why it is not known.
pub fn backend_capacity(
    spec: &BackendSpec,
    declared: Option<&(Option<u32>, Option<u32>)>,
) -> Result<f64, String> {
    let (count, capacity) = declared.copied().unwrap_or((None, None));
    match spec.balancing_mode.as_str() {
        "RATE" => match (spec.max_rate, spec.max_rate_per_endpoint, count) {
            (Some(rate), _, _) => Ok(f64::from(rate)),
            (None, Some(per), Some(n)) => Ok(per * f64::from(n)),
            (None, Some(per), None) => Err(format!(
                "RATE at maxRatePerEndpoint {per} without `endpointCount`: the group's capacity is unknown"
            )),
            (None, None, _) => Err("RATE without a rate: capacity unknown".to_owned()),
        },
        "UTILIZATION" => {
            // The group is full when it reaches any of its targets: the
            // declared capacity at its utilisation target, and the optional
            // rate targets Google allows beside it.
            let targets = [
                capacity.map(|c| {
                    f64::from(c) * spec.max_utilization.unwrap_or(DEFAULT_MAX_UTILIZATION)
                }),
                spec.max_rate.map(f64::from),
                spec.max_rate_per_endpoint
                    .zip(count)
                    .map(|(per, n)| per * f64::from(n)),
            ];
            targets
                .into_iter()
                .flatten()
                .reduce(f64::min)
                .ok_or_else(|| {
                    "UTILIZATION without `capacityRps` (or a rate target): its capacity in requests per second is unknown"
                        .to_owned()
                })
        }
        "CONNECTION" => match capacity {
            Some(c) => Ok(f64::from(c)),
            None => Err(format!(
                "CONNECTION: its capacity is {} connections, not requests per second; declare `capacityRps` to compare",
                spec.max_connections
                    .map_or("undeclared".to_owned(), |c| c.to_string())
            )),
        },
        other => Err(format!("balancing mode {other}: capacity unknown")),
    }
}

/// The target utilisation when `maxUtilization` is not set: the value the
/// Google Cloud console sets for UTILIZATION backends.
pub const DEFAULT_MAX_UTILIZATION: f64 = 0.8;

/// Every listener and backend service of `world`, as the model sees them,
/// with the desired state's declarations. Clients left undeclared take the
/// default: equal shares at each region the subject uses.
pub fn subjects(
    world: &BTreeMap<Address, TrafficInput>,
    declared: &Declarations,
) -> BTreeMap<SubjectKey, Subject> {
    let none = Declared::default();
    let mut out: BTreeMap<SubjectKey, Subject> = BTreeMap::new();
    let empty_clients = || Clients::equal_at(std::iter::empty());
    let listener_entry = |out: &mut BTreeMap<SubjectKey, Subject>, key: SubjectKey| {
        let d = declared.get(&key).unwrap_or(&none);
        let expected = d.expected_rps;
        out.entry(key).or_insert_with(|| {
            Subject::Listener(Listener {
                groups: BTreeMap::new(),
                clients: empty_clients(),
                expected_rps: expected,
            })
        });
    };
    // Groups and services first, then their children.
    for (address, input) in world {
        match (address, &input.resource) {
            (
                Address::Listener {
                    accelerator,
                    listener,
                },
                _,
            ) => listener_entry(
                &mut out,
                SubjectKey::Listener {
                    accelerator: accelerator.clone(),
                    listener: listener.clone(),
                },
            ),
            (
                Address::EndpointGroup {
                    accelerator,
                    listener,
                    region,
                },
                Resource::EndpointGroup(spec),
            ) => {
                let key = SubjectKey::Listener {
                    accelerator: accelerator.clone(),
                    listener: listener.clone(),
                };
                let capacity = declared
                    .get(&key)
                    .and_then(|d| d.group_capacity.get(region).copied());
                listener_entry(&mut out, key.clone());
                if let Some(Subject::Listener(l)) = out.get_mut(&key) {
                    l.groups.insert(
                        region.clone(),
                        Group {
                            dial: f64::from(spec.traffic_dial),
                            endpoints: Vec::new(),
                            capacity_rps: capacity,
                        },
                    );
                }
            }
            (Address::BackendService { name }, Resource::BackendService(spec)) => {
                let key = SubjectKey::Service { name: name.clone() };
                let d = declared.get(&key).unwrap_or(&none);
                out.insert(
                    key,
                    Subject::Service(Service {
                        algorithm: Algorithm::of(&spec.load_balancing_scheme, d.algorithm),
                        backends: Vec::new(),
                        expected_rps: d.expected_rps,
                        clients: empty_clients(),
                    }),
                );
            }
            _ => {}
        }
    }
    for (address, input) in world {
        match (address, &input.resource) {
            (
                Address::Endpoint {
                    accelerator,
                    listener,
                    region,
                    ..
                },
                Resource::Endpoint(spec),
            ) => {
                let key = SubjectKey::Listener {
                    accelerator: accelerator.clone(),
                    listener: listener.clone(),
                };
                if let Some(Subject::Listener(l)) = out.get_mut(&key)
                    && let Some(group) = l.groups.get_mut(region)
                {
                    group.endpoints.push(Endpoint {
                        id: spec.id.clone(),
                        weight: spec.weight,
                        healthy: healthy(&input.health),
                    });
                }
            }
            (Address::Backend { service, group }, Resource::Backend(spec)) => {
                let key = SubjectKey::Service {
                    name: service.clone(),
                };
                let capacity =
                    backend_capacity(spec, declared.get(&key).and_then(|d| d.backends.get(group)));
                if let Some(Subject::Service(s)) = out.get_mut(&key) {
                    s.backends.push(Backend {
                        group: spec.group.clone(),
                        region: spec.region.clone(),
                        healthy: healthy(&input.health),
                        scaler: spec.capacity_scaler,
                        mode: spec.balancing_mode.clone(),
                        capacity_rps: capacity.as_ref().ok().copied(),
                        unknown_because: capacity.err(),
                    });
                }
            }
            _ => {}
        }
    }
    for (key, subject) in &mut out {
        let regions = subject.regions();
        *subject.clients_mut() = match declared.get(key).and_then(|d| d.clients.clone()) {
            Some(clients) => clients,
            None => Clients::equal_at(&regions),
        };
    }
    out
}

/// Gives the subjects of two worlds that are compared (now and after a
/// change, before and during an outage) the same default clients: equal
/// shares at each region either uses. Clients do not move when a region is
/// added; only the prediction of where they are served does.
pub fn align_default_clients(
    a: &mut BTreeMap<SubjectKey, Subject>,
    b: &mut BTreeMap<SubjectKey, Subject>,
) {
    for (key, sa) in a.iter_mut() {
        let Some(sb) = b.get_mut(key) else {
            continue;
        };
        if sa.clients().is_default() && sb.clients().is_default() {
            let mut regions = sa.regions();
            regions.extend(sb.regions());
            let clients = Clients::equal_at(&regions);
            *sa.clients_mut() = clients.clone();
            *sb.clients_mut() = clients;
        }
    }
}

fn shares_of(key: &SubjectKey, subject: &Subject) -> Shares {
    let routing = subject.route();
    Shares {
        subject: key.to_string(),
        regions: routing.shares(&subject.regions()),
        rules: routing.rules.clone(),
        clients: routing.clients.describe(),
        notes: routing.notes.clone(),
    }
}

/// The shares of every listener and backend service of two compared
/// worlds, with aligned default clients.
pub fn compare(
    before: &BTreeMap<Address, TrafficInput>,
    after: &BTreeMap<Address, TrafficInput>,
    declared: &Declarations,
) -> Vec<Impact> {
    let mut a = subjects(before, declared);
    let mut b = subjects(after, declared);
    align_default_clients(&mut a, &mut b);
    let before: Vec<Shares> = a.iter().map(|(k, s)| shares_of(k, s)).collect();
    let after: Vec<Shares> = b.iter().map(|(k, s)| shares_of(k, s)).collect();
    impact(&before, &after)
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
    /// The rules the predictions now and after the change rest on
    /// (serialised as `GA-1`, …).
    pub rules: Vec<Rule>,
    /// The clients it starts from.
    pub clients: String,
    /// Details of the assumptions.
    pub notes: Vec<String>,
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
            let basis = a.or(b);
            let mut rules: Vec<Rule> = b
                .iter()
                .chain(a.iter())
                .flat_map(|s| s.rules.iter().copied())
                .collect();
            rules.sort();
            rules.dedup();
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
                rules,
                clients: basis.map(|s| s.clients.clone()).unwrap_or_default(),
                notes: basis.map(|s| s.notes.clone()).unwrap_or_default(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn clients(shares: &[(&str, f64)]) -> Clients {
        Clients::declared(
            &shares.iter().map(|(r, s)| (r.to_string(), *s)).collect(),
            "test".to_owned(),
        )
    }

    /// Groups `(region, dial, healthy)` with one endpoint of weight 128 each.
    fn listener(groups: &[(&str, f64, bool)], clients: Clients) -> Listener {
        Listener {
            groups: groups
                .iter()
                .map(|(r, dial, healthy)| {
                    (
                        r.to_string(),
                        Group {
                            dial: *dial,
                            endpoints: vec![Endpoint {
                                id: format!("ep-{r}"),
                                weight: 128,
                                healthy: *healthy,
                            }],
                            capacity_rps: None,
                        },
                    )
                })
                .collect(),
            clients,
            expected_rps: None,
        }
    }

    fn shares(l: &Listener) -> BTreeMap<String, f64> {
        listener::route(l).shares(l.groups.keys())
    }

    fn flow_share(routing: &Routing, from: &str, to: &str) -> f64 {
        routing
            .flows
            .iter()
            .filter(|f| f.from == from && f.to == to)
            .map(|f| f.share)
            .sum()
    }

    #[test]
    fn aws_two_region_dial_example_is_reproduced() {
        // The traffic-dial page: us-west-2 and us-east-1 both at dial 50,
        // 100 requests, 50 from each coast. "The first 25 requests on each
        // coast … are served from their nearby endpoint group"; "the next 25
        // requests from the East Coast are served by us-west-2, and the next
        // 25 requests from the West Coast are served by us-east-1."
        let l = listener(
            &[("us-east-1", 50.0, true), ("us-west-2", 50.0, true)],
            clients(&[("us-east-1", 50.0), ("us-west-2", 50.0)]),
        );
        let routing = listener::route(&l);
        assert!(close(flow_share(&routing, "us-east-1", "us-east-1"), 0.25));
        assert!(close(flow_share(&routing, "us-east-1", "us-west-2"), 0.25));
        assert!(close(flow_share(&routing, "us-west-2", "us-west-2"), 0.25));
        assert!(close(flow_share(&routing, "us-west-2", "us-east-1"), 0.25));
        // "both endpoint groups serve the same amount of traffic"
        let s = shares(&l);
        assert!(
            close(s["us-east-1"], 0.5) && close(s["us-west-2"], 0.5),
            "{s:?}"
        );
        assert!(
            !routing.rules.contains(&Rule::AssumeResidual),
            "{routing:?}"
        );
    }

    #[test]
    fn the_workshops_dial_of_20_sends_80_percent_to_the_next_closest_region() {
        // Workshop lab 3: eu-west-1 dialled to 20; requests from Paris: 20%
        // to eu-west-1 and 80% "in the next closest available region,
        // US-WEST-2 (Oregon)". Paris–Ireland ≈ 780 km, Paris–Oregon ≈ 8,100
        // km, Paris–Tokyo ≈ 9,700 km.
        let l = listener(
            &[
                ("ap-northeast-1", 100.0, true),
                ("eu-west-1", 20.0, true),
                ("us-west-2", 100.0, true),
            ],
            clients(&[("eu-west-3", 1.0)]),
        );
        let s = shares(&l);
        assert!(close(s["eu-west-1"], 0.2), "{s:?}");
        assert!(close(s["us-west-2"], 0.8), "{s:?}");
        assert!(close(s["ap-northeast-1"], 0.0), "{s:?}");
    }

    #[test]
    fn the_examples_api_listener_splits_by_proximity() {
        // Clients equal at the three regions. ap-southeast-1 keeps 50% of its
        // third (1/6); the other 1/6 goes to the next closest group from
        // Singapore: Frankfurt (≈ 10,300 km) before N. Virginia (≈ 15,500
        // km). eu = 1/3 + 1/6 = 50%, us = 1/3.
        let l = listener(
            &[
                ("ap-southeast-1", 50.0, true),
                ("eu-central-1", 100.0, true),
                ("us-east-1", 100.0, true),
            ],
            clients(&[
                ("ap-southeast-1", 1.0),
                ("eu-central-1", 1.0),
                ("us-east-1", 1.0),
            ]),
        );
        let s = shares(&l);
        assert!(close(s["ap-southeast-1"], 1.0 / 6.0), "{s:?}");
        assert!(close(s["eu-central-1"], 0.5), "{s:?}");
        assert!(close(s["us-east-1"], 1.0 / 3.0), "{s:?}");
    }

    #[test]
    fn failover_ignores_dials_and_wakes_a_standby_at_zero() {
        // us-east-1 serves nothing; its clients' three closest groups are
        // us-east-1, ca-central-1 (≈ 790 km) and us-west-2 (≈ 3,500 km):
        // the standby at dial 0 takes them all.
        let l = listener(
            &[
                ("ca-central-1", 0.0, true),
                ("us-east-1", 100.0, false),
                ("us-west-2", 100.0, true),
            ],
            clients(&[("us-east-1", 1.0), ("us-west-2", 1.0)]),
        );
        let routing = listener::route(&l);
        assert!(
            routing.flows.contains(&Flow {
                from: "us-east-1".into(),
                to: "ca-central-1".into(),
                share: 0.5,
                route: Route::Failover,
                via: Some("us-east-1".into()),
                rule: Rule::GaFailover,
            }),
            "{routing:?}"
        );
        assert_eq!(
            listener::serving_regions(&l, &routing),
            vec!["ca-central-1", "us-west-2"]
        );
    }

    #[test]
    fn with_none_of_the_three_closest_serving_the_clients_fail_open() {
        // Clients in Ireland; groups in Ireland, London, Paris and Frankfurt
        // are down, N. Virginia serves. The three closest are eu-west-1,
        // eu-west-2 and eu-west-3: none serves, so Global Accelerator fails
        // open to eu-west-1 rather than sending them to us-east-1.
        let l = listener(
            &[
                ("eu-central-1", 100.0, false),
                ("eu-west-1", 100.0, false),
                ("eu-west-2", 100.0, false),
                ("eu-west-3", 100.0, false),
                ("us-east-1", 100.0, true),
            ],
            clients(&[("eu-west-1", 60.0), ("us-east-1", 40.0)]),
        );
        let routing = listener::route(&l);
        assert!(close(routing.fail_open_share(), 0.6), "{routing:?}");
        assert!(close(flow_share(&routing, "eu-west-1", "eu-west-1"), 0.6));
        assert!(close(flow_share(&routing, "eu-west-1", "us-east-1"), 0.0));
        assert!(routing.rules.contains(&Rule::GaFailOpen));
        // Fail-open traffic does not make a region serving.
        assert_eq!(listener::serving_regions(&l, &routing), vec!["us-east-1"]);
        // With a fourth European group healthy among the three closest, it
        // is failover instead.
        let mut l = l;
        l.groups.get_mut("eu-west-2").expect("group").endpoints[0].healthy = true;
        let routing = listener::route(&l);
        assert!(close(routing.fail_open_share(), 0.0));
        assert!(close(flow_share(&routing, "eu-west-1", "eu-west-2"), 0.6));
    }

    #[test]
    fn a_dial_spill_to_a_group_that_cannot_serve_fails_over_from_the_clients() {
        // us-east-1 drained (dial 0) but healthy; its clients' original group
        // by dial is the next closest with a dial above 0, Frankfurt, which
        // is down. Failover then looks at the clients' three closest —
        // us-east-1, eu-central-1, ap-southeast-1 — dials ignored: the
        // drained us-east-1 takes them back, not Singapore.
        let l = listener(
            &[
                ("ap-southeast-1", 100.0, true),
                ("eu-central-1", 100.0, false),
                ("us-east-1", 0.0, true),
            ],
            clients(&[("us-east-1", 1.0)]),
        );
        let routing = listener::route(&l);
        assert_eq!(
            routing.flows,
            vec![Flow {
                from: "us-east-1".into(),
                to: "us-east-1".into(),
                share: 1.0,
                route: Route::Failover,
                via: Some("eu-central-1".into()),
                rule: Rule::GaFailover,
            }]
        );
        // Woken by failover, the drained group counts as serving.
        assert_eq!(
            listener::serving_regions(&l, &routing),
            vec!["ap-southeast-1", "us-east-1"]
        );
    }

    #[test]
    fn traffic_every_dial_turns_away_stays_with_the_closest_group_as_assumed() {
        let l = listener(
            &[("eu-central-1", 0.0, true), ("us-east-1", 0.0, true)],
            clients(&[("eu-central-1", 1.0)]),
        );
        let routing = listener::route(&l);
        assert!(close(
            flow_share(&routing, "eu-central-1", "eu-central-1"),
            1.0
        ));
        assert!(routing.rules.contains(&Rule::AssumeResidual));
        assert!(listener::serving_regions(&l, &routing).is_empty());
    }

    #[test]
    fn endpoint_weights_split_a_groups_share() {
        // One group, weights 200 and 56 (the healthy ones) and one unhealthy.
        let mut l = listener(
            &[("eu-central-1", 100.0, true)],
            clients(&[("eu-central-1", 1.0)]),
        );
        let group = l.groups.get_mut("eu-central-1").expect("group");
        group.endpoints = vec![
            Endpoint {
                id: "a".into(),
                weight: 200,
                healthy: true,
            },
            Endpoint {
                id: "b".into(),
                weight: 56,
                healthy: true,
            },
            Endpoint {
                id: "c".into(),
                weight: 100,
                healthy: false,
            },
        ];
        let routing = listener::route(&l);
        let endpoints = listener::endpoint_shares(&l, &routing);
        let share = |id: &str| endpoints.iter().find(|e| e.id == id).map(|e| e.share);
        assert_eq!(share("a"), Some(200.0 / 256.0));
        assert_eq!(share("b"), Some(56.0 / 256.0));
        assert_eq!(share("c"), Some(0.0));
        assert!(routing.rules.contains(&Rule::GaWeights));
    }

    #[test]
    fn adding_a_region_moves_only_the_clients_nearer_to_it() {
        // Clients 40% N. Virginia, 35% Frankfurt, 25% Singapore; groups in
        // us-east-1 and eu-central-1 serve everyone (Singapore's clients go to
        // Frankfurt, ≈ 10,300 km). Adding ap-southeast-1 moves only them.
        let people = clients(&[
            ("ap-southeast-1", 25.0),
            ("eu-central-1", 35.0),
            ("us-east-1", 40.0),
        ]);
        let two = listener(
            &[("eu-central-1", 100.0, true), ("us-east-1", 100.0, true)],
            people.clone(),
        );
        let three = listener(
            &[
                ("ap-southeast-1", 100.0, true),
                ("eu-central-1", 100.0, true),
                ("us-east-1", 100.0, true),
            ],
            people,
        );
        let before = listener::route(&two);
        let after = listener::route(&three);
        for location in ["us-east-1", "eu-central-1"] {
            let served = |r: &Routing| {
                r.flows
                    .iter()
                    .filter(|f| f.from == location)
                    .map(|f| (f.to.clone(), f.share))
                    .collect::<Vec<_>>()
            };
            assert_eq!(served(&before), served(&after), "{location}");
        }
        assert!(close(
            flow_share(&before, "ap-southeast-1", "eu-central-1"),
            0.25
        ));
        assert!(close(
            flow_share(&after, "ap-southeast-1", "ap-southeast-1"),
            0.25
        ));
        let s = shares(&three);
        assert!(
            close(s["us-east-1"], 0.40) && close(s["eu-central-1"], 0.35),
            "{s:?}"
        );
    }

    fn service(
        algorithm: Algorithm,
        backends: &[(&str, Option<f64>, f64, bool)],
        expected: Option<f64>,
    ) -> Service {
        let backends: Vec<Backend> = backends
            .iter()
            .map(|(region, capacity, scaler, healthy)| Backend {
                group: format!("regions/{region}/networkEndpointGroups/app"),
                region: region.to_string(),
                healthy: *healthy,
                scaler: *scaler,
                mode: "RATE".into(),
                capacity_rps: *capacity,
                unknown_because: capacity.is_none().then(|| "unknown".to_owned()),
            })
            .collect();
        let regions: Vec<String> = backends.iter().map(|b| b.region.clone()).collect();
        Service {
            algorithm,
            backends,
            expected_rps: expected,
            clients: Clients::equal_at(&regions),
        }
    }

    fn service_shares(s: &Service) -> BTreeMap<String, f64> {
        service::route(s).shares(&s.regions())
    }

    const WATERFALL: Algorithm = Algorithm::Policy(LoadBalancingAlgorithm::WaterfallByRegion);

    #[test]
    fn under_capacity_a_waterfall_keeps_each_region_s_clients_at_home() {
        // Three regions, clients equal, 300 rps against 1,000 rps each (one
        // at scaler 0.5 = 500): nobody is full, so each region serves its own
        // third, whatever the capacities.
        let s = service(
            WATERFALL,
            &[
                ("asia-southeast1", Some(1000.0), 0.5, true),
                ("europe-west1", Some(1000.0), 1.0, true),
                ("us-east1", Some(1000.0), 1.0, true),
            ],
            Some(300.0),
        );
        let shares = service_shares(&s);
        for r in ["asia-southeast1", "europe-west1", "us-east1"] {
            assert!(close(shares[r], 1.0 / 3.0), "{shares:?}");
        }
        // Without expectedRps the same, stated as an assumption.
        let s = service(
            WATERFALL,
            &[
                ("europe-west1", None, 1.0, true),
                ("us-east1", None, 1.0, true),
            ],
            None,
        );
        let routing = service::route(&s);
        assert!(routing.rules.contains(&Rule::AssumeUnderCapacity));
        assert!(close(routing.shares(&s.regions())["us-east1"], 0.5));
    }

    #[test]
    fn over_capacity_a_waterfall_overflows_to_the_next_closest_region() {
        // 3,000 rps, clients equal (1,000 each). us-east1 holds 400 (800 ×
        // scaler 0.5): its clients' other 600 overflow to the next closest
        // region from South Carolina, europe-west1 (≈ 6,800 km) before
        // asia-southeast1 (≈ 16,200 km); europe-west1 has 5,000 of room.
        let s = service(
            WATERFALL,
            &[
                ("asia-southeast1", Some(5000.0), 1.0, true),
                ("europe-west1", Some(5000.0), 1.0, true),
                ("us-east1", Some(800.0), 0.5, true),
            ],
            Some(3000.0),
        );
        let routing = service::route(&s);
        let shares = routing.shares(&s.regions());
        assert!(close(shares["us-east1"], 400.0 / 3000.0), "{shares:?}");
        assert!(close(shares["europe-west1"], 1600.0 / 3000.0), "{shares:?}");
        assert!(
            close(shares["asia-southeast1"], 1000.0 / 3000.0),
            "{shares:?}"
        );
        assert!(routing.flows.iter().any(|f| f.route == Route::Overflow
            && f.from == "us-east1"
            && f.to == "europe-west1"
            && close(f.share, 600.0 / 3000.0)));
        // The classic scheme routes the same way, under its own rule.
        let mut classic = s.clone();
        classic.algorithm = Algorithm::Classic;
        let routing = service::route(&classic);
        assert_eq!(routing.shares(&classic.regions()), shares);
        assert!(routing.rules.contains(&Rule::GcpClassic));
    }

    #[test]
    fn above_every_capacity_each_region_runs_equally_over() {
        // 3,000 rps against 1,000 + 500 of capacity: after filling both, the
        // remaining 1,500 spreads 2:1, so both run at 200% of target.
        let s = service(
            WATERFALL,
            &[
                ("europe-west1", Some(1000.0), 1.0, true),
                ("us-east1", Some(500.0), 1.0, true),
            ],
            Some(3000.0),
        );
        let routing = service::route(&s);
        let shares = routing.shares(&s.regions());
        assert!(close(shares["europe-west1"], 2.0 / 3.0), "{shares:?}");
        assert!(close(shares["us-east1"], 1.0 / 3.0), "{shares:?}");
        assert!(routing.rules.contains(&Rule::AssumeExcess));
    }

    #[test]
    fn spray_to_region_routes_between_regions_as_waterfall_and_says_so() {
        let backends = [
            ("asia-southeast1", Some(5000.0), 1.0, true),
            ("europe-west1", Some(5000.0), 1.0, true),
            ("us-east1", Some(800.0), 0.5, true),
        ];
        let waterfall = service(WATERFALL, &backends, Some(3000.0));
        let spray = service(
            Algorithm::Policy(LoadBalancingAlgorithm::SprayToRegion),
            &backends,
            Some(3000.0),
        );
        assert_eq!(service_shares(&spray), service_shares(&waterfall));
        let routing = service::route(&spray);
        assert!(
            routing.notes.iter().any(|n| n.starts_with(
                "EXTERNAL_MANAGED, SPRAY_TO_REGION: routes between regions as WATERFALL_BY_REGION"
            )),
            "{routing:?}"
        );
        assert!(service::route(&waterfall).notes.is_empty());
    }

    #[test]
    fn spray_to_world_is_proportional_to_capacity() {
        // 1,000 / 1,000 / 500 (1,000 × 0.5) of capacity: 40% / 40% / 20%,
        // wherever the clients are and however light the load.
        let s = service(
            Algorithm::Policy(LoadBalancingAlgorithm::SprayToWorld),
            &[
                ("asia-southeast1", Some(1000.0), 0.5, true),
                ("europe-west1", Some(1000.0), 1.0, true),
                ("us-east1", Some(1000.0), 1.0, true),
            ],
            Some(10.0),
        );
        let shares = service_shares(&s);
        assert!(close(shares["us-east1"], 0.4), "{shares:?}");
        assert!(close(shares["europe-west1"], 0.4), "{shares:?}");
        assert!(close(shares["asia-southeast1"], 0.2), "{shares:?}");
    }

    #[test]
    fn a_region_down_sends_its_clients_to_their_next_closest_region() {
        let s = service(
            WATERFALL,
            &[
                ("asia-southeast1", Some(1000.0), 1.0, true),
                ("europe-west1", Some(1000.0), 1.0, true),
                ("us-east1", Some(1000.0), 1.0, false),
            ],
            Some(300.0),
        );
        let routing = service::route(&s);
        // South Carolina's clients: Belgium ≈ 6,800 km, Singapore ≈ 16,200 km.
        assert!(close(
            flow_share(&routing, "us-east1", "europe-west1"),
            1.0 / 3.0
        ));
        assert_eq!(s.serving_regions(), vec!["asia-southeast1", "europe-west1"]);
    }

    #[test]
    fn capacities_stay_in_their_balancing_modes_units() {
        let spec = |mode: &str| BackendSpec {
            group: "zones/us-east1-b/instanceGroups/ig".into(),
            region: "us-east1".into(),
            balancing_mode: mode.into(),
            max_rate: None,
            max_rate_per_endpoint: None,
            max_utilization: None,
            max_connections: None,
            capacity_scaler: 1.0,
        };
        let mut rate = spec("RATE");
        rate.max_rate_per_endpoint = Some(100.0);
        assert!(backend_capacity(&rate, None).is_err());
        assert_eq!(backend_capacity(&rate, Some(&(Some(6), None))), Ok(600.0));
        rate.max_rate = Some(250);
        assert_eq!(backend_capacity(&rate, None), Ok(250.0));
        // UTILIZATION: only a declared capacity, filled to 0.8 by default.
        let util = spec("UTILIZATION");
        assert!(backend_capacity(&util, None).is_err());
        assert_eq!(
            backend_capacity(&util, Some(&(None, Some(1000)))),
            Ok(800.0)
        );
        // CONNECTION counts connections: never compared with requests.
        let mut conn = spec("CONNECTION");
        conn.max_connections = Some(5000);
        let why = backend_capacity(&conn, None).expect_err("not requests per second");
        assert!(why.contains("5000 connections"), "{why}");
    }

    #[test]
    fn regions_are_ordered_by_great_circle_distance() {
        let frankfurt_virginia = distance_km("eu-central-1", "us-east-1").expect("known");
        assert!(
            (6_400.0..6_700.0).contains(&frankfurt_virginia),
            "{frankfurt_virginia}"
        );
        assert_eq!(distance_km("us-east-1", "us-east-1"), Some(0.0));
        assert_eq!(distance_km("us-east-1", "mars-1"), None);
        let (a, b, c) = (
            "us-west-2".to_owned(),
            "eu-west-1".to_owned(),
            "ap-northeast-1".to_owned(),
        );
        assert_eq!(by_distance("eu-west-3", &[&a, &b, &c]), vec![&b, &a, &c]);
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
