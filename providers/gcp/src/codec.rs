//! The Compute Engine API's shapes and meridian's values, both ways.

use google_cloud_compute_v1::model;
use meridian_provider::{
    BackendServiceSpec, BackendSpec, HealthCheckSpec, HostRule, PathMatcher, PathRule, UrlMapSpec,
};

use crate::COMPUTE_BASE;

/// An f32 from the API as the decimal it was written as (0.7, not
/// 0.699999988079071).
pub(crate) fn decimal(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(f64::from(value))
}

pub(crate) fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The part of a resource URL after `projects/{project}/`, e.g.
/// `regions/us-east1/networkEndpointGroups/app-us`.
pub(crate) fn relative(url: &str) -> String {
    let trimmed = url
        .find("/compute/v1/")
        .map(|i| &url[i + "/compute/v1/".len()..])
        .unwrap_or(url);
    match trimmed.strip_prefix("projects/") {
        Some(rest) => rest
            .split_once('/')
            .map(|(_, r)| r)
            .unwrap_or("")
            .to_owned(),
        None => trimmed.to_owned(),
    }
}

/// The last segment of a resource URL (a name).
pub(crate) fn last_segment(url: &str) -> String {
    url.rsplit('/').next().unwrap_or(url).to_owned()
}

/// The region of a backend group path (`zones/us-east1-b/...` is in `us-east1`).
pub(crate) fn group_region(group: &str) -> String {
    let parts: Vec<&str> = group.split('/').collect();
    match parts.as_slice() {
        ["regions", region, ..] => (*region).to_owned(),
        ["zones", zone, ..] => zone
            .rsplit_once('-')
            .map(|(r, _)| r.to_owned())
            .unwrap_or_else(|| (*zone).to_owned()),
        _ => String::new(),
    }
}

pub(crate) fn health_check_spec(project: &str, check: &model::HealthCheck) -> HealthCheckSpec {
    let check_type = check
        .r#type
        .as_ref()
        .and_then(|t| t.name())
        .unwrap_or("TCP")
        .to_owned();
    let (port, request_path, host) = match check_type.as_str() {
        "HTTP" => check
            .http_health_check
            .as_ref()
            .map(|h| (h.port, h.request_path.clone(), h.host.clone())),
        "HTTPS" => check
            .https_health_check
            .as_ref()
            .map(|h| (h.port, h.request_path.clone(), h.host.clone())),
        "HTTP2" => check
            .http_2_health_check
            .as_ref()
            .map(|h| (h.port, h.request_path.clone(), h.host.clone())),
        "SSL" => check
            .ssl_health_check
            .as_ref()
            .map(|h| (h.port, None, None)),
        "GRPC" => check
            .grpc_health_check
            .as_ref()
            .map(|h| (h.port, None, None)),
        _ => check
            .tcp_health_check
            .as_ref()
            .map(|h| (h.port, None, None)),
    }
    .unwrap_or((None, None, None));
    let n = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
    HealthCheckSpec {
        project: project.to_owned(),
        check_type,
        check_interval_sec: n(check.check_interval_sec),
        timeout_sec: n(check.timeout_sec),
        healthy_threshold: n(check.healthy_threshold),
        unhealthy_threshold: n(check.unhealthy_threshold),
        port: port.and_then(|p| u16::try_from(p).ok()).unwrap_or(0),
        request_path,
        host,
    }
}

pub(crate) fn health_check_body(name: &str, spec: &HealthCheckSpec) -> model::HealthCheck {
    let port = i32::from(spec.port);
    let mut check = model::HealthCheck::new()
        .set_name(name)
        .set_type(model::health_check::Type::from(spec.check_type.as_str()))
        .set_check_interval_sec(i32::try_from(spec.check_interval_sec).unwrap_or(i32::MAX))
        .set_timeout_sec(i32::try_from(spec.timeout_sec).unwrap_or(i32::MAX))
        .set_healthy_threshold(i32::try_from(spec.healthy_threshold).unwrap_or(i32::MAX))
        .set_unhealthy_threshold(i32::try_from(spec.unhealthy_threshold).unwrap_or(i32::MAX));
    match spec.check_type.as_str() {
        "HTTP" => {
            check = check.set_http_health_check(
                model::HTTPHealthCheck::new()
                    .set_port(port)
                    .set_or_clear_request_path(spec.request_path.clone())
                    .set_or_clear_host(spec.host.clone()),
            );
        }
        "HTTPS" => {
            check = check.set_https_health_check(
                model::HTTPSHealthCheck::new()
                    .set_port(port)
                    .set_or_clear_request_path(spec.request_path.clone())
                    .set_or_clear_host(spec.host.clone()),
            );
        }
        "HTTP2" => {
            check = check.set_http_2_health_check(
                model::HTTP2HealthCheck::new()
                    .set_port(port)
                    .set_or_clear_request_path(spec.request_path.clone())
                    .set_or_clear_host(spec.host.clone()),
            );
        }
        "SSL" => check = check.set_ssl_health_check(model::SSLHealthCheck::new().set_port(port)),
        "GRPC" => check = check.set_grpc_health_check(model::GRPCHealthCheck::new().set_port(port)),
        _ => check = check.set_tcp_health_check(model::TCPHealthCheck::new().set_port(port)),
    }
    check
}

