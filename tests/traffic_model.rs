//! The traffic model against the clouds' documented routing, end to end:
//! desired-state documents in, predictions out of the real binary (and of
//! the library where two states are compared). Every expected number is
//! worked out by hand in the comments; `docs/traffic-model.md` quotes the
//! rule behind each step.

mod common;

use std::path::Path;

use common::meridian;
use meridian::model::SourceFile;
use serde_json::Value;

const AWS_PROVIDER: &str = "apiVersion: meridian.dev/v1alpha1
kind: Provider
metadata: {name: aws-global}
spec: {type: aws}
";

const GCP_PROVIDER: &str = "apiVersion: meridian.dev/v1alpha1
kind: Provider
metadata: {name: gcp-prod}
spec: {type: gcp, project: acme-prod-314159}
---
apiVersion: meridian.dev/v1alpha1
kind: HealthCheck
metadata: {name: hc}
spec:
  provider: gcp-prod
  type: HTTP
  httpHealthCheck: {port: 80, requestPath: /health}
";

/// An endpoint group in `region` with one ALB endpoint.
fn group(region: &str, dial: u32) -> String {
    format!(
        "        - region: {region}
          trafficDial: {dial}
          endpoints:
            - id: arn:aws:elasticloadbalancing:{region}:111122223333:loadbalancer/app/shop-{region}/1a2b3c4d
"
    )
}

/// A one-listener accelerator named `name`.
fn accelerator(name: &str, extra: &str, groups: &[(&str, u32)]) -> String {
    let groups: String = groups.iter().map(|(r, d)| group(r, *d)).collect();
    format!(
        "apiVersion: meridian.dev/v1alpha1
kind: GlobalAccelerator
metadata:
  name: {name}
{extra}spec:
  provider: aws-global
  listeners:
    - name: https
      protocol: TCP
      portRanges: [{{from: 443, to: 443}}]
      endpointGroups:
{groups}"
    )
}

fn write(dir: &Path, docs: &[&str]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("state.yaml"), docs.join("---\n")).expect("write");
}

