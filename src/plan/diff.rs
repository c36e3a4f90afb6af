//! The diff: a pure function of desired and observed state.
//!
//! It orders changes into waves so that apply is make-before-break: parents
//! are created before children and deleted after them, new endpoints and
//! backends are added before old ones are removed, an endpoint group or
//! backend being removed is first drained to zero, and an accelerator is
//! disabled before it is deleted. Output order is deterministic.

use std::collections::{BTreeMap, BTreeSet};

use meridian_provider::{Action, Address, Change, Family, FieldChange, Observed, Resource};
use serde_json::Value;

use crate::desired::DesiredResources;

/// Drains (dial or scaler to 0, accelerator disabled) of objects about to be
/// deleted run here: after every create and update, so replacement endpoint
/// groups, endpoints and backends already carry traffic when the old ones stop.
const DRAIN_WAVE: u32 = 4;
/// Waves of deletions start here, after every drain.
const DELETE_WAVE: u32 = 10;

/// Field-level differences between two resource values, in field order.
pub fn field_changes(before: Option<&Resource>, after: Option<&Resource>) -> Vec<FieldChange> {
    let mut out = Vec::new();
    let before = before.map(Resource::fields).unwrap_or(Value::Null);
    let after = after.map(Resource::fields).unwrap_or(Value::Null);
    walk("", &before, &after, &mut out);
    out
}

fn walk(path: &str, before: &Value, after: &Value, out: &mut Vec<FieldChange>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let mut keys: Vec<&String> = a.keys().collect();
            keys.extend(b.keys().filter(|k| !a.contains_key(*k)));
            for key in keys {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                walk(
                    &child,
                    b.get(key).unwrap_or(&Value::Null),
                    a.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Null, Value::Object(a)) if path.is_empty() => {
            for (key, value) in a {
                walk(key, &Value::Null, value, out);
            }
        }
        (Value::Object(b), Value::Null) if path.is_empty() => {
            for (key, value) in b {
                walk(key, value, &Value::Null, out);
            }
        }
        _ if before == after => {}
        _ => out.push(FieldChange {
            path: path.to_owned(),
            before: (!before.is_null()).then(|| before.clone()),
            after: (!after.is_null()).then(|| after.clone()),
        }),
    }
}

fn wave(address: &Address, action: Action) -> u32 {
    match action {
        Action::Create | Action::Update | Action::Adopt => address.depth(),
        Action::Delete => DELETE_WAVE + (3 - address.depth()),
    }
}

fn describe_fields(fields: &[FieldChange]) -> String {
    let names: Vec<&str> = fields.iter().map(|f| f.path.as_str()).collect();
    names.join(", ")
}

