//! The real `gcp` provider (Google's official `google-cloud-compute-v1`
//! client) against meridian's Compute Engine sandbox: no `--sim` on the
//! meridian side, the client talks HTTP to the sandbox, and the sandbox's
//! counters and world judge the calls.

mod common;

use std::path::{Path, PathBuf};

use common::aws::Server as Sandbox;
use common::gcp::{PROJECT, compute, gcp, set_scaler};
use common::{sim_run, world};

fn provider_doc(sandbox: &Sandbox) -> String {
    format!(
        "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {{name: gcp-prod}}\nspec:\n  type: gcp\n  project: {PROJECT}\n  endpoints: {{compute: \"http://{}\"}}\n",
        sandbox.address
    )
}

/// A desired-state folder with the example's load balancer on a `gcp`
/// provider pointed at the sandbox.
fn desired(dir: &Path, sandbox: &Sandbox) -> PathBuf {
    let folder = dir.join("desired-state");
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::write(folder.join("providers.yaml"), provider_doc(sandbox)).expect("write");
    std::fs::copy(
        common::example_dir().join("gcp-load-balancing.yaml"),
        folder.join("gcp-load-balancing.yaml"),
    )
    .expect("copy");
    folder
}

fn setup(faults: &[&str]) -> (tempfile::TempDir, PathBuf, Sandbox) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = dir.path().join("sim");
    let mut args = vec!["sim", "faults", "--deploy-delay-ms", "20"];
    args.extend_from_slice(faults);
    let run = sim_run(dir.path(), &sim, &args);
    assert_eq!(run.code, 0, "{}", run.all());
    let sandbox = common::aws::sandbox(&sim);
    desired(dir.path(), &sandbox);
    (dir, sim, sandbox)
}

fn calls(sim: &Path, operation: &str) -> u64 {
    let world = world(sim);
    let c = &world["calls"][operation];
    c["ok"].as_u64().unwrap_or(0)
        + c["failed"].as_u64().unwrap_or(0)
        + c["throttled"].as_u64().unwrap_or(0)
}

/// The live backend service's backends, by group suffix → capacity scaler.
fn scalers(sandbox: &Sandbox) -> Vec<(String, f64)> {
    let (status, live) = compute(sandbox, "GET", "backendServices/app-backend", None);
    assert_eq!(status, 200, "{live}");
    live["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .map(|b| {
            (
                b["group"]
                    .as_str()
                    .and_then(|g| g.rsplit('/').next())
                    .expect("group")
                    .to_owned(),
                b["capacityScaler"]
                    .as_f64()
                    .expect("capacityScaler is present"),
            )
        })
        .collect()
}

fn scaler(sandbox: &Sandbox, group: &str) -> f64 {
    scalers(sandbox)
        .into_iter()
        .find(|(g, _)| g == group)
        .map(|(_, s)| s)
        .expect("backend present")
}

