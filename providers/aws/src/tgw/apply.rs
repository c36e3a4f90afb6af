//! Transit Gateway writes: gateways, peering attachments (created in the
//! requester's region, accepted in the accepter's, waited to `available`)
//! and static routes.

use std::time::Duration;

use aws_sdk_ec2 as ec2;
use aws_sdk_ec2::types::{ResourceType, TransitGatewayRequestOptions};
use meridian_provider::{
    ADOPTED_KEY, Action, Address, Change, MANAGED_BY_KEY, MANAGED_BY_VALUE, MESH_KEY, OWNER_KEY,
    ProviderError, Resource, with_retries,
};

use super::{GONE, tags_of};
use crate::AwsProvider;
use crate::client::is_not_found;

impl AwsProvider {
    /// Carries out one Transit Gateway change.
    pub(crate) async fn apply_transit_gateway(
        &self,
        change: &Change,
        what: &str,
    ) -> Result<(), ProviderError> {
        let key = change.address.to_string();
        let live_id = || {
            change.cloud_id.clone().ok_or_else(|| {
                ProviderError::stalled(
                    "apply",
                    "MissingCloudId",
                    format!("{} has no live id; re-run plan", change.address),
                )
            })
        };
        let not_found_ok = |result: Result<(), ProviderError>| match result {
            Err(error) if is_not_found(&error) => Ok(()),
            other => other,
        };
        match (&change.address, change.action, change.after.as_ref()) {
            (
                Address::TransitGateway { mesh, region },
                Action::Adopt,
                Some(Resource::TransitGateway(spec)),
            ) => {
                let id = live_id()?;
                let Some(live) = self.gateway_now(region, &id, what).await? else {
                    return Err(ProviderError::conflict(
                        "CreateTags",
                        "InvalidTransitGatewayID.NotFound",
                        format!(
                            "{what}: {id} no longer exists; adopting never creates (remove it from `meridian.dev/external-id` to create a new gateway)"
                        ),
                    ));
                };
                if let Some(Resource::TransitGateway(before)) = &change.before
                    && before.amazon_side_asn != spec.amazon_side_asn
                {
                    return Err(ProviderError::stalled(
                        "ModifyTransitGateway",
                        "InvalidParameterValue",
                        format!(
                            "{}: amazonSideAsn cannot be changed on an existing transit gateway ({} -> {}); declare the live ASN to adopt it",
                            change.address, before.amazon_side_asn, spec.amazon_side_asn
                        ),
                    ));
                }
                self.tag_adopted(region, &id, mesh, what).await?;
                if live != spec.description {
                    let client = self.ec2(region);
                    self.run("ModifyTransitGateway", true, what, || {
                        client
                            .modify_transit_gateway()
                            .transit_gateway_id(&id)
                            .description(&spec.description)
                            .send()
                    })
                    .await?;
                }
            }
            (
                Address::Peering {
                    mesh,
                    requester,
                    accepter,
                },
                Action::Adopt,
                Some(Resource::Peering(spec)),
            ) => {
                let id = live_id()?;
                self.tag_adopted(requester, &id, mesh, what).await?;
                if spec.accepted
                    && matches!(&change.before, Some(Resource::Peering(before)) if !before.accepted)
                {
                    self.accept_peering(accepter, &id, what).await?;
                    self.wait_peering_available(accepter, &id, what).await?;
                }
            }
            (
                Address::TransitGateway { mesh, region },
                Action::Create,
                Some(Resource::TransitGateway(spec)),
            ) => {
                let client = self.ec2(region);
                let tags = self.ownership(mesh, format!("{mesh}-{region}"));
                let output = self
                    .create_once(
                        "CreateTransitGateway",
                        what,
                        || {
                            client
                                .create_transit_gateway()
                                .description(&spec.description)
                                .options(
                                    TransitGatewayRequestOptions::builder()
                                        .amazon_side_asn(i64::from(spec.amazon_side_asn))
                                        .build(),
                                )
                                .tag_specifications(super::spec(
                                    ResourceType::TransitGateway,
                                    &tags,
                                ))
                                .send()
                        },
                        || async {
                            let listed = self.run("DescribeTransitGateways", false, what, || client.describe_transit_gateways().send()).await?;
                            Ok(listed
                                .transit_gateways()
                                .iter()
                                .find(|t| {
                                    let tags = tags_of(t.tags());
                                    self.owns(&tags) && tags.get(MESH_KEY) == Some(mesh) && !GONE.contains(&t.state().map(|s| s.as_str()).unwrap_or(""))
                                })
                                .map(|t| ec2::operation::create_transit_gateway::CreateTransitGatewayOutput::builder().transit_gateway(t.clone()).build()))
                        },
                    )
                    .await?;
                let tgw = output.transit_gateway().ok_or_else(|| {
                    ProviderError::stalled(
                        "CreateTransitGateway",
                        "MalformedResponse",
                        "no TransitGateway in the response",
                    )
                })?;
                let id = tgw.transit_gateway_id().unwrap_or_default().to_owned();
                if let Some(rtb) = tgw
                    .options()
                    .and_then(|o| o.association_default_route_table_id())
                {
                    self.remember(format!("{key}#route-table"), rtb);
                }
                if let Some(owner) = tgw.owner_id() {
                    self.remember(format!("{key}#owner"), owner);
                }
                self.remember(key.clone(), id.clone());
                self.wait_gateway_available(region, &id, what).await?;
            }
            (
                Address::TransitGateway { region, .. },
                Action::Update,
                Some(Resource::TransitGateway(spec)),
            ) => {
                if let Some(Resource::TransitGateway(before)) = &change.before
                    && before.amazon_side_asn != spec.amazon_side_asn
                {
                    return Err(ProviderError::stalled(
                        "ModifyTransitGateway",
                        "InvalidParameterValue",
                        format!(
                            "{}: amazonSideAsn cannot be changed on an existing transit gateway ({} -> {}); remove the region from the mesh, apply, then add it back",
                            change.address, before.amazon_side_asn, spec.amazon_side_asn
                        ),
                    ));
                }
                let id = live_id()?;
                // Read-compare: write only over the description the plan saw.
                let live = self.gateway_now(region, &id, what).await?;
                let planned = match &change.before {
                    Some(Resource::TransitGateway(b)) => Some(b.description.as_str()),
                    _ => None,
                };
                match live.as_deref() {
                    Some(now) if now == spec.description => return Ok(()),
                    Some(now) if Some(now) == planned => {}
                    now => {
                        return Err(ProviderError::conflict(
                            "ModifyTransitGateway",
                            "ChangedSinceObserved",
                            format!(
                                "{what} changed since it was observed: live description {}, the plan saw {}; nothing was written",
                                now.map_or_else(
                                    || "(gateway gone)".to_owned(),
                                    |d| format!("{d:?}")
                                ),
                                planned.map_or_else(|| "(absent)".to_owned(), |d| format!("{d:?}"))
                            ),
                        ));
                    }
                }
                let client = self.ec2(region);
                self.run("ModifyTransitGateway", true, what, || {
                    client
                        .modify_transit_gateway()
                        .transit_gateway_id(&id)
                        .description(&spec.description)
                        .send()
                })
                .await?;
            }
            (Address::TransitGateway { region, .. }, Action::Delete, _) => {
                let id = live_id()?;
                // Read-compare: a gateway already gone is done; one whose
                // description moved since the plan is not deleted.
                let planned = match &change.before {
                    Some(Resource::TransitGateway(b)) => Some(b.description.as_str()),
                    _ => None,
                };
                match self.gateway_now(region, &id, what).await? {
                    None => {
                        self.forget(&key);
                        return Ok(());
                    }
                    Some(now) if planned.is_none_or(|p| p == now) => {}
                    Some(now) => {
                        return Err(ProviderError::conflict(
                            "DeleteTransitGateway",
                            "ChangedSinceObserved",
                            format!(
                                "{what} changed since it was observed: live description {now:?}, the plan saw {:?}; nothing was deleted",
                                planned.unwrap_or_default()
                            ),
                        ));
                    }
                }
                let client = self.ec2(region);
                not_found_ok(
                    self.run("DeleteTransitGateway", true, what, || {
                        client
                            .delete_transit_gateway()
                            .transit_gateway_id(&id)
                            .send()
                    })
                    .await
                    .map(|_| ()),
                )?;
                self.forget(&key);
            }
            (
                Address::Peering {
                    mesh,
                    requester,
                    accepter,
                },
                Action::Create,
                Some(Resource::Peering(_)),
            ) => {
                let requester_address = Address::TransitGateway {
                    mesh: mesh.clone(),
                    region: requester.clone(),
                };
                let tgw =
                    self.id_of(&requester_address, "CreateTransitGatewayPeeringAttachment")?;
                let peer_address = Address::TransitGateway {
                    mesh: mesh.clone(),
                    region: accepter.clone(),
                };
                let peer = self.id_of(&peer_address, "CreateTransitGatewayPeeringAttachment")?;
                let account = self.id_of_key(&format!("{peer_address}#owner"))?;
                let tags = self.ownership(mesh, format!("{mesh}-{requester}-{accepter}"));
                let client = self.ec2(requester);
                let output = self
                    .create_once(
                        "CreateTransitGatewayPeeringAttachment",
                        what,
                        || {
                            client
                                .create_transit_gateway_peering_attachment()
                                .transit_gateway_id(&tgw)
                                .peer_transit_gateway_id(&peer)
                                .peer_account_id(&account)
                                .peer_region(accepter)
                                .tag_specifications(super::spec(
                                    ResourceType::TransitGatewayAttachment,
                                    &tags,
                                ))
                                .send()
                        },
                        || async {
                            let listed = self.run("DescribeTransitGatewayPeeringAttachments", false, what, || client.describe_transit_gateway_peering_attachments().send()).await?;
                            Ok(listed
                                .transit_gateway_peering_attachments()
                                .iter()
                                .find(|p| {
                                    self.owns(&tags_of(p.tags()))
                                        && p.requester_tgw_info().and_then(|i| i.transit_gateway_id()) == Some(tgw.as_str())
                                        && p.accepter_tgw_info().and_then(|i| i.transit_gateway_id()) == Some(peer.as_str())
                                        && !GONE.contains(&p.state().map(|s| s.as_str()).unwrap_or(""))
                                })
                                .map(|p| ec2::operation::create_transit_gateway_peering_attachment::CreateTransitGatewayPeeringAttachmentOutput::builder().transit_gateway_peering_attachment(p.clone()).build()))
                        },
                    )
                    .await?;
                let id = output
                    .transit_gateway_peering_attachment()
                    .and_then(|p| p.transit_gateway_attachment_id())
                    .ok_or_else(|| {
                        ProviderError::stalled(
                            "CreateTransitGatewayPeeringAttachment",
                            "MalformedResponse",
                            "no attachment id in the response",
                        )
                    })?
                    .to_owned();
                self.remember(key, id.clone());
                self.accept_peering(accepter, &id, what).await?;
                self.wait_peering_available(accepter, &id, what).await?;
            }
            (Address::Peering { accepter, .. }, Action::Update, Some(Resource::Peering(spec))) => {
                let id = live_id()?;
                if spec.accepted
                    && matches!(&change.before, Some(Resource::Peering(before)) if !before.accepted)
                {
                    self.accept_peering(accepter, &id, what).await?;
                }
                self.wait_peering_available(accepter, &id, what).await?;
            }
            (Address::Peering { requester, .. }, Action::Delete, _) => {
                let id = live_id()?;
                let client = self.ec2(requester);
                not_found_ok(
                    self.run("DeleteTransitGatewayPeeringAttachment", true, what, || {
                        client
                            .delete_transit_gateway_peering_attachment()
                            .transit_gateway_attachment_id(&id)
                            .send()
                    })
                    .await
                    .map(|_| ()),
                )?;
                self.forget(&key);
            }
            (
                Address::Route {
                    mesh,
                    region,
                    destination,
                },
                Action::Create | Action::Update,
                Some(Resource::Route(spec)),
            ) => {
                let gateway = Address::TransitGateway {
                    mesh: mesh.clone(),
                    region: region.clone(),
                };
                let route_table = self.id_of_key(&format!("{gateway}#route-table"))?;
                let attachment = self.peering_between(mesh, region, &spec.via_peer_region)?;
                let client = self.ec2(region);
                if change.action == Action::Update {
                    self.run("ReplaceTransitGatewayRoute", true, what, || {
                        client
                            .replace_transit_gateway_route()
                            .transit_gateway_route_table_id(&route_table)
                            .destination_cidr_block(destination)
                            .transit_gateway_attachment_id(&attachment)
                            .send()
                    })
                    .await?;
                } else {
                    match self
                        .run("CreateTransitGatewayRoute", true, what, || {
                            client
                                .create_transit_gateway_route()
                                .transit_gateway_route_table_id(&route_table)
                                .destination_cidr_block(destination)
                                .transit_gateway_attachment_id(&attachment)
                                .send()
                        })
                        .await
                    {
                        // A retry after a lost response finds the route the
                        // first attempt made; the next observation checks
                        // where it points.
                        Err(error) if error.code == "RouteAlreadyExists" => {}
                        other => {
                            other?;
                        }
                    }
                }
            }
            (
                Address::Route {
                    mesh,
                    region,
                    destination,
                },
                Action::Delete,
                _,
            ) => {
                let gateway = Address::TransitGateway {
                    mesh: mesh.clone(),
                    region: region.clone(),
                };
                let route_table = self.id_of_key(&format!("{gateway}#route-table"))?;
                let client = self.ec2(region);
                not_found_ok(
                    self.run("DeleteTransitGatewayRoute", true, what, || {
                        client
                            .delete_transit_gateway_route()
                            .transit_gateway_route_table_id(&route_table)
                            .destination_cidr_block(destination)
                            .send()
                    })
                    .await
                    .map(|_| ()),
                )?;
            }
            (address, action, _) => {
                return Err(ProviderError::stalled(
                    "apply",
                    "UnsupportedChange",
                    format!("{action:?} of {address} has no matching value"),
                ));
            }
        }
        Ok(())
    }

