//! The desired-state documents as written in Git.
//!
//! These types are the single source of truth for the document format: the
//! structural check and the committed JSON Schema are both generated from
//! them. Unknown fields are rejected everywhere. Defaults apply only when a
//! field is absent: zero is always a real value, never "unset".

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The only `apiVersion` this release understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApiVersion {
    /// `meridian.dev/v1alpha1`
    #[serde(rename = "meridian.dev/v1alpha1")]
    V1alpha1,
}

/// `metadata` of every document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Unique per kind: lowercase letters, digits and `-`, 1-63 characters,
    /// starting with a letter.
    pub name: String,
    /// Labels; `meridian.dev/data-classification` selects residency policies.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Free-form annotations. Those under `meridian.dev/` are meridian's:
    /// `meridian.dev/management` (`full`, `observe` or `traffic`) says how
    /// much of the document's objects meridian writes.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A whole document of one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Document<S> {
    /// Must be `meridian.dev/v1alpha1`.
    pub api_version: ApiVersion,
    /// The document kind.
    pub kind: String,
    /// Name and labels.
    pub metadata: Metadata,
    /// The kind's settings.
    pub spec: S,
}

/// Which cloud a provider talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderType {
    /// AWS: Global Accelerator and Transit Gateway.
    Aws,
    /// Google Cloud: global external load balancing.
    Gcp,
}

/// Per-service endpoint overrides, for emulators and private endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceEndpoints {
    /// AWS Global Accelerator API URL.
    pub globalaccelerator: Option<String>,
    /// AWS EC2 API URL (Transit Gateway).
    pub ec2: Option<String>,
    /// GCP Compute Engine API URL.
    pub compute: Option<String>,
}

/// Client-side rate limit for one provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RateLimit {
    /// Sustained requests per second.
    pub requests_per_second: f64,
    /// Burst size.
    #[serde(default = "default_burst")]
    pub burst: u32,
}

fn default_burst() -> u32 {
    10
}

/// Global Accelerator service quotas this account was granted above the
/// defaults. Validation checks desired state against them; the cloud still
/// has the last word.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AwsQuotas {
    /// Listeners per accelerator (default 10, adjustable).
    #[schemars(range(min = 10, max = 1000))]
    pub listeners_per_accelerator: Option<u32>,
    /// Endpoints per endpoint group whose endpoints are all Network Load
    /// Balancers, all EC2 instances or all Elastic IP addresses (default 10, adjustable). Groups of Application Load Balancers,
    /// and groups mixing endpoint types, stay at 10: AWS does not raise them.
    #[schemars(range(min = 10, max = 1000))]
    pub endpoints_per_group: Option<u32>,
}

/// `Provider` spec. Never holds credentials: those come from the
/// environment, profiles or instance roles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProviderSpec {
    /// `aws` or `gcp` (under `--sim DIR` both run against the simulated cloud).
    #[serde(rename = "type")]
    pub provider_type: ProviderType,
    /// Not a setting: rejected with an explanation (Global Accelerator's
    /// API lives in us-west-2, Transit Gateway regions come from the mesh).
    pub region: Option<String>,
    /// AWS shared-config profile name.
    pub profile: Option<String>,
    /// GCP project id.
    pub project: Option<String>,
    /// Per-service endpoint overrides.
    pub endpoints: Option<ServiceEndpoints>,
    /// Client-side rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Ownership scope written into meridian's tags (default: this
    /// document's name). Give every desired-state repository that shares a
    /// cloud account its own owner: meridian only sees, changes and deletes
    /// objects carrying its own.
    pub owner: Option<String>,
    /// Changes applied at once by this provider, 1-32 (default 4).
    #[schemars(range(min = 1, max = 32))]
    pub max_concurrency: Option<u32>,
    /// Raised Global Accelerator quotas (aws only).
    pub quotas: Option<AwsQuotas>,
}

/// Listener protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ListenerProtocol {
    /// TCP.
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
}

/// Client affinity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum ClientAffinity {
    /// Spread flows.
    #[default]
    #[serde(rename = "NONE")]
    None,
    /// Keep a client on one endpoint.
    #[serde(rename = "SOURCE_IP")]
    SourceIp,
}

