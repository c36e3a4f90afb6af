//! The Compute Engine REST sandbox: checked with two independent clients,
//! google-cloud-compute (Google's official Python client library) and
//! google-api-python-client (Google's discovery-based client), and over
//! plain HTTP for the exact wire shapes, fingerprints, operations and paging.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::aws::Server;
use serde_json::{Value, json};

const MARKER: &str = "[meridian.dev/managed-by=meridian meridian.dev/owner=sandbox-test]";

/// One Compute Engine call to the sandbox, as any HTTP client makes it.
fn call(sandbox: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, payload) = common::aws::http(
        sandbox,
        method,
        path,
        &[("Content-Type", "application/json")],
        &body,
    );
    let payload = payload.as_str();
    (
        status,
        serde_json::from_str(payload).unwrap_or(Value::String(payload.to_owned())),
    )
}

fn ok(sandbox: &Server, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, reply) = call(sandbox, method, path, body);
    assert_eq!(status, 200, "{method} {path}: {reply:#}");
    reply
}

fn faults(dir: &Path, sim: &Path, args: &[&str]) {
    let mut all = vec!["sim", "faults"];
    all.extend_from_slice(args);
    let run = common::sim_run(dir, sim, &all);
    assert_eq!(run.code, 0, "{}", run.all());
}

fn calls(world: &Value, operation: &str, outcome: &str) -> u64 {
    world["calls"][operation][outcome].as_u64().unwrap_or(0)
}

/// A health check `hc` and a backend service `app` with two backends, the
/// second drained, in `project`.
fn seed(sandbox: &Server, project: &str) {
    let base = format!("/compute/v1/projects/{project}/global");
    ok(
        sandbox,
        "POST",
        &format!("{base}/healthChecks"),
        Some(json!({"name": "hc", "type": "TCP", "tcpHealthCheck": {"port": 8080}})),
    );
    ok(
        sandbox,
        "POST",
        &format!("{base}/backendServices"),
        Some(json!({
            "name": "app",
            "description": MARKER,
            "protocol": "HTTP",
            "healthChecks": [format!("projects/{project}/global/healthChecks/hc")],
            "backends": [
                {"group": "regions/us-east1/networkEndpointGroups/us", "balancingMode": "RATE", "maxRatePerEndpoint": 50, "capacityScaler": 1.0},
                {"group": format!("https://www.googleapis.com/compute/v1/projects/{project}/regions/europe-west1/networkEndpointGroups/eu"), "balancingMode": "RATE", "maxRatePerEndpoint": 50, "capacityScaler": 0.0},
            ],
        })),
    );
}

