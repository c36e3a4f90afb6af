//! plan / apply / drift against the embedded simulated cloud, through the
//! real binary, with the simulator's own counters and state as the judge.

mod common;

use common::{call_totals, copy_example, normalized, sim_run, world};

/// Reads per observation of the example fleet, by the aws and gcp providers
/// over the sandbox: ListAccelerators (1), ListTagsForResource per
/// accelerator (2: ownership and listener names live in tags),
/// ListListeners per accelerator (2), ListEndpointGroups per listener (3);
/// one list each of health checks, backend services and URL maps (3);
/// DescribeRegions (1), then in each of the 17 Regions a new account has
/// enabled, DescribeTransitGateways and
/// DescribeTransitGatewayPeeringAttachments (34: meridian's gateways in a
/// Region desired state no longer names must be found to be removed), and
/// SearchTransitGatewayRoutes per owned gateway (3).
const EXAMPLE_OBSERVE_READS: u64 = 1 + 2 + 2 + 3 + 3 + 1 + 2 * 17 + 3;

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_example(dir.path());
    let sim = dir.path().join("sim");
    (dir, sim)
}

fn fast(dir: &std::path::Path, sim: &std::path::Path) {
    let run = sim_run(dir, sim, &["sim", "faults", "--deploy-delay-ms", "50"]);
    assert_eq!(run.code, 0, "{}", run.all());
}

