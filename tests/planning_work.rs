//! The planning core's work grows with the fleet, not with its square, and
//! the rollout checks' work with the change, not with the fleet: the
//! allocations of desired expansion, diff, schedule and invariants are
//! counted (not timed) for fleets of 50 and 500 accelerators — converged,
//! and with every dial moving — and must grow at most tenfold; those of the
//! step schedule and the serving-region checks for three moving dials must
//! not grow at all.

use meridian::model::{self, SourceFile};
use meridian::observe::Observation;
use meridian_provider::Observed;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// The allocator's counters are global: one measurement at a time.
static MEASURING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A accelerators × 2 listeners × 3 endpoint groups × 4 endpoints, with a
/// careful policy, every group at `dial`.
fn fleet(accelerators: usize, dial: u8) -> String {
    let mut out = String::from(
        "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {name: aws-main}\nspec:\n  type: aws\n---\napiVersion: meridian.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: careful}\nspec:\n  selector: {kind: GlobalAccelerator}\n  maxStepPercent: 25\n  bakeSeconds: 300\n  minServingRegions: 2\n",
    );
    for a in 0..accelerators {
        out.push_str(&format!(
            "---\napiVersion: meridian.dev/v1alpha1\nkind: GlobalAccelerator\nmetadata: {{name: svc-{a:04}}}\nspec:\n  provider: aws-main\n  listeners:\n"
        ));
        for (listener, port) in [("https", 443), ("grpc", 8443)] {
            out.push_str(&format!(
                "    - name: {listener}\n      protocol: TCP\n      portRanges: [{{from: {port}, to: {port}}}]\n      endpointGroups:\n"
            ));
            for region in ["us-east-1", "eu-west-1", "ap-southeast-1"] {
                out.push_str(&format!(
                    "        - region: {region}\n          trafficDial: {dial}\n          endpoints:\n"
                ));
                for e in 0..4 {
                    out.push_str(&format!("            - id: arn:aws:elasticloadbalancing:{region}:111122223333:loadbalancer/net/s{a}-{listener}-{e}/0a1b2c3d\n              weight: 128\n"));
                }
            }
        }
    }
    out
}

fn state(accelerators: usize, dial: u8) -> meridian::model::DesiredState {
    model::load(&[SourceFile {
        path: "fleet.yaml".to_owned(),
        text: fleet(accelerators, dial),
    }])
    .expect("the fleet is valid")
}

/// The live world as the fleet at dial 100, observed healthy.
fn observation(accelerators: usize) -> Observation {
    let live = meridian::desired::expand(&state(accelerators, 100));
    Observation {
        resources: live
            .into_iter()
            .map(|(address, d)| {
                (
                    d.provider,
                    Observed {
                        cloud_id: Some(format!("id:{address}")),
                        address,
                        resource: d.resource,
                        etag: None,
                        status: Some("DEPLOYED".to_owned()),
                        health: Some("healthy".to_owned()),
                        owned: true,
                        adopted: false,
                        ip_addresses: Vec::new(),
                    },
                )
            })
            .collect(),
        ..Observation::default()
    }
}

/// Allocations made by the planning core, and the number of changes.
fn work(accelerators: usize, dial: u8) -> (u64, usize) {
    let _one = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let state = state(accelerators, dial);
    let observation = observation(accelerators);
    let region = Region::new(GLOBAL);
    let desired = meridian::desired::expand(&state);
    let mut plan = meridian::plan::make(&state, &desired, &observation, None);
    meridian::rollout::annotate_invariants(&mut plan, &state, &desired, &observation);
    let allocations = region.change().allocations as u64;
    (allocations, plan.changes.len())
}

#[test]
fn the_planning_cores_work_grows_linearly_with_the_fleet() {
    for dial in [100u8, 50] {
        let (small, small_changes) = work(50, dial);
        let (large, large_changes) = work(500, dial);
        let expected = if dial == 100 { 0 } else { 300 };
        assert_eq!(small_changes, expected, "dial {dial}");
        assert_eq!(large_changes, expected * 10, "dial {dial}");
        let ratio = large as f64 / small as f64;
        // Ten times the fleet: at most about ten times the work (a
        // quadratic core would be a hundred), and more than five (every
        // object is really expanded and compared; a plan's fixed costs
        // make it less than ten).
        assert!(
            (5.0..=11.5).contains(&ratio),
            "dial {dial}: {small} allocations at 50 accelerators, {large} at 500: {ratio:.2}×"
        );
    }
}

/// Allocations of the rollout checks alone (the step schedule and the
/// serving-region invariants, on a live view built beforehand) when the
/// dials of `moving` endpoint groups change, and the schedule's changes.
fn rollout_checks_work(accelerators: usize, moving: usize) -> (u64, usize) {
    let _one = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let state = state(accelerators, 100);
    let desired = meridian::desired::expand(&state);
    let mut observation = observation(accelerators);
    let mut changed = 0;
    for (_, observed) in &mut observation.resources {
        if changed < moving
            && let meridian_provider::Resource::EndpointGroup(group) = &mut observed.resource
        {
            group.traffic_dial = 40;
            changed += 1;
        }
    }
    assert_eq!(changed, moving);
    let (live, providers) = meridian::observe::live_of(&observation);
    let region = Region::new(GLOBAL);
    let schedule = meridian::plan::schedule::schedule(&state, &desired, &live, &providers);
    let violations = meridian::rollout::invariants::schedule_violations(&state, &desired, &live);
    let allocations = region.change().allocations as u64;
    assert!(violations.is_empty(), "{violations:?}");
    let changes = schedule.steps.iter().map(|s| s.changes.len()).sum();
    (allocations, changes)
}

#[test]
fn the_rollout_checks_of_a_small_change_cost_the_same_in_a_fleet_ten_times_larger() {
    // Three dials from 40 to 100 in steps of 25 points: 40 → 65 → 90 → 100.
    let (small, small_changes) = rollout_checks_work(50, 3);
    let (large, large_changes) = rollout_checks_work(500, 3);
    assert_eq!(small_changes, 9);
    assert_eq!(large_changes, 9);
    // Bounded by the change: the other 2,997 groups and their endpoints are
    // never simulated (a scan that only reads them allocates nothing).
    assert!(
        large < small * 2,
        "{small} allocations at 50 accelerators, {large} at 500"
    );
    // And a converged fleet of any size simulates nothing.
    let (idle, idle_changes) = rollout_checks_work(500, 0);
    assert_eq!(idle_changes, 0);
    assert!(
        idle < small,
        "{idle} allocations for a converged fleet of 500"
    );
}
