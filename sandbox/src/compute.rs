//! The Compute Engine REST API subset for global external load balancing,
//! over the simulated cloud.
//!
//! Served on the same loopback listener as the Global Accelerator protocol
//! ([`crate::ga`]): health checks, backend services (with `getHealth`),
//! URL maps and global operations under `/compute/v1/projects/{project}/global/`,
//! with JSON as Google's published Compute discovery document describes it
//! and errors in Google's JSON error format, so that Google's official
//! clients (pointed at `http://127.0.0.1:PORT` with anonymous credentials)
//! work unchanged. It checks no credentials: never expose it beyond loopback.
//!
//! Writes land on the simulated world synchronously and answer with a
//! `compute#operation` kept in the sandbox's memory, which goes `PENDING`
//! (as returned) → `RUNNING` (first poll) → `DONE` (a later poll, once the
//! world's `deploy_delay_ms` has passed since the write). An injected
//! operation error (`sim faults --operation-error`) makes a write not land
//! and its operation end `DONE` with that error.
//!
//! References in responses are full `https://www.googleapis.com/compute/v1/…`
//! URLs, as the real API sends them; `selfLink`s point at the sandbox itself
//! (built from the request's `Host`). On input, references may be URLs on
//! any host or relative paths. Fields outside the modelled subset are
//! accepted and ignored.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use meridian_provider::{
    BackendServiceSpec, BackendSpec, HealthCheckSpec, HostRule, PathMatcher, PathRule, UrlMapSpec,
};
use meridian_sim::cloud::{GcpMethod, ServiceChange, SimCloud, SimError};
use meridian_sim::cloud::{stored_fingerprint, wire_fingerprint};
use meridian_sim::world::{
    FrontendKind, GcpBackendService, GcpHealthCheck, GcpUrlMap, OperationFault, frontend_key,
    now_ms,
};

mod frontends;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Where references in responses point, as the real API's do.
pub const API_ROOT: &str = "https://www.googleapis.com/compute/v1/";
/// The largest and default page of a list call, as GCP's.
pub const MAX_RESULTS: usize = 500;
/// How long `operations/{op}/wait` blocks at most.
pub const WAIT_LIMIT: Duration = Duration::from_secs(2);
/// Operations remembered; the oldest are forgotten first.
const OPERATIONS_KEPT: usize = 10_000;
/// The `user` of every operation.
const USER: &str = "sandbox@meridian.invalid";

// ----- errors ----------------------------------------------------------------

/// An error in Google's JSON error format.
#[derive(Debug, Clone)]
pub struct GoogleError {
    status: StatusCode,
    canonical: &'static str,
    reason: String,
    domain: &'static str,
    message: String,
}

impl GoogleError {
    fn new(
        status: StatusCode,
        canonical: &'static str,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            canonical,
            reason: reason.to_owned(),
            domain: "global",
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "invalid",
            message,
        )
    }

    fn required(field: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "required",
            format!("Required field '{field}' not specified"),
        )
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", "notFound", message)
    }

    fn usage_limits(mut self) -> Self {
        self.domain = "usageLimits";
        self
    }

    /// The error as the simulated cloud reports it from inside a write
    /// (only validation errors happen there, all `invalid`).
    fn into_sim(self, operation: &str) -> SimError {
        SimError::Api {
            operation: operation.to_owned(),
            code: "invalid",
            message: self.message,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": {
            "code": self.status.as_u16(),
            "message": self.message,
            "errors": [{"message": self.message, "domain": self.domain, "reason": self.reason}],
            "status": self.canonical,
        }})
    }
}

impl From<SimError> for GoogleError {
    fn from(error: SimError) -> Self {
        match &error {
            SimError::Throttling { operation } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RESOURCE_EXHAUSTED",
                "rateLimitExceeded",
                format!("Rate Limit Exceeded: too many requests for {operation}"),
            )
            .usage_limits(),
            // A rate quota used up, as "Compute Engine rate quotas" says:
            // "a 403 error with the reason rateLimitExceeded".
            SimError::RateLimited { family, limit, .. } => Self::new(
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                "rateLimitExceeded",
                format!(
                    "Quota exceeded for quota metric '{family}' and limit '{limit}' of service 'compute.googleapis.com'. Retry after the start of the next minute."
                ),
            )
            .usage_limits(),
            SimError::Internal { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "backendError",
                format!("Internal error, try again: {error}"),
            ),
            // Permanent, as `sim faults --fail-operation` means it.
            SimError::Injected { .. } => Self::new(
                StatusCode::BAD_REQUEST,
                "FAILED_PRECONDITION",
                "injectedFailure",
                error.to_string(),
            ),
            SimError::Store(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "backendError",
                error.to_string(),
            ),
            SimError::Api { code, message, .. } => match *code {
                "notFound" => Self::not_found(message.clone()),
                "alreadyExists" => Self::new(
                    StatusCode::CONFLICT,
                    "ALREADY_EXISTS",
                    "alreadyExists",
                    message.clone(),
                ),
                "conditionNotMet" => Self::new(
                    StatusCode::PRECONDITION_FAILED,
                    "FAILED_PRECONDITION",
                    "conditionNotMet",
                    message.clone(),
                ),
                "resourceInUseByAnotherResource" => Self::new(
                    StatusCode::BAD_REQUEST,
                    "FAILED_PRECONDITION",
                    "resourceInUseByAnotherResource",
                    message.clone(),
                ),
                "quotaExceeded" => Self::new(
                    StatusCode::FORBIDDEN,
                    "PERMISSION_DENIED",
                    "quotaExceeded",
                    message.clone(),
                )
                .usage_limits(),
                _ => Self::invalid(message.clone()),
            },
        }
    }
}

impl IntoResponse for GoogleError {
    fn into_response(self) -> Response {
        json_response(self.status, &self.body())
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    response
}

fn reply(result: Result<Value, GoogleError>) -> Response {
    match result {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(error) => error.into_response(),
    }
}

type Answer = Result<Value, GoogleError>;

// ----- reading requests --------------------------------------------------------

/// The fields of one JSON object of a request, with its path for messages.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    at: String,
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

impl<'a> Fields<'a> {
    fn of(value: &'a Value, at: &str) -> Result<Self, GoogleError> {
        value
            .as_object()
            .map(|map| Self {
                map,
                at: at.to_owned(),
            })
            .ok_or_else(|| {
                GoogleError::invalid(format!(
                    "Invalid value for field '{at}': '{}'. Expected an object.",
                    shown(value)
                ))
            })
    }

    fn path(&self, key: &str) -> String {
        format!("{}.{key}", self.at)
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn bad(&self, key: &str, value: &Value, why: &str) -> GoogleError {
        GoogleError::invalid(format!(
            "Invalid value for field '{}': '{}'. {why}",
            self.path(key),
            shown(value)
        ))
    }

    fn str(&self, key: &str) -> Result<Option<&'a str>, GoogleError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(self.bad(key, other, "Expected a string.")),
        }
    }

