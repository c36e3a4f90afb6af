//! meridian's GCP provider: global external load balancing through Google's
//! official Compute Engine client, `google-cloud-compute-v1`.
//!
//! Observation lists (never gets one object at a time): health checks,
//! backend services and URL maps, 500 per page. Health checks, backend
//! services and URL maps carry no labels, so ownership is a marker in the
//! `description` ([`gcp_ownership_marker`]).
//!
//! Every write returns a long-running operation; the provider waits for
//! `DONE` with `globalOperations.wait` and surfaces the operation's own
//! error. Updates and deletes are compare-and-swap: the object is read, its
//! live value must still be what the plan saw (otherwise the change is a
//! [`ErrorClass::Conflict`] and the engine re-observes and re-plans), and the
//! write carries the fingerprint of that read, so a change landing in between
//! answers 412 and is looked at again instead of being overwritten. A backend
//! (capacity scaler, balancing mode) is changed by patching the service's
//! backend list with only that backend altered.
//!
//! The client's own retries are off: every error is classified once, in
//! [`classify`] and [`classify_operation`], and retried by meridian's policy.
//! Credentials come from Application Default Credentials; an endpoint on
//! loopback (the sandbox) is called anonymously.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use google_cloud_compute_v1::client::{BackendServices, GlobalOperations, HealthChecks, UrlMaps};
use google_cloud_compute_v1::model;
use google_cloud_gax::retry_policy::NeverRetry;
use meridian_provider::{
    Action, Address, ApplyRequest, ApplyResponse, BackendServiceSpec, BackendSpec, CallCounter,
    Change, Family, HealthCheckSpec, HostRule, LiveOverride, ObservationGap, ObserveRequest,
    ObserveResponse, Observed, PathMatcher, PathRule, Provider, ProviderError, Resource,
    RetryPolicy, RetryStats, UrlMapSpec, gcp_ownership_marker, overrides, with_retries,
};

/// The Compute Engine API's base URL, used in resource references.
pub const COMPUTE_BASE: &str = "https://www.googleapis.com/compute/v1/";

/// Largest page the Compute Engine API returns.
const PAGE_SIZE: u32 = 500;

/// Times an update re-reads an object that changed between its read and
/// its write before calling it a conflict.
const CAS_ROUNDS: u32 = 3;

/// Settings of one GCP provider instance.
#[derive(Debug, Clone)]
pub struct GcpConfig {
    /// The `Provider` document's name.
    pub name: String,
    /// Ownership scope written into descriptions.
    pub owner: String,
    /// GCP project id.
    pub project: String,
    /// Endpoint override (the sandbox, Private Service Connect).
    pub endpoint: Option<String>,
    /// Retry policy for each call.
    pub retry: RetryPolicy,
    /// Shared retry counters.
    pub stats: RetryStats,
}

