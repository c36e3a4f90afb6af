//! meridian's AWS provider: Global Accelerator through the official
//! `aws-sdk-globalaccelerator` crate, Transit Gateway through `aws-sdk-ec2`
//! (one client per region).
//!
//! Observation lists (never describes one object at a time): accelerators,
//! their tags (Global Accelerator's list call carries none, and ownership is
//! in the tags), listeners per owned accelerator and endpoint groups per
//! listener, endpoints and their health included ([`ga`], [`tgw`]).
//!
//! Writes are per API object, as [`meridian_provider::units`] states them:
//! an accelerator is created with its tags (listener names included), an
//! endpoint group with its endpoints, endpoints are added and removed ten to
//! a call, and a group's dial and weights change in one `UpdateEndpointGroup`.
//! Every update and delete first describes the object and compares it with
//! what the plan saw: a difference is a conflict, and nothing is written.
//!
//! The SDK's own retries are off: every error is classified once, in
//! [`classify`], and retried by meridian's policy; a client-side token
//! bucket per API family ([`meridian_provider::ratelimit`]) keeps a run from
//! throttling itself. In particular the SDK treats `LimitExceededException`
//! as throttling; meridian must not loop on a quota a human has to raise.
//! Credentials come from the standard AWS chain and never appear in logs or
//! errors.

mod client;
pub mod ga;
mod tgw;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_globalaccelerator as ga_sdk;
use meridian_provider::ratelimit::{Rate, RateLimiter};
use meridian_provider::{
    Address, ApplyRequest, ApplyResponse, CallCounter, DiscoverRequest, DiscoverResponse, Family,
    MANAGED_BY_KEY, MANAGED_BY_VALUE, OVERRIDE_KEY, OWNER_KEY, ObservationGap, ObserveRequest,
    ObserveResponse, Provider, ProviderError, RetryPolicy, RetryStats, is_loopback_endpoint,
};

pub use client::classify;
use client::tag;

/// Global Accelerator's API lives in us-west-2 whatever the endpoint regions.
pub const GA_API_REGION: &str = "us-west-2";

/// Settings of one AWS provider instance.
#[derive(Debug, Clone)]
pub struct AwsConfig {
    /// The `Provider` document's name.
    pub name: String,
    /// Ownership scope written into tags.
    pub owner: String,
    /// Shared-config profile.
    pub profile: Option<String>,
    /// Endpoint override for Global Accelerator (emulators, VPC endpoints).
    pub globalaccelerator_endpoint: Option<String>,
    /// Endpoint override for EC2 (emulators, VPC endpoints), for every region.
    pub ec2_endpoint: Option<String>,
    /// Client-side rate limit: one bucket of this size for Global
    /// Accelerator and one for EC2.
    pub rate_limit: Option<Rate>,
    /// Retry policy for each call.
    pub retry: RetryPolicy,
    /// Shared retry counters.
    pub stats: RetryStats,
}

/// The AWS provider.
#[derive(Debug)]
pub struct AwsProvider {
    config: AwsConfig,
    ga: ga_sdk::Client,
    shared: aws_config::SdkConfig,
    ec2: Mutex<BTreeMap<String, aws_sdk_ec2::Client>>,
    /// Cloud ids by address text, filled by observation and creation.
    ids: Mutex<BTreeMap<String, String>>,
    /// Listener name tag keys by listener ARN, as observed, so a rename or
    /// a removal untags the key the cloud holds.
    calls: Mutex<BTreeMap<String, CallCounter>>,
    /// The Global Accelerator API's token bucket.
    ga_limit: RateLimiter,
    /// The EC2 API's token bucket (shared by every region: stricter than
    /// EC2's per-region buckets, never looser).
    ec2_limit: RateLimiter,
    /// Distinguishes this run's idempotency tokens from earlier runs', so a
    /// re-creation after an out-of-band delete is never answered with the
    /// deleted object's ARN.
    run_nonce: u64,
}

