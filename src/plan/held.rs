//! Break-glass overrides: traffic changes made by hand during an incident
//! that meridian must not revert until a stated time.
//!
//! An operator marks the live object with `meridian.dev/override-until=<RFC
//! 3339 time>` ([`meridian_provider::OVERRIDE_KEY`]): a tag on a Global
//! Accelerator, covering its listeners, endpoint groups and endpoints (Global
//! Accelerator tags live only on accelerators), or a marker in a GCP backend
//! service's description, covering its backends. While the time is in the
//! future, [`hold`] moves the plan's changes inside that scope that move
//! traffic (a dial, weight, scaler or enabled flag; an endpoint group,
//! endpoint or backend appearing or disappearing — see
//! [`crate::policy::moves_traffic`]) and every delete there (a delete drains
//! first, and a parent cannot go before its held children) out of
//! `plan.changes` into `plan.overridden`. Everything else in scope, such as a
//! health-check setting, is applied as usual. A change is one cloud call, so
//! a held change is held whole, its non-traffic fields included.
//!
//! Once the time has passed the changes stay in the plan and are reverted
//! like any drift, with a note. An unparseable time holds nothing and is a
//! note. This module decides only what is held; it never talks to a cloud
//! and never changes what `diff` computed.

use std::time::SystemTime;

use meridian_provider::{Action, Address, Change, LiveOverride, Observed};
use serde::{Deserialize, Serialize};

use crate::clock;
use crate::desired::{DesiredResource, DesiredResources};
use crate::observe::{Observation, live_of};
use crate::plan::schedule::{lever, with_lever};
use crate::plan::{Plan, Summary};

/// A change held back by an active break-glass override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overridden {
    /// The object carrying the override marker (an accelerator or a
    /// backend service), which may be the changed object's ancestor.
    pub address: Address,
    /// When the override ends, as the marker states it.
    pub until: String,
    /// The change that would revert the hand-made state.
    pub change: Change,
}

/// The object whose override marker covers `address`: its accelerator for
/// everything in Global Accelerator, its backend service for a backend.
/// `None` for objects no override can cover (health checks, URL maps,
/// Transit Gateway).
pub fn marker_object(address: &Address) -> Option<Address> {
    match address {
        Address::Accelerator { accelerator }
        | Address::Listener { accelerator, .. }
        | Address::EndpointGroup { accelerator, .. }
        | Address::Endpoint { accelerator, .. } => Some(Address::Accelerator {
            accelerator: accelerator.clone(),
        }),
        Address::BackendService { name } | Address::Backend { service: name, .. } => {
            Some(Address::BackendService { name: name.clone() })
        }
        _ => None,
    }
}

/// Whether a marker holds at `now`: a readable time still in the future.
pub fn is_active(marker: &LiveOverride, now: SystemTime) -> bool {
    clock::parse_rfc3339(&marker.until).is_some_and(|until| until > now)
}

/// Whether an active override holds `change` back: it moves traffic, or it
/// deletes something (a delete drains first, and a parent cannot be deleted
/// before its held children).
pub fn holds(change: &Change) -> bool {
    change.action == Action::Delete || crate::policy::moves_traffic(change)
}

/// Moves the changes held by active overrides out of `plan.changes` into
/// `plan.overridden`, recomputes the summary, and notes expired and
/// unparseable overrides. `now` is a parameter so tests can place it.
pub fn hold(plan: &mut Plan, overrides: &[(String, LiveOverride)], now: SystemTime) {
    let mut markers: Vec<&LiveOverride> = overrides.iter().map(|(_, o)| o).collect();
    markers.sort_by(|a, b| (&a.address, &a.until).cmp(&(&b.address, &b.until)));
    markers.dedup();
    let mut active: Vec<&LiveOverride> = Vec::new();
    let mut expired: Vec<&LiveOverride> = Vec::new();
    for marker in markers {
        match clock::parse_rfc3339(&marker.until) {
            Some(until) if until > now => active.push(marker),
            Some(_) => expired.push(marker),
            None => plan.notes.push(format!(
                "{} carries `{}={}`, which is not an RFC 3339 time (like 2030-01-01T00:00:00Z): it is ignored and the object is reconciled as usual; fix it with `meridian override set` or remove it with `meridian override clear`",
                marker.address,
                meridian_provider::OVERRIDE_KEY,
                marker.until
            )),
        }
    }
    if !active.is_empty() {
        let changes = std::mem::take(&mut plan.changes);
        for change in changes {
            let by = marker_object(&change.address)
                .and_then(|object| active.iter().find(|o| o.address == object));
            match by {
                Some(marker) if holds(&change) => plan.overridden.push(Overridden {
                    address: marker.address.clone(),
                    until: marker.until.clone(),
                    change,
                }),
                _ => plan.changes.push(change),
            }
        }
        plan.summary = Summary::of(&plan.changes);
    }
    for marker in expired {
        let reverting = plan
            .changes
            .iter()
            .filter(|c| holds(c) && marker_object(&c.address).as_ref() == Some(&marker.address))
            .count();
        plan.notes.push(if reverting > 0 {
            format!(
                "override of {} expired at {}; reverting ({reverting} change(s) there are planned like any drift)",
                marker.address, marker.until
            )
        } else {
            format!(
                "override of {} expired at {}; nothing differs there, so nothing to revert (remove the marker with `meridian override clear`)",
                marker.address, marker.until
            )
        });
    }
}

