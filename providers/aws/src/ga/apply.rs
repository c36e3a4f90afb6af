//! Global Accelerator writes, one API object per unit of work.
//!
//! An accelerator is created with every tag inline (ownership, its name,
//! user tags and listener names); an endpoint group with up to ten
//! endpoints inline; a group's settings and endpoint weights change in one
//! `UpdateEndpointGroup` carrying its whole endpoint list when that list
//! fits the call, otherwise endpoints go ten to an `AddEndpoints` or
//! `RemoveEndpoints` call ([`EndpointGroupWork`]). Before any update or
//! delete the object is described and compared with what the plan saw
//! (`before`): a difference is a conflict and nothing is written, a live
//! value that already is the target (a retried write that landed) is done.

use std::collections::BTreeMap;

use meridian_provider::units::{ENDPOINTS_PER_CALL, EndpointGroupWork, UnitOfWork};
use meridian_provider::{
    ADOPTED_KEY, AcceleratorSpec, Action, Address, ApplyResponse, Change, EndpointGroupSpec,
    EndpointSpec, LISTENER_KEY_PREFIX, ListenerSpec, MANAGED_BY_KEY, MANAGED_BY_VALUE, NAME_KEY,
    OWNER_KEY, ProviderError, Resource,
};

use aws_sdk_globalaccelerator::types::{
    ClientAffinity, EndpointIdentifier, IpAddressType, Protocol, Tag,
};

use super::{
    GroupArgs, GroupView, accelerator_spec, endpoint_configuration, group_view, listener_spec,
    port_ranges,
};
use crate::AwsProvider;
use crate::client::{is_not_found, tag};

/// The tags meridian manages on an accelerator besides ownership: user
/// tags and listener names.
fn managed_tags(spec: &AcceleratorSpec) -> BTreeMap<String, String> {
    let mut tags = spec.tags.clone();
    for (name, value) in &spec.listener_names {
        tags.insert(format!("{LISTENER_KEY_PREFIX}{name}"), value.clone());
    }
    tags
}

/// The conflict raised when a live value is neither what the plan saw nor
/// what it wants.
fn changed<T: serde::Serialize>(
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
        "ChangedSinceObserved",
        format!(
            "{what} changed since it was observed: live {}, the plan saw {}; nothing was written",
            show(live),
            show(planned)
        ),
    )
}

/// The compare step: `Some(true)` when the live value already is the
/// target, `Some(false)` when it is what the plan saw (write), a conflict
/// otherwise.
fn compare<T: PartialEq + serde::Serialize>(
    operation: &str,
    what: &str,
    live: Option<&T>,
    planned: Option<&T>,
    want: Option<&T>,
) -> Result<bool, ProviderError> {
    if live == want {
        Ok(true)
    } else if live == planned {
        Ok(false)
    } else {
        Err(changed(operation, what, live, planned))
    }
}

fn accelerator_of(resource: Option<&Resource>) -> Option<&AcceleratorSpec> {
    match resource {
        Some(Resource::Accelerator(spec)) => Some(spec),
        _ => None,
    }
}

fn listener_of(resource: Option<&Resource>) -> Option<&ListenerSpec> {
    match resource {
        Some(Resource::Listener(spec)) => Some(spec),
        _ => None,
    }
}

fn group_of(resource: Option<&Resource>) -> Option<&EndpointGroupSpec> {
    match resource {
        Some(Resource::EndpointGroup(spec)) => Some(spec),
        _ => None,
    }
}

fn endpoint_of(resource: Option<&Resource>) -> Option<&EndpointSpec> {
    match resource {
        Some(Resource::Endpoint(spec)) => Some(spec),
        _ => None,
    }
}

fn without_value(what: &str) -> ProviderError {
    ProviderError::stalled(
        "apply",
        "UnsupportedChange",
        format!("{what}: a create or update without the value to write"),
    )
}

impl AwsProvider {
    /// Carries out a Global Accelerator unit of work.
    pub(crate) async fn apply_global_accelerator(&self, unit: &UnitOfWork) -> ApplyResponse {
        match (&unit.object, unit.own_change()) {
            (Address::Accelerator { .. }, Some(change)) => {
                ApplyResponse::all(unit, self.write_accelerator(change).await)
            }
            (Address::Listener { .. }, Some(change)) => {
                ApplyResponse::all(unit, self.write_listener(change).await)
            }
            (Address::EndpointGroup { .. }, _) => self.write_endpoint_group(unit).await,
            (object, _) => ApplyResponse::all(
                unit,
                Err(ProviderError::stalled(
                    "apply",
                    "UnsupportedChange",
                    format!("the aws provider cannot write {object} this way"),
                )),
            ),
        }
    }

