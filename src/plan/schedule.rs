//! Levers, rules and steps: how a traffic change is cut into steps.
//!
//! A *lever* is a field that moves traffic: an endpoint group's traffic
//! dial (0-100), an endpoint's weight (0-255) and a backend's capacity scaler
//! (in points, 0-100). A step moves every lever toward its target by at
//! most the policy's `maxStepPercent` (for weights: that percentage of the
//! larger of the two weights), all levers at once. Steps are computed from
//! live state, never from a step counter: whatever was applied before a
//! restart, the next step starts from what is live.
//!
//! Make-before-break is built into the steps: a new endpoint, endpoint group
//! or backend inside a listener or service that already exists is created
//! with its lever at 0 and raised only once it reports healthy; one that
//! desired state removes is first drained to 0, and deleted by the step after
//! the drain has baked.

use meridian_provider::units::{self, PlannedUnit};
use meridian_provider::{Address, Change, Observed, Resource};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::desired::{DesiredResource, DesiredResources};
use crate::model::DesiredState;
use crate::model::raw::TrafficKind;
pub use crate::policy::rules::{
    Rules, document_of, rules_for, rules_for_document, subject_key, subject_of, subject_text,
};

/// The kind of a lever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LeverKind {
    /// Endpoint group traffic dial, percent.
    TrafficDial,
    /// Endpoint weight, 0-255.
    Weight,
    /// Backend capacity scaler, in points (scaler × 100).
    CapacityScaler,
}

impl LeverKind {
    /// The field's name in the resource value.
    pub fn field(self) -> &'static str {
        match self {
            LeverKind::TrafficDial => "trafficDial",
            LeverKind::Weight => "weight",
            LeverKind::CapacityScaler => "capacityScaler",
        }
    }

    /// A lever value as the field shows it (scalers as 0.0-1.0).
    pub fn show(self, value: f64) -> String {
        match self {
            LeverKind::CapacityScaler => format!("{}", value / 100.0),
            _ => format!("{value}"),
        }
    }
}

/// The lever of a resource and its value, when it has one.
pub fn lever(resource: &Resource) -> Option<(LeverKind, f64)> {
    match resource {
        Resource::EndpointGroup(g) => Some((LeverKind::TrafficDial, f64::from(g.traffic_dial))),
        Resource::Endpoint(e) => Some((LeverKind::Weight, f64::from(e.weight))),
        Resource::Backend(b) => Some((
            LeverKind::CapacityScaler,
            (b.capacity_scaler * 100.0).round(),
        )),
        _ => None,
    }
}

/// `resource` with its lever set to `value`.
pub fn with_lever(resource: &Resource, value: f64) -> Resource {
    let mut out = resource.clone();
    match &mut out {
        Resource::EndpointGroup(g) => g.traffic_dial = value.round().clamp(0.0, 100.0) as u8,
        Resource::Endpoint(e) => e.weight = value.round().clamp(0.0, 255.0) as u8,
        Resource::Backend(b) => b.capacity_scaler = (value.round().clamp(0.0, 100.0)) / 100.0,
        _ => {}
    }
    out
}

/// The next value of a lever moving from `from` to `to` by at most
/// `max_step` percent. A weight's step is that share of the larger of the
/// rollout's starting weight (`origin`) and the target, so 200 → 0 at 25%
/// goes 150, 100, 50, 0.
pub fn next_value(kind: LeverKind, from: f64, to: f64, max_step: u32, origin: f64) -> f64 {
    if (from - to).abs() < 1e-9 {
        return to;
    }
    let step = match kind {
        LeverKind::Weight => (f64::from(max_step) / 100.0 * origin.max(from).max(to))
            .round()
            .max(1.0),
        _ => f64::from(max_step),
    };
    let next = if to > from {
        (from + step).min(to)
    } else {
        (from - step).max(to)
    };
    if kind == LeverKind::CapacityScaler && next > 0.0 && next < 10.0 {
        // GCP accepts a scaler of 0 or 0.1-1.0.
        return if to <= from {
            0.0
        } else if to >= 10.0 {
            10.0
        } else {
            to
        };
    }
    next
}

pub use crate::observe::Live;

/// Whether `health` may carry traffic: healthy, or not known to be otherwise.
pub fn healthy(health: Option<&str>) -> bool {
    health.is_none_or(|h| h == "healthy" || h == "unknown")
}