/// Computes the changes that make `observed` equal `desired`.
///
/// `observed` holds every object of every complete family, tagged with the
/// provider that observed it; `gaps` lists (provider, family) pairs that
/// could not be observed: nothing is proposed inside them.
pub fn diff(
    desired: &DesiredResources,
    observed: &[(String, Observed)],
    gaps: &BTreeSet<(String, Family)>,
) -> Vec<Change> {
    // A listener adopted under its desired name keeps the cloud listener;
    // its new name is written with the accelerator's tags (an accelerator
    // update), its ports, if they differ, by the listener's own update.
    let (observed, _) = adopt_orphan_listeners(desired, observed);
    let live: BTreeMap<&Address, (&String, &Observed)> =
        observed.iter().map(|(p, o)| (&o.address, (p, o))).collect();
    let mut changes = Vec::new();
    for (address, want) in desired {
        if gaps.contains(&(want.provider.clone(), address.family())) {
            continue;
        }
        match live.get(address) {
            None => changes.push(Change {
                provider: want.provider.clone(),
                address: address.clone(),
                action: Action::Create,
                wave: wave(address, Action::Create),
                before: None,
                after: Some(want.resource.clone()),
                cloud_id: None,
                etag: None,
                fields: field_changes(None, Some(&want.resource)),
                reason: format!("declared in {} but absent from the cloud", want.source),
            }),
            // Adopted only when its document pins it: desired state as
            // the rollout may move it (`managed::writable`) unpins what
            // meridian only observes or moves the traffic of.
            Some((_, have)) if !have.owned && want.external_id.is_some() => {
                let fields = field_changes(Some(&have.resource), Some(&want.resource));
                changes.push(Change {
                    provider: want.provider.clone(),
                    address: address.clone(),
                    action: Action::Adopt,
                    wave: wave(address, Action::Adopt),
                    before: Some(have.resource.clone()),
                    after: Some(want.resource.clone()),
                    cloud_id: have.cloud_id.clone(),
                    etag: have.etag.clone(),
                    reason: if fields.is_empty() {
                        format!("{} names this live object, which meridian does not own yet: adopt it as it is", want.source)
                    } else {
                        format!(
                            "{} names this live object, which meridian does not own yet: adopt it, then write {}",
                            want.source,
                            describe_fields(&fields)
                        )
                    },
                    fields,
                })
            }
            Some((_, have)) if have.resource != want.resource => {
                let fields = field_changes(Some(&have.resource), Some(&want.resource));
                changes.push(Change {
                    provider: want.provider.clone(),
                    address: address.clone(),
                    action: Action::Update,
                    wave: wave(address, Action::Update),
                    before: Some(have.resource.clone()),
                    after: Some(want.resource.clone()),
                    cloud_id: have.cloud_id.clone(),
                    etag: have.etag.clone(),
                    reason: format!("{} differs from {}", describe_fields(&fields), want.source),
                    fields,
                })
            }
            Some(_) => {}
        }
    }
    for (address, (provider, have)) in &live {
        // Never delete what meridian does not own: an unowned object is
        // observed only because a document claims it or its mesh.
        if desired.contains_key(*address) || !have.owned {
            continue;
        }
        // Make-before-break: stop traffic before removing what carries it.
        let drained = match &have.resource {
            Resource::Accelerator(spec) if spec.enabled => Some((
                Resource::Accelerator(meridian_provider::AcceleratorSpec {
                    enabled: false,
                    ..spec.clone()
                }),
                "disable before deleting: Global Accelerator deletes only disabled accelerators",
            )),
            Resource::EndpointGroup(spec)
                if spec.traffic_dial > 0 && parent_survives(address, desired) =>
            {
                Some((
                    Resource::EndpointGroup(meridian_provider::EndpointGroupSpec {
                        traffic_dial: 0,
                        ..spec.clone()
                    }),
                    "drain the traffic dial to 0 before deleting the endpoint group",
                ))
            }
            Resource::Backend(spec)
                if spec.capacity_scaler > 0.0 && parent_survives(address, desired) =>
            {
                Some((
                    Resource::Backend(meridian_provider::BackendSpec {
                        capacity_scaler: 0.0,
                        ..spec.clone()
                    }),
                    "drain the capacity scaler to 0 before removing the backend",
                ))
            }
            _ => None,
        };
        // The delete finds the object as the drain leaves it: that is the
        // value its write compares the live object with.
        let mut deleted_from = have.resource.clone();
        if let Some((resource, reason)) = drained {
            deleted_from = resource.clone();
            changes.push(Change {
                provider: (*provider).clone(),
                address: (*address).clone(),
                action: Action::Update,
                wave: DRAIN_WAVE,
                fields: field_changes(Some(&have.resource), Some(&resource)),
                before: Some(have.resource.clone()),
                after: Some(resource),
                cloud_id: have.cloud_id.clone(),
                etag: have.etag.clone(),
                reason: reason.to_owned(),
            });
        }
        changes.push(Change {
            provider: (*provider).clone(),
            address: (*address).clone(),
            action: Action::Delete,
            wave: wave(address, Action::Delete),
            fields: field_changes(Some(&deleted_from), None),
            before: Some(deleted_from),
            after: None,
            cloud_id: have.cloud_id.clone(),
            etag: have.etag.clone(),
            reason: "managed by meridian but no longer declared in desired state".to_owned(),
        });
    }
    make_room_in_full_endpoint_groups(&mut changes, &observed);
    changes.sort_by(|a, b| (a.wave, &a.address, a.action).cmp(&(b.wave, &b.address, b.action)));
    changes
}

