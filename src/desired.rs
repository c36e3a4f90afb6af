//! Expansion of validated documents into the managed resources they imply.
//!
//! One `GlobalAccelerator` document becomes an accelerator, its listeners,
//! their endpoint groups and every endpoint; a `TransitGatewayMesh` becomes
//! gateways, peerings (a full mesh unless listed) and the static routes
//! between the regions' CIDRs. Defaults the clouds would apply are made
//! explicit here, so that the diff compares like with like and never
//! reports a default as drift.

use std::collections::BTreeMap;

use meridian_provider::{
    AcceleratorSpec, Address, BackendServiceSpec, BackendSpec, EndpointGroupSpec, EndpointSpec,
    GaHealthCheck, HealthCheckSpec, HostRule, ListenerSpec, PathMatcher, PathRule, PeeringSpec,
    PortOverride, PortRange, Resource, RouteSpec, TransitGatewaySpec, UrlMapSpec,
    listener_tag_value,
};

use crate::model::DesiredState;
use crate::model::raw::{
    ClientAffinity, GaHealthCheckProtocol, GcpProtocol, IpAddressType, ListenerProtocol,
    LoadBalancingScheme,
};
use meridian_provider::regions::parse_backend_group;

/// The GCP project used when a `sim` provider names none.
pub const SIM_PROJECT: &str = "sim-project";

/// One resource desired state asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredResource {
    /// The `Provider` document that manages it.
    pub provider: String,
    /// Its configuration.
    pub resource: Resource,
    /// The document it comes from, `Kind/name`, for messages.
    pub source: String,
    /// The live object its document pins it to
    /// (`meridian.dev/external-id`), for the objects that carry an
    /// ownership marker: it is adopted, never created.
    pub external_id: Option<String>,
}

/// Every desired resource, by address.
pub type DesiredResources = BTreeMap<Address, DesiredResource>;

fn port(value: u32) -> u16 {
    u16::try_from(value).unwrap_or(u16::MAX)
}

/// The GCP project a provider manages.
pub fn project_of(state: &DesiredState, provider: &str) -> String {
    state
        .provider(provider)
        .and_then(|p| p.doc.spec.project.clone())
        .unwrap_or_else(|| SIM_PROJECT.to_owned())
}

/// Regions each provider's desired Transit Gateway resources use: the
/// Transit Gateway API is regional, so observation must know where to look.
pub fn regions_by_provider(resources: &DesiredResources) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (address, desired) in resources {
        if address.family() != meridian_provider::Family::TransitGateway {
            continue;
        }
        if let Some(region) = address.region() {
            let regions = out.entry(desired.provider.clone()).or_default();
            if !regions.iter().any(|r| r == region) {
                regions.push(region.to_owned());
            }
        }
    }
    out
}

