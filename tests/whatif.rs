//! `meridian whatif`: region outages simulated on desired state, through the
//! real binary. The expected numbers are worked out by hand in the comments.

mod common;

use std::path::PathBuf;

use common::{copy_example, meridian, sim_run};
use serde_json::Value;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> String {
    format!("tests/fixtures/whatif/{name}")
}

fn whatif_json(dir: &str, down: &[&str]) -> (i32, Value, common::Run) {
    let mut args = vec!["whatif", dir, "--format", "json"];
    for region in down {
        args.extend(["--region-down", region]);
    }
    let run = meridian(&repo_root(), &args);
    let json = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("whatif prints JSON ({e}): {}", run.all()));
    (run.code, json, run)
}

fn subject<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["subjects"]
        .as_array()
        .expect("subjects")
        .iter()
        .find(|s| s["subject"] == name)
        .unwrap_or_else(|| panic!("{name} is reported: {report:#}"))
}

fn region<'a>(subject: &'a Value, name: &str) -> &'a Value {
    subject["regions"]
        .as_array()
        .expect("regions")
        .iter()
        .find(|r| r["region"] == name)
        .unwrap_or_else(|| panic!("{name} is reported: {subject:#}"))
}

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{value} is a number"))
}

#[track_caller]
fn close(value: &Value, expected: f64) {
    let got = number(value);
    assert!(
        (got - expected).abs() < 1e-6,
        "expected {expected}, got {got}"
    );
}

const HTTPS: &str = "GlobalAccelerator[api].listener[https]";
const GRPC: &str = "GlobalAccelerator[api].listener[grpc]";

