//! The simulated cloud's store: observing changes nothing but counters, and
//! a process killed in the middle of an apply leaves a world the next
//! command opens and finishes.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{copy_example, sim_run, world};
use serde_json::Value;

/// The world without what every call changes: call counters and the rate
/// limits' meters.
fn state(sim: &std::path::Path) -> Value {
    let mut world = world(sim);
    world["calls"] = Value::Null;
    world["call_totals"] = Value::Null;
    world["meters"] = Value::Null;
    world
}

#[test]
fn a_no_op_observation_changes_nothing_but_counters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let sim = root.join("sim");
    copy_example(root);
    let faults = sim_run(root, &sim, &["sim", "faults", "--deploy-delay-ms", "20"]);
    assert_eq!(faults.code, 0, "{}", faults.all());
    let apply = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    std::thread::sleep(Duration::from_millis(100));
    let before = state(&sim);
    let reads_before: u64 = world(&sim)["calls"]
        .as_object()
        .expect("calls")
        .values()
        .map(|c| c["ok"].as_u64().unwrap_or(0))
        .sum();
    for command in [&["plan"][..], &["drift"][..], &["sim", "show"][..]] {
        let run = sim_run(root, &sim, command);
        assert_eq!(run.code, 0, "{command:?}: {}", run.all());
    }
    let after = state(&sim);
    let changed: Vec<&String> = after
        .as_object()
        .expect("world")
        .iter()
        .filter(|(k, v)| before.get(k.as_str()) != Some(v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        changed.is_empty(),
        "only counters moved; changed: {changed:?}"
    );
    let reads_after: u64 = world(&sim)["calls"]
        .as_object()
        .expect("calls")
        .values()
        .map(|c| c["ok"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        reads_after > reads_before,
        "the observations were real calls"
    );
}

#[test]
fn an_apply_killed_at_random_points_leaves_a_world_the_next_command_finishes() {
    // kill -9 an apply at several points in its run; each time the next
    // command opens the world, and a final apply converges with no
    // duplicate objects.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let sim = root.join("sim");
    copy_example(root);
    let faults = sim_run(root, &sim, &["sim", "faults", "--deploy-delay-ms", "50"]);
    assert_eq!(faults.code, 0, "{}", faults.all());
    for delay_ms in [150u64, 400, 700, 1_100] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(["--sim", sim.to_str().expect("utf-8"), "apply", "--yes"])
            .current_dir(root)
            .env_remove("MERIDIAN_SIM")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("meridian runs");
        // A little jitter from the clock, so the kill points vary run to run.
        let jitter = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()) % 100);
        std::thread::sleep(Duration::from_millis(delay_ms + jitter));
        // SIGKILL: no handler, no cleanup.
        let _ = child.kill();
        let _ = child.wait();
        let show = sim_run(root, &sim, &["sim", "show"]);
        assert_eq!(show.code, 0, "the world opens after a kill: {}", show.all());
    }
    let apply = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let plan = sim_run(root, &sim, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "converged: {}", plan.all());
    let world = world(&sim);
    let names: Vec<&str> = world["accelerators"]
        .as_object()
        .expect("accelerators")
        .values()
        .filter_map(|a| a["name"].as_str())
        .collect();
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        names.len(),
        unique.len(),
        "no duplicate accelerators: {names:?}"
    );
    assert_eq!(unique.len(), 2, "{names:?}");
}
