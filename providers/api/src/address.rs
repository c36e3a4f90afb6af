//! Resource addresses: the stable, cloud-independent name of every object
//! meridian manages.
//!
//! An address is derived from desired state only (document names, listener
//! names, regions, endpoint ids), never from cloud-generated ids, so the same
//! desired object always has the same address. Its text form is
//! `Kind[name].child[key]...`; keys never contain `]`, which makes the text
//! form parseable even though ARNs, NEG paths and CIDRs contain `/`, `:` and `.`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The address of one managed object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Address {
    /// A Global Accelerator.
    Accelerator {
        /// `metadata.name` of the `GlobalAccelerator` document.
        accelerator: String,
    },
    /// A listener of an accelerator, by meridian's listener name.
    Listener {
        /// Accelerator name.
        accelerator: String,
        /// Listener name (meridian's handle; the cloud has none).
        listener: String,
    },
    /// The endpoint group of one region in one listener.
    EndpointGroup {
        /// Accelerator name.
        accelerator: String,
        /// Listener name.
        listener: String,
        /// AWS region of the group.
        region: String,
    },
    /// One endpoint in an endpoint group.
    Endpoint {
        /// Accelerator name.
        accelerator: String,
        /// Listener name.
        listener: String,
        /// AWS region of the group.
        region: String,
        /// Endpoint id (ARN, EIP allocation or instance id).
        endpoint: String,
    },
    /// A GCP global health check.
    HealthCheck {
        /// Health check name.
        name: String,
    },
    /// A GCP global backend service.
    BackendService {
        /// Backend service name.
        name: String,
    },
    /// One backend (instance group or NEG) of a backend service.
    Backend {
        /// Backend service name.
        service: String,
        /// The group's relative path, e.g. `regions/europe-west1/networkEndpointGroups/app-eu`.
        group: String,
    },
    /// A GCP URL map.
    UrlMap {
        /// URL map name.
        name: String,
    },
    /// The Transit Gateway of one region of a mesh.
    TransitGateway {
        /// `metadata.name` of the `TransitGatewayMesh`.
        mesh: String,
        /// AWS region.
        region: String,
    },
    /// A peering attachment between two gateways of a mesh.
    Peering {
        /// Mesh name.
        mesh: String,
        /// Region that requests the peering.
        requester: String,
        /// Region that accepts it.
        accepter: String,
    },
    /// A static route in one gateway's route table.
    Route {
        /// Mesh name.
        mesh: String,
        /// Region of the gateway whose route table holds the route.
        region: String,
        /// Destination CIDR.
        destination: String,
    },
}

/// The families of resources a provider observes as one unit. An observation
/// gap is reported per family, and the plan proposes nothing inside a family
/// whose observation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Accelerators, listeners, endpoint groups and endpoints.
    GlobalAccelerator,
    /// GCP health checks, backend services, backends and URL maps.
    GcpLoadBalancing,
    /// Transit Gateways, peering attachments and routes.
    TransitGateway,
}

impl Family {
    /// Every family, in observation order.
    pub const ALL: [Family; 3] = [
        Family::GlobalAccelerator,
        Family::GcpLoadBalancing,
        Family::TransitGateway,
    ];
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::GlobalAccelerator => "Global Accelerator",
            Family::GcpLoadBalancing => "GCP load balancing",
            Family::TransitGateway => "Transit Gateway",
        })
    }
}

impl Address {
    /// The family this address belongs to.
    pub fn family(&self) -> Family {
        match self {
            Address::Accelerator { .. }
            | Address::Listener { .. }
            | Address::EndpointGroup { .. }
            | Address::Endpoint { .. } => Family::GlobalAccelerator,
            Address::HealthCheck { .. }
            | Address::BackendService { .. }
            | Address::Backend { .. }
            | Address::UrlMap { .. } => Family::GcpLoadBalancing,
            Address::TransitGateway { .. } | Address::Peering { .. } | Address::Route { .. } => {
                Family::TransitGateway
            }
        }
    }

