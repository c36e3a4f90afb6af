//! meridian writes in the clouds' own units: one call per API object where
//! the API takes the object whole (endpoints inline in `CreateEndpointGroup`,
//! up to ten endpoints per `AddEndpoints`, all of a backend service's
//! backend changes in one patch), counted by the simulator's call counters.

mod common;

use std::path::Path;

use common::{call_totals, sim_run, world};

/// Calls of one operation that the simulator answered (ok or failed).
fn calls(sim: &Path, operation: &str) -> u64 {
    let world = world(sim);
    let c = &world["calls"][operation];
    c["ok"].as_u64().unwrap_or(0) + c["failed"].as_u64().unwrap_or(0)
}

/// A plan's stated writes of one operation (`writes: [{operation, count}]`).
fn planned(plan: &serde_json::Value, operation: &str) -> u64 {
    plan["writes"]
        .as_array()
        .expect("writes")
        .iter()
        .filter(|w| w["operation"] == operation)
        .map(|w| w["count"].as_u64().expect("count"))
        .sum()
}

fn planned_total(plan: &serde_json::Value) -> u64 {
    plan["writes"]
        .as_array()
        .expect("writes")
        .iter()
        .map(|w| w["count"].as_u64().expect("count"))
        .sum()
}

fn failed(sim: &Path, operation: &str) -> u64 {
    world(sim)["calls"][operation]["failed"]
        .as_u64()
        .unwrap_or(0)
}

fn nlb(region: &str, name: &str) -> String {
    format!(
        "            - id: arn:aws:elasticloadbalancing:{region}:111122223333:loadbalancer/net/{name}/0a1b2c3d\n              weight: 100\n"
    )
}

fn group(region: &str, endpoints: &[String]) -> String {
    format!(
        "        - region: {region}\n          trafficDial: 100\n          endpoints:\n{}",
        endpoints.concat()
    )
}

fn accelerator(name: &str, groups: &[String]) -> String {
    format!(
        "apiVersion: meridian.dev/v1alpha1\nkind: GlobalAccelerator\nmetadata: {{name: {name}}}\nspec:\n  provider: aws-main\n  tags: {{team: web}}\n  listeners:\n    - name: https\n      protocol: TCP\n      portRanges: [{{from: 443, to: 443}}]\n      endpointGroups:\n{}",
        groups.concat()
    )
}

const AWS_PROVIDER: &str = "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {name: aws-main}\nspec:\n  type: aws\n  quotas: {endpointsPerGroup: 20}\n---\n";

/// A simulated cloud with fast deploys and the account's API rate limits
/// lifted: these tests count calls, not seconds (the limits have their own
/// test below).
fn sim_with_fast_deploys(root: &Path) -> std::path::PathBuf {
    let sim = root.join("sim");
    let faults = sim_run(root, &sim, &["sim", "faults", "--deploy-delay-ms", "20"]);
    assert_eq!(faults.code, 0, "{}", faults.all());
    let limits = sim_run(root, &sim, &["sim", "limits", "--off"]);
    assert_eq!(limits.code, 0, "{}", limits.all());
    sim
}