/// Global Accelerator allows at most this many endpoints per group.
pub const ENDPOINTS_PER_GROUP: usize = 10;

/// Make-before-break adds new endpoints before removing old ones, but a
/// group at its quota has no room: adding first would fail every time. For
/// such a group, just enough removals (lowest weight first) move ahead of the
/// additions (removals at wave 3, additions at wave 5); every other endpoint
/// keeps the usual order.
fn make_room_in_full_endpoint_groups(changes: &mut [Change], observed: &[(String, Observed)]) {
    let mut live: BTreeMap<Address, usize> = BTreeMap::new();
    for (_, o) in observed {
        if let (Address::Endpoint { .. }, Some(group)) = (&o.address, o.address.parent()) {
            *live.entry(group).or_default() += 1;
        }
    }
    // Endpoint creations per group, counted in one pass over the changes.
    let mut creations: BTreeMap<Address, usize> = BTreeMap::new();
    for change in changes.iter() {
        if change.action == Action::Create
            && matches!(change.address, Address::Endpoint { .. })
            && let Some(group) = change.address.parent()
        {
            *creations.entry(group).or_default() += 1;
        }
    }
    for (group, count) in live {
        let adds = creations.get(&group).copied().unwrap_or(0);
        let overflow = (count + adds).saturating_sub(ENDPOINTS_PER_GROUP);
        if adds == 0 || overflow == 0 {
            continue;
        }
        let mut removals: Vec<(u8, usize)> = changes
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.action == Action::Delete
                    && c.address.parent().as_ref() == Some(&group)
                    && matches!(c.address, Address::Endpoint { .. })
            })
            .map(|(i, c)| {
                (
                    match &c.before {
                        Some(Resource::Endpoint(e)) => e.weight,
                        _ => u8::MAX,
                    },
                    i,
                )
            })
            .collect();
        removals.sort();
        for (_, i) in removals.into_iter().take(overflow) {
            changes[i].wave = 3;
            changes[i].reason = format!(
                "{} (the endpoint group is at its quota of {ENDPOINTS_PER_GROUP} endpoints: room is made before the new ones are added)",
                changes[i].reason
            );
        }
        for change in changes.iter_mut().filter(|c| {
            c.action == Action::Create
                && c.address.parent().as_ref() == Some(&group)
                && matches!(c.address, Address::Endpoint { .. })
        }) {
            change.wave = 5;
        }
    }
}

