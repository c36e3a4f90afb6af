//! `meridian import`: desired-state documents for live objects meridian
//! does not own, minimal and deterministic, pinned to their cloud identity
//! (`meridian.dev/external-id`), so that `plan` on them proposes adopt
//! actions only.
//!
//! Minimal means: only the fields a user sets. A value equal to the
//! default meridian applies (which is the value the cloud reports for a
//! field nobody set, see docs/adopting.md) is left out, so the document
//! reads like one written by hand and never differs from the live object.

use std::collections::BTreeMap;

use meridian_provider::{Address, Observed, Resource};
use serde_json::{Map, Value, json};

use crate::model::EXTERNAL_ID_KEY;

/// One document written by import.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedDocument {
    /// `Kind/name`.
    pub id: String,
    /// File name under `--out`: `kind-name.yaml`.
    pub file: String,
    /// The YAML text.
    pub text: String,
}

/// A GCP object's selfLink from its relative path.
const COMPUTE: &str = "https://compute.googleapis.com/compute/v1/";

/// A valid document name for a live name: lowercase letters, digits and
/// `-`, starting with a letter, at most 63 characters.
pub fn document_name(live: &str, prefix: &str) -> String {
    let mut out = String::new();
    for c in live.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out = out.trim_matches('-').to_owned();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out = format!("{prefix}-{out}");
    }
    out.truncate(63);
    out.trim_end_matches('-').to_owned()
}

fn unique(name: String, taken: &mut BTreeMap<String, usize>) -> String {
    let n = taken.entry(name.clone()).or_default();
    *n += 1;
    if *n == 1 { name } else { format!("{name}-{n}") }
}

