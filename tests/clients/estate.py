"""Builds an existing estate the way a team without meridian would: with
boto3 (Global Accelerator) and Google's Compute Engine client for Python,
unchanged, against meridian's sandbox. Nothing here carries meridian's
marks; `meridian import` is to find and adopt it.

Usage: estate.py URL PROJECT. Prints one JSON object: the ids made.
"""

import json
import sys

import boto3
from botocore.config import Config
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

URL, PROJECT = sys.argv[1], sys.argv[2]

ga = boto3.client(
    "globalaccelerator",
    region_name="us-west-2",
    endpoint_url=URL,
    aws_access_key_id="AKIDEXAMPLE",
    aws_secret_access_key="secret",
    config=Config(retries={"max_attempts": 1}),
)
accelerator = ga.create_accelerator(
    Name="Checkout-API", IpAddressType="IPV4", Enabled=True, IdempotencyToken="estate-1",
    Tags=[{"Key": "team", "Value": "payments"}],
)["Accelerator"]
arn = accelerator["AcceleratorArn"]
listener = ga.create_listener(
    AcceleratorArn=arn, Protocol="TCP", PortRanges=[{"FromPort": 443, "ToPort": 443}],
    IdempotencyToken="estate-2",
)["Listener"]
groups = {}
for region, dial, weights in [("us-east-1", 100.0, [200, 50]), ("eu-west-1", 40.0, [128])]:
    endpoints = [
        {"EndpointId": f"arn:aws:elasticloadbalancing:{region}:111122223333:loadbalancer/app/checkout-{i}/{i}abc",
         "Weight": w, "ClientIPPreservationEnabled": True}
        for i, w in enumerate(weights)
    ]
    group = ga.create_endpoint_group(
        ListenerArn=listener["ListenerArn"], EndpointGroupRegion=region, TrafficDialPercentage=dial,
        HealthCheckProtocol="HTTP", HealthCheckPath="/healthz", HealthCheckIntervalSeconds=10,
        EndpointConfigurations=endpoints, IdempotencyToken=f"estate-{region}",
    )["EndpointGroup"]
    groups[region] = group["EndpointGroupArn"]


def client(kind):
    return kind(credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=URL),
                transport="rest")


checks = client(compute_v1.HealthChecksClient)
services = client(compute_v1.BackendServicesClient)
operations = client(compute_v1.GlobalOperationsClient)


def wait(operation):
    operations.wait(project=PROJECT, operation=operation.name)


wait(checks.insert(project=PROJECT, health_check_resource=compute_v1.HealthCheck(
    name="shop-hc", type_="HTTP", check_interval_sec=10, timeout_sec=5,
    http_health_check=compute_v1.HTTPHealthCheck(port=8080, request_path="/ready"),
    description="made by hand",
)))
wait(services.insert(project=PROJECT, backend_service_resource=compute_v1.BackendService(
    name="shop", protocol="HTTP", port_name="http", timeout_sec=30,
    load_balancing_scheme="EXTERNAL_MANAGED",
    health_checks=[f"projects/{PROJECT}/global/healthChecks/shop-hc"],
    backends=[
        compute_v1.Backend(group=f"projects/{PROJECT}/regions/us-east1/networkEndpointGroups/shop-us",
                           balancing_mode="RATE", max_rate_per_endpoint=100.0, capacity_scaler=1.0),
        compute_v1.Backend(group=f"projects/{PROJECT}/regions/europe-west1/networkEndpointGroups/shop-eu",
                           balancing_mode="RATE", max_rate_per_endpoint=100.0, capacity_scaler=0.5),
    ],
)))
service = services.get(project=PROJECT, backend_service="shop")
print(json.dumps({
    "accelerator": arn,
    "ips": [ip for s in accelerator["IpSets"] for ip in s["IpAddresses"]],
    "listener": listener["ListenerArn"],
    "groups": groups,
    "service_id": str(service.id),
}))
