//! Writes, one API object per unit of work: health checks and URL maps one
//! change each, a backend service with every backend change of its unit in
//! one insert, patch, update or delete. Each write is a compare-and-swap
//! round: read, compare with what the plan saw, write under the fingerprint
//! just read, wait for the operation.

use google_cloud_compute_v1::model;
use meridian_provider::units::{BackendServiceWork, UnitOfWork};
use meridian_provider::{Action, Address, BackendSpec, Change, ProviderError, Resource};

use crate::GcpProvider;
use crate::client::Round;
use crate::codec::{
    backend_body, backend_service_body, backend_service_spec, backend_spec, health_check_body,
    health_check_spec, relative, url_map_body, url_map_spec,
};

impl GcpProvider {
    pub(crate) fn not_ours(&self, operation: &str, what: &str) -> ProviderError {
        ProviderError::stalled(
            operation,
            "notManaged",
            format!(
                "{what} exists in project `{}` but its description lacks meridian's marker for owner `{}`; meridian never changes objects it does not own: rename the desired object, or add `{}` to the live object's description to adopt it",
                self.project(),
                self.config.owner,
                self.marker()
            ),
        )
    }

    /// The compare step of every write: done when the live value already is
    /// what the change wants (a retried write that landed, or nothing to
    /// delete), a conflict when it is neither that nor what the plan saw (it
    /// changed since it was observed), otherwise `None`: go ahead and write.
    pub(crate) fn compare<T: PartialEq + serde::Serialize>(
        operation: &str,
        what: &str,
        live: Option<&T>,
        want: Option<&T>,
        planned: Option<&T>,
    ) -> Result<Option<Round>, ProviderError> {
        if live == want {
            return Ok(Some(Round::Done));
        }
        if live != planned {
            return Err(Self::changed(operation, what, live, planned));
        }
        Ok(None)
    }

    pub(crate) fn without_value(what: &str) -> ProviderError {
        ProviderError::stalled(
            "apply",
            "UnsupportedChange",
            format!("{what}: a create or update without the value to write"),
        )
    }

    /// The conflict raised when a live value is neither what the plan saw
    /// nor what it wants.
    pub(crate) fn changed<T: serde::Serialize>(
        operation: &str,
        what: &str,
        live: Option<&T>,
        planned: Option<&T>,
    ) -> ProviderError {
        let show = |v: Option<&T>| {
            v.and_then(|v| serde_json::to_string(v).ok())
                .unwrap_or_else(|| "(absent)".to_owned())
        };
        ProviderError::conflict(
            operation,
            "changedSinceObserved",
            format!(
                "{what} changed since it was observed: live {}, the plan saw {}; re-observing and re-planning instead of overwriting it",
                show(live),
                show(planned)
            ),
        )
    }

    // ----- changes -------------------------------------------------------------

