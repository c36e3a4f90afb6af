//! Global Accelerator observation: `ListAccelerators`, the tags of each
//! (ownership and listener names live there), `ListListeners` per owned
//! accelerator and `ListEndpointGroups` per listener, endpoints and their
//! health included. Nothing is described one object at a time.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;

use meridian_provider::{
    ADOPTED_KEY, Address, Claim, DiscoverRequest, LiveOverride, MANAGED_BY_KEY, MANAGED_BY_VALUE,
    NAME_KEY, OVERRIDE_KEY, OWNER_KEY, Observed, ProviderError, Resource, Unclaimed, with_retries,
};

use meridian_provider::{listener_names, name_listeners};

use super::{accelerator_spec, group_view, listener_spec};
use crate::AwsProvider;
use crate::client::{is_not_found, suffix};

/// Which accelerators an observation takes.
pub(crate) enum Scope<'a> {
    /// Those meridian owns, and those desired state claims, by ARN.
    Managed(BTreeMap<String, &'a Claim>),
    /// Those no meridian owns, for `meridian import`.
    Unowned(&'a DiscoverRequest),
}

/// What an accelerator's read found.
enum Taken {
    /// Its objects, and its override marker.
    Yes(Vec<Observed>, Option<LiveOverride>),
    /// Not in scope.
    No,
    /// Claimed, but not meridian's to adopt.
    Refused(Unclaimed),
}

/// Accelerators observed at once.
const OBSERVE_CONCURRENCY: usize = 8;

impl AwsProvider {
    /// Every managed object of the Global Accelerator family, with the
    /// break-glass override markers found on accelerators.
    pub(crate) async fn observe_global_accelerator(
        &self,
        overrides: &mut Vec<LiveOverride>,
    ) -> Result<Vec<Observed>, ProviderError> {
        self.observe_accelerators(overrides, &Scope::Managed(BTreeMap::new()), &mut Vec::new())
            .await
    }

    /// The accelerators `scope` takes, with their objects.
    pub(crate) async fn observe_accelerators(
        &self,
        overrides: &mut Vec<LiveOverride>,
        scope: &Scope<'_>,
        unclaimed: &mut Vec<Unclaimed>,
    ) -> Result<Vec<Observed>, ProviderError> {
        let mut found = Vec::new();
        let mut accelerators = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .run("ListAccelerators", false, "list accelerators", || {
                    self.ga
                        .list_accelerators()
                        .max_results(100)
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            accelerators.extend(page.accelerators().iter().cloned());
            match page.next_token() {
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
        // Accelerators are read a few at a time (their calls still take the
        // limiter's tokens), and their objects kept in list order, so the
        // observation does not depend on which answer came first.
        let mut reads = futures::stream::iter(accelerators)
            .map(|accelerator| self.observe_accelerator(accelerator, scope))
            .buffered(OBSERVE_CONCURRENCY);
        while let Some(read) = reads.next().await {
            let (objects, marker) = match read? {
                Taken::Yes(objects, marker) => (objects, marker),
                Taken::No => continue,
                Taken::Refused(refusal) => {
                    unclaimed.push(refusal);
                    continue;
                }
            };
            for observed in &objects {
                if !matches!(observed.address, Address::Endpoint { .. })
                    && let Some(id) = &observed.cloud_id
                {
                    self.remember_first(observed.address.to_string(), id.clone());
                }
            }
            found.extend(objects);
            overrides.extend(marker);
        }
        if let Scope::Managed(claims) = scope {
            for (arn, claim) in claims {
                let seen = found
                    .iter()
                    .any(|o| o.cloud_id.as_deref() == Some(arn.as_str()))
                    || unclaimed.iter().any(|u| &u.external_id == arn);
                if !seen {
                    unclaimed.push(Unclaimed {
                        address: claim.address.clone(),
                        external_id: arn.clone(),
                        reason: "no such accelerator exists in this account".to_owned(),
                    });
                }
            }
        }
        Ok(found)
    }

    /// One accelerator's objects, when `scope` takes it: its tags, its
    /// listeners and their endpoint groups; with its override marker.
    async fn observe_accelerator(
        &self,
        accelerator: aws_sdk_globalaccelerator::types::Accelerator,
        scope: &Scope<'_>,
    ) -> Result<Taken, ProviderError> {
        let Some(arn) = accelerator.accelerator_arn().map(str::to_owned) else {
            return Ok(Taken::No);
        };
        if let Scope::Unowned(request) = scope {
            let name_ok = request
                .name
                .as_deref()
                .is_none_or(|n| accelerator.name() == Some(n));
            let id_ok = request.id.as_deref().is_none_or(|id| id == arn);
            if !name_ok || !id_ok {
                return Ok(Taken::No);
            }
        }
        let Some(tags) = self.tags_of_accelerator(&arn).await? else {
            // Deleted by someone between the list and this call: not ours to see.
            return Ok(Taken::No);
        };
        let mut owned = self.owns(&tags);
        let name = match scope {
            // A claim names it whether or not meridian owns it yet: the
            // document pinned to its ARN decides its address.
            Scope::Managed(claims) => match (claims.get(&arn), owned) {
                (Some(claim), _) => {
                    if !owned
                        && tags.get(MANAGED_BY_KEY).map(String::as_str) == Some(MANAGED_BY_VALUE)
                    {
                        return Ok(Taken::Refused(Unclaimed {
                            address: claim.address.clone(),
                            external_id: arn,
                            reason: format!(
                                "managed by another meridian owner (`{}`); release it there first",
                                tags.get(OWNER_KEY).map(String::as_str).unwrap_or("?")
                            ),
                        }));
                    }
                    match &claim.address {
                        Address::Accelerator { accelerator } => {
                            // Owned under another name (its document was
                            // renamed while pinned): adopted again, which
                            // rewrites the name tag.
                            if owned && tags.get(NAME_KEY) != Some(accelerator) {
                                owned = false;
                            }
                            accelerator.clone()
                        }
                        _ => return Ok(Taken::No),
                    }
                }
                (None, true) => match tags.get(NAME_KEY) {
                    Some(name) => name.clone(),
                    None => return Ok(Taken::No),
                },
                (None, false) => return Ok(Taken::No),
            },
            Scope::Unowned(request) => {
                if tags.contains_key(MANAGED_BY_KEY) {
                    return Ok(Taken::No);
                }
                if let Some((key, value)) = &request.tag
                    && tags.get(key) != Some(value)
                {
                    return Ok(Taken::No);
                }
                accelerator.name().unwrap_or_default().to_owned()
            }
        };
        let address = Address::Accelerator {
            accelerator: name.clone(),
        };
        let marker = tags
            .get(OVERRIDE_KEY)
            .filter(|_| owned)
            .map(|until| LiveOverride {
                address: address.clone(),
                until: until.clone(),
            });
        let mut found = Vec::new();
        // A claimed accelerator meridian has not tagged yet takes its
        // listeners' names from the claim.
        let names = match scope {
            Scope::Managed(claims) if !owned => claims
                .get(&arn)
                .map(|c| c.listener_names.clone())
                .unwrap_or_default(),
            _ => listener_names(&tags),
        };
        let mut observed = Observed::new(
            address,
            Resource::Accelerator(accelerator_spec(&accelerator, &tags)),
            Some(arn.clone()),
        );
        observed.status = accelerator.status().map(|s| s.as_str().to_owned());
        observed.owned = owned;
        observed.adopted = tags.contains_key(ADOPTED_KEY);
        observed.ip_addresses = accelerator
            .ip_sets()
            .iter()
            .flat_map(|set| set.ip_addresses().iter().cloned())
            .collect();
        found.push(observed);
        let mut listeners = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .run(
                    "ListListeners",
                    false,
                    &format!("list listeners of {name}"),
                    || {
                        self.ga
                            .list_listeners()
                            .accelerator_arn(&arn)
                            .max_results(100)
                            .set_next_token(token.clone())
                            .send()
                    },
                )
                .await?;
            listeners.extend(page.listeners().iter().cloned());
            match page.next_token() {
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
        // In ARN order, so every reader of the tags names them alike.
        listeners.sort_by(|a, b| a.listener_arn().cmp(&b.listener_arn()));
        let specs: Vec<_> = listeners.iter().map(listener_spec).collect();
        let named = name_listeners(&names, &specs);
        for ((listener, spec), listener_name) in listeners.iter().zip(specs).zip(named) {
            let Some(listener_arn) = listener.listener_arn().map(str::to_owned) else {
                continue;
            };
            let listener_name =
                listener_name.unwrap_or_else(|| format!("~{}", suffix(&listener_arn)));
            let listener_address = Address::Listener {
                accelerator: name.clone(),
                listener: listener_name.clone(),
            };
            found.push(Observed {
                address: listener_address,
                resource: Resource::Listener(spec),
                cloud_id: Some(listener_arn.clone()),
                etag: None,
                status: None,
                health: None,
                owned: true,
                adopted: false,
                ip_addresses: Vec::new(),
            });
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .run(
                        "ListEndpointGroups",
                        false,
                        &format!("list endpoint groups of {name}/{listener_name}"),
                        || {
                            self.ga
                                .list_endpoint_groups()
                                .listener_arn(&listener_arn)
                                .max_results(100)
                                .set_next_token(token.clone())
                                .send()
                        },
                    )
                    .await?;
                for group in page.endpoint_groups() {
                    let Some(group_arn) = group.endpoint_group_arn().map(str::to_owned) else {
                        continue;
                    };
                    let view = group_view(group);
                    let region = view.spec.region.clone();
                    let address = Address::EndpointGroup {
                        accelerator: name.clone(),
                        listener: listener_name.clone(),
                        region: region.clone(),
                    };
                    found.push(Observed {
                        address,
                        resource: Resource::EndpointGroup(view.spec),
                        cloud_id: Some(group_arn.clone()),
                        etag: None,
                        status: None,
                        health: None,
                        owned: true,
                        adopted: false,
                        ip_addresses: Vec::new(),
                    });
                    for (id, (spec, health)) in view.endpoints {
                        found.push(Observed {
                            address: Address::Endpoint {
                                accelerator: name.clone(),
                                listener: listener_name.clone(),
                                region: region.clone(),
                                endpoint: id.clone(),
                            },
                            resource: Resource::Endpoint(spec),
                            cloud_id: Some(id),
                            etag: None,
                            status: None,
                            health,
                            owned: true,
                            adopted: false,
                            ip_addresses: Vec::new(),
                        });
                    }
                }
                match page.next_token() {
                    Some(next) => token = Some(next.to_owned()),
                    None => break,
                }
            }
        }
        Ok(Taken::Yes(found, marker))
    }

    /// The tags of an accelerator; `None` when it no longer exists.
    pub(crate) async fn tags_of_accelerator(
        &self,
        arn: &str,
    ) -> Result<Option<BTreeMap<String, String>>, ProviderError> {
        let listed = self
            .run(
                "ListTagsForResource",
                false,
                &format!("list tags of {arn}"),
                || self.ga.list_tags_for_resource().resource_arn(arn).send(),
            )
            .await;
        match listed {
            Ok(output) => Ok(Some(
                output
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned()))
                    .collect(),
            )),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Waits until the accelerator is `DEPLOYED`, by listing accelerators
    /// (Global Accelerator's guidance), not by describing it over and over.
    pub(crate) async fn wait_deployed(&self, arn: &str, what: &str) -> Result<(), ProviderError> {
        with_retries(
            &self.config.retry,
            &self.config.stats,
            what,
            || async move {
                let mut token: Option<String> = None;
                loop {
                    let page = self
                        .run("ListAccelerators", false, what, || {
                            self.ga
                                .list_accelerators()
                                .max_results(100)
                                .set_next_token(token.clone())
                                .send()
                        })
                        .await?;
                    if let Some(accelerator) = page
                        .accelerators()
                        .iter()
                        .find(|a| a.accelerator_arn() == Some(arn))
                    {
                        let status = accelerator
                            .status()
                            .map(|s| s.as_str().to_owned())
                            .unwrap_or_default();
                        return if status == "DEPLOYED" {
                            Ok(())
                        } else {
                            Err(ProviderError::waiting(
                                "ListAccelerators",
                                "InProgress",
                                Duration::from_secs(2),
                                format!("{arn} is {status}"),
                            ))
                        };
                    }
                    match page.next_token() {
                        Some(next) => token = Some(next.to_owned()),
                        None => return Ok(()),
                    }
                }
            },
        )
        .await
    }
}