/// One lever's move in a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Move {
    /// The object.
    pub address: Address,
    /// The lever.
    pub lever: LeverKind,
    /// Value before the step (lever units; scalers in points).
    pub from: f64,
    /// Value after the step.
    pub to: f64,
}

/// One step toward a target.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// The desired state of this step: the target with every lever moved
    /// by one step from live, objects to be removed kept while they drain.
    pub desired: DesiredResources,
    /// The lever moves of this step.
    pub moves: Vec<Move>,
    /// Objects deleted by this step (drained and baked before).
    pub deletes: Vec<Address>,
    /// New objects whose lever waits for them to become healthy.
    pub waiting_for_health: Vec<Address>,
    /// Whether this step reaches the target.
    pub last: bool,
}

/// The part of `target` and `live` a schedule concerns: every object whose
/// desired and live configuration differ, and every object of a listener or
/// backend service in which one does (its serving regions, raises, drains
/// and full groups depend on all of its objects). The rest moves no traffic
/// and takes no step, so leaving it out changes no step and no violation,
/// and the work of a schedule is bounded by the change, not by the fleet: a
/// converged fleet of any size simulates nothing.
pub fn moving_part(target: &DesiredResources, live: &Live) -> (DesiredResources, Live) {
    let mut subjects: HashSet<(&str, Option<&str>)> = HashSet::new();
    let mut others: HashSet<&Address> = HashSet::new();
    // Both maps are ordered by address: one merge over the two finds what
    // differs, with no lookup per object.
    let mut wants = target.iter().peekable();
    let mut haves = live.iter().peekable();
    loop {
        let changed = match (wants.peek(), haves.peek()) {
            (None, None) => break,
            (Some((a, _)), None) => {
                let a = *a;
                wants.next();
                a
            }
            (None, Some((a, _))) => {
                let a = *a;
                haves.next();
                a
            }
            (Some((wa, want)), Some((ha, have))) => match wa.cmp(ha) {
                std::cmp::Ordering::Less => {
                    let a = *wa;
                    wants.next();
                    a
                }
                std::cmp::Ordering::Greater => {
                    let a = *ha;
                    haves.next();
                    a
                }
                std::cmp::Ordering::Equal => {
                    let (a, same) = (*wa, want.resource == have.resource && have.owned);
                    wants.next();
                    haves.next();
                    if same {
                        continue;
                    }
                    a
                }
            },
        };
        match subject_key(changed) {
            Some(key) => {
                subjects.insert(key);
            }
            None => {
                others.insert(changed);
            }
        }
    }
    if subjects.is_empty() && others.is_empty() {
        return (DesiredResources::new(), Live::new());
    }
    let keep = |address: &Address| {
        subject_key(address).map_or_else(|| others.contains(address), |k| subjects.contains(&k))
    };
    let target = target
        .iter()
        .filter(|(a, _)| keep(a))
        .map(|(a, d)| (a.clone(), d.clone()))
        .collect();
    let live = live
        .iter()
        .filter(|(a, _)| keep(a))
        .map(|(a, o)| (a.clone(), o.clone()))
        .collect();
    (target, live)
}

/// The rules of each document, looked up once per document however many
/// objects ask.
#[derive(Default)]
struct RuleMemo<'s> {
    rules: HashMap<(TrafficKind, &'s str), Rules>,
}

impl<'s> RuleMemo<'s> {
    fn get(&mut self, state: &DesiredState, address: &'s Address) -> Rules {
        match document_of(address) {
            Some((kind, name)) => self
                .rules
                .entry((kind, name))
                .or_insert_with(|| rules_for_document(state, kind, name))
                .clone(),
            None => Rules::defaults(),
        }
    }
}

/// Whether the lever parent of `address` exists live: then `address`'s
/// traffic must be raised progressively from 0.
pub fn parent_live(address: &Address, live: &Live) -> bool {
    match address {
        Address::Endpoint { .. } | Address::EndpointGroup { .. } | Address::Backend { .. } => {
            address.parent().is_some_and(|p| live.contains_key(&p))
        }
        _ => false,
    }
}