/// The documents for what a provider discovered, with what could not be
/// expressed.
pub fn documents(provider: &str, objects: &[Observed]) -> (Vec<ImportedDocument>, Vec<String>) {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let mut taken: BTreeMap<String, usize> = BTreeMap::new();
    let children = |parent: &Address| -> Vec<&Observed> {
        objects
            .iter()
            .filter(|o| o.address.parent().as_ref() == Some(parent))
            .collect()
    };
    for object in objects {
        let external = object.cloud_id.clone().unwrap_or_default();
        match (&object.address, &object.resource) {
            (Address::Accelerator { .. }, Resource::Accelerator(spec)) => {
                let name = unique(document_name(&spec.name, "ga"), &mut taken);
                let mut body = Map::new();
                body.insert("provider".into(), json!(provider));
                if spec.name != name {
                    body.insert("acceleratorName".into(), json!(spec.name));
                }
                if !spec.enabled {
                    body.insert("enabled".into(), json!(false));
                }
                if spec.ip_address_type != "IPV4" {
                    body.insert("ipAddressType".into(), json!(spec.ip_address_type));
                }
                if !spec.tags.is_empty() {
                    body.insert("tags".into(), json!(spec.tags));
                }
                let mut listeners = Vec::new();
                let mut listener_names: BTreeMap<String, usize> = BTreeMap::new();
                let mut live_listeners = children(&object.address);
                live_listeners.sort_by_key(|l| match &l.resource {
                    Resource::Listener(s) => (s.port_ranges.clone(), s.protocol.clone()),
                    _ => (Vec::new(), String::new()),
                });
                for listener in live_listeners {
                    let Resource::Listener(ls) = &listener.resource else {
                        continue;
                    };
                    let first = ls.port_ranges.first().map_or(0, |r| r.from);
                    let handle = unique(
                        format!("{}-{first}", ls.protocol.to_ascii_lowercase()),
                        &mut listener_names,
                    );
                    let mut l = Map::new();
                    l.insert("name".into(), json!(handle));
                    l.insert("protocol".into(), json!(ls.protocol));
                    l.insert(
                        "portRanges".into(),
                        Value::Array(
                            ls.port_ranges
                                .iter()
                                .map(|r| json!({"from": r.from, "to": r.to}))
                                .collect(),
                        ),
                    );
                    if ls.client_affinity != "NONE" {
                        l.insert("clientAffinity".into(), json!(ls.client_affinity));
                    }
                    let mut groups = Vec::new();
                    let mut live_groups = children(&listener.address);
                    live_groups.sort_by_key(|g| g.address.region().unwrap_or_default().to_owned());
                    for group in live_groups {
                        let Resource::EndpointGroup(gs) = &group.resource else {
                            continue;
                        };
                        let mut g = Map::new();
                        g.insert("region".into(), json!(gs.region));
                        if gs.traffic_dial != 100 {
                            g.insert("trafficDial".into(), json!(gs.traffic_dial));
                        }
                        let hc = &gs.health_check;
                        let mut h = Map::new();
                        if hc.protocol != "TCP" {
                            h.insert("protocol".into(), json!(hc.protocol));
                        }
                        if hc.port != first {
                            h.insert("port".into(), json!(hc.port));
                        }
                        if let Some(path) = &hc.path
                            && path != "/"
                        {
                            h.insert("path".into(), json!(path));
                        }
                        if hc.interval_seconds != 30 {
                            h.insert("intervalSeconds".into(), json!(hc.interval_seconds));
                        }
                        if hc.threshold_count != 3 {
                            h.insert("thresholdCount".into(), json!(hc.threshold_count));
                        }
                        if !h.is_empty() {
                            g.insert("healthCheck".into(), Value::Object(h));
                        }
                        if !gs.port_overrides.is_empty() {
                            g.insert(
                                "portOverrides".into(),
                                Value::Array(
                                    gs.port_overrides
                                        .iter()
                                        .map(|o| json!({"listenerPort": o.listener_port, "endpointPort": o.endpoint_port}))
                                        .collect(),
                                ),
                            );
                        }
                        let mut endpoints = Vec::new();
                        let mut live_endpoints = children(&group.address);
                        live_endpoints.sort_by_key(|e| e.cloud_id.clone());
                        for endpoint in live_endpoints {
                            let Resource::Endpoint(es) = &endpoint.resource else {
                                continue;
                            };
                            let mut e = Map::new();
                            e.insert("id".into(), json!(es.id));
                            if es.weight != 128 {
                                e.insert("weight".into(), json!(es.weight));
                            }
                            if es.client_ip_preservation {
                                e.insert("clientIpPreservation".into(), json!(true));
                            }
                            endpoints.push(Value::Object(e));
                        }
                        if !endpoints.is_empty() {
                            g.insert("endpoints".into(), Value::Array(endpoints));
                        }
                        groups.push(Value::Object(g));
                    }
                    if !groups.is_empty() {
                        l.insert("endpointGroups".into(), Value::Array(groups));
                    }
                    listeners.push(Value::Object(l));
                }
                if listeners.is_empty() {
                    notes.push(format!("GlobalAccelerator/{name} ({external}) has no listener: meridian documents need at least one, so it is written but will not validate until you add one"));
                }
                body.insert("listeners".into(), Value::Array(listeners));
                out.push(document("GlobalAccelerator", &name, &external, body));
            }
            (Address::HealthCheck { name }, Resource::HealthCheck(spec)) => {
                let mut body = Map::new();
                body.insert("provider".into(), json!(provider));
                body.insert("type".into(), json!(spec.check_type));
                for (key, value, default) in [
                    ("checkIntervalSec", spec.check_interval_sec, 5),
                    ("timeoutSec", spec.timeout_sec, 5),
                    ("healthyThreshold", spec.healthy_threshold, 2),
                    ("unhealthyThreshold", spec.unhealthy_threshold, 2),
                ] {
                    if value != default {
                        body.insert(key.into(), json!(value));
                    }
                }
                let default_port = match spec.check_type.as_str() {
                    "HTTP" | "TCP" => 80,
                    _ => 443,
                };
                let mut block = Map::new();
                if spec.port != default_port {
                    block.insert("port".into(), json!(spec.port));
                }
                if let Some(path) = &spec.request_path
                    && path != "/"
                {
                    block.insert("requestPath".into(), json!(path));
                }
                if let Some(host) = &spec.host {
                    block.insert("host".into(), json!(host));
                }
                if !block.is_empty() {
                    let key = match spec.check_type.as_str() {
                        "HTTP" => "httpHealthCheck",
                        "HTTPS" => "httpsHealthCheck",
                        "HTTP2" => "http2HealthCheck",
                        "SSL" => "sslHealthCheck",
                        "GRPC" => "grpcHealthCheck",
                        _ => "tcpHealthCheck",
                    };
                    body.insert(key.into(), Value::Object(block));
                }
                out.push(document(
                    "HealthCheck",
                    name,
                    &format!("{COMPUTE}{external}"),
                    body,
                ));
            }
            (Address::BackendService { name }, Resource::BackendService(spec)) => {
                let mut body = Map::new();
                body.insert("provider".into(), json!(provider));
                body.insert("protocol".into(), json!(spec.protocol));
                if let Some(port) = &spec.port_name {
                    body.insert("portName".into(), json!(port));
                }
                if spec.timeout_sec != 30 {
                    body.insert("timeoutSec".into(), json!(spec.timeout_sec));
                }
                if spec.load_balancing_scheme != "EXTERNAL_MANAGED" {
                    body.insert(
                        "loadBalancingScheme".into(),
                        json!(spec.load_balancing_scheme),
                    );
                }
                if spec.enable_cdn {
                    body.insert("enableCDN".into(), json!(true));
                }
                body.insert("healthChecks".into(), json!(spec.health_checks));
                let mut backends = Vec::new();
                let mut live_backends = children(&object.address);
                live_backends.sort_by_key(|b| b.cloud_id.clone());
                for backend in live_backends {
                    let Resource::Backend(bs) = &backend.resource else {
                        continue;
                    };
                    let mut b = Map::new();
                    b.insert("group".into(), json!(bs.group));
                    if bs.balancing_mode != "UTILIZATION" {
                        b.insert("balancingMode".into(), json!(bs.balancing_mode));
                    }
                    if let Some(v) = bs.max_rate {
                        b.insert("maxRate".into(), json!(v));
                    }
                    if let Some(v) = bs.max_rate_per_endpoint {
                        b.insert("maxRatePerEndpoint".into(), json!(v));
                    }
                    if let Some(v) = bs.max_utilization {
                        b.insert("maxUtilization".into(), json!(v));
                    }
                    if let Some(v) = bs.max_connections {
                        b.insert("maxConnections".into(), json!(v));
                    }
                    if bs.capacity_scaler != 1.0 {
                        b.insert("capacityScaler".into(), json!(bs.capacity_scaler));
                    }
                    backends.push(Value::Object(b));
                }
                if !backends.is_empty() {
                    body.insert("backends".into(), Value::Array(backends));
                }
                out.push(document(
                    "BackendService",
                    name,
                    &format!("{COMPUTE}{external}"),
                    body,
                ));
            }
            (Address::UrlMap { name }, Resource::UrlMap(spec)) => {
                let mut body = Map::new();
                body.insert("provider".into(), json!(provider));
                body.insert("defaultService".into(), json!(spec.default_service));
                if !spec.host_rules.is_empty() {
                    body.insert(
                        "hostRules".into(),
                        Value::Array(
                            spec.host_rules
                                .iter()
                                .map(|r| json!({"hosts": r.hosts, "pathMatcher": r.path_matcher}))
                                .collect(),
                        ),
                    );
                }
                if !spec.path_matchers.is_empty() {
                    body.insert(
                        "pathMatchers".into(),
                        Value::Array(
                            spec.path_matchers
                                .iter()
                                .map(|m| {
                                    json!({
                                        "name": m.name,
                                        "defaultService": m.default_service,
                                        "pathRules": m.path_rules.iter().map(|r| json!({"paths": r.paths, "service": r.service})).collect::<Vec<_>>(),
                                    })
                                })
                                .collect(),
                        ),
                    );
                }
                out.push(document(
                    "UrlMap",
                    name,
                    &format!("{COMPUTE}{external}"),
                    body,
                ));
            }
            _ => {}
        }
    }
    let (meshes, mesh_notes) = meshes(provider, objects, &mut taken);
    out.extend(meshes);
    notes.extend(mesh_notes);
    out.sort_by(|a, b| a.file.cmp(&b.file));
    (out, notes)
}