#[test]
fn google_python_client_works_against_the_sandbox_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = dir.path().join("sim");
    faults(dir.path(), &sim, &["--deploy-delay-ms", "50"]);
    let sandbox = common::aws::sandbox(&sim);
    let project = "python-check";
    let run = |phase: &str| {
        let output = Command::new(common::aws::python())
            .arg(common::aws::clients().join("compute_python.py"))
            .args([sandbox.url().as_str(), project, phase])
            .output()
            .expect("python runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success() && stdout.contains(&format!("phase {phase} ok")),
            "google-cloud-compute against the sandbox failed in phase {phase} (scripts/test.sh installs it into .venv):\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };

    run("main");
    let world = common::world(&sim);
    let app = &world["backend_services"][format!("{project}/py-app")];
    assert_eq!(
        app["description"],
        MARKER.replace("sandbox-test", "python-check")
    );
    let backends = app["backends"].as_array().expect("backends");
    assert_eq!(backends.len(), 3);
    // Every spelling of a group is stored in the simulator's relative form.
    assert_eq!(
        backends
            .iter()
            .map(|b| b["group"].as_str().unwrap_or_default())
            .collect::<Vec<_>>(),
        [
            "regions/us-east1/networkEndpointGroups/py-us",
            "regions/europe-west1/networkEndpointGroups/py-eu",
            "regions/asia-southeast1/networkEndpointGroups/py-apac",
        ]
    );
    assert_eq!(backends[2]["region"], "asia-southeast1");
    let apac = backends[2]["capacityScaler"].as_f64().expect("scaler");
    assert!((apac - 0.3).abs() < 1e-6, "the patch landed: {apac}");
    assert_eq!(backends[1]["capacityScaler"], 0.5);
    assert_eq!(app["spec"]["healthChecks"], json!(["py-hc"]));
    assert_eq!(
        world["health_checks"][format!("{project}/py-hc")]["spec"]["port"],
        8443
    );
    assert_eq!(world["url_maps"], json!({}), "the URL map was deleted");
    assert_eq!(
        world["backend_services"]
            .as_object()
            .expect("services")
            .len(),
        5
    );
    for (operation, outcome, expected) in [
        ("healthChecks.insert", "ok", 1),
        ("backendServices.insert", "ok", 5),
        ("backendServices.list", "ok", 3),
        ("backendServices.patch", "ok", 1),
        ("backendServices.patch", "failed", 1),
        ("backendServices.getHealth", "ok", 1),
        ("backendServices.delete", "failed", 1),
        ("urlMaps.insert", "ok", 1),
        ("urlMaps.patch", "ok", 1),
        ("urlMaps.delete", "ok", 1),
        ("globalOperations.get", "failed", 1),
    ] {
        assert_eq!(
            calls(&world, operation, outcome),
            expected,
            "{operation} {outcome}: {:#}",
            world["calls"]
        );
    }
    assert!(calls(&world, "globalOperations.wait", "ok") >= 5);
    assert!(calls(&world, "globalOperations.get", "ok") >= 2);
    assert!(calls(&world, "backendServices.get", "ok") >= 4);

    faults(dir.path(), &sim, &["--throttle-rate", "1.0"]);
    run("throttled");
    let world = common::world(&sim);
    assert!(calls(&world, "backendServices.get", "throttled") >= 1);
    assert!(calls(&world, "backendServices.list", "throttled") >= 1);

    faults(
        dir.path(),
        &sim,
        &[
            "--clear",
            "--operation-error",
            "backendServices.patch=RESOURCE_NOT_READY",
        ],
    );
    let stdout = run("operation-error");
    assert!(stdout.contains("compute ok"), "{stdout}");
    let world = common::world(&sim);
    // The injected failure was used once, then the retried patch landed.
    assert_eq!(world["settings"]["faults"]["operation_errors"], json!([]));
    assert_eq!(calls(&world, "backendServices.patch", "failed"), 2);
    assert_eq!(calls(&world, "backendServices.patch", "ok"), 2);
    let apac = &world["backend_services"][format!("{project}/py-app")]["backends"][2];
    assert_eq!(apac["capacityScaler"], 1.0);
}

#[test]
fn a_stale_fingerprint_is_412_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = dir.path().join("sim");
    faults(dir.path(), &sim, &["--deploy-delay-ms", "0"]);
    let sandbox = common::aws::sandbox(&sim);
    seed(&sandbox, "p");
    let path = "/compute/v1/projects/p/global/backendServices/app";

    let (status, raw) = call(&sandbox, "GET", path, None);
    assert_eq!(status, 200);
    let text = raw.to_string();
    assert!(text.contains("\"capacityScaler\":0.0"), "{text}");
    let service = raw;
    assert_eq!(service["kind"], "compute#backendService");
    assert_eq!(service["description"], MARKER);
    assert_eq!(
        service["selfLink"],
        format!("http://{}{path}", sandbox.address)
    );
    assert_eq!(
        service["healthChecks"],
        json!(["https://www.googleapis.com/compute/v1/projects/p/global/healthChecks/hc"])
    );
    assert_eq!(
        service["backends"][1]["group"],
        "https://www.googleapis.com/compute/v1/projects/p/regions/europe-west1/networkEndpointGroups/eu"
    );
    assert!(
        service["id"]
            .as_str()
            .expect("id as a string")
            .parse::<u64>()
            .is_ok()
    );
    let first = service["fingerprint"]
        .as_str()
        .expect("fingerprint")
        .to_owned();

    // A patch with the current fingerprint lands.
    let mut backends = service["backends"].clone();
    backends[0]["capacityScaler"] = json!(0.5);
    let operation = ok(
        &sandbox,
        "PATCH",
        path,
        Some(json!({"fingerprint": first, "backends": backends})),
    );
    assert_eq!(operation["operationType"], "patch");
    assert_eq!(operation["targetId"], service["id"]);
    let before = common::world(&sim)["backend_services"]["p/app"].clone();
    assert_eq!(before["backends"][0]["capacityScaler"], 0.5);
    assert_eq!(before["backends"][1]["capacityScaler"], 0.0);

    // The same fingerprint again is stale: 412 in Google's error format, and nothing moves.
    backends[1]["capacityScaler"] = json!(1.0);
    let (status, error) = call(
        &sandbox,
        "PATCH",
        path,
        Some(json!({"fingerprint": first, "backends": backends, "description": "changed"})),
    );
    assert_eq!(status, 412, "{error:#}");
    assert_eq!(
        error,
        json!({"error": {
            "code": 412,
            "message": "Supplied fingerprint does not match current fingerprint.",
            "errors": [{"message": "Supplied fingerprint does not match current fingerprint.", "domain": "global", "reason": "conditionNotMet"}],
            "status": "FAILED_PRECONDITION",
        }})
    );
    let world = common::world(&sim);
    assert_eq!(world["backend_services"]["p/app"], before);
    assert_eq!(calls(&world, "backendServices.patch", "ok"), 1);
    assert_eq!(calls(&world, "backendServices.patch", "failed"), 1);

    // Without a fingerprint a patch is accepted, and it merges: only the
    // description changes.
    ok(&sandbox, "PATCH", path, Some(json!({"description": "v2"})));
    let after = common::world(&sim)["backend_services"]["p/app"].clone();
    assert_eq!(after["description"], "v2");
    assert_eq!(after["backends"], before["backends"]);
    assert_eq!(after["spec"], before["spec"]);
    assert_ne!(after["fingerprint"], before["fingerprint"]);

    // PUT replaces the whole resource.
    ok(
        &sandbox,
        "PUT",
        path,
        Some(
            json!({"name": "app", "protocol": "HTTPS", "healthChecks": ["global/healthChecks/hc"]}),
        ),
    );
    let world = common::world(&sim);
    let replaced = &world["backend_services"]["p/app"];
    assert_eq!(replaced["backends"], json!([]));
    assert_eq!(replaced["description"], "");
    assert_eq!(replaced["spec"]["protocol"], "HTTPS");
    assert_eq!(calls(&world, "backendServices.update", "ok"), 1);

    // Bad input is a 400 that names the field.
    let (status, error) = call(&sandbox, "PATCH", path, Some(json!({"timeoutSec": "soon"})));
    assert_eq!(status, 400);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("resource.timeoutSec"),
        "{error:#}"
    );
    let (status, error) = call(
        &sandbox,
        "GET",
        "/compute/v1/projects/p/global/backendServices/none",
        None,
    );
    assert_eq!(
        (status, error["error"]["status"].as_str()),
        (404, Some("NOT_FOUND"))
    );

    // The Global Accelerator protocol still answers on the same listener.
    let (status, accelerators) = common::aws::ga_call(&sandbox, "ListAccelerators", json!({}));
    assert_eq!((status, &accelerators["Accelerators"]), (200, &json!([])));
}

