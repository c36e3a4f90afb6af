//! Safety invariants, checked on every step of a schedule before anything
//! is applied: serving regions, no silent all-zero, change windows and
//! anti-flap. A violation blocks `plan` and `apply` (exit 3).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meridian_provider::{Address, Resource};

use crate::desired::DesiredResources;
use crate::model::DesiredState;
use crate::model::raw::DenyWindow;
use crate::plan::schedule::{
    self, Live, Rules, healthy, lever, rules_for, subject_of, subject_text,
};
use crate::policy::Violation;

/// Regions serving each listener / backend service in `live`: a region
/// serves when its dial (any of its backends' scalers) is above 0 and at
/// least one endpoint with a non-zero weight (that backend) is not unhealthy.
pub fn serving_regions(live: &Live) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // Groups with a serving endpoint, found in one pass (not one scan of
    // the world per group).
    let groups_with_serving_endpoint: BTreeSet<Address> = live
        .iter()
        .filter(|(_, o)| {
            matches!(&o.resource, Resource::Endpoint(e) if e.weight > 0)
                && healthy(o.health.as_deref())
        })
        .filter_map(|(a, _)| a.parent())
        .collect();
    for (address, observed) in live {
        let Some(subject) = subject_of(address) else {
            continue;
        };
        match (&observed.resource, address) {
            (Resource::EndpointGroup(group), _) => {
                let entry = out.entry(subject).or_default();
                let endpoint_serves = groups_with_serving_endpoint.contains(address);
                if group.traffic_dial > 0 && endpoint_serves {
                    entry.insert(group.region.clone());
                }
            }
            (Resource::Backend(backend), _) => {
                let entry = out.entry(subject).or_default();
                if backend.capacity_scaler > 0.0 && healthy(observed.health.as_deref()) {
                    entry.insert(backend.region.clone());
                }
            }
            (_, Address::Listener { .. } | Address::BackendService { .. }) => {
                out.entry(subject).or_default();
            }
            _ => {}
        }
    }
    out
}

/// Per subject (listener or backend service): how many levers desired
/// state gives it, and whether any of them is above 0 (health aside). Keys
/// and values borrow from `desired`: one pass, no allocation per object.
fn levers_with_traffic(
    desired: &DesiredResources,
) -> BTreeMap<(&str, Option<&str>), (usize, bool)> {
    let mut out: BTreeMap<(&str, Option<&str>), (usize, bool)> = BTreeMap::new();
    for (address, want) in desired {
        let (key, up) = match (&want.resource, address) {
            (
                Resource::EndpointGroup(g),
                Address::EndpointGroup {
                    accelerator,
                    listener,
                    ..
                },
            ) => (
                (accelerator.as_str(), Some(listener.as_str())),
                g.traffic_dial > 0,
            ),
            (Resource::Backend(b), Address::Backend { service, .. }) => {
                ((service.as_str(), None), b.capacity_scaler > 0.0)
            }
            _ => continue,
        };
        let entry = out.entry(key).or_default();
        entry.0 += 1;
        entry.1 |= up;
    }
    out
}

/// The document location of a subject, `file:line:col`.
fn location(state: &DesiredState, subject: &str) -> (String, String) {
    if let Some(rest) = subject.strip_prefix("GlobalAccelerator[") {
        let name = rest.split(']').next().unwrap_or_default();
        let listener = rest
            .split("listener[")
            .nth(1)
            .and_then(|l| l.split(']').next())
            .unwrap_or_default();
        if let Some(doc) = state.accelerator(name) {
            let index = doc
                .doc
                .spec
                .listeners
                .iter()
                .position(|l| l.name == listener)
                .unwrap_or(0);
            let path = format!("spec.listeners[{index}]");
            return (
                format!("GlobalAccelerator/{name}"),
                format!("{}:{}", doc.file, doc.at(&path)),
            );
        }
        return (format!("GlobalAccelerator/{name}"), String::new());
    }
    let name = subject
        .strip_prefix("BackendService[")
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(subject);
    match state.backend_service(name) {
        Some(doc) => (
            format!("BackendService/{name}"),
            format!("{}:{}", doc.file, doc.at("spec.backends")),
        ),
        None => (format!("BackendService/{name}"), String::new()),
    }
}

fn acknowledged(state: &DesiredState, subject: &str) -> bool {
    if let Some(rest) = subject.strip_prefix("GlobalAccelerator[") {
        let name = rest.split(']').next().unwrap_or_default();
        let listener = rest
            .split("listener[")
            .nth(1)
            .and_then(|l| l.split(']').next())
            .unwrap_or_default();
        return state.accelerator(name).is_some_and(|d| {
            d.doc
                .spec
                .listeners
                .iter()
                .any(|l| l.name == listener && l.acknowledge_zero_traffic)
        });
    }
    let name = subject
        .strip_prefix("BackendService[")
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(subject);
    state
        .backend_service(name)
        .is_some_and(|d| d.doc.spec.acknowledge_zero_traffic)
}

