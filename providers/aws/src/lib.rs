//! meridian's AWS provider: Global Accelerator through the official
//! `aws-sdk-globalaccelerator` crate, Transit Gateway through `aws-sdk-ec2`
//! (one client per region).
//!
//! Observation lists (never describes one object at a time): accelerators,
//! their tags (Global Accelerator's list call carries none, and ownership is
//! in the tags), listeners per owned accelerator and endpoint groups per
//! listener, endpoints and their health included. Changes use the narrowest
//! call: `UpdateEndpointGroup` for a dial, `AddEndpoints`/`RemoveEndpoints`
//! for endpoints. Deletion follows the API's order: endpoint groups,
//! listeners, disable, wait for `DEPLOYED` (by listing), delete.
//!
//! The SDK's own retries are off: every error is classified once, in
//! [`classify`], and retried by meridian's policy. In particular the SDK
//! treats `LimitExceededException` as throttling; meridian must not loop on a
//! quota a human has to raise. Credentials come from the standard AWS chain
//! and never appear in logs or errors.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_globalaccelerator as ga;
use aws_sdk_globalaccelerator::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_globalaccelerator::types::{
    ClientAffinity, EndpointConfiguration, EndpointIdentifier, HealthCheckProtocol, IpAddressType,
    PortOverride as GaPortOverride, PortRange as GaPortRange, Protocol, Tag,
};
use meridian_provider::{
    AcceleratorSpec, Action, Address, ApplyRequest, ApplyResponse, CallCounter, Change,
    EndpointGroupSpec, EndpointSpec, Family, GaHealthCheck, LISTENER_KEY_PREFIX, ListenerSpec,
    LiveOverride, MANAGED_BY_KEY, MANAGED_BY_VALUE, NAME_KEY, OVERRIDE_KEY, OWNER_KEY,
    ObservationGap, ObserveRequest, ObserveResponse, Observed, PortOverride, PortRange, Provider,
    ProviderError, Resource, RetryPolicy, RetryStats, with_retries,
};

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
    /// Retry policy for each call.
    pub retry: RetryPolicy,
    /// Shared retry counters.
    pub stats: RetryStats,
}

/// The AWS provider.
#[derive(Debug)]
pub struct AwsProvider {
    config: AwsConfig,
    ga: ga::Client,
    shared: aws_config::SdkConfig,
    ec2: Mutex<BTreeMap<String, aws_sdk_ec2::Client>>,
    /// Cloud ids by address text, filled by observation and creation.
    ids: Mutex<BTreeMap<String, String>>,
    calls: Mutex<BTreeMap<String, CallCounter>>,
    /// Distinguishes this run's idempotency tokens from earlier runs', so a
    /// re-creation after an out-of-band delete is never answered with the
    /// deleted object's ARN.
    run_nonce: u64,
}