#[test]
fn operations_go_pending_running_done() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = dir.path().join("sim");
    let delay = Duration::from_millis(800);
    faults(dir.path(), &sim, &["--deploy-delay-ms", "800"]);
    let sandbox = common::aws::sandbox(&sim);
    let base = "/compute/v1/projects/p/global";

    let started = Instant::now();
    let operation = ok(
        &sandbox,
        "POST",
        &format!("{base}/healthChecks"),
        Some(json!({"name": "hc", "type": "HTTP"})),
    );
    assert_eq!(operation["kind"], "compute#operation");
    assert_eq!(operation["status"], "PENDING");
    assert_eq!(operation["progress"], 0);
    assert!(operation.get("startTime").is_none());
    let name = operation["name"].as_str().expect("name").to_owned();
    assert!(name.starts_with("operation-"), "{name}");
    assert_eq!(
        operation["targetLink"],
        format!("http://{}{base}/healthChecks/hc", sandbox.address)
    );
    assert_eq!(
        operation["selfLink"],
        format!("http://{}{base}/operations/{name}", sandbox.address)
    );
    // The write landed at once; only the operation takes time.
    assert_eq!(
        common::world(&sim)["health_checks"]["p/hc"]["spec"]["type"],
        "HTTP"
    );

    let path = format!("{base}/operations/{name}");
    let mut gets = 1;
    let first = ok(&sandbox, "GET", &path, None);
    assert_eq!(first["status"], "RUNNING");
    assert!(first["startTime"].is_string());
    if started.elapsed() < delay - Duration::from_millis(200) {
        gets += 1;
        let second = ok(&sandbox, "GET", &path, None);
        assert_eq!(second["status"], "RUNNING", "DONE before the deploy delay");
        assert!(second.get("endTime").is_none());
    }
    std::thread::sleep(delay.saturating_sub(started.elapsed()) + Duration::from_millis(50));
    gets += 1;
    let done = ok(&sandbox, "GET", &path, None);
    assert_eq!(done["status"], "DONE");
    assert_eq!(done["progress"], 100);
    assert!(done["endTime"].is_string());
    assert!(done.get("error").is_none());

    // wait blocks until DONE.
    let started = Instant::now();
    let operation = ok(&sandbox, "DELETE", &format!("{base}/healthChecks/hc"), None);
    assert_eq!(operation["operationType"], "delete");
    let name = operation["name"].as_str().expect("name");
    let waited = ok(
        &sandbox,
        "POST",
        &format!("{base}/operations/{name}/wait"),
        None,
    );
    assert_eq!(waited["status"], "DONE");
    assert!(started.elapsed() >= delay - Duration::from_millis(50));

    // ... but for about two seconds at most.
    faults(dir.path(), &sim, &["--deploy-delay-ms", "60000"]);
    let operation = ok(
        &sandbox,
        "POST",
        &format!("{base}/healthChecks"),
        Some(json!({"name": "slow", "type": "TCP"})),
    );
    let name = operation["name"].as_str().expect("name");
    let started = Instant::now();
    let waited = ok(
        &sandbox,
        "POST",
        &format!("{base}/operations/{name}/wait"),
        None,
    );
    assert_eq!(waited["status"], "RUNNING");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(10),
        "{took:?}"
    );

    // Unknown operations, and operations of another project, are 404.
    let (status, error) = call(
        &sandbox,
        "GET",
        &format!("{base}/operations/operation-1-0"),
        None,
    );
    assert_eq!(status, 404, "{error:#}");
    assert_eq!(error["error"]["errors"][0]["reason"], "notFound");
    let (status, _) = call(
        &sandbox,
        "GET",
        &format!("/compute/v1/projects/other/global/operations/{name}"),
        None,
    );
    assert_eq!(status, 404);

    let world = common::world(&sim);
    assert_eq!(calls(&world, "globalOperations.get", "ok"), gets);
    assert_eq!(calls(&world, "globalOperations.get", "failed"), 2);
    assert_eq!(calls(&world, "globalOperations.wait", "ok"), 2);
}