#[test]
fn a_new_group_carries_its_endpoints_and_twelve_new_endpoints_take_two_calls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let sim = sim_with_fast_deploys(root);
    let folder = root.join("desired-state");
    std::fs::create_dir_all(&folder).expect("mkdir");
    let write = |groups: &[String]| {
        std::fs::write(
            folder.join("web.yaml"),
            format!("{AWS_PROVIDER}{}", accelerator("web", groups)),
        )
        .expect("write");
    };
    let us = vec![nlb("us-east-1", "web-us-0")];
    write(&[group("us-east-1", &us)]);
    let first = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(first.code, 0, "{}", first.all());

    // A new endpoint group with 4 endpoints in the live listener: one
    // CreateEndpointGroup carrying them, no AddEndpoints.
    let eu: Vec<String> = (0..4)
        .map(|i| nlb("eu-west-1", &format!("web-eu-{i}")))
        .collect();
    write(&[group("us-east-1", &us), group("eu-west-1", &eu)]);
    let plan = sim_run(root, &sim, &["plan", "--format", "json"]);
    let plan_json: serde_json::Value = serde_json::from_str(&plan.stdout).expect("plan json");
    assert_eq!(
        planned(&plan_json, "CreateEndpointGroup"),
        1,
        "{}",
        plan.stdout
    );
    assert_eq!(planned(&plan_json, "AddEndpoints"), 0, "{}", plan.stdout);
    let (creates, adds) = (
        calls(&sim, "CreateEndpointGroup"),
        calls(&sim, "AddEndpoints"),
    );
    let apply = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(calls(&sim, "CreateEndpointGroup") - creates, 1);
    assert_eq!(calls(&sim, "AddEndpoints") - adds, 0);
    let live = world(&sim);
    let eu_group = live["endpoint_groups"]
        .as_object()
        .expect("groups")
        .values()
        .find(|g| g["spec"]["region"] == "eu-west-1")
        .expect("the new group");
    assert_eq!(eu_group["endpoints"].as_array().map(Vec::len), Some(4));
    assert_eq!(eu_group["spec"]["trafficDial"], 100, "raised once created");

    // Twelve new endpoints in the existing us-east-1 group (the account's
    // quota raised to 20, in the simulator and in the provider document):
    // two AddEndpoints of at most ten, no UpdateEndpointGroup.
    let quotas = sim_run(
        root,
        &sim,
        &["sim", "quotas", "--endpoints-per-group", "20"],
    );
    assert_eq!(quotas.code, 0, "{}", quotas.all());
    let more: Vec<String> = us
        .iter()
        .cloned()
        .chain((1..=12).map(|i| nlb("us-east-1", &format!("web-us-{i}"))))
        .collect();
    write(&[group("us-east-1", &more), group("eu-west-1", &eu)]);
    let (adds, updates) = (
        calls(&sim, "AddEndpoints"),
        calls(&sim, "UpdateEndpointGroup"),
    );
    let apply = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert!(
        apply.stdout.contains("writes made: 2 AddEndpoints"),
        "apply reports the writes it made:\n{}",
        apply.stdout
    );
    assert_eq!(calls(&sim, "AddEndpoints") - adds, 2);
    assert_eq!(calls(&sim, "UpdateEndpointGroup") - updates, 0);
    let replan = sim_run(root, &sim, &["plan", "--detailed-exitcode"]);
    assert_eq!(replan.code, 0, "{}", replan.all());
}