/// Accelerator IP address type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum IpAddressType {
    /// IPv4 only.
    #[default]
    #[serde(rename = "IPV4")]
    Ipv4,
    /// IPv4 and IPv6.
    #[serde(rename = "DUAL_STACK")]
    DualStack,
}

/// Global Accelerator health-check protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum GaHealthCheckProtocol {
    /// TCP connect.
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    /// HTTP GET.
    #[serde(rename = "HTTP")]
    Http,
    /// HTTPS GET.
    #[serde(rename = "HTTPS")]
    Https,
}

/// An inclusive port range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortRangeDoc {
    /// First port, 1-65535.
    #[schemars(range(min = 1, max = 65535))]
    pub from: u32,
    /// Last port, 1-65535, not below `from`.
    #[schemars(range(min = 1, max = 65535))]
    pub to: u32,
}

/// Endpoint-group health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GaHealthCheckDoc {
    /// `TCP` (default), `HTTP` or `HTTPS`.
    #[serde(default)]
    pub protocol: GaHealthCheckProtocol,
    /// Port checked, 1-65535 (default: the listener's first port).
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u32>,
    /// Path for HTTP(S) checks (default `/`).
    pub path: Option<String>,
    /// 10 or 30 seconds (default 30).
    #[serde(default = "default_interval")]
    pub interval_seconds: u32,
    /// Consecutive checks before a state change, 1-10 (default 3).
    #[serde(default = "default_threshold")]
    pub threshold_count: u32,
}

fn default_interval() -> u32 {
    30
}

fn default_threshold() -> u32 {
    3
}

/// A listener-port to endpoint-port override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortOverrideDoc {
    /// A port of the listener, 1-65535.
    #[schemars(range(min = 1, max = 65535))]
    pub listener_port: u32,
    /// The endpoint's port, 1-65535.
    #[schemars(range(min = 1, max = 65535))]
    pub endpoint_port: u32,
}

/// One endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EndpointDoc {
    /// ALB/NLB ARN, EIP allocation id or EC2 instance id.
    pub id: String,
    /// Weight 0-255 (default 128). 0 sends no traffic.
    #[serde(default = "default_weight")]
    #[schemars(range(min = 0, max = 255))]
    pub weight: u32,
    /// Preserve the client IP (default false).
    #[serde(default)]
    pub client_ip_preservation: bool,
}

fn default_weight() -> u32 {
    128
}

/// The endpoint group of one region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EndpointGroupDoc {
    /// AWS region.
    pub region: String,
    /// Share of the region's traffic admitted, 0-100 (default 100).
    #[serde(default = "default_dial")]
    #[schemars(range(min = 0, max = 100))]
    pub traffic_dial: u32,
    /// Health check (default: TCP on the listener's first port, every 30s, threshold 3).
    pub health_check: Option<GaHealthCheckDoc>,
    /// Port overrides.
    #[serde(default)]
    pub port_overrides: Vec<PortOverrideDoc>,
    /// Endpoints, at most 10.
    #[serde(default)]
    pub endpoints: Vec<EndpointDoc>,
    /// Requests (or new connections) per second this group's endpoints can
    /// serve. meridian's own field, never sent to the cloud: `meridian
    /// whatif` compares it with the group's expected load.
    pub capacity_rps: Option<u32>,
}

fn default_dial() -> u32 {
    100
}

/// A listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListenerDoc {
    /// meridian's handle for the listener, unique in the accelerator.
    pub name: String,
    /// `TCP` or `UDP`.
    pub protocol: ListenerProtocol,
    /// Port ranges, not overlapping within the accelerator.
    pub port_ranges: Vec<PortRangeDoc>,
    /// `NONE` (default) or `SOURCE_IP`.
    #[serde(default)]
    pub client_affinity: ClientAffinity,
    /// One endpoint group per region.
    #[serde(default)]
    pub endpoint_groups: Vec<EndpointGroupDoc>,
    /// Expected peak requests (or new connections) per second on this
    /// listener, above 0. meridian's own field, never sent to the cloud:
    /// `meridian whatif` spreads it over the regions to compute headroom.
    pub expected_rps: Option<u32>,
    /// Where this listener's clients are: relative shares by location (an
    /// AWS or Google Cloud region name: clients near that region's city),
    /// e.g. `{us-east-1: 40, eu-central-1: 35, ap-southeast-1: 25}`.
    /// meridian's own field, never sent to the cloud: the traffic model
    /// routes each population from its location. Overrides the
    /// accelerator's `clients`.
    pub clients: Option<BTreeMap<String, f64>>,
    /// Acknowledges that every endpoint group of this listener may be at
    /// dial 0 (the listener serves nothing). Without it, a plan that leaves
    /// the listener with no traffic is blocked.
    #[serde(default)]
    pub acknowledge_zero_traffic: bool,
}

