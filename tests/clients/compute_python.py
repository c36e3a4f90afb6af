"""Google's official Compute Engine client for Python (google-cloud-compute,
REST transport) against meridian's sandbox, unchanged: anonymous credentials
and an endpoint override, nothing else.

Operations are awaited with a GlobalOperationsClient built with the same
endpoint: the client's own ExtendedOperation.result() polls through an
internal GlobalOperationsClient made without the caller's client_options,
so it always asks compute.googleapis.com.

Usage: compute_python.py URL PROJECT PHASE

The phases run in order against one simulated world; the Rust test sets the
simulator's faults between them with `meridian sim faults`:

  main             health checks, backend services, paging, fingerprints,
                   getHealth, operations, URL maps (no faults)
  throttled        every call throttled (--throttle-rate 1.0): HTTP 429
  operation-error  one injected operation error on backendServices.patch
"""

import sys
import time

from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

URL, PROJECT, PHASE = sys.argv[1], sys.argv[2], sys.argv[3]
MARKER = "[meridian.dev/managed-by=meridian meridian.dev/owner=python-check]"
API = "https://www.googleapis.com/compute/v1/"
GROUPS = [
    # The three spellings a client may use for a backend group.
    f"projects/{PROJECT}/regions/us-east1/networkEndpointGroups/py-us",
    "regions/europe-west1/networkEndpointGroups/py-eu",
    f"{API}projects/{PROJECT}/regions/asia-southeast1/networkEndpointGroups/py-apac",
]
APAC = f"{API}projects/{PROJECT}/regions/asia-southeast1/networkEndpointGroups/py-apac"
DONE = compute_v1.Operation.Status.DONE


def client(kind):
    return kind(
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=URL),
        transport="rest",
    )


checks = client(compute_v1.HealthChecksClient)
services = client(compute_v1.BackendServicesClient)
maps = client(compute_v1.UrlMapsClient)
operations = client(compute_v1.GlobalOperationsClient)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def wait(operation_name):
    """globalOperations.wait until DONE (each wait blocks up to ~2 s)."""
    deadline = time.monotonic() + 30
    while True:
        got = operations.wait(project=PROJECT, operation=operation_name)
        if got.status == DONE:
            return got
        check(time.monotonic() < deadline, f"{operation_name} never finished")


def backend_by_group(service, group):
    found = [b for b in service.backends if b.group == group]
    check(len(found) == 1, f"no single backend {group} in {service.backends}")
    return found[0]


def with_scaler(service, group, scaler):
    """The service's backend list with one backend's capacity scaler changed."""
    backends = []
    for backend in service.backends:
        copy = compute_v1.Backend(backend)
        if backend.group == group:
            copy.capacity_scaler = scaler
        backends.append(copy)
    return backends


