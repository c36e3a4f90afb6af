//! The front of the GCP global load balancer chain: target HTTP and HTTPS
//! proxies (each pointing at a URL map) and global forwarding rules (each
//! pointing at a target proxy, with the load balancer's address and port).
//!
//! meridian does not manage these; the sandbox serves them so that the
//! chain the seed architecture configures (forwarding rule → target proxy →
//! URL map → backend services) can be built and read with Google's own
//! clients against the same world, with GCP's reference rules: a proxy
//! needs an existing URL map, a rule an existing proxy, and nothing in use
//! can be deleted.

use crate::cloud::{Page, SimCloud, SimError, api, fingerprint, paginate};
use crate::world::{FrontendKind, GcpFrontend, World, frontend_key, now_ms};

fn link(project: &str, kind: FrontendKind, name: &str) -> String {
    format!("projects/{project}/global/{}/{name}", kind.collection())
}

fn not_found(operation: &str, project: &str, kind: FrontendKind, name: &str) -> SimError {
    api(
        operation,
        "notFound",
        format!("The resource '{}' was not found", link(project, kind, name)),
    )
}

/// The first target proxy that uses URL map `name`, as a resource path.
pub(crate) fn url_map_user(world: &World, project: &str, name: &str) -> Option<String> {
    world
        .frontends
        .values()
        .find(|f| f.project == project && f.url_map.as_deref() == Some(name))
        .map(|f| link(project, f.kind, &f.name))
}

/// The first forwarding rule whose target is `kind`/`name`.
fn target_user(world: &World, project: &str, kind: FrontendKind, name: &str) -> Option<String> {
    let target = format!("{}/{name}", kind.collection());
    world
        .frontends
        .values()
        .find(|f| f.project == project && f.target.as_deref() == Some(target.as_str()))
        .map(|f| link(project, f.kind, &f.name))
}

/// A target reference `targetHttpProxies/NAME` or `targetHttpsProxies/NAME`.
fn target_of(target: &str) -> Option<(FrontendKind, &str)> {
    let (collection, name) = target.split_once('/')?;
    let kind = match collection {
        "targetHttpProxies" => FrontendKind::TargetHttpProxy,
        "targetHttpsProxies" => FrontendKind::TargetHttpsProxy,
        _ => return None,
    };
    Some((kind, name))
}

/// GCP's reference and field rules for one front-end object.
fn check(world: &World, operation: &str, f: &GcpFrontend) -> Result<(), SimError> {
    let invalid = |field: &str, message: String| {
        api(
            operation,
            "invalid",
            format!("Invalid value for field 'resource.{field}': {message}"),
        )
    };
    match f.kind {
        FrontendKind::TargetHttpProxy | FrontendKind::TargetHttpsProxy => {
            let Some(map) = &f.url_map else {
                return Err(invalid(
                    "urlMap",
                    "''. A target proxy needs a URL map.".to_owned(),
                ));
            };
            if !world.url_maps.contains_key(&format!("{}/{map}", f.project)) {
                return Err(api(
                    operation,
                    "invalid",
                    format!(
                        "The resource 'projects/{}/global/urlMaps/{map}' was not found",
                        f.project
                    ),
                ));
            }
            if f.kind == FrontendKind::TargetHttpsProxy && f.ssl_certificates.is_empty() {
                return Err(invalid(
                    "sslCertificates",
                    "''. An HTTPS proxy needs at least one SSL certificate.".to_owned(),
                ));
            }
        }
        FrontendKind::ForwardingRule => {
            let Some(target) = &f.target else {
                return Err(invalid(
                    "target",
                    "''. A global forwarding rule needs a target proxy.".to_owned(),
                ));
            };
            let Some((kind, name)) = target_of(target) else {
                return Err(invalid(
                    "target",
                    format!(
                        "'{target}'. The sandbox serves targetHttpProxies and targetHttpsProxies as targets."
                    ),
                ));
            };
            if !world
                .frontends
                .contains_key(&frontend_key(&f.project, kind, name))
            {
                return Err(api(
                    operation,
                    "invalid",
                    format!(
                        "The resource '{}' was not found",
                        link(&f.project, kind, name)
                    ),
                ));
            }
            if let Some(ports) = &f.port_range
                && !valid_port_range(ports)
            {
                return Err(invalid(
                    "portRange",
                    format!("'{ports}'. Must be a port or a range N-M of ports 1-65535."),
                ));
            }
            if let Some(scheme) = &f.load_balancing_scheme
                && !["EXTERNAL", "EXTERNAL_MANAGED"].contains(&scheme.as_str())
            {
                return Err(invalid(
                    "loadBalancingScheme",
                    format!(
                        "'{scheme}'. The sandbox serves EXTERNAL and EXTERNAL_MANAGED global forwarding rules."
                    ),
                ));
            }
            if let Some(protocol) = &f.ip_protocol
                && protocol != "TCP"
            {
                return Err(invalid(
                    "IPProtocol",
                    format!("'{protocol}'. A rule for a target HTTP(S) proxy must be TCP."),
                ));
            }
        }
    }
    Ok(())
}