    /// The ARN of a managed accelerator: as learnt by this run, or by
    /// observing the accelerators once more.
    pub(crate) async fn arn_of(
        &self,
        address: &Address,
        operation: &str,
    ) -> Result<String, ProviderError> {
        let key = address.to_string();
        if let Ok(arn) = self.id_of_key(&key) {
            return Ok(arn);
        }
        self.observe_global_accelerator(&mut Vec::new()).await?;
        self.id_of_key(&key).map_err(|_| {
            ProviderError::stalled(
                operation,
                "AcceleratorNotFoundException",
                format!(
                    "{address} does not exist as an accelerator of provider `{}` (owner `{}`)",
                    self.config.name, self.config.owner
                ),
            )
        })
    }

    /// Removes meridian's tags from an accelerator it owns (ownership, its
    /// name, the adoption mark, listener names, a break-glass override);
    /// every other tag and setting stays.
    pub(crate) async fn release_accelerator(
        &self,
        address: &Address,
    ) -> Result<Vec<String>, ProviderError> {
        let key = address.to_string();
        let arn = self.arn_of(address, "UntagResource").await?;
        let what = format!("release of {address}");
        let tags = self.tags_of_accelerator(&arn).await?.unwrap_or_default();
        if !self.owns(&tags) {
            return Err(ProviderError::stalled(
                "UntagResource",
                "NotManaged",
                format!(
                    "{what}: {arn} does not carry owner `{}`'s tags",
                    self.config.owner
                ),
            ));
        }
        let keys: Vec<String> = tags
            .keys()
            .filter(|k| k.starts_with("meridian.dev/"))
            .cloned()
            .collect();
        self.run("UntagResource", true, &what, || {
            self.ga
                .untag_resource()
                .resource_arn(&arn)
                .set_tag_keys(Some(keys.clone()))
                .send()
        })
        .await?;
        self.forget(&key);
        Ok(vec![arn])
    }

    /// The live id of a changed object: the plan's, or the one learnt by
    /// observation or creation in this run.
    fn live_id(&self, change: &Change, operation: &str) -> Result<String, ProviderError> {
        match &change.cloud_id {
            Some(id) => Ok(id.clone()),
            None => self.id_of(&change.address, operation),
        }
    }

    async fn describe_accelerator(
        &self,
        arn: &str,
        what: &str,
    ) -> Result<Option<AcceleratorSpec>, ProviderError> {
        Ok(self
            .describe_accelerator_tagged(arn, what)
            .await?
            .map(|(spec, _)| spec))
    }

    /// The live accelerator with every tag (ownership included).
    async fn describe_accelerator_tagged(
        &self,
        arn: &str,
        what: &str,
    ) -> Result<Option<(AcceleratorSpec, BTreeMap<String, String>)>, ProviderError> {
        let described = self
            .run("DescribeAccelerator", false, what, || {
                self.ga.describe_accelerator().accelerator_arn(arn).send()
            })
            .await;
        let accelerator = match described {
            Ok(output) => output.accelerator().cloned(),
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => return Err(error),
        };
        let Some(accelerator) = accelerator else {
            return Ok(None);
        };
        let Some(tags) = self.tags_of_accelerator(arn).await? else {
            return Ok(None);
        };
        Ok(Some((accelerator_spec(&accelerator, &tags), tags)))
    }