#[test]
fn lists_page_at_500_as_gcp_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = dir.path().join("sim");
    let store = meridian_sim::SimStore::open(&sim).expect("store");
    store
        .transact(|world| {
            for i in 0..1_100u64 {
                let name = format!("hc-{i:04}");
                world.health_checks.insert(
                    format!("big/{name}"),
                    meridian_sim::world::GcpHealthCheck {
                        id: (4_000_000_000_000_000_000 + i).to_string(),
                        name,
                        description: String::new(),
                        created_ms: 0,
                        fingerprint: "AAAAAAAAAAA=".to_owned(),
                        spec: meridian_provider::HealthCheckSpec {
                            project: "big".to_owned(),
                            check_type: "TCP".to_owned(),
                            check_interval_sec: 5,
                            timeout_sec: 5,
                            healthy_threshold: 2,
                            unhealthy_threshold: 2,
                            port: 80,
                            request_path: None,
                            host: None,
                        },
                    },
                );
            }
        })
        .expect("seed");
    let sandbox = common::aws::sandbox(&sim);
    let base = "/compute/v1/projects/big/global/healthChecks";

    let mut names = Vec::new();
    let mut sizes = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            None => base.to_owned(),
            Some(token) => format!("{base}?pageToken={token}"),
        };
        let page = ok(&sandbox, "GET", &path, None);
        assert_eq!(page["kind"], "compute#healthCheckList");
        assert_eq!(page["id"], "projects/big/global/healthChecks");
        let items = page["items"].as_array().expect("items");
        sizes.push(items.len());
        names.extend(
            items
                .iter()
                .map(|i| i["name"].as_str().unwrap_or_default().to_owned()),
        );
        match page["nextPageToken"].as_str() {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(sizes, [500, 500, 100]);
    let expected: Vec<String> = (0..1_100).map(|i| format!("hc-{i:04}")).collect();
    assert_eq!(names, expected, "every object once, in order");

    let page = ok(&sandbox, "GET", &format!("{base}?maxResults=300"), None);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(300));
    let (status, error) = call(&sandbox, "GET", &format!("{base}?maxResults=501"), None);
    assert_eq!(status, 400, "{error:#}");
    assert_eq!(error["error"]["errors"][0]["reason"], "invalid");
    let (status, _) = call(&sandbox, "GET", &format!("{base}?pageToken=garbage"), None);
    assert_eq!(status, 400);

    // An empty list has no items at all, as GCP's.
    let empty = ok(
        &sandbox,
        "GET",
        "/compute/v1/projects/big/global/urlMaps",
        None,
    );
    assert!(empty.get("items").is_none(), "{empty:#}");
    assert!(empty.get("nextPageToken").is_none());
    let world = common::world(&sim);
    assert_eq!(calls(&world, "healthChecks.list", "ok"), 4);
    assert_eq!(calls(&world, "healthChecks.list", "failed"), 1);
}