fn valid_port_range(text: &str) -> bool {
    let port = |p: &str| p.parse::<u16>().is_ok_and(|p| p >= 1);
    match text.split_once('-') {
        Some((lo, hi)) => port(lo) && port(hi) && lo.parse::<u16>().ok() <= hi.parse::<u16>().ok(),
        None => port(text),
    }
}

fn fingerprint_of(f: &GcpFrontend, generation: u64) -> String {
    fingerprint(
        &(
            &f.url_map,
            &f.ssl_certificates,
            &f.target,
            &f.port_range,
            &f.labels,
        ),
        generation,
    )
}

impl SimCloud {
    /// `{api}.list` of one kind of front-end object, in pages of at most
    /// `page_limit` (the world's `max_page_size` when `None`).
    pub async fn list_frontends(
        &self,
        kind: FrontendKind,
        project: &str,
        max_results: Option<usize>,
        page_token: Option<&str>,
        page_limit: Option<usize>,
    ) -> Result<Page<GcpFrontend>, SimError> {
        self.list_frontends_as(
            &format!("{}.list", kind.api()),
            kind,
            project,
            max_results,
            page_token,
            page_limit,
        )
        .await
    }

    /// A list of one kind of front-end object under another operation's
    /// name (`{api}.aggregatedList`).
    pub async fn list_frontends_as(
        &self,
        operation: &str,
        kind: FrontendKind,
        project: &str,
        max_results: Option<usize>,
        page_token: Option<&str>,
        page_limit: Option<usize>,
    ) -> Result<Page<GcpFrontend>, SimError> {
        self.call(operation, false, |world| {
            let all: Vec<_> = world
                .frontends
                .values()
                .filter(|f| f.project == project && f.kind == kind)
                .cloned()
                .collect();
            paginate(
                operation,
                all,
                |f: &GcpFrontend| f.name.clone(),
                max_results,
                page_token,
                page_limit.unwrap_or(world.settings.max_page_size),
            )
        })
        .await
    }

    /// `{api}.get`.
    pub async fn get_frontend(
        &self,
        kind: FrontendKind,
        project: &str,
        name: &str,
    ) -> Result<GcpFrontend, SimError> {
        let operation = format!("{}.get", kind.api());
        self.call(&operation, false, |world| {
            world
                .frontends
                .get(&frontend_key(project, kind, name))
                .cloned()
                .ok_or_else(|| not_found(&operation, project, kind, name))
        })
        .await
    }

    /// `{api}.insert`: `new` with its id, fingerprint, creation time and (for
    /// a forwarding rule without one) an ephemeral address filled in.
    pub async fn insert_frontend(&self, new: GcpFrontend) -> Result<GcpFrontend, SimError> {
        let operation = format!("{}.insert", new.kind.api());
        let op = operation.as_str();
        self.call(op, true, |world| {
            let key = new.key();
            if world.frontends.contains_key(&key) {
                return Err(api(
                    op,
                    "alreadyExists",
                    format!(
                        "The resource '{}' already exists",
                        link(&new.project, new.kind, &new.name)
                    ),
                ));
            }
            check(world, op, &new)?;
            let id = world.fresh_id();
            let mut written = new;
            written.id = (7_000_000_000_000_000_000u64 + id).to_string();
            written.created_ms = now_ms();
            written.fingerprint = fingerprint_of(&written, id);
            if written.kind == FrontendKind::ForwardingRule {
                if written.ip_address.is_none() {
                    // An ephemeral global address, stable for this rule.
                    written.ip_address = Some(format!(
                        "34.{}.{}.{}",
                        96 + id / 65_536 % 32,
                        id / 256 % 256,
                        id % 256
                    ));
                }
                let default_port = match written.target.as_deref().and_then(target_of) {
                    Some((FrontendKind::TargetHttpsProxy, _)) => "443-443",
                    _ => "80-80",
                };
                written
                    .port_range
                    .get_or_insert_with(|| default_port.to_owned());
                written.ip_protocol.get_or_insert_with(|| "TCP".to_owned());
                written
                    .load_balancing_scheme
                    .get_or_insert_with(|| "EXTERNAL".to_owned());
            }
            let detail = match written.kind {
                FrontendKind::ForwardingRule => format!(
                    "target={} address={}",
                    written.target.as_deref().unwrap_or(""),
                    written.ip_address.as_deref().unwrap_or("")
                ),
                _ => format!("urlMap={}", written.url_map.as_deref().unwrap_or("")),
            };
            world.frontends.insert(key, written.clone());
            world.record(op, &written.name, detail);
            Ok(written)
        })
        .await
    }

