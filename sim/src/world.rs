//! The simulated world's state, as persisted.
//!
//! Objects are stored cloud-shaped: flat maps keyed by ARN or id, children
//! pointing at their parent, tags and descriptions carrying ownership, and
//! statuses derived from timestamps so that time passes between commands.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

use meridian_provider::{
    BackendServiceSpec, BackendSpec, EndpointGroupSpec, EndpointSpec, HealthCheckSpec,
    ListenerSpec, UrlMapSpec,
};
use serde::{Deserialize, Serialize};

/// The whole simulated world.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct World {
    /// Counter for generated ids.
    pub next_id: u64,
    /// Behaviour settings.
    pub settings: Settings,
    /// Global Accelerators by ARN.
    pub accelerators: Table<Accelerator>,
    /// Listeners by ARN.
    pub listeners: Table<Listener>,
    /// Endpoint groups by ARN.
    pub endpoint_groups: Table<EndpointGroup>,
    /// GCP health checks by `project/name`.
    pub health_checks: Table<GcpHealthCheck>,
    /// GCP backend services by `project/name`.
    pub backend_services: Table<GcpBackendService>,
    /// GCP URL maps by `project/name`.
    pub url_maps: Table<GcpUrlMap>,
    /// GCP target HTTP(S) proxies and global forwarding rules by
    /// `project/collection/name`.
    pub frontends: Table<GcpFrontend>,
    /// Transit Gateways by id.
    pub transit_gateways: Table<TransitGateway>,
    /// Peering attachments by id.
    pub peerings: Table<Peering>,
    /// Static routes by `routeTableId|cidr`.
    pub routes: Table<Route>,
    /// Regions made unhealthy by `sim set-health`.
    pub unhealthy_regions: Table<bool>,
    /// API calls by operation.
    pub calls: Table<CallCount>,
    /// Rate-limit meters by bucket (`FAMILY` or `FAMILY@REGION`).
    pub meters: Table<crate::limits::Meter>,
    /// Every successful write, in order, with its time. The store keeps
    /// the history in its own table: in a world inside a transaction this
    /// holds only the writes of that transaction, in [`SimStore::read`]'s
    /// world all of them.
    ///
    /// [`SimStore::read`]: crate::store::SimStore::read
    pub history: Vec<HistoryEntry>,
    /// Idempotency tokens of create calls, with the ARN they created: a retry
    /// with the same token returns the same object instead of a second one.
    pub idempotency: Table<String>,
}

/// One kind of object, keyed by ARN, id or name: a map that remembers which
/// keys were written since the store last saved it, so a transaction writes
/// the rows it touched and nothing else. Reading goes through the map
/// (`Deref`); every way of changing it marks what it changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Table<V> {
    rows: BTreeMap<String, V>,
    #[serde(skip)]
    dirty: BTreeSet<String>,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Self {
            rows: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }
}

impl<V> Deref for Table<V> {
    type Target = BTreeMap<String, V>;

    fn deref(&self) -> &Self::Target {
        &self.rows
    }
}

impl<'t, V> IntoIterator for &'t Table<V> {
    type Item = (&'t String, &'t V);
    type IntoIter = std::collections::btree_map::Iter<'t, String, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.rows.iter()
    }
}

impl<V> FromIterator<(String, V)> for Table<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        let rows: BTreeMap<String, V> = iter.into_iter().collect();
        let dirty = rows.keys().cloned().collect();
        Self { rows, dirty }
    }
}

