//! Units of work: the changes that one cloud API object's calls carry
//! together, and the API writes they take.
//!
//! meridian plans per field and per object, but writes per cloud API object,
//! in the calls the cloud offers for it: an endpoint group is created with
//! its endpoints inline, endpoints are added and removed ten to a call, a
//! backend service is inserted with its backends and patched once per step
//! with every backend change of that step. Grouping is a pure function of
//! the ordered changes and the member counts observed, so a plan can state
//! the writes it will make before anything runs, and the providers carry
//! out exactly that ([`planned_writes`] is the one statement of the rule;
//! the providers' executors follow [`EndpointGroupWork`] and
//! [`BackendServiceWork`]).
//!
//! Grouping never reorders what make-before-break ordered: only a child's
//! create or update at its natural wave joins its parent's create or
//! update, and a child's delete joins its parent's delete.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Action, Address, Change, Family};

/// The most endpoints one `CreateEndpointGroup`, `UpdateEndpointGroup`,
/// `AddEndpoints` or `RemoveEndpoints` call carries (the API's array limit).
pub const ENDPOINTS_PER_CALL: usize = 10;

/// The cloud API object a change is written through: an endpoint through
/// its endpoint group, a backend through its backend service, every other
/// object itself.
pub fn api_object(address: &Address) -> Address {
    match address {
        Address::Endpoint { .. } | Address::Backend { .. } => {
            address.parent().unwrap_or_else(|| address.clone())
        }
        other => other.clone(),
    }
}

/// Whether an address is a member written through its parent object.
fn is_member(address: &Address) -> bool {
    matches!(address, Address::Endpoint { .. } | Address::Backend { .. })
}

/// One API write of a plan or an apply: an operation and how many calls of
/// it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ApiWrite {
    /// The cloud operation, e.g. `CreateEndpointGroup`, `backendServices.patch`.
    pub operation: String,
    /// Calls of it.
    pub count: u32,
}

/// A unit of work as a plan states it: which of the plan's changes one API
/// object's calls carry, in which wave, with which writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedUnit {
    /// The `Provider` document that carries it out.
    pub provider: String,
    /// The cloud API object written.
    pub object: Address,
    /// Execution wave: every unit of wave N lands before any of wave N+1.
    pub wave: u32,
    /// Indices into the plan's `changes`, parent first.
    pub changes: Vec<usize>,
    /// Members (endpoints, backends) the object holds once this unit has
    /// landed, for objects that have members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members_after: Option<usize>,
    /// The API writes this unit takes.
    pub writes: Vec<ApiWrite>,
}

/// A unit of work as a provider receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitOfWork {
    /// The cloud API object written.
    pub object: Address,
    /// The changes, parent first.
    pub changes: Vec<Change>,
    /// Members the object holds once the unit has landed, as planned.
    pub members_after: Option<usize>,
}

impl UnitOfWork {
    /// A short description for messages: the object and the changes' count.
    pub fn describe(&self) -> String {
        match self.changes.len() {
            1 => format!(
                "{} {}",
                self.changes[0].action.symbol(),
                self.changes[0].address
            ),
            n => format!("{} ({n} changes)", self.object),
        }
    }

    /// The change to the object itself, if the unit has one.
    pub fn own_change(&self) -> Option<&Change> {
        self.changes.iter().find(|c| c.address == self.object)
    }

    /// The member changes (endpoints, backends) of the unit.
    pub fn member_changes(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.address != self.object)
    }
}

