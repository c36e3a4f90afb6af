//! Management modes: how much of a document's objects meridian writes, as
//! its `metadata.annotations["meridian.dev/management"]` says
//! ([`Management`]):
//!
//! - `full` (the default): everything the document declares.
//! - `observe`: nothing. Differences are reported as drift (`drift`, the
//!   plan's `unwritten` list) and never written; no object is created or
//!   deleted.
//! - `traffic`: only the traffic levers — an endpoint group's
//!   `trafficDial`, an endpoint's `weight`, a backend's `capacityScaler`.
//!   Every other field keeps the value whoever owns it left live (it is
//!   written back as it is, in the same call, since the cloud's unit of
//!   work is the whole object), and no object is created or deleted.
//!
//! A mode governs the document's objects: an accelerator's listeners,
//! endpoint groups and endpoints, a backend service's backends. Two views
//! keep plan and rollout consistent: [`partition`] moves what may not be
//! written out of a plan's changes (into `plan.unwritten`, shown, never
//! applied), and [`writable`] gives the desired state a rollout may move
//! toward, so that the step schedule and its invariants see only what will
//! be written. This module decides only what is written; it never talks to
//! a cloud.

use std::borrow::Cow;

use meridian_provider::{Action, Address, Change, Resource};
use serde::{Deserialize, Serialize};

use crate::desired::{DesiredResource, DesiredResources};
use crate::model::{DesiredState, Management};
use crate::observe::Live;

/// A difference meridian reports but does not write, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unwritten {
    /// The mode of the document that governs the object.
    pub management: Management,
    /// The change that would make the object as declared (for a `traffic`
    /// object, only the fields other than its lever).
    pub change: Change,
}

/// The fields of an object that are traffic levers.
const LEVER_FIELDS: [&str; 3] = ["trafficDial", "weight", "capacityScaler"];

/// The mode governing `address`: its accelerator's document for everything
/// in Global Accelerator, its backend service's for a backend, its own for
/// a health check or URL map; `full` for everything else and for objects no
/// document declares.
pub fn management_of(state: &DesiredState, address: &Address) -> Management {
    match address {
        Address::Accelerator { accelerator }
        | Address::Listener { accelerator, .. }
        | Address::EndpointGroup { accelerator, .. }
        | Address::Endpoint { accelerator, .. } => state
            .accelerator(accelerator)
            .map(|d| Management::of(&d.doc.metadata)),
        Address::BackendService { name } | Address::Backend { service: name, .. } => state
            .backend_service(name)
            .map(|d| Management::of(&d.doc.metadata)),
        Address::HealthCheck { name } => state
            .health_checks
            .iter()
            .find(|d| d.name() == name)
            .map(|d| Management::of(&d.doc.metadata)),
        Address::UrlMap { name } => state
            .url_maps
            .iter()
            .find(|d| d.name() == name)
            .map(|d| Management::of(&d.doc.metadata)),
        _ => None,
    }
    .unwrap_or_default()
}

/// Whether any document asks for less than `full` (the common case asks
/// for nothing, and costs nothing).
pub fn any_limited(state: &DesiredState) -> bool {
    let limited =
        |metadata: &crate::model::raw::Metadata| Management::of(metadata) != Management::Full;
    state.accelerators.iter().any(|d| limited(&d.doc.metadata))
        || state
            .backend_services
            .iter()
            .any(|d| limited(&d.doc.metadata))
        || state.health_checks.iter().any(|d| limited(&d.doc.metadata))
        || state.url_maps.iter().any(|d| limited(&d.doc.metadata))
}

/// `live` with the traffic lever of `want` (the exact declared value).
fn with_lever_of(live: &Resource, want: &Resource) -> Resource {
    let mut out = live.clone();
    match (&mut out, want) {
        (Resource::EndpointGroup(l), Resource::EndpointGroup(w)) => l.traffic_dial = w.traffic_dial,
        (Resource::Endpoint(l), Resource::Endpoint(w)) => l.weight = w.weight,
        (Resource::Backend(l), Resource::Backend(w)) => l.capacity_scaler = w.capacity_scaler,
        _ => {}
    }
    out
}

