//! The provider plugin boundary of meridian.
//!
//! This crate is the one contract between the reconcile engine and the clouds:
//! resource addresses, the comparable resource values that both desired and
//! observed state are expressed in, changes, the error classes, the retry
//! policy that acts on those classes, and the narrow [`Provider`] trait.
//!
//! It must never depend on a cloud SDK: providers live in their own crates
//! and the engine only sees what is defined here.

pub mod address;
pub mod change;
pub mod error;
pub mod journal;
pub mod overrides;
pub mod provider;
pub mod ratelimit;
pub mod regions;
pub mod resource;
pub mod retry;
pub mod units;

pub use address::{Address, AddressParseError, Family};
pub use change::{Action, Change, FieldChange};
pub use error::{ErrorClass, ProviderError};
pub use journal::{WriteCall, recording};
pub use provider::{
    ApplyRequest, ApplyResponse, CallCounter, Claim, DiscoverRequest, DiscoverResponse,
    LiveOverride, ObservationGap, ObserveRequest, ObserveResponse, Observed, Provider, Unclaimed,
};
pub use resource::*;
pub use retry::{RetryPolicy, RetryStats, with_retries};

/// The tag/label key that marks a cloud resource as managed by meridian.
pub const MANAGED_BY_KEY: &str = "meridian.dev/managed-by";
/// The value of [`MANAGED_BY_KEY`] on everything meridian creates.
pub const MANAGED_BY_VALUE: &str = "meridian";
/// The tag/label key naming the ownership scope of a resource: a `Provider`
/// document's `owner` (by default its name). meridian observes, changes and
/// deletes only resources carrying its own scope, so two desired-state
/// repositories sharing one cloud account never touch each other's objects
/// as long as their owners differ.
pub const OWNER_KEY: &str = "meridian.dev/owner";
/// Tag naming the `GlobalAccelerator` document an accelerator belongs to.
pub const NAME_KEY: &str = "meridian.dev/name";
/// Tag naming the `TransitGatewayMesh` a gateway or peering belongs to.
pub const MESH_KEY: &str = "meridian.dev/mesh";
/// Prefix of the accelerator tags that map listener ids to meridian's
/// listener names (Global Accelerator listeners have neither names nor tags).
pub const LISTENER_KEY_PREFIX: &str = "meridian.dev/listener:";

/// The annotation pinning a document to the live object it describes: an
/// accelerator's ARN, a GCP object's selfLink (or name). An object it
/// names that meridian does not own yet is adopted, never recreated.
pub const EXTERNAL_ID_KEY: &str = "meridian.dev/external-id";
/// The tag key (or description marker key) meridian writes when it adopts
/// an object, with the time of adoption: deleting an adopted object needs
/// the same acknowledgement as replacing an accelerator.
pub const ADOPTED_KEY: &str = "meridian.dev/adopted";

/// The tag key (on a Global Accelerator) or description marker key (on a
/// GCP backend service, as `[meridian.dev/override-until=<time>]`) of a
/// break-glass override: until the RFC 3339 time it holds, meridian does not
/// revert traffic changes made by hand to that object and everything in it.
/// Written and removed by `meridian override set|clear` through
/// [`Provider::set_override`]; never part of a resource value, so it is never
/// drift itself.
pub const OVERRIDE_KEY: &str = "meridian.dev/override-until";

/// The ownership marker meridian writes into the `description` of GCP load
/// balancing objects, which carry no labels: the object is meridian's, in the
/// scope of `owner`, exactly when its description contains this text.
pub fn gcp_ownership_marker(owner: &str) -> String {
    format!("[{MANAGED_BY_KEY}={MANAGED_BY_VALUE} {OWNER_KEY}={owner}]")
}

/// Whether an endpoint is on this machine (the sandbox): such endpoints are
/// called without credentials.
pub fn is_loopback_endpoint(endpoint: &str) -> bool {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint);
    let host = rest.split('/').next().unwrap_or(rest);
    let host = if host.starts_with('[') {
        host.split(']')
            .next()
            .unwrap_or(host)
            .trim_start_matches('[')
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