impl<V> Table<V> {
    /// The rows whose keys start with `prefix`, in key order, found without
    /// a scan of the table: the children of an object whose ids extend
    /// their parent's (a listener's ARN is its accelerator's ARN and
    /// `/listener/…`, an endpoint group's its listener's and
    /// `/endpoint-group/…`), so listing one accelerator's listeners costs
    /// its listeners, not the fleet's.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a V> + 'a {
        self.rows
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(key, _)| key.starts_with(prefix))
            .map(|(_, row)| row)
    }

    /// The row under `key`, to change.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let row = self.rows.get_mut(key)?;
        self.dirty.insert(key.to_owned());
        Some(row)
    }

    /// Sets the row under `key`.
    pub fn insert(&mut self, key: String, value: V) -> Option<V> {
        self.dirty.insert(key.clone());
        self.rows.insert(key, value)
    }

    /// Removes the row under `key`.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let row = self.rows.remove(key)?;
        self.dirty.insert(key.to_owned());
        Some(row)
    }

    /// The row under `key`, created with `V::default()` if missing.
    pub fn entry_or_default(&mut self, key: &str) -> &mut V
    where
        V: Default,
    {
        self.dirty.insert(key.to_owned());
        self.rows.entry(key.to_owned()).or_default()
    }

    /// Keeps the rows for which `keep` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(&String, &mut V) -> bool) {
        let dirty = &mut self.dirty;
        self.rows.retain(|key, value| {
            let kept = keep(key, value);
            if !kept {
                dirty.insert(key.clone());
            }
            kept
        });
    }

    /// Every row, to change (marks them all written).
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.dirty.extend(self.rows.keys().cloned());
        self.rows.values_mut()
    }

    /// The keys written since the last call, each with its row (`None`: removed).
    pub(crate) fn take_dirty(&mut self) -> Vec<(String, Option<&V>)> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .map(|key| {
                let row = self.rows.get(&key);
                (key, row)
            })
            .collect()
    }

    /// Sets or removes a row as the store read it, without marking it.
    pub(crate) fn load(&mut self, key: String, value: Option<V>) {
        match value {
            Some(value) => {
                self.rows.insert(key, value);
            }
            None => {
                self.rows.remove(&key);
            }
        }
    }
}

/// How the world behaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// How long an accelerator stays `IN_PROGRESS` after a change.
    pub deploy_delay_ms: u64,
    /// How long an accepted peering stays `pending` before `available`.
    pub peering_delay_ms: u64,
    /// Injected faults.
    pub faults: Faults,
    /// Quotas.
    pub quotas: Quotas,
    /// Largest page a list call returns.
    pub max_page_size: usize,
    /// API rate limits (the clouds' documented ones unless changed).
    pub limits: crate::limits::Limits,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            deploy_delay_ms: 1_000,
            peering_delay_ms: 500,
            faults: Faults::default(),
            quotas: Quotas::default(),
            max_page_size: 100,
            limits: crate::limits::Limits::default(),
        }
    }
}

/// Injected faults, applied per API call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Added latency per call.
    pub latency_ms: u64,
    /// Fraction of calls throttled, 0.0-1.0.
    pub throttle_rate: f64,
    /// Fraction of calls failing with a server error, 0.0-1.0.
    pub error_rate: f64,
    /// Fraction of writes that land but answer with a server error, as when
    /// a response is lost on the way back, 0.0-1.0.
    pub lost_response_rate: f64,
    /// Operations that fail permanently (a stalled error), for tests of
    /// half-finished applies, e.g. `CreateListener`.
    pub fail_operations: Vec<String>,
    /// GCP writes whose long-running operation ends in an error instead of
    /// landing, each for a number of calls (`backendServices.patch` →
    /// `RESOURCE_NOT_READY`, twice).
    pub operation_errors: Vec<OperationFault>,
    /// Backend services that another writer changes just before meridian's
    /// next write to them lands (one entry, one race), as `SERVICE` or
    /// `SERVICE/GROUP_SUFFIX`: that backend's (default: the last one's)
    /// capacity scaler becomes 0.37 and the fingerprint moves, so the write
    /// carries a stale fingerprint and is answered 412.
    #[serde(default)]
    pub racing_writes: Vec<String>,
}