    pub(crate) async fn apply_change(&self, change: &Change) -> Result<(), ProviderError> {
        let what = change.address.to_string();
        let what = what.as_str();
        let project = self.config.project.as_str();
        match (&change.address, change.action, &change.after) {
            (Address::HealthCheck { name }, action, after) => {
                let want = match (action, after) {
                    (Action::Delete, _) => None,
                    (_, Some(Resource::HealthCheck(spec))) => Some(spec),
                    _ => return Err(Self::without_value(what)),
                };
                let planned = match &change.before {
                    Some(Resource::HealthCheck(b)) => Some(b),
                    _ => None,
                };
                let operation = match action {
                    Action::Create => "healthChecks.insert",
                    Action::Update | Action::Adopt => "healthChecks.update",
                    Action::Delete => "healthChecks.delete",
                };
                self.converge(what, |round| async move {
                    let live = self.get_health_check(name).await?;
                    let adopting = match &live {
                        Some(live) => self.adopting(action, &live.description, operation, what)?,
                        None if action == Action::Adopt => {
                            return Err(Self::adopt_gone(operation, what));
                        }
                        None => false,
                    };
                    let spec_live = live.as_ref().map(|l| health_check_spec(project, l));
                    if adopting {
                        if spec_live.as_ref() != planned && spec_live.as_ref() != want {
                            return Err(Self::changed(
                                operation,
                                what,
                                spec_live.as_ref(),
                                planned,
                            ));
                        }
                    } else if let Some(done) =
                        Self::compare(operation, what, spec_live.as_ref(), want, planned)?
                    {
                        return Ok(done);
                    }
                    let request_id = self.request_id(change, round);
                    match (live, want) {
                        (None, Some(spec)) => {
                            let body =
                                health_check_body(name, spec).set_description(self.description());
                            self.write_op(
                                operation,
                                what,
                                &request_id,
                                self.health_checks
                                    .insert()
                                    .set_project(project)
                                    .set_request_id(&request_id)
                                    .set_body(body)
                                    .send(),
                            )
                            .await
                        }
                        (Some(live), Some(_)) if adopting && change.fields.is_empty() => {
                            // Adoption alone: the marker, by a patch of the
                            // description; every other field stays as it is.
                            let body = model::HealthCheck::new()
                                .set_name(name.as_str())
                                .set_description(
                                    self.adopted_description(live.description.as_deref()),
                                );
                            self.write_op(
                                "healthChecks.patch",
                                what,
                                &request_id,
                                self.health_checks
                                    .patch()
                                    .set_project(project)
                                    .set_health_check(name)
                                    .set_request_id(&request_id)
                                    .set_body(body)
                                    .send(),
                            )
                            .await
                        }
                        (Some(live), Some(spec)) => {
                            // Health checks carry no fingerprint: replace the
                            // object (PUT) with the value just read, changed
                            // as planned, so a type change leaves no stale
                            // per-type settings behind.
                            let body = health_check_body(name, spec);
                            let mut full = live;
                            full.r#type = body.r#type;
                            full.check_interval_sec = body.check_interval_sec;
                            full.timeout_sec = body.timeout_sec;
                            full.healthy_threshold = body.healthy_threshold;
                            full.unhealthy_threshold = body.unhealthy_threshold;
                            full.http_health_check = body.http_health_check;
                            full.https_health_check = body.https_health_check;
                            full.http_2_health_check = body.http_2_health_check;
                            full.ssl_health_check = body.ssl_health_check;
                            full.grpc_health_check = body.grpc_health_check;
                            full.tcp_health_check = body.tcp_health_check;
                            if adopting {
                                full.description =
                                    Some(self.adopted_description(full.description.as_deref()));
                            }
                            self.write_op(
                                operation,
                                what,
                                &request_id,
                                self.health_checks
                                    .update()
                                    .set_project(project)
                                    .set_health_check(name)
                                    .set_request_id(&request_id)
                                    .set_body(full)
                                    .send(),
                            )
                            .await
                        }
                        (Some(_), None) => {
                            self.write_op(
                                operation,
                                what,
                                &request_id,
                                self.health_checks
                                    .delete()
                                    .set_project(project)
                                    .set_health_check(name)
                                    .set_request_id(&request_id)
                                    .send(),
                            )
                            .await
                        }
                        (None, None) => Ok(Round::Done),
                    }
                })
                .await
            }
            (Address::UrlMap { name }, action, after) => {
                let want = match (action, after) {
                    (Action::Delete, _) => None,
                    (_, Some(Resource::UrlMap(spec))) => Some(spec),
                    _ => return Err(Self::without_value(what)),
                };
                let planned = match &change.before {
                    Some(Resource::UrlMap(b)) => Some(b),
                    _ => None,
                };
                let operation = match action {
                    Action::Create => "urlMaps.insert",
                    Action::Update | Action::Adopt => "urlMaps.patch",
                    Action::Delete => "urlMaps.delete",
                };
                self.converge(what, |round| async move {
                    let live = self.get_url_map(name).await?;
                    let adopting = match &live {
                        Some(live) => self.adopting(action, &live.description, operation, what)?,
                        None if action == Action::Adopt => {
                            return Err(Self::adopt_gone(operation, what));
                        }
                        None => false,
                    };
                    let spec_live = live.as_ref().map(|l| url_map_spec(project, l));
                    if adopting {
                        if spec_live.as_ref() != planned && spec_live.as_ref() != want {
                            return Err(Self::changed(
                                operation,
                                what,
                                spec_live.as_ref(),
                                planned,
                            ));
                        }
                    } else if let Some(done) =
                        Self::compare(operation, what, spec_live.as_ref(), want, planned)?
                    {
                        return Ok(done);
                    }
                    let request_id = self.request_id(change, round);
                    match (live, want) {
                        (None, Some(spec)) => {
                            let body = url_map_body(name, spec).set_description(self.description());
                            self.write_op(
                                operation,
                                what,
                                &request_id,
                                self.url_maps
                                    .insert()
                                    .set_project(project)
                                    .set_request_id(&request_id)
                                    .set_body(body)
                                    .send(),
                            )
                            .await
                        }
                        (Some(live), Some(spec)) => {
                            let mut body = if adopting && change.fields.is_empty() {
                                // Adoption alone: the description, nothing else.
                                model::UrlMap::new()
                                    .set_name(name.as_str())
                                    .set_or_clear_fingerprint(live.fingerprint)
                            } else {
                                url_map_body(name, spec).set_or_clear_fingerprint(live.fingerprint)
                            };
                            if adopting {
                                body.description =
                                    Some(self.adopted_description(live.description.as_deref()));
                            }
                            self.write_op(
                                operation,
                                what,
                                &request_id,
                                self.url_maps
                                    .patch()
                                    .set_project(project)
                                    .set_url_map(name)
                                    .set_request_id(&request_id)
                                    .set_body(body)
                                    .send(),
                            )
                            .await
                        }
                        (Some(_), None) => {
                            self.write_op(
                                operation,
                                what,
                                &request_id,
                                self.url_maps
                                    .delete()
                                    .set_project(project)
                                    .set_url_map(name)
                                    .set_request_id(&request_id)
                                    .send(),
                            )
                            .await
                        }
                        (None, None) => Ok(Round::Done),
                    }
                })
                .await
            }
            (address, action, _) => Err(ProviderError::stalled(
                "apply",
                "UnsupportedChange",
                format!(
                    "the gcp provider cannot {action:?} {address} as a change of its own: only health checks and URL maps are (backend services and backends are written as units)"
                ),
            )),
        }
    }