/// The next step from `live` toward `target`. `origin` holds the lever
/// values when the rollout started (by address text), for step sizes.
pub fn step(
    state: &DesiredState,
    target: &DesiredResources,
    live: &Live,
    origin: &BTreeMap<String, f64>,
) -> Step {
    let mut out = Step {
        desired: target.clone(),
        ..Step::default()
    };
    let mut complete = true;
    let mut memo = RuleMemo::default();
    // A full endpoint group cannot hold a new endpoint beside a draining
    // one: there, the old ones drain and go first (break before make).
    // Children counted in one pass each over `live` and `target`.
    let mut live_children: BTreeMap<Address, usize> = BTreeMap::new();
    for address in live.keys() {
        if matches!(address, Address::Endpoint { .. })
            && let Some(group) = address.parent()
        {
            *live_children.entry(group).or_default() += 1;
        }
    }
    let mut adding: BTreeMap<Address, usize> = BTreeMap::new();
    for address in target.keys() {
        if matches!(address, Address::Endpoint { .. })
            && !live.contains_key(address)
            && let Some(group) = address.parent()
        {
            *adding.entry(group).or_default() += 1;
        }
    }
    let full_groups: BTreeSet<Address> = adding
        .into_iter()
        .filter(|(group, adding)| {
            live.contains_key(group)
                && live_children.get(group).copied().unwrap_or(0) + adding
                    > crate::plan::diff::ENDPOINTS_PER_GROUP
        })
        .map(|(group, _)| group)
        .collect();
    // Make before break: while a new object of a listener or service is
    // still being raised, nothing in that listener or service is lowered.
    let raising: BTreeSet<String> = target
        .iter()
        .filter(|(address, want)| {
            let Some((_, to)) = lever(&want.resource) else {
                return false;
            };
            // Cheapest first: in a converged world no lever is below.
            to > 0.0
                && live
                    .get(*address)
                    .and_then(|o| lever(&o.resource))
                    .is_none_or(|(_, v)| v < to)
                && address.parent().is_none_or(|g| !full_groups.contains(&g))
                && parent_live(address, live)
                && !origin.contains_key(&address.to_string())
        })
        .filter_map(|(address, _)| subject_of(address))
        .collect();
    for (address, want) in target {
        let Some((kind, to)) = lever(&want.resource) else {
            continue;
        };
        match live.get(address) {
            Some(have) => {
                let from = lever(&have.resource).map_or(to, |(_, v)| v);
                if (from - to).abs() < 1e-9 {
                    continue;
                }
                if to < from && subject_of(address).is_some_and(|s| raising.contains(&s)) {
                    // Lowered once the new capacity serves.
                    out.desired.insert(
                        address.clone(),
                        DesiredResource {
                            resource: with_lever(&want.resource, from),
                            ..want.clone()
                        },
                    );
                    complete = false;
                    continue;
                }
                if from == 0.0 && address_is_new_and_unhealthy(have) {
                    out.waiting_for_health.push(address.clone());
                    out.desired.insert(
                        address.clone(),
                        DesiredResource {
                            resource: with_lever(&want.resource, 0.0),
                            ..want.clone()
                        },
                    );
                    complete = false;
                    continue;
                }
                let start = origin.get(&address.to_string()).copied().unwrap_or(from);
                let next = next_value(kind, from, to, memo.get(state, address).max_step, start);
                if (next - to).abs() > 1e-9 {
                    complete = false;
                }
                out.desired.insert(
                    address.clone(),
                    DesiredResource {
                        resource: with_lever(&want.resource, next),
                        ..want.clone()
                    },
                );
                out.moves.push(Move {
                    address: address.clone(),
                    lever: kind,
                    from,
                    to: next,
                });
            }
            None if address
                .parent()
                .is_some_and(|group| full_groups.contains(&group)) =>
            {
                // No room yet: added once the drained endpoints are gone.
                out.desired.remove(address);
                complete = false;
            }
            None if to > 0.0 && parent_live(address, live) => {
                // Make before break: create at 0, raise once healthy.
                out.desired.insert(
                    address.clone(),
                    DesiredResource {
                        resource: with_lever(&want.resource, 0.0),
                        ..want.clone()
                    },
                );
                complete = false;
            }
            None => {}
        }
    }
    // Objects desired state removes from a listener or service that stays:
    // drain first; delete once drained (the drain step has baked by then).
    for (address, have) in live {
        if target.contains_key(address) {
            continue;
        }
        let Some((kind, from)) = lever(&have.resource) else {
            continue;
        };
        let parent_stays = address.parent().is_some_and(|p| target.contains_key(&p));
        if !parent_stays {
            continue;
        }
        let held = subject_of(address).is_some_and(|s| raising.contains(&s));
        if from > 0.0 && held {
            // Drained once the new capacity serves: keep it as it is.
            let provider = target
                .get(&address.parent().unwrap_or_else(|| address.clone()))
                .map(|p| p.provider.clone())
                .unwrap_or_default();
            keep_with_children(&mut out.desired, address, have, live, target, &provider);
            complete = false;
        } else if from > 0.0 {
            let start = origin.get(&address.to_string()).copied().unwrap_or(from);
            let next = next_value(kind, from, 0.0, memo.get(state, address).max_step, start);
            let provider = target
                .get(&address.parent().unwrap_or_else(|| address.clone()))
                .map(|p| p.provider.clone())
                .unwrap_or_default();
            out.desired.insert(
                address.clone(),
                DesiredResource {
                    provider,
                    resource: with_lever(&have.resource, next),
                    source: format!("{address} (draining before removal)"),
                    external_id: None,
                },
            );
            // Children of a draining group stay too, untouched.
            for (child, live_child) in live {
                if child.parent().as_ref() == Some(address) && !target.contains_key(child) {
                    out.desired.insert(
                        child.clone(),
                        DesiredResource {
                            provider: target
                                .get(&address.parent().unwrap_or_else(|| address.clone()))
                                .map(|p| p.provider.clone())
                                .unwrap_or_default(),
                            resource: live_child.resource.clone(),
                            source: format!("{child} (draining before removal)"),
                            external_id: None,
                        },
                    );
                }
            }
            out.moves.push(Move {
                address: address.clone(),
                lever: kind,
                from,
                to: next,
            });
            complete = false;
        } else {
            out.deletes.push(address.clone());
        }
    }
    out.last = complete;
    out
}