def phase_main():
    # Health check: insert, wait, get.
    check_resource = compute_v1.HealthCheck(
        name="py-hc",
        description=MARKER,
        type_="HTTPS",
        check_interval_sec=10,
        timeout_sec=5,
        https_health_check=compute_v1.HTTPSHealthCheck(port=8443, request_path="/healthz"),
    )
    wait(checks.insert(project=PROJECT, health_check_resource=check_resource).name)
    hc = checks.get(project=PROJECT, health_check="py-hc")
    check(hc.type_ == "HTTPS", f"type {hc.type_}")
    check(hc.https_health_check.port == 8443, f"port {hc.https_health_check.port}")
    check(hc.https_health_check.request_path == "/healthz", "request path")
    check(hc.description == MARKER, f"description {hc.description!r}")
    check(hc.id > 0 and hc.creation_timestamp, "id and creation timestamp")
    check(hc.self_link.endswith(f"/projects/{PROJECT}/global/healthChecks/py-hc"), hc.self_link)

    # Backend service with three backends, one drained (capacityScaler 0.0),
    # its health check named by the sandbox's own selfLink.
    service = compute_v1.BackendService(
        name="py-app",
        description=MARKER,
        protocol="HTTPS",
        port_name="https",
        timeout_sec=30,
        load_balancing_scheme="EXTERNAL_MANAGED",
        enable_c_d_n=True,
        health_checks=[hc.self_link],
        backends=[
            compute_v1.Backend(
                group=group,
                balancing_mode="RATE",
                max_rate_per_endpoint=100,
                capacity_scaler=scaler,
            )
            for group, scaler in zip(GROUPS, [1.0, 0.5, 0.0])
        ],
    )
    operation = services.insert(project=PROJECT, backend_service_resource=service)
    done = wait(operation.name)
    check(done.operation_type == "insert", done.operation_type)
    check(done.target_link.endswith("/global/backendServices/py-app"), done.target_link)
    app = services.get(project=PROJECT, backend_service="py-app")
    check(len(app.backends) == 3, f"{len(app.backends)} backends")
    drained = backend_by_group(app, APAC)
    check("capacity_scaler" in drained, "capacityScaler 0 was dropped from the response")
    check(drained.capacity_scaler == 0, f"drained scaler {drained.capacity_scaler}")
    check(
        backend_by_group(app, f"{API}projects/{PROJECT}/regions/us-east1/networkEndpointGroups/py-us").capacity_scaler == 1.0,
        "us scaler",
    )
    check(app.health_checks == [f"{API}projects/{PROJECT}/global/healthChecks/py-hc"], str(app.health_checks))
    check(app.description == MARKER and app.enable_c_d_n and app.port_name == "https", "service fields")
    check(app.fingerprint, "no fingerprint")

    # Paging: five services, two per page.
    for i in range(4):
        services.insert_unary(
            project=PROJECT,
            backend_service_resource=compute_v1.BackendService(name=f"py-list-{i}", protocol="HTTP"),
        )
    pager = services.list(request=compute_v1.ListBackendServicesRequest(project=PROJECT, max_results=2))
    pages = list(pager.pages)
    names = [item.name for page in pages for item in page.items]
    check([len(page.items) for page in pages] == [2, 2, 1], f"page sizes {[len(p.items) for p in pages]}")
    check(sorted(names) == sorted(["py-app"] + [f"py-list-{i}" for i in range(4)]), str(names))
    check(not pages[-1].next_page_token, "a token after the last page")

    # Patch one backend's capacity scaler with the current fingerprint.
    before = services.get(project=PROJECT, backend_service="py-app")
    patch = compute_v1.BackendService(
        fingerprint=before.fingerprint,
        backends=with_scaler(before, APAC, 0.3),
    )
    wait(services.patch(project=PROJECT, backend_service="py-app", backend_service_resource=patch).name)
    after = services.get(project=PROJECT, backend_service="py-app")
    check(abs(backend_by_group(after, APAC).capacity_scaler - 0.3) < 1e-6, "patched scaler")
    for backend in before.backends:
        if backend.group != APAC:
            now = backend_by_group(after, backend.group)
            check(
                (now.capacity_scaler, now.balancing_mode, now.max_rate_per_endpoint)
                == (backend.capacity_scaler, backend.balancing_mode, backend.max_rate_per_endpoint),
                f"{backend.group} changed",
            )
    check(after.health_checks == before.health_checks, "a patch without healthChecks dropped them")
    check(after.description == MARKER, "a patch without description changed it")
    check(after.fingerprint != before.fingerprint, "fingerprint did not change")

    # A stale fingerprint: 412, and nothing changes.
    stale = compute_v1.BackendService(fingerprint=before.fingerprint, backends=with_scaler(after, APAC, 1.0))
    try:
        services.patch(project=PROJECT, backend_service="py-app", backend_service_resource=stale)
        raise AssertionError("a stale fingerprint was accepted")
    except exceptions.PreconditionFailed as error:
        check(error.code == 412 and "fingerprint" in error.message, str(error))
    unchanged = services.get(project=PROJECT, backend_service="py-app")
    check(unchanged.fingerprint == after.fingerprint, "a refused patch changed the fingerprint")

    # getHealth of one group; the port is the health check's.
    health = services.get_health(
        project=PROJECT,
        backend_service="py-app",
        resource_group_reference_resource=compute_v1.ResourceGroupReference(group=GROUPS[1]),
    )
    check(len(health.health_status) == 1, str(health))
    status = health.health_status[0]
    check(status.health_state == "HEALTHY" and status.ip_address and status.port == 8443, str(status))

    # URL map: insert (PENDING → RUNNING → DONE through globalOperations), patch, delete.
    url_map = compute_v1.UrlMap(
        name="py-map",
        description=MARKER,
        default_service=app.self_link,
        host_rules=[compute_v1.HostRule(hosts=["api.example.com"], path_matcher="api")],
        path_matchers=[
            compute_v1.PathMatcher(
                name="api",
                default_service="global/backendServices/py-app",
                path_rules=[
                    compute_v1.PathRule(
                        paths=["/v1/*"],
                        service=f"projects/{PROJECT}/global/backendServices/py-list-0",
                    )
                ],
            )
        ],
    )
    raw = maps.insert_unary(project=PROJECT, url_map_resource=url_map)
    check(raw.status == compute_v1.Operation.Status.PENDING, f"insert answered {raw.status}")
    first = operations.get(project=PROJECT, operation=raw.name)
    check(first.status == compute_v1.Operation.Status.RUNNING, f"first poll {first.status}")
    waited = wait(raw.name)
    check(waited.progress == 100 and waited.end_time, "DONE without progress or end time")
    check(operations.get(project=PROJECT, operation=raw.name).status == DONE, "DONE did not stay DONE")
    got = maps.get(project=PROJECT, url_map="py-map")
    check(got.default_service == f"{API}projects/{PROJECT}/global/backendServices/py-app", got.default_service)
    check(
        got.path_matchers[0].path_rules[0].service == f"{API}projects/{PROJECT}/global/backendServices/py-list-0",
        str(got.path_matchers),
    )
    patched = maps.patch(
        project=PROJECT,
        url_map="py-map",
        url_map_resource=compute_v1.UrlMap(fingerprint=got.fingerprint, default_service="global/backendServices/py-list-1"),
    )
    wait(patched.name)
    patched = maps.get(project=PROJECT, url_map="py-map")
    check(patched.default_service.endswith("/global/backendServices/py-list-1"), patched.default_service)
    check(patched.host_rules and patched.path_matchers, "a patch without rules dropped them")
    try:
        services.delete(project=PROJECT, backend_service="py-list-1")
        raise AssertionError("a backend service in use was deleted")
    except exceptions.BadRequest as error:
        check("already being used" in error.message, str(error))
    deleted = wait(maps.delete(project=PROJECT, url_map="py-map").name)
    check(deleted.operation_type == "delete" and deleted.target_id == got.id, str(deleted))
    try:
        maps.get(project=PROJECT, url_map="py-map")
        raise AssertionError("the URL map outlived its delete")
    except exceptions.NotFound:
        pass
    try:
        operations.get(project=PROJECT, operation="operation-0-unknown")
        raise AssertionError("an unknown operation was found")
    except exceptions.NotFound:
        pass