/// Every invariant violation of moving from `live` to `desired`:
/// serving regions at every step, and no all-zero without acknowledgement.
pub fn schedule_violations(
    state: &DesiredState,
    desired: &DesiredResources,
    live: &Live,
) -> Vec<Violation> {
    let mut out = Vec::new();
    // No plan silently sets every lever of a listener or service to 0.
    // In the order of the subjects' text, as reports list them.
    let silent: BTreeSet<String> = levers_with_traffic(desired)
        .into_iter()
        .filter(|(_, (levers, with_traffic))| *levers > 0 && !with_traffic)
        .map(|(key, _)| subject_text(key))
        .collect();
    for subject in silent {
        if !acknowledged(state, &subject) {
            let (resource, location) = location(state, &subject);
            out.push(Violation {
                policy: "invariant/no-silent-zero".to_owned(),
                resource: resource.clone(),
                path: "acknowledgeZeroTraffic".to_owned(),
                region: String::new(),
                location,
                message: format!(
                    "{subject} would serve no traffic at all: every traffic dial / capacity scaler is 0; if that is intended, set `acknowledgeZeroTraffic: true` on it"
                ),
                transient: false,
            });
        }
    }
    // Only the listeners and services where something moves can lose a
    // serving region.
    let (desired, live) = schedule::moving_part(desired, live);
    let (desired, live) = (&desired, &live);
    let with_health = min_serving_violations(state, desired, live);
    // The same schedule over a world where every endpoint is healthy: a
    // violation that only live health causes is transient.
    let healthy_live: Live = live
        .iter()
        .map(|(a, o)| {
            let mut o = o.clone();
            o.health = None;
            (a.clone(), o)
        })
        .collect();
    let by_documents: BTreeSet<String> = min_serving_violations(state, desired, &healthy_live)
        .into_iter()
        .map(|(subject, _)| subject)
        .collect();
    for (subject, mut violation) in with_health {
        violation.transient = !by_documents.contains(&subject);
        out.push(violation);
    }
    out
}

/// The minimum-serving-regions violations of moving from `live` to
/// `desired`, with the subject each concerns.
fn min_serving_violations(
    state: &DesiredState,
    desired: &DesiredResources,
    live: &Live,
) -> Vec<(String, Violation)> {
    let mut out = Vec::new();
    let now_serving = serving_regions(live);
    // The subjects desired state keeps, found once (not one scan of the
    // desired world per subject).
    let mut desired_subjects: BTreeMap<String, &Address> = BTreeMap::new();
    for address in desired.keys() {
        if let Some(subject) = subject_of(address) {
            desired_subjects.entry(subject).or_insert(address);
        }
    }
    let mut reported = BTreeSet::new();
    for (number, (_, after)) in schedule::simulate(state, desired, live).iter().enumerate() {
        for (subject, regions) in serving_regions(after) {
            // Only listeners and services that carry traffic now, and stay.
            let Some(current) = now_serving.get(&subject) else {
                continue;
            };
            if current.is_empty() || acknowledged(state, &subject) || reported.contains(&subject) {
                continue;
            }
            let Some(first) = desired_subjects.get(&subject) else {
                continue;
            };
            let rules = rules_for(state, first);
            let min = rules.min_serving_regions as usize;
            if regions.len() < min && regions.len() < current.len() {
                let (resource, location) = location(state, &subject);
                reported.insert(subject.clone());
                out.push((subject.clone(), Violation {
                    policy: rules.policy.clone().unwrap_or_else(|| "invariant/min-serving-regions".to_owned()),
                    resource,
                    path: "minServingRegions".to_owned(),
                    region: String::new(),
                    location,
                    message: format!(
                        "{subject} would be served by {} region(s) ({}) after step {} of the schedule, fewer than minServingRegions: {min} of {} (serving now: {})",
                        regions.len(),
                        if regions.is_empty() { "none".to_owned() } else { regions.iter().cloned().collect::<Vec<_>>().join(", ") },
                        number + 1,
                        rules.source(),
                        current.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                    transient: false,
                }));
            }
        }
    }
    out
}

/// The subjects whose traffic moves from `live` to `desired`, with their rules.
pub fn moving_subjects(
    state: &DesiredState,
    desired: &DesiredResources,
    live: &Live,
) -> BTreeMap<String, Rules> {
    let mut out = BTreeMap::new();
    let origin = BTreeMap::new();
    let (desired, live) = schedule::moving_part(desired, live);
    let (desired, live) = (&desired, &live);
    let step = schedule::step(state, desired, live, &origin);
    let mut touched: Vec<&Address> = step.moves.iter().map(|m| &m.address).collect();
    touched.extend(step.deletes.iter());
    // New objects joining a listener or service that serves already; a
    // brand-new listener or service moves no one's traffic.
    for (address, want) in desired {
        if lever(&want.resource).is_some()
            && !live.contains_key(address)
            && address.parent().is_some_and(|p| live.contains_key(&p))
        {
            touched.push(address);
        }
    }
    for address in touched {
        if let Some(subject) = subject_of(address) {
            out.entry(subject)
                .or_insert_with(|| rules_for(state, address));
        }
    }
    out
}

/// When a deny window containing `now` ends, if one does.
pub fn active_window(windows: &[DenyWindow], now: SystemTime) -> Option<(SystemTime, String)> {
    let now_min = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 60)
        .unwrap_or(0);
    for window in windows {
        let Ok(tz) = jiff::tz::TimeZone::get(&window.time_zone) else {
            continue;
        };
        let Some(cron) = Cron::parse(&window.cron) else {
            continue;
        };
        // The window is active when it started within the last `duration`.
        let duration = u64::from(window.duration_minutes);
        for back in 0..duration {
            let minute = now_min.saturating_sub(back);
            let Ok(ts) = jiff::Timestamp::from_second(i64::try_from(minute * 60).unwrap_or(0))
            else {
                continue;
            };
            let local = ts.to_zoned(tz.clone());
            if cron.matches(
                u32::from(local.minute().unsigned_abs()),
                u32::from(local.hour().unsigned_abs()),
                u32::from(local.day().unsigned_abs()),
                u32::from(local.month().unsigned_abs()),
                u32::from(local.weekday().to_sunday_zero_offset().unsigned_abs()),
            ) {
                let end = UNIX_EPOCH + Duration::from_secs((minute + duration) * 60);
                return Some((
                    end,
                    format!(
                        "`{}` for {} min ({})",
                        window.cron, window.duration_minutes, window.time_zone
                    ),
                ));
            }
        }
    }
    None
}