/// Keeps a live object (and its live children desired state removes) in a
/// step's desired state unchanged.
fn keep_with_children(
    desired: &mut DesiredResources,
    address: &Address,
    have: &Observed,
    live: &Live,
    target: &DesiredResources,
    provider: &str,
) {
    desired.insert(
        address.clone(),
        DesiredResource {
            provider: provider.to_owned(),
            resource: have.resource.clone(),
            source: format!("{address} (kept until the new capacity serves)"),
            external_id: None,
        },
    );
    for (child, live_child) in live {
        if child.parent().as_ref() == Some(address) && !target.contains_key(child) {
            desired.insert(
                child.clone(),
                DesiredResource {
                    provider: provider.to_owned(),
                    resource: live_child.resource.clone(),
                    source: format!("{child} (kept until the new capacity serves)"),
                    external_id: None,
                },
            );
        }
    }
}

fn address_is_new_and_unhealthy(have: &Observed) -> bool {
    // An object at lever 0 that is not (yet) healthy: `initial` while its
    // first checks run, `unhealthy` when they fail.
    matches!(have.health.as_deref(), Some("initial") | Some("unhealthy"))
        && matches!(have.resource, Resource::Endpoint(_))
}

/// Applies a step's desired state to a live view, as if every write landed
/// and health stayed as it was (new objects: health unknown).
pub fn advance_live(live: &Live, step: &Step) -> Live {
    let mut out = Live::new();
    for (address, want) in &step.desired {
        let health = live.get(address).and_then(|o| o.health.clone());
        let mut observed = live.get(address).cloned().unwrap_or_else(|| Observed {
            address: address.clone(),
            resource: want.resource.clone(),
            cloud_id: None,
            etag: None,
            status: None,
            health: None,
            owned: true,
            adopted: false,
            ip_addresses: Vec::new(),
        });
        observed.resource = want.resource.clone();
        observed.health = health;
        out.insert(address.clone(), observed);
    }
    out
}

/// A planned step, for display and for the invariant checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledStep {
    /// 1-based.
    pub number: usize,
    /// Lever moves.
    pub moves: Vec<Move>,
    /// Objects created in this step (lever at 0 when they join live traffic).
    pub creates: Vec<Address>,
    /// Objects deleted in this step.
    pub deletes: Vec<Address>,
    /// Bake after the step before its gates are checked, seconds.
    pub bake_seconds: u64,
    /// The changes this step makes, with the values it writes and the
    /// live values it expects before it (as the previous step leaves
    /// them): what `apply` executes for this step, and nothing else.
    #[serde(default)]
    pub changes: Vec<Change>,
    /// The step's changes as units of work, with the API writes they take.
    #[serde(default)]
    pub units: Vec<PlannedUnit>,
}

/// The steps from live to the target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Steps in order.
    pub steps: Vec<ScheduledStep>,
    /// Expected seconds to finish (sum of the bakes), not counting API time.
    pub expected_seconds: u64,
}