/// `GlobalAccelerator` spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GlobalAcceleratorSpec {
    /// Name of a `Provider` document of type `aws` or `sim`.
    pub provider: String,
    /// The accelerator's `Name` in AWS, 1-64 characters (default:
    /// `metadata.name`). For an adopted accelerator whose name is not a
    /// valid document name.
    pub accelerator_name: Option<String>,
    /// Whether the accelerator accepts traffic (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `IPV4` (default) or `DUAL_STACK`.
    #[serde(default)]
    pub ip_address_type: IpAddressType,
    /// Extra tags for the accelerator (keys under `meridian.dev/` are reserved).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Listeners, at most 10.
    pub listeners: Vec<ListenerDoc>,
    /// Where the clients of every listener without its own `clients` are
    /// (see the listener's field). meridian's own field, never sent.
    pub clients: Option<BTreeMap<String, f64>>,
}

fn default_true() -> bool {
    true
}

/// GCP load-balancing protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum GcpProtocol {
    /// HTTP.
    #[serde(rename = "HTTP")]
    Http,
    /// HTTPS.
    #[serde(rename = "HTTPS")]
    Https,
    /// HTTP/2.
    #[serde(rename = "HTTP2")]
    Http2,
    /// TCP.
    #[serde(rename = "TCP")]
    Tcp,
    /// SSL.
    #[serde(rename = "SSL")]
    Ssl,
    /// gRPC.
    #[serde(rename = "GRPC")]
    Grpc,
}

impl GcpProtocol {
    /// The Compute API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            GcpProtocol::Http => "HTTP",
            GcpProtocol::Https => "HTTPS",
            GcpProtocol::Http2 => "HTTP2",
            GcpProtocol::Tcp => "TCP",
            GcpProtocol::Ssl => "SSL",
            GcpProtocol::Grpc => "GRPC",
        }
    }
}

/// Protocol-specific health-check settings (`httpHealthCheck`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProtocolHealthCheck {
    /// Port, 1-65535 (default 80 for HTTP, 443 for HTTPS/HTTP2/SSL/GRPC, 80 for TCP).
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u32>,
    /// Request path (HTTP family, default `/`).
    pub request_path: Option<String>,
    /// Host header (HTTP family).
    pub host: Option<String>,
}

/// `HealthCheck` spec (GCP global health check; Compute API field names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HealthCheckDocSpec {
    /// Name of a `Provider` document of type `gcp` or `sim`.
    pub provider: String,
    /// Protocol of the check.
    #[serde(rename = "type")]
    pub check_type: GcpProtocol,
    /// Seconds between checks, 1-300 (default 5).
    #[serde(default = "default_gcp_interval")]
    pub check_interval_sec: u32,
    /// Seconds before a check fails, 1-300 and not above `checkIntervalSec` (default 5).
    #[serde(default = "default_gcp_interval")]
    pub timeout_sec: u32,
    /// Successes before healthy, 1-10 (default 2).
    #[serde(default = "default_gcp_threshold")]
    pub healthy_threshold: u32,
    /// Failures before unhealthy, 1-10 (default 2).
    #[serde(default = "default_gcp_threshold")]
    pub unhealthy_threshold: u32,
    /// Settings when `type: HTTP`.
    pub http_health_check: Option<ProtocolHealthCheck>,
    /// Settings when `type: HTTPS`.
    pub https_health_check: Option<ProtocolHealthCheck>,
    /// Settings when `type: HTTP2`.
    pub http2_health_check: Option<ProtocolHealthCheck>,
    /// Settings when `type: TCP`.
    pub tcp_health_check: Option<ProtocolHealthCheck>,
    /// Settings when `type: SSL`.
    pub ssl_health_check: Option<ProtocolHealthCheck>,
    /// Settings when `type: GRPC`.
    pub grpc_health_check: Option<ProtocolHealthCheck>,
}

fn default_gcp_interval() -> u32 {
    5
}

