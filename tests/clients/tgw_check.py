"""Looks at (and changes) Transit Gateways in moto with boto3, independently
of meridian.

Usage:
  tgw_check.py URL summary REGION...        print gateways, peerings and routes as JSON
  tgw_check.py URL delete-peering REQ ACC   delete the peering between two regions
  tgw_check.py URL estate A B               a gateway pair peered A -> B with a static route
                                            each way, as a team without meridian made it;
                                            prints the ids as JSON
  tgw_check.py URL crud REGION PEER         create, page, modify and delete gateways, a
                                            peering and routes of its own between two
                                            regions (each with room for six gateways)
"""

import json
import sys

import boto3

url, command = sys.argv[1], sys.argv[2]


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def wait_for(describe, state, attempts=200):
    import time
    for _ in range(attempts):
        found = describe()
        if found == state:
            return
        time.sleep(0.05)
    raise AssertionError(f"never became {state}: {found}")


def ec2(region):
    return boto3.client("ec2", region_name=region, endpoint_url=url, aws_access_key_id="AKIDEXAMPLE",
                        aws_secret_access_key="secret")


if command == "summary":
    regions = sys.argv[3:]
    gateways, peerings, routes = [], {}, []
    for region in regions:
        client = ec2(region)
        for tgw in client.describe_transit_gateways()["TransitGateways"]:
            if tgw["State"] in ("deleted", "deleting"):
                continue
            tags = {t["Key"]: t["Value"] for t in tgw.get("Tags", [])}
            gateways.append({"region": region, "asn": tgw["Options"]["AmazonSideAsn"], "owner": tags.get("meridian.dev/owner")})
            rtb = tgw["Options"]["AssociationDefaultRouteTableId"]
            for route in client.search_transit_gateway_routes(TransitGatewayRouteTableId=rtb, Filters=[{"Name": "type", "Values": ["static"]}])["Routes"]:
                attachments = route.get("TransitGatewayAttachments", [])
                routes.append({"region": region, "cidr": route["DestinationCidrBlock"], "state": route["State"],
                               "attachment": attachments[0]["TransitGatewayAttachmentId"] if attachments else None})
        for p in client.describe_transit_gateway_peering_attachments()["TransitGatewayPeeringAttachments"]:
            if p["State"] not in ("deleted", "deleting"):
                peerings[p["TransitGatewayAttachmentId"]] = {"requester": p["RequesterTgwInfo"]["Region"], "accepter": p["AccepterTgwInfo"]["Region"], "state": p["State"]}
    for route in routes:
        route["through_live_peering"] = route.pop("attachment") in peerings
    print(json.dumps({"gateways": sorted(gateways, key=lambda g: g["region"]), "peerings": sorted(peerings.values(), key=lambda p: (p["requester"], p["accepter"])), "routes": sorted(routes, key=lambda r: (r["region"], r["cidr"]))}))
elif command == "delete-peering":
    requester, accepter = sys.argv[3], sys.argv[4]
    client = ec2(requester)
    for p in client.describe_transit_gateway_peering_attachments()["TransitGatewayPeeringAttachments"]:
        if p["RequesterTgwInfo"]["Region"] == requester and p["AccepterTgwInfo"]["Region"] == accepter and p["State"] == "available":
            client.delete_transit_gateway_peering_attachment(TransitGatewayAttachmentId=p["TransitGatewayAttachmentId"])
            print("deleted", p["TransitGatewayAttachmentId"])
            break
    else:
        sys.exit("no such peering")
elif command == "estate":
    a, b = sys.argv[3], sys.argv[4]
    here, there = ec2(a), ec2(b)
    east = here.create_transit_gateway(Description="core hub east", Options={"AmazonSideAsn": 64520},
                                       TagSpecifications=[{"ResourceType": "transit-gateway", "Tags": [{"Key": "Name", "Value": "core-east"}]}])["TransitGateway"]
    west = there.create_transit_gateway(Description="core hub west", Options={"AmazonSideAsn": 64521})["TransitGateway"]
    attachment = here.create_transit_gateway_peering_attachment(
        TransitGatewayId=east["TransitGatewayId"], PeerTransitGatewayId=west["TransitGatewayId"],
        PeerAccountId="123456789012", PeerRegion=b,
    )["TransitGatewayPeeringAttachment"]["TransitGatewayAttachmentId"]
    state = lambda client: client.describe_transit_gateway_peering_attachments(TransitGatewayAttachmentIds=[attachment])["TransitGatewayPeeringAttachments"][0]["State"]
    wait_for(lambda: state(there), "pendingAcceptance")
    there.accept_transit_gateway_peering_attachment(TransitGatewayAttachmentId=attachment)
    wait_for(lambda: state(here), "available")
    for client, gateway, cidr in [(here, east, "10.20.0.0/16"), (there, west, "10.10.0.0/16")]:
        table = client.describe_transit_gateways(TransitGatewayIds=[gateway["TransitGatewayId"]])["TransitGateways"][0]["Options"]["AssociationDefaultRouteTableId"]
        client.create_transit_gateway_route(TransitGatewayRouteTableId=table, DestinationCidrBlock=cidr, TransitGatewayAttachmentId=attachment)
    print(json.dumps({"gateways": {a: east["TransitGatewayId"], b: west["TransitGatewayId"]}, "peering": attachment}))
