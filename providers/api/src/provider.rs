//! The provider trait: observe a scope, apply one change.
//!
//! Requests and responses are structs so the boundary can grow without
//! breaking every provider. A provider owns its cloud clients, retries each
//! cloud call itself (see [`crate::retry`]), and only ever returns or touches
//! objects tagged as managed by meridian for its own `Provider` document.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::units::UnitOfWork;
use crate::{Address, Family, ProviderError, Resource};

/// An object as it exists in the cloud.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// Where it is in meridian's address space.
    pub address: Address,
    /// Its managed configuration.
    pub resource: Resource,
    /// The cloud's identifier (ARN, id, selfLink).
    pub cloud_id: Option<String>,
    /// Optimistic-concurrency token (GCP fingerprint), when the cloud has one.
    pub etag: Option<String>,
    /// Lifecycle status, e.g. `IN_PROGRESS`, `DEPLOYED`, `available`.
    pub status: Option<String>,
    /// Health of an endpoint or backend: `healthy`, `unhealthy`, `initial`, `unknown`.
    pub health: Option<String>,
    /// Whether meridian owns it (carries this provider's ownership marker).
    /// `false` only for an object a [`Claim`] named, or found by
    /// [`Provider::discover`], whose marker is not written yet: the plan
    /// adopts it.
    #[serde(default = "owned_default", skip_serializing_if = "is_owned")]
    pub owned: bool,
    /// Whether meridian took it over from another owner
    /// ([`crate::ADOPTED_KEY`]): deleting it needs an acknowledgement.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopted: bool,
    /// The static IP addresses of an accelerator (lost if it is deleted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
}

fn owned_default() -> bool {
    true
}

fn is_owned(owned: &bool) -> bool {
    *owned
}

impl Observed {
    /// An owned object with no status or health yet: what most observations
    /// start from.
    pub fn new(address: Address, resource: Resource, cloud_id: Option<String>) -> Self {
        Self {
            address,
            resource,
            cloud_id,
            etag: None,
            status: None,
            health: None,
            owned: true,
            adopted: false,
            ip_addresses: Vec::new(),
        }
    }
}

/// A live object desired state names by its cloud identity
/// ([`crate::EXTERNAL_ID_KEY`]): observed under `address` even while
/// meridian does not own it, so the plan can adopt it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The address desired state gives it.
    pub address: Address,
    /// Its cloud identity: ARN, selfLink or name, gateway or attachment id.
    pub external_id: String,
    /// For an accelerator: the listener names desired state gives it
    /// (name → protocol and ports, as [`crate::listener_tag_value`] writes
    /// them), so that its listeners are observed under those names before
    /// meridian has tagged them (and for ever, when it never does: an
    /// accelerator whose document only observes it, or moves its traffic).
    pub listener_names: std::collections::BTreeMap<String, String>,
}

/// A claim that named no object meridian may adopt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unclaimed {
    /// The address desired state gives it.
    pub address: Address,
    /// The identity it names.
    pub external_id: String,
    /// Why it cannot be adopted: not found, or another owner's.
    pub reason: String,
}

/// What to list for `meridian import`: live objects meridian does not own.
#[derive(Debug, Clone, Default)]
pub struct DiscoverRequest {
    /// Only this family.
    pub family: Option<Family>,
    /// Only objects with this cloud name.
    pub name: Option<String>,
    /// Only the object with this cloud identity.
    pub id: Option<String>,
    /// Only objects carrying this tag (GCP objects have no tags).
    pub tag: Option<(String, String)>,
    /// Regions to look for Transit Gateways in (besides every enabled one).
    pub regions: Vec<String>,
}

/// Live objects meridian does not own, with suggested addresses: each
/// marker-bearing object (accelerator, health check, backend service, URL
/// map, gateway, peering) with its `cloud_id`, and its children under it.
#[derive(Debug, Clone, Default)]
pub struct DiscoverResponse {
    /// The objects, parents before their children.
    pub objects: Vec<Observed>,
    /// What could not be expressed, per object.
    pub notes: Vec<String>,
}

/// What to observe.
#[derive(Debug, Clone, Default)]
pub struct ObserveRequest {
    /// Regions where desired state places Transit Gateway resources (the
    /// Transit Gateway API is regional). A provider may observe more regions,
    /// for example those where it finds resources it owns, never fewer.
    pub regions: Vec<String>,
    /// Whether health is needed where it costs extra calls (GCP reports a
    /// backend's health only through one `getHealth` call per backend).
    /// Health that comes with the list calls is always reported.
    pub health: bool,
    /// Objects desired state names by cloud identity: observed even when
    /// meridian does not own them yet.
    pub claims: Vec<Claim>,
}

/// A family whose observation failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObservationGap {
    /// The family that could not be observed.
    pub family: Family,
    /// Why.
    pub error: ProviderError,
}