    fn required_str(&self, key: &str) -> Result<&'a str, GoogleError> {
        self.str(key)?
            .filter(|text| !text.is_empty())
            .ok_or_else(|| GoogleError::required(&self.path(key)))
    }

    fn int(&self, key: &str, lo: i64, hi: i64) -> Result<Option<i64>, GoogleError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let number = match value {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
            Value::String(text) => text.parse::<i64>().ok(),
            _ => None,
        }
        .ok_or_else(|| self.bad(key, value, "Expected an integer."))?;
        if number < lo || number > hi {
            return Err(self.bad(key, value, &format!("Must be between {lo} and {hi}.")));
        }
        Ok(Some(number))
    }

    fn float(&self, key: &str, lo: f64, hi: f64) -> Result<Option<f64>, GoogleError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let number = match value {
            Value::Number(n) => n.as_f64(),
            Value::String(text) => text.parse::<f64>().ok(),
            _ => None,
        }
        .filter(|f| f.is_finite())
        .ok_or_else(|| self.bad(key, value, "Expected a number."))?;
        if number < lo || number > hi {
            return Err(self.bad(key, value, &format!("Must be between {lo} and {hi}.")));
        }
        Ok(Some(number))
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, GoogleError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(other) => Err(self.bad(key, other, "Expected a boolean.")),
        }
    }

    fn list(&self, key: &str) -> Result<&'a [Value], GoogleError> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items.as_slice()),
            Some(other) => Err(self.bad(key, other, "Expected a list.")),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<String>, GoogleError> {
        self.list(key)?
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| self.bad(key, item, "Expected a list of strings."))
            })
            .collect()
    }

    fn object(&self, key: &str) -> Result<Option<Fields<'a>>, GoogleError> {
        self.get(key)
            .map(|value| Fields::of(value, &self.path(key)))
            .transpose()
    }

    fn one_of(&self, key: &str, allowed: &[&str]) -> Result<Option<&'a str>, GoogleError> {
        match self.str(key)? {
            None => Ok(None),
            Some(value) if allowed.contains(&value) => Ok(Some(value)),
            Some(value) => Err(self.bad(
                key,
                &Value::String(value.to_owned()),
                &format!(
                    "Must be one of [{}] (the values this sandbox serves).",
                    allowed.join(", ")
                ),
            )),
        }
    }
}

/// A GCP resource name: `[a-z]([-a-z0-9]{0,61}[a-z0-9])?`.
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && !name.ends_with('-')
}

fn check_name(name: &str, field: &str) -> Result<(), GoogleError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(GoogleError::invalid(format!(
            "Invalid value for field '{field}': '{name}'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{{0,61}}[a-z0-9])?)'"
        )))
    }
}

/// A reference (a URL on any host, `projects/P/…` or a path relative to the
/// project) as a path relative to `project`, e.g. `global/healthChecks/x`.
fn relative<'a>(reference: &'a str, project: &str, field: &str) -> Result<&'a str, GoogleError> {
    let malformed = || {
        GoogleError::invalid(format!(
            "Invalid value for field '{field}': '{reference}'. The URL is malformed."
        ))
    };
    let mut rest = reference;
    if let Some(after) = rest
        .strip_prefix("https://")
        .or_else(|| rest.strip_prefix("http://"))
    {
        let (_, path) = after.split_once('/').ok_or_else(malformed)?;
        rest = path.strip_prefix("compute/v1/").ok_or_else(malformed)?;
    }
    if let Some(after) = rest.strip_prefix("projects/") {
        let (owner, tail) = after.split_once('/').ok_or_else(malformed)?;
        if owner != project {
            return Err(GoogleError::invalid(format!(
                "Invalid value for field '{field}': '{reference}'. References to other projects are not served by the sandbox; expected project '{project}'."
            )));
        }
        rest = tail;
    }
    Ok(rest)
}

/// The name in a reference to a global object of `collection`.
fn named_ref(
    reference: &str,
    project: &str,
    field: &str,
    collection: &str,
) -> Result<String, GoogleError> {
    relative(reference, project, field)?
        .strip_prefix("global/")
        .and_then(|rest| rest.strip_prefix(collection))
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|name| valid_name(name))
        .map(str::to_owned)
        .ok_or_else(|| {
            GoogleError::invalid(format!(
                "Invalid value for field '{field}': '{reference}'. Expected a URL or path of the form projects/{project}/global/{collection}/NAME."
            ))
        })
}

/// A backend group reference as the simulator stores it
/// (`regions/R/networkEndpointGroups/N`, `zones/Z/…`), with its region.
fn group_ref(reference: &str, project: &str, field: &str) -> Result<(String, String), GoogleError> {
    let path = relative(reference, project, field)?;
    let region = meridian_provider::regions::backend_group_region(path).map_err(|why| {
        GoogleError::invalid(format!(
            "Invalid value for field '{field}': '{reference}'. {why}"
        ))
    })?;
    Ok((path.to_owned(), region))
}

/// A stored reference as the full URL the real API sends.
fn api_link(project: &str, path: &str) -> String {
    if path.starts_with("https://") || path.starts_with("http://") {
        path.to_owned()
    } else if path.starts_with("projects/") {
        format!("{API_ROOT}{path}")
    } else {
        format!("{API_ROOT}projects/{project}/{path}")
    }
}

fn json_body(body: &Bytes) -> Result<Value, GoogleError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(GoogleError::required("resource"));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| GoogleError::invalid(format!("Invalid JSON payload received. {e}")))?;
    if !value.is_object() {
        return Err(GoogleError::invalid(
            "Invalid JSON payload received. Expected an object.",
        ));
    }
    Ok(value)
}

/// Decoded query parameters.
struct Query(Vec<(String, String)>);

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let byte = bytes
                    .get(i + 1..i + 3)
                    .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                match byte {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Query {
    fn of(uri: &Uri) -> Self {
        Self(
            uri.query()
                .unwrap_or("")
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(key), percent_decode(value))
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

// ----- the resources -------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    HealthCheck,
    BackendService,
    UrlMap,
    /// Target HTTP(S) proxies and global forwarding rules ([`frontends`]).
    Frontend(FrontendKind),
}

impl Kind {
    /// The collection in resource paths.
    fn collection(self) -> &'static str {
        match self {
            Kind::HealthCheck => "healthChecks",
            Kind::BackendService => "backendServices",
            Kind::UrlMap => "urlMaps",
            Kind::Frontend(kind) => kind.collection(),
        }
    }

    /// The API resource whose methods these are (`{api}.insert`).
    fn api(self) -> &'static str {
        match self {
            Kind::Frontend(kind) => kind.api(),
            other => other.collection(),
        }
    }

    fn list_kind(self) -> &'static str {
        match self {
            Kind::HealthCheck => "compute#healthCheckList",
            Kind::BackendService => "compute#backendServiceList",
            Kind::UrlMap => "compute#urlMapList",
            Kind::Frontend(FrontendKind::TargetHttpProxy) => "compute#targetHttpProxyList",
            Kind::Frontend(FrontendKind::TargetHttpsProxy) => "compute#targetHttpsProxyList",
            Kind::Frontend(FrontendKind::ForwardingRule) => "compute#forwardingRuleList",
        }
    }
}

/// Where links point: the sandbox as the client reached it, in one project.
struct Ctx {
    host: String,
    project: String,
}

/// The `host[:port]` links point at: the request's `Host`, with the
/// listener's port when the header names none (Google's Rust client sends
/// the host alone), or the listener's address without a usable header.
fn link_host(headers: &HeaderMap, local: SocketAddr) -> String {
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        })
    else {
        return local.to_string();
    };
    let has_port = match host.strip_prefix('[') {
        Some(rest) => rest.contains("]:"),
        None => host.contains(':'),
    };
    if has_port || local.port() == 80 {
        host.to_owned()
    } else {
        format!("{host}:{}", local.port())
    }
}

impl Ctx {
    fn new(sandbox: &Sandbox, headers: &HeaderMap, project: String) -> Self {
        Self {
            host: link_host(headers, sandbox.local),
            project,
        }
    }

    fn base(&self) -> String {
        format!(
            "http://{}/compute/v1/projects/{}/global",
            self.host, self.project
        )
    }

    fn self_link(&self, kind: Kind, name: &str) -> String {
        format!("{}/{}/{name}", self.base(), kind.collection())
    }
}

/// The simulator's creation time as GCP writes timestamps (RFC 3339 with
/// milliseconds and an offset).
fn timestamp(ms: u64) -> String {
    let seconds = jiff::Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(0))
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00".to_owned());
    format!("{seconds}.{:03}+00:00", ms % 1000)
}