fn default_gcp_threshold() -> u32 {
    2
}

/// Backend balancing mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum BalancingMode {
    /// Requests per second.
    #[serde(rename = "RATE")]
    Rate,
    /// CPU utilisation.
    #[default]
    #[serde(rename = "UTILIZATION")]
    Utilization,
    /// Concurrent connections.
    #[serde(rename = "CONNECTION")]
    Connection,
}

impl BalancingMode {
    /// The Compute API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BalancingMode::Rate => "RATE",
            BalancingMode::Utilization => "UTILIZATION",
            BalancingMode::Connection => "CONNECTION",
        }
    }
}

/// One backend of a backend service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackendDoc {
    /// `regions/REGION/networkEndpointGroups/NAME`, `zones/ZONE/instanceGroups/NAME`, …
    pub group: String,
    /// `RATE`, `UTILIZATION` (default) or `CONNECTION`.
    #[serde(default)]
    pub balancing_mode: BalancingMode,
    /// Requests per second for the group (RATE).
    pub max_rate: Option<u32>,
    /// Requests per second per endpoint (RATE).
    pub max_rate_per_endpoint: Option<f64>,
    /// Target utilisation 0.0-1.0 (UTILIZATION).
    pub max_utilization: Option<f64>,
    /// Connections for the group (CONNECTION).
    pub max_connections: Option<u32>,
    /// 0 (drained), or 0.1-1.0 (default 1.0).
    #[serde(default = "default_scaler")]
    pub capacity_scaler: f64,
    /// How many endpoints (or instances) the group holds, for a RATE
    /// backend with `maxRatePerEndpoint`: its capacity is the product.
    /// meridian's own field, never sent to the cloud.
    #[schemars(range(min = 1))]
    pub endpoint_count: Option<u32>,
    /// Requests per second the group serves at full (100%) utilisation,
    /// for UTILIZATION backends (filled up to `maxUtilization`, default
    /// 0.8), or at its `maxConnections`, for CONNECTION backends: the
    /// capacity in the unit of the service's `expectedRps`. meridian's own
    /// field, never sent to the cloud.
    #[schemars(range(min = 1))]
    pub capacity_rps: Option<u32>,
}

fn default_scaler() -> f64 {
    1.0
}

/// Load-balancing scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum LoadBalancingScheme {
    /// Classic external.
    #[serde(rename = "EXTERNAL")]
    External,
    /// Global external Application Load Balancer.
    #[default]
    #[serde(rename = "EXTERNAL_MANAGED")]
    ExternalManaged,
}

/// `BackendService` spec (GCP global backend service).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackendServiceDocSpec {
    /// Name of a `Provider` document of type `gcp` or `sim`.
    pub provider: String,
    /// Protocol to the backends.
    pub protocol: GcpProtocol,
    /// Named port on the backends.
    pub port_name: Option<String>,
    /// Backend timeout in seconds, 1-86400 (default 30).
    #[serde(default = "default_timeout")]
    pub timeout_sec: u32,
    /// `EXTERNAL` or `EXTERNAL_MANAGED` (default).
    #[serde(default)]
    pub load_balancing_scheme: LoadBalancingScheme,
    /// Cloud CDN (default false).
    #[serde(default, rename = "enableCDN")]
    pub enable_cdn: bool,
    /// Names of `HealthCheck` documents.
    pub health_checks: Vec<String>,
    /// Backends, one per group.
    #[serde(default)]
    pub backends: Vec<BackendDoc>,
    /// Expected peak requests per second on this service, above 0; compared
    /// with the RATE capacity of the backends. meridian's own field, never
    /// sent to the cloud: `meridian whatif` uses it for headroom.
    pub expected_rps: Option<u32>,
    /// Acknowledges that every backend may be at capacity scaler 0 (the
    /// service serves nothing). Without it, such a plan is blocked.
    #[serde(default)]
    pub acknowledge_zero_traffic: bool,
    /// Where the service's clients are: relative shares by location (an
    /// AWS or Google Cloud region name). meridian's own field, never sent.
    pub clients: Option<BTreeMap<String, f64>>,
    /// The algorithm of the service load-balancing policy attached to the
    /// service (`EXTERNAL_MANAGED` only; the policy itself is managed
    /// outside meridian): `WATERFALL_BY_REGION` (Google's default),
    /// `SPRAY_TO_REGION`, `WATERFALL_BY_ZONE` or `SPRAY_TO_WORLD`.
    /// meridian's own field, never sent: the traffic model follows it.
    pub load_balancing_algorithm: Option<LoadBalancingAlgorithm>,
}