    /// Writes meridian's ownership tags (and the adoption mark) onto a
    /// gateway or peering attachment it did not create; its `Name` and every
    /// other tag stay.
    async fn tag_adopted(
        &self,
        region: &str,
        id: &str,
        mesh: &str,
        what: &str,
    ) -> Result<(), ProviderError> {
        let tags: Vec<ec2::types::Tag> = [
            (MANAGED_BY_KEY, MANAGED_BY_VALUE),
            (OWNER_KEY, self.config.owner.as_str()),
            (MESH_KEY, mesh),
            (ADOPTED_KEY, "true"),
        ]
        .iter()
        .map(|(k, v)| ec2::types::Tag::builder().key(*k).value(*v).build())
        .collect();
        let client = self.ec2(region);
        // Read before writing: another meridian owner's object is refused.
        let filter = ec2::types::Filter::builder()
            .name("resource-id")
            .values(id)
            .build();
        let live = self
            .run("DescribeTags", false, what, || {
                client.describe_tags().filters(filter.clone()).send()
            })
            .await?;
        let live: std::collections::BTreeMap<&str, &str> = live
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?, t.value().unwrap_or_default())))
            .collect();
        if live.get(MANAGED_BY_KEY) == Some(&MANAGED_BY_VALUE)
            && live.get(OWNER_KEY) != Some(&self.config.owner.as_str())
        {
            return Err(ProviderError::stalled(
                "CreateTags",
                "OwnedElsewhere",
                format!(
                    "{what}: {id} is managed by another meridian owner (`{}`); release it there first",
                    live.get(OWNER_KEY).copied().unwrap_or("?")
                ),
            ));
        }
        self.run("CreateTags", true, what, || {
            client
                .create_tags()
                .resources(id)
                .set_tags(Some(tags.clone()))
                .send()
        })
        .await
        .map(|_| ())
    }

    /// Removes meridian's tags from a gateway or peering attachment it
    /// manages, changing nothing else.
    pub(crate) async fn release_tgw_object(
        &self,
        address: &Address,
    ) -> Result<Vec<String>, ProviderError> {
        let region = match address {
            Address::TransitGateway { region, .. } => region.clone(),
            Address::Peering { requester, .. } => requester.clone(),
            other => {
                return Err(ProviderError::stalled(
                    "DeleteTags",
                    "UnsupportedKind",
                    format!("{other} carries no tags"),
                ));
            }
        };
        let key = address.to_string();
        let id = match self.id_of_key(&key) {
            Ok(id) => id,
            Err(_) => {
                self.observe_transit_gateway(std::slice::from_ref(&region))
                    .await?;
                self.id_of_key(&key).map_err(|_| {
                    ProviderError::stalled(
                        "DeleteTags",
                        "NotFound",
                        format!("{address} is not managed by provider `{}` (owner `{}`): nothing to release", self.config.name, self.config.owner),
                    )
                })?
            }
        };
        let what = format!("release of {address}");
        let client = self.ec2(&region);
        let keys: Vec<ec2::types::Tag> = [MANAGED_BY_KEY, OWNER_KEY, MESH_KEY, ADOPTED_KEY]
            .iter()
            .map(|k| ec2::types::Tag::builder().key(*k).build())
            .collect();
        self.run("DeleteTags", true, &what, || {
            client
                .delete_tags()
                .resources(&id)
                .set_tags(Some(keys.clone()))
                .send()
        })
        .await?;
        self.forget(&key);
        Ok(vec![id])
    }

    /// A gateway's live description, just before a write to it; `None`
    /// once it is gone (or going).
    async fn gateway_now(
        &self,
        region: &str,
        id: &str,
        what: &str,
    ) -> Result<Option<String>, ProviderError> {
        let client = self.ec2(region);
        let listed = match self
            .run("DescribeTransitGateways", false, what, || {
                client
                    .describe_transit_gateways()
                    .transit_gateway_ids(id)
                    .send()
            })
            .await
        {
            Ok(listed) => listed,
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => return Err(error),
        };
        Ok(listed
            .transit_gateways()
            .iter()
            .find(|t| {
                t.transit_gateway_id() == Some(id)
                    && !super::GONE.contains(&t.state().map(|s| s.as_str()).unwrap_or(""))
            })
            .map(|t| t.description().unwrap_or_default().to_owned()))
    }

    async fn accept_peering(
        &self,
        accepter: &str,
        id: &str,
        what: &str,
    ) -> Result<(), ProviderError> {
        // Look before accepting: right after creation the attachment may
        // still be initiating (or not yet visible in the accepter's
        // region); after a lost response it may already be accepted.
        let client = self.ec2(accepter);
        let once = meridian_provider::RetryPolicy {
            max_attempts: 1,
            max_wait: Duration::ZERO,
            ..self.config.retry.clone()
        };
        let once = &once;
        with_retries(&self.config.retry, &self.config.stats, what, || {
            let client = client.clone();
            async move {
                match self.peering_state(accepter, id, what).await?.as_deref() {
                    // One attempt per look: after an error (a lost
                    // response among them) the state is read again, so an
                    // accept that landed is never repeated into
                    // `IncorrectState`.
                    Some("pendingAcceptance") => self
                        .run_with(
                            once,
                            "AcceptTransitGatewayPeeringAttachment",
                            true,
                            what,
                            &mut || {
                                client
                                    .accept_transit_gateway_peering_attachment()
                                    .transit_gateway_attachment_id(id)
                                    .send()
                            },
                        )
                        .await
                        .map(|_| ()),
                    Some("pending" | "available" | "modifying") => Ok(()),
                    Some(gone @ ("failed" | "rejected" | "deleted" | "deleting" | "failing")) => {
                        Err(ProviderError::stalled(
                            "AcceptTransitGatewayPeeringAttachment",
                            "PeeringFailed",
                            format!("{id} is {gone}"),
                        ))
                    }
                    other => Err(ProviderError::waiting(
                        "DescribeTransitGatewayPeeringAttachments",
                        "Initiating",
                        Duration::from_secs(2),
                        format!(
                            "{id} is {} in {accepter}",
                            other.unwrap_or("not visible yet")
                        ),
                    )),
                }
            }
        })
        .await
    }
}