/// `(type, nested object, default port, HTTP family)` of each health check type.
const CHECK_TYPES: [(&str, &str, u16, bool); 6] = [
    ("TCP", "tcpHealthCheck", 80, false),
    ("SSL", "sslHealthCheck", 443, false),
    ("HTTP", "httpHealthCheck", 80, true),
    ("HTTPS", "httpsHealthCheck", 443, true),
    ("HTTP2", "http2HealthCheck", 443, true),
    ("GRPC", "grpcHealthCheck", 443, false),
];

fn put(map: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    map.insert(key.to_owned(), value.into());
}

fn health_check_json(ctx: &Ctx, check: &GcpHealthCheck) -> Value {
    let spec = &check.spec;
    let (_, block_key, _, http_family) = CHECK_TYPES
        .iter()
        .copied()
        .find(|t| t.0 == spec.check_type)
        .unwrap_or(CHECK_TYPES[0]);
    let mut block = Map::new();
    put(&mut block, "port", spec.port);
    if http_family {
        if let Some(path) = &spec.request_path {
            put(&mut block, "requestPath", path.as_str());
        }
        if let Some(host) = &spec.host {
            put(&mut block, "host", host.as_str());
        }
    }
    let mut out = Map::new();
    put(&mut out, "kind", "compute#healthCheck");
    put(&mut out, "id", check.id.as_str());
    put(&mut out, "creationTimestamp", timestamp(check.created_ms));
    put(&mut out, "name", check.name.as_str());
    if !check.description.is_empty() {
        put(&mut out, "description", check.description.as_str());
    }
    put(&mut out, "checkIntervalSec", spec.check_interval_sec);
    put(&mut out, "timeoutSec", spec.timeout_sec);
    put(&mut out, "unhealthyThreshold", spec.unhealthy_threshold);
    put(&mut out, "healthyThreshold", spec.healthy_threshold);
    put(&mut out, "type", spec.check_type.as_str());
    put(&mut out, block_key, block);
    put(
        &mut out,
        "selfLink",
        ctx.self_link(Kind::HealthCheck, &check.name),
    );
    Value::Object(out)
}

fn health_check_from(
    project: &str,
    value: &Value,
) -> Result<(String, HealthCheckSpec), GoogleError> {
    let f = Fields::of(value, "resource")?;
    let types: Vec<&str> = CHECK_TYPES.iter().map(|t| t.0).collect();
    let check_type = f
        .one_of("type", &types)?
        .ok_or_else(|| GoogleError::required("resource.type"))?;
    let (_, block_key, default_port, http_family) = CHECK_TYPES
        .iter()
        .copied()
        .find(|t| t.0 == check_type)
        .unwrap_or(CHECK_TYPES[0]);
    let block = f.object(block_key)?;
    let mut port = default_port;
    let mut request_path = None;
    let mut host = None;
    if let Some(block) = &block {
        if let Some(number) = block.int("port", 1, 65_535)? {
            port = u16::try_from(number).unwrap_or(default_port);
        }
        if http_family {
            request_path = block.str("requestPath")?.filter(|p| !p.is_empty());
            host = block.str("host")?.filter(|h| !h.is_empty());
        }
    }
    if let Some(path) = request_path
        && (!path.starts_with('/') || path.len() > 1024)
    {
        return Err(GoogleError::invalid(format!(
            "Invalid value for field 'resource.{block_key}.requestPath': '{path}'. Must start with / and be at most 1024 characters."
        )));
    }
    let interval = f.int("checkIntervalSec", 1, 300)?.unwrap_or(5);
    let timeout = f.int("timeoutSec", 1, 300)?.unwrap_or(5);
    if timeout > interval {
        return Err(GoogleError::invalid(format!(
            "Invalid value for field 'resource.timeoutSec': '{timeout}'. TimeoutSec should be less than or equal to CheckIntervalSec ({interval})."
        )));
    }
    let count = |n: i64| u32::try_from(n).unwrap_or(1);
    let spec = HealthCheckSpec {
        project: project.to_owned(),
        check_type: check_type.to_owned(),
        check_interval_sec: count(interval),
        timeout_sec: count(timeout),
        healthy_threshold: count(f.int("healthyThreshold", 1, 10)?.unwrap_or(2)),
        unhealthy_threshold: count(f.int("unhealthyThreshold", 1, 10)?.unwrap_or(2)),
        port,
        request_path: http_family.then(|| request_path.unwrap_or("/").to_owned()),
        host: http_family.then(|| host.map(str::to_owned)).flatten(),
    };
    Ok((f.str("description")?.unwrap_or("").to_owned(), spec))
}

fn backend_json(project: &str, backend: &BackendSpec) -> Value {
    let mut out = Map::new();
    put(&mut out, "group", api_link(project, &backend.group));
    put(&mut out, "balancingMode", backend.balancing_mode.as_str());
    if let Some(rate) = backend.max_rate {
        put(&mut out, "maxRate", rate);
    }
    if let Some(rate) = backend.max_rate_per_endpoint {
        put(&mut out, "maxRatePerEndpoint", rate);
    }
    if let Some(utilization) = backend.max_utilization {
        put(&mut out, "maxUtilization", utilization);
    }
    if let Some(connections) = backend.max_connections {
        put(&mut out, "maxConnections", connections);
    }
    // 0 is a real value (drained), always sent.
    put(&mut out, "capacityScaler", backend.capacity_scaler);
    Value::Object(out)
}

fn backend_from(project: &str, f: &Fields) -> Result<BackendSpec, GoogleError> {
    let group = f.required_str("group")?;
    let (group, region) = group_ref(group, project, &f.path("group"))?;
    let scaler = f.float("capacityScaler", 0.0, 1.0)?.unwrap_or(1.0);
    if scaler != 0.0 && scaler < 0.1 - 1e-6 {
        return Err(GoogleError::invalid(format!(
            "Invalid value for field '{}': '{scaler}'. Must be 0 or between 0.1 and 1.0.",
            f.path("capacityScaler")
        )));
    }
    let count = |n: Option<i64>| n.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    Ok(BackendSpec {
        group,
        region,
        balancing_mode: f
            .one_of("balancingMode", &["RATE", "UTILIZATION", "CONNECTION"])?
            .unwrap_or("UTILIZATION")
            .to_owned(),
        max_rate: count(f.int("maxRate", 0, i64::from(i32::MAX))?),
        max_rate_per_endpoint: f.float("maxRatePerEndpoint", 0.0, f64::from(f32::MAX))?,
        max_utilization: f.float("maxUtilization", 0.0, 1.0)?,
        max_connections: count(f.int("maxConnections", 0, i64::from(i32::MAX))?),
        capacity_scaler: scaler,
    })
}

fn backend_service_json(ctx: &Ctx, service: &GcpBackendService) -> Value {
    let spec = &service.spec;
    let project = ctx.project.as_str();
    let mut out = Map::new();
    put(&mut out, "kind", "compute#backendService");
    put(&mut out, "id", service.id.as_str());
    put(&mut out, "creationTimestamp", timestamp(service.created_ms));
    put(&mut out, "name", service.name.as_str());
    if !service.description.is_empty() {
        put(&mut out, "description", service.description.as_str());
    }
    put(
        &mut out,
        "selfLink",
        ctx.self_link(Kind::BackendService, &service.name),
    );
    if !service.backends.is_empty() {
        put(
            &mut out,
            "backends",
            service
                .backends
                .iter()
                .map(|b| backend_json(project, b))
                .collect::<Vec<_>>(),
        );
    }
    if !spec.health_checks.is_empty() {
        put(
            &mut out,
            "healthChecks",
            spec.health_checks
                .iter()
                .map(|h| api_link(project, &format!("global/healthChecks/{h}")))
                .collect::<Vec<_>>(),
        );
    }
    put(&mut out, "timeoutSec", spec.timeout_sec);
    put(&mut out, "protocol", spec.protocol.as_str());
    if let Some(port_name) = &spec.port_name {
        put(&mut out, "portName", port_name.as_str());
    }
    put(&mut out, "enableCDN", spec.enable_cdn);
    put(
        &mut out,
        "loadBalancingScheme",
        spec.load_balancing_scheme.as_str(),
    );
    put(
        &mut out,
        "fingerprint",
        wire_fingerprint(&service.fingerprint),
    );
    Value::Object(out)
}