def phase_throttled():
    for call in (
        lambda: services.get(project=PROJECT, backend_service="py-app"),
        lambda: list(services.list(project=PROJECT)),
    ):
        try:
            call()
            raise AssertionError("a throttled call succeeded")
        except exceptions.TooManyRequests as error:
            check(error.code == 429, str(error))
            check(error.errors and error.errors[0].get("reason") == "rateLimitExceeded", str(error.errors))


def phase_operation_error():
    current = services.get(project=PROJECT, backend_service="py-app")
    patch = compute_v1.BackendService(fingerprint=current.fingerprint, backends=with_scaler(current, APAC, 1.0))
    operation = services.patch(project=PROJECT, backend_service="py-app", backend_service_resource=patch)
    wait(operation.name)
    final = operations.get(project=PROJECT, operation=operation.name)
    check(final.status == DONE, str(final.status))
    check(final.error.errors[0].code == "RESOURCE_NOT_READY", str(final.error))
    check(final.http_error_status_code == 503, str(final.http_error_status_code))
    unchanged = services.get(project=PROJECT, backend_service="py-app")
    check(unchanged.fingerprint == current.fingerprint, "a failed operation changed the service")
    check(abs(backend_by_group(unchanged, APAC).capacity_scaler - 0.3) < 1e-6, "a failed operation landed")
    # The fault was used up: the same patch now lands.
    retried = wait(services.patch(project=PROJECT, backend_service="py-app", backend_service_resource=patch).name)
    check(not retried.error.errors and not retried.http_error_status_code, str(retried))
    landed = services.get(project=PROJECT, backend_service="py-app")
    check(backend_by_group(landed, APAC).capacity_scaler == 1.0, "the retried patch did not land")


PHASES = {"main": phase_main, "throttled": phase_throttled, "operation-error": phase_operation_error}
PHASES[PHASE]()
print(f"phase {PHASE} ok")
if PHASE == "operation-error":
    print("compute ok")