/// Decides what an AWS error means: the one place where error codes become
/// classes. Messages name the operation and the AWS error code.
pub fn classify<E>(
    operation: &str,
    error: &SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error,
{
    match error {
        SdkError::ServiceError(service) => {
            let err = service.err();
            let code = err.code().unwrap_or("UnknownError");
            let message = err.message().unwrap_or("no message").to_owned();
            let status = service.raw().status().as_u16();
            match code {
                "ThrottlingException"
                | "Throttling"
                | "TooManyRequestsException"
                | "RequestLimitExceeded"
                | "InternalServiceErrorException"
                | "ServiceUnavailable" => ProviderError::transient(operation, code, message),
                "LimitExceededException" => ProviderError::stalled(
                    operation,
                    code,
                    format!(
                        "{message} (a service quota: raise it in Service Quotas, retrying will not help)"
                    ),
                ),
                "AcceleratorNotDisabledException"
                | "TransactionInProgressException"
                | "IncorrectState" => {
                    ProviderError::waiting(operation, code, Duration::from_secs(2), message)
                }
                _ if code.ends_with("LimitExceeded") => ProviderError::stalled(
                    operation,
                    code,
                    format!(
                        "{message} (a service quota: raise it in Service Quotas, retrying will not help)"
                    ),
                ),
                _ if status >= 500 => ProviderError::transient(operation, code, message),
                _ => ProviderError::stalled(operation, code, message),
            }
        }
        SdkError::TimeoutError(_) => {
            ProviderError::transient(operation, "Timeout", "the call timed out")
        }
        SdkError::DispatchFailure(failure) => {
            // The whole cause chain: "dispatch failure" alone tells a human nothing.
            let context = failure
                .as_connector_error()
                .map(|e| aws_smithy_types::error::display::DisplayErrorContext(e).to_string())
                .unwrap_or_else(|| "no details".to_owned());
            let network = failure.is_io() || failure.is_timeout();
            if !network && context.to_ascii_lowercase().contains("credential") {
                ProviderError::stalled(
                    operation,
                    "NoCredentials",
                    format!(
                        "no usable AWS credentials ({context}); provide them through the standard chain: AWS_PROFILE or the Provider's `profile`, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, SSO, web identity or an instance role"
                    ),
                )
            } else if failure.is_user() {
                ProviderError::stalled(
                    operation,
                    "DispatchFailure",
                    format!("the request could not be sent: {context}"),
                )
            } else {
                ProviderError::transient(
                    operation,
                    "DispatchFailure",
                    format!("the request could not be sent: {context}"),
                )
            }
        }
        SdkError::ResponseError(_) => {
            ProviderError::transient(operation, "ResponseError", "the response could not be read")
        }
        SdkError::ConstructionFailure(_) => ProviderError::stalled(
            operation,
            "ConstructionFailure",
            "the request could not be built (missing credentials or region?)",
        ),
        _ => ProviderError::transient(operation, "UnknownError", error.to_string()),
    }
}

fn is_not_found(error: &ProviderError) -> bool {
    error.code.ends_with("NotFoundException") || error.code.ends_with(".NotFound")
}

fn user_tags(tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    tags.iter()
        .filter(|(k, _)| !k.starts_with("meridian.dev/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn suffix(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn port(n: Option<i32>) -> u16 {
    n.and_then(|n| u16::try_from(n).ok()).unwrap_or(0)
}

fn tag(key: &str, value: &str) -> Result<Tag, ProviderError> {
    Tag::builder()
        .key(key)
        .value(value)
        .build()
        .map_err(|e| ProviderError::stalled("TagResource", "InvalidTag", e.to_string()))
}

impl AwsProvider {
    /// Builds the SDK clients from the standard credential chain.
    pub async fn new(config: AwsConfig) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(GA_API_REGION));
        if let Some(profile) = &config.profile {
            loader = loader.profile_name(profile);
        }
        let shared = loader.load().await;
        let mut builder = ga::config::Builder::from(&shared)
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
            ga: ga::Client::from_conf(builder.build()),
            shared,
            ec2: Mutex::new(BTreeMap::new()),
            ids: Mutex::new(BTreeMap::new()),
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

    /// Runs one SDK call with meridian's retries, counting every attempt.
    async fn run<T, E, F, Fut>(
        &self,
        operation: &str,
        write: bool,
        what: &str,
        mut call: F,
    ) -> Result<T, ProviderError>
    where
        E: ProvideErrorMetadata + std::error::Error,
        F: FnMut() -> Fut,
        Fut: std::future::Future<
                Output = Result<T, SdkError<E, aws_smithy_runtime_api::http::Response>>,
            >,
    {
        self.run_with(&self.config.retry, operation, write, what, &mut call)
            .await
    }

    /// Like [`Self::run`] with an explicit retry policy.
    async fn run_with<T, E, F, Fut>(
        &self,
        policy: &RetryPolicy,
        operation: &str,
        write: bool,
        what: &str,
        call: &mut F,
    ) -> Result<T, ProviderError>
    where
        E: ProvideErrorMetadata + std::error::Error,
        F: FnMut() -> Fut,
        Fut: std::future::Future<
                Output = Result<T, SdkError<E, aws_smithy_runtime_api::http::Response>>,
            >,
    {
        with_retries(policy, &self.config.stats, what, || {
            let attempt = call();
            async move {
                let result = attempt.await.map_err(|e| {
                    let mut error = classify(operation, &e);
                    error.message = format!("{what}: {}", error.message);
                    error
                });
                self.count(operation, write, result.is_ok());
                result
            }
        })
        .await
    }

    /// Runs a create that has no idempotency token (EC2's Transit Gateway
    /// calls): one attempt at a time, and before every retry `find` looks
    /// for what an attempt whose response was lost may have created, so a
    /// retry never makes a second object.
    async fn create_once<T, E, F, Fut, G, GFut>(
        &self,
        operation: &str,
        what: &str,
        mut create: F,
        mut find: G,
    ) -> Result<T, ProviderError>
    where
        E: ProvideErrorMetadata + std::error::Error,
        F: FnMut() -> Fut,
        Fut: std::future::Future<
                Output = Result<T, SdkError<E, aws_smithy_runtime_api::http::Response>>,
            >,
        G: FnMut() -> GFut,
        GFut: std::future::Future<Output = Result<Option<T>, ProviderError>>,
    {
        let once = RetryPolicy {
            max_attempts: 1,
            max_wait: Duration::ZERO,
            ..self.config.retry.clone()
        };
        let mut attempt = 0u32;
        loop {
            if attempt > 0
                && let Some(found) = find().await?
            {
                return Ok(found);
            }
            match self
                .run_with(&once, operation, true, what, &mut create)
                .await
            {
                Ok(created) => return Ok(created),
                Err(error)
                    if error.is_retryable() && attempt + 1 < self.config.retry.max_attempts =>
                {
                    attempt += 1;
                    let delay = match error.class {
                        meridian_provider::ErrorClass::Waiting { retry_after } => retry_after,
                        _ => self.config.retry.backoff(attempt),
                    };
                    tokio::time::sleep(delay).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn token(&self, change: &Change) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(self.config.owner.as_bytes());
        hasher.update(change.address.to_string().as_bytes());
        hasher.update(serde_json::to_vec(&change.after).unwrap_or_default());
        hasher.update(self.run_nonce.to_le_bytes());
        format!("{:x}", hasher.finalize())[..32].to_owned()
    }

    async fn observe_global_accelerator(
        &self,
        overrides: &mut Vec<LiveOverride>,
    ) -> Result<Vec<Observed>, ProviderError> {
        let mut found = Vec::new();
        let mut accelerators = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .run("ListAccelerators", false, "list accelerators", || {
                    self.ga
                        .list_accelerators()
                        .max_results(100)
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            accelerators.extend(page.accelerators().iter().cloned());
            match page.next_token() {
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
        for accelerator in accelerators {
            let Some(arn) = accelerator.accelerator_arn().map(str::to_owned) else {
                continue;
            };
            let listed = self
                .run(
                    "ListTagsForResource",
                    false,
                    &format!("list tags of {arn}"),
                    || self.ga.list_tags_for_resource().resource_arn(&arn).send(),
                )
                .await;
            let tags: BTreeMap<String, String> = match listed {
                Ok(output) => output
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned()))
                    .collect(),
                // Deleted by someone between the list and this call: not ours to see.
                Err(error) if is_not_found(&error) => continue,
                Err(error) => return Err(error),
            };
            if !self.owns(&tags) {
                continue;
            }
            let Some(name) = tags.get(NAME_KEY).cloned() else {
                continue;
            };
            let address = Address::Accelerator {
                accelerator: name.clone(),
            };
            self.remember_first(address.to_string(), arn.clone());
            if let Some(until) = tags.get(OVERRIDE_KEY) {
                overrides.push(LiveOverride {
                    address: address.clone(),
                    until: until.clone(),
                });
            }
            found.push(Observed {
                address,
                resource: Resource::Accelerator(AcceleratorSpec {
                    name: accelerator.name().unwrap_or_default().to_owned(),
                    enabled: accelerator.enabled().unwrap_or(false),
                    ip_address_type: accelerator
                        .ip_address_type()
                        .map(|t| t.as_str().to_owned())
                        .unwrap_or_else(|| "IPV4".to_owned()),
                    tags: user_tags(&tags),
                }),
                cloud_id: Some(arn.clone()),
                etag: None,
                status: accelerator.status().map(|s| s.as_str().to_owned()),
                health: None,
            });
            let mut listeners = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .run(
                        "ListListeners",
                        false,
                        &format!("list listeners of {name}"),
                        || {
                            self.ga
                                .list_listeners()
                                .accelerator_arn(&arn)
                                .max_results(100)
                                .set_next_token(token.clone())
                                .send()
                        },
                    )
                    .await?;
                listeners.extend(page.listeners().iter().cloned());
                match page.next_token() {
                    Some(next) => token = Some(next.to_owned()),
                    None => break,
                }
            }
            for listener in listeners {
                let Some(listener_arn) = listener.listener_arn().map(str::to_owned) else {
                    continue;
                };
                let listener_name = tags
                    .get(&format!("{LISTENER_KEY_PREFIX}{}", suffix(&listener_arn)))
                    .cloned()
                    .unwrap_or_else(|| format!("~{}", suffix(&listener_arn)));
                let listener_address = Address::Listener {
                    accelerator: name.clone(),
                    listener: listener_name.clone(),
                };
                self.remember_first(listener_address.to_string(), listener_arn.clone());
                let mut ranges: Vec<PortRange> = listener
                    .port_ranges()
                    .iter()
                    .map(|r| PortRange {
                        from: port(r.from_port()),
                        to: port(r.to_port()),
                    })
                    .collect();
                ranges.sort();
                found.push(Observed {
                    address: listener_address,
                    resource: Resource::Listener(ListenerSpec {
                        protocol: listener
                            .protocol()
                            .map(|p| p.as_str().to_owned())
                            .unwrap_or_default(),
                        port_ranges: ranges,
                        client_affinity: listener
                            .client_affinity()
                            .map(|c| c.as_str().to_owned())
                            .unwrap_or_else(|| "NONE".to_owned()),
                    }),
                    cloud_id: Some(listener_arn.clone()),
                    etag: None,
                    status: None,
                    health: None,
                });
                let mut token: Option<String> = None;
                loop {
                    let page = self
                        .run(
                            "ListEndpointGroups",
                            false,
                            &format!("list endpoint groups of {name}/{listener_name}"),
                            || {
                                self.ga
                                    .list_endpoint_groups()
                                    .listener_arn(&listener_arn)
                                    .max_results(100)
                                    .set_next_token(token.clone())
                                    .send()
                            },
                        )
                        .await?;
                    for group in page.endpoint_groups() {
                        let Some(group_arn) = group.endpoint_group_arn().map(str::to_owned) else {
                            continue;
                        };
                        let region = group.endpoint_group_region().unwrap_or_default().to_owned();
                        let address = Address::EndpointGroup {
                            accelerator: name.clone(),
                            listener: listener_name.clone(),
                            region: region.clone(),
                        };
                        self.remember_first(address.to_string(), group_arn.clone());
                        let protocol = group
                            .health_check_protocol()
                            .map(|p| p.as_str().to_owned())
                            .unwrap_or_else(|| "TCP".to_owned());
                        let mut overrides: Vec<PortOverride> = group
                            .port_overrides()
                            .iter()
                            .map(|o| PortOverride {
                                listener_port: port(o.listener_port()),
                                endpoint_port: port(o.endpoint_port()),
                            })
                            .collect();
                        overrides.sort();
                        found.push(Observed {
                            address,
                            resource: Resource::EndpointGroup(EndpointGroupSpec {
                                region: region.clone(),
                                traffic_dial: group
                                    .traffic_dial_percentage()
                                    .map_or(100, |d| d.round().clamp(0.0, 100.0) as u8),
                                health_check: GaHealthCheck {
                                    path: if protocol == "TCP" {
                                        None
                                    } else {
                                        Some(group.health_check_path().unwrap_or("/").to_owned())
                                    },
                                    protocol,
                                    port: port(group.health_check_port()),
                                    interval_seconds: group
                                        .health_check_interval_seconds()
                                        .and_then(|n| u32::try_from(n).ok())
                                        .unwrap_or(30),
                                    threshold_count: group
                                        .threshold_count()
                                        .and_then(|n| u32::try_from(n).ok())
                                        .unwrap_or(3),
                                },
                                port_overrides: overrides,
                            }),
                            cloud_id: Some(group_arn.clone()),
                            etag: None,
                            status: None,
                            health: None,
                        });
                        for endpoint in group.endpoint_descriptions() {
                            let Some(id) = endpoint.endpoint_id().map(str::to_owned) else {
                                continue;
                            };
                            found.push(Observed {
                                address: Address::Endpoint {
                                    accelerator: name.clone(),
                                    listener: listener_name.clone(),
                                    region: region.clone(),
                                    endpoint: id.clone(),
                                },
                                resource: Resource::Endpoint(EndpointSpec {
                                    id: id.clone(),
                                    weight: endpoint
                                        .weight()
                                        .and_then(|w| u8::try_from(w).ok())
                                        .unwrap_or(128),
                                    client_ip_preservation: endpoint
                                        .client_ip_preservation_enabled()
                                        .unwrap_or(false),
                                }),
                                cloud_id: Some(id),
                                etag: None,
                                status: None,
                                health: endpoint
                                    .health_state()
                                    .map(|h| h.as_str().to_ascii_lowercase()),
                            });
                        }
                    }
                    match page.next_token() {
                        Some(next) => token = Some(next.to_owned()),
                        None => break,
                    }
                }
            }
        }
        Ok(found)
    }

    /// Waits until the accelerator is `DEPLOYED`, by listing accelerators
    /// (Global Accelerator's guidance), not by describing it over and over.
    async fn wait_deployed(&self, arn: &str, what: &str) -> Result<(), ProviderError> {
        with_retries(
            &self.config.retry,
            &self.config.stats,
            what,
            || async move {
                let mut token: Option<String> = None;
                loop {
                    let page = self
                        .run("ListAccelerators", false, what, || {
                            self.ga
                                .list_accelerators()
                                .max_results(100)
                                .set_next_token(token.clone())
                                .send()
                        })
                        .await?;
                    if let Some(accelerator) = page
                        .accelerators()
                        .iter()
                        .find(|a| a.accelerator_arn() == Some(arn))
                    {
                        let status = accelerator
                            .status()
                            .map(|s| s.as_str().to_owned())
                            .unwrap_or_default();
                        return if status == "DEPLOYED" {
                            Ok(())
                        } else {
                            Err(ProviderError::waiting(
                                "ListAccelerators",
                                "InProgress",
                                Duration::from_secs(2),
                                format!("{arn} is {status}"),
                            ))
                        };
                    }
                    match page.next_token() {
                        Some(next) => token = Some(next.to_owned()),
                        None => return Ok(()),
                    }
                }
            },
        )
        .await
    }

    fn health_check_fields(
        spec: &EndpointGroupSpec,
    ) -> (
        HealthCheckProtocol,
        i32,
        Option<String>,
        i32,
        i32,
        Vec<GaPortOverride>,
    ) {
        (
            HealthCheckProtocol::from(spec.health_check.protocol.as_str()),
            i32::from(spec.health_check.port),
            spec.health_check.path.clone(),
            i32::try_from(spec.health_check.interval_seconds).unwrap_or(30),
            i32::try_from(spec.health_check.threshold_count).unwrap_or(3),
            spec.port_overrides
                .iter()
                .map(|o| {
                    GaPortOverride::builder()
                        .listener_port(i32::from(o.listener_port))
                        .endpoint_port(i32::from(o.endpoint_port))
                        .build()
                })
                .collect(),
        )
    }

    async fn apply_change(&self, change: &Change) -> Result<(), ProviderError> {
        let what = format!("{} {}", change.action.symbol(), change.address);
        let what = what.as_str();
        let key = change.address.to_string();
        let live_id = || {
            change.cloud_id.clone().ok_or_else(|| {
                ProviderError::stalled(
                    "apply",
                    "MissingCloudId",
                    format!("{} has no live id; re-run plan", change.address),
                )
            })
        };
        let ignore_not_found = |result: Result<(), ProviderError>| match result {
            Err(error) if is_not_found(&error) => Ok(()),
            other => other,
        };
        match (&change.address, change.action, change.after.as_ref()) {
            (
                Address::Accelerator { accelerator },
                Action::Create,
                Some(Resource::Accelerator(spec)),
            ) => {
                let mut tags = vec![
                    tag(MANAGED_BY_KEY, MANAGED_BY_VALUE)?,
                    tag(OWNER_KEY, &self.config.owner)?,
                    tag(NAME_KEY, accelerator)?,
                ];
                for (k, v) in &spec.tags {
                    tags.push(tag(k, v)?);
                }
                let token = self.token(change);
                let output = self
                    .run("CreateAccelerator", true, what, || {
                        self.ga
                            .create_accelerator()
                            .name(&spec.name)
                            .ip_address_type(IpAddressType::from(spec.ip_address_type.as_str()))
                            .enabled(spec.enabled)
                            .idempotency_token(&token)
                            .set_tags(Some(tags.clone()))
                            .send()
                    })
                    .await?;
                let arn = output
                    .accelerator()
                    .and_then(|a| a.accelerator_arn())
                    .ok_or_else(|| {
                        ProviderError::stalled(
                            "CreateAccelerator",
                            "MalformedResponse",
                            "no AcceleratorArn in the response",
                        )
                    })?;
                self.remember(key, arn);
            }
            (Address::Accelerator { .. }, Action::Update, Some(Resource::Accelerator(spec))) => {
                let arn = live_id()?;
                if let Some(Resource::Accelerator(before)) = &change.before {
                    if (before.enabled, &before.name, &before.ip_address_type)
                        != (spec.enabled, &spec.name, &spec.ip_address_type)
                    {
                        self.run("UpdateAccelerator", true, what, || {
                            self.ga
                                .update_accelerator()
                                .accelerator_arn(&arn)
                                .name(&spec.name)
                                .ip_address_type(IpAddressType::from(spec.ip_address_type.as_str()))
                                .enabled(spec.enabled)
                                .send()
                        })
                        .await?;
                    }
                    let removed: Vec<String> = before
                        .tags
                        .keys()
                        .filter(|k| !spec.tags.contains_key(*k))
                        .cloned()
                        .collect();
                    if !removed.is_empty() {
                        self.run("UntagResource", true, what, || {
                            self.ga
                                .untag_resource()
                                .resource_arn(&arn)
                                .set_tag_keys(Some(removed.clone()))
                                .send()
                        })
                        .await?;
                    }
                    if before.tags != spec.tags && !spec.tags.is_empty() {
                        let tags: Vec<Tag> = spec
                            .tags
                            .iter()
                            .map(|(k, v)| tag(k, v))
                            .collect::<Result<_, _>>()?;
                        self.run("TagResource", true, what, || {
                            self.ga
                                .tag_resource()
                                .resource_arn(&arn)
                                .set_tags(Some(tags.clone()))
                                .send()
                        })
                        .await?;
                    }
                }
            }
            (Address::Accelerator { .. }, Action::Delete, _) => {
                let arn = live_id()?;
                // Always disable, even if the plan saw it disabled: someone may
                // have enabled it since, and DeleteAccelerator would then only
                // answer AcceleratorNotDisabledException until the wait runs out.
                ignore_not_found(
                    self.run("UpdateAccelerator", true, what, || {
                        self.ga
                            .update_accelerator()
                            .accelerator_arn(&arn)
                            .enabled(false)
                            .send()
                    })
                    .await
                    .map(|_| ()),
                )?;
                self.wait_deployed(&arn, what).await?;
                ignore_not_found(
                    self.run("DeleteAccelerator", true, what, || {
                        self.ga.delete_accelerator().accelerator_arn(&arn).send()
                    })
                    .await
                    .map(|_| ()),
                )?;
                self.forget(&key);
            }
            (
                Address::Listener {
                    accelerator,
                    listener,
                },
                Action::Create,
                Some(Resource::Listener(spec)),
            ) => {
                let accelerator_arn = self.id_of(
                    &Address::Accelerator {
                        accelerator: accelerator.clone(),
                    },
                    "CreateListener",
                )?;
                let ranges: Vec<GaPortRange> = spec
                    .port_ranges
                    .iter()
                    .map(|r| {
                        GaPortRange::builder()
                            .from_port(i32::from(r.from))
                            .to_port(i32::from(r.to))
                            .build()
                    })
                    .collect();
                let token = self.token(change);
                let output = self
                    .run("CreateListener", true, what, || {
                        self.ga
                            .create_listener()
                            .accelerator_arn(&accelerator_arn)
                            .set_port_ranges(Some(ranges.clone()))
                            .protocol(Protocol::from(spec.protocol.as_str()))
                            .client_affinity(ClientAffinity::from(spec.client_affinity.as_str()))
                            .idempotency_token(&token)
                            .send()
                    })
                    .await?;
                let arn = output
                    .listener()
                    .and_then(|l| l.listener_arn())
                    .ok_or_else(|| {
                        ProviderError::stalled(
                            "CreateListener",
                            "MalformedResponse",
                            "no ListenerArn in the response",
                        )
                    })?
                    .to_owned();
                let name_tag = vec![tag(
                    &format!("{LISTENER_KEY_PREFIX}{}", suffix(&arn)),
                    listener,
                )?];
                self.run("TagResource", true, what, || {
                    self.ga
                        .tag_resource()
                        .resource_arn(&accelerator_arn)
                        .set_tags(Some(name_tag.clone()))
                        .send()
                })
                .await?;
                self.remember(key, arn);
            }
            (
                Address::Listener {
                    accelerator,
                    listener,
                },
                Action::Update,
                Some(Resource::Listener(spec)),
            ) => {
                let arn = live_id()?;
                if change.before.as_ref() != change.after.as_ref() {
                    let ranges: Vec<GaPortRange> = spec
                        .port_ranges
                        .iter()
                        .map(|r| {
                            GaPortRange::builder()
                                .from_port(i32::from(r.from))
                                .to_port(i32::from(r.to))
                                .build()
                        })
                        .collect();
                    self.run("UpdateListener", true, what, || {
                        self.ga
                            .update_listener()
                            .listener_arn(&arn)
                            .set_port_ranges(Some(ranges.clone()))
                            .protocol(Protocol::from(spec.protocol.as_str()))
                            .client_affinity(ClientAffinity::from(spec.client_affinity.as_str()))
                            .send()
                    })
                    .await?;
                }
                if change.fields.iter().any(|f| f.path == "name") {
                    let accelerator_arn = self.id_of(
                        &Address::Accelerator {
                            accelerator: accelerator.clone(),
                        },
                        "TagResource",
                    )?;
                    let name_tag = vec![tag(
                        &format!("{LISTENER_KEY_PREFIX}{}", suffix(&arn)),
                        listener,
                    )?];
                    self.run("TagResource", true, what, || {
                        self.ga
                            .tag_resource()
                            .resource_arn(&accelerator_arn)
                            .set_tags(Some(name_tag.clone()))
                            .send()
                    })
                    .await?;
                    self.remember(key, arn);
                }
            }
            (Address::Listener { accelerator, .. }, Action::Delete, _) => {
                let arn = live_id()?;
                ignore_not_found(
                    self.run("DeleteListener", true, what, || {
                        self.ga.delete_listener().listener_arn(&arn).send()
                    })
                    .await
                    .map(|_| ()),
                )?;
                if let Ok(accelerator_arn) = self.id_of(
                    &Address::Accelerator {
                        accelerator: accelerator.clone(),
                    },
                    "UntagResource",
                ) {
                    let keys = vec![format!("{LISTENER_KEY_PREFIX}{}", suffix(&arn))];
                    ignore_not_found(
                        self.run("UntagResource", true, what, || {
                            self.ga
                                .untag_resource()
                                .resource_arn(&accelerator_arn)
                                .set_tag_keys(Some(keys.clone()))
                                .send()
                        })
                        .await
                        .map(|_| ()),
                    )?;
                }
                self.forget(&key);
            }
            (
                Address::EndpointGroup {
                    accelerator,
                    listener,
                    ..
                },
                Action::Create,
                Some(Resource::EndpointGroup(spec)),
            ) => {
                let listener_arn = self.id_of(
                    &Address::Listener {
                        accelerator: accelerator.clone(),
                        listener: listener.clone(),
                    },
                    "CreateEndpointGroup",
                )?;
                let (protocol, hc_port, path, interval, threshold, overrides) =
                    Self::health_check_fields(spec);
                let token = self.token(change);
                let output = self
                    .run("CreateEndpointGroup", true, what, || {
                        self.ga
                            .create_endpoint_group()
                            .listener_arn(&listener_arn)
                            .endpoint_group_region(&spec.region)
                            .traffic_dial_percentage(f32::from(spec.traffic_dial))
                            .health_check_protocol(protocol.clone())
                            .health_check_port(hc_port)
                            .set_health_check_path(path.clone())
                            .health_check_interval_seconds(interval)
                            .threshold_count(threshold)
                            .set_port_overrides(Some(overrides.clone()))
                            .idempotency_token(&token)
                            .send()
                    })
                    .await?;
                let arn = output
                    .endpoint_group()
                    .and_then(|g| g.endpoint_group_arn())
                    .ok_or_else(|| {
                        ProviderError::stalled(
                            "CreateEndpointGroup",
                            "MalformedResponse",
                            "no EndpointGroupArn in the response",
                        )
                    })?;
                self.remember(key, arn);
            }
            (
                Address::EndpointGroup { .. },
                Action::Update,
                Some(Resource::EndpointGroup(spec)),
            ) => {
                let arn = live_id()?;
                let (protocol, hc_port, path, interval, threshold, overrides) =
                    Self::health_check_fields(spec);
                self.run("UpdateEndpointGroup", true, what, || {
                    self.ga
                        .update_endpoint_group()
                        .endpoint_group_arn(&arn)
                        .traffic_dial_percentage(f32::from(spec.traffic_dial))
                        .health_check_protocol(protocol.clone())
                        .health_check_port(hc_port)
                        .set_health_check_path(path.clone())
                        .health_check_interval_seconds(interval)
                        .threshold_count(threshold)
                        .set_port_overrides(Some(overrides.clone()))
                        .send()
                })
                .await?;
            }
            (Address::EndpointGroup { .. }, Action::Delete, _) => {
                let arn = live_id()?;
                ignore_not_found(
                    self.run("DeleteEndpointGroup", true, what, || {
                        self.ga
                            .delete_endpoint_group()
                            .endpoint_group_arn(&arn)
                            .send()
                    })
                    .await
                    .map(|_| ()),
                )?;
                self.forget(&key);
            }
            (
                Address::Endpoint { .. },
                Action::Create | Action::Update,
                Some(Resource::Endpoint(spec)),
            ) => {
                let group = change.address.parent().ok_or_else(|| {
                    ProviderError::stalled("AddEndpoints", "BadAddress", "endpoint without group")
                })?;
                let group_arn = self.id_of(&group, "AddEndpoints")?;
                let endpoint = EndpointConfiguration::builder()
                    .endpoint_id(&spec.id)
                    .weight(i32::from(spec.weight))
                    .client_ip_preservation_enabled(spec.client_ip_preservation)
                    .build();
                self.run("AddEndpoints", true, what, || {
                    self.ga
                        .add_endpoints()
                        .endpoint_group_arn(&group_arn)
                        .endpoint_configurations(endpoint.clone())
                        .send()
                })
                .await?;
            }
            (Address::Endpoint { endpoint, .. }, Action::Delete, _) => {
                let group = change.address.parent().ok_or_else(|| {
                    ProviderError::stalled(
                        "RemoveEndpoints",
                        "BadAddress",
                        "endpoint without group",
                    )
                })?;
                let group_arn = self.id_of(&group, "RemoveEndpoints")?;
                let identifier = EndpointIdentifier::builder()
                    .endpoint_id(endpoint)
                    .build()
                    .map_err(|e| {
                        ProviderError::stalled("RemoveEndpoints", "InvalidEndpoint", e.to_string())
                    })?;
                ignore_not_found(
                    self.run("RemoveEndpoints", true, what, || {
                        self.ga
                            .remove_endpoints()
                            .endpoint_group_arn(&group_arn)
                            .endpoint_identifiers(identifier.clone())
                            .send()
                    })
                    .await
                    .map(|_| ()),
                )?;
            }
            (
                Address::TransitGateway { .. } | Address::Peering { .. } | Address::Route { .. },
                _,
                _,
            ) => {
                self.apply_transit_gateway(change, what).await?;
            }
            (address, action, _) => {
                return Err(ProviderError::stalled(
                    "apply",
                    "UnsupportedChange",
                    format!("the aws provider cannot {action:?} {address}"),
                ));
            }
        }
        Ok(())
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
        let wants_ga =
            request.families.is_empty() || request.families.contains(&Family::GlobalAccelerator);
        if wants_ga {
            let mut overrides = Vec::new();
            match self.observe_global_accelerator(&mut overrides).await {
                Ok(found) => {
                    response.resources.extend(found);
                    response.overrides.extend(overrides);
                }
                Err(error) => response.gaps.push(ObservationGap {
                    family: Family::GlobalAccelerator,
                    error,
                }),
            }
        }
        let wants_tgw =
            request.families.is_empty() || request.families.contains(&Family::TransitGateway);
        if wants_tgw && !request.regions.is_empty() {
            match self.observe_transit_gateway(&request.regions).await {
                Ok(found) => response.resources.extend(found),
                Err(error) => response.gaps.push(ObservationGap {
                    family: Family::TransitGateway,
                    error,
                }),
            }
        }
        response
    }

    async fn apply(&self, request: ApplyRequest) -> Result<ApplyResponse, ProviderError> {
        self.apply_change(&request.change).await?;
        Ok(ApplyResponse { observed: None })
    }

    fn calls(&self) -> Vec<CallCounter> {
        self.calls
            .lock()
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
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
        let key = address.to_string();
        let arn = match self.id_of_key(&key) {
            Ok(arn) => arn,
            Err(_) => {
                self.observe_global_accelerator(&mut Vec::new()).await?;
                self.id_of_key(&key).map_err(|_| {
                    ProviderError::stalled(
                        "TagResource",
                        "AcceleratorNotFoundException",
                        format!(
                            "{address} does not exist as an accelerator of provider `{}` (owner `{}`)",
                            self.config.name, self.config.owner
                        ),
                    )
                })?
            }
        };
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

mod tgw {
    //! Transit Gateway through EC2: gateways, peering attachments (created in
    //! the requester's region, accepted in the accepter's, waited to
    //! `available`) and static routes, with pagination everywhere.

    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Duration;

    use aws_sdk_ec2 as ec2;
    use aws_sdk_ec2::types::{
        ResourceType, Tag as Ec2Tag, TagSpecification, TransitGatewayRequestOptions,
    };
    use meridian_provider::{
        Action, Address, Change, MANAGED_BY_KEY, MANAGED_BY_VALUE, MESH_KEY, OWNER_KEY, Observed,
        PeeringSpec, ProviderError, Resource, RouteSpec, TransitGatewaySpec, with_retries,
    };

    use super::AwsProvider;

    /// The region whose EC2 endpoint answers `DescribeRegions`.
    const GA_REGION_FOR_EC2: &str = "us-east-1";

    fn tags_of(tags: &[Ec2Tag]) -> BTreeMap<String, String> {
        tags.iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                ))
            })
            .collect()
    }

    fn spec(resource_type: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
        TagSpecification::builder()
            .resource_type(resource_type)
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| Ec2Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .build()
    }

    const GONE: [&str; 5] = ["deleted", "deleting", "failed", "failing", "rejected"];

    impl AwsProvider {
        fn ec2(&self, region: &str) -> ec2::Client {
            let mut clients = self.ec2.lock().unwrap_or_else(|e| e.into_inner());
            clients
                .entry(region.to_owned())
                .or_insert_with(|| {
                    let mut builder = ec2::config::Builder::from(&self.shared)
                        .retry_config(aws_config::retry::RetryConfig::disabled())
                        .timeout_config(
                            aws_config::timeout::TimeoutConfig::builder()
                                .connect_timeout(Duration::from_secs(5))
                                .operation_attempt_timeout(Duration::from_secs(30))
                                .build(),
                        )
                        .region(aws_config::Region::new(region.to_owned()));
                    if let Some(url) = &self.config.ec2_endpoint {
                        builder = builder.endpoint_url(url);
                    }
                    ec2::Client::from_conf(builder.build())
                })
                .clone()
        }

        fn ownership(&self, mesh: &str, name: String) -> BTreeMap<String, String> {
            BTreeMap::from([
                (MANAGED_BY_KEY.to_owned(), MANAGED_BY_VALUE.to_owned()),
                (OWNER_KEY.to_owned(), self.config.owner.clone()),
                (MESH_KEY.to_owned(), mesh.to_owned()),
                ("Name".to_owned(), name),
            ])
        }

        /// Observes gateways, peerings and static routes in `regions`.
        pub(super) async fn observe_transit_gateway(
            &self,
            hinted: &[String],
        ) -> Result<Vec<Observed>, ProviderError> {
            // Every enabled region, not only the mesh's current ones: a region
            // dropped from a mesh must be observed for its gateway to be deleted.
            let mut regions: BTreeSet<String> = hinted.iter().cloned().collect();
            let enabled = self
                .run("DescribeRegions", false, "describe regions", || {
                    self.ec2(GA_REGION_FOR_EC2).describe_regions().send()
                })
                .await?;
            regions.extend(
                enabled
                    .regions()
                    .iter()
                    .filter(|r| r.opt_in_status() != Some("not-opted-in"))
                    .filter_map(|r| r.region_name().map(str::to_owned)),
            );
            let regions: Vec<String> = regions.into_iter().collect();
            let regions = regions.as_slice();
            let mut found = Vec::new();
            let mut gateways = Vec::new();
            for region in regions {
                let client = self.ec2(region);
                let mut token: Option<String> = None;
                loop {
                    let page = self
                        .run(
                            "DescribeTransitGateways",
                            false,
                            &format!("describe transit gateways in {region}"),
                            || {
                                client
                                    .describe_transit_gateways()
                                    .max_results(1000)
                                    .set_next_token(token.clone())
                                    .send()
                            },
                        )
                        .await?;
                    for tgw in page.transit_gateways() {
                        let tags = tags_of(tgw.tags());
                        let state = tgw
                            .state()
                            .map(|s| s.as_str().to_owned())
                            .unwrap_or_default();
                        if !self.owns(&tags) || GONE.contains(&state.as_str()) {
                            continue;
                        }
                        let (Some(id), Some(mesh)) = (tgw.transit_gateway_id(), tags.get(MESH_KEY))
                        else {
                            continue;
                        };
                        let address = Address::TransitGateway {
                            mesh: mesh.clone(),
                            region: region.clone(),
                        };
                        self.remember_first(address.to_string(), id);
                        let options = tgw.options();
                        if let Some(rtb) =
                            options.and_then(|o| o.association_default_route_table_id())
                        {
                            self.remember_first(format!("{address}#route-table"), rtb);
                        }
                        if let Some(owner) = tgw.owner_id() {
                            self.remember_first(format!("{address}#owner"), owner);
                        }
                        found.push(Observed {
                            address,
                            resource: Resource::TransitGateway(TransitGatewaySpec {
                                region: region.clone(),
                                amazon_side_asn: options
                                    .and_then(|o| o.amazon_side_asn())
                                    .and_then(|a| u32::try_from(a).ok())
                                    .unwrap_or(0),
                                description: tgw.description().unwrap_or_default().to_owned(),
                            }),
                            cloud_id: Some(id.to_owned()),
                            etag: None,
                            status: Some(state),
                            health: None,
                        });
                        gateways.push((
                            mesh.clone(),
                            region.clone(),
                            options
                                .and_then(|o| o.association_default_route_table_id())
                                .map(str::to_owned),
                        ));
                    }
                    match page.next_token() {
                        Some(next) => token = Some(next.to_owned()),
                        None => break,
                    }
                }
            }
            let mut peerings: BTreeMap<String, (String, String, String)> = BTreeMap::new();
            let mut seen = BTreeSet::new();
            for region in regions {
                let client = self.ec2(region);
                let mut token: Option<String> = None;
                loop {
                    let page = self
                        .run(
                            "DescribeTransitGatewayPeeringAttachments",
                            false,
                            &format!("describe peerings in {region}"),
                            || {
                                client
                                    .describe_transit_gateway_peering_attachments()
                                    .max_results(1000)
                                    .set_next_token(token.clone())
                                    .send()
                            },
                        )
                        .await?;
                    for attachment in page.transit_gateway_peering_attachments() {
                        let tags = tags_of(attachment.tags());
                        let state = attachment
                            .state()
                            .map(|s| s.as_str().to_owned())
                            .unwrap_or_default();
                        let Some(id) = attachment.transit_gateway_attachment_id() else {
                            continue;
                        };
                        if !self.owns(&tags)
                            || GONE.contains(&state.as_str())
                            || !seen.insert(id.to_owned())
                        {
                            continue;
                        }
                        let (Some(mesh), Some(requester), Some(accepter)) = (
                            tags.get(MESH_KEY),
                            attachment.requester_tgw_info().and_then(|i| i.region()),
                            attachment.accepter_tgw_info().and_then(|i| i.region()),
                        ) else {
                            continue;
                        };
                        let address = Address::Peering {
                            mesh: mesh.clone(),
                            requester: requester.to_owned(),
                            accepter: accepter.to_owned(),
                        };
                        self.remember_first(address.to_string(), id);
                        peerings.insert(
                            id.to_owned(),
                            (mesh.clone(), requester.to_owned(), accepter.to_owned()),
                        );
                        found.push(Observed {
                            address,
                            resource: Resource::Peering(PeeringSpec {
                                requester_region: requester.to_owned(),
                                accepter_region: accepter.to_owned(),
                                accepted: state != "pendingAcceptance"
                                    && state != "initiatingRequest"
                                    && state != "initiating",
                            }),
                            cloud_id: Some(id.to_owned()),
                            etag: None,
                            status: Some(state),
                            health: None,
                        });
                    }
                    match page.next_token() {
                        Some(next) => token = Some(next.to_owned()),
                        None => break,
                    }
                }
            }
            for (mesh, region, route_table) in gateways {
                let Some(route_table) = route_table else {
                    continue;
                };
                let client = self.ec2(&region);
                // No MaxResults: the default (1000) is the API's maximum anyway.
                let filter = aws_sdk_ec2::types::Filter::builder()
                    .name("type")
                    .values("static")
                    .build();
                let routes = self
                    .run(
                        "SearchTransitGatewayRoutes",
                        false,
                        &format!("search routes of {route_table}"),
                        || {
                            client
                                .search_transit_gateway_routes()
                                .transit_gateway_route_table_id(&route_table)
                                .filters(filter.clone())
                                .send()
                        },
                    )
                    .await?;
                for route in routes.routes() {
                    let (Some(cidr), Some(attachment)) = (
                        route.destination_cidr_block(),
                        route
                            .transit_gateway_attachments()
                            .first()
                            .and_then(|a| a.transit_gateway_attachment_id()),
                    ) else {
                        continue;
                    };
                    // A route through an attachment meridian does not know
                    // (deleted, or not a live peering of this mesh) is still
                    // this gateway's route: it is observed pointing nowhere,
                    // so the plan replaces it instead of failing to create it.
                    let peer = match peerings.get(attachment) {
                        Some((_, requester, accepter)) if *requester == region => accepter.clone(),
                        Some((_, requester, _)) => requester.clone(),
                        None => format!("(attachment {attachment})"),
                    };
                    let peer = &peer;
                    found.push(Observed {
                        address: Address::Route {
                            mesh: mesh.clone(),
                            region: region.clone(),
                            destination: cidr.to_owned(),
                        },
                        resource: Resource::Route(RouteSpec {
                            region: region.clone(),
                            destination_cidr: cidr.to_owned(),
                            via_peer_region: peer.clone(),
                        }),
                        cloud_id: Some(format!("{route_table}|{cidr}")),
                        etag: None,
                        status: route.state().map(|s| s.as_str().to_owned()),
                        health: None,
                    });
                }
            }
            Ok(found)
        }

        async fn wait_gateway_available(
            &self,
            region: &str,
            id: &str,
            what: &str,
        ) -> Result<(), ProviderError> {
            let client = self.ec2(region);
            with_retries(&self.config.retry, &self.config.stats, what, || {
                let client = client.clone();
                async move {
                    let page = self
                        .run("DescribeTransitGateways", false, what, || {
                            client
                                .describe_transit_gateways()
                                .transit_gateway_ids(id)
                                .send()
                        })
                        .await?;
                    let state = page
                        .transit_gateways()
                        .first()
                        .and_then(|t| t.state())
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default();
                    if state == "available" {
                        Ok(())
                    } else {
                        Err(ProviderError::waiting(
                            "DescribeTransitGateways",
                            "Pending",
                            Duration::from_secs(5),
                            format!("{id} is {state}"),
                        ))
                    }
                }
            })
            .await
        }

        /// The state of a peering attachment as seen from `region`; `None`
        /// when the region does not (yet) know it.
        async fn peering_state(
            &self,
            region: &str,
            id: &str,
            what: &str,
        ) -> Result<Option<String>, ProviderError> {
            let client = self.ec2(region);
            let listed = self
                .run(
                    "DescribeTransitGatewayPeeringAttachments",
                    false,
                    what,
                    || {
                        client
                            .describe_transit_gateway_peering_attachments()
                            .transit_gateway_attachment_ids(id)
                            .send()
                    },
                )
                .await;
            match listed {
                Ok(out) => Ok(out
                    .transit_gateway_peering_attachments()
                    .first()
                    .and_then(|p| p.state())
                    .map(|s| s.as_str().to_owned())),
                Err(error) if super::is_not_found(&error) => Ok(None),
                Err(error) => Err(error),
            }
        }

        async fn wait_peering_available(
            &self,
            region: &str,
            id: &str,
            what: &str,
        ) -> Result<(), ProviderError> {
            with_retries(
                &self.config.retry,
                &self.config.stats,
                what,
                || async move {
                    match self.peering_state(region, id, what).await?.as_deref() {
                        Some("available") => Ok(()),
                        Some(
                            gone @ ("failed" | "rejected" | "deleted" | "deleting" | "failing"),
                        ) => Err(ProviderError::stalled(
                            "DescribeTransitGatewayPeeringAttachments",
                            "PeeringFailed",
                            format!("{id} is {gone}"),
                        )),
                        other => Err(ProviderError::waiting(
                            "DescribeTransitGatewayPeeringAttachments",
                            "Pending",
                            Duration::from_secs(2),
                            format!("{id} is {}", other.unwrap_or("not visible yet")),
                        )),
                    }
                },
            )
            .await
        }

        fn peering_between(&self, mesh: &str, a: &str, b: &str) -> Result<String, ProviderError> {
            let forward = Address::Peering {
                mesh: mesh.to_owned(),
                requester: a.to_owned(),
                accepter: b.to_owned(),
            };
            let backward = Address::Peering {
                mesh: mesh.to_owned(),
                requester: b.to_owned(),
                accepter: a.to_owned(),
            };
            self.id_of(&forward, "CreateTransitGatewayRoute")
                .or_else(|_| self.id_of(&backward, "CreateTransitGatewayRoute"))
        }

        /// Carries out one Transit Gateway change.
        pub(super) async fn apply_transit_gateway(
            &self,
            change: &Change,
            what: &str,
        ) -> Result<(), ProviderError> {
            let key = change.address.to_string();
            let live_id = || {
                change.cloud_id.clone().ok_or_else(|| {
                    ProviderError::stalled(
                        "apply",
                        "MissingCloudId",
                        format!("{} has no live id; re-run plan", change.address),
                    )
                })
            };
            let not_found_ok = |result: Result<(), ProviderError>| match result {
                Err(error) if super::is_not_found(&error) => Ok(()),
                other => other,
            };
            match (&change.address, change.action, change.after.as_ref()) {
                (
                    Address::TransitGateway { mesh, region },
                    Action::Create,
                    Some(Resource::TransitGateway(spec)),
                ) => {
                    let client = self.ec2(region);
                    let tags = self.ownership(mesh, format!("{mesh}-{region}"));
                    let output = self
                        .create_once(
                            "CreateTransitGateway",
                            what,
                            || {
                                client
                                    .create_transit_gateway()
                                    .description(&spec.description)
                                    .options(
                                        TransitGatewayRequestOptions::builder()
                                            .amazon_side_asn(i64::from(spec.amazon_side_asn))
                                            .build(),
                                    )
                                    .tag_specifications(super::tgw::spec(
                                        ResourceType::TransitGateway,
                                        &tags,
                                    ))
                                    .send()
                            },
                            || async {
                                let listed = self.run("DescribeTransitGateways", false, what, || client.describe_transit_gateways().send()).await?;
                                Ok(listed
                                    .transit_gateways()
                                    .iter()
                                    .find(|t| {
                                        let tags = tags_of(t.tags());
                                        self.owns(&tags) && tags.get(MESH_KEY) == Some(mesh) && !GONE.contains(&t.state().map(|s| s.as_str()).unwrap_or(""))
                                    })
                                    .map(|t| ec2::operation::create_transit_gateway::CreateTransitGatewayOutput::builder().transit_gateway(t.clone()).build()))
                            },
                        )
                        .await?;
                    let tgw = output.transit_gateway().ok_or_else(|| {
                        ProviderError::stalled(
                            "CreateTransitGateway",
                            "MalformedResponse",
                            "no TransitGateway in the response",
                        )
                    })?;
                    let id = tgw.transit_gateway_id().unwrap_or_default().to_owned();
                    if let Some(rtb) = tgw
                        .options()
                        .and_then(|o| o.association_default_route_table_id())
                    {
                        self.remember(format!("{key}#route-table"), rtb);
                    }
                    if let Some(owner) = tgw.owner_id() {
                        self.remember(format!("{key}#owner"), owner);
                    }
                    self.remember(key.clone(), id.clone());
                    self.wait_gateway_available(region, &id, what).await?;
                }
                (
                    Address::TransitGateway { region, .. },
                    Action::Update,
                    Some(Resource::TransitGateway(spec)),
                ) => {
                    if let Some(Resource::TransitGateway(before)) = &change.before
                        && before.amazon_side_asn != spec.amazon_side_asn
                    {
                        return Err(ProviderError::stalled(
                            "ModifyTransitGateway",
                            "InvalidParameterValue",
                            format!(
                                "{}: amazonSideAsn cannot be changed on an existing transit gateway ({} -> {}); remove the region from the mesh, apply, then add it back",
                                change.address, before.amazon_side_asn, spec.amazon_side_asn
                            ),
                        ));
                    }
                    let id = live_id()?;
                    let client = self.ec2(region);
                    self.run("ModifyTransitGateway", true, what, || {
                        client
                            .modify_transit_gateway()
                            .transit_gateway_id(&id)
                            .description(&spec.description)
                            .send()
                    })
                    .await?;
                }
                (Address::TransitGateway { region, .. }, Action::Delete, _) => {
                    let id = live_id()?;
                    let client = self.ec2(region);
                    not_found_ok(
                        self.run("DeleteTransitGateway", true, what, || {
                            client
                                .delete_transit_gateway()
                                .transit_gateway_id(&id)
                                .send()
                        })
                        .await
                        .map(|_| ()),
                    )?;
                    self.forget(&key);
                }
                (
                    Address::Peering {
                        mesh,
                        requester,
                        accepter,
                    },
                    Action::Create,
                    Some(Resource::Peering(_)),
                ) => {
                    let requester_address = Address::TransitGateway {
                        mesh: mesh.clone(),
                        region: requester.clone(),
                    };
                    let tgw =
                        self.id_of(&requester_address, "CreateTransitGatewayPeeringAttachment")?;
                    let peer_address = Address::TransitGateway {
                        mesh: mesh.clone(),
                        region: accepter.clone(),
                    };
                    let peer =
                        self.id_of(&peer_address, "CreateTransitGatewayPeeringAttachment")?;
                    let account = self.id_of_key(&format!("{peer_address}#owner"))?;
                    let tags = self.ownership(mesh, format!("{mesh}-{requester}-{accepter}"));
                    let client = self.ec2(requester);
                    let output = self
                        .create_once(
                            "CreateTransitGatewayPeeringAttachment",
                            what,
                            || {
                                client
                                    .create_transit_gateway_peering_attachment()
                                    .transit_gateway_id(&tgw)
                                    .peer_transit_gateway_id(&peer)
                                    .peer_account_id(&account)
                                    .peer_region(accepter)
                                    .tag_specifications(super::tgw::spec(
                                        ResourceType::TransitGatewayAttachment,
                                        &tags,
                                    ))
                                    .send()
                            },
                            || async {
                                let listed = self.run("DescribeTransitGatewayPeeringAttachments", false, what, || client.describe_transit_gateway_peering_attachments().send()).await?;
                                Ok(listed
                                    .transit_gateway_peering_attachments()
                                    .iter()
                                    .find(|p| {
                                        self.owns(&tags_of(p.tags()))
                                            && p.requester_tgw_info().and_then(|i| i.transit_gateway_id()) == Some(tgw.as_str())
                                            && p.accepter_tgw_info().and_then(|i| i.transit_gateway_id()) == Some(peer.as_str())
                                            && !GONE.contains(&p.state().map(|s| s.as_str()).unwrap_or(""))
                                    })
                                    .map(|p| ec2::operation::create_transit_gateway_peering_attachment::CreateTransitGatewayPeeringAttachmentOutput::builder().transit_gateway_peering_attachment(p.clone()).build()))
                            },
                        )
                        .await?;
                    let id = output
                        .transit_gateway_peering_attachment()
                        .and_then(|p| p.transit_gateway_attachment_id())
                        .ok_or_else(|| {
                            ProviderError::stalled(
                                "CreateTransitGatewayPeeringAttachment",
                                "MalformedResponse",
                                "no attachment id in the response",
                            )
                        })?
                        .to_owned();
                    self.remember(key, id.clone());
                    self.accept_peering(accepter, &id, what).await?;
                    self.wait_peering_available(accepter, &id, what).await?;
                }
                (
                    Address::Peering { accepter, .. },
                    Action::Update,
                    Some(Resource::Peering(spec)),
                ) => {
                    let id = live_id()?;
                    if spec.accepted
                        && matches!(&change.before, Some(Resource::Peering(before)) if !before.accepted)
                    {
                        self.accept_peering(accepter, &id, what).await?;
                    }
                    self.wait_peering_available(accepter, &id, what).await?;
                }
                (Address::Peering { requester, .. }, Action::Delete, _) => {
                    let id = live_id()?;
                    let client = self.ec2(requester);
                    not_found_ok(
                        self.run("DeleteTransitGatewayPeeringAttachment", true, what, || {
                            client
                                .delete_transit_gateway_peering_attachment()
                                .transit_gateway_attachment_id(&id)
                                .send()
                        })
                        .await
                        .map(|_| ()),
                    )?;
                    self.forget(&key);
                }
                (
                    Address::Route {
                        mesh,
                        region,
                        destination,
                    },
                    Action::Create | Action::Update,
                    Some(Resource::Route(spec)),
                ) => {
                    let gateway = Address::TransitGateway {
                        mesh: mesh.clone(),
                        region: region.clone(),
                    };
                    let route_table = self.id_of_key(&format!("{gateway}#route-table"))?;
                    let attachment = self.peering_between(mesh, region, &spec.via_peer_region)?;
                    let client = self.ec2(region);
                    if change.action == Action::Update {
                        self.run("ReplaceTransitGatewayRoute", true, what, || {
                            client
                                .replace_transit_gateway_route()
                                .transit_gateway_route_table_id(&route_table)
                                .destination_cidr_block(destination)
                                .transit_gateway_attachment_id(&attachment)
                                .send()
                        })
                        .await?;
                    } else {
                        self.run("CreateTransitGatewayRoute", true, what, || {
                            client
                                .create_transit_gateway_route()
                                .transit_gateway_route_table_id(&route_table)
                                .destination_cidr_block(destination)
                                .transit_gateway_attachment_id(&attachment)
                                .send()
                        })
                        .await?;
                    }
                }
                (
                    Address::Route {
                        mesh,
                        region,
                        destination,
                    },
                    Action::Delete,
                    _,
                ) => {
                    let gateway = Address::TransitGateway {
                        mesh: mesh.clone(),
                        region: region.clone(),
                    };
                    let route_table = self.id_of_key(&format!("{gateway}#route-table"))?;
                    let client = self.ec2(region);
                    not_found_ok(
                        self.run("DeleteTransitGatewayRoute", true, what, || {
                            client
                                .delete_transit_gateway_route()
                                .transit_gateway_route_table_id(&route_table)
                                .destination_cidr_block(destination)
                                .send()
                        })
                        .await
                        .map(|_| ()),
                    )?;
                }
                (address, action, _) => {
                    return Err(ProviderError::stalled(
                        "apply",
                        "UnsupportedChange",
                        format!("{action:?} of {address} has no matching value"),
                    ));
                }
            }
            Ok(())
        }

        async fn accept_peering(
            &self,
            accepter: &str,
            id: &str,
            what: &str,
        ) -> Result<(), ProviderError> {
            // Look before accepting: right after creation the attachment may
            // still be initiating (or not yet visible in the accepter's
            // region); after a lost response it may already be accepted.
            let client = self.ec2(accepter);
            with_retries(&self.config.retry, &self.config.stats, what, || {
                let client = client.clone();
                async move {
                    match self.peering_state(accepter, id, what).await?.as_deref() {
                        Some("pendingAcceptance") => self
                            .run("AcceptTransitGatewayPeeringAttachment", true, what, || {
                                client
                                    .accept_transit_gateway_peering_attachment()
                                    .transit_gateway_attachment_id(id)
                                    .send()
                            })
                            .await
                            .map(|_| ()),
                        Some("pending" | "available" | "modifying") => Ok(()),
                        Some(
                            gone @ ("failed" | "rejected" | "deleted" | "deleting" | "failing"),
                        ) => Err(ProviderError::stalled(
                            "AcceptTransitGatewayPeeringAttachment",
                            "PeeringFailed",
                            format!("{id} is {gone}"),
                        )),
                        other => Err(ProviderError::waiting(
                            "DescribeTransitGatewayPeeringAttachments",
                            "Initiating",
                            Duration::from_secs(2),
                            format!(
                                "{id} is {} in {accepter}",
                                other.unwrap_or("not visible yet")
                            ),
                        )),
                    }
                }
            })
            .await
        }
    }
}