    /// Dependency depth: an object may only be created after every object of
    /// lower depth in its family, and deleted before them.
    pub fn depth(&self) -> u32 {
        match self {
            Address::Accelerator { .. }
            | Address::HealthCheck { .. }
            | Address::TransitGateway { .. } => 0,
            Address::Listener { .. } | Address::BackendService { .. } | Address::Peering { .. } => {
                1
            }
            Address::EndpointGroup { .. } | Address::Backend { .. } | Address::Route { .. } => 2,
            Address::Endpoint { .. } | Address::UrlMap { .. } => 3,
        }
    }

    /// Every object this one lives inside, nearest first.
    pub fn ancestors(&self) -> Vec<Address> {
        let mut out = Vec::new();
        let mut current = self.parent();
        while let Some(parent) = current {
            current = parent.parent();
            out.push(parent);
        }
        out
    }

    /// The address of the object this one lives inside, if any.
    pub fn parent(&self) -> Option<Address> {
        match self {
            Address::Listener { accelerator, .. } => Some(Address::Accelerator {
                accelerator: accelerator.clone(),
            }),
            Address::EndpointGroup {
                accelerator,
                listener,
                ..
            } => Some(Address::Listener {
                accelerator: accelerator.clone(),
                listener: listener.clone(),
            }),
            Address::Endpoint {
                accelerator,
                listener,
                region,
                ..
            } => Some(Address::EndpointGroup {
                accelerator: accelerator.clone(),
                listener: listener.clone(),
                region: region.clone(),
            }),
            Address::Backend { service, .. } => Some(Address::BackendService {
                name: service.clone(),
            }),
            _ => None,
        }
    }

    /// The region this object serves or lives in, when it has one.
    pub fn region(&self) -> Option<&str> {
        match self {
            Address::EndpointGroup { region, .. }
            | Address::Endpoint { region, .. }
            | Address::TransitGateway { region, .. }
            | Address::Route { region, .. } => Some(region),
            _ => None,
        }
    }

    /// What kind of object this is, as its address spells it:
    /// `GlobalAccelerator`, `listener`, `endpointGroup`, `endpoint`,
    /// `HealthCheck`, `BackendService`, `backend`, `UrlMap`, ….
    pub fn kind_name(&self) -> &'static str {
        self.segments().last().map_or("object", |(kind, _)| kind)
    }

    fn segments(&self) -> Vec<(&'static str, &str)> {
        match self {
            Address::Accelerator { accelerator } => vec![("GlobalAccelerator", accelerator)],
            Address::Listener {
                accelerator,
                listener,
            } => vec![("GlobalAccelerator", accelerator), ("listener", listener)],
            Address::EndpointGroup {
                accelerator,
                listener,
                region,
            } => vec![
                ("GlobalAccelerator", accelerator),
                ("listener", listener),
                ("endpointGroup", region),
            ],
            Address::Endpoint {
                accelerator,
                listener,
                region,
                endpoint,
            } => vec![
                ("GlobalAccelerator", accelerator),
                ("listener", listener),
                ("endpointGroup", region),
                ("endpoint", endpoint),
            ],
            Address::HealthCheck { name } => vec![("HealthCheck", name)],
            Address::BackendService { name } => vec![("BackendService", name)],
            Address::Backend { service, group } => {
                vec![("BackendService", service), ("backend", group)]
            }
            Address::UrlMap { name } => vec![("UrlMap", name)],
            Address::TransitGateway { mesh, region } => {
                vec![("TransitGatewayMesh", mesh), ("gateway", region)]
            }
            Address::Peering {
                mesh,
                requester,
                accepter,
            } => vec![
                ("TransitGatewayMesh", mesh),
                ("peering", requester),
                ("to", accepter),
            ],
            Address::Route {
                mesh,
                region,
                destination,
            } => vec![
                ("TransitGatewayMesh", mesh),
                ("gateway", region),
                ("route", destination),
            ],
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (kind, key)) in self.segments().into_iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{kind}[{key}]")?;
        }
        Ok(())
    }
}