#[test]
fn apply_through_the_official_client_creates_the_load_balancer_and_drift_is_restored() {
    let (dir, sim, sandbox) = setup(&[]);
    let dir = dir.path();
    let apply = gcp(dir, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    // Health check, backend service, three backends, URL map.
    assert!(
        apply.stdout.contains("Applied 6 of 6 change(s)"),
        "{}",
        apply.all()
    );
    let plan = gcp(dir, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "the next plan is empty:\n{}", plan.all());

    // What the sandbox holds, read back through its API.
    let (status, check) = compute(&sandbox, "GET", "healthChecks/app-health-check", None);
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["type"], "HTTPS");
    assert_eq!(check["httpsHealthCheck"]["requestPath"], "/health");
    assert!(
        check["description"]
            .as_str()
            .is_some_and(|d| d.contains("meridian.dev/owner=gcp-prod")),
        "{check}"
    );
    let (status, service) = compute(&sandbox, "GET", "backendServices/app-backend", None);
    assert_eq!(status, 200, "{service}");
    assert_eq!(service["protocol"], "HTTPS");
    assert_eq!(service["enableCDN"], true);
    assert!(
        service["healthChecks"][0]
            .as_str()
            .is_some_and(|h| h.ends_with("/global/healthChecks/app-health-check")),
        "{service}"
    );
    let mut got = scalers(&sandbox);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            ("app-apac".to_owned(), 0.5),
            ("app-eu".to_owned(), 1.0),
            ("app-us".to_owned(), 1.0)
        ]
    );
    let (status, map) = compute(&sandbox, "GET", "urlMaps/app-url-map", None);
    assert_eq!(status, 200, "{map}");
    assert_eq!(map["hostRules"][0]["hosts"][0], "api.example.com");
    assert!(
        map["pathMatchers"][0]["pathRules"][0]["service"]
            .as_str()
            .is_some_and(|s| s.ends_with("/global/backendServices/app-backend")),
        "{map}"
    );
    // Every write waited for its operation.
    assert!(calls(&sim, "globalOperations.wait") + calls(&sim, "globalOperations.get") >= 1);

    // Another tool changes a capacity scaler through the API.
    set_scaler(&sandbox, "app-backend", "app-eu", 0.3);
    let drift = gcp(dir, &["drift"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    assert!(
        drift
            .stdout
            .contains("regions/europe-west1/networkEndpointGroups/app-eu")
            && drift.stdout.contains("capacityScaler")
            && drift.stdout.contains("0.3"),
        "{}",
        drift.all()
    );
    let patches = calls(&sim, "backendServices.patch");
    let apply = gcp(dir, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(scaler(&sandbox, "app-eu"), 1.0);
    // One backend, one patch; the other backends are untouched.
    assert_eq!(calls(&sim, "backendServices.patch"), patches + 1);
    assert_eq!(scaler(&sandbox, "app-apac"), 0.5);
    let drift = gcp(dir, &["drift"]);
    assert_eq!(drift.code, 0, "{}", drift.all());
}

#[test]
fn a_capacity_scaler_of_zero_stays_zero_through_every_step() {
    let (dir, _sim, sandbox) = setup(&[]);
    let dir = dir.path();
    let file = dir.join("desired-state/gcp-load-balancing.yaml");
    let text = std::fs::read_to_string(&file).expect("read");
    let drained = text.replace("capacityScaler: 0.5", "capacityScaler: 0");
    assert_ne!(text, drained);
    std::fs::write(&file, drained).expect("write");

    let plan = gcp(dir, &["plan", "--format", "json"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).expect("plan json");
    let apac = json["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| {
            c["address"]
                .as_str()
                .is_some_and(|a| a.contains("app-apac"))
        })
        .expect("the apac backend is planned");
    assert_eq!(apac["after"]["capacityScaler"], serde_json::json!(0.0));

    let apply = gcp(dir, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    // Live, through the API: 0, present, not dropped and not "unset".
    assert_eq!(scaler(&sandbox, "app-apac"), 0.0);
    let plan = gcp(dir, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "no permadiff:\n{}", plan.all());
    let drift = gcp(dir, &["drift", "--format", "json"]);
    assert_eq!(drift.code, 0, "{}", drift.all());

    // And back: 0 → 0.5 is a real change, planned and applied.
    std::fs::write(&file, text).expect("write");
    let plan = gcp(dir, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stdout.contains("0.5"), "{}", plan.all());
    let apply = gcp(dir, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(scaler(&sandbox, "app-apac"), 0.5);
}

#[test]
fn a_failed_operation_is_reported_with_its_error_and_retried_or_stopped_by_class() {
    // A transient operation error (twice) is retried and the change lands.
    let (dir, sim, sandbox) = setup(&["--operation-error", "urlMaps.insert=RESOURCE_NOT_READY:2"]);
    let dir = dir.path();
    let apply = gcp(dir, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(
        calls(&sim, "urlMaps.insert"),
        3,
        "two failed operations, then one that landed"
    );
    assert!(
        apply.stdout.contains("2 retries after transient errors"),
        "{}",
        apply.all()
    );
    let (status, _) = compute(&sandbox, "GET", "urlMaps/app-url-map", None);
    assert_eq!(status, 200);

    // A quota error in the operation stops at once, with the operation's error.
    set_scaler(&sandbox, "app-backend", "app-us", 0.2);
    let run = sim_run(
        dir,
        &sim,
        &[
            "sim",
            "faults",
            "--deploy-delay-ms",
            "20",
            "--operation-error",
            "backendServices.patch=QUOTA_EXCEEDED:1",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let before = calls(&sim, "backendServices.patch");
    let apply = gcp(dir, &["apply", "--yes"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    assert!(
        apply.stderr.contains("QUOTA_EXCEEDED") && apply.stderr.contains("operation"),
        "the operation's own error is shown:\n{}",
        apply.all()
    );
    assert_eq!(
        calls(&sim, "backendServices.patch"),
        before + 1,
        "a quota is not retried"
    );
    assert_eq!(scaler(&sandbox, "app-us"), 0.2, "nothing landed");
    // The fault is used up: the next run converges.
    let apply = gcp(dir, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(scaler(&sandbox, "app-us"), 1.0);
}

#[test]
fn throttling_converges() {
    // Throttling is drawn at random per call: an apply of a dozen calls
    // meets none about one time in forty. Such a run proves nothing, so a
    // fresh world is tried again (five quiet runs in a row: 1 in 10^8).
    let mut attempts = 0;
    let (_kept, sim, sandbox, dir) = loop {
        attempts += 1;
        let (kept, sim, sandbox) = setup(&["--throttle-rate", "0.3"]);
        let dir = kept.path().to_path_buf();
        let apply = gcp(&dir, &["apply", "--yes"]);
        assert_eq!(apply.code, 0, "{}", apply.all());
        let throttled = world(&sim)["calls"]
            .as_object()
            .expect("calls")
            .values()
            .any(|c| c["throttled"].as_u64().unwrap_or(0) > 0);
        if throttled {
            break (kept, sim, sandbox, dir);
        }
        assert!(attempts < 5, "no call was throttled in {attempts} applies");
    };
    let dir = dir.as_path();
    // The test's own reads go through the same API: lift the fault first.
    let clear = sim_run(dir, &sim, &["sim", "faults", "--clear"]);
    assert_eq!(clear.code, 0, "{}", clear.all());
    let mut got = scalers(&sandbox);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got.len(), 3);
    assert_eq!(
        got,
        vec![
            ("app-apac".to_owned(), 0.5),
            ("app-eu".to_owned(), 1.0),
            ("app-us".to_owned(), 1.0)
        ]
    );
}

#[test]
fn more_than_five_hundred_backend_services_page_with_the_minimum_of_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let sim = dir.join("sim");
    // 520 backend services (each with one backend) and their health check,
    // created under --sim, by the same gcp provider pointed at the
    // in-process sandbox over the same world.
    let folder = dir.join("desired-state");
    std::fs::create_dir_all(&folder).expect("mkdir");
    let mut docs = String::from(
        "apiVersion: meridian.dev/v1alpha1\nkind: HealthCheck\nmetadata: {name: hc}\nspec:\n  provider: gcp-prod\n  type: TCP\n  tcpHealthCheck: {port: 443}\n",
    );
    for i in 0..520 {
        docs.push_str(&format!(
            "---\napiVersion: meridian.dev/v1alpha1\nkind: BackendService\nmetadata: {{name: svc-{i:03}}}\nspec:\n  provider: gcp-prod\n  protocol: HTTPS\n  loadBalancingScheme: EXTERNAL_MANAGED\n  healthChecks: [hc]\n  acknowledgeZeroTraffic: {}\n  backends:\n    - group: regions/us-east1/networkEndpointGroups/neg-{i:03}\n      balancingMode: RATE\n      maxRatePerEndpoint: 100\n      capacityScaler: {}\n",
            i % 7 == 0,
            if i % 7 == 0 { "0" } else { "1" }
        ));
    }
    std::fs::write(folder.join("services.yaml"), docs).expect("write");
    std::fs::write(
        folder.join("providers.yaml"),
        format!("apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {{name: gcp-prod}}\nspec:\n  type: gcp\n  project: {PROJECT}\n"),
    )
    .expect("write");
    // Operations finish fast: the seeding is setup, not the subject.
    assert_eq!(
        sim_run(dir, &sim, &["sim", "faults", "--deploy-delay-ms", "20"]).code,
        0
    );
    let seeded = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(seeded.code, 0, "{}", seeded.all());
    let sandbox = common::aws::sandbox(&sim);
    std::fs::write(folder.join("providers.yaml"), provider_doc(&sandbox)).expect("write");
    let lists = calls(&sim, "backendServices.list");
    let hc_lists = calls(&sim, "healthChecks.list");
    let map_lists = calls(&sim, "urlMaps.list");
    let gets = calls(&sim, "backendServices.get");
    let hc_gets = calls(&sim, "healthChecks.get");
    let health = calls(&sim, "backendServices.getHealth");

    let plan = gcp(dir, &["plan", "--detailed-exitcode"]);
    assert_eq!(
        plan.code,
        0,
        "all 520 services were seen, none planned again:\n{}",
        plan.all()
    );
    // 520 services at 500 a page: exactly two list calls, one for health
    // checks, one for URL maps, and no gets.
    assert_eq!(calls(&sim, "backendServices.list") - lists, 2);
    assert_eq!(calls(&sim, "healthChecks.list") - hc_lists, 1);
    assert_eq!(calls(&sim, "urlMaps.list") - map_lists, 1);
    assert_eq!(calls(&sim, "backendServices.get") - gets, 0);
    assert_eq!(calls(&sim, "healthChecks.get") - hc_gets, 0);
    assert_eq!(calls(&sim, "backendServices.getHealth") - health, 0);
    // And the zero scalers were read as zero (no permadiff on 75 of them).
    let run = gcp(dir, &["drift"]);
    assert_eq!(run.code, 0, "{}", run.all());
}

#[test]
fn a_write_racing_another_writer_gets_412_reads_again_and_overwrites_nothing() {
    let (dir, sim, sandbox) = setup(&[]);
    let dir = dir.path();
    let apply = gcp(dir, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    // Desired: app-us 1.0 → 0.5. Another writer changes app-apac in the
    // instant between meridian's read and its patch.
    let file = dir.join("desired-state/gcp-load-balancing.yaml");
    let text = std::fs::read_to_string(&file).expect("read");
    let at = text.find("app-us").expect("app-us");
    let scaler_at = at + text[at..].find("capacityScaler: 1.0").expect("scaler");
    std::fs::write(
        &file,
        format!(
            "{}capacityScaler: 0.5{}",
            &text[..scaler_at],
            &text[scaler_at + "capacityScaler: 1.0".len()..]
        ),
    )
    .expect("write");
    let race = sim_run(
        dir,
        &sim,
        &[
            "sim",
            "faults",
            "--deploy-delay-ms",
            "20",
            "--racing-write",
            "app-backend/app-apac",
        ],
    );
    assert_eq!(race.code, 0, "{}", race.all());
    let failed_before = world(&sim)["calls"]["backendServices.patch"]["failed"]
        .as_u64()
        .unwrap_or(0);

    let apply = gcp(dir, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let failed = world(&sim)["calls"]["backendServices.patch"]["failed"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(
        failed,
        failed_before + 1,
        "the stale fingerprint was answered 412"
    );
    assert!(
        apply.stderr.contains("changed between read and write"),
        "the provider read the service again:\n{}",
        apply.all()
    );
    assert_eq!(scaler(&sandbox, "app-us"), 0.5, "meridian's change landed");
    assert_eq!(
        scaler(&sandbox, "app-apac"),
        0.37,
        "the other writer's change was not overwritten by the stale read"
    );
    // The other writer's value is now drift, reported as such.
    let drift = gcp(dir, &["drift"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    assert!(
        drift.stdout.contains("app-apac") && drift.stdout.contains("0.37"),
        "{}",
        drift.all()
    );
}

#[test]
fn an_object_removed_from_desired_state_is_deleted_in_dependency_order() {
    let (dir, sim, sandbox) = setup(&[]);
    let dir = dir.path();
    let apply = gcp(dir, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    // Drop the URL map and the backend service (the health check stays).
    let file = dir.join("desired-state/gcp-load-balancing.yaml");
    let text = std::fs::read_to_string(&file).expect("read");
    let kept: Vec<&str> = text
        .split("\n---\n")
        .filter(|doc| doc.contains("kind: HealthCheck"))
        .collect();
    assert_eq!(kept.len(), 1);
    std::fs::write(&file, kept.join("\n---\n")).expect("write");
    let apply = gcp(dir, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(calls(&sim, "urlMaps.delete"), 1);
    assert_eq!(calls(&sim, "backendServices.delete"), 1);
    let (status, _) = compute(&sandbox, "GET", "urlMaps/app-url-map", None);
    assert_eq!(status, 404);
    let (status, _) = compute(&sandbox, "GET", "backendServices/app-backend", None);
    assert_eq!(status, 404);
    let (status, _) = compute(&sandbox, "GET", "healthChecks/app-health-check", None);
    assert_eq!(status, 200);
    let plan = gcp(dir, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
}

/// `compute_discovery.py URL PROJECT PHASE ARGS...` (Google's discovery-based
/// Python client), which must succeed; its standard output.
fn discovery(sandbox: &Sandbox, args: &[&str]) -> String {
    let output = std::process::Command::new(common::aws::python())
        .arg(common::aws::clients().join("compute_discovery.py"))
        .arg(sandbox.url())
        .arg(PROJECT)
        .args(args)
        .output()
        .expect("python runs (scripts/test.sh installs google-api-python-client into .venv)");
    assert!(
        output.status.success(),
        "compute_discovery.py {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn what_another_client_changes_or_creates_is_drift_and_meridians_correction_is_what_it_reads() {
    let (dir, _sim, sandbox) = setup(&[]);
    let dir = dir.path();
    let apply = gcp(dir, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());

    // Google's discovery-based client changes every capacity scaler of
    // meridian's service and creates a service carrying meridian's marker.
    let marker = meridian_provider::gcp_ownership_marker("gcp-prod");
    discovery(&sandbox, &["meddle", "app-backend", &marker]);
    let drift = gcp(dir, &["drift", "--format", "json"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    let report: serde_json::Value = serde_json::from_str(&drift.stdout).expect("json");
    let mut found: Vec<(String, String)> = report["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| {
            (
                r["address"].as_str().unwrap_or_default().to_owned(),
                r["drift"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    found.sort();
    assert!(
        found
            .iter()
            .any(|(address, kind)| address.contains("stray") && kind == "unexpected"),
        "the service another client created under meridian's marker: {found:?}"
    );
    let changed: Vec<&(String, String)> =
        found.iter().filter(|(_, kind)| kind == "changed").collect();
    assert_eq!(changed.len(), 3, "three backends changed: {found:?}");

    let apply = gcp(dir, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let seen: serde_json::Value =
        serde_json::from_str(&discovery(&sandbox, &["read", "app-backend"])).expect("json");
    let mut scalers: Vec<f64> = seen["scalers"]
        .as_array()
        .expect("scalers")
        .iter()
        .filter_map(serde_json::Value::as_f64)
        .collect();
    scalers.sort_by(f64::total_cmp);
    assert_eq!(scalers, [0.5, 1.0, 1.0], "{seen}");
    assert_eq!(
        seen["services"],
        serde_json::json!(["app-backend"]),
        "{seen}"
    );
}
