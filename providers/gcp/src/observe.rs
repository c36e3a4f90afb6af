//! Observation: health checks, backend services (with their backends and,
//! when asked, their health) and URL maps, by paged list calls.

use google_cloud_compute_v1::model;
use std::collections::BTreeMap;

use meridian_provider::{
    ADOPTED_KEY, Address, Claim, DiscoverRequest, LiveOverride, MANAGED_BY_KEY, MANAGED_BY_VALUE,
    OWNER_KEY, Observed, ProviderError, Resource, Unclaimed, overrides,
};

use crate::codec::{backend_service_spec, backend_spec, base64, health_check_spec, url_map_spec};
use crate::{COMPUTE_BASE, GcpProvider, PAGE_SIZE};

/// Which objects an observation takes.
pub(crate) enum Scope<'a> {
    /// Those meridian owns, and the unowned ones claimed by desired state,
    /// by (kind, name).
    Managed {
        claims: BTreeMap<(String, String), &'a Claim>,
    },
    /// Those nobody's meridian owns, for `meridian import`.
    Unowned(&'a DiscoverRequest),
}

/// The Compute collection of a document kind.
pub(crate) fn collection_of(kind: &str) -> &'static str {
    match kind {
        "HealthCheck" => "healthChecks",
        "BackendService" => "backendServices",
        _ => "urlMaps",
    }
}

impl GcpProvider {
    // ----- observation -------------------------------------------------------

    pub(crate) async fn list_health_checks(
        &self,
    ) -> Result<Vec<model::HealthCheck>, ProviderError> {
        self.list_all(
            "healthChecks.list",
            "list health checks",
            |token| {
                self.health_checks
                    .list()
                    .set_project(self.project())
                    .set_max_results(PAGE_SIZE)
                    .set_or_clear_page_token(token)
                    .send()
            },
            |page| (page.items, page.next_page_token),
        )
        .await
    }

    pub(crate) async fn list_backend_services(
        &self,
    ) -> Result<Vec<model::BackendService>, ProviderError> {
        self.list_all(
            "backendServices.list",
            "list backend services",
            |token| {
                self.backend_services
                    .list()
                    .set_project(self.project())
                    .set_max_results(PAGE_SIZE)
                    .set_or_clear_page_token(token)
                    .send()
            },
            |page| (page.items, page.next_page_token),
        )
        .await
    }

    pub(crate) async fn list_url_maps(&self) -> Result<Vec<model::UrlMap>, ProviderError> {
        self.list_all(
            "urlMaps.list",
            "list URL maps",
            |token| {
                self.url_maps
                    .list()
                    .set_project(self.project())
                    .set_max_results(PAGE_SIZE)
                    .set_or_clear_page_token(token)
                    .send()
            },
            |page| (page.items, page.next_page_token),
        )
        .await
    }