/// A text that is not an address.
#[derive(Debug, thiserror::Error)]
#[error("not a resource address: `{text}` ({why})")]
pub struct AddressParseError {
    text: String,
    why: &'static str,
}

impl FromStr for Address {
    type Err = AddressParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |why| AddressParseError {
            text: text.to_owned(),
            why,
        };
        let mut segments: Vec<(&str, &str)> = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let open = rest.find('[').ok_or_else(|| fail("missing `[`"))?;
            let close = rest[open..]
                .find(']')
                .map(|i| i + open)
                .ok_or_else(|| fail("missing `]`"))?;
            segments.push((&rest[..open], &rest[open + 1..close]));
            rest = &rest[close + 1..];
            if let Some(stripped) = rest.strip_prefix('.') {
                rest = stripped;
            } else if !rest.is_empty() {
                return Err(fail("segments must be joined by `.`"));
            }
        }
        let s = |v: &str| v.to_owned();
        let address = match segments.as_slice() {
            [("GlobalAccelerator", a)] => Address::Accelerator { accelerator: s(a) },
            [("GlobalAccelerator", a), ("listener", l)] => Address::Listener {
                accelerator: s(a),
                listener: s(l),
            },
            [
                ("GlobalAccelerator", a),
                ("listener", l),
                ("endpointGroup", r),
            ] => Address::EndpointGroup {
                accelerator: s(a),
                listener: s(l),
                region: s(r),
            },
            [
                ("GlobalAccelerator", a),
                ("listener", l),
                ("endpointGroup", r),
                ("endpoint", e),
            ] => Address::Endpoint {
                accelerator: s(a),
                listener: s(l),
                region: s(r),
                endpoint: s(e),
            },
            [("HealthCheck", n)] => Address::HealthCheck { name: s(n) },
            [("BackendService", n)] => Address::BackendService { name: s(n) },
            [("BackendService", n), ("backend", g)] => Address::Backend {
                service: s(n),
                group: s(g),
            },
            [("UrlMap", n)] => Address::UrlMap { name: s(n) },
            [("TransitGatewayMesh", m), ("gateway", r)] => Address::TransitGateway {
                mesh: s(m),
                region: s(r),
            },
            [("TransitGatewayMesh", m), ("peering", r), ("to", a)] => Address::Peering {
                mesh: s(m),
                requester: s(r),
                accepter: s(a),
            },
            [("TransitGatewayMesh", m), ("gateway", r), ("route", d)] => Address::Route {
                mesh: s(m),
                region: s(r),
                destination: s(d),
            },
            _ => return Err(fail("unknown shape")),
        };
        Ok(address)
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_ids_with_separators() {
        let addresses = [
            Address::Endpoint {
                accelerator: "api".into(),
                listener: "https".into(),
                region: "eu-central-1".into(),
                endpoint: "arn:aws:elasticloadbalancing:eu-central-1:1:loadbalancer/app/eu/abc"
                    .into(),
            },
            Address::Route {
                mesh: "core".into(),
                region: "us-east-1".into(),
                destination: "10.2.0.0/16".into(),
            },
            Address::Backend {
                service: "app".into(),
                group: "regions/europe-west1/networkEndpointGroups/app-eu".into(),
            },
            Address::Peering {
                mesh: "core".into(),
                requester: "us-east-1".into(),
                accepter: "eu-central-1".into(),
            },
        ];
        for address in addresses {
            let text = address.to_string();
            assert_eq!(text.parse::<Address>().expect("parses"), address, "{text}");
        }
    }

    #[test]
    fn rejects_unknown_shapes() {
        assert!("Listener[x]".parse::<Address>().is_err());
        assert!(
            "GlobalAccelerator[api]listener[x]"
                .parse::<Address>()
                .is_err()
        );
        assert!("GlobalAccelerator[api".parse::<Address>().is_err());
    }
}