/// The algorithm of a service load-balancing policy (`serviceLbPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LoadBalancingAlgorithm {
    /// Closest region with capacity first, then overflow (the default).
    WaterfallByRegion,
    /// Like waterfall between regions; each client spreads over the region's groups.
    SprayToRegion,
    /// Closest zone first, then other zones.
    WaterfallByZone,
    /// Every backend in the world in proportion to its capacity.
    SprayToWorld,
}

impl LoadBalancingAlgorithm {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadBalancingAlgorithm::WaterfallByRegion => "WATERFALL_BY_REGION",
            LoadBalancingAlgorithm::SprayToRegion => "SPRAY_TO_REGION",
            LoadBalancingAlgorithm::WaterfallByZone => "WATERFALL_BY_ZONE",
            LoadBalancingAlgorithm::SprayToWorld => "SPRAY_TO_WORLD",
        }
    }
}

fn default_timeout() -> u32 {
    30
}

/// URL map host rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostRuleDoc {
    /// Host patterns (`*` allowed as the first label).
    pub hosts: Vec<String>,
    /// Name of a path matcher of this URL map.
    pub path_matcher: String,
}

/// URL map path rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PathRuleDoc {
    /// Paths, each starting with `/` (`*` only at the end).
    pub paths: Vec<String>,
    /// Name of a `BackendService` document.
    pub service: String,
}

/// URL map path matcher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PathMatcherDoc {
    /// Matcher name, unique in the URL map.
    pub name: String,
    /// Name of a `BackendService` document.
    pub default_service: String,
    /// Path rules.
    #[serde(default)]
    pub path_rules: Vec<PathRuleDoc>,
}

/// `UrlMap` spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UrlMapDocSpec {
    /// Name of a `Provider` document of type `gcp` or `sim`.
    pub provider: String,
    /// Name of a `BackendService` document for unmatched requests.
    pub default_service: String,
    /// Host rules.
    #[serde(default)]
    pub host_rules: Vec<HostRuleDoc>,
    /// Path matchers.
    #[serde(default)]
    pub path_matchers: Vec<PathMatcherDoc>,
}

/// The gateway of one region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewayDoc {
    /// AWS region.
    pub region: String,
    /// Private ASN: 64512-65534 or 4200000000-4294967294 (default 64512).
    #[serde(default = "default_asn")]
    pub amazon_side_asn: u32,
    /// The region's VPC CIDRs; the other regions get static routes to them.
    #[serde(default)]
    pub cidrs: Vec<String>,
    /// Description.
    pub description: Option<String>,
}

fn default_asn() -> u32 {
    64512
}

/// A peering between two gateways of the mesh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PeeringDoc {
    /// Region that requests the peering.
    pub requester: String,
    /// Region that accepts it.
    pub accepter: String,
}

/// `TransitGatewayMesh` spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitGatewayMeshSpec {
    /// Name of a `Provider` document of type `aws` or `sim`.
    pub provider: String,
    /// One gateway per region.
    pub gateways: Vec<GatewayDoc>,
    /// Peerings; when absent, every pair of gateways is peered (a full mesh),
    /// the gateway listed first requesting.
    pub peerings: Option<Vec<PeeringDoc>>,
}

/// Kinds a traffic policy can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TrafficKind {
    /// `GlobalAccelerator` documents.
    GlobalAccelerator,
    /// `BackendService` documents.
    BackendService,
}

/// Which documents a policy applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Selector {
    /// Kind selected.
    pub kind: Option<TrafficKind>,
    /// Document names selected.
    #[serde(default)]
    pub names: Vec<String>,
    /// Labels that must all match.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