/// A live listener that desired state no longer names — renamed, or observed
/// as `~<id>` because its name tag was lost when an apply stopped between
/// `CreateListener` and `TagResource` — is matched to a missing desired
/// listener of the same accelerator with the same protocol and overlapping
/// ports, and renamed with its endpoint groups. The plan then keeps the cloud
/// listener (and its traffic) instead of creating a second listener on ports
/// the first still holds, which Global Accelerator would refuse.
fn adopt_orphan_listeners(
    desired: &DesiredResources,
    observed: &[(String, Observed)],
) -> (Vec<(String, Observed)>, BTreeSet<Address>) {
    let present: BTreeSet<&Address> = observed.iter().map(|(_, o)| &o.address).collect();
    let mut renames: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut adopted = BTreeSet::new();
    for (_, orphan) in observed {
        let (
            Address::Listener {
                accelerator,
                listener,
            },
            Resource::Listener(spec),
        ) = (&orphan.address, &orphan.resource)
        else {
            continue;
        };
        // Candidates: listeners whose name tag was lost (`~id`) and listeners
        // renamed in desired state. Either way the cloud object stays; only
        // meridian's name for it changes, so no second listener is created on
        // ports the first still holds.
        if desired.contains_key(&orphan.address) {
            continue;
        }
        let candidate =
            desired
                .iter()
                .find_map(|(address, want)| match (address, &want.resource) {
                    (
                        Address::Listener {
                            accelerator: a,
                            listener: name,
                        },
                        Resource::Listener(wanted),
                    ) if a == accelerator
                        && !present.contains(address)
                        && !adopted.contains(address)
                        && wanted.protocol == spec.protocol
                        && wanted.port_ranges.iter().any(|w| {
                            spec.port_ranges
                                .iter()
                                .any(|h| w.from <= h.to && h.from <= w.to)
                        }) =>
                    {
                        Some((address.clone(), name.clone()))
                    }
                    _ => None,
                });
        if let Some((address, name)) = candidate {
            renames.insert((accelerator.clone(), listener.clone()), name);
            adopted.insert(address);
        }
    }
    let renamed = observed
        .iter()
        .map(|(provider, o)| {
            let mut o = o.clone();
            match &mut o.address {
                Address::Listener {
                    accelerator,
                    listener,
                }
                | Address::EndpointGroup {
                    accelerator,
                    listener,
                    ..
                }
                | Address::Endpoint {
                    accelerator,
                    listener,
                    ..
                } => {
                    if let Some(name) = renames.get(&(accelerator.clone(), listener.clone())) {
                        *listener = name.clone();
                    }
                }
                _ => {}
            }
            (provider.clone(), o)
        })
        .collect();
    (renamed, adopted)
}

fn parent_survives(address: &Address, desired: &DesiredResources) -> bool {
    address
        .parent()
        .is_some_and(|parent| desired.contains_key(&parent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::DesiredResource;
    use meridian_provider::{EndpointGroupSpec, GaHealthCheck};

    fn group(dial: u8) -> Resource {
        Resource::EndpointGroup(EndpointGroupSpec {
            region: "eu-central-1".into(),
            traffic_dial: dial,
            health_check: GaHealthCheck {
                protocol: "TCP".into(),
                port: 443,
                path: None,
                interval_seconds: 30,
                threshold_count: 3,
            },
            port_overrides: vec![],
        })
    }

    fn address() -> Address {
        Address::EndpointGroup {
            accelerator: "api".into(),
            listener: "https".into(),
            region: "eu-central-1".into(),
        }
    }

    fn observed(resource: Resource) -> (String, Observed) {
        (
            "aws".into(),
            Observed {
                address: address(),
                resource,
                cloud_id: Some("arn:x".into()),
                etag: None,
                status: None,
                health: None,
                owned: true,
                adopted: false,
                ip_addresses: Vec::new(),
            },
        )
    }

    #[test]
    fn a_zero_dial_is_a_real_value() {
        let mut desired = DesiredResources::new();
        desired.insert(
            address(),
            DesiredResource {
                provider: "aws".into(),
                resource: group(0),
                source: "GlobalAccelerator/api".into(),
                external_id: None,
            },
        );
        let changes = diff(&desired, &[observed(group(100))], &BTreeSet::new());
        assert_eq!(changes.len(), 1);
        assert_eq!(
            changes[0].fields,
            vec![FieldChange {
                path: "trafficDial".into(),
                before: Some(100.into()),
                after: Some(0.into())
            }]
        );
        let none = diff(&desired, &[observed(group(0))], &BTreeSet::new());
        assert!(none.is_empty());
    }

    #[test]
    fn nothing_is_proposed_inside_an_unobserved_family() {
        let mut desired = DesiredResources::new();
        desired.insert(
            address(),
            DesiredResource {
                provider: "aws".into(),
                resource: group(50),
                source: "x".into(),
                external_id: None,
            },
        );
        let gaps = BTreeSet::from([("aws".to_owned(), Family::GlobalAccelerator)]);
        assert!(diff(&desired, &[], &gaps).is_empty());
    }
}
