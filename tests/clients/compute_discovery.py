"""Google's discovery-based API client for Python (google-api-python-client,
with the Compute Engine v1 discovery document it ships) against meridian's
sandbox: a second independent client of the Compute Engine API, unchanged
but for anonymous credentials and an endpoint override.

Usage: compute_discovery.py URL PROJECT PHASE [ARGS...]

  chain                  the whole global load balancer chain: health check,
                         backend service, URL map, target HTTP and HTTPS
                         proxies, global forwarding rule; get, list with
                         paging, aggregated lists, patch with fingerprints,
                         set-methods, the in-use rules, delete in order
  meddle SERVICE MARKER  changes meridian's SERVICE (every backend's
                         capacityScaler to 0.25) and inserts a backend
                         service `stray` carrying meridian's ownership MARKER
  read SERVICE           prints SERVICE's capacity scalers and every backend
                         service's name, as JSON
"""

import json
import sys

from google.auth.credentials import AnonymousCredentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

URL, PROJECT, PHASE = sys.argv[1], sys.argv[2], sys.argv[3]
ARGS = sys.argv[4:]

compute = build(
    "compute",
    "v1",
    credentials=AnonymousCredentials(),
    client_options={"api_endpoint": URL + "/compute/v1/"},
    static_discovery=True,
    cache_discovery=False,
)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def wait(operation):
    """Waits for a global operation and fails on its error."""
    for _ in range(100):
        done = compute.globalOperations().wait(project=PROJECT, operation=operation["name"]).execute()
        if done["status"] == "DONE":
            check("error" not in done, f"operation failed: {done}")
            return done
    raise AssertionError(f"operation never finished: {operation}")


def http_error(call):
    """The status and reason of a call that must fail."""
    try:
        call.execute()
    except HttpError as error:
        body = json.loads(error.content)
        return error.resp.status, body["error"]["errors"][0]["reason"], body["error"]["message"]
    raise AssertionError("the call succeeded")


def list_all(method, **kwargs):
    """Every item of a list call, one page of one item at a time."""
    items, pages = [], 0
    request = method().list(project=PROJECT, maxResults=1, **kwargs)
    while request is not None:
        page = request.execute()
        pages += 1
        items += page.get("items", [])
        request = method().list_next(request, page)
    return items, pages