    /// A backend service with every backend change of its unit, in one
    /// write ([`BackendServiceWork`]): the service is read, the service's
    /// fields and each backend the unit touches are compared with what the
    /// plan saw, and the new backend list is written under the fingerprint
    /// just read. Another writer landing in between is answered 412 and the
    /// round runs again, so meridian never races itself on the fingerprint.
    pub(crate) async fn write_backend_service(
        &self,
        unit: &UnitOfWork,
    ) -> Result<(), ProviderError> {
        let Address::BackendService { name } = &unit.object else {
            return Err(Self::without_value(&unit.describe()));
        };
        let project = self.config.project.as_str();
        let what = unit.describe();
        let what = what.as_str();
        let work = BackendServiceWork::of(unit);
        let own = unit.own_change();
        let service_of = |r: Option<&Resource>| match r {
            Some(Resource::BackendService(spec)) => Some(spec.clone()),
            _ => None,
        };
        let backend_of = |r: Option<&Resource>| match r {
            Some(Resource::Backend(spec)) => Some(spec.clone()),
            _ => None,
        };
        let members: Vec<(&Change, String)> = unit
            .member_changes()
            .filter_map(|c| match &c.address {
                Address::Backend { group, .. } => Some((c, group.clone())),
                _ => None,
            })
            .collect();
        let operation = match work {
            BackendServiceWork::Insert => "backendServices.insert",
            BackendServiceWork::Delete => "backendServices.delete",
            BackendServiceWork::Patch => "backendServices.patch",
            BackendServiceWork::Replace => "backendServices.update",
        };
        let id_parts: Vec<String> = std::iter::once(unit.object.to_string())
            .chain(
                unit.changes
                    .iter()
                    .map(|c| serde_json::to_string(&c.after).unwrap_or_default()),
            )
            .collect();
        self.converge(what, |round| {
            let members = &members;
            let id_parts = &id_parts;
            async move {
                let live = self.get_backend_service(name).await?;
                // A unit of backend changes alone on a service meridian does
                // not own exists only for a claimed service whose document
                // hands meridian its traffic levers (`management: traffic`).
                let adopting = match (&live, own) {
                    (Some(live), Some(own)) => {
                        self.adopting(own.action, &live.description, operation, what)?
                    }
                    _ => false,
                };
                let request_id = self.request_id_of(id_parts, round);
                let live_backend = |live: &model::BackendService, group: &str| -> Option<BackendSpec> {
                    live.backends
                        .iter()
                        .find(|b| relative(b.group.as_deref().unwrap_or_default()) == group)
                        .map(backend_spec)
                };
                match work {
                    BackendServiceWork::Insert => {
                        let want = own
                            .and_then(|c| service_of(c.after.as_ref()))
                            .ok_or_else(|| Self::without_value(what))?;
                        if let Some(live) = &live {
                            // A retried insert that landed: done when it holds
                            // what was sent, otherwise someone else's.
                            let same = backend_service_spec(project, live) == want
                                && members.iter().all(|(c, group)| {
                                    live_backend(live, group) == backend_of(c.after.as_ref())
                                });
                            return if same {
                                Ok(Round::Done)
                            } else {
                                Err(Self::changed(
                                    operation,
                                    what,
                                    Some(&backend_service_spec(project, live)),
                                    None,
                                ))
                            };
                        }
                        let backends: Vec<model::Backend> = members
                            .iter()
                            .filter_map(|(c, _)| backend_of(c.after.as_ref()))
                            .map(|spec| backend_body(project, None, &spec))
                            .collect();
                        let body = backend_service_body(name, &want)
                            .set_description(self.description())
                            .set_backends(backends);
                        self.write_op(
                            operation,
                            what,
                            &request_id,
                            self.backend_services
                                .insert()
                                .set_project(project)
                                .set_request_id(&request_id)
                                .set_body(body)
                                .send(),
                        )
                        .await
                    }
                    BackendServiceWork::Delete => {
                        let Some(live) = live else {
                            return Ok(Round::Done);
                        };
                        let planned = own.and_then(|c| service_of(c.before.as_ref()));
                        let spec_live = backend_service_spec(project, &live);
                        if Some(&spec_live) != planned.as_ref() {
                            return Err(Self::changed(
                                operation,
                                what,
                                Some(&spec_live),
                                planned.as_ref(),
                            ));
                        }
                        self.write_op(
                            operation,
                            what,
                            &request_id,
                            self.backend_services
                                .delete()
                                .set_project(project)
                                .set_backend_service(name)
                                .set_request_id(&request_id)
                                .send(),
                        )
                        .await
                    }
                    BackendServiceWork::Patch | BackendServiceWork::Replace => {
                        let Some(live) = live else {
                            return Err(ProviderError::conflict(
                                operation,
                                "notFound",
                                format!("{what}: backend service `{name}` no longer exists in project `{project}`; nothing was written"),
                            ));
                        };
                        let mut pending = adopting;
                        let want_service = own.and_then(|c| service_of(c.after.as_ref()));
                        if let Some(change) = own {
                            let spec_live = backend_service_spec(project, &live);
                            if let Some(done) = Self::compare(
                                operation,
                                what,
                                Some(&spec_live),
                                want_service.as_ref(),
                                service_of(change.before.as_ref()).as_ref(),
                            )? {
                                let _ = done;
                            } else {
                                pending = true;
                            }
                        }
                        let mut backends = live.backends.clone();
                        for (change, group) in members {
                            let current = live_backend(&live, group);
                            let want = backend_of(change.after.as_ref());
                            if Self::compare(
                                operation,
                                &format!("{} {}", change.action.symbol(), change.address),
                                current.as_ref(),
                                want.as_ref(),
                                backend_of(change.before.as_ref()).as_ref(),
                            )?
                            .is_some()
                            {
                                continue;
                            }
                            pending = true;
                            let position = backends.iter().position(|b| {
                                relative(b.group.as_deref().unwrap_or_default()) == *group
                            });
                            match (want, position) {
                                (Some(spec), Some(i)) => {
                                    backends[i] = backend_body(project, Some(&backends[i]), &spec);
                                }
                                (Some(spec), None) => backends.push(backend_body(project, None, &spec)),
                                (None, Some(i)) => {
                                    backends.remove(i);
                                }
                                (None, None) => {}
                            }
                        }
                        if !pending {
                            return Ok(Round::Done);
                        }
                        if backends.is_empty() {
                            // A merge patch cannot express an empty list:
                            // replace the service as read, changed.
                            let mut full = live.clone();
                            if let Some(spec) = &want_service {
                                let body = backend_service_body(name, spec);
                                full.protocol = body.protocol;
                                full.port_name = body.port_name;
                                full.timeout_sec = body.timeout_sec;
                                full.load_balancing_scheme = body.load_balancing_scheme;
                                full.enable_cdn = body.enable_cdn;
                                full.health_checks = body.health_checks;
                            }
                            full.backends = backends;
                            if adopting {
                                full.description =
                                    Some(self.adopted_description(live.description.as_deref()));
                            }
                            return self
                                .write_op(
                                    "backendServices.update",
                                    what,
                                    &request_id,
                                    self.backend_services
                                        .update()
                                        .set_project(project)
                                        .set_backend_service(name)
                                        .set_request_id(&request_id)
                                        .set_body(full)
                                        .send(),
                                )
                                .await;
                        }
                        let body = match &want_service {
                            Some(spec) => {
                                let mut body = backend_service_body(name, spec);
                                if spec.port_name.is_none() {
                                    body.port_name = None;
                                }
                                body
                            }
                            None => model::BackendService::new(),
                        }
                        .set_backends(backends)
                        .set_or_clear_fingerprint(live.fingerprint.clone());
                        let body = if adopting {
                            body.set_description(
                                self.adopted_description(live.description.as_deref()),
                            )
                        } else {
                            body
                        };
                        self.write_op(
                            "backendServices.patch",
                            what,
                            &request_id,
                            self.backend_services
                                .patch()
                                .set_project(project)
                                .set_backend_service(name)
                                .set_request_id(&request_id)
                                .set_body(body)
                                .send(),
                        )
                        .await
                    }
                }
            }
        })
        .await
    }
}