/// `TransitGatewayMesh` documents: gateways joined by peerings form one
/// mesh; each gateway's CIDRs are the destinations the other gateways route
/// to it through their peering.
fn meshes(
    provider: &str,
    objects: &[Observed],
    taken: &mut BTreeMap<String, usize>,
) -> (Vec<ImportedDocument>, Vec<String>) {
    use std::collections::BTreeSet;
    let mut notes = Vec::new();
    // Gateways by id: region, ASN, description.
    let gateways: BTreeMap<&str, (&str, u32, &str)> = objects
        .iter()
        .filter_map(|o| match (&o.resource, &o.cloud_id) {
            (Resource::TransitGateway(g), Some(id)) => Some((
                id.as_str(),
                (g.region.as_str(), g.amazon_side_asn, g.description.as_str()),
            )),
            _ => None,
        })
        .collect();
    // Gateways joined by a peering share a root.
    let mut group: BTreeMap<&str, &str> = gateways.keys().map(|id| (*id, *id)).collect();
    fn root<'a>(group: &BTreeMap<&'a str, &'a str>, mut id: &'a str) -> &'a str {
        while let Some(parent) = group.get(id).filter(|p| **p != id) {
            id = parent;
        }
        id
    }
    // (requester gateway, requester region, accepter region).
    let mut peerings: Vec<(&str, &str, &str)> = Vec::new();
    for o in objects {
        if let (Resource::Peering(p), Some(ends)) = (&o.resource, &o.etag)
            && let Some((a, b)) = ends.split_once('|')
            && let (Some((a, _)), Some((b, _))) =
                (gateways.get_key_value(a), gateways.get_key_value(b))
        {
            let (ra, rb) = (root(&group, a), root(&group, b));
            if ra != rb {
                let (low, high) = if ra < rb { (ra, rb) } else { (rb, ra) };
                group.insert(high, low);
            }
            peerings.push((a, p.requester_region.as_str(), p.accepter_region.as_str()));
        }
    }
    let mut components: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for id in gateways.keys() {
        components.entry(root(&group, id)).or_default().push(id);
    }
    let mut out = Vec::new();
    for members in components.values() {
        let mut members = members.clone();
        members.sort_by_key(|id| gateways[id].0);
        let name = unique(document_name(members[0], "tgw"), taken);
        let regions: BTreeSet<&str> = members.iter().map(|id| gateways[id].0).collect();
        // A route in X to C through the peering with R says C is R's.
        let mut cidrs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut live_routes: BTreeSet<(String, String, String)> = BTreeSet::new();
        for o in objects {
            if let (Address::Route { mesh, .. }, Resource::Route(r)) = (&o.address, &o.resource)
                && members.contains(&mesh.as_str())
            {
                if regions.contains(r.via_peer_region.as_str()) {
                    cidrs
                        .entry(r.via_peer_region.clone())
                        .or_default()
                        .insert(r.destination_cidr.clone());
                    live_routes.insert((
                        r.region.clone(),
                        r.destination_cidr.clone(),
                        r.via_peer_region.clone(),
                    ));
                } else {
                    notes.push(format!("TransitGatewayMesh/{name}: the static route to {} in {} goes through {}, not a peering of the mesh; meridian leaves it alone", r.destination_cidr, r.region, r.via_peer_region));
                }
            }
        }
        let pairs: Vec<(&str, &str)> = peerings
            .iter()
            .filter(|(a, _, _)| members.contains(a))
            .map(|(_, req, acc)| (*req, *acc))
            .collect();
        let mut implied: BTreeSet<(String, String, String)> = BTreeSet::new();
        for (req, acc) in &pairs {
            for (here, there) in [(req, acc), (acc, req)] {
                for cidr in cidrs.get(*there).into_iter().flatten() {
                    implied.insert((here.to_string(), cidr.clone(), there.to_string()));
                }
            }
        }
        for missing in implied.difference(&live_routes) {
            notes.push(format!("TransitGatewayMesh/{name}: {} has no route to {} via {}, which the mesh implies (meridian would add it)", missing.0, missing.1, missing.2));
        }
        let mut gateway_docs = Vec::new();
        for id in &members {
            let (region, asn, description) = gateways[id];
            let mut g = Map::new();
            g.insert("region".into(), json!(region));
            if asn != 64512 {
                g.insert("amazonSideAsn".into(), json!(asn));
            }
            if let Some(list) = cidrs.get(region) {
                g.insert("cidrs".into(), json!(list));
            }
            if description != format!("meridian mesh {name} in {region}") {
                g.insert("description".into(), json!(description));
            }
            gateway_docs.push(Value::Object(g));
        }
        let mut body = Map::new();
        body.insert("provider".into(), json!(provider));
        body.insert("gateways".into(), Value::Array(gateway_docs));
        // Peerings are listed unless they are the full mesh the document
        // would imply (every pair, the gateway listed first requesting).
        let order: Vec<&str> = members.iter().map(|id| gateways[id].0).collect();
        let mut full = Vec::new();
        for (i, a) in order.iter().enumerate() {
            for b in &order[i + 1..] {
                full.push((*a, *b));
            }
        }
        let mut sorted_pairs = pairs.clone();
        sorted_pairs.sort();
        full.sort();
        if sorted_pairs != full {
            body.insert(
                "peerings".into(),
                Value::Array(
                    sorted_pairs
                        .iter()
                        .map(|(req, acc)| json!({"requester": req, "accepter": acc}))
                        .collect(),
                ),
            );
        }
        let pins: Vec<String> = members
            .iter()
            .map(|id| format!("{}={id}", gateways[id].0))
            .collect();
        out.push(document("TransitGatewayMesh", &name, &pins.join(","), body));
    }
    (out, notes)
}