    /// Every item of a paged list call, one call per page.
    pub(crate) async fn list_all<P, T, F, Fut>(
        &self,
        operation: &str,
        what: &str,
        list: F,
        split: impl Fn(P) -> (Vec<T>, Option<String>),
    ) -> Result<Vec<T>, ProviderError>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<P, google_cloud_gax::error::Error>>,
    {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.read(operation, what, || list(token.clone())).await?;
            let (items, next) = split(page);
            all.extend(items);
            match next.filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// The health of one backend: `healthy` when any of its endpoints is,
    /// `unhealthy` when all report unhealthy, `unknown` when none report.
    pub(crate) async fn backend_health(
        &self,
        service: &str,
        group: &str,
    ) -> Result<String, ProviderError> {
        let what = format!("health of {group} in backend service {service}");
        let url = format!("{COMPUTE_BASE}projects/{}/{group}", self.project());
        let health = self
            .read("backendServices.getHealth", &what, || {
                self.backend_services
                    .get_health()
                    .set_project(self.project())
                    .set_backend_service(service)
                    .set_body(model::ResourceGroupReference::new().set_group(url.clone()))
                    .send()
            })
            .await?;
        let states: Vec<&str> = health
            .health_status
            .iter()
            .filter_map(|s| s.health_state.as_ref().and_then(|h| h.name()))
            .collect();
        Ok(if states.contains(&"HEALTHY") {
            "healthy"
        } else if states.is_empty() {
            "unknown"
        } else {
            "unhealthy"
        }
        .to_owned())
    }

    /// Whether an object with this description is observed, and as what:
    /// `Some(true)` owned, `Some(false)` claimed or discovered but not
    /// owned yet, `None` left out (with the reason, when a claim named it).
    fn take(
        &self,
        scope: &Scope<'_>,
        kind: &str,
        name: &str,
        description: &Option<String>,
        unclaimed: &mut Vec<Unclaimed>,
    ) -> Option<bool> {
        let owned = self.owns(description);
        match scope {
            Scope::Managed { claims } => {
                if owned {
                    return Some(true);
                }
                let claimed = claims.get(&(kind.to_owned(), name.to_owned()))?;
                if description
                    .as_deref()
                    .is_some_and(|d| d.contains(&format!("[{MANAGED_BY_KEY}={MANAGED_BY_VALUE} ")))
                {
                    unclaimed.push(Unclaimed {
                        address: claimed.address.clone(),
                        external_id: claimed.external_id.clone(),
                        reason: format!("{kind} `{name}` is managed by another meridian owner (its description carries another `{OWNER_KEY}`); release it there first"),
                    });
                    return None;
                }
                Some(false)
            }
            Scope::Unowned(request) => {
                if owned
                    || description
                        .as_deref()
                        .is_some_and(|d| d.contains(&format!("[{MANAGED_BY_KEY}=")))
                {
                    return None;
                }
                let wanted = request.name.as_deref().is_none_or(|n| n == name)
                    && request.id.as_deref().is_none_or(|id| {
                        id == name || id.ends_with(&format!("/{}/{name}", collection_of(kind)))
                    });
                wanted.then_some(false)
            }
        }
    }

    pub(crate) async fn observe_all(
        &self,
        with_health: bool,
        overrides: &mut Vec<LiveOverride>,
        scope: Scope<'_>,
        unclaimed: &mut Vec<Unclaimed>,
    ) -> Result<Vec<Observed>, ProviderError> {
        let project = self.project();
        let mut found = Vec::new();
        let adopted = |description: &Option<String>| {
            description
                .as_deref()
                .is_some_and(|d| d.contains(&format!("[{ADOPTED_KEY}=")))
        };
        for check in self.list_health_checks().await? {
            let name = check.name.clone().unwrap_or_default();
            let Some(owned) =
                self.take(&scope, "HealthCheck", &name, &check.description, unclaimed)
            else {
                continue;
            };
            let mut observed = Observed::new(
                Address::HealthCheck { name: name.clone() },
                Resource::HealthCheck(health_check_spec(project, &check)),
                Some(format!("projects/{project}/global/healthChecks/{name}")),
            );
            observed.owned = owned;
            observed.adopted = adopted(&check.description);
            found.push(observed);
        }
        for service in self.list_backend_services().await? {
            let name = service.name.clone().unwrap_or_default();
            let Some(owned) = self.take(
                &scope,
                "BackendService",
                &name,
                &service.description,
                unclaimed,
            ) else {
                continue;
            };
            let fingerprint = service.fingerprint.as_ref().map(|f| base64(f));
            if owned
                && let Some(until) = service
                    .description
                    .as_deref()
                    .and_then(overrides::gcp_override_until)
            {
                overrides.push(LiveOverride {
                    address: Address::BackendService { name: name.clone() },
                    until,
                });
            }
            let mut observed = Observed::new(
                Address::BackendService { name: name.clone() },
                Resource::BackendService(backend_service_spec(project, &service)),
                Some(format!("projects/{project}/global/backendServices/{name}")),
            );
            observed.etag = fingerprint.clone();
            observed.owned = owned;
            observed.adopted = adopted(&service.description);
            found.push(observed);
            for backend in &service.backends {
                let spec = backend_spec(backend);
                let health = if with_health {
                    Some(self.backend_health(&name, &spec.group).await?)
                } else {
                    None
                };
                let mut observed = Observed::new(
                    Address::Backend {
                        service: name.clone(),
                        group: spec.group.clone(),
                    },
                    Resource::Backend(spec.clone()),
                    Some(spec.group.clone()),
                );
                observed.etag = fingerprint.clone();
                observed.health = health;
                found.push(observed);
            }
        }
        for map in self.list_url_maps().await? {
            let name = map.name.clone().unwrap_or_default();
            let Some(owned) = self.take(&scope, "UrlMap", &name, &map.description, unclaimed)
            else {
                continue;
            };
            let mut observed = Observed::new(
                Address::UrlMap { name: name.clone() },
                Resource::UrlMap(url_map_spec(project, &map)),
                Some(format!("projects/{project}/global/urlMaps/{name}")),
            );
            observed.etag = map.fingerprint.as_ref().map(|f| base64(f));
            observed.owned = owned;
            observed.adopted = adopted(&map.description);
            found.push(observed);
        }
        if let Scope::Managed { claims } = &scope {
            for ((kind, name), claim) in claims.iter() {
                let seen = found.iter().any(|o| o.address == claim.address)
                    || unclaimed.iter().any(|u| u.address == claim.address);
                if !seen {
                    unclaimed.push(Unclaimed {
                        address: claim.address.clone(),
                        external_id: claim.external_id.clone(),
                        reason: format!("no {kind} `{name}` exists in project `{project}`"),
                    });
                }
            }
        }
        Ok(found)
    }

    // ----- reads of one object, for compare-and-swap ---------------------------

    pub(crate) async fn get_health_check(
        &self,
        name: &str,
    ) -> Result<Option<model::HealthCheck>, ProviderError> {
        let what = format!("health check `{name}`");
        found(
            self.read("healthChecks.get", &what, || {
                self.health_checks
                    .get()
                    .set_project(self.project())
                    .set_health_check(name)
                    .send()
            })
            .await,
        )
    }

    pub(crate) async fn get_backend_service(
        &self,
        name: &str,
    ) -> Result<Option<model::BackendService>, ProviderError> {
        let what = format!("backend service `{name}`");
        found(
            self.read("backendServices.get", &what, || {
                self.backend_services
                    .get()
                    .set_project(self.project())
                    .set_backend_service(name)
                    .send()
            })
            .await,
        )
    }

    pub(crate) async fn get_url_map(
        &self,
        name: &str,
    ) -> Result<Option<model::UrlMap>, ProviderError> {
        let what = format!("URL map `{name}`");
        found(
            self.read("urlMaps.get", &what, || {
                self.url_maps
                    .get()
                    .set_project(self.project())
                    .set_url_map(name)
                    .send()
            })
            .await,
        )
    }
}

/// A read of one object: `None` when the cloud answers that it does not exist.
fn found<T>(read: Result<T, ProviderError>) -> Result<Option<T>, ProviderError> {
    match read {
        Ok(object) => Ok(Some(object)),
        Err(error) if error.code == "notFound" => Ok(None),
        Err(error) => Err(error),
    }
}