/// A break-glass override marker found on a live object: the
/// [`crate::OVERRIDE_KEY`] tag of an accelerator (covering its listeners,
/// endpoint groups and endpoints, since Global Accelerator tags live only on
/// accelerators) or the description marker of a GCP backend service
/// (covering its backends).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveOverride {
    /// The object carrying the marker: an `Accelerator` or a `BackendService`.
    pub address: Address,
    /// The marker's value as found, meant to be an RFC 3339 time. Providers
    /// never interpret it; the engine decides what an unparseable value means.
    pub until: String,
}

/// The result of an observation. It never fails as a whole: a family that
/// could not be listed is a gap, and the plan proposes nothing inside it.
#[derive(Debug, Clone, Default)]
pub struct ObserveResponse {
    /// Every managed object found in the complete families.
    pub resources: Vec<Observed>,
    /// Families that could not be observed.
    pub gaps: Vec<ObservationGap>,
    /// Break-glass override markers on managed objects of the complete
    /// families.
    pub overrides: Vec<LiveOverride>,
    /// Claims that named no object meridian may adopt.
    pub unclaimed: Vec<Unclaimed>,
}

impl ObserveResponse {
    /// Whether every requested family was observed.
    pub fn is_complete(&self) -> bool {
        self.gaps.is_empty()
    }
}

/// One unit of work to carry out: the changes one cloud API object's calls
/// carry together (see [`crate::units`]).
#[derive(Debug, Clone)]
pub struct ApplyRequest {
    /// The unit, its changes with their before/after values and live ids.
    pub unit: UnitOfWork,
}

/// The outcome of a unit of work: one result per change, in the unit's
/// order. A unit may land in part (a later call of it failed): each change
/// says for itself.
#[derive(Debug, Clone, Default)]
pub struct ApplyResponse {
    /// `None` for a change that landed, the error for one that did not.
    pub results: Vec<Option<ProviderError>>,
}

impl ApplyResponse {
    /// Every change of `unit` ended the same way.
    pub fn all(unit: &UnitOfWork, result: Result<(), ProviderError>) -> Self {
        Self {
            results: vec![result.err(); unit.changes.len()],
        }
    }
}

/// API calls made by a provider, per operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCounter {
    /// Cloud operation name, e.g. `ListAccelerators`.
    pub operation: String,
    /// Whether the operation reads or writes.
    pub write: bool,
    /// Calls that succeeded.
    pub ok: u64,
    /// Calls that failed (including throttled ones).
    pub failed: u64,
}

/// A cloud provider plugin.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The `Provider` document's name.
    fn name(&self) -> &str;

    /// The families this provider can observe and change.
    fn families(&self) -> Vec<Family>;

    /// Lists the live managed objects of every family it manages, with the
    /// minimum number of list calls.
    async fn observe(&self, request: ObserveRequest) -> ObserveResponse;

    /// Carries out one unit of work in the calls the cloud offers for its
    /// API object, as [`crate::units::planned_writes`] states them. Before
    /// it writes, the live object is checked against the changes' `before`
    /// (a read-compare, or the cloud's own precondition such as a GCP
    /// fingerprint): a mismatch is an [`crate::ErrorClass::Conflict`] and
    /// nothing is written.
    async fn apply(&self, request: ApplyRequest) -> ApplyResponse;

    /// API calls made so far by this provider instance.
    fn calls(&self) -> Vec<CallCounter>;

    /// Lists live objects meridian does not own, for `meridian import`.
    async fn discover(&self, request: DiscoverRequest) -> Result<DiscoverResponse, ProviderError> {
        let _ = request;
        Err(ProviderError::stalled(
            "Discover",
            "ImportNotSupported",
            format!("provider `{}` cannot list objects to import", self.name()),
        ))
    }

    /// Stops managing an object without touching its configuration: removes
    /// its ownership marker (and those of the objects it holds that carry
    /// one), so that it is neither observed nor ever deleted by meridian
    /// again. Returns the cloud ids released.
    async fn release(&self, address: &Address) -> Result<Vec<String>, ProviderError> {
        Err(ProviderError::stalled(
            "Release",
            "ReleaseNotSupported",
            format!("provider `{}` cannot release {address}", self.name()),
        ))
    }

    /// Writes (`Some(until)`, an RFC 3339 time) or removes (`None`) the
    /// break-glass override marker ([`crate::OVERRIDE_KEY`]) on a managed
    /// `Accelerator` or `BackendService`. Touches nothing but the marker.
    async fn set_override(
        &self,
        address: &Address,
        until: Option<String>,
    ) -> Result<(), ProviderError> {
        let _ = until;
        Err(ProviderError::stalled(
            "SetOverride",
            "OverrideNotSupported",
            format!(
                "break-glass overrides are not supported by this provider (`{}`), so {address} cannot carry one",
                self.name()
            ),
        ))
    }
}
