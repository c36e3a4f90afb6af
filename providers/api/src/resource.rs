//! Comparable resource values.
//!
//! Desired and observed state are both expressed as [`Resource`] values so
//! that the diff is a field-by-field comparison of like with like. A value
//! holds only what meridian manages; cloud-generated identifiers, status and
//! health travel beside it in [`crate::Observed`] and never take part in the
//! diff. Every number is a real value: zero is zero, never "unset".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One managed object's desired or observed configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Resource {
    /// A Global Accelerator.
    Accelerator(AcceleratorSpec),
    /// A Global Accelerator listener.
    Listener(ListenerSpec),
    /// An endpoint group (one region of one listener).
    EndpointGroup(EndpointGroupSpec),
    /// One endpoint of an endpoint group.
    Endpoint(EndpointSpec),
    /// A GCP health check.
    HealthCheck(HealthCheckSpec),
    /// A GCP backend service, without its backends (those are [`Resource::Backend`]).
    BackendService(BackendServiceSpec),
    /// One backend of a backend service.
    Backend(BackendSpec),
    /// A GCP URL map.
    UrlMap(UrlMapSpec),
    /// A Transit Gateway.
    TransitGateway(TransitGatewaySpec),
    /// A Transit Gateway peering attachment.
    Peering(PeeringSpec),
    /// A static Transit Gateway route.
    Route(RouteSpec),
}

/// Global Accelerator settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceleratorSpec {
    /// Name shown in the console.
    pub name: String,
    /// Whether the accelerator accepts traffic.
    pub enabled: bool,
    /// `IPV4` or `DUAL_STACK`.
    pub ip_address_type: String,
    /// User tags (meridian's own ownership tags are not part of the value).
    pub tags: BTreeMap<String, String>,
    /// meridian's names of the accelerator's listeners, kept as tags on the
    /// accelerator (Global Accelerator listeners carry neither names nor
    /// tags): listener name → its protocol and ports, as
    /// [`listener_tag_value`] writes them. Written inline when the
    /// accelerator is created, by `TagResource` when a listener is added,
    /// renamed or moves ports.
    #[serde(default)]
    pub listener_names: BTreeMap<String, String>,
}

/// The value of a listener's name tag: its protocol and port ranges, e.g.
/// `TCP:443-443,8443-8443`. A live listener takes the name whose tag value
/// names exactly its protocol and ports; port ranges of one accelerator
/// never overlap, so at most one listener matches a value.
pub fn listener_tag_value(spec: &ListenerSpec) -> String {
    let ranges: Vec<String> = spec
        .port_ranges
        .iter()
        .map(|r| format!("{}-{}", r.from, r.to))
        .collect();
    format!("{}:{}", spec.protocol, ranges.join(","))
}

/// Reads a listener name tag's value back into protocol and port ranges.
pub fn parse_listener_tag_value(value: &str) -> Option<(String, Vec<PortRange>)> {
    let (protocol, ranges) = value.split_once(':')?;
    let ranges = ranges
        .split(',')
        .map(|r| {
            let (from, to) = r.split_once('-')?;
            Some(PortRange {
                from: from.parse().ok()?,
                to: to.parse().ok()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some((protocol.to_owned(), ranges))
}

/// A TCP/UDP port range, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortRange {
    /// First port.
    pub from: u16,
    /// Last port.
    pub to: u16,
}

/// Listener settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSpec {
    /// `TCP` or `UDP`.
    pub protocol: String,
    /// Port ranges, sorted.
    pub port_ranges: Vec<PortRange>,
    /// `NONE` or `SOURCE_IP`.
    pub client_affinity: String,
}

/// Global Accelerator endpoint-group health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GaHealthCheck {
    /// `TCP`, `HTTP` or `HTTPS`.
    pub protocol: String,
    /// Port checked.
    pub port: u16,
    /// Path for HTTP(S) checks.
    pub path: Option<String>,
    /// 10 or 30.
    pub interval_seconds: u32,
    /// Consecutive checks before a state change, 1-10.
    pub threshold_count: u32,
}

/// A listener-port to endpoint-port override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortOverride {
    /// Port the listener receives on.
    pub listener_port: u16,
    /// Port the endpoint serves on.
    pub endpoint_port: u16,
}