/// Groups changes, already in execution order, into units of work.
/// `live_members` counts the members each object holds live (objects
/// absent from it hold none).
pub fn group(changes: &[Change], live_members: &BTreeMap<Address, usize>) -> Vec<PlannedUnit> {
    // The wave each parent object is created or updated in, and whether it
    // is deleted, so members can join it.
    let mut parent_write: BTreeMap<(&str, Address), u32> = BTreeMap::new();
    let mut parent_delete: BTreeMap<(&str, Address), u32> = BTreeMap::new();
    for change in changes.iter().filter(|c| !is_member(&c.address)) {
        let key = (change.provider.as_str(), change.address.clone());
        match change.action {
            Action::Create | Action::Update | Action::Adopt
                if change.wave == change.address.depth() =>
            {
                parent_write.entry(key).or_insert(change.wave);
            }
            Action::Delete => {
                parent_delete.insert(key, change.wave);
            }
            _ => {}
        }
    }
    let mut units: BTreeMap<(u32, String, Address), PlannedUnit> = BTreeMap::new();
    for (index, change) in changes.iter().enumerate() {
        let object = api_object(&change.address);
        let key = (change.provider.as_str(), object.clone());
        let wave = if is_member(&change.address) {
            let natural = change.wave == change.address.depth();
            match change.action {
                Action::Create | Action::Update | Action::Adopt if natural => {
                    parent_write.get(&key).copied().unwrap_or(change.wave)
                }
                Action::Delete => parent_delete.get(&key).copied().unwrap_or(change.wave),
                _ => change.wave,
            }
        } else {
            change.wave
        };
        units
            .entry((wave, change.provider.clone(), object.clone()))
            .or_insert_with(|| PlannedUnit {
                provider: change.provider.clone(),
                object,
                wave,
                changes: Vec::new(),
                members_after: None,
                writes: Vec::new(),
            })
            .changes
            .push(index);
    }
    let mut members: BTreeMap<(String, Address), usize> = live_members
        .iter()
        .map(|(a, n)| ((String::new(), a.clone()), *n))
        .collect();
    let mut out: Vec<PlannedUnit> = units.into_values().collect();
    for unit in &mut out {
        // Parent first, then members in plan order.
        unit.changes
            .sort_by_key(|i| (changes[*i].address != unit.object, *i));
        if matches!(
            unit.object,
            Address::EndpointGroup { .. } | Address::BackendService { .. }
        ) {
            let count = members
                .entry((String::new(), unit.object.clone()))
                .or_insert(0);
            let deleted = unit.changes.iter().any(|i| {
                changes[*i].address == unit.object && changes[*i].action == Action::Delete
            });
            for i in &unit.changes {
                let change = &changes[*i];
                if change.address == unit.object {
                    continue;
                }
                match change.action {
                    Action::Create => *count += 1,
                    Action::Delete => *count = count.saturating_sub(1),
                    Action::Update | Action::Adopt => {}
                }
            }
            if deleted {
                *count = 0;
            }
            unit.members_after = Some(*count);
        }
        let work = UnitOfWork {
            object: unit.object.clone(),
            changes: unit.changes.iter().map(|i| changes[*i].clone()).collect(),
            members_after: unit.members_after,
        };
        unit.writes = planned_writes(&work);
    }
    out
}

/// How an endpoint group unit is written, decided once for the plan and the
/// executor alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointGroupWork {
    /// `CreateEndpointGroup` with the first ten new endpoints inline, the
    /// rest by `AddEndpoints`, ten to a call.
    Create {
        /// Endpoints added after the create.
        overflow: usize,
    },
    /// `DeleteEndpointGroup`: its endpoints go with it.
    Delete,
    /// One `UpdateEndpointGroup` carrying the group's settings and its
    /// whole endpoint list (at most ten): updates, additions and removals.
    UpdateWithEndpoints,
    /// Calls each for its part: `UpdateEndpointGroup` for the group's own
    /// settings (without an endpoint list), `AddEndpoints` for new and
    /// changed endpoints, `RemoveEndpoints` for removed ones, ten to a call.
    Separate {
        /// Whether the group's own settings change.
        group: bool,
        /// Endpoints added or changed.
        upserts: usize,
        /// Endpoints removed.
        removes: usize,
    },
}

impl EndpointGroupWork {
    /// The way to write `unit`, an endpoint group with its endpoints.
    pub fn of(unit: &UnitOfWork) -> Self {
        let own = unit.own_change().map(|c| c.action);
        let count = |action: Action| unit.member_changes().filter(|c| c.action == action).count();
        let (adds, updates, removes) = (
            count(Action::Create),
            count(Action::Update),
            count(Action::Delete),
        );
        match own {
            Some(Action::Create) => Self::Create {
                overflow: adds.saturating_sub(ENDPOINTS_PER_CALL),
            },
            Some(Action::Delete) => Self::Delete,
            _ => {
                let fits = unit.members_after.is_some_and(|n| n <= ENDPOINTS_PER_CALL);
                let group = own == Some(Action::Update);
                if updates > 0 && fits || group && fits && adds + removes > 0 {
                    Self::UpdateWithEndpoints
                } else {
                    Self::Separate {
                        group,
                        upserts: adds + updates,
                        removes,
                    }
                }
            }
        }
    }
}

