//! The simulated cloud as a meridian [`Provider`].
//!
//! Maps meridian's resources onto the simulated APIs exactly as a real
//! provider maps them onto a cloud's: list calls for observation (paged),
//! the narrowest write per change, ownership carried in tags and
//! descriptions, and every cloud error classified in [`classify`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use meridian_provider::{
    AcceleratorSpec, Action, Address, ApplyRequest, ApplyResponse, CallCounter, Change,
    EndpointSpec, Family, LiveOverride, MANAGED_BY_KEY, MANAGED_BY_VALUE, OVERRIDE_KEY, OWNER_KEY,
    ObservationGap, ObserveRequest, ObserveResponse, Observed, PeeringSpec, Provider,
    ProviderError, Resource, RetryPolicy, RetryStats, RouteSpec, TransitGatewaySpec, with_retries,
};

use crate::cloud::{Page, SimCloud, SimError};

pub use meridian_provider::{LISTENER_KEY_PREFIX, MESH_KEY, NAME_KEY};

/// Decides what a simulated cloud error means. The one place where error
/// codes become classes.
pub fn classify(error: SimError) -> ProviderError {
    let code = error.code().to_owned();
    let (operation, message) = match &error {
        SimError::Api {
            operation, message, ..
        } => (operation.clone(), message.clone()),
        SimError::Throttling { operation }
        | SimError::Internal { operation }
        | SimError::Injected { operation } => (operation.clone(), error.to_string()),
        SimError::Store(inner) => ("(simulator)".to_owned(), inner.to_string()),
    };
    let waiting = Duration::from_millis(200);
    match code.as_str() {
        "ThrottlingException" | "InternalServiceErrorException" => {
            ProviderError::transient(&operation, &code, message)
        }
        "AcceleratorNotDisabledException" | "TransactionInProgressException" | "IncorrectState" => {
            ProviderError::waiting(&operation, &code, waiting, message)
        }
        _ => ProviderError::stalled(&operation, &code, message),
    }
}

fn is_not_found(error: &ProviderError) -> bool {
    error.code.ends_with("NotFoundException")
        || error.code.ends_with(".NotFound")
        || error.code == "notFound"
}

/// Settings of one simulated provider instance.
#[derive(Debug, Clone)]
pub struct SimProviderConfig {
    /// The `Provider` document's name.
    pub name: String,
    /// Ownership scope written into tags and descriptions.
    pub owner: String,
    /// Families this instance manages (`aws`: Global Accelerator and Transit
    /// Gateway; `gcp`: load balancing; `sim`: all).
    pub families: Vec<Family>,
    /// GCP project for load-balancing objects.
    pub project: String,
    /// Retry policy for each call.
    pub retry: RetryPolicy,
    /// Shared retry counters.
    pub stats: RetryStats,
}

/// A provider backed by the simulated cloud.
#[derive(Debug)]
pub struct SimProvider {
    config: SimProviderConfig,
    cloud: SimCloud,
    /// Cloud ids of the objects seen or created, by address text. Filled by
    /// observation, which always precedes apply.
    ids: Mutex<BTreeMap<String, String>>,
    calls: Mutex<BTreeMap<String, CallCounter>>,
}

fn gcp_marker(owner: &str) -> String {
    meridian_provider::gcp_ownership_marker(owner)
}