impl Selector {
    /// Whether the selector selects the document of `kind` named `name`
    /// with `labels`.
    pub fn selects(
        &self,
        kind: TrafficKind,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        self.kind.is_none_or(|k| k == kind)
            && (self.names.is_empty() || self.names.iter().any(|n| n == name))
            && self
                .match_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// `ClientPopulation` spec: where the clients of the selected listeners and
/// backend services are, shared by several documents. meridian's own kind,
/// never sent to a cloud: the traffic model routes from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientPopulationSpec {
    /// The accelerators (all their listeners) and backend services it
    /// describes; their own `clients` fields take precedence.
    pub selector: Selector,
    /// Relative shares by location (an AWS or Google Cloud region name).
    pub clients: BTreeMap<String, f64>,
}

/// Health gate of a traffic policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HealthGate {
    /// Smallest healthy fraction of endpoints (backends) per serving
    /// region, 0.0-1.0, checked after every step's bake time.
    pub min_healthy_fraction: Option<f64>,
    /// A Prometheus query checked after every step's bake time.
    pub prometheus: Option<PrometheusGate>,
}

/// A health gate on a Prometheus query (HTTP API `/api/v1/query`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PrometheusGate {
    /// Base URL of the Prometheus server, e.g. `http://prometheus:9090`.
    pub url: String,
    /// An instant-vector PromQL query, e.g. an error ratio.
    pub query: String,
    /// The gate fails when any sample is above this value.
    pub max_value: Option<f64>,
    /// The gate fails when any sample is below this value.
    pub min_value: Option<f64>,
}

/// What to do when a gate fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GateFailure {
    /// Return to the last good values.
    #[default]
    Rollback,
    /// Stop where it is.
    Hold,
}

/// A time window in which traffic changes are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DenyWindow {
    /// Five-field cron expression for the window's start.
    pub cron: String,
    /// Window length in minutes, 1-10080.
    pub duration_minutes: u32,
    /// IANA time zone (default `UTC`).
    #[serde(default = "default_tz")]
    pub time_zone: String,
}

fn default_tz() -> String {
    "UTC".to_owned()
}

/// `TrafficPolicy` spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrafficPolicySpec {
    /// Which documents the policy governs.
    pub selector: Selector,
    /// Largest dial (or scaler, in points) move per step, 1-100 (default 25).
    #[serde(default = "default_step")]
    #[schemars(range(min = 1, max = 100))]
    pub max_step_percent: u32,
    /// Seconds to wait after a step before checking gates (default 300).
    #[serde(default = "default_bake")]
    pub bake_seconds: u32,
    /// Regions that must keep serving at every step (default 1).
    #[serde(default = "default_min_regions")]
    pub min_serving_regions: u32,
    /// Health gate.
    pub health_gate: Option<HealthGate>,
    /// `rollback` (default) or `hold`.
    #[serde(default)]
    pub on_gate_failure: GateFailure,
    /// Windows in which traffic changes are refused.
    #[serde(default)]
    pub deny_windows: Vec<DenyWindow>,
    /// Anti-flap: seconds during which a lever moved one way is not moved
    /// back, unless a gate failed (default 600).
    #[serde(default = "default_flap_hold")]
    pub flap_hold_seconds: u32,
}

fn default_flap_hold() -> u32 {
    600
}

fn default_step() -> u32 {
    25
}

fn default_bake() -> u32 {
    300
}

fn default_min_regions() -> u32 {
    1
}

/// `DataResidencyPolicy` spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DataResidencyPolicySpec {
    /// Data classifications covered (matched against the
    /// `meridian.dev/data-classification` label).
    pub data_classification: Vec<String>,
    /// Region globs where the data may be served; empty means any not blocked.
    #[serde(default)]
    pub allowed_regions: Vec<String>,
    /// Region globs where it must never be served.
    #[serde(default)]
    pub blocked_regions: Vec<String>,
    /// Client-origin scope (data localisation by where users are): when
    /// set, the policy governs the traffic of clients in these regions (the
    /// clients whose nearest endpoint group is in one of them) and requires
    /// it to be served in allowed regions — normally and, in `meridian
    /// whatif`, along every failover path. Endpoint groups elsewhere, serving
    /// other clients, are then allowed. Global Accelerator only: GCP backends
    /// have no client-origin routing in the traffic model.
    #[serde(default)]
    pub client_regions: Vec<String>,
}

/// Every kind, by name.
pub const KINDS: [&str; 9] = [
    "Provider",
    "GlobalAccelerator",
    "BackendService",
    "HealthCheck",
    "UrlMap",
    "TransitGatewayMesh",
    "TrafficPolicy",
    "DataResidencyPolicy",
    "ClientPopulation",
];
