//! The simulated cloud's API: one method per cloud operation.
//!
//! Each call sleeps the injected latency, then runs as one transaction on
//! the persisted world: it may be throttled or fail with a server error at
//! the configured rates, is counted by operation, and otherwise behaves as
//! the real API does for the cases a reconciler meets (validation, conflicts,
//! quotas, ordering rules on delete, eventual states).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use meridian_provider::{
    BackendServiceSpec, BackendSpec, EndpointGroupSpec, EndpointSpec, HealthCheckSpec,
    ListenerSpec, UrlMapSpec,
};
use sha2::{Digest, Sha256};

use crate::store::{SimStore, StoreError};
use crate::world::{
    Accelerator, Endpoint, EndpointGroup, GcpBackendService, GcpHealthCheck, GcpUrlMap, Listener,
    OperationFault, Peering, Route, TransitGateway, World, now_ms,
};

/// Every operation the simulated cloud serves, for fault injection by name.
pub const OPERATIONS: &[&str] = &[
    "AcceptTransitGatewayPeeringAttachment",
    "AddEndpoints",
    "CreateAccelerator",
    "CreateEndpointGroup",
    "CreateListener",
    "CreateTransitGateway",
    "CreateTransitGatewayPeeringAttachment",
    "CreateTransitGatewayRoute",
    "DeleteAccelerator",
    "DeleteEndpointGroup",
    "DeleteListener",
    "DeleteTransitGateway",
    "DeleteTransitGatewayPeeringAttachment",
    "DeleteTransitGatewayRoute",
    "DescribeAccelerator",
    "DescribeAcceleratorAttributes",
    "DescribeEndpointGroup",
    "DescribeListener",
    "DescribeRegions",
    "DescribeTransitGatewayPeeringAttachments",
    "DescribeTransitGateways",
    "ListAccelerators",
    "ListEndpointGroups",
    "ListListeners",
    "ListTagsForResource",
    "ModifyTransitGateway",
    "RemoveEndpoints",
    "ReplaceTransitGatewayRoute",
    "SearchTransitGatewayRoutes",
    "TagResource",
    "UntagResource",
    "UpdateAccelerator",
    "UpdateAcceleratorAttributes",
    "UpdateEndpointGroup",
    "UpdateListener",
    "backendServices.delete",
    "backendServices.get",
    "backendServices.getHealth",
    "backendServices.insert",
    "backendServices.list",
    "backendServices.patch",
    "backendServices.update",
    "globalOperations.get",
    "globalOperations.wait",
    "healthChecks.delete",
    "healthChecks.get",
    "healthChecks.insert",
    "healthChecks.list",
    "healthChecks.patch",
    "healthChecks.update",
    "urlMaps.delete",
    "urlMaps.get",
    "urlMaps.insert",
    "urlMaps.list",
    "urlMaps.patch",
    "urlMaps.update",
];

/// The GCP writes that answer with a long-running operation, for injected
/// operation errors (`sim faults --operation-error`).
pub const GCP_WRITES: &[&str] = &[
    "backendServices.delete",
    "backendServices.insert",
    "backendServices.patch",
    "backendServices.update",
    "healthChecks.delete",
    "healthChecks.insert",
    "healthChecks.patch",
    "healthChecks.update",
    "urlMaps.delete",
    "urlMaps.insert",
    "urlMaps.patch",
    "urlMaps.update",
];

/// How a GCP write changes an existing object: `patch` (JSON merge; the
/// caller sends the merged result) or `update` (PUT, the whole resource).
/// Both land the same way; they are counted under their own operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcpMethod {
    /// `*.patch`.
    Patch,
    /// `*.update`.
    Update,
}

impl GcpMethod {
    /// The operation name in `collection`, e.g. `backendServices.update`.
    pub fn operation(self, collection: &str) -> String {
        match self {
            GcpMethod::Patch => format!("{collection}.patch"),
            GcpMethod::Update => format!("{collection}.update"),
        }
    }
}

/// The simulated account id in ARNs.
pub const ACCOUNT_ID: &str = "123456789012";

/// An API error, with the code the real cloud would send.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Request rate exceeded (AWS `ThrottlingException`, GCP 429).
    #[error("{operation}: rate exceeded")]
    Throttling {
        /// Operation.
        operation: String,
    },
    /// An API rate limit (`sim limits`) has no capacity left: each cloud's
    /// own throttling error.
    #[error(
        "{operation}: rate exceeded: the {family} limit ({limit}) is used up; retry in {retry_after_ms} ms"
    )]
    RateLimited {
        /// Operation.
        operation: String,
        /// The limit family (`ec2-mutating`, …).
        family: &'static str,
        /// The limit, for humans.
        limit: String,
        /// When a request would be admitted again.
        retry_after_ms: u64,
    },
    /// A 5xx.
    #[error("{operation}: internal server error")]
    Internal {
        /// Operation.
        operation: String,
    },
    /// A permanent failure injected for tests.
    #[error("{operation}: injected permanent failure")]
    Injected {
        /// Operation.
        operation: String,
    },
    /// The cloud rejected the request; `code` is the cloud's error code.
    #[error("{operation}: {code}: {message}")]
    Api {
        /// Operation.
        operation: String,
        /// Cloud error code, e.g. `AcceleratorNotDisabledException`.
        code: &'static str,
        /// Message.
        message: String,
    },
    /// The world could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SimError {
    /// The cloud error code.
    pub fn code(&self) -> &str {
        match self {
            SimError::Throttling { .. } => "ThrottlingException",
            SimError::RateLimited { family, .. } if family.starts_with("ec2") => {
                "RequestLimitExceeded"
            }
            SimError::RateLimited { family, .. } if family.starts_with("compute") => {
                "rateLimitExceeded"
            }
            SimError::RateLimited { .. } => "ThrottlingException",
            SimError::Internal { .. } => "InternalServiceErrorException",
            SimError::Injected { .. } => "InjectedFailure",
            SimError::Api { code, .. } => code,
            SimError::Store(_) => "SimulatorStateError",
        }
    }
}

pub(crate) fn api(operation: &str, code: &'static str, message: impl Into<String>) -> SimError {
    SimError::Api {
        operation: operation.to_owned(),
        code,
        message: message.into(),
    }
}

/// One page of a list call.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// Items.
    pub items: Vec<T>,
    /// Token for the next page, if any.
    pub next_token: Option<String>,
}

/// One page of `all` (in key order) after the cursor in `next_token`.
/// Tokens are opaque cursors naming the last key returned, as the clouds'
/// are: objects created or deleted between two pages never shift the rest.
pub fn paginate<T: Clone>(
    operation: &str,
    all: Vec<T>,
    key: impl Fn(&T) -> String,
    max_results: Option<usize>,
    next_token: Option<&str>,
    page_limit: usize,
) -> Result<Page<T>, SimError> {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let size = max_results.unwrap_or(page_limit).clamp(1, page_limit);
    let start = match next_token {
        None => 0,
        Some(token) => {
            let after = token
                .strip_prefix("c1.")
                .and_then(|t| engine.decode(t).ok())
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| {
                    api(
                        operation,
                        "InvalidNextTokenException",
                        "the next token is not valid",
                    )
                })?;
            all.iter()
                .position(|item| key(item) > after)
                .unwrap_or(all.len())
        }
    };
    let end = (start + size).min(all.len());
    let items = all[start..end].to_vec();
    let next_token = (end < all.len()).then(|| format!("c1.{}", engine.encode(key(&all[end - 1]))));
    Ok(Page { items, next_token })
}

/// An accelerator with its derived status.
#[derive(Debug, Clone)]
pub struct AcceleratorView {
    /// Stored accelerator.
    pub accelerator: Accelerator,
    /// `IN_PROGRESS` or `DEPLOYED`.
    pub status: String,
}

/// An endpoint group with the health of each endpoint as of now.
#[derive(Debug, Clone)]
pub struct EndpointGroupView {
    /// Stored group.
    pub group: EndpointGroup,
    /// Health per endpoint, in endpoint order.
    pub health: Vec<String>,
}

/// A peering attachment with its state as of now.
#[derive(Debug, Clone)]
pub struct PeeringView {
    /// Stored peering.
    pub peering: Peering,
    /// State as of now.
    pub state: String,
}

/// What a `backendServices.patch` or `.update` replaces; `None` keeps.
#[derive(Debug, Clone, Default)]
pub struct ServiceChange {
    /// New description.
    pub description: Option<String>,
    /// New settings.
    pub spec: Option<BackendServiceSpec>,
    /// New backend list, replacing the whole list.
    pub backends: Option<Vec<BackendSpec>>,
}

/// One backend of a service with its health as of now (`getHealth`).
#[derive(Debug, Clone)]
pub struct BackendHealth {
    /// The backend.
    pub backend: BackendSpec,
    /// `HEALTHY` or `UNHEALTHY`.
    pub state: String,
    /// The port checked: the service's first health check's, or the
    /// protocol's default.
    pub port: u16,
}

/// A backend service with each backend's health as of now.
#[derive(Debug, Clone)]
pub struct BackendServiceView {
    /// Stored service.
    pub service: GcpBackendService,
    /// Health per backend, in backend order.
    pub health: Vec<String>,
}

/// The prefix of an accelerator's listeners' ARNs (as Global Accelerator
/// makes them: the accelerator's ARN, `/listener/`, an id).
fn listeners_of(accelerator_arn: &str) -> String {
    format!("{accelerator_arn}/listener/")
}

/// The prefix of a listener's endpoint groups' ARNs.
fn groups_of(listener_arn: &str) -> String {
    format!("{listener_arn}/endpoint-group/")
}

/// The simulated cloud over a persisted world.
#[derive(Debug, Clone)]
pub struct SimCloud {
    store: SimStore,
    /// The region the calls are made in, for the clouds that meter per
    /// region (EC2); `None` for global APIs.
    region: Option<Arc<str>>,
    /// The request id of the API request being served, stamped on the
    /// history entries its writes record.
    request_id: Option<Arc<str>>,
}