    /// A change of one front-end object (`patch`, `setUrlMap`, `setTarget`,
    /// `setSslCertificates`, `setLabels`), guarded by the fingerprint when
    /// the caller sends one: `change` sees the current object inside the
    /// transaction and returns the new one (name, kind, project, id and
    /// address are kept).
    pub async fn modify_frontend(
        &self,
        kind: FrontendKind,
        verb: &str,
        project: &str,
        name: &str,
        fingerprint_seen: Option<&str>,
        change: impl FnOnce(&GcpFrontend) -> Result<GcpFrontend, SimError>,
    ) -> Result<GcpFrontend, SimError> {
        let operation = format!("{}.{verb}", kind.api());
        let op = operation.as_str();
        self.call(op, true, |world| {
            let key = frontend_key(project, kind, name);
            let current = world
                .frontends
                .get(&key)
                .ok_or_else(|| not_found(op, project, kind, name))?;
            if fingerprint_seen.is_some_and(|f| f != current.fingerprint) {
                return Err(api(
                    op,
                    "conditionNotMet",
                    "Supplied fingerprint does not match current fingerprint.",
                ));
            }
            let mut next = change(current)?;
            next.kind = kind;
            next.project = project.to_owned();
            next.name = name.to_owned();
            next.id.clone_from(&current.id);
            next.created_ms = current.created_ms;
            if kind == FrontendKind::ForwardingRule && next.ip_address != current.ip_address {
                return Err(api(
                    op,
                    "invalid",
                    "Invalid value for field 'resource.IPAddress': a forwarding rule's address cannot be changed.",
                ));
            }
            check(world, op, &next)?;
            let generation = world.fresh_id();
            next.fingerprint = fingerprint_of(&next, generation);
            let detail = match kind {
                FrontendKind::ForwardingRule => {
                    format!("target={}", next.target.as_deref().unwrap_or(""))
                }
                _ => format!("urlMap={}", next.url_map.as_deref().unwrap_or("")),
            };
            world.frontends.insert(key, next.clone());
            world.record(op, name, detail);
            Ok(next)
        })
        .await
    }

    /// `{api}.delete`: refused while a forwarding rule targets the proxy.
    pub async fn delete_frontend(
        &self,
        kind: FrontendKind,
        project: &str,
        name: &str,
    ) -> Result<(), SimError> {
        let operation = format!("{}.delete", kind.api());
        let op = operation.as_str();
        self.call(op, true, |world| {
            if kind != FrontendKind::ForwardingRule
                && let Some(user) = target_user(world, project, kind, name)
            {
                return Err(api(
                    op,
                    "resourceInUseByAnotherResource",
                    format!(
                        "The {} resource '{}' is already being used by '{user}'",
                        kind.collection(),
                        link(project, kind, name)
                    ),
                ));
            }
            world
                .frontends
                .remove(&frontend_key(project, kind, name))
                .ok_or_else(|| not_found(op, project, kind, name))?;
            world.record(op, name, "");
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_are_ports_or_ordered_ranges() {
        assert!(valid_port_range("80"));
        assert!(valid_port_range("80-80"));
        assert!(valid_port_range("8000-8080"));
        assert!(!valid_port_range("0"));
        assert!(!valid_port_range("90-80"));
        assert!(!valid_port_range("http"));
        assert!(!valid_port_range("80-70000"));
    }

    #[test]
    fn targets_name_a_proxy_collection() {
        assert_eq!(
            target_of("targetHttpProxies/web"),
            Some((FrontendKind::TargetHttpProxy, "web"))
        );
        assert_eq!(target_of("backendServices/web"), None);
    }
}