    async fn write_accelerator(&self, change: &Change) -> Result<(), ProviderError> {
        let what = format!("{} {}", change.action.symbol(), change.address);
        let what = what.as_str();
        let Address::Accelerator { accelerator } = &change.address else {
            return Err(without_value(what));
        };
        let want = accelerator_of(change.after.as_ref());
        match change.action {
            Action::Create => {
                let spec = want.ok_or_else(|| without_value(what))?;
                let mut tags = vec![
                    tag(MANAGED_BY_KEY, MANAGED_BY_VALUE)?,
                    tag(OWNER_KEY, &self.config.owner)?,
                    tag(NAME_KEY, accelerator)?,
                ];
                for (k, v) in managed_tags(spec) {
                    tags.push(tag(&k, &v)?);
                }
                let token = self.token(change);
                let output = self
                    .run("CreateAccelerator", true, what, || {
                        self.ga
                            .create_accelerator()
                            .name(&spec.name)
                            .ip_address_type(IpAddressType::from(spec.ip_address_type.as_str()))
                            .enabled(spec.enabled)
                            .idempotency_token(&token)
                            .set_tags(Some(tags.clone()))
                            .send()
                    })
                    .await?;
                let arn = output
                    .accelerator()
                    .and_then(|a| a.accelerator_arn())
                    .ok_or_else(|| {
                        ProviderError::stalled(
                            "CreateAccelerator",
                            "MalformedResponse",
                            "no AcceleratorArn in the response",
                        )
                    })?;
                self.remember(change.address.to_string(), arn);
                Ok(())
            }
            Action::Update | Action::Adopt => {
                let spec = want.ok_or_else(|| without_value(what))?;
                let arn = self.live_id(change, "UpdateAccelerator")?;
                let planned = accelerator_of(change.before.as_ref());
                let (live, live_tags) = match self.describe_accelerator_tagged(&arn, what).await? {
                    Some((live, tags)) => (Some(live), tags),
                    None if change.action == Action::Adopt => {
                        return Err(ProviderError::conflict(
                            "TagResource",
                            "AcceleratorNotFoundException",
                            format!(
                                "{what}: {arn} no longer exists; adopting never creates (re-run `meridian import`, or remove `meridian.dev/external-id` to create a new accelerator)"
                            ),
                        ));
                    }
                    None => (None, BTreeMap::new()),
                };
                // Adopting writes the ownership tags; an adoption that
                // already landed (a retry) is an ordinary update.
                let adopting = change.action == Action::Adopt
                    && (!self.owns(&live_tags) || live_tags.get(NAME_KEY) != Some(accelerator));
                if adopting
                    && !self.owns(&live_tags)
                    && live_tags.get(MANAGED_BY_KEY).map(String::as_str) == Some(MANAGED_BY_VALUE)
                {
                    return Err(ProviderError::stalled(
                        "TagResource",
                        "OwnedElsewhere",
                        format!(
                            "{what}: {arn} is managed by another meridian owner (`{}`); release it there first",
                            live_tags.get(OWNER_KEY).map(String::as_str).unwrap_or("?")
                        ),
                    ));
                }
                if adopting {
                    if live.as_ref() != planned && live.as_ref() != Some(spec) {
                        return Err(changed("TagResource", what, live.as_ref(), planned));
                    }
                } else if compare(
                    "UpdateAccelerator",
                    what,
                    live.as_ref(),
                    planned,
                    Some(spec),
                )? {
                    return Ok(());
                }
                let live = live.unwrap_or_else(|| spec.clone());
                let (have, wanted) = (managed_tags(&live), managed_tags(spec));
                let mut set: Vec<Tag> = wanted
                    .iter()
                    .filter(|(k, v)| have.get(*k) != Some(*v))
                    .map(|(k, v)| tag(k, v))
                    .collect::<Result<_, _>>()?;
                if adopting {
                    set.extend([
                        tag(MANAGED_BY_KEY, MANAGED_BY_VALUE)?,
                        tag(OWNER_KEY, &self.config.owner)?,
                        tag(NAME_KEY, accelerator)?,
                        tag(ADOPTED_KEY, "true")?,
                    ]);
                }
                if !set.is_empty() {
                    self.run("TagResource", true, what, || {
                        self.ga
                            .tag_resource()
                            .resource_arn(&arn)
                            .set_tags(Some(set.clone()))
                            .send()
                    })
                    .await?;
                }
                // Settings after the tags: an adopted accelerator carries
                // meridian's ownership before anything else of it changes.
                if (live.enabled, &live.name, &live.ip_address_type)
                    != (spec.enabled, &spec.name, &spec.ip_address_type)
                {
                    self.run("UpdateAccelerator", true, what, || {
                        self.ga
                            .update_accelerator()
                            .accelerator_arn(&arn)
                            .name(&spec.name)
                            .ip_address_type(IpAddressType::from(spec.ip_address_type.as_str()))
                            .enabled(spec.enabled)
                            .send()
                    })
                    .await?;
                }
                let removed: Vec<String> = have
                    .keys()
                    .filter(|k| !wanted.contains_key(*k))
                    .cloned()
                    .collect();
                if !removed.is_empty() {
                    self.run("UntagResource", true, what, || {
                        self.ga
                            .untag_resource()
                            .resource_arn(&arn)
                            .set_tag_keys(Some(removed.clone()))
                            .send()
                    })
                    .await?;
                }
                Ok(())
            }
            Action::Delete => {
                let arn = self.live_id(change, "DeleteAccelerator")?;
                let live = self.describe_accelerator(&arn, what).await?;
                if live.is_none() {
                    self.forget(&change.address.to_string());
                    return Ok(());
                }
                let planned = accelerator_of(change.before.as_ref());
                if live.as_ref() != planned {
                    return Err(changed("DeleteAccelerator", what, live.as_ref(), planned));
                }
                // Global Accelerator deletes only a disabled accelerator
                // that has finished deploying (the plan disabled it).
                self.wait_deployed(&arn, what).await?;
                match self
                    .run("DeleteAccelerator", true, what, || {
                        self.ga.delete_accelerator().accelerator_arn(&arn).send()
                    })
                    .await
                {
                    Err(error) if !is_not_found(&error) => return Err(error),
                    _ => {}
                }
                self.forget(&change.address.to_string());
                Ok(())
            }
        }
    }

