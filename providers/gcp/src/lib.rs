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
//! answers 412 and is looked at again instead of being overwritten. Writes are
//! per API object ([`meridian_provider::units`]): a backend service is
//! inserted with its backends, and every backend change of one step goes in
//! one patch of the service's backend list.
//!
//! The client's own retries are off: every error is classified once, in
//! [`classify`] and [`classify_operation`], and retried by meridian's policy;
//! a client-side token bucket ([`meridian_provider::ratelimit`]) paces every
//! call. Modules: [`client`] (calls, errors, operations, compare-and-swap),
//! `codec` (the API's shapes ↔ meridian's values), `observe`, `apply`.
//! Credentials come from Application Default Credentials; an endpoint on
//! loopback (the sandbox) is called anonymously.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use google_cloud_compute_v1::client::{BackendServices, GlobalOperations, HealthChecks, UrlMaps};
use google_cloud_compute_v1::model;
use google_cloud_gax::retry_policy::NeverRetry;
mod adopt;
mod apply;
pub mod client;
mod codec;
mod observe;

use crate::client::Round;
use meridian_provider::ratelimit::{Rate, RateLimiter};
use meridian_provider::{
    Address, ApplyRequest, ApplyResponse, CallCounter, DiscoverRequest, DiscoverResponse, Family,
    ObservationGap, ObserveRequest, ObserveResponse, Provider, ProviderError, RetryPolicy,
    RetryStats, gcp_ownership_marker, overrides,
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
    /// Client-side rate limit for the Compute Engine API.
    pub rate_limit: Option<Rate>,
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
    /// The Compute Engine API's token bucket.
    limiter: RateLimiter,
    /// Distinguishes this run's request ids from earlier runs'.
    run_nonce: u64,
}

pub use client::{classify, classify_operation};
pub use meridian_provider::is_loopback_endpoint;

impl GcpProvider {
    /// Builds the Compute Engine clients. With an endpoint on loopback (the
    /// sandbox) calls are anonymous; otherwise credentials come from
    /// Application Default Credentials.
    pub async fn new(config: GcpConfig) -> Result<Self, ProviderError> {
        let limiter = RateLimiter::of(config.rate_limit);
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
            limiter,
            run_nonce,
        })
    }

    pub(crate) fn project(&self) -> &str {
        &self.config.project
    }

    pub(crate) fn marker(&self) -> String {
        gcp_ownership_marker(&self.config.owner)
    }

    pub(crate) fn owns(&self, description: &Option<String>) -> bool {
        description
            .as_deref()
            .is_some_and(|d| d.contains(&self.marker()))
    }

    /// A description for a new object: meridian's marker.
    pub(crate) fn description(&self) -> String {
        format!("Managed by meridian. {}", self.marker())
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
        let mut overrides = Vec::new();
        let mut unclaimed = Vec::new();
        let claims = request
            .claims
            .iter()
            .filter_map(|claim| {
                let (kind, name) = match &claim.address {
                    Address::HealthCheck { name } => ("HealthCheck", name),
                    Address::BackendService { name } => ("BackendService", name),
                    Address::UrlMap { name } => ("UrlMap", name),
                    _ => return None,
                };
                Some(((kind.to_owned(), name.clone()), claim))
            })
            .collect();
        match self
            .observe_all(
                request.health,
                &mut overrides,
                observe::Scope::Managed { claims },
                &mut unclaimed,
            )
            .await
        {
            Ok(resources) => ObserveResponse {
                resources,
                gaps: Vec::new(),
                overrides,
                unclaimed,
            },
            Err(error) => ObserveResponse {
                gaps: vec![ObservationGap {
                    family: Family::GcpLoadBalancing,
                    error,
                }],
                ..ObserveResponse::default()
            },
        }
    }

    async fn discover(&self, request: DiscoverRequest) -> Result<DiscoverResponse, ProviderError> {
        if request
            .family
            .is_some_and(|f| f != Family::GcpLoadBalancing)
        {
            return Ok(DiscoverResponse::default());
        }
        if let Some((key, _)) = &request.tag {
            return Err(ProviderError::stalled(
                "Discover",
                "InvalidFilter",
                format!(
                    "GCP health checks, backend services and URL maps carry no labels, so --tag {key}=… selects nothing in provider `{}`; use --name or --id",
                    self.config.name
                ),
            ));
        }
        let objects = self
            .observe_all(
                false,
                &mut Vec::new(),
                observe::Scope::Unowned(&request),
                &mut Vec::new(),
            )
            .await?;
        Ok(DiscoverResponse {
            objects,
            notes: Vec::new(),
        })
    }

    async fn release(&self, address: &Address) -> Result<Vec<String>, ProviderError> {
        self.release_object(address).await
    }

    async fn apply(&self, request: ApplyRequest) -> ApplyResponse {
        let unit = &request.unit;
        match &unit.object {
            Address::BackendService { .. } => {
                ApplyResponse::all(unit, self.write_backend_service(unit).await)
            }
            _ => ApplyResponse {
                results: {
                    let mut results = Vec::new();
                    for change in &unit.changes {
                        results.push(self.apply_change(change).await.err());
                    }
                    results
                },
            },
        }
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
            let request_id = self.request_id_of(&[address.to_string(), description.clone()], round);
            self.write_op(
                "backendServices.patch",
                what,
                &request_id,
                self.backend_services
                    .patch()
                    .set_project(project)
                    .set_backend_service(name.as_str())
                    .set_request_id(&request_id)
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
    use crate::codec::{backend_body, backend_spec, group_region, last_segment, relative};

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
