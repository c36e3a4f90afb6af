//! The reference fleet (500 accelerators × 2 listeners × 3 endpoint groups
//! × 4 endpoints: 16,500 objects) under the simulated cloud's default
//! limits — the Global Accelerator bucket of 100 calls and 20 per second,
//! the default quotas raised to fit 500 accelerators: applied from nothing,
//! then one region failed over in every listener. Each converges with
//! exactly one write per changed API object, none of them failed (the calls
//! the cloud throttles are paced and retried), and leaves nothing to plan.
//! Timing is the benchmark's business (`cargo bench --bench fleet`); this
//! checks counts and outcomes only.

mod common;
#[path = "common/fleet.rs"]
mod fleet;

use common::{sim_run, world};
use fleet::{LISTENERS, REGIONS, fleet_yaml};
use serde_json::Value;

const ACCELERATORS: usize = 500;

/// Successful, throttled and failed calls per operation, and the totals.
fn calls(world: &Value) -> Vec<(String, bool, u64, u64, u64)> {
    world["calls"]
        .as_object()
        .map(|calls| {
            calls
                .iter()
                .map(|(operation, c)| {
                    (
                        operation.clone(),
                        c["write"].as_bool().unwrap_or(false),
                        c["ok"].as_u64().unwrap_or(0),
                        c["throttled"].as_u64().unwrap_or(0),
                        c["failed"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Successful writes per operation since `before`, and the failed calls.
fn writes_since(
    before: &[(String, bool, u64, u64, u64)],
    after: &[(String, bool, u64, u64, u64)],
) -> (std::collections::BTreeMap<String, u64>, u64, u64) {
    let mut writes = std::collections::BTreeMap::new();
    let (mut throttled, mut failed) = (0, 0);
    for (operation, write, ok, t, f) in after {
        let (ok0, t0, f0) = before
            .iter()
            .find(|b| &b.0 == operation)
            .map_or((0, 0, 0), |b| (b.2, b.3, b.4));
        throttled += t - t0;
        failed += f - f0;
        if *write && ok > &ok0 {
            writes.insert(operation.clone(), ok - ok0);
        }
    }
    (writes, throttled, failed)
}

#[test]
fn the_reference_fleet_is_created_and_failed_over_under_the_default_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let sim = root.join("sim");
    let folder = root.join("desired-state");
    std::fs::create_dir_all(&folder).expect("mkdir");
    let fleet = folder.join("fleet.yaml");
    for args in [
        &["sim", "quotas", "--accelerators", "510"][..],
        &["sim", "faults", "--deploy-delay-ms", "0"][..],
        &["sim", "limits", "--default"][..],
    ] {
        let run = sim_run(root, &sim, args);
        assert_eq!(run.code, 0, "{}", run.all());
    }
    let groups = (ACCELERATORS * LISTENERS.len() * REGIONS.len()) as u64;

    // From nothing: 500 accelerators, 1,000 listeners, 3,000 endpoint
    // groups (their endpoints travel inside the group's create).
    std::fs::write(&fleet, fleet_yaml(ACCELERATORS, |_, _, _| 100)).expect("write");
    let before = calls(&world(&sim));
    let create = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(create.code, 0, "{}", create.all());
    let after = calls(&world(&sim));
    let (writes, throttled, failed) = writes_since(&before, &after);
    assert_eq!(
        writes,
        [
            ("CreateAccelerator".to_owned(), ACCELERATORS as u64),
            ("CreateEndpointGroup".to_owned(), groups),
            (
                "CreateListener".to_owned(),
                (ACCELERATORS * LISTENERS.len()) as u64
            ),
        ]
        .into_iter()
        .collect(),
        "one write per object created"
    );
    assert_eq!(
        failed, 0,
        "no call failed ({throttled} throttled and retried)"
    );
    assert!(
        throttled > 0,
        "the default limits are in force: 4,500 writes cannot fit in a bucket of 100"
    );
    let world_now = world(&sim);
    assert_eq!(
        world_now["accelerators"].as_object().map_or(0, |m| m.len()),
        ACCELERATORS,
        "every accelerator exists once"
    );

    // One region failed over: us-east-1's dial to 0 in all 1,000 listeners.
    let drained = |_: usize, _: &str, region: &str| if region == "us-east-1" { 0 } else { 100 };
    std::fs::write(&fleet, fleet_yaml(ACCELERATORS, drained)).expect("write");
    let before = after;
    let failover = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(failover.code, 0, "{}", failover.all());
    let after = calls(&world(&sim));
    let (writes, _, failed) = writes_since(&before, &after);
    assert_eq!(
        writes,
        [(
            "UpdateEndpointGroup".to_owned(),
            (ACCELERATORS * LISTENERS.len()) as u64
        )]
        .into_iter()
        .collect(),
        "one UpdateEndpointGroup per us-east-1 group, nothing else"
    );
    assert_eq!(failed, 0, "no call failed");
    let drained_groups = world(&sim)["endpoint_groups"]
        .as_object()
        .map(|groups| {
            groups
                .values()
                .filter(|g| {
                    g["spec"]["region"] == "us-east-1"
                        && g["spec"]["trafficDial"].as_u64() == Some(0)
                })
                .count()
        })
        .unwrap_or(0);
    assert_eq!(drained_groups, ACCELERATORS * LISTENERS.len());
}