/// Endpoint group settings (its endpoints are separate resources).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointGroupSpec {
    /// AWS region.
    pub region: String,
    /// Traffic dial, 0-100.
    pub traffic_dial: u8,
    /// Health check.
    pub health_check: GaHealthCheck,
    /// Port overrides, sorted.
    pub port_overrides: Vec<PortOverride>,
}

/// One Global Accelerator endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSpec {
    /// Endpoint id.
    pub id: String,
    /// Weight, 0-255.
    pub weight: u8,
    /// Whether the client IP is preserved.
    pub client_ip_preservation: bool,
}

/// GCP health check settings (Compute API field names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckSpec {
    /// GCP project.
    pub project: String,
    /// `TCP`, `SSL`, `HTTP`, `HTTPS`, `HTTP2` or `GRPC`.
    #[serde(rename = "type")]
    pub check_type: String,
    /// Seconds between checks.
    pub check_interval_sec: u32,
    /// Seconds before a check times out.
    pub timeout_sec: u32,
    /// Successes before healthy.
    pub healthy_threshold: u32,
    /// Failures before unhealthy.
    pub unhealthy_threshold: u32,
    /// Port checked.
    pub port: u16,
    /// Request path for HTTP-family checks.
    pub request_path: Option<String>,
    /// Host header for HTTP-family checks.
    pub host: Option<String>,
}

/// GCP backend service settings (backends are separate resources).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendServiceSpec {
    /// GCP project.
    pub project: String,
    /// `HTTP`, `HTTPS`, `HTTP2`, `TCP`, `SSL`, `GRPC`.
    pub protocol: String,
    /// Named port on the backends.
    pub port_name: Option<String>,
    /// Backend timeout.
    pub timeout_sec: u32,
    /// `EXTERNAL` or `EXTERNAL_MANAGED`.
    pub load_balancing_scheme: String,
    /// Whether Cloud CDN is on.
    #[serde(rename = "enableCDN")]
    pub enable_cdn: bool,
    /// Health check names, sorted.
    pub health_checks: Vec<String>,
}

/// One backend of a GCP backend service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendSpec {
    /// The group's relative path.
    pub group: String,
    /// The group's region (derived from its path).
    pub region: String,
    /// `RATE`, `UTILIZATION` or `CONNECTION`.
    pub balancing_mode: String,
    /// Requests per second for the whole group (RATE mode).
    pub max_rate: Option<u32>,
    /// Requests per second per endpoint (RATE mode).
    pub max_rate_per_endpoint: Option<f64>,
    /// Target utilisation 0.0-1.0 (UTILIZATION mode).
    pub max_utilization: Option<f64>,
    /// Connections for the whole group (CONNECTION mode).
    pub max_connections: Option<u32>,
    /// Capacity scaler: 0, or 0.1-1.0.
    pub capacity_scaler: f64,
}

/// A URL map host rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostRule {
    /// Host patterns.
    pub hosts: Vec<String>,
    /// Name of the path matcher to use.
    pub path_matcher: String,
}

/// A URL map path rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathRule {
    /// Path patterns.
    pub paths: Vec<String>,
    /// Backend service name.
    pub service: String,
}

/// A URL map path matcher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathMatcher {
    /// Matcher name.
    pub name: String,
    /// Backend service name when no path rule matches.
    pub default_service: String,
    /// Path rules.
    pub path_rules: Vec<PathRule>,
}

/// GCP URL map settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlMapSpec {
    /// GCP project.
    pub project: String,
    /// Backend service name for unmatched hosts.
    pub default_service: String,
    /// Host rules.
    pub host_rules: Vec<HostRule>,
    /// Path matchers.
    pub path_matchers: Vec<PathMatcher>,
}

/// Transit Gateway settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransitGatewaySpec {
    /// AWS region.
    pub region: String,
    /// Private ASN of the Amazon side.
    pub amazon_side_asn: u32,
    /// Description.
    pub description: String,
}

/// A peering attachment between two gateways.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeeringSpec {
    /// Requester region.
    pub requester_region: String,
    /// Accepter region.
    pub accepter_region: String,
    /// Whether the accepter side has accepted. Desired state always wants
    /// `true`; an observed `false` means the attachment waits for acceptance.
    pub accepted: bool,
}