type ServiceParts = (String, BackendServiceSpec, Vec<BackendSpec>);

fn backend_service_from(project: &str, value: &Value) -> Result<ServiceParts, GoogleError> {
    let f = Fields::of(value, "resource")?;
    let mut health_checks = Vec::new();
    for (i, item) in f.list("healthChecks")?.iter().enumerate() {
        let field = format!("resource.healthChecks[{i}]");
        let reference = item.as_str().ok_or_else(|| {
            GoogleError::invalid(format!(
                "Invalid value for field '{field}': '{}'. Expected a string.",
                shown(item)
            ))
        })?;
        health_checks.push(named_ref(reference, project, &field, "healthChecks")?);
    }
    health_checks.sort();
    health_checks.dedup();
    let mut backends: Vec<BackendSpec> = Vec::new();
    for (i, item) in f.list("backends")?.iter().enumerate() {
        let backend = backend_from(
            project,
            &Fields::of(item, &format!("resource.backends[{i}]"))?,
        )?;
        if backends.iter().any(|b| b.group == backend.group) {
            return Err(GoogleError::invalid(format!(
                "Invalid value for field 'resource.backends[{i}].group': '{}'. Duplicate backend group.",
                backend.group
            )));
        }
        backends.push(backend);
    }
    let spec = BackendServiceSpec {
        project: project.to_owned(),
        protocol: f
            .one_of(
                "protocol",
                &["HTTP", "HTTPS", "HTTP2", "TCP", "SSL", "GRPC"],
            )?
            .unwrap_or("HTTP")
            .to_owned(),
        port_name: f.str("portName")?.map(str::to_owned),
        timeout_sec: u32::try_from(f.int("timeoutSec", 1, i64::from(i32::MAX))?.unwrap_or(30))
            .unwrap_or(30),
        load_balancing_scheme: f
            .one_of("loadBalancingScheme", &["EXTERNAL", "EXTERNAL_MANAGED"])?
            .unwrap_or("EXTERNAL")
            .to_owned(),
        enable_cdn: f.bool("enableCDN")?.unwrap_or(false),
        health_checks,
    };
    Ok((
        f.str("description")?.unwrap_or("").to_owned(),
        spec,
        backends,
    ))
}

fn service_link(project: &str, name: &str) -> String {
    api_link(project, &format!("global/backendServices/{name}"))
}

fn url_map_json(ctx: &Ctx, map: &GcpUrlMap) -> Value {
    let spec = &map.spec;
    let project = ctx.project.as_str();
    let mut out = Map::new();
    put(&mut out, "kind", "compute#urlMap");
    put(&mut out, "id", map.id.as_str());
    put(&mut out, "creationTimestamp", timestamp(map.created_ms));
    put(&mut out, "name", map.name.as_str());
    if !map.description.is_empty() {
        put(&mut out, "description", map.description.as_str());
    }
    put(&mut out, "selfLink", ctx.self_link(Kind::UrlMap, &map.name));
    if !spec.host_rules.is_empty() {
        put(
            &mut out,
            "hostRules",
            spec.host_rules
                .iter()
                .map(|r| json!({"hosts": r.hosts, "pathMatcher": r.path_matcher}))
                .collect::<Vec<_>>(),
        );
    }
    if !spec.path_matchers.is_empty() {
        put(
            &mut out,
            "pathMatchers",
            spec.path_matchers
                .iter()
                .map(|m| {
                    let mut matcher = Map::new();
                    put(&mut matcher, "name", m.name.as_str());
                    put(&mut matcher, "defaultService", service_link(project, &m.default_service));
                    if !m.path_rules.is_empty() {
                        put(
                            &mut matcher,
                            "pathRules",
                            m.path_rules
                                .iter()
                                .map(|r| json!({"paths": r.paths, "service": service_link(project, &r.service)}))
                                .collect::<Vec<_>>(),
                        );
                    }
                    Value::Object(matcher)
                })
                .collect::<Vec<_>>(),
        );
    }
    put(
        &mut out,
        "defaultService",
        service_link(project, &spec.default_service),
    );
    put(&mut out, "fingerprint", wire_fingerprint(&map.fingerprint));
    Value::Object(out)
}

fn url_map_from(project: &str, value: &Value) -> Result<(String, UrlMapSpec), GoogleError> {
    let f = Fields::of(value, "resource")?;
    let service = |fields: &Fields, key: &str| -> Result<String, GoogleError> {
        named_ref(
            fields.required_str(key)?,
            project,
            &fields.path(key),
            "backendServices",
        )
    };
    let mut path_matchers = Vec::new();
    for (i, item) in f.list("pathMatchers")?.iter().enumerate() {
        let m = Fields::of(item, &format!("resource.pathMatchers[{i}]"))?;
        let name = m.required_str("name")?;
        check_name(name, &m.path("name"))?;
        let mut path_rules = Vec::new();
        for (j, rule) in m.list("pathRules")?.iter().enumerate() {
            let r = Fields::of(rule, &format!("{}.pathRules[{j}]", m.at))?;
            let paths = r.strings("paths")?;
            if paths.is_empty() {
                return Err(GoogleError::required(&r.path("paths")));
            }
            path_rules.push(PathRule {
                paths,
                service: service(&r, "service")?,
            });
        }
        path_matchers.push(PathMatcher {
            name: name.to_owned(),
            default_service: service(&m, "defaultService")?,
            path_rules,
        });
    }
    let mut host_rules = Vec::new();
    for (i, item) in f.list("hostRules")?.iter().enumerate() {
        let r = Fields::of(item, &format!("resource.hostRules[{i}]"))?;
        let hosts = r.strings("hosts")?;
        if hosts.is_empty() {
            return Err(GoogleError::required(&r.path("hosts")));
        }
        let matcher = r.required_str("pathMatcher")?;
        if !path_matchers
            .iter()
            .any(|m: &PathMatcher| m.name == matcher)
        {
            return Err(GoogleError::invalid(format!(
                "Invalid value for field '{}': '{matcher}'. No path matcher of that name.",
                r.path("pathMatcher")
            )));
        }
        host_rules.push(HostRule {
            hosts,
            path_matcher: matcher.to_owned(),
        });
    }
    let spec = UrlMapSpec {
        project: project.to_owned(),
        default_service: service(&f, "defaultService")?,
        host_rules,
        path_matchers,
    };
    Ok((f.str("description")?.unwrap_or("").to_owned(), spec))
}

/// RFC 7396 JSON merge patch: objects merge recursively, anything else
/// (arrays included) replaces, `null` removes.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

// ----- operations ----------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Running,
    Done,
}

/// One long-running operation, as the sandbox remembers it.
#[derive(Debug, Clone)]
struct Operation {
    id: u64,
    name: String,
    project: String,
    operation_type: &'static str,
    target: String,
    target_id: Option<String>,
    client_operation_id: Option<String>,
    status: Status,
    insert_ms: u64,
    start_ms: Option<u64>,
    end_ms: Option<u64>,
    error: Option<OperationFault>,
}