/// The GCP provider.
#[derive(Debug)]
pub struct GcpProvider {
    config: GcpConfig,
    health_checks: HealthChecks,
    backend_services: BackendServices,
    url_maps: UrlMaps,
    operations: GlobalOperations,
    calls: Mutex<BTreeMap<String, CallCounter>>,
    /// Distinguishes this run's request ids from earlier runs'.
    run_nonce: u64,
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

/// Decides what a Compute Engine API error means: the one place where HTTP
/// statuses become classes. `what` names the object, `project` the project.
pub fn classify(
    operation: &str,
    what: &str,
    project: &str,
    error: &google_cloud_gax::error::Error,
) -> ProviderError {
    let message = error
        .status()
        .map(|s| s.message.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| error.to_string());
    if error.is_authentication() {
        return ProviderError::stalled(
            operation,
            "unauthenticated",
            format!(
                "{what}: no usable Google Cloud credentials ({message}); meridian uses Application Default Credentials: run `gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or run with an attached service account"
            ),
        );
    }
    if error.is_timeout() || error.is_io() || error.is_connect() || error.is_transport() {
        return ProviderError::transient(operation, "unavailable", format!("{what}: {message}"));
    }
    match error.http_status_code() {
        Some(429) => {
            ProviderError::transient(operation, "rateLimitExceeded", format!("{what}: {message}"))
        }
        Some(status) if status >= 500 => {
            ProviderError::transient(operation, "backendError", format!("{what}: {message}"))
        }
        Some(412) => ProviderError::conflict(
            operation,
            "conditionNotMet",
            format!("{what} changed since it was read (fingerprint mismatch): {message}"),
        ),
        Some(409) => {
            ProviderError::stalled(operation, "alreadyExists", format!("{what}: {message}"))
        }
        Some(404) => ProviderError::stalled(
            operation,
            "notFound",
            format!("{what} was not found in project `{project}`: {message}"),
        ),
        Some(403) if message.to_ascii_lowercase().contains("quota") => ProviderError::stalled(
            operation,
            "quotaExceeded",
            format!(
                "{what}: {message} (a quota of project `{project}`: raise it in the console under IAM & Admin > Quotas; retrying will not help)"
            ),
        ),
        Some(403) => ProviderError::stalled(
            operation,
            "forbidden",
            format!(
                "{what}: permission denied in project `{project}`: {message} (the credentials need roles/compute.loadBalancerAdmin on the project, see docs/gcp.md)"
            ),
        ),
        Some(401) => ProviderError::stalled(
            operation,
            "unauthenticated",
            format!("{what}: the credentials were refused: {message}"),
        ),
        Some(400) if message.contains("being used by") || message.contains("in use") => {
            ProviderError::stalled(
                operation,
                "resourceInUseByAnotherResource",
                format!("{what}: {message}"),
            )
        }
        Some(status) => ProviderError::stalled(
            operation,
            &format!("http{status}"),
            format!("{what}: {message}"),
        ),
        None if error.is_deserialization() => ProviderError::stalled(
            operation,
            "badResponse",
            format!("{what}: the response could not be read: {message}"),
        ),
        None => ProviderError::stalled(operation, "error", format!("{what}: {message}")),
    }
}

/// Decides what a failed long-running operation means. Transient operation
/// errors are retried by re-running the whole write, which is safe because
/// every write first compares the live object with what it wants.
pub fn classify_operation(operation: &str, what: &str, done: &model::Operation) -> ProviderError {
    let first = done
        .error
        .as_ref()
        .and_then(|e| e.errors.first())
        .cloned()
        .unwrap_or_default();
    let code = first.code.clone().unwrap_or_else(|| "UNKNOWN".to_owned());
    let detail = first.message.clone().unwrap_or_default();
    let status = done.http_error_status_code.unwrap_or(0);
    let name = done.name.clone().unwrap_or_default();
    let message = format!("{what}: operation {name} failed: {code}: {detail}");
    match code.as_str() {
        "QUOTA_EXCEEDED" => ProviderError::stalled(
            operation,
            &code,
            format!(
                "{message} (a quota: raise it in the console under IAM & Admin > Quotas; retrying will not help)"
            ),
        ),
        "CONDITION_NOT_MET" => ProviderError::conflict(operation, &code, message),
        "RESOURCE_NOT_READY"
        | "INTERNAL_ERROR"
        | "RATE_LIMIT_EXCEEDED"
        | "SERVICE_UNAVAILABLE"
        | "TIMEOUT"
        | "RESOURCE_OPERATION_RATE_EXCEEDED" => ProviderError::transient(operation, &code, message),
        _ if status == 429 || status >= 500 => ProviderError::transient(operation, &code, message),
        _ => ProviderError::stalled(operation, &code, message),
    }
}

/// An f32 from the API as the decimal it was written as (0.7, not
/// 0.699999988079071).
fn decimal(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(f64::from(value))
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The part of a resource URL after `projects/{project}/`, e.g.
/// `regions/us-east1/networkEndpointGroups/app-us`.
fn relative(url: &str) -> String {
    let trimmed = url
        .find("/compute/v1/")
        .map(|i| &url[i + "/compute/v1/".len()..])
        .unwrap_or(url);
    match trimmed.strip_prefix("projects/") {
        Some(rest) => rest
            .split_once('/')
            .map(|(_, r)| r)
            .unwrap_or("")
            .to_owned(),
        None => trimmed.to_owned(),
    }
}

/// The last segment of a resource URL (a name).
fn last_segment(url: &str) -> String {
    url.rsplit('/').next().unwrap_or(url).to_owned()
}

/// The region of a backend group path (`zones/us-east1-b/...` is in `us-east1`).
fn group_region(group: &str) -> String {
    let parts: Vec<&str> = group.split('/').collect();
    match parts.as_slice() {
        ["regions", region, ..] => (*region).to_owned(),
        ["zones", zone, ..] => zone
            .rsplit_once('-')
            .map(|(r, _)| r.to_owned())
            .unwrap_or_else(|| (*zone).to_owned()),
        _ => String::new(),
    }
}

fn health_check_spec(project: &str, check: &model::HealthCheck) -> HealthCheckSpec {
    let check_type = check
        .r#type
        .as_ref()
        .and_then(|t| t.name())
        .unwrap_or("TCP")
        .to_owned();
    let (port, request_path, host) = match check_type.as_str() {
        "HTTP" => check
            .http_health_check
            .as_ref()
            .map(|h| (h.port, h.request_path.clone(), h.host.clone())),
        "HTTPS" => check
            .https_health_check
            .as_ref()
            .map(|h| (h.port, h.request_path.clone(), h.host.clone())),
        "HTTP2" => check
            .http_2_health_check
            .as_ref()
            .map(|h| (h.port, h.request_path.clone(), h.host.clone())),
        "SSL" => check
            .ssl_health_check
            .as_ref()
            .map(|h| (h.port, None, None)),
        "GRPC" => check
            .grpc_health_check
            .as_ref()
            .map(|h| (h.port, None, None)),
        _ => check
            .tcp_health_check
            .as_ref()
            .map(|h| (h.port, None, None)),
    }
    .unwrap_or((None, None, None));
    let n = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
    HealthCheckSpec {
        project: project.to_owned(),
        check_type,
        check_interval_sec: n(check.check_interval_sec),
        timeout_sec: n(check.timeout_sec),
        healthy_threshold: n(check.healthy_threshold),
        unhealthy_threshold: n(check.unhealthy_threshold),
        port: port.and_then(|p| u16::try_from(p).ok()).unwrap_or(0),
        request_path,
        host,
    }
}

fn health_check_body(name: &str, spec: &HealthCheckSpec) -> model::HealthCheck {
    let port = i32::from(spec.port);
    let mut check = model::HealthCheck::new()
        .set_name(name)
        .set_type(model::health_check::Type::from(spec.check_type.as_str()))
        .set_check_interval_sec(i32::try_from(spec.check_interval_sec).unwrap_or(i32::MAX))
        .set_timeout_sec(i32::try_from(spec.timeout_sec).unwrap_or(i32::MAX))
        .set_healthy_threshold(i32::try_from(spec.healthy_threshold).unwrap_or(i32::MAX))
        .set_unhealthy_threshold(i32::try_from(spec.unhealthy_threshold).unwrap_or(i32::MAX));
    match spec.check_type.as_str() {
        "HTTP" => {
            check = check.set_http_health_check(
                model::HTTPHealthCheck::new()
                    .set_port(port)
                    .set_or_clear_request_path(spec.request_path.clone())
                    .set_or_clear_host(spec.host.clone()),
            );
        }
        "HTTPS" => {
            check = check.set_https_health_check(
                model::HTTPSHealthCheck::new()
                    .set_port(port)
                    .set_or_clear_request_path(spec.request_path.clone())
                    .set_or_clear_host(spec.host.clone()),
            );
        }
        "HTTP2" => {
            check = check.set_http_2_health_check(
                model::HTTP2HealthCheck::new()
                    .set_port(port)
                    .set_or_clear_request_path(spec.request_path.clone())
                    .set_or_clear_host(spec.host.clone()),
            );
        }
        "SSL" => check = check.set_ssl_health_check(model::SSLHealthCheck::new().set_port(port)),
        "GRPC" => check = check.set_grpc_health_check(model::GRPCHealthCheck::new().set_port(port)),
        _ => check = check.set_tcp_health_check(model::TCPHealthCheck::new().set_port(port)),
    }
    check
}

fn backend_service_spec(project: &str, service: &model::BackendService) -> BackendServiceSpec {
    let mut health_checks: Vec<String> = service
        .health_checks
        .iter()
        .map(|h| last_segment(h))
        .collect();
    health_checks.sort();
    BackendServiceSpec {
        project: project.to_owned(),
        protocol: service
            .protocol
            .as_ref()
            .and_then(|p| p.name())
            .unwrap_or("HTTP")
            .to_owned(),
        port_name: service.port_name.clone(),
        timeout_sec: service
            .timeout_sec
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(30),
        load_balancing_scheme: service
            .load_balancing_scheme
            .as_ref()
            .and_then(|s| s.name())
            .unwrap_or("EXTERNAL")
            .to_owned(),
        enable_cdn: service.enable_cdn.unwrap_or(false),
        health_checks,
    }
}

fn backend_spec(backend: &model::Backend) -> BackendSpec {
    let group = relative(backend.group.as_deref().unwrap_or_default());
    BackendSpec {
        region: group_region(&group),
        group,
        balancing_mode: backend
            .balancing_mode
            .as_ref()
            .and_then(|m| m.name())
            .unwrap_or("UTILIZATION")
            .to_owned(),
        max_rate: backend.max_rate.and_then(|r| u32::try_from(r).ok()),
        max_rate_per_endpoint: backend.max_rate_per_endpoint.map(decimal),
        max_utilization: backend.max_utilization.map(decimal),
        max_connections: backend.max_connections.and_then(|c| u32::try_from(c).ok()),
        // The API's default is 1; 0 is a real value (drained).
        capacity_scaler: backend.capacity_scaler.map(decimal).unwrap_or(1.0),
    }
}

/// `live` with meridian's managed backend fields set from `spec`; every
/// field meridian does not manage keeps its live value.
fn backend_body(
    project: &str,
    live: Option<&model::Backend>,
    spec: &BackendSpec,
) -> model::Backend {
    let mut backend = live.cloned().unwrap_or_default();
    backend.group = Some(format!("{COMPUTE_BASE}projects/{project}/{}", spec.group));
    backend.balancing_mode = Some(model::backend::BalancingMode::from(
        spec.balancing_mode.as_str(),
    ));
    backend.max_rate = spec.max_rate.and_then(|r| i32::try_from(r).ok());
    backend.max_rate_per_endpoint = spec.max_rate_per_endpoint.map(|r| r as f32);
    backend.max_utilization = spec.max_utilization.map(|u| u as f32);
    backend.max_connections = spec.max_connections.and_then(|c| i32::try_from(c).ok());
    backend.capacity_scaler = Some(spec.capacity_scaler as f32);
    backend
}

fn service_url(project: &str, name: &str) -> String {
    format!("{COMPUTE_BASE}projects/{project}/global/backendServices/{name}")
}

fn url_map_spec(project: &str, map: &model::UrlMap) -> UrlMapSpec {
    let service = |s: &Option<String>| last_segment(s.as_deref().unwrap_or_default());
    UrlMapSpec {
        project: project.to_owned(),
        default_service: service(&map.default_service),
        host_rules: map
            .host_rules
            .iter()
            .map(|r| HostRule {
                hosts: r.hosts.clone(),
                path_matcher: r.path_matcher.clone().unwrap_or_default(),
            })
            .collect(),
        path_matchers: map
            .path_matchers
            .iter()
            .map(|m| PathMatcher {
                name: m.name.clone().unwrap_or_default(),
                default_service: service(&m.default_service),
                path_rules: m
                    .path_rules
                    .iter()
                    .map(|r| PathRule {
                        paths: r.paths.clone(),
                        service: service(&r.service),
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn url_map_body(name: &str, spec: &UrlMapSpec) -> model::UrlMap {
    let project = spec.project.as_str();
    model::UrlMap::new()
        .set_name(name)
        .set_default_service(service_url(project, &spec.default_service))
        .set_host_rules(spec.host_rules.iter().map(|r| {
            model::HostRule::new()
                .set_hosts(r.hosts.clone())
                .set_path_matcher(r.path_matcher.clone())
        }))
        .set_path_matchers(spec.path_matchers.iter().map(|m| {
            model::PathMatcher::new()
                .set_name(m.name.clone())
                .set_default_service(service_url(project, &m.default_service))
                .set_path_rules(m.path_rules.iter().map(|r| {
                    model::PathRule::new()
                        .set_paths(r.paths.clone())
                        .set_service(service_url(project, &r.service))
                }))
        }))
}

fn backend_service_body(name: &str, spec: &BackendServiceSpec) -> model::BackendService {
    let project = spec.project.as_str();
    model::BackendService::new()
        .set_name(name)
        .set_protocol(model::backend_service::Protocol::from(
            spec.protocol.as_str(),
        ))
        .set_or_clear_port_name(spec.port_name.clone())
        .set_timeout_sec(i32::try_from(spec.timeout_sec).unwrap_or(i32::MAX))
        .set_load_balancing_scheme(model::backend_service::LoadBalancingScheme::from(
            spec.load_balancing_scheme.as_str(),
        ))
        .set_enable_cdn(spec.enable_cdn)
        .set_health_checks(
            spec.health_checks
                .iter()
                .map(|h| format!("{COMPUTE_BASE}projects/{project}/global/healthChecks/{h}")),
        )
}

/// What went wrong in one compare-and-swap round.
enum Round {
    /// Done.
    Done,
    /// The object changed between the read and the write: read again.
    Raced,
}

impl GcpProvider {
    /// Builds the Compute Engine clients. With an endpoint on loopback (the
    /// sandbox) calls are anonymous; otherwise credentials come from
    /// Application Default Credentials.
    pub async fn new(config: GcpConfig) -> Result<Self, ProviderError> {
        macro_rules! client {
            ($client:ty) => {{
                let mut builder = <$client>::builder().with_retry_policy(NeverRetry);
                if let Some(endpoint) = &config.endpoint {
                    builder = builder.with_endpoint(endpoint.clone());
                    if is_loopback_endpoint(endpoint) {
                        builder = builder.with_credentials(
                            google_cloud_auth::credentials::anonymous::Builder::new().build(),
                        );
                    }
                }
                builder.build().await.map_err(|e| {
                    ProviderError::stalled(
                        "connect",
                        "unauthenticated",
                        format!(
                            "cannot set up the Compute Engine client for project `{}`: {e}; meridian uses Application Default Credentials: run `gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS, or run with an attached service account",
                            config.project
                        ),
                    )
                })?
            }};
        }
        let health_checks = client!(HealthChecks);
        let backend_services = client!(BackendServices);
        let url_maps = client!(UrlMaps);
        let operations = client!(GlobalOperations);
        let run_nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        Ok(Self {
            config,
            health_checks,
            backend_services,
            url_maps,
            operations,
            calls: Mutex::new(BTreeMap::new()),
            run_nonce,
        })
    }

    fn project(&self) -> &str {
        &self.config.project
    }

    fn marker(&self) -> String {
        gcp_ownership_marker(&self.config.owner)
    }

    fn owns(&self, description: &Option<String>) -> bool {
        description
            .as_deref()
            .is_some_and(|d| d.contains(&self.marker()))
    }

    /// A description for a new object: meridian's marker.
    fn description(&self) -> String {
        format!("Managed by meridian. {}", self.marker())
    }

    fn count(&self, operation: &str, write: bool, ok: bool) {
        if let Ok(mut calls) = self.calls.lock() {
            let counter = calls
                .entry(operation.to_owned())
                .or_insert_with(|| CallCounter {
                    operation: operation.to_owned(),
                    write,
                    ok: 0,
                    failed: 0,
                });
            if ok {
                counter.ok += 1;
            } else {
                counter.failed += 1;
            }
        }
    }

    /// One API call, counted and classified, without retries.
    async fn call<T, Fut>(
        &self,
        operation: &str,
        write: bool,
        what: &str,
        call: Fut,
    ) -> Result<T, ProviderError>
    where
        Fut: std::future::Future<Output = Result<T, google_cloud_gax::error::Error>>,
    {
        let result = call.await;
        self.count(operation, write, result.is_ok());
        result.map_err(|e| classify(operation, what, self.project(), &e))
    }

    /// A read, retried by meridian's policy.
    async fn read<T, F, Fut>(
        &self,
        operation: &str,
        what: &str,
        call: F,
    ) -> Result<T, ProviderError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, google_cloud_gax::error::Error>>,
    {
        with_retries(&self.config.retry, &self.config.stats, what, || {
            self.call(operation, false, what, call())
        })
        .await
    }

    /// A request id for a write: the same for every retry of one change in
    /// one run, so the API ignores a repeat of a write that already landed.
    fn request_id(&self, change: &Change, round: u32) -> String {
        self.request_id_of(
            &[
                change.address.to_string(),
                serde_json::to_string(&change.after).unwrap_or_default(),
            ],
            round,
        )
    }

    /// A request id for the write identified by `parts`, in one round.
    fn request_id_of(&self, parts: &[String], round: u32) -> String {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        use std::hash::{Hash, Hasher};
        self.config.owner.hash(&mut hasher);
        for part in parts {
            part.hash(&mut hasher);
        }
        self.run_nonce.hash(&mut hasher);
        let a = hasher.finish();
        round.hash(&mut hasher);
        let b = hasher.finish();
        // A version-4-shaped UUID, as the API requires.
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }

    /// Waits for an operation to be `DONE` and surfaces its error.
    async fn wait(
        &self,
        operation: &str,
        what: &str,
        started: model::Operation,
    ) -> Result<(), ProviderError> {
        let name = started.name.clone().unwrap_or_default();
        let deadline = Instant::now() + self.config.retry.max_wait.max(Duration::from_secs(60));
        let mut current = started;
        loop {
            let done = current
                .status
                .as_ref()
                .is_some_and(|s| *s == model::operation::Status::Done);
            if done {
                if current.error.as_ref().is_some_and(|e| !e.errors.is_empty()) {
                    return Err(classify_operation(operation, what, &current));
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ProviderError::transient(
                    operation,
                    "operationTimeout",
                    format!(
                        "{what}: operation {name} is still not DONE; it may still land, and the next run continues from live state"
                    ),
                ));
            }
            let project = self.project().to_owned();
            let op_name = name.clone();
            current = self
                .read(
                    "globalOperations.wait",
                    &format!("wait for operation {name} ({what})"),
                    || {
                        self.operations
                            .wait()
                            .set_project(project.clone())
                            .set_operation(op_name.clone())
                            .send()
                    },
                )
                .await?;
        }
    }

    /// Runs `round` (read, compare, write, wait) until it is done, retrying
    /// transient errors and failed operations by meridian's policy and
    /// re-reading up to [`CAS_ROUNDS`] times when the object changed between
    /// its read and its write.
    async fn converge<F, Fut>(&self, what: &str, round: F) -> Result<(), ProviderError>
    where
        F: Fn(u32) -> Fut,
        Fut: std::future::Future<Output = Result<Round, ProviderError>>,
    {
        let raced = std::sync::atomic::AtomicU32::new(0);
        // Every attempt gets its own request id: the API answers a repeated
        // id with the first attempt's operation, and after a failed
        // operation that would be the failure again. Duplicates are
        // prevented by each round's read-and-compare instead.
        let attempts = std::sync::atomic::AtomicU32::new(0);
        with_retries(&self.config.retry, &self.config.stats, what, || async {
            loop {
                let n = raced.load(std::sync::atomic::Ordering::SeqCst);
                let attempt = attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                match round(attempt).await {
                    Ok(Round::Done) => return Ok(()),
                    Ok(Round::Raced) if n + 1 < CAS_ROUNDS => {
                        raced.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tracing::info!(%what, "the object changed between read and write; reading it again");
                    }
                    Ok(Round::Raced) => {
                        return Err(ProviderError::conflict(
                            "write",
                            "conditionNotMet",
                            format!("{what} kept changing under meridian ({CAS_ROUNDS} reads in a row were stale by the time of the write)"),
                        ));
                    }
                    Err(error) => return Err(error),
                }
            }
        })
        .await
    }

    /// A write whose answer is an operation: sends it once, waits for DONE.
    /// A 412 is a race (read again), not an error.
    async fn write_op<Fut>(
        &self,
        operation: &str,
        what: &str,
        send: Fut,
    ) -> Result<Round, ProviderError>
    where
        Fut: std::future::Future<Output = Result<model::Operation, google_cloud_gax::error::Error>>,
    {
        match self.call(operation, true, what, send).await {
            Ok(started) => {
                self.wait(operation, what, started).await?;
                Ok(Round::Done)
            }
            Err(error) if error.code == "conditionNotMet" => Ok(Round::Raced),
            Err(error) => Err(error),
        }
    }

    // ----- observation -------------------------------------------------------

    async fn list_health_checks(&self) -> Result<Vec<model::HealthCheck>, ProviderError> {
        self.list_all(
            "healthChecks.list",
            "list health checks",
            |token| {
                self.health_checks
                    .list()
                    .set_project(self.project())
                    .set_max_results(PAGE_SIZE)
                    .set_or_clear_page_token(token)
                    .send()
            },
            |page| (page.items, page.next_page_token),
        )
        .await
    }

    async fn list_backend_services(&self) -> Result<Vec<model::BackendService>, ProviderError> {
        self.list_all(
            "backendServices.list",
            "list backend services",
            |token| {
                self.backend_services
                    .list()
                    .set_project(self.project())
                    .set_max_results(PAGE_SIZE)
                    .set_or_clear_page_token(token)
                    .send()
            },
            |page| (page.items, page.next_page_token),
        )
        .await
    }

    async fn list_url_maps(&self) -> Result<Vec<model::UrlMap>, ProviderError> {
        self.list_all(
            "urlMaps.list",
            "list URL maps",
            |token| {
                self.url_maps
                    .list()
                    .set_project(self.project())
                    .set_max_results(PAGE_SIZE)
                    .set_or_clear_page_token(token)
                    .send()
            },
            |page| (page.items, page.next_page_token),
        )
        .await
    }

    /// Every item of a paged list call, one call per page.
    async fn list_all<P, T, F, Fut>(
        &self,
        operation: &str,
        what: &str,
        list: F,
        split: impl Fn(P) -> (Vec<T>, Option<String>),
    ) -> Result<Vec<T>, ProviderError>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<P, google_cloud_gax::error::Error>>,
    {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.read(operation, what, || list(token.clone())).await?;
            let (items, next) = split(page);
            all.extend(items);
            match next.filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// The health of one backend: `healthy` when any of its endpoints is,
    /// `unhealthy` when all report unhealthy, `unknown` when none report.
    async fn backend_health(&self, service: &str, group: &str) -> Result<String, ProviderError> {
        let what = format!("health of {group} in backend service {service}");
        let url = format!("{COMPUTE_BASE}projects/{}/{group}", self.project());
        let health = self
            .read("backendServices.getHealth", &what, || {
                self.backend_services
                    .get_health()
                    .set_project(self.project())
                    .set_backend_service(service)
                    .set_body(model::ResourceGroupReference::new().set_group(url.clone()))
                    .send()
            })
            .await?;
        let states: Vec<&str> = health
            .health_status
            .iter()
            .filter_map(|s| s.health_state.as_ref().and_then(|h| h.name()))
            .collect();
        Ok(if states.contains(&"HEALTHY") {
            "healthy"
        } else if states.is_empty() {
            "unknown"
        } else {
            "unhealthy"
        }
        .to_owned())
    }

    async fn observe_all(
        &self,
        with_health: bool,
        overrides: &mut Vec<LiveOverride>,
    ) -> Result<Vec<Observed>, ProviderError> {
        let project = self.project();
        let mut found = Vec::new();
        for check in self.list_health_checks().await? {
            if !self.owns(&check.description) {
                continue;
            }
            let name = check.name.clone().unwrap_or_default();
            found.push(Observed {
                address: Address::HealthCheck { name: name.clone() },
                resource: Resource::HealthCheck(health_check_spec(project, &check)),
                cloud_id: Some(format!("projects/{project}/global/healthChecks/{name}")),
                etag: None,
                status: None,
                health: None,
            });
        }
        for service in self.list_backend_services().await? {
            if !self.owns(&service.description) {
                continue;
            }
            let name = service.name.clone().unwrap_or_default();
            let fingerprint = service.fingerprint.as_ref().map(|f| base64(f));
            if let Some(until) = service
                .description
                .as_deref()
                .and_then(overrides::gcp_override_until)
            {
                overrides.push(LiveOverride {
                    address: Address::BackendService { name: name.clone() },
                    until,
                });
            }
            found.push(Observed {
                address: Address::BackendService { name: name.clone() },
                resource: Resource::BackendService(backend_service_spec(project, &service)),
                cloud_id: Some(format!("projects/{project}/global/backendServices/{name}")),
                etag: fingerprint.clone(),
                status: None,
                health: None,
            });
            for backend in &service.backends {
                let spec = backend_spec(backend);
                let health = if with_health {
                    Some(self.backend_health(&name, &spec.group).await?)
                } else {
                    None
                };
                found.push(Observed {
                    address: Address::Backend {
                        service: name.clone(),
                        group: spec.group.clone(),
                    },
                    cloud_id: Some(spec.group.clone()),
                    resource: Resource::Backend(spec),
                    etag: fingerprint.clone(),
                    status: None,
                    health,
                });
            }
        }
        for map in self.list_url_maps().await? {
            if !self.owns(&map.description) {
                continue;
            }
            let name = map.name.clone().unwrap_or_default();
            found.push(Observed {
                address: Address::UrlMap { name: name.clone() },
                resource: Resource::UrlMap(url_map_spec(project, &map)),
                cloud_id: Some(format!("projects/{project}/global/urlMaps/{name}")),
                etag: map.fingerprint.as_ref().map(|f| base64(f)),
                status: None,
                health: None,
            });
        }
        Ok(found)
    }

    // ----- reads of one object, for compare-and-swap ---------------------------

    async fn get_health_check(
        &self,
        name: &str,
    ) -> Result<Option<model::HealthCheck>, ProviderError> {
        let what = format!("health check `{name}`");
        match self
            .read("healthChecks.get", &what, || {
                self.health_checks
                    .get()
                    .set_project(self.project())
                    .set_health_check(name)
                    .send()
            })
            .await
        {
            Ok(check) => Ok(Some(check)),
            Err(error) if error.code == "notFound" => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn get_backend_service(
        &self,
        name: &str,
    ) -> Result<Option<model::BackendService>, ProviderError> {
        let what = format!("backend service `{name}`");
        match self
            .read("backendServices.get", &what, || {
                self.backend_services
                    .get()
                    .set_project(self.project())
                    .set_backend_service(name)
                    .send()
            })
            .await
        {
            Ok(service) => Ok(Some(service)),
            Err(error) if error.code == "notFound" => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn get_url_map(&self, name: &str) -> Result<Option<model::UrlMap>, ProviderError> {
        let what = format!("URL map `{name}`");
        match self
            .read("urlMaps.get", &what, || {
                self.url_maps
                    .get()
                    .set_project(self.project())
                    .set_url_map(name)
                    .send()
            })
            .await
        {
            Ok(map) => Ok(Some(map)),
            Err(error) if error.code == "notFound" => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn not_ours(&self, operation: &str, what: &str) -> ProviderError {
        ProviderError::stalled(
            operation,
            "notManaged",
            format!(
                "{what} exists in project `{}` but its description lacks meridian's marker for owner `{}`; meridian never changes objects it does not own: rename the desired object, or add `{}` to the live object's description to adopt it",
                self.project(),
                self.config.owner,
                self.marker()
            ),
        )
    }

    /// The compare step of every write: done when the live value already is
    /// what the change wants (a retried write that landed, or nothing to
    /// delete), a conflict when it is neither that nor what the plan saw (it
    /// changed since it was observed), otherwise `None`: go ahead and write.
    fn compare<T: PartialEq + serde::Serialize>(
        operation: &str,
        what: &str,
        live: Option<&T>,
        want: Option<&T>,
        planned: Option<&T>,
    ) -> Result<Option<Round>, ProviderError> {
        if live == want {
            return Ok(Some(Round::Done));
        }
        if live != planned {
            return Err(Self::changed(operation, what, live, planned));
        }
        Ok(None)
    }

    fn without_value(what: &str) -> ProviderError {
        ProviderError::stalled(
            "apply",
            "UnsupportedChange",
            format!("{what}: a create or update without the value to write"),
        )
    }

    /// The conflict raised when a live value is neither what the plan saw
    /// nor what it wants.
    fn changed<T: serde::Serialize>(
        operation: &str,
        what: &str,
        live: Option<&T>,
        planned: Option<&T>,
    ) -> ProviderError {
        let show = |v: Option<&T>| {
            v.and_then(|v| serde_json::to_string(v).ok())
                .unwrap_or_else(|| "(absent)".to_owned())
        };
        ProviderError::conflict(
            operation,
            "changedSinceObserved",
            format!(
                "{what} changed since it was observed: live {}, the plan saw {}; re-observing and re-planning instead of overwriting it",
                show(live),
                show(planned)
            ),
        )
    }

    // ----- changes -------------------------------------------------------------

    async fn apply_change(&self, change: &Change) -> Result<(), ProviderError> {
        let what = change.address.to_string();
        let what = what.as_str();
        let project = self.config.project.as_str();
        match (&change.address, change.action, &change.after) {
            (Address::HealthCheck { name }, action, after) => {
                let want = match (action, after) {
                    (Action::Delete, _) => None,
                    (_, Some(Resource::HealthCheck(spec))) => Some(spec),
                    _ => return Err(Self::without_value(what)),
                };
                let planned = match &change.before {
                    Some(Resource::HealthCheck(b)) => Some(b),
                    _ => None,
                };
                let operation = match action {
                    Action::Create => "healthChecks.insert",
                    Action::Update => "healthChecks.update",
                    Action::Delete => "healthChecks.delete",
                };
                self.converge(what, |round| async move {
                    let live = self.get_health_check(name).await?;
                    if let Some(live) = &live
                        && !self.owns(&live.description)
                    {
                        return Err(self.not_ours(operation, what));
                    }
                    let spec_live = live.as_ref().map(|l| health_check_spec(project, l));
                    if let Some(done) =
                        Self::compare(operation, what, spec_live.as_ref(), want, planned)?
                    {
                        return Ok(done);
                    }
                    let request_id = self.request_id(change, round);
                    match (live, want) {
                        (None, Some(spec)) => {
                            let body =
                                health_check_body(name, spec).set_description(self.description());
                            self.write_op(
                                operation,
                                what,
                                self.health_checks
                                    .insert()
                                    .set_project(project)
                                    .set_request_id(request_id)
                                    .set_body(body)
                                    .send(),
                            )
                            .await
                        }
                        (Some(live), Some(spec)) => {
                            // Health checks carry no fingerprint: replace the
                            // object (PUT) with the value just read, changed
                            // as planned, so a type change leaves no stale
                            // per-type settings behind.
                            let body = health_check_body(name, spec);
                            let mut full = live;
                            full.r#type = body.r#type;
                            full.check_interval_sec = body.check_interval_sec;
                            full.timeout_sec = body.timeout_sec;
                            full.healthy_threshold = body.healthy_threshold;
                            full.unhealthy_threshold = body.unhealthy_threshold;
                            full.http_health_check = body.http_health_check;
                            full.https_health_check = body.https_health_check;
                            full.http_2_health_check = body.http_2_health_check;
                            full.ssl_health_check = body.ssl_health_check;
                            full.grpc_health_check = body.grpc_health_check;
                            full.tcp_health_check = body.tcp_health_check;
                            self.write_op(
                                operation,
                                what,
                                self.health_checks
                                    .update()
                                    .set_project(project)
                                    .set_health_check(name)
                                    .set_request_id(request_id)
                                    .set_body(full)
                                    .send(),
                            )
                            .await
                        }
                        (Some(_), None) => {
                            self.write_op(
                                operation,
                                what,
                                self.health_checks
                                    .delete()
                                    .set_project(project)
                                    .set_health_check(name)
                                    .set_request_id(request_id)
                                    .send(),
                            )
                            .await
                        }
                        (None, None) => Ok(Round::Done),
                    }
                })
                .await
            }
            (Address::BackendService { name }, action, after) => {
                let want = match (action, after) {
                    (Action::Delete, _) => None,
                    (_, Some(Resource::BackendService(spec))) => Some(spec),
                    _ => return Err(Self::without_value(what)),
                };
                let planned = match &change.before {
                    Some(Resource::BackendService(b)) => Some(b),
                    _ => None,
                };
                let operation = match action {
                    Action::Create => "backendServices.insert",
                    Action::Update => "backendServices.patch",
                    Action::Delete => "backendServices.delete",
                };
                self.converge(what, |round| async move {
                    let live = self.get_backend_service(name).await?;
                    if let Some(live) = &live
                        && !self.owns(&live.description)
                    {
                        return Err(self.not_ours(operation, what));
                    }
                    let spec_live = live.as_ref().map(|l| backend_service_spec(project, l));
                    if let Some(done) =
                        Self::compare(operation, what, spec_live.as_ref(), want, planned)?
                    {
                        return Ok(done);
                    }
                    let request_id = self.request_id(change, round);
                    match (live, want) {
                        (None, Some(spec)) => {
                            let body = backend_service_body(name, spec)
                                .set_description(self.description());
                            self.write_op(
                                operation,
                                what,
                                self.backend_services
                                    .insert()
                                    .set_project(project)
                                    .set_request_id(request_id)
                                    .set_body(body)
                                    .send(),
                            )
                            .await
                        }
                        (Some(live), Some(spec)) => {
                            // Only the service's own managed fields, never
                            // its backends, guarded by the fingerprint read.
                            let mut body = backend_service_body(name, spec);
                            body.fingerprint = live.fingerprint;
                            if spec.port_name.is_none() {
                                body.port_name = None;
                            }
                            self.write_op(
                                operation,
                                what,
                                self.backend_services
                                    .patch()
                                    .set_project(project)
                                    .set_backend_service(name)
                                    .set_request_id(request_id)
                                    .set_body(body)
                                    .send(),
                            )
                            .await
                        }
                        (Some(_), None) => {
                            self.write_op(
                                operation,
                                what,
                                self.backend_services
                                    .delete()
                                    .set_project(project)
                                    .set_backend_service(name)
                                    .set_request_id(request_id)
                                    .send(),
                            )
                            .await
                        }
                        (None, None) => Ok(Round::Done),
                    }
                })
                .await
            }
            (Address::Backend { service, group }, action, after) => {
                let want = match (action, after) {
                    (Action::Delete, _) => None,
                    (_, Some(Resource::Backend(spec))) => Some(spec),
                    _ => return Err(Self::without_value(what)),
                };
                let before = match &change.before {
                    Some(Resource::Backend(b)) => Some(b),
                    _ => None,
                };
                self.converge(what, |round| async move {
                    let Some(live) = self.get_backend_service(service).await? else {
                        if want.is_none() {
                            return Ok(Round::Done);
                        }
                        return Err(ProviderError::conflict(
                            "backendServices.patch",
                            "notFound",
                            format!("{what}: backend service `{service}` no longer exists in project `{project}`"),
                        ));
                    };
                    if !self.owns(&live.description) {
                        return Err(self.not_ours("backendServices.patch", what));
                    }
                    let position = live
                        .backends
                        .iter()
                        .position(|b| relative(b.group.as_deref().unwrap_or_default()) == *group);
                    let current = position.map(|i| backend_spec(&live.backends[i]));
                    if let Some(done) = Self::compare(
                        "backendServices.patch",
                        what,
                        current.as_ref(),
                        want,
                        before,
                    )? {
                        return Ok(done);
                    }
                    let mut backends = live.backends.clone();
                    match (want, position) {
                        (Some(spec), Some(i)) => {
                            backends[i] = backend_body(project, Some(&live.backends[i]), spec);
                        }
                        (Some(spec), None) => backends.push(backend_body(project, None, spec)),
                        (None, Some(i)) => {
                            backends.remove(i);
                        }
                        (None, None) => return Ok(Round::Done),
                    }
                    if backends.is_empty() {
                        // A merge patch cannot express an empty list: replace
                        // the service as read, without its last backend.
                        let mut full = live.clone();
                        full.backends = backends;
                        return self
                            .write_op(
                                "backendServices.update",
                                what,
                                self.backend_services
                                    .update()
                                    .set_project(project)
                                    .set_backend_service(service)
                                    .set_request_id(self.request_id(change, round))
                                    .set_body(full)
                                    .send(),
                            )
                            .await;
                    }
                    let body = model::BackendService::new()
                        .set_backends(backends)
                        .set_or_clear_fingerprint(live.fingerprint.clone());
                    self.write_op(
                        "backendServices.patch",
                        what,
                        self.backend_services
                            .patch()
                            .set_project(project)
                            .set_backend_service(service)
                            .set_request_id(self.request_id(change, round))
                            .set_body(body)
                            .send(),
                    )
                    .await
                })
                .await
            }
            (Address::UrlMap { name }, action, after) => {
                let want = match (action, after) {
                    (Action::Delete, _) => None,
                    (_, Some(Resource::UrlMap(spec))) => Some(spec),
                    _ => return Err(Self::without_value(what)),
                };
                let planned = match &change.before {
                    Some(Resource::UrlMap(b)) => Some(b),
                    _ => None,
                };
                let operation = match action {
                    Action::Create => "urlMaps.insert",
                    Action::Update => "urlMaps.patch",
                    Action::Delete => "urlMaps.delete",
                };
                self.converge(what, |round| async move {
                    let live = self.get_url_map(name).await?;
                    if let Some(live) = &live
                        && !self.owns(&live.description)
                    {
                        return Err(self.not_ours(operation, what));
                    }
                    let spec_live = live.as_ref().map(|l| url_map_spec(project, l));
                    if let Some(done) =
                        Self::compare(operation, what, spec_live.as_ref(), want, planned)?
                    {
                        return Ok(done);
                    }
                    let request_id = self.request_id(change, round);
                    match (live, want) {
                        (None, Some(spec)) => {
                            let body = url_map_body(name, spec).set_description(self.description());
                            self.write_op(
                                operation,
                                what,
                                self.url_maps
                                    .insert()
                                    .set_project(project)
                                    .set_request_id(request_id)
                                    .set_body(body)
                                    .send(),
                            )
                            .await
                        }
                        (Some(live), Some(spec)) => {
                            let body =
                                url_map_body(name, spec).set_or_clear_fingerprint(live.fingerprint);
                            self.write_op(
                                operation,
                                what,
                                self.url_maps
                                    .patch()
                                    .set_project(project)
                                    .set_url_map(name)
                                    .set_request_id(request_id)
                                    .set_body(body)
                                    .send(),
                            )
                            .await
                        }
                        (Some(_), None) => {
                            self.write_op(
                                operation,
                                what,
                                self.url_maps
                                    .delete()
                                    .set_project(project)
                                    .set_url_map(name)
                                    .set_request_id(request_id)
                                    .send(),
                            )
                            .await
                        }
                        (None, None) => Ok(Round::Done),
                    }
                })
                .await
            }
            (address, action, _) => Err(ProviderError::stalled(
                "apply",
                "UnsupportedChange",
                format!(
                    "the gcp provider cannot {action:?} {address}: only health checks, backend services, backends and URL maps are GCP objects"
                ),
            )),
        }
    }
}

#[async_trait]
impl Provider for GcpProvider {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn families(&self) -> Vec<Family> {
        vec![Family::GcpLoadBalancing]
    }

    async fn observe(&self, request: ObserveRequest) -> ObserveResponse {
        let wanted =
            request.families.is_empty() || request.families.contains(&Family::GcpLoadBalancing);
        if !wanted {
            return ObserveResponse::default();
        }
        let mut overrides = Vec::new();
        match self.observe_all(request.health, &mut overrides).await {
            Ok(resources) => ObserveResponse {
                resources,
                gaps: Vec::new(),
                overrides,
            },
            Err(error) => ObserveResponse {
                resources: Vec::new(),
                gaps: vec![ObservationGap {
                    family: Family::GcpLoadBalancing,
                    error,
                }],
                overrides: Vec::new(),
            },
        }
    }

    async fn apply(&self, request: ApplyRequest) -> Result<ApplyResponse, ProviderError> {
        self.apply_change(&request.change).await?;
        Ok(ApplyResponse::default())
    }

    /// Rewrites the override marker in the backend service's `description`
    /// (backend services carry no labels): read, then a patch of the
    /// description alone carrying the fingerprint just read, read again when
    /// a change landed in between.
    async fn set_override(
        &self,
        address: &Address,
        until: Option<String>,
    ) -> Result<(), ProviderError> {
        let Address::BackendService { name } = address else {
            return Err(ProviderError::stalled(
                "SetOverride",
                "OverrideNotSupported",
                format!(
                    "{address} cannot carry a break-glass override in provider `{}`: GCP overrides live on a BackendService and cover its backends",
                    self.config.name
                ),
            ));
        };
        let what = format!("override on {address}");
        let what = what.as_str();
        let project = self.project();
        let until = until.as_deref();
        self.converge(what, |round| async move {
            let Some(live) = self.get_backend_service(name).await? else {
                return Err(ProviderError::stalled(
                    "backendServices.patch",
                    "notFound",
                    format!(
                        "{what}: backend service `{name}` does not exist in project `{project}`"
                    ),
                ));
            };
            if !self.owns(&live.description) {
                return Err(self.not_ours("backendServices.patch", what));
            }
            let current = live.description.clone().unwrap_or_default();
            let description = overrides::gcp_with_override(&current, until);
            if description == current {
                return Ok(Round::Done);
            }
            let mut body = model::BackendService::new()
                .set_name(name.as_str())
                .set_description(description.clone());
            body.fingerprint = live.fingerprint.clone();
            self.write_op(
                "backendServices.patch",
                what,
                self.backend_services
                    .patch()
                    .set_project(project)
                    .set_backend_service(name.as_str())
                    .set_request_id(
                        self.request_id_of(&[address.to_string(), description.clone()], round),
                    )
                    .set_body(body)
                    .send(),
            )
            .await
        })
        .await
    }

    fn calls(&self) -> Vec<CallCounter> {
        self.calls
            .lock()
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_urls_become_the_paths_meridian_uses() {
        assert_eq!(
            relative(
                "https://www.googleapis.com/compute/v1/projects/p/regions/us-east1/networkEndpointGroups/app"
            ),
            "regions/us-east1/networkEndpointGroups/app"
        );
        assert_eq!(
            relative("projects/p/zones/us-east1-b/instanceGroups/ig"),
            "zones/us-east1-b/instanceGroups/ig"
        );
        assert_eq!(
            group_region("zones/us-east1-b/instanceGroups/ig"),
            "us-east1"
        );
        assert_eq!(
            group_region("regions/europe-west1/networkEndpointGroups/x"),
            "europe-west1"
        );
        assert_eq!(
            last_segment("http://h/compute/v1/projects/p/global/backendServices/app"),
            "app"
        );
    }

    #[test]
    fn a_zero_capacity_scaler_is_zero_and_decimals_stay_decimal() {
        let backend = model::Backend::new()
            .set_group("https://www.googleapis.com/compute/v1/projects/p/regions/us-east1/networkEndpointGroups/a")
            .set_capacity_scaler(0.0_f32)
            .set_max_rate_per_endpoint(0.7_f32);
        let spec = backend_spec(&backend);
        assert_eq!(spec.capacity_scaler, 0.0);
        assert_eq!(spec.max_rate_per_endpoint, Some(0.7));
        // An absent scaler is the API's default, 1.
        assert_eq!(backend_spec(&model::Backend::new()).capacity_scaler, 1.0);
        // And 0 is sent as 0, not left out.
        let body = backend_body("p", None, &spec);
        let json = serde_json::to_value(&body).expect("serializes");
        assert_eq!(json["capacityScaler"], serde_json::json!(0.0));
    }

    #[test]
    fn only_loopback_endpoints_are_anonymous() {
        assert!(is_loopback_endpoint("http://127.0.0.1:4566"));
        assert!(is_loopback_endpoint("http://localhost:8080/"));
        assert!(is_loopback_endpoint("http://[::1]:9000"));
        assert!(!is_loopback_endpoint("https://compute.googleapis.com"));
        assert!(!is_loopback_endpoint("https://10.0.0.8"));
    }
}
