"""Looks at (and changes) Transit Gateways in moto with boto3, independently
of meridian.

Usage:
  tgw_check.py URL summary REGION...        print gateways, peerings and routes as JSON
  tgw_check.py URL delete-peering REQ ACC   delete the peering between two regions
"""

import json
import sys

import boto3

url, command = sys.argv[1], sys.argv[2]


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