#[test]
fn fresh_world_plan_apply_replan_with_zero_writes() {
    let (dir, sim) = setup();
    let dir = dir.path();
    fast(dir, &sim);
    let plan = sim_run(dir, &sim, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(
        plan.stdout
            .contains("Plan: 40 to create, 0 to update, 0 to delete."),
        "{}",
        plan.all()
    );

    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert!(
        apply.stdout.contains("Applied 40 of 40 change(s)"),
        "{}",
        apply.all()
    );

    let (reads_before, writes_before) = call_totals(&sim);
    let replan = sim_run(dir, &sim, &["plan", "--detailed-exitcode"]);
    assert_eq!(replan.code, 0, "{}", replan.all());
    assert!(replan.stdout.contains("No changes."), "{}", replan.all());
    let (reads_after, writes_after) = call_totals(&sim);
    assert_eq!(
        writes_after, writes_before,
        "an unchanged world takes no write calls"
    );
    assert_eq!(
        reads_after - reads_before,
        EXAMPLE_OBSERVE_READS,
        "observation uses the minimum of list calls"
    );

    let second_apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(second_apply.code, 0, "{}", second_apply.all());
    assert!(
        second_apply.stdout.contains("No changes."),
        "{}",
        second_apply.all()
    );
    assert_eq!(
        call_totals(&sim).1,
        writes_before,
        "a second apply writes nothing"
    );

    let world = world(&sim);
    assert_eq!(world["accelerators"].as_object().map(|m| m.len()), Some(2));
    assert_eq!(
        world["endpoint_groups"].as_object().map(|m| m.len()),
        Some(8)
    );
    assert_eq!(world["peerings"].as_object().map(|m| m.len()), Some(3));
    assert_eq!(world["routes"].as_object().map(|m| m.len()), Some(6));
    let canary = world["endpoint_groups"]
        .as_object()
        .expect("groups")
        .values()
        .flat_map(|g| g["endpoints"].as_array().expect("endpoints").clone())
        .find(|e| {
            e["spec"]["id"]
                .as_str()
                .is_some_and(|id| id.ends_with("grpc-us-canary/a1b2c3d4"))
        })
        .expect("the canary endpoint exists");
    assert_eq!(canary["spec"]["weight"], 0, "weight 0 is a real value");
}

#[test]
fn out_of_band_dial_is_drift_and_apply_restores_it() {
    let (dir, sim) = setup();
    let dir = dir.path();
    fast(dir, &sim);
    assert_eq!(sim_run(dir, &sim, &["apply", "--yes"]).code, 0);
    assert_eq!(sim_run(dir, &sim, &["drift"]).code, 0);

    let set = sim_run(
        dir,
        &sim,
        &[
            "sim",
            "set-dial",
            "api",
            "eu-central-1",
            "30",
            "--listener",
            "https",
        ],
    );
    assert_eq!(set.code, 0, "{}", set.all());

    let drift = sim_run(dir, &sim, &["drift"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    assert!(
        drift
            .stdout
            .contains("GlobalAccelerator[api].listener[https].endpointGroup[eu-central-1]"),
        "{}",
        drift.all()
    );
    assert!(
        drift.stdout.contains("trafficDial: live 30, desired 100"),
        "{}",
        drift.all()
    );
    assert!(
        drift.stdout.contains("Drift: 1 resource(s)"),
        "{}",
        drift.all()
    );

    let json = sim_run(dir, &sim, &["drift", "--format", "json"]);
    assert_eq!(json.code, 2);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(report["format_version"], 2);
    assert_eq!(
        report["resources"][0]["fields"][0],
        serde_json::json!({"path": "trafficDial", "live": 30, "desired": 100})
    );

    let (_, writes_before) = call_totals(&sim);
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(
        call_totals(&sim).1 - writes_before,
        1,
        "restoring one dial is one UpdateEndpointGroup"
    );
    assert_eq!(sim_run(dir, &sim, &["drift"]).code, 0);
}

#[test]
fn an_apply_reads_the_fleet_once_and_once_more_only_for_its_gates() {
    let (dir, sim) = setup();
    let dir = dir.path();
    fast(dir, &sim);
    assert_eq!(sim_run(dir, &sim, &["apply", "--yes"]).code, 0);
    let drift = |accelerator: &str, region: &str| {
        let args = [
            "sim",
            "set-dial",
            accelerator,
            region,
            "30",
            "--listener",
            "https",
        ];
        let set = sim_run(dir, &sim, &args);
        assert_eq!(set.code, 0, "{}", set.all());
    };
    let apply = || {
        let before = world(&sim);
        let apply = sim_run(dir, &sim, &["apply", "--yes"]);
        assert_eq!(apply.code, 0, "{}", apply.all());
        let after = world(&sim);
        let delta = |operation: &str| ok_calls(&after, operation) - ok_calls(&before, operation);
        // The one group written is described before it is written (the
        // compare-before-write) and written once.
        assert_eq!(delta("DescribeEndpointGroup"), 1, "{}", apply.all());
        assert_eq!(delta("UpdateEndpointGroup"), 1, "{}", apply.all());
        (
            delta("ListAccelerators"),
            delta("DescribeTransitGateways"),
            delta("backendServices.list"),
        )
    };

    // accounts-eu has no traffic policy, so no gate: the step runs on the
    // observation it was planned from, and nothing is observed again.
    drift("accounts-eu", "eu-west-1");
    assert_eq!(apply(), (1, 17, 1), "one observation of every family");

    // api's `careful` policy gates each step on health: after the step
    // lands, the gates are checked on a second observation.
    drift("api", "eu-central-1");
    assert_eq!(apply(), (2, 34, 2), "a second observation for the gates");
}

/// Successful calls of `operation` in a `sim show --format json` world.
fn ok_calls(world: &serde_json::Value, operation: &str) -> u64 {
    world["calls"][operation]["ok"].as_u64().unwrap_or(0)
}

#[test]
fn out_of_band_weight_and_deleted_group_are_repaired() {
    let (dir, sim) = setup();
    let dir = dir.path();
    fast(dir, &sim);
    assert_eq!(sim_run(dir, &sim, &["apply", "--yes"]).code, 0);
    let endpoint =
        "arn:aws:elasticloadbalancing:eu-central-1:111122223333:loadbalancer/net/grpc-eu/5e6f7a8b";
    let set = sim_run(
        dir,
        &sim,
        &[
            "sim",
            "set-weight",
            "api",
            "eu-central-1",
            endpoint,
            "7",
            "--listener",
            "grpc",
        ],
    );
    assert_eq!(set.code, 0, "{}", set.all());
    let drift = sim_run(dir, &sim, &["drift", "--format", "markdown"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    assert!(
        drift.stdout.contains("| `weight` | 7 | 200 |"),
        "{}",
        drift.all()
    );
    assert_eq!(sim_run(dir, &sim, &["apply", "--yes"]).code, 0);
    assert_eq!(sim_run(dir, &sim, &["drift"]).code, 0);
}

#[test]
fn residency_violation_blocks_plan_and_apply_and_changes_nothing() {
    let (dir, sim) = setup();
    let dir = dir.path();
    fast(dir, &sim);
    let path = dir.join("desired-state/global-accelerator.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    let bad = text.replace(
        "        - region: eu-west-1\n",
        "        - region: us-east-1\n          trafficDial: 10\n        - region: eu-west-1\n",
    );
    assert_ne!(text, bad);
    std::fs::write(&path, bad).expect("write");

    let before = normalized(&sim);
    let (_, writes_before) = call_totals(&sim);
    let plan = sim_run(dir, &sim, &["plan"]);
    assert_eq!(plan.code, 3, "{}", plan.all());
    assert!(
        plan.stderr
            .contains("GlobalAccelerator/accounts-eu serves `pii` data in us-east-1"),
        "{}",
        plan.all()
    );
    assert!(
        plan.stderr.contains("DataResidencyPolicy/eu-user-data"),
        "{}",
        plan.all()
    );
    assert!(
        plan.stderr.contains("global-accelerator.yaml:"),
        "names the file: {}",
        plan.all()
    );
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 3, "{}", apply.all());
    assert_eq!(normalized(&sim), before, "nothing was applied");
    assert_eq!(call_totals(&sim).1, writes_before, "no write call was made");
}

#[test]
fn throttling_and_server_errors_converge_to_the_fault_free_result() {
    let (clean_dir, clean_sim) = setup();
    fast(clean_dir.path(), &clean_sim);
    assert_eq!(
        sim_run(clean_dir.path(), &clean_sim, &["apply", "--yes"]).code,
        0
    );

    let (dir, sim) = setup();
    let dir = dir.path();
    fast(dir, &sim);
    let faults = sim_run(
        dir,
        &sim,
        &[
            "sim",
            "faults",
            "--throttle-rate",
            "0.3",
            "--error-rate",
            "0.05",
        ],
    );
    assert_eq!(faults.code, 0, "{}", faults.all());
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let retries: u64 = apply
        .stdout
        .split("change(s); ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the report states its retries");
    assert!(retries > 0, "retries are reported: {}", apply.stdout);
    let world = world(&sim);
    let throttled: u64 = world["calls"]
        .as_object()
        .expect("calls")
        .values()
        .map(|c| c["throttled"].as_u64().unwrap_or(0))
        .sum();
    assert!(throttled > 0, "the simulator did throttle");

    sim_run(
        dir,
        &sim,
        &["sim", "faults", "--clear", "--deploy-delay-ms", "50"],
    );
    assert_eq!(sim_run(dir, &sim, &["plan", "--detailed-exitcode"]).code, 0);
    assert_eq!(
        normalized(&sim),
        normalized(&clean_sim),
        "the faulty run built the same world as the clean one"
    );
}

#[test]
fn an_apply_failing_half_way_is_completed_by_the_next_without_duplicates() {
    let (clean_dir, clean_sim) = setup();
    fast(clean_dir.path(), &clean_sim);
    assert_eq!(
        sim_run(clean_dir.path(), &clean_sim, &["apply", "--yes"]).code,
        0
    );

    for operation in [
        "CreateEndpointGroup",
        "CreateListener",
        "AcceptTransitGatewayPeeringAttachment",
        "backendServices.insert",
    ] {
        let (dir, sim) = setup();
        let dir = dir.path();
        fast(dir, &sim);
        let inject = sim_run(dir, &sim, &["sim", "faults", "--fail-operation", operation]);
        assert_eq!(inject.code, 0, "{}", inject.all());
        let failed = sim_run(dir, &sim, &["apply", "--yes"]);
        assert_eq!(failed.code, 1, "{operation}: {}", failed.all());
        assert!(
            failed.stderr.to_lowercase().contains("injected"),
            "{operation}: {}",
            failed.all()
        );
        assert!(
            failed.stderr.contains("run `meridian apply` again"),
            "{operation}: {}",
            failed.all()
        );

        sim_run(
            dir,
            &sim,
            &["sim", "faults", "--clear", "--deploy-delay-ms", "50"],
        );
        let resumed = sim_run(dir, &sim, &["apply", "--yes"]);
        assert_eq!(resumed.code, 0, "{operation}: {}", resumed.all());
        assert_eq!(
            sim_run(dir, &sim, &["plan", "--detailed-exitcode"]).code,
            0,
            "{operation}: converged"
        );
        assert_eq!(
            normalized(&sim),
            normalized(&clean_sim),
            "{operation}: no duplicates, nothing missing"
        );
    }
}

#[test]
fn a_stale_saved_plan_is_refused_and_changes_nothing() {
    let (dir, sim) = setup();
    let dir = dir.path();
    fast(dir, &sim);
    assert_eq!(sim_run(dir, &sim, &["apply", "--yes"]).code, 0);
    let desired = dir.join("desired-state/global-accelerator.yaml");
    let text = std::fs::read_to_string(&desired).expect("read");
    std::fs::write(
        &desired,
        text.replacen(
            "trafficDial: 50            # APAC",
            "trafficDial: 75            # APAC",
            1,
        ),
    )
    .expect("write");

    let plan_file = dir.join("plan.json");
    let plan = sim_run(
        dir,
        &sim,
        &[
            "plan",
            "--out",
            plan_file.to_str().expect("utf-8"),
            "--detailed-exitcode",
        ],
    );
    assert_eq!(plan.code, 2, "{}", plan.all());

    // Someone changes the planned object between plan and apply.
    assert_eq!(
        sim_run(
            dir,
            &sim,
            &[
                "sim",
                "set-dial",
                "api",
                "ap-southeast-1",
                "40",
                "--listener",
                "https"
            ]
        )
        .code,
        0
    );
    let before = normalized(&sim);
    let (_, writes_before) = call_totals(&sim);
    let apply = sim_run(
        dir,
        &sim,
        &[
            "apply",
            "--plan",
            plan_file.to_str().expect("utf-8"),
            "--yes",
        ],
    );
    assert_eq!(apply.code, 1, "{}", apply.all());
    assert!(
        apply.stderr.contains("the plan is stale")
            && apply.stderr.contains(
                "GlobalAccelerator[api].listener[https].endpointGroup[ap-southeast-1] changed since the plan was made: trafficDial is 40 (the plan saw 50)"
            ),
        "{}",
        apply.all()
    );
    assert_eq!(normalized(&sim), before);
    assert_eq!(call_totals(&sim).1, writes_before, "nothing was written");

    // A fresh plan, saved; the document is then edited again: the saved
    // plan runs as reviewed (75), the edit (80) does not leak in.
    let fresh = sim_run(
        dir,
        &sim,
        &["plan", "--out", plan_file.to_str().expect("utf-8")],
    );
    assert_eq!(fresh.code, 0, "{}", fresh.all());
    std::fs::write(
        &desired,
        std::fs::read_to_string(&desired).expect("read").replacen(
            "trafficDial: 75",
            "trafficDial: 80",
            1,
        ),
    )
    .expect("write");
    let saved = sim_run(
        dir,
        &sim,
        &[
            "apply",
            "--plan",
            plan_file.to_str().expect("utf-8"),
            "--yes",
        ],
    );
    assert_eq!(saved.code, 0, "{}", saved.all());
    assert!(
        saved.stderr.contains("changed since the plan was saved"),
        "{}",
        saved.all()
    );
    assert_eq!(
        common::dial(&sim, "api", 443, "ap-southeast-1"),
        75,
        "the reviewed value, not the later edit"
    );
    let (_, writes_after) = call_totals(&sim);
    assert_eq!(writes_after - writes_before, 1, "one UpdateEndpointGroup");
    // The edit is applied by the next plan, as any change.
    let next = sim_run(dir, &sim, &["plan", "--detailed-exitcode"]);
    assert_eq!(next.code, 2, "{}", next.all());
    assert!(
        next.stdout.contains("trafficDial: 75 → 80"),
        "{}",
        next.all()
    );
}

#[test]
fn a_saved_plan_applies_when_nothing_changed() {
    let (dir, sim) = setup();
    let dir = dir.path();
    fast(dir, &sim);
    let plan_file = dir.join("plan.json");
    assert_eq!(
        sim_run(
            dir,
            &sim,
            &["plan", "--out", plan_file.to_str().expect("utf-8")]
        )
        .code,
        0
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_file).expect("read")).expect("json");
    assert_eq!(saved["kind"], "meridian-saved-plan");
    assert_eq!(saved["format_version"], 2);
    assert_eq!(saved["plan"]["summary"]["create"], 40);
    let (_, writes_before) = call_totals(&sim);
    assert_eq!(
        saved["plan"]["writes"]
            .as_array()
            .expect("writes")
            .iter()
            .map(|w| w["count"].as_u64().unwrap_or(0))
            .sum::<u64>(),
        31,
        "the plan states its API writes"
    );
    let apply = sim_run(
        dir,
        &sim,
        &[
            "apply",
            "--plan",
            plan_file.to_str().expect("utf-8"),
            "--yes",
        ],
    );
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(
        call_totals(&sim).1 - writes_before,
        31,
        "exactly the writes the plan stated"
    );
    assert_eq!(sim_run(dir, &sim, &["plan", "--detailed-exitcode"]).code, 0);
    // The same saved plan applied again writes nothing: what it creates
    // exists, and a second copy is never made.
    let writes = call_totals(&sim).1;
    let again = sim_run(
        dir,
        &sim,
        &[
            "apply",
            "--plan",
            plan_file.to_str().expect("utf-8"),
            "--yes",
        ],
    );
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(call_totals(&sim).1, writes, "{}", again.all());
    assert_eq!(sim_run(dir, &sim, &["plan", "--detailed-exitcode"]).code, 0);
}

#[test]
fn a_saved_plan_resumed_after_a_failure_writes_only_what_is_missing() {
    let (dir, sim) = setup();
    let dir = dir.path();
    fast(dir, &sim);
    let plan_file = dir.join("plan.json");
    let plan_file = plan_file.to_str().expect("utf-8");
    assert_eq!(sim_run(dir, &sim, &["plan", "--out", plan_file]).code, 0);
    // The endpoint groups fail: accelerators, listeners and the rest land.
    let fail = sim_run(
        dir,
        &sim,
        &["sim", "faults", "--fail-operation", "CreateEndpointGroup"],
    );
    assert_eq!(fail.code, 0, "{}", fail.all());
    let failed = sim_run(dir, &sim, &["apply", "--plan", plan_file, "--yes"]);
    assert_eq!(failed.code, 1, "{}", failed.all());
    let accelerators = world(&sim)["accelerators"].as_object().map(|a| a.len());
    assert_eq!(accelerators, Some(2), "{}", failed.all());
    let clear = sim_run(
        dir,
        &sim,
        &["sim", "faults", "--clear", "--deploy-delay-ms", "50"],
    );
    assert_eq!(clear.code, 0, "{}", clear.all());
    let creates_before = world(&sim)["calls"]["CreateAccelerator"]["ok"]
        .as_u64()
        .unwrap_or(0);
    let resumed = sim_run(dir, &sim, &["apply", "--plan", plan_file, "--yes"]);
    assert_eq!(resumed.code, 0, "{}", resumed.all());
    let live = world(&sim);
    assert_eq!(live["accelerators"].as_object().map(|a| a.len()), Some(2));
    assert_eq!(
        live["calls"]["CreateAccelerator"]["ok"]
            .as_u64()
            .unwrap_or(0),
        creates_before,
        "nothing that landed is created again"
    );
    assert_eq!(sim_run(dir, &sim, &["plan", "--detailed-exitcode"]).code, 0);
}

#[test]
fn removing_an_accelerator_disables_it_then_deletes_it_and_its_children() {
    let (dir, sim) = setup();
    let dir = dir.path();
    fast(dir, &sim);
    assert_eq!(sim_run(dir, &sim, &["apply", "--yes"]).code, 0);
    let path = dir.join("desired-state/global-accelerator.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    let cut = text
        .find("---\n# Accounts service")
        .expect("second document");
    std::fs::write(&path, &text[..cut]).expect("write");

    let plan = sim_run(dir, &sim, &["plan", "--format", "json"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).expect("json");
    let order: Vec<String> = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["action"].as_str().unwrap_or(""),
                c["address"].as_str().unwrap_or("")
            )
        })
        .collect();
    let position = |needle: &str| {
        order
            .iter()
            .position(|c| c == needle)
            .unwrap_or_else(|| panic!("{needle} in {order:#?}"))
    };
    let disable = position("update GlobalAccelerator[accounts-eu]");
    let endpoint = order.iter().position(|c| c.starts_with("delete GlobalAccelerator[accounts-eu].listener[https].endpointGroup[eu-west-1].endpoint[")).expect("endpoint delete");
    let group =
        position("delete GlobalAccelerator[accounts-eu].listener[https].endpointGroup[eu-west-1]");
    let listener = position("delete GlobalAccelerator[accounts-eu].listener[https]");
    let accelerator = position("delete GlobalAccelerator[accounts-eu]");
    assert!(
        disable < endpoint && endpoint < group && group < listener && listener < accelerator,
        "{order:#?}"
    );

    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(
        world(&sim)["accelerators"].as_object().map(|m| m.len()),
        Some(1)
    );
    assert_eq!(sim_run(dir, &sim, &["plan", "--detailed-exitcode"]).code, 0);
}

#[test]
fn an_accelerator_meridian_does_not_own_is_never_touched() {
    let (dir, sim) = setup();
    let dir = dir.path();
    fast(dir, &sim);
    // Somebody else's accelerator, created straight through the cloud API.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let cloud = meridian_sim::SimCloud::new(meridian_sim::SimStore::open(&sim).expect("store"));
    let foreign = runtime
        .block_on(cloud.create_accelerator("api", "IPV4", true, Default::default(), None))
        .expect("create");
    assert_eq!(sim_run(dir, &sim, &["apply", "--yes"]).code, 0);
    // Remove everything from desired state except providers: meridian deletes its own, not the other.
    for file in [
        "global-accelerator.yaml",
        "gcp-load-balancing.yaml",
        "transit-gateway.yaml",
    ] {
        std::fs::remove_file(dir.join("desired-state").join(file)).expect("remove");
    }
    std::fs::write(dir.join("desired-state/policies.yaml"), "apiVersion: meridian.dev/v1alpha1\nkind: DataResidencyPolicy\nmetadata: {name: eu}\nspec: {dataClassification: [pii], allowedRegions: [eu-west-1]}\n").expect("write");
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let world = world(&sim);
    let accelerators = world["accelerators"].as_object().expect("accelerators");
    assert_eq!(accelerators.len(), 1, "{accelerators:#?}");
    assert!(accelerators.contains_key(&foreign));
    assert_eq!(
        accelerators[&foreign]["enabled"], true,
        "the foreign accelerator was not even disabled"
    );
}

#[test]
fn two_processes_on_one_simulator_directory_lose_no_update() {
    let (dir, sim) = setup();
    let dir = dir.path();
    fast(dir, &sim);
    let regions = [
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "eu-central-1",
        "eu-north-1",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-northeast-1",
    ];
    let children: Vec<std::process::Child> = regions
        .iter()
        .map(|region| {
            std::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
                .args([
                    "--sim",
                    sim.to_str().expect("utf-8"),
                    "sim",
                    "set-health",
                    region,
                    "unhealthy",
                ])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().expect("wait").success());
    }
    let world = world(&sim);
    let unhealthy = world["unhealthy_regions"].as_object().expect("regions");
    assert_eq!(
        unhealthy.len(),
        regions.len(),
        "every concurrent write landed: {unhealthy:?}"
    );
    let history = world["history"].as_array().expect("history");
    assert_eq!(
        history
            .iter()
            .filter(|h| h["operation"] == "SetRegionHealth")
            .count(),
        regions.len()
    );
}

#[test]
fn writes_whose_responses_are_lost_are_retried_without_duplicates() {
    let (clean_dir, clean_sim) = setup();
    fast(clean_dir.path(), &clean_sim);
    assert_eq!(
        sim_run(clean_dir.path(), &clean_sim, &["apply", "--yes"]).code,
        0
    );

    let (dir, sim) = setup();
    let dir = dir.path();
    fast(dir, &sim);
    // A quarter of all writes land but answer 500: every kind of create,
    // accept and route call is retried after it already took effect.
    assert_eq!(
        sim_run(
            dir,
            &sim,
            &["sim", "faults", "--lost-response-rate", "0.25"]
        )
        .code,
        0
    );
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let lost: u64 = world(&sim)["calls"]
        .as_object()
        .expect("calls")
        .values()
        .filter(|c| c["write"] == true)
        .map(|c| c["failed"].as_u64().unwrap_or(0))
        .sum();
    assert!(lost > 0, "responses were lost");
    sim_run(
        dir,
        &sim,
        &["sim", "faults", "--clear", "--deploy-delay-ms", "50"],
    );
    assert_eq!(sim_run(dir, &sim, &["plan", "--detailed-exitcode"]).code, 0);
    assert_eq!(
        normalized(&sim),
        normalized(&clean_sim),
        "no duplicates, nothing missing"
    );

    // Updates guarded by GCP fingerprints: a retried patch whose first
    // attempt landed must recognise its own change, not report a conflict.
    let gcp = dir.join("desired-state/gcp-load-balancing.yaml");
    let text = std::fs::read_to_string(&gcp).expect("read");
    std::fs::write(
        &gcp,
        text.replace("unhealthyThreshold: 3", "unhealthyThreshold: 4")
            .replace("timeoutSec: 30", "timeoutSec: 45")
            .replace(
                "paths: [\"/v1/*\", \"/v2/*\"]",
                "paths: [\"/v1/*\", \"/v2/*\", \"/v3/*\"]",
            ),
    )
    .expect("write");
    assert_eq!(
        sim_run(dir, &sim, &["sim", "faults", "--lost-response-rate", "0.6"]).code,
        0
    );
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    sim_run(
        dir,
        &sim,
        &["sim", "faults", "--clear", "--deploy-delay-ms", "50"],
    );
    assert_eq!(sim_run(dir, &sim, &["plan", "--detailed-exitcode"]).code, 0);
}

#[test]
fn a_gateway_description_change_is_one_modify_after_a_read_compare() {
    let (dir, sim) = setup();
    let dir = dir.path();
    fast(dir, &sim);
    assert_eq!(sim_run(dir, &sim, &["apply", "--yes"]).code, 0);
    let path = dir.join("desired-state/transit-gateway.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        text.replace(
            "description: US East Transit Gateway",
            "description: US East backbone",
        ),
    )
    .expect("write");
    let calls = |op: &str| world(&sim)["calls"][op]["ok"].as_u64().unwrap_or(0);
    // What one observation reads: the plan's.
    let before_plan = calls("DescribeTransitGateways");
    assert_eq!(sim_run(dir, &sim, &["plan"]).code, 0);
    let per_observation = calls("DescribeTransitGateways") - before_plan;
    assert!(per_observation > 0);
    let (modifies, describes) = (
        calls("ModifyTransitGateway"),
        calls("DescribeTransitGateways"),
    );
    let (_, writes) = call_totals(&sim);
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(calls("ModifyTransitGateway") - modifies, 1);
    assert_eq!(
        call_totals(&sim).1 - writes,
        1,
        "one write for one changed gateway"
    );
    assert_eq!(
        (calls("DescribeTransitGateways") - describes) % per_observation,
        1,
        "whole observations, and one read of the gateway just before the write"
    );
    let gateway = world(&sim)["transit_gateways"]
        .as_object()
        .expect("gateways")
        .values()
        .find(|g| g["region"] == "us-east-1")
        .cloned()
        .expect("us-east-1 gateway");
    assert_eq!(gateway["description"], "US East backbone", "{gateway:#}");
    assert_eq!(sim_run(dir, &sim, &["plan", "--detailed-exitcode"]).code, 0);
}