pub(crate) fn fingerprint(value: &impl serde::Serialize, generation: u64) -> String {
    use base64::Engine;
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(value).unwrap_or_default());
    hasher.update(generation.to_le_bytes());
    base64::engine::general_purpose::STANDARD.encode(&hasher.finalize()[..8])
}

/// A stored fingerprint as GCP sends it on the wire: URL-safe base64 with
/// padding (the simulator stores standard base64).
pub fn wire_fingerprint(stored: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(stored)
        .map(|bytes| base64::engine::general_purpose::URL_SAFE.encode(bytes))
        .unwrap_or_else(|_| stored.to_owned())
}

/// A fingerprint received on the wire (standard or URL-safe base64, with
/// or without padding, as clients differ) in the simulator's stored form,
/// or `None` when it is not base64 at all.
pub fn stored_fingerprint(wire: &str) -> Option<String> {
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let standard = GeneralPurpose::new(&base64::alphabet::STANDARD, config);
    let url_safe = GeneralPurpose::new(&base64::alphabet::URL_SAFE, config);
    standard
        .decode(wire)
        .or_else(|_| url_safe.decode(wire))
        .ok()
        .map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn ports_overlap(a: &ListenerSpec, b: &ListenerSpec) -> bool {
    a.port_ranges.iter().any(|x| {
        b.port_ranges
            .iter()
            .any(|y| x.from <= y.to && y.from <= x.to)
    })
}

impl SimCloud {
    /// A cloud over the world in `store`.
    pub fn new(store: SimStore) -> Self {
        Self {
            store,
            region: None,
            request_id: None,
        }
    }

    /// The same cloud, with calls made in `region`: EC2's rate limits
    /// meter each region's calls in their own buckets.
    pub fn in_region(&self, region: &str) -> Self {
        Self {
            store: self.store.clone(),
            region: Some(Arc::from(region)),
            request_id: self.request_id.clone(),
        }
    }

    /// The same cloud, serving the API request `request_id`: every write
    /// its calls make is recorded in the history with that id, so a
    /// client's record of its calls can be matched to the history one to
    /// one. The wire frontends make one per request.
    pub fn with_request_id(&self, request_id: &str) -> Self {
        Self {
            store: self.store.clone(),
            region: self.region.clone(),
            request_id: Some(Arc::from(request_id)),
        }
    }

    /// The underlying store.
    pub fn store(&self) -> &SimStore {
        &self.store
    }

    /// Runs one API call: latency, fault injection, counting, then `op`.
    pub(crate) async fn call<R>(
        &self,
        operation: &str,
        write: bool,
        op: impl FnOnce(&mut World) -> Result<R, SimError>,
    ) -> Result<R, SimError> {
        let latency = self.store.read()?.settings.faults.latency_ms;
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        self.store.transact(|world| {
            let faults = world.settings.faults.clone();
            let family = crate::limits::family_of(operation, write);
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let bucket = crate::limits::bucket_of(family, self.region.as_deref());
            if let Err(retry_after_ms) =
                world
                    .settings
                    .limits
                    .take(&mut world.meters, &bucket, family, now_ms)
            {
                let limit = world
                    .settings
                    .limits
                    .limit(family)
                    .map(|l| l.describe())
                    .unwrap_or_default();
                let count = world.calls.entry_or_default(operation);
                count.write = write;
                count.throttled += 1;
                return Err(SimError::RateLimited {
                    operation: operation.to_owned(),
                    family,
                    limit,
                    retry_after_ms,
                });
            }
            let count = world.calls.entry_or_default(operation);
            count.write = write;
            if faults.fail_operations.iter().any(|o| o == operation) {
                count.failed += 1;
                return Err(SimError::Injected {
                    operation: operation.to_owned(),
                });
            }
            if faults.throttle_rate > 0.0 && fastrand::f64() < faults.throttle_rate {
                count.throttled += 1;
                return Err(SimError::Throttling {
                    operation: operation.to_owned(),
                });
            }
            if faults.error_rate > 0.0 && fastrand::f64() < faults.error_rate {
                count.failed += 1;
                return Err(SimError::Internal {
                    operation: operation.to_owned(),
                });
            }
            let recorded = world.history.len();
            let result = op(world);
            if let Some(request_id) = &self.request_id {
                // In a transaction the history holds only this call's
                // writes; those this call recorded are the ones past
                // `recorded`. A write that lands but answers an error (a
                // lost response, below) keeps its id: the client saw it.
                for entry in &mut world.history[recorded..] {
                    entry
                        .request_id
                        .get_or_insert_with(|| request_id.to_string());
                }
            }
            let count = world.calls.entry_or_default(operation);
            match result {
                Ok(_)
                    if write
                        && faults.lost_response_rate > 0.0
                        && fastrand::f64() < faults.lost_response_rate =>
                {
                    // The write landed, but the caller never hears so.
                    count.failed += 1;
                    return Err(SimError::Internal {
                        operation: operation.to_owned(),
                    });
                }
                Ok(_) => count.ok += 1,
                Err(_) => count.failed += 1,
            }
            result
        })?
    }

    // ----- Global Accelerator -------------------------------------------------

    /// `ListAccelerators` (tags included, as meridian needs them for ownership).
    pub async fn list_accelerators(
        &self,
        max_results: Option<usize>,
        next_token: Option<&str>,
    ) -> Result<Page<AcceleratorView>, SimError> {
        self.call("ListAccelerators", false, |world| {
            let all: Vec<_> = world
                .accelerators
                .values()
                .map(|a| AcceleratorView {
                    status: World::accelerator_status(a).to_owned(),
                    accelerator: a.clone(),
                })
                .collect();
            paginate(
                "ListAccelerators",
                all,
                |v: &AcceleratorView| v.accelerator.arn.clone(),
                max_results,
                next_token,
                world.settings.max_page_size,
            )
        })
        .await
    }

    /// `CreateAccelerator`.
    pub async fn create_accelerator(
        &self,
        name: &str,
        ip_address_type: &str,
        enabled: bool,
        tags: BTreeMap<String, String>,
        token: Option<&str>,
    ) -> Result<String, SimError> {
        self.call("CreateAccelerator", true, |world| {
            if let Some(arn) = world.replay(token, |w, arn| w.accelerators.contains_key(arn)) {
                return Ok(arn);
            }
            if world.accelerators.len() >= world.settings.quotas.accelerators {
                return Err(api(
                    "CreateAccelerator",
                    "LimitExceededException",
                    format!(
                        "the account already has {} accelerators, the quota",
                        world.accelerators.len()
                    ),
                ));
            }
            let id = world.fresh_id();
            let arn = format!("arn:aws:globalaccelerator::{ACCOUNT_ID}:accelerator/{id:08x}-sim0-4000-8000-{id:012x}");
            let deployed_at_ms = now_ms() + world.settings.deploy_delay_ms;
            world.accelerators.insert(
                arn.clone(),
                Accelerator {
                    arn: arn.clone(),
                    name: name.to_owned(),
                    enabled,
                    ip_address_type: ip_address_type.to_owned(),
                    dns_name: format!("a{id:016x}.awsglobalaccelerator.com"),
                    ip_addresses: vec![format!("75.2.{}.{}", id / 250 % 250, id % 250), format!("99.83.{}.{}", id / 250 % 250, id % 250)],
                    deployed_at_ms,
                    tags,
                    created_ms: now_ms(),
                    modified_ms: now_ms(),
                    flow_logs: crate::world::FlowLogs::default(),
                },
            );
            if let Some(token) = token {
                world.idempotency.insert(token.to_owned(), arn.clone());
            }
            world.record("CreateAccelerator", &arn, format!("name={name} enabled={enabled}"));
            Ok(arn)
        })
        .await
    }

    /// `UpdateAccelerator`.
    pub async fn update_accelerator(
        &self,
        arn: &str,
        name: &str,
        ip_address_type: &str,
        enabled: bool,
    ) -> Result<(), SimError> {
        self.call("UpdateAccelerator", true, |world| {
            let accelerator = world.accelerators.get_mut(arn).ok_or_else(|| {
                api(
                    "UpdateAccelerator",
                    "AcceleratorNotFoundException",
                    format!("accelerator {arn} not found"),
                )
            })?;
            accelerator.name = name.to_owned();
            accelerator.ip_address_type = ip_address_type.to_owned();
            accelerator.enabled = enabled;
            world.touch_accelerator(arn);
            world.record("UpdateAccelerator", arn, format!("enabled={enabled}"));
            Ok(())
        })
        .await
    }

    /// `DescribeAcceleratorAttributes`.
    pub async fn describe_accelerator_attributes(
        &self,
        arn: &str,
    ) -> Result<crate::world::FlowLogs, SimError> {
        self.call("DescribeAcceleratorAttributes", false, |world| {
            world
                .accelerators
                .get(arn)
                .map(|a| a.flow_logs.clone())
                .ok_or_else(|| {
                    api(
                        "DescribeAcceleratorAttributes",
                        "AcceleratorNotFoundException",
                        format!("Accelerator {arn} was not found"),
                    )
                })
        })
        .await
    }

    /// `UpdateAcceleratorAttributes`: fields left `None` keep their value;
    /// enabling flow logs needs a bucket.
    pub async fn update_accelerator_attributes(
        &self,
        arn: &str,
        enabled: Option<bool>,
        s3_bucket: Option<String>,
        s3_prefix: Option<String>,
    ) -> Result<crate::world::FlowLogs, SimError> {
        self.call("UpdateAcceleratorAttributes", true, |world| {
            let accelerator = world.accelerators.get_mut(arn).ok_or_else(|| {
                api(
                    "UpdateAcceleratorAttributes",
                    "AcceleratorNotFoundException",
                    format!("Accelerator {arn} was not found"),
                )
            })?;
            let mut next = accelerator.flow_logs.clone();
            if let Some(enabled) = enabled {
                next.enabled = enabled;
            }
            if s3_bucket.is_some() {
                next.s3_bucket = s3_bucket;
            }
            if s3_prefix.is_some() {
                next.s3_prefix = s3_prefix;
            }
            if next.enabled && next.s3_bucket.as_deref().is_none_or(str::is_empty) {
                return Err(api(
                    "UpdateAcceleratorAttributes",
                    "InvalidArgumentException",
                    "FlowLogsS3Bucket is required when FlowLogsEnabled is true",
                ));
            }
            accelerator.flow_logs = next.clone();
            world.touch_accelerator(arn);
            world.record(
                "UpdateAcceleratorAttributes",
                arn,
                format!("flow_logs={}", next.enabled),
            );
            Ok(next)
        })
        .await
    }

    /// `TagResource` (adds or replaces) and removal of `untag` keys, in one call.
    pub async fn tag_resource(
        &self,
        arn: &str,
        tags: BTreeMap<String, String>,
        untag: Vec<String>,
    ) -> Result<(), SimError> {
        let operation = if tags.is_empty() {
            "UntagResource"
        } else {
            "TagResource"
        };
        self.call(operation, true, |world| {
            let accelerator = world.accelerators.get_mut(arn).ok_or_else(|| {
                api(
                    operation,
                    "AcceleratorNotFoundException",
                    format!("accelerator {arn} not found"),
                )
            })?;
            for key in &untag {
                accelerator.tags.remove(key);
            }
            accelerator.tags.extend(tags);
            world.record(operation, arn, "tags");
            Ok(())
        })
        .await
    }

    /// `DeleteAccelerator`: only a disabled, deployed accelerator without listeners.
    pub async fn delete_accelerator(&self, arn: &str) -> Result<(), SimError> {
        self.call("DeleteAccelerator", true, |world| {
            let accelerator = world.accelerators.get(arn).ok_or_else(|| {
                api(
                    "DeleteAccelerator",
                    "AcceleratorNotFoundException",
                    format!("accelerator {arn} not found"),
                )
            })?;
            if accelerator.enabled || World::accelerator_status(accelerator) != "DEPLOYED" {
                return Err(api(
                    "DeleteAccelerator",
                    "AcceleratorNotDisabledException",
                    "the accelerator must be disabled and deployed before it can be deleted",
                ));
            }
            if world
                .listeners
                .with_prefix(&listeners_of(arn))
                .any(|l| l.accelerator_arn == arn)
            {
                return Err(api(
                    "DeleteAccelerator",
                    "AssociatedListenerFoundException",
                    "the accelerator still has listeners",
                ));
            }
            world.accelerators.remove(arn);
            world.record("DeleteAccelerator", arn, "");
            Ok(())
        })
        .await
    }

    /// `ListListeners` of one accelerator.
    pub async fn list_listeners(
        &self,
        accelerator_arn: &str,
        max_results: Option<usize>,
        next_token: Option<&str>,
    ) -> Result<Page<Listener>, SimError> {
        self.call("ListListeners", false, |world| {
            if !world.accelerators.contains_key(accelerator_arn) {
                return Err(api(
                    "ListListeners",
                    "AcceleratorNotFoundException",
                    format!("accelerator {accelerator_arn} not found"),
                ));
            }
            let all: Vec<_> = world
                .listeners
                .with_prefix(&listeners_of(accelerator_arn))
                .filter(|l| l.accelerator_arn == accelerator_arn)
                .cloned()
                .collect();
            paginate(
                "ListListeners",
                all,
                |l: &Listener| l.arn.clone(),
                max_results,
                next_token,
                world.settings.max_page_size,
            )
        })
        .await
    }

    fn check_listener(
        world: &World,
        operation: &str,
        accelerator_arn: &str,
        spec: &ListenerSpec,
        except: Option<&str>,
    ) -> Result<(), SimError> {
        for range in &spec.port_ranges {
            if range.from == 0 || range.from > range.to {
                return Err(api(
                    operation,
                    "InvalidPortRangeException",
                    format!("invalid port range {}-{}", range.from, range.to),
                ));
            }
        }
        if let Some(other) = world
            .listeners
            .with_prefix(&listeners_of(accelerator_arn))
            .find(|l| {
                l.accelerator_arn == accelerator_arn
                    && Some(l.arn.as_str()) != except
                    && ports_overlap(&l.spec, spec)
            })
        {
            return Err(api(
                operation,
                "InvalidPortRangeException",
                format!("port ranges overlap listener {}", other.arn),
            ));
        }
        Ok(())
    }

    /// `CreateListener`.
    pub async fn create_listener(
        &self,
        accelerator_arn: &str,
        spec: &ListenerSpec,
        token: Option<&str>,
    ) -> Result<String, SimError> {
        self.call("CreateListener", true, |world| {
            if let Some(arn) = world.replay(token, |w, arn| w.listeners.contains_key(arn)) {
                return Ok(arn);
            }
            if !world.accelerators.contains_key(accelerator_arn) {
                return Err(api(
                    "CreateListener",
                    "AcceleratorNotFoundException",
                    format!("accelerator {accelerator_arn} not found"),
                ));
            }
            let count = world
                .listeners
                .with_prefix(&listeners_of(accelerator_arn))
                .filter(|l| l.accelerator_arn == accelerator_arn)
                .count();
            if count >= world.settings.quotas.listeners_per_accelerator {
                return Err(api(
                    "CreateListener",
                    "LimitExceededException",
                    format!("the accelerator already has {count} listeners, the quota"),
                ));
            }
            Self::check_listener(world, "CreateListener", accelerator_arn, spec, None)?;
            let id = world.fresh_id();
            let arn = format!("{}{id:08x}", listeners_of(accelerator_arn));
            world.listeners.insert(
                arn.clone(),
                Listener {
                    arn: arn.clone(),
                    accelerator_arn: accelerator_arn.to_owned(),
                    spec: spec.clone(),
                },
            );
            if let Some(token) = token {
                world.idempotency.insert(token.to_owned(), arn.clone());
            }
            world.touch_accelerator(accelerator_arn);
            world.record(
                "CreateListener",
                &arn,
                format!("{} {:?}", spec.protocol, spec.port_ranges),
            );
            Ok(arn)
        })
        .await
    }

    /// `UpdateListener`.
    pub async fn update_listener(&self, arn: &str, spec: &ListenerSpec) -> Result<(), SimError> {
        self.call("UpdateListener", true, |world| {
            let accelerator_arn = world
                .listeners
                .get(arn)
                .map(|l| l.accelerator_arn.clone())
                .ok_or_else(|| {
                    api(
                        "UpdateListener",
                        "ListenerNotFoundException",
                        format!("listener {arn} not found"),
                    )
                })?;
            Self::check_listener(world, "UpdateListener", &accelerator_arn, spec, Some(arn))?;
            if let Some(listener) = world.listeners.get_mut(arn) {
                listener.spec = spec.clone();
            }
            world.touch_accelerator(&accelerator_arn);
            world.record(
                "UpdateListener",
                arn,
                format!("{} {:?}", spec.protocol, spec.port_ranges),
            );
            Ok(())
        })
        .await
    }

    /// `DeleteListener`: only without endpoint groups.
    pub async fn delete_listener(&self, arn: &str) -> Result<(), SimError> {
        self.call("DeleteListener", true, |world| {
            let listener = world.listeners.get(arn).cloned().ok_or_else(|| {
                api(
                    "DeleteListener",
                    "ListenerNotFoundException",
                    format!("listener {arn} not found"),
                )
            })?;
            if world
                .endpoint_groups
                .with_prefix(&groups_of(arn))
                .any(|g| g.listener_arn == arn)
            {
                return Err(api(
                    "DeleteListener",
                    "AssociatedEndpointGroupFoundException",
                    "the listener still has endpoint groups",
                ));
            }
            world.listeners.remove(arn);
            world.touch_accelerator(&listener.accelerator_arn);
            world.record("DeleteListener", arn, "");
            Ok(())
        })
        .await
    }

    /// `ListEndpointGroups` of one listener, endpoints and their health included.
    pub async fn list_endpoint_groups(
        &self,
        listener_arn: &str,
        max_results: Option<usize>,
        next_token: Option<&str>,
    ) -> Result<Page<EndpointGroupView>, SimError> {
        self.call("ListEndpointGroups", false, |world| {
            if !world.listeners.contains_key(listener_arn) {
                return Err(api(
                    "ListEndpointGroups",
                    "ListenerNotFoundException",
                    format!("listener {listener_arn} not found"),
                ));
            }
            let all: Vec<_> = world
                .endpoint_groups
                .with_prefix(&groups_of(listener_arn))
                .filter(|g| g.listener_arn == listener_arn)
                .map(|g| EndpointGroupView {
                    health: g
                        .endpoints
                        .iter()
                        .map(|e| world.endpoint_health(&g.spec.region, e))
                        .collect(),
                    group: g.clone(),
                })
                .collect();
            paginate(
                "ListEndpointGroups",
                all,
                |v: &EndpointGroupView| v.group.arn.clone(),
                max_results,
                next_token,
                world.settings.max_page_size,
            )
        })
        .await
    }

    fn accelerator_of_listener(world: &World, listener_arn: &str) -> Option<String> {
        world
            .listeners
            .get(listener_arn)
            .map(|l| l.accelerator_arn.clone())
    }

    /// `CreateEndpointGroup`: one group per region per listener.
    pub async fn create_endpoint_group(
        &self,
        listener_arn: &str,
        spec: &EndpointGroupSpec,
        endpoints: &[EndpointSpec],
        token: Option<&str>,
    ) -> Result<String, SimError> {
        self.call("CreateEndpointGroup", true, |world| {
            if let Some(arn) = world.replay(token, |w, arn| w.endpoint_groups.contains_key(arn)) {
                return Ok(arn);
            }
            let accelerator_arn =
                Self::accelerator_of_listener(world, listener_arn).ok_or_else(|| {
                    api(
                        "CreateEndpointGroup",
                        "ListenerNotFoundException",
                        format!("listener {listener_arn} not found"),
                    )
                })?;
            if world
                .endpoint_groups
                .with_prefix(&groups_of(listener_arn))
                .any(|g| g.listener_arn == listener_arn && g.spec.region == spec.region)
            {
                return Err(api(
                    "CreateEndpointGroup",
                    "EndpointGroupAlreadyExistsException",
                    format!(
                        "the listener already has an endpoint group in {}",
                        spec.region
                    ),
                ));
            }
            if spec.traffic_dial > 100 {
                return Err(api(
                    "CreateEndpointGroup",
                    "InvalidArgumentException",
                    "TrafficDialPercentage must be 0-100",
                ));
            }
            if endpoints.len() > world.settings.quotas.endpoints_per_group {
                return Err(api(
                    "CreateEndpointGroup",
                    "LimitExceededException",
                    "too many endpoints in the group",
                ));
            }
            let id = world.fresh_id();
            let arn = format!("{}{id:012x}", groups_of(listener_arn));
            world.endpoint_groups.insert(
                arn.clone(),
                EndpointGroup {
                    arn: arn.clone(),
                    listener_arn: listener_arn.to_owned(),
                    spec: spec.clone(),
                    endpoints: endpoints
                        .iter()
                        .map(|e| Endpoint {
                            spec: e.clone(),
                            health: "HEALTHY".to_owned(),
                        })
                        .collect(),
                },
            );
            world.touch_accelerator(&accelerator_arn);
            if let Some(token) = token {
                world.idempotency.insert(token.to_owned(), arn.clone());
            }
            world.record(
                "CreateEndpointGroup",
                &arn,
                format!(
                    "region={} dial={}{}",
                    spec.region,
                    spec.traffic_dial,
                    endpoint_details(endpoints)
                ),
            );
            Ok(arn)
        })
        .await
    }

    /// `UpdateEndpointGroup` (dial, health check, port overrides).
    pub async fn update_endpoint_group(
        &self,
        arn: &str,
        spec: &EndpointGroupSpec,
        endpoints: Option<&[EndpointSpec]>,
    ) -> Result<(), SimError> {
        self.call("UpdateEndpointGroup", true, |world| {
            if spec.traffic_dial > 100 {
                return Err(api(
                    "UpdateEndpointGroup",
                    "InvalidArgumentException",
                    "TrafficDialPercentage must be 0-100",
                ));
            }
            let limit = world.settings.quotas.endpoints_per_group;
            if endpoints.is_some_and(|e| e.len() > limit) {
                return Err(api(
                    "UpdateEndpointGroup",
                    "LimitExceededException",
                    format!("too many endpoints in the group; the quota is {limit}"),
                ));
            }
            let group = world.endpoint_groups.get_mut(arn).ok_or_else(|| {
                api(
                    "UpdateEndpointGroup",
                    "EndpointGroupNotFoundException",
                    format!("endpoint group {arn} not found"),
                )
            })?;
            let region = group.spec.region.clone();
            group.spec = EndpointGroupSpec {
                region: region.clone(),
                ..spec.clone()
            };
            // `EndpointConfigurations` in an update replaces the whole list.
            if let Some(endpoints) = endpoints {
                group.endpoints = endpoints
                    .iter()
                    .map(|e| Endpoint {
                        spec: e.clone(),
                        health: group
                            .endpoints
                            .iter()
                            .find(|old| old.spec.id == e.id)
                            .map_or_else(|| "HEALTHY".to_owned(), |old| old.health.clone()),
                    })
                    .collect();
            }
            let listener_arn = group.listener_arn.clone();
            if let Some(accelerator_arn) = Self::accelerator_of_listener(world, &listener_arn) {
                world.touch_accelerator(&accelerator_arn);
            }
            world.record(
                "UpdateEndpointGroup",
                arn,
                format!(
                    "region={region} dial={}{}",
                    spec.traffic_dial,
                    endpoints.map(endpoint_details).unwrap_or_default()
                ),
            );
            Ok(())
        })
        .await
    }

    /// `AddEndpoints`: adds endpoints, or updates those with the same id.
    pub async fn add_endpoints(
        &self,
        group_arn: &str,
        endpoints: &[EndpointSpec],
    ) -> Result<(), SimError> {
        self.call("AddEndpoints", true, |world| {
            let limit = world.settings.quotas.endpoints_per_group;
            let group = world.endpoint_groups.get_mut(group_arn).ok_or_else(|| {
                api(
                    "AddEndpoints",
                    "EndpointGroupNotFoundException",
                    format!("endpoint group {group_arn} not found"),
                )
            })?;
            // The whole request is refused when it would pass the quota:
            // nothing of it lands.
            let new = endpoints
                .iter()
                .filter(|e| !group.endpoints.iter().any(|old| old.spec.id == e.id))
                .count();
            if group.endpoints.len() + new > limit {
                return Err(api(
                    "AddEndpoints",
                    "LimitExceededException",
                    format!(
                        "the endpoint group has {} endpoints and the request adds {new}; the quota is {limit}",
                        group.endpoints.len()
                    ),
                ));
            }
            let mut details = Vec::new();
            for endpoint in endpoints {
                match group
                    .endpoints
                    .iter_mut()
                    .find(|e| e.spec.id == endpoint.id)
                {
                    Some(existing) => existing.spec = endpoint.clone(),
                    None => {
                        group.endpoints.push(Endpoint {
                            spec: endpoint.clone(),
                            health: "HEALTHY".to_owned(),
                        });
                    }
                }
                details.push(format!("{} weight={}", endpoint.id, endpoint.weight));
            }
            let listener_arn = group.listener_arn.clone();
            if let Some(accelerator_arn) = Self::accelerator_of_listener(world, &listener_arn) {
                world.touch_accelerator(&accelerator_arn);
            }
            world.record("AddEndpoints", group_arn, details.join(", "));
            Ok(())
        })
        .await
    }

    /// `RemoveEndpoints`.
    pub async fn remove_endpoints(&self, group_arn: &str, ids: &[String]) -> Result<(), SimError> {
        self.call("RemoveEndpoints", true, |world| {
            let group = world.endpoint_groups.get_mut(group_arn).ok_or_else(|| {
                api(
                    "RemoveEndpoints",
                    "EndpointGroupNotFoundException",
                    format!("endpoint group {group_arn} not found"),
                )
            })?;
            group.endpoints.retain(|e| !ids.contains(&e.spec.id));
            let listener_arn = group.listener_arn.clone();
            if let Some(accelerator_arn) = Self::accelerator_of_listener(world, &listener_arn) {
                world.touch_accelerator(&accelerator_arn);
            }
            world.record("RemoveEndpoints", group_arn, ids.join(", "));
            Ok(())
        })
        .await
    }

    /// `DeleteEndpointGroup`.
    pub async fn delete_endpoint_group(&self, arn: &str) -> Result<(), SimError> {
        self.call("DeleteEndpointGroup", true, |world| {
            let group = world.endpoint_groups.remove(arn).ok_or_else(|| {
                api(
                    "DeleteEndpointGroup",
                    "EndpointGroupNotFoundException",
                    format!("endpoint group {arn} not found"),
                )
            })?;
            if let Some(accelerator_arn) = Self::accelerator_of_listener(world, &group.listener_arn)
            {
                world.touch_accelerator(&accelerator_arn);
            }
            world.record(
                "DeleteEndpointGroup",
                arn,
                format!("region={}", group.spec.region),
            );
            Ok(())
        })
        .await
    }

    // ----- GCP global load balancing -----------------------------------------

    /// `healthChecks.list`, at most `max_page_size` per page.
    pub async fn list_health_checks(
        &self,
        project: &str,
        max_results: Option<usize>,
        page_token: Option<&str>,
    ) -> Result<Page<GcpHealthCheck>, SimError> {
        self.list_health_checks_up_to(project, max_results, page_token, None)
            .await
    }

    /// `healthChecks.list` with pages of at most `page_limit` items (the
    /// world's `max_page_size` when `None`); GCP itself allows 500.
    pub async fn list_health_checks_up_to(
        &self,
        project: &str,
        max_results: Option<usize>,
        page_token: Option<&str>,
        page_limit: Option<usize>,
    ) -> Result<Page<GcpHealthCheck>, SimError> {
        self.call("healthChecks.list", false, |world| {
            let all: Vec<_> = world
                .health_checks
                .values()
                .filter(|h| h.spec.project == project)
                .cloned()
                .collect();
            paginate(
                "healthChecks.list",
                all,
                |h: &GcpHealthCheck| h.name.clone(),
                max_results,
                page_token,
                page_limit.unwrap_or(world.settings.max_page_size),
            )
        })
        .await
    }

    /// `healthChecks.get`.
    pub async fn get_health_check(
        &self,
        project: &str,
        name: &str,
    ) -> Result<GcpHealthCheck, SimError> {
        self.call("healthChecks.get", false, |world| {
            world
                .health_checks
                .get(&format!("{project}/{name}"))
                .cloned()
                .ok_or_else(|| {
                    api(
                        "healthChecks.get",
                        "notFound",
                        format!(
                            "The resource 'projects/{project}/global/healthChecks/{name}' was not found"
                        ),
                    )
                })
        })
        .await
    }

    /// `healthChecks.insert`.
    pub async fn insert_health_check(
        &self,
        name: &str,
        description: &str,
        spec: &HealthCheckSpec,
    ) -> Result<String, SimError> {
        self.call("healthChecks.insert", true, |world| {
            let key = format!("{}/{name}", spec.project);
            if world.health_checks.contains_key(&key) {
                return Err(api(
                    "healthChecks.insert",
                    "alreadyExists",
                    format!(
                        "The resource 'projects/{}/global/healthChecks/{name}' already exists",
                        spec.project
                    ),
                ));
            }
            let id = world.fresh_id();
            world.health_checks.insert(
                key,
                GcpHealthCheck {
                    id: (4_000_000_000_000_000_000u64 + id).to_string(),
                    name: name.to_owned(),
                    description: description.to_owned(),
                    created_ms: now_ms(),
                    fingerprint: fingerprint(spec, id),
                    spec: spec.clone(),
                },
            );
            world.record(
                "healthChecks.insert",
                name,
                format!("{} port={}", spec.check_type, spec.port),
            );
            Ok(name.to_owned())
        })
        .await
    }

    /// `healthChecks.patch`, guarded by the fingerprint.
    pub async fn patch_health_check(
        &self,
        name: &str,
        fingerprint_seen: Option<&str>,
        spec: &HealthCheckSpec,
    ) -> Result<(), SimError> {
        self.modify_health_check(
            GcpMethod::Patch,
            &spec.project,
            name,
            fingerprint_seen,
            |_| Ok((None, spec.clone())),
        )
        .await
        .map(|_| ())
    }

    /// `healthChecks.patch` or `healthChecks.update`, guarded by the
    /// fingerprint: `change` sees the current check inside the transaction
    /// and returns its new description (`None` keeps it) and settings.
    /// Returns the check as written.
    pub async fn modify_health_check(
        &self,
        method: GcpMethod,
        project: &str,
        name: &str,
        fingerprint_seen: Option<&str>,
        change: impl FnOnce(&GcpHealthCheck) -> Result<(Option<String>, HealthCheckSpec), SimError>,
    ) -> Result<GcpHealthCheck, SimError> {
        let operation = method.operation("healthChecks");
        let op = operation.as_str();
        self.call(op, true, |world| {
            let generation = world.fresh_id();
            let check = world
                .health_checks
                .get_mut(&format!("{project}/{name}"))
                .ok_or_else(|| {
                    api(
                        op,
                        "notFound",
                        format!(
                            "The resource 'projects/{project}/global/healthChecks/{name}' was not found"
                        ),
                    )
                })?;
            if fingerprint_seen.is_some_and(|f| f != check.fingerprint) {
                return Err(api(
                    op,
                    "conditionNotMet",
                    "Supplied fingerprint does not match current fingerprint.",
                ));
            }
            let (description, mut spec) = change(check)?;
            spec.project = project.to_owned();
            if let Some(description) = description {
                check.description = description;
            }
            check.fingerprint = fingerprint(&spec, generation);
            let detail = format!("{} port={}", spec.check_type, spec.port);
            check.spec = spec;
            let written = check.clone();
            world.record(op, name, detail);
            Ok(written)
        })
        .await
    }

    /// `healthChecks.delete`: refused while a backend service uses it.
    pub async fn delete_health_check(&self, project: &str, name: &str) -> Result<(), SimError> {
        self.call("healthChecks.delete", true, |world| {
            if let Some(user) = world.backend_services.values().find(|s| {
                s.spec.project == project && s.spec.health_checks.iter().any(|h| h == name)
            }) {
                return Err(api(
                    "healthChecks.delete",
                    "resourceInUseByAnotherResource",
                    format!(
                        "The health_check resource '{name}' is already being used by '{}'",
                        user.name
                    ),
                ));
            }
            world
                .health_checks
                .remove(&format!("{project}/{name}"))
                .ok_or_else(|| {
                    api(
                        "healthChecks.delete",
                        "notFound",
                        format!("health check {name} not found"),
                    )
                })?;
            world.record("healthChecks.delete", name, "");
            Ok(())
        })
        .await
    }

    fn backend_service_view(world: &World, service: &GcpBackendService) -> BackendServiceView {
        BackendServiceView {
            health: service
                .backends
                .iter()
                .map(|b| world.backend_health(b).to_owned())
                .collect(),
            service: service.clone(),
        }
    }

    /// `backendServices.list`, with each backend's health, at most
    /// `max_page_size` per page.
    pub async fn list_backend_services(
        &self,
        project: &str,
        max_results: Option<usize>,
        page_token: Option<&str>,
    ) -> Result<Page<BackendServiceView>, SimError> {
        self.list_backend_services_up_to(project, max_results, page_token, None)
            .await
    }

    /// `backendServices.list` with pages of at most `page_limit` items (the
    /// world's `max_page_size` when `None`).
    pub async fn list_backend_services_up_to(
        &self,
        project: &str,
        max_results: Option<usize>,
        page_token: Option<&str>,
        page_limit: Option<usize>,
    ) -> Result<Page<BackendServiceView>, SimError> {
        self.call("backendServices.list", false, |world| {
            let all: Vec<_> = world
                .backend_services
                .values()
                .filter(|s| s.spec.project == project)
                .map(|s| Self::backend_service_view(world, s))
                .collect();
            paginate(
                "backendServices.list",
                all,
                |v: &BackendServiceView| v.service.name.clone(),
                max_results,
                page_token,
                page_limit.unwrap_or(world.settings.max_page_size),
            )
        })
        .await
    }

    /// `backendServices.get`, with each backend's health.
    pub async fn get_backend_service(
        &self,
        project: &str,
        name: &str,
    ) -> Result<BackendServiceView, SimError> {
        self.call("backendServices.get", false, |world| {
            let service = world
                .backend_services
                .get(&format!("{project}/{name}"))
                .ok_or_else(|| {
                    api(
                        "backendServices.get",
                        "notFound",
                        format!(
                            "The resource 'projects/{project}/global/backendServices/{name}' was not found"
                        ),
                    )
                })?;
            Ok(Self::backend_service_view(world, service))
        })
        .await
    }

    /// `backendServices.getHealth`: the health of one backend group of a
    /// service, as of now. `group` is a relative path such as
    /// `regions/R/networkEndpointGroups/N`.
    pub async fn get_backend_health(
        &self,
        project: &str,
        name: &str,
        group: &str,
    ) -> Result<BackendHealth, SimError> {
        self.call("backendServices.getHealth", false, |world| {
            let op = "backendServices.getHealth";
            let service = world
                .backend_services
                .get(&format!("{project}/{name}"))
                .ok_or_else(|| {
                    api(
                        op,
                        "notFound",
                        format!(
                            "The resource 'projects/{project}/global/backendServices/{name}' was not found"
                        ),
                    )
                })?;
            // The stored path may carry a `projects/P/` prefix or be a URL.
            let suffix = format!("/{group}");
            let backend = service
                .backends
                .iter()
                .find(|b| b.group == group || b.group.ends_with(&suffix))
                .ok_or_else(|| {
                    api(
                        op,
                        "invalid",
                        format!(
                            "Invalid value for field 'resource.group': '{group}'. The group is not a backend of backend service '{name}'."
                        ),
                    )
                })?;
            let port = service
                .spec
                .health_checks
                .first()
                .and_then(|h| world.health_checks.get(&format!("{project}/{h}")))
                .map_or(
                    match service.spec.protocol.as_str() {
                        "HTTP" | "TCP" => 80,
                        _ => 443,
                    },
                    |h| h.spec.port,
                );
            Ok(BackendHealth {
                backend: backend.clone(),
                state: world.backend_health(backend).to_owned(),
                port,
            })
        })
        .await
    }

    fn check_health_checks_exist(
        world: &World,
        operation: &str,
        spec: &BackendServiceSpec,
    ) -> Result<(), SimError> {
        for name in &spec.health_checks {
            if !world
                .health_checks
                .contains_key(&format!("{}/{name}", spec.project))
            {
                return Err(api(
                    operation,
                    "invalid",
                    format!(
                        "The resource 'projects/{}/global/healthChecks/{name}' was not found",
                        spec.project
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `backendServices.insert`.
    pub async fn insert_backend_service(
        &self,
        name: &str,
        description: &str,
        spec: &BackendServiceSpec,
        backends: &[BackendSpec],
    ) -> Result<String, SimError> {
        self.call("backendServices.insert", true, |world| {
            let key = format!("{}/{name}", spec.project);
            if world.backend_services.contains_key(&key) {
                return Err(api(
                    "backendServices.insert",
                    "alreadyExists",
                    format!(
                        "The resource 'projects/{}/global/backendServices/{name}' already exists",
                        spec.project
                    ),
                ));
            }
            let count = world
                .backend_services
                .values()
                .filter(|s| s.spec.project == spec.project)
                .count();
            if count >= world.settings.quotas.backend_services {
                return Err(api(
                    "backendServices.insert",
                    "quotaExceeded",
                    format!("Quota 'BACKEND_SERVICES' exceeded. Limit: {count} globally."),
                ));
            }
            Self::check_health_checks_exist(world, "backendServices.insert", spec)?;
            let id = world.fresh_id();
            world.backend_services.insert(
                key,
                GcpBackendService {
                    id: (5_000_000_000_000_000_000u64 + id).to_string(),
                    name: name.to_owned(),
                    description: description.to_owned(),
                    created_ms: now_ms(),
                    fingerprint: fingerprint(&(spec, backends), id),
                    spec: spec.clone(),
                    backends: backends.to_vec(),
                },
            );
            world.record(
                "backendServices.insert",
                name,
                format!("{} backends", backends.len()),
            );
            Ok(name.to_owned())
        })
        .await
    }

    /// `backendServices.patch`: replaces the service's settings and, when
    /// `backends` is given, its backend list. Guarded by the fingerprint.
    pub async fn patch_backend_service(
        &self,
        project: &str,
        name: &str,
        fingerprint_seen: Option<&str>,
        spec: Option<&BackendServiceSpec>,
        backends: Option<&[BackendSpec]>,
    ) -> Result<(), SimError> {
        self.modify_backend_service(GcpMethod::Patch, project, name, fingerprint_seen, |_| {
            Ok(ServiceChange {
                description: None,
                spec: spec.cloned(),
                backends: backends.map(<[BackendSpec]>::to_vec),
            })
        })
        .await
        .map(|_| ())
    }

    /// `backendServices.patch` or `backendServices.update`, guarded by the
    /// fingerprint: `change` sees the current service inside the
    /// transaction and returns what to replace. Returns the service as
    /// written.
    pub async fn modify_backend_service(
        &self,
        method: GcpMethod,
        project: &str,
        name: &str,
        fingerprint_seen: Option<&str>,
        change: impl FnOnce(&GcpBackendService) -> Result<ServiceChange, SimError>,
    ) -> Result<GcpBackendService, SimError> {
        let operation = method.operation("backendServices");
        let op = operation.as_str();
        self.call(op, true, |world| {
            let not_found = || api(op, "notFound", format!("The resource 'projects/{project}/global/backendServices/{name}' was not found"));
            let key = format!("{project}/{name}");
            let racing = world.settings.faults.racing_writes.iter().position(|r| {
                r.split_once('/').map_or(r.as_str(), |(service, _)| service) == name
            });
            if let Some(i) = racing {
                // Another writer gets there first (a test fault): the backend
                // named after the `/` (by group suffix), or the last one.
                let race = world.settings.faults.racing_writes.remove(i);
                let group = race.split_once('/').map(|(_, g)| g.to_owned());
                let generation = world.fresh_id();
                let service = world.backend_services.get_mut(&key).ok_or_else(not_found)?;
                let target = match &group {
                    Some(g) => service.backends.iter_mut().find(|b| b.group.ends_with(g.as_str())),
                    None => service.backends.last_mut(),
                };
                if let Some(backend) = target {
                    backend.capacity_scaler = 0.37;
                }
                service.fingerprint = fingerprint(&(&service.spec, &service.backends), generation);
                world.record("backendServices.patch", name, format!("racing writer: {} scaler=0.37", group.as_deref().unwrap_or("last backend")));
            }
            let current = world.backend_services.get(&key).ok_or_else(not_found)?;
            if fingerprint_seen.is_some_and(|f| f != current.fingerprint) {
                return Err(api(op, "conditionNotMet", "Supplied fingerprint does not match current fingerprint."));
            }
            let mut change = change(current)?;
            if let Some(spec) = &mut change.spec {
                spec.project = project.to_owned();
                Self::check_health_checks_exist(world, op, spec)?;
            }
            let generation = world.fresh_id();
            let service = world.backend_services.get_mut(&key).ok_or_else(not_found)?;
            if let Some(spec) = change.spec {
                service.spec = spec;
            }
            if let Some(description) = change.description {
                service.description = description;
            }
            let mut detail = String::new();
            if let Some(backends) = change.backends {
                for backend in &backends {
                    detail.push_str(&format!("{} scaler={} ", backend.group, backend.capacity_scaler));
                }
                service.backends = backends;
            }
            service.fingerprint = fingerprint(&(&service.spec, &service.backends), generation);
            let written = service.clone();
            world.record(op, name, detail.trim_end().to_owned());
            Ok(written)
        })
        .await
    }

    /// `backendServices.delete`: refused while a URL map uses it.
    pub async fn delete_backend_service(&self, project: &str, name: &str) -> Result<(), SimError> {
        self.call("backendServices.delete", true, |world| {
            if let Some(user) = world
                .url_maps
                .values()
                .find(|m| m.spec.project == project && url_map_uses(&m.spec, name))
            {
                return Err(api(
                    "backendServices.delete",
                    "resourceInUseByAnotherResource",
                    format!(
                        "The backend_service resource '{name}' is already being used by '{}'",
                        user.name
                    ),
                ));
            }
            world
                .backend_services
                .remove(&format!("{project}/{name}"))
                .ok_or_else(|| {
                    api(
                        "backendServices.delete",
                        "notFound",
                        format!("backend service {name} not found"),
                    )
                })?;
            world.record("backendServices.delete", name, "");
            Ok(())
        })
        .await
    }

    /// `urlMaps.list`, at most `max_page_size` per page.
    pub async fn list_url_maps(
        &self,
        project: &str,
        max_results: Option<usize>,
        page_token: Option<&str>,
    ) -> Result<Page<GcpUrlMap>, SimError> {
        self.list_url_maps_up_to(project, max_results, page_token, None)
            .await
    }

    /// `urlMaps.list` with pages of at most `page_limit` items (the world's
    /// `max_page_size` when `None`).
    pub async fn list_url_maps_up_to(
        &self,
        project: &str,
        max_results: Option<usize>,
        page_token: Option<&str>,
        page_limit: Option<usize>,
    ) -> Result<Page<GcpUrlMap>, SimError> {
        self.call("urlMaps.list", false, |world| {
            let all: Vec<_> = world
                .url_maps
                .values()
                .filter(|m| m.spec.project == project)
                .cloned()
                .collect();
            paginate(
                "urlMaps.list",
                all,
                |m: &GcpUrlMap| m.name.clone(),
                max_results,
                page_token,
                page_limit.unwrap_or(world.settings.max_page_size),
            )
        })
        .await
    }

    /// `urlMaps.get`.
    pub async fn get_url_map(&self, project: &str, name: &str) -> Result<GcpUrlMap, SimError> {
        self.call("urlMaps.get", false, |world| {
            world
                .url_maps
                .get(&format!("{project}/{name}"))
                .cloned()
                .ok_or_else(|| {
                    api(
                        "urlMaps.get",
                        "notFound",
                        format!(
                            "The resource 'projects/{project}/global/urlMaps/{name}' was not found"
                        ),
                    )
                })
        })
        .await
    }

    fn check_services_exist(
        world: &World,
        operation: &str,
        spec: &UrlMapSpec,
    ) -> Result<(), SimError> {
        let mut names = vec![&spec.default_service];
        for matcher in &spec.path_matchers {
            names.push(&matcher.default_service);
            names.extend(matcher.path_rules.iter().map(|r| &r.service));
        }
        for name in names {
            if !world
                .backend_services
                .contains_key(&format!("{}/{name}", spec.project))
            {
                return Err(api(
                    operation,
                    "invalid",
                    format!(
                        "The resource 'projects/{}/global/backendServices/{name}' was not found",
                        spec.project
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `urlMaps.insert`.
    pub async fn insert_url_map(
        &self,
        name: &str,
        description: &str,
        spec: &UrlMapSpec,
    ) -> Result<String, SimError> {
        self.call("urlMaps.insert", true, |world| {
            let key = format!("{}/{name}", spec.project);
            if world.url_maps.contains_key(&key) {
                return Err(api(
                    "urlMaps.insert",
                    "alreadyExists",
                    format!(
                        "The resource 'projects/{}/global/urlMaps/{name}' already exists",
                        spec.project
                    ),
                ));
            }
            Self::check_services_exist(world, "urlMaps.insert", spec)?;
            let id = world.fresh_id();
            world.url_maps.insert(
                key,
                GcpUrlMap {
                    id: (6_000_000_000_000_000_000u64 + id).to_string(),
                    name: name.to_owned(),
                    description: description.to_owned(),
                    created_ms: now_ms(),
                    fingerprint: fingerprint(spec, id),
                    spec: spec.clone(),
                },
            );
            world.record(
                "urlMaps.insert",
                name,
                format!("default={}", spec.default_service),
            );
            Ok(name.to_owned())
        })
        .await
    }

    /// `urlMaps.patch`, guarded by the fingerprint.
    pub async fn patch_url_map(
        &self,
        name: &str,
        fingerprint_seen: Option<&str>,
        spec: &UrlMapSpec,
    ) -> Result<(), SimError> {
        self.modify_url_map(
            GcpMethod::Patch,
            &spec.project,
            name,
            fingerprint_seen,
            |_| Ok((None, spec.clone())),
        )
        .await
        .map(|_| ())
    }

    /// `urlMaps.patch` or `urlMaps.update`, guarded by the fingerprint:
    /// `change` sees the current map inside the transaction and returns its
    /// new description (`None` keeps it) and settings. Returns the map as
    /// written.
    pub async fn modify_url_map(
        &self,
        method: GcpMethod,
        project: &str,
        name: &str,
        fingerprint_seen: Option<&str>,
        change: impl FnOnce(&GcpUrlMap) -> Result<(Option<String>, UrlMapSpec), SimError>,
    ) -> Result<GcpUrlMap, SimError> {
        let operation = method.operation("urlMaps");
        let op = operation.as_str();
        self.call(op, true, |world| {
            let not_found = || {
                api(
                    op,
                    "notFound",
                    format!(
                        "The resource 'projects/{project}/global/urlMaps/{name}' was not found"
                    ),
                )
            };
            let key = format!("{project}/{name}");
            let current = world.url_maps.get(&key).ok_or_else(not_found)?;
            if fingerprint_seen.is_some_and(|f| f != current.fingerprint) {
                return Err(api(
                    op,
                    "conditionNotMet",
                    "Supplied fingerprint does not match current fingerprint.",
                ));
            }
            let (description, mut spec) = change(current)?;
            spec.project = project.to_owned();
            Self::check_services_exist(world, op, &spec)?;
            let generation = world.fresh_id();
            let map = world.url_maps.get_mut(&key).ok_or_else(not_found)?;
            if let Some(description) = description {
                map.description = description;
            }
            map.fingerprint = fingerprint(&spec, generation);
            let detail = format!("default={}", spec.default_service);
            map.spec = spec;
            let written = map.clone();
            world.record(op, name, detail);
            Ok(written)
        })
        .await
    }

    /// `urlMaps.delete`.
    pub async fn delete_url_map(&self, project: &str, name: &str) -> Result<(), SimError> {
        self.call("urlMaps.delete", true, |world| {
            if let Some(user) = crate::frontends::url_map_user(world, project, name) {
                return Err(api(
                    "urlMaps.delete",
                    "resourceInUseByAnotherResource",
                    format!(
                        "The url_map resource 'projects/{project}/global/urlMaps/{name}' is already being used by '{user}'"
                    ),
                ));
            }
            world
                .url_maps
                .remove(&format!("{project}/{name}"))
                .ok_or_else(|| {
                    api(
                        "urlMaps.delete",
                        "notFound",
                        format!("url map {name} not found"),
                    )
                })?;
            world.record("urlMaps.delete", name, "");
            Ok(())
        })
        .await
    }

    /// A call answered outside the world (e.g. the state of a long-running
    /// operation, which the API front end keeps) but served, counted and
    /// subject to faults like any other: `answer` runs inside the call's
    /// transaction and sees the world, e.g. `globalOperations.get`.
    pub async fn count_call<R>(
        &self,
        operation: &str,
        write: bool,
        answer: impl FnOnce(&World) -> Result<R, SimError>,
    ) -> Result<R, SimError> {
        self.call(operation, write, |world| answer(world)).await
    }

    /// Takes one injected operation error for `operation`, if any is
    /// pending: decrements its count (dropping it at zero) and counts the
    /// write as failed, in one transaction. The caller must then not
    /// perform the write.
    pub fn take_operation_fault(
        &self,
        operation: &str,
    ) -> Result<Option<OperationFault>, SimError> {
        Ok(self.store.transact(|world| {
            let faults = &mut world.settings.faults.operation_errors;
            let index = faults
                .iter()
                .position(|f| f.operation == operation && f.times > 0)?;
            let mut fault = faults[index].clone();
            faults[index].times -= 1;
            if faults[index].times == 0 {
                faults.remove(index);
            }
            fault.times = 1;
            let count = world.calls.entry_or_default(operation);
            count.write = true;
            count.failed += 1;
            Some(fault)
        })?)
    }

    // ----- Transit Gateway ---------------------------------------------------

    /// Regions that hold at least one Transit Gateway.
    pub fn transit_gateway_regions(&self) -> Result<Vec<String>, SimError> {
        let world = self.store.read()?;
        let mut regions: Vec<_> = world
            .transit_gateways
            .values()
            .map(|t| t.region.clone())
            .collect();
        regions.sort();
        regions.dedup();
        Ok(regions)
    }

    /// `DescribeTransitGateways` in one region.
    pub async fn describe_transit_gateways(
        &self,
        region: &str,
        max_results: Option<usize>,
        next_token: Option<&str>,
    ) -> Result<Page<TransitGateway>, SimError> {
        self.call("DescribeTransitGateways", false, |world| {
            let all: Vec<_> = world
                .transit_gateways
                .values()
                .filter(|t| t.region == region)
                .cloned()
                .collect();
            paginate(
                "DescribeTransitGateways",
                all,
                |t: &TransitGateway| t.id.clone(),
                max_results,
                next_token,
                world.settings.max_page_size,
            )
        })
        .await
    }

    /// `CreateTransitGateway`.
    pub async fn create_transit_gateway(
        &self,
        region: &str,
        amazon_side_asn: u32,
        description: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<String, SimError> {
        self.call("CreateTransitGateway", true, |world| {
            let count = world
                .transit_gateways
                .values()
                .filter(|t| t.region == region)
                .count();
            if count >= world.settings.quotas.transit_gateways_per_region {
                return Err(api(
                    "CreateTransitGateway",
                    "TransitGatewayLimitExceeded",
                    format!("{region} already has {count} transit gateways, the quota"),
                ));
            }
            let id = world.fresh_id();
            let tgw = format!("tgw-{id:017x}");
            world.transit_gateways.insert(
                tgw.clone(),
                TransitGateway {
                    id: tgw.clone(),
                    region: region.to_owned(),
                    amazon_side_asn,
                    description: description.to_owned(),
                    route_table_id: format!("tgw-rtb-{id:017x}"),
                    tags,
                },
            );
            world.record("CreateTransitGateway", &tgw, format!("region={region}"));
            Ok(tgw)
        })
        .await
    }

    /// `ModifyTransitGateway` (description only; the ASN is immutable).
    pub async fn modify_transit_gateway(
        &self,
        id: &str,
        description: &str,
    ) -> Result<(), SimError> {
        self.call("ModifyTransitGateway", true, |world| {
            let tgw = world.transit_gateways.get_mut(id).ok_or_else(|| {
                api(
                    "ModifyTransitGateway",
                    "InvalidTransitGatewayID.NotFound",
                    format!("transit gateway {id} not found"),
                )
            })?;
            tgw.description = description.to_owned();
            world.record("ModifyTransitGateway", id, "description");
            Ok(())
        })
        .await
    }

    /// `DeleteTransitGateway`: refused while attachments exist.
    pub async fn delete_transit_gateway(&self, id: &str) -> Result<(), SimError> {
        self.call("DeleteTransitGateway", true, |world| {
            if world
                .peerings
                .values()
                .any(|p| p.requester_tgw == id || p.accepter_tgw == id)
            {
                return Err(api(
                    "DeleteTransitGateway",
                    "IncorrectState",
                    format!("transit gateway {id} has attachments"),
                ));
            }
            world.transit_gateways.remove(id).ok_or_else(|| {
                api(
                    "DeleteTransitGateway",
                    "InvalidTransitGatewayID.NotFound",
                    format!("transit gateway {id} not found"),
                )
            })?;
            world.record("DeleteTransitGateway", id, "");
            Ok(())
        })
        .await
    }

    /// `DescribeTransitGatewayPeeringAttachments` in one region (both sides).
    pub async fn describe_peerings(
        &self,
        region: &str,
        max_results: Option<usize>,
        next_token: Option<&str>,
    ) -> Result<Page<PeeringView>, SimError> {
        self.call("DescribeTransitGatewayPeeringAttachments", false, |world| {
            let all: Vec<_> = world
                .peerings
                .values()
                .filter(|p| p.requester_region == region || p.accepter_region == region)
                .map(|p| PeeringView {
                    state: World::peering_state(p).to_owned(),
                    peering: p.clone(),
                })
                .collect();
            paginate(
                "DescribeTransitGatewayPeeringAttachments",
                all,
                |v: &PeeringView| v.peering.id.clone(),
                max_results,
                next_token,
                world.settings.max_page_size,
            )
        })
        .await
    }

    /// `CreateTransitGatewayPeeringAttachment`, in the requester's region.
    pub async fn create_peering(
        &self,
        region: &str,
        tgw: &str,
        peer_tgw: &str,
        peer_region: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<String, SimError> {
        self.call("CreateTransitGatewayPeeringAttachment", true, |world| {
            let op = "CreateTransitGatewayPeeringAttachment";
            let own = world.transit_gateways.get(tgw).ok_or_else(|| {
                api(
                    op,
                    "InvalidTransitGatewayID.NotFound",
                    format!("transit gateway {tgw} not found"),
                )
            })?;
            if own.region != region {
                return Err(api(
                    op,
                    "InvalidParameterValue",
                    format!("transit gateway {tgw} is not in {region}"),
                ));
            }
            let peer = world.transit_gateways.get(peer_tgw).ok_or_else(|| {
                api(
                    op,
                    "InvalidTransitGatewayID.NotFound",
                    format!("transit gateway {peer_tgw} not found"),
                )
            })?;
            if peer.region != peer_region {
                return Err(api(
                    op,
                    "InvalidParameterValue",
                    format!("transit gateway {peer_tgw} is not in {peer_region}"),
                ));
            }
            let id = world.fresh_id();
            let attachment = format!("tgw-attach-{id:017x}");
            world.peerings.insert(
                attachment.clone(),
                Peering {
                    id: attachment.clone(),
                    requester_tgw: tgw.to_owned(),
                    requester_region: region.to_owned(),
                    accepter_tgw: peer_tgw.to_owned(),
                    accepter_region: peer_region.to_owned(),
                    state: "pendingAcceptance".to_owned(),
                    available_at_ms: 0,
                    tags,
                },
            );
            world.record(op, &attachment, format!("{region} -> {peer_region}"));
            Ok(attachment)
        })
        .await
    }

    /// `AcceptTransitGatewayPeeringAttachment`, in the accepter's region.
    pub async fn accept_peering(&self, region: &str, id: &str) -> Result<(), SimError> {
        self.call("AcceptTransitGatewayPeeringAttachment", true, |world| {
            let op = "AcceptTransitGatewayPeeringAttachment";
            let delay = world.settings.peering_delay_ms;
            let peering = world.peerings.get_mut(id).ok_or_else(|| {
                api(
                    op,
                    "InvalidTransitGatewayAttachmentID.NotFound",
                    format!("attachment {id} not found"),
                )
            })?;
            if peering.accepter_region != region {
                return Err(api(
                    op,
                    "InvalidParameterValue",
                    format!(
                        "attachment {id} must be accepted in {}",
                        peering.accepter_region
                    ),
                ));
            }
            if peering.state != "pendingAcceptance" {
                return Err(api(
                    op,
                    "IncorrectState",
                    format!("attachment {id} is {}", peering.state),
                ));
            }
            peering.state = "pending".to_owned();
            peering.available_at_ms = now_ms() + delay;
            world.record(op, id, format!("in {region}"));
            Ok(())
        })
        .await
    }

    /// `DeleteTransitGatewayPeeringAttachment`: its static routes go with it.
    pub async fn delete_peering(&self, id: &str) -> Result<(), SimError> {
        self.call("DeleteTransitGatewayPeeringAttachment", true, |world| {
            world.peerings.remove(id).ok_or_else(|| {
                api(
                    "DeleteTransitGatewayPeeringAttachment",
                    "InvalidTransitGatewayAttachmentID.NotFound",
                    format!("attachment {id} not found"),
                )
            })?;
            world.routes.retain(|_, r| r.attachment_id != id);
            world.record("DeleteTransitGatewayPeeringAttachment", id, "");
            Ok(())
        })
        .await
    }

    /// `SearchTransitGatewayRoutes` (static routes) of one route table.
    pub async fn search_routes(&self, route_table_id: &str) -> Result<Vec<Route>, SimError> {
        self.call("SearchTransitGatewayRoutes", false, |world| {
            Ok(world
                .routes
                .values()
                .filter(|r| r.route_table_id == route_table_id)
                .cloned()
                .collect())
        })
        .await
    }

    /// `CreateTransitGatewayRoute` or, with `replace`, `ReplaceTransitGatewayRoute`.
    /// The attachment must be `available`; a create refuses an existing
    /// route and a replace a missing one, as EC2's do.
    pub async fn put_route(
        &self,
        route_table_id: &str,
        cidr: &str,
        attachment_id: &str,
        replace: bool,
    ) -> Result<(), SimError> {
        let op = if replace {
            "ReplaceTransitGatewayRoute"
        } else {
            "CreateTransitGatewayRoute"
        };
        self.call(op, true, |world| {
            let peering = world.peerings.get(attachment_id).ok_or_else(|| {
                api(
                    op,
                    "InvalidTransitGatewayAttachmentID.NotFound",
                    format!("attachment {attachment_id} not found"),
                )
            })?;
            let state = World::peering_state(peering).to_owned();
            if state != "available" {
                return Err(api(
                    op,
                    "IncorrectState",
                    format!("attachment {attachment_id} is {state}, not available"),
                ));
            }
            let key = format!("{route_table_id}|{cidr}");
            if !replace && world.routes.contains_key(&key) {
                return Err(api(
                    op,
                    "RouteAlreadyExists",
                    format!("route {cidr} already exists in {route_table_id}"),
                ));
            }
            if replace && !world.routes.contains_key(&key) {
                return Err(api(
                    op,
                    "InvalidRoute.NotFound",
                    format!("no route {cidr} in {route_table_id} to replace"),
                ));
            }
            world.routes.insert(
                key,
                Route {
                    route_table_id: route_table_id.to_owned(),
                    cidr: cidr.to_owned(),
                    attachment_id: attachment_id.to_owned(),
                },
            );
            world.record(op, route_table_id, format!("{cidr} -> {attachment_id}"));
            Ok(())
        })
        .await
    }

    /// `DeleteTransitGatewayRoute`.
    pub async fn delete_route(&self, route_table_id: &str, cidr: &str) -> Result<(), SimError> {
        self.call("DeleteTransitGatewayRoute", true, |world| {
            world
                .routes
                .remove(&format!("{route_table_id}|{cidr}"))
                .ok_or_else(|| {
                    api(
                        "DeleteTransitGatewayRoute",
                        "InvalidRoute.NotFound",
                        format!("route {cidr} not found in {route_table_id}"),
                    )
                })?;
            world.record("DeleteTransitGatewayRoute", route_table_id, cidr.to_owned());
            Ok(())
        })
        .await
    }
}

/// Whether a URL map refers to a backend service.
pub fn url_map_uses(spec: &UrlMapSpec, service: &str) -> bool {
    spec.default_service == service
        || spec.path_matchers.iter().any(|m| {
            m.default_service == service || m.path_rules.iter().any(|r| r.service == service)
        })
}

impl SimCloud {
    /// Changes one backend of a backend service (add, replace or, with
    /// `None`, remove it), leaving every other backend untouched. Counted as
    /// `backendServices.patch`, which is how GCP carries a capacity-scaler change.
    pub async fn patch_backend(
        &self,
        project: &str,
        service: &str,
        group: &str,
        backend: Option<&BackendSpec>,
    ) -> Result<(), SimError> {
        self.call("backendServices.patch", true, |world| {
            let generation = world.fresh_id();
            let entry = world.backend_services.get_mut(&format!("{project}/{service}")).ok_or_else(|| api("backendServices.patch", "notFound", format!("The resource 'projects/{project}/global/backendServices/{service}' was not found")))?;
            let position = entry.backends.iter().position(|b| b.group == group);
            let detail = match (backend, position) {
                (Some(backend), Some(i)) => { entry.backends[i] = backend.clone(); format!("{group} scaler={}", backend.capacity_scaler) }
                (Some(backend), None) => { entry.backends.push(backend.clone()); format!("{group} added scaler={}", backend.capacity_scaler) }
                (None, Some(i)) => { entry.backends.remove(i); format!("{group} removed") }
                (None, None) => return Err(api("backendServices.patch", "notFound", format!("backend {group} not found in {service}"))),
            };
            entry.fingerprint = fingerprint(&(&entry.spec, &entry.backends), generation);
            world.record("backendServices.patch", service, detail);
            Ok(())
        })
        .await
    }
}

impl SimCloud {
    /// `DescribeAccelerator`.
    pub async fn describe_accelerator(&self, arn: &str) -> Result<AcceleratorView, SimError> {
        self.call("DescribeAccelerator", false, |world| {
            let accelerator = world.accelerators.get(arn).ok_or_else(|| {
                api(
                    "DescribeAccelerator",
                    "AcceleratorNotFoundException",
                    format!("Accelerator {arn} was not found"),
                )
            })?;
            Ok(AcceleratorView {
                status: World::accelerator_status(accelerator).to_owned(),
                accelerator: accelerator.clone(),
            })
        })
        .await
    }

    /// `DescribeListener`.
    pub async fn describe_listener(&self, arn: &str) -> Result<Listener, SimError> {
        self.call("DescribeListener", false, |world| {
            world.listeners.get(arn).cloned().ok_or_else(|| {
                api(
                    "DescribeListener",
                    "ListenerNotFoundException",
                    format!("Listener {arn} was not found"),
                )
            })
        })
        .await
    }

    /// `DescribeEndpointGroup`.
    pub async fn describe_endpoint_group(&self, arn: &str) -> Result<EndpointGroupView, SimError> {
        self.call("DescribeEndpointGroup", false, |world| {
            let group = world.endpoint_groups.get(arn).ok_or_else(|| {
                api(
                    "DescribeEndpointGroup",
                    "EndpointGroupNotFoundException",
                    format!("Endpoint group {arn} was not found"),
                )
            })?;
            Ok(EndpointGroupView {
                health: group
                    .endpoints
                    .iter()
                    .map(|e| world.endpoint_health(&group.spec.region, e))
                    .collect(),
                group: group.clone(),
            })
        })
        .await
    }

    /// `ListTagsForResource` (accelerators).
    pub async fn list_tags(&self, arn: &str) -> Result<BTreeMap<String, String>, SimError> {
        self.call("ListTagsForResource", false, |world| {
            world
                .accelerators
                .get(arn)
                .map(|a| a.tags.clone())
                .ok_or_else(|| {
                    api(
                        "ListTagsForResource",
                        "AcceleratorNotFoundException",
                        format!("Accelerator {arn} was not found"),
                    )
                })
        })
        .await
    }
}

impl SimCloud {
    /// `backendServices.patch` with only a new `description` (how a
    /// break-glass override marker is written on a backend service, which has
    /// no labels). Guarded by the fingerprint, which changes, as on GCP.
    pub async fn patch_backend_service_description(
        &self,
        project: &str,
        name: &str,
        fingerprint_seen: Option<&str>,
        description: &str,
    ) -> Result<(), SimError> {
        self.call("backendServices.patch", true, |world| {
            let generation = world.fresh_id();
            let service = world
                .backend_services
                .get_mut(&format!("{project}/{name}"))
                .ok_or_else(|| {
                    api(
                        "backendServices.patch",
                        "notFound",
                        format!(
                            "The resource 'projects/{project}/global/backendServices/{name}' was not found"
                        ),
                    )
                })?;
            if fingerprint_seen.is_some_and(|f| f != service.fingerprint) {
                return Err(api(
                    "backendServices.patch",
                    "conditionNotMet",
                    "Supplied fingerprint does not match current fingerprint.",
                ));
            }
            service.description = description.to_owned();
            service.fingerprint = fingerprint(&(&service.spec, &service.backends), generation);
            world.record("backendServices.patch", name, "description");
            Ok(())
        })
        .await
    }
}

/// How a history entry lists the endpoints a call carried: ` endpoints: id
/// weight=N, …`, or nothing for none.
fn endpoint_details(endpoints: &[EndpointSpec]) -> String {
    if endpoints.is_empty() {
        return String::new();
    }
    let list: Vec<String> = endpoints
        .iter()
        .map(|e| format!("{} weight={}", e.id, e.weight))
        .collect();
    format!(" endpoints: {}", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud() -> (SimCloud, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SimStore::open(dir.path()).expect("store");
        (SimCloud::new(store), dir)
    }

    #[tokio::test]
    async fn writes_made_under_a_request_id_are_recorded_with_it() {
        let (cloud, _dir) = cloud();
        let arn = cloud
            .with_request_id("req-create")
            .create_accelerator("web", "IPV4", true, BTreeMap::new(), None)
            .await
            .expect("create");
        // The region and the request id are independent of each other.
        cloud
            .with_request_id("req-update")
            .in_region("us-west-2")
            .update_accelerator(&arn, "web", "IPV4", false)
            .await
            .expect("update");
        cloud
            .update_accelerator(&arn, "web", "IPV4", true)
            .await
            .expect("update without a request");
        // Reads record nothing, under a request id or not.
        cloud
            .with_request_id("req-read")
            .describe_accelerator(&arn)
            .await
            .expect("read");
        let history = cloud.store().history().expect("history");
        let seen: Vec<(&str, Option<&str>)> = history
            .iter()
            .map(|e| (e.operation.as_str(), e.request_id.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                ("CreateAccelerator", Some("req-create")),
                ("UpdateAccelerator", Some("req-update")),
                ("UpdateAccelerator", None),
            ]
        );
    }

    #[tokio::test]
    async fn a_write_whose_response_is_lost_keeps_its_request_id() {
        let (cloud, _dir) = cloud();
        cloud
            .store()
            .transact(|world| world.settings.faults.lost_response_rate = 1.0)
            .expect("faults");
        let answer = cloud
            .with_request_id("req-lost")
            .create_accelerator("web", "IPV4", true, BTreeMap::new(), None)
            .await;
        assert!(
            matches!(answer, Err(SimError::Internal { .. })),
            "{answer:?}"
        );
        let history = cloud.store().history().expect("history");
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].request_id.as_deref(), Some("req-lost"));
    }
}