/// One injected failure of a GCP long-running operation: the write is
/// accepted, does not land, and its operation ends `DONE` with `code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationFault {
    /// GCP write, e.g. `backendServices.patch`.
    pub operation: String,
    /// The operation error's code, e.g. `RESOURCE_NOT_READY`.
    pub code: String,
    /// The operation error's message.
    pub message: String,
    /// How many more writes fail; the fault is dropped when it reaches 0.
    pub times: u32,
}

/// Quotas, as the clouds' default service quotas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Quotas {
    /// Accelerators per account.
    pub accelerators: usize,
    /// Listeners per accelerator.
    pub listeners_per_accelerator: usize,
    /// Endpoints per endpoint group.
    pub endpoints_per_group: usize,
    /// Backend services per project.
    pub backend_services: usize,
    /// Transit Gateways per region.
    pub transit_gateways_per_region: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            accelerators: 20,
            listeners_per_accelerator: 10,
            endpoints_per_group: 10,
            backend_services: 1_000,
            transit_gateways_per_region: 5,
        }
    }
}

/// Calls of one operation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CallCount {
    /// Whether the operation writes.
    pub write: bool,
    /// Successful calls.
    pub ok: u64,
    /// Throttled calls.
    pub throttled: u64,
    /// Calls failed by an error (injected or real).
    pub failed: u64,
}

/// One successful write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Operation name.
    pub operation: String,
    /// ARN, id or name of the object written.
    pub target: String,
    /// What was written, briefly.
    pub detail: String,
    /// The request id of the API call that made the write, as its client
    /// saw it (AWS's `x-amzn-RequestId`, EC2's `<requestId>`, Compute's
    /// `requestId`); `None` for writes made outside an API call (`meridian
    /// sim set-health`) and in worlds written before it was kept.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// A Global Accelerator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Accelerator {
    /// ARN.
    pub arn: String,
    /// Name.
    pub name: String,
    /// Enabled flag.
    pub enabled: bool,
    /// `IPV4` or `DUAL_STACK`.
    pub ip_address_type: String,
    /// DNS name.
    pub dns_name: String,
    /// Static anycast addresses.
    pub ip_addresses: Vec<String>,
    /// `IN_PROGRESS` until this time, `DEPLOYED` after.
    pub deployed_at_ms: u64,
    /// All tags, meridian's included.
    pub tags: BTreeMap<String, String>,
    /// Creation time, milliseconds since the epoch.
    #[serde(default)]
    pub created_ms: u64,
    /// Last change, milliseconds since the epoch.
    #[serde(default)]
    pub modified_ms: u64,
    /// Flow-log attributes (`DescribeAcceleratorAttributes`).
    #[serde(default)]
    pub flow_logs: FlowLogs,
}

/// An accelerator's attributes: where its flow logs go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowLogs {
    /// Whether flow logs are written.
    pub enabled: bool,
    /// S3 bucket (required when enabled).
    pub s3_bucket: Option<String>,
    /// Key prefix in the bucket.
    pub s3_prefix: Option<String>,
}

/// A listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Listener {
    /// ARN.
    pub arn: String,
    /// Parent accelerator ARN.
    pub accelerator_arn: String,
    /// Settings.
    pub spec: ListenerSpec,
}

/// An endpoint with its health.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    /// Settings.
    pub spec: EndpointSpec,
    /// `HEALTHY`, `UNHEALTHY` or `INITIAL` as set on the endpoint itself.
    pub health: String,
}

/// An endpoint group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointGroup {
    /// ARN.
    pub arn: String,
    /// Parent listener ARN.
    pub listener_arn: String,
    /// Settings.
    pub spec: EndpointGroupSpec,
    /// Endpoints.
    pub endpoints: Vec<Endpoint>,
}