/// `(httpErrorStatusCode, httpErrorMessage)` of a failed operation's code.
fn http_error_of(code: &str) -> (u16, &'static str) {
    match code {
        "QUOTA_EXCEEDED" => (403, "FORBIDDEN"),
        "RATE_LIMIT_EXCEEDED" | "RESOURCE_OPERATION_RATE_EXCEEDED" => (429, "TOO MANY REQUESTS"),
        "RESOURCE_NOT_FOUND" | "NOT_FOUND" => (404, "NOT FOUND"),
        "RESOURCE_ALREADY_EXISTS" | "ALREADY_EXISTS" => (409, "CONFLICT"),
        "CONDITION_NOT_MET" => (412, "PRECONDITION FAILED"),
        "INTERNAL_ERROR" | "INTERNAL" => (500, "INTERNAL SERVER ERROR"),
        "RESOURCE_NOT_READY" | "SERVICE_UNAVAILABLE" | "UNAVAILABLE" | "TIMEOUT" => {
            (503, "SERVICE UNAVAILABLE")
        }
        _ => (400, "BAD REQUEST"),
    }
}

impl Operation {
    /// One poll: `PENDING` → `RUNNING`, then `DONE` once `delay_ms` passed.
    fn poll(&mut self, delay_ms: u64) {
        let now = now_ms();
        match self.status {
            Status::Pending => {
                self.status = Status::Running;
                self.start_ms = Some(now);
            }
            Status::Running if now >= self.insert_ms.saturating_add(delay_ms) => {
                self.status = Status::Done;
                self.end_ms = Some(now);
            }
            _ => {}
        }
    }

    fn json(&self, host: &str) -> Value {
        let base = format!("http://{host}/compute/v1/projects/{}", self.project);
        let mut out = Map::new();
        put(&mut out, "kind", "compute#operation");
        put(&mut out, "id", self.id.to_string());
        put(&mut out, "name", self.name.as_str());
        if let Some(id) = &self.client_operation_id {
            put(&mut out, "clientOperationId", id.as_str());
        }
        put(&mut out, "operationType", self.operation_type);
        put(&mut out, "targetLink", format!("{base}/{}", self.target));
        if let Some(id) = &self.target_id {
            put(&mut out, "targetId", id.as_str());
        }
        put(
            &mut out,
            "status",
            match self.status {
                Status::Pending => "PENDING",
                Status::Running => "RUNNING",
                Status::Done => "DONE",
            },
        );
        put(&mut out, "user", USER);
        put(
            &mut out,
            "progress",
            if self.status == Status::Done { 100 } else { 0 },
        );
        put(&mut out, "insertTime", timestamp(self.insert_ms));
        if let Some(start) = self.start_ms {
            put(&mut out, "startTime", timestamp(start));
        }
        if let Some(end) = self.end_ms {
            put(&mut out, "endTime", timestamp(end));
        }
        if self.status == Status::Done
            && let Some(fault) = &self.error
        {
            let (status, message) = http_error_of(&fault.code);
            put(
                &mut out,
                "error",
                json!({"errors": [{"code": fault.code, "message": fault.message}]}),
            );
            put(&mut out, "httpErrorStatusCode", status);
            put(&mut out, "httpErrorMessage", message);
        }
        put(
            &mut out,
            "selfLink",
            format!("{base}/global/operations/{}", self.name),
        );
        Value::Object(out)
    }
}

/// The operations the sandbox remembers, and the request ids of the writes
/// that made them (a retried write with the same `requestId` gets the same
/// operation and does not land twice).
#[derive(Debug, Default)]
struct Operations {
    by_name: HashMap<String, Operation>,
    order: VecDeque<String>,
    by_request: HashMap<(String, String), String>,
}

impl Operations {
    fn remember(&mut self, operation: Operation, request_id: Option<&str>) {
        if let Some(id) = request_id {
            self.by_request.insert(
                (operation.project.clone(), id.to_owned()),
                operation.name.clone(),
            );
        }
        self.order.push_back(operation.name.clone());
        self.by_name.insert(operation.name.clone(), operation);
        while self.order.len() > OPERATIONS_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.by_name.remove(&old);
                self.by_request.retain(|_, name| *name != old);
            }
        }
    }

    fn find(&mut self, project: &str, name: &str) -> Option<&mut Operation> {
        self.by_name
            .get_mut(name)
            .filter(|operation| operation.project == project)
    }
}

// ----- serving ---------------------------------------------------------------------

/// The sandbox's state: the simulated cloud and the operations.
#[derive(Debug, Clone)]
struct Sandbox {
    cloud: SimCloud,
    operations: Arc<Mutex<Operations>>,
    local: SocketAddr,
}

impl Sandbox {
    fn operations(&self) -> MutexGuard<'_, Operations> {
        self.operations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The sandbox serving one write request: the writes it makes are
    /// recorded in the history under the `requestId` the client sent, or
    /// under a fresh id when it sent none.
    fn for_request(&self, request_id: Option<&str>) -> Sandbox {
        let id = request_id.map_or_else(crate::request_id, str::to_owned);
        Sandbox {
            cloud: self.cloud.with_request_id(&id),
            operations: Arc::clone(&self.operations),
            local: self.local,
        }
    }

    /// The operation an earlier write with this `requestId` made, counted
    /// as a call of `operation`.
    async fn replay(
        &self,
        ctx: &Ctx,
        operation: &str,
        request_id: Option<&str>,
    ) -> Result<Option<Value>, GoogleError> {
        let Some(id) = request_id else {
            return Ok(None);
        };
        let known = {
            let operations = self.operations();
            operations
                .by_request
                .get(&(ctx.project.clone(), id.to_owned()))
                .and_then(|name| operations.by_name.get(name))
                .cloned()
        };
        let Some(known) = known else {
            return Ok(None);
        };
        self.cloud.count_call(operation, true, |_| Ok(())).await?;
        Ok(Some(known.json(&ctx.host)))
    }

    /// The id of an object, read without an API call.
    fn current_id(&self, kind: Kind, project: &str, name: &str) -> Option<String> {
        let world = self.cloud.store().read().ok()?;
        let key = format!("{project}/{name}");
        match kind {
            Kind::HealthCheck => world.health_checks.get(&key).map(|o| o.id.clone()),
            Kind::BackendService => world.backend_services.get(&key).map(|o| o.id.clone()),
            Kind::UrlMap => world.url_maps.get(&key).map(|o| o.id.clone()),
            Kind::Frontend(f) => world
                .frontends
                .get(&frontend_key(project, f, name))
                .map(|o| o.id.clone()),
        }
    }

    /// Runs one write: an injected operation error instead of the write if
    /// one is pending, else `perform` (which returns the target's id); then
    /// the operation that reports it.
    async fn write(
        &self,
        ctx: &Ctx,
        kind: Kind,
        verb: &'static str,
        name: &str,
        request_id: Option<&str>,
        perform: impl Future<Output = Result<Option<String>, GoogleError>>,
    ) -> Answer {
        let operation = format!("{}.{verb}", kind.api());
        let fault = self.cloud.take_operation_fault(&operation)?;
        let target_id = match &fault {
            Some(_) => self.current_id(kind, &ctx.project, name),
            None => perform.await?,
        };
        let now = now_ms();
        let created = Operation {
            id: fastrand::u64(1_000_000_000_000_000_000..9_000_000_000_000_000_000),
            name: format!(
                "operation-{now}-{:013x}",
                fastrand::u64(..0x10_0000_0000_0000)
            ),
            project: ctx.project.clone(),
            operation_type: verb,
            target: format!("global/{}/{name}", kind.collection()),
            target_id,
            client_operation_id: request_id.map(str::to_owned),
            status: Status::Pending,
            insert_ms: now,
            start_ms: None,
            end_ms: None,
            error: fault,
        };
        self.operations().remember(created.clone(), request_id);
        Ok(created.json(&ctx.host))
    }
}