impl AwsProvider {
    /// Builds the SDK clients from the standard credential chain.
    pub async fn new(config: AwsConfig) -> Self {
        let rate = config.rate_limit;
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(GA_API_REGION));
        if let Some(profile) = &config.profile {
            loader = loader.profile_name(profile);
        }
        let endpoints = [&config.globalaccelerator_endpoint, &config.ec2_endpoint];
        if endpoints
            .iter()
            .all(|e| e.as_deref().is_some_and(is_loopback_endpoint))
        {
            // Only this machine's emulators are called (the sandbox, moto):
            // requests are signed with placeholder keys, never real ones.
            loader = loader.credentials_provider(ga_sdk::config::Credentials::new(
                "sandbox",
                "sandbox",
                None,
                None,
                "meridian-sandbox",
            ));
        }
        let shared = loader.load().await;
        let mut builder = ga_sdk::config::Builder::from(&shared)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .build(),
            )
            .region(aws_config::Region::new(GA_API_REGION));
        if let Some(url) = &config.globalaccelerator_endpoint {
            builder = builder.endpoint_url(url);
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self {
            config,
            ga: ga_sdk::Client::from_conf(builder.build()),
            shared,
            ec2: Mutex::new(BTreeMap::new()),
            ids: Mutex::new(BTreeMap::new()),
            ga_limit: RateLimiter::of(rate),
            ec2_limit: RateLimiter::of(rate),
            calls: Mutex::new(BTreeMap::new()),
            run_nonce: nanos ^ u64::from(std::process::id()),
        }
    }

    fn owns(&self, tags: &BTreeMap<String, String>) -> bool {
        tags.get(MANAGED_BY_KEY).map(String::as_str) == Some(MANAGED_BY_VALUE)
            && tags.get(OWNER_KEY) == Some(&self.config.owner)
    }

    fn remember(&self, key: impl Into<String>, id: impl Into<String>) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.insert(key.into(), id.into());
        }
    }

    fn remember_first(&self, key: impl Into<String>, id: impl Into<String>) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.entry(key.into()).or_insert_with(|| id.into());
        }
    }

    fn id_of_key(&self, key: &str) -> Result<String, ProviderError> {
        self.ids
            .lock()
            .ok()
            .and_then(|ids| ids.get(key).cloned())
            .ok_or_else(|| {
                ProviderError::stalled(
                    "apply",
                    "DependencyNotFound",
                    format!("{key} is not known (yet); re-run plan"),
                )
            })
    }

    fn forget(&self, key: &str) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.remove(key);
        }
    }

    fn id_of(&self, address: &Address, operation: &str) -> Result<String, ProviderError> {
        self.ids
            .lock()
            .ok()
            .and_then(|ids| ids.get(&address.to_string()).cloned())
            .ok_or_else(|| {
                ProviderError::stalled(
                    operation,
                    "DependencyNotFound",
                    format!("{address} does not exist (yet); re-run plan"),
                )
            })
    }
}

#[async_trait]
impl Provider for AwsProvider {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn families(&self) -> Vec<Family> {
        vec![Family::GlobalAccelerator, Family::TransitGateway]
    }

    async fn observe(&self, request: ObserveRequest) -> ObserveResponse {
        let mut response = ObserveResponse::default();
        {
            let mut overrides = Vec::new();
            let claims = request
                .claims
                .iter()
                .filter(|c| matches!(c.address, Address::Accelerator { .. }))
                .map(|c| (c.external_id.clone(), c))
                .collect();
            let scope = ga::observe::Scope::Managed(claims);
            let mut unclaimed = Vec::new();
            match self
                .observe_accelerators(&mut overrides, &scope, &mut unclaimed)
                .await
            {
                Ok(found) => {
                    response.resources.extend(found);
                    response.overrides.extend(overrides);
                    response.unclaimed.extend(unclaimed);
                }
                Err(error) => response.gaps.push(ObservationGap {
                    family: Family::GlobalAccelerator,
                    error,
                }),
            }
        }
        if !request.regions.is_empty() {
            let claims = request
                .claims
                .iter()
                .filter(|c| matches!(c.address, Address::TransitGateway { .. }))
                .map(|c| (c.external_id.clone(), c))
                .collect();
            let mut unclaimed = Vec::new();
            match self
                .observe_gateways(
                    &request.regions,
                    &tgw::TgwScope::Managed(claims),
                    &mut unclaimed,
                )
                .await
            {
                Ok(found) => {
                    response.resources.extend(found);
                    response.unclaimed.extend(unclaimed);
                }
                Err(error) => response.gaps.push(ObservationGap {
                    family: Family::TransitGateway,
                    error,
                }),
            }
        }
        response
    }