/// A static route in a gateway's route table, pointing at a peering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteSpec {
    /// Region of the gateway holding the route.
    pub region: String,
    /// Destination CIDR.
    pub destination_cidr: String,
    /// Region at the other end of the peering the route points at.
    pub via_peer_region: String,
}

/// The listener name tags among an accelerator's tags: name → tag value.
pub fn listener_names(tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(crate::LISTENER_KEY_PREFIX)
                .map(|name| (name.to_owned(), v.clone()))
        })
        .collect()
}

/// meridian's names for the live listeners of one accelerator, in order:
/// each takes the name whose tag names exactly its protocol and ports;
/// failing that (its ports were changed by hand, or an apply stopped
/// between `UpdateListener` and re-tagging), the one name whose tagged
/// ports overlap its own and that no other listener claims. `None` is an
/// unnamed listener (the diff adopts or removes it).
pub fn name_listeners(
    names: &BTreeMap<String, String>,
    listeners: &[ListenerSpec],
) -> Vec<Option<String>> {
    let exact: Vec<Option<String>> = listeners
        .iter()
        .map(|spec| {
            let value = listener_tag_value(spec);
            names
                .iter()
                .find(|(_, v)| **v == value)
                .map(|(n, _)| n.clone())
        })
        .collect();
    let mut taken: std::collections::BTreeSet<String> = exact.iter().flatten().cloned().collect();
    listeners
        .iter()
        .zip(exact)
        .map(|(spec, exact)| {
            if exact.is_some() {
                return exact;
            }
            let overlapping: Vec<&String> = names
                .iter()
                .filter(|(name, v)| {
                    !taken.contains(*name)
                        && parse_listener_tag_value(v).is_some_and(|(protocol, ranges)| {
                            protocol == spec.protocol
                                && ranges.iter().any(|w| {
                                    spec.port_ranges
                                        .iter()
                                        .any(|h| w.from <= h.to && h.from <= w.to)
                                })
                        })
                })
                .map(|(name, _)| name)
                .collect();
            match overlapping.as_slice() {
                [one] => {
                    let name = (*one).clone();
                    taken.insert(name.clone());
                    Some(name)
                }
                _ => None,
            }
        })
        .collect()
}

impl Resource {
    /// The resource kind's display name.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Resource::Accelerator(_) => "accelerator",
            Resource::Listener(_) => "listener",
            Resource::EndpointGroup(_) => "endpoint group",
            Resource::Endpoint(_) => "endpoint",
            Resource::HealthCheck(_) => "health check",
            Resource::BackendService(_) => "backend service",
            Resource::Backend(_) => "backend",
            Resource::UrlMap(_) => "URL map",
            Resource::TransitGateway(_) => "transit gateway",
            Resource::Peering(_) => "peering attachment",
            Resource::Route(_) => "route",
        }
    }

    /// The value as a JSON object without the `kind` tag, for field-level diffs.
    pub fn fields(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(object) = value.as_object_mut() {
            object.shift_remove("kind");
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(protocol: &str, ports: &[(u16, u16)]) -> ListenerSpec {
        ListenerSpec {
            protocol: protocol.into(),
            port_ranges: ports
                .iter()
                .map(|(from, to)| PortRange {
                    from: *from,
                    to: *to,
                })
                .collect(),
            client_affinity: "NONE".into(),
        }
    }

    #[test]
    fn a_listener_takes_the_name_whose_tag_names_its_ports() {
        let names = BTreeMap::from([
            ("https".to_owned(), "TCP:443-443".to_owned()),
            ("grpc".to_owned(), "TCP:8443-8443".to_owned()),
        ]);
        let named = name_listeners(
            &names,
            &[
                listener("TCP", &[(443, 443)]),
                // Ports widened by hand: still the listener whose ports overlap.
                listener("TCP", &[(8443, 8444)]),
                // Another protocol, or no overlap: unnamed.
                listener("UDP", &[(443, 443)]),
                listener("TCP", &[(80, 80)]),
            ],
        );
        assert_eq!(
            named,
            vec![Some("https".into()), Some("grpc".into()), None, None]
        );
        assert_eq!(
            parse_listener_tag_value(&listener_tag_value(&listener("TCP", &[(1, 2), (5, 9)]))),
            Some((
                "TCP".to_owned(),
                listener("TCP", &[(1, 2), (5, 9)]).port_ranges
            ))
        );
    }
}
