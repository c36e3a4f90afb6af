"""Drives meridian's Global Accelerator sandbox with boto3, the official AWS
SDK for Python, unchanged: only the endpoint URL points at the sandbox.

Usage: ga_boto3.py ENDPOINT_URL. Exits non-zero on the first unexpected answer.
"""

import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint = sys.argv[1]
ga = boto3.client(
    "globalaccelerator",
    region_name="us-west-2",
    endpoint_url=endpoint,
    aws_access_key_id="AKIDEXAMPLE",
    aws_secret_access_key="secret",
    config=Config(retries={"max_attempts": 1}),
)


def expect_error(code, call, **kwargs):
    try:
        call(**kwargs)
    except ClientError as error:
        got = error.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {error}"
        return
    raise AssertionError(f"expected {code}, the call succeeded")


created = ga.create_accelerator(Name="boto-check", IpAddressType="IPV4", Enabled=True, IdempotencyToken="tok-1",
                                Tags=[{"Key": "team", "Value": "edge"}])["Accelerator"]
arn = created["AcceleratorArn"]
assert created["Status"] in ("IN_PROGRESS", "DEPLOYED"), created
assert created["IpSets"][0]["IpAddresses"], created
assert created["CreatedTime"].year >= 2024, created["CreatedTime"]
again = ga.create_accelerator(Name="boto-check", IdempotencyToken="tok-1")["Accelerator"]
assert again["AcceleratorArn"] == arn, "the idempotency token returns the same accelerator"

assert ga.describe_accelerator(AcceleratorArn=arn)["Accelerator"]["Name"] == "boto-check"
tags = {t["Key"]: t["Value"] for t in ga.list_tags_for_resource(ResourceArn=arn)["Tags"]}
assert tags == {"team": "edge"}, tags

listener = ga.create_listener(AcceleratorArn=arn, Protocol="TCP", PortRanges=[{"FromPort": 443, "ToPort": 443}],
                              ClientAffinity="NONE", IdempotencyToken="tok-2")["Listener"]
expect_error("InvalidPortRangeException", ga.create_listener, AcceleratorArn=arn, Protocol="TCP",
             PortRanges=[{"FromPort": 440, "ToPort": 450}], IdempotencyToken="tok-3")
group = ga.create_endpoint_group(
    ListenerArn=listener["ListenerArn"], EndpointGroupRegion="eu-central-1", TrafficDialPercentage=40.0,
    HealthCheckProtocol="HTTPS", HealthCheckPath="/health", HealthCheckIntervalSeconds=10, ThresholdCount=3,
    EndpointConfigurations=[{"EndpointId": "arn:aws:elasticloadbalancing:eu-central-1:111122223333:loadbalancer/app/eu/1",
                             "Weight": 100, "ClientIPPreservationEnabled": True}],
    IdempotencyToken="tok-4")["EndpointGroup"]
assert group["TrafficDialPercentage"] == 40.0, group
assert group["HealthCheckPort"] == 443, "the health check port defaults to the listener's port"
assert group["EndpointDescriptions"][0]["HealthState"] == "HEALTHY", group
expect_error("EndpointGroupAlreadyExistsException", ga.create_endpoint_group, ListenerArn=listener["ListenerArn"],
             EndpointGroupRegion="eu-central-1", IdempotencyToken="tok-5")
expect_error("InvalidArgumentException", ga.update_endpoint_group, EndpointGroupArn=group["EndpointGroupArn"],
             TrafficDialPercentage=150.0)
expect_error("InvalidArgumentException", ga.update_endpoint_group, EndpointGroupArn=group["EndpointGroupArn"],
             HealthCheckIntervalSeconds=20)

updated = ga.update_endpoint_group(EndpointGroupArn=group["EndpointGroupArn"], TrafficDialPercentage=0.0)["EndpointGroup"]
assert updated["TrafficDialPercentage"] == 0.0, "zero is a real value"
added = ga.add_endpoints(EndpointGroupArn=group["EndpointGroupArn"], EndpointConfigurations=[
    {"EndpointId": "arn:aws:elasticloadbalancing:eu-central-1:111122223333:loadbalancer/app/eu/2", "Weight": 7}])