/// Deny-window violations for the subjects that move.
pub fn window_violations(
    state: &DesiredState,
    moving: &BTreeMap<String, Rules>,
    now: SystemTime,
) -> Vec<Violation> {
    let mut out = Vec::new();
    for (subject, rules) in moving {
        if let Some((end, window)) = active_window(&rules.deny_windows, now) {
            let (resource, location) = location(state, subject);
            out.push(Violation {
                policy: rules.source(),
                resource,
                path: "denyWindows".to_owned(),
                region: String::new(),
                location,
                message: format!(
                    "{subject}: traffic changes are blocked by a deny window of {}: {window}, open until {}; pass --override-deny-window \"<reason>\" to change it anyway (the override is recorded)",
                    rules.source(),
                    crate::clock::rfc3339(end)
                ),
                transient: false,
            });
        }
    }
    out
}

/// A five-field cron expression (minute hour day-of-month month
/// day-of-week; names for months and days; `*`, lists, ranges, steps).
#[derive(Debug, Clone)]
pub struct Cron {
    fields: [Vec<u32>; 5],
    dom_any: bool,
    dow_any: bool,
}

impl Cron {
    /// Parses an expression; `None` when invalid.
    pub fn parse(expression: &str) -> Option<Self> {
        const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
        const MONTHS: [&str; 12] = [
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ];
        let parts: Vec<String> = expression
            .split_whitespace()
            .map(str::to_ascii_uppercase)
            .collect();
        if parts.len() != 5 {
            return None;
        }
        let mut month = parts[3].clone();
        for (i, name) in MONTHS.iter().enumerate() {
            month = month.replace(name, &(i + 1).to_string());
        }
        let mut day = parts[4].clone();
        for (i, name) in DAYS.iter().enumerate() {
            day = day.replace(name, &i.to_string());
        }
        let field = |text: &str, lo: u32, hi: u32| -> Option<Vec<u32>> {
            let mut values = Vec::new();
            for part in text.split(',') {
                let (range, step) = match part.split_once('/') {
                    Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0)?),
                    None => (part, 1),
                };
                let (a, b) = if range == "*" {
                    (lo, hi)
                } else if let Some((a, b)) = range.split_once('-') {
                    (a.parse().ok()?, b.parse().ok()?)
                } else {
                    let v: u32 = range.parse().ok()?;
                    (v, if part.contains('/') { hi } else { v })
                };
                if a < lo || b > hi || a > b {
                    return None;
                }
                values.extend((a..=b).step_by(step as usize));
            }
            Some(values)
        };
        let mut dow = field(&day, 0, 7)?;
        for d in &mut dow {
            if *d == 7 {
                *d = 0;
            }
        }
        Some(Self {
            fields: [
                field(&parts[0], 0, 59)?,
                field(&parts[1], 0, 23)?,
                field(&parts[2], 1, 31)?,
                field(&month, 1, 12)?,
                dow,
            ],
            dom_any: parts[2] == "*",
            dow_any: day == "*",
        })
    }

    /// Whether the expression fires at this local minute.
    pub fn matches(&self, minute: u32, hour: u32, day: u32, month: u32, weekday: u32) -> bool {
        let dom = self.fields[2].contains(&day);
        let dow = self.fields[4].contains(&weekday);
        // Standard cron: when both day fields are restricted, either matches.
        let day_ok = match (self.dom_any, self.dow_any) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        };
        self.fields[0].contains(&minute)
            && self.fields[1].contains(&hour)
            && self.fields[3].contains(&month)
            && day_ok
    }
}