    async fn apply(&self, request: ApplyRequest) -> ApplyResponse {
        let unit = &request.unit;
        match unit.object.family() {
            Family::GlobalAccelerator => self.apply_global_accelerator(unit).await,
            Family::TransitGateway => {
                let mut results = Vec::new();
                for change in &unit.changes {
                    let what = format!("{} {}", change.action.symbol(), change.address);
                    results.push(self.apply_transit_gateway(change, &what).await.err());
                }
                ApplyResponse { results }
            }
            other => ApplyResponse::all(
                unit,
                Err(ProviderError::stalled(
                    "apply",
                    "UnsupportedChange",
                    format!("the aws provider does not manage {other}"),
                )),
            ),
        }
    }

    fn calls(&self) -> Vec<CallCounter> {
        self.calls
            .lock()
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
    }

    async fn discover(&self, request: DiscoverRequest) -> Result<DiscoverResponse, ProviderError> {
        let mut response = DiscoverResponse::default();
        if request
            .family
            .is_none_or(|f| f == Family::GlobalAccelerator)
        {
            let scope = ga::observe::Scope::Unowned(&request);
            response.objects.extend(
                self.observe_accelerators(&mut Vec::new(), &scope, &mut Vec::new())
                    .await?,
            );
        }
        if request.family.is_none_or(|f| f == Family::TransitGateway) {
            let scope = tgw::TgwScope::Unowned(&request);
            response.objects.extend(
                self.observe_gateways(&request.regions, &scope, &mut Vec::new())
                    .await?,
            );
        }
        Ok(response)
    }

    async fn release(&self, address: &Address) -> Result<Vec<String>, ProviderError> {
        match address {
            Address::Accelerator { .. } => self.release_accelerator(address).await,
            Address::TransitGateway { .. } | Address::Peering { .. } => {
                self.release_tgw_object(address).await
            }
            other => Err(ProviderError::stalled(
                "Release",
                "UnsupportedKind",
                format!(
                    "{other} carries no ownership marker of its own in provider `{}`: release its GlobalAccelerator",
                    self.config.name
                ),
            )),
        }
    }

    /// `TagResource` / `UntagResource` of [`OVERRIDE_KEY`] on the accelerator:
    /// Global Accelerator tags live only on accelerators, so the marker
    /// covers its listeners, endpoint groups and endpoints.
    async fn set_override(
        &self,
        address: &Address,
        until: Option<String>,
    ) -> Result<(), ProviderError> {
        if !matches!(address, Address::Accelerator { .. }) {
            return Err(ProviderError::stalled(
                "SetOverride",
                "OverrideNotSupported",
                format!(
                    "{address} cannot carry a break-glass override in provider `{}`: Global Accelerator tags live only on accelerators, so the override goes on the GlobalAccelerator",
                    self.config.name
                ),
            ));
        }
        let arn = self.arn_of(address, "TagResource").await?;
        let what = format!("override on {address}");
        match until {
            Some(until) => {
                let tags = vec![tag(OVERRIDE_KEY, &until)?];
                self.run("TagResource", true, &what, || {
                    self.ga
                        .tag_resource()
                        .resource_arn(&arn)
                        .set_tags(Some(tags.clone()))
                        .send()
                })
                .await?;
            }
            None => {
                self.run("UntagResource", true, &what, || {
                    self.ga
                        .untag_resource()
                        .resource_arn(&arn)
                        .tag_keys(OVERRIDE_KEY)
                        .send()
                })
                .await?;
            }
        }
        Ok(())
    }
}