/// A GCP health check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GcpHealthCheck {
    /// Numeric id, as a string.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description (carries meridian's ownership marker).
    pub description: String,
    /// Creation time, milliseconds since the epoch (0 in worlds written
    /// before it was kept).
    #[serde(default)]
    pub created_ms: u64,
    /// Fingerprint of the current version.
    pub fingerprint: String,
    /// Settings.
    pub spec: HealthCheckSpec,
}

/// A GCP backend service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GcpBackendService {
    /// Numeric id, as a string.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description (carries meridian's ownership marker).
    pub description: String,
    /// Creation time, milliseconds since the epoch (0 in worlds written
    /// before it was kept).
    #[serde(default)]
    pub created_ms: u64,
    /// Fingerprint of the current version.
    pub fingerprint: String,
    /// Settings.
    pub spec: BackendServiceSpec,
    /// Backends.
    pub backends: Vec<BackendSpec>,
}

/// A GCP URL map.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GcpUrlMap {
    /// Numeric id, as a string.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description (carries meridian's ownership marker).
    pub description: String,
    /// Creation time, milliseconds since the epoch (0 in worlds written
    /// before it was kept).
    #[serde(default)]
    pub created_ms: u64,
    /// Fingerprint of the current version.
    pub fingerprint: String,
    /// Settings.
    pub spec: UrlMapSpec,
}

/// Which part of the load balancer's front end a [`GcpFrontend`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FrontendKind {
    /// `targetHttpProxies`.
    TargetHttpProxy,
    /// `targetHttpsProxies`.
    TargetHttpsProxy,
    /// `globalForwardingRules` (path `global/forwardingRules`).
    ForwardingRule,
}

impl FrontendKind {
    /// The collection in resource paths (`global/{collection}/{name}`).
    pub fn collection(self) -> &'static str {
        match self {
            FrontendKind::TargetHttpProxy => "targetHttpProxies",
            FrontendKind::TargetHttpsProxy => "targetHttpsProxies",
            FrontendKind::ForwardingRule => "forwardingRules",
        }
    }

    /// The API resource its methods belong to (`{api}.insert`).
    pub fn api(self) -> &'static str {
        match self {
            FrontendKind::ForwardingRule => "globalForwardingRules",
            other => other.collection(),
        }
    }
}

/// A GCP target HTTP(S) proxy or global forwarding rule: the front of the
/// global load balancer chain (forwarding rule → target proxy → URL map →
/// backend services).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GcpFrontend {
    /// What it is.
    pub kind: FrontendKind,
    /// Project.
    pub project: String,
    /// Numeric id, as a string.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Creation time, milliseconds since the epoch.
    pub created_ms: u64,
    /// Fingerprint of the current version.
    pub fingerprint: String,
    /// Proxies: the URL map's name.
    #[serde(default)]
    pub url_map: Option<String>,
    /// HTTPS proxies: the SSL certificates, as references.
    #[serde(default)]
    pub ssl_certificates: Vec<String>,
    /// Forwarding rules: the target proxy, as `targetHttpProxies/NAME` or
    /// `targetHttpsProxies/NAME`.
    #[serde(default)]
    pub target: Option<String>,
    /// Forwarding rules: the address (given, or an ephemeral one).
    #[serde(default)]
    pub ip_address: Option<String>,
    /// Forwarding rules: `TCP`.
    #[serde(default)]
    pub ip_protocol: Option<String>,
    /// Forwarding rules: e.g. `80-80`.
    #[serde(default)]
    pub port_range: Option<String>,
    /// Forwarding rules: `EXTERNAL` or `EXTERNAL_MANAGED`.
    #[serde(default)]
    pub load_balancing_scheme: Option<String>,
    /// Forwarding rules: labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl GcpFrontend {
    /// Its key in [`World::frontends`].
    pub fn key(&self) -> String {
        frontend_key(&self.project, self.kind, &self.name)
    }
}

/// The key of a front-end object in [`World::frontends`].
pub fn frontend_key(project: &str, kind: FrontendKind, name: &str) -> String {
    format!("{project}/{}/{name}", kind.collection())
}