async fn list(sandbox: &Sandbox, kind: Kind, ctx: &Ctx, uri: &Uri) -> Answer {
    if let Kind::Frontend(f) = kind {
        return frontends::list(sandbox, f, ctx, uri).await;
    }
    let (max, token) = frontends::page_params(uri)?;
    let token = token.as_deref();
    let project = ctx.project.as_str();
    let cloud = &sandbox.cloud;
    let limit = Some(MAX_RESULTS);
    let (items, next): (Vec<Value>, Option<String>) = match kind {
        Kind::HealthCheck => {
            let page = cloud
                .list_health_checks_up_to(project, max, token, limit)
                .await?;
            let items = page.items.iter().map(|h| health_check_json(ctx, h));
            (items.collect(), page.next_token)
        }
        Kind::BackendService => {
            let page = cloud
                .list_backend_services_up_to(project, max, token, limit)
                .await?;
            let items = page
                .items
                .iter()
                .map(|v| backend_service_json(ctx, &v.service));
            (items.collect(), page.next_token)
        }
        Kind::UrlMap => {
            let page = cloud
                .list_url_maps_up_to(project, max, token, limit)
                .await?;
            let items = page.items.iter().map(|m| url_map_json(ctx, m));
            (items.collect(), page.next_token)
        }
        Kind::Frontend(_) => unreachable!("answered above"),
    };
    let mut out = Map::new();
    put(&mut out, "kind", kind.list_kind());
    put(
        &mut out,
        "id",
        format!("projects/{project}/global/{}", kind.collection()),
    );
    if !items.is_empty() {
        put(&mut out, "items", items);
    }
    if let Some(next) = next {
        put(&mut out, "nextPageToken", next);
    }
    put(
        &mut out,
        "selfLink",
        format!("{}/{}", ctx.base(), kind.collection()),
    );
    Ok(Value::Object(out))
}

async fn get_one(sandbox: &Sandbox, kind: Kind, ctx: &Ctx, name: &str) -> Answer {
    let cloud = &sandbox.cloud;
    let project = ctx.project.as_str();
    Ok(match kind {
        Kind::HealthCheck => health_check_json(ctx, &cloud.get_health_check(project, name).await?),
        Kind::BackendService => backend_service_json(
            ctx,
            &cloud.get_backend_service(project, name).await?.service,
        ),
        Kind::UrlMap => url_map_json(ctx, &cloud.get_url_map(project, name).await?),
        Kind::Frontend(f) => return frontends::get_one(sandbox, f, ctx, name).await,
    })
}

async fn insert(sandbox: &Sandbox, kind: Kind, ctx: &Ctx, uri: &Uri, body: &Bytes) -> Answer {
    let query = Query::of(uri);
    let request_id = query.get("requestId");
    let sandbox = &sandbox.for_request(request_id);
    let operation = format!("{}.insert", kind.api());
    if let Some(known) = sandbox.replay(ctx, &operation, request_id).await? {
        return Ok(known);
    }
    let body = json_body(body)?;
    let name = Fields::of(&body, "resource")?
        .required_str("name")?
        .to_owned();
    check_name(&name, "resource.name")?;
    let project = ctx.project.as_str();
    let cloud = &sandbox.cloud;
    match kind {
        Kind::HealthCheck => {
            let (description, spec) = health_check_from(project, &body)?;
            sandbox
                .write(ctx, kind, "insert", &name, request_id, async {
                    cloud
                        .insert_health_check(&name, &description, &spec)
                        .await?;
                    Ok(sandbox.current_id(kind, project, &name))
                })
                .await
        }
        Kind::BackendService => {
            let (description, spec, backends) = backend_service_from(project, &body)?;
            sandbox
                .write(ctx, kind, "insert", &name, request_id, async {
                    cloud
                        .insert_backend_service(&name, &description, &spec, &backends)
                        .await?;
                    Ok(sandbox.current_id(kind, project, &name))
                })
                .await
        }
        Kind::UrlMap => {
            let (description, spec) = url_map_from(project, &body)?;
            sandbox
                .write(ctx, kind, "insert", &name, request_id, async {
                    cloud.insert_url_map(&name, &description, &spec).await?;
                    Ok(sandbox.current_id(kind, project, &name))
                })
                .await
        }
        Kind::Frontend(f) => frontends::insert(sandbox, f, ctx, &name, request_id, &body).await,
    }
}

/// `patch` (JSON merge over the current object) or `update` (PUT, the whole
/// object), guarded by the body's `fingerprint` when it has one.
async fn modify(
    sandbox: &Sandbox,
    kind: Kind,
    method: GcpMethod,
    ctx: &Ctx,
    name: &str,
    uri: &Uri,
    body: &Bytes,
) -> Answer {
    let query = Query::of(uri);
    let request_id = query.get("requestId");
    let operation = method.operation(kind.collection());
    let sandbox = &sandbox.for_request(request_id);
    if let Some(known) = sandbox.replay(ctx, &operation, request_id).await? {
        return Ok(known);
    }
    let body = json_body(body)?;
    let fields = Fields::of(&body, "resource")?;
    if let Some(given) = fields.str("name")?
        && given != name
    {
        return Err(GoogleError::invalid(format!(
            "Invalid value for field 'resource.name': '{given}'. The name cannot be changed (the URL names '{name}')."
        )));
    }
    let fingerprint = match fields.str("fingerprint")? {
        None => None,
        Some(text) => Some(stored_fingerprint(text).ok_or_else(|| {
            GoogleError::invalid(format!(
                "Invalid value for field 'resource.fingerprint': '{text}'. Expected base64."
            ))
        })?),
    };
    let fingerprint = fingerprint.as_deref();
    let patch = method == GcpMethod::Patch;
    let project = ctx.project.as_str();
    let cloud = &sandbox.cloud;
    // What the merge starts from: the current object as the API shows it.
    let shown_ctx = Ctx {
        host: sandbox.local.to_string(),
        project: project.to_owned(),
    };
    let merged = |current: Value| -> Value {
        let mut target = current;
        merge_patch(&mut target, &body);
        target
    };
    let verb = if patch { "patch" } else { "update" };
    match kind {
        Kind::Frontend(_) => Err(GoogleError::invalid(format!(
            "{} are changed with PATCH and their set-methods, not PUT",
            kind.collection()
        ))),
        Kind::HealthCheck => {
            sandbox
                .write(ctx, kind, verb, name, request_id, async {
                    let written = cloud
                        .modify_health_check(method, project, name, fingerprint, |current| {
                            let value = if patch {
                                merged(health_check_json(&shown_ctx, current))
                            } else {
                                body.clone()
                            };
                            let (description, spec) = health_check_from(project, &value)
                                .map_err(|e| e.into_sim(&operation))?;
                            Ok((Some(description), spec))
                        })
                        .await?;
                    Ok(Some(written.id))
                })
                .await
        }
        Kind::BackendService => {
            sandbox
                .write(ctx, kind, verb, name, request_id, async {
                    let written = cloud
                        .modify_backend_service(method, project, name, fingerprint, |current| {
                            let value = if patch {
                                merged(backend_service_json(&shown_ctx, current))
                            } else {
                                body.clone()
                            };
                            let (description, spec, backends) =
                                backend_service_from(project, &value)
                                    .map_err(|e| e.into_sim(&operation))?;
                            Ok(ServiceChange {
                                description: Some(description),
                                spec: Some(spec),
                                backends: Some(backends),
                            })
                        })
                        .await?;
                    Ok(Some(written.id))
                })
                .await
        }
        Kind::UrlMap => {
            sandbox
                .write(ctx, kind, verb, name, request_id, async {
                    let written = cloud
                        .modify_url_map(method, project, name, fingerprint, |current| {
                            let value = if patch {
                                merged(url_map_json(&shown_ctx, current))
                            } else {
                                body.clone()
                            };
                            let (description, spec) = url_map_from(project, &value)
                                .map_err(|e| e.into_sim(&operation))?;
                            Ok((Some(description), spec))
                        })
                        .await?;
                    Ok(Some(written.id))
                })
                .await
        }
    }
}

