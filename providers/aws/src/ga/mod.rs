//! Global Accelerator: accelerators, listeners, endpoint groups and
//! endpoints. [`observe`] lists them; [`apply`] writes one API object per
//! unit of work. The conversions between the SDK's shapes and meridian's
//! values live here, so observation and the read-compare before a write see
//! objects the same way.

mod apply;
pub(crate) mod observe;

use std::collections::BTreeMap;

use aws_sdk_globalaccelerator::types::{
    Accelerator, EndpointConfiguration, EndpointGroup, HealthCheckProtocol, Listener,
    PortOverride as GaPortOverride, PortRange as GaPortRange,
};
use meridian_provider::{
    AcceleratorSpec, EndpointGroupSpec, EndpointSpec, GaHealthCheck, ListenerSpec, PortOverride,
    PortRange,
};

use crate::client::{port, user_tags};

/// Reads an SDK accelerator and its tags (from a list or a describe call):
/// the user's tags and meridian's listener names live among the tags.
pub(crate) fn accelerator_spec(
    accelerator: &Accelerator,
    tags: &BTreeMap<String, String>,
) -> AcceleratorSpec {
    AcceleratorSpec {
        name: accelerator.name().unwrap_or_default().to_owned(),
        enabled: accelerator.enabled().unwrap_or(false),
        ip_address_type: accelerator
            .ip_address_type()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_else(|| "IPV4".to_owned()),
        tags: user_tags(tags),
        listener_names: meridian_provider::listener_names(tags),
    }
}

/// An endpoint group as meridian compares it: its settings, and its
/// endpoints by id with their health.
pub(crate) struct GroupView {
    /// The group's settings.
    pub spec: EndpointGroupSpec,
    /// Its endpoints, by id, with health (lowercase) when reported.
    pub endpoints: BTreeMap<String, (EndpointSpec, Option<String>)>,
}

/// Reads an SDK endpoint group (from a list or a describe call).
pub(crate) fn group_view(group: &EndpointGroup) -> GroupView {
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
    let spec = EndpointGroupSpec {
        region: group.endpoint_group_region().unwrap_or_default().to_owned(),
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
    };
    let endpoints = group
        .endpoint_descriptions()
        .iter()
        .filter_map(|endpoint| {
            let id = endpoint.endpoint_id()?.to_owned();
            let spec = EndpointSpec {
                id: id.clone(),
                weight: endpoint
                    .weight()
                    .and_then(|w| u8::try_from(w).ok())
                    .unwrap_or(128),
                client_ip_preservation: endpoint.client_ip_preservation_enabled().unwrap_or(false),
            };
            let health = endpoint
                .health_state()
                .map(|h| h.as_str().to_ascii_lowercase());
            Some((id, (spec, health)))
        })
        .collect();
    GroupView { spec, endpoints }
}

/// Reads an SDK listener.
pub(crate) fn listener_spec(listener: &Listener) -> ListenerSpec {
    let mut ranges: Vec<PortRange> = listener
        .port_ranges()
        .iter()
        .map(|r| PortRange {
            from: port(r.from_port()),
            to: port(r.to_port()),
        })
        .collect();
    ranges.sort();
    ListenerSpec {
        protocol: listener
            .protocol()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        port_ranges: ranges,
        client_affinity: listener
            .client_affinity()
            .map(|c| c.as_str().to_owned())
            .unwrap_or_else(|| "NONE".to_owned()),
    }
}

/// The health-check and port-override arguments of a create or update.
pub(crate) struct GroupArgs {
    pub protocol: HealthCheckProtocol,
    pub port: i32,
    pub path: Option<String>,
    pub interval: i32,
    pub threshold: i32,
    pub overrides: Vec<GaPortOverride>,
}

impl GroupArgs {
    pub(crate) fn of(spec: &EndpointGroupSpec) -> Self {
        Self {
            protocol: HealthCheckProtocol::from(spec.health_check.protocol.as_str()),
            port: i32::from(spec.health_check.port),
            path: spec.health_check.path.clone(),
            interval: i32::try_from(spec.health_check.interval_seconds).unwrap_or(30),
            threshold: i32::try_from(spec.health_check.threshold_count).unwrap_or(3),
            overrides: spec
                .port_overrides
                .iter()
                .map(|o| {
                    GaPortOverride::builder()
                        .listener_port(i32::from(o.listener_port))
                        .endpoint_port(i32::from(o.endpoint_port))
                        .build()
                })
                .collect(),
        }
    }
}

/// The SDK's port ranges of a listener spec.
pub(crate) fn port_ranges(spec: &ListenerSpec) -> Vec<GaPortRange> {
    spec.port_ranges
        .iter()
        .map(|r| {
            GaPortRange::builder()
                .from_port(i32::from(r.from))
                .to_port(i32::from(r.to))
                .build()
        })
        .collect()
}

/// The SDK's configuration of an endpoint.
pub(crate) fn endpoint_configuration(spec: &EndpointSpec) -> EndpointConfiguration {
    EndpointConfiguration::builder()
        .endpoint_id(&spec.id)
        .weight(i32::from(spec.weight))
        .client_ip_preservation_enabled(spec.client_ip_preservation)
        .build()
}