#[test]
fn an_endpoint_group_over_the_providers_quota_is_refused_before_any_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let folder = root.join("desired-state");
    std::fs::create_dir_all(&folder).expect("mkdir");
    let nlbs: Vec<String> = (0..12)
        .map(|i| nlb("us-east-1", &format!("n-{i}")))
        .collect();
    let albs: Vec<String> = (0..11)
        .map(|i| {
            format!("            - id: arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/a-{i}/0a1b2c3d\n")
        })
        .collect();
    let text = accelerator(
        "web",
        &[group("us-east-1", &nlbs), group("eu-west-1", &albs)],
    );
    // Default quota: 12 NLBs are too many; a raised quota takes them, but
    // never 11 ALBs (not adjustable).
    let plain = "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {name: aws-main}\nspec:\n  type: aws\n---\n";
    std::fs::write(folder.join("web.yaml"), format!("{plain}{text}")).expect("write");
    let run = common::meridian(root, &["validate"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("12 endpoints; provider `aws-main` allows 10 per endpoint group")
            && run.stderr.contains("quotas.endpointsPerGroup"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "11 endpoints; an endpoint group of Application Load Balancers has at most 10"
        ),
        "{}",
        run.stderr
    );
    std::fs::write(folder.join("web.yaml"), format!("{AWS_PROVIDER}{text}")).expect("write");
    let run = common::meridian(root, &["validate"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(!run.stderr.contains("12 endpoints"), "{}", run.stderr);
    assert!(run.stderr.contains("11 endpoints"), "{}", run.stderr);
}

#[test]
fn six_capacity_scaler_changes_on_one_backend_service_are_one_patch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let sim = sim_with_fast_deploys(root);
    let folder = root.join("desired-state");
    std::fs::create_dir_all(&folder).expect("mkdir");
    let regions = [
        "us-east1",
        "us-west1",
        "europe-west1",
        "europe-west4",
        "asia-southeast1",
        "asia-northeast1",
    ];
    let write = |scaler: &str| {
        let mut text = String::from(
            "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {name: gcp-prod}\nspec:\n  type: gcp\n  project: unit-of-work\n---\napiVersion: meridian.dev/v1alpha1\nkind: HealthCheck\nmetadata: {name: hc}\nspec:\n  provider: gcp-prod\n  type: TCP\n  tcpHealthCheck: {port: 443}\n---\napiVersion: meridian.dev/v1alpha1\nkind: BackendService\nmetadata: {name: app}\nspec:\n  provider: gcp-prod\n  protocol: HTTPS\n  loadBalancingScheme: EXTERNAL_MANAGED\n  healthChecks: [hc]\n  backends:\n",
        );
        for region in regions {
            text.push_str(&format!(
                "    - group: regions/{region}/networkEndpointGroups/app-{region}\n      balancingMode: RATE\n      maxRatePerEndpoint: 100\n      capacityScaler: {scaler}\n"
            ));
        }
        std::fs::write(folder.join("app.yaml"), text).expect("write");
    };
    write("1.0");
    let first = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(first.code, 0, "{}", first.all());
    assert_eq!(calls(&sim, "backendServices.insert"), 1, "backends inline");

    write("0.5");
    let plan = sim_run(root, &sim, &["plan", "--format", "json"]);
    let plan_json: serde_json::Value = serde_json::from_str(&plan.stdout).expect("plan json");
    assert_eq!(plan_json["summary"]["update"], 6, "{}", plan.stdout);
    assert_eq!(
        planned(&plan_json, "backendServices.patch"),
        1,
        "{}",
        plan.stdout
    );
    let patches = calls(&sim, "backendServices.patch");
    let (_, writes) = call_totals(&sim);
    let apply = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(calls(&sim, "backendServices.patch") - patches, 1);
    assert_eq!(failed(&sim, "backendServices.patch"), 0, "no conflict");
    assert_eq!(call_totals(&sim).1 - writes, 1, "one write in all");
    let live = world(&sim);
    let service = live["backend_services"]
        .as_object()
        .expect("services")
        .values()
        .next()
        .expect("app");
    let scalers: Vec<f64> = service["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .map(|b| b["capacityScaler"].as_f64().expect("scaler"))
        .collect();
    assert_eq!(scalers, vec![0.5; 6]);
}

#[test]
fn a_fleet_of_fifty_accelerators_is_created_with_one_call_per_api_object() {
    // 50 accelerators × 2 listeners × 3 endpoint groups × 4 endpoints:
    // 1,650 objects; 50 + 100 + 300 = 450 API objects to create.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let sim = sim_with_fast_deploys(root);
    // The default quota is 20 accelerators; a raised quota lets 50 in.
    let quotas = sim_run(root, &sim, &["sim", "quotas", "--accelerators", "600"]);
    assert_eq!(quotas.code, 0, "{}", quotas.all());
    assert!(
        quotas.stdout.contains("600 accelerators"),
        "{}",
        quotas.all()
    );
    let folder = root.join("desired-state");
    std::fs::create_dir_all(&folder).expect("mkdir");
    let mut docs = vec!["apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {name: aws-main}\nspec:\n  type: aws\n".to_owned()];
    for a in 0..50 {
        let mut doc = format!(
            "apiVersion: meridian.dev/v1alpha1\nkind: GlobalAccelerator\nmetadata: {{name: svc-{a:02}}}\nspec:\n  provider: aws-main\n  tags: {{team: t{}}}\n  listeners:\n",
            a % 5
        );
        for (name, port) in [("https", 443), ("grpc", 8443)] {
            doc.push_str(&format!(
                "    - name: {name}\n      protocol: TCP\n      portRanges: [{{from: {port}, to: {port}}}]\n      endpointGroups:\n"
            ));
            for region in ["us-east-1", "eu-west-1", "ap-southeast-1"] {
                let endpoints: Vec<String> = (0..4)
                    .map(|e| nlb(region, &format!("s{a:02}-{name}-{e}")))
                    .collect();
                doc.push_str(&group(region, &endpoints));
            }
        }
        docs.push(doc);
    }
    std::fs::write(folder.join("fleet.yaml"), docs.join("---\n")).expect("write");
    let plan = sim_run(root, &sim, &["plan", "--format", "json"]);
    let plan_json: serde_json::Value = serde_json::from_str(&plan.stdout).expect("plan json");
    assert_eq!(plan_json["summary"]["create"], 1650);
    let apply = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let (_, writes) = call_totals(&sim);
    assert!(writes <= 450, "{writes} writes for 450 API objects");
    assert_eq!(calls(&sim, "CreateAccelerator"), 50);
    assert_eq!(calls(&sim, "CreateListener"), 100);
    assert_eq!(calls(&sim, "CreateEndpointGroup"), 300);
    assert_eq!(calls(&sim, "AddEndpoints"), 0);
    assert_eq!(calls(&sim, "TagResource"), 0, "tags inline");
    assert_eq!(
        planned_total(&plan_json),
        writes,
        "the plan stated the writes made"
    );
    let replan = sim_run(root, &sim, &["plan", "--detailed-exitcode"]);
    assert_eq!(replan.code, 0, "{}", replan.all());
}

/// The largest number of writes the simulator recorded in any one-second
/// window.
fn busiest_second(sim: &Path) -> usize {
    let world = world(sim);
    let mut at: Vec<u64> = world["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["at_ms"].as_u64().expect("at_ms"))
        .collect();
    at.sort_unstable();
    let mut busiest = 0;
    let mut start = 0;
    for end in 0..at.len() {
        while at[end] - at[start] >= 1_000 {
            start += 1;
        }
        busiest = busiest.max(end - start + 1);
    }
    busiest
}

#[test]
fn a_rate_limit_keeps_every_second_of_an_apply_within_its_bucket() {
    // Eight accelerators, each with one listener and three endpoint
    // groups: 40 writes, as fast as meridian may make them.
    let fleet = |rate: &str| {
        let mut docs = vec![format!(
            "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {{name: aws-main}}\nspec:\n  type: aws\n  maxConcurrency: 8\n{rate}"
        )];
        for a in 0..8 {
            let groups: Vec<String> = ["us-east-1", "eu-west-1", "ap-southeast-1"]
                .iter()
                .map(|r| group(r, &[nlb(r, &format!("rl-{a}"))]))
                .collect();
            docs.push(accelerator(&format!("rl-{a}"), &groups));
        }
        docs.join("---\n")
    };
    let run = |rate: &str| {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let sim = sim_with_fast_deploys(root);
        let folder = root.join("desired-state");
        std::fs::create_dir_all(&folder).expect("mkdir");
        std::fs::write(folder.join("fleet.yaml"), fleet(rate)).expect("write");
        let apply = sim_run(root, &sim, &["apply", "--yes"]);
        assert_eq!(apply.code, 0, "{}", apply.all());
        let (_, writes) = call_totals(&sim);
        assert_eq!(writes, 40);
        (busiest_second(&sim), dir)
    };
    let (unlimited, _a) = run("");
    assert!(
        unlimited > 10,
        "without a limit the writes come faster than the bucket allows ({unlimited} in one second), so the check below means something"
    );
    let (limited, _b) = run("  rateLimit: {requestsPerSecond: 5, burst: 5}\n");
    assert!(
        limited <= 10,
        "{limited} writes in one second under rateLimit 5/s, burst 5"
    );
}

#[test]
fn an_apply_under_ec2s_mutating_bucket_takes_its_refill_time_and_fails_nothing() {
    // Twenty accelerators of one listener and three endpoint groups: 100
    // writes. With the Global Accelerator family set to EC2's mutating
    // bucket (50 burst, 5 per second), n admitted calls over T seconds take
    // at most 50 + 5·T tokens, so the 100 writes alone span at least
    // (100 − 50) / 5 = 10 s (reads draw on the same bucket and only make it
    // longer). meridian's backoff must absorb every throttle: no failed
    // write, every object created.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let sim = sim_with_fast_deploys(root);
    let limits = sim_run(
        root,
        &sim,
        &["sim", "limits", "--set", "globalaccelerator=50/5"],
    );
    assert_eq!(limits.code, 0, "{}", limits.all());
    assert!(
        limits
            .stdout
            .contains("globalaccelerator        50 burst / 5 per second"),
        "{}",
        limits.stdout
    );
    let folder = root.join("desired-state");
    std::fs::create_dir_all(&folder).expect("mkdir");
    let mut docs = vec![
        "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {name: aws-main}\nspec:\n  type: aws\n"
            .to_owned(),
    ];
    for a in 0..20 {
        let groups: Vec<String> = ["us-east-1", "eu-west-1", "ap-southeast-1"]
            .iter()
            .map(|r| group(r, &[nlb(r, &format!("lim-{a}"))]))
            .collect();
        docs.push(accelerator(&format!("lim-{a:02}"), &groups));
    }
    std::fs::write(folder.join("fleet.yaml"), docs.join("---\n")).expect("write");
    let apply = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let world = world(&sim);
    let mut at: Vec<u64> = world["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["at_ms"].as_u64().expect("at_ms"))
        .collect();
    at.sort_unstable();
    assert_eq!(at.len(), 100, "one write per API object");
    let span_ms = at[99] - at[0];
    assert!(
        span_ms >= 10_000,
        "100 writes under a 50/5 bucket took only {span_ms} ms"
    );
    let throttled: u64 = world["calls"]
        .as_object()
        .expect("calls")
        .values()
        .map(|c| c["throttled"].as_u64().unwrap_or(0))
        .sum();
    assert!(throttled > 0, "the bucket was reached");
    for operation in ["CreateAccelerator", "CreateListener", "CreateEndpointGroup"] {
        assert_eq!(failed(&sim, operation), 0, "{operation}");
    }
    assert_eq!(calls(&sim, "CreateAccelerator"), 20);
    assert_eq!(calls(&sim, "CreateEndpointGroup"), 60);
    let replan = sim_run(root, &sim, &["plan", "--detailed-exitcode"]);
    assert_eq!(replan.code, 0, "{}", replan.all());
    // --off lifts every limit; --default restores the documented ones.
    let off = sim_run(root, &sim, &["sim", "limits", "--off"]);
    assert!(off.stdout.starts_with("limits: off"), "{}", off.all());
    let default = sim_run(root, &sim, &["sim", "limits", "--default"]);
    assert!(
        default
            .stdout
            .contains("globalaccelerator        100 burst / 20 per second")
            && !default.stdout.contains("[changed"),
        "{}",
        default.all()
    );
}
