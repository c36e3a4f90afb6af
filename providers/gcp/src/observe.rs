//! Observation: health checks, backend services (with their backends and,
//! when asked, their health) and URL maps, by paged list calls.

use google_cloud_compute_v1::model;
use meridian_provider::{Address, LiveOverride, Observed, ProviderError, Resource, overrides};

use crate::codec::{backend_service_spec, backend_spec, base64, health_check_spec, url_map_spec};
use crate::{COMPUTE_BASE, GcpProvider, PAGE_SIZE};

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

    pub(crate) async fn observe_all(
        &self,
        with_health: bool,
        overrides: &mut Vec<LiveOverride>,
    ) -> Result<Vec<Observed>, ProviderError> {
        let project = self.project();
        let mut found = Vec::new();
        for check in self.list_health_checks().await? {
            if !self.owns(&check.description) {
                continue;
            }
            let name = check.name.clone().unwrap_or_default();
            found.push(Observed {
                address: Address::HealthCheck { name: name.clone() },
                resource: Resource::HealthCheck(health_check_spec(project, &check)),
                cloud_id: Some(format!("projects/{project}/global/healthChecks/{name}")),
                etag: None,
                status: None,
                health: None,
            });
        }
        for service in self.list_backend_services().await? {
            if !self.owns(&service.description) {
                continue;
            }
            let name = service.name.clone().unwrap_or_default();
            let fingerprint = service.fingerprint.as_ref().map(|f| base64(f));
            if let Some(until) = service
                .description
                .as_deref()
                .and_then(overrides::gcp_override_until)
            {
                overrides.push(LiveOverride {
                    address: Address::BackendService { name: name.clone() },
                    until,
                });
            }
            found.push(Observed {
                address: Address::BackendService { name: name.clone() },
                resource: Resource::BackendService(backend_service_spec(project, &service)),
                cloud_id: Some(format!("projects/{project}/global/backendServices/{name}")),
                etag: fingerprint.clone(),
                status: None,
                health: None,
            });
            for backend in &service.backends {
                let spec = backend_spec(backend);
                let health = if with_health {
                    Some(self.backend_health(&name, &spec.group).await?)
                } else {
                    None
                };
                found.push(Observed {
                    address: Address::Backend {
                        service: name.clone(),
                        group: spec.group.clone(),
                    },
                    cloud_id: Some(spec.group.clone()),
                    resource: Resource::Backend(spec),
                    etag: fingerprint.clone(),
                    status: None,
                    health,
                });
            }
        }
        for map in self.list_url_maps().await? {
            if !self.owns(&map.description) {
                continue;
            }
            let name = map.name.clone().unwrap_or_default();
            found.push(Observed {
                address: Address::UrlMap { name: name.clone() },
                resource: Resource::UrlMap(url_map_spec(project, &map)),
                cloud_id: Some(format!("projects/{project}/global/urlMaps/{name}")),
                etag: map.fingerprint.as_ref().map(|f| base64(f)),
                status: None,
                health: None,
            });
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
