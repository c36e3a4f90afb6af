"""Starts moto's server (the independent EC2 emulator the Transit Gateway
tests run against) with three fixes where moto's answers differ from EC2's:

- a static route's attachment is stored as a mapping where EC2 returns a
  list, so SearchTransitGatewayRoutes would answer with no attachment;
- the peering-attachment responses lack EC2's `...Response` root element,
  which strict clients (the AWS SDK for Rust) reject;
- ReplaceTransitGatewayRoute is missing; it is added with EC2's semantics
  (the route to a CIDR now goes through another attachment).

Usage: moto_server.py PORT
"""

import sys

from moto.ec2.models import transit_gateway_route_tables as routes

_create = routes.TransitGatewayRouteTableBackend.create_transit_gateway_route


def _create_with_attachment_list(self, *args, **kwargs):
    route = _create(self, *args, **kwargs)
    attachment = route.get("transitGatewayAttachments")
    if isinstance(attachment, dict):
        route["transitGatewayAttachments"] = [attachment]
    return route


routes.TransitGatewayRouteTableBackend.create_transit_gateway_route = _create_with_attachment_list

from moto.ec2.responses import transit_gateway_attachments as attachments  # noqa: E402

attachments.DESCRIBE_TRANSIT_GATEWAY_PEERING_ATTACHMENTS = (
    attachments.DESCRIBE_TRANSIT_GATEWAY_PEERING_ATTACHMENTS
    .replace("<DescribeTransitGatewayPeeringAttachments ", "<DescribeTransitGatewayPeeringAttachmentsResponse ")
    .replace("</DescribeTransitGatewayPeeringAttachments>", "</DescribeTransitGatewayPeeringAttachmentsResponse>")
)
attachments.TRANSIT_GATEWAY_PEERING_ATTACHMENT = (
    attachments.TRANSIT_GATEWAY_PEERING_ATTACHMENT
    .replace("<{{ method_name }} ", "<{{ method_name }}Response ")
    .replace("</{{ method_name }}>", "</{{ method_name }}Response>")
)

from moto.ec2.responses import transit_gateway_route_tables as route_responses  # noqa: E402


def _replace_transit_gateway_route(self):
    table = self._get_param("TransitGatewayRouteTableId")
    cidr = self._get_param("DestinationCidrBlock")
    attachment = self._get_param("TransitGatewayAttachmentId")
    self.ec2_backend.delete_transit_gateway_route(table, cidr)
    self.ec2_backend.create_transit_gateway_route(
        transit_gateway_route_table_id=table,
        destination_cidr_block=cidr,
        transit_gateway_attachment_id=attachment,
    )
    return (
        '<ReplaceTransitGatewayRouteResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
        "<requestId>3e3c9c3a-replace-route</requestId></ReplaceTransitGatewayRouteResponse>"
    )


route_responses.TransitGatewayRouteTable.replace_transit_gateway_route = _replace_transit_gateway_route

from moto.server import main  # noqa: E402

sys.exit(main(["-H", "127.0.0.1", "-p", sys.argv[1]]))