fn whatif(root: &Path, down: &[&str]) -> (i32, Value, common::Run) {
    let mut args = vec!["whatif", "ds", "--format", "json"];
    for region in down {
        args.extend(["--region-down", region]);
    }
    let run = meridian(root, &args);
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

#[track_caller]
fn share(subject: &Value, region: &str, column: &str) -> f64 {
    subject["regions"]
        .as_array()
        .expect("regions")
        .iter()
        .find(|r| r["region"] == region)
        .and_then(|r| r[column].as_f64())
        .unwrap_or_else(|| panic!("{region} {column}: {subject:#}"))
}

#[track_caller]
fn close(got: f64, expected: f64) {
    assert!(
        (got - expected).abs() < 1e-6,
        "expected {expected}, got {got}"
    );
}

#[test]
fn a_european_outage_beyond_the_three_closest_groups_fails_open() {
    // Clients: 30% Dublin, 20% London, 20% Frankfurt, 30% N. Virginia.
    // Groups in Ireland, London, Paris, Frankfurt and N. Virginia.
    //
    // Four European regions down: each European population's three closest
    // groups are European (Dublin: eu-west-1, London ≈ 460 km, Paris ≈ 780
    // km; London: eu-west-2, Paris ≈ 340 km, Dublin ≈ 460 km; Frankfurt:
    // eu-central-1, Paris ≈ 480 km, London ≈ 640 km) and none serves, so
    // Global Accelerator fails open to their closest group (GA-4) instead
    // of failing over to N. Virginia: 70% of new connections go to
    // endpoints that cannot serve them. N. Virginia keeps its own 30%.
    // Exit 2: a finding, not a policy violation (no policy asks for more
    // than one serving region).
    let dir = tempfile::tempdir().expect("tempdir");
    let shop = accelerator(
        "shop",
        "",
        &[
            ("eu-central-1", 100),
            ("eu-west-1", 100),
            ("eu-west-2", 100),
            ("eu-west-3", 100),
            ("us-east-1", 100),
        ],
    )
    .replace(
        "  provider: aws-global\n",
        "  provider: aws-global\n  clients: {eu-west-1: 30, eu-west-2: 20, eu-central-1: 20, us-east-1: 30}\n",
    )
    // N. Virginia has a second endpoint: weights 192 and 64 (GA-5).
    .replace(
        "loadbalancer/app/shop-us-east-1/1a2b3c4d\n",
        "loadbalancer/app/shop-us-east-1/1a2b3c4d\n              weight: 192\n            - id: arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/app/shop-us-east-1-b/5e6f7a8b\n              weight: 64\n",
    );
    write(&dir.path().join("ds"), &[AWS_PROVIDER, &shop]);
    let (code, report, run) = whatif(
        dir.path(),
        &["eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1"],
    );
    assert_eq!(code, 2, "{}", run.all());
    let https = subject(&report, "GlobalAccelerator[shop].listener[https]");
    close(https["fail_open_share"].as_f64().expect("share"), 0.7);
    close(share(https, "us-east-1", "during"), 0.3);
    close(share(https, "eu-west-1", "during"), 0.3);
    let fail_open: Vec<(&str, &str)> = report["fail_open"]
        .as_array()
        .expect("fail_open")
        .iter()
        .map(|f| {
            (
                f["clients"].as_str().unwrap_or_default(),
                f["region"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        fail_open,
        vec![
            ("eu-central-1", "eu-central-1"),
            ("eu-west-1", "eu-west-1"),
            ("eu-west-2", "eu-west-2"),
        ]
    );
    assert_eq!(https["serving_regions_during"], 1);
    // N. Virginia's 30% splits 192:64 between its endpoints: 22.5% / 7.5%.
    let endpoint = |suffix: &str| {
        https["endpoints"]
            .as_array()
            .expect("endpoints")
            .iter()
            .find(|e| e["id"].as_str().is_some_and(|id| id.ends_with(suffix)))
            .and_then(|e| e["share"].as_f64())
            .unwrap_or_else(|| panic!("{suffix}: {https:#}"))
    };
    close(endpoint("shop-us-east-1/1a2b3c4d"), 0.225);
    close(endpoint("shop-us-east-1-b/5e6f7a8b"), 0.075);
    let text = meridian(
        dir.path(),
        &[
            "whatif",
            "ds",
            "--region-down",
            "eu-west-1",
            "--region-down",
            "eu-west-2",
            "--region-down",
            "eu-west-3",
            "--region-down",
            "eu-central-1",
        ],
    );
    assert_eq!(text.code, 2, "{}", text.all());
    assert!(
        text.stdout.contains("3 client population(s) fail open")
            && text.stdout.contains("fail-open: GlobalAccelerator[shop].listener[https]: clients at eu-west-1 (30.0% of new traffic) have no serving endpoint group among their three closest"),
        "{}",
        text.stdout
    );

    // With Paris still up it is among every European population's three
    // closest: they all fail over to it (GA-3) and nothing fails open.
    let (code, report, run) = whatif(dir.path(), &["eu-west-1", "eu-west-2", "eu-central-1"]);
    assert_eq!(code, 0, "{}", run.all());
    assert_eq!(report["fail_open"], serde_json::json!([]));
    let https = subject(&report, "GlobalAccelerator[shop].listener[https]");
    close(share(https, "eu-west-3", "during"), 0.7);
    close(share(https, "us-east-1", "during"), 0.3);
}

/// A backend service with three RATE backends of `rates` (× scalers).
fn service(name: &str, extra: &str, rates: [(&str, u32, f64); 3]) -> String {
    let backends: String = rates
        .iter()
        .map(|(region, rate, scaler)| {
            format!(
                "    - group: regions/{region}/networkEndpointGroups/{name}-{region}
      balancingMode: RATE
      maxRate: {rate}
      capacityScaler: {scaler}
"
            )
        })
        .collect();
    format!(
        "apiVersion: meridian.dev/v1alpha1
kind: BackendService
metadata: {{name: {name}}}
spec:
  provider: gcp-prod
  protocol: HTTP
  healthChecks: [hc]
{extra}  backends:
{backends}"
    )
}

#[test]
fn gcp_services_fill_by_waterfall_overflow_to_the_next_closest_and_spray_by_capacity() {
    const REGIONS: [&str; 3] = ["asia-southeast1", "europe-west1", "us-east1"];
    let dir = tempfile::tempdir().expect("tempdir");
    // light: 300 rps, 1,000 / 1,000 / 1,000 × 0.5. Clients equal:
    // 100 rps per region, all under capacity: 1/3 each by waterfall
    // (GCP-1), not 40 / 40 / 20 by capacity.
    let light = service(
        "light",
        "  expectedRps: 300\n",
        [
            ("us-east1", 1000, 1.0),
            ("europe-west1", 1000, 1.0),
            ("asia-southeast1", 1000, 0.5),
        ],
    );
    // heavy: 3,000 rps, 1,000 per region. us-east1 holds 800 × 0.5 = 400;
    // the other 600 of South Carolina's clients overflow to the next closest
    // region with room, europe-west1 (≈ 6,800 km; Singapore ≈ 16,200 km):
    // us-east1 400, europe-west1 1,600, asia-southeast1 1,000.
    let heavy = service(
        "heavy",
        "  expectedRps: 3000\n",
        [
            ("us-east1", 800, 0.5),
            ("europe-west1", 5000, 1.0),
            ("asia-southeast1", 5000, 1.0),
        ],
    );
    // spray: SPRAY_TO_WORLD (GCP-3), light load: in proportion to capacity
    // wherever the clients are: 1,000 : 1,000 : 500 = 40% / 40% / 20%.
    let spray = service(
        "spray",
        "  expectedRps: 300\n  loadBalancingAlgorithm: SPRAY_TO_WORLD\n",
        [
            ("us-east1", 1000, 1.0),
            ("europe-west1", 1000, 1.0),
            ("asia-southeast1", 1000, 0.5),
        ],
    );
    // classic: the EXTERNAL scheme, same numbers as heavy (GCP-2).
    let classic = service(
        "classic",
        "  loadBalancingScheme: EXTERNAL\n  expectedRps: 3000\n",
        [
            ("us-east1", 800, 0.5),
            ("europe-west1", 5000, 1.0),
            ("asia-southeast1", 5000, 1.0),
        ],
    );
    write(
        &dir.path().join("ds"),
        &[GCP_PROVIDER, &light, &heavy, &spray, &classic],
    );
    // The outage of a fourth, unrelated region is not possible: take down
    // asia-southeast1 and read the "before" column.
    let (code, report, run) = whatif(dir.path(), &["asia-southeast1"]);
    assert!(code == 0 || code == 2, "{}", run.all());
    let light = subject(&report, "BackendService[light]");
    for region in REGIONS {
        close(share(light, region, "before"), 1.0 / 3.0);
    }
    let heavy = subject(&report, "BackendService[heavy]");
    close(share(heavy, "us-east1", "before"), 400.0 / 3000.0);
    close(share(heavy, "europe-west1", "before"), 1600.0 / 3000.0);
    close(share(heavy, "asia-southeast1", "before"), 1000.0 / 3000.0);
    let spray = subject(&report, "BackendService[spray]");
    close(share(spray, "us-east1", "before"), 0.4);
    close(share(spray, "europe-west1", "before"), 0.4);
    close(share(spray, "asia-southeast1", "before"), 0.2);
    let classic = subject(&report, "BackendService[classic]");
    for region in REGIONS {
        close(
            share(classic, region, "before"),
            share(heavy, region, "before"),
        );
    }
    let rules = |s: &Value| -> Vec<String> {
        s["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect()
    };
    assert!(rules(light).contains(&"GCP-1".to_owned()), "{light:#}");
    assert!(rules(spray).contains(&"GCP-3".to_owned()), "{spray:#}");
    assert!(rules(classic).contains(&"GCP-2".to_owned()), "{classic:#}");
    // During: heavy loses Singapore's 5,000. Its 1,000 rps of clients go to
    // their next closest region with room, europe-west1 (≈ 10,600 km from
    // Singapore; South Carolina ≈ 16,200 km): 2,600 there.
    close(share(heavy, "europe-west1", "during"), 2600.0 / 3000.0);
}

#[test]
fn a_dial_shift_inside_the_us_keeps_us_clients_in_the_us() {
    // Clients: 40% N. Virginia, 20% Oregon, 40% Frankfurt; the policy keeps
    // the traffic of clients in us-* in us-* or ca-*.
    let policy = "apiVersion: meridian.dev/v1alpha1
kind: DataResidencyPolicy
metadata: {name: us-clients}
spec:
  dataClassification: [us-customer-data]
  clientRegions: [\"us-*\"]
  allowedRegions: [\"us-*\", \"ca-*\"]
";
    let labels = "  labels: {meridian.dev/data-classification: us-customer-data}\n";
    let with_dials =
        |east: u32, west: u32| {
            accelerator(
            "api",
            labels,
            &[("eu-central-1", 100), ("us-east-1", east), ("us-west-2", west)],
        )
        .replace(
            "  provider: aws-global\n",
            "  provider: aws-global\n  clients: {us-east-1: 40, us-west-2: 20, eu-central-1: 40}\n",
        )
        };
    let dir = tempfile::tempdir().expect("tempdir");
    // us-east-1 at 50: half of N. Virginia's clients go on to the next
    // closest group with a dial above 0, Oregon (≈ 3,500 km; Frankfurt ≈
    // 6,550 km). The traffic stays in the US: no violation.
    write(
        &dir.path().join("ds"),
        &[AWS_PROVIDER, policy, &with_dials(50, 100)],
    );
    let run = meridian(dir.path(), &["validate", "ds"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(!run.stdout.contains("would be blocked"), "{}", run.all());
    // us-west-2 at 0 as well: N. Virginia's half has no US group with a
    // dial above 0 left to go to and lands in Frankfurt (20% of the
    // traffic). Oregon's own clients go on to N. Virginia, which takes them
    // (a dial applies only to the traffic directed to its group by
    // proximity): they stay in the US.
    write(
        &dir.path().join("ds"),
        &[AWS_PROVIDER, policy, &with_dials(50, 0)],
    );
    let run = meridian(dir.path(), &["validate", "ds"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains(
            "GlobalAccelerator/api listener `https` serves 20.0% of its new traffic — clients at us-east-1 — in eu-central-1"
        ) && !run.stdout.contains("clients at us-west-2"),
        "{}",
        run.all()
    );
}

fn state(docs: &[&str]) -> meridian::model::DesiredState {
    meridian::model::load(&[SourceFile {
        path: "state.yaml".to_owned(),
        text: docs.join("---\n"),
    }])
    .unwrap_or_else(|e| panic!("loads: {e}"))
}

fn world(
    state: &meridian::model::DesiredState,
) -> std::collections::BTreeMap<meridian_provider::Address, meridian::traffic::TrafficInput> {
    meridian::desired::expand(state)
        .into_iter()
        .map(|(address, d)| {
            (
                address,
                meridian::traffic::TrafficInput {
                    resource: d.resource,
                    health: None,
                },
            )
        })
        .collect()
}

fn impact_of(before: &str, after: &str) -> Vec<(String, Option<f64>, Option<f64>)> {
    let (before, after) = (
        state(&[AWS_PROVIDER, before]),
        state(&[AWS_PROVIDER, after]),
    );
    let impacts = meridian::traffic::compare(
        &world(&before),
        &world(&after),
        &meridian::traffic::declarations(&after),
    );
    impacts[0]
        .regions
        .iter()
        .map(|r| (r.region.clone(), r.before, r.after))
        .collect()
}

#[test]
fn adding_a_region_moves_only_the_clients_nearer_to_it() {
    // Declared clients: 40% N. Virginia, 35% Frankfurt, 25% Singapore.
    // Before, groups in us-east-1 and eu-central-1: Singapore's clients are
    // served in Frankfurt (≈ 10,300 km; N. Virginia ≈ 15,500 km), so 40% /
    // 60%. Adding ap-southeast-1 moves exactly those 25% and nothing else:
    // 40% / 35% / 25%.
    let clients = "  provider: aws-global\n  clients: {us-east-1: 40, eu-central-1: 35, ap-southeast-1: 25}\n";
    let two = accelerator("api", "", &[("eu-central-1", 100), ("us-east-1", 100)])
        .replace("  provider: aws-global\n", clients);
    let three = accelerator(
        "api",
        "",
        &[
            ("ap-southeast-1", 100),
            ("eu-central-1", 100),
            ("us-east-1", 100),
        ],
    )
    .replace("  provider: aws-global\n", clients);
    let regions = impact_of(&two, &three);
    let get = |name: &str| {
        regions
            .iter()
            .find(|(r, _, _)| r == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name}: {regions:?}"))
    };
    let (_, us_before, us_after) = get("us-east-1");
    close(us_before.expect("before"), 0.40);
    close(us_after.expect("after"), 0.40);
    let (_, eu_before, eu_after) = get("eu-central-1");
    close(eu_before.expect("before"), 0.60);
    close(eu_after.expect("after"), 0.35);
    close(get("ap-southeast-1").2.expect("after"), 0.25);

    // Without declared clients the default places them equally at every
    // region either version uses — the same clients before and after — so
    // adding Singapore still moves only Singapore's third (from Frankfurt).
    let two = accelerator("api", "", &[("eu-central-1", 100), ("us-east-1", 100)]);
    let three = accelerator(
        "api",
        "",
        &[
            ("ap-southeast-1", 100),
            ("eu-central-1", 100),
            ("us-east-1", 100),
        ],
    );
    let regions = impact_of(&two, &three);
    let us = regions
        .iter()
        .find(|(r, _, _)| r == "us-east-1")
        .expect("us");
    close(us.1.expect("before"), 1.0 / 3.0);
    close(us.2.expect("after"), 1.0 / 3.0);
    let eu = regions
        .iter()
        .find(|(r, _, _)| r == "eu-central-1")
        .expect("eu");
    close(eu.1.expect("before"), 2.0 / 3.0);
    close(eu.2.expect("after"), 1.0 / 3.0);
}

#[test]
fn a_listeners_own_clients_override_the_accelerators_and_a_shared_population() {
    // Accelerator clients all in N. Virginia; the listener's own all in
    // Frankfurt: its traffic is served in Frankfurt.
    let base = accelerator("api", "", &[("eu-central-1", 100), ("us-east-1", 100)])
        .replace(
            "  provider: aws-global\n",
            "  provider: aws-global\n  clients: {us-east-1: 1}\n",
        )
        .replace(
            "      portRanges: [{from: 443, to: 443}]\n",
            "      portRanges: [{from: 443, to: 443}]\n      clients: {eu-central-1: 1}\n",
        );
    let regions = impact_of(&base, &base);
    let eu = regions
        .iter()
        .find(|(r, _, _)| r == "eu-central-1")
        .expect("eu");
    close(eu.2.expect("after"), 1.0);

    // A shared ClientPopulation selects the accelerator by label when it
    // declares none itself: clients 75% Frankfurt, 25% N. Virginia. The
    // first population in name order that selects it wins.
    let population = |name: &str, clients: &str| {
        format!(
            "apiVersion: meridian.dev/v1alpha1
kind: ClientPopulation
metadata: {{name: {name}}}
spec:
  selector: {{kind: GlobalAccelerator, matchLabels: {{team: web}}}}
  clients: {clients}
"
        )
    };
    let plain = accelerator(
        "web",
        "  labels: {team: web}\n",
        &[("eu-central-1", 100), ("us-east-1", 100)],
    );
    let shared = state(&[
        AWS_PROVIDER,
        &plain,
        &population("b-later", "{us-east-1: 1}"),
        &population("a-first", "{eu-central-1: 75, us-east-1: 25}"),
    ]);
    let impacts = meridian::traffic::compare(
        &world(&shared),
        &world(&shared),
        &meridian::traffic::declarations(&shared),
    );
    let eu = impacts[0]
        .regions
        .iter()
        .find(|r| r.region == "eu-central-1")
        .and_then(|r| r.after)
        .expect("eu");
    close(eu, 0.75);
    assert!(
        impacts[0]
            .clients
            .starts_with("clients declared at ClientPopulation/a-first spec.clients"),
        "{}",
        impacts[0].clients
    );
}

#[test]
fn model_declarations_are_validated_with_positions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ga = accelerator("api", "", &[("us-east-1", 100)]).replace(
        "  provider: aws-global\n",
        "  provider: aws-global\n  clients: {us-east-1: 0, moon-base-1: 10}\n",
    );
    let bs = service(
        "web",
        "  loadBalancingScheme: EXTERNAL\n  loadBalancingAlgorithm: SPRAY_TO_WORLD\n",
        [
            ("us-east1", 100, 1.0),
            ("europe-west1", 100, 1.0),
            ("asia-southeast1", 100, 1.0),
        ],
    )
    .replacen(
        "      maxRate: 100\n",
        "      maxRate: 100\n      endpointCount: 4\n      capacityRps: 300\n",
        1,
    );
    let population = "apiVersion: meridian.dev/v1alpha1
kind: ClientPopulation
metadata: {name: everyone}
spec:
  selector: {names: [nope]}
  clients: {atlantis-1: 1}
";
    write(
        &dir.path().join("ds"),
        &[AWS_PROVIDER, GCP_PROVIDER, &ga, &bs, population],
    );
    let run = meridian(dir.path(), &["validate", "ds"]);
    assert_eq!(run.code, 1, "{}", run.all());
    for expected in [
        "spec.selector.names[0]: no GlobalAccelerator or BackendService document named `nope`",
        "spec.clients.atlantis-1: unknown client location `atlantis-1`",
        "ds/state.yaml:25:24: spec.clients.us-east-1: must be above 0",
        "ds/state.yaml:25:40: spec.clients.moon-base-1: unknown client location `moon-base-1`",
        "spec.loadBalancingAlgorithm: `SPRAY_TO_WORLD` is the algorithm of a service load-balancing policy, which only `loadBalancingScheme: EXTERNAL_MANAGED` services have",
        "spec.backends[0].endpointCount: counts the endpoints that `maxRatePerEndpoint` applies to",
        "spec.backends[0].capacityRps: a RATE backend's capacity is its `maxRate`",
    ] {
        assert!(run.stderr.contains(expected), "{expected}\n{}", run.stderr);
    }
}

#[test]
fn a_drain_that_leaves_a_gcp_service_short_of_its_expected_load_is_reported() {
    // Three regions of 1,200 requests per second each, 3,000 expected.
    // Draining us-east1 leaves 2,400: both other regions run a quarter
    // over their targets. The drain is allowed (two regions still serve),
    // with a warning.
    let dir = tempfile::tempdir().expect("tempdir");
    let web = service(
        "web",
        "  expectedRps: 3000\n",
        [
            ("us-east1", 1200, 1.0),
            ("europe-west1", 1200, 1.0),
            ("asia-southeast1", 1200, 1.0),
        ],
    );
    write(&dir.path().join("ds"), &[GCP_PROVIDER, &web]);
    let run = meridian(dir.path(), &["failover", "--from", "us-east1", "ds"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains(
            "warning: BackendService[web]: the remaining backends' capacity (capacity scaler × target capacity) would be 2400 requests per second after the drain, below its expectedRps 3000"
        ),
        "{}",
        run.stderr
    );
    // The unplanned outage of the same region is the same shortfall, as a
    // whatif finding (exit 2).
    let (code, report, run) = whatif(dir.path(), &["us-east1"]);
    assert_eq!(code, 2, "{}", run.all());
    assert_eq!(
        report["capacity_shortfalls"][0]["subject"],
        "BackendService[web]"
    );
}

#[test]
fn an_expected_load_needs_a_capacity_it_can_be_compared_with() {
    // maxRatePerEndpoint without endpointCount has no capacity in requests
    // per second: expectedRps would compare with nothing.
    let dir = tempfile::tempdir().expect("tempdir");
    let web = service(
        "web",
        "  expectedRps: 300\n",
        [
            ("us-east1", 100, 1.0),
            ("europe-west1", 100, 1.0),
            ("asia-southeast1", 100, 1.0),
        ],
    )
    .replace("      maxRate: 100\n", "      maxRatePerEndpoint: 100\n");
    write(&dir.path().join("ds"), &[GCP_PROVIDER, &web]);
    let run = meridian(dir.path(), &["validate", "ds"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(
            "spec.expectedRps: is compared with the backends' capacity in requests per second"
        ),
        "{}",
        run.stderr
    );
    // With the endpoint counts declared, it validates.
    let counted = web.replace(
        "      maxRatePerEndpoint: 100\n",
        "      maxRatePerEndpoint: 100\n      endpointCount: 3\n",
    );
    write(&dir.path().join("ds"), &[GCP_PROVIDER, &counted]);
    let run = meridian(dir.path(), &["validate", "ds"]);
    assert_eq!(run.code, 0, "{}", run.all());
}
