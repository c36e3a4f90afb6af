//! Transit Gateway through EC2: gateways, peering attachments (created in
//! the requester's region, accepted in the accepter's, waited to
//! `available`) and static routes, with pagination everywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

mod apply;

use aws_sdk_ec2 as ec2;
use aws_sdk_ec2::types::{ResourceType, Tag as Ec2Tag, TagSpecification};
use meridian_provider::{
    ADOPTED_KEY, Address, Claim, DiscoverRequest, MANAGED_BY_KEY, MANAGED_BY_VALUE, MESH_KEY,
    OWNER_KEY, Observed, PeeringSpec, ProviderError, Resource, RouteSpec, TransitGatewaySpec,
    Unclaimed, with_retries,
};

use crate::AwsProvider;
use crate::client::is_not_found;

/// The region whose EC2 endpoint answers `DescribeRegions`.
const GA_REGION_FOR_EC2: &str = "us-east-1";

pub(crate) fn tags_of(tags: &[Ec2Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

pub(crate) fn spec(
    resource_type: ResourceType,
    tags: &BTreeMap<String, String>,
) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource_type)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Ec2Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

/// Which gateways an observation takes.
pub(crate) enum TgwScope<'a> {
    /// Those meridian owns, and those desired state claims, by gateway id.
    Managed(BTreeMap<String, &'a Claim>),
    /// Those no meridian owns, for `meridian import`.
    Unowned(&'a DiscoverRequest),
}

pub(crate) const GONE: [&str; 5] = ["deleted", "deleting", "failed", "failing", "rejected"];

impl AwsProvider {
    fn ec2(&self, region: &str) -> ec2::Client {
        let mut clients = self.ec2.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let mut builder = ec2::config::Builder::from(&self.shared)
                    .retry_config(aws_config::retry::RetryConfig::disabled())
                    .timeout_config(
                        aws_config::timeout::TimeoutConfig::builder()
                            .connect_timeout(Duration::from_secs(5))
                            .operation_attempt_timeout(Duration::from_secs(30))
                            .build(),
                    )
                    .region(aws_config::Region::new(region.to_owned()));
                if let Some(url) = &self.config.ec2_endpoint {
                    builder = builder.endpoint_url(url);
                }
                ec2::Client::from_conf(builder.build())
            })
            .clone()
    }

    fn ownership(&self, mesh: &str, name: String) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MANAGED_BY_KEY.to_owned(), MANAGED_BY_VALUE.to_owned()),
            (OWNER_KEY.to_owned(), self.config.owner.clone()),
            (MESH_KEY.to_owned(), mesh.to_owned()),
            ("Name".to_owned(), name),
        ])
    }

    /// Observes gateways, peerings and static routes in `regions`.
    pub(crate) async fn observe_transit_gateway(
        &self,
        hinted: &[String],
    ) -> Result<Vec<Observed>, ProviderError> {
        self.observe_gateways(hinted, &TgwScope::Managed(BTreeMap::new()), &mut Vec::new())
            .await
    }

    /// The gateways `scope` takes, with their peerings and static routes.
    pub(crate) async fn observe_gateways(
        &self,
        hinted: &[String],
        scope: &TgwScope<'_>,
        unclaimed: &mut Vec<Unclaimed>,
    ) -> Result<Vec<Observed>, ProviderError> {
        // Every enabled region, not only the mesh's current ones: a region
        // dropped from a mesh must be observed for its gateway to be deleted.
        let mut regions: BTreeSet<String> = hinted.iter().cloned().collect();
        let enabled = self
            .run("DescribeRegions", false, "describe regions", || {
                self.ec2(GA_REGION_FOR_EC2).describe_regions().send()
            })
            .await?;
        regions.extend(
            enabled
                .regions()
                .iter()
                .filter(|r| r.opt_in_status() != Some("not-opted-in"))
                .filter_map(|r| r.region_name().map(str::to_owned)),
        );
        let regions: Vec<String> = regions.into_iter().collect();
        let regions = regions.as_slice();
        let mut found = Vec::new();
        let mut gateways = Vec::new();
        // Observed gateways by id: their mesh, and whether meridian owns them.
        let mut gateway_mesh: BTreeMap<String, (String, bool)> = BTreeMap::new();
        for region in regions {
            let client = self.ec2(region);
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .run(
                        "DescribeTransitGateways",
                        false,
                        &format!("describe transit gateways in {region}"),
                        || {
                            client
                                .describe_transit_gateways()
                                .max_results(1000)
                                .set_next_token(token.clone())
                                .send()
                        },
                    )
                    .await?;
                for tgw in page.transit_gateways() {
                    let tags = tags_of(tgw.tags());
                    let state = tgw
                        .state()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default();
                    let Some(id) = tgw.transit_gateway_id() else {
                        continue;
                    };
                    if GONE.contains(&state.as_str()) {
                        continue;
                    }
                    let mut owned = self.owns(&tags);
                    let mesh = match scope {
                        TgwScope::Managed(claims) => match (claims.get(id), owned) {
                            (Some(claim), _) => {
                                let Address::TransitGateway {
                                    mesh,
                                    region: pinned,
                                } = &claim.address
                                else {
                                    continue;
                                };
                                let refusal = if pinned != region {
                                    Some(format!("the gateway is in {region}, not {pinned}"))
                                } else if !owned
                                    && tags.get(MANAGED_BY_KEY).map(String::as_str)
                                        == Some(MANAGED_BY_VALUE)
                                {
                                    Some(format!(
                                        "managed by another meridian owner (`{}`); release it there first",
                                        tags.get(OWNER_KEY).map(String::as_str).unwrap_or("?")
                                    ))
                                } else {
                                    None
                                };
                                if let Some(reason) = refusal {
                                    unclaimed.push(Unclaimed {
                                        address: claim.address.clone(),
                                        external_id: id.to_owned(),
                                        reason,
                                    });
                                    continue;
                                }
                                // Owned in another mesh (renamed while
                                // pinned): adopted again, which retags it.
                                if owned && tags.get(MESH_KEY) != Some(mesh) {
                                    owned = false;
                                }
                                mesh.clone()
                            }
                            (None, true) => match tags.get(MESH_KEY) {
                                Some(mesh) => mesh.clone(),
                                None => continue,
                            },
                            (None, false) => continue,
                        },
                        TgwScope::Unowned(request) => {
                            if tags.contains_key(MANAGED_BY_KEY)
                                || request.id.as_deref().is_some_and(|want| want != id)
                                || request.name.as_deref().is_some_and(|want| {
                                    tags.get("Name").map(String::as_str) != Some(want)
                                })
                                || request
                                    .tag
                                    .as_ref()
                                    .is_some_and(|(k, v)| tags.get(k) != Some(v))
                            {
                                continue;
                            }
                            // Grouped into meshes by the importer; the
                            // gateway's id stands in for its mesh here.
                            id.to_owned()
                        }
                    };
                    let adopted = tags.contains_key(ADOPTED_KEY);
                    let address = Address::TransitGateway {
                        mesh: mesh.clone(),
                        region: region.clone(),
                    };
                    self.remember_first(address.to_string(), id);
                    let options = tgw.options();
                    if let Some(rtb) = options.and_then(|o| o.association_default_route_table_id())
                    {
                        self.remember_first(format!("{address}#route-table"), rtb);
                    }
                    if let Some(owner) = tgw.owner_id() {
                        self.remember_first(format!("{address}#owner"), owner);
                    }
                    found.push(Observed {
                        address,
                        resource: Resource::TransitGateway(TransitGatewaySpec {
                            region: region.clone(),
                            amazon_side_asn: options
                                .and_then(|o| o.amazon_side_asn())
                                .and_then(|a| u32::try_from(a).ok())
                                .unwrap_or(0),
                            description: tgw.description().unwrap_or_default().to_owned(),
                        }),
                        cloud_id: Some(id.to_owned()),
                        etag: None,
                        status: Some(state),
                        health: None,
                        owned,
                        adopted,
                        ip_addresses: Vec::new(),
                    });
                    gateways.push((
                        mesh.clone(),
                        region.clone(),
                        options
                            .and_then(|o| o.association_default_route_table_id())
                            .map(str::to_owned),
                        // Routes through anything but this mesh's peerings
                        // are not meridian's on a gateway it did not create.
                        !owned || adopted,
                    ));
                    gateway_mesh.insert(id.to_owned(), (mesh.clone(), owned));
                }
                match page.next_token() {
                    Some(next) => token = Some(next.to_owned()),
                    None => break,
                }
            }
        }
        let mut peerings: BTreeMap<String, (String, String, String)> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for region in regions {
            let client = self.ec2(region);
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .run(
                        "DescribeTransitGatewayPeeringAttachments",
                        false,
                        &format!("describe peerings in {region}"),
                        || {
                            client
                                .describe_transit_gateway_peering_attachments()
                                .max_results(1000)
                                .set_next_token(token.clone())
                                .send()
                        },
                    )
                    .await?;
                for attachment in page.transit_gateway_peering_attachments() {
                    let tags = tags_of(attachment.tags());
                    let state = attachment
                        .state()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default();
                    let Some(id) = attachment.transit_gateway_attachment_id() else {
                        continue;
                    };
                    if GONE.contains(&state.as_str()) || seen.contains(id) {
                        continue;
                    }
                    let mut owned = self.owns(&tags);
                    let ends = (
                        attachment
                            .requester_tgw_info()
                            .and_then(|i| i.transit_gateway_id())
                            .and_then(|g| gateway_mesh.get(g)),
                        attachment
                            .accepter_tgw_info()
                            .and_then(|i| i.transit_gateway_id())
                            .and_then(|g| gateway_mesh.get(g)),
                    );
                    // A peering meridian does not own is taken when both
                    // its gateways are in one mesh and one of them is not
                    // meridian's yet (claimed, or found for import).
                    let mesh = match (owned, ends) {
                        // Both gateways moved to another mesh (renamed while
                        // pinned): the peering follows them, adopted again.
                        (true, (Some((a, false)), Some((b, _))))
                            if a == b && tags.get(MESH_KEY) != Some(a) =>
                        {
                            owned = false;
                            Some(a.clone())
                        }
                        (true, _) => tags.get(MESH_KEY).cloned(),
                        (false, (Some((a, a_owned)), Some((b, b_owned))))
                            if !tags.contains_key(MANAGED_BY_KEY)
                                && (!a_owned || !b_owned)
                                && (a == b || matches!(scope, TgwScope::Unowned(_))) =>
                        {
                            Some(a.clone())
                        }
                        _ => None,
                    };
                    let Some(mesh) = mesh else {
                        continue;
                    };
                    seen.insert(id.to_owned());
                    let (Some(requester), Some(accepter)) = (
                        attachment.requester_tgw_info().and_then(|i| i.region()),
                        attachment.accepter_tgw_info().and_then(|i| i.region()),
                    ) else {
                        continue;
                    };
                    let mesh = &mesh;
                    let address = Address::Peering {
                        mesh: mesh.clone(),
                        requester: requester.to_owned(),
                        accepter: accepter.to_owned(),
                    };
                    self.remember_first(address.to_string(), id);
                    peerings.insert(
                        id.to_owned(),
                        (mesh.clone(), requester.to_owned(), accepter.to_owned()),
                    );
                    let mut observed = Observed {
                        address,
                        resource: Resource::Peering(PeeringSpec {
                            requester_region: requester.to_owned(),
                            accepter_region: accepter.to_owned(),
                            accepted: state != "pendingAcceptance"
                                && state != "initiatingRequest"
                                && state != "initiating",
                        }),
                        cloud_id: Some(id.to_owned()),
                        etag: None,
                        status: Some(state),
                        health: None,
                        owned,
                        adopted: tags.contains_key(ADOPTED_KEY),
                        ip_addresses: Vec::new(),
                    };
                    if let TgwScope::Unowned(_) = scope {
                        // Both gateways' ids, for the importer's meshes.
                        observed.etag = Some(format!(
                            "{}|{}",
                            attachment
                                .requester_tgw_info()
                                .and_then(|i| i.transit_gateway_id())
                                .unwrap_or_default(),
                            attachment
                                .accepter_tgw_info()
                                .and_then(|i| i.transit_gateway_id())
                                .unwrap_or_default()
                        ));
                    }
                    found.push(observed);
                }
                match page.next_token() {
                    Some(next) => token = Some(next.to_owned()),
                    None => break,
                }
            }
        }
        for (mesh, region, route_table, peerings_only) in gateways {
            let Some(route_table) = route_table else {
                continue;
            };
            let client = self.ec2(&region);
            // No MaxResults: the default (1000) is the API's maximum anyway.
            let filter = aws_sdk_ec2::types::Filter::builder()
                .name("type")
                .values("static")
                .build();
            let routes = self
                .run(
                    "SearchTransitGatewayRoutes",
                    false,
                    &format!("search routes of {route_table}"),
                    || {
                        client
                            .search_transit_gateway_routes()
                            .transit_gateway_route_table_id(&route_table)
                            .filters(filter.clone())
                            .send()
                    },
                )
                .await?;
            for route in routes.routes() {
                let (Some(cidr), Some(attachment)) = (
                    route.destination_cidr_block(),
                    route
                        .transit_gateway_attachments()
                        .first()
                        .and_then(|a| a.transit_gateway_attachment_id()),
                ) else {
                    continue;
                };
                // A route through an attachment meridian does not know
                // (deleted, or not a live peering of this mesh) is still
                // this gateway's route: it is observed pointing nowhere,
                // so the plan replaces it instead of failing to create it.
                let peer = match peerings.get(attachment) {
                    Some((_, requester, accepter)) if *requester == region => accepter.clone(),
                    Some((_, requester, _)) => requester.clone(),
                    None if peerings_only => continue,
                    None => format!("(attachment {attachment})"),
                };
                let peer = &peer;
                found.push(Observed {
                    address: Address::Route {
                        mesh: mesh.clone(),
                        region: region.clone(),
                        destination: cidr.to_owned(),
                    },
                    resource: Resource::Route(RouteSpec {
                        region: region.clone(),
                        destination_cidr: cidr.to_owned(),
                        via_peer_region: peer.clone(),
                    }),
                    cloud_id: Some(format!("{route_table}|{cidr}")),
                    etag: None,
                    status: route.state().map(|s| s.as_str().to_owned()),
                    health: None,
                    owned: true,
                    adopted: false,
                    ip_addresses: Vec::new(),
                });
            }
        }
        if let TgwScope::Managed(claims) = scope {
            for (id, claim) in claims {
                let seen = found
                    .iter()
                    .any(|o| o.cloud_id.as_deref() == Some(id.as_str()))
                    || unclaimed.iter().any(|u| &u.external_id == id);
                if !seen {
                    unclaimed.push(Unclaimed {
                        address: claim.address.clone(),
                        external_id: id.clone(),
                        reason: "no such transit gateway exists (in any enabled region)".to_owned(),
                    });
                }
            }
        }
        Ok(found)
    }

    async fn wait_gateway_available(
        &self,
        region: &str,
        id: &str,
        what: &str,
    ) -> Result<(), ProviderError> {
        let client = self.ec2(region);
        with_retries(&self.config.retry, &self.config.stats, what, || {
            let client = client.clone();
            async move {
                let page = self
                    .run("DescribeTransitGateways", false, what, || {
                        client
                            .describe_transit_gateways()
                            .transit_gateway_ids(id)
                            .send()
                    })
                    .await?;
                let state = page
                    .transit_gateways()
                    .first()
                    .and_then(|t| t.state())
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default();
                if state == "available" {
                    Ok(())
                } else {
                    Err(ProviderError::waiting(
                        "DescribeTransitGateways",
                        "Pending",
                        Duration::from_secs(5),
                        format!("{id} is {state}"),
                    ))
                }
            }
        })
        .await
    }

    /// The state of a peering attachment as seen from `region`; `None`
    /// when the region does not (yet) know it.
    async fn peering_state(
        &self,
        region: &str,
        id: &str,
        what: &str,
    ) -> Result<Option<String>, ProviderError> {
        let client = self.ec2(region);
        let listed = self
            .run(
                "DescribeTransitGatewayPeeringAttachments",
                false,
                what,
                || {
                    client
                        .describe_transit_gateway_peering_attachments()
                        .transit_gateway_attachment_ids(id)
                        .send()
                },
            )
            .await;
        match listed {
            Ok(out) => Ok(out
                .transit_gateway_peering_attachments()
                .first()
                .and_then(|p| p.state())
                .map(|s| s.as_str().to_owned())),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn wait_peering_available(
        &self,
        region: &str,
        id: &str,
        what: &str,
    ) -> Result<(), ProviderError> {
        with_retries(
            &self.config.retry,
            &self.config.stats,
            what,
            || async move {
                match self.peering_state(region, id, what).await?.as_deref() {
                    Some("available") => Ok(()),
                    Some(gone @ ("failed" | "rejected" | "deleted" | "deleting" | "failing")) => {
                        Err(ProviderError::stalled(
                            "DescribeTransitGatewayPeeringAttachments",
                            "PeeringFailed",
                            format!("{id} is {gone}"),
                        ))
                    }
                    other => Err(ProviderError::waiting(
                        "DescribeTransitGatewayPeeringAttachments",
                        "Pending",
                        Duration::from_secs(2),
                        format!("{id} is {}", other.unwrap_or("not visible yet")),
                    )),
                }
            },
        )
        .await
    }

    fn peering_between(&self, mesh: &str, a: &str, b: &str) -> Result<String, ProviderError> {
        let forward = Address::Peering {
            mesh: mesh.to_owned(),
            requester: a.to_owned(),
            accepter: b.to_owned(),
        };
        let backward = Address::Peering {
            mesh: mesh.to_owned(),
            requester: b.to_owned(),
            accepter: a.to_owned(),
        };
        self.id_of(&forward, "CreateTransitGatewayRoute")
            .or_else(|_| self.id_of(&backward, "CreateTransitGatewayRoute"))
    }
}