async fn delete(sandbox: &Sandbox, kind: Kind, ctx: &Ctx, name: &str, uri: &Uri) -> Answer {
    let query = Query::of(uri);
    let request_id = query.get("requestId");
    let sandbox = &sandbox.for_request(request_id);
    let operation = format!("{}.delete", kind.api());
    if let Some(known) = sandbox.replay(ctx, &operation, request_id).await? {
        return Ok(known);
    }
    let project = ctx.project.as_str();
    let cloud = &sandbox.cloud;
    let id = sandbox.current_id(kind, project, name);
    sandbox
        .write(ctx, kind, "delete", name, request_id, async {
            match kind {
                Kind::HealthCheck => cloud.delete_health_check(project, name).await?,
                Kind::BackendService => cloud.delete_backend_service(project, name).await?,
                Kind::UrlMap => cloud.delete_url_map(project, name).await?,
                Kind::Frontend(f) => cloud.delete_frontend(f, project, name).await?,
            }
            Ok(id)
        })
        .await
}

/// A made-up but stable endpoint address for a backend group.
fn endpoint_address(group: &str) -> String {
    let digest = Sha256::digest(group.as_bytes());
    format!("10.{}.{}.{}", digest[0], digest[1], digest[2].max(2))
}

async fn get_health(sandbox: &Sandbox, ctx: &Ctx, name: &str, body: &Bytes) -> Answer {
    let body = json_body(body)?;
    let group = Fields::of(&body, "resource")?.required_str("group")?;
    let (group, _) = group_ref(group, &ctx.project, "resource.group")?;
    let health = sandbox
        .cloud
        .get_backend_health(&ctx.project, name, &group)
        .await?;
    Ok(json!({
        "kind": "compute#backendServiceGroupHealth",
        "healthStatus": [{
            "healthState": health.state,
            "ipAddress": endpoint_address(&group),
            "port": health.port,
        }],
    }))
}

fn operation_not_found(ctx: &Ctx, name: &str, operation: &str) -> SimError {
    SimError::Api {
        operation: operation.to_owned(),
        code: "notFound",
        message: format!(
            "The resource 'projects/{}/global/operations/{name}' was not found",
            ctx.project
        ),
    }
}

async fn get_operation(sandbox: &Sandbox, ctx: &Ctx, name: &str) -> Answer {
    let operation = sandbox
        .cloud
        .count_call("globalOperations.get", false, |world| {
            let delay = world.settings.deploy_delay_ms;
            let mut operations = sandbox.operations();
            let found = operations
                .find(&ctx.project, name)
                .ok_or_else(|| operation_not_found(ctx, name, "globalOperations.get"))?;
            found.poll(delay);
            Ok(found.clone())
        })
        .await?;
    Ok(operation.json(&ctx.host))
}

async fn wait_operation(sandbox: &Sandbox, ctx: &Ctx, name: &str) -> Answer {
    let started = Instant::now();
    let (mut operation, delay) = sandbox
        .cloud
        .count_call("globalOperations.wait", false, |world| {
            let delay = world.settings.deploy_delay_ms;
            let mut operations = sandbox.operations();
            let found = operations
                .find(&ctx.project, name)
                .ok_or_else(|| operation_not_found(ctx, name, "globalOperations.wait"))?;
            found.poll(delay);
            Ok((found.clone(), delay))
        })
        .await?;
    while operation.status != Status::Done && started.elapsed() < WAIT_LIMIT {
        let ready_in = operation
            .insert_ms
            .saturating_add(delay)
            .saturating_sub(now_ms());
        tokio::time::sleep(Duration::from_millis(ready_in.clamp(5, 100))).await;
        let mut operations = sandbox.operations();
        let Some(found) = operations.find(&ctx.project, name) else {
            break;
        };
        found.poll(delay);
        operation = found.clone();
    }
    Ok(operation.json(&ctx.host))
}

async fn not_found(uri: Uri) -> Response {
    GoogleError::not_found(format!(
        "The requested URL {} was not found on this server.",
        uri.path()
    ))
    .into_response()
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    GoogleError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNIMPLEMENTED",
        "httpMethodNotAllowed",
        format!("HTTP method {method} is not supported by {}", uri.path()),
    )
    .into_response()
}

type One = Path<(String, String)>;