/// A Transit Gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransitGateway {
    /// `tgw-…` id.
    pub id: String,
    /// Region.
    pub region: String,
    /// Amazon side ASN.
    pub amazon_side_asn: u32,
    /// Description.
    pub description: String,
    /// Default route table id.
    pub route_table_id: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// A Transit Gateway peering attachment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Peering {
    /// `tgw-attach-…` id.
    pub id: String,
    /// Requester gateway id.
    pub requester_tgw: String,
    /// Requester region.
    pub requester_region: String,
    /// Accepter gateway id.
    pub accepter_tgw: String,
    /// Accepter region.
    pub accepter_region: String,
    /// `pendingAcceptance`, `pending` (accepted, becoming available), `available`, `deleted`.
    pub state: String,
    /// When a `pending` peering becomes `available`.
    pub available_at_ms: u64,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// A static route.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Route {
    /// Route table id.
    pub route_table_id: String,
    /// Destination CIDR.
    pub cidr: String,
    /// Peering attachment id.
    pub attachment_id: String,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl World {
    /// A fresh id number.
    pub fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// `IN_PROGRESS` or `DEPLOYED`, as of now.
    pub fn accelerator_status(accelerator: &Accelerator) -> &'static str {
        if now_ms() < accelerator.deployed_at_ms {
            "IN_PROGRESS"
        } else {
            "DEPLOYED"
        }
    }

    /// Peering state as of now (a `pending` peering becomes `available` in time).
    pub fn peering_state(peering: &Peering) -> &str {
        if peering.state == "pending" && now_ms() >= peering.available_at_ms {
            "available"
        } else {
            &peering.state
        }
    }

    /// Health of an endpoint as of now: its region's outage wins.
    pub fn endpoint_health(&self, region: &str, endpoint: &Endpoint) -> String {
        if self.unhealthy_regions.get(region).copied().unwrap_or(false) {
            "UNHEALTHY".to_owned()
        } else {
            endpoint.health.clone()
        }
    }

    /// Health of a GCP backend as of now.
    pub fn backend_health(&self, backend: &BackendSpec) -> &'static str {
        if self
            .unhealthy_regions
            .get(&backend.region)
            .copied()
            .unwrap_or(false)
        {
            "UNHEALTHY"
        } else {
            "HEALTHY"
        }
    }

    /// Marks an accelerator as changing: `IN_PROGRESS` for the deploy delay.
    pub fn touch_accelerator(&mut self, arn: &str) {
        let now = now_ms();
        let until = now + self.settings.deploy_delay_ms;
        if let Some(accelerator) = self.accelerators.get_mut(arn) {
            accelerator.deployed_at_ms = until;
            accelerator.modified_ms = now;
        }
    }

    /// The object an idempotency token already created, if it still exists.
    pub fn replay(
        &self,
        token: Option<&str>,
        exists: impl Fn(&World, &str) -> bool,
    ) -> Option<String> {
        let arn = self.idempotency.get(token?)?;
        exists(self, arn).then(|| arn.clone())
    }

    /// Records a successful write. The API call making it stamps it with
    /// its request id (see [`crate::SimCloud::with_request_id`]).
    pub fn record(&mut self, operation: &str, target: &str, detail: impl Into<String>) {
        self.history.push(HistoryEntry {
            at_ms: now_ms(),
            operation: operation.to_owned(),
            target: target.to_owned(),
            detail: detail.into(),
            request_id: None,
        });
    }

    /// Total calls of read (`write == false`) or write operations, failed ones included.
    /// Calls of one kind the cloud answered (ok or failed); calls refused
    /// by throttling are counted apart, per operation.
    pub fn total_calls(&self, write: bool) -> u64 {
        self.calls
            .values()
            .filter(|count| count.write == write)
            .map(|count| count.ok + count.failed)
            .sum()
    }
}