fn document(
    kind: &str,
    name: &str,
    external_id: &str,
    spec: Map<String, Value>,
) -> ImportedDocument {
    let value = json!({
        "apiVersion": "meridian.dev/v1alpha1",
        "kind": kind,
        "metadata": {
            "name": name,
            "annotations": { EXTERNAL_ID_KEY: external_id },
        },
        "spec": Value::Object(spec),
    });
    let mut text = String::new();
    write_yaml(&value, 0, &mut text);
    ImportedDocument {
        id: format!("{kind}/{name}"),
        file: format!("{}-{name}.yaml", kind.to_ascii_lowercase()),
        text,
    }
}

/// A scalar as YAML: plain when that reads back as the same string,
/// double-quoted (JSON escapes are valid YAML) otherwise.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => {
            let plain = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
                && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/')
                && !matches!(
                    s.to_ascii_lowercase().as_str(),
                    "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
                );
            if plain {
                s.clone()
            } else {
                serde_json::to_string(s).unwrap_or_default()
            }
        }
        other => other.to_string(),
    }
}

fn write_yaml(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let key = scalar(&Value::String(key.clone()));
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        write_yaml(v, indent + 2, out);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        write_yaml(v, indent, out);
                    }
                    Value::Object(_) => out.push_str(&format!("{pad}{key}: {{}}\n")),
                    Value::Array(_) => out.push_str(&format!("{pad}{key}: []\n")),
                    scalar_value => {
                        out.push_str(&format!("{pad}{key}: {}\n", scalar(scalar_value)))
                    }
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(map) if !map.is_empty() => {
                        let mut nested = String::new();
                        write_yaml(item, indent + 2, &mut nested);
                        // The first line of the entry follows the dash.
                        let body = nested
                            .strip_prefix(&" ".repeat(indent + 2))
                            .unwrap_or(&nested);
                        out.push_str(&format!("{pad}- {body}"));
                    }
                    Value::Array(_) => {
                        let mut nested = String::new();
                        write_yaml(item, indent + 2, &mut nested);
                        out.push_str(&format!("{pad}-\n{nested}"));
                    }
                    other => out.push_str(&format!("{pad}- {}\n", scalar(other))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_names_become_valid_document_names() {
        assert_eq!(
            document_name("Checkout API (prod)", "ga"),
            "checkout-api-prod"
        );
        assert_eq!(document_name("42-edge", "ga"), "ga-42-edge");
        assert_eq!(document_name("web", "ga"), "web");
    }

    #[test]
    fn yaml_reads_back_as_the_same_value() {
        let value = json!({
            "a": "arn:aws:globalaccelerator::1:accelerator/x",
            "b": [{"c": 1, "d": ["x", "true"]}, {"e": {"f": 0.5}}],
            "g": "plain-name",
        });
        let mut text = String::new();
        write_yaml(&value, 0, &mut text);
        assert!(text.contains("- c: 1\n"), "{text}");
        let parsed = crate::model::yaml::parse_documents(&text).expect("valid YAML");
        assert_eq!(parsed[0].to_json(), value, "{text}");
    }
}