/// The Compute Engine routes, for merging into the sandbox's router.
/// `local` is the listener's address, for `selfLink`s (see [`link_host`]).
pub fn router(cloud: SimCloud, local: SocketAddr) -> Router {
    let sandbox = Sandbox {
        cloud,
        operations: Arc::default(),
        local,
    };
    let mut router = Router::new();
    for kind in [Kind::HealthCheck, Kind::BackendService, Kind::UrlMap] {
        let collection = format!(
            "/compute/v1/projects/{{project}}/global/{}",
            kind.collection()
        );
        router = router
            .route(
                &collection,
                get(
                    move |State(s): State<Sandbox>,
                          Path(project): Path<String>,
                          headers: HeaderMap,
                          uri: Uri| async move {
                        let ctx = Ctx::new(&s, &headers, project);
                        reply(list(&s, kind, &ctx, &uri).await)
                    },
                )
                .post(
                    move |State(s): State<Sandbox>,
                          Path(project): Path<String>,
                          headers: HeaderMap,
                          uri: Uri,
                          body: Bytes| async move {
                        let ctx = Ctx::new(&s, &headers, project);
                        reply(insert(&s, kind, &ctx, &uri, &body).await)
                    },
                ),
            )
            .route(
                &format!("{collection}/{{name}}"),
                get(
                    move |State(s): State<Sandbox>,
                          Path((project, name)): One,
                          headers: HeaderMap| async move {
                        let ctx = Ctx::new(&s, &headers, project);
                        reply(get_one(&s, kind, &ctx, &name).await)
                    },
                )
                .patch(
                    move |State(s): State<Sandbox>,
                          Path((project, name)): One,
                          headers: HeaderMap,
                          uri: Uri,
                          body: Bytes| async move {
                        let ctx = Ctx::new(&s, &headers, project);
                        reply(modify(&s, kind, GcpMethod::Patch, &ctx, &name, &uri, &body).await)
                    },
                )
                .put(
                    move |State(s): State<Sandbox>,
                          Path((project, name)): One,
                          headers: HeaderMap,
                          uri: Uri,
                          body: Bytes| async move {
                        let ctx = Ctx::new(&s, &headers, project);
                        reply(modify(&s, kind, GcpMethod::Update, &ctx, &name, &uri, &body).await)
                    },
                )
                .delete(
                    move |State(s): State<Sandbox>,
                          Path((project, name)): One,
                          headers: HeaderMap,
                          uri: Uri| async move {
                        let ctx = Ctx::new(&s, &headers, project);
                        reply(delete(&s, kind, &ctx, &name, &uri).await)
                    },
                ),
            );
    }
    frontends::routes(router)
        .route(
            "/compute/v1/projects/{project}/global/backendServices/{name}/getHealth",
            post(
                |State(s): State<Sandbox>,
                 Path((project, name)): One,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let ctx = Ctx::new(&s, &headers, project);
                    reply(get_health(&s, &ctx, &name, &body).await)
                },
            ),
        )
        .route(
            "/compute/v1/projects/{project}/global/operations/{operation}",
            get(
                |State(s): State<Sandbox>, Path((project, name)): One, headers: HeaderMap| async move {
                    let ctx = Ctx::new(&s, &headers, project);
                    reply(get_operation(&s, &ctx, &name).await)
                },
            ),
        )
        .route(
            "/compute/v1/projects/{project}/global/operations/{operation}/wait",
            post(
                |State(s): State<Sandbox>, Path((project, name)): One, headers: HeaderMap| async move {
                    let ctx = Ctx::new(&s, &headers, project);
                    reply(wait_operation(&s, &ctx, &name).await)
                },
            ),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .with_state(sandbox)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_from_urls_and_paths() {
        for reference in [
            "https://www.googleapis.com/compute/v1/projects/p/global/backendServices/app",
            "http://127.0.0.1:9/compute/v1/projects/p/global/backendServices/app",
            "projects/p/global/backendServices/app",
            "global/backendServices/app",
        ] {
            assert_eq!(
                named_ref(reference, "p", "f", "backendServices").expect(reference),
                "app"
            );
        }
        assert!(
            named_ref(
                "projects/q/global/backendServices/app",
                "p",
                "f",
                "backendServices"
            )
            .is_err()
        );
        assert!(named_ref("global/healthChecks/app", "p", "f", "backendServices").is_err());
        assert_eq!(
            group_ref(
                "https://www.googleapis.com/compute/v1/projects/p/regions/europe-west1/networkEndpointGroups/eu",
                "p",
                "g"
            )
            .expect("group"),
            (
                "regions/europe-west1/networkEndpointGroups/eu".to_owned(),
                "europe-west1".to_owned()
            )
        );
        assert_eq!(
            group_ref("zones/us-east1-b/instanceGroups/ig", "p", "g")
                .expect("zonal")
                .1,
            "us-east1"
        );
        assert!(group_ref("regions/nowhere-1/networkEndpointGroups/x", "p", "g").is_err());
        assert_eq!(
            api_link("p", "regions/r/networkEndpointGroups/x"),
            "https://www.googleapis.com/compute/v1/projects/p/regions/r/networkEndpointGroups/x"
        );
        assert_eq!(
            api_link("p", "projects/q/zones/z/instanceGroups/x"),
            "https://www.googleapis.com/compute/v1/projects/q/zones/z/instanceGroups/x"
        );
    }

    #[test]
    fn links_keep_the_listeners_port() {
        let local: SocketAddr = "127.0.0.1:4566".parse().expect("addr");
        let host = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, HeaderValue::from_str(value).expect("header"));
            link_host(&headers, local)
        };
        assert_eq!(host("127.0.0.1:4566"), "127.0.0.1:4566");
        assert_eq!(host("localhost"), "localhost:4566");
        assert_eq!(host("[::1]"), "[::1]:4566");
        assert_eq!(host("[::1]:9"), "[::1]:9");
        assert_eq!(host("bad host"), "127.0.0.1:4566");
        assert_eq!(link_host(&HeaderMap::new(), local), "127.0.0.1:4566");
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut target = json!({"a": 1, "b": {"c": 2, "d": 3}, "list": [1, 2]});
        merge_patch(
            &mut target,
            &json!({"b": {"c": null, "e": 4}, "list": [9], "f": "x"}),
        );
        assert_eq!(
            target,
            json!({"a": 1, "b": {"d": 3, "e": 4}, "list": [9], "f": "x"})
        );
    }

    #[test]
    fn query_parameters_are_decoded() {
        let uri: Uri = "/x?maxResults=2&pageToken=c1.YWJj%2Dd&filter=&requestId=a+b"
            .parse()
            .expect("uri");
        let query = Query::of(&uri);
        assert_eq!(query.get("maxResults"), Some("2"));
        assert_eq!(query.get("pageToken"), Some("c1.YWJj-d"));
        assert_eq!(query.get("filter"), None);
        assert_eq!(query.get("requestId"), Some("a b"));
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
    }

    #[test]
    fn health_checks_take_their_type_block_and_gcp_defaults() {
        let (description, spec) = health_check_from(
            "p",
            &json!({"name": "hc", "description": "[m]", "type": "HTTPS",
                    "httpsHealthCheck": {"port": 8443, "requestPath": "/health", "host": "h"},
                    "tcpHealthCheck": {"port": 1}}),
        )
        .expect("valid");
        assert_eq!(description, "[m]");
        assert_eq!(spec.port, 8443);
        assert_eq!(spec.request_path.as_deref(), Some("/health"));
        assert_eq!(spec.host.as_deref(), Some("h"));
        assert_eq!((spec.check_interval_sec, spec.timeout_sec), (5, 5));
        let (_, tcp) = health_check_from("p", &json!({"type": "TCP"})).expect("tcp");
        assert_eq!((tcp.port, tcp.request_path), (80, None));
        assert!(health_check_from("p", &json!({"type": "ICMP"})).is_err());
        assert!(health_check_from("p", &json!({"type": "TCP", "timeoutSec": 10})).is_err());
    }

    #[test]
    fn a_drained_backend_keeps_capacity_scaler_zero() {
        let (_, _, backends) = backend_service_from(
            "p",
            &json!({"backends": [{"group": "regions/us-east1/networkEndpointGroups/a", "balancingMode": "RATE", "maxRatePerEndpoint": 10, "capacityScaler": 0.0}]}),
        )
        .expect("valid");
        assert_eq!(backends[0].capacity_scaler, 0.0);
        let shown = backend_json("p", &backends[0]);
        assert_eq!(shown["capacityScaler"], json!(0.0));
        assert!(shown.to_string().contains("\"capacityScaler\":0.0"));
        assert!(
            backend_service_from(
                "p",
                &json!({"backends": [{"group": "regions/us-east1/networkEndpointGroups/a", "capacityScaler": 0.05}]})
            )
            .is_err()
        );
    }

    #[test]
    fn errors_use_googles_format() {
        let error = GoogleError::from(SimError::Api {
            operation: "backendServices.patch".into(),
            code: "conditionNotMet",
            message: "Supplied fingerprint does not match current fingerprint.".into(),
        });
        assert_eq!(
            error.body(),
            json!({"error": {"code": 412, "message": "Supplied fingerprint does not match current fingerprint.",
                "errors": [{"message": "Supplied fingerprint does not match current fingerprint.", "domain": "global", "reason": "conditionNotMet"}],
                "status": "FAILED_PRECONDITION"}})
        );
        let throttled = GoogleError::from(SimError::Throttling {
            operation: "x".into(),
        });
        assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            throttled.body()["error"]["errors"][0]["reason"],
            "rateLimitExceeded"
        );
    }

    #[test]
    fn operations_go_pending_running_done() {
        let mut operation = Operation {
            id: 1,
            name: "operation-1-0".into(),
            project: "p".into(),
            operation_type: "patch",
            target: "global/urlMaps/m".into(),
            target_id: None,
            client_operation_id: None,
            status: Status::Pending,
            insert_ms: now_ms(),
            start_ms: None,
            end_ms: None,
            error: Some(OperationFault {
                operation: "urlMaps.patch".into(),
                code: "RESOURCE_NOT_READY".into(),
                message: "not ready".into(),
                times: 1,
            }),
        };
        assert_eq!(operation.json("h")["status"], "PENDING");
        assert!(operation.json("h").get("error").is_none());
        operation.poll(0);
        assert_eq!(operation.json("h")["status"], "RUNNING");
        operation.poll(0);
        let done = operation.json("h");
        assert_eq!(done["status"], "DONE");
        assert_eq!(done["error"]["errors"][0]["code"], "RESOURCE_NOT_READY");
        assert_eq!(done["httpErrorStatusCode"], 503);
        assert_eq!(
            done["selfLink"],
            "http://h/compute/v1/projects/p/global/operations/operation-1-0"
        );
    }
}