#[test]
fn an_injected_operation_error_fails_the_operation_not_the_world() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = dir.path().join("sim");
    faults(
        dir.path(),
        &sim,
        &[
            "--deploy-delay-ms",
            "0",
            "--operation-error",
            "backendServices.patch=RESOURCE_NOT_READY:2",
            "--operation-error",
            "urlMaps.insert=QUOTA_EXCEEDED",
        ],
    );
    let sandbox = common::aws::sandbox(&sim);
    seed(&sandbox, "p");
    let path = "/compute/v1/projects/p/global/backendServices/app";
    let before = common::world(&sim)["backend_services"]["p/app"].clone();
    let patch = json!({"backends": [{"group": "regions/us-east1/networkEndpointGroups/us", "capacityScaler": 0.2}]});

    for remaining in [1, 0] {
        let operation = ok(&sandbox, "PATCH", path, Some(patch.clone()));
        assert_eq!(operation["status"], "PENDING");
        assert!(
            operation.get("error").is_none(),
            "errors show only once DONE"
        );
        let name = operation["name"].as_str().expect("name");
        let done = ok(
            &sandbox,
            "POST",
            &format!("/compute/v1/projects/p/global/operations/{name}/wait"),
            None,
        );
        assert_eq!(done["status"], "DONE");
        assert_eq!(done["targetId"], before["id"]);
        assert_eq!(
            done["error"],
            json!({"errors": [{"code": "RESOURCE_NOT_READY", "message": "RESOURCE_NOT_READY: operation error injected into backendServices.patch by the simulator"}]})
        );
        assert_eq!(done["httpErrorStatusCode"], 503);
        assert_eq!(done["httpErrorMessage"], "SERVICE UNAVAILABLE");
        let world = common::world(&sim);
        assert_eq!(
            world["backend_services"]["p/app"], before,
            "the write must not land"
        );
        let pending = &world["settings"]["faults"]["operation_errors"];
        let left: Vec<u64> = pending
            .as_array()
            .expect("faults")
            .iter()
            .filter(|f| f["operation"] == "backendServices.patch")
            .map(|f| f["times"].as_u64().unwrap_or(0))
            .collect();
        assert_eq!(
            left,
            if remaining == 0 {
                vec![]
            } else {
                vec![remaining]
            }
        );
    }
    // Used up: the third patch lands.
    ok(&sandbox, "PATCH", path, Some(patch));
    let world = common::world(&sim);
    assert_eq!(
        world["backend_services"]["p/app"]["backends"],
        json!([{"group": "regions/us-east1/networkEndpointGroups/us", "region": "us-east1", "balancingMode": "UTILIZATION", "maxRate": null, "maxRatePerEndpoint": null, "maxUtilization": null, "maxConnections": null, "capacityScaler": 0.2}])
    );
    assert_eq!(calls(&world, "backendServices.patch", "failed"), 2);
    assert_eq!(calls(&world, "backendServices.patch", "ok"), 1);

    // A quota error is a 403 on the operation, and the URL map does not appear.
    let operation = ok(
        &sandbox,
        "POST",
        "/compute/v1/projects/p/global/urlMaps",
        Some(json!({"name": "m", "defaultService": "global/backendServices/app"})),
    );
    let name = operation["name"].as_str().expect("name");
    let done = ok(
        &sandbox,
        "POST",
        &format!("/compute/v1/projects/p/global/operations/{name}/wait"),
        None,
    );
    assert_eq!(done["httpErrorStatusCode"], 403);
    assert_eq!(done["error"]["errors"][0]["code"], "QUOTA_EXCEEDED");
    assert_eq!(common::world(&sim)["url_maps"], json!({}));

    // The throttle fault is an injectable 429.
    faults(dir.path(), &sim, &["--throttle-rate", "1.0"]);
    let (status, error) = call(&sandbox, "GET", path, None);
    assert_eq!(status, 429, "{error:#}");
    assert_eq!(error["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(error["error"]["errors"][0]["reason"], "rateLimitExceeded");
    assert_eq!(
        calls(&common::world(&sim), "backendServices.get", "throttled"),
        1
    );
}

#[test]
fn a_used_up_rate_quota_is_a_403_rate_limit_until_the_next_minute() {
    // "If your project exceeds a rate quota, you receive a 403 error with the
    // reason rateLimitExceeded" (Compute Engine rate quotas). Reads allowed
    // twice a minute: the third GET in the same minute is refused, lists
    // (their own group) are not.
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = dir.path().join("sim");
    let limits = common::sim_run(
        dir.path(),
        &sim,
        &["sim", "limits", "--set", "compute-reads=2/min"],
    );
    assert_eq!(limits.code, 0, "{}", limits.all());
    let sandbox = common::aws::sandbox(&sim);
    // The window is the clock's minute: start right after a boundary so the
    // three reads fall in one.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    if now % 60_000 > 50_000 {
        std::thread::sleep(std::time::Duration::from_millis(
            (60_000 - (now % 60_000) + 200) as u64,
        ));
    }
    let path = "/compute/v1/projects/p/global/healthChecks/none";
    for _ in 0..2 {
        let (status, _) = call(&sandbox, "GET", path, None);
        assert_eq!(status, 404, "admitted, and not found");
    }
    let (status, error) = call(&sandbox, "GET", path, None);
    assert_eq!(status, 403, "{error:#}");
    assert_eq!(error["error"]["errors"][0]["reason"], "rateLimitExceeded");
    assert_eq!(error["error"]["errors"][0]["domain"], "usageLimits");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("per minute")),
        "{error:#}"
    );
    let (status, _) = call(
        &sandbox,
        "GET",
        "/compute/v1/projects/p/global/healthChecks",
        None,
    );
    assert_eq!(status, 200, "lists are another quota group");
    assert_eq!(
        calls(&common::world(&sim), "healthChecks.get", "throttled"),
        1
    );
}