fn user_tags(tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    tags.iter()
        .filter(|(k, _)| !k.starts_with("meridian.dev/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn listener_suffix(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn health_of(cloud_health: &str) -> String {
    cloud_health.to_ascii_lowercase()
}

impl SimProvider {
    /// A provider over `cloud`.
    pub fn new(config: SimProviderConfig, cloud: SimCloud) -> Self {
        Self {
            config,
            cloud,
            ids: Mutex::new(BTreeMap::new()),
            calls: Mutex::new(BTreeMap::new()),
        }
    }

    fn owns(&self, tags: &BTreeMap<String, String>) -> bool {
        tags.get(MANAGED_BY_KEY).map(String::as_str) == Some(MANAGED_BY_VALUE)
            && tags.get(OWNER_KEY) == Some(&self.config.owner)
    }

    fn ownership_tags(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MANAGED_BY_KEY.to_owned(), MANAGED_BY_VALUE.to_owned()),
            (OWNER_KEY.to_owned(), self.config.owner.clone()),
        ])
    }

    fn remember(&self, key: impl Into<String>, id: impl Into<String>) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.insert(key.into(), id.into());
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

    fn route_table_of(&self, mesh: &str, region: &str) -> Result<String, ProviderError> {
        let address = Address::TransitGateway {
            mesh: mesh.to_owned(),
            region: region.to_owned(),
        };
        self.ids
            .lock()
            .ok()
            .and_then(|ids| ids.get(&format!("{address}#route-table")).cloned())
            .ok_or_else(|| {
                ProviderError::stalled(
                    "CreateTransitGatewayRoute",
                    "DependencyNotFound",
                    format!("{address} does not exist (yet); re-run plan"),
                )
            })
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

    /// Runs one cloud call with retries, counting every attempt.
    async fn run<T, F, Fut>(
        &self,
        operation: &str,
        write: bool,
        what: &str,
        mut call: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SimError>>,
    {
        self.run_attempts(operation, write, what, |_| call()).await
    }

    /// Like [`Self::run`], telling the call which attempt it is (0 first).
    /// A write whose response was lost may have landed: a retry must
    /// recognise its own earlier success instead of failing or duplicating.
    async fn run_attempts<T, F, Fut>(
        &self,
        operation: &str,
        write: bool,
        what: &str,
        mut call: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, SimError>>,
    {
        let attempts = std::sync::atomic::AtomicU32::new(0);
        with_retries(&self.config.retry, &self.config.stats, what, || {
            let attempt = call(attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
            async move {
                let result = attempt.await.map_err(classify);
                if let Ok(mut calls) = self.calls.lock() {
                    let counter =
                        calls
                            .entry(operation.to_owned())
                            .or_insert_with(|| CallCounter {
                                operation: operation.to_owned(),
                                write,
                                ok: 0,
                                failed: 0,
                            });
                    if result.is_ok() {
                        counter.ok += 1
                    } else {
                        counter.failed += 1
                    }
                }
                result
            }
        })
        .await
    }

    /// Lists every page of a paged call.
    async fn all_pages<T, F, Fut>(
        &self,
        operation: &str,
        what: &str,
        mut list: F,
    ) -> Result<Vec<T>, ProviderError>
    where
        F: FnMut(Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<Page<T>, SimError>>,
    {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .run(operation, false, what, || list(token.clone()))
                .await?;
            items.extend(page.items);
            match page.next_token {
                Some(next) => token = Some(next),
                None => return Ok(items),
            }
        }
    }

    async fn observe_global_accelerator(
        &self,
        overrides: &mut Vec<LiveOverride>,
    ) -> Result<Vec<Observed>, ProviderError> {
        let cloud = &self.cloud;
        let mut found = Vec::new();
        let accelerators = self
            .all_pages("ListAccelerators", "list accelerators", |t| async move {
                cloud.list_accelerators(None, t.as_deref()).await
            })
            .await?;
        for view in accelerators {
            let accelerator = &view.accelerator;
            if !self.owns(&accelerator.tags) {
                continue;
            }
            let Some(name) = accelerator.tags.get(NAME_KEY).cloned() else {
                continue;
            };
            let address = Address::Accelerator {
                accelerator: name.clone(),
            };
            self.remember(address.to_string(), accelerator.arn.clone());
            if let Some(until) = accelerator.tags.get(OVERRIDE_KEY) {
                overrides.push(LiveOverride {
                    address: address.clone(),
                    until: until.clone(),
                });
            }
            found.push(Observed {
                address,
                resource: Resource::Accelerator(AcceleratorSpec {
                    name: accelerator.name.clone(),
                    enabled: accelerator.enabled,
                    ip_address_type: accelerator.ip_address_type.clone(),
                    tags: user_tags(&accelerator.tags),
                }),
                cloud_id: Some(accelerator.arn.clone()),
                etag: None,
                status: Some(view.status.clone()),
                health: None,
            });
            let arn = accelerator.arn.clone();
            let listeners = self
                .all_pages("ListListeners", &format!("list listeners of {name}"), |t| {
                    let arn = arn.clone();
                    async move { cloud.list_listeners(&arn, None, t.as_deref()).await }
                })
                .await?;
            for listener in listeners {
                let suffix = listener_suffix(&listener.arn);
                let listener_name = accelerator
                    .tags
                    .get(&format!("{LISTENER_KEY_PREFIX}{suffix}"))
                    .cloned()
                    .unwrap_or_else(|| format!("~{suffix}"));
                let listener_address = Address::Listener {
                    accelerator: name.clone(),
                    listener: listener_name.clone(),
                };
                self.remember(listener_address.to_string(), listener.arn.clone());
                found.push(Observed {
                    address: listener_address,
                    resource: Resource::Listener(listener.spec.clone()),
                    cloud_id: Some(listener.arn.clone()),
                    etag: None,
                    status: None,
                    health: None,
                });
                let listener_arn = listener.arn.clone();
                let groups = self
                    .all_pages(
                        "ListEndpointGroups",
                        &format!("list endpoint groups of {name}/{listener_name}"),
                        |t| {
                            let listener_arn = listener_arn.clone();
                            async move {
                                cloud
                                    .list_endpoint_groups(&listener_arn, None, t.as_deref())
                                    .await
                            }
                        },
                    )
                    .await?;
                for view in groups {
                    let group = &view.group;
                    let group_address = Address::EndpointGroup {
                        accelerator: name.clone(),
                        listener: listener_name.clone(),
                        region: group.spec.region.clone(),
                    };
                    self.remember(group_address.to_string(), group.arn.clone());
                    found.push(Observed {
                        address: group_address,
                        resource: Resource::EndpointGroup(group.spec.clone()),
                        cloud_id: Some(group.arn.clone()),
                        etag: None,
                        status: None,
                        health: None,
                    });
                    for (endpoint, health) in group.endpoints.iter().zip(&view.health) {
                        found.push(Observed {
                            address: Address::Endpoint {
                                accelerator: name.clone(),
                                listener: listener_name.clone(),
                                region: group.spec.region.clone(),
                                endpoint: endpoint.spec.id.clone(),
                            },
                            resource: Resource::Endpoint(endpoint.spec.clone()),
                            cloud_id: Some(endpoint.spec.id.clone()),
                            etag: None,
                            status: None,
                            health: Some(health_of(health)),
                        });
                    }
                }
            }
        }
        Ok(found)
    }

    async fn observe_gcp(
        &self,
        overrides: &mut Vec<LiveOverride>,
    ) -> Result<Vec<Observed>, ProviderError> {
        let cloud = &self.cloud;
        let project = self.config.project.as_str();
        let marker = gcp_marker(&self.config.owner);
        let mut found = Vec::new();
        let checks = self
            .all_pages("healthChecks.list", "list health checks", |t| async move {
                cloud.list_health_checks(project, None, t.as_deref()).await
            })
            .await?;
        for check in checks
            .into_iter()
            .filter(|c| c.description.contains(&marker))
        {
            found.push(Observed {
                address: Address::HealthCheck {
                    name: check.name.clone(),
                },
                resource: Resource::HealthCheck(check.spec.clone()),
                cloud_id: Some(format!(
                    "projects/{project}/global/healthChecks/{}",
                    check.name
                )),
                etag: Some(check.fingerprint.clone()),
                status: None,
                health: None,
            });
        }
        let services = self
            .all_pages(
                "backendServices.list",
                "list backend services",
                |t| async move {
                    cloud
                        .list_backend_services(project, None, t.as_deref())
                        .await
                },
            )
            .await?;
        for view in services
            .into_iter()
            .filter(|v| v.service.description.contains(&marker))
        {
            let service = &view.service;
            if let Some(until) =
                meridian_provider::overrides::gcp_override_until(&service.description)
            {
                overrides.push(LiveOverride {
                    address: Address::BackendService {
                        name: service.name.clone(),
                    },
                    until,
                });
            }
            found.push(Observed {
                address: Address::BackendService {
                    name: service.name.clone(),
                },
                resource: Resource::BackendService(service.spec.clone()),
                cloud_id: Some(format!(
                    "projects/{project}/global/backendServices/{}",
                    service.name
                )),
                etag: Some(service.fingerprint.clone()),
                status: None,
                health: None,
            });
            for (backend, health) in service.backends.iter().zip(&view.health) {
                found.push(Observed {
                    address: Address::Backend {
                        service: service.name.clone(),
                        group: backend.group.clone(),
                    },
                    resource: Resource::Backend(backend.clone()),
                    cloud_id: Some(backend.group.clone()),
                    etag: Some(service.fingerprint.clone()),
                    status: None,
                    health: Some(health_of(health)),
                });
            }
        }
        let maps = self
            .all_pages("urlMaps.list", "list URL maps", |t| async move {
                cloud.list_url_maps(project, None, t.as_deref()).await
            })
            .await?;
        for map in maps.into_iter().filter(|m| m.description.contains(&marker)) {
            found.push(Observed {
                address: Address::UrlMap {
                    name: map.name.clone(),
                },
                resource: Resource::UrlMap(map.spec.clone()),
                cloud_id: Some(format!("projects/{project}/global/urlMaps/{}", map.name)),
                etag: Some(map.fingerprint.clone()),
                status: None,
                health: None,
            });
        }
        Ok(found)
    }

    async fn observe_transit_gateway(
        &self,
        hinted: &[String],
    ) -> Result<Vec<Observed>, ProviderError> {
        let cloud = &self.cloud;
        let mut regions: BTreeSet<String> = hinted.iter().cloned().collect();
        regions.extend(cloud.transit_gateway_regions().map_err(classify)?);
        let mut found = Vec::new();
        let mut gateways = BTreeMap::new();
        for region in &regions {
            let listed = self
                .all_pages(
                    "DescribeTransitGateways",
                    &format!("describe transit gateways in {region}"),
                    |t| async move {
                        cloud
                            .describe_transit_gateways(region, None, t.as_deref())
                            .await
                    },
                )
                .await?;
            for tgw in listed.into_iter().filter(|t| self.owns(&t.tags)) {
                let Some(mesh) = tgw.tags.get(MESH_KEY).cloned() else {
                    continue;
                };
                let address = Address::TransitGateway {
                    mesh: mesh.clone(),
                    region: tgw.region.clone(),
                };
                self.remember(address.to_string(), tgw.id.clone());
                self.remember(format!("{address}#route-table"), tgw.route_table_id.clone());
                found.push(Observed {
                    address,
                    resource: Resource::TransitGateway(TransitGatewaySpec {
                        region: tgw.region.clone(),
                        amazon_side_asn: tgw.amazon_side_asn,
                        description: tgw.description.clone(),
                    }),
                    cloud_id: Some(tgw.id.clone()),
                    etag: None,
                    status: Some("available".to_owned()),
                    health: None,
                });
                gateways.insert(tgw.id.clone(), (mesh, tgw));
            }
        }
        let mut peerings = BTreeMap::new();
        for region in &regions {
            let listed = self
                .all_pages(
                    "DescribeTransitGatewayPeeringAttachments",
                    &format!("describe peerings in {region}"),
                    |t| async move { cloud.describe_peerings(region, None, t.as_deref()).await },
                )
                .await?;
            for view in listed.into_iter().filter(|v| self.owns(&v.peering.tags)) {
                peerings.entry(view.peering.id.clone()).or_insert(view);
            }
        }
        let mut peering_peer = BTreeMap::new();
        for view in peerings.values() {
            let peering = &view.peering;
            let Some(mesh) = peering.tags.get(MESH_KEY).cloned() else {
                continue;
            };
            let address = Address::Peering {
                mesh,
                requester: peering.requester_region.clone(),
                accepter: peering.accepter_region.clone(),
            };
            self.remember(address.to_string(), peering.id.clone());
            peering_peer.insert(
                peering.id.clone(),
                (
                    peering.requester_region.clone(),
                    peering.accepter_region.clone(),
                ),
            );
            found.push(Observed {
                address,
                resource: Resource::Peering(PeeringSpec {
                    requester_region: peering.requester_region.clone(),
                    accepter_region: peering.accepter_region.clone(),
                    accepted: view.state != "pendingAcceptance",
                }),
                cloud_id: Some(peering.id.clone()),
                etag: None,
                status: Some(view.state.clone()),
                health: None,
            });
        }
        for (mesh, tgw) in gateways.values() {
            let route_table = tgw.route_table_id.clone();
            let routes = self
                .run(
                    "SearchTransitGatewayRoutes",
                    false,
                    &format!("search routes of {}", tgw.id),
                    || {
                        let route_table = route_table.clone();
                        async move { cloud.search_routes(&route_table).await }
                    },
                )
                .await?;
            for route in routes {
                let Some((requester, accepter)) = peering_peer.get(&route.attachment_id) else {
                    continue;
                };
                let peer = if *requester == tgw.region {
                    accepter
                } else {
                    requester
                };
                found.push(Observed {
                    address: Address::Route {
                        mesh: mesh.clone(),
                        region: tgw.region.clone(),
                        destination: route.cidr.clone(),
                    },
                    resource: Resource::Route(RouteSpec {
                        region: tgw.region.clone(),
                        destination_cidr: route.cidr.clone(),
                        via_peer_region: peer.clone(),
                    }),
                    cloud_id: Some(format!("{}|{}", route.route_table_id, route.cidr)),
                    etag: None,
                    status: Some("active".to_owned()),
                    health: None,
                });
            }
        }
        Ok(found)
    }

    /// Accepts a peering; on a retry, an attachment no longer waiting for
    /// acceptance was accepted by the attempt whose response was lost.
    async fn accept(&self, accepter: &str, id: &str, what: &str) -> Result<(), ProviderError> {
        let cloud = &self.cloud;
        self.run_attempts(
            "AcceptTransitGatewayPeeringAttachment",
            true,
            what,
            |attempt| async move {
                match cloud.accept_peering(accepter, id).await {
                    Err(e) if attempt > 0 && e.code() == "IncorrectState" => Ok(()),
                    other => other,
                }
            },
        )
        .await
    }

    /// A GCP write whose response may have been lost after it landed. On a
    /// retry, `done_code` (`alreadyExists` for inserts, `conditionNotMet` for
    /// fingerprint-guarded patches) means success only when `landed` finds
    /// the live object owned by us and holding exactly what this write sent;
    /// anything else — someone else's object, someone else's change — stays
    /// an error, so nothing is adopted or overwritten blindly.
    async fn gcp_write<X, F, Fut, G, GFut>(
        &self,
        operation: &str,
        what: &str,
        done_code: &str,
        write: F,
        landed: G,
    ) -> Result<(), ProviderError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<X, SimError>>,
        G: Fn() -> GFut,
        GFut: std::future::Future<Output = Result<bool, SimError>>,
    {
        self.run_attempts(operation, true, what, |attempt| {
            let written = write();
            let landed = &landed;
            async move {
                match written.await {
                    Ok(_) => Ok(()),
                    Err(error) if attempt > 0 && error.code() == done_code => {
                        if landed().await? {
                            Ok(())
                        } else {
                            Err(error)
                        }
                    }
                    Err(error) => Err(error),
                }
            }
        })
        .await
    }

    /// Finds the first item of a paged GCP list that `matches`.
    async fn find_paged<T, L, LFut>(
        list: L,
        matches: impl Fn(&T) -> bool,
    ) -> Result<Option<T>, SimError>
    where
        L: Fn(Option<String>) -> LFut,
        LFut: std::future::Future<Output = Result<Page<T>, SimError>>,
    {
        let mut token = None;
        loop {
            let page = list(token).await?;
            if let Some(found) = page.items.into_iter().find(|item| matches(item)) {
                return Ok(Some(found));
            }
            match page.next_token {
                Some(next) => token = Some(next),
                None => return Ok(None),
            }
        }
    }

    async fn landed_health_check(
        &self,
        project: &str,
        name: &str,
        spec: &meridian_provider::HealthCheckSpec,
    ) -> Result<bool, SimError> {
        let marker = gcp_marker(&self.config.owner);
        let cloud = &self.cloud;
        Ok(Self::find_paged(
            |t| async move { cloud.list_health_checks(project, None, t.as_deref()).await },
            |h| h.name == name,
        )
        .await?
        .is_some_and(|h| h.description.contains(&marker) && h.spec == *spec))
    }

    async fn landed_backend_service(
        &self,
        project: &str,
        name: &str,
        spec: &meridian_provider::BackendServiceSpec,
    ) -> Result<bool, SimError> {
        let marker = gcp_marker(&self.config.owner);
        let cloud = &self.cloud;
        Ok(Self::find_paged(
            |t| async move {
                cloud
                    .list_backend_services(project, None, t.as_deref())
                    .await
            },
            |v| v.service.name == name,
        )
        .await?
        .is_some_and(|v| v.service.description.contains(&marker) && v.service.spec == *spec))
    }

    async fn landed_url_map(
        &self,
        project: &str,
        name: &str,
        spec: &meridian_provider::UrlMapSpec,
    ) -> Result<bool, SimError> {
        let marker = gcp_marker(&self.config.owner);
        let cloud = &self.cloud;
        Ok(Self::find_paged(
            |t| async move { cloud.list_url_maps(project, None, t.as_deref()).await },
            |m| m.name == name,
        )
        .await?
        .is_some_and(|m| m.description.contains(&marker) && m.spec == *spec))
    }

    async fn wait_peering_available(&self, region: &str, id: &str) -> Result<(), ProviderError> {
        let cloud = &self.cloud;
        with_retries(
            &self.config.retry,
            &self.config.stats,
            &format!("wait for {id}"),
            || async move {
                let page = self
                    .run(
                        "DescribeTransitGatewayPeeringAttachments",
                        false,
                        &format!("describe {id}"),
                        || async move { cloud.describe_peerings(region, None, None).await },
                    )
                    .await?;
                match page
                    .items
                    .iter()
                    .find(|v| v.peering.id == id)
                    .map(|v| v.state.as_str())
                {
                    Some("available") => Ok(()),
                    Some(state) => Err(ProviderError::waiting(
                        "DescribeTransitGatewayPeeringAttachments",
                        "PeeringNotAvailable",
                        Duration::from_millis(200),
                        format!("{id} is {state}"),
                    )),
                    None => Err(ProviderError::stalled(
                        "DescribeTransitGatewayPeeringAttachments",
                        "InvalidTransitGatewayAttachmentID.NotFound",
                        format!("{id} disappeared"),
                    )),
                }
            },
        )
        .await
    }

    async fn apply_change(&self, change: &Change) -> Result<(), ProviderError> {
        let cloud = &self.cloud;
        let what = format!("{} {}", change.action.symbol(), change.address);
        let what = what.as_str();
        let key = change.address.to_string();
        // Creates carry an idempotency token derived from what is created, so
        // a retried call whose first response was lost returns the object the
        // first call made instead of creating a second one.
        let token = {
            use sha2::{Digest, Sha256};
            let mut hasher = Sha256::new();
            hasher.update(self.config.owner.as_bytes());
            hasher.update(key.as_bytes());
            hasher.update(serde_json::to_vec(&change.after).unwrap_or_default());
            format!("{:x}", hasher.finalize())[..32].to_owned()
        };
        let live_id = || {
            change.cloud_id.clone().ok_or_else(|| {
                ProviderError::stalled(
                    "apply",
                    "MissingCloudId",
                    format!("{} has no live id; re-run plan", change.address),
                )
            })
        };
        match (&change.address, change.action, change.after.as_ref()) {
            (
                Address::Accelerator { accelerator },
                Action::Create,
                Some(Resource::Accelerator(spec)),
            ) => {
                let mut tags = spec.tags.clone();
                tags.extend(self.ownership_tags());
                tags.insert(NAME_KEY.to_owned(), accelerator.clone());
                let arn = self
                    .run("CreateAccelerator", true, what, || {
                        cloud.create_accelerator(
                            &spec.name,
                            &spec.ip_address_type,
                            spec.enabled,
                            tags.clone(),
                            Some(&token),
                        )
                    })
                    .await?;
                self.remember(key, arn);
            }
            (Address::Accelerator { .. }, Action::Update, Some(Resource::Accelerator(spec))) => {
                let arn = live_id()?;
                self.run("UpdateAccelerator", true, what, || {
                    cloud.update_accelerator(&arn, &spec.name, &spec.ip_address_type, spec.enabled)
                })
                .await?;
                if let Some(Resource::Accelerator(before)) = &change.before
                    && before.tags != spec.tags
                {
                    let untag: Vec<String> = before
                        .tags
                        .keys()
                        .filter(|k| !spec.tags.contains_key(*k))
                        .cloned()
                        .collect();
                    if !untag.is_empty() {
                        self.run("UntagResource", true, what, || {
                            cloud.tag_resource(&arn, BTreeMap::new(), untag.clone())
                        })
                        .await?;
                    }
                    if !spec.tags.is_empty() {
                        self.run("TagResource", true, what, || {
                            cloud.tag_resource(&arn, spec.tags.clone(), Vec::new())
                        })
                        .await?;
                    }
                }
            }
            (Address::Accelerator { .. }, Action::Delete, _) => {
                let arn = live_id()?;
                // Always disable: it may have been enabled since the plan.
                if let Some(Resource::Accelerator(before)) = &change.before {
                    self.ignore_not_found(
                        self.run("UpdateAccelerator", true, what, || {
                            cloud.update_accelerator(
                                &arn,
                                &before.name,
                                &before.ip_address_type,
                                false,
                            )
                        })
                        .await,
                    )?;
                }
                self.ignore_not_found(
                    self.run("DeleteAccelerator", true, what, || {
                        cloud.delete_accelerator(&arn)
                    })
                    .await,
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
                let arn = self
                    .run("CreateListener", true, what, || {
                        cloud.create_listener(&accelerator_arn, spec, Some(&token))
                    })
                    .await?;
                let tag = BTreeMap::from([(
                    format!("{LISTENER_KEY_PREFIX}{}", listener_suffix(&arn)),
                    listener.clone(),
                )]);
                self.run("TagResource", true, what, || {
                    cloud.tag_resource(&accelerator_arn, tag.clone(), Vec::new())
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
                    self.run("UpdateListener", true, what, || {
                        cloud.update_listener(&arn, spec)
                    })
                    .await?;
                }
                // A `name` field change means the listener is being adopted: record its name.
                if change.fields.iter().any(|f| f.path == "name") {
                    let accelerator_arn = self.id_of(
                        &Address::Accelerator {
                            accelerator: accelerator.clone(),
                        },
                        "TagResource",
                    )?;
                    let tag = BTreeMap::from([(
                        format!("{LISTENER_KEY_PREFIX}{}", listener_suffix(&arn)),
                        listener.clone(),
                    )]);
                    self.run("TagResource", true, what, || {
                        cloud.tag_resource(&accelerator_arn, tag.clone(), Vec::new())
                    })
                    .await?;
                    self.remember(key, arn);
                }
            }
            (Address::Listener { accelerator, .. }, Action::Delete, _) => {
                let arn = live_id()?;
                self.ignore_not_found(
                    self.run("DeleteListener", true, what, || cloud.delete_listener(&arn))
                        .await,
                )?;
                if let Ok(accelerator_arn) = self.id_of(
                    &Address::Accelerator {
                        accelerator: accelerator.clone(),
                    },
                    "DeleteListener",
                ) {
                    let untag = vec![format!("{LISTENER_KEY_PREFIX}{}", listener_suffix(&arn))];
                    self.ignore_not_found(
                        self.run("UntagResource", true, what, || {
                            cloud.tag_resource(&accelerator_arn, BTreeMap::new(), untag.clone())
                        })
                        .await,
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
                let arn = self
                    .run("CreateEndpointGroup", true, what, || {
                        cloud.create_endpoint_group(&listener_arn, spec, &[], Some(&token))
                    })
                    .await?;
                self.remember(key, arn);
            }
            (
                Address::EndpointGroup { .. },
                Action::Update,
                Some(Resource::EndpointGroup(spec)),
            ) => {
                let arn = live_id()?;
                self.run("UpdateEndpointGroup", true, what, || {
                    cloud.update_endpoint_group(&arn, spec, None)
                })
                .await?;
            }
            (Address::EndpointGroup { .. }, Action::Delete, _) => {
                let arn = live_id()?;
                self.ignore_not_found(
                    self.run("DeleteEndpointGroup", true, what, || {
                        cloud.delete_endpoint_group(&arn)
                    })
                    .await,
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
                let endpoints: Vec<EndpointSpec> = vec![spec.clone()];
                self.run("AddEndpoints", true, what, || {
                    cloud.add_endpoints(&group_arn, &endpoints)
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
                let ids = vec![endpoint.clone()];
                self.ignore_not_found(
                    self.run("RemoveEndpoints", true, what, || {
                        cloud.remove_endpoints(&group_arn, &ids)
                    })
                    .await,
                )?;
            }
            (Address::HealthCheck { name }, Action::Create, Some(Resource::HealthCheck(spec))) => {
                let description = gcp_marker(&self.config.owner);
                let landed = || self.landed_health_check(&spec.project, name, spec);
                self.gcp_write(
                    "healthChecks.insert",
                    what,
                    "alreadyExists",
                    || cloud.insert_health_check(name, &description, spec),
                    landed,
                )
                .await?;
            }
            (Address::HealthCheck { name }, Action::Update, Some(Resource::HealthCheck(spec))) => {
                let landed = || self.landed_health_check(&spec.project, name, spec);
                self.gcp_write(
                    "healthChecks.patch",
                    what,
                    "conditionNotMet",
                    || cloud.patch_health_check(name, change.etag.as_deref(), spec),
                    landed,
                )
                .await?;
            }
            (Address::HealthCheck { name }, Action::Delete, _) => {
                let project = self.config.project.clone();
                self.ignore_not_found(
                    self.run("healthChecks.delete", true, what, || {
                        cloud.delete_health_check(&project, name)
                    })
                    .await,
                )?;
            }
            (
                Address::BackendService { name },
                Action::Create,
                Some(Resource::BackendService(spec)),
            ) => {
                let description = gcp_marker(&self.config.owner);
                let landed = || self.landed_backend_service(&spec.project, name, spec);
                self.gcp_write(
                    "backendServices.insert",
                    what,
                    "alreadyExists",
                    || cloud.insert_backend_service(name, &description, spec, &[]),
                    landed,
                )
                .await?;
            }
            (
                Address::BackendService { name },
                Action::Update,
                Some(Resource::BackendService(spec)),
            ) => {
                let landed = || self.landed_backend_service(&spec.project, name, spec);
                self.gcp_write(
                    "backendServices.patch",
                    what,
                    "conditionNotMet",
                    || {
                        cloud.patch_backend_service(
                            &spec.project,
                            name,
                            change.etag.as_deref(),
                            Some(spec),
                            None,
                        )
                    },
                    landed,
                )
                .await?;
            }
            (Address::BackendService { name }, Action::Delete, _) => {
                let project = self.config.project.clone();
                self.ignore_not_found(
                    self.run("backendServices.delete", true, what, || {
                        cloud.delete_backend_service(&project, name)
                    })
                    .await,
                )?;
            }
            (
                Address::Backend { service, group },
                Action::Create | Action::Update,
                Some(Resource::Backend(spec)),
            ) => {
                let project = self.config.project.clone();
                self.run("backendServices.patch", true, what, || {
                    cloud.patch_backend(&project, service, group, Some(spec))
                })
                .await?;
            }
            (Address::Backend { service, group }, Action::Delete, _) => {
                let project = self.config.project.clone();
                self.ignore_not_found(
                    self.run("backendServices.patch", true, what, || {
                        cloud.patch_backend(&project, service, group, None)
                    })
                    .await,
                )?;
            }
            (Address::UrlMap { name }, Action::Create, Some(Resource::UrlMap(spec))) => {
                let description = gcp_marker(&self.config.owner);
                let landed = || self.landed_url_map(&spec.project, name, spec);
                self.gcp_write(
                    "urlMaps.insert",
                    what,
                    "alreadyExists",
                    || cloud.insert_url_map(name, &description, spec),
                    landed,
                )
                .await?;
            }
            (Address::UrlMap { name }, Action::Update, Some(Resource::UrlMap(spec))) => {
                let landed = || self.landed_url_map(&spec.project, name, spec);
                self.gcp_write(
                    "urlMaps.patch",
                    what,
                    "conditionNotMet",
                    || cloud.patch_url_map(name, change.etag.as_deref(), spec),
                    landed,
                )
                .await?;
            }
            (Address::UrlMap { name }, Action::Delete, _) => {
                let project = self.config.project.clone();
                self.ignore_not_found(
                    self.run("urlMaps.delete", true, what, || {
                        cloud.delete_url_map(&project, name)
                    })
                    .await,
                )?;
            }
            (
                Address::TransitGateway { mesh, region },
                Action::Create,
                Some(Resource::TransitGateway(spec)),
            ) => {
                let mut tags = self.ownership_tags();
                tags.insert(MESH_KEY.to_owned(), mesh.clone());
                tags.insert("Name".to_owned(), format!("{mesh}-{region}"));
                let id = self
                    .run_attempts("CreateTransitGateway", true, what, |attempt| {
                        let tags = tags.clone();
                        async move {
                            // EC2 takes no idempotency token here: on a retry,
                            // look for the gateway a lost response created.
                            if attempt > 0 {
                                let listed =
                                    cloud.describe_transit_gateways(region, None, None).await?;
                                if let Some(found) = listed.items.into_iter().find(|t| {
                                    self.owns(&t.tags) && t.tags.get(MESH_KEY) == Some(mesh)
                                }) {
                                    return Ok(found.id);
                                }
                            }
                            cloud
                                .create_transit_gateway(
                                    region,
                                    spec.amazon_side_asn,
                                    &spec.description,
                                    tags,
                                )
                                .await
                        }
                    })
                    .await?;
                let world = cloud.store().read().map_err(|e| classify(e.into()))?;
                if let Some(tgw) = world.transit_gateways.get(&id) {
                    self.remember(format!("{key}#route-table"), tgw.route_table_id.clone());
                }
                self.remember(key, id);
            }
            (
                Address::TransitGateway { .. },
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
                self.run("ModifyTransitGateway", true, what, || {
                    cloud.modify_transit_gateway(&id, &spec.description)
                })
                .await?;
            }
            (Address::TransitGateway { .. }, Action::Delete, _) => {
                let id = live_id()?;
                self.ignore_not_found(
                    self.run("DeleteTransitGateway", true, what, || {
                        cloud.delete_transit_gateway(&id)
                    })
                    .await,
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
                let tgw = self.id_of(
                    &Address::TransitGateway {
                        mesh: mesh.clone(),
                        region: requester.clone(),
                    },
                    "CreateTransitGatewayPeeringAttachment",
                )?;
                let peer = self.id_of(
                    &Address::TransitGateway {
                        mesh: mesh.clone(),
                        region: accepter.clone(),
                    },
                    "CreateTransitGatewayPeeringAttachment",
                )?;
                let mut tags = self.ownership_tags();
                tags.insert(MESH_KEY.to_owned(), mesh.clone());
                tags.insert("Name".to_owned(), format!("{mesh}-{requester}-{accepter}"));
                let id = self
                    .run_attempts(
                        "CreateTransitGatewayPeeringAttachment",
                        true,
                        what,
                        |attempt| {
                            let tags = tags.clone();
                            let (tgw, peer) = (tgw.clone(), peer.clone());
                            async move {
                                if attempt > 0 {
                                    let listed =
                                        cloud.describe_peerings(requester, None, None).await?;
                                    if let Some(found) = listed.items.into_iter().find(|v| {
                                        self.owns(&v.peering.tags)
                                            && v.peering.requester_tgw == tgw
                                            && v.peering.accepter_tgw == peer
                                    }) {
                                        return Ok(found.peering.id);
                                    }
                                }
                                cloud
                                    .create_peering(requester, &tgw, &peer, accepter, tags)
                                    .await
                            }
                        },
                    )
                    .await?;
                self.remember(key, id.clone());
                self.accept(accepter, &id, what).await?;
                self.wait_peering_available(accepter, &id).await?;
            }
            (Address::Peering { accepter, .. }, Action::Update, Some(Resource::Peering(spec))) => {
                let id = live_id()?;
                if spec.accepted
                    && matches!(&change.before, Some(Resource::Peering(before)) if !before.accepted)
                {
                    self.accept(accepter, &id, what).await?;
                }
                self.wait_peering_available(accepter, &id).await?;
            }
            (Address::Peering { .. }, Action::Delete, _) => {
                let id = live_id()?;
                self.ignore_not_found(
                    self.run("DeleteTransitGatewayPeeringAttachment", true, what, || {
                        cloud.delete_peering(&id)
                    })
                    .await,
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
                let route_table = self.route_table_of(mesh, region)?;
                let attachment = self.peering_between(mesh, region, &spec.via_peer_region)?;
                let replace = change.action == Action::Update;
                let operation = if replace {
                    "ReplaceTransitGatewayRoute"
                } else {
                    "CreateTransitGatewayRoute"
                };
                self.run_attempts(operation, true, what, |attempt| {
                    let (route_table, attachment) = (route_table.clone(), attachment.clone());
                    async move {
                        match cloud
                            .put_route(&route_table, destination, &attachment, replace)
                            .await
                        {
                            Err(e) if attempt > 0 && e.code() == "RouteAlreadyExists" => Ok(()),
                            other => other,
                        }
                    }
                })
                .await?;
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
                let route_table = self.route_table_of(mesh, region)?;
                self.ignore_not_found(
                    self.run("DeleteTransitGatewayRoute", true, what, || {
                        cloud.delete_route(&route_table, destination)
                    })
                    .await,
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

    fn ignore_not_found(&self, result: Result<(), ProviderError>) -> Result<(), ProviderError> {
        match result {
            Err(error) if is_not_found(&error) => Ok(()),
            other => other,
        }
    }
}

#[async_trait]
impl Provider for SimProvider {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn families(&self) -> Vec<Family> {
        self.config.families.clone()
    }

    async fn observe(&self, request: ObserveRequest) -> ObserveResponse {
        let families: Vec<Family> = if request.families.is_empty() {
            self.config.families.clone()
        } else {
            request
                .families
                .iter()
                .copied()
                .filter(|f| self.config.families.contains(f))
                .collect()
        };
        let mut response = ObserveResponse::default();
        for family in families {
            // Overrides of a family count only when the whole family was seen.
            let mut overrides = Vec::new();
            let result = match family {
                Family::GlobalAccelerator => self.observe_global_accelerator(&mut overrides).await,
                Family::GcpLoadBalancing => self.observe_gcp(&mut overrides).await,
                Family::TransitGateway => self.observe_transit_gateway(&request.regions).await,
            };
            match result {
                Ok(found) => {
                    response.resources.extend(found);
                    response.overrides.extend(overrides);
                }
                Err(error) => response.gaps.push(ObservationGap { family, error }),
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

    async fn set_override(
        &self,
        address: &Address,
        until: Option<String>,
    ) -> Result<(), ProviderError> {
        match address {
            Address::Accelerator { .. }
                if self.config.families.contains(&Family::GlobalAccelerator) =>
            {
                self.set_accelerator_override(address, until).await
            }
            Address::BackendService { name }
                if self.config.families.contains(&Family::GcpLoadBalancing) =>
            {
                self.set_backend_service_override(name, until).await
            }
            _ => Err(ProviderError::stalled(
                "SetOverride",
                "OverrideNotSupported",
                format!(
                    "{address} cannot carry a break-glass override in provider `{}`: overrides live on a GlobalAccelerator or a BackendService this provider manages",
                    self.config.name
                ),
            )),
        }
    }
}

impl SimProvider {
    /// Tags (or untags) the accelerator with [`OVERRIDE_KEY`]; Global
    /// Accelerator tags live only on accelerators, so the marker covers its
    /// listeners, endpoint groups and endpoints.
    async fn set_accelerator_override(
        &self,
        address: &Address,
        until: Option<String>,
    ) -> Result<(), ProviderError> {
        let arn = match self.id_of(address, "TagResource") {
            Ok(arn) => arn,
            Err(_) => {
                self.observe_global_accelerator(&mut Vec::new()).await?;
                self.id_of(address, "TagResource").map_err(|_| {
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
        let cloud = &self.cloud;
        let what = format!("override on {address}");
        match until {
            Some(until) => {
                let tags = BTreeMap::from([(OVERRIDE_KEY.to_owned(), until)]);
                self.run("TagResource", true, &what, || {
                    cloud.tag_resource(&arn, tags.clone(), Vec::new())
                })
                .await
            }
            None => {
                let keys = vec![OVERRIDE_KEY.to_owned()];
                self.run("UntagResource", true, &what, || {
                    cloud.tag_resource(&arn, BTreeMap::new(), keys.clone())
                })
                .await
            }
        }
    }

    /// Rewrites the override marker in the backend service's description
    /// (backend services have no labels), compare-and-swap on the
    /// fingerprint just read: a change landing in between is read again.
    async fn set_backend_service_override(
        &self,
        name: &str,
        until: Option<String>,
    ) -> Result<(), ProviderError> {
        let cloud = &self.cloud;
        let project = self.config.project.as_str();
        let marker = gcp_marker(&self.config.owner);
        let what = format!("override on backend service `{name}`");
        for _ in 0..3 {
            let live = self
                .run("backendServices.list", false, &what, || {
                    Self::find_paged(
                        |t| async move {
                            cloud
                                .list_backend_services(project, None, t.as_deref())
                                .await
                        },
                        |v| v.service.name == name,
                    )
                })
                .await?;
            let Some(view) = live.filter(|v| v.service.description.contains(&marker)) else {
                return Err(ProviderError::stalled(
                    "backendServices.patch",
                    "notFound",
                    format!(
                        "backend service `{name}` managed by provider `{}` (owner `{}`) does not exist in project `{project}`",
                        self.config.name, self.config.owner
                    ),
                ));
            };
            let description = meridian_provider::overrides::gcp_with_override(
                &view.service.description,
                until.as_deref(),
            );
            let fingerprint = view.service.fingerprint.clone();
            let written = self
                .run("backendServices.patch", true, &what, || {
                    cloud.patch_backend_service_description(
                        project,
                        name,
                        Some(&fingerprint),
                        &description,
                    )
                })
                .await;
            match written {
                Err(error) if error.code == "conditionNotMet" => continue,
                other => return other,
            }
        }
        Err(ProviderError::conflict(
            "backendServices.patch",
            "conditionNotMet",
            format!("{what}: the backend service kept changing under meridian; try again"),
        ))
    }
}