#[test]
fn losing_us_east_1_sends_its_clients_to_frankfurt_and_overloads_it() {
    // The example's `api` listener `https`: clients declared equal at the
    // three regions (`spec.clients`), 1/3 each. Dials: us-east-1 100,
    // eu-central-1 100, ap-southeast-1 50. Expected 30,000 requests/s;
    // capacityRps 24,000 / 24,000 / 12,000.
    //
    // Before: ap-southeast-1 keeps 50% of its third = 1/6 (GA-2) and sends
    // the other 1/6 to the next closest group from Singapore with a dial
    // above 0: Frankfurt (≈ 10,300 km) before N. Virginia (≈ 15,500 km).
    // us-east-1 = 1/3 = 33.3%, eu-central-1 = 1/3 + 1/6 = 50%,
    // ap-southeast-1 = 1/6 = 16.7%.
    //   loads: 10,000 (headroom 14,000) in us-east-1; 15,000 (headroom
    //   9,000) in eu-central-1; 5,000 (headroom 7,000) in ap-southeast-1.
    //
    // During (us-east-1 down): N. Virginia's clients fail over to the
    // closest serving group among their three closest (GA-3). Frankfurt is
    // about 6,550 km from N. Virginia, Singapore about 15,600 km, so all of
    // it goes to eu-central-1, dial ignored. ap-southeast-1 still keeps 1/6
    // and sends 1/6 on to Frankfurt.
    //   eu-central-1 = 1/3 (own) + 1/3 (failover) + 1/6 (APAC spill) = 5/6 = 83.33%
    //   ap-southeast-1 = 1/6 = 16.67%, us-east-1 = 0
    //   eu-central-1 load = 30,000 × 5/6 = 25,000 > 24,000: headroom −1,000.
    //
    // The `grpc` listener (all dials 100): 1/3 each before; during, us-east-1's
    // third goes to eu-central-1: 2/3 and 1/3.
    //
    // Residency: the `api` accelerator carries `us-customer-data`, whose
    // policy keeps the traffic of clients in us-* in us-*/ca-*. With
    // us-east-1 down, its (US) clients fail over to Frankfurt — on both
    // listeners — which the policy forbids: exit 3.
    let (code, report, run) = whatif_json("desired-state", &["us-east-1"]);
    assert_eq!(
        code,
        3,
        "a residency violation along the failover path: {}",
        run.all()
    );
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["regions_down"], serde_json::json!(["us-east-1"]));
    assert_eq!(report["health"], "assumed_healthy");

    let https = subject(&report, HTTPS);
    assert_eq!(https["expected_rps"], 30000);
    let (us, eu, ap) = (
        region(https, "us-east-1"),
        region(https, "eu-central-1"),
        region(https, "ap-southeast-1"),
    );
    close(&us["before"], 1.0 / 3.0);
    close(&eu["before"], 0.5);
    close(&ap["before"], 1.0 / 6.0);
    close(&us["during"], 0.0);
    close(&eu["during"], 5.0 / 6.0);
    close(&ap["during"], 1.0 / 6.0);
    assert_eq!(us["down"], true);
    close(&us["headroom_before_rps"], 14_000.0);
    close(&eu["headroom_before_rps"], 9_000.0);
    close(&ap["headroom_before_rps"], 7_000.0);
    close(&eu["load_during_rps"], 25_000.0);
    close(&eu["headroom_during_rps"], -1_000.0);
    close(&ap["headroom_during_rps"], 7_000.0);
    assert!(
        us["headroom_during_rps"].is_null(),
        "a region that is down has no headroom"
    );
    let failovers = https["failovers"].as_array().expect("failovers");
    assert_eq!(failovers.len(), 1, "{failovers:?}");
    assert_eq!(failovers[0]["from"], "us-east-1");
    assert_eq!(failovers[0]["clients"], "us-east-1");
    assert_eq!(failovers[0]["to"], "eu-central-1");
    assert!(
        failovers[0]["how"]
            .as_str()
            .is_some_and(|h| h
                == "us-east-1 down: GA-3 failover among the three closest groups, dials ignored"),
        "{failovers:?}"
    );
    // The prediction names its rules and the clients it starts from.
    let rules: Vec<&str> = https["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert!(
        rules.iter().any(|r| r.starts_with("GA-1"))
            && rules.iter().any(|r| r.starts_with("GA-2"))
            && rules.iter().any(|r| r.starts_with("GA-3")),
        "{rules:?}"
    );
    assert!(
        https["clients"].as_str().is_some_and(
            |c| c.starts_with("clients declared at GlobalAccelerator/api spec.clients")
        ),
        "{}",
        https["clients"]
    );
    close(&failovers[0]["share"], 1.0 / 3.0);
    let km = number(&failovers[0]["distance_km"]);
    assert!((6_400.0..6_700.0).contains(&km), "{km}");
    assert_eq!(https["serving_regions_before"], 3);
    assert_eq!(https["serving_regions_during"], 2);
    assert_eq!(https["min_serving_regions"], 2);
    assert_eq!(https["traffic_policy"], "TrafficPolicy/careful");

    let grpc = subject(&report, GRPC);
    close(&region(grpc, "eu-central-1")["during"], 2.0 / 3.0);
    close(&region(grpc, "ap-southeast-1")["during"], 1.0 / 3.0);
    assert!(region(grpc, "eu-central-1")["capacity_rps"].is_null());

    // An AWS outage leaves the GCP service (us-east1 is another cloud's
    // region) and the EU-only accounts accelerator as they were.
    let accounts = subject(&report, "GlobalAccelerator[accounts-eu].listener[https]");
    assert_eq!(accounts["affected"], false);
    close(&region(accounts, "eu-west-1")["during"], 0.5);
    // The GCP service: no clients declared (equal at its three regions) and
    // no expectedRps, so by waterfall each region keeps its own third.
    let backend = subject(&report, "BackendService[app-backend]");
    close(&region(backend, "us-east1")["during"], 1.0 / 3.0);
    assert!(
        backend["clients"]
            .as_str()
            .is_some_and(|c| c.starts_with("clients not declared")),
        "{}",
        backend["clients"]
    );

    let shortfalls = report["capacity_shortfalls"]
        .as_array()
        .expect("shortfalls");
    assert_eq!(shortfalls.len(), 1, "{shortfalls:?}");
    assert_eq!(shortfalls[0]["subject"], HTTPS);
    assert_eq!(shortfalls[0]["region"], "eu-central-1");
    assert!(
        shortfalls[0]["message"]
            .as_str()
            .expect("message")
            .contains("short by 1,000 rps"),
        "{shortfalls:?}"
    );
    assert_eq!(report["serving_violations"], serde_json::json!([]));
    let violations = report["residency_violations"]
        .as_array()
        .expect("violations");
    let found: Vec<(&str, &str, &str)> = violations
        .iter()
        .map(|v| {
            (
                v["subject"].as_str().unwrap_or_default(),
                v["region"].as_str().unwrap_or_default(),
                v["policy"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            (
                "GlobalAccelerator[api].listener[grpc]",
                "eu-central-1",
                "DataResidencyPolicy/us-customer-data"
            ),
            (
                "GlobalAccelerator[api].listener[https]",
                "eu-central-1",
                "DataResidencyPolicy/us-customer-data"
            ),
        ]
    );
    assert!(
        violations[1]["paths"][0]
            .as_str()
            .is_some_and(|p| p
                .starts_with("us-east-1 down → clients at us-east-1 fail over to eu-central-1")),
        "{violations:?}"
    );
}

#[test]
fn the_markdown_report_matches_its_snapshot() {
    let run = meridian(
        &repo_root(),
        &[
            "whatif",
            "desired-state",
            "--region-down",
            "us-east-1",
            "--format",
            "markdown",
        ],
    );
    assert_eq!(run.code, 3, "{}", run.all());
    let expected_path = repo_root().join("tests/fixtures/whatif/example-us-east-1-down.md");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(expected_path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&expected_path, &run.stdout).expect("write");
    }
    let expected = std::fs::read_to_string(&expected_path)
        .expect("snapshot exists (UPDATE_SNAPSHOTS=1 writes it)");
    assert_eq!(
        run.stdout, expected,
        "the report differs from tests/fixtures/whatif/example-us-east-1-down.md"
    );
    // What the snapshot must show, spelled out.
    assert!(
        run.stdout.contains(
            "| `GlobalAccelerator[api].listener[https]` | eu-central-1 | 50.0% | 83.3% ▲ | 24,000 rps | 9,000 rps | ⚠️ -1,000 rps |"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("us-east-1 → eu-central-1, clients at us-east-1 (us-east-1 down: GA-3 failover among the three closest groups"),
        "{}",
        run.stdout
    );
}

#[test]
fn two_regions_down_leave_the_api_below_its_minimum_serving_regions() {
    // us-east-1 and eu-central-1 down: ap-southeast-1 is the only serving
    // group of both `api` listeners, and among every population's three
    // closest (there are only three). The US and EU thirds fail over to it;
    // so does the half of its own third its dial turns away, whose original
    // group by dial, Frankfurt, is down: 100% of the traffic, 30,000
    // requests/s against 12,000.
    // TrafficPolicy/careful asks for 2 serving regions: exit 3.
    // accounts-eu loses eu-central-1 and fails over to eu-west-1 (Ireland,
    // the only other group), which its residency policy allows.
    let (code, report, run) = whatif_json("desired-state", &["us-east-1", "eu-central-1"]);
    assert_eq!(code, 3, "{}", run.all());
    let https = subject(&report, HTTPS);
    close(&region(https, "ap-southeast-1")["during"], 1.0);
    close(
        &region(https, "ap-southeast-1")["headroom_during_rps"],
        -18_000.0,
    );
    assert_eq!(https["serving_regions_during"], 1);
    let serving: Vec<&str> = report["serving_violations"]
        .as_array()
        .expect("violations")
        .iter()
        .map(|v| v["subject"].as_str().expect("subject"))
        .collect();
    assert_eq!(serving, vec![GRPC, HTTPS]);
    let message = report["serving_violations"][0]["message"]
        .as_str()
        .expect("message");
    assert!(
        message.contains("keeps 1 serving region(s) during the outage (ap-southeast-1)")
            && message.contains("TrafficPolicy/careful requires at least 2"),
        "{message}"
    );
    let accounts = subject(&report, "GlobalAccelerator[accounts-eu].listener[https]");
    close(&region(accounts, "eu-west-1")["during"], 1.0);
    let checks = report["residency_checks"].as_array().expect("checks");
    let accounts: Vec<&Value> = checks
        .iter()
        .filter(|c| c["resource"] == "GlobalAccelerator/accounts-eu")
        .collect();
    assert_eq!(accounts.len(), 1, "{checks:?}");
    assert_eq!(accounts[0]["region"], "eu-west-1");
    assert_eq!(accounts[0]["allowed"], true);
    assert!(
        accounts[0]["path"]
            .as_str()
            .expect("path")
            .starts_with("eu-central-1 down → clients at eu-central-1 fail over to eu-west-1"),
        "{checks:?}"
    );
    // US clients of `api` end up in Singapore: forbidden for their data.
    let violations = report["residency_violations"]
        .as_array()
        .expect("violations");
    assert!(!violations.is_empty());
    assert!(
        violations
            .iter()
            .all(|v| v["region"] == "ap-southeast-1" && v["resource"] == "GlobalAccelerator/api"),
        "{violations:?}"
    );
}

#[test]
fn with_every_region_of_a_listener_down_global_accelerator_fails_open() {
    // No endpoint group of `api` can serve: none of any population's three
    // closest groups serves, so Global Accelerator fails open and sends each
    // population to its closest group (GA-4), dials playing no part: 1/3
    // each for https, and no region can serve them: 0 serving regions,
    // exit 3.
    let (code, report, run) = whatif_json(
        "desired-state",
        &["us-east-1", "eu-central-1", "ap-southeast-1"],
    );
    assert_eq!(code, 3, "{}", run.all());
    let https = subject(&report, HTTPS);
    assert_eq!(https["fail_open"], true);
    close(&region(https, "us-east-1")["during"], 1.0 / 3.0);
    close(&region(https, "eu-central-1")["during"], 1.0 / 3.0);
    close(&region(https, "ap-southeast-1")["during"], 1.0 / 3.0);
    close(&https["fail_open_share"], 1.0);
    assert_eq!(https["serving_regions_during"], 0);
    let fail_open: Vec<&Value> = report["fail_open"]
        .as_array()
        .expect("fail_open")
        .iter()
        .filter(|f| f["subject"] == HTTPS)
        .collect();
    assert_eq!(fail_open.len(), 3, "{report:#}");
    assert!(
        fail_open.iter().all(|f| f["message"]
            .as_str()
            .is_some_and(|m| m.contains("fails open") && m.contains("GA-4"))),
        "{fail_open:?}"
    );
    // accounts-eu still has eu-west-1: no fail-open there.
    assert_eq!(
        subject(&report, "GlobalAccelerator[accounts-eu].listener[https]")["fail_open"],
        false
    );
}

#[test]
fn a_dial_zero_standby_in_a_forbidden_region_is_a_residency_violation_along_the_failover_path() {
    // records: us-east-1 (dial 100), us-west-2 (dial 100), ca-central-1
    // (dial 0, standby). No clients declared: a third at each region.
    // Before: ca-central-1 keeps none of Montréal's clients and sends them to
    // the next closest group with a dial above 0, N. Virginia (about 790
    // km): us-east-1 = 2/3, us-west-2 = 1/3, 0 in Canada.
    // During (us-east-1 down): N. Virginia's three closest groups are
    // us-east-1, Montréal (about 790 km) and Oregon (about 3,500 km); the
    // closest serving one is Montréal, dial 0 ignored (GA-3). Montréal's
    // own clients still have N. Virginia as their original group (by dial);
    // it is down, so they fail over too, to their closest serving group,
    // Montréal itself — "The endpoint group chosen for failover might be
    // one that has a traffic dial set to zero". ca-central-1 = 2/3,
    // us-west-2 = 1/3.
    let dir = fixture("us-records-standby");
    let (code, report, run) = whatif_json(&dir, &["us-east-1"]);
    assert_eq!(code, 3, "{}", run.all());
    let https = subject(&report, "GlobalAccelerator[records].listener[https]");
    close(&region(https, "ca-central-1")["before"], 0.0);
    close(&region(https, "us-east-1")["before"], 2.0 / 3.0);
    close(&region(https, "us-west-2")["before"], 1.0 / 3.0);
    close(&region(https, "ca-central-1")["during"], 2.0 / 3.0);
    close(&region(https, "us-west-2")["during"], 1.0 / 3.0);
    let violations = report["residency_violations"]
        .as_array()
        .expect("violations");
    assert_eq!(violations.len(), 1, "{violations:?}");
    let v = &violations[0];
    assert_eq!(v["resource"], "GlobalAccelerator/records");
    assert_eq!(v["policy"], "DataResidencyPolicy/us-records");
    assert_eq!(v["region"], "ca-central-1");
    assert_eq!(v["classification"], "us-regulated");
    close(&v["share"], 2.0 / 3.0);
    assert_eq!(
        v["paths"],
        serde_json::json!([
            "us-east-1 down → clients at ca-central-1 fail over to ca-central-1 (closest serving endpoint group among their three closest; trafficDial 0 ignored)",
            "us-east-1 down → clients at us-east-1 fail over to ca-central-1 (closest serving endpoint group among their three closest; trafficDial 0 ignored)"
        ])
    );
    // The text output names resource, region, policy and path on one line.
    let text = meridian(
        &repo_root(),
        &["whatif", &dir, "--region-down", "us-east-1"],
    );
    assert_eq!(text.code, 3, "{}", text.all());
    assert!(
        text.stdout
            .lines()
            .any(|l| l.contains("residency: GlobalAccelerator/records")
                && l.contains("ca-central-1")
                && l.contains("us-east-1 down → clients at us-east-1 fail over to ca-central-1")
                && l.contains("DataResidencyPolicy/us-records forbids it")),
        "{}",
        text.stdout
    );
    // Plan time already refuses the dormant placement; whatif names the
    // outage that would wake it.
    let validate = meridian(&repo_root(), &["validate", &dir]);
    assert_eq!(validate.code, 0, "{}", validate.all());
    assert!(
        validate
            .stdout
            .contains("note: plan and apply would be blocked: GlobalAccelerator/records serves `us-regulated` data in ca-central-1"),
        "{}",
        validate.all()
    );
    // Losing us-west-2 instead sends nothing to Canada: Oregon's clients
    // fail over to the nearer serving group, us-east-1 (about 3,500 km)
    // rather than ca-central-1 (about 3,530 km), and Montréal's still go on
    // to N. Virginia by dial. Distance decides, not the dial: no violation,
    // exit 0.
    let (code, report, run) = whatif_json(&dir, &["us-west-2"]);
    assert_eq!(code, 0, "{}", run.all());
    assert_eq!(report["residency_violations"], serde_json::json!([]));
    let https = subject(&report, "GlobalAccelerator[records].listener[https]");
    close(&region(https, "us-east-1")["during"], 1.0);
    close(&region(https, "ca-central-1")["during"], 0.0);
}

#[test]
fn a_gcp_region_down_sends_its_clients_to_their_next_closest_region() {
    // app-backend: EXTERNAL_MANAGED without a policy: WATERFALL_BY_REGION
    // (GCP-1). No clients declared (a third at each backend region) and no
    // expectedRps, so no region is assumed full: each keeps its own
    // third, whatever the capacity scalers. With us-east1 down, South
    // Carolina's clients go to their next closest region with capacity:
    // St. Ghislain (about 6,800 km) before Singapore (about 16,200 km).
    let (code, report, run) = whatif_json("desired-state", &["us-east1"]);
    assert_eq!(code, 0, "{}", run.all());
    let backend = subject(&report, "BackendService[app-backend]");
    close(&region(backend, "europe-west1")["before"], 1.0 / 3.0);
    close(&region(backend, "europe-west1")["during"], 2.0 / 3.0);
    close(&region(backend, "asia-southeast1")["during"], 1.0 / 3.0);
    close(&region(backend, "us-east1")["during"], 0.0);
    // maxRatePerEndpoint without endpointCount: no capacity is claimed.
    assert!(region(backend, "asia-southeast1")["capacity_rps"].is_null());
    let failovers = backend["failovers"].as_array().expect("failovers");
    assert_eq!(failovers.len(), 1, "{failovers:?}");
    assert_eq!(failovers[0]["from"], "us-east1");
    assert_eq!(failovers[0]["to"], "europe-west1");
    close(&failovers[0]["share"], 1.0 / 3.0);
    let rules: Vec<&str> = backend["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert!(rules.iter().any(|r| r.starts_with("GCP-1")), "{rules:?}");
    assert!(rules.iter().any(|r| r.starts_with("A-4")), "{rules:?}");
    // The AWS side is untouched.
    close(
        &region(subject(&report, HTTPS), "us-east-1")["during"],
        1.0 / 3.0,
    );
}

#[test]
fn a_gcp_service_short_of_declared_capacity_is_reported() {
    // expectedRps 200 on app-backend and one endpoint per group: capacities
    // 100, 100 and 0.5 × 100 = 50 requests per second. Before, each region's
    // third (66.7 rps) fits at home. Without europe-west1, 150 < 200: its
    // clients go to us-east1 (about 6,800 km), which fills at 100; the rest
    // overflows to asia-southeast1, which fills at 50; the 50 above every
    // capacity spreads 2:1, so both run a third over: us-east1 133.3
    // rps against 100.
    let dir = tempfile::tempdir().expect("tempdir");
    let ds = copy_example(dir.path());
    let file = ds.join("gcp-load-balancing.yaml");
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(
        &file,
        text.replace(
            "  enableCDN: true\n",
            "  enableCDN: true\n  expectedRps: 200\n",
        )
        .replace(
            "      maxRatePerEndpoint: 100\n",
            "      maxRatePerEndpoint: 100\n      endpointCount: 1\n",
        ),
    )
    .expect("write");
    let run = meridian(
        dir.path(),
        &[
            "whatif",
            "--region-down",
            "europe-west1",
            "--format",
            "json",
        ],
    );
    assert_eq!(run.code, 2, "{}", run.all());
    let report: Value = serde_json::from_str(&run.stdout).expect("json");
    let shortfall = &report["capacity_shortfalls"][0];
    assert_eq!(shortfall["subject"], "BackendService[app-backend]");
    assert!(shortfall["region"].is_null());
    close(&shortfall["capacity_rps"], 150.0);
    close(&shortfall["load_rps"], 200.0);
    let backend = subject(&report, "BackendService[app-backend]");
    // us-east1 takes 100/150 of 200 = 133.3 rps against 100: headroom -33.3.
    close(
        &region(backend, "us-east1")["headroom_during_rps"],
        100.0 - 200.0 * 2.0 / 3.0,
    );
}

#[test]
fn live_health_from_the_simulated_cloud_is_the_starting_point() {
    // Applied example, then eu-central-1 marked unhealthy in the simulated
    // cloud. Before the outage (live health) Frankfurt's clients already
    // fail over to the closest serving group among their three closest,
    // us-east-1 (about 6,550 km; Singapore is about 10,260 km from
    // Frankfurt). The half of Singapore's third that its dial turns away
    // has Frankfurt as its original group (the next closest with a dial
    // above 0); Frankfurt does not serve, so it fails over among
    // Singapore's three closest, dials ignored: back to ap-southeast-1.
    // us-east-1 = 1/3 + 1/3 = 2/3, ap-southeast-1 = 1/3.
    // With us-east-1 down as well only ap-southeast-1 serves: 100%, and
    // `api` is below its 2 serving regions.
    let dir = tempfile::tempdir().expect("tempdir");
    copy_example(dir.path());
    let sim = dir.path().join("sim");
    assert_eq!(
        sim_run(
            dir.path(),
            &sim,
            &["sim", "faults", "--deploy-delay-ms", "50"]
        )
        .code,
        0
    );
    let apply = sim_run(dir.path(), &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let health = sim_run(
        dir.path(),
        &sim,
        &["sim", "set-health", "eu-central-1", "unhealthy"],
    );
    assert_eq!(health.code, 0, "{}", health.all());
    let run = sim_run(
        dir.path(),
        &sim,
        &["whatif", "--region-down", "us-east-1", "--format", "json"],
    );
    assert_eq!(run.code, 3, "{}", run.all());
    let report: Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(report["health"], "live");
    let https = subject(&report, HTTPS);
    close(&region(https, "us-east-1")["before"], 2.0 / 3.0);
    close(&region(https, "ap-southeast-1")["before"], 1.0 / 3.0);
    close(&region(https, "eu-central-1")["before"], 0.0);
    close(&region(https, "ap-southeast-1")["during"], 1.0);
    assert_eq!(https["serving_regions_before"], 2);
    assert_eq!(https["serving_regions_during"], 1);
    // Without --sim the same folder needs no cloud and assumes health.
    let offline = meridian(dir.path(), &["whatif", "--region-down", "us-east-1"]);
    assert_eq!(offline.code, 2, "{}", offline.all());
}

#[test]
fn an_unknown_or_unused_region_is_an_error_naming_what_is_allowed() {
    let run = meridian(&repo_root(), &["whatif", "--region-down", "us-east-9"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stdout.is_empty(), "{}", run.all());
    assert!(
        run.stderr.contains("unknown region `us-east-9`")
            && run.stderr.contains("us-east-1")
            && run.stderr.contains("europe-west1"),
        "{}",
        run.stderr
    );
    let run = meridian(&repo_root(), &["whatif", "--region-down", "us-west-1"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(
            "no endpoint group or backend of the desired state is in `us-west-1`"
        ) && run.stderr.contains(
            "regions in use: ap-southeast-1, asia-southeast1, eu-central-1, eu-west-1, europe-west1, us-east-1, us-east1"
        ),
        "{}",
        run.stderr
    );
    let run = meridian(&repo_root(), &["whatif"]);
    assert_eq!(run.code, 1, "--region-down is required: {}", run.all());
}

#[test]
fn declared_capacity_fields_are_validated_with_positions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ds = copy_example(dir.path());
    let ga = ds.join("global-accelerator.yaml");
    let original = std::fs::read_to_string(&ga).expect("read");
    std::fs::write(
        &ga,
        original.replace("expectedRps: 30000 ", "expectedRps: 0 "),
    )
    .expect("write");
    let gcp = ds.join("gcp-load-balancing.yaml");
    let text = std::fs::read_to_string(&gcp).expect("read");
    std::fs::write(
        &gcp,
        text.replace(
            "  enableCDN: true\n",
            "  enableCDN: true\n  expectedRps: 0\n",
        ),
    )
    .expect("write");
    let run = meridian(dir.path(), &["validate"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(
            "desired-state/global-accelerator.yaml:19:20: spec.listeners[0].expectedRps: must be above 0"
        ) && run
            .stderr
            .contains("desired-state/gcp-load-balancing.yaml:30:16: spec.expectedRps: must be above 0"),
        "{}",
        run.stderr
    );
    // A negative capacity is refused by the structural check.
    std::fs::write(
        &ga,
        original.replace("capacityRps: 12000", "capacityRps: -5"),
    )
    .expect("write");
    std::fs::write(&gcp, text).expect("write");
    let run = meridian(dir.path(), &["validate"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(
            "desired-state/global-accelerator.yaml:39:24: spec.listeners[0].endpointGroups[2].capacityRps: must be at least 0, got -5"
        ),
        "{}",
        run.stderr
    );
    // expectedRps on a service is compared with RATE capacity: a service
    // without RATE backends cannot declare it.
    let gcp_text = std::fs::read_to_string(&gcp).expect("read");
    std::fs::write(
        &gcp,
        gcp_text
            .replace(
                "  enableCDN: true\n",
                "  enableCDN: true\n  expectedRps: 100\n",
            )
            .replace(
                "balancingMode: RATE\n      maxRatePerEndpoint: 100",
                "balancingMode: UTILIZATION",
            ),
    )
    .expect("write");
    std::fs::write(&ga, &original).expect("write");
    let run = meridian(dir.path(), &["validate"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(
            "spec.expectedRps: is compared with the backends' capacity in requests per second"
        ),
        "{}",
        run.stderr
    );
}
