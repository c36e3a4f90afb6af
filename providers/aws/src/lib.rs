//! meridian's AWS provider: Global Accelerator through the official
//! `aws-sdk-globalaccelerator` crate.
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
    MANAGED_BY_KEY, MANAGED_BY_VALUE, NAME_KEY, OWNER_KEY, ObservationGap, ObserveRequest,
    ObserveResponse, Observed, PortOverride, PortRange, Provider, ProviderError, Resource,
    RetryPolicy, RetryStats, with_retries,
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
                "AcceleratorNotDisabledException" | "TransactionInProgressException" => {
                    ProviderError::waiting(operation, code, Duration::from_secs(2), message)
                }
                _ if status >= 500 => ProviderError::transient(operation, code, message),
                _ => ProviderError::stalled(operation, code, message),
            }
        }
        SdkError::TimeoutError(_) => {
            ProviderError::transient(operation, "Timeout", "the call timed out")
        }
        SdkError::DispatchFailure(failure) => ProviderError::transient(
            operation,
            "DispatchFailure",
            format!(
                "the request could not be sent: {:?}",
                failure.as_connector_error().map(|e| e.to_string())
            ),
        ),
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
    error.code.ends_with("NotFoundException")
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
        with_retries(&self.config.retry, &self.config.stats, what, || {
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

    fn token(&self, change: &Change) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(self.config.owner.as_bytes());
        hasher.update(change.address.to_string().as_bytes());
        hasher.update(serde_json::to_vec(&change.after).unwrap_or_default());
        hasher.update(self.run_nonce.to_le_bytes());
        format!("{:x}", hasher.finalize())[..32].to_owned()
    }

    async fn observe_global_accelerator(&self) -> Result<Vec<Observed>, ProviderError> {
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
            let tags: BTreeMap<String, String> = self
                .run(
                    "ListTagsForResource",
                    false,
                    &format!("list tags of {arn}"),
                    || self.ga.list_tags_for_resource().resource_arn(&arn).send(),
                )
                .await?
                .tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect();
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
                if let Some(Resource::Accelerator(before)) = &change.before
                    && before.enabled
                {
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
                }
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
            (address, action, _) => {
                return Err(ProviderError::stalled(
                    "apply",
                    "UnsupportedChange",
                    format!("the aws provider cannot {action:?} {address} in this release"),
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
        vec![Family::GlobalAccelerator]
    }

    async fn observe(&self, request: ObserveRequest) -> ObserveResponse {
        let mut response = ObserveResponse::default();
        let wants_ga =
            request.families.is_empty() || request.families.contains(&Family::GlobalAccelerator);
        if wants_ga {
            match self.observe_global_accelerator().await {
                Ok(found) => response.resources.extend(found),
                Err(error) => response.gaps.push(ObservationGap {
                    family: Family::GlobalAccelerator,
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
}