/// How a backend service unit is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendServiceWork {
    /// `backendServices.insert` with its backends inline.
    Insert,
    /// `backendServices.delete`: its backends go with it.
    Delete,
    /// One read, then one `backendServices.patch` under the fingerprint just
    /// read, carrying the service's changed fields and every backend change.
    Patch,
    /// As `Patch`, but a merge patch cannot empty the backend list: the
    /// service is replaced (`backendServices.update`) as read, changed.
    Replace,
}

impl BackendServiceWork {
    /// The way to write `unit`, a backend service with its backends.
    pub fn of(unit: &UnitOfWork) -> Self {
        match unit.own_change().map(|c| c.action) {
            Some(Action::Create) => Self::Insert,
            Some(Action::Delete) => Self::Delete,
            _ if unit.members_after == Some(0) => Self::Replace,
            _ => Self::Patch,
        }
    }
}

fn calls(n: usize) -> u32 {
    u32::try_from(n.div_ceil(ENDPOINTS_PER_CALL)).unwrap_or(u32::MAX)
}

/// The API writes carrying out `unit` takes: the one statement of the
/// change → call mapping that plans show and providers follow.
pub fn planned_writes(unit: &UnitOfWork) -> Vec<ApiWrite> {
    let mut out: BTreeMap<&str, u32> = BTreeMap::new();
    let mut add = |operation: &'static str, n: u32| {
        if n > 0 {
            *out.entry(operation).or_default() += n;
        }
    };
    let own = unit.own_change();
    match (&unit.object, own.map(|c| c.action)) {
        (Address::Accelerator { .. }, Some(Action::Create)) => add("CreateAccelerator", 1),
        (Address::Accelerator { .. }, Some(Action::Delete)) => add("DeleteAccelerator", 1),
        (Address::Accelerator { .. }, Some(action @ (Action::Update | Action::Adopt))) => {
            let change = own.map(|c| &c.fields[..]).unwrap_or_default();
            let settings = change
                .iter()
                .any(|f| matches!(f.path.as_str(), "name" | "enabled" | "ipAddressType"));
            let tagged = change.iter().any(|f| {
                (f.path.starts_with("tags") || f.path.starts_with("listenerNames"))
                    && f.after.is_some()
            });
            let untagged = change.iter().any(|f| {
                (f.path.starts_with("tags") || f.path.starts_with("listenerNames"))
                    && f.after.is_none()
            });
            add("UpdateAccelerator", u32::from(settings));
            // Adoption writes the ownership tags, with any tag changes.
            add("TagResource", u32::from(tagged || action == Action::Adopt));
            add("UntagResource", u32::from(untagged));
        }
        (Address::Listener { .. }, Some(Action::Create)) => add("CreateListener", 1),
        (Address::Listener { .. }, Some(Action::Update)) => add("UpdateListener", 1),
        (Address::Listener { .. }, Some(Action::Delete)) => add("DeleteListener", 1),
        (Address::EndpointGroup { .. }, _) => match EndpointGroupWork::of(unit) {
            EndpointGroupWork::Create { overflow } => {
                add("CreateEndpointGroup", 1);
                add("AddEndpoints", calls(overflow));
            }
            EndpointGroupWork::Delete => add("DeleteEndpointGroup", 1),
            EndpointGroupWork::UpdateWithEndpoints => add("UpdateEndpointGroup", 1),
            EndpointGroupWork::Separate {
                group,
                upserts,
                removes,
            } => {
                add("UpdateEndpointGroup", u32::from(group));
                add("AddEndpoints", calls(upserts));
                add("RemoveEndpoints", calls(removes));
            }
        },
        (Address::HealthCheck { .. }, Some(Action::Adopt))
            if own.is_some_and(|c| c.fields.is_empty()) =>
        {
            add("healthChecks.patch", 1)
        }
        (Address::HealthCheck { .. }, Some(action)) => add(
            match action {
                Action::Create => "healthChecks.insert",
                Action::Update | Action::Adopt => "healthChecks.update",
                Action::Delete => "healthChecks.delete",
            },
            1,
        ),
        (Address::UrlMap { .. }, Some(action)) => add(
            match action {
                Action::Create => "urlMaps.insert",
                Action::Update | Action::Adopt => "urlMaps.patch",
                Action::Delete => "urlMaps.delete",
            },
            1,
        ),
        (Address::BackendService { .. }, _) => add(
            match BackendServiceWork::of(unit) {
                BackendServiceWork::Insert => "backendServices.insert",
                BackendServiceWork::Delete => "backendServices.delete",
                BackendServiceWork::Patch => "backendServices.patch",
                BackendServiceWork::Replace => "backendServices.update",
            },
            1,
        ),
        (Address::TransitGateway { .. }, Some(Action::Adopt)) => {
            add("CreateTags", 1);
            let fields = own.map(|c| c.fields.len()).unwrap_or(0);
            add("ModifyTransitGateway", u32::from(fields > 0));
        }
        (Address::TransitGateway { .. }, Some(action)) => add(
            match action {
                Action::Create => "CreateTransitGateway",
                Action::Delete => "DeleteTransitGateway",
                Action::Update | Action::Adopt => "ModifyTransitGateway",
            },
            1,
        ),
        (Address::Peering { .. }, Some(Action::Create)) => {
            add("CreateTransitGatewayPeeringAttachment", 1);
            add("AcceptTransitGatewayPeeringAttachment", 1);
        }
        (Address::Peering { .. }, Some(Action::Update)) => {
            add("AcceptTransitGatewayPeeringAttachment", 1)
        }
        (Address::Peering { .. }, Some(Action::Adopt)) => {
            add("CreateTags", 1);
            let accepts = own.is_some_and(|c| !c.fields.is_empty());
            add("AcceptTransitGatewayPeeringAttachment", u32::from(accepts));
        }
        (Address::Peering { .. }, Some(Action::Delete)) => {
            add("DeleteTransitGatewayPeeringAttachment", 1)
        }
        (Address::Route { .. }, Some(action)) => add(
            match action {
                Action::Create => "CreateTransitGatewayRoute",
                Action::Update | Action::Adopt => "ReplaceTransitGatewayRoute",
                Action::Delete => "DeleteTransitGatewayRoute",
            },
            1,
        ),
        _ => {}
    }
    out.into_iter()
        .map(|(operation, count)| ApiWrite {
            operation: operation.to_owned(),
            count,
        })
        .collect()
}