impl Schedule {
    /// Whether the change is carried out in more than one step or bakes.
    pub fn is_progressive(&self) -> bool {
        self.steps.len() > 1 || self.expected_seconds > 0
    }
}

/// Longest schedule computed; a change needing more steps is cut short
/// (100 steps of 1% is the worst a valid policy asks for).
const MAX_STEPS: usize = 400;

/// The live states after each step, with the steps, from `live` to `target`.
pub fn simulate(state: &DesiredState, target: &DesiredResources, live: &Live) -> Vec<(Step, Live)> {
    let mut out = Vec::new();
    let mut current = live.clone();
    let origin: BTreeMap<String, f64> = live
        .iter()
        .filter_map(|(a, o)| lever(&o.resource).map(|(_, v)| (a.to_string(), v)))
        .collect();
    for _ in 0..MAX_STEPS {
        let step = step(state, target, &current, &origin);
        let next = advance_live(&current, &step);
        // New objects are assumed to turn healthy once created.
        let next: Live = next
            .into_iter()
            .map(|(a, mut o)| {
                if !current.contains_key(&a) {
                    o.health = None;
                }
                if step.waiting_for_health.contains(&a) {
                    o.health = None;
                }
                (a, o)
            })
            .collect();
        let progressed = next != current || !step.deletes.is_empty();
        let last = step.last;
        out.push((step, next.clone()));
        current = next;
        if last || !progressed {
            break;
        }
    }
    out
}

/// The schedule of lever steps from `live` to `target`, for plans.
pub fn schedule(
    state: &DesiredState,
    target: &DesiredResources,
    live: &Live,
    providers: &BTreeMap<Address, String>,
) -> Schedule {
    let (target, live) = moving_part(target, live);
    let (target, live) = (&target, &live);
    let mut before = live.clone();
    let mut steps = Vec::new();
    let mut expected = 0u64;
    for (step, after) in simulate(state, target, live) {
        let creates: Vec<Address> = after
            .keys()
            .filter(|a| !before.contains_key(*a) && lever(&after[*a].resource).is_some())
            .cloned()
            .collect();
        let deletes: Vec<Address> = before
            .keys()
            .filter(|a| !after.contains_key(*a) && lever(&before[*a].resource).is_some())
            .cloned()
            .collect();
        let observed: Vec<(String, Observed)> = before
            .iter()
            .map(|(address, o)| {
                let provider = providers
                    .get(address)
                    .or_else(|| step.desired.get(address).map(|d| &d.provider))
                    .cloned()
                    .unwrap_or_default();
                (provider, o.clone())
            })
            .collect();
        let changes = crate::plan::diff::diff(&step.desired, &observed, &BTreeSet::new());
        if changes.is_empty() {
            before = after;
            continue;
        }
        let units = units::group(&changes, &crate::observe::member_counts(&before));
        let bake = step
            .moves
            .iter()
            .map(|m| rules_for(state, &m.address).bake.as_secs())
            .max()
            .unwrap_or(0);
        expected += bake;
        steps.push(ScheduledStep {
            number: steps.len() + 1,
            moves: step.moves.clone(),
            creates,
            deletes,
            bake_seconds: bake,
            changes,
            units,
        });
        before = after;
    }
    Schedule {
        steps,
        expected_seconds: expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dials_and_scalers_move_by_the_step_and_weights_by_a_share_of_the_larger_weight() {
        let mut dial = 100.0;
        let mut seen = Vec::new();
        while dial > 0.0 {
            dial = next_value(LeverKind::TrafficDial, dial, 0.0, 25, 100.0);
            seen.push(dial);
        }
        assert_eq!(seen, vec![75.0, 50.0, 25.0, 0.0]);
        let mut weight = 200.0;
        let mut seen = Vec::new();
        while weight > 0.0 {
            weight = next_value(LeverKind::Weight, weight, 0.0, 25, 200.0);
            seen.push(weight);
        }
        assert_eq!(seen, vec![150.0, 100.0, 50.0, 0.0]);
        // A scaler never lands between 0 and 0.1.
        assert_eq!(
            next_value(LeverKind::CapacityScaler, 30.0, 0.0, 25, 30.0),
            0.0
        );
        assert_eq!(
            next_value(LeverKind::CapacityScaler, 0.0, 50.0, 5, 0.0),
            10.0
        );
        assert_eq!(
            next_value(LeverKind::TrafficDial, 40.0, 50.0, 25, 40.0),
            50.0
        );
    }
}