    async fn describe_listener(
        &self,
        arn: &str,
        what: &str,
    ) -> Result<Option<ListenerSpec>, ProviderError> {
        match self
            .run("DescribeListener", false, what, || {
                self.ga.describe_listener().listener_arn(arn).send()
            })
            .await
        {
            Ok(output) => Ok(output.listener().map(listener_spec)),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn write_listener(&self, change: &Change) -> Result<(), ProviderError> {
        let what = format!("{} {}", change.action.symbol(), change.address);
        let what = what.as_str();
        let Address::Listener { accelerator, .. } = &change.address else {
            return Err(without_value(what));
        };
        let want = listener_of(change.after.as_ref());
        match change.action {
            Action::Create => {
                let spec = want.ok_or_else(|| without_value(what))?;
                let accelerator_arn = self.id_of(
                    &Address::Accelerator {
                        accelerator: accelerator.clone(),
                    },
                    "CreateListener",
                )?;
                let ranges = port_ranges(spec);
                let token = self.token(change);
                let output = self
                    .run("CreateListener", true, what, || {
                        self.ga
                            .create_listener()
                            .accelerator_arn(&accelerator_arn)
                            .set_port_ranges(Some(ranges.clone()))
                            .protocol(Protocol::from(spec.protocol.as_str()))
                            .client_affinity(ClientAffinity::from(spec.client_affinity.as_str()))
                            .idempotency_token(&token)
                            .send()
                    })
                    .await?;
                let arn = output
                    .listener()
                    .and_then(|l| l.listener_arn())
                    .ok_or_else(|| {
                        ProviderError::stalled(
                            "CreateListener",
                            "MalformedResponse",
                            "no ListenerArn in the response",
                        )
                    })?;
                self.remember(change.address.to_string(), arn);
                Ok(())
            }
            Action::Update | Action::Adopt => {
                let spec = want.ok_or_else(|| without_value(what))?;
                let arn = self.live_id(change, "UpdateListener")?;
                let live = self.describe_listener(&arn, what).await?;
                let planned = listener_of(change.before.as_ref());
                if compare("UpdateListener", what, live.as_ref(), planned, Some(spec))? {
                    return Ok(());
                }
                let ranges = port_ranges(spec);
                self.run("UpdateListener", true, what, || {
                    self.ga
                        .update_listener()
                        .listener_arn(&arn)
                        .set_port_ranges(Some(ranges.clone()))
                        .protocol(Protocol::from(spec.protocol.as_str()))
                        .client_affinity(ClientAffinity::from(spec.client_affinity.as_str()))
                        .send()
                })
                .await?;
                Ok(())
            }
            Action::Delete => {
                let arn = self.live_id(change, "DeleteListener")?;
                let live = self.describe_listener(&arn, what).await?;
                let planned = listener_of(change.before.as_ref());
                if compare("DeleteListener", what, live.as_ref(), planned, None)? {
                    self.forget(&change.address.to_string());
                    return Ok(());
                }
                match self
                    .run("DeleteListener", true, what, || {
                        self.ga.delete_listener().listener_arn(&arn).send()
                    })
                    .await
                {
                    Err(error) if !is_not_found(&error) => return Err(error),
                    _ => {}
                }
                self.forget(&change.address.to_string());
                Ok(())
            }
        }
    }

    async fn describe_group(
        &self,
        arn: &str,
        what: &str,
    ) -> Result<Option<GroupView>, ProviderError> {
        match self
            .run("DescribeEndpointGroup", false, what, || {
                self.ga
                    .describe_endpoint_group()
                    .endpoint_group_arn(arn)
                    .send()
            })
            .await
        {
            Ok(output) => Ok(output.endpoint_group().map(group_view)),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// An endpoint group with its endpoints, in the calls
    /// [`EndpointGroupWork`] decides.
    async fn write_endpoint_group(&self, unit: &UnitOfWork) -> ApplyResponse {
        let mut results: Vec<Option<ProviderError>> = vec![None; unit.changes.len()];
        let what = unit.describe();
        // Marks changes `indices` (and every change not yet done, when the
        // unit stops) with `error`.
        let fail_rest =
            |results: &mut Vec<Option<ProviderError>>, from: &[usize], error: ProviderError| {
                for i in from {
                    results[*i] = Some(error.clone());
                }
            };
        let indices = |action: Option<Action>| -> Vec<usize> {
            unit.changes
                .iter()
                .enumerate()
                .filter(|(_, c)| c.address != unit.object && action.is_none_or(|a| c.action == a))
                .map(|(i, _)| i)
                .collect()
        };
        let own = unit.changes.iter().position(|c| c.address == unit.object);
        let all: Vec<usize> = (0..unit.changes.len()).collect();
        match EndpointGroupWork::of(unit) {
            EndpointGroupWork::Create { .. } => {
                let Some(own) = own else {
                    fail_rest(&mut results, &all, without_value(&what));
                    return ApplyResponse { results };
                };
                let adds = indices(Some(Action::Create));
                match self
                    .create_group(&unit.changes[own], unit, &adds, &what)
                    .await
                {
                    Ok(()) => {}
                    Err((done, error)) => {
                        let undone: Vec<usize> =
                            all.iter().copied().filter(|i| !done.contains(i)).collect();
                        fail_rest(&mut results, &undone, error);
                    }
                }
            }
            EndpointGroupWork::Delete => {
                let result = match own {
                    Some(own) => self.delete_group(&unit.changes[own], &what).await,
                    None => Err(without_value(&what)),
                };
                if let Err(error) = result {
                    fail_rest(&mut results, &all, error);
                }
            }
            work => {
                if let Err((done, error)) = self.update_group(unit, own, &work, &what).await {
                    let undone: Vec<usize> =
                        all.iter().copied().filter(|i| !done.contains(i)).collect();
                    fail_rest(&mut results, &undone, error);
                }
            }
        }
        ApplyResponse { results }
    }

    /// `CreateEndpointGroup` with the first ten new endpoints inline, then
    /// the rest ten to an `AddEndpoints`. On failure, the changes that
    /// landed and the error.
    async fn create_group(
        &self,
        change: &Change,
        unit: &UnitOfWork,
        adds: &[usize],
        what: &str,
    ) -> Result<(), (Vec<usize>, ProviderError)> {
        let fail = |error| (Vec::new(), error);
        let Address::EndpointGroup {
            accelerator,
            listener,
            ..
        } = &change.address
        else {
            return Err(fail(without_value(what)));
        };
        let spec = group_of(change.after.as_ref()).ok_or_else(|| fail(without_value(what)))?;
        let listener_arn = self
            .id_of(
                &Address::Listener {
                    accelerator: accelerator.clone(),
                    listener: listener.clone(),
                },
                "CreateEndpointGroup",
            )
            .map_err(fail)?;
        let endpoints: Vec<&EndpointSpec> = adds
            .iter()
            .filter_map(|i| endpoint_of(unit.changes[*i].after.as_ref()))
            .collect();
        let (inline, rest) = endpoints.split_at(endpoints.len().min(ENDPOINTS_PER_CALL));
        let configurations: Vec<_> = inline.iter().map(|e| endpoint_configuration(e)).collect();
        let args = GroupArgs::of(spec);
        let token = self.token(change);
        let output = self
            .run("CreateEndpointGroup", true, what, || {
                self.ga
                    .create_endpoint_group()
                    .listener_arn(&listener_arn)
                    .endpoint_group_region(&spec.region)
                    .traffic_dial_percentage(f32::from(spec.traffic_dial))
                    .health_check_protocol(args.protocol.clone())
                    .health_check_port(args.port)
                    .set_health_check_path(args.path.clone())
                    .health_check_interval_seconds(args.interval)
                    .threshold_count(args.threshold)
                    .set_port_overrides(Some(args.overrides.clone()))
                    .set_endpoint_configurations(
                        (!configurations.is_empty()).then(|| configurations.clone()),
                    )
                    .idempotency_token(&token)
                    .send()
            })
            .await
            .map_err(fail)?;
        let arn = output
            .endpoint_group()
            .and_then(|g| g.endpoint_group_arn())
            .ok_or_else(|| {
                fail(ProviderError::stalled(
                    "CreateEndpointGroup",
                    "MalformedResponse",
                    "no EndpointGroupArn in the response",
                ))
            })?
            .to_owned();
        self.remember(change.address.to_string(), &arn);
        let own = unit
            .changes
            .iter()
            .position(|c| c.address == unit.object)
            .unwrap_or(0);
        let mut done: Vec<usize> = std::iter::once(own)
            .chain(adds.iter().copied().take(inline.len()))
            .collect();
        let mut later = adds.iter().copied().skip(inline.len());
        for chunk in rest.chunks(ENDPOINTS_PER_CALL) {
            let configurations: Vec<_> = chunk.iter().map(|e| endpoint_configuration(e)).collect();
            self.run("AddEndpoints", true, what, || {
                self.ga
                    .add_endpoints()
                    .endpoint_group_arn(&arn)
                    .set_endpoint_configurations(Some(configurations.clone()))
                    .send()
            })
            .await
            .map_err(|error| (done.clone(), error))?;
            done.extend(later.by_ref().take(chunk.len()));
        }
        Ok(())
    }

    async fn delete_group(&self, change: &Change, what: &str) -> Result<(), ProviderError> {
        let arn = self.live_id(change, "DeleteEndpointGroup")?;
        let Some(live) = self.describe_group(&arn, what).await? else {
            self.forget(&change.address.to_string());
            return Ok(());
        };
        let planned = group_of(change.before.as_ref());
        if Some(&live.spec) != planned {
            return Err(changed(
                "DeleteEndpointGroup",
                what,
                Some(&live.spec),
                planned,
            ));
        }
        match self
            .run("DeleteEndpointGroup", true, what, || {
                self.ga
                    .delete_endpoint_group()
                    .endpoint_group_arn(&arn)
                    .send()
            })
            .await
        {
            Err(error) if !is_not_found(&error) => return Err(error),
            _ => {}
        }
        self.forget(&change.address.to_string());
        Ok(())
    }

    /// The group's settings and endpoint changes of an existing group.
    async fn update_group(
        &self,
        unit: &UnitOfWork,
        own: Option<usize>,
        work: &EndpointGroupWork,
        what: &str,
    ) -> Result<(), (Vec<usize>, ProviderError)> {
        let fail = |error| (Vec::new(), error);
        let arn = match own {
            Some(own) => self.live_id(&unit.changes[own], "UpdateEndpointGroup"),
            None => self.id_of(&unit.object, "UpdateEndpointGroup"),
        }
        .map_err(fail)?;
        let live = self
            .describe_group(&arn, what)
            .await
            .map_err(fail)?
            .ok_or_else(|| {
                fail(ProviderError::conflict(
                    "UpdateEndpointGroup",
                    "EndpointGroupNotFoundException",
                    format!("{what}: the endpoint group no longer exists; nothing was written"),
                ))
            })?;
        // Compare every object the unit touches with what the plan saw.
        let mut pending: Vec<usize> = Vec::new();
        let mut done: Vec<usize> = Vec::new();
        for (i, change) in unit.changes.iter().enumerate() {
            let finished = if Some(i) == own {
                compare(
                    "UpdateEndpointGroup",
                    what,
                    Some(&live.spec),
                    group_of(change.before.as_ref()),
                    group_of(change.after.as_ref()),
                )
            } else {
                let Address::Endpoint { endpoint, .. } = &change.address else {
                    return Err(fail(without_value(what)));
                };
                let operation = match change.action {
                    Action::Create => "AddEndpoints",
                    Action::Update | Action::Adopt => "UpdateEndpointGroup",
                    Action::Delete => "RemoveEndpoints",
                };
                compare(
                    operation,
                    &format!("{} {}", change.action.symbol(), change.address),
                    live.endpoints.get(endpoint).map(|(spec, _)| spec),
                    endpoint_of(change.before.as_ref()),
                    endpoint_of(change.after.as_ref()),
                )
            }
            .map_err(fail)?;
            if finished {
                done.push(i);
            } else {
                pending.push(i);
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        let spec = own
            .and_then(|i| group_of(unit.changes[i].after.as_ref()))
            .unwrap_or(&live.spec);
        let args = GroupArgs::of(spec);
        let arn = arn.as_str();
        let update = |configurations: Option<Vec<_>>| {
            self.run("UpdateEndpointGroup", true, what, move || {
                self.ga
                    .update_endpoint_group()
                    .endpoint_group_arn(arn)
                    .traffic_dial_percentage(f32::from(spec.traffic_dial))
                    .health_check_protocol(args.protocol.clone())
                    .health_check_port(args.port)
                    .set_health_check_path(args.path.clone())
                    .health_check_interval_seconds(args.interval)
                    .threshold_count(args.threshold)
                    .set_port_overrides(Some(args.overrides.clone()))
                    .set_endpoint_configurations(configurations.clone())
                    .send()
            })
        };
        let members = |action: Action| -> Vec<usize> {
            pending
                .iter()
                .copied()
                .filter(|i| Some(*i) != own && unit.changes[*i].action == action)
                .collect()
        };
        match work {
            EndpointGroupWork::UpdateWithEndpoints => {
                // The whole list, as it must be after this unit.
                let mut list: BTreeMap<String, EndpointSpec> = live
                    .endpoints
                    .iter()
                    .map(|(id, (spec, _))| (id.clone(), spec.clone()))
                    .collect();
                for change in unit.member_changes() {
                    let Address::Endpoint { endpoint, .. } = &change.address else {
                        continue;
                    };
                    match endpoint_of(change.after.as_ref()) {
                        Some(spec) => list.insert(endpoint.clone(), spec.clone()),
                        None => list.remove(endpoint),
                    };
                }
                let configurations = list.values().map(endpoint_configuration).collect();
                update(Some(configurations))
                    .await
                    .map_err(|error| (done.clone(), error))?;
            }
            EndpointGroupWork::Separate { group, .. } => {
                if *group && own.is_some_and(|i| pending.contains(&i)) {
                    update(None).await.map_err(|error| (done.clone(), error))?;
                    done.extend(own);
                }
                let mut upserts = members(Action::Create);
                upserts.extend(members(Action::Update));
                for chunk in upserts.chunks(ENDPOINTS_PER_CALL) {
                    let configurations: Vec<_> = chunk
                        .iter()
                        .filter_map(|i| endpoint_of(unit.changes[*i].after.as_ref()))
                        .map(endpoint_configuration)
                        .collect();
                    self.run("AddEndpoints", true, what, || {
                        self.ga
                            .add_endpoints()
                            .endpoint_group_arn(arn)
                            .set_endpoint_configurations(Some(configurations.clone()))
                            .send()
                    })
                    .await
                    .map_err(|error| (done.clone(), error))?;
                    done.extend(chunk);
                }
                for chunk in members(Action::Delete).chunks(ENDPOINTS_PER_CALL) {
                    let identifiers: Vec<EndpointIdentifier> = chunk
                        .iter()
                        .filter_map(|i| match &unit.changes[*i].address {
                            Address::Endpoint { endpoint, .. } => EndpointIdentifier::builder()
                                .endpoint_id(endpoint)
                                .build()
                                .ok(),
                            _ => None,
                        })
                        .collect();
                    match self
                        .run("RemoveEndpoints", true, what, || {
                            self.ga
                                .remove_endpoints()
                                .endpoint_group_arn(arn)
                                .set_endpoint_identifiers(Some(identifiers.clone()))
                                .send()
                        })
                        .await
                    {
                        Err(error) if !is_not_found(&error) => {
                            return Err((done.clone(), error));
                        }
                        _ => done.extend(chunk),
                    }
                }
            }
            EndpointGroupWork::Create { .. } | EndpointGroupWork::Delete => {}
        }
        Ok(())
    }
}