/// Writes summed by operation.
pub fn total_writes<'a>(writes: impl IntoIterator<Item = &'a ApiWrite>) -> Vec<ApiWrite> {
    let mut out: BTreeMap<&str, u32> = BTreeMap::new();
    for write in writes {
        *out.entry(write.operation.as_str()).or_default() += write.count;
    }
    out.into_iter()
        .map(|(operation, count)| ApiWrite {
            operation: operation.to_owned(),
            count,
        })
        .collect()
}

/// The family a unit's API object belongs to.
pub fn family(unit: &PlannedUnit) -> Family {
    unit.object.family()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BackendSpec, EndpointGroupSpec, EndpointSpec, GaHealthCheck, Resource};

    fn group_address() -> Address {
        Address::EndpointGroup {
            accelerator: "api".into(),
            listener: "https".into(),
            region: "eu-central-1".into(),
        }
    }

    fn endpoint_address(id: &str) -> Address {
        Address::Endpoint {
            accelerator: "api".into(),
            listener: "https".into(),
            region: "eu-central-1".into(),
            endpoint: id.into(),
        }
    }

    fn group_spec(dial: u8) -> Resource {
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
            port_overrides: Vec::new(),
        })
    }

    fn endpoint_spec(id: &str, weight: u8) -> Resource {
        Resource::Endpoint(EndpointSpec {
            id: id.into(),
            weight,
            client_ip_preservation: false,
        })
    }

    fn change(address: Address, action: Action, wave: u32, after: Option<Resource>) -> Change {
        Change {
            provider: "aws".into(),
            address,
            action,
            wave,
            before: None,
            after,
            cloud_id: None,
            etag: None,
            fields: Vec::new(),
            reason: String::new(),
        }
    }

    fn writes(units: &[PlannedUnit]) -> Vec<ApiWrite> {
        total_writes(units.iter().flat_map(|u| &u.writes))
    }

    fn write(operation: &str, count: u32) -> ApiWrite {
        ApiWrite {
            operation: operation.into(),
            count,
        }
    }

    #[test]
    fn a_new_endpoint_group_carries_its_endpoints_inline() {
        let mut changes = vec![change(
            group_address(),
            Action::Create,
            2,
            Some(group_spec(100)),
        )];
        for i in 0..4 {
            let id = format!("e{i}");
            changes.push(change(
                endpoint_address(&id),
                Action::Create,
                3,
                Some(endpoint_spec(&id, 128)),
            ));
        }
        let units = group(&changes, &BTreeMap::new());
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].changes, vec![0, 1, 2, 3, 4]);
        assert_eq!(units[0].wave, 2);
        assert_eq!(writes(&units), vec![write("CreateEndpointGroup", 1)]);
    }

    #[test]
    fn new_endpoints_in_an_existing_group_go_ten_to_a_call() {
        let changes: Vec<Change> = (0..12)
            .map(|i| {
                let id = format!("e{i:02}");
                change(
                    endpoint_address(&id),
                    Action::Create,
                    3,
                    Some(endpoint_spec(&id, 1)),
                )
            })
            .collect();
        let live = BTreeMap::from([(group_address(), 2)]);
        let units = group(&changes, &live);
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].members_after, Some(14));
        assert_eq!(writes(&units), vec![write("AddEndpoints", 2)]);
    }

    #[test]
    fn a_dial_and_weights_of_one_group_are_one_update() {
        let changes = vec![
            change(group_address(), Action::Update, 2, Some(group_spec(50))),
            change(
                endpoint_address("a"),
                Action::Update,
                3,
                Some(endpoint_spec("a", 10)),
            ),
            change(
                endpoint_address("b"),
                Action::Update,
                3,
                Some(endpoint_spec("b", 20)),
            ),
        ];
        let live = BTreeMap::from([(group_address(), 2)]);
        let units = group(&changes, &live);
        assert_eq!(units.len(), 1);
        assert_eq!(writes(&units), vec![write("UpdateEndpointGroup", 1)]);
    }

    #[test]
    fn make_before_break_waves_stay_apart() {
        // The make-room case: removals at wave 3 ahead of additions at wave 5.
        let changes = vec![
            change(endpoint_address("old"), Action::Delete, 3, None),
            change(
                endpoint_address("new"),
                Action::Create,
                5,
                Some(endpoint_spec("new", 1)),
            ),
        ];
        let live = BTreeMap::from([(group_address(), 10)]);
        let units = group(&changes, &live);
        assert_eq!(units.len(), 2);
        assert_eq!((units[0].wave, units[1].wave), (3, 5));
        assert_eq!(units[0].members_after, Some(9));
        assert_eq!(units[1].members_after, Some(10));
        assert_eq!(
            writes(&units),
            vec![write("AddEndpoints", 1), write("RemoveEndpoints", 1)]
        );
    }

    #[test]
    fn a_deleted_group_takes_its_endpoints_with_it() {
        let changes = vec![
            change(endpoint_address("a"), Action::Delete, 10, None),
            change(endpoint_address("b"), Action::Delete, 10, None),
            change(group_address(), Action::Delete, 11, None),
        ];
        let units = group(&changes, &BTreeMap::from([(group_address(), 2)]));
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].changes, vec![2, 0, 1]);
        assert_eq!(writes(&units), vec![write("DeleteEndpointGroup", 1)]);
    }

    #[test]
    fn every_backend_change_of_a_service_in_a_wave_is_one_patch() {
        let service = Address::BackendService { name: "app".into() };
        let changes: Vec<Change> = (0..6)
            .map(|i| {
                let mut c = change(
                    Address::Backend {
                        service: "app".into(),
                        group: format!("regions/us-east1/networkEndpointGroups/n{i}"),
                    },
                    Action::Update,
                    2,
                    Some(Resource::Backend(BackendSpec {
                        group: format!("regions/us-east1/networkEndpointGroups/n{i}"),
                        region: "us-east1".into(),
                        balancing_mode: "RATE".into(),
                        max_rate: Some(100),
                        max_rate_per_endpoint: None,
                        max_utilization: None,
                        max_connections: None,
                        capacity_scaler: 0.5,
                    })),
                );
                c.provider = "gcp".into();
                c
            })
            .collect();
        let units = group(&changes, &BTreeMap::from([(service, 6)]));
        assert_eq!(units.len(), 1);
        assert_eq!(writes(&units), vec![write("backendServices.patch", 1)]);
    }
}
