//! meridian's embedded simulated cloud.
//!
//! A real simulated world, not a mock: Global Accelerator accelerators,
//! listeners, endpoint groups and endpoints; GCP health checks, backend
//! services, URL maps, target HTTP(S) proxies and global forwarding rules; Transit Gateways, peering attachments and routes.
//! The world is persisted in an SQLite database in a directory so that consecutive commands
//! (and two processes at once) see the same "live" state, and it behaves the
//! way the clouds do where that matters to a reconciler: generated ARNs and
//! ids, accelerators `IN_PROGRESS` for a while after every change, one
//! endpoint group per region per listener, quotas, GCP fingerprints,
//! peerings `pendingAcceptance` until accepted, per-endpoint health, API call
//! counters, and injectable latency, throttling and server errors.
//!
//! It must never be mistaken for a cloud: nothing here talks to a network.

pub mod cloud;
mod frontends;
pub mod limits;
pub mod store;
pub mod world;

pub use cloud::{SimCloud, SimError};
pub use store::{SimStore, StoreError};
pub use world::World;