/// Desired state as a rollout may move it: the levers of objects under an
/// active break-glass override stay at their live values, objects it would
/// add there wait, and objects it would remove there stay, until the
/// override expires; then the change rolls out like any other.
pub fn without_held<'d>(
    desired: &'d DesiredResources,
    observation: &Observation,
    now: SystemTime,
) -> std::borrow::Cow<'d, DesiredResources> {
    let active: Vec<&Address> = observation
        .overrides
        .iter()
        .filter(|(_, o)| is_active(o, now))
        .map(|(_, o)| &o.address)
        .collect();
    if active.is_empty() {
        // Nothing held: desired state as it is, not a copy of it.
        return std::borrow::Cow::Borrowed(desired);
    }
    let covered = |address: &Address| marker_object(address).is_some_and(|m| active.contains(&&m));
    let (live, providers) = live_of(observation);
    let mut out = desired.clone();
    for (address, want) in desired {
        if lever(&want.resource).is_none() || !covered(address) {
            continue;
        }
        match live.get(address).and_then(|o| lever(&o.resource)) {
            Some((_, value)) => {
                out.insert(
                    address.clone(),
                    DesiredResource {
                        resource: with_lever(&want.resource, value),
                        ..want.clone()
                    },
                );
            }
            None => {
                out.remove(address);
            }
        }
    }
    for (address, observed) in &live {
        if !desired.contains_key(address) && covered(address) {
            out.insert(
                address.clone(),
                DesiredResource {
                    provider: providers.get(address).cloned().unwrap_or_default(),
                    resource: observed.resource.clone(),
                    source: format!("{address} (held by a break-glass override)"),
                    external_id: None,
                },
            );
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Reads `--until`: an RFC 3339 time, or a duration from now such as `90m`,
/// `2h` or `1d`. Returns the time as meridian writes it (UTC, whole
/// seconds), which must be in the future.
pub fn parse_until(text: &str, now: SystemTime) -> Result<String, String> {
    let text = text.trim();
    let until = match clock::parse_rfc3339(text) {
        Some(time) => time,
        None => {
            let duration = match text.strip_suffix('d') {
                Some(days) => days
                    .parse::<f64>()
                    .ok()
                    .filter(|d| d.is_finite() && *d > 0.0)
                    .map(|d| std::time::Duration::from_secs_f64(d * 86_400.0))
                    .ok_or_else(|| format!("`{text}` must be a positive number of days")),
                None => clock::parse_duration(text),
            }
            .map_err(|_| {
                format!(
                    "`{text}` is neither an RFC 3339 time (2030-01-01T00:00:00Z) nor a duration from now (30m, 2h, 1d)"
                )
            })?;
            now.checked_add(duration)
                .ok_or_else(|| format!("`{text}` is too far in the future"))?
        }
    };
    let written = clock::rfc3339(until);
    match clock::parse_rfc3339(&written) {
        Some(time) if time > now => Ok(written),
        _ => Err(format!(
            "{written} is not in the future (it is now {}): an override must end later than now",
            clock::rfc3339(now)
        )),
    }
}

/// The live object an `override set|clear` target names, with its provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Name of the provider that manages the object.
    pub provider: String,
    /// The object that carries the marker.
    pub address: Address,
    /// Set when the target named something inside that object: the whole
    /// object is covered, and the user should be told.
    pub widened_from: Option<Address>,
}

/// Resolves a target among the live objects: an address
/// (`GlobalAccelerator[api]`, or anything inside it, which widens to the
/// accelerator), `Kind/name` (`GlobalAccelerator/api`,
/// `BackendService/app-backend`), a bare name, or a cloud id (ARN, path).
pub fn resolve(text: &str, observed: &[(String, Observed)]) -> Result<Target, String> {
    let text = text.trim();
    let can_carry = |a: &Address| {
        matches!(
            a,
            Address::Accelerator { .. } | Address::BackendService { .. }
        )
    };
    let known = || {
        let names: Vec<String> = observed
            .iter()
            .filter(|(_, o)| can_carry(&o.address))
            .map(|(_, o)| o.address.to_string())
            .collect();
        if names.is_empty() {
            "none are live".to_owned()
        } else {
            format!("live ones: {}", names.join(", "))
        }
    };
    let named: Address = if let Ok(address) = text.parse::<Address>() {
        address
    } else if let Some((kind, name)) = text.split_once('/').filter(|(k, _)| {
        k.eq_ignore_ascii_case("GlobalAccelerator") || k.eq_ignore_ascii_case("BackendService")
    }) {
        if kind.eq_ignore_ascii_case("GlobalAccelerator") {
            Address::Accelerator {
                accelerator: name.to_owned(),
            }
        } else {
            Address::BackendService {
                name: name.to_owned(),
            }
        }
    } else {
        let matches: Vec<&Address> = observed
            .iter()
            .map(|(_, o)| o)
            .filter(|o| can_carry(&o.address))
            .filter(|o| {
                o.cloud_id.as_deref() == Some(text)
                    || matches!(&o.address, Address::Accelerator { accelerator } if accelerator == text)
                    || matches!(&o.address, Address::BackendService { name } if name == text)
            })
            .map(|o| &o.address)
            .collect();
        match matches.as_slice() {
            [one] => (*one).clone(),
            [] => {
                return Err(format!(
                    "no accelerator or backend service named `{text}` is live and managed here; {}",
                    known()
                ));
            }
            several => {
                let names: Vec<String> = several.iter().map(ToString::to_string).collect();
                return Err(format!(
                    "`{text}` names several objects ({}); say which, e.g. GlobalAccelerator/{text} or BackendService/{text}",
                    names.join(", ")
                ));
            }
        }
    };
    let Some(address) = marker_object(&named) else {
        return Err(format!(
            "{named} cannot carry a break-glass override: overrides hold the traffic of a GlobalAccelerator (and everything in it) or a BackendService (and its backends)"
        ));
    };
    let Some((provider, _)) = observed.iter().find(|(_, o)| o.address == address) else {
        return Err(format!(
            "{address} is not a live object managed by this desired state's providers; {}",
            known()
        ));
    };
    Ok(Target {
        provider: provider.clone(),
        widened_from: (named != address).then_some(named),
        address,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use meridian_provider::{EndpointGroupSpec, FieldChange, GaHealthCheck, Resource};

    use super::*;

    fn group(dial: u8, port: u16) -> Resource {
        Resource::EndpointGroup(EndpointGroupSpec {
            region: "eu-central-1".into(),
            traffic_dial: dial,
            health_check: GaHealthCheck {
                protocol: "TCP".into(),
                port,
                path: None,
                interval_seconds: 30,
                threshold_count: 3,
            },
            port_overrides: Vec::new(),
        })
    }

    fn update(accelerator: &str, listener: &str, field: &str) -> Change {
        let (before, after) = if field == "trafficDial" {
            (group(30, 443), group(100, 443))
        } else {
            (group(100, 443), group(100, 8443))
        };
        Change {
            provider: "aws".into(),
            address: Address::EndpointGroup {
                accelerator: accelerator.into(),
                listener: listener.into(),
                region: "eu-central-1".into(),
            },
            action: Action::Update,
            wave: 2,
            before: Some(before),
            after: Some(after),
            cloud_id: Some("arn".into()),
            etag: None,
            fields: vec![FieldChange {
                path: field.into(),
                before: None,
                after: None,
            }],
            reason: "drift".into(),
        }
    }

    use crate::plan::test_plan as plan;

    fn marker(accelerator: &str, until: &str) -> (String, LiveOverride) {
        (
            "aws".into(),
            LiveOverride {
                address: Address::Accelerator {
                    accelerator: accelerator.into(),
                },
                until: until.into(),
            },
        )
    }

    const NOW: u64 = 1_900_000_000; // 2030-03-17T17:46:40Z

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    #[test]
    fn an_active_override_holds_only_traffic_changes_in_its_accelerator() {
        let mut plan = plan(vec![
            update("api", "https", "trafficDial"),
            update("api", "https", "healthCheck.port"),
            update("other", "https", "trafficDial"),
        ]);
        hold(&mut plan, &[marker("api", "2030-03-17T18:00:00Z")], now());
        assert_eq!(plan.overridden.len(), 1);
        assert_eq!(plan.overridden[0].until, "2030-03-17T18:00:00Z");
        assert_eq!(plan.overridden[0].change.fields[0].path, "trafficDial");
        assert_eq!(plan.changes.len(), 2, "{:?}", plan.changes);
        assert_eq!(plan.summary.update, 2);
        assert!(plan.notes.is_empty(), "{:?}", plan.notes);
    }

    #[test]
    fn an_expired_override_holds_nothing_and_says_it_reverts() {
        let mut plan = plan(vec![update("api", "https", "trafficDial")]);
        hold(&mut plan, &[marker("api", "2030-03-17T17:46:40Z")], now());
        assert!(plan.overridden.is_empty());
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(
            plan.notes,
            vec![
                "override of GlobalAccelerator[api] expired at 2030-03-17T17:46:40Z; reverting (1 change(s) there are planned like any drift)"
                    .to_owned()
            ]
        );
    }

    #[test]
    fn an_unparseable_override_is_a_note_not_a_hold() {
        let mut plan = plan(vec![update("api", "https", "trafficDial")]);
        hold(&mut plan, &[marker("api", "tomorrow")], now());
        assert!(plan.overridden.is_empty());
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(plan.notes.len(), 1);
        assert!(
            plan.notes[0].contains("GlobalAccelerator[api]") && plan.notes[0].contains("tomorrow"),
            "{:?}",
            plan.notes
        );
    }

    #[test]
    fn until_is_a_future_time_or_a_duration_from_now() {
        assert_eq!(parse_until("2h", now()), Ok("2030-03-17T19:46:40Z".into()));
        assert_eq!(parse_until("1d", now()), Ok("2030-03-18T17:46:40Z".into()));
        assert_eq!(
            parse_until("2030-03-17T19:46:40+01:00", now()),
            Ok("2030-03-17T18:46:40Z".into())
        );
        let past = parse_until("2030-03-17T17:46:40Z", now()).expect_err("now is not later");
        assert!(past.contains("not in the future"), "{past}");
        assert!(parse_until("soon", now()).is_err());
        assert!(parse_until("0s", now()).is_err());
    }

    #[test]
    fn targets_resolve_by_address_kind_name_and_bare_name() {
        let live = |address: Address, provider: &str, id: &str| {
            (
                provider.to_owned(),
                Observed {
                    resource: group(100, 443),
                    address,
                    cloud_id: Some(id.into()),
                    etag: None,
                    status: None,
                    health: None,
                    owned: true,
                    adopted: false,
                    ip_addresses: Vec::new(),
                },
            )
        };
        let observed = vec![
            live(
                Address::Accelerator {
                    accelerator: "api".into(),
                },
                "aws",
                "arn:ga:api",
            ),
            live(
                Address::BackendService { name: "web".into() },
                "gcp",
                "projects/p/global/backendServices/web",
            ),
            live(
                Address::Accelerator {
                    accelerator: "web".into(),
                },
                "aws",
                "arn:ga:web",
            ),
        ];
        let api = Address::Accelerator {
            accelerator: "api".into(),
        };
        for text in [
            "api",
            "GlobalAccelerator/api",
            "GlobalAccelerator[api]",
            "arn:ga:api",
        ] {
            let target = resolve(text, &observed).expect(text);
            assert_eq!((target.provider.as_str(), &target.address), ("aws", &api));
            assert_eq!(target.widened_from, None);
        }
        let widened = resolve(
            "GlobalAccelerator[api].listener[https].endpointGroup[eu-central-1]",
            &observed,
        )
        .expect("inside an accelerator");
        assert_eq!(widened.address, api);
        assert!(widened.widened_from.is_some());
        let service = resolve("BackendService/web", &observed).expect("backend service");
        assert_eq!(service.provider, "gcp");
        let ambiguous = resolve("web", &observed).expect_err("two objects named web");
        assert!(ambiguous.contains("BackendService/web"), "{ambiguous}");
        let unknown = resolve("nope", &observed).expect_err("unknown");
        assert!(unknown.contains("GlobalAccelerator[api]"), "{unknown}");
        let gone = resolve("GlobalAccelerator/gone", &observed).expect_err("not live");
        assert!(gone.contains("not a live object"), "{gone}");
        let check = resolve("HealthCheck[hc]", &observed).expect_err("cannot carry");
        assert!(check.contains("cannot carry"), "{check}");
    }
}