/// Lever moves reversing a recent move of the other direction.
pub fn flap_violations(
    state: &DesiredState,
    step_moves: &[crate::plan::schedule::Move],
    history: &BTreeMap<String, super::LastMove>,
    now: SystemTime,
) -> Vec<Violation> {
    let now_ms = super::millis(now);
    let mut out = Vec::new();
    for m in step_moves {
        let key = m.address.to_string();
        let Some(last) = history.get(&key) else {
            continue;
        };
        let rules = rules_for(state, &m.address);
        let direction = if m.to > m.from { 1 } else { -1 };
        let held_until = last.at_ms + u64::try_from(rules.flap_hold.as_millis()).unwrap_or(0);
        if direction != last.direction && !last.gate_failed && now_ms < held_until {
            let subject = subject_of(&m.address).unwrap_or_default();
            let (resource, location) = location(state, &subject);
            let lever = m.lever;
            out.push(Violation {
                policy: rules.source(),
                resource,
                path: "flapHoldSeconds".to_owned(),
                region: m.address.region().unwrap_or_default().to_owned(),
                location,
                message: format!(
                    "anti-flap: {} {} was moved {} at {}; moving it {} ({} → {}) is held until {} ({} flapHoldSeconds)",
                    m.address,
                    lever.field(),
                    if last.direction > 0 { "up" } else { "down" },
                    crate::clock::rfc3339(UNIX_EPOCH + Duration::from_millis(last.at_ms)),
                    if direction > 0 { "up" } else { "down" },
                    lever.show(m.from),
                    lever.show(m.to),
                    crate::clock::rfc3339(UNIX_EPOCH + Duration::from_millis(held_until)),
                    rules.source()
                ),
                transient: false,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_fields_match_like_cron() {
        let friday_four_pm = Cron::parse("0 16 * * FRI").expect("valid");
        // 2026-11-27 is a Friday (weekday 5).
        assert!(friday_four_pm.matches(0, 16, 27, 11, 5));
        assert!(!friday_four_pm.matches(1, 16, 27, 11, 5));
        assert!(!friday_four_pm.matches(0, 16, 26, 11, 4));
        let every_fifteen = Cron::parse("*/15 9-17 * * MON-FRI").expect("valid");
        assert!(every_fifteen.matches(45, 9, 2, 3, 1));
        assert!(!every_fifteen.matches(44, 9, 2, 3, 1));
        assert!(!every_fifteen.matches(45, 9, 1, 3, 0));
        assert!(Cron::parse("61 * * * *").is_none());
        assert!(Cron::parse("* * *").is_none());
    }

    #[test]
    fn a_window_is_active_from_its_start_for_its_duration_in_its_time_zone() {
        let window = DenyWindow {
            cron: "0 16 * * FRI".to_owned(),
            duration_minutes: 60,
            time_zone: "Europe/Berlin".to_owned(),
        };
        // Friday 2026-11-27 16:30 in Berlin is 15:30 UTC (CET, UTC+1).
        let inside = UNIX_EPOCH + Duration::from_secs(1_795_793_400);
        assert_eq!(crate::clock::rfc3339(inside), "2026-11-27T15:30:00Z");
        let (end, _) = active_window(std::slice::from_ref(&window), inside).expect("active");
        assert_eq!(crate::clock::rfc3339(end), "2026-11-27T16:00:00Z");
        // 16:30 UTC is 17:30 in Berlin: the hour-long window is over.
        let after = inside + Duration::from_secs(3600);
        assert!(active_window(&[window], after).is_none());
    }
}