/// Expands validated desired state into resources.
pub fn expand(state: &DesiredState) -> DesiredResources {
    let mut out = DesiredResources::new();
    let mut put = |address: Address, provider: &str, source: &str, resource: Resource| {
        out.insert(
            address,
            DesiredResource {
                provider: provider.to_owned(),
                resource,
                source: source.to_owned(),
                external_id: None,
            },
        );
    };
    for ga in &state.accelerators {
        let spec = &ga.doc.spec;
        let name = ga.name().to_owned();
        let source = format!("GlobalAccelerator/{name}");
        put(
            Address::Accelerator {
                accelerator: name.clone(),
            },
            &spec.provider,
            &source,
            Resource::Accelerator(AcceleratorSpec {
                name: spec
                    .accelerator_name
                    .clone()
                    .unwrap_or_else(|| name.clone()),
                enabled: spec.enabled,
                ip_address_type: match spec.ip_address_type {
                    IpAddressType::Ipv4 => "IPV4",
                    IpAddressType::DualStack => "DUAL_STACK",
                }
                .to_owned(),
                tags: spec.tags.clone(),
                // Filled in below, from the listeners.
                listener_names: BTreeMap::new(),
            }),
        );
        for listener in &spec.listeners {
            let mut port_ranges: Vec<PortRange> = listener
                .port_ranges
                .iter()
                .map(|r| PortRange {
                    from: port(r.from),
                    to: port(r.to),
                })
                .collect();
            port_ranges.sort();
            let first_port = port_ranges.first().map_or(80, |r| r.from);
            put(
                Address::Listener {
                    accelerator: name.clone(),
                    listener: listener.name.clone(),
                },
                &spec.provider,
                &source,
                Resource::Listener(ListenerSpec {
                    protocol: match listener.protocol {
                        ListenerProtocol::Tcp => "TCP",
                        ListenerProtocol::Udp => "UDP",
                    }
                    .to_owned(),
                    port_ranges,
                    client_affinity: match listener.client_affinity {
                        ClientAffinity::None => "NONE",
                        ClientAffinity::SourceIp => "SOURCE_IP",
                    }
                    .to_owned(),
                }),
            );
            for group in &listener.endpoint_groups {
                let health_check = match &group.health_check {
                    Some(hc) => GaHealthCheck {
                        protocol: match hc.protocol {
                            GaHealthCheckProtocol::Tcp => "TCP",
                            GaHealthCheckProtocol::Http => "HTTP",
                            GaHealthCheckProtocol::Https => "HTTPS",
                        }
                        .to_owned(),
                        port: hc.port.map_or(first_port, port),
                        path: match hc.protocol {
                            GaHealthCheckProtocol::Tcp => None,
                            _ => Some(hc.path.clone().unwrap_or_else(|| "/".to_owned())),
                        },
                        interval_seconds: hc.interval_seconds,
                        threshold_count: hc.threshold_count,
                    },
                    None => GaHealthCheck {
                        protocol: "TCP".to_owned(),
                        port: first_port,
                        path: None,
                        interval_seconds: 30,
                        threshold_count: 3,
                    },
                };
                let mut port_overrides: Vec<PortOverride> = group
                    .port_overrides
                    .iter()
                    .map(|o| PortOverride {
                        listener_port: port(o.listener_port),
                        endpoint_port: port(o.endpoint_port),
                    })
                    .collect();
                port_overrides.sort();
                put(
                    Address::EndpointGroup {
                        accelerator: name.clone(),
                        listener: listener.name.clone(),
                        region: group.region.clone(),
                    },
                    &spec.provider,
                    &source,
                    Resource::EndpointGroup(EndpointGroupSpec {
                        region: group.region.clone(),
                        // Validated to 0-100.
                        traffic_dial: u8::try_from(group.traffic_dial.min(100)).unwrap_or(100),
                        health_check,
                        port_overrides,
                    }),
                );
                for endpoint in &group.endpoints {
                    put(
                        Address::Endpoint {
                            accelerator: name.clone(),
                            listener: listener.name.clone(),
                            region: group.region.clone(),
                            endpoint: endpoint.id.clone(),
                        },
                        &spec.provider,
                        &source,
                        Resource::Endpoint(EndpointSpec {
                            id: endpoint.id.clone(),
                            // Validated to 0-255.
                            weight: u8::try_from(endpoint.weight).unwrap_or(u8::MAX),
                            client_ip_preservation: endpoint.client_ip_preservation,
                        }),
                    );
                }
            }
        }
    }
    for hc in &state.health_checks {
        let spec = &hc.doc.spec;
        let block = match spec.check_type {
            GcpProtocol::Http => &spec.http_health_check,
            GcpProtocol::Https => &spec.https_health_check,
            GcpProtocol::Http2 => &spec.http2_health_check,
            GcpProtocol::Tcp => &spec.tcp_health_check,
            GcpProtocol::Ssl => &spec.ssl_health_check,
            GcpProtocol::Grpc => &spec.grpc_health_check,
        };
        let http_family = matches!(
            spec.check_type,
            GcpProtocol::Http | GcpProtocol::Https | GcpProtocol::Http2
        );
        let default_port = match spec.check_type {
            GcpProtocol::Http | GcpProtocol::Tcp => 80,
            _ => 443,
        };
        put(
            Address::HealthCheck {
                name: hc.name().to_owned(),
            },
            &spec.provider,
            &format!("HealthCheck/{}", hc.name()),
            Resource::HealthCheck(HealthCheckSpec {
                project: project_of(state, &spec.provider),
                check_type: spec.check_type.as_str().to_owned(),
                check_interval_sec: spec.check_interval_sec,
                timeout_sec: spec.timeout_sec,
                healthy_threshold: spec.healthy_threshold,
                unhealthy_threshold: spec.unhealthy_threshold,
                port: block
                    .as_ref()
                    .and_then(|b| b.port)
                    .map_or(default_port, port),
                request_path: http_family.then(|| {
                    block
                        .as_ref()
                        .and_then(|b| b.request_path.clone())
                        .unwrap_or_else(|| "/".to_owned())
                }),
                host: block.as_ref().and_then(|b| b.host.clone()),
            }),
        );
    }
    for bs in &state.backend_services {
        let spec = &bs.doc.spec;
        let name = bs.name().to_owned();
        let source = format!("BackendService/{name}");
        let mut health_checks = spec.health_checks.clone();
        health_checks.sort();
        put(
            Address::BackendService { name: name.clone() },
            &spec.provider,
            &source,
            Resource::BackendService(BackendServiceSpec {
                project: project_of(state, &spec.provider),
                protocol: spec.protocol.as_str().to_owned(),
                port_name: spec.port_name.clone(),
                timeout_sec: spec.timeout_sec,
                load_balancing_scheme: match spec.load_balancing_scheme {
                    LoadBalancingScheme::External => "EXTERNAL",
                    LoadBalancingScheme::ExternalManaged => "EXTERNAL_MANAGED",
                }
                .to_owned(),
                enable_cdn: spec.enable_cdn,
                health_checks,
            }),
        );
        for backend in &spec.backends {
            // `projects/P/…` and URL forms name the same group as the
            // relative path the Compute API's objects are compared in.
            let (group, region) = match parse_backend_group(&backend.group) {
                Ok(parsed) => (parsed.path, parsed.region),
                Err(_) => (backend.group.clone(), String::new()),
            };
            put(
                Address::Backend {
                    service: name.clone(),
                    group: group.clone(),
                },
                &spec.provider,
                &source,
                Resource::Backend(BackendSpec {
                    group,
                    region,
                    balancing_mode: backend.balancing_mode.as_str().to_owned(),
                    max_rate: backend.max_rate,
                    max_rate_per_endpoint: backend.max_rate_per_endpoint,
                    max_utilization: backend.max_utilization,
                    max_connections: backend.max_connections,
                    capacity_scaler: backend.capacity_scaler,
                }),
            );
        }
    }
    for map in &state.url_maps {
        let spec = &map.doc.spec;
        put(
            Address::UrlMap {
                name: map.name().to_owned(),
            },
            &spec.provider,
            &format!("UrlMap/{}", map.name()),
            Resource::UrlMap(UrlMapSpec {
                project: project_of(state, &spec.provider),
                default_service: spec.default_service.clone(),
                host_rules: spec
                    .host_rules
                    .iter()
                    .map(|r| HostRule {
                        hosts: r.hosts.clone(),
                        path_matcher: r.path_matcher.clone(),
                    })
                    .collect(),
                path_matchers: spec
                    .path_matchers
                    .iter()
                    .map(|m| PathMatcher {
                        name: m.name.clone(),
                        default_service: m.default_service.clone(),
                        path_rules: m
                            .path_rules
                            .iter()
                            .map(|r| PathRule {
                                paths: r.paths.clone(),
                                service: r.service.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
            }),
        );
    }
    for mesh in &state.meshes {
        let spec = &mesh.doc.spec;
        let name = mesh.name().to_owned();
        let source = format!("TransitGatewayMesh/{name}");
        for gateway in &spec.gateways {
            put(
                Address::TransitGateway {
                    mesh: name.clone(),
                    region: gateway.region.clone(),
                },
                &spec.provider,
                &source,
                Resource::TransitGateway(TransitGatewaySpec {
                    region: gateway.region.clone(),
                    amazon_side_asn: gateway.amazon_side_asn,
                    description: gateway
                        .description
                        .clone()
                        .unwrap_or_else(|| format!("meridian mesh {name} in {}", gateway.region)),
                }),
            );
        }
        let pairs: Vec<(String, String)> = match &spec.peerings {
            Some(peerings) => peerings
                .iter()
                .map(|p| (p.requester.clone(), p.accepter.clone()))
                .collect(),
            None => {
                let mut pairs = Vec::new();
                for (i, a) in spec.gateways.iter().enumerate() {
                    for b in &spec.gateways[i + 1..] {
                        pairs.push((a.region.clone(), b.region.clone()));
                    }
                }
                pairs
            }
        };
        let cidrs: BTreeMap<&str, &Vec<String>> = spec
            .gateways
            .iter()
            .map(|g| (g.region.as_str(), &g.cidrs))
            .collect();
        for (requester, accepter) in pairs {
            put(
                Address::Peering {
                    mesh: name.clone(),
                    requester: requester.clone(),
                    accepter: accepter.clone(),
                },
                &spec.provider,
                &source,
                Resource::Peering(PeeringSpec {
                    requester_region: requester.clone(),
                    accepter_region: accepter.clone(),
                    accepted: true,
                }),
            );
            for (here, there) in [(&requester, &accepter), (&accepter, &requester)] {
                for cidr in cidrs.get(there.as_str()).copied().into_iter().flatten() {
                    put(
                        Address::Route {
                            mesh: name.clone(),
                            region: here.clone(),
                            destination: cidr.clone(),
                        },
                        &spec.provider,
                        &source,
                        Resource::Route(RouteSpec {
                            region: here.clone(),
                            destination_cidr: cidr.clone(),
                            via_peer_region: there.clone(),
                        }),
                    );
                }
            }
        }
    }
    name_listeners(&mut out);
    pin_external_ids(state, &mut out);
    out
}

/// The cloud identity a document's `meridian.dev/external-id` pins, on the
/// object of it that carries an ownership marker.
fn pin_external_ids(state: &DesiredState, out: &mut DesiredResources) {
    let mut pins: Vec<(Address, String)> = Vec::new();
    let id_of = |kind: &str, metadata: &crate::model::raw::Metadata| {
        // One identity per document, but for meshes (below).
        metadata
            .annotations
            .get(crate::model::EXTERNAL_ID_KEY)
            .and_then(|v| crate::model::external_ids(kind, &metadata.name, v).ok())
            .and_then(|ids| ids.into_iter().next())
    };
    for ga in &state.accelerators {
        if let Some(id) = id_of("GlobalAccelerator", &ga.doc.metadata) {
            pins.push((
                Address::Accelerator {
                    accelerator: ga.name().to_owned(),
                },
                id,
            ));
        }
    }
    for hc in &state.health_checks {
        if let Some(id) = id_of("HealthCheck", &hc.doc.metadata) {
            pins.push((
                Address::HealthCheck {
                    name: hc.name().to_owned(),
                },
                id,
            ));
        }
    }
    for bs in &state.backend_services {
        if let Some(id) = id_of("BackendService", &bs.doc.metadata) {
            pins.push((
                Address::BackendService {
                    name: bs.name().to_owned(),
                },
                id,
            ));
        }
    }
    for map in &state.url_maps {
        if let Some(id) = id_of("UrlMap", &map.doc.metadata) {
            pins.push((
                Address::UrlMap {
                    name: map.name().to_owned(),
                },
                id,
            ));
        }
    }
    for mesh in &state.meshes {
        let Some(value) = mesh
            .doc
            .metadata
            .annotations
            .get(crate::model::EXTERNAL_ID_KEY)
        else {
            continue;
        };
        let mut gateways: BTreeMap<String, String> = BTreeMap::new();
        for pin in
            crate::model::external_ids("TransitGatewayMesh", mesh.name(), value).unwrap_or_default()
        {
            if let Some((region, id)) = pin.split_once('=') {
                gateways.insert(region.to_owned(), id.to_owned());
                pins.push((
                    Address::TransitGateway {
                        mesh: mesh.name().to_owned(),
                        region: region.to_owned(),
                    },
                    id.to_owned(),
                ));
            }
        }
        // A peering between two pinned gateways is pinned by them: the
        // peering of those two gateways (providers find it from them).
        let peerings: Vec<(Address, String)> = out
            .keys()
            .filter_map(|address| match address {
                Address::Peering {
                    mesh: m,
                    requester,
                    accepter,
                } if m == mesh.name() => Some((
                    address.clone(),
                    format!("{}>{}", gateways.get(requester)?, gateways.get(accepter)?),
                )),
                _ => None,
            })
            .collect();
        pins.extend(peerings);
    }
    for (address, id) in pins {
        if let Some(want) = out.get_mut(&address) {
            want.external_id = Some(id);
        }
    }
}

/// Writes each accelerator's listener names (name → protocol and ports)
/// into its value: they live as tags on the accelerator.
fn name_listeners(out: &mut DesiredResources) {
    let mut names: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (address, want) in out.iter() {
        if let (
            Address::Listener {
                accelerator,
                listener,
            },
            Resource::Listener(spec),
        ) = (address, &want.resource)
        {
            names
                .entry(accelerator.clone())
                .or_default()
                .insert(listener.clone(), listener_tag_value(spec));
        }
    }
    for (accelerator, listeners) in names {
        let address = Address::Accelerator { accelerator };
        if let Some(DesiredResource {
            resource: Resource::Accelerator(spec),
            ..
        }) = out.get_mut(&address)
        {
            spec.listener_names = listeners;
        }
    }
}