def chain():
    wait(compute.healthChecks().insert(project=PROJECT, body={
        "name": "d-hc", "type": "HTTP", "httpHealthCheck": {"port": 8080, "requestPath": "/healthz"},
    }).execute())
    wait(compute.healthChecks().insert(project=PROJECT, body={"name": "d-hc2", "type": "TCP"}).execute())
    wait(compute.backendServices().insert(project=PROJECT, body={
        "name": "d-app",
        "protocol": "HTTP",
        "loadBalancingScheme": "EXTERNAL_MANAGED",
        "healthChecks": [f"projects/{PROJECT}/global/healthChecks/d-hc"],
        "backends": [
            {"group": f"projects/{PROJECT}/regions/us-east1/networkEndpointGroups/d-us", "balancingMode": "RATE", "maxRatePerEndpoint": 100, "capacityScaler": 1.0},
            {"group": f"projects/{PROJECT}/regions/europe-west1/networkEndpointGroups/d-eu", "balancingMode": "RATE", "maxRatePerEndpoint": 100, "capacityScaler": 1.0},
        ],
    }).execute())
    wait(compute.urlMaps().insert(project=PROJECT, body={
        "name": "d-map", "defaultService": f"global/backendServices/d-app",
    }).execute())
    wait(compute.urlMaps().insert(project=PROJECT, body={
        "name": "d-map2", "defaultService": f"global/backendServices/d-app",
    }).execute())
    wait(compute.targetHttpProxies().insert(project=PROJECT, body={
        "name": "d-http", "urlMap": f"projects/{PROJECT}/global/urlMaps/d-map",
    }).execute())
    wait(compute.targetHttpsProxies().insert(project=PROJECT, body={
        "name": "d-https",
        "urlMap": f"global/urlMaps/d-map",
        "sslCertificates": [f"projects/{PROJECT}/global/sslCertificates/d-cert"],
    }).execute())
    wait(compute.globalForwardingRules().insert(project=PROJECT, body={
        "name": "d-rule",
        "target": f"projects/{PROJECT}/global/targetHttpProxies/d-http",
        "portRange": "80",
        "loadBalancingScheme": "EXTERNAL_MANAGED",
    }).execute())

    # Reads.
    rule = compute.globalForwardingRules().get(project=PROJECT, forwardingRule="d-rule").execute()
    check(rule["target"].endswith(f"projects/{PROJECT}/global/targetHttpProxies/d-http"), rule)
    check(rule["IPProtocol"] == "TCP" and rule["portRange"] == "80", rule)
    address = rule["IPAddress"]
    proxy = compute.targetHttpProxies().get(project=PROJECT, targetHttpProxy="d-http").execute()
    check(proxy["urlMap"].endswith("/global/urlMaps/d-map"), proxy)
    checks, pages = list_all(compute.healthChecks)
    check([c["name"] for c in checks] == ["d-hc", "d-hc2"] and pages >= 2, (checks, pages))
    proxies, _ = list_all(compute.targetHttpsProxies)
    check([p["name"] for p in proxies] == ["d-https"], proxies)
    check(proxies[0]["sslCertificates"][0].endswith("/global/sslCertificates/d-cert"), proxies)
    aggregated = compute.healthChecks().aggregatedList(project=PROJECT).execute()
    names = [c["name"] for scope in aggregated["items"].values() for c in scope.get("healthChecks", [])]
    check(names == ["d-hc", "d-hc2"], aggregated)
    aggregated = compute.targetHttpProxies().aggregatedList(project=PROJECT).execute()
    check([p["name"] for p in aggregated["items"]["global"]["targetHttpProxies"]] == ["d-http"], aggregated)

    # Updates: a patch with the current fingerprint, then a stale one.
    service = compute.backendServices().get(project=PROJECT, backendService="d-app").execute()
    backends = service["backends"]
    backends[1]["capacityScaler"] = 0.4
    wait(compute.backendServices().patch(project=PROJECT, backendService="d-app", body={
        "backends": backends, "fingerprint": service["fingerprint"],
    }).execute())
    status, reason, _ = http_error(compute.backendServices().patch(project=PROJECT, backendService="d-app", body={
        "backends": backends, "fingerprint": service["fingerprint"],
    }))
    check((status, reason) == (412, "conditionNotMet"), (status, reason))
    wait(compute.targetHttpProxies().setUrlMap(project=PROJECT, targetHttpProxy="d-http", body={
        "urlMap": f"projects/{PROJECT}/global/urlMaps/d-map2",
    }).execute())
    proxy = compute.targetHttpProxies().get(project=PROJECT, targetHttpProxy="d-http").execute()
    check(proxy["urlMap"].endswith("/global/urlMaps/d-map2"), proxy)
    wait(compute.globalForwardingRules().setTarget(project=PROJECT, forwardingRule="d-rule", body={
        "target": f"projects/{PROJECT}/global/targetHttpsProxies/d-https",
    }).execute())
    rule = compute.globalForwardingRules().get(project=PROJECT, forwardingRule="d-rule").execute()
    check(rule["target"].endswith("/global/targetHttpsProxies/d-https"), rule)
    check(rule["IPAddress"] == address, "the address survives a change of target")
    wait(compute.globalForwardingRules().setLabels(project=PROJECT, resource="d-rule", body={
        "labels": {"team": "edge"}, "labelFingerprint": rule["labelFingerprint"],
    }).execute())
    rule = compute.globalForwardingRules().get(project=PROJECT, forwardingRule="d-rule").execute()
    check(rule.get("labels") == {"team": "edge"}, rule)

    # References and the in-use rules.
    status, reason, _ = http_error(compute.targetHttpProxies().insert(project=PROJECT, body={
        "name": "d-bad", "urlMap": f"global/urlMaps/nowhere",
    }))
    check(status == 400 and reason == "invalid", (status, reason))
    status, reason, _ = http_error(compute.targetHttpsProxies().delete(project=PROJECT, targetHttpsProxy="d-https"))
    check((status, reason) == (400, "resourceInUseByAnotherResource"), (status, reason))
    status, reason, _ = http_error(compute.urlMaps().delete(project=PROJECT, urlMap="d-map"))
    check((status, reason) == (400, "resourceInUseByAnotherResource"), (status, reason))
    status, reason, _ = http_error(compute.globalForwardingRules().get(project=PROJECT, forwardingRule="nowhere"))
    check((status, reason) == (404, "notFound"), (status, reason))

    # Delete in dependency order.
    for call in [
        compute.globalForwardingRules().delete(project=PROJECT, forwardingRule="d-rule"),
        compute.targetHttpsProxies().delete(project=PROJECT, targetHttpsProxy="d-https"),
        compute.targetHttpProxies().delete(project=PROJECT, targetHttpProxy="d-http"),
        compute.urlMaps().delete(project=PROJECT, urlMap="d-map"),
        compute.urlMaps().delete(project=PROJECT, urlMap="d-map2"),
    ]:
        wait(call.execute())
    rules = compute.globalForwardingRules().list(project=PROJECT).execute()
    check("items" not in rules, rules)
    print(json.dumps({"address": address}))


def meddle(service_name, marker):
    service = compute.backendServices().get(project=PROJECT, backendService=service_name).execute()
    backends = service["backends"]
    for backend in backends:
        backend["capacityScaler"] = 0.25
    wait(compute.backendServices().patch(project=PROJECT, backendService=service_name, body={
        "backends": backends, "fingerprint": service["fingerprint"],
    }).execute())
    wait(compute.backendServices().insert(project=PROJECT, body={
        "name": "stray", "description": marker, "protocol": "HTTP",
        "loadBalancingScheme": "EXTERNAL_MANAGED",
        "healthChecks": service["healthChecks"],
    }).execute())


def read(service_name):
    service = compute.backendServices().get(project=PROJECT, backendService=service_name).execute()
    names = [s["name"] for s in list_all(compute.backendServices)[0]]
    print(json.dumps({
        "scalers": [b.get("capacityScaler") for b in service["backends"]],
        "services": names,
    }))


if PHASE == "chain":
    chain()
elif PHASE == "meddle":
    meddle(*ARGS)
elif PHASE == "read":
    read(*ARGS)
else:
    raise SystemExit(f"unknown phase {PHASE}")
print(f"phase {PHASE} ok", file=sys.stderr)