/// Moves what the documents' modes do not let meridian write out of
/// `changes`: an `observe` object's changes whole, a `traffic` object's
/// creates, deletes and fields other than its lever. Returns what stays
/// and what is only reported.
pub fn partition(state: &DesiredState, changes: Vec<Change>) -> (Vec<Change>, Vec<Unwritten>) {
    if !any_limited(state) {
        return (changes, Vec::new());
    }
    let mut kept = Vec::with_capacity(changes.len());
    let mut unwritten = Vec::new();
    for mut change in changes {
        let management = management_of(state, &change.address);
        if management != Management::Full && change.action == Action::Adopt {
            // An object meridian only observes (or only moves the traffic
            // of) is never adopted: its marker is not written. What differs
            // besides meridian's own listener names is reported as any
            // other difference.
            change
                .fields
                .retain(|f| !f.path.starts_with("listenerNames"));
            if change.fields.is_empty() {
                continue;
            }
            change.action = Action::Update;
        }
        match management {
            Management::Full => kept.push(change),
            Management::Observe => unwritten.push(Unwritten { management, change }),
            Management::Traffic => {
                let (levers, others): (Vec<_>, Vec<_>) = change
                    .fields
                    .iter()
                    .cloned()
                    .partition(|f| LEVER_FIELDS.contains(&f.path.as_str()));
                let (Action::Update, Some(before), Some(after)) =
                    (change.action, &change.before, &change.after)
                else {
                    unwritten.push(Unwritten { management, change });
                    continue;
                };
                if !levers.is_empty() {
                    kept.push(Change {
                        after: Some(with_lever_of(before, after)),
                        fields: levers,
                        reason: format!(
                            "{} (traffic only: meridian.dev/management is traffic)",
                            change.reason
                        ),
                        ..change.clone()
                    });
                }
                if !others.is_empty() {
                    unwritten.push(Unwritten {
                        management,
                        change: Change {
                            fields: others,
                            ..change
                        },
                    });
                }
            }
        }
    }
    (kept, unwritten)
}

/// Desired state as meridian may move it: an `observe` object as it is
/// live, a `traffic` object as it is live but for its lever, and neither
/// created nor (when live but no longer declared) deleted.
pub fn writable<'d>(
    state: &DesiredState,
    desired: Cow<'d, DesiredResources>,
    live: &Live,
    providers: &std::collections::BTreeMap<Address, String>,
) -> Cow<'d, DesiredResources> {
    if !any_limited(state) {
        return desired;
    }
    let mut out = desired.into_owned();
    let limited: Vec<(Address, Management)> = out
        .keys()
        .map(|a| (a.clone(), management_of(state, a)))
        .filter(|(_, m)| *m != Management::Full)
        .collect();
    for (address, management) in limited {
        match live.get(&address) {
            None => {
                out.remove(&address);
            }
            Some(observed) => {
                if let Some(want) = out.get_mut(&address) {
                    // Never adopted: its marker is not meridian's to write.
                    want.external_id = None;
                    want.resource = match management {
                        Management::Traffic => with_lever_of(&observed.resource, &want.resource),
                        _ => observed.resource.clone(),
                    };
                }
            }
        }
    }
    for (address, observed) in live {
        if out.contains_key(address) {
            continue;
        }
        let management = management_of(state, address);
        if management != Management::Full {
            out.insert(
                address.clone(),
                DesiredResource {
                    provider: providers.get(address).cloned().unwrap_or_default(),
                    resource: observed.resource.clone(),
                    source: format!("{address} (left alone: management {})", management.as_str()),
                    external_id: None,
                },
            );
        }
    }
    Cow::Owned(out)
}