elif command == "crud":
    region, peer = sys.argv[3], sys.argv[4]
    here, there = ec2(region), ec2(peer)
    tag = [{"ResourceType": "transit-gateway", "Tags": [{"Key": "Name", "Value": "boto-crud"}]}]
    made = [here.create_transit_gateway(Description=f"boto {n}", TagSpecifications=tag)["TransitGateway"]["TransitGatewayId"] for n in range(6)]
    far = there.create_transit_gateway(Description="boto far", Options={"AmazonSideAsn": 64600})["TransitGateway"]["TransitGatewayId"]
    # Paging: pages of five, following NextToken by hand.
    seen, pages, token = [], 0, None
    while True:
        kwargs = {"MaxResults": 5, "Filters": [{"Name": "tag:Name", "Values": ["boto-crud"]}]}
        if token:
            kwargs["NextToken"] = token
        page = here.describe_transit_gateways(**kwargs)
        pages += 1
        seen += [t["TransitGatewayId"] for t in page["TransitGateways"]]
        token = page.get("NextToken")
        if not token:
            break
    check(sorted(seen) == sorted(made) and pages == 2, (seen, pages))
    # Update.
    here.modify_transit_gateway(TransitGatewayId=made[0], Description="boto changed")
    described = here.describe_transit_gateways(TransitGatewayIds=[made[0]])["TransitGateways"][0]
    check(described["Description"] == "boto changed", described)
    # A peering, accepted on the other side, and routes through it.
    attachment = here.create_transit_gateway_peering_attachment(
        TransitGatewayId=made[0], PeerTransitGatewayId=far, PeerAccountId="123456789012", PeerRegion=peer,
    )["TransitGatewayPeeringAttachment"]["TransitGatewayAttachmentId"]
    state = lambda client: client.describe_transit_gateway_peering_attachments(TransitGatewayAttachmentIds=[attachment])["TransitGatewayPeeringAttachments"][0]["State"]
    check(state(there) == "pendingAcceptance", state(there))
    there.accept_transit_gateway_peering_attachment(TransitGatewayAttachmentId=attachment)
    wait_for(lambda: state(here), "available")
    table = described["Options"]["AssociationDefaultRouteTableId"]
    here.create_transit_gateway_route(TransitGatewayRouteTableId=table, DestinationCidrBlock="10.99.0.0/16", TransitGatewayAttachmentId=attachment)
    here.replace_transit_gateway_route(TransitGatewayRouteTableId=table, DestinationCidrBlock="10.99.0.0/16", TransitGatewayAttachmentId=attachment)
    routes = here.search_transit_gateway_routes(TransitGatewayRouteTableId=table, Filters=[{"Name": "type", "Values": ["static"]}])["Routes"]
    check([(r["DestinationCidrBlock"], r["State"], r["TransitGatewayAttachments"][0]["TransitGatewayAttachmentId"]) for r in routes] == [("10.99.0.0/16", "active", attachment)], routes)
    here.delete_transit_gateway_route(TransitGatewayRouteTableId=table, DestinationCidrBlock="10.99.0.0/16")
    # Delete, in order.
    here.delete_transit_gateway_peering_attachment(TransitGatewayAttachmentId=attachment)
    for gateway in made:
        here.delete_transit_gateway(TransitGatewayId=gateway)
    there.delete_transit_gateway(TransitGatewayId=far)
    left = [t for t in here.describe_transit_gateways()["TransitGateways"] if t["State"] not in ("deleted", "deleting")]
    check(left == [], left)
    print("crud ok")
