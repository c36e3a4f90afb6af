//! Adoption and release: the ownership marker in a `description` (health
//! checks, backend services and URL maps carry no labels), written or
//! removed without touching any other field.

use google_cloud_compute_v1::model;
use meridian_provider::{ADOPTED_KEY, Address, ProviderError};

use crate::GcpProvider;

/// The description marker of an adopted object.
fn adopted_marker() -> String {
    format!("[{ADOPTED_KEY}=true]")
}

impl GcpProvider {
    /// The description of an object being adopted: its own text, then
    /// meridian's ownership marker and the adoption marker.
    pub(crate) fn adopted_description(&self, live: Option<&str>) -> String {
        let text = live.unwrap_or_default().trim();
        let markers = format!("{} {}", self.marker(), adopted_marker());
        if text.is_empty() {
            markers
        } else {
            format!("{text} {markers}")
        }
    }

    /// The description of an object being released: without meridian's
    /// markers (and the text meridian wrote when it created the object).
    pub(crate) fn released_description(&self, live: Option<&str>) -> String {
        let text = live
            .unwrap_or_default()
            .replace(&self.marker(), "")
            .replace(&adopted_marker(), "")
            .replace("Managed by meridian.", "");
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Removes the ownership marker of a health check, backend service or
    /// URL map; any other field stays as it is.
    pub(crate) async fn release_object(
        &self,
        address: &Address,
    ) -> Result<Vec<String>, ProviderError> {
        let project = self.project().to_owned();
        let project = project.as_str();
        let what = format!("release of {address}");
        let what = what.as_str();
        let missing = |kind: &str, name: &str| {
            ProviderError::stalled(
                "Release",
                "notFound",
                format!("{kind} `{name}` does not exist in project `{project}`"),
            )
        };
        match address {
            Address::HealthCheck { name } => {
                self.converge(what, |round| async move {
                    let live = self
                        .get_health_check(name)
                        .await?
                        .ok_or_else(|| missing("health check", name))?;
                    if !self.owns(&live.description) {
                        return Err(self.not_ours("healthChecks.update", what));
                    }
                    let description = self.released_description(live.description.as_deref());
                    let body = live.set_description(description.clone());
                    let request_id = self.request_id_of(&[what.to_owned(), description], round);
                    self.write_op(
                        "healthChecks.update",
                        what,
                        &request_id,
                        self.health_checks
                            .update()
                            .set_project(project)
                            .set_health_check(name)
                            .set_request_id(&request_id)
                            .set_body(body)
                            .send(),
                    )
                    .await
                })
                .await?;
                Ok(vec![format!(
                    "projects/{project}/global/healthChecks/{name}"
                )])
            }
            Address::BackendService { name } => {
                self.converge(what, |round| async move {
                    let live = self
                        .get_backend_service(name)
                        .await?
                        .ok_or_else(|| missing("backend service", name))?;
                    if !self.owns(&live.description) {
                        return Err(self.not_ours("backendServices.patch", what));
                    }
                    let description = self.released_description(live.description.as_deref());
                    let mut body = model::BackendService::new()
                        .set_name(name.as_str())
                        .set_description(description.clone());
                    body.fingerprint = live.fingerprint.clone();
                    let request_id = self.request_id_of(&[what.to_owned(), description], round);
                    self.write_op(
                        "backendServices.patch",
                        what,
                        &request_id,
                        self.backend_services
                            .patch()
                            .set_project(project)
                            .set_backend_service(name.as_str())
                            .set_request_id(&request_id)
                            .set_body(body)
                            .send(),
                    )
                    .await
                })
                .await?;
                Ok(vec![format!(
                    "projects/{project}/global/backendServices/{name}"
                )])
            }
            Address::UrlMap { name } => {
                self.converge(what, |round| async move {
                    let live = self
                        .get_url_map(name)
                        .await?
                        .ok_or_else(|| missing("URL map", name))?;
                    if !self.owns(&live.description) {
                        return Err(self.not_ours("urlMaps.patch", what));
                    }
                    let description = self.released_description(live.description.as_deref());
                    let mut body = model::UrlMap::new()
                        .set_name(name.as_str())
                        .set_description(description.clone());
                    body.fingerprint = live.fingerprint.clone();
                    let request_id = self.request_id_of(&[what.to_owned(), description], round);
                    self.write_op(
                        "urlMaps.patch",
                        what,
                        &request_id,
                        self.url_maps
                            .patch()
                            .set_project(project)
                            .set_url_map(name.as_str())
                            .set_request_id(&request_id)
                            .set_body(body)
                            .send(),
                    )
                    .await
                })
                .await?;
                Ok(vec![format!("projects/{project}/global/urlMaps/{name}")])
            }
            other => Err(ProviderError::stalled(
                "Release",
                "UnsupportedKind",
                format!(
                    "{other} carries no ownership marker of its own: release its BackendService, HealthCheck or UrlMap"
                ),
            )),
        }
    }

    /// The refusal of an adoption whose object is gone: adopting never
    /// creates.
    pub(crate) fn adopt_gone(operation: &str, what: &str) -> ProviderError {
        ProviderError::conflict(
            operation,
            "notFound",
            format!(
                "{what}: the object to adopt no longer exists; nothing was created (re-run `meridian import`, or remove `meridian.dev/external-id` to create a new one)"
            ),
        )
    }

    /// Whether a write to an object found with `description` adopts it:
    /// an `Adopt` change to an object without meridian's marker. Any other
    /// write to an object meridian does not own is refused.
    pub(crate) fn adopting(
        &self,
        action: meridian_provider::Action,
        description: &Option<String>,
        operation: &str,
        what: &str,
    ) -> Result<bool, ProviderError> {
        let elsewhere = description.as_deref().is_some_and(|d| {
            d.contains(&format!(
                "[{}={} ",
                meridian_provider::MANAGED_BY_KEY,
                meridian_provider::MANAGED_BY_VALUE
            ))
        });
        match (self.owns(description), action) {
            (true, _) => Ok(false),
            (false, meridian_provider::Action::Adopt) if elsewhere => Err(ProviderError::stalled(
                operation,
                "ownedElsewhere",
                format!(
                    "{what}: managed by another meridian owner (its description carries another marker); release it there first"
                ),
            )),
            (false, meridian_provider::Action::Adopt) => Ok(true),
            (false, _) => Err(self.not_ours(operation, what)),
        }
    }
}