assert [d["Weight"] for d in added["EndpointDescriptions"]] == [7], added
ga.remove_endpoints(EndpointGroupArn=group["EndpointGroupArn"], EndpointIdentifiers=[
    {"EndpointId": "arn:aws:elasticloadbalancing:eu-central-1:111122223333:loadbalancer/app/eu/2"}])
expect_error("EndpointNotFoundException", ga.remove_endpoints, EndpointGroupArn=group["EndpointGroupArn"],
             EndpointIdentifiers=[{"EndpointId": "i-0missing"}])

# Pagination with the SDK's own paginator.
for n in range(12):
    ga.create_accelerator(Name=f"page-{n}", IdempotencyToken=f"page-{n}")
pages = list(ga.get_paginator("list_accelerators").paginate(PaginationConfig={"PageSize": 5}))
assert len(pages) == 3, [len(p["Accelerators"]) for p in pages]
assert sum(len(p["Accelerators"]) for p in pages) == 13

# Accelerator attributes: flow logs need a bucket.
attrs = ga.describe_accelerator_attributes(AcceleratorArn=arn)["AcceleratorAttributes"]
assert attrs["FlowLogsEnabled"] is False, attrs
expect_error("InvalidArgumentException", ga.update_accelerator_attributes, AcceleratorArn=arn, FlowLogsEnabled=True)
attrs = ga.update_accelerator_attributes(AcceleratorArn=arn, FlowLogsEnabled=True, FlowLogsS3Bucket="logs",
                                         FlowLogsS3Prefix="ga/")["AcceleratorAttributes"]
assert attrs == {"FlowLogsEnabled": True, "FlowLogsS3Bucket": "logs", "FlowLogsS3Prefix": "ga/"}, attrs
assert ga.describe_accelerator_attributes(AcceleratorArn=arn)["AcceleratorAttributes"]["FlowLogsS3Prefix"] == "ga/"

# Outside the standard-accelerator API: a clear refusal, not a silent gap.
try:
    ga.list_custom_routing_accelerators()
    raise AssertionError("custom routing is not served")
except ClientError as error:
    assert error.response["Error"]["Code"] == "UnknownOperationException", error
    assert "custom routing accelerators" in error.response["Error"]["Message"], error

# Deletion rules, in the order the API demands.
expect_error("AcceleratorNotDisabledException", ga.delete_accelerator, AcceleratorArn=arn)
expect_error("AssociatedEndpointGroupFoundException", ga.delete_listener, ListenerArn=listener["ListenerArn"])
ga.delete_endpoint_group(EndpointGroupArn=group["EndpointGroupArn"])
ga.delete_listener(ListenerArn=listener["ListenerArn"])
ga.update_accelerator(AcceleratorArn=arn, Enabled=False)
expect_error("AcceleratorNotFoundException", ga.describe_accelerator,
             AcceleratorArn="arn:aws:globalaccelerator::123456789012:accelerator/missing")
print("boto3 ok")

# Cursors survive deletions between pages: nothing is skipped.
import time

first = ga.list_accelerators(MaxResults=5)
victim = first["Accelerators"][1]["AcceleratorArn"]
ga.update_accelerator(AcceleratorArn=victim, Enabled=False)
time.sleep(0.3)  # the sandbox's deploy delay, so the disabled accelerator is DEPLOYED
ga.delete_accelerator(AcceleratorArn=victim)
seen = [a["AcceleratorArn"] for a in first["Accelerators"] if a["AcceleratorArn"] != victim]
token = first.get("NextToken")
while token:
    page = ga.list_accelerators(MaxResults=5, NextToken=token)
    seen += [a["AcceleratorArn"] for a in page["Accelerators"]]
    token = page.get("NextToken")
everything = [a["AcceleratorArn"] for p in ga.get_paginator("list_accelerators").paginate() for a in p["Accelerators"]]
assert sorted(seen) == sorted(everything), "no accelerator skipped or repeated"
expect_error("InvalidNextTokenException", ga.list_accelerators, NextToken="garbage")
print("boto3 paging ok")