#[test]
fn the_discovery_client_builds_reads_and_tears_down_the_whole_load_balancer_chain() {
    // Google's discovery-based Python client (google-api-python-client, with
    // the Compute v1 document it ships), a second client nobody here wrote:
    // forwarding rule → target HTTP(S) proxy → URL map → backend service →
    // health check, with paging, aggregated lists, fingerprints,
    // set-methods and the in-use rules (the script asserts each answer).
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = dir.path().join("sim");
    faults(dir.path(), &sim, &["--deploy-delay-ms", "20"]);
    let sandbox = common::aws::sandbox(&sim);
    let output = Command::new(common::aws::python())
        .arg(common::aws::clients().join("compute_discovery.py"))
        .args([sandbox.url().as_str(), "discovery-check", "chain"])
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "google-api-python-client against the sandbox failed (scripts/test.sh installs it into .venv):\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let world = common::world(&sim);
    // The chain was torn down in order: nothing of the front end is left.
    assert_eq!(world["frontends"], json!({}), "{:#}", world["frontends"]);
    for (operation, outcome, at_least) in [
        ("globalForwardingRules.insert", "ok", 1),
        ("globalForwardingRules.setTarget", "ok", 1),
        ("globalForwardingRules.setLabels", "ok", 1),
        ("targetHttpProxies.setUrlMap", "ok", 1),
        ("targetHttpsProxies.delete", "failed", 1),
        ("urlMaps.delete", "failed", 1),
        ("healthChecks.aggregatedList", "ok", 1),
        ("targetHttpProxies.aggregatedList", "ok", 1),
        ("healthChecks.list", "ok", 2),
    ] {
        assert!(
            calls(&world, operation, outcome) >= at_least,
            "{operation} {outcome}: {:#}",
            world["calls"][operation]
        );
    }
    // The history holds the writes in order: the rule went before its proxy.
    let history: Vec<String> = world["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| {
            format!(
                "{} {}",
                h["operation"].as_str().unwrap_or_default(),
                h["target"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let position = |entry: &str| history.iter().position(|h| h == entry);
    assert!(
        position("globalForwardingRules.delete d-rule")
            < position("targetHttpsProxies.delete d-https")
            && position("targetHttpsProxies.delete d-https").is_some(),
        "{history:#?}"
    );
}