pub(crate) fn backend_service_spec(
    project: &str,
    service: &model::BackendService,
) -> BackendServiceSpec {
    let mut health_checks: Vec<String> = service
        .health_checks
        .iter()
        .map(|h| last_segment(h))
        .collect();
    health_checks.sort();
    BackendServiceSpec {
        project: project.to_owned(),
        protocol: service
            .protocol
            .as_ref()
            .and_then(|p| p.name())
            .unwrap_or("HTTP")
            .to_owned(),
        port_name: service.port_name.clone(),
        timeout_sec: service
            .timeout_sec
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(30),
        load_balancing_scheme: service
            .load_balancing_scheme
            .as_ref()
            .and_then(|s| s.name())
            .unwrap_or("EXTERNAL")
            .to_owned(),
        enable_cdn: service.enable_cdn.unwrap_or(false),
        health_checks,
    }
}

pub(crate) fn backend_spec(backend: &model::Backend) -> BackendSpec {
    let group = relative(backend.group.as_deref().unwrap_or_default());
    BackendSpec {
        region: group_region(&group),
        group,
        balancing_mode: backend
            .balancing_mode
            .as_ref()
            .and_then(|m| m.name())
            .unwrap_or("UTILIZATION")
            .to_owned(),
        max_rate: backend.max_rate.and_then(|r| u32::try_from(r).ok()),
        max_rate_per_endpoint: backend.max_rate_per_endpoint.map(decimal),
        max_utilization: backend.max_utilization.map(decimal),
        max_connections: backend.max_connections.and_then(|c| u32::try_from(c).ok()),
        // The API's default is 1; 0 is a real value (drained).
        capacity_scaler: backend.capacity_scaler.map(decimal).unwrap_or(1.0),
    }
}

/// `live` with meridian's managed backend fields set from `spec`; every
/// field meridian does not manage keeps its live value.
pub(crate) fn backend_body(
    project: &str,
    live: Option<&model::Backend>,
    spec: &BackendSpec,
) -> model::Backend {
    let mut backend = live.cloned().unwrap_or_default();
    backend.group = Some(format!("{COMPUTE_BASE}projects/{project}/{}", spec.group));
    backend.balancing_mode = Some(model::backend::BalancingMode::from(
        spec.balancing_mode.as_str(),
    ));
    backend.max_rate = spec.max_rate.and_then(|r| i32::try_from(r).ok());
    backend.max_rate_per_endpoint = spec.max_rate_per_endpoint.map(|r| r as f32);
    backend.max_utilization = spec.max_utilization.map(|u| u as f32);
    backend.max_connections = spec.max_connections.and_then(|c| i32::try_from(c).ok());
    backend.capacity_scaler = Some(spec.capacity_scaler as f32);
    backend
}

pub(crate) fn service_url(project: &str, name: &str) -> String {
    format!("{COMPUTE_BASE}projects/{project}/global/backendServices/{name}")
}

pub(crate) fn url_map_spec(project: &str, map: &model::UrlMap) -> UrlMapSpec {
    let service = |s: &Option<String>| last_segment(s.as_deref().unwrap_or_default());
    UrlMapSpec {
        project: project.to_owned(),
        default_service: service(&map.default_service),
        host_rules: map
            .host_rules
            .iter()
            .map(|r| HostRule {
                hosts: r.hosts.clone(),
                path_matcher: r.path_matcher.clone().unwrap_or_default(),
            })
            .collect(),
        path_matchers: map
            .path_matchers
            .iter()
            .map(|m| PathMatcher {
                name: m.name.clone().unwrap_or_default(),
                default_service: service(&m.default_service),
                path_rules: m
                    .path_rules
                    .iter()
                    .map(|r| PathRule {
                        paths: r.paths.clone(),
                        service: service(&r.service),
                    })
                    .collect(),
            })
            .collect(),
    }
}

pub(crate) fn url_map_body(name: &str, spec: &UrlMapSpec) -> model::UrlMap {
    let project = spec.project.as_str();
    model::UrlMap::new()
        .set_name(name)
        .set_default_service(service_url(project, &spec.default_service))
        .set_host_rules(spec.host_rules.iter().map(|r| {
            model::HostRule::new()
                .set_hosts(r.hosts.clone())
                .set_path_matcher(r.path_matcher.clone())
        }))
        .set_path_matchers(spec.path_matchers.iter().map(|m| {
            model::PathMatcher::new()
                .set_name(m.name.clone())
                .set_default_service(service_url(project, &m.default_service))
                .set_path_rules(m.path_rules.iter().map(|r| {
                    model::PathRule::new()
                        .set_paths(r.paths.clone())
                        .set_service(service_url(project, &r.service))
                }))
        }))
}

pub(crate) fn backend_service_body(name: &str, spec: &BackendServiceSpec) -> model::BackendService {
    let project = spec.project.as_str();
    model::BackendService::new()
        .set_name(name)
        .set_protocol(model::backend_service::Protocol::from(
            spec.protocol.as_str(),
        ))
        .set_or_clear_port_name(spec.port_name.clone())
        .set_timeout_sec(i32::try_from(spec.timeout_sec).unwrap_or(i32::MAX))
        .set_load_balancing_scheme(model::backend_service::LoadBalancingScheme::from(
            spec.load_balancing_scheme.as_str(),
        ))
        .set_enable_cdn(spec.enable_cdn)
        .set_health_checks(
            spec.health_checks
                .iter()
                .map(|h| format!("{COMPUTE_BASE}projects/{project}/global/healthChecks/{h}")),
        )
}
